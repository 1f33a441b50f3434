//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! A checksum is built from partial sums: [`sum`] over bytes, [`pseudo_header_v4`] /
//! [`pseudo_header_v6`] for the transport pseudo-headers. Partial sums are plain
//! `u64`s that may be added with `+` and are reduced to 16 bits only once, by
//! [`fold`] or [`finish`].
//!
//! NAT rewrites a handful of fields per packet; recomputing the transport checksum
//! over the whole segment would cost a pass over the payload, so the pipeline uses
//! the `update*` functions, which only look at the old and new field values. The
//! fast path's own updates sum 32-bit words with end-around carry ([`add32`]) and
//! fold once ([`fold32`]), on words as they lie in memory (RFC 1071 §2(B): the
//! checksum of byte-swapped words is the byte-swapped checksum).

/// Ones-complement partial sum of `data` as big-endian 16-bit words; an odd trailing
/// byte is padded with a zero byte (RFC 1071 §4.1).
///
/// The result is not folded, only reduced to at most 33 bits, so partial sums of
/// different pieces (at even offsets) can be added with `+` before [`fold`].
/// Correct for inputs up to 16 GiB.
#[inline]
pub fn sum(data: &[u8]) -> u64 {
    // A big-endian 32-bit word is congruent to the sum of its two 16-bit halves modulo
    // 0xFFFF, so 32-bit words can be added into a 64-bit accumulator without carry
    // handling: 16 bytes per step, which LLVM vectorises.
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(16);
    for c in &mut chunks {
        acc += u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            + u64::from(u32::from_be_bytes([c[4], c[5], c[6], c[7]]))
            + u64::from(u32::from_be_bytes([c[8], c[9], c[10], c[11]]))
            + u64::from(u32::from_be_bytes([c[12], c[13], c[14], c[15]]));
    }
    let mut words = chunks.remainder().chunks_exact(2);
    for w in &mut words {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        acc += u64::from(*last) << 8;
    }
    // Leave headroom so callers can add many partial sums without overflow.
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    (acc & 0xffff_ffff) + (acc >> 32)
}

/// Folds the carries of a partial sum into 16 bits (end-around carry).
///
/// Any non-zero sum folds into `1..=0xFFFF`; only a zero sum folds to 0.
#[inline]
pub fn fold(sum: u64) -> u16 {
    let mut s = (sum & 0xffff_ffff) + (sum >> 32); // < 2^33
    s = (s & 0xffff) + (s >> 16); // < 2^17 + 2^16
    s = (s & 0xffff) + (s >> 16); // <= 0x1_0001
    s = (s & 0xffff) + (s >> 16); // <= 0xffff
    s as u16
}

/// The checksum field value for a partial sum: `!fold(sum)`.
///
/// Over a buffer that already contains its checksum field, `finish(..) == 0` means
/// the checksum is correct.
#[inline]
pub fn finish(sum: u64) -> u16 {
    !fold(sum)
}

/// Partial sum of the IPv4 pseudo-header (RFC 793 §3.1, RFC 768) for a transport
/// segment of `length` bytes.
#[inline]
pub fn pseudo_header_v4(src: [u8; 4], dst: [u8; 4], protocol: u8, length: u16) -> u64 {
    u64::from(u32::from_be_bytes(src))
        + u64::from(u32::from_be_bytes(dst))
        + u64::from(protocol)
        + u64::from(length)
}

/// Partial sum of the IPv6 pseudo-header (RFC 8200 §8.1); `length` is the
/// upper-layer packet length, extension headers excluded.
#[inline]
pub fn pseudo_header_v6(src: &[u8; 16], dst: &[u8; 16], next_header: u8, length: u32) -> u64 {
    sum(src) + sum(dst) + u64::from(length) + u64::from(next_header)
}

/// Ones-complement addition of two 32-bit words (end-around carry): `add` and
/// `adc`. A sum of such words is congruent to the checksum's sum modulo 0xFFFF
/// (which divides 0xFFFF_FFFF), so [`fold32`] reduces it. Zero only when both are.
#[inline(always)]
pub fn add32(a: u32, b: u32) -> u32 {
    let (s, carry) = a.overflowing_add(b);
    s + u32::from(carry)
}

/// Folds a 32-bit ones-complement sum into 16 bits: the two halves added with
/// end-around carry, by adding the word rotated by 16 and keeping the upper half
/// (as Linux's `csum_fold`). Zero only for a zero sum.
#[inline(always)]
pub fn fold32(sum: u32) -> u16 {
    (sum.wrapping_add(sum.rotate_right(16)) >> 16) as u16
}

/// The checksum field's two bytes, as they lie in the packet, after a 16-bit
/// word (at an even offset) grew by `by` (at least 1) without passing 0xFFFF:
/// [`update16`] with `~m + m'` = `by` (mod 0xFFFF), one carry step instead of
/// three, and the same bytes (for `by` 0 it may give 0xFFFF where that gives 0).
/// Computed in memory order (RFC 1071 §2(B)): a byte swap is a multiplication
/// by 256 modulo 0xFFFF, so the swapped increase is the increase of the swapped
/// word, and neither the field nor the result is swapped.
#[inline(always)]
pub fn update16_grown_bytes(checksum: [u8; 2], by: u16) -> [u8; 2] {
    let by = u16::from_ne_bytes(by.to_be_bytes());
    let s = u32::from(!u16::from_ne_bytes(checksum)) + u32::from(by); // <= 0x1FFFE
    (!((s & 0xffff) + (s >> 16)) as u16).to_ne_bytes()
}

/// Checksum after the 16-bit word `old` (at an even offset of the covered data)
/// became `new`: RFC 1624 eqn. 3, `HC' = ~(~HC + ~m + m')`.
///
/// Eqn. 3 gives exactly what a full recomputation gives (never 0xFFFF for non-zero
/// data), unlike RFC 1141's `HC' = HC + m + ~m'`, which can yield -0 (0xFFFF) where a
/// recomputation yields +0 (0x0000); see the `rfc1624_minus_zero` test.
#[inline]
pub fn update16(checksum: u16, old: u16, new: u16) -> u16 {
    !fold(u64::from(!checksum) + u64::from(!old) + u64::from(new))
}

/// [`update16`] for a 32-bit field at an even offset (an IPv4 address, a sequence
/// number): the two 16-bit words at once.
#[inline]
pub fn update32(checksum: u16, old: u32, new: u32) -> u16 {
    // `!old` as a 32-bit word is the sum of the complements of its two halves.
    !fold(u64::from(!checksum) + u64::from(!old) + u64::from(new))
}

/// [`update16`] for a field of any length (a 16-byte IPv6 address): `old` and `new`
/// are its bytes before and after, which must have the same length and start at an
/// even offset of the covered data.
///
/// A field at an odd offset contributes its bytes swapped: update with
/// byte-swapped words instead (as [`crate::wire::tcp::TcpPacket::clamp_mss`] does).
#[inline]
pub fn update_bytes(checksum: u16, old: &[u8], new: &[u8]) -> u16 {
    debug_assert_eq!(old.len(), new.len(), "update_bytes over different lengths");
    !fold(u64::from(!checksum) + u64::from(!fold(sum(old))) + sum(new))
}

/// A UDP checksum field value of 0 means "no checksum" (RFC 768); a computed 0 is
/// sent as 0xFFFF instead, which is the same value in ones-complement.
#[inline]
fn udp_nonzero(checksum: u16) -> u16 {
    if checksum == 0 {
        0xffff
    } else {
        checksum
    }
}

/// [`update16`] for a UDP checksum: an absent checksum (0) stays absent, a result
/// of 0 is sent as 0xFFFF (RFC 768).
///
/// Over IPv6 a zero UDP checksum is invalid to begin with; it is passed through
/// rather than replaced by a made-up value.
#[inline]
pub fn update_udp16(checksum: u16, old: u16, new: u16) -> u16 {
    if checksum == 0 {
        return 0;
    }
    udp_nonzero(update16(checksum, old, new))
}

/// [`update32`] with the UDP zero rule of [`update_udp16`].
#[inline]
pub fn update_udp32(checksum: u16, old: u32, new: u32) -> u16 {
    if checksum == 0 {
        return 0;
    }
    udp_nonzero(update32(checksum, old, new))
}

/// [`update_bytes`] with the UDP zero rule of [`update_udp16`].
#[inline]
pub fn update_udp_bytes(checksum: u16, old: &[u8], new: &[u8]) -> u16 {
    if checksum == 0 {
        return 0;
    }
    udp_nonzero(update_bytes(checksum, old, new))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Word-at-a-time reference, straight from RFC 1071 §4.1.
    fn naive(data: &[u8]) -> u16 {
        let mut s: u32 = 0;
        for w in data.chunks(2) {
            let word = u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]);
            s += u32::from(word);
            s = (s & 0xffff) + (s >> 16);
        }
        s as u16
    }

    /// Independent implementation: etherparse's checksum, which sums native-endian
    /// words and returns the result in native order (its callers apply `to_be`).
    fn etherparse_checksum(data: &[u8]) -> u16 {
        etherparse::checksum::Sum16BitWords::new()
            .add_slice(data)
            .ones_complement()
            .to_be()
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to 2ddf0, folded ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(sum(&data), 0x2ddf0);
        assert_eq!(fold(sum(&data)), 0xddf2);
        assert_eq!(finish(sum(&data)), 0x220d);
    }

    #[test]
    fn ipv4_header_vector() {
        // A textbook IPv4 header with checksum b861 in bytes 10..12.
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(finish(sum(&h)), 0, "verifies in place");
        h[10] = 0;
        h[11] = 0;
        assert_eq!(finish(sum(&h)), 0xb861);
        assert_eq!(finish(sum(&h)), etherparse_checksum(&h));
    }

    #[test]
    fn odd_lengths() {
        assert_eq!(sum(&[]), 0);
        assert_eq!(sum(&[0x01]), 0x0100);
        assert_eq!(sum(&[0x01, 0x02, 0x03]), 0x0102 + 0x0300);
        // 17 bytes: one 16-byte block plus a padded tail byte.
        let data: Vec<u8> = (1..=17).collect();
        assert_eq!(fold(sum(&data)), naive(&data));
        assert_eq!(finish(sum(&data)), etherparse_checksum(&data));
    }

    #[test]
    fn fold_edges() {
        assert_eq!(fold(0), 0);
        assert_eq!(fold(0xffff), 0xffff);
        assert_eq!(fold(0x1_0000), 1);
        assert_eq!(fold(0x1_fffe), 0xffff);
        // 2^64 - 1 is a multiple of 0xFFFF: non-zero, so it folds to -0.
        assert_eq!(fold(u64::MAX), 0xffff);
        assert_eq!(fold(0xffff_ffff_0000_0000), 0xffff);
        assert_eq!(finish(0), 0xffff);
    }

    #[test]
    fn sum_of_all_ones_does_not_overflow() {
        let data = vec![0xff; 65536];
        assert_eq!(fold(sum(&data)), 0xffff);
        assert!(sum(&data) < 1 << 33);
        // Partial sums add with `+`; all the ones vanish (they are -0), 255 is left.
        let s = sum(&data) + sum(&data) + pseudo_header_v6(&[0xff; 16], &[0xff; 16], 255, !0);
        assert_eq!(fold(s), 0x00ff);
    }

    #[test]
    fn pseudo_headers_match_byte_layout() {
        let (src, dst) = ([10, 0, 0, 1], [192, 0, 2, 200]);
        let mut v4 = Vec::new();
        v4.extend_from_slice(&src);
        v4.extend_from_slice(&dst);
        v4.extend_from_slice(&[0, 6, 0x05, 0xdc]);
        assert_eq!(fold(pseudo_header_v4(src, dst, 6, 1500)), fold(sum(&v4)));

        let s6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let d6 = [
            0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0, 0, 0, 0, 0xab, 0xcd,
        ];
        let mut v6 = Vec::new();
        v6.extend_from_slice(&s6);
        v6.extend_from_slice(&d6);
        v6.extend_from_slice(&0x0001_0203u32.to_be_bytes());
        v6.extend_from_slice(&[0, 0, 0, 58]);
        assert_eq!(
            fold(pseudo_header_v6(&s6, &d6, 58, 0x0001_0203)),
            fold(sum(&v6))
        );
    }

    proptest! {
        /// The 32-bit end-around-carry sum, folded, is the 64-bit sum folded.
        #[test]
        fn add32_then_fold32_is_fold(words in proptest::collection::vec(any::<u32>(), 1..6)) {
            let wide: u64 = words.iter().map(|&w| u64::from(w)).sum();
            let narrow = words.iter().fold(0, |acc, &w| add32(acc, w));
            prop_assert_eq!(fold32(narrow), fold(wide));
        }

        #[test]
        fn update16_grown_bytes_is_update16(checksum in any::<u16>(), old in any::<u16>(), by in 1u16..) {
            prop_assume!(u32::from(old) + u32::from(by) <= 0xffff);
            prop_assert_eq!(
                update16_grown_bytes(checksum.to_be_bytes(), by),
                update16(checksum, old, old + by).to_be_bytes()
            );
        }
    }

    #[test]
    fn fold32_edges() {
        assert_eq!(fold32(0), 0);
        assert_eq!(fold32(0xffff_ffff), 0xffff);
        assert_eq!(fold32(0xffff_0001), 1);
        assert_eq!(fold32(0x0001_ffff), 1);
        assert_eq!(add32(0xffff_ffff, 1), 1);
        assert_eq!(add32(0xffff_ffff, 0xffff_ffff), 0xffff_ffff);
    }

    /// RFC 1624 §4 example: HC = 0xDD2F, a word m = 0x5555 becomes m' = 0x3285, and
    /// the correct new checksum is +0 (0x0000). RFC 1141's `HC + m + ~m'` gives -0.
    #[test]
    fn rfc1624_minus_zero() {
        // Data whose checksum is 0xDD2F: [m, filler] with fold(m + filler) = 0x22D0.
        let mut data = [0x55, 0x55, 0xcd, 0x7a];
        assert_eq!(finish(sum(&data)), 0xdd2f);
        data[0] = 0x32;
        data[1] = 0x85;
        let recomputed = finish(sum(&data));
        assert_eq!(recomputed, 0x0000);

        // Eqn. 3 agrees with the recomputation.
        assert_eq!(update16(0xdd2f, 0x5555, 0x3285), 0x0000);
        assert_eq!(update_bytes(0xdd2f, &[0x55, 0x55], &[0x32, 0x85]), 0x0000);

        // RFC 1141 (eqn. 2 in RFC 1624's numbering of the pitfall) yields -0.
        let rfc1141 = fold(u64::from(0xdd2fu16) + 0x5555 + u64::from(!0x3285u16));
        assert_eq!(rfc1141, 0xffff);

        // Both verify (in ones-complement -0 == +0), which is why the bug hides; it
        // matters for UDP, where 0 on the wire means "no checksum".
        for c in [0x0000u16, 0xffff] {
            let mut with = data.to_vec();
            with.extend_from_slice(&c.to_be_bytes());
            assert_eq!(finish(sum(&with)), 0);
        }
        assert_eq!(update_udp16(0xdd2f, 0x5555, 0x3285), 0xffff);
    }

    #[test]
    fn udp_zero_rules() {
        // "No checksum" survives any rewrite.
        assert_eq!(update_udp16(0, 0x1234, 0x4321), 0);
        assert_eq!(update_udp32(0, 0x0a00_0001, 0xc000_0201), 0);
        assert_eq!(update_udp_bytes(0, &[1, 2, 3, 4], &[5, 6, 7, 8]), 0);
        // Non-zero results are those of the plain update.
        assert_eq!(
            update_udp16(0x1000, 0x0001, 0x0002),
            update16(0x1000, 0x0001, 0x0002)
        );
        assert_eq!(update_udp32(0xdd2f, 0x5555_0000, 0x3285_0000), 0xffff);
        assert_eq!(
            update_udp_bytes(0xdd2f, &[0x55, 0x55], &[0x32, 0x85]),
            0xffff
        );
    }

    fn data_and_even_offset(min: usize, field: usize) -> impl Strategy<Value = (Vec<u8>, usize)> {
        (min..200usize)
            .prop_flat_map(move |n| (prop::collection::vec(any::<u8>(), n), 0..=(n - field) / 2))
            .prop_map(|(v, half)| (v, half * 2))
    }

    proptest! {
        #[test]
        fn sum_matches_references(data in prop::collection::vec(any::<u8>(), 0..300)) {
            let expected = naive(&data);
            prop_assert_eq!(fold(sum(&data)), expected);
            prop_assert_eq!(finish(sum(&data)), etherparse_checksum(&data));
        }

        #[test]
        fn sum_splits_at_even_offsets(
            data in prop::collection::vec(any::<u8>(), 0..300),
            cut in 0usize..150,
        ) {
            let cut = (cut * 2).min(data.len() & !1);
            let (a, b) = data.split_at(cut);
            prop_assert_eq!(fold(sum(a) + sum(b)), fold(sum(&data)));
        }

        #[test]
        fn update16_equals_recompute((mut data, at) in data_and_even_offset(2, 2), new: u16) {
            let before = finish(sum(&data));
            let old = u16::from_be_bytes([data[at], data[at + 1]]);
            data[at..at + 2].copy_from_slice(&new.to_be_bytes());
            // All-zero data is the one case where a recomputation gives -0.
            prop_assume!(data.iter().any(|&b| b != 0));
            prop_assert_eq!(update16(before, old, new), finish(sum(&data)));
        }

        #[test]
        fn update32_equals_recompute((mut data, at) in data_and_even_offset(4, 4), new: u32) {
            let before = finish(sum(&data));
            let old = u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
            data[at..at + 4].copy_from_slice(&new.to_be_bytes());
            prop_assume!(data.iter().any(|&b| b != 0));
            prop_assert_eq!(update32(before, old, new), finish(sum(&data)));
        }

        #[test]
        fn update_bytes_equals_recompute(
            (mut data, at) in data_and_even_offset(16, 16),
            new: [u8; 16],
        ) {
            let before = finish(sum(&data));
            let old: [u8; 16] = data[at..at + 16].try_into().unwrap();
            data[at..at + 16].copy_from_slice(&new);
            prop_assume!(data.iter().any(|&b| b != 0));
            prop_assert_eq!(update_bytes(before, &old, &new), finish(sum(&data)));
        }

        #[test]
        fn chained_updates_equal_recompute(
            mut data in prop::collection::vec(any::<u8>(), 40..41),
            changes in prop::collection::vec((0usize..20, any::<u16>()), 1..10),
        ) {
            let mut c = finish(sum(&data));
            for (word, new) in changes {
                let at = word * 2;
                let old = u16::from_be_bytes([data[at], data[at + 1]]);
                data[at..at + 2].copy_from_slice(&new.to_be_bytes());
                c = update16(c, old, new);
            }
            prop_assume!(data.iter().any(|&b| b != 0));
            prop_assert_eq!(c, finish(sum(&data)));
        }

        #[test]
        fn udp_update_equals_recompute((mut data, at) in data_and_even_offset(4, 4), new: u32) {
            prop_assume!(data.iter().any(|&b| b != 0));
            let before = udp_nonzero(finish(sum(&data)));
            let old = u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
            data[at..at + 4].copy_from_slice(&new.to_be_bytes());
            prop_assume!(data.iter().any(|&b| b != 0));
            prop_assert_eq!(update_udp32(before, old, new), udp_nonzero(finish(sum(&data))));
        }
    }
}
