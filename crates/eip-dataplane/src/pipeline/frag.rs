//! Per-worker memory of where each fragmented datagram went.
//!
//! Only the first fragment carries ports, so only it can choose a service backend;
//! later fragments look up the choice here by (source, EIP, protocol, IP ID). The
//! table is a fixed array allocated once: no allocation on the hot path, and an old
//! entry is simply overwritten. RSS hashes fragments on addresses only, so all
//! fragments of a datagram reach the same worker.

use super::Timestamp;

/// How long a first fragment's decision is remembered (RFC 791's suggested
/// reassembly timer is 15 s; Linux uses 30 s).
pub const FRAGMENT_TIMEOUT_NS: u64 = 30_000_000_000;

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    src: u128,
    ident: u32,
    eip: u32,
    protocol: u8,
    valid: bool,
    expires: u64,
    backend: [u8; 16],
    path: u16,
}

/// Decision recorded for a fragmented datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentTarget {
    /// Backend address bytes (first 4 for IPv4).
    pub backend: [u8; 16],
    pub path: u16,
}

/// Direct-mapped table of recent fragmented datagrams.
#[derive(Debug)]
pub struct FragmentTable {
    slots: Box<[Entry]>,
}

impl FragmentTable {
    /// A table with `slots` entries (rounded up to a power of two).
    pub fn new(slots: usize) -> Self {
        let n = slots.max(1).next_power_of_two();
        FragmentTable {
            slots: vec![Entry::default(); n].into_boxed_slice(),
        }
    }

    /// Number of entries: fixed at creation, whatever arrives.
    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    #[inline(always)]
    fn index(&self, src: u128, ident: u32, eip: u32, protocol: u8) -> usize {
        let h = crate::flow::fmix64(
            (src as u64)
                ^ ((src >> 64) as u64)
                ^ ((ident as u64) << 32 | eip as u64)
                ^ protocol as u64,
        );
        (h as usize) & (self.slots.len() - 1)
    }

    /// Remembers the decision made for a first fragment.
    #[inline]
    pub fn insert(
        &mut self,
        now: Timestamp,
        src: u128,
        ident: u32,
        eip: u32,
        protocol: u8,
        target: FragmentTarget,
    ) {
        let i = self.index(src, ident, eip, protocol);
        self.slots[i] = Entry {
            src,
            ident,
            eip,
            protocol,
            valid: true,
            expires: now.0.saturating_add(FRAGMENT_TIMEOUT_NS),
            backend: target.backend,
            path: target.path,
        };
    }

    /// The decision for a later fragment, if its first fragment was seen recently.
    #[inline]
    pub fn lookup(
        &self,
        now: Timestamp,
        src: u128,
        ident: u32,
        eip: u32,
        protocol: u8,
    ) -> Option<FragmentTarget> {
        let e = &self.slots[self.index(src, ident, eip, protocol)];
        (e.valid
            && e.src == src
            && e.ident == ident
            && e.eip == eip
            && e.protocol == protocol
            && now.0 < e.expires)
            .then_some(FragmentTarget {
                backend: e.backend,
                path: e.path,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_until_timeout_and_matches_whole_key() {
        let mut t = FragmentTable::new(64);
        let target = FragmentTarget {
            backend: [10, 1, 0, 21, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            path: 1,
        };
        t.insert(Timestamp(1), 7, 42, 3, 17, target);
        assert_eq!(t.lookup(Timestamp(2), 7, 42, 3, 17), Some(target));
        assert_eq!(t.lookup(Timestamp(2), 7, 43, 3, 17), None);
        assert_eq!(t.lookup(Timestamp(2), 8, 42, 3, 17), None);
        assert_eq!(t.lookup(Timestamp(2), 7, 42, 3, 6), None);
        assert_eq!(
            t.lookup(Timestamp(1 + FRAGMENT_TIMEOUT_NS), 7, 42, 3, 17),
            None
        );
    }
}
