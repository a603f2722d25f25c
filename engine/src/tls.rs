//! Mutual TLS between Tongban nodes and clients: rustls and tonic glue.
//!
//! This module owns:
//! - the process-wide rustls crypto provider ([`install_crypto_provider`], pitfall 1);
//! - the certificate files a node or client is configured with ([`TlsFiles`]) and their
//!   validated contents ([`TlsMaterial`]), which build tonic's server and client TLS configs;
//! - the names a client verifies: [`node_server_name`] (`<id>.node.tongban`) when it knows which
//!   node it dials, [`GENERIC_NODE_NAME`] when it knows only an address;
//! - reading the caller's identity from a TLS session ([`principal_of_certs`], used by the
//!   access layer; [`peer_principal`] for a tonic request, pitfall 8);
//! - turning transport failures into sentences an operator can act on
//!   ([`explain_transport_error`], [`explain_status`], [`transport_failure`], pitfall 7).
//!
//! What a principal may do is not decided here; this module only says who it is.

use std::error::Error as StdError;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};
use tonic::{Code, Request, Status};

use crate::ids::NodeId;
use crate::pki::{self, NODE_DNS_SUFFIX, PkiError, PkiLayout, Principal};

/// The name every node certificate carries besides its own; a client that knows only an address
/// (the CLI) verifies this one, which proves "a node of our CA" but not which node.
pub const GENERIC_NODE_NAME: &str = NODE_DNS_SUFFIX;

/// A TLS handshake that has not finished by then is abandoned, so a silent or hostile peer cannot
/// hold a connection slot forever; ten seconds is generous even over a rural mobile link.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest error source chain we walk; guards against a pathological self-referencing chain.
const MAX_CHAIN: usize = 32;

/// Installs ring as the process's rustls crypto provider. Call first thing in `main` and in test
/// harnesses; later calls (and a provider already installed) are fine.
pub fn install_crypto_provider() {
    // `install_default` fails only when a provider is already installed: nothing to do then.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The DNS name a child verifies when it dials node `id`: `441424100.node.tongban`.
pub fn node_server_name(id: &NodeId) -> String {
    format!("{id}.{NODE_DNS_SUFFIX}")
}

/// Why configured TLS files cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {}: {source}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{what} {file}: {source}")]
    Invalid {
        what: &'static str,
        file: String,
        source: PkiError,
    },
    #[error("private key {key} does not belong to certificate {cert}")]
    KeyMismatch { cert: String, key: String },
    #[error("certificate {cert} is not accepted by the CA certificate {ca}: {reason}")]
    NotAcceptedByCa { cert: String, ca: String, reason: String },
}

/// The certificate files of a node or a client, as written in its configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The county CA certificate (PEM): the only issuer trusted for peers.
    pub ca: PathBuf,
    /// This node's or client's certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
}

impl TlsFiles {
    /// The files of `principal` in a PKI directory made by [`pki::init_dir`].
    pub fn for_principal(layout: &PkiLayout, principal: &Principal) -> TlsFiles {
        TlsFiles {
            ca: layout.ca_cert(),
            cert: layout.cert_path(principal),
            key: layout.key_path(principal),
        }
    }

    /// The files of node `id` in a PKI directory.
    pub fn node(layout: &PkiLayout, id: &NodeId) -> TlsFiles {
        TlsFiles::for_principal(layout, &Principal::Node(id.clone()))
    }

    /// The files of operator `name` at `place` in a PKI directory.
    pub fn operator(layout: &PkiLayout, place: &NodeId, name: &str) -> TlsFiles {
        TlsFiles {
            ca: layout.ca_cert(),
            cert: layout.operator_cert(place, name),
            key: layout.operator_key(place, name),
        }
    }

    /// Reads and checks the three files: each is PEM of the right kind, the key belongs to the
    /// certificate, the certificate is currently valid, issued by the CA and names a principal.
    pub fn load(&self) -> Result<TlsMaterial, TlsError> {
        let read = |what: &'static str, path: &Path| {
            fs::read_to_string(path).map_err(|source| TlsError::Read {
                what,
                path: path.to_owned(),
                source,
            })
        };
        let ca_pem = read("CA certificate", &self.ca)?;
        let cert_pem = read("certificate", &self.cert)?;
        let key_pem = read("private key", &self.key)?;
        let names = Names {
            ca: self.ca.display().to_string(),
            cert: self.cert.display().to_string(),
            key: self.key.display().to_string(),
        };
        TlsMaterial::validate(ca_pem, cert_pem, key_pem, &names)
    }
}

struct Names {
    ca: String,
    cert: String,
    key: String,
}

/// Validated TLS material: CA, own certificate and key (all PEM), and the identity the
/// certificate names.
#[derive(Clone)]
pub struct TlsMaterial {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    /// Parsed from `cert_pem`: who we are to our peers.
    pub principal: Principal,
}

impl fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The private key stays out of logs.
        f.debug_struct("TlsMaterial")
            .field("principal", &self.principal)
            .finish_non_exhaustive()
    }
}

impl TlsMaterial {
    /// Checks in-memory PEMs like [`TlsFiles::load`] does (e.g. certificates issued on the fly by
    /// the demo).
    pub fn from_pem(
        ca_pem: impl Into<String>,
        cert_pem: impl Into<String>,
        key_pem: impl Into<String>,
    ) -> Result<TlsMaterial, TlsError> {
        let names = Names {
            ca: "(in memory)".to_owned(),
            cert: "(in memory)".to_owned(),
            key: "(in memory)".to_owned(),
        };
        TlsMaterial::validate(ca_pem.into(), cert_pem.into(), key_pem.into(), &names)
    }

    fn validate(ca_pem: String, cert_pem: String, key_pem: String, names: &Names) -> Result<TlsMaterial, TlsError> {
        let invalid = |what: &'static str, file: &str, source: PkiError| TlsError::Invalid {
            what,
            file: file.to_owned(),
            source,
        };
        pki::cert_der_from_pem(&ca_pem).map_err(|e| invalid("CA certificate", &names.ca, e))?;
        let principal = pki::principal_from_cert_pem(&cert_pem).map_err(|e| invalid("certificate", &names.cert, e))?;
        match pki::check_key_matches(&cert_pem, &key_pem) {
            Ok(()) => {}
            Err(PkiError::KeyMismatch) => {
                return Err(TlsError::KeyMismatch {
                    cert: names.cert.clone(),
                    key: names.key.clone(),
                });
            }
            Err(e) => return Err(invalid("private key", &names.key, e)),
        }
        match pki::verify_issued_by(&ca_pem, &cert_pem) {
            Ok(()) => {}
            Err(PkiError::NotAcceptedByCa(reason)) => {
                return Err(TlsError::NotAcceptedByCa {
                    cert: names.cert.clone(),
                    ca: names.ca.clone(),
                    reason,
                });
            }
            Err(e) => return Err(invalid("CA certificate", &names.ca, e)),
        }
        Ok(TlsMaterial {
            ca_pem,
            cert_pem,
            key_pem,
            principal,
        })
    }

    fn identity(&self) -> Identity {
        Identity::from_pem(&self.cert_pem, &self.key_pem)
    }

    /// Server side: present our certificate and require a client certificate from our CA.
    pub fn server_config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(self.identity())
            .client_ca_root(Certificate::from_pem(&self.ca_pem))
            .client_auth_optional(false)
            .timeout(HANDSHAKE_TIMEOUT)
    }

    /// Client side: trust only our CA, present our certificate, and expect the server to be
    /// `server_name` ([`node_server_name`] or [`GENERIC_NODE_NAME`]).
    pub fn client_config(&self, server_name: &str) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .identity(self.identity())
            .domain_name(server_name)
            .timeout(HANDSHAKE_TIMEOUT)
    }
}

/// The identity of the caller of an RPC, from its client certificate.
///
/// Needs a server started with [`TlsMaterial::server_config`] on a TCP listener (tonic's
/// `TcpIncoming`), which is what fills in `peer_certs` (pitfall 8).
pub fn peer_principal<T>(req: &Request<T>) -> Result<Principal, Status> {
    principal_of_certs(req.peer_certs().as_deref().map(Vec::as_slice))
}

/// The principal named by the first of a TLS session's peer certificates (`None`: the session
/// carries none), or the status that refuses the caller.
pub fn principal_of_certs(certs: Option<&[rustls::pki_types::CertificateDer<'static>]>) -> Result<Principal, Status> {
    let certs = certs.ok_or_else(|| {
        Status::unauthenticated(
            "no client certificate: Tongban accepts only mutual-TLS connections \
             with a certificate issued by the county CA",
        )
    })?;
    let first = certs
        .first()
        .ok_or_else(|| Status::unauthenticated("no client certificate: the TLS session carries none"))?;
    pki::principal_from_cert_der(first)
        .map_err(|e| Status::permission_denied(format!("client certificate not accepted: {e}")))
}

/// Turns a failure to talk to `target` into a sentence an operator can act on, by looking for
/// known causes anywhere in the error's source chain (rustls, I/O, tonic, hyper).
pub fn explain_transport_error(err: &(dyn StdError + 'static), target: &str) -> String {
    let chain = error_chain(err);

    for e in &chain {
        if let Some(tls) = e.downcast_ref::<rustls::Error>()
            && let Some(sentence) = explain_rustls(tls, target)
        {
            return sentence;
        }
    }
    for e in &chain {
        if let Some(io) = e.downcast_ref::<io::Error>()
            && let Some(sentence) = explain_io_kind(io.kind(), target)
        {
            return sentence;
        }
    }

    // Some layers (h2) keep their cause private and only show it in their message.
    let mut messages: Vec<String> = Vec::new();
    for e in &chain {
        let m = e.to_string();
        if !m.is_empty() && !messages.iter().any(|seen| seen.contains(&m)) {
            messages.push(m);
        }
    }
    let text = messages.join(": ");
    if let Some(sentence) = explain_text(&text, target) {
        return sentence;
    }
    format!("cannot talk to {target}: {text}")
}

/// Like [`explain_transport_error`] for the `Status` of a failed call: a transport failure
/// (`Unknown`/`Unavailable` with a source, pitfall 7) is explained; other statuses are reported
/// as the answer of `target`.
pub fn explain_status(status: &Status, target: &str) -> String {
    if let Some(sentence) = transport_failure(status, target) {
        return sentence;
    }
    match status.code() {
        Code::Unavailable => format!("{target} is unavailable: {}", status.message()),
        Code::DeadlineExceeded => format!("no answer from {target} in time"),
        // Client-side timeouts arrive as Cancelled "Timeout expired" (pitfall 6).
        Code::Cancelled if status.message().contains("Timeout expired") => {
            format!("no answer from {target} in time")
        }
        code => format!("{target} answered {code:?}: {}", status.message()),
    }
}

/// The sentence for a failed call's `Status` when the call never got a service's answer (the
/// connection failed, was cut, or the TLS handshake was refused), `None` when the status is the
/// answer of the service itself. A client tells the two apart to say "cannot reach" rather than
/// "refused".
pub fn transport_failure(status: &Status, target: &str) -> Option<String> {
    let code = status.code();
    let timed_out = code == Code::Cancelled && status.message().contains("Timeout expired");
    // A peer that refuses our certificate may also cut the connection before its TLS alert is
    // read; hyper then reports Cancelled ("operation was canceled", "connection closed").
    if matches!(code, Code::Unknown | Code::Unavailable) || (code == Code::Cancelled && !timed_out) {
        if let Some(source) = StdError::source(status) {
            return Some(explain_transport_error(source, target));
        }
        if let Some(sentence) = explain_text(status.message(), target) {
            return Some(sentence);
        }
    }
    if code == Code::Cancelled && !timed_out {
        return Some(format!(
            "{target} closed the connection (it may have refused our certificate, or it is restarting)"
        ));
    }
    None
}

/// The source chain of `err`, looking inside `io::Error`s too: `io::Error::source` skips the
/// error it wraps (rustls errors travel wrapped in one), `get_ref` does not.
fn error_chain<'a>(err: &'a (dyn StdError + 'static)) -> Vec<&'a (dyn StdError + 'static)> {
    let mut chain = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        if chain.len() >= MAX_CHAIN {
            break;
        }
        chain.push(e);
        next = match e.downcast_ref::<io::Error>().and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => e.source(),
        };
    }
    chain
}

fn explain_rustls(err: &rustls::Error, target: &str) -> Option<String> {
    use rustls::CertificateError as C;
    let sentence = match err {
        rustls::Error::InvalidCertificate(cert) => match cert {
            C::UnknownIssuer | C::BadSignature => {
                format!("the certificate of {target} is not issued by our CA (foreign CA?)")
            }
            C::NotValidForName => format!(
                "the certificate of {target} is for another node: it does not carry the name \
                 we expected (wrong address for this node?)"
            ),
            C::NotValidForNameContext { expected, presented } => format!(
                "the certificate of {target} is for another node: we expected {}, it is for {} \
                 (wrong address for this node?)",
                expected.to_str(),
                describe_presented(presented)
            ),
            C::Expired | C::ExpiredContext { .. } => {
                format!("the certificate of {target} has expired")
            }
            C::NotValidYet | C::NotValidYetContext { .. } => {
                format!("the certificate of {target} is not valid yet (is one of the clocks wrong?)")
            }
            C::Revoked => format!("the certificate of {target} has been revoked"),
            C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
                format!("the certificate of {target} is not a node certificate (not valid for servers)")
            }
            other => format!("the certificate of {target} is not acceptable: {other}"),
        },
        rustls::Error::AlertReceived(alert) => explain_alert(&format!("{alert:?}"), target),
        rustls::Error::NoCertificatesPresented => {
            format!("{target} presented no certificate")
        }
        rustls::Error::InvalidMessage(_) => {
            format!("{target} does not speak TLS (a plain-text endpoint, or another service?)")
        }
        rustls::Error::PeerIncompatible(why) => {
            format!("{target} and we share no TLS version or cipher suite ({why:?})")
        }
        _ => return None,
    };
    Some(sentence)
}

/// Who a certificate rejected for its name belongs to. rustls lists the names as Debug strings
/// (`UniformResourceIdentifier("urn:tongban:node:441424")`, `DnsName("441424.node.tongban")`).
fn describe_presented(presented: &[String]) -> String {
    let quoted = |entry: &str| {
        let start = entry.find('"')? + 1;
        let end = entry.rfind('"')?;
        entry.get(start..end).map(str::to_owned)
    };
    let principal = presented
        .iter()
        .filter_map(|entry| quoted(entry))
        .find_map(|name| Principal::from_uri(&name).ok());
    if let Some(principal) = principal {
        return principal.to_string();
    }
    let names: Vec<String> = presented
        .iter()
        .map(|entry| quoted(entry).unwrap_or_else(|| entry.clone()))
        .collect();
    if names.is_empty() {
        "no name at all".to_owned()
    } else {
        names.join(", ")
    }
}

/// `alert` is the Debug name of a rustls `AlertDescription`, e.g. `UnknownCA`.
fn explain_alert(alert: &str, target: &str) -> String {
    let refused = |why: &str| format!("{target} refused our certificate: {why}");
    match alert {
        "UnknownCA" => refused("it is not issued by the CA it trusts (foreign CA?)"),
        "DecryptError" => refused("its signature does not verify (foreign CA, or a damaged file?)"),
        "CertificateExpired" => refused("it has expired or is not valid yet (is one of the clocks wrong?)"),
        "CertificateRevoked" => refused("it has been revoked"),
        "UnsupportedCertificate" => refused("it is not valid for this use (a server-only certificate?)"),
        "CertificateRequired" => {
            format!("{target} refused the connection: it requires a client certificate and we sent none")
        }
        "BadCertificate" | "CertificateUnknown" | "AccessDenied" => refused(&format!("the TLS alert was {alert}")),
        other => format!("{target} aborted the TLS handshake (alert {other})"),
    }
}

fn explain_io_kind(kind: io::ErrorKind, target: &str) -> Option<String> {
    use io::ErrorKind as K;
    Some(match kind {
        K::ConnectionRefused => format!("nothing listens at {target} (connection refused)"),
        K::TimedOut => format!("no answer from {target} (timed out; host down or firewalled?)"),
        K::HostUnreachable | K::NetworkUnreachable => {
            format!("{target} is unreachable from here (no route: network down?)")
        }
        K::AddrNotAvailable => format!("cannot connect to {target}: address not available"),
        _ => return None,
    })
}

fn explain_text(text: &str, target: &str) -> Option<String> {
    if let Some(rest) = text.split("received fatal alert: ").nth(1) {
        let alert: String = rest.chars().take_while(char::is_ascii_alphanumeric).collect();
        return Some(explain_alert(&alert, target));
    }
    let lower = text.to_ascii_lowercase();
    let sentence = if lower.contains("connection refused") {
        format!("nothing listens at {target} (connection refused)")
    } else if lower.contains("tls handshake timeout") {
        format!("{target} did not finish the TLS handshake in time")
    } else if lower.contains("http/2 was not negotiated") {
        format!("{target} does not speak gRPC over TLS (HTTP/2 was not negotiated)")
    } else if lower.contains("dns error") || lower.contains("failed to lookup address") {
        format!("cannot resolve the host name of {target}")
    } else if lower.contains("connection reset")
        || lower.contains("broken pipe")
        || lower.contains("connection closed")
        || lower.contains("connection was not ready")
    {
        format!(
            "{target} closed the connection (it may have refused our certificate, \
             or it is restarting)"
        )
    } else {
        return None;
    };
    Some(sentence)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};

    use tonic::transport::server::TcpIncoming;
    use tonic::transport::{Channel, Endpoint, Server};
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    use super::*;
    use crate::pki::DevCa;

    fn id(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    fn material(ca: &DevCa, principal: &Principal) -> TlsMaterial {
        let issued = ca.issue(principal).unwrap();
        TlsMaterial::from_pem(ca.cert_pem(), issued.cert_pem, issued.key_pem).unwrap()
    }

    /// Starts a health service behind `server_config` on 127.0.0.1:0; every caller's principal
    /// is recorded in `seen`, read with `peer_principal` as a real service would.
    async fn start_server(tls: &TlsMaterial, seen: Arc<Mutex<Vec<Principal>>>) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (_reporter, health) = tonic_health::server::health_reporter();
        let record = move |req: Request<()>| {
            let who = peer_principal(&req)?;
            seen.lock().unwrap().push(who);
            Ok(req)
        };
        let router = Server::builder()
            .tls_config(tls.server_config())
            .unwrap()
            .layer(tonic::service::InterceptorLayer::new(record))
            .add_service(health);
        tokio::spawn(router.serve_with_incoming(TcpIncoming::from(listener)));
        addr
    }

    /// Calls Check on `addr`; any failure (at connect or at the call) comes back explained.
    async fn check(addr: SocketAddr, tls: ClientTlsConfig, target: &str) -> Result<(), String> {
        let endpoint = Endpoint::from_shared(format!("https://{addr}"))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect_timeout(Duration::from_secs(5));
        let channel: Channel = match endpoint.connect().await {
            Ok(channel) => channel,
            Err(e) => return Err(explain_transport_error(&e, target)),
        };
        HealthClient::new(channel)
            .check(HealthCheckRequest { service: String::new() })
            .await
            .map(|_| ())
            .map_err(|status| explain_status(&status, target))
    }

    #[test]
    fn node_names() {
        assert_eq!(node_server_name(&id("441424100")), "441424100.node.tongban");
        assert_eq!(GENERIC_NODE_NAME, "node.tongban");
    }

    #[test]
    fn files_load_with_readable_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let town = id("441424100");
        let layout = pki::init_dir(tmp.path(), &[id("441424"), town.clone()], &[]).unwrap();
        let files = TlsFiles::node(&layout, &town);
        let loaded = files.load().unwrap();
        assert_eq!(loaded.principal, Principal::Node(town.clone()));
        assert!(!format!("{loaded:?}").contains("PRIVATE"));

        let missing = TlsFiles {
            cert: tmp.path().join("nope.pem"),
            ..files.clone()
        };
        let err = missing.load().unwrap_err().to_string();
        assert!(
            err.starts_with("cannot read certificate ") && err.contains("nope.pem"),
            "{err}"
        );

        let not_pem = TlsFiles {
            cert: files.key.clone(),
            ..files.clone()
        };
        let err = not_pem.load().unwrap_err().to_string();
        assert!(err.contains("not a PEM certificate"), "{err}");

        let other_key = TlsFiles {
            key: layout.node_key(&id("441424")),
            ..files.clone()
        };
        let err = other_key.load().unwrap_err().to_string();
        assert!(err.contains("does not belong to certificate"), "{err}");

        let foreign = DevCa::generate(&town).unwrap();
        fs::write(tmp.path().join("foreign.pem"), foreign.cert_pem()).unwrap();
        let wrong_ca = TlsFiles {
            ca: tmp.path().join("foreign.pem"),
            ..files.clone()
        };
        let err = wrong_ca.load().unwrap_err().to_string();
        assert!(err.contains("not accepted by the CA certificate"), "{err}");

        let toml_text = format!(
            "ca = {:?}\ncert = {:?}\nkey = {:?}\n",
            files.ca.display().to_string(),
            files.cert.display().to_string(),
            files.key.display().to_string()
        );
        let parsed: TlsFiles = toml::from_str(&toml_text).unwrap();
        assert_eq!(parsed, files);
    }

    #[test]
    fn statuses_from_the_service_are_reported_as_its_answer() {
        let s = explain_status(&Status::permission_denied("not yours"), "township 441424100");
        assert_eq!(s, "township 441424100 answered PermissionDenied: not yours");
        let s = explain_status(&Status::unknown("handler failed"), "t");
        assert_eq!(s, "t answered Unknown: handler failed");
        let s = explain_status(&Status::cancelled("Timeout expired"), "t");
        assert_eq!(s, "no answer from t in time");
        // An answer is not a transport failure; a cut connection is.
        assert_eq!(transport_failure(&Status::failed_precondition("not now"), "t"), None);
        assert_eq!(transport_failure(&Status::unknown("handler failed"), "t"), None);
        let cut = transport_failure(&Status::cancelled("operation was canceled"), "t").unwrap();
        assert!(cut.contains("closed the connection"), "{cut}");
        let refused = transport_failure(&Status::unavailable("tcp connect error: Connection refused"), "t");
        assert_eq!(refused.as_deref(), Some("nothing listens at t (connection refused)"));
    }

    #[test]
    fn explains_alerts_found_only_in_messages() {
        let s = explain_text("connection error: received fatal alert: UnknownCA", "441424");
        assert_eq!(
            s.unwrap(),
            "441424 refused our certificate: it is not issued by the CA it trusts (foreign CA?)"
        );
        let s = explain_text("received fatal alert: CertificateRequired", "441424").unwrap();
        assert!(s.contains("requires a client certificate"), "{s}");
    }

    #[tokio::test]
    async fn a_closed_port_means_nothing_listens() {
        install_crypto_provider();
        let ca = DevCa::generate(&id("441424")).unwrap();
        let tls = material(&ca, &Principal::Node(id("441424100")));
        let addr = {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            listener.local_addr().unwrap()
        };
        let err = check(
            addr,
            tls.client_config(&node_server_name(&id("441424"))),
            "county 441424",
        )
        .await
        .unwrap_err();
        assert!(err.contains("nothing listens at county 441424"), "{err}");
    }

    #[tokio::test]
    async fn mutual_tls_end_to_end() {
        install_crypto_provider();
        let county = id("441424");
        let town = id("441424100");
        let ca = DevCa::generate(&county).unwrap();
        let server_tls = material(&ca, &Principal::Node(county.clone()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let addr = start_server(&server_tls, seen.clone()).await;

        // A township with a certificate from our CA, verifying the county by name.
        let town_tls = material(&ca, &Principal::Node(town.clone()));
        check(
            addr,
            town_tls.client_config(&node_server_name(&county)),
            "county 441424",
        )
        .await
        .unwrap();
        assert_eq!(seen.lock().unwrap().as_slice(), [Principal::Node(town.clone())]);

        // The CLI knows only the address: the generic name works; an operator is recognised.
        let op = Principal::operator(county.clone(), "wang.fang").unwrap();
        let op_tls = material(&ca, &op);
        check(addr, op_tls.client_config(GENERIC_NODE_NAME), "county 441424")
            .await
            .unwrap();
        assert_eq!(seen.lock().unwrap().last(), Some(&op));

        // Expecting another node at this address: the client refuses the server.
        let err = check(addr, town_tls.client_config(&node_server_name(&id("441424200"))), "t")
            .await
            .unwrap_err();
        assert!(err.contains("the certificate of t is for another node"), "{err}");
        assert!(
            err.contains("we expected 441424200.node.tongban, it is for node:441424"),
            "{err}"
        );

        // A client from a foreign CA (of this county or another): the server refuses it, which
        // a TLS 1.3 client sees only at its first call.
        let foreign_ca = DevCa::generate(&county).unwrap();
        for other_ca in [&foreign_ca, &DevCa::generate(&id("441425")).unwrap()] {
            let foreign = material(other_ca, &Principal::Node(town.clone()));
            let mixed = TlsMaterial {
                ca_pem: ca.cert_pem().to_owned(),
                ..foreign
            };
            let err = check(addr, mixed.client_config(&node_server_name(&county)), "county 441424")
                .await
                .unwrap_err();
            assert_eq!(
                err,
                "county 441424 refused our certificate: \
                 it is not issued by the CA it trusts (foreign CA?)"
            );
        }

        // A client without a certificate.
        let anonymous = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(ca.cert_pem()))
            .domain_name(node_server_name(&county));
        let err = check(addr, anonymous, "county 441424").await.unwrap_err();
        assert_eq!(
            err,
            "county 441424 refused the connection: it requires a client certificate and we sent none"
        );

        // A client that trusts only a foreign CA refuses our server.
        let foreign_client = material(&foreign_ca, &Principal::Node(town.clone()));
        let err = check(addr, foreign_client.client_config(&node_server_name(&county)), "c")
            .await
            .unwrap_err();
        assert!(err.contains("the certificate of c is not issued by our CA"), "{err}");
        assert_eq!(seen.lock().unwrap().len(), 2, "refused clients reached the service");
    }
}
