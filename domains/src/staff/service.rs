//! The `tongban.v1.Staff` service every node serves: put a member or a window of this node's
//! roster, and list the staff and windows of this node or a node below it, paged.
//!
//! Who may change a roster is the roster's own rule ([`Store::put_member`]); the access table
//! only lets operators of this node and of the nodes above it through.

use std::sync::Arc;

use tongban_proto::v1::{self as pb, staff_server};
use tonic::{Request, Response, Status};

use crate::access::{caller, status};
use crate::ids::NodeId;
use crate::staff::projection::RosterCursor;
use crate::staff::wire::{member_from_wire, member_to_wire, window_from_wire, window_to_wire};
use crate::store::Store;

/// Members or windows per page when the caller does not say; and the most it may ask for.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 500;

/// The `Staff` service of one node.
#[derive(Clone)]
pub struct StaffApi {
    pub store: Arc<Store>,
}

pub fn server(store: Arc<Store>) -> staff_server::StaffServer<StaffApi> {
    staff_server::StaffServer::new(StaffApi { store })
}

impl StaffApi {
    /// The node a list asks about: this one when empty, else one at or below it.
    fn listed_node(&self, text: &str) -> Result<NodeId, Status> {
        let here = self.store.node();
        let node = match text.trim() {
            "" => return Ok(here.clone()),
            t => NodeId::new(t).map_err(|e| Status::invalid_argument(format!("node: {e}")))?,
        };
        if !here.contains(node.as_str()) {
            return Err(Status::invalid_argument(format!(
                "node: {} is not {} or below it; ask that node's own centre or the county",
                node,
                crate::places::label(here.as_str())
            )));
        }
        Ok(node)
    }
}

fn page_size(asked: u32) -> usize {
    match asked as usize {
        0 => DEFAULT_PAGE,
        n => n.min(MAX_PAGE),
    }
}

fn cursor(token: &str) -> Option<RosterCursor> {
    Some(token.trim())
        .filter(|t| !t.is_empty())
        .map(|t| RosterCursor(t.to_owned()))
}

#[tonic::async_trait]
impl staff_server::Staff for StaffApi {
    async fn put_member(&self, request: Request<pb::PutMemberRequest>) -> Result<Response<pb::StaffMember>, Status> {
        let principal = caller(&request)?;
        let wire = request
            .into_inner()
            .member
            .ok_or_else(|| Status::invalid_argument("member: no member given"))?;
        let member = member_from_wire(&wire).map_err(status)?;
        let member = self.store.put_member(&member, &principal).await.map_err(status)?;
        tracing::info!(staff_no = %member.staff_no, active = member.active, "staff member put");
        Ok(Response::new(member_to_wire(&member)))
    }

    async fn put_window(&self, request: Request<pb::PutWindowRequest>) -> Result<Response<pb::ServiceWindow>, Status> {
        let principal = caller(&request)?;
        let wire = request
            .into_inner()
            .window
            .ok_or_else(|| Status::invalid_argument("window: no window given"))?;
        let window = window_from_wire(&wire).map_err(status)?;
        let window = self.store.put_window(&window, &principal).await.map_err(status)?;
        tracing::info!(window = window.number, open = window.open, "window put");
        Ok(Response::new(window_to_wire(&window)))
    }

    async fn list_staff(
        &self,
        request: Request<pb::ListStaffRequest>,
    ) -> Result<Response<pb::ListStaffResponse>, Status> {
        let req = request.into_inner();
        let node = self.listed_node(&req.node)?;
        let after = cursor(&req.page_token);
        let (members, next) = self
            .store
            .roster(&node, req.include_inactive, after.as_ref(), page_size(req.page_size))
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ListStaffResponse {
            members: members
                .iter()
                .map(|m| pb::RosterMember {
                    node: node.to_string(),
                    member: Some(member_to_wire(m)),
                })
                .collect(),
            next_page_token: next.map(|c| c.0).unwrap_or_default(),
        }))
    }

    async fn list_windows(
        &self,
        request: Request<pb::ListWindowsRequest>,
    ) -> Result<Response<pb::ListWindowsResponse>, Status> {
        let req = request.into_inner();
        let node = self.listed_node(&req.node)?;
        let after = match cursor(&req.page_token) {
            Some(c) if c.0.parse::<u32>().is_err() => {
                return Err(Status::invalid_argument(
                    "page_token is not one this node gave out; start again with an empty one",
                ));
            }
            c => c,
        };
        let (windows, next) = self
            .store
            .windows(&node, after.as_ref(), page_size(req.page_size))
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ListWindowsResponse {
            windows: windows.iter().map(window_to_wire).collect(),
            next_page_token: next.map(|c| c.0).unwrap_or_default(),
        }))
    }
}
