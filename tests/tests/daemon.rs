//! A node daemon as an operator meets it: environment variables override the configuration
//! file, it answers gRPC health and reflection (v1 and v1alpha), it writes JSON logs on
//! request, and SIGTERM stops it cleanly with exit status 0.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::Duration;

use tests::bin::{NodeToml, free_addr, node_command};
use tests::wait::{TIMEOUT, wait_for, wait_until_blocking};
use tests::{COUNTY, id, ops, setup};
use tokio_stream::StreamExt;
use tongban_domains::pki;
use tongban_domains::tls::TlsFiles;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// The service names a reflection server lists, through the given protocol version (`v1` or
/// `v1alpha`: the two generated APIs are alike but distinct types, hence a macro).
macro_rules! list_services {
    ($version:ident, $channel:expr) => {{
        use tonic_reflection::pb::$version::{
            ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
            server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        };
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut stream = ServerReflectionClient::new($channel)
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .unwrap()
            .into_inner();
        let Some(Ok(response)) = stream.next().await else {
            panic!("no reflection {} answer", stringify!($version))
        };
        let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
            panic!("reflection {} did not list services", stringify!($version))
        };
        list.service.into_iter().map(|s| s.name).collect::<Vec<String>>()
    }};
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_honours_env_overrides_serves_health_and_reflection_and_stops_on_sigterm() {
    setup();
    let dir = tempfile::tempdir().unwrap();
    let county = id(COUNTY);
    let layout = pki::init_dir(
        &dir.path().join("pki"),
        std::slice::from_ref(&county),
        &[(county.clone(), "admin".into())],
    )
    .unwrap();
    let (file_addr, env_addr) = (free_addr(), free_addr());
    let config = dir.path().join("county.toml");
    NodeToml {
        node_id: county.as_str(),
        listen: file_addr,
        parent: None,
        data_dir: &dir.path().join("data"),
        tls: &TlsFiles::node(&layout, &county),
        sync: "",
    }
    .write(&config);
    let log_path = dir.path().join("county.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = node_command(tests::node_binary!("county-node"))
        .args(["serve", "--config", config.to_str().unwrap(), "--json-logs"])
        .env("TONGBAN_NODE_LISTEN", env_addr.to_string())
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();

    // The environment wins over the file: the node listens on the overriding address.
    wait_for(
        TIMEOUT,
        "the county to listen on the TONGBAN_NODE_LISTEN address",
        || {
            let exited = child.try_wait().unwrap();
            async move {
                assert!(exited.is_none(), "the county exited early with {exited:?}");
                match tokio::net::TcpStream::connect(env_addr).await {
                    Ok(_) => Ok(()),
                    Err(e) => Err(format!("connecting: {e}")),
                }
            }
        },
    )
    .await;
    assert!(
        tokio::net::TcpStream::connect(file_addr).await.is_err(),
        "the file's address must not be used when TONGBAN_NODE_LISTEN is set"
    );

    let operator = TlsFiles::operator(&layout, &county, "admin").load().unwrap();
    let channel = ops::channel_with(env_addr, &operator).await;

    // Health: the server as a whole and each Tongban service.
    let mut health = HealthClient::new(channel.clone());
    for service in [
        "",
        "tongban.v1.Sync",
        "tongban.v1.Node",
        "tongban.v1.Catalogue",
        "tongban.v1.Cases",
    ] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap_or_else(|s| panic!("health of {service:?}: {s:?}"))
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "health of {service:?}");
    }

    // Reflection v1 and v1alpha both list the contract and the health service.
    for names in [
        list_services!(v1, channel.clone()),
        list_services!(v1alpha, channel.clone()),
    ] {
        for expected in [
            "tongban.v1.Sync",
            "tongban.v1.Node",
            "tongban.v1.Catalogue",
            "tongban.v1.Cases",
            "grpc.health.v1.Health",
        ] {
            assert!(
                names.iter().any(|n| n == expected),
                "reflection lacks {expected}: {names:?}"
            );
        }
    }
    drop(channel);

    // SIGTERM: a clean stop with status 0.
    let pid = child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let stopping = std::time::Instant::now() + Duration::from_secs(20);
    let status = wait_until_blocking(stopping, "the county to stop after SIGTERM", || {
        match child.try_wait().unwrap() {
            Some(status) => Ok(status),
            None => Err("still running".to_owned()),
        }
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "exit status after SIGTERM: {status}");

    // Every log line is one JSON object; the start and the shutdown are among them.
    let text = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}")))
        .collect();
    let messages: Vec<&str> = lines.iter().filter_map(|v| v["fields"]["message"].as_str()).collect();
    assert!(messages.contains(&"node started"), "{messages:?}");
    assert!(messages.contains(&"shutting down"), "{messages:?}");
}
