//! A node binary given a bad configuration stops at once with exit code 2 and one sentence on
//! stderr that names the problem, instead of starting half-configured.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use tests::bin::{NodeBinary, NodeToml, free_addr, run_to_exit, run_to_exit_with_env};
use tests::{COUNTY, T1, T2, id, setup};
use tongban_domains::pki::{self, PkiLayout};
use tongban_domains::tls::TlsFiles;

/// How long a binary may take to refuse a configuration (it should take milliseconds).
const REFUSAL: Duration = Duration::from_secs(30);

/// The binary every refusal here is asked of.
const TOWNSHIP: NodeBinary = tests::node_binary!("township-node");

struct Fixture {
    dir: tempfile::TempDir,
    layout: PkiLayout,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let layout = pki::init_dir(&dir.path().join("pki"), &[id(COUNTY), id(T1), id(T2)], &[]).unwrap();
        Fixture { dir, layout }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn tls(&self, node: &str) -> TlsFiles {
        TlsFiles::node(&self.layout, &id(node))
    }

    /// A valid configuration of `node` as TOML text.
    fn valid(&self, node: &str, parent: bool) -> String {
        NodeToml {
            node_id: node,
            listen: free_addr(),
            parent: parent.then(free_addr),
            data_dir: &self.path("data"),
            tls: &self.tls(node),
            sync: "",
        }
        .render()
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// Runs `binary serve --config path` and checks it exits with code 2 and a stderr containing
/// every one of `needles`.
fn assert_refused(binary: NodeBinary, config: &Path, case: &str, needles: &[&str]) {
    let (status, stderr) = run_to_exit(binary, &["serve", "--config", config.to_str().unwrap()], REFUSAL);
    assert_eq!(
        status.code(),
        Some(2),
        "{case}: {} exited with {status}; stderr:\n{stderr}",
        binary.name
    );
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "{case}: stderr does not mention {needle:?}:\n{stderr}"
        );
    }
    assert!(
        stderr.lines().count() <= 3,
        "{case}: expected a short message, got:\n{stderr}"
    );
}

#[test]
fn bad_config_fails_clearly() {
    setup();
    let fx = Fixture::new();

    // (1) The file does not exist.
    let missing = fx.path("nowhere/township.toml");
    assert_refused(
        TOWNSHIP,
        &missing,
        "missing file",
        &["does not exist", "nowhere/township.toml"],
    );

    // (2) A township without `parent`.
    let config = fx.write("no-parent.toml", &fx.valid(T1, false));
    assert_refused(TOWNSHIP, &config, "missing parent", &["441424100", "needs `parent`"]);

    // (3) A malformed node id.
    let text = fx
        .valid(T1, true)
        .replace("node_id = \"441424100\"", "node_id = \"44142410\"");
    let config = fx.write("bad-id.toml", &text);
    assert_refused(
        TOWNSHIP,
        &config,
        "malformed node id",
        &["44142410", "6, 9 or 12 digits"],
    );

    // (4) A county's configuration given to the township binary.
    let config = fx.write("county.toml", &fx.valid(COUNTY, false));
    assert_refused(
        TOWNSHIP,
        &config,
        "county config",
        &["441424 is a county node", "township-node", "use county-node"],
    );

    // More of the same kind: a misspelt key, a parent that is not https, a missing key file.
    let text = fx.valid(T1, true).replace("listen =", "lisen =");
    let config = fx.write("typo.toml", &text);
    assert_refused(TOWNSHIP, &config, "misspelt key", &["lisen"]);

    let text = fx.valid(T1, true).replace("parent = \"https://", "parent = \"http://");
    let config = fx.write("http.toml", &text);
    assert_refused(TOWNSHIP, &config, "plain-http parent", &["must be an https:// address"]);

    std::fs::remove_file(fx.tls(T1).key).unwrap();
    let config = fx.write("no-key.toml", &fx.valid(T1, true));
    assert_refused(
        TOWNSHIP,
        &config,
        "missing key file",
        &["cannot read private key", "441424100.key"],
    );
}

/// A configuration whose certificate names another node is as bad as any other bad
/// configuration: `check` must not call it valid, and `serve` must exit with code 2.
#[test]
fn a_certificate_for_another_node_is_a_bad_config() {
    setup();
    let fx = Fixture::new();
    let text = NodeToml {
        node_id: T1,
        listen: free_addr(),
        parent: Some(free_addr()),
        data_dir: &fx.path("data"),
        tls: &fx.tls(T2),
        sync: "",
    }
    .render();
    let config = fx.write("wrong-cert.toml", &text);
    let (status, stderr) = run_to_exit(TOWNSHIP, &["check", "--config", config.to_str().unwrap()], REFUSAL);
    assert_eq!(
        status.code(),
        Some(2),
        "`check` accepted a certificate for another node; stderr:\n{stderr}"
    );
    assert_refused(
        TOWNSHIP,
        &config,
        "certificate for another node",
        &["node:441424101", "441424100"],
    );
}

/// An operator exports the command line's variables in the same shell, on the same machine, as
/// a node runs: a node reads only `TONGBAN_NODE_*`, so `TONGBAN_CLI_*` (and the names the command
/// line used before, such as `TONGBAN_CA`) leave its configuration alone, while its own prefix
/// still overrides the file.
#[test]
fn the_command_lines_variables_do_not_reach_a_node() {
    setup();
    let fx = Fixture::new();
    let config = fx.write("township.toml", &fx.valid(T1, true));
    let check = ["check", "--config", config.to_str().unwrap()];
    let elsewhere = "/nowhere/ca.pem";
    let cli = [
        ("TONGBAN_CLI_NODE", "https://127.0.0.1:7000"),
        ("TONGBAN_CLI_CA", elsewhere),
        ("TONGBAN_CLI_CERT", "/nowhere/441424-admin.pem"),
        ("TONGBAN_CLI_KEY", "/nowhere/441424-admin.key"),
        ("TONGBAN_CLI_QUEUE", "/nowhere/pda.db"),
        ("TONGBAN_CA", elsewhere),
        ("TONGBAN_SIM_SEED", "7"),
    ];
    let (status, stderr) = run_to_exit_with_env(TOWNSHIP, &check, &cli, REFUSAL);
    assert!(
        status.success(),
        "the command line's variables broke the node's configuration ({status}):\n{stderr}"
    );

    let (status, stderr) = run_to_exit_with_env(TOWNSHIP, &check, &[("TONGBAN_NODE_TLS__CA", elsewhere)], REFUSAL);
    assert_eq!(
        status.code(),
        Some(2),
        "TONGBAN_NODE_TLS__CA must override the file's CA; stderr:\n{stderr}"
    );
    assert!(stderr.contains(elsewhere), "the overriding CA is named: {stderr}");
}
