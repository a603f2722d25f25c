//! The catalogue projection: versions applied strictly in order, each verified against the
//! content hash the county published, and the county-side publishing of a new version.

use std::collections::BTreeMap;

use prost::Message;
use tongban_proto::v1::{self as pb, EventKind, RouteClass, event_body::Body};

use crate::catalogue::model::{Item, catalogue_hash};
use crate::event::NewEvent;
use crate::event::{CheckedEvent, EventError};
use crate::hlc::physical_ms;
use crate::ids::Tier;
use crate::store::{
    Backend, DomainStates, FoldContext, FoldOutcome, Pool, Projection, ProjectionFuture, Store, StoreError, WriteTx,
};
use crate::{with_pool, with_tx};

/// The version a node holds and the hash of its whole catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogueHead {
    pub version: u64,
    pub hash: [u8; 32],
    pub item_count: u64,
}

/// What an import did at the county.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishOutcome {
    pub version: u64,
    pub published: bool,
    pub content_hash: [u8; 32],
    pub item_count: u32,
    pub upserts: u32,
    pub removals: u32,
}

pub(crate) async fn load_head(pool: &Pool) -> Result<CatalogueHead, StoreError> {
    let row: Option<(i64, Vec<u8>, i64)> = with_pool!(pool, conn => {
        sqlx::query_as("SELECT version, content_hash, item_count FROM catalogue_versions ORDER BY version DESC LIMIT 1")
            .fetch_optional(conn)
            .await
    })?;
    match row {
        Some((version, hash, item_count)) => Ok(CatalogueHead {
            version: version as u64,
            hash: hash
                .try_into()
                .map_err(|_| StoreError::Corrupt("catalogue hash is not 32 bytes".into()))?,
            item_count: item_count as u64,
        }),
        None => Ok(CatalogueHead::default()),
    }
}

/// Before the first version: no items, and the hash of the empty catalogue.
impl Default for CatalogueHead {
    fn default() -> Self {
        CatalogueHead {
            version: 0,
            hash: catalogue_hash(std::iter::empty()),
            item_count: 0,
        }
    }
}

/// The catalogue's projection: versions from the county, applied in order into
/// `catalogue_items` and `catalogue_versions`; its writer state is the [`CatalogueHead`].
pub struct CatalogueProjection;

impl Projection for CatalogueProjection {
    fn name(&self) -> &'static str {
        "catalogue"
    }

    fn kinds(&self) -> &'static [EventKind] {
        &[EventKind::CatalogueVersion]
    }

    fn check_authorship(&self, event: &CheckedEvent) -> Result<(), EventError> {
        crate::event::check_county_broadcast(event, "catalogue versions")
    }

    fn migrations(&self, backend: Backend) -> Option<sqlx::migrate::Migrator> {
        Some(match backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/catalogue/sqlite"),
            Backend::Postgres => sqlx::migrate!("./migrations/catalogue/postgres"),
        })
    }

    fn load<'a>(&'a self, pool: &'a Pool, states: &'a mut DomainStates) -> ProjectionFuture<'a, ()> {
        Box::pin(async move {
            states.put(load_head(pool).await?);
            Ok(())
        })
    }

    fn fold<'a>(&'a self, cx: &'a mut FoldContext<'_>, event: &'a CheckedEvent) -> ProjectionFuture<'a, FoldOutcome> {
        Box::pin(async move {
            let Body::CatalogueVersion(version) = &event.body else {
                return Ok(FoldOutcome::refused("not a catalogue version"));
            };
            let head = cx.states.get_mut::<CatalogueHead>();
            Ok(FoldOutcome::from(
                fold_version(cx.tx, head, version, &event.event).await?,
            ))
        })
    }
}

/// Every item's hash, keyed by implementation code, from rows read inside a fold's transaction
/// or straight from the pool.
fn hashes_by_code(rows: Vec<(String, Vec<u8>)>) -> Result<BTreeMap<String, [u8; 32]>, StoreError> {
    let mut map = BTreeMap::new();
    for (key, hash) in rows {
        let hash: [u8; 32] = hash
            .try_into()
            .map_err(|_| StoreError::Corrupt(format!("item {key} has a malformed hash")))?;
        map.insert(key, hash);
    }
    Ok(map)
}

const ITEM_HASHES: &str = "SELECT implementation_code, item_hash FROM catalogue_items";

/// Applies one catalogue version. Refuses (with a reason) a gap, a fork, an item that does not
/// validate, or a result whose hash differs from the published one; writes nothing then.
pub(crate) async fn fold_version(
    tx: &mut WriteTx,
    head: &mut CatalogueHead,
    version: &pb::CatalogueVersion,
    event: &pb::Event,
) -> Result<Result<(), String>, StoreError> {
    if version.version != head.version + 1 {
        let what = if version.version <= head.version { "fork" } else { "gap" };
        return Ok(Err(format!(
            "catalogue {what}: this node holds version {}, the event carries version {}",
            head.version, version.version
        )));
    }
    if head.version > 0 && version.previous_hash.as_slice() != head.hash {
        return Ok(Err(format!(
            "catalogue fork: version {} does not follow the version {} held here",
            version.version, head.version
        )));
    }
    let mut hashes = hashes_by_code(with_tx!(&mut *tx, conn => sqlx::query_as(ITEM_HASHES).fetch_all(conn).await)?)?;
    let mut upserts = Vec::with_capacity(version.upserts.len());
    for proto in &version.upserts {
        let item = match Item::try_from(proto.clone()) {
            Ok(item) => item,
            Err(e) => return Ok(Err(format!("catalogue item {}: {e}", proto.implementation_code))),
        };
        if let Some(problem) = item.validate().first() {
            return Ok(Err(format!("catalogue item {}: {problem}", proto.implementation_code)));
        }
        hashes.insert(item.key().to_owned(), item.content_hash());
        upserts.push(item);
    }
    for key in &version.removals {
        if hashes.remove(key).is_none() {
            return Ok(Err(format!("catalogue version removes unknown item {key}")));
        }
    }
    let computed = catalogue_hash(hashes.iter().map(|(k, h)| (k.as_str(), *h)));
    if computed.as_slice() != version.content_hash.as_slice() || hashes.len() as u32 != version.item_count {
        return Ok(Err(format!(
            "catalogue version {} does not produce the published content hash",
            version.version
        )));
    }

    for key in &version.removals {
        with_tx!(&mut *tx, conn => {
            sqlx::query("DELETE FROM catalogue_items WHERE implementation_code = $1")
                .bind(key.as_str())
                .execute(conn)
                .await
                .map(|_| ())
        })?;
    }
    for item in &upserts {
        let proto = pb::CatalogueItem::from(item);
        let (hash, body) = (item.content_hash(), proto.encode_to_vec());
        with_tx!(&mut *tx, conn => sqlx::query(
            "INSERT INTO catalogue_items (implementation_code, item_code, name, domain, category, delegation, \
             item_hash, body, since_version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (implementation_code) DO UPDATE SET item_code = excluded.item_code, name = excluded.name, \
             domain = excluded.domain, category = excluded.category, delegation = excluded.delegation, \
             item_hash = excluded.item_hash, body = excluded.body, since_version = excluded.since_version",
        )
        .bind(proto.implementation_code.as_str())
        .bind(proto.item_code.as_str())
        .bind(proto.name.as_str())
        .bind(proto.domain.as_str())
        .bind(i64::from(proto.category))
        .bind(i64::from(proto.delegation))
        .bind(hash.as_slice())
        .bind(body.as_slice())
        .bind(version.version as i64)
        .execute(conn)
        .await
        .map(|_| ()))?;
    }
    with_tx!(tx, conn => sqlx::query(
        "INSERT INTO catalogue_versions (version, content_hash, item_count, upserts, removals, note, source, \
         published_ms, published_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(version.version as i64)
    .bind(computed.as_slice())
    .bind(i64::from(version.item_count))
    .bind(version.upserts.len() as i64)
    .bind(version.removals.len() as i64)
    .bind(version.note.as_str())
    .bind(version.source.as_str())
    .bind(physical_ms(event.hlc) as i64)
    .bind(event.principal.as_str())
    .execute(conn)
    .await
    .map(|_| ()))?;
    *head = CatalogueHead {
        version: version.version,
        hash: computed,
        item_count: u64::from(version.item_count),
    };
    Ok(Ok(()))
}

/// One row of the version history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRow {
    pub version: u64,
    pub content_hash: Vec<u8>,
    pub item_count: u64,
    pub upserts: u64,
    pub removals: u64,
    pub note: String,
    pub source: String,
    pub published_ms: i64,
    pub published_by: String,
}

impl Store {
    /// The catalogue version this node holds.
    pub async fn catalogue_head(&self) -> CatalogueHead {
        self.domain_state::<CatalogueHead>().await.unwrap_or_default()
    }

    /// Publishes `items` as the next catalogue version (county only). Unchanged content publishes
    /// nothing. The version travels as the difference from the previous one plus the hash of
    /// the whole.
    pub async fn publish_catalogue(
        &self,
        items: Vec<Item>,
        principal: &str,
        source: &str,
        note: &str,
    ) -> Result<PublishOutcome, StoreError> {
        if self.node().tier() != Tier::County {
            return Err(StoreError::Refused(format!(
                "only the county publishes the catalogue; this is {} {}",
                self.node().tier(),
                self.node()
            )));
        }
        let head = self.catalogue_head().await;
        let current =
            hashes_by_code(with_pool!(self.pool(), conn => sqlx::query_as(ITEM_HASHES).fetch_all(conn).await)?)?;
        let mut new_hashes = BTreeMap::new();
        let mut upserts = Vec::new();
        for item in &items {
            let hash = item.content_hash();
            if current.get(item.key()) != Some(&hash) {
                upserts.push(pb::CatalogueItem::from(item));
            }
            new_hashes.insert(item.key().to_owned(), hash);
        }
        let removals: Vec<String> = current
            .keys()
            .filter(|k| !new_hashes.contains_key(*k))
            .cloned()
            .collect();
        let content_hash = catalogue_hash(new_hashes.iter().map(|(k, h)| (k.as_str(), *h)));
        let item_count = new_hashes.len() as u32;
        if upserts.is_empty() && removals.is_empty() && head.version > 0 {
            return Ok(PublishOutcome {
                version: head.version,
                published: false,
                content_hash,
                item_count,
                upserts: 0,
                removals: 0,
            });
        }
        let (n_up, n_rm) = (upserts.len() as u32, removals.len() as u32);
        let body = pb::CatalogueVersion {
            version: head.version + 1,
            previous_hash: if head.version == 0 {
                Vec::new()
            } else {
                head.hash.to_vec()
            },
            content_hash: content_hash.to_vec(),
            upserts,
            removals,
            item_count,
            note: note.to_owned(),
            source: source.to_owned(),
        };
        // If another import won the race, the fold refuses the stale version and nothing lands.
        self.author(vec![NewEvent {
            principal: principal.to_owned(),
            subject: "catalogue".into(),
            route_key: self.node().clone(),
            route_class: RouteClass::Down,
            body: Body::CatalogueVersion(body),
        }])
        .await?;
        Ok(PublishOutcome {
            version: head.version + 1,
            published: true,
            content_hash,
            item_count,
            upserts: n_up,
            removals: n_rm,
        })
    }

    /// Every item of the catalogue this node holds, in implementation-code order.
    pub async fn catalogue_items(&self) -> Result<Vec<Item>, StoreError> {
        let rows: Vec<Vec<u8>> = with_pool!(self.pool(), conn => {
            sqlx::query_scalar("SELECT body FROM catalogue_items ORDER BY implementation_code")
                .fetch_all(conn)
                .await
        })?;
        rows.into_iter()
            .map(|body| {
                let proto = pb::CatalogueItem::decode(body.as_slice())
                    .map_err(|e| StoreError::Corrupt(format!("catalogue item: {e}")))?;
                Item::try_from(proto).map_err(|e| StoreError::Corrupt(format!("catalogue item: {e}")))
            })
            .collect()
    }

    /// One item by implementation code; for a basic item code, the first of its variants in
    /// implementation-code order. Callers that take a code from a clerk use
    /// [`Store::catalogue_variants`] and [`crate::catalogue::choose_variant`] instead, so a
    /// basic code shared by several variants is not silently taken for its first.
    pub async fn catalogue_item(&self, code: &str) -> Result<Option<Item>, StoreError> {
        let rows = self.catalogue_variants(code).await?;
        Ok(match rows.iter().position(|i| i.implementation_code == code) {
            Some(at) => rows.into_iter().nth(at),
            None => rows.into_iter().next(),
        })
    }

    /// Every item whose implementation code or basic item code is `code`, in
    /// implementation-code order: the row an implementation code names, or every variant
    /// sharing a basic code.
    pub async fn catalogue_variants(&self, code: &str) -> Result<Vec<Item>, StoreError> {
        let rows: Vec<Vec<u8>> = with_pool!(self.pool(), conn => {
            sqlx::query_scalar(
                "SELECT body FROM catalogue_items WHERE implementation_code = $1 OR item_code = $1 \
                 ORDER BY implementation_code",
            )
            .bind(code)
            .fetch_all(conn)
            .await
        })?;
        rows.into_iter()
            .map(|body| {
                let proto = pb::CatalogueItem::decode(body.as_slice())
                    .map_err(|e| StoreError::Corrupt(format!("catalogue item: {e}")))?;
                Item::try_from(proto).map_err(|e| StoreError::Corrupt(format!("catalogue item: {e}")))
            })
            .collect()
    }

    /// The versions this node holds, newest first.
    pub async fn catalogue_versions(&self) -> Result<Vec<VersionRow>, StoreError> {
        type VersionColumns = (i64, Vec<u8>, i64, i64, i64, String, String, i64, String);
        let rows: Vec<VersionColumns> = with_pool!(self.pool(), conn => {
            sqlx::query_as(
                "SELECT version, content_hash, item_count, upserts, removals, note, source, published_ms, published_by \
                 FROM catalogue_versions ORDER BY version DESC",
            )
            .fetch_all(conn)
            .await
        })?;
        Ok(rows
            .into_iter()
            .map(
                |(version, content_hash, item_count, upserts, removals, note, source, published_ms, published_by)| {
                    VersionRow {
                        version: version as u64,
                        content_hash,
                        item_count: item_count as u64,
                        upserts: upserts as u64,
                        removals: removals as u64,
                        note,
                        source,
                        published_ms,
                        published_by,
                    }
                },
            )
            .collect())
    }
}
