//! The `tongban.v1.Custody` service every node serves: scans uploaded from couriers' handhelds
//! and clerks' desks, where-is, box history, anomalies and the EPCIS 2.0 export.
//!
//! Who may call what: couriers and operators upload (a courier only their own scans); every
//! operator at this node or above it reads; only an operator of this very node asks for the id
//! of a case's next paper file (`NextDocumentId`), explains or closes an anomaly. Handlers hold no SQL and no custody rules: they check the caller, convert
//! at the edge ([`crate::custody::wire`]) and call the store ([`super::projection`]).

use std::sync::Arc;

use tongban_proto::v1::{self as pb, custody_server};
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

use crate::access::{caller, status};
use crate::custody::model::{AnomalyKind, AnomalyState, Scan};
use crate::custody::{epcis, wire};
use crate::ids::NodeId;
use crate::store::{CaseRef, MAX_SCANS_PER_UPLOAD, ScanResult, Store};

/// The `Custody` service of one node.
#[derive(Clone)]
pub struct CustodyApi {
    pub store: Arc<Store>,
}

/// The service as a node serves it (gzip both ways: uploads and chains compress well).
pub fn server(store: Arc<Store>) -> custody_server::CustodyServer<CustodyApi> {
    custody_server::CustodyServer::new(CustodyApi { store })
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(16 << 20)
        .max_encoding_message_size(64 << 20)
}

#[tonic::async_trait]
impl custody_server::Custody for CustodyApi {
    async fn upload_scans(
        &self,
        request: Request<pb::UploadScansRequest>,
    ) -> Result<Response<pb::UploadScansResponse>, Status> {
        let _here = self.store.node().clone();
        let uploader = caller(&request)?;
        let scans = request.into_inner().scans;
        if scans.len() > MAX_SCANS_PER_UPLOAD {
            return Err(Status::invalid_argument(format!(
                "{} scans in one upload; send at most {MAX_SCANS_PER_UPLOAD} at a time",
                scans.len()
            )));
        }
        // A scan the domain cannot represent (an unknown step, say) is refused on its own, like
        // any malformed scan; the others are recorded. Outcomes keep the upload's order.
        let mut valid: Vec<Scan> = Vec::with_capacity(scans.len());
        let mut undecodable: Vec<(usize, String, String)> = Vec::new();
        for (position, scan) in scans.into_iter().enumerate() {
            let scan_id = scan.scan_id.clone();
            match Scan::try_from(scan) {
                Ok(scan) => valid.push(scan),
                Err(e) => undecodable.push((position, scan_id, e.to_string())),
            }
        }
        let mut outcomes = self.store.record_scans(valid, &uploader).await.map_err(status)?;
        // Ascending positions: each insertion lands where that scan stood in the upload.
        for (position, scan_id, reason) in undecodable {
            outcomes.insert(position, (scan_id, ScanResult::Refused(reason)));
        }
        let reply = wire::upload_reply(outcomes);
        tracing::info!(recorded = reply.recorded, duplicates = reply.duplicates, refused = reply.refused, by = %uploader, "scans uploaded");
        Ok(Response::new(reply))
    }

    async fn next_document_id(
        &self,
        request: Request<pb::NextDocumentIdRequest>,
    ) -> Result<Response<pb::NextDocumentIdResponse>, Status> {
        let text = request.into_inner().case;
        let case: CaseRef = text.trim().parse().map_err(|e: crate::store::BadCaseRef| {
            Status::invalid_argument(format!("case: {e}；下一步：给出办件编号或办件 id"))
        })?;
        let assigned = self.store.next_document_id(&case).await.map_err(status)?;
        Ok(Response::new(pb::NextDocumentIdResponse {
            document_id: assigned.document_id,
            case_id: assigned.case_id,
            case_number: assigned.case_number,
        }))
    }

    async fn where_is(&self, request: Request<pb::WhereIsRequest>) -> Result<Response<pb::WhereIsResponse>, Status> {
        let target = wire::where_target_from_wire(request.into_inner().target)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let found = self.store.where_is(&target).await.map_err(status)?;
        Ok(Response::new(pb::WhereIsResponse {
            objects: found.iter().map(pb::ObjectWhereabouts::from).collect(),
        }))
    }

    async fn box_history(
        &self,
        request: Request<pb::BoxHistoryRequest>,
    ) -> Result<Response<pb::BoxHistoryResponse>, Status> {
        let req = request.into_inner();
        if req.box_id.trim().is_empty() {
            return Err(Status::invalid_argument("box_id is required"));
        }
        let trip = Some(req.trip_id.trim()).filter(|t| !t.is_empty());
        let (scans, trips) = self.store.box_history(req.box_id.trim(), trip).await.map_err(status)?;
        Ok(Response::new(pb::BoxHistoryResponse {
            scans: scans.iter().map(pb::CustodyLink::from).collect(),
            trips: trips.iter().map(wire::trip_summary).collect(),
        }))
    }

    async fn list_anomalies(
        &self,
        request: Request<pb::ListAnomaliesRequest>,
    ) -> Result<Response<pb::ListAnomaliesResponse>, Status> {
        let req = request.into_inner();
        let township = match req.township.trim() {
            "" => None,
            t => Some(NodeId::new(t).map_err(|e| Status::invalid_argument(format!("township: {e}")))?),
        };
        let state = AnomalyState::from_wire(req.state, "state").map_err(|e| Status::invalid_argument(e.to_string()))?;
        // Any kind when empty; a name no kind has matches nothing.
        let kind = match req.kind.trim() {
            "" => None,
            name => Some(name.parse::<AnomalyKind>().ok()),
        };
        let anomalies = self
            .store
            .anomalies(township.as_ref())
            .await
            .map_err(status)?
            .iter()
            .filter(|a| match state {
                None => a.state != AnomalyState::Closed,
                Some(s) => a.state == s,
            })
            .filter(|a| kind.is_none_or(|wanted| wanted == Some(a.kind)))
            .map(pb::Anomaly::from)
            .collect();
        Ok(Response::new(pb::ListAnomaliesResponse { anomalies }))
    }

    async fn note_anomaly(&self, request: Request<pb::NoteAnomalyRequest>) -> Result<Response<pb::Anomaly>, Status> {
        let _here = self.store.node().clone();
        let principal = caller(&request)?;
        let req = request.into_inner();
        let to = AnomalyState::from_wire(req.to_state, "to_state")
            .map_err(|e| Status::invalid_argument(e.to_string()))?
            // Unspecified moves nowhere: the store refuses it, with the sentence it gives OPEN.
            .unwrap_or(AnomalyState::Open);
        let anomaly = self
            .store
            .note_anomaly(req.anomaly_key.trim(), to, &req.text, &principal)
            .await
            .map_err(status)?;
        Ok(Response::new((&anomaly).into()))
    }

    async fn export_epcis(
        &self,
        request: Request<pb::ExportEpcisRequest>,
    ) -> Result<Response<pb::ExportEpcisResponse>, Status> {
        let req = request.into_inner();
        let box_id = Some(req.box_id.trim()).filter(|b| !b.is_empty());
        let case_id = Some(req.case_id.trim()).filter(|c| !c.is_empty());
        let rows = self.store.scans_for_export(box_id, case_id).await.map_err(status)?;
        let exported: Vec<epcis::ExportedScan> = rows
            .iter()
            .map(|(scan, recorded_at, recorded_ms, retracted)| epcis::ExportedScan {
                scan,
                recorded_at,
                recorded_unix_ms: *recorded_ms,
                retracted: *retracted,
            })
            .collect();
        let county = self.store.node().county();
        let document = epcis::query_document(&exported, self.store.now_ms(), county.as_str());
        let json_ld = serde_json::to_string_pretty(&document).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(pb::ExportEpcisResponse {
            json_ld,
            // Error declarations ride on the events they correct; they are not events of their own.
            event_count: epcis::event_count(&document) as u32,
        }))
    }
}
