//! Who may call what, decided in one place, and how every error becomes a gRPC status.
//!
//! An [`AccessTable`] lists every RPC a node serves with the [`Policy`] its caller must meet;
//! the node that mounts the services writes it down in one place. [`AccessLayer`] applies it to
//! each request before the request is decoded, from the principal named by the caller's client
//! certificate; an RPC missing from the table is refused (deny by default), so a new service
//! cannot be served unguarded. Handlers read the admitted caller with [`caller`] and apply only
//! what a policy cannot know (the case holder, the handling unit), through the domain code.
//!
//! [`IntoStatus`] is the one mapping from errors to statuses, implemented by the engine's and
//! the domains' errors and used by every service: refusals and bad input keep their sentence
//! under the precise code; store failures are logged and answered `INTERNAL`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::codegen::http;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tonic::{Request, Status};

use crate::ids::{NodeId, Tier};
use crate::log::StoreError;
use crate::pki::Principal;

/// What a caller must be for an RPC, relative to the node that serves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Any principal with a certificate of the county CA (health, reflection).
    AnyCertified,
    /// An operator whose place is this node or above it: reads of this node's subtree.
    OperatorAtOrAbove,
    /// An operator of this very node: acts recorded here (cases, responses, anomaly notes).
    OperatorHere,
    /// An operator of the county, at the county node: what only the county does (publishing the
    /// catalogue and the calendar). Below the county such a service is not mounted, and the
    /// table says where it is served instead of the router's bare UNIMPLEMENTED.
    CountyOperator,
    /// A courier (uploads wherever the handheld finds a link), or an operator at or above.
    CourierOrOperatorAtOrAbove,
    /// The node certificate of a direct child (the sync link).
    DirectChild,
}

/// Every RPC a node serves (its full path, `/package.Service/Method`) and who may call it.
pub type AccessTable = &'static [(&'static str, Policy)];

/// The rows of the RPCs the engine itself serves: the sync link, health and reflection.
pub const ENGINE_RPCS: AccessTable = &[
    ("/tongban.v1.Sync/Link", Policy::DirectChild),
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

/// The policy of the RPC at `path` in `table`, if the table has it.
pub fn policy_of(table: AccessTable, path: &str) -> Option<Policy> {
    table.iter().find(|(p, _)| *p == path).map(|(_, policy)| *policy)
}

/// Whether `principal` meets `policy` at node `here`; the refusal says who may.
pub fn admit(policy: Policy, principal: &Principal, here: &NodeId) -> Result<(), Status> {
    let at_or_above = |place: &NodeId| place.contains(here.as_str());
    // Who the caller is, in the words of a refusal under an operator's policy.
    let who = || match principal {
        Principal::Operator { place, .. } => format!("{principal} (an operator of {place})"),
        other => format!("{other} is not an operator, and"),
    };
    if policy == Policy::CountyOperator && here.tier() != Tier::County {
        return Err(Status::unimplemented(format!(
            "only the county node ({}) serves this; {here} is a {}. Connect to the county node",
            here.county(),
            here.tier()
        )));
    }
    let refusal = match (policy, principal) {
        (Policy::AnyCertified, _) => None,
        (Policy::CountyOperator, Principal::Operator { place, .. }) if place == here => None,
        (Policy::CountyOperator, _) => Some(format!(
            "{} may not do this: only an operator of the county ({here}) publishes for the whole county",
            who()
        )),
        (Policy::OperatorAtOrAbove, Principal::Operator { place, .. }) if at_or_above(place) => None,
        (Policy::OperatorAtOrAbove, _) => Some(format!(
            "{} may not call this at node {here}: it needs an operator certificate of {here} or of a node above it",
            who()
        )),
        (Policy::OperatorHere, Principal::Operator { place, .. }) if place == here => None,
        (Policy::OperatorHere, _) => Some(format!(
            "{} may not do this at node {here}: it is recorded where the operator works, so an operator of {here} must do it",
            who()
        )),
        (Policy::CourierOrOperatorAtOrAbove, Principal::Courier { .. }) => None,
        (Policy::CourierOrOperatorAtOrAbove, Principal::Operator { place, .. }) if at_or_above(place) => None,
        (Policy::CourierOrOperatorAtOrAbove, _) => Some(format!(
            "{principal} may not upload scans at {here}: couriers, and operators of {here} or above it, may"
        )),
        (Policy::DirectChild, Principal::Node(id)) if id.parent().as_ref() == Some(here) => None,
        (Policy::DirectChild, Principal::Node(id)) => Some(format!(
            "node {id} is not a direct child of {here}; a {} links to {}",
            id.tier(),
            id.parent().map(|p| p.to_string()).unwrap_or_else(|| "nobody".into())
        )),
        (Policy::DirectChild, other) => Some(format!("{other} is not a node; only child nodes may open a sync link")),
    };
    match refusal {
        None => Ok(()),
        Some(message) => Err(Status::permission_denied(message)),
    }
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
        .and_then(|info| info.peer_certs());
    crate::tls::principal_of_certs(certs.as_deref().map(Vec::as_slice))
}

/// The decision for one request: the admitted principal, or the status to answer with.
fn decide<B>(request: &http::Request<B>, here: &NodeId, tables: &[AccessTable]) -> Result<Principal, Status> {
    let path = request.uri().path();
    let Some(policy) = tables.iter().find_map(|table| policy_of(table, path)) else {
        return Err(Status::unimplemented(format!("{path} is not a Tongban service")));
    };
    let principal = principal_of(request)?;
    admit(policy, &principal, here)?;
    Ok(principal)
}

/// A tower layer that applies an [`AccessTable`] to every request of a node's gRPC server.
#[derive(Debug, Clone)]
pub struct AccessLayer {
    here: NodeId,
    tables: &'static [AccessTable],
}

impl AccessLayer {
    /// Applies `tables` at node `here`: [`ENGINE_RPCS`] and the table of whatever else the node
    /// serves. A path found in none of them is refused.
    pub fn new(here: NodeId, tables: &'static [AccessTable]) -> Self {
        AccessLayer { here, tables }
    }
}

impl<S> tower::Layer<S> for AccessLayer {
    type Service = AccessService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AccessService {
            inner,
            here: self.here.clone(),
            tables: self.tables,
        }
    }
}

/// See [`AccessLayer`].
#[derive(Debug, Clone)]
pub struct AccessService<S> {
    inner: S,
    here: NodeId,
    tables: &'static [AccessTable],
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
        match decide(&request, &self.here, self.tables) {
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

/// `map_err(status)`: any error of the library as its status.
pub fn status<E: IntoStatus>(error: E) -> Status {
    error.into_status()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
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
            (Policy::CountyOperator, &operator("441424"), &id("441424"), true),
            (Policy::CountyOperator, &operator("441424100"), &id("441424"), false),
            (Policy::CountyOperator, &courier, &id("441424"), false),
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
    fn a_county_service_below_the_county_is_unimplemented_and_says_where_it_is() {
        for here in ["441424100", "441424100201"] {
            let status = admit(Policy::CountyOperator, &operator("441424"), &id(here)).unwrap_err();
            assert_eq!(status.code(), tonic::Code::Unimplemented);
            assert!(status.message().contains("441424)"), "{}", status.message());
        }
    }

    #[test]
    fn an_rpc_outside_the_table_is_refused() {
        let request = http::Request::builder()
            .uri("/tongban.v1.Secret/Everything")
            .body(())
            .unwrap();
        let status = decide(&request, &id("441424"), &[ENGINE_RPCS]).unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unimplemented);
    }
}
