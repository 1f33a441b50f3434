//! Per-EIP rate limits (bits/s and packets/s, each direction), enforced by
//! token buckets that each worker keeps for itself.
//!
//! # Why per worker, and what that costs in accuracy
//!
//! A bucket shared by the workers would need an atomic (or a lock) per packet,
//! bouncing one cache line between cores. Each worker instead polices its own
//! share of every cap, `cap / workers`. The NIC spreads flows over queues by
//! RSS, so this is exact when an EIP's traffic is spread evenly and too strict
//! when it is not: traffic that all lands on one queue gets `cap / workers`, not
//! `cap` (the worst case; a single flow always lands on one queue). A flood,
//! with many sources, spreads well; the error is that of RSS's balance. (A
//! control-thread rebalance from observed per-worker demand would close the
//! gap; not done yet.)
//!
//! # Arithmetic
//!
//! No division per packet: a bucket gains `cap` units per nanosecond, and a
//! packet costs `amount * 1e9 * workers` units (amount: bits or 1), so a worker
//! passes `cap / workers` per second. A bucket holds at most
//! [`BURST_NS`] worth of its rate (but at least two large packets), starts
//! full, and is refilled once per batch (the clock is read once per batch: the
//! `now` the batch was called with).
//!
//! # State
//!
//! Buckets are indexed by the EIP's stable slot and stamped with its epoch, so
//! a new table version never resets them and an EIP that takes a freed slot
//! starts with full buckets, as per-EIP counters do. They exist only when some
//! EIP is policed; without any, a packet costs one flag test. Each slot keeps
//! its EIP's caps resolved over the POP default, stamped with the snapshot
//! they were resolved under: the map of an EIP's own caps is read on its first
//! packet under each snapshot, not per packet (so a changed default or cap
//! still applies from the next snapshot on, and never rebuilds the EIPs). A
//! packet refills only its own direction's two buckets.

use super::Pipeline;
use crate::counters::DropReason;
use crate::tables::limits::{cap, Limits};
use crate::tables::{EipId, Tables};

/// How much a full bucket holds, in nanoseconds of its rate (10 ms).
pub const BURST_NS: u64 = 10_000_000;
/// The least a bits/s bucket holds: two 1514-byte frames.
const MIN_BURST_BITS: u64 = 2 * 1514 * 8;
/// The least a packets/s bucket holds.
const MIN_BURST_PACKETS: u64 = 2;
const NS: u64 = 1_000_000_000;

/// The two buckets of one direction of one EIP (bits, packets) and the caps
/// they are refilled at.
#[derive(Debug, Clone, Copy, Default)]
struct Direction {
    /// Time of the last refill (ns).
    last: u64,
    /// Units per cap (bits/s, packets/s); `u64::MAX` while a cap is off.
    tokens: [u64; 2],
    /// The caps (bits/s, packets/s; 0: none) resolved over the POP default.
    caps: [u64; 2],
    /// What each bucket holds at most under `caps`.
    full: [u64; 2],
}

/// The four buckets of one EIP on one worker, with the EIP's caps resolved
/// once per table version (not per packet).
#[derive(Debug, Clone, Copy, Default)]
struct Buckets {
    /// Epoch of the EIP they belong to.
    epoch: u32,
    /// [`Policer::resolved`] when `caps` were resolved; 0: never used.
    resolved: u32,
    /// In (client -> backend), out (backend -> client).
    dirs: [Direction; 2],
}

/// One worker's policing state.
#[derive(Debug, Clone)]
pub(super) struct Policer {
    /// Some EIP of the tables in use is policed.
    pub active: bool,
    /// The batch's clock (ns), set once per batch.
    pub now: u64,
    /// `1e9 * workers`: the cost of one unit (bit or packet).
    unit: u64,
    /// Number of the table snapshot in use (never 0): buckets whose caps were
    /// resolved under another resolve them again on their next packet.
    resolved: u32,
    buckets: Vec<Buckets>,
}

impl Policer {
    /// `workers` share each cap equally (at least 1).
    pub fn new(workers: u32) -> Self {
        Policer {
            active: false,
            now: 0,
            unit: NS * u64::from(workers.max(1)),
            resolved: 1,
            buckets: Vec::new(),
        }
    }

    /// Sizes the buckets for a new snapshot (between batches; allocates only
    /// when the slots grew and some EIP is policed). Caps may have changed:
    /// each EIP's are resolved again on its next packet.
    pub fn adopt(&mut self, t: &Tables) {
        self.active = t.policing();
        self.resolved = self.resolved.wrapping_add(1).max(1);
        if self.active && self.buckets.len() < t.slot_capacity() {
            self.buckets.resize(t.slot_capacity(), Buckets::default());
        }
    }

    /// Charges one packet of `bytes` to the caps of direction `inbound` of the
    /// EIP in `slot`, or says which cap it is over (then nothing is charged).
    /// `limits` resolves the EIP's caps: called on the EIP's first packet and
    /// on its first packet under a new snapshot, not per packet. Only the
    /// packet's direction is refilled (a refill is linear and clipped, so
    /// refilling a direction late gives what refilling it at every packet
    /// would).
    #[inline(always)]
    fn charge(
        &mut self,
        slot: EipId,
        epoch: u32,
        limits: impl FnOnce() -> Limits,
        inbound: bool,
        bytes: usize,
    ) -> Result<(), DropReason> {
        let now = self.now;
        let unit = self.unit;
        let resolved = self.resolved;
        let Some(b) = self.buckets.get_mut(slot as usize) else {
            return Ok(());
        };
        if b.resolved != resolved || b.epoch != epoch {
            Self::resolve(b, epoch, resolved, limits(), now, unit);
        }
        let d = &mut b.dirs[usize::from(!inbound)];
        let caps = d.caps;
        if caps == [0, 0] {
            return Ok(());
        }
        let full = d.full;
        if now > d.last {
            let elapsed = now - d.last;
            for i in 0..2 {
                d.tokens[i] = d.tokens[i]
                    .saturating_add(elapsed.saturating_mul(caps[i]))
                    .min(full[i]);
            }
            d.last = now;
        }
        let bits_cost = (bytes as u64 * 8).saturating_mul(unit);
        let bits = d.tokens[0].min(full[0]);
        let packets = d.tokens[1].min(full[1]);
        if caps[0] != 0 && bits < bits_cost {
            return Err(DropReason::OverBps);
        }
        if caps[1] != 0 && packets < unit {
            return Err(DropReason::OverPps);
        }
        d.tokens = [bits.saturating_sub(bits_cost), packets.saturating_sub(unit)];
        Ok(())
    }

    /// The buckets of `b` under caps `limits` resolved in snapshot `resolved`:
    /// full ones for another EIP in the slot (or its first packet), else the
    /// same tokens under the new caps (clipped when they are used).
    #[cold]
    #[inline(never)]
    fn resolve(b: &mut Buckets, epoch: u32, resolved: u32, limits: Limits, now: u64, unit: u64) {
        let caps = limits.caps;
        let capacity =
            |rate: u64, min: u64| rate.saturating_mul(BURST_NS).max(min.saturating_mul(unit));
        let fresh = b.resolved == 0 || b.epoch != epoch;
        for (i, d) in b.dirs.iter_mut().enumerate() {
            let at = if i == 0 { cap::IN_BPS } else { cap::OUT_BPS };
            d.caps = [caps[at], caps[at + 1]];
            d.full = [
                capacity(caps[at], MIN_BURST_BITS),
                capacity(caps[at + 1], MIN_BURST_PACKETS),
            ];
            if fresh {
                d.tokens = d.full;
                d.last = now;
            }
        }
        b.epoch = epoch;
        b.resolved = resolved;
    }
}

impl Pipeline {
    /// Polices a packet of `bytes` (IP length) toward the EIP in `slot`
    /// (`inbound`) or from it. Without any policed EIP: one test. `epoch`
    /// gives the slot's epoch, asked for only when some EIP is policed (a
    /// fast path that did not read the slot's record reads it then).
    #[inline(always)]
    pub(super) fn police(
        &mut self,
        t: &Tables,
        slot: EipId,
        epoch: impl FnOnce() -> u32,
        inbound: bool,
        bytes: usize,
    ) -> Result<(), DropReason> {
        if !self.policer.active {
            return Ok(());
        }
        self.police_eip(t, slot, epoch(), inbound, bytes)
    }

    /// [`Self::police`] once some EIP is policed: charges the EIP's buckets
    /// (resolving its caps over the POP default when the snapshot is new to
    /// them); counts a refusal per EIP.
    #[inline(never)]
    fn police_eip(
        &mut self,
        t: &Tables,
        slot: EipId,
        epoch: u32,
        inbound: bool,
        bytes: usize,
    ) -> Result<(), DropReason> {
        let limits = || match t.eips.limits(slot) {
            Some(own) => own.over(&t.default_limits),
            None => Limits::INHERIT.over(&t.default_limits),
        };
        let result = self.policer.charge(slot, epoch, limits, inbound, bytes);
        if let Err(reason) = result {
            let bps_refused = reason == DropReason::OverBps;
            self.counters
                .eip_policed_at(slot, epoch)
                .count(inbound, bps_refused);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::limits::LimitsSpec;

    fn limits(in_bps: u64, in_pps: u64) -> Limits {
        LimitsSpec {
            in_bps: Some(in_bps),
            in_pps: Some(in_pps),
            ..Default::default()
        }
        .compile()
        .over(&Limits::INHERIT)
    }

    /// Offers `rate` packets of `bytes` per second for `seconds` in 1 ms
    /// batches; returns the packets passed.
    fn offer(p: &mut Policer, l: &Limits, rate: u64, bytes: usize, seconds: u64) -> u64 {
        let per_ms = rate / 1000;
        let mut passed = 0;
        for ms in 1..=seconds * 1000 {
            p.now = ms * 1_000_000;
            for _ in 0..per_ms {
                passed += u64::from(p.charge(0, 7, || *l, true, bytes).is_ok());
            }
        }
        passed
    }

    fn policer(workers: u32) -> Policer {
        let mut p = Policer::new(workers);
        p.buckets = vec![Buckets::default(); 1];
        p
    }

    #[test]
    fn a_bit_rate_cap_passes_its_rate_over_time() {
        // 8 Mbit/s of 1000-byte packets = 1000 packets/s; offered ten times that.
        let l = limits(8_000_000, 0);
        let passed = offer(&mut policer(1), &l, 10_000, 1000, 10);
        // Ten seconds: 10,000 packets, plus the first burst (10 ms).
        assert!((10_000..=10_020).contains(&passed), "{passed}");
    }

    #[test]
    fn each_worker_passes_its_share() {
        let l = limits(0, 2000);
        let passed = offer(&mut policer(4), &l, 10_000, 64, 10);
        assert!((5_000..=5_010).contains(&passed), "{passed}");
    }

    #[test]
    fn under_the_cap_nothing_is_dropped_and_a_new_epoch_starts_full() {
        let l = limits(80_000_000, 100_000);
        assert_eq!(offer(&mut policer(1), &l, 5_000, 1000, 2), 10_000);
        let mut p = policer(1);
        p.now = 1;
        let tiny = limits(0, 1);
        assert!(p.charge(0, 7, || tiny, true, 60).is_ok());
        assert!(p.charge(0, 7, || tiny, true, 60).is_ok());
        assert_eq!(p.charge(0, 7, || tiny, true, 60), Err(DropReason::OverPps));
        // Another EIP in the slot: its own, full buckets.
        assert!(p.charge(0, 8, || tiny, true, 60).is_ok());
    }

    #[test]
    fn a_lowered_cap_takes_effect_at_once() {
        let mut p = policer(1);
        let high = limits(1_000_000_000, 0);
        p.now = 1;
        assert!(p.charge(0, 0, || high, true, 1500).is_ok());
        let low = limits(8_000, 0);
        // A new snapshot: caps are resolved again.
        p.resolved += 1;
        p.now = 2;
        // The bucket is clipped to the new capacity (two large frames).
        let passed = (0..10)
            .filter(|_| p.charge(0, 0, || low, true, 1500).is_ok())
            .count();
        assert_eq!(passed, 2);
    }
}
