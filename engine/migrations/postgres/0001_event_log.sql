-- The event log, link cursors and alarms (PostgreSQL).

-- Facts about this store, e.g. which node owns it.
CREATE TABLE node_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Append-only: rows are inserted, never updated or deleted. `envelope` is the whole event as
-- protobuf (tongban.v1.Event); the other columns repeat what indexes and queries need.
CREATE TABLE events (
    local_seq    BIGINT  PRIMARY KEY,   -- arrival order at this node
    origin       TEXT    NOT NULL,
    seq          BIGINT  NOT NULL,
    hlc          BIGINT  NOT NULL,
    kind         BIGINT  NOT NULL,
    subject      TEXT    NOT NULL,
    route_key    TEXT    NOT NULL,
    content_hash BYTEA   NOT NULL,
    source       TEXT    NOT NULL,      -- '' when authored here, else the peer it came from
    source_seq   BIGINT  NOT NULL,      -- the sender's local_seq (0 when authored here)
    to_parent    BIGINT  NOT NULL,      -- 1 when it must go up
    route_child  TEXT,                  -- '*' every child, a child id, or NULL
    stored_ms    BIGINT  NOT NULL,
    envelope     BYTEA   NOT NULL,
    UNIQUE (origin, seq)
);
CREATE INDEX events_up ON events (local_seq) WHERE to_parent = 1;
CREATE INDEX events_down ON events (route_child, local_seq) WHERE route_child IS NOT NULL;
CREATE INDEX events_source ON events (source, source_seq);

-- One row per peer: both cursors of the link and its health.
CREATE TABLE links (
    peer              TEXT PRIMARY KEY,
    role              BIGINT  NOT NULL,  -- 1 parent, 2 child
    applied_from_peer BIGINT  NOT NULL DEFAULT 0,
    acked_by_peer     BIGINT  NOT NULL DEFAULT 0,
    last_sync_ms      BIGINT  NOT NULL DEFAULT 0,
    last_checksum_ms  BIGINT  NOT NULL DEFAULT 0,
    last_checksum_ok  BIGINT  NOT NULL DEFAULT 0,
    repairs           BIGINT  NOT NULL DEFAULT 0
);

-- Integrity alarms and quarantined events, kept for an operator.
CREATE TABLE alarms (
    id            BIGSERIAL PRIMARY KEY,
    kind          BIGINT  NOT NULL,
    origin        TEXT    NOT NULL,
    seq           BIGINT  NOT NULL,
    received_from TEXT    NOT NULL,
    reason        TEXT    NOT NULL,
    raised_ms     BIGINT  NOT NULL,
    source_seq    BIGINT  NOT NULL,      -- the sender's local_seq, so link checksums count it
    content_hash  BYTEA   NOT NULL,
    event         BYTEA   NOT NULL
);
-- Re-sending a link must not raise the same alarm twice.
CREATE UNIQUE INDEX alarms_once ON alarms (kind, origin, seq, content_hash, received_from);
CREATE INDEX alarms_source ON alarms (received_from, source_seq);
