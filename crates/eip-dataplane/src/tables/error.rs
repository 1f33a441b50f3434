//! Why a POP description cannot become a table. Each error names the entry and the
//! field, so an operator can find the line to fix.

use std::net::IpAddr;

/// A rejected POP description. Nothing is built when any check fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    #[error("{kind} name {name:?} is used twice (entries {first} and {second})")]
    DuplicateName {
        kind: &'static str,
        name: String,
        first: usize,
        second: usize,
    },
    #[error("{entry}: field `{field}` names {kind} {name:?}, which is not defined")]
    UnknownReference {
        entry: String,
        field: &'static str,
        kind: &'static str,
        name: String,
    },
    #[error("{entry}: field `{field}`: {reason}")]
    InvalidValue {
        entry: String,
        field: &'static str,
        reason: String,
    },
    #[error("EIP {address} is defined twice (eips[{first}] and eips[{second}])")]
    DuplicateEip {
        address: IpAddr,
        first: usize,
        second: usize,
    },
    #[error(
        "{entry}: backend {backend} is also used by {other}; in one region a backend \
         address must belong to one EIP, or return traffic could not be told apart"
    )]
    BackendConflict {
        entry: String,
        backend: IpAddr,
        other: String,
    },
    #[error("the POP needs exactly one port with role \"internet\" or \"both\"; found {found}")]
    InternetPort { found: usize },
}
