//! What a committed change asks of the tables: the EIPs its ops touched (as a
//! [`TableDelta`] for `Tables::apply`), and the spec the tables see (the
//! operator's, with resolved next hops and observed path states).

use crate::api::Op;
use eip_dataplane::tables::{PopSpec, TableDelta};
use std::net::IpAddr;

/// Calls `f` with `spec` whose ports and paths are those of `small` (resolved,
/// paths in their observed states), then puts the operator's back: the tables
/// see what they must be built with, and no copy of the EIPs is made.
pub(super) fn with_small_parts<R>(
    spec: &mut PopSpec,
    mut small: PopSpec,
    f: impl FnOnce(&PopSpec) -> R,
) -> R {
    std::mem::swap(&mut spec.ports, &mut small.ports);
    std::mem::swap(&mut spec.paths, &mut small.paths);
    let result = f(spec);
    std::mem::swap(&mut spec.ports, &mut small.ports);
    std::mem::swap(&mut spec.paths, &mut small.paths);
    result
}

/// What `ops` (which turned `before` into `after`) change in the tables: the
/// EIPs they name, as they are in `after` (or removed), and whether the small
/// parts changed (or `observed_differs`: path states, next-hop MACs). Also
/// whether nothing changed at all. Costs what the ops name: each EIP is found
/// by address in both specs, no list of EIPs is scanned.
pub(super) fn eip_delta(
    ops: &[Op],
    before: &PopSpec,
    after: &PopSpec,
    observed_differs: bool,
) -> (TableDelta, bool) {
    let mut touched: Vec<IpAddr> = Vec::new();
    for op in ops {
        if let Some(address) = op_eip(op) {
            if !touched.contains(&address) {
                touched.push(address);
            }
        }
    }
    let small_differs = before.pop != after.pop
        || before.limits != after.limits
        || before.ports != after.ports
        || before.regions != after.regions
        || before.paths != after.paths;
    let mut delta = TableDelta {
        small_parts: small_differs || observed_differs,
        ..TableDelta::default()
    };
    let mut same_eips = true;
    for &address in &touched {
        let was = before.eips.by_address(address);
        match after.eips.by_address(address) {
            Some(now) => {
                same_eips &= was.as_ref() == Some(&now);
                delta.upsert.push(now.into_owned());
            }
            None => {
                same_eips &= was.is_none();
                delta.remove.push(address);
            }
        }
    }
    (delta, same_eips && !small_differs)
}

/// The EIP an op changes, if it changes one.
fn op_eip(op: &Op) -> Option<IpAddr> {
    match op {
        Op::AddEip(a) => Some(a.eip.address),
        Op::UpdateEip(u) => Some(u.address),
        Op::RemoveEip(r) => Some(r.address),
        Op::AddService(a) => Some(a.eip),
        Op::RemoveService(r) => Some(r.eip),
        Op::AddBackend(a) => Some(a.eip),
        Op::UpdateBackend(u) => Some(u.eip),
        Op::DrainBackend(r) | Op::RemoveBackend(r) => Some(r.eip),
        Op::SetLimits(l) => l.address,
        Op::SetAcl(a) => Some(a.address),
        Op::AddPath(_) | Op::UpdatePath(_) | Op::RemovePath(_) | Op::SetPathAdmin(_) => None,
    }
}
