//! The flow hash: one deterministic function of a flow's 5-tuple.
//!
//! Every POP must send a given flow to the same backend and every worker must pick
//! the same path for it, with no shared state. So the hash has no random seed and
//! is specified here precisely enough to be re-implemented (the fixture generator in
//! `pcap-fixtures/` does, in Python): a chain of MurmurHash3 `fmix64` finalisers over
//! 64-bit words, starting from [`SEED`].
//!
//! Words, in order:
//! - IPv4: `src << 32 | dst`, then `sport << 32 | dport << 16 | protocol`
//! - IPv6: src high 64, src low 64, dst high 64, dst low 64, then the ports word
//!
//! For ICMP echo, `sport` is the echo identifier and `dport` is 0. For packets with
//! no ports (other protocols), both are 0.

/// Start value of the hash chain (the 64-bit golden ratio).
pub const SEED: u64 = 0x9E37_79B9_7F4A_7C15;

/// MurmurHash3's 64-bit finaliser: every input bit affects every output bit.
#[inline(always)]
pub const fn fmix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    x ^= x >> 33;
    x = x.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    x ^= x >> 33;
    x
}

#[inline(always)]
const fn ports_word(sport: u16, dport: u16, protocol: u8) -> u64 {
    (sport as u64) << 32 | (dport as u64) << 16 | protocol as u64
}

/// Hash of an IPv4 flow as seen from the client (client is `src`, EIP is `dst`).
#[inline(always)]
pub fn hash_v4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, protocol: u8) -> u64 {
    let addrs = (u32::from_be_bytes(src) as u64) << 32 | u32::from_be_bytes(dst) as u64;
    let h = fmix64(SEED ^ addrs);
    fmix64(h ^ ports_word(sport, dport, protocol))
}

/// Hash of an IPv6 flow as seen from the client.
#[inline(always)]
pub fn hash_v6(src: &[u8; 16], dst: &[u8; 16], sport: u16, dport: u16, protocol: u8) -> u64 {
    let s = u128::from_be_bytes(*src);
    let d = u128::from_be_bytes(*dst);
    let mut h = SEED;
    for word in [(s >> 64) as u64, s as u64, (d >> 64) as u64, d as u64] {
        h = fmix64(h ^ word);
    }
    fmix64(h ^ ports_word(sport, dport, protocol))
}

/// Outer UDP source port for VXLAN (RFC 7348 §5: from a hash of the inner flow, in
/// the dynamic range 49152-65535) so that ECMP in the backbone spreads flows.
#[inline(always)]
pub fn vxlan_source_port(hash: u64) -> u16 {
    0xC000 | ((hash >> 16) as u16 & 0x3FFF)
}

/// Index into a Maglev lookup table of `len` entries (backend choice): `hash % len`.
/// For the table sizes of [`crate::maglev::TABLE_SIZES`] (every table the builder
/// makes) without a division instruction, by a constant per size; other lengths
/// divide.
#[inline(always)]
pub fn backend_slot(hash: u64, len: usize) -> usize {
    match crate::maglev::fast_mod(len) {
        Some(m) => m.remainder(hash) as usize,
        None => (hash % len as u64) as usize,
    }
}

/// Index into a region's path table of `len` entries. Uses the high half of the
/// hash so that path choice is independent of the backend choice. (32-bit
/// arithmetic: same result as `(hash >> 32) % len`, a cheaper division.)
#[inline(always)]
pub fn path_slot(hash: u64, len: usize) -> usize {
    ((hash >> 32) as u32 % len as u32) as usize
}

/// `x % d` without a division instruction, for a divisor fixed when tables are
/// built (Lemire, Kaser, Kurz, "Faster remainder by direct computation", 2019).
/// Gives exactly `x % d` for every 32-bit `x`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FastMod {
    divisor: u32,
    magic: u64,
}

impl FastMod {
    /// Precomputes the constant for divisor `d` (at least 1).
    pub const fn new(d: u32) -> Self {
        assert!(d > 0, "FastMod divisor must be positive");
        FastMod {
            divisor: d,
            magic: (u64::MAX / d as u64).wrapping_add(1),
        }
    }

    /// `x % divisor`.
    #[inline(always)]
    pub fn remainder(self, x: u32) -> u32 {
        let low = self.magic.wrapping_mul(x as u64);
        ((low as u128 * self.divisor as u128) >> 64) as u32
    }
}

/// [`FastMod`] for 64-bit dividends: `x % d` for every 64-bit `x` with two
/// 64x64 -> 128-bit multiplications and two 128-bit ones, no division
/// (the same paper, with a 128-bit constant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FastMod64 {
    divisor: u64,
    magic: u128,
}

impl FastMod64 {
    /// Precomputes the constant for divisor `d` (at least 1).
    pub const fn new(d: u64) -> Self {
        assert!(d > 0, "FastMod64 divisor must be positive");
        FastMod64 {
            divisor: d,
            magic: (u128::MAX / d as u128).wrapping_add(1),
        }
    }

    /// `x % divisor`: the high 64 bits of the 192-bit product
    /// `(magic * x mod 2^128) * divisor`.
    #[inline(always)]
    pub fn remainder(self, x: u64) -> u64 {
        let low = self.magic.wrapping_mul(x as u128);
        let d = self.divisor as u128;
        let below = (low as u64 as u128 * d) >> 64;
        (((low >> 64) * d + below) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_mod_equals_remainder() {
        for d in [1u32, 2, 3, 7, 251, 509, 1021, 65537, 262139, u32::MAX] {
            let f = FastMod::new(d);
            for i in 0..20_000u64 {
                let x = fmix64(i) as u32;
                assert_eq!(f.remainder(x), x % d, "{x} % {d}");
            }
            assert_eq!(f.remainder(u32::MAX), u32::MAX % d);
            assert_eq!(f.remainder(0), 0);
        }
    }

    #[test]
    fn fast_mod64_equals_remainder() {
        let sizes = crate::maglev::TABLE_SIZES.map(|m| m as u64);
        for d in sizes
            .into_iter()
            .chain([1, 2, 3, 1 << 40, u64::MAX - 58, u64::MAX])
        {
            let f = FastMod64::new(d);
            for i in 0..20_000u64 {
                let x = fmix64(i);
                assert_eq!(f.remainder(x), x % d, "{x} % {d}");
            }
            for x in [0, 1, d - 1, d, u64::MAX, u64::MAX - 1] {
                assert_eq!(f.remainder(x), x % d, "{x} % {d}");
            }
        }
    }

    #[test]
    fn backend_slot_is_the_remainder_for_every_length() {
        for len in crate::maglev::TABLE_SIZES
            .into_iter()
            .chain([1, 7, 100, 65535])
        {
            for i in 0..5_000u64 {
                let h = fmix64(i ^ 0xABCD);
                assert_eq!(backend_slot(h, len), (h % len as u64) as usize);
            }
        }
    }

    /// Pinned values: the Python fixture generator re-implements this hash, and every
    /// POP of a deployment must agree, so the function must never change by accident.
    #[test]
    fn hash_is_pinned() {
        assert_eq!(fmix64(0), 0);
        assert_eq!(fmix64(1), 0xB456_BCFC_34C2_CB2C);
        let h = hash_v4([203, 0, 113, 2], [192, 0, 2, 10], 40000, 80, 6);
        assert_eq!(h, hash_v4([203, 0, 113, 2], [192, 0, 2, 10], 40000, 80, 6));
        assert_ne!(h, hash_v4([203, 0, 113, 2], [192, 0, 2, 10], 40001, 80, 6));
        assert_ne!(h, hash_v4([192, 0, 2, 10], [203, 0, 113, 2], 80, 40000, 6));
    }

    #[test]
    fn vxlan_port_is_in_the_dynamic_range() {
        for i in 0..10_000u64 {
            let p = vxlan_source_port(fmix64(i));
            assert!(p >= 49152);
        }
    }

    #[test]
    fn v6_hash_uses_every_address_word() {
        let a = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let mut b = a;
        b[15] = 2;
        let mut c = a;
        c[0] = 0x30;
        let h = |s: &[u8; 16]| hash_v6(s, &a, 1, 2, 17);
        assert_ne!(h(&a), h(&b));
        assert_ne!(h(&a), h(&c));
    }
}
