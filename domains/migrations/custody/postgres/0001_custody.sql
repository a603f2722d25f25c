-- Material boxes and the custody of paper files (see domains/src/custody/projection.rs).

-- Every scan this node holds, once per scan id: the first copy recorded is kept, a later copy
-- with other content is a conflict (custody_conflicts). Never updated: an error declaration is
-- a scan of its own whose `corrects` names the scan it takes back.
CREATE TABLE custody_scans (
    scan_id      TEXT    PRIMARY KEY,
    device_id    TEXT    NOT NULL,
    device_seq   BIGINT NOT NULL,
    scanned_ms   BIGINT NOT NULL,   -- event time, by the device's clock
    step         BIGINT NOT NULL,   -- tongban.v1.CustodyStep
    principal    TEXT    NOT NULL,
    box_id       TEXT    NOT NULL,
    trip_id      TEXT    NOT NULL,
    township     TEXT    NOT NULL,   -- the route key: the township (or node) concerned
    corrects     TEXT    NOT NULL,   -- error declarations: the scan taken back
    recorded_at  TEXT    NOT NULL,
    recorded_ms  BIGINT NOT NULL,
    scan         BYTEA    NOT NULL    -- the tongban.v1.Scan as recorded
);
CREATE INDEX custody_scans_device ON custody_scans (device_id, device_seq);
CREATE INDEX custody_scans_box ON custody_scans (box_id, scanned_ms);
CREATE INDEX custody_scans_trip ON custody_scans (trip_id, scanned_ms);
CREATE INDEX custody_scans_corrects ON custody_scans (corrects);
CREATE INDEX custody_scans_recent ON custody_scans (scanned_ms);

-- Which boxes and documents each scan is about, so a where-is reads only its object's scans.
CREATE TABLE custody_objects (
    object_id TEXT NOT NULL,
    scan_id   TEXT NOT NULL,
    PRIMARY KEY (object_id, scan_id)
);

-- Paper files registered at intake, and boxes with their labels.
CREATE TABLE custody_documents (
    document_id TEXT    PRIMARY KEY,
    case_id     TEXT    NOT NULL,
    kind        BIGINT NOT NULL,
    pages       BIGINT NOT NULL,
    title       TEXT    NOT NULL,
    registered_at TEXT  NOT NULL
);
CREATE INDEX custody_documents_case ON custody_documents (case_id);
CREATE TABLE custody_boxes (
    box_id        TEXT PRIMARY KEY,
    label         TEXT NOT NULL,
    registered_at TEXT NOT NULL
);

-- A second copy of a scan id with other content, or a second scan id for one device sequence
-- number: the first stays in force, this is kept as evidence and shown as an anomaly.
CREATE TABLE custody_conflicts (
    scan_id     TEXT    NOT NULL,
    device_id   TEXT    NOT NULL,
    device_seq  BIGINT NOT NULL,
    township    TEXT    NOT NULL,
    recorded_at TEXT    NOT NULL,
    scanned_ms  BIGINT NOT NULL,
    detail      TEXT    NOT NULL
);

-- The life of anomalies (AnomalyNote events): explained and closed, with who and why. An
-- anomaly itself is derived from the scans each time it is listed, the same at every node.
CREATE TABLE custody_anomaly_notes (
    anomaly_key TEXT    NOT NULL,
    state       BIGINT NOT NULL,   -- tongban.v1.AnomalyState
    text        TEXT    NOT NULL,
    noted_by    TEXT    NOT NULL,
    noted_ms    BIGINT NOT NULL,
    township    TEXT    NOT NULL
);
CREATE INDEX custody_anomaly_notes_key ON custody_anomaly_notes (anomaly_key, noted_ms);
