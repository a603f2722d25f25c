//! The engine's own tables (node facts, the log, links, alarms) as embedded migrations, one
//! directory per backend (column types differ: `INTEGER PRIMARY KEY` and `BLOB` on SQLite,
//! `BIGINT`/`BIGSERIAL` and `BYTEA` on PostgreSQL). Each domain migrates its own tables through
//! its projection, with its own history table.

use sqlx::migrate::Migrator;

use super::{Backend, Pool, StoreError};

pub(super) async fn migrate(pool: &Pool, backend: Backend) -> Result<(), StoreError> {
    let mut migrator: Migrator = match backend {
        Backend::Sqlite => sqlx::migrate!("./migrations/sqlite"),
        Backend::Postgres => sqlx::migrate!("./migrations/postgres"),
    };
    migrator.dangerous_set_table_name("_migrations_engine");
    pool.migrate(&migrator).await?;
    Ok(())
}
