//! The packet pipeline: classify, NAT, choose a path, encapsulate or decapsulate.
//!
//! [`Pipeline::process`] takes a batch of frames and a table snapshot and gives one
//! [`Verdict`] per frame. It does not allocate, lock, or make system calls; it reads
//! the clock only through the `now` its caller passes. Per-worker state (counters, the
//! fragment table, the ICMP rate limit) lives in the `Pipeline`, so each worker owns
//! one.
//!
//! Directions:
//! - *ingress*: client -> EIP. DNAT to the backend (and port, for services), VXLAN
//!   toward the EIP's region over a path chosen per flow.
//! - *return*: region -> client through the tunnel. Checked against the region's VTEP,
//!   VNI and backends, decapsulated, SNAT back to the EIP (and service port).
//!
//! One file per job, as quinn-proto lays out its connection: this file holds the
//! per-worker state, the batch loop and classification; `ingress.rs` and
//! `returns.rs` the two directions (`fast.rs` the common case of ingress,
//! specialised); `encap.rs`, `nat.rs`, `icmp.rs` and `frag.rs`
//! what they share; `parse.rs` the header walk classification starts with.

mod acl;
mod encap;
mod fast;
mod frag;
mod guard;
mod icmp;
mod ingress;
mod nat;
mod parse;
mod police;
mod ratelimit;
mod returns;
#[cfg(test)]
mod tests;

pub use encap::{write_header as write_encap_header, EncapRepr};
pub use frag::FRAGMENT_TIMEOUT_NS;
pub use police::BURST_NS as RATE_LIMIT_BURST_NS;

use crate::counters::{Counters, DropReason, Event};
use crate::flow;
use crate::frame::{Frame, Verdict};
use crate::tables::{EipEntry, EipProbe, LastTunnel, Tables};
use crate::wire::ethernet::{self, EthernetFrame};
use crate::wire::icmpv4;
use crate::wire::icmpv6;
use crate::wire::ipv4::{self, Ipv4Packet};
use crate::wire::udp::{self, UdpPacket};
use crate::wire::{ethertype, ip_proto};
use frag::FragmentTable;
use parse::IpInfo;
use ratelimit::TokenBucket;
use std::net::IpAddr;

/// Monotonic time in nanoseconds, supplied by whoever drives the pipeline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub u64);

/// Tables with more EIPs than this no longer fit the CPU caches: prefetch a
/// batch's lookups ([`PipelineConfig::prefetch_above_eips`]).
const PREFETCH_ABOVE_EIPS: usize = 16_384;

/// Frames between the prefetch of a frame's record and its processing (and
/// between the prefetch of its index entry and that of its record).
const AHEAD: usize = 16;

/// The IPv4 destination of an untagged IPv4 frame (for prefetching: the
/// pipeline proper validates the frame).
#[inline(always)]
fn ipv4_dst(f: &Frame<'_>) -> Option<[u8; 4]> {
    const END: usize = ethernet::HEADER_LEN + ipv4::MIN_HEADER_LEN;
    // One length check for both views: neither can index out of range.
    let d = f.data().get(..END)?;
    (EthernetFrame::new_unchecked(d).ethertype() == ethertype::IPV4)
        .then(|| Ipv4Packet::new_unchecked(&d[ethernet::HEADER_LEN..]).dst_addr())
}

/// The first prefetch of a frame to an IPv4 EIP: begins the lookup of its
/// destination (the index entry it starts at is asked for).
#[inline(always)]
fn start_lookup<'t>(t: &'t Tables, f: &Frame<'_>) -> Option<EipProbe<'t>> {
    t.start_eip_v4(ipv4_dst(f)?)
}

/// Per-worker tunables.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Entries in the fragment table.
    pub fragment_slots: usize,
    /// ICMP errors this worker may originate per second, and the burst.
    pub icmp_errors_per_second: u64,
    pub icmp_error_burst: u64,
    /// Workers that share each per-EIP rate limit (each polices `cap / workers`:
    /// `police.rs`).
    pub workers: u32,
    /// With more EIPs than this, batches prefetch their lookups
    /// ([`Pipeline::process`]); below, their lines are cached anyway.
    pub prefetch_above_eips: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            fragment_slots: 4096,
            icmp_errors_per_second: 1000,
            icmp_error_burst: 100,
            workers: 1,
            prefetch_above_eips: PREFETCH_ABOVE_EIPS,
        }
    }
}

/// One worker's pipeline state.
#[derive(Debug)]
pub struct Pipeline {
    counters: Counters,
    /// Generation of the tables the counters were last sized for.
    table_version: Option<u64>,
    /// Per EIP record chunk, the generation the counters were last claimed
    /// for ([`crate::tables::EipSlab::for_each_changed`]).
    seen_chunks: Vec<u64>,
    fragments: FragmentTable,
    icmp_budget: TokenBucket,
    policer: police::Policer,
    prefetch_above_eips: usize,
    /// The tunnel the batch's last return came through (cleared per batch:
    /// the tables may change between batches).
    last_tunnel: LastTunnel,
}

/// An address as bytes plus its length (4 or 16), to write into packets.
#[derive(Debug, Clone, Copy)]
struct Addr {
    bytes: [u8; 16],
    len: usize,
}

impl Addr {
    #[inline(always)]
    fn of(addr: IpAddr) -> Addr {
        let mut bytes = [0u8; 16];
        match addr {
            IpAddr::V4(a) => {
                bytes[..4].copy_from_slice(&a.octets());
                Addr { bytes, len: 4 }
            }
            IpAddr::V6(a) => Addr {
                bytes: a.octets(),
                len: 16,
            },
        }
    }
    #[inline(always)]
    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Reads an address field as a key (IPv4-mapped for IPv4).
#[inline(always)]
fn key_at(data: &[u8], at: usize, v6: bool) -> u128 {
    if v6 {
        u128::from_be_bytes(data[at..at + 16].try_into().unwrap())
    } else {
        crate::tables::addr_key_v4(data[at..at + 4].try_into().unwrap())
    }
}

/// Flow hash of the packet at `ip` with the given ports.
#[inline(always)]
fn hash_at(data: &[u8], ip: &IpInfo, sport: u16, dport: u16) -> u64 {
    if ip.v6 {
        let s: &[u8; 16] = data[ip.src()..ip.src() + 16].try_into().unwrap();
        let d: &[u8; 16] = data[ip.dst()..ip.dst() + 16].try_into().unwrap();
        flow::hash_v6(s, d, sport, dport, ip.protocol)
    } else {
        let s: [u8; 4] = data[ip.src()..ip.src() + 4].try_into().unwrap();
        let d: [u8; 4] = data[ip.dst()..ip.dst() + 4].try_into().unwrap();
        flow::hash_v4(s, d, sport, dport, ip.protocol)
    }
}

impl Default for Pipeline {
    fn default() -> Self {
        Self::new(PipelineConfig::default())
    }
}

impl Pipeline {
    /// A pipeline with its own counters and fragment table.
    pub fn new(config: PipelineConfig) -> Self {
        Pipeline {
            counters: Counters::default(),
            table_version: None,
            seen_chunks: Vec::new(),
            fragments: FragmentTable::new(config.fragment_slots),
            icmp_budget: TokenBucket::new(config.icmp_errors_per_second, config.icmp_error_burst),
            policer: police::Policer::new(config.workers),
            prefetch_above_eips: config.prefetch_above_eips,
            last_tunnel: LastTunnel::default(),
        }
    }

    /// This worker's counters (indexes follow the last table snapshot processed with).
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Adopts `tables` ahead of a first batch: sizes the counters (at 1M EIPs,
    /// 36 MB to allocate and zero). [`Self::process`] does it on the first
    /// batch of every new snapshot anyway; a benchmark calls this before it
    /// counts, so that what it counts is the steady state.
    pub fn prepare(&mut self, tables: &Tables) {
        self.adopt(tables);
    }

    /// Sizes per-EIP/per-path counters for a new snapshot. Per-EIP counters are
    /// indexed by stable EIP slots: they only grow (to the tables' slot capacity),
    /// nothing is reset. Per-path counters follow path indexes, which only an
    /// operator change (a new `version`) may shift: they restart then. Runs once
    /// per table change, between batches (it may allocate when the tables grew:
    /// per-EIP traffic in chunks of 4,096 slots that never move, so growth
    /// copies nothing).
    #[inline(always)]
    fn adopt(&mut self, tables: &Tables) {
        if self.table_version != Some(tables.generation) {
            let slots = tables.slot_capacity();
            self.counters.eips.grow(slots);
            // Slots that changed hands since the last snapshot restart their
            // counters now, so that the fast paths count without an epoch test.
            let counters = &mut self.counters;
            tables
                .eips
                .for_each_changed(&mut self.seen_chunks, |slot, epoch| {
                    counters.claim(slot, epoch)
                });
            self.policer.adopt(tables);
            if self.policer.active && self.counters.eip_policed.len() < slots {
                self.counters.eip_policed.resize(slots, Default::default());
            }
            for (slot, acl) in tables.eips.acls() {
                self.counters.prepare_acl(slot, acl.id, acl.rules() + 1);
            }
            if self.counters.table_version != tables.version || self.table_version.is_none() {
                self.counters.path.clear();
            }
            self.counters
                .path
                .resize(tables.paths.len(), Default::default());
            self.counters.table_version = tables.version;
            self.table_version = Some(tables.generation);
        }
    }

    /// Runs a batch: one verdict per frame, written to `verdicts[i]` for `frames[i]`.
    /// Frames with a `Tx` verdict have been rewritten in place (their head and length
    /// may have moved); other frames are to be recycled or passed on unchanged.
    ///
    /// # Panics
    /// If `verdicts` is shorter than `frames` (a driver bug).
    // Never inlined: once per batch, and profilers (`scripts/callgrind.sh`) count
    // the cost of this symbol.
    #[inline(never)]
    pub fn process(
        &mut self,
        now: Timestamp,
        tables: &Tables,
        frames: &mut [Frame<'_>],
        verdicts: &mut [Verdict],
    ) {
        assert!(verdicts.len() >= frames.len(), "one verdict slot per frame");
        self.adopt(tables);
        self.last_tunnel.clear();
        // The rate limits' clock: once per batch.
        self.policer.now = now.0;
        // Every frame gets a verdict: count them once per batch.
        self.counters.events[Event::Rx as usize] += frames.len() as u64;
        if tables.eips.len() > self.prefetch_above_eips {
            return self.process_prefetching(now, tables, frames, verdicts);
        }
        for (frame, verdict) in frames.iter_mut().zip(verdicts.iter_mut()) {
            *verdict = self.process_one(now, tables, frame, None);
        }
    }

    /// [`Self::process`] for tables too large for the CPU caches, where every
    /// lookup misses. A frame's index entry is prefetched [`AHEAD`] x 2 frames
    /// before it is processed and its record and counters [`AHEAD`] frames
    /// before: the misses of the frames ahead are in flight while this one is
    /// worked on, and a prefetch retires at once, so none waits for another.
    /// The slot found for the second prefetch is handed to the fast path, which
    /// would look up the same destination in the same tables again.
    fn process_prefetching(
        &mut self,
        now: Timestamp,
        t: &Tables,
        frames: &mut [Frame<'_>],
        verdicts: &mut [Verdict],
    ) {
        let n = frames.len();
        let verdicts = &mut verdicts[..n];
        // In blocks of AHEAD frames: while block b is processed, the lookups of
        // block b + 1 (begun during block b - 1) are finished into
        // `found[(b + 1) % 2]` and those of block b + 2 begun into
        // `probes[b % 2]`. Fixed-size blocks: no modulo per frame, no bounds
        // check on the rings.
        let mut probes = [[None; AHEAD]; 2];
        let mut found = [[None; AHEAD]; 2];
        for (k, f) in frames.iter().take(2 * AHEAD).enumerate() {
            probes[k / AHEAD][k % AHEAD] = start_lookup(t, f);
        }
        for j in 0..AHEAD {
            found[0][j] = self.prefetch_slot(t, probes[0][j]);
        }
        let mut block = 0;
        while block * AHEAD < n {
            let (this, next) = (block & 1, (block + 1) & 1);
            let first = block * AHEAD;
            for j in 0..AHEAD.min(n - first) {
                let i = first + j;
                found[next][j] = self.prefetch_slot(t, probes[next][j]);
                probes[this][j] = frames.get(i + 2 * AHEAD).and_then(|f| start_lookup(t, f));
                verdicts[i] = self.process_one(now, t, &mut frames[i], found[this][j]);
            }
            block += 1;
        }
    }

    /// The second prefetch of a frame to an IPv4 EIP: its index lookup
    /// finished (the line [`start_lookup`] asked for), then the slot's traffic
    /// counter, and its record unless the entry holds all ingress reads of it
    /// (a plain 1:1 EIP), asked for. Returns the entry.
    #[inline(always)]
    fn prefetch_slot(&self, t: &Tables, probe: Option<EipProbe<'_>>) -> Option<EipEntry> {
        let entry = probe?.finish()?;
        let id = entry.slot();
        if entry.one_to_one_v4().is_none() || entry.filtered() {
            t.eips.prefetch(id);
        }
        self.counters.eips.prefetch_inbound(id as usize);
        Some(entry)
    }

    /// `slot`: the index entry of the frame's IPv4 destination, when the
    /// caller looked it up already (`None` when it did not, or found none).
    #[inline(always)]
    fn process_one(
        &mut self,
        now: Timestamp,
        t: &Tables,
        frame: &mut Frame<'_>,
        slot: Option<EipEntry>,
    ) -> Verdict {
        // Ingress, or a return (UDP to the VXLAN port) from inside it.
        let fast = self.fast_ingress(t, frame, slot);
        // What went through was counted where it went (nothing more to count).
        if let Some(v @ Verdict::Tx(_)) = fast {
            return v;
        }
        self.not_forwarded_fast(now, t, frame, fast)
    }

    /// The rest of [`Self::process_one`] for a frame the fast paths did not
    /// forward: the general path when they left it (`None`), and the count of
    /// the verdict. Not inlined: the batch loop then stores one packed verdict,
    /// not one assembled from the fields of every arm.
    #[inline(never)]
    fn not_forwarded_fast(
        &mut self,
        now: Timestamp,
        t: &Tables,
        frame: &mut Frame<'_>,
        fast: Option<Verdict>,
    ) -> Verdict {
        let verdict = match fast {
            Some(v) => v,
            None => match self.classify(now, t, frame) {
                Ok(v) => v,
                Err(reason) => Verdict::Drop(reason),
            },
        };
        match verdict {
            Verdict::Drop(reason) => self.counters.drop(reason),
            Verdict::ToKernel => self.counters.event(Event::ToKernel),
            Verdict::ToControl => self.counters.event(Event::ToControl),
            Verdict::Tx(_) => {}
        }
        verdict
    }

    /// The general path: every frame the fast paths (`fast.rs`) leave. Not inlined,
    /// so that the batch loop around the fast paths stays small.
    #[inline(never)]
    fn classify(
        &mut self,
        now: Timestamp,
        t: &Tables,
        frame: &mut Frame<'_>,
    ) -> Result<Verdict, DropReason> {
        let data = frame.data();
        if let Some(ip) = parse::untagged_ipv4(data) {
            return self.classify_ipv4(now, t, frame, ip);
        }
        let (et, l3) = parse::l2(data)?;
        match et {
            ethertype::IPV4 => {
                let ip = parse::ipv4(data, l3)?;
                self.classify_ipv4(now, t, frame, ip)
            }
            ethertype::IPV6 => {
                let ip = parse::ipv6(data, l3)?;
                let dst: &[u8; 16] = data[ip.dst()..ip.dst() + 16].try_into().unwrap();
                match t.eip_v6(dst) {
                    Some(eip) => self.ingress(now, t, frame, ip, eip),
                    None => Ok(Verdict::ToKernel),
                }
            }
            _ => Ok(Verdict::ToKernel),
        }
    }

    /// An IPv4 packet: to an EIP, a tunnel return to our VTEP, or not ours.
    #[inline(always)]
    fn classify_ipv4(
        &mut self,
        now: Timestamp,
        t: &Tables,
        frame: &mut Frame<'_>,
        ip: IpInfo,
    ) -> Result<Verdict, DropReason> {
        let data = frame.data();
        let dst: [u8; 4] = data[ip.dst()..ip.dst() + 4].try_into().unwrap();
        // VXLAN to our VTEP first: a return never costs an EIP lookup.
        if ip.protocol == ip_proto::UDP && ip.has_l4() && ip.end >= ip.l4 + udp::HEADER_LEN {
            // The UDP header is whole (checked just above).
            let outer_udp = UdpPacket::new_unchecked(&data[ip.l4..ip.l4 + udp::HEADER_LEN]);
            if outer_udp.dst_port() == t.vxlan_port && t.is_local_vtep(dst) {
                return self.tunnel_return(now, t, frame, ip);
            }
        }
        match t.eip_v4(dst) {
            Some(eip) => self.ingress(now, t, frame, ip, eip),
            None => Ok(Verdict::ToKernel),
        }
    }

    /// Replaces the frame with an ICMP error to its sender (from the address it was
    /// sent to), rate limited. Returns the verdict; `reason` is what the original
    /// packet is counted as when no error may be sent.
    fn originate_icmp(
        &mut self,
        now: Timestamp,
        frame: &mut Frame<'_>,
        ip: &IpInfo,
        kind: icmp::ErrorKind,
        reason: DropReason,
    ) -> Verdict {
        if !self.icmp_budget.take(now) {
            return Verdict::Drop(reason);
        }
        if !icmp::originate(frame, ip, kind) {
            return Verdict::Drop(reason);
        }
        self.counters.event(match kind {
            icmp::ErrorKind::TimeExceeded => Event::IcmpTimeExceededSent,
            icmp::ErrorKind::TooBig { .. } => Event::IcmpTooBigSent,
        });
        // The original packet still did not go through: count why.
        self.counters.drop(reason);
        Verdict::Tx(frame.port())
    }
}

/// The 8-byte header of the ICMP or ICMPv6 message at `ip.l4`, or `BadL4Header`
/// when the packet is too short for it. Both views have the same header length,
/// so an unchecked view of either over this slice cannot index out of range.
#[inline(always)]
fn icmp_header<'d>(data: &'d [u8], ip: &IpInfo) -> Result<&'d [u8], DropReason> {
    const _: () = assert!(icmpv4::HEADER_LEN == icmpv6::HEADER_LEN);
    if ip.end < ip.l4 + icmpv4::HEADER_LEN {
        return Err(DropReason::BadL4Header);
    }
    Ok(&data[ip.l4..ip.l4 + icmpv4::HEADER_LEN])
}
