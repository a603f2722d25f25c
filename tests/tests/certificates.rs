//! Who may link and who may operate is decided by certificates: a node whose certificate names
//! another place, a node from a foreign CA, and operators acting outside their place are all
//! refused, with a status code a client can act on and a sentence a person can read.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use tests::bin::{NodeToml, free_addr, run_to_exit};
use tests::link::{FakeChild, LinkError};
use tests::{COUNTY, T1, T1_VILLAGES, T2, catalogue, id, ops, setup, tree};
use tokio::net::TcpListener;
use tongban_domains::config::SyncConfig;
use tongban_domains::ids::NodeId;
use tongban_domains::node::{NodeError, NodeSpec};
use tongban_domains::pki::{self, DevCa, Principal};
use tongban_domains::store::StoreLocation;
use tongban_domains::tls::{TlsFiles, TlsMaterial};
use tongban_proto::v1::{self as pb, node_client::NodeClient};
use tongban_testkit::cluster::Cluster;
use tonic::Code;

async fn try_link(
    cluster: &Cluster,
    parent: &NodeId,
    tls: &TlsMaterial,
    hello_id: &str,
) -> Result<FakeChild, LinkError> {
    FakeChild::connect(cluster.addr(parent).unwrap(), parent, tls, hello_id).await
}

fn refused(result: Result<FakeChild, LinkError>, what: &str) -> LinkError {
    match result {
        Ok(child) => panic!("{what}: the link was accepted (welcome {:?})", child.welcome),
        Err(e) => e,
    }
}

/// Panics if `node` shows a link row for any of `peers`, or shows it connected.
async fn assert_no_link(cluster: &Cluster, node: &NodeId, peers: &[&str]) {
    let status = ops::status(cluster, node).await;
    for peer in peers {
        assert!(
            ops::link(&status, peer).is_none(),
            "{node} shows a link for refused peer {peer}: {:?}",
            status.links
        );
        assert!(!cluster.node(node).unwrap().links.is_connected(peer));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_certificate_naming_another_place_is_refused() {
    setup();
    let dir = tempfile::tempdir().unwrap();
    let county = id(COUNTY);
    let mut cluster = tree::cluster(
        dir.path(),
        std::slice::from_ref(&county),
        Vec::new(),
        SyncConfig::default(),
    )
    .await;
    tree::start_linked(&mut cluster).await;

    // A village dialing the county directly instead of its township.
    let village = id(T1_VILLAGES[0]);
    let tls = ops::material(cluster.ca(), &Principal::Node(village.clone()));
    let err = refused(
        try_link(&cluster, &county, &tls, village.as_str()).await,
        "village at county",
    );
    assert_eq!(err.code(), Some(Code::PermissionDenied), "{err:?}");
    let sentence = err.explained();
    assert!(
        sentence.contains("not a direct child of 441424") && sentence.contains("a village links to 441424100"),
        "unreadable refusal: {sentence}"
    );

    // A township certificate for 441424101 used by something that says it is 441424100: the
    // contract (sync.proto) answers FAILED_PRECONDITION for an id that differs from the
    // certificate's.
    let tls = ops::material(cluster.ca(), &Principal::Node(id(T2)));
    let err = refused(
        try_link(&cluster, &county, &tls, T1).await,
        "hello naming another township",
    );
    assert_eq!(err.code(), Some(Code::FailedPrecondition), "{err:?}");
    assert!(
        err.explained().contains("441424100") && err.explained().contains("certificate is for 441424101"),
        "unreadable refusal: {}",
        err.explained()
    );

    // An operator certificate is not a node.
    let operator = Principal::operator(county.clone(), "admin").unwrap();
    let tls = ops::material(cluster.ca(), &operator);
    let err = refused(
        try_link(&cluster, &county, &tls, COUNTY).await,
        "operator opening a link",
    );
    assert_eq!(err.code(), Some(Code::PermissionDenied), "{err:?}");
    assert!(err.explained().contains("is not a node"), "{}", err.explained());

    assert_no_link(&cluster, &county, &[T1_VILLAGES[0], T1, T2]).await;

    // A node started as 441424100 with the certificate of 441424101 refuses to start at all.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let started = tongban_testkit::tiers::start(NodeSpec {
        node_id: id(T1),
        listener,
        parent_address: Some(format!("https://{}", cluster.addr(&county).unwrap())),
        store: StoreLocation::SqliteFile(dir.path().join("impostor.db")),
        tls: ops::material(cluster.ca(), &Principal::Node(id(T2))),
        sync: SyncConfig::default(),
        clock: std::sync::Arc::new(tongban_domains::calendar::SystemClock),
        settings: Default::default(),
    })
    .await;
    match started {
        Err(e @ NodeError::WrongCertificate { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("node:441424101") && text.contains("configured as node:441424100"),
                "{text}"
            );
        }
        Err(other) => panic!("expected WrongCertificate, got {other}"),
        Ok(_) => panic!("a node started with another node's certificate"),
    }
    cluster.stop_all().await;
}

/// The real `township-node` binary configured as 441424100 with 441424101's certificate files.
#[test]
fn the_township_binary_refuses_a_certificate_for_another_township() {
    setup();
    let dir = tempfile::tempdir().unwrap();
    let layout = pki::init_dir(&dir.path().join("pki"), &[id(COUNTY), id(T1), id(T2)], &[]).unwrap();
    let tls = TlsFiles::node(&layout, &id(T2));
    let config = dir.path().join("township.toml");
    NodeToml {
        node_id: T1,
        listen: free_addr(),
        parent: Some(free_addr()),
        data_dir: &dir.path().join("data"),
        tls: &tls,
        sync: "",
    }
    .write(&config);
    let (status, stderr) = run_to_exit(
        tests::node_binary!("township-node"),
        &["serve", "--config", config.to_str().unwrap()],
        Duration::from_secs(30),
    );
    assert!(
        !status.success(),
        "township-node ran with another township's certificate"
    );
    assert!(
        stderr.contains("certificate is for node:441424101") && stderr.contains("configured as node:441424100"),
        "stderr does not name the problem:\n{stderr}"
    );
}

/// TLS material for `node` from a CA foreign to `cluster` (another CA of the same county), that
/// trusts the cluster's CA.
fn foreign_client(cluster: &Cluster, county: &NodeId, node: &NodeId) -> TlsMaterial {
    let foreign_ca = DevCa::generate(county).unwrap();
    TlsMaterial {
        ca_pem: cluster.ca().cert_pem().to_owned(),
        ..ops::material(&foreign_ca, &Principal::Node(node.clone()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_from_a_foreign_ca_cannot_link() {
    setup();
    let dir = tempfile::tempdir().unwrap();
    let county = id(COUNTY);
    let mut cluster = tree::cluster(
        dir.path(),
        std::slice::from_ref(&county),
        Vec::new(),
        SyncConfig::default(),
    )
    .await;
    tree::start_linked(&mut cluster).await;
    let township = id(T1);

    // Another CA of the same county issued the township's certificate; the township trusts our
    // CA, so it accepts the county, but the county refuses it. With TLS 1.3 the refusal surfaces
    // at the first call (pitfall 7): the Link call itself fails with a transport error, never
    // with a welcome or an answer from the service. Which transport error the client sees is a
    // race; that each is explained readably is `every_refusal_of_a_foreign_certificate_is_explained`.
    let mixed = foreign_client(&cluster, &county, &township);
    let err = refused(
        try_link(&cluster, &county, &mixed, T1).await,
        "foreign client certificate",
    );
    assert!(
        matches!(&err, LinkError::Refused { status, .. } if matches!(status.code(), Code::Unknown | Code::Cancelled)),
        "expected the Link call to fail with a transport error: {err:?}"
    );

    // Entirely foreign PKI: the township does not trust the county either, and says so.
    let foreign = ops::material(&DevCa::generate(&county).unwrap(), &Principal::Node(township.clone()));
    let err = refused(try_link(&cluster, &county, &foreign, T1).await, "foreign PKI");
    assert!(matches!(err, LinkError::Connect(_)), "{err:?}");
    let sentence = err.explained();
    assert!(
        sentence.contains("parent 441424") && sentence.contains("is not issued by our CA"),
        "unreadable explanation: {sentence}"
    );

    assert_no_link(&cluster, &county, &[T1]).await;
    assert_eq!(ops::status(&cluster, &county).await.links.len(), 0);
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_act_only_where_allowed() {
    setup();
    let dir = tempfile::tempdir().unwrap();
    let (county, township) = (id(COUNTY), id(T1));
    let ids = vec![county.clone(), township.clone()];
    let mut cluster = tree::cluster(dir.path(), &ids, Vec::new(), SyncConfig::default()).await;
    tree::start_linked(&mut cluster).await;
    let items = catalogue::small_catalogue();
    let json = || catalogue::json_bytes(&items);

    // A township's operator importing at the county.
    let clerk = Principal::operator(township.clone(), "clerk").unwrap();
    let channel = ops::channel_as(&cluster, &county, &clerk).await;
    let err = catalogue::import_raw(channel.clone(), pb::ImportFormat::Json, json(), "clerk")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(
        err.message().contains("operator of 441424100") && err.message().contains("441424"),
        "{}",
        err.message()
    );
    // Nor may they read the county's status.
    let err = NodeClient::new(channel).status(pb::StatusRequest {}).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");

    // The county's operator importing at a township: the township does not serve imports.
    let err = catalogue::import_raw(
        ops::admin(&cluster, &township).await,
        pb::ImportFormat::Json,
        json(),
        "admin",
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented, "{err:?}");
    assert!(
        err.message().contains("only the county node (441424)") && err.message().contains("441424100 is a township"),
        "{}",
        err.message()
    );
    // The township's own operator at the township: same answer.
    let channel = ops::channel_as(&cluster, &township, &clerk).await;
    let err = catalogue::import_raw(channel.clone(), pb::ImportFormat::Json, json(), "clerk")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented, "{err:?}");
    // ...who may read their own node.
    let status = ops::status_on(channel).await;
    assert_eq!(status.node_id, T1);

    // A node certificate is not an operator certificate.
    let as_node = ops::channel_as(&cluster, &county, &Principal::Node(township.clone())).await;
    let err = NodeClient::new(as_node).status(pb::StatusRequest {}).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("not an operator"), "{}", err.message());

    // None of it published anything.
    for node in &ids {
        assert_eq!(ops::status(&cluster, node).await.catalogue_version, 0, "{node}");
    }
    cluster.stop_all().await;
}

/// Every failed attempt of a foreign-CA node to link is explained as a refusal an operator can
/// act on (`tls::explain_status`), whichever transport error the client happens to see: the TLS
/// alert ("refused our certificate: … foreign CA?") or the connection closing under it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_of_a_foreign_certificate_is_explained() {
    setup();
    let dir = tempfile::tempdir().unwrap();
    let county = id(COUNTY);
    let mut cluster = tree::cluster(
        dir.path(),
        std::slice::from_ref(&county),
        Vec::new(),
        SyncConfig::default(),
    )
    .await;
    tree::start_linked(&mut cluster).await;
    let mixed = foreign_client(&cluster, &county, &id(T1));
    let alert = format!(
        "parent 441424 at {} refused our certificate: it is not issued by the CA it trusts (foreign CA?)",
        cluster.addr(&county).unwrap()
    );
    let closed = format!(
        "parent 441424 at {} closed the connection (it may have refused our certificate, or it is restarting)",
        cluster.addr(&county).unwrap()
    );
    let mut unexplained = Vec::new();
    for _ in 0..30 {
        let err = refused(
            try_link(&cluster, &county, &mixed, T1).await,
            "foreign client certificate",
        );
        let sentence = err.explained();
        if sentence != alert && sentence != closed {
            unexplained.push(format!("{sentence}  <- {err:?}"));
        }
    }
    assert!(
        unexplained.is_empty(),
        "unexplained refusals:\n{}",
        unexplained.join("\n")
    );
    assert_no_link(&cluster, &county, &[T1]).await;
    cluster.stop_all().await;
}
