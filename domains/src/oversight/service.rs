//! The oversight services every node serves (`oversight.proto`): `Seals` (list and export the
//! seal register), `Ratings` (respond to and list rectification items of bad ratings) and
//! `Oversight` (case counts, times and rating metrics per township or for everything this node
//! knows).
//!
//! Who may call what: any operator of this node or above it reads (the county's operators read
//! everywhere); only an operator of this very node responds to a rectification, and the store
//! then requires this node to be the one that handled the case. Handlers contain no SQL: they
//! check the caller, convert at the boundary and call the store.

use std::sync::Arc;

use chrono::NaiveDate;
use tongban_proto::v1::{self as pb, entrustment_server, oversight_server, ratings_server, seals_server};
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

use crate::access::{caller, status};
use crate::case::CaseId;
use crate::catalogue::SealType;
use crate::ids::NodeId;
use crate::store::{OversightSummary, RatingMetrics, Rectification, SealEntry, SealFilter, Store};

/// The three oversight services of one node.
#[derive(Clone)]
pub struct OversightApi {
    pub store: Arc<Store>,
}

/// The `Seals` service as a node serves it (gzip both ways, like the other operator services).
pub fn seals_server(store: Arc<Store>) -> seals_server::SealsServer<OversightApi> {
    seals_server::SealsServer::new(OversightApi { store })
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
}

/// The `Ratings` service as a node serves it.
pub fn ratings_server(store: Arc<Store>) -> ratings_server::RatingsServer<OversightApi> {
    ratings_server::RatingsServer::new(OversightApi { store })
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
}

/// The `Entrustment` service as a node serves it.
pub fn entrustment_server(store: Arc<Store>) -> entrustment_server::EntrustmentServer<OversightApi> {
    entrustment_server::EntrustmentServer::new(OversightApi { store })
}

#[tonic::async_trait]
impl entrustment_server::Entrustment for OversightApi {
    async fn issue_letter(
        &self,
        request: Request<pb::EntrustmentLetter>,
    ) -> Result<Response<pb::EntrustmentLetter>, Status> {
        let principal = caller(&request)?;
        let letter = crate::oversight::letters::letter_from_wire(request.get_ref())
            .map_err(|(field, message)| Status::invalid_argument(format!("{field}: {message}")))?;
        let letter = self.store.issue_letter(&letter, &principal).await.map_err(status)?;
        tracing::info!(township = %letter.township, class = letter.class.as_str(), number = %letter.number, revoked = letter.revoked, "letter of entrustment issued");
        Ok(Response::new(crate::oversight::letters::letter_to_wire(&letter)))
    }

    async fn list_letters(
        &self,
        request: Request<pb::ListLettersRequest>,
    ) -> Result<Response<pb::ListLettersResponse>, Status> {
        let township = match request.get_ref().township.trim() {
            "" => None,
            t => Some(NodeId::new(t).map_err(|e| Status::invalid_argument(format!("township: {e}")))?),
        };
        let letters = self.store.letters(township.as_ref()).await.map_err(status)?;
        Ok(Response::new(pb::ListLettersResponse {
            letters: letters.iter().map(crate::oversight::letters::letter_to_wire).collect(),
        }))
    }
}

/// The `Oversight` service as a node serves it.
pub fn oversight_server(store: Arc<Store>) -> oversight_server::OversightServer<OversightApi> {
    oversight_server::OversightServer::new(OversightApi { store })
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
}

fn parse_date(field: &str, text: &str) -> Result<Option<NaiveDate>, Status> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(Some)
        .map_err(|_| Status::invalid_argument(format!("{field}: {text:?} is not a date (YYYY-MM-DD)")))
}

fn parse_township(text: &str) -> Result<Option<NodeId>, Status> {
    match text.trim() {
        "" => Ok(None),
        t => NodeId::new(t)
            .map(Some)
            .map_err(|e| Status::invalid_argument(format!("township: {e}"))),
    }
}

fn seal_filter(req: &pb::ListSealEntriesRequest) -> Result<SealFilter, Status> {
    let seal = match req.seal {
        0 => None,
        v => Some(SealType::from_wire(v, "seal").map_err(|e| Status::invalid_argument(e.to_string()))?),
    };
    let filter = SealFilter {
        seal,
        from: parse_date("from_date", &req.from_date)?,
        to: parse_date("to_date", &req.to_date)?,
        township: parse_township(&req.township)?,
    };
    if let (Some(from), Some(to)) = (filter.from, filter.to)
        && from > to
    {
        return Err(Status::invalid_argument(format!(
            "from_date {from} is after to_date {to}"
        )));
    }
    Ok(filter)
}

fn entry_to_wire(e: &SealEntry) -> pb::SealEntry {
    pb::SealEntry {
        seal: e.seal.to_wire(),
        date: e.date.to_string(),
        at_ms: e.at_ms,
        case_id: e.case_id.clone(),
        case_number: e.case_number.clone(),
        item_code: e.item_code.clone(),
        item_name: e.item_name.clone(),
        township: e.township.clone(),
        action: e.action.clone(),
        reason: e.reason.clone(),
        approver: e.approver.clone(),
        stamped_by: e.stamped_by.clone(),
        impressions: e.impressions,
        at_node: e.at_node.clone(),
    }
}

fn rectification_to_wire(r: &Rectification) -> pb::Rectification {
    pb::Rectification {
        id: r.case_id.clone(),
        case_number: r.case_number.clone(),
        item_code: r.item_code.clone(),
        township: r.township.clone(),
        handler: r.handler.clone(),
        level: r.level.to_wire(),
        opened_ms: r.opened_ms,
        deadline: r.deadline.to_string(),
        responded_ms: r.responded_ms.unwrap_or(0),
        response: r.response.clone().unwrap_or_default(),
        responder: r.responder.clone().unwrap_or_default(),
    }
}

fn metrics_to_wire(m: &RatingMetrics) -> pb::RatingMetrics {
    pb::RatingMetrics {
        concluded: m.concluded,
        rated: m.rated,
        active: m.active,
        defaulted: m.defaulted,
        good: m.good,
        bad: m.bad,
        rectifications: m.rectifications,
        rectified: m.rectified,
        rectified_on_time: m.rectified_on_time,
        coverage: m.coverage(),
        active_rate: m.active_rate(),
        good_rate: m.good_rate(),
        bad_rate: m.bad_rate(),
        rectification_rate: m.rectification_rate(),
        on_time_rate: m.on_time_rate(),
    }
}

fn summary_to_wire(s: &OversightSummary) -> pb::OversightSummary {
    pb::OversightSummary {
        scope: s.scope.clone(),
        received: s.received,
        accepted: s.accepted,
        concluded: s.concluded,
        overdue: s.overdue,
        yellow: s.yellow,
        overdue_note: s.overdue_note.clone(),
        avg_working_days_to_conclusion: s.avg_working_days_to_conclusion,
        ratings: Some(metrics_to_wire(&s.ratings)),
        rows: s
            .rows
            .iter()
            .map(|r| pb::RatingMetricsRow {
                township: r.township.clone(),
                window: r.window.clone(),
                item_code: r.item_code.clone(),
                month: r.month.clone(),
                metrics: Some(metrics_to_wire(&r.metrics)),
            })
            .collect(),
        windows: s
            .windows
            .iter()
            .map(|w| pb::WindowCounts {
                township: w.township.clone(),
                window: w.window,
                accepted: w.counts.accepted,
                issued: w.counts.issued,
            })
            .collect(),
    }
}

impl OversightApi {
    async fn entries(&self, req: &pb::ListSealEntriesRequest) -> Result<Vec<SealEntry>, Status> {
        let filter = seal_filter(req)?;
        self.store.seal_entries(&filter).await.map_err(status)
    }
}

/// The register's CSV columns, in order.
const SEAL_CSV_HEADER: [&str; 13] = [
    "seal",
    "date",
    "case_number",
    "case_id",
    "item_code",
    "item_name",
    "township",
    "action",
    "reason",
    "approver",
    "stamped_by",
    "impressions",
    "at_node",
];

/// The register as CSV for a spreadsheet: the header and one row per entry, quoted only where
/// a field needs it, each line ending in CRLF (RFC 4180).
fn seal_csv(entries: &[SealEntry]) -> Result<String, csv::Error> {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    writer.write_record(SEAL_CSV_HEADER)?;
    for e in entries {
        writer.write_record([
            e.seal.as_str(),
            &e.date.to_string(),
            &e.case_number,
            &e.case_id,
            &e.item_code,
            &e.item_name,
            &e.township,
            &e.action,
            &e.reason,
            &e.approver,
            &e.stamped_by,
            &e.impressions.to_string(),
            &e.at_node,
        ])?;
    }
    let bytes = writer.into_inner().map_err(|e| csv::Error::from(e.into_error()))?;
    // Every field written is a Rust string, so the bytes are UTF-8.
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[tonic::async_trait]
impl seals_server::Seals for OversightApi {
    async fn list_entries(
        &self,
        request: Request<pb::ListSealEntriesRequest>,
    ) -> Result<Response<pb::ListSealEntriesResponse>, Status> {
        let entries = self.entries(request.get_ref()).await?;
        Ok(Response::new(pb::ListSealEntriesResponse {
            entries: entries.iter().map(entry_to_wire).collect(),
        }))
    }

    async fn export_csv(&self, request: Request<pb::ListSealEntriesRequest>) -> Result<Response<pb::SealCsv>, Status> {
        let entries = self.entries(request.get_ref()).await?;
        Ok(Response::new(pb::SealCsv {
            csv: seal_csv(&entries).map_err(crate::access::internal)?,
            rows: u32::try_from(entries.len()).unwrap_or(u32::MAX),
        }))
    }
}

#[tonic::async_trait]
impl ratings_server::Ratings for OversightApi {
    async fn respond(&self, request: Request<pb::RespondRequest>) -> Result<Response<pb::Rectification>, Status> {
        let _here = self.store.node().clone();
        let principal = caller(&request)?;
        let req = request.into_inner();
        let id: CaseId = req
            .rectification_id
            .trim()
            .parse()
            .map_err(|e| Status::invalid_argument(format!("rectification_id: {e}")))?;
        match self
            .store
            .respond_to_rectification(&id, &req.response, &principal)
            .await
        {
            Ok(r) => Ok(Response::new(rectification_to_wire(&r))),
            Err(e) => Err(status(e)),
        }
    }

    async fn list_rectifications(
        &self,
        request: Request<pb::ListRectificationsRequest>,
    ) -> Result<Response<pb::ListRectificationsResponse>, Status> {
        let req = request.into_inner();
        let township = parse_township(&req.township)?;
        let items = self
            .store
            .rectifications(township.as_ref(), req.open_only)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ListRectificationsResponse {
            rectifications: items.iter().map(rectification_to_wire).collect(),
        }))
    }
}

#[tonic::async_trait]
impl oversight_server::Oversight for OversightApi {
    async fn summary(&self, request: Request<pb::SummaryRequest>) -> Result<Response<pb::OversightSummary>, Status> {
        let township = parse_township(&request.get_ref().township)?;
        let summary = self.store.oversight_summary(township.as_ref()).await.map_err(status)?;
        Ok(Response::new(summary_to_wire(&summary)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::catalogue::SealType;

    #[test]
    fn csv_quotes_only_what_needs_it_and_matches_the_header() {
        let entry = SealEntry {
            seal: SealType::TownshipApproval,
            date: NaiveDate::from_ymd_opt(2026, 3, 2).unwrap(),
            at_ms: 0,
            case_id: "c".into(),
            case_number: "n".into(),
            item_code: "T-ALL".into(),
            item_name: "宅基地, \"农村\"".into(),
            township: "441424100".into(),
            action: "issue".into(),
            reason: String::new(),
            approver: "operator:441424100:a".into(),
            stamped_by: "operator:441424100:b".into(),
            impressions: 2,
            at_node: "441424100".into(),
        };
        let csv = seal_csv(std::slice::from_ref(&entry)).unwrap();
        let lines: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(lines[0], SEAL_CSV_HEADER.join(","));
        assert_eq!(
            lines[1],
            "township_approval,2026-03-02,n,c,T-ALL,\"宅基地, \"\"农村\"\"\",441424100,issue,,\
             operator:441424100:a,operator:441424100:b,2,441424100"
        );
        assert_eq!(lines[2], "");
    }
}
