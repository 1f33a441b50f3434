//! The control socket's protocol: requests, replies and errors, as plain data.
//!
//! One request per line, one reply per line, both JSON objects (newline-delimited
//! JSON over a Unix stream socket). A request names its command in `cmd`:
//!
//! ```text
//! {"cmd":"remove_eip","address":"192.0.2.10"}
//! {"api":1,"ok":true,"version":8,"data":{"kind":"applied","previous_version":7,"changes":1,"unchanged":false}}
//! ```
//!
//! `docs/control-socket.md` describes every command with an example.
//!
//! Requests may carry `"api": 1` (the only version so far; anything else is
//! refused with `unsupported_api`, so a client built for a later protocol fails
//! loudly instead of being half understood) and `"if_version": N` (apply only if
//! the tables in force have version `N`: compare-and-set for read-modify-write
//! clients). Unknown fields are errors everywhere, as in the configuration file:
//! a typo never silently does less than the operator asked.
//!
//! Parsing is [`Request::parse`]. It reports the first problem with the JSON path
//! of the field (`add_eip: eip.services[0].backends[1].address: invalid IP
//! address syntax`), which `serde_json` alone does not do for values parsed out of
//! a tree; `serde_path_to_error` adds it.
//!
//! The parts: `request` (the envelope, queries, transactions), `ops` (the
//! changes), `explain` (the flow query's arguments and answer), `trace` (packet
//! capture), `reply`, `error`.

mod error;
mod explain;
mod ops;
mod reply;
mod request;
mod trace;

pub use error::{ApiError, ErrorCode};
pub use explain::{
    EipHit, Endpoint, Explain, Explanation, FlowProtocol, FlowVerdict, MssCheck, MtuReport,
    ServiceHit, SizeCheck, SizeResult, Tunnel, DEFAULT_ECHO_IDENT, DEFAULT_MSS_V4, DEFAULT_MSS_V6,
    DEFAULT_SOURCE_PORT,
};
pub use ops::{
    AddBackend, AddEip, AddPath, AddService, Admin, BackendRef, Op, PathRef, RemoveEip, ServiceRef,
    SetAcl, SetLimits, SetPathAdmin, UpdateBackend, UpdateEip, UpdatePath,
};
pub use reply::{Data, PathView, Reply};
pub use request::{Command, Query, Reload, Request, ShowAcl, ShowEips, COMMANDS};
pub use trace::{
    DropFilter, TraceEnd, TraceFilter, TraceProtocol, TraceRequest, TraceSummary, DEFAULT_SNAP,
    DEFAULT_TRACE_COUNT, DEFAULT_TRACE_SECONDS, MAX_TRACE_COUNT, MAX_TRACE_SECONDS, MIN_SNAP,
};

/// The protocol version this build speaks.
pub const API_VERSION: u32 = 1;

/// Largest request line the server reads (bytes, newline excluded). Larger ones
/// get [`ErrorCode::TooLarge`] and the connection is closed: the rest of the line
/// cannot be skipped reliably without reading it.
pub const MAX_REQUEST_BYTES: usize = 1 << 20;
