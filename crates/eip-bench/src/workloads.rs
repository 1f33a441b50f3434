//! Benchmark workloads: tables plus a pool of frames. Deterministic (fixed seeds).

use anyhow::{Context, Result};
use eip_dataplane::tables::spec::{LimitsSpec, PopSpec, Protocol};
use eip_dataplane::testkit::frames::FrameBuilder;
use eip_dataplane::testkit::pop::{self, PopBuilder};
use eip_dataplane::Tables;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Instant;

/// The case whose figure is the headline `pipeline_mpps_per_core`.
pub const HEADLINE: &str = "64B, 1k EIPs";
pub const IMIX: &str = "IMIX 7:4:1, 1k EIPs";
pub const RETURNS: &str = "returns (decap), 1k EIPs";
pub const MILLION: &str = "64B, 1M EIPs";
pub const SERVICE: &str = "service, 1000 backends";
pub const HEADLINE_LIMITED: &str = "64B to 1k rate-limited EIPs";
pub const RETURNS_LIMITED: &str = "returns from 1k rate-limited EIPs";
pub const HEADLINE_LISTED: &str = "64B to 1k EIPs with 100-rule ACLs";

/// The benchmark POP's one region (EIPs added to a workload go there too).
pub const REGION: &str = "bj";

pub struct Workload {
    pub name: String,
    pub tables: Tables,
    pub frames: Vec<Vec<u8>>,
    pub input_port: u16,
    pub build_ms: f64,
    /// The frames are tunnel returns (the minimal loop decapsulates them).
    pub returns: bool,
}

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

/// The benchmark POP: region `bj` behind two equal paths, no EIP yet.
fn bench_pop() -> PopBuilder {
    PopBuilder::new("bench")
        .region(pop::region(REGION, pop::VNI, pop::REGION_VTEP))
        .paths(REGION, "backbone", 2, 1550)
}

fn build(spec: &PopSpec) -> (Tables, f64) {
    let t0 = Instant::now();
    let tables = Tables::build(spec, 1).expect("benchmark tables are valid");
    (tables, t0.elapsed().as_secs_f64() * 1e3)
}

/// A client address in 203.0.113.0/24 and a source port, drawn from `rng`.
fn client(rng: &mut Rng) -> [u8; 4] {
    Ipv4Addr::from(0xCB00_7100 | (rng.next() as u32 & 0xFF)).octets()
}

fn client_port(rng: &mut Rng) -> u16 {
    1024 + (rng.next() % 60000) as u16
}

/// A frame from the Internet gateway to our Internet port.
fn from_internet() -> FrameBuilder {
    FrameBuilder::ethernet(pop::GATEWAY_MAC, pop::INTERNET_MAC)
}

/// A UDP frame of `frame_len` bytes (without FCS) from a client to `dst`.
fn udp_frame(rng: &mut Rng, dst: Ipv4Addr, frame_len: usize) -> Vec<u8> {
    let client = client(rng);
    let sport = client_port(rng);
    let payload = vec![0x5A; frame_len.saturating_sub(14 + 20 + 8)];
    from_internet()
        .ipv4(client, dst.octets(), 64)
        .udp(sport, 443)
        .build(&payload)
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
    let (tables, build_ms) = build(&bench_pop().one_to_one_eips(1000, REGION).spec());
    let mut rng = Rng(0x9ABC);
    let frames = (0..4096)
        .map(|_| {
            let backend = pop::backend_addr((rng.next() % 1000) as u32);
            let client = [203, 0, 113, (rng.next() & 0xFF) as u8];
            let client_port = client_port(&mut rng);
            let inner = FrameBuilder::ethernet(pop::POP_INNER_MAC, pop::REGION_INNER_MAC)
                .ipv4(backend.octets(), client, 64)
                .udp(443, client_port)
                .build(&[0x5A; 18]);
            FrameBuilder::ethernet(pop::next_hop_mac(0), pop::BACKBONE_MAC)
                .ipv4(pop::REGION_VTEP.octets(), pop::POP_VTEP.octets(), 64)
                .udp(50000 + (rng.next() % 1000) as u16, 4789)
                .vxlan(pop::VNI)
                .build(&inner)
        })
        .collect();
    Workload {
        name: RETURNS.into(),
        tables,
        frames,
        input_port: 1,
        build_ms,
        returns: true,
    }
}

/// 60-byte frames to 1,000,000 EIPs, spread so most lookups miss the CPU caches.
pub fn small_frames_1m_eips() -> Workload {
    small_frames_to(1_000_000, 65_536).0
}

/// 60-byte frames to `eips` 1:1 EIPs ([`pop::eip_addr`]`(i)` for `i < eips`, in
/// [`REGION`]), a pool of `pool` frames with random destinations; with the
/// description the tables were built from (version 1).
pub fn small_frames_to(eips: u32, pool: usize) -> (Workload, PopSpec) {
    let spec = bench_pop().one_to_one_eips(eips, REGION).spec();
    let (tables, build_ms) = build(&spec);
    let mut rng = Rng(0xDEF0);
    let frames = (0..pool)
        .map(|_| {
            let dst = pop::eip_addr((rng.next() % u64::from(eips)) as u32);
            udp_frame(&mut rng, dst, 60)
        })
        .collect();
    let name = if eips == 1_000_000 {
        MILLION.into()
    } else {
        format!("64B, {eips} EIPs")
    };
    let w = Workload {
        name,
        tables,
        frames,
        input_port: 0,
        build_ms,
        returns: false,
    };
    (w, spec)
}

/// One EIP with a TCP service over 1,000 weighted backends (Maglev), many flows.
pub fn service_1000_backends() -> Workload {
    let backends = (0..1000).map(|i| pop::backend(pop::backend_addr(i), Some(8443), 1 + i % 3));
    let spec = bench_pop()
        .eip(pop::service_eip(
            pop::eip_addr(0),
            REGION,
            [pop::service(Protocol::Tcp, 443, backends)],
        ))
        .spec();
    let (tables, build_ms) = build(&spec);
    let mut rng = Rng(0x4242);
    let frames = (0..65_536)
        .map(|_| {
            let client = client(&mut rng);
            let sport = client_port(&mut rng);
            from_internet()
                .ipv4(client, pop::eip_addr(0).octets(), 64)
                .tcp(sport, 443)
                .seq(rng.next() as u32)
                .build(&[0x5A; 6])
        })
        .collect();
    Workload {
        name: SERVICE.into(),
        tables,
        frames,
        input_port: 0,
        build_ms,
        returns: false,
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
        returns: false,
    })
}

/// Caps on every EIP, both directions, high enough that nothing is dropped:
/// what policing costs a packet that passes.
fn limit_all(spec: &mut PopSpec) {
    let caps = LimitsSpec {
        in_bps: Some(100_000_000_000),
        in_pps: Some(100_000_000),
        out_bps: Some(100_000_000_000),
        out_pps: Some(100_000_000),
    };
    for mut e in spec.eips.iter_mut() {
        e.set_limits(Some(caps));
    }
}

/// [`small_frames_1k_eips`] with [`limit_all`].
pub fn small_frames_1k_eips_limited() -> Result<Workload> {
    let mut w = small_frames_1k_eips()?;
    let (mut spec, _) = eip_control::config::load(&fixture("pop-1k.toml"))?;
    limit_all(&mut spec);
    (w.tables, w.build_ms) = build(&spec);
    w.name = HEADLINE_LIMITED.into();
    Ok(w)
}

/// A 100-rule access list on every EIP that lets the benchmark's clients
/// (203.0.113.0/24) through: 98 denies of other /24s, a deny on the clients'
/// own /24 for a port they do not use (their lookup walks 24 levels and
/// tests it), a deny of a /16 beside them, then the default (allow).
fn list_all(spec: &mut PopSpec) {
    use eip_dataplane::tables::acl::{AclAction, AclProtocol, AclRule, AclSpec, PortRange, Prefix};
    let deny = |source: &str| AclRule {
        action: AclAction::Deny,
        source: Some(Prefix::parse(source).expect("a prefix")),
        protocol: None,
        ports: None,
    };
    let mut rules: Vec<AclRule> = (0..98).map(|i| deny(&format!("198.51.{i}.0/24"))).collect();
    rules.push(AclRule {
        protocol: Some(AclProtocol::Tcp),
        ports: Some(PortRange { lo: 22, hi: 22 }),
        ..deny("203.0.113.0/24")
    });
    rules.push(deny("203.1.0.0/16"));
    let acl = AclSpec {
        default: AclAction::Allow,
        rules,
    };
    for mut e in spec.eips.iter_mut() {
        e.set_acl(Some(acl.clone()));
    }
}

/// [`small_frames_1k_eips`] with [`list_all`].
pub fn small_frames_1k_eips_listed() -> Result<Workload> {
    let mut w = small_frames_1k_eips()?;
    let (mut spec, _) = eip_control::config::load(&fixture("pop-1k.toml"))?;
    list_all(&mut spec);
    (w.tables, w.build_ms) = build(&spec);
    w.name = HEADLINE_LISTED.into();
    Ok(w)
}

/// [`returns_1k_eips`] with [`limit_all`].
pub fn returns_1k_eips_limited() -> Workload {
    let mut w = returns_1k_eips();
    let mut spec = bench_pop().one_to_one_eips(1000, REGION).spec();
    limit_all(&mut spec);
    (w.tables, w.build_ms) = build(&spec);
    w.name = RETURNS_LIMITED.into();
    w
}

#[cfg(test)]
mod tests {
    use super::*;
    use eip_dataplane::testkit::run_one;
    use eip_dataplane::Verdict;

    /// The listed workload forwards every frame: its list costs a lookup, it
    /// does not drop.
    #[test]
    fn the_listed_workload_is_forwarded() {
        let w = small_frames_1k_eips_listed().unwrap();
        assert!(w.tables.eips.acls().count() >= 1000);
        for frame in w.frames.iter().take(256) {
            let (verdict, _, c) = run_one(&w.tables, frame, w.input_port);
            assert!(matches!(verdict, Verdict::Tx(_)), "{verdict:?}");
            assert_eq!(
                c.eip_acl
                    .iter()
                    .map(|h| h.hits.iter().sum::<u64>())
                    .sum::<u64>(),
                1
            );
        }
    }

    /// Every synthetic frame is forwarded: the benchmark measures the work it names.
    #[test]
    fn synthetic_workloads_are_forwarded() {
        for w in [returns_1k_eips(), service_1000_backends()] {
            for frame in w.frames.iter().take(256) {
                let (verdict, _, _) = run_one(&w.tables, frame, w.input_port);
                assert!(matches!(verdict, Verdict::Tx(_)), "{}: {verdict:?}", w.name);
            }
        }
    }
}
