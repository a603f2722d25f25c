-- The county's letters of entrustment (sqlite): one row per township and class of entrusted
-- items (government_service or public_service), the latest letter replacing an earlier one.
-- `item_codes` is a JSON array of basic item codes, empty for the whole class; `revoked` is
-- 1 or 0; `issued_seq` is the county event that issued it.
CREATE TABLE entrustment_letters (
    township      TEXT    NOT NULL,
    item_class    TEXT    NOT NULL,
    letter_number TEXT    NOT NULL,
    letter_date   TEXT    NOT NULL,
    item_codes    TEXT    NOT NULL,
    revoked       INTEGER NOT NULL,
    issued_seq    INTEGER NOT NULL,
    PRIMARY KEY (township, item_class)
);
