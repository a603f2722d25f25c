//! The `tongban.v1.Cases` service every node serves: submit a case at a village service point or
//! a township window, act on a case this node holds, and read cases this node knows; list the red
//! and yellow warnings of this node's subtree (evaluated against the node's injectable clock and
//! calendar) and, at the county, list and close supervision records (督办).
//!
//! Who may call what: an operator submits and acts only at the node their certificate names (an
//! operator of 441424100 acts at node 441424100); any operator reads at their node or below it
//! (the county's operators read everywhere). Handlers contain no SQL: they check the caller,
//! convert at the boundary ([`crate::case::wire`]) and call the store. Refusals come back as
//! precise gRPC statuses with a sentence a clerk can act on: `INVALID_ARGUMENT` (malformed
//! request, missing reason), `PERMISSION_DENIED` (wrong node or a tier that never takes this
//! action for this kind of item), `FAILED_PRECONDITION` (the case's state or holder does not
//! allow it now; the holder is named), `NOT_FOUND` (unknown case or item), `ABORTED` (another
//! operator moved the case meanwhile).

use std::sync::Arc;

use tongban_proto::v1::{self as pb, cases_server, get_case_request};
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

use crate::access::{caller, status};
use crate::case::warnings::{WarningLevel, WarningRule};
use crate::case::wire::{self, mask_id_number};
use crate::case::{
    Actor, ApplicantKind, ApplicantSummary, CaseAction, CaseId, CaseView, ItemTerms, StateKind, decide, local_date,
};
use crate::catalogue::service::visible_here;
use crate::catalogue::{Item, VariantChoice, ambiguous_code_message, choose_variant};
use crate::ids::NodeId;
use crate::store::{CaseCursor, CaseFilter, CaseRef, Store, WarningFilter};

/// Cases per page when the caller does not say; and the most it may ask for.
const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 500;
/// Warnings per page when the caller does not say, and the most it may ask for.
const DEFAULT_WARNING_PAGE: usize = 200;
const MAX_WARNING_PAGE: usize = 5_000;

/// The `Cases` service of one node.
#[derive(Clone)]
pub struct CasesApi {
    pub store: Arc<Store>,
}

/// The service as a node serves it (gzip both ways, like the other operator services).
pub fn server(store: Arc<Store>) -> cases_server::CasesServer<CasesApi> {
    cases_server::CasesServer::new(CasesApi { store })
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
}

impl CasesApi {
    /// The item named by `code` as this node holds it now, with the version it was read at, if
    /// this node may take it. Reads the head on both sides of the item so the version is exact.
    ///
    /// `code` is an implementation code (实施编码, one row) or a basic item code (基本编码). A basic
    /// code names the variants this node may take (and, for an application, that accept
    /// applications); several of them are refused as `INVALID_ARGUMENT` listing them, never
    /// taken for the first. With `application`, an item that is not applied for (行政处罚 …, see
    /// [`Item::accepts_applications`]) is refused as `FAILED_PRECONDITION`.
    async fn item_here(&self, code: &str, application: bool) -> Result<(Item, u64), Status> {
        let here = self.store.node();
        for _ in 0..3 {
            let before = self.store.catalogue_head().await.version;
            let rows = self.store.catalogue_variants(code).await.map_err(status)?;
            let after = self.store.catalogue_head().await.version;
            if before != after {
                continue;
            }
            let usable = |item: &Item| visible_here(item, here) && (!application || item.accepts_applications());
            let not_taken = |item: &Item| {
                Status::failed_precondition(format!(
                    "item {code} ({}) is in catalogue version {after} but is not taken at {here}",
                    item.name
                ))
            };
            return match choose_variant(code, &rows, usable) {
                VariantChoice::One(item) if !visible_here(item, here) => Err(not_taken(item)),
                VariantChoice::One(item) if application && !item.accepts_applications() => {
                    Err(not_an_application(item))
                }
                VariantChoice::One(item) => Ok((item.clone(), after)),
                VariantChoice::Several(variants) => {
                    Err(Status::invalid_argument(ambiguous_code_message(code, &variants)))
                }
                VariantChoice::None => match (rows.iter().find(|i| visible_here(i, here)), rows.first()) {
                    // Visible here, but none of its variants is applied for.
                    (Some(item), _) => Err(not_an_application(item)),
                    (None, Some(item)) => Err(not_taken(item)),
                    (None, None) => Err(Status::not_found(format!(
                        "no item {code} in catalogue version {after} held at {here}"
                    ))),
                },
            };
        }
        Err(Status::unavailable(
            "the catalogue is being updated at this node; try again",
        ))
    }

    async fn view(&self, key: &CaseRef) -> Result<CaseView, Status> {
        self.store
            .case(key)
            .await
            .map_err(status)?
            .ok_or_else(|| Status::not_found(format!("no case {key} is known at node {}", self.store.node())))
    }
}

/// The refusal at intake of an item the administration exercises on its own initiative
/// (依职权: 行政处罚, 行政强制, 行政检查, 行政征收): nobody applies for it, so no case is opened.
fn not_an_application(item: &Item) -> Status {
    Status::failed_precondition(format!(
        "{kind}事项不受理群众申请：{name}（实施编码 {code}）由{department}依职权实施，不能作为办件提交；\
         下一步：向群众确认要办的事项，用 tongban catalogue list --query <名称> 查找可申请的事项",
        kind = item.item_type.label_zh(),
        name = item.name,
        code = item.implementation_code,
        department = item.department,
    ))
}

fn parse_case_id(text: &str) -> Result<CaseId, Status> {
    text.trim()
        .parse()
        .map_err(|e: crate::case::CaseIdError| Status::invalid_argument(format!("case_id: {e}")))
}

#[tonic::async_trait]
impl cases_server::Cases for CasesApi {
    async fn submit(&self, request: Request<pb::SubmitCaseRequest>) -> Result<Response<pb::CaseReceipt>, Status> {
        let _here = self.store.node().clone();
        let principal = caller(&request)?;
        let req = request.into_inner();
        let code = req.item_code.trim();
        if code.is_empty() {
            return Err(Status::invalid_argument(
                "item_code: give the item's basic item code or implementation code",
            ));
        }
        if req.applicant_name.trim().is_empty() {
            return Err(Status::invalid_argument(
                "applicant_name: the applicant's name is required",
            ));
        }
        let kind = ApplicantKind::from_wire(req.applicant_kind, "applicant_kind").map_err(|e| {
            Status::invalid_argument(format!("{e}: say whether the applicant is a person or an organisation"))
        })?;
        let (item, version) = self.item_here(code, true).await?;
        let terms = ItemTerms::from_item(&item, version);
        let applicant = ApplicantSummary {
            kind,
            name: req.applicant_name.trim().to_owned(),
            id_masked: mask_id_number(&req.applicant_id_number),
            phone: Some(req.applicant_phone.trim().to_owned()).filter(|p| !p.is_empty()),
        };
        let then = if req.accept_on_the_spot {
            vec![CaseAction::Receive, CaseAction::Accept { terms: terms.clone() }]
        } else {
            Vec::new()
        };
        let view = self
            .store
            .open_case_then(terms, applicant, &principal, then)
            .await
            .map_err(status)?;
        let submitted = local_date(view.submitted_ms);
        // On the calendar in force here: the built-in one until the county publishes another.
        let in_force = self.store.calendar().await.map_err(status)?;
        let calendar = &in_force.calendar;
        let deadline = Some(&calendar)
            .filter(|c| c.covers(submitted))
            .map(|c| {
                c.add_working_days(submitted, view.terms.promised_days)
                    .format("%Y-%m-%d")
                    .to_string()
            })
            .unwrap_or_default();
        tracing::info!(case = %view.id, number = %view.number, item = %view.terms.item_code, "case submitted");
        Ok(Response::new(pb::CaseReceipt {
            case_id: view.id.to_string(),
            case_number: view.number.to_string(),
            item_code: view.terms.item_code.clone(),
            item_name: view.terms.name.clone(),
            promised_days: view.terms.promised_days,
            immediate: view.terms.immediate,
            deadline_date: deadline,
            submitted_at_node: view.origin.to_string(),
            submitted_unix_ms: view.submitted_ms as i64,
            catalogue_version: view.terms.catalogue_version,
            state: view.state.kind().to_wire(),
        }))
    }

    async fn act(&self, request: Request<pb::ActRequest>) -> Result<Response<pb::CaseSummary>, Status> {
        let here = self.store.node().clone();
        let principal = caller(&request)?;
        let req = request.into_inner();
        let id = parse_case_id(&req.case_id)?;
        let wire_action = req
            .action
            .ok_or_else(|| Status::invalid_argument("action: no action given"))?;
        let view = self.view(&CaseRef::Id(id.clone())).await?;
        let action = if matches!(wire_action.action, Some(pb::case_action::Action::Accept(_))) {
            // The accepting node pins the terms of the catalogue version it holds now.
            match self.item_here(&view.terms.implementation_code, false).await {
                Ok((item, version)) => {
                    let terms = ItemTerms::from_item(&item, version);
                    wire::action_from_wire_with(wire_action, |_| Ok(terms))
                }
                Err(status) => {
                    // Who may accept, and when, comes before whether the catalogue still offers
                    // the item here.
                    let probe = CaseAction::Accept {
                        terms: view.terms.clone(),
                    };
                    decide(&view, &probe, &Actor::new(principal, self.store.wall_ms()))
                        .map_err(crate::access::status)?;
                    return Err(status);
                }
            }
        } else {
            wire::action_from_wire(wire_action)
        }
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let kind = action.kind();
        // Paper before a decision at the county: the back office must know whether the
        // originals have arrived. It is a warning on the reply by default, and a refusal when
        // the item says its originals must travel to the county.
        let mut paper_warning = String::new();
        if matches!(action, CaseAction::Decide { .. }) && here.tier() == crate::ids::Tier::County {
            let elsewhere = self.store.originals_elsewhere(&id.to_string()).await.map_err(status)?;
            if !elsewhere.is_empty() {
                let must_travel = self
                    .store
                    .catalogue_item(&view.terms.implementation_code)
                    .await
                    .map_err(status)?
                    .is_some_and(|item| item.originals_to_county);
                let sentence = format!(
                    "the paper originals of case {} have not all arrived at {here}: {}",
                    view.number,
                    elsewhere.join("; ")
                );
                if must_travel {
                    return Err(Status::failed_precondition(format!(
                        "{sentence}. Item {} requires its originals at the county before the decision",
                        view.terms.item_code
                    )));
                }
                paper_warning = sentence;
            }
        }
        // An entrusted item's result is stamped with the township's entrusted seal, which it
        // holds only under the county's letter for the item's class.
        if matches!(action, CaseAction::Issue { .. }) {
            self.store.check_entrusted_issue(&view).await.map_err(status)?;
        }
        let view = self.store.act_on_case(&id, action, &principal).await.map_err(status)?;
        tracing::info!(case = %view.id, action = kind.as_str(), state = %view.state, holder = %view.holder, "case step");
        let mut summary = wire::summary(&view);
        summary.paper_warning = paper_warning;
        Ok(Response::new(summary))
    }

    async fn get(&self, request: Request<pb::GetCaseRequest>) -> Result<Response<pb::CaseDetail>, Status> {
        let key = match request.into_inner().key {
            Some(get_case_request::Key::CaseId(id)) => CaseRef::Id(parse_case_id(&id)?),
            Some(get_case_request::Key::CaseNumber(number)) => CaseRef::Number(
                number
                    .trim()
                    .parse()
                    .map_err(|e: crate::case::CaseIdError| Status::invalid_argument(format!("case_number: {e}")))?,
            ),
            None => return Err(Status::invalid_argument("give a case_id or a case_number")),
        };
        let view = self.view(&key).await?;
        let in_force = self.store.calendar().await.map_err(status)?;
        Ok(Response::new(wire::detail(&view, &in_force.calendar)))
    }

    async fn list(&self, request: Request<pb::ListCasesRequest>) -> Result<Response<pb::ListCasesResponse>, Status> {
        let req = request.into_inner();
        let state = match req.state {
            0 => None,
            n => Some(StateKind::from_wire(n, "state").map_err(|e| Status::invalid_argument(e.to_string()))?),
        };
        let holder = match req.holder.trim() {
            "" => None,
            h => Some(NodeId::new(h).map_err(|e| Status::invalid_argument(format!("holder: {e}")))?),
        };
        let item_code = Some(req.item_code.trim().to_owned()).filter(|c| !c.is_empty());
        let after = match req.page_token.as_str() {
            "" => None,
            token => Some(
                token
                    .parse::<CaseCursor>()
                    .map_err(|_| Status::invalid_argument("page_token is not one this node issued"))?,
            ),
        };
        let page_size = match req.page_size as usize {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        let filter = CaseFilter {
            state,
            holder,
            item_code,
        };
        let page = self
            .store
            .cases(&filter, after.as_ref(), page_size)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ListCasesResponse {
            cases: page.cases.iter().map(wire::summary).collect(),
            next_page_token: page.next.map(|c| c.to_string()).unwrap_or_default(),
        }))
    }

    async fn list_warnings(
        &self,
        request: Request<pb::ListWarningsRequest>,
    ) -> Result<Response<pb::ListWarningsResponse>, Status> {
        let req = request.into_inner();
        let min_level = match pb::WarningLevel::try_from(req.level) {
            Ok(pb::WarningLevel::Unspecified | pb::WarningLevel::Yellow) => WarningLevel::Yellow,
            Ok(pb::WarningLevel::Red) => WarningLevel::Red,
            Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "level: {} is not a warning level",
                    req.level
                )));
            }
        };
        let rule = match pb::WarningRule::try_from(req.rule) {
            Ok(pb::WarningRule::Unspecified) => None,
            Ok(r) => Some(rule_from_wire(r)),
            Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "rule: {} is not a warning rule",
                    req.rule
                )));
            }
        };
        let township = match req.township.trim() {
            "" => None,
            t => Some(NodeId::new(t).map_err(|e| Status::invalid_argument(format!("township: {e}")))?),
        };
        let filter = WarningFilter {
            min_level: Some(min_level),
            rule,
            township,
        };
        let page_size = match req.page_size as usize {
            0 => DEFAULT_WARNING_PAGE,
            n if n > MAX_WARNING_PAGE => {
                return Err(Status::invalid_argument(format!(
                    "page_size: at most {MAX_WARNING_PAGE} warnings per page, not {n}"
                )));
            }
            n => n,
        };
        let offset = match req.page_token.trim() {
            "" => 0,
            token => token.parse::<usize>().map_err(|_| {
                Status::invalid_argument(format!(
                    "page_token: {token:?} is not a token this node gave out; start again with an empty one"
                ))
            })?,
        };
        let list = self.store.warnings(&filter).await.map_err(status)?;
        let red_total = list.warnings.iter().filter(|w| w.level == WarningLevel::Red).count();
        let end = offset.saturating_add(page_size).min(list.warnings.len());
        let next_page_token = if end < list.warnings.len() {
            end.to_string()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListWarningsResponse {
            red_total: red_total as u32,
            yellow_total: (list.warnings.len() - red_total) as u32,
            next_page_token,
            warnings: list
                .warnings
                .get(offset.min(end)..end)
                .unwrap_or_default()
                .iter()
                .map(|w| pb::CaseWarning {
                    case_id: w.case_id.clone(),
                    case_number: w.case_number.clone(),
                    item_code: w.item_code.clone(),
                    item_name: w.item_name.clone(),
                    holder: w.holder.to_string(),
                    township: w.township.to_string(),
                    rule: rule_to_wire(w.rule) as i32,
                    level: level_to_wire(w.level) as i32,
                    working_days_left: w.working_days_left,
                    deadline: w.deadline.format("%Y-%m-%d").to_string(),
                })
                .collect(),
            evaluated_on: list.today.format("%Y-%m-%d").to_string(),
            calendar_version: list.calendar_version,
        }))
    }

    async fn list_supervision(
        &self,
        request: Request<pb::ListSupervisionRequest>,
    ) -> Result<Response<pb::ListSupervisionResponse>, Status> {
        let include_closed = request.into_inner().include_closed;
        let records = self.store.supervisions(include_closed).await.map_err(status)?;
        Ok(Response::new(pb::ListSupervisionResponse {
            records: records.iter().map(supervision_to_wire).collect(),
        }))
    }

    async fn close_supervision(
        &self,
        request: Request<pb::CloseSupervisionRequest>,
    ) -> Result<Response<pb::SupervisionRecord>, Status> {
        let here = self.store.node().clone();
        // Supervision is the county's: only its own operators close a record.
        let principal = caller(&request)?;
        if here.tier() != crate::ids::Tier::County {
            return Err(Status::failed_precondition(format!(
                "supervision records are kept at the county; {here} is a {}",
                here.tier()
            )));
        }
        self.store.supervisor_stamp(&principal).await.map_err(status)?;
        let req = request.into_inner();
        match self.store.close_supervision(req.id, &req.reason, &principal).await {
            Ok(record) => {
                tracing::info!(id = record.id, case = %record.case_number, "supervision closed");
                Ok(Response::new(supervision_to_wire(&record)))
            }
            Err(e) => Err(status(e)),
        }
    }
}

fn rule_from_wire(rule: pb::WarningRule) -> WarningRule {
    match rule {
        pb::WarningRule::Acceptance => WarningRule::Acceptance,
        pb::WarningRule::Issuing => WarningRule::Issuing,
        pb::WarningRule::Processing | pb::WarningRule::Unspecified => WarningRule::Processing,
    }
}

fn rule_to_wire(rule: WarningRule) -> pb::WarningRule {
    match rule {
        WarningRule::Acceptance => pb::WarningRule::Acceptance,
        WarningRule::Processing => pb::WarningRule::Processing,
        WarningRule::Issuing => pb::WarningRule::Issuing,
    }
}

fn level_to_wire(level: WarningLevel) -> pb::WarningLevel {
    match level {
        WarningLevel::None => pb::WarningLevel::Unspecified,
        WarningLevel::Yellow => pb::WarningLevel::Yellow,
        WarningLevel::Red => pb::WarningLevel::Red,
    }
}

fn supervision_to_wire(s: &crate::store::Supervision) -> pb::SupervisionRecord {
    pb::SupervisionRecord {
        id: s.id,
        case_id: s.case_id.clone(),
        case_number: s.case_number.clone(),
        item_code: s.item_code.clone(),
        holder: s.holder.clone(),
        rule: rule_to_wire(s.rule) as i32,
        deadline: s.deadline.clone(),
        opened_unix_ms: s.opened_ms,
        closed: s.closed_ms.is_some(),
        closed_unix_ms: s.closed_ms.unwrap_or_default(),
        closed_by: s.closed_by.clone().unwrap_or_default(),
        close_reason: s.close_reason.clone().unwrap_or_default(),
    }
}
