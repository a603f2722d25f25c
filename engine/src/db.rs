//! Typed access to the two storage backends: a [`Pool`] and a write transaction ([`WriteTx`])
//! that are either SQLite's or PostgreSQL's, never sqlx's `Any`.
//!
//! `Any` converted every bound argument and every row between its own value type and the
//! driver's on each statement; on the log's insert and read paths that conversion and the row
//! copies it made were among the top costs. Here each statement is written once and compiled
//! for both backends by [`with_pool!`](crate::with_pool) and [`with_tx!`](crate::with_tx): the
//! macro matches the backend and runs the same code on the typed connection, so binds and
//! decodes go straight to the driver. Results leave the macro as plain Rust values (tuples from
//! `query_as`, scalars), which is what keeps callers backend-neutral.

use sqlx::{PgPool, Postgres, Sqlite, SqlitePool, Transaction};

/// Which database engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgresql",
        }
    }
}

/// A connection pool on one of the backends. Cheap to clone (the pools are `Arc`s inside).
#[derive(Debug, Clone)]
pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Pool {
    pub fn backend(&self) -> Backend {
        match self {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Begins a write transaction. On SQLite it takes the write lock up front (`BEGIN
    /// IMMEDIATE`): a deferred transaction that reads first and writes later fails with
    /// SQLITE_BUSY_SNAPSHOT when another connection wrote in between, which no timeout cures.
    pub async fn begin_write(&self) -> Result<WriteTx, sqlx::Error> {
        Ok(match self {
            Pool::Sqlite(pool) => WriteTx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
            Pool::Postgres(pool) => WriteTx::Postgres(pool.begin().await?),
        })
    }

    pub async fn close(&self) {
        match self {
            Pool::Sqlite(pool) => pool.close().await,
            Pool::Postgres(pool) => pool.close().await,
        }
    }

    pub fn is_closed(&self) -> bool {
        match self {
            Pool::Sqlite(pool) => pool.is_closed(),
            Pool::Postgres(pool) => pool.is_closed(),
        }
    }

    /// Runs `migrator` on this pool.
    pub async fn migrate(&self, migrator: &sqlx::migrate::Migrator) -> Result<(), sqlx::migrate::MigrateError> {
        match self {
            Pool::Sqlite(pool) => migrator.run(pool).await,
            Pool::Postgres(pool) => migrator.run(pool).await,
        }
    }
}

/// An open write transaction on one of the backends. Dropped without [`WriteTx::commit`], it
/// rolls back.
#[derive(Debug)]
pub enum WriteTx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

impl WriteTx {
    pub fn backend(&self) -> Backend {
        match self {
            WriteTx::Sqlite(_) => Backend::Sqlite,
            WriteTx::Postgres(_) => Backend::Postgres,
        }
    }

    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            WriteTx::Sqlite(tx) => tx.commit().await,
            WriteTx::Postgres(tx) => tx.commit().await,
        }
    }

    /// Runs one statement without arguments (savepoints and the like).
    pub async fn execute_plain(&mut self, statement: &'static str) -> Result<(), sqlx::Error> {
        crate::with_tx!(self, conn => sqlx::query(statement).execute(conn).await.map(|_| ()))
    }
}

/// Runs `$body` with `$conn` bound to the typed pool (`&SqlitePool` or `&PgPool`) of the
/// [`Pool`] `$pool`; the body is compiled once per backend. Use `$conn` as the executor.
///
/// ```ignore
/// let n: i64 = with_pool!(log.pool(), conn => sqlx::query_scalar("SELECT COUNT(*) FROM events").fetch_one(conn).await)?;
/// ```
#[macro_export]
macro_rules! with_pool {
    ($pool:expr, $conn:ident => $body:expr) => {
        match $pool {
            $crate::db::Pool::Sqlite($conn) => $body,
            $crate::db::Pool::Postgres($conn) => $body,
        }
    };
}

/// Runs `$body` with `$conn` bound to the typed connection (`&mut SqliteConnection` or `&mut
/// PgConnection`) of the [`WriteTx`] `$tx`; the body is compiled once per backend. Reborrow
/// (`&mut *$conn`) to run more than one statement.
#[macro_export]
macro_rules! with_tx {
    ($tx:expr, $conn:ident => $body:expr) => {
        match $tx {
            $crate::db::WriteTx::Sqlite(tx) => {
                let $conn = &mut **tx;
                $body
            }
            $crate::db::WriteTx::Postgres(tx) => {
                let $conn = &mut **tx;
                $body
            }
        }
    };
}
