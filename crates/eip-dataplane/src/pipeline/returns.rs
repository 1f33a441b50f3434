//! Region -> client through the tunnel: check the tunnel (VTEP, VNI, I flag), hand
//! path-probe replies to the control thread, decapsulate, SNAT back to the EIP (and
//! service port). ICMP errors from the region are translated for the client.

use super::guard;
use super::icmp;
use super::nat;
use super::parse::{self, IpInfo};
use super::{icmp_header, key_at, Addr, Pipeline, Timestamp};
use crate::counters::{DropReason, Event};
use crate::frame::{Frame, Verdict};
use crate::tables::Tables;
use crate::wire::ethernet::{self, EthernetFrame};
use crate::wire::icmpv4::Icmpv4Packet;
use crate::wire::icmpv6::Icmpv6Packet;
use crate::wire::ipv4::Ipv4Packet;
use crate::wire::udp;
use crate::wire::vxlan::{self, VxlanHeader};
use crate::wire::{ethertype, ip_proto};
use std::net::IpAddr;

/// Offset of the source port in a TCP or UDP header.
const SRC_PORT: usize = 0;

impl Pipeline {
    /// Region -> client: validate the tunnel, decapsulate, SNAT back to the EIP.
    #[inline(always)]
    pub(super) fn tunnel_return(
        &mut self,
        _now: Timestamp,
        t: &Tables,
        frame: &mut Frame<'_>,
        outer: IpInfo,
    ) -> Result<Verdict, DropReason> {
        let data = frame.data();
        let vx = outer.l4 + udp::HEADER_LEN;
        let inner_l2 = vx + vxlan::HEADER_LEN;
        let inner_l3 = inner_l2 + ethernet::HEADER_LEN;
        if outer.end < inner_l3 {
            return Err(DropReason::Truncated);
        }
        // Both headers are whole (checked just above); `new_checked` on the VXLAN
        // header only adds the I flag check, its length check folds away.
        let vni = VxlanHeader::new_checked(&data[vx..inner_l2])
            .map_err(|_| DropReason::BadVxlan)?
            .vni();
        let inner_et = EthernetFrame::new_unchecked(&data[inner_l2..inner_l3]).ethertype();
        let vtep = Ipv4Packet::new_unchecked(&data[outer.l3..outer.l4]).src_addr();
        let region = t.tunnel_region(vtep, vni).map_err(|known| {
            if known {
                DropReason::WrongVni
            } else {
                DropReason::UnknownVtep
            }
        })?;
        // Parse the inner packet on the slice of the outer packet only.
        let inner_data = &data[..outer.end];
        let ip = match inner_et {
            ethertype::IPV4 => match parse::ipv4_no_options(inner_data, inner_l3) {
                Some(ip) => ip,
                None => parse::ipv4(inner_data, inner_l3)?,
            },
            ethertype::IPV6 => parse::ipv6(inner_data, inner_l3)?,
            _ => return Err(DropReason::BadVxlan),
        };
        // A reply to one of our path probes or backend checks (ICMP echo, TCP
        // SYN-ACK or RST): the control thread measures it.
        if let Some(probe) = t.probe_source {
            if !ip.v6
                && (ip.protocol == ip_proto::ICMP || ip.protocol == ip_proto::TCP)
                && data[ip.dst()..ip.dst() + 4] == probe
            {
                return Ok(Verdict::ToControl);
            }
        }
        guard::destination(t, data, &ip)?;
        if ip.ttl <= 1 {
            return Err(DropReason::TtlExpired);
        }
        if parse::l4_invalid(data, &ip) {
            return Err(DropReason::BadL4Header);
        }
        let ports = parse::ports(data, &ip);
        let icmp_proto = if ip.v6 {
            ip_proto::ICMPV6
        } else {
            ip_proto::ICMP
        };
        let icmp_error = ip.protocol == icmp_proto && ip.has_l4() && {
            let msg = icmp_header(data, &ip)?;
            if ip.v6 {
                Icmpv6Packet::new_unchecked(msg).is_error()
            } else {
                Icmpv4Packet::new_unchecked(msg).is_error()
            }
        };

        let data = frame.data_mut();
        let (eip_id, service_port) = if icmp_error {
            // The quoted packet says which flow this is about; the sender may be the
            // backend or a router in the region.
            let eip = icmp::translate_return_error(t, region, data, &ip)?;
            self.counters.event(Event::IcmpErrorTranslated);
            (eip, None)
        } else {
            let src = key_at(data, ip.src(), ip.v6);
            let m = t
                .return_mapping(region, src, ip.protocol, ports.present.then_some(ports.src))
                .ok_or(DropReason::UnknownBackend)?;
            (m.eip, m.service_port)
        };
        self.police(t, eip_id, || t.eips.epoch(eip_id), false, ip.total_len())?;
        let data = frame.data_mut();
        match t.eips.at(eip_id).address {
            // The common case, specialised: one update per checksum for address,
            // port and TTL.
            IpAddr::V4(eip) if !ip.v6 && ports.present => nat::rewrite_v4(
                data,
                &ip,
                nat::V4_SRC,
                eip.octets(),
                service_port.map(|p| (SRC_PORT, p)),
            ),
            address => {
                let eip = Addr::of(address);
                if eip.len != ip.addr_len() {
                    return Err(DropReason::FamilyMismatch);
                }
                nat::rewrite_addr(data, &ip, ip.src(), eip.as_slice());
                if let (Some(port), true) = (service_port, ports.present) {
                    nat::rewrite_port(data, &ip, ip.l4, port);
                }
                nat::decrement_ttl(data, &ip);
            }
        }

        let port = &t.ports[t.internet_port as usize];
        let inner_len = ip.total_len();
        if !(frame.pull_head(inner_l2) && frame.set_len(14 + inner_len)) {
            return Err(DropReason::Truncated);
        }
        // The inner Ethernet header is whole (checked on entry).
        let mut eth = EthernetFrame::new_unchecked(frame.data_mut());
        eth.set_dst_addr(port.gateway_mac.unwrap_or([0xff; 6]));
        eth.set_src_addr(port.mac);
        self.counters
            .eip_out_at(eip_id, t.eips.epoch(eip_id))
            .add(inner_len);
        self.counters.event(Event::Decapsulated);
        Ok(Verdict::Tx(t.internet_port))
    }
}
