//! The flow hash: one deterministic function of a flow's 5-tuple.
//!
//! Every POP must send a given flow to the same backend and every worker must pick
//! the same path for it, with no shared state. So the hash has no random seed and
//! is specified here precisely enough to be re-implemented (the fixture generator in
//! `pcap-fixtures/` does, in Python): folded multiplications (the 128-bit product of
//! two 64-bit words, its halves XORed, as in wyhash and foldhash) over 64-bit words.
//!
//! - `absorb(h, a, b) = fold_mul(h ^ a ^ K[0], b ^ K[1])`, from `h = 0`:
//!   - IPv4: `absorb(0, src << 32 | dst, ports)`
//!   - IPv6: absorb (src high 64, src low 64), then (dst high 64, dst low 64), then
//!     (0, ports)
//! - then `fold_mul(h ^ K[2], K[3])`,
//!
//! where `ports = sport << 32 | dport << 16 | protocol`. For ICMP echo, `sport` is the
//! echo identifier and `dport` is 0. For packets with no ports (other protocols), both
//! are 0. Two multiplications for IPv4: 12 instructions, where the chain of two
//! `fmix64` it replaced at stop 26 took four multiplications and 33. Neither operand of the IPv4 product can be zero:
//! `K[0]`'s low half is 0 and no EIP is 0.0.0.0, and the ports word is below 2^48
//! while `K[1]` has bits above.

/// Start value of the hash chain of Maglev's backend keys (the 64-bit golden
/// ratio).
pub const SEED: u64 = 0x9E37_79B9_7F4A_7C15;

/// The flow hash's constants: digits of pi (nothing up the sleeve), the first with its
/// low half cleared (above).
pub const K: [u64; 4] = [
    0x243F_6A88_0000_0000,
    0x85A3_08D3_1319_8A2E,
    0x0370_7344_A409_3822,
    0x299F_31D0_082E_FA98,
];

/// MurmurHash3's 64-bit finaliser: every input bit affects every output bit. Mixes
/// the keys of Maglev's backends and paths (control side) and of the fragment
/// table (per fragment, on the workers).
#[inline(always)]
pub const fn fmix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    x ^= x >> 33;
    x = x.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    x ^= x >> 33;
    x
}

/// The 128-bit product of `a` and `b`, its two halves XORed: one `mul` on x86-64.
#[inline(always)]
pub const fn fold_mul(a: u64, b: u64) -> u64 {
    let p = a as u128 * b as u128;
    p as u64 ^ (p >> 64) as u64
}

#[inline(always)]
const fn absorb(h: u64, a: u64, b: u64) -> u64 {
    fold_mul(h ^ a ^ K[0], b ^ K[1])
}

#[inline(always)]
const fn finish(h: u64) -> u64 {
    fold_mul(h ^ K[2], K[3])
}

#[inline(always)]
const fn ports_word(sport: u16, dport: u16, protocol: u8) -> u64 {
    (sport as u64) << 32 | (dport as u64) << 16 | protocol as u64
}

/// Hash of an IPv4 flow as seen from the client (client is `src`, EIP is `dst`).
#[inline(always)]
pub fn hash_v4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, protocol: u8) -> u64 {
    let [s0, s1, s2, s3] = src;
    let [d0, d1, d2, d3] = dst;
    let [p0, p1] = sport.to_be_bytes();
    let [q0, q1] = dport.to_be_bytes();
    hash_v4_wire(
        &[s0, s1, s2, s3, d0, d1, d2, d3],
        &[p0, p1, q0, q1],
        protocol,
    )
}

/// [`hash_v4`] from the packet's bytes: the IPv4 source and destination
/// addresses as they follow each other in the header, the transport header's
/// first four bytes (source and destination port) and the protocol. Two loads
/// where the fast path would assemble the words from the parsed fields.
#[inline(always)]
pub fn hash_v4_wire(addrs: &[u8; 8], ports: &[u8; 4], protocol: u8) -> u64 {
    let ports = u64::from(u32::from_be_bytes(*ports)) << 16 | u64::from(protocol);
    finish(absorb(0, u64::from_be_bytes(*addrs), ports))
}

/// Hash of an IPv6 flow as seen from the client.
#[inline(always)]
pub fn hash_v6(src: &[u8; 16], dst: &[u8; 16], sport: u16, dport: u16, protocol: u8) -> u64 {
    let s = u128::from_be_bytes(*src);
    let d = u128::from_be_bytes(*dst);
    let h = absorb(0, (s >> 64) as u64, s as u64);
    let h = absorb(h, (d >> 64) as u64, d as u64);
    finish(absorb(h, 0, ports_word(sport, dport, protocol)))
}

/// Outer UDP source port for VXLAN (RFC 7348 §5: from a hash of the inner flow, in
/// the dynamic range 49152-65535) so that ECMP in the backbone spreads flows.
#[inline(always)]
pub fn vxlan_source_port(hash: u64) -> u16 {
    0xC000 | ((hash >> 16) as u16 & 0x3FFF)
}

/// Index into a Maglev lookup table of `len` entries (backend choice): the low half
/// of the hash modulo `len` (the path takes the high half). For the table sizes of
/// [`crate::maglev::TABLE_SIZES`] (every table the builder makes) without a division
/// instruction, by a constant per size; other lengths divide.
#[inline(always)]
pub fn backend_slot(hash: u64, len: usize) -> usize {
    match crate::maglev::fast_mod(len) {
        Some(m) => m.remainder(hash as u32) as usize,
        None => (hash as u32 % len as u32) as usize,
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
    fn backend_slot_is_the_remainder_for_every_length() {
        for len in crate::maglev::TABLE_SIZES
            .into_iter()
            .chain([1, 7, 100, 65535])
        {
            for i in 0..5_000u64 {
                let h = fmix64(i ^ 0xABCD);
                assert_eq!(backend_slot(h, len), (h as u32 % len as u32) as usize);
            }
        }
    }

    /// Pinned values: the Python fixture generator re-implements this hash, and every
    /// POP of a deployment must agree, so the function must never change by accident.
    #[test]
    fn hash_is_pinned() {
        assert_eq!(fmix64(0), 0);
        assert_eq!(fmix64(1), 0xB456_BCFC_34C2_CB2C);
        assert_eq!(fold_mul(u64::MAX, u64::MAX), 0xFFFF_FFFF_FFFF_FFFE ^ 1);
        let h = hash_v4([203, 0, 113, 2], [192, 0, 2, 10], 40000, 80, 6);
        // The same value from pcap-fixtures/make_fixtures.py's flow_hash.
        assert_eq!(h, 0x7199_8022_8979_E637);
        let v6 = |s: &str| s.parse::<std::net::Ipv6Addr>().unwrap().octets();
        assert_eq!(
            hash_v6(&v6("2001:db8::1"), &v6("2001:db8:1::10"), 40000, 443, 6),
            0xA71C_36B2_2712_CE85
        );
        assert_eq!(h, hash_v4([203, 0, 113, 2], [192, 0, 2, 10], 40000, 80, 6));
        assert_ne!(h, hash_v4([203, 0, 113, 2], [192, 0, 2, 10], 40001, 80, 6));
        assert_ne!(h, hash_v4([192, 0, 2, 10], [203, 0, 113, 2], 80, 40000, 6));
    }

    #[test]
    fn wire_hash_is_the_hash() {
        for i in 0..1_000u64 {
            let b = fmix64(i).to_be_bytes();
            let (src, dst) = ([b[0], b[1], b[2], b[3]], [b[4], b[5], b[6], b[7]]);
            let (sport, dport) = (i as u16 ^ 0x5a5a, (i >> 3) as u16);
            let ports = [sport.to_be_bytes(), dport.to_be_bytes()].concat();
            assert_eq!(
                hash_v4_wire(&b, ports.as_slice().try_into().unwrap(), i as u8),
                hash_v4(src, dst, sport, dport, i as u8)
            );
        }
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
