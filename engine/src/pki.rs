//! Identities in certificates, and the development CA that issues them.
//!
//! This module owns three things:
//! - [`Principal`]: who is on the other end of a connection — a node, an operator at a place, or
//!   a courier's device. It travels in every certificate as one SAN URI `urn:tongban:…`, and
//!   [`principal_from_cert_der`] reads it back (exactly one such URI, or the certificate is refused).
//! - [`DevCa`]: a county's development CA built with rcgen 0.14. The CA is persisted as its
//!   certificate and key PEM; loading rebuilds the rcgen `Issuer` from them (pitfall 14).
//! - [`init_dir`] / [`PkiLayout`]: the on-disk layout used by the demo and by operators
//!   (`ca.pem`, `ca.key`, `nodes/<id>.pem`, `operators/<place>-<name>.pem`, …).
//!
//! Node certificates are valid for server and client authentication and carry the DNS names
//! `<id>.node.tongban` (what a child verifies when it dials its parent), `node.tongban` (what the
//! CLI verifies, knowing only an address) and `localhost`. Operator and courier certificates are
//! for client authentication only. webpki matches DNS SANs only, never the CN (pitfall 14).
//!
//! It does no TLS plumbing; that is `crate::tls`.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyIdMethod, KeyPair, KeyUsagePurpose, PublicKeyData, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::time::ASN1Time;

use crate::ids::NodeId;

/// Prefix of the SAN URI that carries a [`Principal`].
pub const URN_PREFIX: &str = "urn:tongban:";

/// DNS suffix of node names: node `441424100` is `441424100.node.tongban`.
/// Also the generic name every node certificate carries (see `crate::tls::GENERIC_NODE_NAME`).
pub const NODE_DNS_SUFFIX: &str = "node.tongban";

/// Validity of leaf certificates (nodes, operators, couriers): two years.
const LEAF_VALIDITY: Duration = Duration::from_secs(2 * 365 * 24 * 3600);
/// Validity of a development CA: ten years.
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Certificates start one hour in the past so a peer whose clock is slightly behind accepts them.
const CLOCK_SKEW_ALLOWANCE: Duration = Duration::from_secs(3600);
/// Longest operator name or courier device label; they end up in file names and URIs.
const MAX_LABEL_LEN: usize = 64;

/// Why a certificate, key or identity was refused, or could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{text:?} is not a Tongban identity: {reason}")]
    BadPrincipal { text: String, reason: String },
    #[error("certificate carries no Tongban identity (no {URN_PREFIX}… URI among its subject alternative names)")]
    NoIdentity,
    #[error("certificate carries two Tongban identities ({first} and {second}); refusing to guess")]
    TwoIdentities { first: String, second: String },
    #[error("not a PEM {what} (expected a -----BEGIN {label}----- block)")]
    NotPem { what: &'static str, label: &'static str },
    #[error("cannot parse certificate: {0}")]
    BadCertificate(String),
    #[error("cannot use private key: {0}")]
    BadKey(String),
    #[error("the private key does not belong to the certificate")]
    KeyMismatch,
    #[error("certificate is not a CA certificate (no basicConstraints CA:TRUE)")]
    NotACa,
    #[error("certificate is not accepted by this CA: {0}")]
    NotAcceptedByCa(String),
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}: {source}", path.display())]
    InFile { path: PathBuf, source: Box<PkiError> },
    #[error("no node and no operator given, and no CA yet: cannot tell which county the CA is for")]
    NoCounty,
    #[error(
        "found {} but not {}; refusing to create a new CA next to half of an old one",
        present.display(),
        missing.display()
    )]
    IncompleteCa { present: PathBuf, missing: PathBuf },
}

fn bad_principal(text: &str, reason: impl Into<String>) -> PkiError {
    PkiError::BadPrincipal {
        text: text.to_owned(),
        reason: reason.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Principal
// ---------------------------------------------------------------------------------------------

/// Who holds a certificate: the role and the place, as named in the certificate.
///
/// Written as text everywhere (Display, FromStr, serde): `node:441424100`,
/// `operator:441424:wang.fang`, `courier:441424100:dev-07`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Principal {
    /// A county, township or village node.
    Node(NodeId),
    /// A person operating at `place` (a clerk, an approver, an administrator).
    Operator { place: NodeId, name: String },
    /// A courier's device, attached to the node at `place`.
    Courier { place: NodeId, device: String },
}

impl Principal {
    /// An operator principal, with `name` checked (letters, digits, `.`, `_`, `-`; at most 64).
    pub fn operator(place: NodeId, name: impl Into<String>) -> Result<Self, PkiError> {
        let p = Principal::Operator {
            place,
            name: name.into(),
        };
        p.validate()?;
        Ok(p)
    }

    /// A courier principal, with `device` checked like an operator name.
    pub fn courier(place: NodeId, device: impl Into<String>) -> Result<Self, PkiError> {
        let p = Principal::Courier {
            place,
            device: device.into(),
        };
        p.validate()?;
        Ok(p)
    }

    /// `node`, `operator` or `courier`.
    pub fn role(&self) -> &'static str {
        match self {
            Principal::Node(_) => "node",
            Principal::Operator { .. } => "operator",
            Principal::Courier { .. } => "courier",
        }
    }

    /// The node this principal is, or belongs to.
    pub fn place(&self) -> &NodeId {
        match self {
            Principal::Node(id) => id,
            Principal::Operator { place, .. } | Principal::Courier { place, .. } => place,
        }
    }

    /// The node id, when this principal is a node.
    pub fn as_node(&self) -> Option<&NodeId> {
        match self {
            Principal::Node(id) => Some(id),
            _ => None,
        }
    }

    /// The SAN URI carrying this principal: `urn:tongban:node:441424100`.
    pub fn uri(&self) -> String {
        format!("{URN_PREFIX}{self}")
    }

    /// Parses a SAN URI made by [`Principal::uri`].
    pub fn from_uri(uri: &str) -> Result<Self, PkiError> {
        match uri.strip_prefix(URN_PREFIX) {
            Some(rest) => rest.parse(),
            None => Err(bad_principal(uri, format!("does not start with {URN_PREFIX}"))),
        }
    }

    /// A readable subject common name; informational only (authorization reads the SAN URI).
    pub fn common_name(&self) -> String {
        match self {
            Principal::Node(id) => format!("Tongban {} node {id}", id.tier()),
            Principal::Operator { place, name } => format!("Tongban operator {name} at {place}"),
            Principal::Courier { place, device } => format!("Tongban courier {device} at {place}"),
        }
    }

    fn validate(&self) -> Result<(), PkiError> {
        match self {
            Principal::Node(_) => Ok(()),
            Principal::Operator { name: label, .. } | Principal::Courier { device: label, .. } => {
                check_label(label).map_err(|reason| bad_principal(&self.to_string(), reason))
            }
        }
    }
}

/// Operator names and device labels: `[A-Za-z0-9][A-Za-z0-9._-]*`, at most 64 characters.
fn check_label(label: &str) -> Result<(), String> {
    if label.is_empty() {
        return Err("the name is empty".to_owned());
    }
    if label.len() > MAX_LABEL_LEN {
        return Err(format!("the name is longer than {MAX_LABEL_LEN} characters"));
    }
    if !label.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err("the name must start with a letter or a digit".to_owned());
    }
    if let Some(c) = label
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || ".-_".contains(*c)))
    {
        return Err(format!(
            "the name contains {c:?} (allowed: letters, digits, '.', '_', '-')"
        ));
    }
    Ok(())
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::Node(id) => write!(f, "node:{id}"),
            Principal::Operator { place, name } => write!(f, "operator:{place}:{name}"),
            Principal::Courier { place, device } => write!(f, "courier:{place}:{device}"),
        }
    }
}

impl FromStr for Principal {
    type Err = PkiError;

    /// Parses `node:441424100`, `operator:441424:wang.fang` or `courier:441424100:dev-07`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split(':').collect();
        let place = |code: &str| NodeId::new(code).map_err(|e| bad_principal(s, e.to_string()));
        match parts.as_slice() {
            ["node", id] => Ok(Principal::Node(place(id)?)),
            ["operator", at, name] => {
                let p = Principal::Operator {
                    place: place(at)?,
                    name: (*name).to_owned(),
                };
                p.validate().map(|()| p)
            }
            ["courier", at, device] => {
                let p = Principal::Courier {
                    place: place(at)?,
                    device: (*device).to_owned(),
                };
                p.validate().map(|()| p)
            }
            ["node" | "operator" | "courier", ..] => Err(bad_principal(
                s,
                "expected node:<id>, operator:<place>:<name> or courier:<place>:<device>",
            )),
            [role, ..] => Err(bad_principal(
                s,
                format!("unknown role {role:?} (expected node, operator or courier)"),
            )),
            [] => Err(bad_principal(s, "empty")),
        }
    }
}

impl TryFrom<String> for Principal {
    type Error = PkiError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Principal> for String {
    fn from(p: Principal) -> String {
        p.to_string()
    }
}

// ---------------------------------------------------------------------------------------------
// Reading certificates
// ---------------------------------------------------------------------------------------------

/// Reads the one Tongban identity of a DER certificate.
pub fn principal_from_cert_der(der: &[u8]) -> Result<Principal, PkiError> {
    let cert = parse_der(der)?;
    principal_of(&cert)
}

/// Reads the Tongban identity of the first certificate in a PEM text, e.g. a node checking its
/// own configured certificate at start-up.
pub fn principal_from_cert_pem(pem: &str) -> Result<Principal, PkiError> {
    let der = cert_der_from_pem(pem)?;
    principal_from_cert_der(&der)
}

/// The first certificate of a PEM text, as DER.
pub fn cert_der_from_pem(pem: &str) -> Result<CertificateDer<'static>, PkiError> {
    match CertificateDer::pem_slice_iter(pem.as_bytes()).next() {
        Some(Ok(der)) => Ok(der),
        Some(Err(e)) => Err(PkiError::BadCertificate(format!("bad PEM: {e}"))),
        None => Err(PkiError::NotPem {
            what: "certificate",
            label: "CERTIFICATE",
        }),
    }
}

/// Checks that `key_pem` is a usable private key whose public half is the one in `cert_pem`.
pub fn check_key_matches(cert_pem: &str, key_pem: &str) -> Result<(), PkiError> {
    let key = key_from_pem(key_pem)?;
    let der = cert_der_from_pem(cert_pem)?;
    let cert = parse_der(&der)?;
    key_matches(&cert, &key)
}

/// Checks that `cert_pem` was issued by the CA in `ca_pem`, is currently valid and allows
/// client authentication (every Tongban certificate does).
pub fn verify_issued_by(ca_pem: &str, cert_pem: &str) -> Result<(), PkiError> {
    let ca = cert_der_from_pem(ca_pem)?;
    let cert = cert_der_from_pem(cert_pem)?;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(ca)
        .map_err(|e| PkiError::BadCertificate(format!("CA certificate not usable: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| PkiError::BadCertificate(format!("CA certificate not usable: {e}")))?;
    verifier
        .verify_client_cert(&cert, &[], UnixTime::now())
        .map(|_| ())
        .map_err(|e| PkiError::NotAcceptedByCa(describe_rustls_error(&e)))
}

fn describe_rustls_error(e: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(C::UnknownIssuer | C::BadSignature) => {
            "it is signed by another CA".to_owned()
        }
        rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => "it has expired".to_owned(),
        rustls::Error::InvalidCertificate(C::NotValidYet | C::NotValidYetContext { .. }) => {
            "it is not valid yet (check the clock)".to_owned()
        }
        other => other.to_string(),
    }
}

fn parse_der(der: &[u8]) -> Result<X509Certificate<'_>, PkiError> {
    match x509_parser::parse_x509_certificate(der) {
        Ok((_, cert)) => Ok(cert),
        Err(e) => Err(PkiError::BadCertificate(e.to_string())),
    }
}

fn principal_of(cert: &X509Certificate<'_>) -> Result<Principal, PkiError> {
    let san = cert
        .subject_alternative_name()
        .map_err(|e| PkiError::BadCertificate(format!("bad subject alternative names: {e}")))?;
    let uris = san
        .into_iter()
        .flat_map(|ext| ext.value.general_names.iter())
        .filter_map(|name| match name {
            GeneralName::URI(uri) if uri.starts_with(URN_PREFIX) => Some(*uri),
            _ => None,
        });
    let mut found: Option<&str> = None;
    for uri in uris {
        if let Some(first) = found {
            return Err(PkiError::TwoIdentities {
                first: first.to_owned(),
                second: uri.to_owned(),
            });
        }
        found = Some(uri);
    }
    Principal::from_uri(found.ok_or(PkiError::NoIdentity)?)
}

fn key_from_pem(key_pem: &str) -> Result<KeyPair, PkiError> {
    if !key_pem.contains("-----BEGIN") {
        return Err(PkiError::NotPem {
            what: "private key",
            label: "PRIVATE KEY",
        });
    }
    KeyPair::from_pem(key_pem).map_err(|e| PkiError::BadKey(e.to_string()))
}

fn key_matches(cert: &X509Certificate<'_>, key: &KeyPair) -> Result<(), PkiError> {
    if cert.public_key().subject_public_key.data.as_ref() == key.der_bytes() {
        Ok(())
    } else {
        Err(PkiError::KeyMismatch)
    }
}

// ---------------------------------------------------------------------------------------------
// The development CA
// ---------------------------------------------------------------------------------------------

/// A certificate and its private key, both PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedCert {
    pub cert_pem: String,
    pub key_pem: String,
}

impl fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCert")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

/// A county's development CA: signs node, operator and courier certificates.
pub struct DevCa {
    cert_pem: String,
    key_pem: String,
    /// Rebuilt from the CA certificate's subject and key identifier, so certificates issued after
    /// a reload chain to the same CA certificate.
    issuer: Issuer<'static, KeyPair>,
    /// Leaves never outlive their CA.
    not_after: ASN1Time,
}

impl fmt::Debug for DevCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key stays out of logs.
        f.debug_struct("DevCa")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

impl DevCa {
    /// Generates a fresh CA for `county` (any node id works; its county code names the CA).
    pub fn generate(county: &NodeId) -> Result<DevCa, PkiError> {
        let county = county.county();
        let key = KeyPair::generate()?;
        // A short fingerprint of the key makes every CA's name unique, so a certificate from
        // another CA of the same county reads as "unknown issuer", not as a bad signature, and
        // logs tell the CAs apart.
        let fingerprint = hex::encode(&Sha256::digest(key.der_bytes())[..4]);
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "Tongban");
        dn.push(
            DnType::CommonName,
            format!("Tongban {county} development CA {fingerprint}"),
        );
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let start = ASN1Time::now().to_datetime() - CLOCK_SKEW_ALLOWANCE;
        params.not_before = start;
        params.not_after = start + CA_VALIDITY;
        let cert = params.self_signed(&key)?;
        Ok(DevCa {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            not_after: ASN1Time::new(params.not_after),
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads a CA saved from [`DevCa::cert_pem`] and [`DevCa::key_pem`] (or any CA certificate
    /// whose subject uses ordinary string types).
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<DevCa, PkiError> {
        let der = cert_der_from_pem(cert_pem)?;
        let cert = parse_der(&der)?;
        if !cert.is_ca() {
            return Err(PkiError::NotACa);
        }
        let key = key_from_pem(key_pem)?;
        key_matches(&cert, &key)?;

        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name_of(&cert)?;
        params.key_identifier_method = cert
            .iter_extensions()
            .find_map(|ext| match ext.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(id) => Some(KeyIdMethod::PreSpecified(id.0.to_vec())),
                _ => None,
            })
            .unwrap_or(KeyIdMethod::Sha256);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        Ok(DevCa {
            cert_pem: cert_pem.to_owned(),
            key_pem: key_pem.to_owned(),
            not_after: cert.validity().not_after,
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate, PEM: what every node and client trusts.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA private key, PEM. Keep it off the nodes.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// Issues a certificate (with a fresh key) for `principal`.
    pub fn issue(&self, principal: &Principal) -> Result<IssuedCert, PkiError> {
        principal.validate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "Tongban");
        dn.push(DnType::CommonName, principal.common_name());
        params.distinguished_name = dn;
        let uri = principal.uri().try_into()?;
        params.subject_alt_names = vec![SanType::URI(uri)];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        match principal {
            Principal::Node(id) => {
                for name in [
                    format!("{id}.{NODE_DNS_SUFFIX}"),
                    NODE_DNS_SUFFIX.to_owned(),
                    "localhost".to_owned(),
                ] {
                    params.subject_alt_names.push(SanType::DnsName(name.try_into()?));
                }
                params.extended_key_usages =
                    vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
            }
            Principal::Operator { .. } | Principal::Courier { .. } => {
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            }
        }
        let start = ASN1Time::now().to_datetime() - CLOCK_SKEW_ALLOWANCE;
        params.not_before = start;
        params.not_after = (start + LEAF_VALIDITY).min(self.not_after.to_datetime());

        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// Rebuilds an rcgen distinguished name from a parsed certificate subject, keeping each value's
/// string type so the issuer name of new certificates matches the CA subject byte for byte.
fn distinguished_name_of(cert: &X509Certificate<'_>) -> Result<DistinguishedName, PkiError> {
    use x509_parser::der_parser::asn1_rs::Tag;

    let unsupported = |why: &str| PkiError::BadCertificate(format!("CA subject: {why}"));
    let mut dn = DistinguishedName::new();
    for rdn in cert.subject().iter() {
        let mut attrs = rdn.iter();
        let (Some(attr), None) = (attrs.next(), attrs.next()) else {
            return Err(unsupported("multi-valued or empty name components are not supported"));
        };
        let oid: Vec<u64> = attr
            .attr_type()
            .iter()
            .ok_or_else(|| unsupported("attribute type too large"))?
            .collect();
        let data = attr.attr_value().data;
        let text = std::str::from_utf8(data).map_err(|_| unsupported("value is not text"))?;
        let value = match attr.attr_value().header.tag() {
            Tag::Utf8String => DnValue::Utf8String(text.to_owned()),
            Tag::PrintableString => DnValue::PrintableString(text.try_into()?),
            Tag::Ia5String => DnValue::Ia5String(text.try_into()?),
            Tag::T61String => DnValue::TeletexString(text.try_into()?),
            other => return Err(unsupported(&format!("unsupported string type {other}"))),
        };
        dn.push(DnType::from_oid(&oid), value);
    }
    Ok(dn)
}

// ---------------------------------------------------------------------------------------------
// On-disk layout
// ---------------------------------------------------------------------------------------------

/// Where the files of a PKI directory live.
///
/// ```text
/// ca.pem  ca.key                         the CA (ca.key mode 0600)
/// nodes/<id>.pem  nodes/<id>.key         one pair per node
/// operators/<place>-<name>.pem  .key     one pair per operator
/// couriers/<place>-<device>.pem  .key    one pair per courier device
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiLayout {
    dir: PathBuf,
}

impl PkiLayout {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        PkiLayout { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }

    pub fn node_cert(&self, id: &NodeId) -> PathBuf {
        self.cert_path(&Principal::Node(id.clone()))
    }

    pub fn node_key(&self, id: &NodeId) -> PathBuf {
        self.key_path(&Principal::Node(id.clone()))
    }

    pub fn operator_cert(&self, place: &NodeId, name: &str) -> PathBuf {
        let principal = Principal::Operator {
            place: place.clone(),
            name: name.to_owned(),
        };
        self.file(&principal, "pem")
    }

    pub fn operator_key(&self, place: &NodeId, name: &str) -> PathBuf {
        let principal = Principal::Operator {
            place: place.clone(),
            name: name.to_owned(),
        };
        self.file(&principal, "key")
    }

    /// The certificate file of any principal.
    pub fn cert_path(&self, principal: &Principal) -> PathBuf {
        self.file(principal, "pem")
    }

    /// The private key file of any principal.
    pub fn key_path(&self, principal: &Principal) -> PathBuf {
        self.file(principal, "key")
    }

    fn file(&self, principal: &Principal, ext: &str) -> PathBuf {
        // Built as a string: names may contain dots (`wang.fang`), so `with_extension` would cut them.
        match principal {
            Principal::Node(id) => self.dir.join("nodes").join(format!("{id}.{ext}")),
            Principal::Operator { place, name } => self.dir.join("operators").join(format!("{place}-{name}.{ext}")),
            Principal::Courier { place, device } => self.dir.join("couriers").join(format!("{place}-{device}.{ext}")),
        }
    }

    /// Loads the CA stored in this directory.
    pub fn load_ca(&self) -> Result<DevCa, PkiError> {
        let cert = read(&self.ca_cert())?;
        let key = read(&self.ca_key())?;
        DevCa::load(&cert, &key).map_err(|e| PkiError::InFile {
            path: self.ca_cert(),
            source: Box::new(e),
        })
    }

    /// Loads the CA, or creates one for `county` when neither `ca.pem` nor `ca.key` exists.
    pub fn load_or_create_ca(&self, county: &NodeId) -> Result<DevCa, PkiError> {
        let (cert, key) = (self.ca_cert(), self.ca_key());
        match (cert.exists(), key.exists()) {
            (true, true) => self.load_ca(),
            (false, false) => {
                let ca = DevCa::generate(county)?;
                create_dir(&self.dir)?;
                write_file(&key, ca.key_pem(), true)?;
                write_file(&cert, ca.cert_pem(), false)?;
                Ok(ca)
            }
            (true, false) => Err(PkiError::IncompleteCa {
                present: cert,
                missing: key,
            }),
            (false, true) => Err(PkiError::IncompleteCa {
                present: key,
                missing: cert,
            }),
        }
    }

    /// Makes sure `principal` has a certificate and key issued by `ca` in this directory.
    /// An existing pair is kept when it is valid, issued by `ca` and names `principal`;
    /// otherwise a new pair is issued. Returns true when files were written.
    pub fn ensure(&self, ca: &DevCa, principal: &Principal) -> Result<bool, PkiError> {
        let (cert_path, key_path) = (self.cert_path(principal), self.key_path(principal));
        if cert_path.exists() && key_path.exists() {
            let cert = read(&cert_path)?;
            let key = read(&key_path)?;
            let still_good = verify_issued_by(ca.cert_pem(), &cert).is_ok()
                && check_key_matches(&cert, &key).is_ok()
                && principal_from_cert_pem(&cert).ok().as_ref() == Some(principal);
            if still_good {
                return Ok(false);
            }
        }
        let issued = ca.issue(principal)?;
        if let Some(parent) = cert_path.parent() {
            create_dir(parent)?;
        }
        // Key first: a crash in between leaves no certificate, so the next run reissues.
        write_file(&key_path, &issued.key_pem, true)?;
        write_file(&cert_path, &issued.cert_pem, false)?;
        Ok(true)
    }
}

/// Creates or completes a PKI directory: the CA (reused when `ca.pem` and `ca.key` exist, so
/// adding a node later keeps one CA), one certificate per node and one per operator. Existing
/// valid certificates are kept. The CA is named after the county of the first node (or the
/// first operator's place).
pub fn init_dir(dir: &Path, nodes: &[NodeId], operators: &[(NodeId, String)]) -> Result<PkiLayout, PkiError> {
    let layout = PkiLayout::new(dir);
    let county = nodes
        .first()
        .or_else(|| operators.first().map(|(place, _)| place))
        .map(NodeId::county);
    let ca = match county {
        Some(county) => layout.load_or_create_ca(&county)?,
        None if layout.ca_cert().exists() || layout.ca_key().exists() => layout.load_ca()?,
        None => return Err(PkiError::NoCounty),
    };
    for id in nodes {
        layout.ensure(&ca, &Principal::Node(id.clone()))?;
    }
    for (place, name) in operators {
        layout.ensure(&ca, &Principal::operator(place.clone(), name.clone())?)?;
    }
    Ok(layout)
}

fn read(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(|source| PkiError::Io {
        path: path.to_owned(),
        source,
    })
}

fn create_dir(dir: &Path) -> Result<(), PkiError> {
    fs::create_dir_all(dir).map_err(|source| PkiError::Io {
        path: dir.to_owned(),
        source,
    })
}

/// Writes `contents` through a temporary file and a rename; private files get mode 0600.
fn write_file(path: &Path, contents: &str, private: bool) -> Result<(), PkiError> {
    let io_err = |source| PkiError::Io {
        path: path.to_owned(),
        source,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(&tmp).map_err(io_err)?;
    io::Write::write_all(&mut file, contents.as_bytes()).map_err(io_err)?;
    file.sync_all().map_err(io_err)?;
    drop(file);
    #[cfg(unix)]
    if private {
        // `mode` applies only to newly created files; a leftover temp file keeps its old mode.
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600)).map_err(io_err)?;
    }
    fs::rename(&tmp, path).map_err(io_err)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn id(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    #[test]
    fn principals_print_and_parse() {
        let cases = [
            (Principal::Node(id("441424100")), "node:441424100"),
            (
                Principal::operator(id("441424"), "wang.fang").unwrap(),
                "operator:441424:wang.fang",
            ),
            (
                Principal::courier(id("441424100"), "dev-07").unwrap(),
                "courier:441424100:dev-07",
            ),
        ];
        for (principal, text) in cases {
            assert_eq!(principal.to_string(), text);
            assert_eq!(text.parse::<Principal>().unwrap(), principal);
            assert_eq!(Principal::from_uri(&principal.uri()).unwrap(), principal);
            let json = serde_json::to_string(&principal).unwrap();
            assert_eq!(json, format!("{text:?}"));
            assert_eq!(serde_json::from_str::<Principal>(&json).unwrap(), principal);
        }
        assert_eq!(Principal::Node(id("441424")).uri(), "urn:tongban:node:441424");
    }

    #[test]
    fn malformed_principals_are_refused_with_a_reason() {
        for bad in [
            "",
            "node",
            "node:44142",
            "node:441424:x",
            "operator:441424",
            "operator:441424:",
            "operator:441424:wang fang",
            "operator:441424:../etc",
            "courier:441424100:a:b",
            "mayor:441424",
        ] {
            let err = bad.parse::<Principal>().unwrap_err().to_string();
            assert!(err.contains("is not a Tongban identity"), "{bad}: {err}");
        }
        let err = "mayor:441424".parse::<Principal>().unwrap_err().to_string();
        assert!(err.contains("unknown role \"mayor\""), "{err}");
        assert!(Principal::operator(id("441424"), "-x").is_err());
        assert!(Principal::courier(id("441424"), "x".repeat(65)).is_err());
    }

    #[test]
    fn issued_certificates_carry_their_principal() {
        let ca = DevCa::generate(&id("441424")).unwrap();
        assert!(ca.cert_pem().contains("BEGIN CERTIFICATE"));
        for principal in [
            Principal::Node(id("441424")),
            Principal::Node(id("441424100201")),
            Principal::operator(id("441424"), "wang.fang").unwrap(),
            Principal::courier(id("441424100"), "dev-07").unwrap(),
        ] {
            let issued = ca.issue(&principal).unwrap();
            assert_eq!(principal_from_cert_pem(&issued.cert_pem).unwrap(), principal);
            let der = cert_der_from_pem(&issued.cert_pem).unwrap();
            assert_eq!(principal_from_cert_der(&der).unwrap(), principal);
            check_key_matches(&issued.cert_pem, &issued.key_pem).unwrap();
            verify_issued_by(ca.cert_pem(), &issued.cert_pem).unwrap();
        }
    }

    #[test]
    fn node_certificates_name_the_node_for_webpki() {
        let ca = DevCa::generate(&id("441424")).unwrap();
        let issued = ca.issue(&Principal::Node(id("441424100"))).unwrap();
        let der = cert_der_from_pem(&issued.cert_pem).unwrap();
        let cert = parse_der(&der).unwrap();
        let san = cert.subject_alternative_name().unwrap().unwrap();
        let dns: Vec<&str> = san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(d) => Some(*d),
                _ => None,
            })
            .collect();
        assert_eq!(dns, ["441424100.node.tongban", "node.tongban", "localhost"]);
        assert!(!cert.is_ca());
    }

    #[test]
    fn certificates_without_or_with_two_identities_are_refused() {
        let key = KeyPair::generate().unwrap();
        let plain = CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let err = principal_from_cert_der(plain.der()).unwrap_err();
        assert!(err.to_string().contains("carries no Tongban identity"), "{err}");

        let mut params = CertificateParams::default();
        params.subject_alt_names = vec![
            SanType::URI("urn:tongban:node:441424100".try_into().unwrap()),
            SanType::URI("urn:tongban:node:441424".try_into().unwrap()),
        ];
        let two = params.self_signed(&key).unwrap();
        let err = principal_from_cert_der(two.der()).unwrap_err();
        assert!(err.to_string().contains("two Tongban identities"), "{err}");

        params.subject_alt_names = vec![SanType::URI("urn:tongban:node:12".try_into().unwrap())];
        let bad = params.self_signed(&key).unwrap();
        let err = principal_from_cert_der(bad.der()).unwrap_err();
        assert!(err.to_string().contains("not a Tongban identity"), "{err}");

        assert!(matches!(
            principal_from_cert_der(b"junk"),
            Err(PkiError::BadCertificate(_))
        ));
        assert!(matches!(principal_from_cert_pem("junk"), Err(PkiError::NotPem { .. })));
    }

    #[test]
    fn a_reloaded_ca_issues_certificates_that_chain_to_it() {
        let ca = DevCa::generate(&id("441424100")).unwrap();
        let again = DevCa::load(ca.cert_pem(), ca.key_pem()).unwrap();
        let issued = again.issue(&Principal::Node(id("441424100"))).unwrap();
        verify_issued_by(ca.cert_pem(), &issued.cert_pem).unwrap();
    }

    #[test]
    fn a_foreign_ca_does_not_verify() {
        let ours = DevCa::generate(&id("441424")).unwrap();
        let theirs = DevCa::generate(&id("441424")).unwrap();
        let foreign = theirs.issue(&Principal::Node(id("441424100"))).unwrap();
        let err = verify_issued_by(ours.cert_pem(), &foreign.cert_pem).unwrap_err();
        assert!(matches!(err, PkiError::NotAcceptedByCa(_)), "{err}");
        assert!(err.to_string().contains("signed by another CA"), "{err}");
    }

    #[test]
    fn loading_refuses_a_mismatched_key_or_a_leaf() {
        let ca = DevCa::generate(&id("441424")).unwrap();
        let other = DevCa::generate(&id("441424")).unwrap();
        assert!(matches!(
            DevCa::load(ca.cert_pem(), other.key_pem()),
            Err(PkiError::KeyMismatch)
        ));
        let leaf = ca.issue(&Principal::Node(id("441424100"))).unwrap();
        assert!(matches!(
            DevCa::load(&leaf.cert_pem, &leaf.key_pem),
            Err(PkiError::NotACa)
        ));
        assert!(matches!(
            DevCa::load(ca.cert_pem(), "nope"),
            Err(PkiError::NotPem { .. })
        ));
    }

    #[test]
    fn init_dir_writes_the_layout_and_reuses_the_ca() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("pki");
        let county = id("441424");
        let town = id("441424100");
        let ops = [(county.clone(), "wang.fang".to_owned())];

        let layout = init_dir(&dir, &[county.clone(), town.clone()], &ops).unwrap();
        let ca_pem = fs::read_to_string(layout.ca_cert()).unwrap();
        let town_pem = fs::read_to_string(layout.node_cert(&town)).unwrap();
        assert_eq!(layout.node_cert(&town), dir.join("nodes/441424100.pem"));
        assert_eq!(
            layout.operator_key(&county, "wang.fang"),
            dir.join("operators/441424-wang.fang.key")
        );
        let op_pem = fs::read_to_string(layout.operator_cert(&county, "wang.fang")).unwrap();
        assert_eq!(
            principal_from_cert_pem(&op_pem).unwrap(),
            Principal::operator(county.clone(), "wang.fang").unwrap()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for key in [
                layout.ca_key(),
                layout.node_key(&town),
                layout.operator_key(&county, "wang.fang"),
            ] {
                let mode = fs::metadata(&key).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{}", key.display());
            }
        }

        // Adding a village later keeps the CA and the existing node certificates.
        let village = id("441424100201");
        let again = init_dir(&dir, &[county.clone(), town.clone(), village.clone()], &ops).unwrap();
        assert_eq!(fs::read_to_string(again.ca_cert()).unwrap(), ca_pem);
        assert_eq!(fs::read_to_string(again.node_cert(&town)).unwrap(), town_pem);
        let village_pem = fs::read_to_string(again.node_cert(&village)).unwrap();
        verify_issued_by(&ca_pem, &village_pem).unwrap();
        check_key_matches(&village_pem, &fs::read_to_string(again.node_key(&village)).unwrap()).unwrap();
    }

    #[test]
    fn init_dir_refuses_half_a_ca() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("ca.pem"), "x").unwrap();
        let err = init_dir(tmp.path(), &[id("441424")], &[]).unwrap_err();
        assert!(matches!(err, PkiError::IncompleteCa { .. }), "{err}");
    }
}
