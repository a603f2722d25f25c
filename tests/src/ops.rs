//! Operator-side gRPC: channels as any principal issued by a cluster's CA, and the `Node`
//! service calls the scenarios assert on (status, links, alarms).

use std::net::SocketAddr;
use std::time::Duration;

use tongban_domains::ids::NodeId;
use tongban_domains::pki::{DevCa, Principal};
use tongban_domains::tls::{GENERIC_NODE_NAME, TlsMaterial};
use tongban_proto::v1::{self as pb, node_client::NodeClient};
use tongban_testkit::cluster::Cluster;
use tonic::transport::{Channel, Endpoint};

/// TLS material for `principal`, issued by `ca`.
pub fn material(ca: &DevCa, principal: &Principal) -> TlsMaterial {
    let issued = ca
        .issue(principal)
        .unwrap_or_else(|e| panic!("the test CA cannot issue {principal}: {e}"));
    TlsMaterial::from_pem(ca.cert_pem(), issued.cert_pem, issued.key_pem)
        .unwrap_or_else(|e| panic!("certificate issued for {principal} does not load: {e}"))
}

/// A channel to `addr` with `tls`, verifying the server as any node of the CA (as the CLI does).
pub async fn channel_with(addr: SocketAddr, tls: &TlsMaterial) -> Channel {
    Endpoint::from_shared(format!("https://{addr}"))
        .unwrap_or_else(|e| panic!("bad address {addr}: {e}"))
        .tls_config(tls.client_config(GENERIC_NODE_NAME))
        .unwrap_or_else(|e| panic!("bad TLS configuration: {e}"))
        .connect_timeout(Duration::from_secs(10))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {addr} as {}: {e}", tls.principal))
}

/// A channel to node `id` of `cluster` as `principal` (e.g. a township's operator).
pub async fn channel_as(cluster: &Cluster, id: &NodeId, principal: &Principal) -> Channel {
    let addr = cluster
        .addr(id)
        .unwrap_or_else(|e| panic!("node {id} is not in the cluster: {e}"));
    channel_with(addr, &material(cluster.ca(), principal)).await
}

/// A channel to node `id` as the county's operator `admin`.
pub async fn admin(cluster: &Cluster, id: &NodeId) -> Channel {
    cluster
        .operator_channel(id)
        .await
        .unwrap_or_else(|e| panic!("no operator channel to {id}: {e}"))
}

/// `Node.Status` over `channel`.
pub async fn status_on(channel: Channel) -> pb::NodeStatus {
    NodeClient::new(channel)
        .status(pb::StatusRequest {})
        .await
        .unwrap_or_else(|s| panic!("Node.Status failed: {s:?}"))
        .into_inner()
}

/// `Node.Status` of node `id`, asked as the county's admin.
pub async fn status(cluster: &Cluster, id: &NodeId) -> pb::NodeStatus {
    status_on(admin(cluster, id).await).await
}

/// `Node.ListAlarms` over `channel` (up to 1,000, newest first).
pub async fn alarms_on(channel: Channel) -> Vec<pb::Alarm> {
    NodeClient::new(channel)
        .list_alarms(pb::ListAlarmsRequest { limit: 1000 })
        .await
        .unwrap_or_else(|s| panic!("Node.ListAlarms failed: {s:?}"))
        .into_inner()
        .alarms
}

/// `Node.ListAlarms` of node `id`, asked as the county's admin.
pub async fn alarms(cluster: &Cluster, id: &NodeId) -> Vec<pb::Alarm> {
    alarms_on(admin(cluster, id).await).await
}

/// The link row for `peer` in a status, if the node has ever had that link.
pub fn link<'a>(status: &'a pb::NodeStatus, peer: &str) -> Option<&'a pb::LinkStatus> {
    status.links.iter().find(|l| l.peer_id == peer)
}

/// Panics unless no node of `ids` has raised an alarm (checked over `Node.ListAlarms`).
pub async fn assert_no_alarms(cluster: &Cluster, ids: &[NodeId]) {
    for id in ids {
        let raised = alarms(cluster, id).await;
        assert!(raised.is_empty(), "node {id} raised alarms: {raised:#?}");
    }
}
