//! Embedded migrations, one directory per backend (column types differ: `INTEGER PRIMARY KEY`
//! and `BLOB` on SQLite, `BIGINT`/`BIGSERIAL` and `BYTEA` on PostgreSQL).

use sqlx::AnyPool;
use sqlx::migrate::Migrator;

use super::{Backend, StoreError};

static SQLITE: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("./migrations/postgres");

pub(super) async fn migrate(pool: &AnyPool, backend: Backend) -> Result<(), StoreError> {
    match backend {
        Backend::Sqlite => SQLITE.run(pool).await?,
        Backend::Postgres => POSTGRES.run(pool).await?,
    }
    Ok(())
}
