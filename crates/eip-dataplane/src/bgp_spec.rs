//! The `[bgp]` section of a POP description: what the POP announces to its
//! Internet routers, through a BGP speaker that `eipd` runs as a child (BIRD 2).
//!
//! Operator intent only: the tables ignore it, and session state or what is
//! announced right now is observed state that `eipd` never writes back here.
//! Field-by-field documentation: `docs/config.md` (section `[bgp]`);
//! design: `docs/anycast.md`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

/// How this POP announces its EIP prefixes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BgpSpec {
    /// Our autonomous system number.
    pub local_as: u32,
    /// BGP router id (and BIRD's).
    pub router_id: Ipv4Addr,
    /// The routers we announce to.
    pub neighbors: Vec<NeighborSpec>,
    /// The prefixes we announce (whole pools toward the Internet).
    pub prefixes: Vec<PrefixSpec>,
    /// BFD transmit and receive interval, milliseconds (BFD on every neighbour
    /// that has `bfd = true`).
    #[serde(default = "default_bfd_interval_ms")]
    pub bfd_interval_ms: u32,
    /// Missed BFD packets before a session is declared down.
    #[serde(default = "default_bfd_multiplier")]
    pub bfd_multiplier: u8,
    /// Graceful restart (RFC 4724). Off by default: with it, a dead POP keeps
    /// attracting traffic until the restart timer runs out.
    #[serde(default)]
    pub graceful_restart: bool,
    /// A prefix whose gate closed is withdrawn after it stayed closed this long.
    #[serde(default)]
    pub withdraw_after_ms: u64,
    /// A withdrawn prefix is announced again only after its gate stayed open
    /// this long.
    #[serde(default = "default_hold_down_ms")]
    pub hold_down_ms: u64,
    /// Drain (SIGTERM, `eipctl drain`): how long the prefixes stay announced with
    /// GRACEFUL_SHUTDOWN (RFC 8326) before they are withdrawn.
    #[serde(default = "default_drain_wait_ms")]
    pub drain_wait_ms: u64,
    /// Drain: extra prepends of our AS while draining (for routers that ignore
    /// GRACEFUL_SHUTDOWN).
    #[serde(default)]
    pub drain_prepend: u8,
    /// The BIRD 2 binary.
    #[serde(default = "default_bird")]
    pub bird: String,
    /// Withdraw a prefix when every EIP inside it has health-checked backends
    /// and all of them are down (an EIP without checks counts as up).
    #[serde(default)]
    pub withdraw_when_backends_down: bool,
}

fn default_bfd_interval_ms() -> u32 {
    100
}
fn default_bfd_multiplier() -> u8 {
    3
}
fn default_hold_down_ms() -> u64 {
    2000
}
fn default_drain_wait_ms() -> u64 {
    5000
}
fn default_bird() -> String {
    "bird".into()
}
fn default_true() -> bool {
    true
}
fn default_hold_time() -> u16 {
    3
}
fn default_keepalive() -> u16 {
    1
}

/// One BGP neighbour (an Internet router).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeighborSpec {
    /// The neighbour's address (directly connected).
    pub address: IpAddr,
    /// The neighbour's AS.
    pub remote_as: u32,
    /// Our address on the link (default: chosen by the kernel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_address: Option<IpAddr>,
    /// BFD on this session (RFC 5880); on by default.
    #[serde(default = "default_true")]
    pub bfd: bool,
    /// BGP hold time, seconds: 0 or at least 3 (RFC 4271).
    #[serde(default = "default_hold_time")]
    pub hold_time_s: u16,
    /// BGP keepalive interval, seconds; less than the hold time.
    #[serde(default = "default_keepalive")]
    pub keepalive_s: u16,
}

/// One announced prefix and its attributes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrefixSpec {
    pub prefix: Prefix,
    /// Standard communities, `"65000:100"`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub communities: Vec<Community>,
    /// How many times our AS is prepended (a less preferred POP).
    #[serde(default)]
    pub prepend: u8,
    /// MULTI_EXIT_DISC (lower is preferred by routers comparing it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub med: Option<u32>,
}

/// An IP prefix, `192.0.2.0/24` or `2001:db8::/48`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prefix {
    pub address: IpAddr,
    pub len: u8,
}

impl Prefix {
    /// Whether `addr` lies inside the prefix (families never mix).
    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.address, addr) {
            (IpAddr::V4(p), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                u32::from(p) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(p), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.len))
                    .unwrap_or(0);
                u128::from(p) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }

    /// Whether every bit after the length is zero.
    fn is_network(&self) -> bool {
        self.contains(self.address) && {
            let host_bits = match self.address {
                IpAddr::V4(a) => u128::from(u32::from(a)) & (u128::from(u32::MAX) >> self.len),
                IpAddr::V6(a) => {
                    u128::from(a) & u128::MAX.checked_shr(u32::from(self.len)).unwrap_or(0)
                }
            };
            host_bits == 0
        }
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.len)
    }
}

impl FromStr for Prefix {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad =
            || format!("invalid prefix {text:?}: expected like 192.0.2.0/24 or 2001:db8::/48");
        let (addr, len) = text.split_once('/').ok_or_else(bad)?;
        let address: IpAddr = addr.parse().map_err(|_| bad())?;
        let len: u8 = len.parse().map_err(|_| bad())?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        if len > max {
            return Err(format!("invalid prefix {text:?}: length over {max}"));
        }
        let p = Prefix { address, len };
        if !p.is_network() {
            return Err(format!(
                "invalid prefix {text:?}: bits set after /{len} (write the network address)"
            ));
        }
        Ok(p)
    }
}

impl Serialize for Prefix {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Prefix {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A standard BGP community (RFC 1997), `"65535:0"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Community(pub u16, pub u16);

/// RFC 8326 GRACEFUL_SHUTDOWN.
pub const GRACEFUL_SHUTDOWN: Community = Community(65535, 0);

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.0, self.1)
    }
}

impl FromStr for Community {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!("invalid community {text:?}: expected two numbers 0-65535 like \"65000:100\"")
        };
        let (a, b) = text.split_once(':').ok_or_else(bad)?;
        Ok(Community(
            a.parse().map_err(|_| bad())?,
            b.parse().map_err(|_| bad())?,
        ))
    }
}

impl Serialize for Community {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Community {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Why a `[bgp]` section is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BgpSpecError {
    #[error("bgp.local_as must not be 0")]
    NoLocalAs,
    #[error("bgp.router_id must not be 0.0.0.0")]
    NoRouterId,
    #[error("bgp.neighbors is empty: name at least one router to announce to")]
    NoNeighbors,
    #[error("bgp.prefixes is empty: name at least one prefix to announce")]
    NoPrefixes,
    #[error("bgp neighbour {0} appears twice")]
    DuplicateNeighbor(IpAddr),
    #[error("bgp prefix {0} appears twice")]
    DuplicatePrefix(Prefix),
    #[error(
        "bgp neighbour {address}: hold_time_s {hold} is not allowed: 0 or at least 3 (RFC 4271)"
    )]
    HoldTime { address: IpAddr, hold: u16 },
    #[error("bgp neighbour {address}: keepalive_s {keepalive} must be at least 1 and below hold_time_s {hold}")]
    Keepalive {
        address: IpAddr,
        keepalive: u16,
        hold: u16,
    },
    #[error("bgp.bfd_interval_ms {0} is out of range: 10 to 10000")]
    BfdInterval(u32),
    #[error("bgp.bfd_multiplier must be at least 1")]
    BfdMultiplier,
    #[error("bgp prefix {prefix}: prepend {count} is over 16")]
    Prepend { prefix: Prefix, count: u8 },
    #[error("bgp.drain_prepend {0} is over 16")]
    DrainPrepend(u8),
    #[error("bgp.bird is empty: name the BIRD 2 binary (default \"bird\")")]
    NoBird,
}

impl BgpSpec {
    /// Checks what serde cannot: ranges, duplicates, RFC 4271 timers.
    ///
    /// # Errors
    /// The first problem found, as a [`BgpSpecError`].
    pub fn validate(&self) -> Result<(), BgpSpecError> {
        if self.local_as == 0 {
            return Err(BgpSpecError::NoLocalAs);
        }
        if self.router_id.is_unspecified() {
            return Err(BgpSpecError::NoRouterId);
        }
        if self.neighbors.is_empty() {
            return Err(BgpSpecError::NoNeighbors);
        }
        if self.prefixes.is_empty() {
            return Err(BgpSpecError::NoPrefixes);
        }
        if self.bird.trim().is_empty() {
            return Err(BgpSpecError::NoBird);
        }
        if !(10..=10_000).contains(&self.bfd_interval_ms) {
            return Err(BgpSpecError::BfdInterval(self.bfd_interval_ms));
        }
        if self.bfd_multiplier == 0 {
            return Err(BgpSpecError::BfdMultiplier);
        }
        if self.drain_prepend > 16 {
            return Err(BgpSpecError::DrainPrepend(self.drain_prepend));
        }
        for (i, n) in self.neighbors.iter().enumerate() {
            if self.neighbors[..i].iter().any(|m| m.address == n.address) {
                return Err(BgpSpecError::DuplicateNeighbor(n.address));
            }
            if (1..3).contains(&n.hold_time_s) {
                return Err(BgpSpecError::HoldTime {
                    address: n.address,
                    hold: n.hold_time_s,
                });
            }
            if n.keepalive_s == 0 || (n.hold_time_s != 0 && n.keepalive_s >= n.hold_time_s) {
                return Err(BgpSpecError::Keepalive {
                    address: n.address,
                    keepalive: n.keepalive_s,
                    hold: n.hold_time_s,
                });
            }
        }
        for (i, p) in self.prefixes.iter().enumerate() {
            if self.prefixes[..i].iter().any(|q| q.prefix == p.prefix) {
                return Err(BgpSpecError::DuplicatePrefix(p.prefix));
            }
            if p.prepend > 16 {
                return Err(BgpSpecError::Prepend {
                    prefix: p.prefix,
                    count: p.prepend,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest valid section, written as the operator would.
    fn spec() -> BgpSpec {
        toml::from_str(
            r#"
            local_as = 64497
            router_id = "203.0.113.10"
            neighbors = [{ address = "203.0.113.9", remote_as = 64496 }]
            prefixes = [{ prefix = "192.0.2.0/24", communities = ["64497:1"], prepend = 1 }]
            "#,
        )
        .expect("valid section")
    }

    #[test]
    fn defaults_are_bfd_on_graceful_restart_off() {
        let s = spec();
        assert!(s.neighbors[0].bfd);
        assert!(!s.graceful_restart);
        assert_eq!((s.bfd_interval_ms, s.bfd_multiplier), (100, 3));
        assert_eq!(
            (s.neighbors[0].hold_time_s, s.neighbors[0].keepalive_s),
            (3, 1)
        );
        assert_eq!(s.prefixes[0].communities, vec![Community(64497, 1)]);
        assert_eq!(s.validate(), Ok(()));
    }

    #[test]
    fn prefixes_parse_and_contain() {
        let p: Prefix = "192.0.2.0/24".parse().unwrap();
        assert!(p.contains("192.0.2.10".parse().unwrap()));
        assert!(!p.contains("192.0.3.10".parse().unwrap()));
        assert!(!p.contains("2001:db8::1".parse().unwrap()));
        let v6: Prefix = "2001:db8:e1::/48".parse().unwrap();
        assert!(v6.contains("2001:db8:e1::10".parse().unwrap()));
        assert!(!v6.contains("2001:db8:e2::10".parse().unwrap()));
        let all: Prefix = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("198.51.100.1".parse().unwrap()));
        let host: Prefix = "192.0.2.10/32".parse().unwrap();
        assert!(host.contains("192.0.2.10".parse().unwrap()));
        assert!(!host.contains("192.0.2.11".parse().unwrap()));
    }

    #[test]
    fn bad_prefixes_and_communities_are_refused_with_the_reason() {
        assert!("192.0.2.1/24"
            .parse::<Prefix>()
            .unwrap_err()
            .contains("bits set"));
        assert!("192.0.2.0/33"
            .parse::<Prefix>()
            .unwrap_err()
            .contains("over 32"));
        assert!("192.0.2.0".parse::<Prefix>().is_err());
        assert!("2001:db8::1/48".parse::<Prefix>().is_err());
        assert!("65536:0".parse::<Community>().is_err());
        assert_eq!("65535:0".parse::<Community>(), Ok(GRACEFUL_SHUTDOWN));
    }

    #[test]
    fn validation_names_the_problem() {
        let mut s = spec();
        s.neighbors[0].hold_time_s = 2;
        assert!(matches!(
            s.validate(),
            Err(BgpSpecError::HoldTime { hold: 2, .. })
        ));
        let mut s = spec();
        s.neighbors[0].keepalive_s = 3;
        assert!(matches!(s.validate(), Err(BgpSpecError::Keepalive { .. })));
        let mut s = spec();
        s.prefixes.push(s.prefixes[0].clone());
        assert!(matches!(
            s.validate(),
            Err(BgpSpecError::DuplicatePrefix(_))
        ));
        let mut s = spec();
        s.neighbors.clear();
        assert_eq!(s.validate(), Err(BgpSpecError::NoNeighbors));
        let mut s = spec();
        s.bfd_interval_ms = 5;
        assert_eq!(s.validate(), Err(BgpSpecError::BfdInterval(5)));
        let mut s = spec();
        s.local_as = 0;
        assert_eq!(s.validate(), Err(BgpSpecError::NoLocalAs));
    }

    #[test]
    fn unknown_fields_are_refused() {
        let r: Result<BgpSpec, _> = toml::from_str(
            "local_as = 1\nrouter_id = \"192.0.2.1\"\nneighbors = []\nprefixes = []\ngraceful_restrat = true\n",
        );
        assert!(r.unwrap_err().to_string().contains("graceful_restrat"));
    }
}
