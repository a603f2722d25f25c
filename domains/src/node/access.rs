//! Who may call which of the domains' RPCs: the one table a reader audits (the engine adds the
//! rows of what it serves itself, the sync link, health and reflection: [`ENGINE_RPCS`]), and
//! the domains' errors as gRPC statuses ([`IntoStatus`]).

pub use tongban_engine::access::{AccessTable, ENGINE_RPCS, IntoStatus, Policy, caller, internal, status};
use tonic::Status;

/// Every domain RPC a node serves, and who may call it. Catalogue and calendar publishing are
/// served by the county node alone (its tier plan mounts them); the domain's rule refuses them
/// below the county too, since every replica re-checks what it folds.
pub const DOMAIN_RPCS: AccessTable = &[
    ("/tongban.v1.Node/Status", Policy::OperatorAtOrAbove),
    ("/tongban.v1.Node/ListAlarms", Policy::OperatorAtOrAbove),
    ("/tongban.v1.CataloguePublishing/Import", Policy::CountyOperator),
    ("/tongban.v1.Catalogue/ListItems", Policy::OperatorAtOrAbove),
    ("/tongban.v1.Catalogue/GetItem", Policy::OperatorAtOrAbove),
    ("/tongban.v1.Catalogue/ListVersions", Policy::OperatorAtOrAbove),
    ("/tongban.v1.CalendarPublishing/Publish", Policy::CountyOperator),
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
    ("/tongban.v1.Custody/NextDocumentId", Policy::OperatorHere),
    ("/tongban.v1.Custody/WhereIs", Policy::OperatorAtOrAbove),
    ("/tongban.v1.Custody/BoxHistory", Policy::OperatorAtOrAbove),
    ("/tongban.v1.Custody/ListAnomalies", Policy::OperatorAtOrAbove),
    ("/tongban.v1.Custody/NoteAnomaly", Policy::OperatorHere),
    ("/tongban.v1.Custody/ExportEpcis", Policy::OperatorAtOrAbove),
    ("/tongban.v1.Entrustment/IssueLetter", Policy::CountyOperator),
    ("/tongban.v1.Entrustment/ListLetters", Policy::OperatorAtOrAbove),
    ("/tongban.v1.Staff/PutMember", Policy::OperatorAtOrAbove),
    ("/tongban.v1.Staff/PutWindow", Policy::OperatorAtOrAbove),
    ("/tongban.v1.Staff/ListStaff", Policy::OperatorAtOrAbove),
    ("/tongban.v1.Staff/ListWindows", Policy::OperatorAtOrAbove),
];

/// The tables a node applies: the engine's rows and the domains'.
pub const NODE_ACCESS: &[AccessTable] = &[ENGINE_RPCS, DOMAIN_RPCS];

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

impl IntoStatus for crate::oversight::letters::LetterRefusal {
    fn into_status(self) -> Status {
        use crate::oversight::letters::LetterRefusal;
        match self {
            LetterRefusal::NotHeld(m) | LetterRefusal::OutOfScope(m) => Status::failed_precondition(m),
            LetterRefusal::Store(e) => e.into_status(),
        }
    }
}

impl IntoStatus for crate::staff::StaffRefusal {
    fn into_status(self) -> Status {
        use crate::staff::StaffRefusal;
        let message = self.to_string();
        match self {
            StaffRefusal::Invalid { .. } => Status::invalid_argument(message),
            StaffRefusal::Conflict(_) => Status::failed_precondition(message),
            StaffRefusal::NotAllowed(_) => Status::permission_denied(message),
        }
    }
}

impl IntoStatus for crate::staff::projection::StaffError {
    fn into_status(self) -> Status {
        use crate::staff::projection::StaffError;
        match self {
            StaffError::Refused(refusal) => refusal.into_status(),
            StaffError::Store(e) => e.into_status(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::ids::NodeId;

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
            let rows = NODE_ACCESS
                .iter()
                .flat_map(|t| t.iter())
                .filter(|(p, _)| p == path)
                .count();
            assert_eq!(rows, 1, "{path} has {rows} rows in the access table");
        }
        let tongban_rows = NODE_ACCESS
            .iter()
            .flat_map(|t| t.iter())
            .filter(|(p, _)| p.starts_with("/tongban."))
            .count();
        assert_eq!(tongban_rows, served.len(), "the table names an RPC that is not served");
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
