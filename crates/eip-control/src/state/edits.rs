//! What each op does to a spec, and which state each path is built with
//! (operator intent over observed health). Only lookups fail here (`not_found`,
//! `duplicate`, an ambiguous backend); everything else is the table builder's to
//! judge, so the rules live in one place.

use super::plugins::HealthSource;
use crate::api::{Admin, ApiError, BackendRef, Op, UpdateEip, UpdatePath};
use crate::health::Health;
use eip_dataplane::tables::spec::{EipSpec, PathSpec, ServiceSpec};
use eip_dataplane::tables::{EipMut, PathState, PopSpec, Protocol};
use std::collections::HashMap;
use std::net::IpAddr;
use std::ops::{Deref, DerefMut};

/// Lists at most this many existing names in a `not_found` message.
const LIST: usize = 8;

/// Applies `ops` in order; an error names the op (and its index when there are
/// several). Deterministic: the journal replays the same ops at restart.
pub(super) fn apply_all(ops: &[Op], spec: &mut PopSpec) -> Result<(), ApiError> {
    for (i, op) in ops.iter().enumerate() {
        apply(op, spec).map_err(|e| {
            if ops.len() > 1 {
                e.context(&format!("ops[{i}] ({})", op.name()))
            } else {
                e.context(op.name())
            }
        })?;
    }
    Ok(())
}

/// Keeps only what an operator can say about a path's state: `disabled`, or
/// enabled (stored as `up`). A `down` in an older state file or a
/// configuration is observed health, which is not kept: it reads as enabled.
pub(super) fn intent(spec: &mut PopSpec) {
    for p in &mut spec.paths {
        if p.state == PathState::Down {
            p.state = PathState::Up;
        }
    }
}

/// The state each path of `spec` is built with: `disabled` as the operator
/// said, else the observed health (`observed` by name, then `fallback`, else
/// up).
pub(super) fn effective_states(
    spec: &PopSpec,
    observed: &HashMap<String, Health>,
    fallback: Option<&dyn HealthSource>,
) -> Vec<PathState> {
    spec.paths
        .iter()
        .map(|p| {
            if p.state == PathState::Disabled {
                return PathState::Disabled;
            }
            observed
                .get(&p.name)
                .copied()
                .or_else(|| {
                    fallback
                        .and_then(|h| h.path_health(&p.name))
                        .map(|s| s.health)
                })
                .map_or(PathState::Up, measured)
        })
        .collect()
}

fn apply(op: &Op, spec: &mut PopSpec) -> Result<(), ApiError> {
    match op {
        Op::AddEip(a) => {
            // By the list's index; the place (a scan) only for the message.
            if let Some(i) = spec.eips.position(a.eip.address) {
                return Err(ApiError::duplicate(format!(
                    "EIP {} exists already (eips[{i}]); update_eip changes it",
                    a.eip.address
                )));
            }
            spec.eips.push(a.eip.clone());
        }
        Op::UpdateEip(u) => update_eip(&mut *eip(spec, u.address)?, u),
        Op::RemoveEip(r) => {
            spec.eips
                .remove(r.address)
                .ok_or_else(|| no_eip(r.address))?;
        }
        Op::AddService(a) => {
            let mut e = eip(spec, a.eip)?;
            let s = &a.service;
            if e.services
                .iter()
                .any(|x| x.protocol == s.protocol && x.port == s.port)
            {
                return Err(ApiError::duplicate(format!(
                    "EIP {} has a {}/{} service already",
                    a.eip,
                    proto(s.protocol),
                    s.port
                )));
            }
            e.services.push(s.clone());
        }
        Op::RemoveService(r) => {
            let mut e = eip(spec, r.eip)?;
            let i = service_index(&e, r.protocol, r.port)?;
            e.services.remove(i);
        }
        Op::AddBackend(a) => {
            let mut s = service(spec, a.eip, a.protocol, a.port)?;
            let port = a.backend.port.unwrap_or(s.port);
            let exists = s
                .backends
                .iter()
                .any(|b| b.address == a.backend.address && b.port.unwrap_or(s.port) == port);
            if exists {
                return Err(ApiError::duplicate(format!(
                    "{} has backend {} already",
                    service_name(a.eip, a.protocol, a.port),
                    endpoint(a.backend.address, port)
                )));
            }
            s.backends.push(a.backend.clone());
        }
        Op::UpdateBackend(u) => {
            let r = BackendRef {
                eip: u.eip,
                protocol: u.protocol,
                port: u.port,
                address: u.address,
                backend_port: u.backend_port,
            };
            let mut s = service(spec, u.eip, u.protocol, u.port)?;
            let i = backend_index(&s, &r)?;
            s.backends[i].weight = u.weight;
        }
        Op::DrainBackend(r) => {
            let mut s = service(spec, r.eip, r.protocol, r.port)?;
            let i = backend_index(&s, r)?;
            s.backends[i].weight = 0;
        }
        Op::RemoveBackend(r) => {
            let mut s = service(spec, r.eip, r.protocol, r.port)?;
            let i = backend_index(&s, r)?;
            s.backends.remove(i);
        }
        Op::AddPath(a) => {
            if let Some(i) = spec.paths.iter().position(|p| p.name == a.path.name) {
                return Err(ApiError::duplicate(format!(
                    "path {:?} exists already (paths[{i}]); update_path changes it",
                    a.path.name
                )));
            }
            let mut path = a.path.clone();
            if path.state == PathState::Down {
                path.state = PathState::Up;
            }
            spec.paths.push(path);
        }
        Op::UpdatePath(u) => update_path(path(spec, &u.name)?, u),
        Op::RemovePath(r) => {
            let i = path_index(spec, &r.name)?;
            spec.paths.remove(i);
        }
        Op::SetAcl(a) => {
            if let Some(acl) = &a.acl {
                acl.validate()
                    .map_err(|e| ApiError::invalid(format!("EIP {}: acl: {e}", a.address)))?;
            }
            eip(spec, a.address)?.set_acl(a.acl.clone());
        }
        Op::SetLimits(l) => {
            let limits = l.limits.filter(|l| !l.is_empty());
            match l.address {
                Some(address) => eip(spec, address)?.set_limits(limits),
                None => spec.limits = limits,
            }
        }
        Op::SetPathAdmin(s) => {
            path(spec, &s.name)?.state = match s.admin {
                Admin::Disabled => PathState::Disabled,
                Admin::Enabled => PathState::Up,
            };
        }
    }
    Ok(())
}

fn update_eip(e: &mut EipSpec, u: &UpdateEip) {
    if let Some(region) = &u.region {
        e.region = region.into();
    }
    if let Some(backend) = u.backend {
        e.backend = backend;
    }
    if let Some(services) = &u.services {
        e.services = services.iter().cloned().collect();
    }
}

fn update_path(p: &mut PathSpec, u: &UpdatePath) {
    if let Some(region) = &u.region {
        p.region.clone_from(region);
    }
    if let Some(port) = &u.port {
        p.port.clone_from(port);
    }
    if let Some(mac) = u.next_hop_mac {
        p.next_hop_mac = mac;
    }
    if let Some(next_hop) = u.next_hop {
        p.next_hop = next_hop;
    }
    if let Some(source) = u.source {
        p.source = source;
    }
    if let Some(destination) = u.destination {
        p.destination = destination;
    }
    if let Some(mtu) = u.mtu {
        p.mtu = mtu;
    }
    if let Some(weight) = u.weight {
        p.weight = weight;
    }
}

fn no_eip(address: IpAddr) -> ApiError {
    ApiError::not_found(format!("EIP {address} does not exist"))
}

/// The EIP of `address`, by the list's index (no scan of the EIPs).
fn eip(spec: &mut PopSpec, address: IpAddr) -> Result<EipMut<'_>, ApiError> {
    spec.eips
        .by_address_mut(address)
        .ok_or_else(|| no_eip(address))
}

fn service_index(e: &EipSpec, protocol: Protocol, port: u16) -> Result<usize, ApiError> {
    e.services
        .iter()
        .position(|s| s.protocol == protocol && s.port == port)
        .ok_or_else(|| {
            let have: Vec<String> = e
                .services
                .iter()
                .map(|s| format!("{}/{}", proto(s.protocol), s.port))
                .collect();
            ApiError::not_found(format!(
                "EIP {} has no {}/{port} service ({})",
                e.address,
                proto(protocol),
                listing("services", &have)
            ))
        })
}

fn service(
    spec: &mut PopSpec,
    address: IpAddr,
    protocol: Protocol,
    port: u16,
) -> Result<ServiceMut<'_>, ApiError> {
    let eip = eip(spec, address)?;
    let i = service_index(&eip, protocol, port)?;
    Ok(ServiceMut { eip, i })
}

/// A service of an EIP, to change in place through the EIP's guard.
struct ServiceMut<'a> {
    eip: EipMut<'a>,
    i: usize,
}

impl Deref for ServiceMut<'_> {
    type Target = ServiceSpec;
    fn deref(&self) -> &ServiceSpec {
        &self.eip.services[self.i]
    }
}

impl DerefMut for ServiceMut<'_> {
    fn deref_mut(&mut self) -> &mut ServiceSpec {
        &mut self.eip.services[self.i]
    }
}

/// The backend `r` names: by address, and by port when given or needed.
fn backend_index(s: &ServiceSpec, r: &BackendRef) -> Result<usize, ApiError> {
    let name = service_name(r.eip, r.protocol, r.port);
    let matches: Vec<usize> = (0..s.backends.len())
        .filter(|&i| {
            let b = &s.backends[i];
            b.address == r.address && r.backend_port.is_none_or(|p| p == b.port.unwrap_or(s.port))
        })
        .collect();
    match matches[..] {
        [i] => Ok(i),
        [] => {
            let have: Vec<String> = s
                .backends
                .iter()
                .map(|b| endpoint(b.address, b.port.unwrap_or(s.port)))
                .collect();
            let wanted = match r.backend_port {
                Some(p) => endpoint(r.address, p),
                None => r.address.to_string(),
            };
            Err(ApiError::not_found(format!(
                "{name} has no backend {wanted} ({})",
                listing("backends", &have)
            )))
        }
        _ => {
            let ports: Vec<String> = matches
                .iter()
                .map(|&i| s.backends[i].port.unwrap_or(s.port).to_string())
                .collect();
            Err(ApiError::invalid(format!(
                "{name} has backend {} on ports {}; say which with backend_port",
                r.address,
                ports.join(" and ")
            )))
        }
    }
}

fn path_index(spec: &PopSpec, name: &str) -> Result<usize, ApiError> {
    spec.paths
        .iter()
        .position(|p| p.name == name)
        .ok_or_else(|| {
            let have: Vec<String> = spec.paths.iter().map(|p| format!("{:?}", p.name)).collect();
            ApiError::not_found(format!(
                "path {name:?} does not exist ({})",
                listing("paths", &have)
            ))
        })
}

fn path<'a>(spec: &'a mut PopSpec, name: &str) -> Result<&'a mut PathSpec, ApiError> {
    let i = path_index(spec, name)?;
    Ok(&mut spec.paths[i])
}

fn listing(what: &str, have: &[String]) -> String {
    match have.len() {
        0 => format!("there are no {what}"),
        n if n <= LIST => format!("{what}: {}", have.join(", ")),
        n => format!("{what}: {}, ... ({n} in all)", have[..LIST].join(", ")),
    }
}

fn proto(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
    }
}

fn service_name(eip: IpAddr, protocol: Protocol, port: u16) -> String {
    format!("service {eip} {}/{port}", proto(protocol))
}

fn endpoint(address: IpAddr, port: u16) -> String {
    match address {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

fn measured(health: Health) -> PathState {
    match health {
        Health::Up => PathState::Up,
        Health::Down => PathState::Down,
    }
}
