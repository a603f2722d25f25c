//! The `tongban.v1.Custody` service every node serves: scans uploaded from couriers' handhelds
//! and clerks' desks, where-is, box history, anomalies and the EPCIS 2.0 export.
//!
//! Who may call what: couriers and operators upload (a courier only their own scans); every
//! operator at this node or above it reads; only an operator of this very node explains or
//! closes an anomaly. Handlers hold no SQL and no custody rules: they check the caller, convert
//! and call the store ([`crate::store`], `store/custody.rs`).

use std::sync::Arc;

use tongban_proto::v1::{self as pb, custody_server, scan_outcome};
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

use crate::access::{caller, status};
use crate::custody::epcis;
use crate::ids::NodeId;
use crate::store::{MAX_SCANS_PER_UPLOAD, ScanResult, Store};

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
        let outcomes = self.store.record_scans(scans, &uploader).await.map_err(status)?;
        let mut reply = pb::UploadScansResponse::default();
        for (scan_id, result) in outcomes {
            let (result, message) = match result {
                ScanResult::Recorded => {
                    reply.recorded += 1;
                    (scan_outcome::Result::Recorded, String::new())
                }
                ScanResult::Conflicting(message) => {
                    reply.recorded += 1;
                    (scan_outcome::Result::Recorded, message)
                }
                ScanResult::Duplicate => {
                    reply.duplicates += 1;
                    (scan_outcome::Result::Duplicate, "already recorded".to_owned())
                }
                ScanResult::Refused(reason) => {
                    reply.refused += 1;
                    (scan_outcome::Result::Refused, reason)
                }
            };
            reply.outcomes.push(pb::ScanOutcome {
                scan_id,
                result: result as i32,
                message,
            });
        }
        tracing::info!(recorded = reply.recorded, duplicates = reply.duplicates, refused = reply.refused, by = %uploader, "scans uploaded");
        Ok(Response::new(reply))
    }

    async fn where_is(&self, request: Request<pb::WhereIsRequest>) -> Result<Response<pb::WhereIsResponse>, Status> {
        let target = request
            .into_inner()
            .target
            .ok_or_else(|| Status::invalid_argument("say what to look for: a document_id, a box_id or a case_id"))?;
        let found = self.store.where_is(&target).await.map_err(status)?;
        Ok(Response::new(pb::WhereIsResponse {
            objects: found
                .into_iter()
                .map(|w| pb::ObjectWhereabouts {
                    location: Some(w.location),
                    chain: w.chain,
                })
                .collect(),
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
        Ok(Response::new(pb::BoxHistoryResponse { scans, trips }))
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
        let state = pb::AnomalyState::try_from(req.state)
            .map_err(|_| Status::invalid_argument(format!("state: {} is not an anomaly state", req.state)))?;
        let kind = req.kind.trim();
        let anomalies = self
            .store
            .anomalies(township.as_ref())
            .await
            .map_err(status)?
            .into_iter()
            .filter(|a| match state {
                pb::AnomalyState::Unspecified => a.state != pb::AnomalyState::Closed as i32,
                s => a.state == s as i32,
            })
            .filter(|a| kind.is_empty() || a.kind == kind)
            .collect();
        Ok(Response::new(pb::ListAnomaliesResponse { anomalies }))
    }

    async fn note_anomaly(&self, request: Request<pb::NoteAnomalyRequest>) -> Result<Response<pb::Anomaly>, Status> {
        let _here = self.store.node().clone();
        let principal = caller(&request)?;
        let req = request.into_inner();
        let to = pb::AnomalyState::try_from(req.to_state)
            .map_err(|_| Status::invalid_argument(format!("to_state: {} is not an anomaly state", req.to_state)))?;
        let anomaly = self
            .store
            .note_anomaly(req.anomaly_key.trim(), to, &req.text, &principal)
            .await
            .map_err(status)?;
        Ok(Response::new(anomaly))
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
