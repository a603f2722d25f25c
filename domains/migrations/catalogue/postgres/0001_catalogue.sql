-- The catalogue projection: versions applied and the items as of the latest (PostgreSQL).

CREATE TABLE catalogue_versions (
    version      BIGINT PRIMARY KEY,
    content_hash BYTEA   NOT NULL,
    item_count   BIGINT  NOT NULL,
    upserts      BIGINT  NOT NULL,
    removals     BIGINT  NOT NULL,
    note         TEXT    NOT NULL,
    source       TEXT    NOT NULL,
    published_ms BIGINT  NOT NULL,
    published_by TEXT    NOT NULL
);

-- The catalogue as of the latest applied version.
CREATE TABLE catalogue_items (
    implementation_code TEXT PRIMARY KEY,
    item_code           TEXT    NOT NULL,
    name                TEXT    NOT NULL,
    domain              TEXT    NOT NULL,
    category            BIGINT  NOT NULL,
    delegation          BIGINT  NOT NULL,
    item_hash           BYTEA   NOT NULL,
    body                BYTEA   NOT NULL,   -- CatalogueItem, protobuf
    since_version       BIGINT  NOT NULL
);
CREATE INDEX catalogue_items_code ON catalogue_items (item_code);
