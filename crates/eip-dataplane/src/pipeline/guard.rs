//! Edge protection at the pipeline's three checkpoints (`crate::protect` holds
//! the rules): what may enter as Internet ingress, what may reach a backend on
//! the tunnel's UDP port, and where a return may go. The general path calls the
//! checks that name a reason; the fast paths call the `*_ok` forms and leave
//! anything refused to the general path, which counts it.

use super::parse::{IpInfo, Ports};
use crate::counters::DropReason;
use crate::frame::PortId;
use crate::protect::{Class, Protection};
use crate::tables::Tables;
use crate::wire::ip_proto;
use std::net::IpAddr;

/// A frame to an EIP: arrived on a port that faces the Internet, from a source
/// that is no bogon, EIP or POP address?
#[inline(always)]
pub(super) fn ingress(
    t: &Tables,
    port: PortId,
    data: &[u8],
    ip: &IpInfo,
) -> Result<(), DropReason> {
    let p = &t.protection;
    p.ingress(port, p.class_at(t, data, ip.src(), ip.v6))
}

/// Client UDP to the VXLAN port reaches the backends of `eip` only if opted out.
#[inline(always)]
pub(super) fn tunnel_port(
    t: &Tables,
    eip: IpAddr,
    ip: &IpInfo,
    ports: &Ports,
) -> Result<(), DropReason> {
    if ip.protocol == ip_proto::UDP
        && ports.present
        && ports.dst == t.vxlan_port
        && !t.protection.tunnel_port_open(eip)
    {
        return Err(DropReason::TunnelPort);
    }
    Ok(())
}

/// A decapsulated return: toward no bogon, EIP or POP address?
#[inline(always)]
pub(super) fn destination(t: &Tables, data: &[u8], ip: &IpInfo) -> Result<(), DropReason> {
    Protection::destination(t.protection.class_at(t, data, ip.dst(), ip.v6))
}

/// [`ingress`] for the fast path's IPv4 source.
#[inline(always)]
pub(super) fn ingress_ok(t: &Tables, port: PortId, src: [u8; 4]) -> bool {
    let p = &t.protection;
    p.class_v4(t, src) == Class::Clean && !p.from_backbone(port)
}

/// [`destination`] for the fast path's IPv4 destination.
#[inline(always)]
pub(super) fn destination_ok(t: &Tables, dst: [u8; 4]) -> bool {
    t.protection.class_v4(t, dst) == Class::Clean
}
