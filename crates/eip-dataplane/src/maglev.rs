//! Maglev consistent hashing (Eisenbud et al., NSDI'16, §3.4), with weights.
//!
//! A lookup table of prime size `M` is filled by letting every backend claim slots
//! in the order of its own permutation `(offset + j * skip) mod M`. Offsets and skips
//! come from a fixed hash of the backend's address and port, so every POP builds the
//! same table from the same backend set without talking to the others, and removing
//! one backend mostly reassigns only the slots it held.
//!
//! Weights: the paper's population loop gives each backend one turn per round. Here a
//! backend earns `weight` credit per round and claims a slot each time its credit
//! reaches the largest weight, so slot counts follow the weights; weight 0 (drained)
//! claims nothing.
//!
//! Tables are built by the control side only, never on a worker.

use crate::flow::{fmix64, FastMod, SEED};
use std::net::IpAddr;

/// Primes used as table sizes: the smallest one with at least
/// [`SLOTS_PER_BACKEND`] slots per backend is chosen.
pub const TABLE_SIZES: [usize; 11] = [
    251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65537, 131071, 262139,
];

/// `x % m` without a division for each size of [`TABLE_SIZES`], in that order.
const FAST_MODS: [FastMod; TABLE_SIZES.len()] = {
    let mut all = [FastMod::new(1); TABLE_SIZES.len()];
    let mut i = 0;
    while i < TABLE_SIZES.len() {
        all[i] = FastMod::new(TABLE_SIZES[i] as u32);
        i += 1;
    }
    all
};

/// The division-free remainder by `len` when it is one of [`TABLE_SIZES`].
#[inline(always)]
pub fn fast_mod(len: usize) -> Option<FastMod> {
    let i = match len {
        251 => 0,
        509 => 1,
        1021 => 2,
        2039 => 3,
        4093 => 4,
        8191 => 5,
        16381 => 6,
        32749 => 7,
        65537 => 8,
        131071 => 9,
        262139 => 10,
        _ => return None,
    };
    Some(FAST_MODS[i])
}

/// Slots per backend that keeps weight error near 1% (the paper uses M >> N).
pub const SLOTS_PER_BACKEND: usize = 100;

/// Largest number of backends in one table (slots hold `u16` indices).
pub const MAX_BACKENDS: usize = 2600;

/// Picks the table size for `backends` backends.
pub fn table_size_for(backends: usize) -> usize {
    let want = backends.saturating_mul(SLOTS_PER_BACKEND);
    TABLE_SIZES
        .iter()
        .copied()
        .find(|&m| m >= want)
        .unwrap_or(TABLE_SIZES[TABLE_SIZES.len() - 1])
}

/// Identity of a backend for hashing: its address (IPv4 as IPv4-mapped IPv6) and port.
pub fn backend_key(addr: IpAddr, port: u16) -> u64 {
    let a = match addr {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    };
    fmix64(fmix64(SEED ^ (a >> 64) as u64) ^ a as u64) ^ port as u64
}

const OFFSET_SEED: u64 = 0x0FF5_E70F_F5E7_0FF5;
const SKIP_SEED: u64 = 0x5C1B_5C1B_5C1B_5C1B;

/// Builds a lookup table of `size` slots (a prime from [`TABLE_SIZES`]) over backends
/// given as `(key, weight)`. Each slot holds a backend index. Returns an empty table
/// when no backend has a positive weight.
///
/// # Panics
/// If there are more than [`MAX_BACKENDS`] backends or `size` is not at least 2:
/// the table builder validates both before calling.
pub fn build(backends: &[(u64, u32)], size: usize) -> Vec<u16> {
    assert!(backends.len() <= MAX_BACKENDS && size >= 2);
    let max_weight = backends.iter().map(|b| b.1).max().unwrap_or(0);
    if max_weight == 0 {
        return Vec::new();
    }
    let m = size as u64;
    let perms: Vec<(u64, u64)> = backends
        .iter()
        .map(|&(key, _)| {
            let offset = fmix64(key ^ OFFSET_SEED) % m;
            let skip = fmix64(key ^ SKIP_SEED) % (m - 1) + 1;
            (offset, skip)
        })
        .collect();
    let mut next = vec![0u64; backends.len()];
    let mut credit = vec![0u64; backends.len()];
    let mut table = vec![u16::MAX; size];
    let mut filled = 0usize;
    'fill: loop {
        for (i, &(_, weight)) in backends.iter().enumerate() {
            credit[i] += weight as u64;
            if credit[i] < max_weight as u64 {
                continue;
            }
            credit[i] -= max_weight as u64;
            let (offset, skip) = perms[i];
            let mut slot = ((offset + next[i] * skip) % m) as usize;
            while table[slot] != u16::MAX {
                next[i] += 1;
                slot = ((offset + next[i] * skip) % m) as usize;
            }
            table[slot] = i as u16;
            next[i] += 1;
            filled += 1;
            if filled == size {
                break 'fill;
            }
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn keys(n: usize) -> Vec<u64> {
        (0..n)
            .map(|i| backend_key(IpAddr::V4(Ipv4Addr::from(0x0A00_0000 + i as u32)), 80))
            .collect()
    }

    fn counts(table: &[u16], n: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for &b in table {
            c[b as usize] += 1;
        }
        c
    }

    #[test]
    fn every_slot_is_filled_and_equal_weights_share_evenly() {
        let backends: Vec<_> = keys(10).into_iter().map(|k| (k, 1)).collect();
        let size = table_size_for(10);
        let table = build(&backends, size);
        assert_eq!(table.len(), size);
        for c in counts(&table, 10) {
            // The paper: with equal weights each backend gets floor or ceil of M/N.
            assert!(c.abs_diff(size / 10) <= 1, "{c}");
        }
    }

    #[test]
    fn thousand_weighted_backends_follow_their_weights() {
        let n = 1000;
        let backends: Vec<_> = keys(n)
            .into_iter()
            .enumerate()
            .map(|(i, k)| (k, 1 + (i % 4) as u32))
            .collect();
        let size = table_size_for(n);
        let table = build(&backends, size);
        let total_weight: u32 = backends.iter().map(|b| b.1).sum();
        let c = counts(&table, n);
        let mut worst = 0f64;
        for (i, &(_, w)) in backends.iter().enumerate() {
            let expected = size as f64 * w as f64 / total_weight as f64;
            let err = (c[i] as f64 - expected).abs() / expected;
            worst = worst.max(err);
        }
        assert!(worst < 0.03, "worst relative error {worst:.4}");
    }

    #[test]
    fn removing_one_backend_moves_little_else() {
        let n = 1000;
        let all: Vec<_> = keys(n).into_iter().map(|k| (k, 1)).collect();
        let size = table_size_for(n);
        let before = build(&all, size);
        let removed = 417usize;
        let rest: Vec<_> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != removed)
            .map(|(_, b)| *b)
            .collect();
        let after = build(&rest, size);
        // Map indices of `rest` back to the original numbering.
        let original = |i: u16| if (i as usize) < removed { i } else { i + 1 };
        let mut moved_other = 0usize;
        for (slot, (&b, &a)) in before.iter().zip(&after).enumerate() {
            if b as usize == removed {
                assert_ne!(original(a) as usize, removed, "slot {slot}");
            } else if original(a) != b {
                moved_other += 1;
            }
        }
        // Only the removed backend's ~1/N of slots must move; the paper bounds the
        // rest as small. Allow 2% of the table.
        assert!(
            (moved_other as f64) < size as f64 * 0.02,
            "{moved_other} of {size} slots of surviving backends moved"
        );
    }

    #[test]
    fn drained_backends_get_nothing_and_all_drained_is_empty() {
        let k = keys(3);
        let table = build(&[(k[0], 1), (k[1], 0), (k[2], 1)], 251);
        assert!(!table.contains(&1));
        assert!(build(&[(k[0], 0)], 251).is_empty());
        assert!(build(&[], 251).is_empty());
    }

    #[test]
    fn the_same_backends_give_the_same_table() {
        let backends: Vec<_> = keys(7).into_iter().map(|k| (k, 3)).collect();
        assert_eq!(build(&backends, 509), build(&backends, 509));
    }

    #[test]
    fn every_table_size_has_its_fast_remainder() {
        for (i, m) in TABLE_SIZES.into_iter().enumerate() {
            assert_eq!(fast_mod(m), Some(FAST_MODS[i]));
            assert_eq!(
                fast_mod(m).unwrap().remainder(u32::MAX),
                u32::MAX % m as u32
            );
        }
        assert_eq!(fast_mod(250), None);
    }

    #[test]
    fn table_sizes_are_prime() {
        for m in TABLE_SIZES {
            assert!((2..m).take_while(|d| d * d <= m).all(|d| m % d != 0), "{m}");
        }
        assert_eq!(table_size_for(1), 251);
        assert_eq!(table_size_for(1000), 131071);
    }
}
