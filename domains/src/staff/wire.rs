//! The conversions between the roster's types and `staff.proto`: the only roster code that
//! knows protobuf. Unknown or unspecified enum numbers are refused with the field named.

use tongban_proto::v1 as pb;

use crate::staff::{Member, Post, StaffRefusal, StaffStamp, Window, WindowKind};

fn invalid(field: &'static str, message: impl Into<String>) -> StaffRefusal {
    StaffRefusal::Invalid {
        field,
        message: message.into(),
    }
}

impl Post {
    pub fn from_wire(value: i32) -> Result<Post, StaffRefusal> {
        Ok(match pb::Post::try_from(value) {
            Ok(pb::Post::WindowClerk) => Post::WindowClerk,
            Ok(pb::Post::Approver) => Post::Approver,
            Ok(pb::Post::SealKeeper) => Post::SealKeeper,
            Ok(pb::Post::Director) => Post::Director,
            Ok(pb::Post::Supervisor) => Post::Supervisor,
            Ok(pb::Post::Courier) => Post::Courier,
            Ok(pb::Post::Unspecified) => return Err(invalid("posts", "岗位未指定")),
            Err(_) => return Err(invalid("posts", format!("没有编号为 {value} 的岗位"))),
        })
    }

    pub fn to_wire(self) -> i32 {
        (match self {
            Post::WindowClerk => pb::Post::WindowClerk,
            Post::Approver => pb::Post::Approver,
            Post::SealKeeper => pb::Post::SealKeeper,
            Post::Director => pb::Post::Director,
            Post::Supervisor => pb::Post::Supervisor,
            Post::Courier => pb::Post::Courier,
        }) as i32
    }
}

impl WindowKind {
    pub fn from_wire(value: i32) -> Result<WindowKind, StaffRefusal> {
        Ok(match pb::WindowKind::try_from(value) {
            Ok(pb::WindowKind::Consultation) => WindowKind::Consultation,
            Ok(pb::WindowKind::Comprehensive) => WindowKind::Comprehensive,
            Ok(pb::WindowKind::Specialised) => WindowKind::Specialised,
            Ok(pb::WindowKind::Unspecified) => return Err(invalid("kind", "窗口类型未指定")),
            Err(_) => return Err(invalid("kind", format!("没有编号为 {value} 的窗口类型"))),
        })
    }

    pub fn to_wire(self) -> i32 {
        (match self {
            WindowKind::Consultation => pb::WindowKind::Consultation,
            WindowKind::Comprehensive => pb::WindowKind::Comprehensive,
            WindowKind::Specialised => pb::WindowKind::Specialised,
        }) as i32
    }
}

/// A member as the wire carries it. A post named twice is refused: the request says something
/// other than what it means.
pub fn member_from_wire(m: &pb::StaffMember) -> Result<Member, StaffRefusal> {
    let mut posts = std::collections::BTreeSet::new();
    for p in &m.posts {
        let post = Post::from_wire(*p)?;
        if !posts.insert(post) {
            return Err(invalid("posts", format!("岗位 {} 重复", post.label_zh())));
        }
    }
    let mut logins = std::collections::BTreeSet::new();
    for login in &m.logins {
        if !logins.insert(login.clone()) {
            return Err(invalid("logins", format!("证书名 {login} 重复")));
        }
    }
    Ok(Member {
        staff_no: m.staff_no.clone(),
        name: m.name.clone(),
        posts,
        window: Some(m.window).filter(|w| *w != 0),
        logins,
        active: m.active,
    })
}

pub fn member_to_wire(m: &Member) -> pb::StaffMember {
    pb::StaffMember {
        staff_no: m.staff_no.clone(),
        name: m.name.clone(),
        posts: m.posts.iter().map(|p| p.to_wire()).collect(),
        window: m.window.unwrap_or(0),
        logins: m.logins.iter().cloned().collect(),
        active: m.active,
    }
}

pub fn window_from_wire(w: &pb::ServiceWindow) -> Result<Window, StaffRefusal> {
    Ok(Window {
        number: w.number,
        kind: WindowKind::from_wire(w.kind)?,
        label: w.label.clone(),
        open: w.open,
    })
}

pub fn window_to_wire(w: &Window) -> pb::ServiceWindow {
    pb::ServiceWindow {
        number: w.number,
        kind: w.kind.to_wire(),
        label: w.label.clone(),
        open: w.open,
    }
}

pub fn stamp_to_wire(s: &StaffStamp) -> pb::StaffStamp {
    pb::StaffStamp {
        staff_no: s.staff_no.clone(),
        name: s.name.clone(),
        post: s.post.to_wire(),
        window: s.window.unwrap_or(0),
    }
}

pub fn stamp_from_wire(s: &pb::StaffStamp) -> Result<StaffStamp, StaffRefusal> {
    Ok(StaffStamp {
        staff_no: s.staff_no.clone(),
        name: s.name.clone(),
        post: Post::from_wire(s.post)?,
        window: Some(s.window).filter(|w| *w != 0),
    })
}
