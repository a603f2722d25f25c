//! A stand-in node for the courier's and the clerk's desk tests: mTLS like a real one, with
//! development certificates in a temporary directory, recording each scan id once. It refuses
//! scans made by someone other than the caller, and any scan of the box `BAD`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prost::Message as _;
use tongban_courier::MAX_BATCH_SCANS;
use tongban_domains::ids::NodeId;
use tongban_domains::pki::{DevCa, PkiLayout, Principal};
use tongban_domains::tls::TlsFiles;
use tongban_proto::v1::custody_server::{Custody, CustodyServer};
use tongban_proto::v1::{self as pb, scan_outcome};
use tonic::{Request, Response, Status};

use crate::client::Connection;

/// Scan id → encoded scan, shared by stand-in nodes to play replication between them.
pub type Recorded = Arc<Mutex<HashMap<String, Vec<u8>>>>;

struct FakeNode {
    recorded: Recorded,
    batches: Arc<Mutex<Vec<usize>>>,
}

#[tonic::async_trait]
impl Custody for FakeNode {
    async fn upload_scans(
        &self,
        request: Request<pb::UploadScansRequest>,
    ) -> Result<Response<pb::UploadScansResponse>, Status> {
        let caller = tongban_domains::tls::peer_principal(&request)?.to_string();
        let scans = request.into_inner().scans;
        if scans.len() > MAX_BATCH_SCANS {
            return Err(Status::invalid_argument("too many scans"));
        }
        self.batches.lock().unwrap().push(scans.len());
        let mut recorded = self.recorded.lock().unwrap();
        let mut response = pb::UploadScansResponse::default();
        for scan in scans {
            let (result, message) = if scan.principal != caller {
                (scan_outcome::Result::Refused, "not your scan")
            } else if scan.box_id == "BAD" {
                (scan_outcome::Result::Refused, "unknown box BAD")
            } else if recorded.contains_key(&scan.scan_id) {
                (scan_outcome::Result::Duplicate, "")
            } else {
                recorded.insert(scan.scan_id.clone(), scan.encode_to_vec());
                (scan_outcome::Result::Recorded, "")
            };
            match result {
                scan_outcome::Result::Recorded => response.recorded += 1,
                scan_outcome::Result::Duplicate => response.duplicates += 1,
                _ => response.refused += 1,
            }
            response.outcomes.push(outcome(&scan.scan_id, result, message));
        }
        Ok(Response::new(response))
    }
    async fn next_document_id(
        &self,
        _: Request<pb::NextDocumentIdRequest>,
    ) -> Result<Response<pb::NextDocumentIdResponse>, Status> {
        Err(Status::unimplemented("stand-in"))
    }
    async fn where_is(&self, _: Request<pb::WhereIsRequest>) -> Result<Response<pb::WhereIsResponse>, Status> {
        Err(Status::unimplemented("stand-in"))
    }
    async fn box_history(&self, _: Request<pb::BoxHistoryRequest>) -> Result<Response<pb::BoxHistoryResponse>, Status> {
        Err(Status::unimplemented("stand-in"))
    }
    async fn list_anomalies(
        &self,
        _: Request<pb::ListAnomaliesRequest>,
    ) -> Result<Response<pb::ListAnomaliesResponse>, Status> {
        Err(Status::unimplemented("stand-in"))
    }
    async fn note_anomaly(&self, _: Request<pb::NoteAnomalyRequest>) -> Result<Response<pb::Anomaly>, Status> {
        Err(Status::unimplemented("stand-in"))
    }
    async fn export_epcis(
        &self,
        _: Request<pb::ExportEpcisRequest>,
    ) -> Result<Response<pb::ExportEpcisResponse>, Status> {
        Err(Status::unimplemented("stand-in"))
    }
}

pub struct Pki {
    layout: PkiLayout,
    ca: DevCa,
}

pub fn pki(dir: &tempfile::TempDir) -> Pki {
    tongban_domains::tls::install_crypto_provider();
    let layout = PkiLayout::new(dir.path().join("pki"));
    let ca = layout.load_or_create_ca(&NodeId::new("441424").unwrap()).unwrap();
    Pki { layout, ca }
}

impl Pki {
    pub fn connection(&self, node: &str, who: &Principal) -> Connection {
        self.layout.ensure(&self.ca, who).unwrap();
        Connection {
            node: node.to_owned(),
            ca: self.layout.ca_cert(),
            cert: self.layout.cert_path(who),
            key: self.layout.key_path(who),
        }
    }

    pub async fn start_node(&self, id: &str, recorded: Recorded) -> (String, Arc<Mutex<Vec<usize>>>) {
        let id = NodeId::new(id).unwrap();
        self.layout.ensure(&self.ca, &Principal::Node(id.clone())).unwrap();
        let tls = TlsFiles::node(&self.layout, &id).load().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let batches = Arc::new(Mutex::new(Vec::new()));
        let node = FakeNode {
            recorded,
            batches: batches.clone(),
        };
        let server = tonic::transport::Server::builder()
            .tls_config(tls.server_config())
            .unwrap()
            .add_service(CustodyServer::new(node))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
        tokio::spawn(server);
        (url, batches)
    }
}

fn outcome(scan_id: &str, result: scan_outcome::Result, message: &str) -> pb::ScanOutcome {
    pb::ScanOutcome {
        scan_id: scan_id.into(),
        result: result as i32,
        message: message.into(),
    }
}
