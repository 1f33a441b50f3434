//! Who owns each UMEM frame right now.
//!
//! AF_XDP hands frame *addresses* back and forth between user space and the kernel
//! through four rings, and nothing in the kernel interface stops user space from
//! putting the same frame on two rings at once (say, posting it to the fill ring while
//! it still sits in a TX descriptor). The kernel would then receive a packet into a
//! buffer it is still transmitting from. This ledger makes that impossible by
//! construction: every transition names the state it expects, and a frame can only be
//! handed to the fill ring straight from the free list.
//!
//! From user space a frame is in one of four places:
//!
//! | state       | where the frame physically is                                  |
//! |-------------|----------------------------------------------------------------|
//! | `Free`      | on this ledger's free list                                     |
//! | `Fill(d)`   | device `d`'s fill ring, or already received into its RX ring    |
//! | `Held`      | in the worker's hands (between RX and its verdict, or while an |
//! |             | injected frame is copied in)                                   |
//! | `Tx(d)`     | device `d`'s TX ring, or already on its completion ring        |
//!
//! "Fill ring or RX ring" and "TX ring or completion ring" are one state each
//! because user space cannot see the kernel move a frame between them; it only
//! sees the frame again when it reads the RX or the completion ring.
//!
//! The per-state counts are maintained on every transition, so
//! [`FrameLedger::counts`] is O(1) and can be published by the worker; the O(n)
//! [`FrameLedger::audit`] recounts from the per-frame states for tests and the end
//! of a soak run.

/// Index of a frame in the UMEM (its address divided by the frame size).
pub type FrameIdx = u32;

/// Index of a device (port) within one queue set's shared UMEM.
pub type DeviceIdx = u8;

/// Devices one UMEM can serve (a two-armed POP needs 2).
pub const MAX_DEVICES: usize = 4;

/// Where one frame is. See the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameState {
    /// On the free list.
    Free,
    /// Posted to this device's fill ring (possibly already in its RX ring).
    Fill(DeviceIdx),
    /// Held by the worker.
    Held,
    /// Posted to this device's TX ring (possibly already in its completion ring).
    Tx(DeviceIdx),
}

// One byte per frame: FREE, HELD, then one code per device for fill and for TX.
const FREE: u8 = 0;
const HELD: u8 = 1;
const FILL_BASE: u8 = 2;
const TX_BASE: u8 = FILL_BASE + MAX_DEVICES as u8;

impl FrameState {
    #[inline]
    fn encode(self) -> u8 {
        match self {
            FrameState::Free => FREE,
            FrameState::Held => HELD,
            FrameState::Fill(d) => FILL_BASE + d,
            FrameState::Tx(d) => TX_BASE + d,
        }
    }

    #[inline]
    fn decode(code: u8) -> FrameState {
        match code {
            FREE => FrameState::Free,
            HELD => FrameState::Held,
            c if c < TX_BASE => FrameState::Fill(c - FILL_BASE),
            c => FrameState::Tx(c - TX_BASE),
        }
    }
}

/// A transition that the ledger refused because the frame was somewhere else.
///
/// On the hot path this means a descriptor came back from the kernel for a frame we
/// never gave it (or gave to another device), or a worker bug; the caller counts it
/// and leaves the frame where the ledger says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Misplaced {
    /// The frame.
    pub frame: FrameIdx,
    /// Where the transition expected it.
    pub expected: FrameState,
    /// Where it actually was (`None`: index beyond the UMEM).
    pub found: Option<FrameState>,
}

/// Number of frames in each place. Always adds up to `total`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameCounts {
    /// Frames in the UMEM.
    pub total: u32,
    /// On the free list.
    pub free: u32,
    /// Held by the worker.
    pub held: u32,
    /// Per device: in the fill or RX ring.
    pub fill: [u32; MAX_DEVICES],
    /// Per device: in the TX or completion ring.
    pub tx: [u32; MAX_DEVICES],
}

impl FrameCounts {
    /// Frames found in some place; equals `total` unless the ledger is broken.
    pub fn accounted(&self) -> u32 {
        self.free + self.held + self.fill.iter().sum::<u32>() + self.tx.iter().sum::<u32>()
    }

    /// Frames in a TX or completion ring, all devices.
    pub fn in_tx(&self) -> u32 {
        self.tx.iter().sum()
    }

    /// Frames in a fill or RX ring, all devices.
    pub fn in_fill(&self) -> u32 {
        self.fill.iter().sum()
    }
}

/// What [`FrameLedger::audit`] found wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    /// The maintained counters disagree with a recount of the per-frame states.
    #[error("frame counters {maintained:?} disagree with a recount {recounted:?}")]
    CountMismatch {
        maintained: FrameCounts,
        recounted: FrameCounts,
    },
    /// A frame on the free list is not marked free, or is listed twice.
    #[error("frame {frame} is on the free list but marked {state:?}")]
    FreeListCorrupt { frame: FrameIdx, state: FrameState },
}

/// The single owner of UMEM frame bookkeeping for one queue set.
///
/// Not thread-safe by design: one worker owns one UMEM and its ledger.
#[derive(Debug)]
pub struct FrameLedger {
    state: Box<[u8]>,
    /// LIFO so that recently touched (cache-warm) frames are reused first.
    /// Capacity is fixed at `total`; it never reallocates.
    free: Vec<FrameIdx>,
    counts: FrameCounts,
    devices: u8,
}

impl FrameLedger {
    /// A ledger with all `total` frames free, for `devices` devices.
    ///
    /// # Panics
    /// If `devices` is 0 or above [`MAX_DEVICES`] (a setup bug).
    pub fn new(total: u32, devices: usize) -> Self {
        assert!(
            (1..=MAX_DEVICES).contains(&devices),
            "a UMEM serves 1..={MAX_DEVICES} devices, not {devices}"
        );
        // Pop order 0, 1, 2...: push in reverse.
        let free: Vec<FrameIdx> = (0..total).rev().collect();
        FrameLedger {
            state: vec![FREE; total as usize].into_boxed_slice(),
            free,
            counts: FrameCounts {
                total,
                free: total,
                ..FrameCounts::default()
            },
            devices: devices as u8,
        }
    }

    /// Frames in the UMEM.
    #[inline]
    pub fn total(&self) -> u32 {
        self.counts.total
    }

    /// Frames on the free list.
    #[inline]
    pub fn free_len(&self) -> u32 {
        self.counts.free
    }

    /// Current counts per place (O(1)).
    #[inline]
    pub fn counts(&self) -> FrameCounts {
        self.counts
    }

    /// Where `frame` is, or `None` if the index is outside the UMEM.
    #[inline]
    pub fn state(&self, frame: FrameIdx) -> Option<FrameState> {
        self.state
            .get(frame as usize)
            .map(|&c| FrameState::decode(c))
    }

    /// Takes a frame off the free list and records it as posted to `dev`'s fill ring.
    /// The caller must then write it to that fill ring. `None` when no frame is free.
    #[inline]
    pub fn post_fill(&mut self, dev: DeviceIdx) -> Option<FrameIdx> {
        debug_assert!(dev < self.devices);
        let frame = self.free.pop()?;
        let slot = &mut self.state[frame as usize];
        debug_assert_eq!(*slot, FREE, "free list held a frame that was not free");
        *slot = FrameState::Fill(dev).encode();
        self.counts.free -= 1;
        self.counts.fill[dev as usize] += 1;
        Some(frame)
    }

    /// Takes a frame off the free list into the worker's hands, for a frame the
    /// worker writes itself (an injected frame, see `inject`) rather than one the
    /// kernel received. The caller then either [`Self::transmitted`] or
    /// [`Self::recycle`]s it, as for a received frame. `None` when no frame is free.
    #[inline]
    pub fn take_free(&mut self) -> Option<FrameIdx> {
        let frame = self.free.pop()?;
        let slot = &mut self.state[frame as usize];
        debug_assert_eq!(*slot, FREE, "free list held a frame that was not free");
        *slot = HELD;
        self.counts.free -= 1;
        self.counts.held += 1;
        Some(frame)
    }

    /// Undoes [`Self::post_fill`] for a frame that could not be written to the ring.
    #[inline]
    pub fn unpost_fill(&mut self, frame: FrameIdx, dev: DeviceIdx) -> Result<(), Misplaced> {
        self.transition(frame, FrameState::Fill(dev), FrameState::Free)?;
        self.counts.fill[dev as usize] -= 1;
        self.push_free(frame);
        Ok(())
    }

    /// A frame arrived on `dev`'s RX ring: it is now held by the worker.
    #[inline]
    pub fn received(&mut self, frame: FrameIdx, dev: DeviceIdx) -> Result<(), Misplaced> {
        self.transition(frame, FrameState::Fill(dev), FrameState::Held)?;
        self.counts.fill[dev as usize] -= 1;
        self.counts.held += 1;
        Ok(())
    }

    /// A held frame is being written to `dev`'s TX ring.
    #[inline]
    pub fn transmitted(&mut self, frame: FrameIdx, dev: DeviceIdx) -> Result<(), Misplaced> {
        debug_assert!(dev < self.devices);
        self.transition(frame, FrameState::Held, FrameState::Tx(dev))?;
        self.counts.held -= 1;
        self.counts.tx[dev as usize] += 1;
        Ok(())
    }

    /// A held frame is done with (dropped, copied to the control thread, or not
    /// transmitted): back to the free list.
    #[inline]
    pub fn recycle(&mut self, frame: FrameIdx) -> Result<(), Misplaced> {
        self.transition(frame, FrameState::Held, FrameState::Free)?;
        self.counts.held -= 1;
        self.push_free(frame);
        Ok(())
    }

    /// A frame came back on `dev`'s completion ring: back to the free list.
    #[inline]
    pub fn completed(&mut self, frame: FrameIdx, dev: DeviceIdx) -> Result<(), Misplaced> {
        self.transition(frame, FrameState::Tx(dev), FrameState::Free)?;
        self.counts.tx[dev as usize] -= 1;
        self.push_free(frame);
        Ok(())
    }

    /// Recounts every frame and checks the free list (O(total)). For tests and for
    /// the end of a run, never for the hot path.
    pub fn audit(&self) -> Result<(), AuditError> {
        let mut recounted = FrameCounts {
            total: self.counts.total,
            ..FrameCounts::default()
        };
        for &code in self.state.iter() {
            match FrameState::decode(code) {
                FrameState::Free => recounted.free += 1,
                FrameState::Held => recounted.held += 1,
                FrameState::Fill(d) => recounted.fill[d as usize] += 1,
                FrameState::Tx(d) => recounted.tx[d as usize] += 1,
            }
        }
        if recounted != self.counts || recounted.free as usize != self.free.len() {
            return Err(AuditError::CountMismatch {
                maintained: self.counts,
                recounted,
            });
        }
        let mut seen = vec![false; self.state.len()];
        for &frame in &self.free {
            let state = FrameState::decode(self.state[frame as usize]);
            if state != FrameState::Free || seen[frame as usize] {
                return Err(AuditError::FreeListCorrupt { frame, state });
            }
            seen[frame as usize] = true;
        }
        Ok(())
    }

    #[inline]
    fn transition(
        &mut self,
        frame: FrameIdx,
        from: FrameState,
        to: FrameState,
    ) -> Result<(), Misplaced> {
        let Some(slot) = self.state.get_mut(frame as usize) else {
            return Err(Misplaced {
                frame,
                expected: from,
                found: None,
            });
        };
        if *slot != from.encode() {
            return Err(Misplaced {
                frame,
                expected: from,
                found: Some(FrameState::decode(*slot)),
            });
        }
        *slot = to.encode();
        Ok(())
    }

    #[inline]
    fn push_free(&mut self, frame: FrameIdx) {
        // Cannot exceed `total`: every push follows a successful transition out of a
        // non-free state, so the Vec never reallocates.
        debug_assert!(self.free.len() < self.state.len());
        self.free.push(frame);
        self.counts.free += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_all_free_and_hands_out_low_indices_first() {
        let mut l = FrameLedger::new(8, 2);
        assert_eq!(l.counts().free, 8);
        assert_eq!(l.post_fill(0), Some(0));
        assert_eq!(l.post_fill(1), Some(1));
        assert_eq!(l.state(0), Some(FrameState::Fill(0)));
        assert_eq!(l.state(1), Some(FrameState::Fill(1)));
        assert_eq!(l.counts().accounted(), 8);
        l.audit().unwrap();
    }

    #[test]
    fn full_cycle_rx_tx_completion() {
        let mut l = FrameLedger::new(4, 2);
        let f = l.post_fill(0).unwrap();
        l.received(f, 0).unwrap();
        assert_eq!(l.counts().held, 1);
        // Received on device 0, transmitted on device 1 (shared UMEM).
        l.transmitted(f, 1).unwrap();
        assert_eq!(l.counts().tx, [0, 1, 0, 0]);
        l.completed(f, 1).unwrap();
        assert_eq!(l.counts().free, 4);
        l.audit().unwrap();
    }

    #[test]
    fn a_frame_in_tx_can_never_reach_the_fill_ring() {
        let mut l = FrameLedger::new(2, 1);
        let a = l.post_fill(0).unwrap();
        let b = l.post_fill(0).unwrap();
        l.received(a, 0).unwrap();
        l.transmitted(a, 0).unwrap();
        // Nothing is free: the frame sitting in TX is not offered to the fill ring.
        assert_eq!(l.post_fill(0), None);
        // Recycling it (as if it had been dropped) is refused too.
        assert_eq!(
            l.recycle(a),
            Err(Misplaced {
                frame: a,
                expected: FrameState::Held,
                found: Some(FrameState::Tx(0))
            })
        );
        // And a fill-ring frame cannot be transmitted before it was received.
        assert!(l.transmitted(b, 0).is_err());
        l.audit().unwrap();
    }

    #[test]
    fn kernel_returning_a_frame_on_the_wrong_device_is_refused() {
        let mut l = FrameLedger::new(4, 2);
        let f = l.post_fill(0).unwrap();
        assert!(l.received(f, 1).is_err());
        l.received(f, 0).unwrap();
        l.transmitted(f, 0).unwrap();
        assert!(l.completed(f, 1).is_err());
        assert!(l.completed(99, 0).unwrap_err().found.is_none());
        l.completed(f, 0).unwrap();
        l.audit().unwrap();
    }

    #[test]
    fn injected_frame_cycle() {
        let mut l = FrameLedger::new(2, 2);
        let f = l.take_free().unwrap();
        assert_eq!(l.state(f), Some(FrameState::Held));
        assert_eq!((l.counts().free, l.counts().held), (1, 1));
        // A held frame cannot go to a fill ring nor be "received".
        assert!(l.received(f, 0).is_err());
        l.transmitted(f, 1).unwrap();
        l.completed(f, 1).unwrap();
        // Or it is given back when the TX ring had no room.
        let g = l.take_free().unwrap();
        l.recycle(g).unwrap();
        let (a, b) = (l.take_free().unwrap(), l.take_free().unwrap());
        assert_ne!(a, b);
        assert_eq!(l.take_free(), None, "nothing free: no frame invented");
        assert_eq!(l.post_fill(0), None);
        l.recycle(a).unwrap();
        l.recycle(b).unwrap();
        l.audit().unwrap();
    }

    #[test]
    fn double_receive_is_refused() {
        let mut l = FrameLedger::new(4, 1);
        let f = l.post_fill(0).unwrap();
        l.received(f, 0).unwrap();
        assert!(l.received(f, 0).is_err());
        assert_eq!(l.counts().held, 1);
    }

    #[test]
    fn unpost_returns_the_frame() {
        let mut l = FrameLedger::new(2, 1);
        let f = l.post_fill(0).unwrap();
        l.unpost_fill(f, 0).unwrap();
        assert_eq!(l.counts().free, 2);
        assert!(l.unpost_fill(f, 0).is_err());
        l.audit().unwrap();
    }

    /// Drives the ledger with random operations against a trivially correct model
    /// (one `FrameState` per frame) and checks after every step that the ledger
    /// agrees with the model, that counts add up, and that every refused operation
    /// was one the model also considers illegal.
    #[test]
    fn random_walk_matches_model_and_counts_always_add_up() {
        const TOTAL: u32 = 64;
        const DEVS: usize = 2;
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            // xorshift64*: deterministic, no dependency.
            rng ^= rng >> 12;
            rng ^= rng << 25;
            rng ^= rng >> 27;
            rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
        };
        for _run in 0..20 {
            let mut l = FrameLedger::new(TOTAL, DEVS);
            let mut model = vec![FrameState::Free; TOTAL as usize];
            for _ in 0..5_000 {
                let r = next();
                let frame = (r >> 8) as u32 % (TOTAL + 2); // sometimes out of range
                let dev = ((r >> 40) % DEVS as u64) as DeviceIdx;
                let m = model.get(frame as usize).copied();
                match r % 7 {
                    0 => {
                        let got = l.post_fill(dev);
                        match got {
                            Some(f) => {
                                assert_eq!(model[f as usize], FrameState::Free);
                                model[f as usize] = FrameState::Fill(dev);
                            }
                            None => assert!(model.iter().all(|s| *s != FrameState::Free)),
                        }
                    }
                    1 => {
                        let ok = l.received(frame, dev).is_ok();
                        assert_eq!(ok, m == Some(FrameState::Fill(dev)));
                        if ok {
                            model[frame as usize] = FrameState::Held;
                        }
                    }
                    2 => {
                        let ok = l.transmitted(frame, dev).is_ok();
                        assert_eq!(ok, m == Some(FrameState::Held));
                        if ok {
                            model[frame as usize] = FrameState::Tx(dev);
                        }
                    }
                    3 => {
                        let ok = l.recycle(frame).is_ok();
                        assert_eq!(ok, m == Some(FrameState::Held));
                        if ok {
                            model[frame as usize] = FrameState::Free;
                        }
                    }
                    4 => {
                        let ok = l.completed(frame, dev).is_ok();
                        assert_eq!(ok, m == Some(FrameState::Tx(dev)));
                        if ok {
                            model[frame as usize] = FrameState::Free;
                        }
                    }
                    5 => {
                        let got = l.take_free();
                        match got {
                            Some(f) => {
                                assert_eq!(model[f as usize], FrameState::Free);
                                model[f as usize] = FrameState::Held;
                            }
                            None => assert!(model.iter().all(|s| *s != FrameState::Free)),
                        }
                    }
                    _ => {
                        let ok = l.unpost_fill(frame, dev).is_ok();
                        assert_eq!(ok, m == Some(FrameState::Fill(dev)));
                        if ok {
                            model[frame as usize] = FrameState::Free;
                        }
                    }
                }
                // No frame is ever both in a fill ring and a TX ring: each frame has
                // exactly one state, and the ledger agrees with the model on it.
                for (i, s) in model.iter().enumerate() {
                    assert_eq!(l.state(i as u32), Some(*s));
                }
                assert_eq!(l.counts().accounted(), TOTAL);
            }
            l.audit().unwrap();
        }
    }

    #[test]
    fn audit_detects_counter_drift() {
        let mut l = FrameLedger::new(4, 1);
        l.counts.held += 1;
        assert!(matches!(l.audit(), Err(AuditError::CountMismatch { .. })));
    }
}
