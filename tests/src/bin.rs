//! The real node executables (`county-node`, `township-node`, `village-node`) and processes
//! running them.
//!
//! `cargo test -p tests` does not build other packages' binaries, so [`node_binary`] builds them
//! (once per test process, with the test binary's profile) when they are missing or older than
//! any source they are built from, so a test never runs a binary that predates the engine. [`Daemon`] kills its process when dropped, so a failing test leaves nothing running.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use tongban_core::ids::NodeId;
use tongban_core::tls::TlsFiles;

/// The three node executables.
pub const NODE_BINARIES: [&str; 3] = ["county-node", "township-node", "village-node"];

/// `target/<profile>` of the running test binary (which lives in `target/<profile>/deps`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("cannot find the test executable: {e}"));
    let deps = exe
        .parent()
        .unwrap_or_else(|| panic!("test executable {} has no directory", exe.display()));
    let dir = if deps.file_name().is_some_and(|n| n == "deps") {
        deps.parent().unwrap_or(deps)
    } else {
        deps
    };
    dir.to_owned()
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Builds the node binaries with cargo, in the test binary's profile and target directory.
fn build_binaries(profile_dir: &Path) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_owned());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("debug")
        .to_owned();
    let mut command = Command::new(&cargo);
    command.arg("build").arg("--manifest-path").arg(&manifest);
    for name in NODE_BINARIES {
        command.arg("-p").arg(name);
    }
    match profile.as_str() {
        "debug" => {}
        "release" => {
            command.arg("--release");
        }
        other => {
            command.arg("--profile").arg(other);
        }
    }
    if let Some(target_dir) = profile_dir.parent() {
        command.arg("--target-dir").arg(target_dir);
    }
    eprintln!("building the node binaries: {command:?}");
    let status = command.status().map_err(|e| format!("cannot run {cargo}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{command:?}` failed with {status}"))
    }
}

/// The newest modification time of any source the node binaries are built from.
fn newest_source() -> Option<SystemTime> {
    fn walk(path: &Path, newest: &mut Option<SystemTime>) {
        let Ok(meta) = std::fs::metadata(path) else { return };
        if meta.is_dir() {
            if path.file_name().is_some_and(|n| n == "target") {
                return;
            }
            if let Ok(entries) = std::fs::read_dir(path) {
                for entry in entries.flatten() {
                    walk(&entry.path(), newest);
                }
            }
        } else if let Ok(modified) = meta.modified() {
            *newest = (*newest).max(Some(modified));
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut newest = None;
    for part in [
        "Cargo.toml",
        "Cargo.lock",
        "proto",
        "tongban-core",
        "county-node",
        "township-node",
        "village-node",
    ] {
        walk(&root.join(part), &mut newest);
    }
    newest
}

/// Path of the node executable `name` (one of [`NODE_BINARIES`]), built first if any of them is
/// missing or older than the sources it is built from.
pub fn node_binary(name: &str) -> PathBuf {
    assert!(NODE_BINARIES.contains(&name), "{name} is not a node binary");
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let dir = profile_dir();
        let sources = newest_source();
        let stale = NODE_BINARIES.iter().any(|n| match (modified(&dir.join(n)), sources) {
            (None, _) => true,
            (Some(bin), Some(src)) => bin < src,
            (Some(_), None) => false,
        });
        if stale {
            build_binaries(&dir)?;
        }
        Ok(dir)
    });
    match dir {
        Ok(dir) => {
            let path = dir.join(name);
            assert!(path.exists(), "{} does not exist after building it", path.display());
            path
        }
        Err(e) => panic!("cannot provide the node binaries: {e}"),
    }
}

/// A free loopback port (bound and released; a short race with other processes is accepted).
pub fn free_addr() -> SocketAddr {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("cannot bind a loopback port: {e}"));
    listener
        .local_addr()
        .unwrap_or_else(|e| panic!("bound socket has no address: {e}"))
}

/// The TOML configuration of a node, in the documented format.
pub struct NodeToml<'a> {
    pub node_id: &'a str,
    pub listen: SocketAddr,
    pub parent: Option<SocketAddr>,
    pub data_dir: &'a Path,
    pub tls: &'a TlsFiles,
    /// Extra lines for the `[sync]` section, e.g. `batch_events = 200`.
    pub sync: &'a str,
}

impl NodeToml<'_> {
    pub fn render(&self) -> String {
        let quote = |p: &Path| format!("{:?}", p.display().to_string());
        let mut out = format!("node_id = {:?}\nlisten = \"{}\"\n", self.node_id, self.listen);
        if let Some(parent) = self.parent {
            out.push_str(&format!("parent = \"https://{parent}\"\n"));
        }
        out.push_str(&format!("data_dir = {}\n", quote(self.data_dir)));
        out.push_str(&format!(
            "\n[tls]\nca = {}\ncert = {}\nkey = {}\n",
            quote(&self.tls.ca),
            quote(&self.tls.cert),
            quote(&self.tls.key)
        ));
        out.push_str("\n[log]\nfilter = \"info\"\n");
        if !self.sync.is_empty() {
            out.push_str(&format!("\n[sync]\n{}\n", self.sync));
        }
        out
    }

    /// Writes the configuration to `path`.
    pub fn write(&self, path: &Path) {
        std::fs::write(path, self.render()).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }
}

/// A command for a node executable with no `TONGBAN_*` variables inherited (they would override
/// the configuration file under test).
pub fn node_command(binary: &str) -> Command {
    let mut command = Command::new(node_binary(binary));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("TONGBAN_") {
            command.env_remove(key);
        }
    }
    command.stdin(Stdio::null());
    command
}

/// Runs a node executable to completion with `args`, returning its exit status and stderr;
/// panics if it is still running after `timeout` (it is killed then).
pub fn run_to_exit(binary: &str, args: &[&str], timeout: Duration) -> (ExitStatus, String) {
    let mut child = node_command(binary)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{binary} {args:?} was still running after {timeout:?}");
            }
            Err(e) => panic!("cannot wait for {binary}: {e}"),
        }
    }
    let output = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("cannot collect {binary}'s output: {e}"));
    (output.status, String::from_utf8_lossy(&output.stderr).into_owned())
}

/// A node running as a real process. Killed (SIGKILL) when dropped.
pub struct Daemon {
    pub node_id: NodeId,
    pub addr: SocketAddr,
    binary: &'static str,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    starts: u32,
}

impl Daemon {
    /// Starts `binary serve --config <config>`; its output goes to `log` (appended across restarts).
    pub fn start(binary: &'static str, node_id: NodeId, addr: SocketAddr, config: PathBuf, log: PathBuf) -> Daemon {
        let mut daemon = Daemon {
            node_id,
            addr,
            binary,
            config,
            log,
            child: None,
            starts: 0,
        };
        daemon.spawn();
        daemon
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.node_id);
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", self.log.display()));
        let err = log
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot clone a log handle: {e}"));
        let child = node_command(self.binary)
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .stdout(log)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {} for {}: {e}", self.binary, self.node_id));
        self.child = Some(child);
        self.starts += 1;
    }

    /// The process's log so far (for failure messages).
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Waits until the node accepts TCP connections; panics (with its log) if it exits first.
    pub async fn wait_listening(&mut self, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "{} {} exited with {status} before listening; log:\n{}",
                    self.binary,
                    self.node_id,
                    self.log_tail()
                );
            }
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "{} {} is not listening on {} after {timeout:?}; log:\n{}",
                    self.binary,
                    self.node_id,
                    self.addr,
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `kill -9`: the process gets no chance to flush or say goodbye.
    pub fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child
                .kill()
                .unwrap_or_else(|e| panic!("cannot kill {}: {e}", self.node_id));
            let _ = child.wait();
        }
    }

    /// Starts the process again with the same configuration.
    pub fn restart(&mut self) {
        self.spawn();
    }

    /// How many times the process was started.
    pub fn starts(&self) -> u32 {
        self.starts
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
