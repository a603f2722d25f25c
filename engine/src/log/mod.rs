//! The event log of one node: the append-only log, the link cursors and alarms, and the
//! projections the domains registered, folded in the same transaction as the events, on SQLite
//! (embedded default) or PostgreSQL, each through its own typed driver (see [`crate::db`]).
//!
//! Every write goes through one async mutex (the *writer*), which owns the next `local_seq`, the
//! next own sequence number and the domains' writer states. Serialising writers is what makes
//! `local_seq` visible in commit order on both backends, so a cursor can never skip an event
//! committed late. Events, their projections and the cursor of the link they came over change in
//! one transaction.
//!
//! The log knows no domain: it calls the [`Projection`]s registered for an event's kind.

mod links;
pub mod projection;
mod recent;
mod schema;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use prost::Message;
use sqlx::AssertSqlSafe;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use tokio::sync::{Mutex, mpsc, oneshot, watch};
use tongban_proto::v1::{self as pb};

pub use crate::db::{Backend, Pool, WriteTx};
pub use links::{LinkCursor, LinkRole, LinkTotals};
pub use projection::{DomainState, DomainStates, FoldContext, FoldOutcome, Projection, ProjectionFuture, Projections};

use crate::clock::Clock;
use crate::event::{self, CheckedEvent, EventError, NewEvent, Routing};
use crate::hlc::Hlc;
use crate::ids::NodeId;
use crate::{with_pool, with_tx};

/// Errors from the store. Database failures are reported as-is; rule breaks on events this node
/// authors are `Refused`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("this database belongs to node {found}, not {expected}")]
    WrongNode { expected: String, found: String },
    #[error("refused: {0}")]
    Refused(String),
    #[error("invalid event: {0}")]
    Event(#[from] EventError),
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error("the write was not committed: {0}")]
    GroupFailed(String),
    #[error("the store is closing; nothing was written")]
    WriterGone,
}

/// Where a node keeps its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// A SQLite file, created if missing.
    SqliteFile(PathBuf),
    /// A database URL: `postgres://…` or `sqlite://…`.
    Url(String),
}

impl StoreLocation {
    /// The conventional SQLite file of a node inside a data directory.
    pub fn in_data_dir(dir: &Path, node: &NodeId) -> Self {
        StoreLocation::SqliteFile(dir.join(format!("{node}.db")))
    }

    fn url(&self) -> String {
        match self {
            StoreLocation::SqliteFile(path) => format!("sqlite://{}?mode=rwc", path.display()),
            StoreLocation::Url(url) => url.clone(),
        }
    }

    fn backend(&self) -> Backend {
        match self {
            StoreLocation::Url(url) if url.starts_with("postgres") => Backend::Postgres,
            _ => Backend::Sqlite,
        }
    }
}

/// How much a node's log may hold in memory and how many connections it opens: chosen by the
/// tier (a village point is a small machine with one link; a county serves every township).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogTuning {
    /// Connections on SQLite: one writer plus readers for the links and operators.
    pub sqlite_connections: u32,
    /// Connections on PostgreSQL.
    pub postgres_connections: u32,
    /// SQLite page cache per connection, in KiB: a relaying node reads back what it just
    /// wrote, and that should come from memory.
    pub sqlite_cache_kib: u32,
    /// Bytes of the newest events kept in memory for link senders that keep up.
    pub tail_bytes: usize,
}

impl Default for LogTuning {
    /// A middle-sized node (a township's settings).
    fn default() -> Self {
        LogTuning {
            sqlite_connections: 4,
            postgres_connections: 8,
            sqlite_cache_kib: 8 * 1024,
            tail_bytes: 16 << 20,
        }
    }
}

/// What the writer owns. Only touched with the writer mutex held; cloned before an attempt and
/// put back whole if that transaction is not committed.
#[derive(Clone)]
struct WriterState {
    next_local_seq: i64,
    next_own_seq: i64,
    // What each domain's projection keeps between events (the catalogue head, the calendar in
    // force) and stages within a transaction (case views, custody scans).
    domains: DomainStates,
}

/// Outcome of applying one batch received from a peer.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ApplyReport {
    pub applied: usize,
    pub duplicates: usize,
    pub conflicts: usize,
    pub quarantined: usize,
}

/// One node's event log. Cheap to share behind an `Arc`.
pub struct EventLog {
    pool: Pool,
    node: NodeId,
    hlc: Hlc,
    // The domains' projections, folded in registration order.
    projections: Projections,
    // The single writer; see the module comment for why writes are serialised.
    writer: Mutex<WriterState>,
    // Requests to the authoring task, which commits them in groups (see `EventLog::author`).
    authoring: mpsc::Sender<AuthorRequest>,
    // Last committed local_seq; link senders wait on it to push new events live.
    committed: watch::Sender<u64>,
    // The newest events in memory, so link senders that keep up do not re-read them.
    recent: recent::RecentEvents,
    // The node's one clock: the HLC, event and bookkeeping times, and (through the domains)
    // every business time read it. Replaceable so a test can move a running node's time.
    wall: RwLock<Arc<dyn Clock>>,
}

/// Rows per multi-row INSERT: 14 columns × 400 rows stays under SQLite's 32,766 parameters.
const INSERT_CHUNK: usize = 400;

impl EventLog {
    /// Opens (creating if needed) the store of `node` with the given domains' projections, runs
    /// the embedded migrations, checks that the database belongs to this node, and lets every
    /// projection load its writer state.
    pub async fn open(
        location: &StoreLocation,
        node: &NodeId,
        projections: Projections,
        clock: Arc<dyn Clock>,
        tuning: LogTuning,
    ) -> Result<Arc<EventLog>, StoreError> {
        let backend = location.backend();
        if let StoreLocation::SqliteFile(path) = location
            && let Some(dir) = path.parent()
        {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Db(sqlx::Error::Io(e)))?;
        }
        let pool = connect(location, backend, &tuning).await?;
        schema::migrate(&pool, backend).await?;
        // Each domain's tables, with its own migration history, in registration order.
        for projection in projections.all() {
            if let Some(mut migrator) = projection.migrations(backend) {
                migrator.dangerous_set_table_name(format!("_migrations_{}", projection.name()));
                pool.migrate(&migrator).await?;
            }
        }

        let owner: Option<String> = with_pool!(&pool, conn => {
            sqlx::query_scalar("SELECT value FROM node_meta WHERE key = 'node_id'")
                .fetch_optional(conn)
                .await
        })?;
        match owner {
            Some(found) if found != node.as_str() => {
                return Err(StoreError::WrongNode {
                    expected: node.to_string(),
                    found,
                });
            }
            Some(_) => {}
            None => {
                with_pool!(&pool, conn => {
                    sqlx::query("INSERT INTO node_meta (key, value) VALUES ('node_id', $1)")
                        .bind(node.as_str())
                        .execute(conn)
                        .await
                        .map(|done| done.rows_affected())
                })?;
            }
        }

        let (last_local, last_own, max_hlc): (Option<i64>, Option<i64>, Option<i64>) = with_pool!(&pool, conn => {
            sqlx::query_as(
                "SELECT (SELECT MAX(local_seq) FROM events), (SELECT MAX(seq) FROM events WHERE origin = $1), \
                 (SELECT MAX(hlc) FROM events)",
            )
            .bind(node.as_str())
            .fetch_one(conn)
            .await
        })?;
        let mut domains = DomainStates::default();
        for projection in projections.all() {
            projection.load(&pool, &mut domains).await?;
        }
        let last_local = last_local.unwrap_or(0);
        let (committed, _) = watch::channel(last_local as u64);
        if backend == Backend::Sqlite {
            tokio::spawn(checkpoint_in_background(pool.clone(), committed.subscribe()));
        }
        let (authoring, author_requests) = mpsc::channel(AUTHOR_QUEUE);
        let store = EventLog {
            authoring,
            pool,
            node: node.clone(),
            hlc: Hlc::new(),
            projections,
            writer: Mutex::new(WriterState {
                next_local_seq: last_local + 1,
                next_own_seq: last_own.unwrap_or(0) + 1,
                domains,
            }),
            committed,
            recent: recent::RecentEvents::new(last_local as u64 + 1, tuning.tail_bytes),
            wall: RwLock::new(clock),
        };
        store.hlc.observe(max_hlc.unwrap_or(0) as u64, store.wall_ms());
        let store = Arc::new(store);
        tokio::spawn(author_in_groups(Arc::downgrade(&store), author_requests));
        Ok(store)
    }

    pub fn node(&self) -> &NodeId {
        &self.node
    }

    /// A new HLC timestamp on this node's clock.
    pub fn hlc_now(&self) -> u64 {
        self.hlc.now(self.wall_ms())
    }

    /// Now on this node's clock, in milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        match self.wall.read() {
            Ok(clock) => clock.now_ms(),
            Err(poisoned) => poisoned.into_inner().now_ms(),
        }
    }

    /// Today in Asia/Shanghai on this node's clock.
    pub fn today(&self) -> chrono::NaiveDate {
        crate::clock::shanghai_date(self.now_ms())
    }

    /// This node's clock as unsigned milliseconds (never before the epoch).
    pub fn wall_ms(&self) -> u64 {
        u64::try_from(self.now_ms()).unwrap_or(0)
    }

    /// Replaces the node's clock while it runs (tests and the demo move days this way). The HLC
    /// never runs backwards, whatever the new clock says.
    pub fn set_clock(&self, clock: Arc<dyn Clock>) {
        match self.wall.write() {
            Ok(mut wall) => *wall = clock,
            Err(poisoned) => *poisoned.into_inner() = clock,
        }
    }

    pub fn backend(&self) -> Backend {
        self.pool.backend()
    }

    /// The connection pool, for the domains' own queries (through [`with_pool!`]). Writes go through
    /// [`EventLog::author`] or a projection's fold, never straight to the pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Begins a write transaction (see [`Pool::begin_write`]).
    pub async fn begin_write(&self) -> Result<WriteTx, StoreError> {
        Ok(self.pool.begin_write().await?)
    }

    /// A small bookkeeping write (acks, checksum results, new links) under the writer mutex, so
    /// it never races an event transaction.
    pub async fn bookkeeping(&self) -> Result<Bookkeeping<'_>, StoreError> {
        let writer = self.writer.lock().await;
        let tx = self.begin_write().await?;
        Ok(Bookkeeping { _writer: writer, tx })
    }

    /// A receiver that changes whenever new events are committed (value: last local_seq).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.committed.subscribe()
    }

    /// The highest committed local_seq.
    pub fn last_local_seq(&self) -> u64 {
        *self.committed.borrow()
    }

    /// Closes the pool; on SQLite the WAL is checkpointed and truncated first.
    pub async fn close(&self) {
        if self.backend() == Backend::Sqlite {
            let _ = with_pool!(&self.pool, conn => sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(conn).await.map(|done| done.rows_affected()));
        }
        self.pool.close().await;
    }

    /// Authors events at this node in one transaction. Each is sealed, checked against the same
    /// rules a replica applies, folded into the projections and routed. Returns once the events
    /// are durable.
    ///
    /// Concurrent calls are committed together (group commit): the authoring task takes every
    /// request waiting when it starts a transaction and folds each inside its own savepoint, so
    /// one refused request changes nothing and the others still commit, with one fsync for all.
    /// The transaction runs on that task, not on the caller: a caller that goes away (a client
    /// hanging up) cannot cut a commit in half and leave the writer's counters behind the log.
    pub async fn author(&self, new_events: Vec<NewEvent>) -> Result<Vec<pb::Event>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.authoring
            .send(AuthorRequest {
                events: new_events,
                reply,
            })
            .await
            .map_err(|_| StoreError::WriterGone)?;
        answer.await.map_err(|_| StoreError::WriterGone)?
    }

    /// Commits `first` and every request queued behind it once the writer is free, as one
    /// group (see [`EventLog::author`]), and answers each. The queue is drained only after the
    /// writer is taken, so requests that piled up during a peer's batch all ride the next commit.
    ///
    /// Optimistic: the group is first folded without savepoints (two statements less per
    /// request; refusals are rare, since callers decide before they author). If a request is
    /// refused, that transaction is dropped, the request answered, and the rest folded again,
    /// each inside its own savepoint.
    async fn author_group(&self, first: AuthorRequest, queue: &mut mpsc::Receiver<AuthorRequest>) {
        let mut writer = self.writer.lock().await;
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(request) => group.push(request),
                Err(_) => break,
            }
        }
        let mut savepoints = false;
        while !group.is_empty() {
            match self.fold_group(&writer, &group, savepoints).await {
                Err(e) => return fail_group(group, &e),
                Ok(GroupFold::Refused { index, refusal }) => {
                    let _ = group.remove(index).reply.send(Err(refusal));
                    savepoints = true;
                }
                Ok(GroupFold::Committed {
                    state,
                    staged,
                    outcomes,
                }) => {
                    self.recent.push(&staged);
                    *writer = state;
                    let last = (writer.next_local_seq - 1) as u64;
                    drop(writer);
                    if !staged.is_empty() {
                        self.committed.send_replace(last);
                    }
                    for (request, outcome) in group.into_iter().zip(outcomes) {
                        let events = outcome.map(|range| staged[range].iter().map(|s| s.event.clone()).collect());
                        // A caller that stopped waiting has nothing to be told; its events are
                        // committed.
                        let _ = request.reply.send(events);
                    }
                    return;
                }
            }
        }
    }

    /// One attempt at a group: folds every request in one transaction and commits it. Without
    /// `savepoints` the first refusal abandons the attempt (nothing is committed); with them a
    /// refused request is rolled back alone and its refusal kept for its caller.
    async fn fold_group(
        &self,
        writer: &WriterState,
        group: &[AuthorRequest],
        savepoints: bool,
    ) -> Result<GroupFold, StoreError> {
        let mut state = writer.clone();
        let mut tx = self.begin_write().await?;
        let mut staged = Vec::new();
        let mut outcomes = Vec::with_capacity(group.len());
        for (index, request) in group.iter().enumerate() {
            // Only an attempt with savepoints rolls one request back and goes on; the writer
            // state it then restores grows with the group, so it is not copied otherwise.
            let (state_before, staged_before) = (savepoints.then(|| state.clone()), staged.len());
            if savepoints {
                tx.execute_plain("SAVEPOINT author_request").await?;
            }
            let verdict = self
                .stage_authored(&mut tx, &mut state, &request.events, &mut staged)
                .await?;
            match verdict {
                Ok(()) => {
                    if savepoints {
                        tx.execute_plain("RELEASE SAVEPOINT author_request").await?;
                    }
                    outcomes.push(Ok(staged_before..staged.len()));
                }
                // Dropping the transaction rolls back everything folded in this attempt.
                Err(refusal) if !savepoints => return Ok(GroupFold::Refused { index, refusal }),
                Err(refusal) => {
                    tx.execute_plain("ROLLBACK TO SAVEPOINT author_request").await?;
                    if let Some(before) = state_before {
                        state = before;
                    }
                    staged.truncate(staged_before);
                    outcomes.push(Err(refusal));
                }
            }
        }
        // What the projections staged for the whole group is written once, in multi-row
        // statements, before the events.
        self.flush(&mut tx, &mut state).await?;
        insert_events(&mut tx, &staged, self.now_ms()).await?;
        tx.commit().await?;
        Ok(GroupFold::Committed {
            state,
            staged,
            outcomes,
        })
    }

    /// Seals, checks, folds and stages one request's events. `Ok(Err(_))` is a refusal of this
    /// request only; the caller rolls its savepoint back.
    async fn stage_authored(
        &self,
        tx: &mut WriteTx,
        state: &mut WriterState,
        new_events: &[NewEvent],
        staged: &mut Vec<StagedEvent>,
    ) -> Result<Result<(), StoreError>, StoreError> {
        for new in new_events {
            let sealed = event::seal(&self.node, state.next_own_seq as u64, self.hlc_now(), new);
            let checked = match event::check(sealed).and_then(|c| self.check_authorship(&c).map(|_| c)) {
                Ok(checked) => checked,
                Err(e) => return Ok(Err(e.into())),
            };
            if let FoldOutcome::Refused(reason) = self.fold(tx, state, &checked).await? {
                return Ok(Err(StoreError::Refused(reason)));
            }
            let routing = event::route(&self.node, None, checked.route_class(), &checked.route_key);
            staged.push(StagedEvent {
                local_seq: state.next_local_seq,
                event: checked.event,
                source: String::new(),
                source_seq: 0,
                routing,
            });
            state.next_local_seq += 1;
            state.next_own_seq += 1;
        }
        Ok(Ok(()))
    }

    /// Lets every projection write what it staged so far in this transaction.
    async fn flush(&self, tx: &mut WriteTx, state: &mut WriterState) -> Result<(), StoreError> {
        let mut cx = FoldContext {
            tx,
            states: &mut state.domains,
        };
        for projection in self.projections.all() {
            projection.flush(&mut cx).await?;
        }
        Ok(())
    }

    /// The authorship rules of an event: the engine's own (every kind), then those of each
    /// domain that folds its kind. A kind no domain folds is refused.
    fn check_authorship(&self, event: &CheckedEvent) -> Result<(), EventError> {
        event::check_authorship(event)?;
        let mut folded_by = 0;
        for projection in self.projections.folding(event.event.kind) {
            projection.check_authorship(event)?;
            folded_by += 1;
        }
        if folded_by == 0 {
            return Err(EventError::Rule(format!(
                "no domain here folds events of kind {}",
                event.kind().as_str_name()
            )));
        }
        Ok(())
    }

    /// Applies a batch received from `peer` and moves that link's cursor to `through`, all in one
    /// transaction. Structurally broken or rule-breaking events are quarantined (never applied,
    /// never silently dropped); a second copy of a known event with a different hash raises an
    /// integrity alarm; an identical copy is a no-op.
    pub async fn apply_from_peer(
        &self,
        peer: &NodeId,
        batch: Vec<pb::SyncedEvent>,
        through: u64,
    ) -> Result<ApplyReport, StoreError> {
        let mut report = ApplyReport::default();
        let mut writer = self.writer.lock().await;
        let mut tx = self.begin_write().await?;
        let mut state = writer.clone();
        let known = existing_hashes(&mut tx, &batch).await?;
        let mut seen_in_batch = std::collections::HashMap::new();
        let mut staged = Vec::new();
        let now = self.now_ms();
        for synced in batch {
            let Some(raw) = synced.event else {
                continue;
            };
            let key = (raw.origin.clone(), raw.seq);
            let prior = known.get(&key).or_else(|| seen_in_batch.get(&key));
            if let Some(prior_hash) = prior {
                if *prior_hash == raw.content_hash {
                    report.duplicates += 1;
                } else {
                    report.conflicts += 1;
                    links::raise_alarm(
                        &mut tx,
                        links::AlarmKind::ConflictingDuplicate,
                        &raw,
                        peer,
                        synced.local_seq,
                        "a second copy of this event differs from the one already stored",
                        now,
                    )
                    .await?;
                    tracing::error!(origin = %raw.origin, seq = raw.seq, %peer, "integrity alarm: conflicting duplicate");
                }
                continue;
            }
            // Structure, authorship, arrival, then the projection's own rules: the first that
            // fails quarantines the event.
            let verdict = match event::check(raw.clone())
                .and_then(|c| self.check_authorship(&c).map(|_| c))
                .and_then(|c| event::check_arrival(&c, &self.node, peer).map(|_| c))
            {
                Ok(checked) => match self.fold(&mut tx, &mut state, &checked).await? {
                    FoldOutcome::Applied => Ok(checked),
                    FoldOutcome::Refused(reason) => Err(reason),
                },
                Err(err) => Err(err.to_string()),
            };
            let checked = match verdict {
                Ok(checked) => checked,
                Err(reason) => {
                    report.quarantined += 1;
                    let kind = links::AlarmKind::Quarantined;
                    links::raise_alarm(&mut tx, kind, &raw, peer, synced.local_seq, &reason, now).await?;
                    tracing::warn!(origin = %raw.origin, seq = raw.seq, %peer, %reason, "event quarantined");
                    continue;
                }
            };
            self.hlc.observe(checked.event.hlc, self.wall_ms());
            seen_in_batch.insert(key, checked.event.content_hash.clone());
            let routing = event::route(&self.node, Some(peer), checked.route_class(), &checked.route_key);
            staged.push(StagedEvent {
                local_seq: state.next_local_seq,
                event: checked.event,
                source: peer.to_string(),
                source_seq: synced.local_seq as i64,
                routing,
            });
            state.next_local_seq += 1;
        }
        report.applied = staged.len();
        self.flush(&mut tx, &mut state).await?;
        insert_events(&mut tx, &staged, now).await?;
        links::advance_applied(&mut tx, peer, through as i64, now).await?;
        tx.commit().await?;
        self.recent.push(&staged);
        *writer = state;
        let last = (writer.next_local_seq - 1) as u64;
        drop(writer);
        if report.applied > 0 {
            self.committed.send_replace(last);
        }
        Ok(report)
    }

    /// Folds one event into every projection of its kind, in registration order; the first
    /// refusal stops the fold (the caller then drops what this event staged).
    async fn fold(
        &self,
        tx: &mut WriteTx,
        state: &mut WriterState,
        event: &CheckedEvent,
    ) -> Result<FoldOutcome, StoreError> {
        let mut cx = FoldContext {
            tx,
            states: &mut state.domains,
        };
        for projection in self.projections.folding(event.event.kind) {
            if let FoldOutcome::Refused(reason) = projection.fold(&mut cx, event).await? {
                return Ok(FoldOutcome::Refused(reason));
            }
        }
        Ok(FoldOutcome::Applied)
    }

    /// A copy of the writer's state of type `T` (a domain's head or setting), read under the
    /// writer so it matches what is committed.
    pub async fn domain_state<T: DomainState + Clone>(&self) -> Option<T> {
        self.writer.lock().await.domains.get::<T>().cloned()
    }

    /// Up to `limit` events routed to `peer` with local_seq after `after`, in local_seq order,
    /// and the local_seq through which the log has been considered for this peer (at least the
    /// last event returned; further when nothing else was routed to the peer), so a sender can
    /// move past stretches of events that are not for its peer.
    pub async fn events_for(
        &self,
        peer: &NodeId,
        role: LinkRole,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<pb::SyncedEvent>, u64), StoreError> {
        if let Some(served) = self.recent.serve(peer.as_str(), role, after, limit) {
            return Ok(served);
        }
        // Everything committed up to here is visible to the queries below.
        let committed = self.last_local_seq();
        let limit_rows = limit as i64;
        let after_row = after as i64;
        let rows: Vec<EventRow> = match role {
            LinkRole::Parent => with_pool!(&self.pool, conn => {
                sqlx::query_as(
                    "SELECT local_seq, envelope FROM events \
                     WHERE to_parent = 1 AND local_seq > $1 ORDER BY local_seq LIMIT $2",
                )
                .bind(after_row)
                .bind(limit_rows)
                .fetch_all(conn)
                .await
            })?,
            LinkRole::Child => {
                // Two index range scans (this child's path events, every child's down events)
                // merged by local_seq; one query with OR would sort the whole backlog.
                let mine = fetch_down(&self.pool, peer.as_str(), after_row, limit_rows).await?;
                let all = fetch_down(&self.pool, event::ALL_CHILDREN, after_row, limit_rows).await?;
                merge_limited(mine, all, limit)
            }
        };
        let events = rows.into_iter().map(row_to_synced).collect::<Result<Vec<_>, _>>()?;
        let through = match events.last() {
            Some(last) if events.len() >= limit => last.local_seq,
            Some(last) => last.local_seq.max(committed),
            None => committed.max(after),
        };
        Ok((events, through))
    }

    /// Count and digest of what this node routed to `peer` up to `up_to`.
    pub async fn outbound_checksum(&self, peer: &NodeId, role: LinkRole, up_to: u64) -> Result<(u64, u64), StoreError> {
        let up_to = up_to as i64;
        let rows: Vec<Vec<u8>> = match role {
            LinkRole::Parent => with_pool!(&self.pool, conn => {
                sqlx::query_scalar("SELECT content_hash FROM events WHERE to_parent = 1 AND local_seq <= $1")
                    .bind(up_to)
                    .fetch_all(conn)
                    .await
            })?,
            LinkRole::Child => with_pool!(&self.pool, conn => {
                sqlx::query_scalar("SELECT content_hash FROM events WHERE route_child IN ($1, '*') AND local_seq <= $2")
                    .bind(peer.as_str())
                    .bind(up_to)
                    .fetch_all(conn)
                    .await
            })?,
        };
        Ok(digest(&rows))
    }

    /// Count and digest of what this node received from `peer` up to the peer's `up_to`:
    /// the events it stored plus those it refused with an alarm (they arrived too).
    pub async fn inbound_checksum(&self, peer: &NodeId, up_to: u64) -> Result<(u64, u64), StoreError> {
        let up_to = up_to as i64;
        let mut rows: Vec<Vec<u8>> = with_pool!(&self.pool, conn => {
            sqlx::query_scalar("SELECT content_hash FROM events WHERE source = $1 AND source_seq <= $2")
                .bind(peer.as_str())
                .bind(up_to)
                .fetch_all(conn)
                .await
        })?;
        let refused: Vec<Vec<u8>> = with_pool!(&self.pool, conn => {
            sqlx::query_scalar(
                "SELECT DISTINCT content_hash FROM alarms WHERE received_from = $1 AND source_seq > 0 AND source_seq <= $2",
            )
            .bind(peer.as_str())
            .bind(up_to)
            .fetch_all(conn)
            .await
        })?;
        rows.extend(refused);
        Ok(digest(&rows))
    }

    /// Number of events in the log.
    pub async fn event_count(&self) -> Result<u64, StoreError> {
        let n: i64 = with_pool!(&self.pool, conn => {
            sqlx::query_scalar("SELECT COUNT(*) FROM events").fetch_one(conn).await
        })?;
        Ok(n as u64)
    }

    /// Number of events from `origin` in the log (bench and tests use it to wait for arrival).
    pub async fn count_from_origin(&self, origin: &NodeId) -> Result<u64, StoreError> {
        let n: i64 = with_pool!(&self.pool, conn => {
            sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE origin = $1")
                .bind(origin.as_str())
                .fetch_one(conn)
                .await
        })?;
        Ok(n as u64)
    }

    /// Whether the event (origin, seq) is stored here.
    pub async fn has_event(&self, origin: &str, seq: u64) -> Result<bool, StoreError> {
        let n: i64 = with_pool!(&self.pool, conn => {
            sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE origin = $1 AND seq = $2")
                .bind(origin)
                .bind(seq as i64)
                .fetch_one(conn)
                .await
        })?;
        Ok(n > 0)
    }
}

/// Opens the typed pool of `location`'s backend, sized and (on SQLite) tuned as the tier chose.
async fn connect(location: &StoreLocation, backend: Backend, tuning: &LogTuning) -> Result<Pool, StoreError> {
    let url = location.url();
    let acquire_timeout = Duration::from_secs(30);
    Ok(match backend {
        Backend::Sqlite => {
            let options: SqliteConnectOptions = url.parse()?;
            // Page cache per connection (negative: in KiB), as the tier chose.
            let cache_pragma = format!("PRAGMA cache_size = -{}", tuning.sqlite_cache_kib.max(64));
            let pool = SqlitePoolOptions::new()
                .max_connections(tuning.sqlite_connections)
                .acquire_timeout(acquire_timeout)
                .after_connect(move |conn, _meta| {
                    let cache_pragma = cache_pragma.clone();
                    Box::pin(async move {
                        // WAL + FULL: an acknowledged commit survives kill -9 and power loss.
                        sqlx::query("PRAGMA journal_mode = WAL").execute(&mut *conn).await?;
                        sqlx::query("PRAGMA synchronous = FULL").execute(&mut *conn).await?;
                        sqlx::query("PRAGMA foreign_keys = ON").execute(&mut *conn).await?;
                        sqlx::query("PRAGMA busy_timeout = 10000").execute(&mut *conn).await?;
                        // Checkpoints run in the background (see `checkpoint_in_background`), not
                        // inside whichever commit happens to cross the threshold: copying a large
                        // WAL back and fsyncing the database there stalled replication for ~1 s.
                        sqlx::query("PRAGMA wal_autocheckpoint = 0").execute(&mut *conn).await?;
                        sqlx::query(AssertSqlSafe(cache_pragma)).execute(&mut *conn).await?;
                        Ok(())
                    })
                })
                .connect_with(options)
                .await?;
            Pool::Sqlite(pool)
        }
        Backend::Postgres => Pool::Postgres(
            PgPoolOptions::new()
                .max_connections(tuning.postgres_connections)
                .acquire_timeout(acquire_timeout)
                .connect(&url)
                .await?,
        ),
    })
}

/// How often, at most, the background checkpointer copies the WAL back into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// Copies committed WAL frames into the SQLite database file after commits, off the commit
/// path. PASSIVE never blocks writers or readers; frames a reader still needs wait for the next
/// round. Ends when the pool closes.
async fn checkpoint_in_background(pool: Pool, mut committed: watch::Receiver<u64>) {
    loop {
        if committed.changed().await.is_err() {
            return;
        }
        tokio::time::sleep(CHECKPOINT_EVERY).await;
        committed.borrow_and_update();
        if pool.is_closed() {
            return;
        }
        let checkpoint = with_pool!(&pool, conn => sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(conn).await.map(|done| done.rows_affected()));
        if let Err(e) = checkpoint {
            if pool.is_closed() {
                return;
            }
            tracing::warn!(error = %e, "background checkpoint failed; will retry");
        }
    }
}

/// How one attempt at committing a group of authoring requests ended.
enum GroupFold {
    /// Request `index` was refused in an attempt without savepoints; nothing was committed.
    Refused { index: usize, refusal: StoreError },
    /// Committed: the writer's new state, the events, and per request the range of `staged`
    /// it wrote or its refusal.
    Committed {
        state: WriterState,
        staged: Vec<StagedEvent>,
        outcomes: Vec<Result<std::ops::Range<usize>, StoreError>>,
    },
}

/// Events to author, and where to answer once they are committed or refused.
struct AuthorRequest {
    events: Vec<NewEvent>,
    reply: oneshot::Sender<Result<Vec<pb::Event>, StoreError>>,
}

/// Requests waiting for the authoring task before callers wait to send; and the most it commits
/// in one transaction, so one fsync covers many without a commit growing without bound.
const AUTHOR_QUEUE: usize = 1024;
const MAX_GROUP: usize = 512;

/// The authoring task: takes the first waiting request and, once the writer is free, every
/// other one queued by then, and commits them as one group. Ends when the store is dropped (its sender goes with it).
async fn author_in_groups(store: std::sync::Weak<EventLog>, mut requests: mpsc::Receiver<AuthorRequest>) {
    while let Some(first) = requests.recv().await {
        let Some(store) = store.upgrade() else {
            return;
        };
        store.author_group(first, &mut requests).await;
    }
}

/// Answers every request of a group whose transaction failed: none of them was written.
fn fail_group(group: Vec<AuthorRequest>, error: &StoreError) {
    tracing::error!(%error, "authoring transaction failed");
    for request in group {
        let _ = request.reply.send(Err(StoreError::GroupFailed(error.to_string())));
    }
}

/// A write transaction holding the writer mutex until it commits or drops.
pub struct Bookkeeping<'a> {
    _writer: tokio::sync::MutexGuard<'a, WriterState>,
    pub tx: WriteTx,
}

impl Bookkeeping<'_> {
    pub async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await?;
        Ok(())
    }
}

/// An event about to be inserted, with its routing decided.
struct StagedEvent {
    local_seq: i64,
    event: pb::Event,
    source: String,
    source_seq: i64,
    routing: Routing,
}

/// Columns of one `events` row, in insert order.
const EVENT_COLUMNS: usize = 14;

/// `rows` tuples of `columns` placeholders, "(?, ?), (?, ?)" on SQLite and "($1, $2), ($3, $4)"
/// on PostgreSQL (which rejects `?`). Positional `?` matters on SQLite: binding by the name `$n`
/// looks the name up among all parameters, which makes a thousand-row statement quadratic.
pub fn value_rows(rows: usize, columns: usize, backend: Backend) -> String {
    let mut sql = String::with_capacity(rows * columns * 6);
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for col in 0..columns {
            if col > 0 {
                sql.push_str(", ");
            }
            match backend {
                Backend::Sqlite => sql.push('?'),
                Backend::Postgres => {
                    sql.push('$');
                    sql.push_str(&(row * columns + col + 1).to_string());
                }
            }
        }
        sql.push(')');
    }
    sql
}

/// `INSERT INTO events (...) VALUES ...` for `rows` rows.
fn insert_sql(rows: usize, backend: Backend) -> String {
    format!(
        "INSERT INTO events (local_seq, origin, seq, hlc, kind, subject, route_key, content_hash, \
         source, source_seq, to_parent, route_child, stored_ms, envelope) VALUES {}",
        value_rows(rows, EVENT_COLUMNS, backend)
    )
}

async fn insert_events(tx: &mut WriteTx, staged: &[StagedEvent], stored_ms: i64) -> Result<(), StoreError> {
    let backend = tx.backend();
    for chunk in staged.chunks(INSERT_CHUNK) {
        // The statement text holds only generated placeholders; every value is bound, borrowed
        // from the staged events (the typed drivers copy each value once, into the statement).
        let sql = insert_sql(chunk.len(), backend);
        let envelopes: Vec<Vec<u8>> = chunk.iter().map(|s| s.event.encode_to_vec()).collect();
        with_tx!(&mut *tx, conn => {
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for (s, envelope) in chunk.iter().zip(&envelopes) {
                let e = &s.event;
                query = query
                    .bind(s.local_seq)
                    .bind(e.origin.as_str())
                    .bind(e.seq as i64)
                    .bind(e.hlc as i64)
                    .bind(i64::from(e.kind))
                    .bind(e.subject.as_str())
                    .bind(e.route_key.as_str())
                    .bind(e.content_hash.as_slice())
                    .bind(s.source.as_str())
                    .bind(s.source_seq)
                    .bind(i64::from(s.routing.to_parent))
                    .bind(s.routing.route_child.as_deref())
                    .bind(stored_ms)
                    .bind(envelope.as_slice());
            }
            query.execute(conn).await.map(|done| done.rows_affected())
        })?;
    }
    Ok(())
}

/// Content hashes already stored for the (origin, seq) pairs of a batch. One range query per
/// origin: a batch usually carries one or a few origins with contiguous sequences.
async fn existing_hashes(
    tx: &mut WriteTx,
    batch: &[pb::SyncedEvent],
) -> Result<std::collections::HashMap<(String, u64), Vec<u8>>, StoreError> {
    let mut ranges: std::collections::BTreeMap<&str, (u64, u64)> = std::collections::BTreeMap::new();
    for e in batch.iter().filter_map(|s| s.event.as_ref()) {
        let range = ranges.entry(e.origin.as_str()).or_insert((e.seq, e.seq));
        range.0 = range.0.min(e.seq);
        range.1 = range.1.max(e.seq);
    }
    let mut known = std::collections::HashMap::new();
    for (origin, (lo, hi)) in ranges {
        let rows: Vec<(i64, Vec<u8>)> = with_tx!(&mut *tx, conn => {
            sqlx::query_as("SELECT seq, content_hash FROM events WHERE origin = $1 AND seq BETWEEN $2 AND $3")
                .bind(origin)
                .bind(lo as i64)
                .bind(hi as i64)
                .fetch_all(conn)
                .await
        })?;
        for (seq, hash) in rows {
            known.insert((origin.to_owned(), seq as u64), hash);
        }
    }
    Ok(known)
}

/// One stored event as the link readers select it: its local_seq and its envelope.
type EventRow = (i64, Vec<u8>);

async fn fetch_down(pool: &Pool, child: &str, after: i64, limit: i64) -> Result<Vec<EventRow>, StoreError> {
    Ok(with_pool!(pool, conn => {
        sqlx::query_as(
            "SELECT local_seq, envelope FROM events \
             WHERE route_child = $1 AND local_seq > $2 ORDER BY local_seq LIMIT $3",
        )
        .bind(child)
        .bind(after)
        .bind(limit)
        .fetch_all(conn)
        .await
    })?)
}

/// Merges two local_seq-ordered lists, each cut at `limit`, without skipping anything: when a
/// list was cut, nothing past its last row may be emitted yet.
fn merge_limited(a: Vec<EventRow>, b: Vec<EventRow>, limit: usize) -> Vec<EventRow> {
    let bound = |rows: &Vec<EventRow>| {
        if rows.len() >= limit {
            rows.last().map_or(i64::MAX, |r| r.0)
        } else {
            i64::MAX
        }
    };
    let horizon = bound(&a).min(bound(&b));
    let mut merged: Vec<EventRow> = a.into_iter().chain(b).filter(|r| r.0 <= horizon).collect();
    merged.sort_by_key(|r| r.0);
    merged.truncate(limit);
    merged
}

fn row_to_synced((local_seq, envelope): EventRow) -> Result<pb::SyncedEvent, StoreError> {
    let event = pb::Event::decode(envelope.as_slice())
        .map_err(|e| StoreError::Corrupt(format!("event at local_seq {local_seq}: {e}")))?;
    Ok(pb::SyncedEvent {
        local_seq: local_seq as u64,
        event: Some(event),
    })
}

fn digest(hashes: &[Vec<u8>]) -> (u64, u64) {
    let sum = hashes
        .iter()
        .fold(0u64, |acc, h| acc.wrapping_add(event::digest_part(h)));
    (hashes.len() as u64, sum)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;

    /// Every connection the log opens on SQLite runs WAL with `synchronous = FULL`: without
    /// FULL, a commit acknowledged in WAL mode can be lost on power failure.
    #[tokio::test]
    async fn every_sqlite_connection_is_wal_and_synchronous_full() {
        let dir = tempfile::tempdir().unwrap();
        let node = NodeId::new("441424100").unwrap();
        let log = EventLog::open(
            &StoreLocation::in_data_dir(dir.path(), &node),
            &node,
            Projections::default(),
            Arc::new(SystemClock),
            LogTuning::default(),
        )
        .await
        .unwrap();
        let Pool::Sqlite(pool) = log.pool() else {
            panic!("a data-dir store is SQLite");
        };
        // Hold several connections at once, so more than the first one is looked at.
        let mut held = Vec::new();
        for _ in 0..LogTuning::default().sqlite_connections {
            let mut conn = pool.acquire().await.unwrap();
            let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            assert_eq!(journal.to_lowercase(), "wal");
            assert_eq!(synchronous, 2, "2 is FULL");
            held.push(conn);
        }
        drop(held);
        log.close().await;
    }
}
