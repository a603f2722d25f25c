//! The demo's service hall: the county sets up 水寨镇's roster (its numbered windows, a director,
//! two window clerks, an approver, a seal keeper and a supervisor), then one authorised case goes
//! through the hall by the people whose posts allow each step. A window clerk's attempt to decide
//! is refused with the node's own sentence; the case's history names each person and window.
//! With `demo --keep` the same people get certificates, and [`tour`] prints which one to use for
//! which step.

use std::path::Path;

use anyhow::{Context, Result, bail};
use tongban_domains::ids::NodeId;
use tongban_domains::pki::{PkiLayout, Principal};
use tongban_domains::staff::{Post, StaffStamp};
use tongban_proto::v1::{
    self as pb, case_action as act, cases_client::CasesClient, catalogue_client::CatalogueClient,
    staff_client::StaffClient,
};
use tongban_testkit::cluster::Cluster;
use tonic::transport::Channel;

use crate::display::cell;

use act::Action as A;

/// The township whose hall the demo staffs: 水寨镇.
pub const HALL: &str = "441424100";

/// One member of the hall: number, name, posts, window, certificate name.
struct Person {
    staff_no: &'static str,
    name: &'static str,
    posts: &'static [Post],
    window: u32,
    login: &'static str,
}

const PEOPLE: [Person; 6] = [
    Person {
        staff_no: "D01",
        name: "陈建华",
        posts: &[Post::Director],
        window: 0,
        login: "chen.jianhua",
    },
    Person {
        staff_no: "A01",
        name: "王芳",
        posts: &[Post::WindowClerk],
        window: 2,
        login: "wang.fang",
    },
    Person {
        staff_no: "A02",
        name: "刘洋",
        posts: &[Post::WindowClerk],
        window: 3,
        login: "liu.yang",
    },
    Person {
        staff_no: "B01",
        name: "李四",
        posts: &[Post::Approver],
        window: 0,
        login: "li.si",
    },
    Person {
        staff_no: "S01",
        name: "赵六",
        posts: &[Post::SealKeeper],
        window: 3,
        login: "zhao.liu",
    },
    Person {
        staff_no: "G01",
        name: "孙丽",
        posts: &[Post::Supervisor],
        window: 0,
        login: "sun.li",
    },
];

/// The hall's windows: one consultation window, comprehensive ones, one specialised one.
const WINDOWS: [(u32, pb::WindowKind, &str); 5] = [
    (1, pb::WindowKind::Consultation, "咨询导办"),
    (2, pb::WindowKind::Comprehensive, "综合受理"),
    (3, pb::WindowKind::Comprehensive, "综合受理·出件"),
    (4, pb::WindowKind::Comprehensive, "综合受理"),
    (7, pb::WindowKind::Specialised, "社保医保"),
];

async fn as_person(cluster: &Cluster, hall: &NodeId, login: &str) -> Result<Channel> {
    let who = Principal::operator(hall.clone(), login)?;
    cluster
        .channel_as(hall, &who)
        .await
        .with_context(|| format!("connecting to {hall} as {who}"))
}

fn login_of(post: Post) -> &'static str {
    PEOPLE
        .iter()
        .find(|p| p.posts.contains(&post))
        .map(|p| p.login)
        .unwrap_or("admin")
}

/// Runs the hall's chapter and returns the implementation code of the item it used, for the tour.
pub async fn run(cluster: &Cluster) -> Result<String> {
    let hall = NodeId::new(HALL)?;
    println!();
    println!("the service hall at 水寨镇 {HALL}: windows, staff and posts");
    let mut staff = StaffClient::new(cluster.operator_channel(&hall).await?);
    for (number, kind, label) in WINDOWS {
        staff
            .put_window(pb::PutWindowRequest {
                window: Some(pb::ServiceWindow {
                    number,
                    kind: kind as i32,
                    label: label.to_owned(),
                    open: true,
                }),
            })
            .await
            .context("opening a window")?;
    }
    for p in &PEOPLE {
        staff
            .put_member(pb::PutMemberRequest {
                member: Some(pb::StaffMember {
                    staff_no: p.staff_no.to_owned(),
                    name: p.name.to_owned(),
                    posts: p.posts.iter().map(|post| post.to_wire()).collect(),
                    window: p.window,
                    logins: vec![p.login.to_owned()],
                    active: true,
                }),
            })
            .await
            .with_context(|| format!("enrolling {}", p.name))?;
        let posts: Vec<&str> = p.posts.iter().map(|post| post.label_zh()).collect();
        let window = if p.window == 0 {
            String::new()
        } else {
            format!("，{}号窗口", p.window)
        };
        println!(
            "  {} {}  {}{window}  证书 {}",
            p.staff_no,
            cell(p.name, 6),
            posts.join("、"),
            p.login
        );
    }
    println!(
        "  county admin set up {} windows and {} staff; the roster travels up to the county",
        WINDOWS.len(),
        PEOPLE.len()
    );

    let clerk = as_person(cluster, &hall, login_of(Post::WindowClerk)).await?;
    let mut at_window = CasesClient::new(clerk.clone());
    let mut approver = CasesClient::new(as_person(cluster, &hall, login_of(Post::Approver)).await?);
    let mut keeper = CasesClient::new(as_person(cluster, &hall, login_of(Post::SealKeeper)).await?);

    // An item the hall decides itself (授权), submitted by its implementation code.
    let receipt = submit_authorised(clerk, &mut at_window, &hall).await?;
    let case = receipt.case_id.clone();
    let summary = step(&mut at_window, &case, A::Receive(act::Receive {})).await?;
    let seal = summary.required_seal;
    step(&mut at_window, &case, A::Accept(act::Accept { terms: None })).await?;
    step(&mut approver, &case, A::StartHandling(act::StartHandling {})).await?;
    step(&mut approver, &case, A::SubmitForReview(act::SubmitForReview {})).await?;
    let decide = || {
        A::Decide(act::Decide {
            approve: true,
            reason: "材料齐全，符合法定条件，准予办理".to_owned(),
            seal,
            impressions: 1,
        })
    };
    match step(&mut at_window, &case, decide()).await {
        Ok(_) => bail!("a window clerk was allowed to decide"),
        Err(refusal) => println!(
            "  王芳 tries to decide at her window; the node refuses: {}",
            refusal.message()
        ),
    }
    step(&mut approver, &case, decide()).await?;
    step(
        &mut approver,
        &case,
        A::Conclude(act::Conclude {
            outcome: pb::CaseOutcome::Approved as i32,
            reason: String::new(),
        }),
    )
    .await?;
    step(&mut approver, &case, A::ResultReady(act::ResultReady {})).await?;
    let issued = step(&mut keeper, &case, A::Issue(act::Issue { seal, impressions: 1 })).await?;
    println!(
        "  case {} ({}) accepted at window {}, issued at window {}; its history:",
        receipt.case_number, receipt.item_name, issued.accepted_window, issued.issued_window
    );
    let detail = at_window
        .get(pb::GetCaseRequest {
            key: Some(pb::get_case_request::Key::CaseId(case.clone())),
        })
        .await?
        .into_inner();
    for h in &detail.history {
        let who = h
            .acted_by
            .as_ref()
            .and_then(|s| tongban_domains::staff::wire::stamp_from_wire(s).ok())
            .map(|s: StaffStamp| s.to_string())
            .unwrap_or_else(|| h.by.clone());
        println!("    {}  {}", cell(&h.action_label, 10), who);
    }
    Ok(detail.terms.map(|t| t.implementation_code).unwrap_or_default())
}

/// Submits the first authorised, non-immediate item 水寨镇 takes at the clerk's window.
async fn submit_authorised(
    channel: Channel,
    at_window: &mut CasesClient<Channel>,
    hall: &NodeId,
) -> Result<pb::CaseReceipt> {
    let mut catalogue = CatalogueClient::new(channel).max_decoding_message_size(64 << 20);
    let mut page_token = String::new();
    loop {
        let page = catalogue
            .list_items(pb::ListItemsRequest {
                page_size: 500,
                page_token,
                ..Default::default()
            })
            .await
            .with_context(|| format!("listing the catalogue at {hall}"))?
            .into_inner();
        for item in &page.items {
            if item.delegation != pb::DelegationMode::Authorised as i32 || item.immediate {
                continue;
            }
            let submitted = at_window
                .submit(pb::SubmitCaseRequest {
                    item_code: item.implementation_code.clone(),
                    applicant_kind: pb::ApplicantKind::Person as i32,
                    applicant_name: "黄秀英".to_owned(),
                    applicant_id_number: "441424198803150026".to_owned(),
                    applicant_phone: "13902345678".to_owned(),
                    accept_on_the_spot: false,
                })
                .await;
            match submitted {
                Ok(receipt) => return Ok(receipt.into_inner()),
                // An item this hall takes but not as an application: try the next one.
                Err(status) if status.code() == tonic::Code::FailedPrecondition => continue,
                Err(status) => return Err(status).context("submitting at the window"),
            }
        }
        if page.next_page_token.is_empty() {
            bail!("{hall} takes no authorised item an applicant can apply for");
        }
        page_token = page.next_page_token;
    }
}

async fn step(client: &mut CasesClient<Channel>, case: &str, action: A) -> Result<pb::CaseSummary, tonic::Status> {
    client
        .act(pb::ActRequest {
            case_id: case.to_owned(),
            action: Some(pb::CaseAction { action: Some(action) }),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// Writes a certificate for each member of the hall under `pki` and prints one shell alias per
/// person and the steps each takes, lines a newcomer pastes into another terminal.
pub fn tour(cluster: &Cluster, pki: &Path, item_code: &str) -> Result<()> {
    let hall = NodeId::new(HALL)?;
    let layout = PkiLayout::new(pki);
    let ca = cluster.ca();
    println!();
    println!("水寨镇's staff have certificates too; paste these aliases, one per person:");
    println!(
        "  export TONGBAN_CLI_NODE=https://{} TONGBAN_CLI_CA={}",
        cluster.addr(&hall)?,
        layout.ca_cert().display()
    );
    // The program itself, so the aliases work whether or not `tongban` is on the PATH.
    let program = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "tongban".to_owned());
    for p in &PEOPLE {
        let who = Principal::operator(hall.clone(), p.login)?;
        let issued = ca.issue(&who)?;
        let cert = layout.cert_path(&who);
        if let Some(parent) = cert.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&cert, issued.cert_pem)?;
        std::fs::write(layout.key_path(&who), issued.key_pem)?;
        let posts: Vec<&str> = p.posts.iter().map(|post| post.label_zh()).collect();
        println!(
            "  alias {}='TONGBAN_CLI_CERT={} TONGBAN_CLI_KEY={} {program}'   # {}（{}）",
            p.login.replace('.', "_"),
            cert.display(),
            layout.key_path(&who).display(),
            p.name,
            posts.join("、")
        );
    }
    println!("then, step by step (CASE is the receipt number the first line prints):");
    println!("  wang_fang case submit {item_code} --name 李明 --id-number 441424199001011234");
    println!("  wang_fang case receive CASE; wang_fang case accept CASE");
    println!("  li_si case start CASE; li_si case review CASE");
    println!("  wang_fang case decide CASE --approve        # refused: a window clerk does not decide");
    println!("  li_si case decide CASE --approve");
    println!("  li_si case conclude CASE; li_si case ready CASE");
    println!("  zhao_liu case issue CASE; wang_fang case show CASE   # each step names its person");
    println!("  chen_jianhua staff list; sun_li oversight --township 水寨镇");
    Ok(())
}
