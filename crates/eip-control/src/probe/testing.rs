//! Fixtures shared by the probe tests: a POP with two paths to one region,
//! the region's answer to a probe (built by etherparse, not by our wire
//! layer), and the production pipeline to pass frames through.

use super::{Prober, ProberConfig};
use crate::health::HealthConfig;
use eip_dataplane::tables::spec::*;
use eip_dataplane::tables::{Tables, ENCAP_LEN};
use eip_dataplane::testkit::pop::{
    backbone_port, internet_port, one_to_one, path, region, PopBuilder,
};
use eip_dataplane::{Frame, Pipeline, PortId, Timestamp, Verdict};
use etherparse::{Icmpv4Type, PacketBuilder, PacketHeaders, TransportHeader};
use std::net::Ipv4Addr;
use std::time::Duration;

pub(super) const POP_VTEP: [u8; 4] = [198, 51, 100, 1];
pub(super) const REGION_VTEP: [u8; 4] = [198, 51, 100, 2];
pub(super) const PROBE_SOURCE: [u8; 4] = [10, 255, 0, 1];
pub(super) const PROBE_TARGET: [u8; 4] = [10, 255, 0, 2];
pub(super) const INET_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0x10];
pub(super) const BB_MAC: [[u8; 6]; 2] = [[2, 0, 0, 0, 1, 0x20], [2, 0, 0, 0, 1, 0x21]];
pub(super) const NEXT_HOP: [[u8; 6]; 2] = [[2, 0, 0, 0, 0x10, 0x20], [2, 0, 0, 0, 0x10, 0x21]];
pub(super) const POP_INNER_MAC: [u8; 6] = [2, 0, 0, 0, 1, 1];
pub(super) const REGION_INNER_MAC: [u8; 6] = [2, 0, 0, 0, 0x10, 1];
pub(super) const VNI: u32 = 100;
pub(super) const NONCE: u64 = 0x5eed_0fca_fe00_0001;
pub(super) const CLIENT: [u8; 4] = [203, 0, 113, 2];
pub(super) const EIP: [u8; 4] = [192, 0, 2, 10];

pub(super) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Two paths to one region, over two backbone ports (the testbed's
/// `--paths 2`), with probing configured: the shared test POP builder.
pub(super) fn spec() -> PopSpec {
    PopBuilder::new("test")
        .probe_source(Ipv4Addr::from(PROBE_SOURCE))
        .ports([
            internet_port(INET_MAC, [2, 0, 0, 0, 2, 0x10]),
            backbone_port("backbone0", BB_MAC[0]),
            backbone_port("backbone1", BB_MAC[1]),
        ])
        .region(RegionSpec {
            probe_target: Some(Ipv4Addr::from(PROBE_TARGET)),
            ..region("beijing", VNI, Ipv4Addr::from(REGION_VTEP))
        })
        .path(path("bb0", "beijing", "backbone0", NEXT_HOP[0], 1550))
        .path(path("bb1", "beijing", "backbone1", NEXT_HOP[1], 1550))
        .eip(one_to_one(
            Ipv4Addr::from(EIP),
            "beijing",
            Ipv4Addr::new(10, 1, 0, 10),
        ))
        .spec()
}

pub(super) fn tables(spec: &PopSpec, version: u64) -> Tables {
    Tables::build(spec, version).unwrap()
}

/// Interval 10 ms, timeout 50 ms; down after 3 losses in a row or 4 in the
/// last 10, up after 3 replies in a row.
pub(super) fn config() -> ProberConfig {
    ProberConfig {
        health: HealthConfig {
            interval: ms(10),
            timeout: ms(50),
            rtt_window: 64,
            loss_window: 10,
            down_after: 3,
            down_loss: 4,
            up_after: 3,
        },
        nonce: NONCE,
        ..ProberConfig::default()
    }
}

/// Everything one `poll` sent.
pub(super) fn poll_all(p: &mut Prober, now: Duration) -> Vec<(PortId, Vec<u8>)> {
    let mut out = Vec::new();
    let sent = p
        .poll(now, |port, frame| {
            out.push((port, frame.to_vec()));
            Ok::<(), ()>(())
        })
        .unwrap();
    assert_eq!(sent, out.len());
    out
}

/// The region's answer to a probe, as its VXLAN device sends it, built by
/// etherparse (not by our wire layer): echo reply, same identifier,
/// sequence number and data, in a VXLAN packet to our VTEP.
pub(super) fn region_reply(probe: &[u8], path: usize) -> Vec<u8> {
    let h = PacketHeaders::from_ethernet_slice(&probe[ENCAP_LEN - 14..]).unwrap();
    let Some(TransportHeader::Icmpv4(icmp)) = &h.transport else {
        panic!("probe is not ICMP")
    };
    let Icmpv4Type::EchoRequest(echo) = icmp.icmp_type else {
        panic!("probe is not an echo request")
    };
    let data = h.payload.slice().to_vec();
    let inner = PacketBuilder::ethernet2(REGION_INNER_MAC, POP_INNER_MAC)
        .ipv4(PROBE_TARGET, PROBE_SOURCE, 64)
        .icmpv4_echo_reply(echo.id, echo.seq);
    let mut vxlan = vec![0x08, 0, 0, 0, 0, 0, 0, 0];
    vxlan[4..7].copy_from_slice(&VNI.to_be_bytes()[1..]);
    inner.write(&mut vxlan, &data).unwrap();
    let outer = PacketBuilder::ethernet2(NEXT_HOP[path], BB_MAC[path])
        .ipv4(REGION_VTEP, POP_VTEP, 64)
        .udp(51_000, 4789);
    let mut out = Vec::new();
    outer.write(&mut out, &vxlan).unwrap();
    out
}

/// Runs one frame through the production pipeline.
pub(super) fn pipeline(t: &Tables, input: &[u8], port: PortId) -> (Verdict, Vec<u8>) {
    let mut buf = vec![0u8; 2048];
    buf[256..256 + input.len()].copy_from_slice(input);
    let mut frames = [Frame::new(&mut buf, 256, input.len(), port)];
    let mut verdicts = [Verdict::ToKernel];
    Pipeline::default().process(Timestamp(1), t, &mut frames, &mut verdicts);
    (verdicts[0], frames[0].data().to_vec())
}
