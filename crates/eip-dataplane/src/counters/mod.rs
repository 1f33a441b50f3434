//! Per-worker counters: plain integers on the hot path, summed by a reader.
//!
//! Each worker owns one [`Counters`] and increments it without locked
//! instructions. Whoever reports (the replay tool, the control thread) reads
//! published copies and adds them up with [`Counters::merge`]; per-EIP
//! traffic, 36 bytes an EIP, is not copied but read in place
//! ([`eip_traffic`]). One counter per drop cause, so an operator can see
//! *why* a packet died, not only that it did.
//!
//! Why one file: the counters' layout, their publication (whole or by
//! window) and their merge must agree field by field, and half of it is the
//! tests that check they do (beside it, `eip_traffic.rs`: the shared per-EIP
//! traffic).

pub mod eip_traffic;

pub use eip_traffic::{AtomicTraffic, EipTraffic, SlotCounts, CHUNK_SLOTS};
use serde::Serialize;
use std::cmp::Ordering;

/// A `#[repr(u8)]` enum of counted causes, with `ALL`, `COUNT` and stable labels.
///
/// The cause is a value: it travels in `Result<_, DropReason>` and
/// [`crate::Verdict::Drop`] and indexes a plain array. The AF_XDP driver's
/// `counters!` (eip-afxdp `stats.rs`) declares a struct of named fields instead:
/// its counters are never passed around as values, they are bumped by varying
/// amounts (bytes, nanoseconds) at fixed places, so each macro fits its own job.
macro_rules! counted_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[doc = $doc:literal])* $variant:ident => $label:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        $vis enum $name { $($(#[doc = $doc])* $variant,)* }

        impl $name {
            /// Every variant, in counter order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];
            /// Number of variants (length of the counter array).
            pub const COUNT: usize = Self::ALL.len();
            /// Stable snake_case name used in reports and metrics.
            pub const fn label(self) -> &'static str {
                match self { $($name::$variant => $label,)* }
            }
        }
    };
}

counted_enum! {
    /// Why a frame was dropped. Each has its own counter.
    pub enum DropReason {
        /// Shorter than the headers it claims to carry.
        Truncated => "truncated",
        /// IPv4/IPv6 header invalid: version, header length, total length.
        BadIpHeader => "bad_ip_header",
        /// TCP/UDP/ICMP header invalid or cut short in a packet we must rewrite.
        BadL4Header => "bad_l4_header",
        /// TTL or hop limit would reach zero at this hop.
        TtlExpired => "ttl_expired",
        /// VXLAN to our VTEP from an address that is no known region VTEP.
        UnknownVtep => "unknown_vtep",
        /// VXLAN from a known VTEP with a VNI that is not that region's.
        WrongVni => "wrong_vni",
        /// VXLAN header without the I flag, or inner frame not Ethernet/IP.
        BadVxlan => "bad_vxlan",
        /// Decapsulated packet whose source is not a backend of that region.
        UnknownBackend => "unknown_backend",
        /// Traffic to an EIP that matches none of its services and has no default backend.
        NoService => "no_service",
        /// Every backend of the service is drained.
        NoBackend => "no_backend",
        /// No administratively enabled path to the EIP's region.
        NoPath => "no_path",
        /// Would exceed the path MTU after encapsulation and may not be fragmented
        /// here; an ICMP "too big" was sent back when the packet allowed it.
        TooBig => "too_big",
        /// Non-first IPv4/IPv6 fragment of a service flow whose first fragment this
        /// worker has not seen (no port to choose a backend with).
        FragmentWithoutHead => "fragment_without_head",
        /// ICMP error whose quoted packet belongs to no EIP flow we can translate.
        IcmpUntranslatable => "icmp_untranslatable",
        /// Not enough headroom or tailroom in the buffer for the rewrite (driver setup).
        NoRoom => "no_room",
        /// IPv6 extension header chain too long or malformed.
        BadExtensionHeaders => "bad_extension_headers",
        /// EIP traffic of an IP family the region cannot carry.
        FamilyMismatch => "family_mismatch",
        /// Over the EIP's bits-per-second cap (either direction; per EIP in
        /// [`Counters::eip_policed`]).
        OverBps => "over_bps",
        /// Over the EIP's packets-per-second cap (either direction).
        OverPps => "over_pps",
        /// To an EIP but arrived on a backbone-only port: not Internet ingress.
        EipOnBackbone => "eip_on_backbone",
        /// Internet-side frame to an EIP from a bogon source (private, loopback,
        /// multicast, broadcast, ...; `docs/config.md`, `[protection]`).
        BogonSource => "bogon_source",
        /// Internet-side frame to an EIP whose source is one of our EIPs (the
        /// start of a forwarding loop).
        SpoofedEipSource => "spoofed_eip_source",
        /// Internet-side frame to an EIP whose source is one of the POP's own
        /// addresses (VTEPs, probe source, region VTEPs, `own_addresses`).
        SpoofedPopSource => "spoofed_pop_source",
        /// Return toward a bogon, one of our EIPs or one of the POP's addresses.
        MartianDestination => "martian_destination",
        /// Client UDP to the VXLAN port of an EIP not opted out.
        TunnelPort => "tunnel_port",
        /// Refused by the EIP's access list (per rule in [`Counters::eip_acl`]).
        AclDenied => "acl_denied",
    }
}

counted_enum! {
    /// Things that happened to frames that were not dropped.
    pub enum Event {
        /// Frames seen by the pipeline.
        Rx => "rx",
        /// Frames to an EIP that were NATed and encapsulated toward a region.
        Encapsulated => "encapsulated",
        /// Frames from a region that were decapsulated and NATed back to an EIP.
        Decapsulated => "decapsulated",
        /// Frames handed to the kernel (not ours).
        ToKernel => "to_kernel",
        /// Frames handed to the control thread.
        ToControl => "to_control",
        /// TCP SYNs whose MSS option was lowered to fit the path MTU.
        MssClamped => "mss_clamped",
        /// ICMP "fragmentation needed"/"packet too big" sent back to a sender.
        IcmpTooBigSent => "icmp_too_big_sent",
        /// ICMP "time exceeded" sent back to a sender.
        IcmpTimeExceededSent => "icmp_time_exceeded_sent",
        /// ICMP errors whose quoted packet was translated (RFC 5508).
        IcmpErrorTranslated => "icmp_error_translated",
        /// IPv4/IPv6 fragments of EIP traffic forwarded.
        Fragments => "fragments",
        /// Traffic to a region sent over the fallback set because no path was healthy.
        PanicPath => "panic_path",
    }
}

/// Packets and bytes for one EIP or one path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Traffic {
    pub packets: u64,
    pub bytes: u64,
}

impl Traffic {
    /// One packet of `bytes` more. Both counts as one 128-bit addition (packets
    /// low, bytes high): `add` and `adc` on the counter in memory, where two
    /// 64-bit additions are vectorised into six SSE instructions. The carry
    /// between the halves would take 2^64 packets.
    #[inline(always)]
    pub fn add(&mut self, bytes: usize) {
        let both = (u128::from(self.bytes) << 64 | u128::from(self.packets))
            .wrapping_add((bytes as u128) << 64 | 1);
        self.packets = both as u64;
        self.bytes = (both >> 64) as u64;
    }
}

/// Counts summed (workers', versions'): wrapping, as the counters themselves.
impl std::ops::AddAssign for Traffic {
    fn add_assign(&mut self, o: Traffic) {
        self.packets = self.packets.wrapping_add(o.packets);
        self.bytes = self.bytes.wrapping_add(o.bytes);
    }
}

/// Packets of one EIP dropped by its rate limits, per direction and cap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Policed {
    pub in_over_bps: u64,
    pub in_over_pps: u64,
    pub out_over_bps: u64,
    pub out_over_pps: u64,
}

impl Policed {
    #[inline(always)]
    pub fn count(&mut self, inbound: bool, bps: bool) {
        *match (inbound, bps) {
            (true, true) => &mut self.in_over_bps,
            (true, false) => &mut self.in_over_pps,
            (false, true) => &mut self.out_over_bps,
            (false, false) => &mut self.out_over_pps,
        } += 1;
    }

    fn add(&mut self, o: &Policed) {
        self.in_over_bps += o.in_over_bps;
        self.in_over_pps += o.in_over_pps;
        self.out_over_bps += o.out_over_bps;
        self.out_over_pps += o.out_over_pps;
    }

    /// Whether nothing was dropped.
    pub fn is_zero(&self) -> bool {
        *self == Policed::default()
    }
}

/// Per-rule hits of one EIP's access list on one worker: `hits[i]` for rule
/// `i`, the last for the list's default. `acl` is the list's
/// [`crate::tables::acl::Acl::id`]: a changed list starts from zero.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AclHits {
    pub acl: u64,
    pub hits: Vec<u64>,
}

impl Clone for AclHits {
    fn clone(&self) -> Self {
        AclHits {
            acl: self.acl,
            hits: self.hits.clone(),
        }
    }

    /// Reuses `self.hits` (publishing counters does not allocate).
    fn clone_from(&mut self, o: &Self) {
        self.acl = o.acl;
        self.hits.clone_from(&o.hits);
    }
}

impl AclHits {
    /// Makes this the counters of list `acl` with `len` entries (rules and the
    /// default), zeroed if they were another list's.
    fn prepare(&mut self, acl: u64, len: usize) {
        if self.acl != acl || self.hits.len() != len {
            self.acl = acl;
            self.hits.clear();
            self.hits.resize(len, 0);
        }
    }

    fn zero(&mut self) {
        self.hits.iter_mut().for_each(|h| *h = 0);
    }
}

/// One worker's counters. Per-EIP ones are indexed by stable EIP slot
/// ([`crate::tables::EipId`]) and only grow, across table changes; `path` follows
/// path indexes of the description version `table_version` and restarts when it
/// changes.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    /// Version of the tables `eips` and `path` are indexed by.
    pub table_version: u64,
    pub drops: [u64; DropReason::COUNT],
    pub events: [u64; Event::COUNT],
    /// Traffic per EIP slot both ways, and per slot the
    /// [`crate::tables::Eip::epoch`] of the EIP whose traffic it holds: an EIP
    /// that takes a freed slot starts from zero ([`Counters::eip_in_at`]), so it
    /// never inherits its predecessor's counts. Shared with readers in place,
    /// never copied to publish ([`EipTraffic`]); `clone` makes a snapshot.
    pub eips: EipTraffic,
    /// Rate-limit drops per EIP slot; empty until some EIP is policed (no
    /// memory per EIP otherwise).
    pub eip_policed: Vec<Policed>,
    /// Access-list hits per EIP slot; empty until some EIP has an access list.
    pub eip_acl: Vec<AclHits>,
    /// The epochs of the EIPs whose `eip_policed` and `eip_acl` counts each
    /// slot holds: in a published copy as they were copied, in a sum as
    /// merged (empty in a worker's own counters, whose epochs are `eips`').
    pub extras_epoch: Vec<u32>,
    /// Encapsulated traffic per backbone path (outer bytes).
    pub path: Vec<Traffic>,
}

impl Counters {
    /// Zeroed counters sized for a table with `eips` EIPs and `paths` paths.
    pub fn new(eips: usize, paths: usize) -> Self {
        Counters {
            table_version: 0,
            drops: [0; DropReason::COUNT],
            events: [0; Event::COUNT],
            eips: EipTraffic::new(eips),
            eip_policed: Vec::new(),
            eip_acl: Vec::new(),
            extras_epoch: Vec::new(),
            path: vec![Traffic::default(); paths],
        }
    }

    #[inline(always)]
    pub fn drop(&mut self, reason: DropReason) {
        self.drops[reason as usize] += 1;
    }

    #[inline(always)]
    pub fn event(&mut self, event: Event) {
        self.events[event as usize] += 1;
    }

    /// Client -> backend traffic of the EIP in `slot` with epoch `epoch` (both
    /// counters of the slot restart if they held another EIP's). The worker that
    /// owns these counters is the only writer: a reused slot is reset here, on
    /// the first packet of its new EIP, never by the control side.
    #[inline(always)]
    pub fn eip_in_at(&mut self, slot: crate::tables::EipId, epoch: u32) -> &AtomicTraffic {
        self.claim_slot(slot as usize, epoch);
        self.eips.inbound(slot as usize)
    }

    /// Client -> backend traffic of `slot` for a worker that claimed every slot
    /// of its tables when it adopted them ([`Counters::claim`]): no epoch test
    /// per packet (the fast paths).
    #[inline(always)]
    pub fn eip_in_claimed(&self, slot: crate::tables::EipId) -> &AtomicTraffic {
        self.eips.inbound(slot as usize)
    }

    /// Backend -> client traffic of `slot`: see [`Counters::eip_in_claimed`].
    #[inline(always)]
    pub fn eip_out_claimed(&self, slot: crate::tables::EipId) -> &AtomicTraffic {
        self.eips.outbound(slot as usize)
    }

    /// Client -> backend traffic counted for the EIP in `slot` (zero beyond
    /// the slots, or while a worker resets the slot).
    pub fn eip_in(&self, slot: usize) -> Traffic {
        self.eips.read(slot).unwrap_or_default().inbound
    }

    /// Backend -> client traffic counted for the EIP in `slot`.
    pub fn eip_out(&self, slot: usize) -> Traffic {
        self.eips.read(slot).unwrap_or_default().outbound
    }

    /// The epoch of the EIP whose traffic `slot` holds (0 beyond the slots).
    pub fn eip_epoch(&self, slot: usize) -> u32 {
        self.eips.epoch(slot)
    }

    /// Backend -> client traffic of the EIP in `slot` with epoch `epoch`: see
    /// [`Counters::eip_in_at`].
    #[inline(always)]
    pub fn eip_out_at(&mut self, slot: crate::tables::EipId, epoch: u32) -> &AtomicTraffic {
        self.claim_slot(slot as usize, epoch);
        self.eips.outbound(slot as usize)
    }

    /// Rate-limit drops of the EIP in `slot` with epoch `epoch`: see
    /// [`Counters::eip_in_at`]. Grows `eip_policed` the first time (a worker
    /// sizes it when it adopts tables with policed EIPs, so this never
    /// allocates on the hot path in practice).
    #[inline(always)]
    pub fn eip_policed_at(&mut self, slot: crate::tables::EipId, epoch: u32) -> &mut Policed {
        self.claim_slot(slot as usize, epoch);
        let slot = slot as usize;
        if self.eip_policed.len() <= slot {
            self.eip_policed.resize(slot + 1, Policed::default());
        }
        &mut self.eip_policed[slot]
    }

    /// Counts a hit of entry `index` (a rule, or `len - 1`: the default) of
    /// list `acl` with `len` entries on the EIP in `slot` with epoch `epoch`:
    /// see [`Counters::eip_in_at`]. Allocates only for a list the worker has
    /// not prepared ([`Counters::prepare_acl`], when it adopts tables).
    #[inline(always)]
    pub fn acl_hit(
        &mut self,
        slot: crate::tables::EipId,
        epoch: u32,
        acl: u64,
        len: usize,
        index: u32,
    ) {
        self.claim_slot(slot as usize, epoch);
        let slot = slot as usize;
        if self.eip_acl.len() <= slot {
            self.eip_acl.resize(slot + 1, AclHits::default());
        }
        let h = &mut self.eip_acl[slot];
        h.prepare(acl, len);
        if let Some(n) = h.hits.get_mut(index as usize) {
            *n += 1;
        }
    }

    /// Sizes the hit counters of list `acl` (`len` entries) on `slot` ahead of
    /// its first packet; a slot whose list changed starts from zero.
    pub fn prepare_acl(&mut self, slot: crate::tables::EipId, acl: u64, len: usize) {
        let slot = slot as usize;
        if self.eip_acl.len() <= slot {
            self.eip_acl.resize(slot + 1, AclHits::default());
        }
        self.eip_acl[slot].prepare(acl, len);
    }

    /// Makes `slot`'s counters those of the EIP with epoch `epoch`: if they held
    /// another EIP's, they restart from zero. A slot beyond the counters holds
    /// nothing yet. A worker claims the slots that changed whenever it adopts
    /// tables, so that its fast paths count without testing epochs.
    #[inline]
    pub fn claim(&mut self, slot: crate::tables::EipId, epoch: u32) {
        self.claim_slot(slot as usize, epoch);
    }

    #[inline(always)]
    fn claim_slot(&mut self, slot: usize, epoch: u32) {
        if self.eips.claim(slot, epoch) {
            if let Some(p) = self.eip_policed.get_mut(slot) {
                *p = Policed::default();
            }
            if let Some(h) = self.eip_acl.get_mut(slot) {
                h.zero();
            }
        }
    }

    /// The epoch of the EIP whose rate-limit and access-list counts `slot`
    /// holds: as copied with them in a published copy, else the traffic's.
    pub fn extras_epoch_at(&self, slot: usize) -> u32 {
        match self.extras_epoch.get(slot) {
            Some(&e) => e,
            None => self.eips.epoch(slot),
        }
    }

    /// Traffic in and out counted for the EIP with `epoch` in `slot`: zero
    /// when the slot's counts are another EIP's (a worker has not claimed
    /// the slot for it yet, or these counters are older than the tables).
    pub fn eip_traffic_of(&self, slot: usize, epoch: u32) -> (Traffic, Traffic) {
        match self.eips.read(slot) {
            Some(c) if c.epoch == epoch => (c.inbound, c.outbound),
            _ => Default::default(),
        }
    }

    /// Rate-limit drops counted for the EIP with `epoch` in `slot` (zero when
    /// they are another EIP's).
    pub fn eip_policed_of(&self, slot: usize, epoch: u32) -> Policed {
        match self.eip_policed.get(slot) {
            Some(p) if self.extras_epoch_at(slot) == epoch => *p,
            _ => Policed::default(),
        }
    }

    /// Count of one drop reason.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize]
    }

    /// Count of one event.
    pub fn happened(&self, event: Event) -> u64 {
        self.events[event as usize]
    }

    /// Sum of all drops.
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// Makes these counters equal to `other`, reusing this value's allocations (for
    /// publishing a worker's counters without allocating).
    pub fn copy_from(&mut self, other: &Counters) {
        self.table_version = other.table_version;
        self.drops = other.drops;
        self.events = other.events;
        self.share_eips(other);
        self.eip_policed.clone_from(&other.eip_policed);
        self.eip_acl.clone_from(&other.eip_acl);
        self.extras_epoch.clear();
        if !other.eip_policed.is_empty() || !other.eip_acl.is_empty() {
            let slots = other.eip_policed.len().max(other.eip_acl.len());
            self.extras_epoch
                .extend((0..slots).map(|slot| other.eips.epoch(slot)));
        }
        self.path.clone_from(&other.path);
    }

    /// Makes `eips` the chunks of `other`'s (a publication: the reader then
    /// reads the worker's counts in place).
    fn share_eips(&mut self, other: &Counters) {
        if !self.eips.shares_with(&other.eips) {
            self.eips = other.eips.share();
        }
    }

    /// Like [`copy_from`](Self::copy_from), but of the per-EIP rate-limit and
    /// access-list counters only the slots `from..from + count` (clamped to
    /// `other`'s): a worker with 1M policed EIPs would otherwise copy 32 MB
    /// each time it publishes, holding up its packets for milliseconds. Per-EIP
    /// traffic is shared, not copied; the other counters are copied whole; the
    /// vectors take `other`'s length (new slots zero until their window comes).
    /// Returns where the next window starts (0 after the last slot), so that
    /// calls in turn sweep every slot.
    ///
    /// A slot's counts only grow while its epoch stays, and a window copies a
    /// slot's epoch with its counts (into `extras_epoch`), so what a reader
    /// sees of each slot is consistent, at most one sweep old.
    pub fn copy_window_from(&mut self, other: &Counters, from: usize, count: usize) -> usize {
        fn window<T: Clone + Default>(to: &mut Vec<T>, from: &[T], at: usize, end: usize) {
            to.resize(from.len(), T::default());
            if at < end.min(from.len()) {
                to[at..end.min(from.len())].clone_from_slice(&from[at..end.min(from.len())]);
            }
        }
        self.table_version = other.table_version;
        self.drops = other.drops;
        self.events = other.events;
        self.path.clone_from(&other.path);
        self.share_eips(other);
        let slots = other.eip_policed.len().max(other.eip_acl.len());
        let at = if from >= slots { 0 } else { from };
        let end = at.saturating_add(count).min(slots);
        window(&mut self.eip_policed, &other.eip_policed, at, end);
        window(&mut self.eip_acl, &other.eip_acl, at, end);
        self.extras_epoch.resize(slots, 0);
        for slot in at..end {
            self.extras_epoch[slot] = other.eips.epoch(slot);
        }
        if end >= slots {
            0
        } else {
            end
        }
    }

    /// Adds another worker's counters into these (vectors grow to the longer one).
    /// Per-path traffic is added only from counters of the same table version
    /// as these (or into empty ones): another version's path indexes may mean
    /// other paths. Per-EIP counts are by stable slot, whatever the version:
    /// per slot, the newer EIP's counts win (another worker may still hold
    /// counts of the EIP that had the slot before; epochs compare wrapping),
    /// so a sum never dips while workers adopt a version one after another.
    pub fn merge(&mut self, other: &Counters) {
        let empty = self.eips.slots() == 0 && self.path.is_empty();
        let same_tables = self.table_version == other.table_version || empty;
        if empty {
            self.table_version = other.table_version;
        }
        for (a, b) in self.drops.iter_mut().zip(other.drops) {
            *a += b;
        }
        for (a, b) in self.events.iter_mut().zip(other.events) {
            *a += b;
        }
        // Rate-limit and access-list counts under their own epochs (a sum
        // keeps them in `extras_epoch`): per slot, the newer EIP's win.
        let extras = other.eip_policed.len().max(other.eip_acl.len());
        for slot in self.extras_epoch.len()..extras {
            let epoch = self.extras_epoch_at(slot);
            self.extras_epoch.push(epoch);
        }
        if self.eip_policed.len() < other.eip_policed.len() {
            self.eip_policed
                .resize(other.eip_policed.len(), Policed::default());
        }
        if self.eip_acl.len() < other.eip_acl.len() {
            self.eip_acl.resize(other.eip_acl.len(), AclHits::default());
        }
        for slot in 0..extras {
            let theirs = other.extras_epoch_at(slot);
            let mine = &mut self.extras_epoch[slot];
            let newer = match compare_epochs(theirs, *mine) {
                Ordering::Less => continue,
                Ordering::Equal => false,
                Ordering::Greater => true,
            };
            *mine = theirs;
            if let Some(b) = other.eip_policed.get(slot) {
                let a = &mut self.eip_policed[slot];
                if newer {
                    *a = *b;
                } else {
                    a.add(b);
                }
            } else if let Some(a) = self.eip_policed.get_mut(slot).filter(|_| newer) {
                *a = Policed::default();
            }
            // Workers on the same table version hold the same lists; a slot
            // this side has not counted yet takes the other's list.
            let a = self.eip_acl.get_mut(slot);
            match (a, other.eip_acl.get(slot)) {
                (Some(a), Some(b)) if newer => a.clone_from(b),
                (Some(a), Some(b)) if a.acl == b.acl && a.hits.len() == b.hits.len() => {
                    for (x, y) in a.hits.iter_mut().zip(&b.hits) {
                        *x += y;
                    }
                }
                (Some(a), Some(b)) if a.hits.iter().all(|&h| h == 0) => a.clone_from(b),
                (Some(a), None) if newer => a.zero(),
                _ => {}
            }
        }
        self.eips.merge(&other.eips);
        if !same_tables {
            return;
        }
        if self.path.len() < other.path.len() {
            self.path.resize(other.path.len(), Traffic::default());
        }
        for (a, &b) in self.path.iter_mut().zip(&other.path) {
            *a += b;
        }
    }
}

/// How epoch `a` compares with `b` (wrapping: a slot's epochs count up).
fn compare_epochs(a: u32, b: u32) -> Ordering {
    (a.wrapping_sub(b) as i32).cmp(&0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_unique_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for r in DropReason::ALL {
            assert!(seen.insert(r.label()));
            assert!(r
                .label()
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
        }
        assert_eq!(
            DropReason::ALL[DropReason::NoPath as usize],
            DropReason::NoPath
        );
        assert_eq!(Event::ALL[Event::Rx as usize], Event::Rx);
    }

    #[test]
    fn a_reused_slot_starts_from_zero_and_merge_keeps_the_newer_eip() {
        let mut a = Counters::new(2, 0);
        a.eip_in_at(1, 0).add(100);
        a.eip_out_at(1, 0).add(10);
        let old = a.clone();
        a.eip_in_at(1, 1).add(60);
        assert_eq!(
            (a.eip_in(1).packets, a.eip_in(1).bytes, a.eip_out(1).packets),
            (1, 60, 0)
        );
        a.eip_in_at(1, 1).add(60);
        assert_eq!(a.eip_in(1).bytes, 120);
        // Another worker still holding the old EIP's counts: they are not added.
        let mut sum = Counters::default();
        sum.merge(&old);
        sum.merge(&a);
        assert_eq!((sum.eip_in(1).bytes, sum.eip_epoch(1)), (120, 1));
        sum.merge(&old);
        assert_eq!(sum.eip_in(1).bytes, 120);
    }

    #[test]
    fn acl_hits_count_per_rule_restart_with_a_new_list_or_eip_and_merge() {
        let mut a = Counters::new(2, 0);
        a.prepare_acl(1, 7, 3);
        a.acl_hit(1, 0, 7, 3, 0);
        a.acl_hit(1, 0, 7, 3, 2);
        a.acl_hit(1, 0, 7, 3, 2);
        assert_eq!(a.eip_acl[1].hits, [1, 0, 2]);
        let mut b = Counters::new(2, 0);
        b.acl_hit(1, 0, 7, 3, 1);
        let mut sum = Counters::default();
        sum.merge(&a);
        sum.merge(&b);
        assert_eq!(sum.eip_acl[1].hits, [1, 1, 2]);
        // Another list on the EIP: from zero.
        a.prepare_acl(1, 8, 2);
        assert_eq!(a.eip_acl[1].hits, [0, 0]);
        a.acl_hit(1, 0, 8, 2, 1);
        // A new EIP in the slot: from zero, and merge keeps the newer EIP's.
        let old = a.clone();
        a.acl_hit(1, 1, 8, 2, 0);
        assert_eq!(a.eip_acl[1].hits, [1, 0]);
        let mut sum = Counters::default();
        sum.merge(&old);
        sum.merge(&a);
        assert_eq!(sum.eip_acl[1].hits, [1, 0]);
        // Publishing reuses the allocation.
        let mut copy = Counters::default();
        copy.copy_from(&a);
        let ptr = copy.eip_acl[1].hits.as_ptr();
        copy.copy_from(&a);
        assert_eq!(copy.eip_acl[1].hits.as_ptr(), ptr);
    }

    #[test]
    fn windows_sweep_every_slot_in_turn() {
        let mut a = Counters::new(10, 1);
        a.eip_policed.resize(10, Policed::default());
        for slot in 0..10 {
            a.eip_in_at(slot, slot).add(100 + slot as usize);
            a.eip_policed_at(slot, slot).count(true, true);
        }
        a.drop(DropReason::Truncated);
        a.path[0].add(60);
        let mut copy = Counters::default();
        // Scalars and paths whole at once, traffic shared; rate-limit drops
        // 4 slots a time, with their epochs.
        let mut next = copy.copy_window_from(&a, 0, 4);
        assert_eq!(next, 4);
        assert_eq!(copy.dropped(DropReason::Truncated), 1);
        assert_eq!(copy.path, a.path);
        assert!(copy.eips.shares_with(&a.eips));
        a.eip_in_at(7, 7).add(1);
        assert_eq!(copy.eip_in(7).bytes, 108, "traffic is read in place");
        assert_eq!(copy.eip_policed.len(), 10);
        assert_eq!(copy.eip_policed[3], a.eip_policed[3]);
        assert_eq!(copy.extras_epoch[3], 3);
        assert!(copy.eip_policed[4].is_zero(), "not yet its turn");
        next = copy.copy_window_from(&a, next, 4);
        next = copy.copy_window_from(&a, next, 4);
        assert_eq!(next, 0, "the sweep starts over");
        assert_eq!(copy.eip_policed, a.eip_policed);
        assert_eq!(copy.extras_epoch, (0..10).collect::<Vec<u32>>());
        // The sum of a published copy keeps each slot's EIP.
        let mut sum = Counters::default();
        sum.merge(&copy);
        assert_eq!(sum.eip_policed[9].in_over_bps, 1);
        assert_eq!((sum.eip_in(9).bytes, sum.eip_epoch(9)), (109, 9));
        // Fewer slots than the cursor (the vectors never shrink in a worker,
        // but a cursor past the end must not panic): the sweep starts over.
        let small = Counters::new(2, 0);
        assert_eq!(copy.copy_window_from(&small, 8, 4), 0);
        assert_eq!(copy.eip_policed.len(), 0);
    }

    #[test]
    fn a_sum_keeps_rate_limit_drops_with_their_eip() {
        // Worker 1 counted a drop for the EIP of epoch 5 in slot 1; worker 2
        // has claimed the slot for its next EIP (epoch 6) and dropped nothing.
        let mut w1 = Counters::new(2, 0);
        w1.eip_policed_at(1, 5).count(true, true);
        let mut w2 = Counters::new(2, 0);
        w2.eip_in_at(1, 6).add(60);
        w2.eip_policed.resize(2, Policed::default());
        for order in [[&w1, &w2], [&w2, &w1]] {
            let mut sum = Counters::default();
            sum.merge(order[0]);
            sum.merge(order[1]);
            assert_eq!(sum.eip_traffic_of(1, 6).0.bytes, 60);
            assert!(sum.eip_policed_of(1, 6).is_zero(), "not the old EIP's drop");
            assert_eq!(sum.eip_traffic_of(1, 5).0, Traffic::default());
        }
        // Only worker 1, which holds the old EIP's counts: shown for that EIP,
        // not for the new one.
        let mut sum = Counters::default();
        sum.merge(&w1);
        assert_eq!(sum.eip_policed_of(1, 5).in_over_bps, 1);
        assert!(sum.eip_policed_of(1, 6).is_zero());
    }

    #[test]
    fn a_sum_adds_per_eip_counts_across_versions_and_paths_within_one() {
        // Worker 1 has adopted version 2, worker 2 is still on version 1:
        // the EIP's slot is the same in both, its path index need not be.
        let mut w1 = Counters::new(2, 1);
        w1.table_version = 2;
        w1.eip_in_at(1, 0).add(100);
        w1.path[0].add(150);
        let mut w2 = Counters::new(2, 1);
        w2.table_version = 1;
        w2.eip_in_at(1, 0).add(60);
        w2.path[0].add(150);
        let mut sum = Counters::default();
        sum.merge(&w1);
        sum.merge(&w2);
        assert_eq!(sum.table_version, 2);
        assert_eq!(
            sum.eip_traffic_of(1, 0).0.bytes,
            160,
            "no dip while workers adopt"
        );
        assert_eq!(
            sum.path[0].bytes, 150,
            "another version's paths are left out"
        );
    }

    #[test]
    fn merge_adds_and_grows() {
        let mut a = Counters::new(1, 0);
        let mut b = Counters::new(2, 1);
        a.drop(DropReason::Truncated);
        b.drop(DropReason::Truncated);
        b.event(Event::Rx);
        b.eips.inbound(1).add(100);
        b.path[0].add(150);
        a.merge(&b);
        assert_eq!(a.dropped(DropReason::Truncated), 2);
        assert_eq!(a.happened(Event::Rx), 1);
        assert_eq!(
            a.eip_in(1),
            Traffic {
                packets: 1,
                bytes: 100
            }
        );
        assert_eq!(a.path.len(), 1);
        assert_eq!(a.total_drops(), 2);
    }
}
