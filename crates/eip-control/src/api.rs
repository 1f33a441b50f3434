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
//! a tree; a small tracking deserializer ([`de`]) adds it.

use eip_dataplane::tables::spec::{BackendSpec, EipSpec, PathSpec, ServiceSpec};
use eip_dataplane::tables::{MacAddr, PopSpec, Protocol, TableError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

/// The protocol version this build speaks.
pub const API_VERSION: u32 = 1;

/// Largest request line the server reads (bytes, newline excluded). Larger ones
/// get [`ErrorCode::TooLarge`] and the connection is closed: the rest of the line
/// cannot be skipped reliably without reading it.
pub const MAX_REQUEST_BYTES: usize = 1 << 20;

// ---------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------

/// A parsed request line.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Apply only if the table version in force is this one (mutations only;
    /// ignored by queries).
    pub if_version: Option<u64>,
    pub command: Command,
}

/// What a request asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Read-only; runs concurrently with other requests.
    Query(Query),
    /// One change on its own (a transaction of one).
    Change(Op),
    /// Changes applied together: all of them, or none.
    Transaction(Vec<Op>),
    /// Changes checked exactly as a transaction would be, then discarded.
    Validate(Vec<Op>),
}

/// Read-only commands.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Query {
    /// Summary of the tables in force and their version.
    ShowTables,
    /// Every path with its configured state, whether it carries traffic now, and
    /// the prober's measurements when the daemon runs one.
    ShowPaths,
    /// The EIPs as configured (all, or the one with `address`).
    ShowEips(ShowEips),
    /// The whole POP description in force (what the state file holds).
    ShowSpec,
    /// The workers' counters, summed.
    Stats,
}

/// Arguments of [`Query::ShowEips`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShowEips {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<IpAddr>,
}

/// A change to the POP description. Each names what it changes by its key (EIP
/// address, service protocol/port, backend address[:port], path name).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Op {
    AddEip(AddEip),
    UpdateEip(UpdateEip),
    RemoveEip(RemoveEip),
    AddService(AddService),
    RemoveService(ServiceRef),
    AddBackend(AddBackend),
    UpdateBackend(UpdateBackend),
    /// Weight 0: existing flows' packets still reach it, no new flow does.
    DrainBackend(BackendRef),
    RemoveBackend(BackendRef),
    AddPath(AddPath),
    UpdatePath(UpdatePath),
    RemovePath(PathRef),
    SetPathAdmin(SetPathAdmin),
}

/// `add_eip`: a new EIP (its address must not exist yet).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddEip {
    pub eip: EipSpec,
}

/// `update_eip`: changes the given fields of an existing EIP, keeps the others.
/// `backend: null` removes the 1:1 backend; `services` replaces all services.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateEip {
    pub address: IpAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub backend: Option<Option<IpAddr>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<Vec<ServiceSpec>>,
}

impl UpdateEip {
    /// An update of `address` that changes nothing yet.
    pub fn new(address: IpAddr) -> Self {
        UpdateEip {
            address,
            region: None,
            backend: None,
            services: None,
        }
    }
}

/// `remove_eip`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveEip {
    pub address: IpAddr,
}

/// `add_service`: a new protocol/port on an existing EIP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddService {
    pub eip: IpAddr,
    pub service: ServiceSpec,
}

/// A service: `remove_service`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceRef {
    pub eip: IpAddr,
    pub protocol: Protocol,
    pub port: u16,
}

/// `add_backend`: a new member of a service's pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddBackend {
    pub eip: IpAddr,
    pub protocol: Protocol,
    pub port: u16,
    pub backend: BackendSpec,
}

/// `update_backend`: a pool member's new weight (0 drains it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateBackend {
    pub eip: IpAddr,
    pub protocol: Protocol,
    pub port: u16,
    pub address: IpAddr,
    /// Needed only when the address is in the pool more than once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_port: Option<u16>,
    pub weight: u32,
}

/// A pool member: `drain_backend`, `remove_backend`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendRef {
    pub eip: IpAddr,
    pub protocol: Protocol,
    pub port: u16,
    pub address: IpAddr,
    /// Needed only when the address is in the pool more than once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_port: Option<u16>,
}

/// `add_path`: a new backbone path (its name must not exist yet).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddPath {
    pub path: PathSpec,
}

/// `update_path`: changes the given fields of a path, keeps the others. The
/// state is not among them: it belongs to the prober and to `set_path_admin`.
/// `null` clears an optional field (`source`/`destination` go back to their
/// defaults; clearing `next_hop_mac` makes `eipd run` resolve `next_hop`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdatePath {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub next_hop_mac: Option<Option<MacAddr>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub next_hop: Option<Option<Ipv4Addr>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub source: Option<Option<Ipv4Addr>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub destination: Option<Option<Ipv4Addr>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
}

/// A path: `remove_path`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathRef {
    pub name: String,
}

/// The operator's switch of a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Admin {
    /// The path carries traffic again as its measured health allows.
    Enabled,
    /// The path never carries traffic, whatever the prober says.
    Disabled,
}

/// `set_path_admin`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetPathAdmin {
    pub name: String,
    pub admin: Admin,
}

/// A field that may be absent (`None`), `null` (`Some(None)`) or a value.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Fields every request may carry besides `cmd`.
const ENVELOPE: [&str; 2] = ["api", "if_version"];

/// Command names, for `unknown_command` messages and the docs.
pub const COMMANDS: &[&str] = &[
    "show_tables",
    "show_paths",
    "show_eips",
    "show_spec",
    "stats",
    "add_eip",
    "update_eip",
    "remove_eip",
    "add_service",
    "remove_service",
    "add_backend",
    "update_backend",
    "drain_backend",
    "remove_backend",
    "add_path",
    "update_path",
    "remove_path",
    "set_path_admin",
    "transaction",
    "validate",
];

/// Arguments of commands that take none (so that stray fields are refused too).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoArgs {}

/// Arguments of `transaction` and `validate`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch {
    ops: Vec<Value>,
}

impl Request {
    /// A request with no `if_version`.
    pub fn new(command: Command) -> Self {
        Request {
            if_version: None,
            command,
        }
    }

    /// Parses one request line (without its newline).
    ///
    /// # Errors
    /// `bad_json` (not JSON, not an object), `unsupported_api`,
    /// `unknown_command`, or `invalid_value` naming the field.
    pub fn parse(line: &[u8]) -> Result<Request, ApiError> {
        let value: Value = serde_json::from_slice(line)
            .map_err(|e| ApiError::new(ErrorCode::BadJson, format!("request is not JSON: {e}")))?;
        let Value::Object(mut object) = value else {
            return Err(ApiError::new(
                ErrorCode::BadJson,
                "a request is a JSON object with a \"cmd\" field",
            ));
        };
        if let Some(api) = object.remove("api") {
            if api.as_u64() != Some(u64::from(API_VERSION)) {
                return Err(ApiError::new(
                    ErrorCode::UnsupportedApi,
                    format!("this daemon speaks api {API_VERSION}, the request asks for {api}"),
                ));
            }
        }
        let if_version = match object.remove("if_version") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_u64().ok_or_else(|| {
                ApiError::invalid(format!(
                    "if_version must be a table version (a non-negative integer), not {v}"
                ))
            })?),
        };
        let cmd = match object.remove("cmd") {
            Some(Value::String(cmd)) => cmd,
            Some(other) => {
                return Err(ApiError::new(
                    ErrorCode::UnknownCommand,
                    format!("\"cmd\" must be a string, not {other}"),
                ))
            }
            None => {
                return Err(ApiError::new(
                    ErrorCode::UnknownCommand,
                    "request has no \"cmd\" field",
                ))
            }
        };
        let args = Value::Object(object);
        let command = match cmd.as_str() {
            "transaction" | "validate" => {
                let batch: Batch = field_errors(&cmd, de::from_value(&args))?;
                let ops = batch
                    .ops
                    .into_iter()
                    .enumerate()
                    .map(|(i, op)| {
                        Op::parse_value(op).map_err(|e| e.context(&format!("{cmd}: ops[{i}]")))
                    })
                    .collect::<Result<Vec<Op>, ApiError>>()?;
                if cmd == "transaction" {
                    Command::Transaction(ops)
                } else {
                    Command::Validate(ops)
                }
            }
            _ => match Query::parse(&cmd, &args)? {
                Some(query) => Command::Query(query),
                None => Command::Change(Op::parse(&cmd, &args)?),
            },
        };
        Ok(Request {
            if_version,
            command,
        })
    }

    /// The request as one JSON line (newline included), as the server parses it.
    pub fn to_line(&self) -> String {
        let mut object = match &self.command {
            Command::Query(q) => to_object(q),
            Command::Change(op) => to_object(op),
            Command::Transaction(ops) | Command::Validate(ops) => {
                let cmd = if matches!(self.command, Command::Transaction(_)) {
                    "transaction"
                } else {
                    "validate"
                };
                let mut m = serde_json::Map::new();
                m.insert("cmd".into(), cmd.into());
                m.insert(
                    "ops".into(),
                    Value::Array(ops.iter().map(|op| Value::Object(to_object(op))).collect()),
                );
                m
            }
        };
        object.insert("api".into(), API_VERSION.into());
        if let Some(v) = self.if_version {
            object.insert("if_version".into(), v.into());
        }
        let mut line = Value::Object(object).to_string();
        line.push('\n');
        line
    }
}

fn to_object<T: Serialize>(value: &T) -> serde_json::Map<String, Value> {
    match serde_json::to_value(value) {
        Ok(Value::Object(m)) => m,
        // Every command serializes as a tagged object; nothing else can come out.
        _ => serde_json::Map::new(),
    }
}

fn field_errors<T>(cmd: &str, r: Result<T, de::Error>) -> Result<T, ApiError> {
    r.map_err(|e| ApiError::invalid(format!("{cmd}: {e}")))
}

impl Query {
    /// `None` when `cmd` is not a query.
    fn parse(cmd: &str, args: &Value) -> Result<Option<Query>, ApiError> {
        let no_args = |q: Query| -> Result<Option<Query>, ApiError> {
            field_errors(cmd, de::from_value::<NoArgs>(args))?;
            Ok(Some(q))
        };
        match cmd {
            "show_tables" => no_args(Query::ShowTables),
            "show_paths" => no_args(Query::ShowPaths),
            "show_spec" => no_args(Query::ShowSpec),
            "stats" => no_args(Query::Stats),
            "show_eips" => Ok(Some(Query::ShowEips(field_errors(
                cmd,
                de::from_value(args),
            )?))),
            _ => Ok(None),
        }
    }
}

impl Op {
    /// One op of a transaction: an object with its own `cmd`.
    fn parse_value(value: Value) -> Result<Op, ApiError> {
        let Value::Object(mut object) = value else {
            return Err(ApiError::invalid(
                "each op is an object with a \"cmd\" field",
            ));
        };
        let cmd = match object.remove("cmd") {
            Some(Value::String(cmd)) => cmd,
            _ => return Err(ApiError::invalid("op has no \"cmd\" string")),
        };
        if let Some(field) = ENVELOPE.iter().find(|f| object.contains_key(**f)) {
            return Err(ApiError::invalid(format!(
                "`{field}` belongs on the transaction, not on one of its ops"
            )));
        }
        Op::parse(&cmd, &Value::Object(object))
    }

    fn parse(cmd: &str, args: &Value) -> Result<Op, ApiError> {
        let op = match cmd {
            "add_eip" => Op::AddEip(field_errors(cmd, de::from_value(args))?),
            "update_eip" => Op::UpdateEip(field_errors(cmd, de::from_value(args))?),
            "remove_eip" => Op::RemoveEip(field_errors(cmd, de::from_value(args))?),
            "add_service" => Op::AddService(field_errors(cmd, de::from_value(args))?),
            "remove_service" => Op::RemoveService(field_errors(cmd, de::from_value(args))?),
            "add_backend" => Op::AddBackend(field_errors(cmd, de::from_value(args))?),
            "update_backend" => Op::UpdateBackend(field_errors(cmd, de::from_value(args))?),
            "drain_backend" => Op::DrainBackend(field_errors(cmd, de::from_value(args))?),
            "remove_backend" => Op::RemoveBackend(field_errors(cmd, de::from_value(args))?),
            "add_path" => Op::AddPath(field_errors(cmd, de::from_value(args))?),
            "update_path" => Op::UpdatePath(field_errors(cmd, de::from_value(args))?),
            "remove_path" => Op::RemovePath(field_errors(cmd, de::from_value(args))?),
            "set_path_admin" => Op::SetPathAdmin(field_errors(cmd, de::from_value(args))?),
            "transaction" | "validate" => {
                return Err(ApiError::invalid(format!(
                    "`{cmd}` cannot be nested inside a transaction"
                )))
            }
            other if COMMANDS.contains(&other) => {
                return Err(ApiError::invalid(format!(
                    "`{other}` does not change anything, so it cannot be part of a transaction"
                )))
            }
            other => {
                return Err(ApiError::new(
                    ErrorCode::UnknownCommand,
                    format!(
                        "unknown command {other:?}; commands: {}",
                        COMMANDS.join(", ")
                    ),
                ))
            }
        };
        Ok(op)
    }

    /// The command name, as in requests.
    pub fn name(&self) -> &'static str {
        match self {
            Op::AddEip(_) => "add_eip",
            Op::UpdateEip(_) => "update_eip",
            Op::RemoveEip(_) => "remove_eip",
            Op::AddService(_) => "add_service",
            Op::RemoveService(_) => "remove_service",
            Op::AddBackend(_) => "add_backend",
            Op::UpdateBackend(_) => "update_backend",
            Op::DrainBackend(_) => "drain_backend",
            Op::RemoveBackend(_) => "remove_backend",
            Op::AddPath(_) => "add_path",
            Op::UpdatePath(_) => "update_path",
            Op::RemovePath(_) => "remove_path",
            Op::SetPathAdmin(_) => "set_path_admin",
        }
    }
}

// ---------------------------------------------------------------------------
// Replies
// ---------------------------------------------------------------------------

/// One reply line. `version` is the table version in force when the reply was
/// written: after a successful change, the new one, which every worker already
/// forwards with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub api: u32,
    pub ok: bool,
    pub version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Data>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
}

impl Reply {
    /// A successful reply.
    pub fn ok(version: u64, data: Data) -> Reply {
        Reply {
            api: API_VERSION,
            ok: true,
            version,
            data: Some(data),
            error: None,
        }
    }

    /// An error reply; `version` is the one still in force.
    pub fn error(version: u64, error: ApiError) -> Reply {
        Reply {
            api: API_VERSION,
            ok: false,
            version,
            data: None,
            error: Some(error),
        }
    }

    /// The reply as one JSON line, newline included.
    pub fn to_line(&self) -> String {
        // Serializing plain data into a string cannot fail; if it ever did, the
        // client still gets a well-formed line.
        let mut line = serde_json::to_string(self).unwrap_or_else(|e| {
            let message = Value::String(format!("cannot serialize reply: {e}"));
            format!(
                r#"{{"api":{API_VERSION},"ok":false,"version":{},"error":{{"code":"internal","message":{message}}}}}"#,
                self.version
            )
        });
        line.push('\n');
        line
    }
}

/// What a successful reply carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Data {
    /// `show_tables`: `report::summary_json` of the tables in force.
    Tables { summary: Value },
    /// `show_paths`.
    Paths { paths: Vec<PathView> },
    /// `show_eips`.
    Eips { eips: Vec<EipSpec> },
    /// `show_spec`.
    Spec { spec: Box<PopSpec> },
    /// `stats`: `report::counters_json` plus `elapsed_ms` (daemon clock, for
    /// rates) and `runtime` (daemon-specific, e.g. AF_XDP ring counters).
    Stats { stats: Value },
    /// A change, transaction or not. `unchanged`: the ops changed nothing (e.g.
    /// draining a drained backend), so no new version was made.
    Applied {
        previous_version: u64,
        changes: usize,
        unchanged: bool,
    },
    /// `validate`: the ops are acceptable; `summary` is what the tables would
    /// hold. Nothing was applied.
    Validated {
        changes: usize,
        unchanged: bool,
        would_be_version: u64,
        summary: Value,
    },
}

/// A path as `show_paths` reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathView {
    /// As configured (its `state` is what the table builder used).
    pub spec: PathSpec,
    /// The next hop's MAC the tables use (`spec.next_hop_mac`, or what the
    /// daemon resolved `spec.next_hop` to).
    pub next_hop_mac_in_use: MacAddr,
    /// In the region's flow table right now.
    pub usable: bool,
    /// The region has no path up and uses its down ones.
    pub region_panic: bool,
    /// The prober's `HealthSnapshot`, when the daemon runs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Value>,
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// Deserialization with field paths
// ---------------------------------------------------------------------------

/// A deserializer over a parsed [`Value`] that prefixes errors with the path of
/// the offending field (`eip.services[0].port: invalid value ...`).
///
/// Errors bubble up through each map and sequence level, which adds its key or
/// index on the way; so the path costs nothing unless something fails. Only what
/// the protocol's types need is special-cased (options, unit enums as strings,
/// newtype structs); everything else goes through `deserialize_any`.
pub mod de {
    use serde::de::{
        self, value::BorrowedStrDeserializer, DeserializeSeed, IntoDeserializer, MapAccess,
        SeqAccess, Unexpected, Visitor,
    };
    use serde::Deserialize;
    use serde_json::Value;
    use std::fmt;

    /// A deserialization error with the path where it happened.
    #[derive(Debug)]
    pub struct Error {
        /// Innermost first (segments are added while the error bubbles up).
        path: Vec<Segment>,
        message: String,
    }

    #[derive(Debug)]
    enum Segment {
        Key(String),
        Index(usize),
    }

    impl Error {
        fn within(mut self, segment: Segment) -> Self {
            self.path.push(segment);
            self
        }
    }

    impl fmt::Display for Error {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            for (i, segment) in self.path.iter().rev().enumerate() {
                match segment {
                    Segment::Key(k) if i == 0 => f.write_str(k)?,
                    Segment::Key(k) => write!(f, ".{k}")?,
                    Segment::Index(n) => write!(f, "[{n}]")?,
                }
            }
            if !self.path.is_empty() {
                f.write_str(": ")?;
            }
            f.write_str(&self.message)
        }
    }

    impl std::error::Error for Error {}

    impl de::Error for Error {
        fn custom<T: fmt::Display>(msg: T) -> Self {
            Error {
                path: Vec::new(),
                message: msg.to_string(),
            }
        }
    }

    /// Deserializes `T` from `value`, naming the field on error.
    ///
    /// # Errors
    /// The first field that does not fit `T`, with its path.
    pub fn from_value<'de, T: Deserialize<'de>>(value: &'de Value) -> Result<T, Error> {
        T::deserialize(Tracked(value))
    }

    struct Tracked<'de>(&'de Value);

    fn unexpected(v: &Value) -> Unexpected<'_> {
        match v {
            Value::Null => Unexpected::Unit,
            Value::Bool(b) => Unexpected::Bool(*b),
            Value::Number(n) => match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => Unexpected::Unsigned(u),
                (None, Some(i)) => Unexpected::Signed(i),
                _ => Unexpected::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => Unexpected::Str(s),
            Value::Array(_) => Unexpected::Seq,
            Value::Object(_) => Unexpected::Map,
        }
    }

    impl<'de> de::Deserializer<'de> for Tracked<'de> {
        type Error = Error;

        fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            match self.0 {
                Value::Null => visitor.visit_unit(),
                Value::Bool(b) => visitor.visit_bool(*b),
                Value::Number(n) => {
                    if let Some(u) = n.as_u64() {
                        visitor.visit_u64(u)
                    } else if let Some(i) = n.as_i64() {
                        visitor.visit_i64(i)
                    } else {
                        visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN))
                    }
                }
                Value::String(s) => visitor.visit_borrowed_str(s),
                Value::Array(items) => visitor.visit_seq(Seq {
                    items: items.iter().enumerate(),
                }),
                Value::Object(map) => visitor.visit_map(Map {
                    entries: map.iter(),
                    value: None,
                }),
            }
        }

        fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            match self.0 {
                Value::Null => visitor.visit_none(),
                _ => visitor.visit_some(self),
            }
        }

        fn deserialize_enum<V: Visitor<'de>>(
            self,
            _name: &'static str,
            _variants: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, Error> {
            match self.0 {
                Value::String(s) => visitor.visit_enum(s.as_str().into_deserializer()),
                other => Err(de::Error::invalid_type(unexpected(other), &"a string")),
            }
        }

        fn deserialize_newtype_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            visitor: V,
        ) -> Result<V::Value, Error> {
            visitor.visit_newtype_struct(self)
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf unit unit_struct seq tuple tuple_struct map struct
            identifier ignored_any
        }
    }

    struct Seq<'de> {
        items: std::iter::Enumerate<std::slice::Iter<'de, Value>>,
    }

    impl<'de> SeqAccess<'de> for Seq<'de> {
        type Error = Error;

        fn next_element_seed<S: DeserializeSeed<'de>>(
            &mut self,
            seed: S,
        ) -> Result<Option<S::Value>, Error> {
            match self.items.next() {
                None => Ok(None),
                Some((i, item)) => seed
                    .deserialize(Tracked(item))
                    .map(Some)
                    .map_err(|e| e.within(Segment::Index(i))),
            }
        }

        fn size_hint(&self) -> Option<usize> {
            Some(self.items.len())
        }
    }

    struct Map<'de> {
        entries: serde_json::map::Iter<'de>,
        value: Option<(&'de str, &'de Value)>,
    }

    impl<'de> MapAccess<'de> for Map<'de> {
        type Error = Error;

        fn next_key_seed<K: DeserializeSeed<'de>>(
            &mut self,
            seed: K,
        ) -> Result<Option<K::Value>, Error> {
            match self.entries.next() {
                None => Ok(None),
                Some((key, value)) => {
                    self.value = Some((key, value));
                    seed.deserialize(BorrowedStrDeserializer::new(key))
                        .map(Some)
                }
            }
        }

        fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
            match self.value.take() {
                Some((key, value)) => seed
                    .deserialize(Tracked(value))
                    .map_err(|e| e.within(Segment::Key(key.to_string()))),
                None => Err(de::Error::custom("value requested before its key")),
            }
        }

        fn size_hint(&self) -> Option<usize> {
            Some(self.entries.len())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eip_dataplane::tables::PathState;

    fn parse(line: &str) -> Result<Request, ApiError> {
        Request::parse(line.as_bytes())
    }

    fn err(line: &str) -> ApiError {
        parse(line).expect_err(line)
    }

    #[test]
    fn queries_parse() {
        assert_eq!(
            parse(r#"{"cmd":"show_tables"}"#).unwrap().command,
            Command::Query(Query::ShowTables)
        );
        assert_eq!(
            parse(r#"{"api":1,"cmd":"show_eips","address":"192.0.2.1"}"#)
                .unwrap()
                .command,
            Command::Query(Query::ShowEips(ShowEips {
                address: Some("192.0.2.1".parse().unwrap())
            }))
        );
        let e = err(r#"{"cmd":"stats","verbose":true}"#);
        assert_eq!(e.code, ErrorCode::InvalidValue);
        assert!(e.message.contains("unknown field `verbose`"), "{e}");
    }

    #[test]
    fn envelope_errors() {
        assert_eq!(err("{").code, ErrorCode::BadJson);
        assert_eq!(err("[1]").code, ErrorCode::BadJson);
        assert_eq!(err("\"x\"").code, ErrorCode::BadJson);
        assert_eq!(
            err(r#"{"cmd":"frobnicate"}"#).code,
            ErrorCode::UnknownCommand
        );
        assert_eq!(err(r#"{"x":1}"#).code, ErrorCode::UnknownCommand);
        assert_eq!(err(r#"{"cmd":7}"#).code, ErrorCode::UnknownCommand);
        assert_eq!(
            err(r#"{"api":2,"cmd":"show_tables"}"#).code,
            ErrorCode::UnsupportedApi
        );
        assert_eq!(
            err(r#"{"cmd":"show_tables","if_version":-1}"#).code,
            ErrorCode::InvalidValue
        );
        assert_eq!(
            parse(r#"{"cmd":"remove_eip","address":"192.0.2.1","if_version":4}"#)
                .unwrap()
                .if_version,
            Some(4)
        );
    }

    #[test]
    fn field_errors_name_the_path() {
        let e = err(
            r#"{"cmd":"add_eip","eip":{"address":"192.0.2.1","region":"r","services":[{"protocol":"tcp","port":80,"backends":[{"address":"10.0.0.1"},{"address":"10.0.0.300"}]}]}}"#,
        );
        assert_eq!(e.code, ErrorCode::InvalidValue);
        assert_eq!(
            e.message,
            "add_eip: eip.services[0].backends[1].address: invalid IP address syntax"
        );
        let e = err(
            r#"{"cmd":"add_backend","eip":"192.0.2.1","protocol":"sctp","port":80,"backend":{"address":"10.0.0.1"}}"#,
        );
        assert!(
            e.message
                .starts_with("add_backend: protocol: unknown variant `sctp`"),
            "{e}"
        );
        let e = err(
            r#"{"cmd":"update_backend","eip":"192.0.2.1","protocol":"tcp","port":70000,"address":"10.0.0.1","weight":1}"#,
        );
        assert!(
            e.message
                .starts_with("update_backend: port: invalid value: integer `70000`"),
            "{e}"
        );
        let e = err(r#"{"cmd":"add_path","path":{"name":"p","port":"bb"}}"#);
        assert_eq!(e.message, "add_path: path: missing field `region`");
        let e = err(r#"{"cmd":"remove_eip","address":"192.0.2.1","adress":"x"}"#);
        assert!(e.message.contains("unknown field `adress`"), "{e}");
        let e = err(
            r#"{"cmd":"transaction","ops":[{"cmd":"remove_eip","address":"192.0.2.1"},{"cmd":"remove_path"}]}"#,
        );
        assert_eq!(
            e.message,
            "transaction: ops[1]: remove_path: missing field `name`"
        );
        let e = err(r#"{"cmd":"transaction","ops":[{"cmd":"show_tables"}]}"#);
        assert!(e.message.contains("cannot be part of a transaction"), "{e}");
        let e = err(r#"{"cmd":"transaction","ops":[{"cmd":"transaction","ops":[]}]}"#);
        assert!(e.message.contains("cannot be nested"), "{e}");
    }

    #[test]
    fn absent_null_and_present_are_told_apart() {
        let r = parse(r#"{"cmd":"update_eip","address":"192.0.2.1","backend":null}"#).unwrap();
        let Command::Change(Op::UpdateEip(u)) = r.command else {
            panic!()
        };
        assert_eq!(u.backend, Some(None));
        assert_eq!(u.region, None);
        let r = parse(r#"{"cmd":"update_eip","address":"192.0.2.1","region":"x"}"#).unwrap();
        let Command::Change(Op::UpdateEip(u)) = r.command else {
            panic!()
        };
        assert_eq!(u.backend, None);
    }

    #[test]
    fn requests_round_trip() {
        let eip: EipSpec = serde_json::from_str(
            r#"{"address":"2001:db8::1","region":"r","services":[{"protocol":"udp","port":53,"backends":[{"address":"fd00::1","weight":3}]}]}"#,
        )
        .unwrap();
        let path: PathSpec = serde_json::from_str(
            r#"{"name":"p","region":"r","port":"bb","next_hop_mac":"02:00:00:00:00:01","state":"down"}"#,
        )
        .unwrap();
        assert_eq!(path.state, PathState::Down);
        let ops = vec![
            Op::AddEip(AddEip { eip }),
            Op::UpdateEip(UpdateEip {
                backend: Some(None),
                ..UpdateEip::new("192.0.2.1".parse().unwrap())
            }),
            Op::DrainBackend(BackendRef {
                eip: "192.0.2.1".parse().unwrap(),
                protocol: Protocol::Tcp,
                port: 80,
                address: "10.0.0.1".parse().unwrap(),
                backend_port: Some(8080),
            }),
            Op::AddPath(AddPath { path }),
            Op::UpdatePath(UpdatePath {
                name: "p".into(),
                source: Some(None),
                next_hop_mac: Some(None),
                next_hop: Some(Some("10.0.0.1".parse().unwrap())),
                mtu: Some(1600),
                ..Default::default()
            }),
            Op::SetPathAdmin(SetPathAdmin {
                name: "p".into(),
                admin: Admin::Disabled,
            }),
        ];
        for command in [
            Command::Transaction(ops.clone()),
            Command::Validate(ops.clone()),
            Command::Change(ops[1].clone()),
            Command::Query(Query::ShowPaths),
            Command::Query(Query::ShowEips(ShowEips::default())),
        ] {
            let request = Request {
                if_version: Some(9),
                command,
            };
            let line = request.to_line();
            assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'));
            assert_eq!(
                Request::parse(line.trim_end().as_bytes()).unwrap(),
                request,
                "{line}"
            );
        }
    }

    #[test]
    fn replies_round_trip() {
        let reply = Reply::ok(
            3,
            Data::Applied {
                previous_version: 2,
                changes: 1,
                unchanged: false,
            },
        );
        let line = reply.to_line();
        assert_eq!(
            line,
            "{\"api\":1,\"ok\":true,\"version\":3,\"data\":{\"kind\":\"applied\",\"previous_version\":2,\"changes\":1,\"unchanged\":false}}\n"
        );
        assert_eq!(serde_json::from_str::<Reply>(&line).unwrap(), reply);
        let reply = Reply::error(3, ApiError::not_found("EIP 192.0.2.1 does not exist"));
        let back: Reply = serde_json::from_str(&reply.to_line()).unwrap();
        assert_eq!(back, reply);
        // A code from a newer daemon still parses.
        let newer: Reply = serde_json::from_str(
            r#"{"api":1,"ok":false,"version":3,"error":{"code":"quota","message":"m"}}"#,
        )
        .unwrap();
        assert_eq!(newer.error.unwrap().code, ErrorCode::Unknown);
    }

    #[test]
    fn table_errors_keep_their_text() {
        let e = ApiError::from(TableError::UnknownReference {
            entry: "eips[2] (192.0.2.9)".into(),
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
