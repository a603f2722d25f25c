//! The people of a service centre: its staff, the posts they hold and the numbered windows they
//! sit at (`staff.proto`).
//!
//! This module owns the pure rules:
//! - what a member and a window must look like ([`Member::check`], [`Window::check`]);
//! - which post allows which case action ([`post_for`]): a window clerk receives and accepts but
//!   does not decide, an approver decides, only a seal keeper stamps and issues, a supervisor
//!   closes supervision records;
//! - what a case step records of the person behind it ([`StaffStamp`]).
//!
//! [`projection`] folds roster changes into the node's tables (every node keeps its own roster
//! and those below it, since changes travel up the tree) and answers "who is this certificate
//! here?"; [`service`] is the `Staff` gRPC service.

pub mod projection;
pub mod service;
pub mod wire;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::case::ActionKind;
use crate::ids::NodeId;
use crate::pki::Principal;

/// Characters of a member's name, and of a window's label.
pub const MAX_NAME_CHARS: usize = 32;
/// Characters of a staff number.
pub const MAX_STAFF_NO_CHARS: usize = 16;
/// Certificate names one member may hold.
pub const MAX_LOGINS: usize = 8;
/// The highest window number.
pub const MAX_WINDOW: u32 = 99;

labelled_enum! {
    /// A post in a service centre (岗位).
    Post {
        WindowClerk = "window_clerk", "窗口人员";
        Approver = "approver", "审批人员";
        SealKeeper = "seal_keeper", "印章管理员";
        Director = "director", "中心主任";
        Supervisor = "supervisor", "督办人员";
        Courier = "courier", "材料交接员";
    }
}

labelled_enum! {
    /// The kind of a window, as the seed's township centres have them: one consultation
    /// window, five or six comprehensive ones, three or four specialised ones.
    WindowKind {
        Consultation = "consultation", "咨询窗口";
        Comprehensive = "comprehensive", "综合受理窗口";
        Specialised = "specialised", "专业窗口";
    }
}

/// One member of a centre's staff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The member's number at the centre (工号).
    pub staff_no: String,
    pub name: String,
    pub posts: BTreeSet<Post>,
    /// The window they sit at, if any.
    pub window: Option<u32>,
    /// Operator certificate names that are this member.
    pub logins: BTreeSet<String>,
    /// False once the member has left.
    pub active: bool,
}

/// One numbered window of a centre.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub number: u32,
    pub kind: WindowKind,
    pub label: String,
    pub open: bool,
}

/// What a case step records of the person who took it, as the roster said then.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StaffStamp {
    pub staff_no: String,
    pub name: String,
    /// The post under which the step was allowed.
    pub post: Post,
    pub window: Option<u32>,
}

impl std::fmt::Display for StaffStamp {
    /// `王芳（窗口人员，3号窗口）`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}（{}", self.name, self.post.label_zh())?;
        if let Some(w) = self.window {
            write!(f, "，{w}号窗口")?;
        }
        write!(f, "）")
    }
}

/// Why a roster change or a case step was refused, in words a director can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StaffRefusal {
    /// A field of a member or window is malformed (`field` names it).
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    /// The change conflicts with the roster as it stands (a closed window, a name held by another).
    #[error("{0}")]
    Conflict(String),
    /// The caller may not do this here.
    #[error("{0}")]
    NotAllowed(String),
}

fn invalid(field: &'static str, message: impl Into<String>) -> StaffRefusal {
    StaffRefusal::Invalid {
        field,
        message: message.into(),
    }
}

impl Member {
    /// Checks the member's own fields (the roster checks window and logins against the rest).
    pub fn check(&self, node: &NodeId) -> Result<(), StaffRefusal> {
        let no = &self.staff_no;
        if no.is_empty() || no.chars().count() > MAX_STAFF_NO_CHARS {
            return Err(invalid(
                "staff_no",
                format!("工号须为 1 到 {MAX_STAFF_NO_CHARS} 个字符"),
            ));
        }
        if !no.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(invalid("staff_no", format!("工号 {no:?} 只能含字母、数字和 -")));
        }
        let name_chars = self.name.trim().chars().count();
        if name_chars == 0 || name_chars > MAX_NAME_CHARS || self.name.trim() != self.name {
            return Err(invalid(
                "name",
                format!("姓名须为 1 到 {MAX_NAME_CHARS} 个字符，首尾无空格"),
            ));
        }
        if self.name.chars().any(char::is_control) {
            return Err(invalid("name", "姓名含控制字符"));
        }
        if self.posts.is_empty() {
            return Err(invalid("posts", "至少要有一个岗位"));
        }
        if let Some(w) = self.window
            && !(1..=MAX_WINDOW).contains(&w)
        {
            return Err(invalid(
                "window",
                format!("窗口号须在 1 到 {MAX_WINDOW} 之间，不是 {w}"),
            ));
        }
        if self.logins.len() > MAX_LOGINS {
            return Err(invalid(
                "logins",
                format!("一人至多 {MAX_LOGINS} 个证书名，不是 {}", self.logins.len()),
            ));
        }
        for login in &self.logins {
            Principal::operator(node.clone(), login.clone())
                .map_err(|e| invalid("logins", format!("证书名 {login:?} 不可用：{e}")))?;
        }
        Ok(())
    }

    /// The first of this member's posts that allows `action`, if any.
    pub fn post_for(&self, action: ActionKind) -> Option<Post> {
        self.posts.iter().copied().find(|p| post_allows(*p, action))
    }
}

impl Window {
    pub fn check(&self) -> Result<(), StaffRefusal> {
        if !(1..=MAX_WINDOW).contains(&self.number) {
            return Err(invalid(
                "number",
                format!("窗口号须在 1 到 {MAX_WINDOW} 之间，不是 {}", self.number),
            ));
        }
        if self.label.chars().count() > MAX_NAME_CHARS || self.label.chars().any(char::is_control) {
            return Err(invalid(
                "label",
                format!("窗口名称至多 {MAX_NAME_CHARS} 个字符，不含控制字符"),
            ));
        }
        Ok(())
    }
}

/// Whether `post` allows case action `action`. The split follows the one-door practice of the
/// seed: the front desk (窗口) takes in and gives out, the back office (审批) decides, the seal
/// keeper alone puts the seal on a result, and nobody else issues it, since issuing stamps it.
pub fn post_allows(post: Post, action: ActionKind) -> bool {
    use ActionKind as A;
    match post {
        Post::WindowClerk => matches!(
            action,
            A::Submit
                | A::Forward
                | A::Receive
                | A::Accept
                | A::RequestSupplement
                | A::SupplementProvided
                | A::RefuseAcceptance
                | A::HandOver
                | A::ResultReady
                | A::Deliver
                | A::Rate
                | A::Withdraw
        ),
        Post::Approver => matches!(
            action,
            A::StartHandling
                | A::SubmitForReview
                | A::Decide
                | A::Conclude
                | A::SendBack
                | A::StartSpecialProcedure
                | A::EndSpecialProcedure
                | A::Extend
                | A::Suspend
                | A::Resume
                | A::HandOver
                | A::ResultReady
        ),
        Post::SealKeeper => matches!(action, A::Issue),
        Post::Director | Post::Supervisor | Post::Courier => false,
    }
}

/// The posts that allow `action`, for the sentence that tells a clerk whom to ask.
pub fn posts_allowing(action: ActionKind) -> Vec<Post> {
    Post::ALL.iter().copied().filter(|p| post_allows(*p, action)).collect()
}

/// The sentence refusing `action` to `member`, naming who may take it.
pub fn refusal_for(member: &Member, action: ActionKind) -> StaffRefusal {
    let held: Vec<&str> = member.posts.iter().map(|p| p.label_zh()).collect();
    let allowed: Vec<&str> = posts_allowing(action).iter().map(|p| p.label_zh()).collect();
    let next = if allowed.is_empty() {
        "该操作不由工作人员办理".to_owned()
    } else {
        format!("请{}办理", allowed.join("或"))
    };
    StaffRefusal::NotAllowed(format!(
        "{}（{}）的岗位不能{}；下一步：{next}",
        member.name,
        held.join("、"),
        action.label_zh()
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn member(posts: &[Post]) -> Member {
        Member {
            staff_no: "A01".into(),
            name: "王芳".into(),
            posts: posts.iter().copied().collect(),
            window: Some(3),
            logins: ["wang.fang".to_owned()].into(),
            active: true,
        }
    }

    #[test]
    fn a_window_clerk_accepts_but_does_not_decide_or_issue() {
        let clerk = member(&[Post::WindowClerk]);
        assert_eq!(clerk.post_for(ActionKind::Accept), Some(Post::WindowClerk));
        assert_eq!(clerk.post_for(ActionKind::Decide), None);
        assert_eq!(clerk.post_for(ActionKind::Issue), None);
        let refusal = refusal_for(&clerk, ActionKind::Decide).to_string();
        assert!(refusal.contains("审批人员"), "{refusal}");
        assert!(refusal.contains("王芳"), "{refusal}");
    }

    #[test]
    fn only_the_seal_keeper_issues_and_supervisors_take_no_case_step() {
        for action in ActionKind::ALL {
            let allowed = posts_allowing(*action);
            if *action == ActionKind::Issue {
                assert_eq!(allowed, vec![Post::SealKeeper]);
            }
            assert!(!allowed.contains(&Post::Supervisor));
            assert!(!allowed.contains(&Post::Director));
        }
        assert_eq!(
            member(&[Post::Approver]).post_for(ActionKind::Decide),
            Some(Post::Approver)
        );
    }

    #[test]
    fn malformed_members_and_windows_name_their_field() {
        let node = NodeId::new("441424100").unwrap();
        assert!(member(&[Post::WindowClerk]).check(&node).is_ok());
        let field = |m: Member| match m.check(&node) {
            Err(StaffRefusal::Invalid { field, .. }) => field,
            other => panic!("expected a malformed field, got {other:?}"),
        };
        assert_eq!(
            field(Member {
                posts: BTreeSet::new(),
                ..member(&[])
            }),
            "posts"
        );
        assert_eq!(
            field(Member {
                name: " 王芳".into(),
                ..member(&[Post::Approver])
            }),
            "name"
        );
        assert_eq!(
            field(Member {
                staff_no: "A 1".into(),
                ..member(&[Post::Approver])
            }),
            "staff_no"
        );
        assert_eq!(
            field(Member {
                window: Some(100),
                ..member(&[Post::Approver])
            }),
            "window"
        );
        assert_eq!(
            field(Member {
                logins: ["-x".to_owned()].into(),
                ..member(&[Post::Approver])
            }),
            "logins"
        );
        let window = Window {
            number: 0,
            kind: WindowKind::Comprehensive,
            label: String::new(),
            open: true,
        };
        assert!(matches!(
            window.check(),
            Err(StaffRefusal::Invalid { field: "number", .. })
        ));
    }

    #[test]
    fn a_stamp_reads_name_post_and_window() {
        let stamp = StaffStamp {
            staff_no: "A01".into(),
            name: "王芳".into(),
            post: Post::WindowClerk,
            window: Some(3),
        };
        assert_eq!(stamp.to_string(), "王芳（窗口人员，3号窗口）");
    }
}
