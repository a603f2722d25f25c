-- The working-day calendars the county published (PostgreSQL).

-- Every calendar the county published (CalendarPublished events), keyed by the county event's
-- sequence number: the county authors them in order, so the highest one is the one in force.
-- `calendar` is tongban_domains::calendar::WorkingCalendar as JSON.
CREATE TABLE calendars (
    published_seq BIGINT PRIMARY KEY,
    name          TEXT    NOT NULL,
    version       TEXT    NOT NULL,
    published_ms  BIGINT NOT NULL,
    calendar      TEXT    NOT NULL
);
