//! Refusals: a stable [`ErrorCode`] for scripts and a message for people.

use eip_dataplane::tables::TableError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Stable error codes: scripts match on these, humans read the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not JSON, not UTF-8, or not an object.
    BadJson,
    /// No `cmd`, or one this daemon does not know.
    UnknownCommand,
    /// `api` names a protocol version this daemon does not speak.
    UnsupportedApi,
    /// A field is missing, unknown, malformed, or the result does not validate.
    InvalidValue,
    /// The EIP, service, backend or path named does not exist, or a field
    /// references a region, port or path that does not.
    NotFound,
    /// What an `add_*` would create exists already.
    Duplicate,
    /// `if_version` is not the version in force.
    VersionConflict,
    /// The request line is longer than the server accepts.
    TooLarge,
    /// Workers did not switch to the new tables in time (the change *is* in
    /// force and saved), or the request line did not arrive in time.
    Timeout,
    /// Too many clients are connected.
    Busy,
    /// The daemon has no source for what was asked (e.g. `stats` in a test rig).
    Unavailable,
    /// The state file could not be written; nothing changed.
    Storage,
    /// A bug; nothing changed.
    Internal,
    /// The change would leave a region that has EIPs with no usable path, and
    /// the request did not say `blackhole_ok`; nothing changed.
    WouldBlackhole,
    /// A code from a newer daemon.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad_json",
            ErrorCode::UnknownCommand => "unknown_command",
            ErrorCode::UnsupportedApi => "unsupported_api",
            ErrorCode::InvalidValue => "invalid_value",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Duplicate => "duplicate",
            ErrorCode::VersionConflict => "version_conflict",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Busy => "busy",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Storage => "storage",
            ErrorCode::Internal => "internal",
            ErrorCode::WouldBlackhole => "would_blackhole",
            ErrorCode::Unknown => "unknown",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused request: a stable code and a message naming the entry and field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
        }
    }

    /// [`ErrorCode::InvalidValue`].
    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::InvalidValue, message)
    }

    /// [`ErrorCode::NotFound`].
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::NotFound, message)
    }

    /// [`ErrorCode::Duplicate`].
    pub fn duplicate(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::Duplicate, message)
    }

    /// The same error with `prefix: ` in front of its message.
    pub fn context(mut self, prefix: &str) -> Self {
        self.message = format!("{prefix}: {}", self.message);
        self
    }
}

/// The table builder's verdict, with its text (which names entry and field).
impl From<TableError> for ApiError {
    fn from(e: TableError) -> Self {
        let code = match e {
            TableError::DuplicateName { .. } | TableError::DuplicateEip { .. } => {
                ErrorCode::Duplicate
            }
            TableError::UnknownReference { .. } => ErrorCode::NotFound,
            _ => ErrorCode::InvalidValue,
        };
        ApiError::new(code, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eip_dataplane::tables::Entry;

    #[test]
    fn table_errors_keep_their_text() {
        let e = ApiError::from(TableError::UnknownReference {
            entry: Entry::item("eips", 2).label("192.0.2.9"),
            field: "region",
            kind: "region",
            name: "tokyo".into(),
        });
        assert_eq!(e.code, ErrorCode::NotFound);
        assert_eq!(
            e.message,
            "eips[2] (192.0.2.9): field `region` names region \"tokyo\", which is not defined"
        );
    }
}
