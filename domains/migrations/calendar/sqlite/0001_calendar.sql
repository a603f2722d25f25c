-- The working-day calendars the county published (SQLite).

-- Every calendar the county published (CalendarPublished events), keyed by the county event's
-- sequence number: the county authors them in order, so the highest one is the one in force.
-- `calendar` is tongban_domains::calendar::WorkingCalendar as JSON.
CREATE TABLE calendars (
    published_seq INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL,
    version       TEXT    NOT NULL,
    published_ms  INTEGER NOT NULL,
    calendar      TEXT    NOT NULL
);
