//! Fuzz targets: the three places where bytes from outside enter the product.
//!
//! - [`pipeline`]: frames from the wire, through `Pipeline::process` with the
//!   golden-pcap POP's tables (1:1 and service EIPs, two regions, IPv4 and IPv6).
//!   Besides "no panic", every frame the pipeline sends must be well formed to an
//!   independent parser (etherparse), outer and inner: a malformed frame is
//!   dropped, never forwarded.
//! - [`request`]: a control-socket request line.
//! - [`config`]: a POP configuration file.
//!
//! Each target is a plain function, so the AFL binaries (`src/bin/`) and the
//! corpus test (`tests/corpus.rs`) run the same code.

#![forbid(unsafe_code)]

use eip_dataplane::tables::Tables;
use eip_dataplane::testkit::{BUFFER_LEN, HEADROOM};
use eip_dataplane::{Frame, Pipeline, PortId, Timestamp, Verdict};
use etherparse::SlicedPacket;
use std::path::Path;
use std::sync::OnceLock;

/// Most frames one input carries (one batch, so fragments and their heads meet).
pub const MAX_FRAMES: usize = 8;

/// The golden-pcap POP (`pcap-fixtures/pop.toml`), built once.
pub fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pcap-fixtures/pop.toml");
        let text = std::fs::read_to_string(&path).expect("pcap-fixtures/pop.toml");
        eip_control::config::build(&text, &path)
            .expect("the fixture POP builds")
            .1
    })
}

/// Splits an input into frames: each is `[port][length: u16 big-endian][bytes]`;
/// a short last record takes what is left. Port is the low bit of its byte.
pub fn frames(data: &[u8]) -> Vec<(PortId, &[u8])> {
    let mut out = Vec::new();
    let mut rest = data;
    while out.len() < MAX_FRAMES && !rest.is_empty() {
        let port = (rest[0] & 1) as PortId;
        let (len, body) = match rest.get(1..3) {
            Some(l) => (u16::from_be_bytes([l[0], l[1]]) as usize, &rest[3..]),
            None => (0, &rest[rest.len()..]),
        };
        let len = len.min(body.len()).min(BUFFER_LEN - HEADROOM);
        out.push((port, &body[..len]));
        rest = &body[len..];
    }
    out
}

/// Encodes frames in the format [`frames`] reads (for seeding the corpus).
pub fn encode(frames: &[(PortId, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (port, bytes) in frames {
        out.push(*port as u8);
        out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

/// Runs the frames of `data` as one batch and checks every forwarded frame.
///
/// # Panics
/// On a pipeline panic, or when a forwarded frame is malformed.
pub fn pipeline(data: &[u8]) {
    let t = tables();
    let inputs = frames(data);
    let mut bufs: Vec<Vec<u8>> = inputs
        .iter()
        .map(|(_, bytes)| {
            let mut b = vec![0u8; BUFFER_LEN];
            b[HEADROOM..HEADROOM + bytes.len()].copy_from_slice(bytes);
            b
        })
        .collect();
    let mut batch: Vec<Frame<'_>> = bufs
        .iter_mut()
        .zip(&inputs)
        .map(|(b, (port, bytes))| Frame::new(b, HEADROOM, bytes.len(), *port))
        .collect();
    let mut verdicts = vec![Verdict::ToKernel; batch.len()];
    let mut p = Pipeline::default();
    p.process(Timestamp(1_000_000_000), t, &mut batch, &mut verdicts);
    for (f, v) in batch.iter().zip(&verdicts) {
        if let Verdict::Tx(port) = *v {
            assert!((port as usize) < t.ports.len(), "sent to port {port}");
            check_sent(f.data(), port == t.internet_port);
        }
    }
}

/// A frame we send must parse, with every length field consistent; a frame into
/// the tunnel must carry a well-formed inner frame.
fn check_sent(frame: &[u8], to_internet: bool) {
    let outer = match SlicedPacket::from_ethernet(frame) {
        Ok(p) => p,
        Err(e) if not_ours(&e, frame) => return,
        Err(e) => panic!("sent a malformed frame ({e}): {frame:02x?}"),
    };
    // Into the tunnel: VXLAN (outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8), whose
    // inner frame is checked too. Anything else sent (an ICMP error back to the
    // sender) was checked above.
    let udp = match outer.transport {
        Some(etherparse::TransportSlice::Udp(udp)) if !to_internet => udp,
        _ => return,
    };
    if udp.destination_port() != tables().vxlan_port {
        return;
    }
    let inner = udp.payload().get(8..).expect("VXLAN header");
    if let Err(e) = SlicedPacket::from_ethernet(inner) {
        assert!(
            not_ours(&e, inner),
            "tunnelled a malformed frame ({e}): {inner:02x?}"
        );
    }
}

/// Errors in layers the POP carries without reading them (IGMP, ARP, IPv4 AH,
/// the ICMP timestamp body): the pipeline forwards these protocols as opaque
/// payload, so their content is the endpoints' business. Every layer the
/// pipeline reads or rewrites (Ethernet, IPv4, IPv6 and its extension headers,
/// UDP, TCP, ICMP headers) must be well formed. The pipeline's IPv6 walk stops
/// at an Authentication Header (it cannot see past it) and at a non-first
/// fragment (its data is no header), and an IPv4 AH is its transport, so
/// whatever follows one of them (a UDP, TCP or ICMP header to etherparse,
/// which walks on) is opaque too.
fn not_ours(e: &etherparse::err::packet::SliceError, frame: &[u8]) -> bool {
    use etherparse::err::packet::SliceError;
    use etherparse::err::Layer;
    let behind_opaque = || ipv6_walk_stops_early(frame) || ipv4_protocol(frame) == Some(51);
    match e {
        SliceError::Len(l) => match l.layer {
            Layer::Igmp
            | Layer::Arp
            | Layer::IpAuthHeader
            | Layer::Icmpv4Timestamp
            | Layer::Icmpv4TimestampReply => true,
            // IP protocol 1 inside IPv6 is no ICMP the pipeline knows (that is
            // 58), nor 58 inside IPv4: opaque protocols, carried as such.
            Layer::Icmpv4 => frame.get(12..14) == Some(&[0x86, 0xdd]) || behind_opaque(),
            Layer::Icmpv6 => frame.get(12..14) == Some(&[0x08, 0x00]) || behind_opaque(),
            Layer::UdpHeader | Layer::UdpPayload | Layer::TcpHeader => behind_opaque(),
            Layer::Ipv6ExtHeader
            | Layer::Ipv6HopByHopHeader
            | Layer::Ipv6DestOptionsHeader
            | Layer::Ipv6RouteHeader
            | Layer::Ipv6FragHeader => ipv6_walk_stops_early(frame),
            _ => false,
        },
        SliceError::Ipv4Exts(_) => true,
        SliceError::Ipv6Exts(_) => ipv6_walk_stops_early(frame),
        SliceError::Tcp(_) => behind_opaque(),
        _ => false,
    }
}

/// The protocol of an untagged IPv4 frame.
fn ipv4_protocol(frame: &[u8]) -> Option<u8> {
    (frame.get(12..14)? == [0x08, 0x00]).then_some(*frame.get(14 + 9)?)
}

/// Walks the IPv6 extension headers of an Ethernet frame as the pipeline does
/// (hop-by-hop, routing, destination options, fragment; at most 8, then the
/// next must be the transport) and says whether the walk ends at an
/// Authentication Header or a non-first fragment.
fn ipv6_walk_stops_early(frame: &[u8]) -> bool {
    const ETHERNET: usize = 14;
    const IPV6: usize = 40;
    let Some(ip) = frame.get(ETHERNET..) else {
        return false;
    };
    let (mut next, mut at) = match ip.get(6) {
        Some(&n) if frame[12..14] == [0x86, 0xdd] => (n, IPV6),
        _ => return false,
    };
    for seen in 0..=8 {
        match next {
            // A ninth header is malformed to the pipeline: never forwarded.
            0 | 43 | 44 | 60 if seen == 8 => return false,
            0 | 43 | 60 => match ip.get(at..at + 2) {
                Some(h) => {
                    next = h[0];
                    at += (usize::from(h[1]) + 1) * 8;
                }
                None => return false,
            },
            44 => match ip.get(at..at + 4) {
                Some(h) if u16::from_be_bytes([h[2], h[3]]) >> 3 != 0 => return true,
                Some(h) => {
                    next = h[0];
                    at += 8;
                }
                None => return false,
            },
            51 => return true,
            _ => return false,
        }
    }
    false
}

/// Parses a control-socket request line; errors are fine, panics are not.
pub fn request(data: &[u8]) {
    let _ = eip_control::api::Request::parse(data);
}

/// Parses and builds a POP configuration; errors are fine, panics are not.
pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = eip_control::config::build(text, Path::new("fuzz.toml"));
    }
}

/// Every committed corpus input (and every crash AFL found, once fixed and
/// added under `corpus/`) runs through its target as a plain test: a unit test,
/// because an integration test would make cargo link the AFL binaries.
#[cfg(test)]
mod corpus {
    use std::fs;
    use std::path::Path;

    fn run_dir(name: &str, target: fn(&[u8])) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("corpus")
            .join(name);
        let mut n = 0;
        for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            target(&fs::read(&path).unwrap());
            n += 1;
        }
        assert!(n > 0, "no corpus under {}", dir.display());
    }

    #[test]
    fn pipeline_corpus() {
        run_dir("pipeline", crate::pipeline);
    }

    #[test]
    fn request_corpus() {
        run_dir("request", crate::request);
    }

    #[test]
    fn config_corpus() {
        run_dir("config", crate::config);
    }
}
