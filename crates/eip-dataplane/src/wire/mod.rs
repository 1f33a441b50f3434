//! Zero-copy views of the protocol headers the data plane reads and rewrites.
//!
//! One file per protocol, in the style of smoltcp's `wire` module: `XxxPacket<T>`
//! wraps any `T: AsRef<[u8]>` (and, for setters, `AsMut<[u8]>`), so the same code works
//! on a UMEM chunk, a `Vec` or a stack array. `new_checked` validates every length the
//! accessors rely on once; after that no accessor can panic, whatever the bytes say,
//! and no accessor allocates. `new_unchecked` skips the validation for buffers whose
//! lengths the caller has already proven (headers it has just emitted itself).
//!
//! Checksums are computed by [`checksum`]; the views only know which bytes to feed it.

pub mod checksum;
pub mod ethernet;
pub mod icmpv4;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;
pub mod vxlan;

use core::fmt;

/// The only error of the wire layer: the bytes do not form the header we were asked
/// to see. The pipeline counts and drops; it never needs to know more than that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("malformed packet")
    }
}

impl std::error::Error for Malformed {}

/// Result of validating a view.
pub type Result<T> = core::result::Result<T, Malformed>;

/// IP protocol numbers (IPv4 `protocol`, IPv6 `next_header`), IANA registry.
pub mod ip_proto {
    /// IPv6 Hop-by-Hop Options.
    pub const HOPOPT: u8 = 0;
    /// ICMP for IPv4.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// IPv6 Routing header.
    pub const ROUTING: u8 = 43;
    /// IPv6 Fragment header.
    pub const FRAGMENT: u8 = 44;
    /// ICMP for IPv6.
    pub const ICMPV6: u8 = 58;
    /// IPv6 "no next header".
    pub const NONE: u8 = 59;
    /// IPv6 Destination Options.
    pub const DSTOPTS: u8 = 60;
}

/// EtherType values the data plane dispatches on.
pub mod ethertype {
    /// IPv4.
    pub const IPV4: u16 = 0x0800;
    /// ARP.
    pub const ARP: u16 = 0x0806;
    /// IEEE 802.1Q VLAN tag (customer tag).
    pub const VLAN: u16 = 0x8100;
    /// IEEE 802.1ad service tag (outer tag of Q-in-Q).
    pub const QINQ: u16 = 0x88A8;
    /// IPv6.
    pub const IPV6: u16 = 0x86DD;
}

/// Copies a field slice into a fixed array. Call it only with a slice of a constant
/// `field` range of length `N`: the length check then folds away after inlining.
#[inline(always)]
fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(bytes);
    out
}

/// Big-endian u16 from a 2-byte field slice.
#[inline(always)]
fn be16(bytes: &[u8]) -> u16 {
    u16::from_be_bytes(array(bytes))
}

/// Big-endian u32 from a 4-byte field slice.
#[inline(always)]
fn be32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes(array(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_is_an_error() {
        let e: Box<dyn std::error::Error> = Box::new(Malformed);
        assert_eq!(e.to_string(), "malformed packet");
        let r: Result<()> = Err(Malformed);
        assert_eq!(r, Err(Malformed));
    }

    #[test]
    fn field_helpers() {
        let b = [0x12, 0x34, 0x56, 0x78, 0x9a];
        assert_eq!(be16(&b[0..2]), 0x1234);
        assert_eq!(be16(&b[3..5]), 0x789a);
        assert_eq!(be32(&b[1..5]), 0x3456_789a);
        assert_eq!(array::<3>(&b[2..5]), [0x56, 0x78, 0x9a]);
    }

    #[test]
    fn constants_match_etherparse() {
        use etherparse::{EtherType, IpNumber};
        assert_eq!(ip_proto::HOPOPT, IpNumber::IPV6_HEADER_HOP_BY_HOP.0);
        assert_eq!(ip_proto::ICMP, IpNumber::ICMP.0);
        assert_eq!(ip_proto::TCP, IpNumber::TCP.0);
        assert_eq!(ip_proto::UDP, IpNumber::UDP.0);
        assert_eq!(ip_proto::ROUTING, IpNumber::IPV6_ROUTE_HEADER.0);
        assert_eq!(ip_proto::FRAGMENT, IpNumber::IPV6_FRAGMENTATION_HEADER.0);
        assert_eq!(ip_proto::ICMPV6, IpNumber::IPV6_ICMP.0);
        assert_eq!(ip_proto::NONE, IpNumber::IPV6_NO_NEXT_HEADER.0);
        assert_eq!(ip_proto::DSTOPTS, IpNumber::IPV6_DESTINATION_OPTIONS.0);
        assert_eq!(ethertype::IPV4, EtherType::IPV4.0);
        assert_eq!(ethertype::ARP, EtherType::ARP.0);
        assert_eq!(ethertype::VLAN, EtherType::VLAN_TAGGED_FRAME.0);
        assert_eq!(ethertype::QINQ, EtherType::PROVIDER_BRIDGING.0);
        assert_eq!(ethertype::IPV6, EtherType::IPV6.0);
    }
}
