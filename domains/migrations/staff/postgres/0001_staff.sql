-- The rosters of the service centres (postgres): every node's own and, since roster changes travel
-- up the tree, those of the nodes below it. Folded from RosterChange events.

-- Numbered windows of a centre. `kind` is the snake_case name of
-- tongban_domains::staff::WindowKind; `open` is 1 or 0.
CREATE TABLE staff_windows (
    node   TEXT    NOT NULL,
    number BIGINT NOT NULL,
    kind   TEXT    NOT NULL,
    label  TEXT    NOT NULL,
    open   BIGINT NOT NULL,
    PRIMARY KEY (node, number)
);

-- Members of a centre's staff; `member` is tongban_domains::staff::Member as JSON, `active`
-- is copied out of it (1 or 0) for the lists.
CREATE TABLE staff_members (
    node     TEXT    NOT NULL,
    staff_no TEXT    NOT NULL,
    member   TEXT    NOT NULL,
    active   BIGINT NOT NULL,
    PRIMARY KEY (node, staff_no)
);

-- Which member each operator certificate name of a centre is: one member per name.
CREATE TABLE staff_logins (
    node     TEXT NOT NULL,
    login    TEXT NOT NULL,
    staff_no TEXT NOT NULL,
    PRIMARY KEY (node, login)
);
