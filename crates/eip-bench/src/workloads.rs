//! Benchmark workloads: tables plus a pool of frames. Deterministic (fixed seeds).

use anyhow::{Context, Result};
use eip_dataplane::tables::spec::*;
use eip_dataplane::Tables;
use etherparse::PacketBuilder;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Instant;

/// The case whose figure is the headline `pipeline_mpps_per_core`.
pub const HEADLINE: &str = "64B, 1k EIPs";
pub const IMIX: &str = "IMIX 7:4:1, 1k EIPs";
pub const RETURNS: &str = "returns (decap), 1k EIPs";
pub const MILLION: &str = "64B, 1M EIPs";
pub const SERVICE: &str = "service, 1000 backends";

pub struct Workload {
    pub name: String,
    pub tables: Tables,
    pub frames: Vec<Vec<u8>>,
    pub input_port: u16,
    pub build_ms: f64,
}

const GW: [u8; 6] = [2, 0, 0, 0, 0, 0xfe];
const INET: [u8; 6] = [2, 0, 0, 0, 0, 1];
const POP_VTEP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const REGION_VTEP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);

/// Small deterministic PRNG (xorshift64*), so pools are the same on every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn base_spec(paths: usize) -> PopSpec {
    PopSpec {
        pop: PopSection {
            name: "bench".into(),
            vtep: POP_VTEP,
            extra_vteps: vec![],
            vxlan_port: 4789,
            inner_mac: MacAddr([2, 0, 0, 0, 1, 1]),
            outer_ttl: 64,
            probe_source: None,
        },
        ports: vec![
            PortSpec {
                name: "internet".into(),
                role: PortRole::Internet,
                interface: None,
                mac: MacAddr(INET),
                gateway_mac: Some(MacAddr(GW)),
                gateway: None,
            },
            PortSpec {
                name: "backbone".into(),
                role: PortRole::Backbone,
                interface: None,
                mac: MacAddr([2, 0, 0, 0, 0, 2]),
                gateway_mac: None,
                gateway: None,
            },
        ],
        regions: vec![RegionSpec {
            name: "bj".into(),
            vni: 100,
            vtep: REGION_VTEP,
            inner_mac: MacAddr([2, 0, 0, 0, 0x10, 1]),
            probe_target: None,
        }],
        paths: (0..paths)
            .map(|i| PathSpec {
                name: format!("path{i}"),
                region: "bj".into(),
                port: "backbone".into(),
                next_hop_mac: Some(MacAddr([2, 0, 0, 0, 2, i as u8])),
                next_hop: None,
                source: None,
                destination: None,
                mtu: 1550,
                weight: 1,
                state: PathState::Up,
            })
            .collect(),
        eips: vec![],
    }
}

/// EIP i of a benchmark: 198.18.0.0/15 (RFC 2544 benchmarking) for up to 131072,
/// beyond that 100.64.0.0/10; backends in 10.0.0.0/8.
fn eip_addr(i: u32) -> Ipv4Addr {
    if i < 131_072 {
        Ipv4Addr::from(0xC612_0000 + i)
    } else {
        Ipv4Addr::from(0x6440_0000 + i)
    }
}

fn one_to_one(eips: u32) -> PopSpec {
    let mut spec = base_spec(2);
    spec.eips = (0..eips)
        .map(|i| EipSpec {
            address: eip_addr(i).into(),
            region: "bj".into(),
            backend: Some(Ipv4Addr::from(0x0A00_0000 + i).into()),
            services: vec![],
        })
        .collect();
    spec
}

fn build(spec: &PopSpec) -> (Tables, f64) {
    let t0 = Instant::now();
    let tables = Tables::build(spec, 1).expect("benchmark tables are valid");
    (tables, t0.elapsed().as_secs_f64() * 1e3)
}

/// A UDP frame of `frame_len` bytes (without FCS) from a client to `dst`.
fn udp_frame(rng: &mut Rng, dst: Ipv4Addr, frame_len: usize) -> Vec<u8> {
    let client = Ipv4Addr::from(0xCB00_7100 | (rng.next() as u32 & 0xFF)).octets();
    let sport = 1024 + (rng.next() % 60000) as u16;
    let payload = vec![0x5A; frame_len.saturating_sub(14 + 20 + 8)];
    let mut out = Vec::with_capacity(frame_len);
    PacketBuilder::ethernet2(GW, INET)
        .ipv4(client, dst.octets(), 64)
        .udp(sport, 443)
        .write(&mut out, &payload)
        .unwrap();
    out
}

/// The benchmark fixtures made by `pcap-fixtures/make_fixtures.py`.
fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../pcap-fixtures/bench")
        .join(name)
}

/// 64-byte frames (with FCS) to 1,000 EIPs: the `eip-1k-64b.pcap` fixture.
pub fn small_frames_1k_eips() -> Result<Workload> {
    let mut w = from_pcap(&fixture("pop-1k.toml"), &fixture("eip-1k-64b.pcap"))?;
    w.name = HEADLINE.into();
    Ok(w)
}

/// Simple IMIX, 7:4:1 of 64, 570 and 1518-byte frames (with FCS), to 1,000 EIPs:
/// the `imix.pcap` fixture.
pub fn imix_1k_eips() -> Result<Workload> {
    let mut w = from_pcap(&fixture("pop-1k.toml"), &fixture("imix.pcap"))?;
    w.name = IMIX.into();
    Ok(w)
}

/// Returns through the tunnel (decapsulation + SNAT), 64-byte inner frames.
pub fn returns_1k_eips() -> Workload {
    let (tables, build_ms) = build(&one_to_one(1000));
    let mut rng = Rng(0x9ABC);
    let frames = (0..4096)
        .map(|_| {
            let backend = Ipv4Addr::from(0x0A00_0000 + (rng.next() % 1000) as u32);
            let mut inner = Vec::new();
            PacketBuilder::ethernet2([2, 0, 0, 0, 1, 1], [2, 0, 0, 0, 0x10, 1])
                .ipv4(
                    backend.octets(),
                    [203, 0, 113, (rng.next() & 0xFF) as u8],
                    64,
                )
                .udp(443, 1024 + (rng.next() % 60000) as u16)
                .write(&mut inner, &[0x5A; 18])
                .unwrap();
            let mut vx = vec![0x08, 0, 0, 0, 0, 0, 100, 0];
            vx.extend_from_slice(&inner);
            let mut out = Vec::new();
            PacketBuilder::ethernet2([2, 0, 0, 0, 2, 0], [2, 0, 0, 0, 0, 2])
                .ipv4(REGION_VTEP.octets(), POP_VTEP.octets(), 64)
                .udp(50000 + (rng.next() % 1000) as u16, 4789)
                .write(&mut out, &vx)
                .unwrap();
            out
        })
        .collect();
    Workload {
        name: RETURNS.into(),
        tables,
        frames,
        input_port: 1,
        build_ms,
    }
}

/// 60-byte frames to 1,000,000 EIPs, spread so most lookups miss the CPU caches.
pub fn small_frames_1m_eips() -> Workload {
    let (tables, build_ms) = build(&one_to_one(1_000_000));
    let mut rng = Rng(0xDEF0);
    let frames = (0..65_536)
        .map(|_| {
            let dst = eip_addr((rng.next() % 1_000_000) as u32);
            udp_frame(&mut rng, dst, 60)
        })
        .collect();
    Workload {
        name: MILLION.into(),
        tables,
        frames,
        input_port: 0,
        build_ms,
    }
}

/// One EIP with a TCP service over 1,000 weighted backends (Maglev), many flows.
pub fn service_1000_backends() -> Workload {
    let mut spec = base_spec(2);
    spec.eips = vec![EipSpec {
        address: eip_addr(0).into(),
        region: "bj".into(),
        backend: None,
        services: vec![ServiceSpec {
            protocol: Protocol::Tcp,
            port: 443,
            backends: (0..1000)
                .map(|i| BackendSpec {
                    address: IpAddr::V4(Ipv4Addr::from(0x0A00_0000 + i)),
                    port: Some(8443),
                    weight: 1 + i % 3,
                })
                .collect(),
        }],
    }];
    let (tables, build_ms) = build(&spec);
    let mut rng = Rng(0x4242);
    let frames = (0..65_536)
        .map(|_| {
            let client = Ipv4Addr::from(0xCB00_7100 | (rng.next() as u32 & 0xFF)).octets();
            let mut out = Vec::new();
            PacketBuilder::ethernet2(GW, INET)
                .ipv4(client, eip_addr(0).octets(), 64)
                .tcp(
                    1024 + (rng.next() % 60000) as u16,
                    443,
                    rng.next() as u32,
                    1000,
                )
                .write(&mut out, &[0x5A; 6])
                .unwrap();
            out
        })
        .collect();
    Workload {
        name: SERVICE.into(),
        tables,
        frames,
        input_port: 0,
        build_ms,
    }
}

/// Frames of a pcap against a configuration.
pub fn from_pcap(config: &Path, pcap: &Path) -> Result<Workload> {
    let t0 = Instant::now();
    let (_, tables) = eip_control::config::load(config)?;
    let build_ms = t0.elapsed().as_secs_f64() * 1e3;
    let file = std::fs::File::open(pcap).with_context(|| format!("opening {}", pcap.display()))?;
    let records = eip_control::pcap::CaptureReader::new(file)?.read_all()?;
    let frames: Vec<Vec<u8>> = records
        .into_iter()
        .map(|r| r.data)
        .filter(|d| d.len() <= 2048 - 256)
        .collect();
    anyhow::ensure!(!frames.is_empty(), "{} holds no frames", pcap.display());
    let name = format!("pcap {}", pcap.display());
    Ok(Workload {
        name,
        input_port: tables.internet_port,
        tables,
        frames,
        build_ms,
    })
}
