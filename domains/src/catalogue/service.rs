//! The operator-facing gRPC services: `tongban.v1.Node` (status, lag, alarms) and
//! `tongban.v1.Catalogue` (list, show and versions), which every node serves, and
//! `tongban.v1.CataloguePublishing` (import), which only the county mounts. Who may call them
//! is the access table's; handlers contain no SQL — they call the store.

use std::sync::Arc;

use tongban_proto::v1::{self as pb, catalogue_publishing_server, catalogue_server, node_server};
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

use crate::access::{caller, status};
use crate::catalogue::import;
use crate::catalogue::model::{Item, VariantChoice, ambiguous_code_message, choose_variant};
use crate::ids::{NodeId, Tier};
use crate::store::{LinkRole, Store};
use crate::sync::LinkRegistry;

/// Largest catalogue file accepted by `Import`.
pub const MAX_IMPORT_BYTES: usize = import::MAX_IMPORT_BYTES;

/// Items per page when the caller does not say; and the most it may ask for.
const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 500;
/// Longest `ListItems` query, in characters: the longest implementation codes are about 60
/// characters and item names about 40, so a longer query can match nothing and only costs a scan.
pub const MAX_QUERY_CHARS: usize = 100;

/// Shared state of the operator services.
#[derive(Clone)]
pub struct OperatorApi {
    pub store: Arc<Store>,
    pub links: Arc<LinkRegistry>,
}

#[tonic::async_trait]
impl node_server::Node for OperatorApi {
    async fn status(&self, _request: Request<pb::StatusRequest>) -> Result<Response<pb::NodeStatus>, Status> {
        let node = self.store.node();
        let head = self.store.catalogue_head().await;
        let now = self.store.now_ms();
        let mut links = Vec::new();
        for cursor in self.store.links().await.map_err(status)? {
            let totals = self.store.link_totals(&cursor).await.map_err(status)?;
            links.push(pb::LinkStatus {
                connected: self.links.is_connected(&cursor.peer),
                peer_id: cursor.peer,
                role: match cursor.role {
                    LinkRole::Parent => pb::LinkRole::Parent as i32,
                    LinkRole::Child => pb::LinkRole::Child as i32,
                },
                events_behind: totals.events_behind,
                oldest_unacked_age_ms: totals.oldest_unacked_ms.map(|t| (now - t).max(0) as u64).unwrap_or(0),
                last_sync_unix_ms: cursor.last_sync_ms,
                applied_from_peer: cursor.applied_from_peer,
                acked_by_peer: cursor.acked_by_peer,
                last_checksum_unix_ms: cursor.last_checksum_ms,
                last_checksum_ok: cursor.last_checksum_ok,
                repairs: cursor.repairs,
            });
        }
        Ok(Response::new(pb::NodeStatus {
            node_id: node.to_string(),
            tier: match node.tier() {
                Tier::County => pb::Tier::County,
                Tier::Township => pb::Tier::Township,
                Tier::Village => pb::Tier::Village,
            } as i32,
            parent_id: node.parent().map(|p| p.to_string()).unwrap_or_default(),
            software_version: env!("CARGO_PKG_VERSION").to_owned(),
            catalogue_version: head.version,
            catalogue_hash: hex::encode(head.hash),
            events_stored: self.store.event_count().await.map_err(status)?,
            local_seq: self.store.last_local_seq(),
            links,
            open_alarms: self.store.alarm_count().await.map_err(status)?,
            storage: self.store.backend().as_str().to_owned(),
        }))
    }

    async fn list_alarms(
        &self,
        request: Request<pb::ListAlarmsRequest>,
    ) -> Result<Response<pb::ListAlarmsResponse>, Status> {
        let limit = match request.get_ref().limit {
            0 => 100,
            n => n,
        };
        let alarms = self.store.alarms(limit).await.map_err(status)?;
        Ok(Response::new(pb::ListAlarmsResponse { alarms }))
    }
}

/// Which items a node shows: the county everything, a township what it may handle, a village
/// what its service point may take plus village-level public services.
pub fn visible_here(item: &Item, here: &NodeId) -> bool {
    match here.tier() {
        Tier::County => true,
        Tier::Township => item.available_to_township(here.as_str()),
        Tier::Village => here
            .parent()
            .is_some_and(|township| item.visible_to_village(township.as_str())),
    }
}

/// True when `query` (trimmed; empty matches everything) is a substring of the item's name, its
/// basic item code or its implementation code: how a clerk finds the variant they mean.
pub fn matches_query(item: &Item, query: &str) -> bool {
    let query = query.trim();
    query.is_empty()
        || item.name.contains(query)
        || item.item_code.contains(query)
        || item.implementation_code.contains(query)
}

fn matches_filter(item: &Item, req: &pb::ListItemsRequest) -> Result<bool, Status> {
    let matches_query = matches_query(item, &req.query);
    if !matches_query {
        return Ok(false);
    }
    if !req.domain.is_empty() && item.domain != req.domain {
        return Ok(false);
    }
    let proto = pb::CatalogueItem::from(item);
    if req.delegation != 0 && proto.delegation != req.delegation {
        return Ok(false);
    }
    if req.category != 0 && proto.category != req.category {
        return Ok(false);
    }
    if !req.township.is_empty() {
        let township = NodeId::new(req.township.clone())
            .ok()
            .filter(|t| t.tier() == Tier::Township)
            .ok_or_else(|| Status::invalid_argument(format!("township {:?} is not a 9-digit code", req.township)))?;
        if !item.available_to_township(township.as_str()) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The catalogue's publishing service, as the county mounts it.
pub fn publishing_server(api: OperatorApi) -> catalogue_publishing_server::CataloguePublishingServer<OperatorApi> {
    catalogue_publishing_server::CataloguePublishingServer::new(api)
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(MAX_IMPORT_BYTES + 1024 * 1024)
}

#[tonic::async_trait]
impl catalogue_publishing_server::CataloguePublishing for OperatorApi {
    async fn import(
        &self,
        request: Request<pb::ImportCatalogueRequest>,
    ) -> Result<Response<pb::ImportCatalogueResponse>, Status> {
        let principal = caller(&request)?;
        let req = request.into_inner();
        if req.content.len() > MAX_IMPORT_BYTES {
            return Err(Status::invalid_argument(format!(
                "catalogue file is {} bytes, over the {MAX_IMPORT_BYTES}-byte limit",
                req.content.len()
            )));
        }
        let parsed = match pb::ImportFormat::try_from(req.format) {
            Ok(pb::ImportFormat::Csv) => import::parse_csv(&req.content),
            Ok(pb::ImportFormat::Json) => import::parse_json(&req.content),
            _ => return Err(Status::invalid_argument("format must be CSV or JSON")),
        };
        let items = parsed
            .map_err(|errors| Status::invalid_argument(format!("catalogue rejected, nothing published: {errors}")))?;
        let outcome = self
            .store
            .publish_catalogue(items, &principal.to_string(), &req.source, &req.note)
            .await
            .map_err(status)?;
        tracing::info!(
            version = outcome.version,
            published = outcome.published,
            items = outcome.item_count,
            "catalogue import"
        );
        Ok(Response::new(pb::ImportCatalogueResponse {
            version: outcome.version,
            published: outcome.published,
            content_hash: hex::encode(outcome.content_hash),
            item_count: outcome.item_count,
            upserts: outcome.upserts,
            removals: outcome.removals,
        }))
    }
}

#[tonic::async_trait]
impl catalogue_server::Catalogue for OperatorApi {
    async fn list_items(
        &self,
        request: Request<pb::ListItemsRequest>,
    ) -> Result<Response<pb::ListItemsResponse>, Status> {
        let req = request.into_inner();
        let query_chars = req.query.trim().chars().count();
        if query_chars > MAX_QUERY_CHARS {
            return Err(Status::invalid_argument(format!(
                "查询词有 {query_chars} 个字符，超过上限 {MAX_QUERY_CHARS}；\
                 下一步：用事项名称的一部分、基本编码或实施编码查询"
            )));
        }
        let offset: usize = if req.page_token.is_empty() {
            0
        } else {
            req.page_token
                .parse()
                .map_err(|_| Status::invalid_argument("page_token is not one this node issued"))?
        };
        let page_size = match req.page_size as usize {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        let here = self.store.node();
        let head = self.store.catalogue_head().await;
        let mut selected = Vec::new();
        for item in self.store.catalogue_items().await.map_err(status)? {
            if visible_here(&item, here) && matches_filter(&item, &req)? {
                selected.push(item);
            }
        }
        let total = selected.len();
        let items: Vec<pb::CatalogueItem> = selected
            .iter()
            .skip(offset)
            .take(page_size)
            .map(pb::CatalogueItem::from)
            .collect();
        let next = offset + items.len();
        Ok(Response::new(pb::ListItemsResponse {
            version: head.version,
            items,
            total: total as u32,
            next_page_token: if next < total { next.to_string() } else { String::new() },
        }))
    }

    async fn get_item(&self, request: Request<pb::GetItemRequest>) -> Result<Response<pb::GetItemResponse>, Status> {
        let code = request.into_inner().code;
        if code.trim().is_empty() {
            return Err(Status::invalid_argument("give an item code or implementation code"));
        }
        let code = code.trim();
        let here = self.store.node();
        let head = self.store.catalogue_head().await;
        let rows = self.store.catalogue_variants(code).await.map_err(status)?;
        match choose_variant(code, &rows, |item| visible_here(item, here)) {
            VariantChoice::One(item) if visible_here(item, here) => Ok(Response::new(pb::GetItemResponse {
                version: head.version,
                item: Some(pb::CatalogueItem::from(item)),
            })),
            VariantChoice::Several(variants) => Err(Status::invalid_argument(ambiguous_code_message(code, &variants))),
            VariantChoice::One(_) => Err(Status::not_found(format!(
                "item {code} exists in catalogue version {} but is not handled at {here}",
                head.version
            ))),
            VariantChoice::None if !rows.is_empty() => Err(Status::not_found(format!(
                "item {code} exists in catalogue version {} but is not handled at {here}",
                head.version
            ))),
            VariantChoice::None => Err(Status::not_found(format!(
                "no item {code} in catalogue version {} held at {here}",
                head.version
            ))),
        }
    }

    async fn list_versions(
        &self,
        _request: Request<pb::ListVersionsRequest>,
    ) -> Result<Response<pb::ListVersionsResponse>, Status> {
        let versions = self
            .store
            .catalogue_versions()
            .await
            .map_err(status)?
            .into_iter()
            .map(|v| pb::VersionInfo {
                version: v.version,
                content_hash: hex::encode(&v.content_hash),
                item_count: v.item_count as u32,
                upserts: v.upserts as u32,
                removals: v.removals as u32,
                note: v.note,
                source: v.source,
                published_unix_ms: v.published_ms,
                published_by: v.published_by,
            })
            .collect();
        Ok(Response::new(pb::ListVersionsResponse { versions }))
    }
}
