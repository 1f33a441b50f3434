//! The operator's `[protection]` table: what edge protection drops, and the
//! exemptions. Plain data, part of [`crate::tables::PopSpec`].

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::net::IpAddr;

fn yes() -> bool {
    true
}

/// Edge protection settings (`docs/config.md`, `[protection]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtectionSpec {
    /// Drop Internet-side frames whose source is a bogon, one of our EIPs or one
    /// of the POP's own addresses, and returns toward such destinations.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Prefixes exempt from the bogon check (clients in private space on a lab
    /// or a private peering). Never exempts our EIPs or our own addresses.
    #[serde(default)]
    pub allow_sources: Vec<Prefix>,
    /// Further addresses of this POP (interface addresses, loopbacks) that must
    /// never be a client source, a return destination, an EIP or a backend.
    #[serde(default)]
    pub own_addresses: Vec<IpAddr>,
    /// Let client UDP to the VXLAN port reach backends, for every EIP.
    #[serde(default)]
    pub allow_tunnel_port: bool,
    /// EIPs whose clients may send UDP to the VXLAN port (the others may not).
    #[serde(default)]
    pub tunnel_port_eips: Vec<IpAddr>,
}

impl Default for ProtectionSpec {
    fn default() -> Self {
        ProtectionSpec {
            enabled: true,
            allow_sources: Vec::new(),
            own_addresses: Vec::new(),
            allow_tunnel_port: false,
            tunnel_port_eips: Vec::new(),
        }
    }
}

impl ProtectionSpec {
    /// True for the defaults (omitted when a description is written out).
    pub fn is_default(&self) -> bool {
        *self == ProtectionSpec::default()
    }
}

/// An address prefix, written `192.0.2.0/24` or `2001:db8::/32` (a bare address
/// is a /32 or /128). Bits past the length must be zero.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prefix {
    pub address: IpAddr,
    pub len: u8,
}

impl Prefix {
    /// Parses `address/len` or a bare address.
    ///
    /// # Errors
    /// An operator-readable reason.
    pub fn parse(text: &str) -> Result<Prefix, String> {
        let (a, len) = match text.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (text, None),
        };
        let address: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| format!("invalid prefix {text:?}: {a:?} is not an IP address"))?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let len = match len {
            None => max,
            Some(l) => l
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|&l| l <= max)
                .ok_or_else(|| format!("invalid prefix {text:?}: length must be 0..={max}"))?,
        };
        let p = Prefix { address, len };
        if p.key() & !p.mask() != 0 {
            return Err(format!(
                "invalid prefix {text:?}: bits set past /{len} (did you mean {}/{len}?)",
                p.network()
            ));
        }
        Ok(p)
    }

    /// The address as a 128-bit key (IPv4-mapped for IPv4).
    pub fn key(&self) -> u128 {
        crate::tables::addr_key(self.address)
    }

    /// The mask over [`Prefix::key`].
    pub fn mask(&self) -> u128 {
        let bits = u32::from(self.len) + if self.address.is_ipv4() { 96 } else { 0 };
        u128::MAX.checked_shl(128 - bits).unwrap_or(0)
    }

    /// The address with the bits past the length cleared.
    fn network(&self) -> IpAddr {
        let k = self.key() & self.mask();
        match self.address {
            IpAddr::V4(_) => IpAddr::V4((k as u32).into()),
            IpAddr::V6(_) => IpAddr::V6(k.into()),
        }
    }

    /// Does the prefix hold `addr`?
    pub fn contains(&self, addr: IpAddr) -> bool {
        addr.is_ipv4() == self.address.is_ipv4()
            && crate::tables::addr_key(addr) & self.mask() == self.key()
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.len)
    }
}

impl fmt::Debug for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Prefix {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Prefix {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Prefix::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_parse_and_refuse_host_bits() {
        let p = Prefix::parse("10.0.0.0/8").unwrap();
        assert!(p.contains("10.255.0.1".parse().unwrap()));
        assert!(!p.contains("11.0.0.1".parse().unwrap()));
        assert!(!p.contains("::ffff:10.0.0.1".parse().unwrap()));
        assert_eq!(Prefix::parse("192.0.2.7").unwrap().len, 32);
        assert!(Prefix::parse("2001:db8::/32")
            .unwrap()
            .contains("2001:db8:1::1".parse().unwrap()));
        assert!(Prefix::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert!(Prefix::parse("::/0")
            .unwrap()
            .contains("::1".parse().unwrap()));
        for bad in [
            "10.0.0.1/8",
            "10.0.0.0/33",
            "x/8",
            "2001:db8::/129",
            "10.0.0.0/",
        ] {
            assert!(Prefix::parse(bad).is_err(), "{bad}");
        }
        assert!(Prefix::parse("10.0.0.1/8")
            .unwrap_err()
            .contains("10.0.0.0/8"));
    }
}
