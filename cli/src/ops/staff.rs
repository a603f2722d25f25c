//! A centre's roster on the command line: `tongban staff put|window|list|windows`. Changes go
//! to the node the connection names (its director, or an operator of the county or township
//! above it); lists read that node or one below it.

use anyhow::Result;
use clap::Subcommand;
use tongban_domains::staff::{Post, WindowKind};
use tongban_proto::v1::{self as pb, staff_client::StaffClient};

use crate::client::Connection;
use crate::display::{cell, place};

#[derive(Subcommand, Debug)]
pub enum StaffAction {
    /// Add or change one member of this node's staff (put again with the same number to change).
    Put {
        /// The member's number at this centre (工号), e.g. A01.
        #[arg(long = "staff-no")]
        staff_no: String,
        /// The name signed on documents.
        #[arg(long)]
        name: String,
        /// A post, in Chinese or English (窗口人员, 审批人员, 印章管理员, 中心主任, 督办人员,
        /// 材料交接员); repeat for several.
        #[arg(long = "post", required = true, value_parser = crate::words::post)]
        posts: Vec<Post>,
        /// The number of the window they sit at.
        #[arg(long)]
        window: Option<u32>,
        /// An operator certificate name that is this member (wang.fang); repeat for several.
        #[arg(long = "login")]
        logins: Vec<String>,
        /// The member has left: their certificates may no longer act here.
        #[arg(long)]
        left: bool,
    },
    /// Open, change or close one window of this node.
    Window {
        /// 1 to 99.
        #[arg(long)]
        number: u32,
        /// 咨询窗口, 综合受理窗口 or 专业窗口 (consultation, comprehensive, specialised).
        #[arg(long, value_parser = crate::words::window_kind)]
        kind: WindowKind,
        /// What the window says above it, e.g. 社保医保.
        #[arg(long, default_value = "")]
        label: String,
        /// Close the window (nobody may be seated there).
        #[arg(long)]
        closed: bool,
    },
    /// The staff of this node, or of a node below it.
    List {
        /// A centre's name or code (水寨镇); this node when omitted.
        #[arg(long, value_parser = crate::words::place)]
        place: Option<String>,
        /// Members who have left as well.
        #[arg(long)]
        all: bool,
    },
    /// The windows of this node, or of a node below it.
    Windows {
        /// A centre's name or code; this node when omitted.
        #[arg(long, value_parser = crate::words::place)]
        place: Option<String>,
    },
}

pub async fn run(conn: Connection, action: StaffAction) -> Result<()> {
    let mut client = StaffClient::new(conn.channel().await?);
    match action {
        StaffAction::Put {
            staff_no,
            name,
            posts,
            window,
            logins,
            left,
        } => {
            let member = pb::StaffMember {
                staff_no,
                name,
                posts: posts.iter().map(|p| p.to_wire()).collect(),
                window: window.unwrap_or(0),
                logins,
                active: !left,
            };
            let put = client
                .put_member(pb::PutMemberRequest { member: Some(member) })
                .await
                .map_err(|s| conn.explain(s))?
                .into_inner();
            println!("已登记：{}", member_line(&put));
            println!("（名册随同步报送上级中心）");
        }
        StaffAction::Window {
            number,
            kind,
            label,
            closed,
        } => {
            let window = pb::ServiceWindow {
                number,
                kind: kind.to_wire(),
                label,
                open: !closed,
            };
            let put = client
                .put_window(pb::PutWindowRequest { window: Some(window) })
                .await
                .map_err(|s| conn.explain(s))?
                .into_inner();
            println!("已设立：{}", window_line(&put));
        }
        StaffAction::List { place: centre, all } => {
            let mut token = String::new();
            let mut count = 0;
            loop {
                let page = client
                    .list_staff(pb::ListStaffRequest {
                        node: centre.clone().unwrap_or_default(),
                        page_size: 0,
                        page_token: token,
                        include_inactive: all,
                    })
                    .await
                    .map_err(|s| conn.explain(s))?
                    .into_inner();
                for m in &page.members {
                    if let Some(member) = &m.member {
                        count += 1;
                        println!("{}  {}", cell(&place(&m.node), 22), member_line(member));
                    }
                }
                if page.next_page_token.is_empty() {
                    break;
                }
                token = page.next_page_token;
            }
            if count == 0 {
                println!("名册中还没有人员；用 tongban staff put 登记（先用 tongban staff window 设立窗口）");
            }
        }
        StaffAction::Windows { place: centre } => {
            let mut token = String::new();
            loop {
                let page = client
                    .list_windows(pb::ListWindowsRequest {
                        node: centre.clone().unwrap_or_default(),
                        page_size: 0,
                        page_token: token,
                    })
                    .await
                    .map_err(|s| conn.explain(s))?
                    .into_inner();
                for w in &page.windows {
                    println!("{}", window_line(w));
                }
                if page.next_page_token.is_empty() {
                    break;
                }
                token = page.next_page_token;
            }
        }
    }
    Ok(())
}

/// `A01 王芳  窗口人员  3号窗口  证书 wang.fang`.
fn member_line(m: &pb::StaffMember) -> String {
    let posts: Vec<&str> = m
        .posts
        .iter()
        .filter_map(|p| Post::from_wire(*p).ok())
        .map(|p| p.label_zh())
        .collect();
    format!(
        "{} {}  {}  {}  证书 {}{}",
        cell(&m.staff_no, 6),
        cell(&m.name, 8),
        cell(&posts.join("、"), 20),
        cell(
            &if m.window == 0 {
                "-".to_owned()
            } else {
                format!("{}号窗口", m.window)
            },
            9
        ),
        if m.logins.is_empty() {
            "-".to_owned()
        } else {
            m.logins.join(", ")
        },
        if m.active { "" } else { "  （已离岗）" }
    )
}

/// `3号窗口  综合受理窗口  社保医保`.
fn window_line(w: &pb::ServiceWindow) -> String {
    let kind = WindowKind::from_wire(w.kind).map(|k| k.label_zh()).unwrap_or("?");
    format!(
        "{}  {}  {}{}",
        cell(&format!("{}号窗口", w.number), 9),
        cell(kind, 14),
        if w.label.is_empty() { "-" } else { &w.label },
        if w.open { "" } else { "  （已关闭）" }
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::ops::{OperatorCommand as Command, parse};

    #[test]
    fn posts_and_window_kinds_are_taken_in_chinese_or_english() {
        let Command::Staff {
            action: StaffAction::Put { posts, window, .. },
            ..
        } = parse(&[
            "staff",
            "put",
            "--staff-no",
            "S01",
            "--name",
            "赵六",
            "--post",
            "印章管理员",
            "--post",
            "window-clerk",
            "--window",
            "3",
        ])
        .unwrap()
        else {
            panic!("not a staff put");
        };
        assert_eq!(posts, [Post::SealKeeper, Post::WindowClerk]);
        assert_eq!(window, Some(3));
        let Command::Staff {
            action: StaffAction::Window { kind, .. },
            ..
        } = parse(&["staff", "window", "--number", "2", "--kind", "综合受理窗口"]).unwrap()
        else {
            panic!("not a staff window");
        };
        assert_eq!(kind, WindowKind::Comprehensive);
        let unknown = parse(&["staff", "put", "--staff-no", "X", "--name", "x", "--post", "局长"]).unwrap_err();
        assert!(unknown.to_string().contains("中心主任"), "{unknown}");
    }
}
