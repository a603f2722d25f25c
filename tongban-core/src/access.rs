//! Who may call what, decided in one place, and how every error becomes a gRPC status.
//!
//! [`ACCESS`] is the table: every RPC a node serves, with the [`Policy`] its caller must meet.
//! [`AccessLayer`] applies it to each request before the request is decoded, from the
//! principal named by the caller's client certificate; an RPC missing from the table is refused
//! (deny by default), so a new service cannot be served unguarded. Handlers read the admitted
//! caller with [`caller`] and apply only what a policy cannot know (the case holder, the
//! handling unit), through the domain code.
//!
//! [`IntoStatus`] is the one mapping from the library's errors to statuses, used by every
//! service: refusals and bad input keep their sentence under the precise code; store failures
//! are logged and answered `INTERNAL`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::codegen::http;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tonic::{Request, Status};

use crate::ids::NodeId;
use crate::pki::{self, Principal};
use crate::store::StoreError;

/// What a caller must be for an RPC, relative to the node that serves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Any principal with a certificate of the county CA (health, reflection).
    AnyCertified,
    /// An operator whose place is this node or above it: reads of this node's subtree, and
    /// county acts the domain restricts to the county node (catalogue import, calendar).
    OperatorAtOrAbove,
    /// An operator of this very node: acts recorded here (cases, responses, anomaly notes).
    OperatorHere,
    /// A courier (uploads wherever the handheld finds a link), or an operator at or above.
    CourierOrOperatorAtOrAbove,
    /// The node certificate of a direct child (the sync link).
    DirectChild,
}

/// The access table: every RPC served, and who may call it.
pub const ACCESS: &[(&str, Policy)] = &[
    ("/tongban.v1.Sync/Link", Policy::DirectChild),
    ("/tongban.v1.Node/Status", Policy::OperatorAtOrAbove),
    ("/tongban.v1.Node/ListAlarms", Policy::OperatorAtOrAbove),
    ("/tongban.v1.Catalogue/Import", Policy::OperatorAtOrAbove),
    ("/tongban.v1.Catalogue/ListItems", Policy::OperatorAtOrAbove),
    ("/tongban.v1.Catalogue/GetItem", Policy::OperatorAtOrAbove),
    ("/tongban.v1.Catalogue/ListVersions", Policy::OperatorAtOrAbove),
    ("/tongban.v1.Calendar/Publish", Policy::OperatorAtOrAbove),
    ("/tongban.v1.Calendar/Show", Policy::OperatorAtOrAbove),
    ("/tongban.v1.Cases/Submit", Policy::OperatorHere),
    ("/tongban.v1.Cases/Act", Policy::OperatorHere),
    ("/tongban.v1.Cases/Get", Policy::OperatorAtOrAbove),
    ("/tongban.v1.Cases/List", Policy::OperatorAtOrAbove),
    ("/tongban.v1.Cases/ListWarnings", Policy::OperatorAtOrAbove),
    ("/tongban.v1.Cases/ListSupervision", Policy::OperatorAtOrAbove),
    ("/tongban.v1.Cases/CloseSupervision", Policy::OperatorHere),
    ("/tongban.v1.Seals/ListEntries", Policy::OperatorAtOrAbove),
    ("/tongban.v1.Seals/ExportCsv", Policy::OperatorAtOrAbove),
    ("/tongban.v1.Ratings/Respond", Policy::OperatorHere),
    ("/tongban.v1.Ratings/ListRectifications", Policy::OperatorAtOrAbove),
    ("/tongban.v1.Oversight/Summary", Policy::OperatorAtOrAbove),
    ("/tongban.v1.Custody/UploadScans", Policy::CourierOrOperatorAtOrAbove),
    ("/tongban.v1.Custody/WhereIs", Policy::OperatorAtOrAbove),
    ("/tongban.v1.Custody/BoxHistory", Policy::OperatorAtOrAbove),
    ("/tongban.v1.Custody/ListAnomalies", Policy::OperatorAtOrAbove),
    ("/tongban.v1.Custody/NoteAnomaly", Policy::OperatorHere),
    ("/tongban.v1.Custody/ExportEpcis", Policy::OperatorAtOrAbove),
    ("/grpc.health.v1.Health/Check", Policy::AnyCertified),
    ("/grpc.health.v1.Health/Watch", Policy::AnyCertified),
    (
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        Policy::AnyCertified,
    ),
    (
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        Policy::AnyCertified,
    ),
];

/// The policy of the RPC at `path`, if the table has it.
pub fn policy_of(path: &str) -> Option<Policy> {
    ACCESS.iter().find(|(p, _)| *p == path).map(|(_, policy)| *policy)
}

/// Whether `principal` meets `policy` at node `here`; the refusal says who may.
pub fn admit(policy: Policy, principal: &Principal, here: &NodeId) -> Result<(), Status> {
    let operator_at_or_above = |place: &NodeId| place.contains(here.as_str());
    let allowed = match (policy, principal) {
        (Policy::AnyCertified, _) => true,
        (Policy::OperatorAtOrAbove, Principal::Operator { place, .. }) => operator_at_or_above(place),
        (Policy::OperatorHere, Principal::Operator { place, .. }) => place == here,
        (Policy::CourierOrOperatorAtOrAbove, Principal::Courier { .. }) => true,
        (Policy::CourierOrOperatorAtOrAbove, Principal::Operator { place, .. }) => operator_at_or_above(place),
        (Policy::DirectChild, Principal::Node(id)) => id.parent().as_ref() == Some(here),
        _ => false,
    };
    if allowed {
        return Ok(());
    }
    // Who the caller is, in the words of the refusal.
    let who = match principal {
        Principal::Operator { place, .. } => format!("{principal} (an operator of {place})"),
        other if policy != Policy::DirectChild => format!("{other} is not an operator, and"),
        other => other.to_string(),
    };
    Err(Status::permission_denied(match policy {
        Policy::AnyCertified => unreachable_refusal(),
        Policy::OperatorAtOrAbove => format!(
            "{who} may not call this at node {here}: it needs an operator certificate of {here} or of a node above it"
        ),
        Policy::OperatorHere => format!(
            "{who} may not do this at node {here}: it is recorded where the operator works, so an operator of {here} must do it"
        ),
        Policy::CourierOrOperatorAtOrAbove => format!(
            "{} may not upload scans at {here}: couriers, and operators of {here} or above it, may",
            principal
        ),
        Policy::DirectChild => match principal {
            Principal::Node(id) => format!(
                "node {id} is not a direct child of {here}; a {} links to {}",
                id.tier(),
                id.parent().map(|p| p.to_string()).unwrap_or_else(|| "nobody".into())
            ),
            other => format!("{other} is not a node; only child nodes may open a sync link"),
        },
    }))
}

fn unreachable_refusal() -> String {
    // AnyCertified admits every principal; kept total so the match above needs no panic.
    "refused".to_owned()
}

/// The caller admitted by [`AccessLayer`], as the handler sees it.
pub fn caller<T>(request: &Request<T>) -> Result<Principal, Status> {
    request
        .extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("no admitted caller: this service is served behind the access table"))
}

/// The principal named by the client certificate of an HTTP request on a mutual-TLS listener.
fn principal_of<B>(request: &http::Request<B>) -> Result<Principal, Status> {
    let certs = request
        .extensions()
        .get::<TlsConnectInfo<TcpConnectInfo>>()
        .and_then(|info| info.peer_certs())
        .ok_or_else(|| {
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

/// The decision for one request: the admitted principal, or the status to answer with.
fn decide<B>(request: &http::Request<B>, here: &NodeId) -> Result<Principal, Status> {
    let path = request.uri().path();
    let Some(policy) = policy_of(path) else {
        return Err(Status::unimplemented(format!("{path} is not a Tongban service")));
    };
    let principal = principal_of(request)?;
    admit(policy, &principal, here)?;
    Ok(principal)
}

/// A tower layer that applies [`ACCESS`] to every request of a node's gRPC server.
#[derive(Debug, Clone)]
pub struct AccessLayer {
    here: NodeId,
}

impl AccessLayer {
    pub fn new(here: NodeId) -> Self {
        AccessLayer { here }
    }
}

impl<S> tower::Layer<S> for AccessLayer {
    type Service = AccessService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AccessService {
            inner,
            here: self.here.clone(),
        }
    }
}

/// See [`AccessLayer`].
#[derive(Debug, Clone)]
pub struct AccessService<S> {
    inner: S,
    here: NodeId,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B, R> tower::Service<http::Request<B>> for AccessService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        match decide(&request, &self.here) {
            Ok(principal) => {
                request.extensions_mut().insert(principal);
                Box::pin(self.inner.call(request))
            }
            Err(status) => {
                tracing::debug!(path = %request.uri().path(), %status, "refused by the access table");
                let response = status.into_http::<R>();
                Box::pin(async move { Ok(response) })
            }
        }
    }
}

/// The one mapping from the library's errors to gRPC statuses.
pub trait IntoStatus {
    fn into_status(self) -> Status;
}

/// A store failure the caller cannot fix: logged here, answered `INTERNAL`.
pub fn internal(error: impl std::fmt::Display) -> Status {
    tracing::error!(%error, "store failure");
    Status::internal(error.to_string())
}

impl IntoStatus for StoreError {
    fn into_status(self) -> Status {
        match self {
            StoreError::Refused(reason) => Status::failed_precondition(reason),
            StoreError::Event(e) => Status::invalid_argument(e.to_string()),
            StoreError::WriterGone => Status::unavailable(self.to_string()),
            other => internal(other),
        }
    }
}

impl IntoStatus for crate::case::Refusal {
    fn into_status(self) -> Status {
        use crate::case::RefusalCode;
        let message = self.to_string();
        match self.code() {
            RefusalCode::InvalidArgument => Status::invalid_argument(message),
            RefusalCode::FailedPrecondition => Status::failed_precondition(message),
            RefusalCode::PermissionDenied => Status::permission_denied(message),
        }
    }
}

impl IntoStatus for crate::store::CaseError {
    fn into_status(self) -> Status {
        use crate::store::CaseError;
        match self {
            CaseError::Refused(refusal) => refusal.into_status(),
            CaseError::NotFound(what) => Status::not_found(format!("no case {what} is known at this node")),
            CaseError::Changed(reason) => Status::aborted(format!(
                "the case changed while this action was being recorded; nothing was written, look at the case again ({reason})"
            )),
            CaseError::Store(e) => e.into_status(),
        }
    }
}

impl IntoStatus for crate::store::CustodyError {
    fn into_status(self) -> Status {
        use crate::store::CustodyError;
        match self {
            CustodyError::Invalid(message) => Status::invalid_argument(message),
            CustodyError::NotFound(message) => Status::not_found(message),
            CustodyError::Store(e) => e.into_status(),
        }
    }
}

impl IntoStatus for crate::store::SupervisionError {
    fn into_status(self) -> Status {
        use crate::store::SupervisionError;
        match self {
            e @ SupervisionError::MissingReason => Status::invalid_argument(format!("reason: {e}")),
            e @ SupervisionError::NotFound(_) => Status::not_found(e.to_string()),
            e @ SupervisionError::AlreadyClosed(_) => Status::failed_precondition(e.to_string()),
            SupervisionError::Store(e) => e.into_status(),
        }
    }
}

impl IntoStatus for crate::store::RectificationError {
    fn into_status(self) -> Status {
        use crate::store::RectificationError;
        match self {
            RectificationError::Invalid(m) => Status::invalid_argument(m),
            e @ RectificationError::NotFound(_) => Status::not_found(e.to_string()),
            RectificationError::Closed(m) => Status::failed_precondition(m),
            RectificationError::NotHandler(m) => Status::permission_denied(m),
            RectificationError::Store(e) => e.into_status(),
        }
    }
}

/// `map_err(status)`: any error of the library as its status.
pub fn status<E: IntoStatus>(error: E) -> Status {
    error.into_status()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use prost::Message;

    use super::*;

    fn id(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    fn operator(place: &str) -> Principal {
        Principal::Operator {
            place: id(place),
            name: "wang".into(),
        }
    }

    #[test]
    fn every_served_rpc_has_exactly_one_row() {
        let set = prost_types::FileDescriptorSet::decode(tongban_proto::FILE_DESCRIPTOR_SET).unwrap();
        let mut served = Vec::new();
        for file in &set.file {
            for service in &file.service {
                for method in &service.method {
                    served.push(format!("/{}.{}/{}", file.package(), service.name(), method.name()));
                }
            }
        }
        for path in &served {
            let rows = ACCESS.iter().filter(|(p, _)| p == path).count();
            assert_eq!(rows, 1, "{path} has {rows} rows in the access table");
        }
        let tongban_rows = ACCESS.iter().filter(|(p, _)| p.starts_with("/tongban.")).count();
        assert_eq!(tongban_rows, served.len(), "the table names an RPC that is not served");
    }

    #[test]
    fn each_policy_admits_exactly_its_callers() {
        let township = id("441424100");
        let courier = Principal::Courier {
            place: id("441424100"),
            device: "dev-07".into(),
        };
        let child = Principal::Node(id("441424100201"));
        let grandchild_of_county = Principal::Node(id("441424100201"));
        let cases: &[(Policy, &Principal, &NodeId, bool)] = &[
            (Policy::OperatorAtOrAbove, &operator("441424"), &township, true),
            (Policy::OperatorAtOrAbove, &operator("441424100"), &township, true),
            (Policy::OperatorAtOrAbove, &operator("441424101"), &township, false),
            (Policy::OperatorAtOrAbove, &operator("441424100201"), &township, false),
            (Policy::OperatorAtOrAbove, &courier, &township, false),
            (Policy::OperatorHere, &operator("441424100"), &township, true),
            (Policy::OperatorHere, &operator("441424"), &township, false),
            (Policy::CourierOrOperatorAtOrAbove, &courier, &township, true),
            (Policy::CourierOrOperatorAtOrAbove, &operator("441424"), &township, true),
            (Policy::CourierOrOperatorAtOrAbove, &child, &township, false),
            (Policy::DirectChild, &child, &township, true),
            (Policy::DirectChild, &grandchild_of_county, &id("441424"), false),
            (Policy::DirectChild, &operator("441424100"), &township, false),
            (Policy::AnyCertified, &courier, &township, true),
        ];
        for (policy, principal, here, allowed) in cases {
            let verdict = admit(*policy, principal, here);
            assert_eq!(
                verdict.is_ok(),
                *allowed,
                "{policy:?} {principal} at {here}: {verdict:?}"
            );
            if let Err(status) = verdict {
                assert_eq!(status.code(), tonic::Code::PermissionDenied);
            }
        }
    }

    #[test]
    fn an_rpc_outside_the_table_is_refused() {
        let request = http::Request::builder()
            .uri("/tongban.v1.Secret/Everything")
            .body(())
            .unwrap();
        let status = decide(&request, &id("441424")).unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unimplemented);
    }

    #[test]
    fn refusals_map_to_their_status_codes() {
        let holder = NodeId::new("441424100").unwrap();
        let refusal = crate::case::Refusal::NotHolder {
            holder: holder.clone(),
            actor: NodeId::new("441424").unwrap(),
        };
        let not_holder = status(refusal);
        assert_eq!(not_holder.code(), tonic::Code::FailedPrecondition);
        assert!(not_holder.message().contains("441424100"), "{}", not_holder.message());
        let missing = crate::case::Refusal::MissingReason {
            action: crate::case::ActionKind::RefuseAcceptance,
        };
        assert_eq!(status(missing).code(), tonic::Code::InvalidArgument);
        assert_eq!(
            status(crate::store::CaseError::NotFound("x".into())).code(),
            tonic::Code::NotFound
        );
    }
}
