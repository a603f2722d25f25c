-- The catalogue projection: versions applied and the items as of the latest (SQLite).

CREATE TABLE catalogue_versions (
    version      INTEGER PRIMARY KEY,
    content_hash BLOB    NOT NULL,
    item_count   INTEGER NOT NULL,
    upserts      INTEGER NOT NULL,
    removals     INTEGER NOT NULL,
    note         TEXT    NOT NULL,
    source       TEXT    NOT NULL,
    published_ms INTEGER NOT NULL,
    published_by TEXT    NOT NULL
);

-- The catalogue as of the latest applied version.
CREATE TABLE catalogue_items (
    implementation_code TEXT PRIMARY KEY,
    item_code           TEXT    NOT NULL,
    name                TEXT    NOT NULL,
    domain              TEXT    NOT NULL,
    category            INTEGER NOT NULL,
    delegation          INTEGER NOT NULL,
    item_hash           BLOB    NOT NULL,
    body                BLOB    NOT NULL,   -- CatalogueItem, protobuf
    since_version       INTEGER NOT NULL
);
CREATE INDEX catalogue_items_code ON catalogue_items (item_code);
