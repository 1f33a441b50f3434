//! Request lines: the envelope (`api`, `if_version`, `cmd`), queries, and
//! transactions of [`Op`]s.

use super::explain::Explain;
use super::ops::Op;
use super::trace::TraceRequest;
use super::{ApiError, ErrorCode, API_VERSION};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::net::IpAddr;

/// A parsed request line.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Apply only if the table version in force is this one (mutations only;
    /// ignored by queries).
    pub if_version: Option<u64>,
    /// Apply a change even if it leaves a region that has EIPs with no usable
    /// path (the reply lists the EIPs it blackholes).
    pub blackhole_ok: bool,
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
    /// The configuration file (`file`, else the daemon's own `--config`) applied
    /// over the spec in force as one transaction, or only checked (`dry_run`).
    Reload(Reload),
    /// A packet capture; the reply comes when it has ended.
    Trace(TraceRequest),
    /// Graceful drain of the POP's announcements, then the daemon stops.
    Drain,
}

impl Command {
    /// Whether the command asks for a change (and so is audited); queries and
    /// `validate` do not.
    pub fn changes(&self) -> bool {
        match self {
            Command::Query(_) | Command::Validate(_) => false,
            Command::Change(_) | Command::Transaction(_) => true,
            Command::Reload(r) => !r.dry_run,
            // A capture changes no table; it is logged by the daemon.
            Command::Trace(_) => false,
            Command::Drain => true,
        }
    }
}

/// Arguments of `reload`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reload {
    /// An absolute path on the daemon's host; the daemon's `--config` if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<std::path::PathBuf>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
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
    /// BGP sessions, announced prefixes, and why a prefix is not announced.
    ShowBgp,
    /// The access list of one EIP with each rule's hits, summed over the
    /// workers.
    ShowAcl(ShowAcl),
    /// Where a flow goes with the tables in force: its first packet run through
    /// a private pipeline and the result decoded (`crate::explain`).
    Explain(Explain),
}

/// Arguments of [`Query::ShowEips`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShowEips {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<IpAddr>,
}

/// Arguments of [`Query::ShowAcl`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShowAcl {
    pub address: IpAddr,
}

/// Fields every request may carry besides `cmd`.
const ENVELOPE: [&str; 3] = ["api", "if_version", "blackhole_ok"];

/// Command names, for `unknown_command` messages and the docs.
pub const COMMANDS: &[&str] = &[
    "show_tables",
    "show_paths",
    "show_eips",
    "show_acl",
    "show_spec",
    "stats",
    "show_bgp",
    "drain",
    "explain",
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
    "set_limits",
    "set_acl",
    "transaction",
    "validate",
    "reload",
    "trace",
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
            blackhole_ok: false,
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
        let blackhole_ok = match object.remove("blackhole_ok") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => b,
            Some(v) => {
                return Err(ApiError::invalid(format!(
                    "blackhole_ok must be true or false, not {v}"
                )))
            }
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
                let batch: Batch = from_args(&cmd, &args)?;
                let ops = batch
                    .ops
                    .into_iter()
                    .enumerate()
                    .map(|(i, op)| {
                        transaction_op(op).map_err(|e| e.context(&format!("{cmd}: ops[{i}]")))
                    })
                    .collect::<Result<Vec<Op>, ApiError>>()?;
                if cmd == "transaction" {
                    Command::Transaction(ops)
                } else {
                    Command::Validate(ops)
                }
            }
            "reload" => {
                let reload: Reload = from_args(&cmd, &args)?;
                if let Some(file) = reload.file.as_ref().filter(|f| !f.is_absolute()) {
                    return Err(ApiError::invalid(format!(
                        "reload: file {} must be an absolute path (the daemon's working directory is not yours)",
                        file.display()
                    )));
                }
                Command::Reload(reload)
            }
            "drain" => {
                from_args::<NoArgs>(&cmd, &args)?;
                Command::Drain
            }
            "trace" => {
                let trace: TraceRequest = from_args(&cmd, &args)?;
                trace.validate()?;
                Command::Trace(trace)
            }
            _ => match Query::parse(&cmd, &args)? {
                Some(query) => Command::Query(query),
                None => Command::Change(Op::parse(&cmd, &args)?),
            },
        };
        Ok(Request {
            if_version,
            blackhole_ok,
            command,
        })
    }

    /// The request as one JSON line (newline included), as the server parses it.
    pub fn to_line(&self) -> String {
        let mut object = match &self.command {
            Command::Query(q) => to_object(q),
            Command::Change(op) => to_object(op),
            Command::Reload(reload) => {
                let mut m = to_object(reload);
                m.insert("cmd".into(), "reload".into());
                m
            }
            Command::Trace(t) => {
                let mut m = to_object(t);
                m.insert("cmd".into(), "trace".into());
                m
            }
            Command::Drain => {
                let mut m = serde_json::Map::new();
                m.insert("cmd".into(), "drain".into());
                m
            }
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
        if self.blackhole_ok {
            object.insert("blackhole_ok".into(), true.into());
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

/// Deserializes `cmd`'s arguments. An error names the command and the JSON
/// path of the field (`add_eip: eip.services[0].port: invalid value ...`).
pub(super) fn from_args<'de, T: Deserialize<'de>>(
    cmd: &str,
    args: &'de Value,
) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(args).map_err(|e| ApiError::invalid(format!("{cmd}: {e}")))
}

impl Op {
    /// An op from its JSON object (with its `cmd`), as a transaction lists it
    /// and as [`serde_json::to_value`] writes it.
    ///
    /// # Errors
    /// As for an op of a transaction.
    pub fn from_json(value: Value) -> Result<Op, ApiError> {
        transaction_op(value)
    }
}

/// One op of a transaction: an object with its own `cmd`.
fn transaction_op(value: Value) -> Result<Op, ApiError> {
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

impl Query {
    /// `None` when `cmd` is not a query.
    fn parse(cmd: &str, args: &Value) -> Result<Option<Query>, ApiError> {
        let no_args = |q: Query| -> Result<Option<Query>, ApiError> {
            from_args::<NoArgs>(cmd, args)?;
            Ok(Some(q))
        };
        match cmd {
            "show_tables" => no_args(Query::ShowTables),
            "show_paths" => no_args(Query::ShowPaths),
            "show_spec" => no_args(Query::ShowSpec),
            "stats" => no_args(Query::Stats),
            "show_bgp" => no_args(Query::ShowBgp),
            "show_eips" => Ok(Some(Query::ShowEips(from_args(cmd, args)?))),
            "show_acl" => Ok(Some(Query::ShowAcl(from_args(cmd, args)?))),
            "explain" => Ok(Some(Query::Explain(from_args(cmd, args)?))),
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ops::{
        AddEip, AddPath, Admin, BackendRef, SetPathAdmin, UpdateEip, UpdatePath,
    };
    use eip_dataplane::tables::spec::{EipSpec, PathSpec};
    use eip_dataplane::tables::{PathState, Protocol};

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
        assert_eq!(
            parse(r#"{"cmd":"explain","protocol":"icmp","src":"198.51.100.7","dst":"192.0.2.10"}"#)
                .unwrap()
                .command,
            Command::Query(Query::Explain(Explain::new(
                crate::api::FlowProtocol::Icmp,
                "198.51.100.7".parse().unwrap(),
                "192.0.2.10".parse().unwrap()
            )))
        );
        let e =
            err(r#"{"cmd":"explain","protocol":"sctp","src":"198.51.100.7","dst":"192.0.2.10"}"#);
        assert!(
            e.message
                .starts_with("explain: protocol: unknown variant `sctp`"),
            "{e}"
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
            r#"{"cmd":"add_eip","eip":{"address":"192.0.2.1","region":"r","services":[{"protocol":"tcp","port":80,"backends":[{"address":"10.0.0.1","wieght":1}]}]}}"#,
        );
        assert!(
            e.message
                .starts_with("add_eip: eip.services[0].backends[0].wieght: unknown field `wieght`"),
            "{e}"
        );
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
            Command::Query(Query::Explain(Explain {
                src_port: Some(40000),
                dst_port: Some(80),
                size: Some(1400),
                ..Explain::new(
                    crate::api::FlowProtocol::Tcp,
                    "2001:db8::7".parse().unwrap(),
                    "2001:db8:e1::10".parse().unwrap(),
                )
            })),
        ] {
            let request = Request {
                if_version: Some(9),
                blackhole_ok: true,
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
}
