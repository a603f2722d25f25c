//! The node's transport over turmoil's simulated network. A node listens on a turmoil TCP
//! listener and dials its parent through a turmoil TCP stream; TLS, HTTP/2 and the sync
//! session run over them unchanged, so partitions and held messages hit the real link code.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tongban_domains::node::Listen;
use tongban_engine::sync::client::{Dialer, LinkIo};
use tonic::transport::server::{Connected, TcpConnectInfo};

/// The port every simulated node serves on (each node is its own host).
pub const PORT: u16 = 7000;

/// One simulated TCP connection, with TCP's connect info so the access layer can read the
/// peer's certificate exactly as over a real socket.
pub struct SimIo(turmoil::net::TcpStream);

impl Connected for SimIo {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        TcpConnectInfo {
            local_addr: self.0.local_addr().ok(),
            remote_addr: self.0.peer_addr().ok(),
        }
    }
}

impl AsyncRead for SimIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for SimIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// A node's listener on the simulated network, and how its link dials the parent there.
pub struct SimListener {
    listener: turmoil::net::TcpListener,
    jitter_seed: u64,
}

impl SimListener {
    /// Binds [`PORT`] on the current simulated host. `jitter_seed` seeds the link's reconnect
    /// jitter, so a replay waits as the first run did.
    pub async fn bind(jitter_seed: u64) -> io::Result<SimListener> {
        let listener = turmoil::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, PORT)).await?;
        Ok(SimListener { listener, jitter_seed })
    }
}

impl Listen for SimListener {
    type Io = SimIo;

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    fn incoming(self) -> BoxStream<'static, io::Result<SimIo>> {
        futures::stream::unfold(self.listener, |listener| async move {
            let accepted = listener.accept().await.map(|(stream, _)| SimIo(stream));
            Some((accepted, listener))
        })
        .boxed()
    }

    fn dialer(&self) -> Option<Dialer> {
        Some(Dialer {
            dial: Arc::new(|uri| {
                Box::pin(async move {
                    let host = uri
                        .host()
                        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("no host in {uri}")))?
                        .to_owned();
                    let port = uri.port_u16().unwrap_or(PORT);
                    let stream = turmoil::net::TcpStream::connect((host.as_str(), port)).await?;
                    Ok(Box::new(stream) as Box<dyn LinkIo>)
                })
            }),
            jitter_seed: self.jitter_seed,
        })
    }
}
