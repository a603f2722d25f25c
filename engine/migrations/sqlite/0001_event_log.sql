-- The event log, link cursors and alarms (SQLite).

-- Facts about this store, e.g. which node owns it.
CREATE TABLE node_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Append-only: rows are inserted, never updated or deleted. `envelope` is the whole event as
-- protobuf (tongban.v1.Event); the other columns repeat what indexes and queries need.
CREATE TABLE events (
    local_seq    INTEGER PRIMARY KEY,   -- arrival order at this node
    origin       TEXT    NOT NULL,
    seq          INTEGER NOT NULL,
    hlc          INTEGER NOT NULL,
    kind         INTEGER NOT NULL,
    subject      TEXT    NOT NULL,
    route_key    TEXT    NOT NULL,
    content_hash BLOB    NOT NULL,
    source       TEXT    NOT NULL,      -- '' when authored here, else the peer it came from
    source_seq   INTEGER NOT NULL,      -- the sender's local_seq (0 when authored here)
    to_parent    INTEGER NOT NULL,      -- 1 when it must go up
    route_child  TEXT,                  -- '*' every child, a child id, or NULL
    stored_ms    INTEGER NOT NULL,
    envelope     BLOB    NOT NULL,
    UNIQUE (origin, seq)
);
CREATE INDEX events_up ON events (local_seq) WHERE to_parent = 1;
CREATE INDEX events_down ON events (route_child, local_seq) WHERE route_child IS NOT NULL;
CREATE INDEX events_source ON events (source, source_seq);

-- One row per peer: both cursors of the link and its health.
CREATE TABLE links (
    peer              TEXT PRIMARY KEY,
    role              INTEGER NOT NULL,  -- 1 parent, 2 child
    applied_from_peer INTEGER NOT NULL DEFAULT 0,
    acked_by_peer     INTEGER NOT NULL DEFAULT 0,
    last_sync_ms      INTEGER NOT NULL DEFAULT 0,
    last_checksum_ms  INTEGER NOT NULL DEFAULT 0,
    last_checksum_ok  INTEGER NOT NULL DEFAULT 0,
    repairs           INTEGER NOT NULL DEFAULT 0
);

-- Integrity alarms and quarantined events, kept for an operator.
CREATE TABLE alarms (
    id            INTEGER PRIMARY KEY,
    kind          INTEGER NOT NULL,
    origin        TEXT    NOT NULL,
    seq           INTEGER NOT NULL,
    received_from TEXT    NOT NULL,
    reason        TEXT    NOT NULL,
    raised_ms     INTEGER NOT NULL,
    source_seq    INTEGER NOT NULL,      -- the sender's local_seq, so link checksums count it
    content_hash  BLOB    NOT NULL,
    event         BLOB    NOT NULL
);
-- Re-sending a link must not raise the same alarm twice.
CREATE UNIQUE INDEX alarms_once ON alarms (kind, origin, seq, content_hash, received_from);
CREATE INDEX alarms_source ON alarms (received_from, source_seq);
