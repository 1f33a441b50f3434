//! Test frames, built by hand so the tests depend on nothing but the driver.
//!
//! Every payload starts with [`MAGIC`] and a sequence number, so a receiver can
//! tell test frames from stray kernel traffic and find them inside an
//! encapsulation.

use std::net::{Ipv4Addr, Ipv6Addr};

pub const MAGIC: &[u8; 8] = b"AFXDPTST";

/// Link-layer addressing of a test frame.
#[derive(Debug, Clone, Copy)]
pub struct L2 {
    pub dst: [u8; 6],
    pub src: [u8; 6],
    pub vlan: Option<u16>,
}

fn ethernet(l2: L2, ethertype: u16, out: &mut Vec<u8>) {
    out.extend_from_slice(&l2.dst);
    out.extend_from_slice(&l2.src);
    if let Some(vid) = l2.vlan {
        out.extend_from_slice(&0x8100u16.to_be_bytes());
        out.extend_from_slice(&(vid & 0x0fff).to_be_bytes());
    }
    out.extend_from_slice(&ethertype.to_be_bytes());
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn sum16(bytes: &[u8]) -> u32 {
    bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum()
}

/// A payload: magic, sequence number, then `pad` filler bytes.
pub fn payload(seq: u32, pad: usize) -> Vec<u8> {
    let mut p = MAGIC.to_vec();
    p.extend_from_slice(&seq.to_be_bytes());
    p.resize(p.len() + pad, 0xab);
    p
}

/// Ethernet (+802.1Q) + IPv4 + UDP. UDP checksum 0 (allowed for IPv4).
pub fn udp4(l2: L2, src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(64 + body.len());
    ethernet(l2, 0x0800, &mut f);
    let ip_start = f.len();
    let total = (20 + 8 + body.len()) as u16;
    f.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0]);
    f[ip_start + 2..ip_start + 4].copy_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    let csum = fold(sum16(&f[ip_start..ip_start + 20]));
    f[ip_start + 10..ip_start + 12].copy_from_slice(&csum.to_be_bytes());
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&((8 + body.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(body);
    f
}

/// Ethernet + IPv6 + UDP with a correct checksum.
pub fn udp6(l2: L2, src: Ipv6Addr, dst: Ipv6Addr, sport: u16, dport: u16, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(80 + body.len());
    ethernet(l2, 0x86dd, &mut f);
    let len = (8 + body.len()) as u16;
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&len.to_be_bytes());
    f.extend_from_slice(&[17, 64]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    let udp_start = f.len();
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&len.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(body);
    let pseudo = sum16(&src.octets()) + sum16(&dst.octets()) + u32::from(len) + 17;
    let csum = fold(pseudo + sum16(&f[udp_start..]));
    f[udp_start + 6..udp_start + 8].copy_from_slice(&csum.to_be_bytes());
    f
}

/// VXLAN (VNI `vni`) carrying `inner` to `vtep`.
pub fn vxlan4(
    l2: L2,
    src: Ipv4Addr,
    vtep: Ipv4Addr,
    sport: u16,
    vni: u32,
    inner: &[u8],
) -> Vec<u8> {
    let mut body = vec![0x08, 0, 0, 0];
    body.extend_from_slice(&(vni << 8).to_be_bytes());
    body.extend_from_slice(inner);
    udp4(l2, src, vtep, sport, 4789, &body)
}

/// The sequence number after the first [`MAGIC`] in `frame`.
pub fn find_seq(frame: &[u8]) -> Option<u32> {
    let at = frame.windows(MAGIC.len()).position(|w| w == MAGIC)?;
    let s = frame.get(at + MAGIC.len()..at + MAGIC.len() + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// UDP destination port of an Ethernet(+VLAN)/IPv4-or-IPv6/UDP frame.
pub fn udp_dport(frame: &[u8]) -> Option<u16> {
    let mut off = 12;
    let mut ethertype = u16::from_be_bytes([*frame.get(off)?, *frame.get(off + 1)?]);
    off += 2;
    if ethertype == 0x8100 {
        ethertype = u16::from_be_bytes([*frame.get(off + 2)?, *frame.get(off + 3)?]);
        off += 4;
    }
    let l4 = match ethertype {
        0x0800 if *frame.get(off + 9)? == 17 => off + usize::from(frame.get(off)? & 0x0f) * 4,
        0x86dd if *frame.get(off + 6)? == 17 => off + 40,
        _ => return None,
    };
    Some(u16::from_be_bytes([
        *frame.get(l4 + 2)?,
        *frame.get(l4 + 3)?,
    ]))
}

#[test]
fn builders_produce_parsable_frames() {
    let l2 = L2 {
        dst: [2; 6],
        src: [4; 6],
        vlan: None,
    };
    let f = udp4(
        l2,
        Ipv4Addr::new(198, 51, 100, 1),
        Ipv4Addr::new(203, 0, 113, 10),
        1000,
        2000,
        &payload(7, 0),
    );
    assert_eq!(f.len(), 14 + 20 + 8 + 12);
    assert_eq!((udp_dport(&f), find_seq(&f)), (Some(2000), Some(7)));
    assert_eq!(fold(sum16(&f[14..34])), 0, "IPv4 header checksum verifies");
    let v = udp4(
        L2 {
            vlan: Some(5),
            ..l2
        },
        Ipv4Addr::LOCALHOST,
        Ipv4Addr::LOCALHOST,
        1,
        3,
        &payload(1, 0),
    );
    assert_eq!(udp_dport(&v), Some(3));
    let s = udp6(
        l2,
        Ipv6Addr::LOCALHOST,
        Ipv6Addr::LOCALHOST,
        1,
        4,
        &payload(2, 0),
    );
    assert_eq!((udp_dport(&s), find_seq(&s)), (Some(4), Some(2)));
    let x = vxlan4(l2, Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST, 1, 42, &f);
    assert_eq!((udp_dport(&x), find_seq(&x)), (Some(4789), Some(7)));
}
