//! Connecting the command line to a node: operator certificate, CA, address, and turning
//! transport failures into sentences an operator can act on.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use tongban_domains::tls::{GENERIC_NODE_NAME, TlsFiles, explain_transport_error};
use tonic::transport::{Channel, Endpoint};

/// Where the node is and which certificate to present.
#[derive(Args, Debug, Clone)]
pub struct Connection {
    /// The node's address.
    #[arg(long, env = "TONGBAN_NODE", default_value = "https://127.0.0.1:7000", global = true)]
    pub node: String,
    /// The county CA certificate.
    #[arg(long, env = "TONGBAN_CA", default_value = "tongban-pki/ca.pem", global = true)]
    pub ca: PathBuf,
    /// The operator certificate.
    #[arg(
        long,
        env = "TONGBAN_CERT",
        default_value = "tongban-pki/operators/441424-admin.pem",
        global = true
    )]
    pub cert: PathBuf,
    /// The operator's private key.
    #[arg(
        long,
        env = "TONGBAN_KEY",
        default_value = "tongban-pki/operators/441424-admin.key",
        global = true
    )]
    pub key: PathBuf,
}

impl Connection {
    /// A TLS channel to the node (the node's certificate must come from our CA).
    pub async fn channel(&self) -> Result<Channel> {
        let tls = TlsFiles {
            ca: self.ca.clone(),
            cert: self.cert.clone(),
            key: self.key.clone(),
        }
        .load()
        .context("loading the operator certificate")?;
        let endpoint = Endpoint::from_shared(self.node.clone())
            .with_context(|| format!("{:?} is not a valid address", self.node))?
            .tls_config(tls.client_config(GENERIC_NODE_NAME))?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(10));
        endpoint
            .connect()
            .await
            .map_err(|e| anyhow::anyhow!(explain_transport_error(&e, &format!("node {}", self.node))))
    }

    /// Turns an RPC failure into an error naming the node.
    pub fn explain(&self, status: tonic::Status) -> anyhow::Error {
        anyhow::anyhow!(tongban_domains::tls::explain_status(
            &status,
            &format!("node {}", self.node)
        ))
    }
}
