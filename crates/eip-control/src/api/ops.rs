//! The changes a request can make ([`Op`]), each naming what it changes by its
//! key, and how each is parsed from its command's arguments.

use super::request::{from_args, COMMANDS};
use super::{ApiError, ErrorCode};
use eip_dataplane::tables::spec::{
    AclSpec, BackendSpec, EipSpec, LimitsSpec, PathSpec, ServiceSpec,
};
use eip_dataplane::tables::{MacAddr, Protocol};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::net::{IpAddr, Ipv4Addr};

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
    SetLimits(SetLimits),
    SetAcl(SetAcl),
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

/// `set_limits`: replaces the rate limits of the EIP at `address`, or the
/// POP's default (`[limits]`) without `address`. `limits` absent, `null` or
/// `{}` removes them (the EIP then follows the POP default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitsSpec>,
}

/// `set_acl`: replaces the access list of the EIP at `address`
/// (`docs/config.md`, ACLs). `acl` absent or `null` removes it (all allowed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetAcl {
    pub address: IpAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl: Option<AclSpec>,
}

/// A field that may be absent (`None`), `null` (`Some(None)`) or a value.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

impl Op {
    /// The op `cmd` names, from its arguments (`cmd` removed).
    pub(super) fn parse(cmd: &str, args: &Value) -> Result<Op, ApiError> {
        let op = match cmd {
            "add_eip" => Op::AddEip(from_args(cmd, args)?),
            "update_eip" => Op::UpdateEip(from_args(cmd, args)?),
            "remove_eip" => Op::RemoveEip(from_args(cmd, args)?),
            "add_service" => Op::AddService(from_args(cmd, args)?),
            "remove_service" => Op::RemoveService(from_args(cmd, args)?),
            "add_backend" => Op::AddBackend(from_args(cmd, args)?),
            "update_backend" => Op::UpdateBackend(from_args(cmd, args)?),
            "drain_backend" => Op::DrainBackend(from_args(cmd, args)?),
            "remove_backend" => Op::RemoveBackend(from_args(cmd, args)?),
            "add_path" => Op::AddPath(from_args(cmd, args)?),
            "update_path" => Op::UpdatePath(from_args(cmd, args)?),
            "remove_path" => Op::RemovePath(from_args(cmd, args)?),
            "set_path_admin" => Op::SetPathAdmin(from_args(cmd, args)?),
            "set_limits" => Op::SetLimits(from_args(cmd, args)?),
            "set_acl" => Op::SetAcl(from_args(cmd, args)?),
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
            Op::SetLimits(_) => "set_limits",
            Op::SetAcl(_) => "set_acl",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Command, Request};

    fn parse(line: &str) -> Result<Request, ApiError> {
        Request::parse(line.as_bytes())
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
    fn set_limits_takes_rates_as_text_or_numbers_and_refuses_bad_ones() {
        let r = parse(
            r#"{"cmd":"set_limits","address":"192.0.2.10","limits":{"in_bps":"8Mbit","out_pps":500}}"#,
        )
        .unwrap();
        let Command::Change(Op::SetLimits(l)) = r.command else {
            panic!()
        };
        let caps = l.limits.unwrap();
        assert_eq!(
            (caps.in_bps, caps.out_pps, caps.in_pps),
            (Some(8_000_000), Some(500), None)
        );
        let r = parse(r#"{"cmd":"set_limits","limits":null}"#).unwrap();
        assert!(matches!(
            r.command,
            Command::Change(Op::SetLimits(SetLimits {
                address: None,
                limits: None
            }))
        ));
        for bad in [
            r#"{"cmd":"set_limits","limits":{"in_bps":"8 furlongs"}}"#,
            r#"{"cmd":"set_limits","limits":{"in_bits":1}}"#,
            r#"{"cmd":"set_limits","limits":{"in_pps":-1}}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
