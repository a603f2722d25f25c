//! The real node executables (`county-node`, `township-node`, `village-node`) and processes
//! running them.
//!
//! The executables are targets of this package (`src/bin/test-*-node.rs`, each exactly its tier
//! crate's `main`), so Cargo builds them before the scenarios and tells the scenarios where
//! they are through `CARGO_BIN_EXE_<name>`; no test runs Cargo. That variable exists only while
//! an integration test is compiled, so the scenarios name a binary with the [`node_binary!`]
//! macro, which expands in the test itself. [`Daemon`] kills its process when dropped, so a
//! failing test leaves nothing running.
//!
//! [`node_binary!`]: crate::node_binary

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use tongban_domains::ids::NodeId;
use tongban_domains::tls::TlsFiles;

use crate::wait::{deadline_in, wait_until, wait_until_blocking};

/// One node executable: the tier binary it stands for (`county-node`, ...) and the path Cargo
/// built it at. Made by [`node_binary!`](crate::node_binary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeBinary {
    pub name: &'static str,
    pub path: &'static str,
}

/// The [`NodeBinary`] for `"county-node"`, `"township-node"` or `"village-node"`, from
/// `CARGO_BIN_EXE_test-<tier>-node` (set by Cargo while the calling test is compiled).
#[macro_export]
macro_rules! node_binary {
    ("county-node") => {
        $crate::bin::NodeBinary {
            name: "county-node",
            path: env!("CARGO_BIN_EXE_test-county-node"),
        }
    };
    ("township-node") => {
        $crate::bin::NodeBinary {
            name: "township-node",
            path: env!("CARGO_BIN_EXE_test-township-node"),
        }
    };
    ("village-node") => {
        $crate::bin::NodeBinary {
            name: "village-node",
            path: env!("CARGO_BIN_EXE_test-village-node"),
        }
    };
}

impl NodeBinary {
    /// The executable's path; panics if Cargo did not build it.
    pub fn path(&self) -> PathBuf {
        let path = PathBuf::from(self.path);
        assert!(path.exists(), "{} ({}) has not been built", self.name, path.display());
        path
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

/// A command for a node executable with no `TONGBAN_*` variables inherited (the node's own,
/// `TONGBAN_NODE_*`, would override the configuration file under test).
pub fn node_command(binary: NodeBinary) -> Command {
    let mut command = Command::new(binary.path());
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
pub fn run_to_exit(binary: NodeBinary, args: &[&str], timeout: Duration) -> (ExitStatus, String) {
    run_to_exit_with_env(binary, args, &[], timeout)
}

/// [`run_to_exit`] with these environment variables set.
pub fn run_to_exit_with_env(
    binary: NodeBinary,
    args: &[&str],
    env: &[(&str, &str)],
    timeout: Duration,
) -> (ExitStatus, String) {
    let name = binary.name;
    let mut child = node_command(binary)
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    let what = format!("{name} {args:?} to exit");
    let exited = wait_until_blocking(std::time::Instant::now() + timeout, &what, || match child.try_wait() {
        Ok(Some(status)) => Ok(status),
        Ok(None) => Err("still running".to_owned()),
        Err(e) => panic!("cannot wait for {name}: {e}"),
    });
    if let Err(e) = exited {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{e}");
    }
    let output = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("cannot collect {name}'s output: {e}"));
    (output.status, String::from_utf8_lossy(&output.stderr).into_owned())
}

/// A node running as a real process. Killed (SIGKILL) when dropped.
pub struct Daemon {
    pub node_id: NodeId,
    pub addr: SocketAddr,
    binary: NodeBinary,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    starts: u32,
}

impl Daemon {
    /// Starts `binary serve --config <config>`; its output goes to `log` (appended across restarts).
    pub fn start(binary: NodeBinary, node_id: NodeId, addr: SocketAddr, config: PathBuf, log: PathBuf) -> Daemon {
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
            .unwrap_or_else(|e| panic!("cannot start {} for {}: {e}", self.binary.name, self.node_id));
        self.child = Some(child);
        self.starts += 1;
    }

    /// The process's log so far (for failure messages).
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Waits until the node accepts TCP connections; panics (with its log) if it exits first or
    /// is not listening after `timeout`.
    pub async fn wait_listening(&mut self, timeout: Duration) {
        let what = format!("{} {} to listen on {}", self.binary.name, self.node_id, self.addr);
        let addr = self.addr;
        let child = &mut self.child;
        let listening = wait_until(deadline_in(timeout), &what, || {
            let exited = match child.as_mut().map(Child::try_wait) {
                Some(Ok(Some(status))) => Some(status),
                _ => None,
            };
            async move {
                if let Some(status) = exited {
                    return Ok(Err(format!("exited with {status} before listening")));
                }
                match tokio::net::TcpStream::connect(addr).await {
                    Ok(_) => Ok(Ok(())),
                    Err(e) => Err(format!("connecting: {e}")),
                }
            }
        })
        .await;
        match listening {
            Ok(Ok(())) => {}
            Ok(Err(exited)) => panic!("{what}: {exited}; log:\n{}", self.log_tail()),
            Err(e) => panic!("{e}; log:\n{}", self.log_tail()),
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
