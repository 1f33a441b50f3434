//! The common cases, specialised: an untagged Ethernet frame with an IPv4 header
//! without options and a whole TCP or UDP header, to an EIP (ingress), or inside
//! VXLAN to our VTEP (return), that goes through.
//!
//! They read and rewrite the headers at fixed offsets of one fixed-size view, so
//! validation happens once (here) and no later access needs a bounds check. They
//! do exactly what the general path (`classify`, `ingress`, `tunnel_return`) does
//! to such a packet. Everything else (VLANs, IP options, IPv6, fragments, ICMP,
//! probe replies) and every way of not going through (TTL, MTU, no service,
//! backend or path, unknown tunnel or backend) returns `None` before changing the
//! frame or a counter: the general path then handles and counts it as it handles
//! every packet. The drops decided here are an access list's (`acl.rs`), a
//! rate limit's (`police.rs`) and a frame without headroom for the
//! encapsulation (`no_room`), at the points where the general path would
//! decide them too (the list right after edge protection, which the general
//! path checks first as well; the headroom before any rewrite).

use super::encap;
use super::guard;
use super::ingress::choose_target;
use super::nat::{self, TCP_SUM, UDP_SUM};
use super::parse::{Fragment, IpInfo};
use super::Pipeline;
use crate::counters::DropReason;
use crate::counters::Event;
use crate::flow;
use crate::frame::{Frame, Verdict};
use crate::tables::{addr_key_v4, Eip, EipEntry, EipId, RegionId, Tables, ENCAP_LEN};
use crate::wire::{ethernet, ip_proto, tcp, udp, vxlan};
use std::net::IpAddr;

const L3: usize = ethernet::HEADER_LEN;
const L4: usize = L3 + 20;
/// Bytes of the frame the UDP and TCP cases read and write.
const UDP_END: usize = L4 + udp::HEADER_LEN;
const TCP_END: usize = L4 + tcp::MIN_HEADER_LEN;
/// Offset of the flags byte in a TCP header.
const TCP_FLAGS: usize = 13;
/// Offset of the destination port in a TCP or UDP header.
const DST_PORT: usize = 2;
/// Offset of the source port in a TCP or UDP header.
const SRC_PORT: usize = 0;

/// The encapsulated packet's bytes from its start to the end of the inner
/// transport header, for TCP and UDP.
const TCP_SPAN: usize = ENCAP_LEN - L3 + TCP_END;
const UDP_SPAN: usize = ENCAP_LEN - L3 + UDP_END;

/// A return: VXLAN header, inner Ethernet, inner IPv4 and transport header.
const VXLAN: usize = UDP_END;
const INNER_L2: usize = VXLAN + vxlan::HEADER_LEN;
const INNER_L3: usize = INNER_L2 + ethernet::HEADER_LEN;
const INNER_L4: usize = INNER_L3 + 20;
const INNER_UDP_END: usize = INNER_L4 + udp::HEADER_LEN;
const INNER_TCP_END: usize = INNER_L4 + tcp::MIN_HEADER_LEN;
/// The VXLAN I flag.
const VXLAN_I: u8 = 0x08;

impl Pipeline {
    /// The common case of ingress, or `None` for the general path. `slot`: the
    /// index entry of the frame's IPv4 destination if the caller looked it up.
    #[inline(always)]
    pub(super) fn fast_ingress(
        &mut self,
        t: &Tables,
        frame: &mut Frame<'_>,
        slot: Option<EipEntry>,
    ) -> Option<Verdict> {
        // Every case needs the bytes of a UDP header at least: one length check
        // here, which the UDP case's own folds into.
        match frame.data().first_chunk::<UDP_END>()?[L3 + 9] {
            ip_proto::TCP => self.fast_ingress_l4::<TCP_END, TCP_SUM, TCP_SPAN>(t, frame, slot),
            ip_proto::UDP => self.fast_ingress_l4::<UDP_END, UDP_SUM, UDP_SPAN>(t, frame, slot),
            _ => None,
        }
    }

    /// The common case of a return, or `None` for the general path. Reached
    /// through [`Self::fast_ingress`] (UDP to the VXLAN port).
    #[inline(always)]
    pub(super) fn fast_return(&mut self, t: &Tables, frame: &mut Frame<'_>) -> Option<Verdict> {
        match *frame.data().get(INNER_L3 + 9)? {
            ip_proto::TCP => self.fast_return_l4::<INNER_TCP_END, TCP_SUM>(t, frame),
            ip_proto::UDP => self.fast_return_l4::<INNER_UDP_END, UDP_SUM>(t, frame),
            _ => None,
        }
    }

    /// [`Self::fast_return`] for inner TCP (`END` = [`INNER_TCP_END`]) or UDP
    /// ([`INNER_UDP_END`]).
    #[inline(always)]
    fn fast_return_l4<const END: usize, const SUM: usize>(
        &mut self,
        t: &Tables,
        frame: &mut Frame<'_>,
    ) -> Option<Verdict> {
        let data = frame.data();
        let d: &[u8; END] = data.get(..END)?.try_into().ok()?;
        // Outer: untagged IPv4 without options, UDP, not a fragment, within the
        // frame, to the VXLAN port of one of our VTEPs.
        if d[12..15] != [0x08, 0x00, 0x45] || d[L3 + 9] != ip_proto::UDP {
            return None;
        }
        let outer_total = u16::from_be_bytes([d[L3 + 2], d[L3 + 3]]) as usize;
        let flags_offset = u16::from_be_bytes([d[L3 + 6], d[L3 + 7]]);
        if outer_total < END - L3 || outer_total > data.len() - L3 || flags_offset & 0x3FFF != 0 {
            return None;
        }
        let outer_dst = [d[L3 + 16], d[L3 + 17], d[L3 + 18], d[L3 + 19]];
        if u16::from_be_bytes([d[L4 + 2], d[L4 + 3]]) != t.vxlan_port || !t.is_local_vtep(outer_dst)
        {
            return None;
        }
        // VXLAN with the I flag; inner untagged IPv4 without options, within the
        // outer packet, holding the whole transport header; not a fragment; TTL
        // above 1.
        if d[VXLAN] & VXLAN_I == 0 || d[INNER_L2 + 12..INNER_L3 + 1] != [0x08, 0x00, 0x45] {
            return None;
        }
        let total = u16::from_be_bytes([d[INNER_L3 + 2], d[INNER_L3 + 3]]) as usize;
        let flags_offset = u16::from_be_bytes([d[INNER_L3 + 6], d[INNER_L3 + 7]]);
        if total < END - INNER_L3
            || total > L3 + outer_total - INNER_L3
            || flags_offset & 0x3FFF != 0
            || d[INNER_L3 + 8] <= 1
            || !l4_lengths_ok(END == INNER_TCP_END, &d[INNER_L4..], total - 20)
        {
            return None;
        }
        let vni = u32::from_be_bytes([0, d[VXLAN + 4], d[VXLAN + 5], d[VXLAN + 6]]);
        let vtep = [d[L3 + 12], d[L3 + 13], d[L3 + 14], d[L3 + 15]];
        let region = t.tunnel_region_via(&mut self.last_tunnel, vtep, vni)?;
        let protocol = d[INNER_L3 + 9];
        let src = [
            d[INNER_L3 + 12],
            d[INNER_L3 + 13],
            d[INNER_L3 + 14],
            d[INNER_L3 + 15],
        ];
        // An answer to a backend check (to the probe source) is the control
        // thread's, not a return: the general path hands it over.
        let dst = [
            d[INNER_L3 + 16],
            d[INNER_L3 + 17],
            d[INNER_L3 + 18],
            d[INNER_L3 + 19],
        ];
        if t.probe_source == Some(dst) {
            return None;
        }
        let sport = u16::from_be_bytes([d[INNER_L4], d[INNER_L4 + 1]]);
        if !guard::destination_ok(t, dst) {
            return None;
        }
        // A plain 1:1 IPv4 EIP straight from its record; one with services
        // through the mapping, which also finds the service port.
        let owner = t.backend_owner_v4(region, src)?;
        let slot = owner.slot();
        let (eip, service_port) = match owner.plain_eip() {
            Some(eip) => (eip, None),
            None => {
                let m = t.return_mapping(region, addr_key_v4(src), protocol, Some(sport))?;
                match t.eips.get(m.eip)? {
                    Eip {
                        address: IpAddr::V4(a),
                        ..
                    } => (a.octets(), m.service_port),
                    _ => return None,
                }
            }
        };

        if let Err(reason) = self.police(t, slot, || t.eips.epoch(slot), false, total) {
            return Some(Verdict::Drop(reason));
        }

        // Goes through: from here on the frame changes.
        let d: &mut [u8; END] = (&mut frame.data_mut()[..END]).try_into().ok()?;
        let (head, l4) = d.split_at_mut(INNER_L4);
        let hdr: &mut [u8; 20] = (&mut head[INNER_L3..]).try_into().ok()?;
        nat::rewrite_v4_headers::<SUM>(
            hdr,
            l4,
            nat::V4_SRC,
            eip,
            service_port.map(|p| (SRC_PORT, p)),
        );
        let port = &t.ports[t.internet_port as usize];
        // The inner frame, from its Ethernet header to the end of its IP packet.
        let inner = frame.reframe(frame.head() + INNER_L2, ethernet::HEADER_LEN + total);
        let Some(eth) = inner.and_then(|d| d.first_chunk_mut::<{ ethernet::HEADER_LEN }>()) else {
            return Some(Verdict::Drop(DropReason::Truncated));
        };
        eth[..6].copy_from_slice(&port.gateway_mac.unwrap_or([0xff; 6]));
        eth[6..12].copy_from_slice(&port.mac);
        self.counters.eip_out_claimed(slot).add(total);
        self.counters.event(Event::Decapsulated);
        Some(Verdict::Tx(t.internet_port))
    }

    /// Clamps the MSS option of a TCP SYN in an untagged IPv4 packet without
    /// options, which ends at `end`, to fit `inner_mtu`. Not inlined: once
    /// per connection, not per packet.
    #[inline(never)]
    fn clamp_syn(&mut self, data: &mut [u8], end: usize, inner_mtu: u16) {
        let ip = IpInfo {
            v6: false,
            l3: L3,
            l4: L4,
            end,
            protocol: ip_proto::TCP,
            fragment: Fragment::None,
            dont_frag: false,
            ttl: 0,
        };
        if encap::clamp_mss(data, &ip, inner_mtu) {
            self.counters.event(Event::MssClamped);
        }
    }

    /// [`Self::fast_ingress`] for TCP (`END` = [`TCP_END`]) or UDP ([`UDP_END`]).
    #[inline(always)]
    fn fast_ingress_l4<const END: usize, const SUM: usize, const SPAN: usize>(
        &mut self,
        t: &Tables,
        frame: &mut Frame<'_>,
        slot: Option<EipEntry>,
    ) -> Option<Verdict> {
        let is_tcp = END == TCP_END;
        let data = frame.data();
        let d: &[u8; END] = data.get(..END)?.try_into().ok()?;
        let dport = u16::from_be_bytes([d[L4 + 2], d[L4 + 3]]);
        // Ethertype IPv4 (untagged), version 4, a 20-byte header.
        if d[12..15] != [0x08, 0x00, 0x45] {
            return None;
        }
        // UDP to the VXLAN port: perhaps a return, whose fast path checks the
        // VTEP first. Every return it takes comes this way (outer untagged
        // IPv4 without options, UDP to the VXLAN port), so the batch loop does
        // not try it after ingress.
        if !is_tcp && dport == t.vxlan_port {
            return self.fast_return(t, frame);
        }
        // The IP packet holds the whole transport header and lies in the frame.
        // (`END - L3 <= total <= data.len() - L3` as one unsigned comparison:
        // `data.len() >= END` is known.)
        let total = u16::from_be_bytes([d[L3 + 2], d[L3 + 3]]) as usize;
        if total.wrapping_sub(END - L3) > data.len() - END
            || !l4_lengths_ok(is_tcp, &d[L4..], total - 20)
        {
            return None;
        }
        // Not a fragment (MF or an offset), TTL above 1.
        let flags_offset = u16::from_be_bytes([d[L3 + 6], d[L3 + 7]]);
        if flags_offset & 0x3FFF != 0 || d[L3 + 8] <= 1 {
            return None;
        }
        let src = [d[L3 + 12], d[L3 + 13], d[L3 + 14], d[L3 + 15]];
        let dst = [d[L3 + 16], d[L3 + 17], d[L3 + 18], d[L3 + 19]];
        let entry = match slot {
            Some(entry) => entry,
            None => t.eip_v4_entry(dst)?,
        };
        let eip_id = entry.slot();
        if !guard::ingress_ok(t, frame.port(), src) {
            return None;
        }
        let protocol = d[L3 + 9];
        // The index entry holds the list flag and the 1:1 fields: a plain
        // 1:1 EIP's record is not read.
        if entry.filtered() {
            if let Some(acl) = t.eips.acl_of(eip_id) {
                let src = u128::from(u32::from_be_bytes(src));
                let epoch = t.eips.epoch(eip_id);
                if let Err(reason) =
                    self.filter(acl, eip_id, epoch, false, src, protocol, Some(dport))
                {
                    return Some(Verdict::Drop(reason));
                }
            }
        }
        let hash = flow::hash_v4_wire(
            d[L3 + 12..L3 + 20].try_into().ok()?,
            d[L4..L4 + 4].try_into().ok()?,
            protocol,
        );

        // A plain 1:1 IPv4 EIP straight from its index entry; a service's
        // IPv4 backend from its precomputed targets; anything else (a service
        // port no service has, IPv6 backends) through the EIP's view.
        let target = match entry.one_to_one_v4() {
            // The common case: its own copy of the rest, with no port to
            // rewrite.
            Some((backend, region)) => {
                let target = Target {
                    backend,
                    new_port: None,
                    region,
                };
                return self
                    .fast_forward::<END, SUM, SPAN, false>(t, frame, eip_id, target, hash, total);
            }
            None => match t
                .eips
                .services(eip_id)
                .iter()
                .find(|s| s.protocol == protocol && s.port == dport)
            {
                Some(s) => {
                    let (backend, port) = s.pick_v4(hash)?;
                    Target {
                        backend,
                        new_port: (port != dport).then_some(port),
                        region: entry.region(),
                    }
                }
                None => target_without_service(t, eip_id, protocol, hash)?,
            },
        };
        self.fast_forward::<END, SUM, SPAN, true>(t, frame, eip_id, target, hash, total)
    }

    /// The rest of [`Self::fast_ingress_l4`] once the target is chosen: the
    /// path, the rate limit, then the frame's window over its headroom, NAT,
    /// encapsulation and MSS clamp. `PORT`:
    /// whether the target may have a new destination port (false: the
    /// compiler drops the port's code from this copy).
    #[inline(always)]
    fn fast_forward<const END: usize, const SUM: usize, const SPAN: usize, const PORT: bool>(
        &mut self,
        t: &Tables,
        frame: &mut Frame<'_>,
        eip_id: EipId,
        target: Target,
        hash: u64,
        total: usize,
    ) -> Option<Verdict> {
        let region = &t.regions[target.region as usize];
        if region.path_table.is_empty() {
            return None;
        }
        let path_id = region.path_for(hash);
        let path = &t.paths[path_id as usize];
        if total > path.inner_mtu as usize {
            return None;
        }

        if let Err(reason) = self.police(t, eip_id, || t.eips.epoch(eip_id), true, total) {
            return Some(Verdict::Drop(reason));
        }

        // Goes through: from here on the frame changes.
        if region.panic {
            self.counters.event(Event::PanicPath);
        }
        // The frame becomes the encapsulated packet first: its window moves
        // back over the headroom the outer headers take, with the old Ethernet
        // header at `ENCAP_LEN - L3` in it. The encapsulation and the headers
        // NAT rewrites are its first `SPAN` bytes: one bounds check for them
        // all, where taking the bytes and moving the window made two. (No
        // room: the general path drops it so too, before changing anything.)
        const { assert!(SPAN == ENCAP_LEN - L3 + END) };
        let Some(start) = (frame.head() + L3).checked_sub(ENCAP_LEN) else {
            return Some(Verdict::Drop(DropReason::NoRoom));
        };
        let Some(packet) = frame.reframe(start, ENCAP_LEN + total) else {
            return Some(Verdict::Drop(DropReason::NoRoom));
        };
        // `total >= END - L3` was checked: the span is there.
        let Some(span) = packet.first_chunk_mut::<SPAN>() else {
            return Some(Verdict::Drop(DropReason::Truncated));
        };
        // Ranges of a fixed-size array: the conversions cannot fail and fold.
        let (head, l4) = span[ENCAP_LEN - L3..].split_at_mut(L4);
        let hdr: &mut [u8; 20] = (&mut head[L3..]).try_into().unwrap();
        let new_port = if PORT { target.new_port } else { None };
        nat::rewrite_v4_headers::<SUM>(
            hdr,
            l4,
            nat::V4_DST,
            target.backend,
            new_port.map(|p| (DST_PORT, p)),
        );
        let syn = END == TCP_END && l4[TCP_FLAGS] & tcp::flags::SYN != 0;
        let outer: &mut [u8; ENCAP_LEN] = (&mut span[..ENCAP_LEN]).try_into().unwrap();
        encap::write_header(outer, &path.template, total as u16, false, hash);
        if syn {
            // The inner packet from where its frame began (the clamp reads
            // only its IP and TCP headers; the NAT's checksum update and the
            // clamp's commute).
            if let Some(data) = packet.get_mut(ENCAP_LEN - L3..) {
                self.clamp_syn(data, L3 + total, path.inner_mtu);
            }
        }
        self.counters.eip_in_claimed(eip_id).add(total);
        self.counters.path[path_id as usize].add(ENCAP_LEN + total);
        self.counters.event(Event::Encapsulated);
        Some(Verdict::Tx(path.port))
    }
}

/// Where a flow goes: the IPv4 backend, a new destination port (services
/// whose backend listens on another), and the region whose paths lead there.
#[derive(Debug, Clone, Copy)]
struct Target {
    backend: [u8; 4],
    new_port: Option<u16>,
    region: RegionId,
}

/// The IPv4 backend and region of a flow to an EIP that is not a plain 1:1
/// one, to a port none of its services has (its 1:1 fallback backend), or
/// `None` for the general path. Not inlined: the fast path's code stays as
/// small as the common cases need.
#[inline(never)]
fn target_without_service(t: &Tables, slot: EipId, protocol: u8, hash: u64) -> Option<Target> {
    let eip = t.eips.get(slot)?;
    match choose_target(t, &eip, protocol, None, hash).ok()?.0 {
        IpAddr::V4(backend) => Some(Target {
            backend: backend.octets(),
            new_port: None,
            region: eip.region,
        }),
        IpAddr::V6(_) => None,
    }
}

/// Do the transport header's own length fields agree with the IP packet, whose
/// payload (after a 20-byte header) is `payload` bytes? TCP: a data offset of at
/// least 5 words that ends inside the payload; UDP: a length of at least 8 that
/// does not run past it. Anything else goes to the general path, which drops it
/// as `bad_l4_header`. `l4` starts at the transport header and holds at least 8
/// bytes (20 for TCP).
#[inline(always)]
fn l4_lengths_ok(is_tcp: bool, l4: &[u8], payload: usize) -> bool {
    // `MIN <= x <= payload` as one unsigned comparison (`payload >= MIN`: the
    // caller checked that the packet holds the whole header).
    if is_tcp {
        let header = usize::from(l4[12] >> 4) * 4;
        header.wrapping_sub(tcp::MIN_HEADER_LEN) <= payload - tcp::MIN_HEADER_LEN
    } else {
        let len = usize::from(u16::from_be_bytes([l4[4], l4[5]]));
        len.wrapping_sub(udp::HEADER_LEN) <= payload - udp::HEADER_LEN
    }
}
