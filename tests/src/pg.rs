//! A throwaway PostgreSQL server for one test (pitfall 13): `initdb` into a temporary directory,
//! `pg_ctl start` on a free loopback port, databases made on demand, and `pg_ctl stop -m
//! immediate` plus removal of the directory when dropped.
//!
//! `initdb` refuses to run as root, so as root the directory is handed to the `postgres` user and
//! the server commands run through `runuser -u postgres --`. Without PostgreSQL binaries,
//! [`TempPostgres::start`] returns `None` and the test says it is skipping — except when the
//! environment variable `CI` is `true`: CI always installs PostgreSQL, so there its absence is a
//! failure, not a reason to pass without running.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// What a test prints when it cannot run for lack of PostgreSQL.
pub const SKIP_MESSAGE: &str =
    "skipping: no PostgreSQL binaries (initdb/pg_ctl) found (with CI=true this would fail instead)";

/// A throwaway server with a database for the county, as the store list a cluster takes (see
/// `tree::cluster`); `None`, after printing [`SKIP_MESSAGE`], when no PostgreSQL binaries exist.
/// Keep the returned server alive for as long as the cluster runs.
pub fn county_on_postgres() -> Option<(
    TempPostgres,
    Vec<(tongban_domains::ids::NodeId, tongban_domains::store::StoreLocation)>,
)> {
    let Some(pg) = TempPostgres::start() else {
        eprintln!("{SKIP_MESSAGE}");
        return None;
    };
    pg.create_database("tongban_county");
    let stores = vec![(
        crate::id(crate::COUNTY),
        tongban_domains::store::StoreLocation::Url(pg.url("tongban_county")),
    )];
    Some((pg, stores))
}

/// The user the server runs as when the tests run as root.
const SERVER_USER: &str = "postgres";

/// The superuser `initdb` creates; connections trust it on loopback.
const SUPERUSER: &str = "tongban";

/// A running throwaway server.
pub struct TempPostgres {
    bin: PathBuf,
    // Holds the data and socket directories; removed after the server stops.
    dir: tempfile::TempDir,
    data: PathBuf,
    port: u16,
    as_postgres: bool,
}

/// The directory holding `initdb` and `pg_ctl`: from `PATH` (symlinks resolved, so the server
/// binaries beside them are found), or the newest `/usr/lib/postgresql/*/bin`.
fn find_bin_dir() -> Option<PathBuf> {
    let from_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths).find_map(|dir| {
            let initdb = dir.join("initdb");
            let real = std::fs::canonicalize(&initdb).ok()?;
            let bin = real.parent()?.to_owned();
            bin.join("pg_ctl").exists().then_some(bin)
        })
    });
    if from_path.is_some() {
        return from_path;
    }
    let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version: u32 = entry.file_name().to_str()?.split('.').next()?.parse().ok()?;
            let bin = entry.path().join("bin");
            (bin.join("initdb").exists() && bin.join("pg_ctl").exists()).then_some((version, bin))
        })
        .collect();
    candidates.sort();
    candidates.pop().map(|(_, bin)| bin)
}

/// Whether PostgreSQL must be present: `CI` is set to `true` (as CI services set it).
fn must_have_postgres() -> bool {
    std::env::var("CI").is_ok_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

fn check(what: &str, output: std::io::Result<Output>) -> Result<Output, String> {
    let output = output.map_err(|e| format!("{what}: cannot run: {e}"))?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(format!(
            "{what} failed with {}:\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

impl TempPostgres {
    /// Starts a server, or returns `None` when no PostgreSQL binaries are installed. Panics when
    /// the binaries exist but the server cannot be started (that is a real failure).
    ///
    /// Panics instead of returning `None` when `CI=true` (see the module comment).
    pub fn start() -> Option<TempPostgres> {
        let Some(bin) = find_bin_dir() else {
            if must_have_postgres() {
                panic!(
                    "CI=true but no PostgreSQL binaries (initdb/pg_ctl) were found on PATH or under \
                     /usr/lib/postgresql/*/bin: the PostgreSQL scenarios must run in CI"
                );
            }
            return None;
        };
        match TempPostgres::start_with(bin) {
            Ok(pg) => Some(pg),
            Err(e) => panic!("PostgreSQL binaries exist but a test server did not start: {e}"),
        }
    }

    fn start_with(bin: PathBuf) -> Result<TempPostgres, String> {
        let as_postgres = running_as_root();
        let dir = tempfile::Builder::new()
            .prefix("tongban-pg-")
            .tempdir()
            .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
        let data = dir.path().join("data");
        let sockets = dir.path().join("sockets");
        std::fs::create_dir(&sockets).map_err(|e| format!("cannot create {}: {e}", sockets.display()))?;
        if as_postgres {
            check(
                "chown",
                Command::new("chown")
                    .arg("-R")
                    .arg(format!("{SERVER_USER}:"))
                    .arg(dir.path())
                    .output(),
            )?;
        }
        let port = crate::bin::free_addr().port();
        let pg = TempPostgres {
            bin,
            dir,
            data,
            port,
            as_postgres,
        };
        check(
            "initdb",
            pg.server_command("initdb")
                .arg("-D")
                .arg(&pg.data)
                .args(["-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"])
                .output(),
        )?;
        // No autovacuum: its transactions would count in `pg_stat_database` beside the store's
        // own (see `committed_transactions`), and a throwaway server needs no vacuuming.
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50 -c autovacuum=off",
            sockets.display()
        );
        let log = pg.dir.path().join("server.log");
        let started = check(
            "pg_ctl start",
            pg.server_command("pg_ctl")
                .arg("-D")
                .arg(&pg.data)
                .arg("-l")
                .arg(&log)
                .arg("-o")
                .arg(&options)
                .args(["-w", "-t", "60", "start"])
                .output(),
        );
        if let Err(e) = started {
            let server_log = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!("{e}\nserver log:\n{server_log}"));
        }
        Ok(pg)
    }

    /// A server binary run as the server user (through `runuser` when we are root), from the
    /// temporary directory so it never needs to read the caller's working directory.
    fn server_command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", SERVER_USER, "--"]).arg(path);
            c
        } else {
            Command::new(path)
        };
        command.current_dir(self.dir.path());
        command
    }

    /// Creates database `name` (owned by the superuser).
    pub fn create_database(&self, name: &str) {
        let created = check(
            "createdb",
            Command::new(self.bin.join("createdb"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", SUPERUSER, name])
                .current_dir(self.dir.path())
                .output(),
        );
        if let Err(e) = created {
            panic!("cannot create database {name}: {e}");
        }
    }

    /// The URL of database `db`: `postgres://tongban@127.0.0.1:PORT/db`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{db}", self.port)
    }

    /// How many transactions database `db` has committed (`pg_stat_database.xact_commit`),
    /// read once no session is connected to it any more: a backend publishes its statistics
    /// when it exits, before it leaves `pg_stat_activity`, so the count is then complete.
    /// Close every pool on `db` first. Read over a connection to the `postgres` database, so the
    /// reading itself is not counted.
    pub async fn committed_transactions(&self, db: &str) -> i64 {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&self.url("postgres"))
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the test server's postgres database: {e}"));
        let what = format!("every session on {db} to end");
        crate::wait::wait_for(crate::wait::TIMEOUT, &what, || {
            let pool = pool.clone();
            async move {
                let sessions: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pg_stat_activity WHERE datname = $1")
                    .bind(db.to_owned())
                    .fetch_one(&pool)
                    .await
                    .map_err(|e| e.to_string())?;
                if sessions == 0 {
                    Ok(())
                } else {
                    Err(format!("{sessions} sessions still connected"))
                }
            }
        })
        .await;
        let commits: i64 = sqlx::query_scalar("SELECT xact_commit FROM pg_stat_database WHERE datname = $1")
            .bind(db.to_owned())
            .fetch_one(&pool)
            .await
            .unwrap_or_else(|e| panic!("cannot read pg_stat_database for {db}: {e}"));
        pool.close().await;
        commits
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn data_dir(&self) -> &Path {
        &self.data
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        let _ = self
            .server_command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
        // The TempDir removes the directory (we are root, or its owner) after this.
    }
}
