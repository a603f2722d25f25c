//! Health answers SERVING for every service a node serves: the services are listed through the
//! node's own gRPC reflection (so a service added later is covered without editing this test),
//! and `grpc.health.v1.Health/Check` is asked about each, at every tier, over mTLS.
//!
//! The gRPC infrastructure services themselves (`grpc.health.v1.Health`, reflection) are not
//! asked about: health reports on the application's services, and the server as a whole (`""`).
//!
//! Each tier serves what its tier crate mounts: publishing the catalogue and the calendar at the
//! county only, so a township or a village neither lists them nor answers for them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use tests::{COUNTY, T1, T1_VILLAGES, id, ops, setup, tree};
use tokio_stream::StreamExt;
use tongban_domains::config::SyncConfig;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

/// The services the node lists through reflection v1.
async fn listed_services(channel: Channel) -> Vec<String> {
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let Some(Ok(response)) = stream.next().await else {
        panic!("no reflection answer")
    };
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("reflection did not list services")
    };
    list.service.into_iter().map(|s| s.name).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_answers_serving_for_every_service_a_node_serves() {
    setup();
    let dir = tempfile::tempdir().unwrap();
    let ids = vec![id(COUNTY), id(T1), id(T1_VILLAGES[0])];
    let mut cluster = tree::cluster(dir.path(), &ids, Vec::new(), SyncConfig::default()).await;
    tree::start_linked(&mut cluster).await;

    for node in &ids {
        let channel = ops::admin(&cluster, node).await;
        let services = listed_services(channel.clone()).await;
        let application: Vec<&String> = services.iter().filter(|s| !s.starts_with("grpc.")).collect();
        // The contract's services are there at all (so the loop below checks something).
        for expected in ["tongban.v1.Sync", "tongban.v1.Node", "tongban.v1.Cases"] {
            assert!(
                application.iter().any(|s| *s == expected),
                "{node}: reflection lacks {expected}: {services:?}"
            );
        }
        let at_county = node.tier() == tongban_domains::ids::Tier::County;
        for publishing in ["tongban.v1.CataloguePublishing", "tongban.v1.CalendarPublishing"] {
            assert_eq!(
                application.iter().any(|s| *s == publishing),
                at_county,
                "{node}: {publishing} listed: {services:?}"
            );
        }
        let mut health = HealthClient::new(channel);
        let mut not_serving = Vec::new();
        for service in std::iter::once("").chain(application.iter().map(|s| s.as_str())) {
            let answer = health
                .check(HealthCheckRequest {
                    service: service.to_owned(),
                })
                .await;
            match answer {
                Ok(r) if r.get_ref().status == ServingStatus::Serving as i32 => {}
                Ok(r) => not_serving.push(format!("{service:?}: status {}", r.into_inner().status)),
                Err(s) => not_serving.push(format!("{service:?}: {:?} {}", s.code(), s.message())),
            }
        }
        assert!(
            not_serving.is_empty(),
            "{node} serves these services but health does not say SERVING for them: {not_serving:#?}"
        );
    }
    cluster.stop_all().await;
}
