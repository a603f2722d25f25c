//! `tongban case …`: the clerk's commands on cases over the `Cases` service — submit (printing the
//! applicant's receipt), every workflow action, list and show. A case is named by its id or by
//! its receipt number; the command resolves a number to the id. Seals, hand-over targets and
//! conclusions default to what the case implies, and are printed.

use anyhow::{Result, bail};
use clap::{Subcommand, ValueEnum};
use tongban_domains::case::{SpecialProcedureKind, StateKind, WorkStage};
use tongban_domains::ids::{NodeId, Tier};
use tongban_domains::store::CaseRef;
use tongban_proto::v1::{self as pb, case_action as act, cases_client::CasesClient, get_case_request};
use tonic::transport::Channel;

use crate::client::Connection;
use crate::display::{cell, china_time, place};
use crate::words;

#[derive(Subcommand, Debug)]
pub enum CaseCommand {
    /// Open a case at this node for an item and print the applicant's receipt.
    Submit {
        /// The item's implementation code (实施编码, one variant), or its basic code (基本编码)
        /// when only one variant is taken here; `tongban catalogue list --query` lists both.
        item: String,
        /// The applicant's name (person or organisation).
        #[arg(long)]
        name: String,
        /// Identity document number or unified social credit code (only a masked form is kept).
        #[arg(long, default_value = "")]
        id_number: String,
        #[arg(long, default_value = "")]
        phone: String,
        /// The applicant is an organisation (default: a person).
        #[arg(long)]
        organisation: bool,
        /// Township window, papers complete: receive and accept on the spot (当场受理).
        #[arg(long)]
        accept: bool,
    },
    /// Village: hand a submitted case to the township (转报).
    Forward { case: String },
    /// Township window: receive a submitted case (收件).
    Receive { case: String },
    /// Township front desk: accept under the catalogue version this node holds (受理).
    Accept { case: String },
    /// Tell the applicant which materials to add; pauses the clock (补正告知).
    RequestSupplement {
        case: String,
        /// A material to add (repeat for several).
        #[arg(long = "material", required = true)]
        materials: Vec<String>,
    },
    /// The applicant added the requested materials (补正材料).
    SupplementProvided { case: String },
    /// Do not accept the case (不予受理); a reason is required.
    Refuse {
        case: String,
        #[arg(long)]
        reason: String,
    },
    /// Hand the case to the next tier (移交): township → county, county → township,
    /// township → origin village. The target defaults to the one the case's state allows.
    HandOver {
        case: String,
        /// The node: a division code or a name (五华县, 华城镇).
        #[arg(long, value_parser = words::place)]
        to: Option<String>,
    },
    /// Start handling (承办).
    Start { case: String },
    /// Submit for review (提交审核).
    Review { case: String },
    /// Decide (审批决定): approve or refuse, under the item's seal.
    Decide {
        case: String,
        #[arg(long, conflicts_with = "refuse", required_unless_present = "refuse")]
        approve: bool,
        #[arg(long)]
        refuse: bool,
        /// The opinion; required when refusing.
        #[arg(long, default_value = "")]
        reason: String,
        /// Defaults to the seal the item takes.
        #[arg(long, value_enum)]
        seal: Option<Seal>,
        /// Number of impressions stamped, for the seal register (盖章次数).
        #[arg(long, default_value_t = 1)]
        impressions: u32,
    },
    /// Send the case back to handling or review (退回); a reason is required.
    SendBack {
        case: String,
        #[arg(long, value_enum, default_value = "handling")]
        to: Stage,
        #[arg(long)]
        reason: String,
    },
    /// Suspend (中止); a reason is required.
    Suspend {
        case: String,
        #[arg(long)]
        reason: String,
    },
    /// Resume a suspended case (恢复).
    Resume { case: String },
    /// Extend the promised limit (延期, Administrative Licensing Law Art. 42): 1 to 10 working
    /// days, once per case, in handling or review, with the head's approval.
    Extend {
        case: String,
        /// Working days to add (1–10).
        #[arg(long)]
        days: u32,
        /// Why the decision cannot be made in time (told to the applicant).
        #[arg(long)]
        reason: String,
        /// The head of the organ who approved the extension (负责人).
        #[arg(long)]
        approver: String,
    },
    /// Start a special procedure not counted in the limit (启动特别程序); pauses the clock.
    SpecialProcedure {
        case: String,
        /// The procedure, in Chinese or English: 听证 hearing, 招标拍卖 tender, 检验检测检疫
        /// testing, 鉴定 appraisal, 专家评审 expert-review, 公示 publicity, 其他特别程序 other.
        #[arg(long, value_parser = words::special_procedure)]
        kind: SpecialProcedureKind,
        #[arg(long)]
        reason: String,
    },
    /// End the special procedure (结束特别程序); the clock runs again.
    EndSpecialProcedure { case: String },
    /// Conclude (办结). Defaults to the decision taken (or approval for an immediate item).
    Conclude {
        case: String,
        #[arg(long, value_enum)]
        outcome: Option<ConcludeAs>,
        /// Required for every outcome but approval.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// The applicant withdraws (撤回); a reason is required.
    Withdraw {
        case: String,
        #[arg(long)]
        reason: String,
    },
    /// The result is at the window (结果待领).
    Ready { case: String },
    /// Issue the result (出件), under the item's seal.
    Issue {
        case: String,
        /// Defaults to the seal the item takes.
        #[arg(long, value_enum)]
        seal: Option<Seal>,
        /// Number of impressions stamped, for the seal register (盖章次数).
        #[arg(long, default_value_t = 1)]
        impressions: u32,
    },
    /// The result reached the applicant (送达).
    Deliver {
        case: String,
        /// Delivered by courier rather than at the window.
        #[arg(long)]
        courier: bool,
    },
    /// Record the applicant's rating (好差评).
    Rate {
        case: String,
        #[arg(value_enum)]
        level: Level,
    },
    /// Cases this node knows, newest first.
    List {
        /// Only cases in this state, in Chinese or English (已受理 or accepted, 已办结 or
        /// concluded, …).
        #[arg(long, value_parser = words::state)]
        state: Option<StateKind>,
        /// Only cases held by this node: a division code or a name (华城镇).
        #[arg(long, value_parser = words::place)]
        holder: Option<String>,
        /// Only cases for this item (basic or implementation code).
        #[arg(long)]
        item: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Page through everything.
        #[arg(long)]
        all: bool,
    },
    /// One case with its history.
    Show { case: String },
    /// Red and yellow warnings on the cases of this node's subtree, worst first.
    Warnings {
        /// Only this level or worse (default: yellow and red).
        #[arg(long, value_enum)]
        level: Option<crate::ops::calendar::WarnLevel>,
        /// Only cases served by this township: its name (水寨镇) or code (441424100).
        #[arg(long, value_parser = words::township)]
        township: Option<String>,
        /// Show at most this many, worst first (the totals always count every warning).
        #[arg(long, default_value_t = 200)]
        limit: u32,
        /// Show every warning, however many.
        #[arg(long, conflicts_with = "limit")]
        all: bool,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum Seal {
    TownshipApproval,
    EntrustedApproval,
    Business,
    County,
}

impl Seal {
    fn to_wire(self) -> i32 {
        (match self {
            Seal::TownshipApproval => pb::SealType::TownshipApproval,
            Seal::EntrustedApproval => pb::SealType::EntrustedApproval,
            Seal::Business => pb::SealType::Business,
            Seal::County => pb::SealType::County,
        }) as i32
    }
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum Stage {
    Handling,
    Review,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum ConcludeAs {
    Approved,
    Refused,
    Returned,
    Terminated,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum Level {
    VerySatisfied,
    Satisfied,
    BasicallySatisfied,
    Dissatisfied,
    VeryDissatisfied,
}

fn seal_name(v: i32) -> &'static str {
    match pb::SealType::try_from(v) {
        Ok(pb::SealType::TownshipApproval) => "镇人民政府审批服务专用章",
        Ok(pb::SealType::EntrustedApproval) => "行政审批委托专用章",
        Ok(pb::SealType::Business) => "业务专用章",
        Ok(pb::SealType::County) => "县级部门印章",
        _ => "-",
    }
}

struct Cases {
    conn: Connection,
    client: CasesClient<Channel>,
}

impl Cases {
    async fn detail(&mut self, case: &str) -> Result<pb::CaseDetail> {
        let key = match case.parse::<CaseRef>()? {
            CaseRef::Id(id) => get_case_request::Key::CaseId(id.to_string()),
            CaseRef::Number(number) => get_case_request::Key::CaseNumber(number.to_string()),
        };
        let request = pb::GetCaseRequest { key: Some(key) };
        let response = self.client.get(request).await.map_err(|s| self.conn.explain(s))?;
        Ok(response.into_inner())
    }

    async fn act(&mut self, detail: &pb::CaseDetail, action: act::Action) -> Result<()> {
        let Some(summary) = &detail.summary else {
            bail!("the node returned a case without its summary");
        };
        let request = pb::ActRequest {
            case_id: summary.case_id.clone(),
            action: Some(pb::CaseAction { action: Some(action) }),
        };
        let after = match self.client.act(request).await {
            Ok(after) => after.into_inner(),
            // Refused for the case's state or holder: say where it stands and what moves it.
            Err(status) if status.code() == tonic::Code::FailedPrecondition => {
                return Err(self.conn.explain_with(status, where_it_stands(summary)));
            }
            Err(status) => return Err(self.conn.explain(status)),
        };
        println!(
            "{}: {}, held by {}",
            after.case_number,
            after.state_label,
            place(&after.holder)
        );
        if !after.paper_warning.is_empty() {
            println!("warning: {}", after.paper_warning);
        }
        Ok(())
    }
}

fn summary(detail: &pb::CaseDetail) -> Result<&pb::CaseSummary> {
    match &detail.summary {
        Some(s) => Ok(s),
        None => bail!("the node returned a case without its summary"),
    }
}

/// A refused step's next step: the case's state and holder, and the commands that move it on
/// from there (the node decides which of them this operator may take).
fn where_it_stands(s: &pb::CaseSummary) -> String {
    let number = &s.case_number;
    let mut text = format!("办件 {number} 现在是 {}，持有 {}", s.state_label, place(&s.holder));
    let steps = StateKind::from_wire(s.state, "state")
        .map(next_steps)
        .unwrap_or_default();
    if steps.is_empty() {
        text.push_str("；它已不能再办理");
    } else {
        let commands: Vec<String> = steps
            .iter()
            .map(|step| format!("tongban case {step} {number}"))
            .collect();
        text.push_str(&format!("；此时可以：{}", commands.join("、")));
    }
    text.push_str(&format!("（办理过程：tongban case show {number}）"));
    text
}

/// The `tongban case` commands that move a case on from `state` (see the table in
/// `tongban_domains::case`).
fn next_steps(state: StateKind) -> &'static [&'static str] {
    use StateKind as S;
    match state {
        S::Submitted => &["forward", "receive"],
        S::Received => &["accept", "request-supplement", "refuse"],
        S::SupplementRequested => &["supplement-provided", "refuse"],
        S::Accepted => &["start", "hand-over", "conclude"],
        S::Handling => &[
            "review",
            "suspend",
            "special-procedure",
            "extend",
            "conclude --outcome returned",
        ],
        S::Review => &["decide", "send-back", "special-procedure", "extend"],
        S::Decision => &["conclude", "send-back"],
        S::SpecialProcedure => &["end-special-procedure", "withdraw"],
        S::Suspended => &["resume", "conclude --outcome terminated"],
        S::Concluded => &["hand-over", "ready"],
        S::ResultReady => &["issue"],
        S::Issued => &["deliver", "rate", "hand-over"],
        S::Delivered => &["rate", "hand-over"],
        S::NotAccepted | S::Rated => &[],
    }
}

/// The node a hand-over goes to now, from the case's holder and state.
fn hand_over_target(s: &pb::CaseSummary) -> Result<String> {
    let holder = NodeId::new(s.holder.clone())?;
    let state = StateKind::from_wire(s.state, "state").map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(match (holder.tier(), state) {
        (Tier::Township, StateKind::Accepted) => holder.county().to_string(),
        (Tier::County, _) => s.township.clone(),
        (Tier::Township, StateKind::Issued | StateKind::Delivered) => s.origin.clone(),
        _ => bail!(
            "this case ({}, held by {}) is not at a hand-over point; pass --to if you mean it",
            s.state_label,
            place(&s.holder)
        ),
    })
}

pub async fn run(conn: Connection, command: CaseCommand) -> Result<()> {
    if let CaseCommand::Warnings {
        level,
        township,
        limit,
        all,
    } = command
    {
        let limit = (!all).then_some(limit);
        return crate::ops::calendar::warnings(conn, level, township, limit).await;
    }
    let client = CasesClient::new(conn.channel().await?);
    let mut cases = Cases { conn, client };
    use CaseCommand as C;
    use act::Action as A;
    match command {
        C::Submit {
            item,
            name,
            id_number,
            phone,
            organisation,
            accept,
        } => {
            let request = pb::SubmitCaseRequest {
                item_code: item,
                applicant_kind: if organisation {
                    pb::ApplicantKind::Organisation
                } else {
                    pb::ApplicantKind::Person
                } as i32,
                applicant_name: name.clone(),
                applicant_id_number: id_number,
                applicant_phone: phone,
                accept_on_the_spot: accept,
            };
            let r = cases
                .client
                .submit(request)
                .await
                .map_err(|s| cases.conn.explain(s))?
                .into_inner();
            println!("受理回执 Receipt");
            println!("  办件编号 case number   {}", r.case_number);
            println!("  事项     item          {}（{}）", r.item_name, r.item_code);
            println!("  申请人   applicant     {name}");
            if r.immediate {
                println!("  承诺时限 promised      即办件 (immediate item)");
            } else {
                println!("  承诺时限 promised      {} 个工作日 (working days)", r.promised_days);
            }
            if !r.deadline_date.is_empty() {
                println!(
                    "  预计办结 expected by   {} (counted from acceptance; paused while papers are missing)",
                    r.deadline_date
                );
            }
            println!(
                "  受理点   submitted at  {}, {}",
                place(&r.submitted_at_node),
                china_time::minute(r.submitted_unix_ms)
            );
            println!("  办件标识 case id       {}", r.case_id);
            if r.state == pb::CaseStateKind::Accepted as i32 {
                println!("  状态     state         已受理 accepted on the spot");
            }
        }
        C::Forward { case } => {
            let d = cases.detail(&case).await?;
            cases.act(&d, A::Forward(act::Forward {})).await?;
        }
        C::Receive { case } => {
            let d = cases.detail(&case).await?;
            cases.act(&d, A::Receive(act::Receive {})).await?;
        }
        C::Accept { case } => {
            let d = cases.detail(&case).await?;
            cases.act(&d, A::Accept(act::Accept { terms: None })).await?;
        }
        C::RequestSupplement { case, materials } => {
            let d = cases.detail(&case).await?;
            cases
                .act(&d, A::RequestSupplement(act::RequestSupplement { materials }))
                .await?;
        }
        C::SupplementProvided { case } => {
            let d = cases.detail(&case).await?;
            cases.act(&d, A::SupplementProvided(act::SupplementProvided {})).await?;
        }
        C::Refuse { case, reason } => {
            let d = cases.detail(&case).await?;
            cases
                .act(&d, A::RefuseAcceptance(act::RefuseAcceptance { reason }))
                .await?;
        }
        C::HandOver { case, to } => {
            let d = cases.detail(&case).await?;
            let to = match to {
                Some(to) => to,
                None => hand_over_target(summary(&d)?)?,
            };
            cases.act(&d, A::HandOver(act::HandOver { to })).await?;
        }
        C::Start { case } => {
            let d = cases.detail(&case).await?;
            cases.act(&d, A::StartHandling(act::StartHandling {})).await?;
        }
        C::Review { case } => {
            let d = cases.detail(&case).await?;
            cases.act(&d, A::SubmitForReview(act::SubmitForReview {})).await?;
        }
        C::Decide {
            case,
            approve,
            refuse,
            reason,
            seal,
            impressions,
        } => {
            let d = cases.detail(&case).await?;
            let s = summary(&d)?;
            // An entrusted item's decision is the county's and unstamped: the township puts its
            // entrusted seal on the result when it issues it.
            let entrusted = s.delegation == pb::DelegationMode::Entrusted as i32;
            let default_seal = if entrusted { 0 } else { s.required_seal };
            let seal = seal.map(Seal::to_wire).unwrap_or(default_seal);
            let approve = approve && !refuse;
            cases
                .act(
                    &d,
                    A::Decide(act::Decide {
                        approve,
                        reason,
                        seal,
                        impressions,
                    }),
                )
                .await?;
            if seal == 0 {
                println!(
                    "decided; no seal at the decision: the township stamps the result with its entrusted seal when it issues it"
                );
            } else {
                println!("decided under the {}", seal_name(seal));
            }
        }
        C::SendBack { case, to, reason } => {
            let d = cases.detail(&case).await?;
            let stage = match to {
                Stage::Handling => WorkStage::Handling,
                Stage::Review => WorkStage::Review,
            };
            cases
                .act(
                    &d,
                    A::SendBack(act::SendBack {
                        to_stage: stage.to_wire(),
                        reason,
                    }),
                )
                .await?;
        }
        C::Suspend { case, reason } => {
            let d = cases.detail(&case).await?;
            cases.act(&d, A::Suspend(act::Suspend { reason })).await?;
        }
        C::Resume { case } => {
            let d = cases.detail(&case).await?;
            cases.act(&d, A::Resume(act::Resume {})).await?;
        }
        C::Extend {
            case,
            days,
            reason,
            approver,
        } => {
            let d = cases.detail(&case).await?;
            cases.act(&d, A::Extend(act::Extend { days, reason, approver })).await?;
            let after = cases.detail(&case).await?;
            if !after.deadline.is_empty() {
                println!("延期 {days} 个工作日；办理期限至 {}", after.deadline);
            }
        }
        C::SpecialProcedure { case, kind, reason } => {
            let d = cases.detail(&case).await?;
            cases
                .act(
                    &d,
                    A::StartSpecialProcedure(act::StartSpecialProcedure {
                        kind: kind.to_wire(),
                        reason,
                    }),
                )
                .await?;
            println!("{}：计时暂停，结束后顺延", kind.label_zh());
        }
        C::EndSpecialProcedure { case } => {
            let d = cases.detail(&case).await?;
            cases
                .act(&d, A::EndSpecialProcedure(act::EndSpecialProcedure {}))
                .await?;
            let after = cases.detail(&case).await?;
            if !after.deadline.is_empty() {
                println!("计时恢复；办理期限至 {}", after.deadline);
            }
        }
        C::Conclude { case, outcome, reason } => {
            let d = cases.detail(&case).await?;
            let outcome = match outcome {
                Some(ConcludeAs::Approved) => pb::CaseOutcome::Approved,
                Some(ConcludeAs::Refused) => pb::CaseOutcome::Refused,
                Some(ConcludeAs::Returned) => pb::CaseOutcome::Returned,
                Some(ConcludeAs::Terminated) => pb::CaseOutcome::Terminated,
                None if d.decided && !d.decision_approved => pb::CaseOutcome::Refused,
                None => pb::CaseOutcome::Approved,
            };
            // Concluding as refused repeats the decision's reason unless another is given.
            let reason = if reason.is_empty() && outcome == pb::CaseOutcome::Refused {
                d.decision_reason.clone()
            } else {
                reason
            };
            cases
                .act(
                    &d,
                    A::Conclude(act::Conclude {
                        outcome: outcome as i32,
                        reason,
                    }),
                )
                .await?;
        }
        C::Withdraw { case, reason } => {
            let d = cases.detail(&case).await?;
            cases.act(&d, A::Withdraw(act::Withdraw { reason })).await?;
        }
        C::Ready { case } => {
            let d = cases.detail(&case).await?;
            cases.act(&d, A::ResultReady(act::ResultReady {})).await?;
        }
        C::Issue {
            case,
            seal,
            impressions,
        } => {
            let d = cases.detail(&case).await?;
            let seal = seal.map(Seal::to_wire).unwrap_or(summary(&d)?.required_seal);
            cases.act(&d, A::Issue(act::Issue { seal, impressions })).await?;
            println!("issued under the {}", seal_name(seal));
        }
        C::Deliver { case, courier } => {
            let d = cases.detail(&case).await?;
            cases.act(&d, A::Deliver(act::Deliver { by_courier: courier })).await?;
        }
        C::Rate { case, level } => {
            let d = cases.detail(&case).await?;
            let level = match level {
                Level::VerySatisfied => pb::RatingLevel::VerySatisfied,
                Level::Satisfied => pb::RatingLevel::Satisfied,
                Level::BasicallySatisfied => pb::RatingLevel::BasicallySatisfied,
                Level::Dissatisfied => pb::RatingLevel::Dissatisfied,
                Level::VeryDissatisfied => pb::RatingLevel::VeryDissatisfied,
            };
            cases
                .act(
                    &d,
                    A::Rate(act::Rate {
                        level: level as i32,
                        defaulted: false,
                    }),
                )
                .await?;
        }
        C::List {
            state,
            holder,
            item,
            limit,
            all,
        } => list(&mut cases, state, holder, item, limit, all).await?,
        C::Show { case } => show(&cases.detail(&case).await?)?,
        C::Warnings { .. } => {}
    }
    Ok(())
}

async fn list(
    cases: &mut Cases,
    state: Option<StateKind>,
    holder: Option<String>,
    item: Option<String>,
    limit: u32,
    all: bool,
) -> Result<()> {
    let state = state.map_or(0, StateKind::to_wire);
    let mut token = String::new();
    let mut shown = 0usize;
    loop {
        let request = pb::ListCasesRequest {
            state,
            holder: holder.clone().unwrap_or_default(),
            item_code: item.clone().unwrap_or_default(),
            page_size: if all { 500 } else { limit },
            page_token: token.clone(),
        };
        let page = cases
            .client
            .list(request)
            .await
            .map_err(|s| cases.conn.explain(s))?
            .into_inner();
        if shown == 0 {
            if page.cases.is_empty() {
                println!("no cases");
                return Ok(());
            }
            println!(
                "{} {} {} {} {} 事项",
                cell("办件编号", 28),
                cell("提交时间", 16),
                cell("状态", 36),
                cell("持有", 24),
                cell("申请人", 10)
            );
        }
        for c in &page.cases {
            println!(
                "{} {} {} {} {} {}",
                cell(&c.case_number, 28),
                cell(&china_time::minute(c.submitted_unix_ms), 16),
                cell(&c.state_label, 36),
                cell(&place(&c.holder), 24),
                cell(&c.applicant_name, 10),
                c.item_name
            );
        }
        shown += page.cases.len();
        if page.next_page_token.is_empty() {
            break;
        }
        if !all {
            println!("… more (use --all or a filter)");
            break;
        }
        token = page.next_page_token;
    }
    Ok(())
}

fn show(detail: &pb::CaseDetail) -> Result<()> {
    let s = summary(detail)?;
    println!("办件编号   {}", s.case_number);
    println!("办件标识   {}", s.case_id);
    println!(
        "事项       {}（{} / {}）",
        s.item_name, s.item_code, s.implementation_code
    );
    if let Some(a) = &detail.applicant {
        let phone = (!a.phone.is_empty()).then(|| format!("☎ {}", a.phone));
        let parts: Vec<&str> = [Some(a.name.as_str()), Some(a.id_masked.as_str()), phone.as_deref()]
            .into_iter()
            .flatten()
            .filter(|p| !p.is_empty())
            .collect();
        println!("申请人     {}", parts.join(" "));
    }
    println!(
        "状态       {}{}",
        s.state_label,
        if s.paused { "（计时暂停）" } else { "" }
    );
    println!(
        "持有       {}（受理点 {}，窗口 {}）",
        place(&s.holder),
        place(&s.origin),
        place(&s.township)
    );
    println!(
        "时限       承诺 {} 个工作日；用印 {}{}",
        s.promised_days,
        seal_name(s.required_seal),
        if s.accepted_under > 0 {
            format!("；按事项清单第 {} 版受理", s.accepted_under)
        } else {
            String::new()
        }
    );
    if !detail.deadline.is_empty() {
        println!("办理期限   {}（按本节点的工作日历，含延期与暂停顺延）", detail.deadline);
    } else if s.paused {
        println!("办理期限   计时暂停中，恢复后顺延");
    }
    if let Some(e) = &detail.extension {
        println!(
            "延期       {} 个工作日，批准人 {}，{} 于 {} {}：{}",
            e.days,
            e.approver,
            e.by,
            place(&e.at_node),
            china_time::minute(e.at_unix_ms),
            e.reason
        );
    }
    if s.accepted_window != 0 || s.issued_window != 0 {
        let window = |n: u32| {
            if n == 0 {
                "-".to_owned()
            } else {
                format!("{n}号窗口")
            }
        };
        println!(
            "窗口       受理 {}，出件 {}",
            window(s.accepted_window),
            window(s.issued_window)
        );
    }
    if detail.decided {
        println!(
            "审批决定   {}，{} 于 {}，{}{}",
            if detail.decision_approved {
                "准予"
            } else {
                "不予批准"
            },
            detail.decision_by,
            place(&detail.decision_at_node),
            seal_name(detail.decision_seal),
            if detail.decision_reason.is_empty() {
                String::new()
            } else {
                format!("：{}", detail.decision_reason)
            }
        );
    }
    if !detail.outcome_reason.is_empty() {
        println!("理由       {}", detail.outcome_reason);
    }
    println!("办理过程");
    for h in &detail.history {
        println!(
            "  {}  {} {} {} → {}{}",
            china_time::minute(h.at_unix_ms),
            cell(&place(&h.at_node), 24),
            cell(&format!("{} {}", h.action_label, h.action_name), 28),
            cell(&who(h), 34),
            place(&h.holder),
            history_note(h)
        );
    }
    Ok(())
}

/// Who took a step: the staff member with post and window when the node keeps a roster
/// (`王芳（窗口人员，3号窗口）`), else the certificate.
fn who(h: &pb::CaseHistoryEntry) -> String {
    match h
        .acted_by
        .as_ref()
        .and_then(|s| tongban_domains::staff::wire::stamp_from_wire(s).ok())
    {
        Some(stamp) => stamp.to_string(),
        None => h.by.clone(),
    }
}

/// What a history row adds after its holder: the reason, and for an extension its days and
/// approver, for a special procedure its kind.
fn history_note(h: &pb::CaseHistoryEntry) -> String {
    let mut parts = Vec::new();
    match h.action.as_ref().and_then(|a| a.action.as_ref()) {
        Some(act::Action::Extend(e)) => {
            parts.push(format!("延期 {} 个工作日，批准人 {}", e.days, e.approver));
        }
        Some(act::Action::StartSpecialProcedure(p)) => {
            if let Ok(kind) = SpecialProcedureKind::from_wire(p.kind, "kind") {
                parts.push(kind.label_zh().to_owned());
            }
        }
        _ => {}
    }
    if !h.reason.is_empty() {
        parts.push(h.reason.clone());
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("  （{}）", parts.join("；"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn history_rows_show_an_extension_and_a_special_procedure() {
        let extension = pb::CaseHistoryEntry {
            action: Some(pb::CaseAction {
                action: Some(act::Action::Extend(act::Extend {
                    days: 10,
                    reason: "需现场核查".into(),
                    approver: "陈局长".into(),
                })),
            }),
            reason: "需现场核查".into(),
            ..Default::default()
        };
        assert_eq!(
            history_note(&extension),
            "  （延期 10 个工作日，批准人 陈局长；需现场核查）"
        );
        let special = pb::CaseHistoryEntry {
            action: Some(pb::CaseAction {
                action: Some(act::Action::StartSpecialProcedure(act::StartSpecialProcedure {
                    kind: SpecialProcedureKind::Hearing.to_wire(),
                    reason: "需听证".into(),
                })),
            }),
            reason: "需听证".into(),
            ..Default::default()
        };
        assert_eq!(history_note(&special), "  （听证；需听证）");
        assert_eq!(history_note(&pb::CaseHistoryEntry::default()), "");
    }

    #[test]
    fn a_refused_step_names_the_state_and_the_steps_that_move_it_on() {
        let summary = pb::CaseSummary {
            case_number: "441424104-20261127-0003".into(),
            state: StateKind::Handling.to_wire(),
            state_label: StateKind::Handling.to_string(),
            holder: "441424".into(),
            ..Default::default()
        };
        let text = where_it_stands(&summary);
        assert!(
            text.starts_with("办件 441424104-20261127-0003 现在是 handling (承办中)，持有 五华县 441424"),
            "{text}"
        );
        assert!(text.contains("tongban case review 441424104-20261127-0003"), "{text}");
        let rated = pb::CaseSummary {
            state: StateKind::Rated.to_wire(),
            ..summary
        };
        assert!(where_it_stands(&rated).contains("已不能再办理"));
        // Every state a case can still move from offers a step.
        for kind in StateKind::ALL {
            assert_eq!(next_steps(*kind).is_empty(), kind.is_terminal(), "{kind}");
        }
    }
}
