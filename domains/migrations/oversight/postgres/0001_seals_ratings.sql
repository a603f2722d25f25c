-- The seal register and the rectification items of bad ratings (PostgreSQL). Both are projections of
-- case events, so every node on a case's path (where it started, its township, the county) holds
-- the same rows.

-- 用印登记: one row per stamped step (a decision or an issue), folded from the CaseStep that
-- names the seal. (origin, seq) is the step's event, so a row is written once per step.
CREATE TABLE seal_register (
    origin        TEXT    NOT NULL,   -- the node that authored the step (where the seal is kept)
    seq           BIGINT  NOT NULL,
    seal          TEXT    NOT NULL,   -- SealType, snake_case
    day           TEXT    NOT NULL,   -- YYYY-MM-DD, Asia/Shanghai
    at_ms         BIGINT  NOT NULL,
    case_id       TEXT    NOT NULL,
    case_number   TEXT    NOT NULL,
    item_code     TEXT    NOT NULL,   -- implementation code
    item_name     TEXT    NOT NULL,
    township      TEXT    NOT NULL,   -- the case's front-desk township
    action        TEXT    NOT NULL,   -- "decide" or "issue"
    reason        TEXT    NOT NULL,
    approver      TEXT    NOT NULL,   -- the principal who took the decision
    stamped_by    TEXT    NOT NULL,   -- the principal who recorded the stamped step
    impressions   BIGINT  NOT NULL,
    PRIMARY KEY (origin, seq)
);
CREATE INDEX seal_register_seal_day ON seal_register (seal, day, at_ms);

-- 差评整改: one rectification item per bad rating (one rating per case, so keyed by the case),
-- for the tier that handled the case; closed by a RectificationResponse event.
CREATE TABLE rectifications (
    case_id       TEXT    PRIMARY KEY,
    case_number   TEXT    NOT NULL,
    item_code     TEXT    NOT NULL,
    township      TEXT    NOT NULL,
    handler       TEXT    NOT NULL,   -- the node that must respond (the deciding tier)
    level         TEXT    NOT NULL,   -- RatingLevel, snake_case
    opened_ms     BIGINT  NOT NULL,
    deadline      TEXT    NOT NULL,   -- YYYY-MM-DD, the last working day to respond
    responded_ms  BIGINT,
    response      TEXT,
    responder     TEXT
);
CREATE INDEX rectifications_township ON rectifications (township, opened_ms);
