-- Case deadlines and the county's supervision records (SQLite).

-- The processing deadline ("YYYY-MM-DD") computed when a case is accepted and again at each
-- later step (pauses move it), on the calendar in force at this node then; NULL before
-- acceptance and while paused.
ALTER TABLE cases ADD COLUMN deadline TEXT;

-- Supervision records (督办) opened at the county on red cases. County-local: only the county
-- opens, reads and closes them, so they are not events (see domains/src/case/supervision.rs).
CREATE TABLE supervisions (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    case_id        TEXT    NOT NULL,
    case_number    TEXT    NOT NULL,
    item_code      TEXT    NOT NULL,
    holder         TEXT    NOT NULL,
    rule           TEXT    NOT NULL,   -- WarningRule, snake_case
    deadline       TEXT    NOT NULL,   -- the missed deadline, YYYY-MM-DD
    opened_ms      INTEGER NOT NULL,
    closed_ms      INTEGER,
    closed_by      TEXT,
    close_reason   TEXT
);
-- One record per case, rule and missed deadline: a later scan that finds it still red adds nothing.
CREATE UNIQUE INDEX supervisions_open ON supervisions (case_id, rule, deadline);
