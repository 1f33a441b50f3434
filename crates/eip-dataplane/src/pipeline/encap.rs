//! VXLAN encapsulation (RFC 7348) into frame headroom, and TCP MSS clamping.

use super::parse::IpInfo;
use crate::counters::DropReason;
use crate::flow;
use crate::frame::Frame;
use crate::tables::{Path, ENCAP_IP_OVERHEAD, ENCAP_LEN};
use crate::wire::{checksum, tcp::TcpPacket};

/// Puts the path's encapsulation in front of the (already rewritten) inner IP packet.
/// The inner packet stays where it is; the outer headers go into the headroom that
/// the old Ethernet header and the buffer's headroom provide. Ethernet padding
/// behind the inner packet is cut off.
#[inline(always)]
pub fn encapsulate(
    frame: &mut Frame<'_>,
    ip: &IpInfo,
    path: &Path,
    hash: u64,
) -> Result<(), DropReason> {
    let inner_len = ip.total_len();
    let moved = if ip.l3 < ENCAP_LEN {
        frame.push_head(ENCAP_LEN - ip.l3)
    } else {
        frame.pull_head(ip.l3 - ENCAP_LEN)
    };
    if !(moved && frame.set_len(ENCAP_LEN + inner_len)) {
        return Err(DropReason::NoRoom);
    }
    let hdr: &mut [u8; ENCAP_LEN] = (&mut frame.data_mut()[..ENCAP_LEN]).try_into().unwrap();
    write_header(hdr, &path.template, inner_len as u16, ip.v6, hash);
    Ok(())
}

/// Writes a path's VXLAN encapsulation of an inner IP packet of `inner_len`
/// bytes whose flow hash is `hash`: the path's `template` with the outer total
/// length and checksum, the UDP source port (from `hash`) and length, and the
/// inner ethertype filled in. Shared by data ([`encapsulate`]) and the control
/// side's path probes, so that a probe is encapsulated exactly as data is.
#[inline(always)]
pub fn write_header(
    hdr: &mut [u8; ENCAP_LEN],
    template: &[u8; ENCAP_LEN],
    inner_len: u16,
    v6: bool,
    hash: u64,
) {
    *hdr = *template;
    let outer_len = inner_len + ENCAP_IP_OVERHEAD;
    hdr[16..18].copy_from_slice(&outer_len.to_be_bytes());
    // The template's checksum was computed with total length 0.
    let c = checksum::update16(u16::from_be_bytes([hdr[24], hdr[25]]), 0, outer_len);
    hdr[24..26].copy_from_slice(&c.to_be_bytes());
    hdr[34..36].copy_from_slice(&flow::vxlan_source_port(hash).to_be_bytes());
    hdr[38..40].copy_from_slice(&(outer_len - 20).to_be_bytes());
    let et: u16 = if v6 { 0x86DD } else { 0x0800 };
    hdr[62..64].copy_from_slice(&et.to_be_bytes());
}

/// Lowers the MSS option of a TCP SYN so that segments fit `inner_mtu` (RFC 879:
/// MSS = MTU - 40 for IPv4, - 60 for IPv6). Returns true when it changed something.
/// The MSS may sit at an odd offset (after one NOP), which the view's clamp handles.
#[inline]
pub fn clamp_mss(data: &mut [u8], ip: &IpInfo, inner_mtu: u16) -> bool {
    let Ok(mut tcp) = TcpPacket::new_checked(&mut data[ip.l4..ip.end]) else {
        return false;
    };
    if !tcp.syn() {
        return false;
    }
    tcp.clamp_mss(inner_mtu.saturating_sub(if ip.v6 { 60 } else { 40 }))
}
