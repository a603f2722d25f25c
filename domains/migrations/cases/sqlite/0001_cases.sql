-- The case projection and the daily receipt numbers (SQLite).

-- One row per case routed to this node (the node where it started and every ancestor). `view`
-- is the whole projection, tongban_domains::case::CaseView as JSON; the other columns repeat what
-- the list filters and their indexes need.
CREATE TABLE cases (
    case_id             TEXT PRIMARY KEY,
    case_number         TEXT    NOT NULL UNIQUE,
    origin              TEXT    NOT NULL,   -- the node where the case started
    holder              TEXT    NOT NULL,   -- the only node that may move it now
    state               TEXT    NOT NULL,   -- StateKind, snake_case ("accepted")
    item_code           TEXT    NOT NULL,
    implementation_code TEXT    NOT NULL,
    delegation          TEXT    NOT NULL,   -- DelegationMode, snake_case
    township            TEXT    NOT NULL,   -- the township on the case's path (its front desk)
    opened_ms           INTEGER NOT NULL,
    updated_ms          INTEGER NOT NULL,
    view                TEXT    NOT NULL
);
-- Lists are newest first, with (opened_ms, case_id) as the page key.
CREATE INDEX cases_newest ON cases (opened_ms, case_id);
CREATE INDEX cases_state ON cases (state, opened_ms, case_id);
CREATE INDEX cases_holder ON cases (holder, opened_ms, case_id);
CREATE INDEX cases_item ON cases (item_code, opened_ms, case_id);
CREATE INDEX cases_implementation ON cases (implementation_code, opened_ms, case_id);
CREATE INDEX cases_township ON cases (township, state);

-- The next daily sequence of receipt numbers per node and China Standard Time date, moved in the
-- transaction that stores each case opening.
CREATE TABLE case_numbers (
    node     TEXT    NOT NULL,
    day      TEXT    NOT NULL,   -- YYYYMMDD
    next_seq INTEGER NOT NULL,
    PRIMARY KEY (node, day)
);
