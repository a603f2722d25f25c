-- What a warning list needs without reading each case's whole view.

-- The item's name, for the list.
ALTER TABLE cases ADD COLUMN item_name TEXT NOT NULL DEFAULT '';
-- tongban_domains::case::warnings::CaseClock as JSON while any time-limit clock can still run (also
-- while paused); NULL once none can.
ALTER TABLE cases ADD COLUMN clock TEXT;
-- The first day ("YYYY-MM-DD") on which one of the case's running clocks is yellow or red, on
-- the calendar and thresholds named by node_meta 'warning_basis'; NULL while paused or when no
-- clock runs. A warning list reads only rows with warn_from <= today.
ALTER TABLE cases ADD COLUMN warn_from TEXT;
CREATE INDEX cases_warn_from ON cases (warn_from);
CREATE INDEX cases_township_warn_from ON cases (township, warn_from);
