//! Per-EIP access lists: what the operator writes (`acl = { default = "deny",
//! rules = [...] }` on an EIP) and the compiled form a snapshot holds.
//!
//! Rules are stateless: an action, a source prefix (IPv4 or IPv6; absent =
//! any source of either family), a protocol (`any`, `tcp`, `udp`, `icmp` =
//! ICMP or ICMPv6, or a number) and a destination port range (inclusive;
//! absent = any port; a range matches only TCP/UDP packets that carry ports,
//! so not later fragments). The first rule that matches decides; none: the
//! EIP's default.
//!
//! # Compiled form
//!
//! Rules are compiled once, off the hot path, when a table version is built,
//! into two binary tries on the source address (32 levels for IPv4, 128 for
//! IPv6). Each node keeps, ascending, the indexes of the rules whose prefix
//! ends there (a rule without a source sits at both roots). A lookup walks the
//! source's path and keeps the lowest index whose protocol and ports match:
//! its cost is bounded by the prefix lengths in use, not by the rule count
//! (besides rules sharing one prefix, scanned until one matches or an index
//! beats no better one already found).
//!
//! Why one file: the operator's form and its compiled trie change together
//! (a rule's fields are what the trie indexes); the tests are in `acl/tests.rs`.

pub use crate::protect::Prefix;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;

/// What a rule (or the default) does with a packet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AclAction {
    #[default]
    Allow,
    Deny,
}

impl AclAction {
    pub const fn label(self) -> &'static str {
        match self {
            AclAction::Allow => "allow",
            AclAction::Deny => "deny",
        }
    }
}

/// An EIP's access list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclSpec {
    /// What happens to packets no rule matches (default: allow).
    #[serde(default)]
    pub default: AclAction,
    /// Tried in order; the first that matches decides.
    #[serde(default, deserialize_with = "de_rules")]
    pub rules: Vec<AclRule>,
}

/// One rule (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RuleFields")]
pub struct AclRule {
    pub action: AclAction,
    /// Source prefix; `None`: any source, either family.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Prefix>,
    /// IP protocol; `None`: any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<AclProtocol>,
    /// Destination ports, inclusive; `None`: any (and packets without ports).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ports: Option<PortRange>,
}

/// The rules, each error naming its rule (`rules[i]`, from 0) and refusing
/// more than [`MAX_RULES`] as soon as the list passes it.
fn de_rules<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<AclRule>, D::Error> {
    struct Rules;
    impl<'de> serde::de::Visitor<'de> for Rules {
        type Value = Vec<AclRule>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of rules")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut rules = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(MAX_RULES));
            loop {
                let i = rules.len();
                let rule = seq
                    .next_element::<AclRule>()
                    .map_err(|e| serde::de::Error::custom(format!("acl rules[{i}]: {e}")))?;
                let Some(rule) = rule else {
                    return Ok(rules);
                };
                if i == MAX_RULES {
                    return Err(serde::de::Error::custom(format!(
                        "acl: more than the {MAX_RULES} rules an EIP may have"
                    )));
                }
                rules.push(rule);
            }
        }
    }
    d.deserialize_seq(Rules)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFields {
    action: AclAction,
    #[serde(default, deserialize_with = "de_prefix")]
    source: Option<Prefix>,
    #[serde(default, deserialize_with = "de_protocol")]
    protocol: Option<AclProtocol>,
    #[serde(default, deserialize_with = "de_ports")]
    ports: Option<PortRange>,
}

impl TryFrom<RuleFields> for AclRule {
    type Error = String;
    fn try_from(f: RuleFields) -> Result<Self, String> {
        let r = AclRule {
            action: f.action,
            source: f.source,
            protocol: f.protocol,
            ports: f.ports,
        };
        r.validate()?;
        Ok(r)
    }
}

/// Most rules one EIP's list may hold: a list is compiled on every table
/// change that touches its EIP, and per-rule counters cost 8 bytes per worker.
pub const MAX_RULES: usize = 4096;

impl AclSpec {
    /// Checks what deserialising cannot: the rule cap, and each rule again (a
    /// spec built in code). The error names the rule (`rules[i]`, from 0).
    ///
    /// # Errors
    /// An operator-readable reason.
    pub fn validate(&self) -> Result<(), String> {
        if self.rules.len() > MAX_RULES {
            return Err(format!(
                "{} rules, more than the {MAX_RULES} an EIP may have",
                self.rules.len()
            ));
        }
        for (i, r) in self.rules.iter().enumerate() {
            r.validate().map_err(|e| format!("rules[{i}]: {e}"))?;
        }
        Ok(())
    }
}

impl AclRule {
    /// A port range needs a protocol with ports (TCP, UDP or any).
    pub fn validate(&self) -> Result<(), String> {
        match (self.protocol, self.ports) {
            (Some(p), Some(r)) if !matches!(p, AclProtocol::Tcp | AclProtocol::Udp) => Err(
                format!("ports {r} given with protocol {p}, which has no ports (use tcp or udp)"),
            ),
            _ => Ok(()),
        }
    }
}

/// A rule's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AclProtocol {
    Tcp,
    Udp,
    /// ICMP (IPv4) or ICMPv6.
    Icmp,
    /// Any other IP protocol number.
    Number(u8),
}

impl AclProtocol {
    fn parse(text: &str) -> Result<Option<AclProtocol>, String> {
        Ok(Some(match text.trim().to_ascii_lowercase().as_str() {
            "any" => return Ok(None),
            "tcp" => AclProtocol::Tcp,
            "udp" => AclProtocol::Udp,
            "icmp" | "icmpv6" => AclProtocol::Icmp,
            n => match n.parse::<u8>() {
                Ok(6) => AclProtocol::Tcp,
                Ok(17) => AclProtocol::Udp,
                Ok(1) | Ok(58) => AclProtocol::Icmp,
                Ok(n) => AclProtocol::Number(n),
                Err(_) => {
                    return Err(format!(
                        "invalid protocol {text:?}: expected any, tcp, udp, icmp or a number 0-255"
                    ))
                }
            },
        }))
    }

    /// The compiled code (see [`Rule::protocol`]).
    fn code(self) -> u16 {
        match self {
            AclProtocol::Tcp => 6,
            AclProtocol::Udp => 17,
            AclProtocol::Icmp => ICMP_EITHER,
            AclProtocol::Number(n) => u16::from(n),
        }
    }
}

impl fmt::Display for AclProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AclProtocol::Tcp => f.write_str("tcp"),
            AclProtocol::Udp => f.write_str("udp"),
            AclProtocol::Icmp => f.write_str("icmp"),
            AclProtocol::Number(n) => write!(f, "{n}"),
        }
    }
}

impl Serialize for AclProtocol {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

fn de_protocol<'de, D: Deserializer<'de>>(d: D) -> Result<Option<AclProtocol>, D::Error> {
    {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u8),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => AclProtocol::parse(&n.to_string()),
            Raw::Text(t) => AclProtocol::parse(&t),
        }
        .map_err(serde::de::Error::custom)
    }
}

/// A rule's source: `any` (or absent) is `None`, else a [`Prefix`].
fn parse_source(text: &str) -> Result<Option<Prefix>, String> {
    if text.trim().eq_ignore_ascii_case("any") {
        return Ok(None);
    }
    Prefix::parse(text.trim())
        .map(Some)
        .map_err(|e| format!("source: {e}"))
}

/// The prefix's address bits in its family's width (32 or 128).
fn family_bits(p: &Prefix) -> u128 {
    match p.address {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn de_prefix<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Prefix>, D::Error> {
    parse_source(&String::deserialize(d)?).map_err(serde::de::Error::custom)
}

/// Destination ports `lo..=hi`, written `80` or `1000-2000` (`any`: none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

impl PortRange {
    pub fn parse(text: &str) -> Result<Option<PortRange>, String> {
        let t = text.trim();
        if t.eq_ignore_ascii_case("any") {
            return Ok(None);
        }
        let bad = || {
            format!("invalid port range {text:?}: expected a port, lo-hi with lo <= hi (0-65535), or any")
        };
        let (lo, hi) = t.split_once('-').unwrap_or((t, t));
        let lo: u16 = lo.trim().parse().map_err(|_| bad())?;
        let hi: u16 = hi.trim().parse().map_err(|_| bad())?;
        if lo > hi {
            return Err(bad());
        }
        Ok(Some(PortRange { lo, hi }))
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

impl Serialize for PortRange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

fn de_ports<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PortRange>, D::Error> {
    {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u16),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(Some(PortRange { lo: n, hi: n })),
            Raw::Text(t) => PortRange::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

/// [`Rule::protocol`]: any protocol.
const ANY_PROTOCOL: u16 = 256;
/// [`Rule::protocol`]: ICMP or ICMPv6.
const ICMP_EITHER: u16 = 257;

/// A compiled rule: 8 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rule {
    /// IP protocol number, [`ANY_PROTOCOL`] or [`ICMP_EITHER`].
    protocol: u16,
    /// Destination ports; `any_port`: matches without ports too.
    lo: u16,
    hi: u16,
    any_port: bool,
    deny: bool,
}

impl Rule {
    #[inline(always)]
    fn matches(&self, protocol: u8, dport: Option<u16>) -> bool {
        let p = u16::from(protocol);
        let proto_ok = self.protocol == ANY_PROTOCOL
            || self.protocol == p
            || self.protocol == ICMP_EITHER && (protocol == 1 || protocol == 58);
        proto_ok && (self.any_port || matches!(dport, Some(d) if self.lo <= d && d <= self.hi))
    }
}

/// A trie node: children (0 = none; the root is never a child) and its rules
/// in `lists[first..first + len]`.
#[derive(Debug, Clone, Copy, Default)]
struct Node {
    child: [u32; 2],
    first: u32,
    len: u32,
}

/// One family's trie.
#[derive(Debug, Clone, Default)]
struct Trie {
    nodes: Box<[Node]>,
    lists: Box<[u32]>,
}

impl Trie {
    /// `prefixes`: (bits, len, rule index) in rule order, for a `width`-bit family.
    fn build(width: u8, prefixes: impl Iterator<Item = (u128, u8, u32)>) -> Trie {
        let mut nodes = vec![Node::default()];
        let mut lists: Vec<Vec<u32>> = vec![Vec::new()];
        for (bits, len, index) in prefixes {
            let mut n = 0usize;
            for depth in 0..len {
                let bit = ((bits >> (width - 1 - depth)) & 1) as usize;
                if nodes[n].child[bit] == 0 {
                    nodes[n].child[bit] = nodes.len() as u32;
                    nodes.push(Node::default());
                    lists.push(Vec::new());
                }
                n = nodes[n].child[bit] as usize;
            }
            lists[n].push(index);
        }
        let mut flat = Vec::with_capacity(lists.iter().map(Vec::len).sum());
        for (node, list) in nodes.iter_mut().zip(&lists) {
            node.first = flat.len() as u32;
            node.len = list.len() as u32;
            flat.extend_from_slice(list);
        }
        Trie {
            nodes: nodes.into_boxed_slice(),
            lists: flat.into_boxed_slice(),
        }
    }

    /// The lowest index of a rule on `key`'s path that matches, or `best`.
    #[inline(always)]
    fn lookup(
        &self,
        rules: &[Rule],
        width: u8,
        key: u128,
        protocol: u8,
        dport: Option<u16>,
        mut best: u32,
    ) -> u32 {
        let mut n = 0usize;
        let mut depth = 0u8;
        loop {
            let Some(node) = self.nodes.get(n) else {
                return best;
            };
            // Most nodes on a path end no prefix: no list to look at.
            if node.len != 0 {
                let list = self
                    .lists
                    .get(node.first as usize..(node.first + node.len) as usize)
                    .unwrap_or(&[]);
                for &i in list {
                    if i >= best {
                        break;
                    }
                    if rules
                        .get(i as usize)
                        .is_some_and(|r| r.matches(protocol, dport))
                    {
                        best = i;
                        break;
                    }
                }
            }
            if depth == width {
                return best;
            }
            let bit = ((key >> (width - 1 - depth)) & 1) as usize;
            let next = node.child[bit];
            if next == 0 {
                return best;
            }
            n = next as usize;
            depth += 1;
        }
    }
}

/// An EIP's compiled access list.
#[derive(Debug, Clone)]
pub struct Acl {
    /// Changes when the rules do: per-rule counts of another list are not
    /// this one's.
    pub id: u64,
    rules: Box<[Rule]>,
    default_deny: bool,
    v4: Trie,
    v6: Trie,
    /// Source prefixes every packet from which this list denies whatever its
    /// protocol and ports, found without a port or protocol: what the XDP
    /// program may drop before the workers see it ([`AclSpec::xdp_denies`]).
    pub xdp_deny: Box<[Prefix]>,
    /// The rule each of `xdp_deny` comes from (same order): whose hits the
    /// program's drops are.
    xdp_rule: Box<[u32]>,
}

/// The rule that decided a packet ([`Acl::rules`] for the default) and whether
/// it is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AclVerdict {
    pub rule: u32,
    pub deny: bool,
}

impl AclSpec {
    /// The compiled form kept in a snapshot.
    pub fn compile(&self) -> Acl {
        let rules: Box<[Rule]> = self
            .rules
            .iter()
            .map(|r| {
                let (lo, hi, any_port) = match r.ports {
                    Some(p) => (p.lo, p.hi, false),
                    None => (0, u16::MAX, true),
                };
                Rule {
                    protocol: r.protocol.map_or(ANY_PROTOCOL, AclProtocol::code),
                    lo,
                    hi,
                    any_port,
                    deny: r.action == AclAction::Deny,
                }
            })
            .collect();
        let family = |v6: bool| {
            self.rules
                .iter()
                .enumerate()
                .filter_map(move |(i, r)| match r.source {
                    None => Some((0, 0, i as u32)),
                    Some(p) if p.address.is_ipv6() == v6 => {
                        Some((family_bits(&p), p.len, i as u32))
                    }
                    Some(_) => None,
                })
        };
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.hash(&mut h);
        let xdp = self.xdp_deny_rules();
        Acl {
            id: h.finish(),
            rules,
            default_deny: self.default == AclAction::Deny,
            v4: Trie::build(32, family(false)),
            v6: Trie::build(128, family(true)),
            xdp_deny: xdp.iter().map(|d| d.0).collect(),
            xdp_rule: xdp.iter().map(|d| d.1).collect(),
        }
    }

    /// The source prefixes of the deny rules that can be applied before the
    /// packet is parsed past its IP header: rules without a protocol or ports
    /// that no earlier allow rule overlaps (a rule without a source gives
    /// `0.0.0.0/0` and `::/0`, each kept if no earlier allow of its family
    /// overlaps it). A packet from such a prefix is denied by the first rule
    /// that matches it: any earlier rule that matches it overlaps the prefix,
    /// so it is a deny too.
    pub fn xdp_denies(&self) -> Vec<Prefix> {
        self.xdp_deny_rules().into_iter().map(|d| d.0).collect()
    }

    /// [`Self::xdp_denies`], each with the index of the rule it comes from.
    fn xdp_deny_rules(&self) -> Vec<(Prefix, u32)> {
        let any = |v6: bool| Prefix {
            address: if v6 {
                IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
            } else {
                IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
            },
            len: 0,
        };
        let overlap = |a: Option<Prefix>, b: Prefix| match a {
            None => true,
            Some(a) => {
                a.address.is_ipv6() == b.address.is_ipv6()
                    && if a.len <= b.len {
                        a.contains(b.address)
                    } else {
                        b.contains(a.address)
                    }
            }
        };
        let mut out = Vec::new();
        for (i, r) in self.rules.iter().enumerate() {
            if r.action != AclAction::Deny || r.protocol.is_some() || r.ports.is_some() {
                continue;
            }
            let candidates = match r.source {
                Some(p) => vec![p],
                None => vec![any(false), any(true)],
            };
            for p in candidates {
                let shadowed = self.rules[..i]
                    .iter()
                    .any(|e| e.action == AclAction::Allow && overlap(e.source, p));
                if !shadowed && !out.iter().any(|d: &(Prefix, u32)| d.0 == p) {
                    out.push((p, i as u32));
                }
            }
        }
        out
    }
}

impl Acl {
    /// Rules in the list (the default is counted at this index).
    pub fn rules(&self) -> usize {
        self.rules.len()
    }

    /// The rule an XDP deny prefix of this list comes from.
    pub fn xdp_rule(&self, prefix: &Prefix) -> Option<u32> {
        let at = self.xdp_deny.iter().position(|p| p == prefix)?;
        self.xdp_rule.get(at).copied()
    }

    /// What entry `index` does: rule `index`, or the default at
    /// [`Acl::rules`] (and past it).
    pub fn action(&self, index: usize) -> AclAction {
        let deny = self.rules.get(index).map_or(self.default_deny, |r| r.deny);
        if deny {
            AclAction::Deny
        } else {
            AclAction::Allow
        }
    }

    /// The first rule that matches a packet from `src` (an IPv4 address as a
    /// number when `!v6`) with this protocol and destination port.
    #[inline]
    pub fn check(&self, v6: bool, src: u128, protocol: u8, dport: Option<u16>) -> AclVerdict {
        let none = self.rules.len() as u32;
        let rule = if v6 {
            self.v6.lookup(&self.rules, 128, src, protocol, dport, none)
        } else {
            self.v4.lookup(&self.rules, 32, src, protocol, dport, none)
        };
        let deny = match self.rules.get(rule as usize) {
            Some(r) => r.deny,
            None => self.default_deny,
        };
        AclVerdict { rule, deny }
    }
}

#[cfg(test)]
mod tests;
