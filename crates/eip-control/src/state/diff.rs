//! What differs between two POP descriptions, said the way an operator reads it:
//! EIPs, paths, regions and ports added, removed or changed by name, and whether
//! the POP section changed, and what changes in `[bgp]`. Used to say why a
//! configuration file and the state file disagree, and what a reload changes.

use eip_dataplane::bgp_spec::BgpSpec;
use eip_dataplane::tables::{EipList, PopSpec};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

/// Added, removed and changed entries of one kind, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entries {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

impl Entries {
    fn of<'a, T: PartialEq + 'a>(
        old: impl Iterator<Item = (String, &'a T)>,
        new: impl Iterator<Item = (String, &'a T)>,
    ) -> Entries {
        Entries::of_by(old, new, |a, b| a == b)
    }

    /// The EIPs of two descriptions: by address, each compared where it is
    /// (a plain EIP is assembled for the comparison, not held for the diff).
    fn of_eips(old: &EipList, new: &EipList) -> Entries {
        fn addresses(l: &EipList) -> impl Iterator<Item = (String, IpAddr)> + '_ {
            l.addresses_and_regions().map(|(a, _)| (a.to_string(), a))
        }
        Entries::of_by(addresses(old), addresses(new), |&a, _| {
            old.by_address(a) == new.by_address(a)
        })
    }

    fn of_by<V>(
        old: impl Iterator<Item = (String, V)>,
        new: impl Iterator<Item = (String, V)>,
        same: impl Fn(&V, &V) -> bool,
    ) -> Entries {
        let old: BTreeMap<String, V> = old.collect();
        let new: BTreeMap<String, V> = new.collect();
        let mut e = Entries::default();
        for (name, item) in &new {
            match old.get(name) {
                None => e.added.push(name.clone()),
                Some(before) if !same(before, item) => e.changed.push(name.clone()),
                Some(_) => {}
            }
        }
        e.removed = old
            .keys()
            .filter(|k| !new.contains_key(*k))
            .cloned()
            .collect();
        e
    }

    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }

    /// `+1 (a), -2 (b, c), ~1 (d)`.
    fn signed(&self) -> String {
        let mut items = Vec::new();
        for (sign, list) in [
            ("+", &self.added),
            ("-", &self.removed),
            ("~", &self.changed),
        ] {
            if !list.is_empty() {
                items.push(format!("{sign}{} ({})", list.len(), names(list)));
            }
        }
        items.join(", ")
    }
}

/// How a new description differs from an old one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecDiff {
    /// The `[pop]` section (name, VTEPs, MACs, probe source, ...).
    pub pop: bool,
    /// The POP's default rate limits (`[limits]`).
    #[serde(default)]
    pub limits: bool,
    pub ports: Entries,
    pub regions: Entries,
    pub paths: Entries,
    pub eips: Entries,
    /// The `[bgp]` section.
    #[serde(default, skip_serializing_if = "BgpDiff::is_empty")]
    pub bgp: BgpDiff,
}

/// Whether the whole `[bgp]` section appeared or went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SectionChange {
    Added,
    Removed,
}

/// What differs in `[bgp]`: prefixes by prefix, neighbours by address, and the
/// other settings by field name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BgpDiff {
    /// The whole section was added or removed (then nothing else is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section: Option<SectionChange>,
    #[serde(default)]
    pub prefixes: Entries,
    #[serde(default)]
    pub neighbors: Entries,
    /// Other fields whose value changed (`local_as`, `hold_down_ms`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub settings: Vec<String>,
}

impl BgpDiff {
    pub fn between(old: Option<&BgpSpec>, new: Option<&BgpSpec>) -> BgpDiff {
        let (old, new) = match (old, new) {
            (None, None) => return BgpDiff::default(),
            (None, Some(_)) => return BgpDiff::section(SectionChange::Added),
            (Some(_), None) => return BgpDiff::section(SectionChange::Removed),
            (Some(old), Some(new)) => (old, new),
        };
        // Every other field by its name in the file, so a field added to
        // `BgpSpec` later is compared without touching this.
        let fields = |spec: &BgpSpec| match serde_json::to_value(spec) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        };
        let (before, after) = (fields(old), fields(new));
        let settings = after
            .iter()
            .filter(|(k, _)| *k != "prefixes" && *k != "neighbors")
            .filter(|(k, v)| before.get(*k) != Some(*v))
            .map(|(k, _)| k.clone())
            .collect();
        BgpDiff {
            section: None,
            prefixes: Entries::of(
                old.prefixes.iter().map(|p| (p.prefix.to_string(), p)),
                new.prefixes.iter().map(|p| (p.prefix.to_string(), p)),
            ),
            neighbors: Entries::of(
                old.neighbors.iter().map(|n| (n.address.to_string(), n)),
                new.neighbors.iter().map(|n| (n.address.to_string(), n)),
            ),
            settings,
        }
    }

    fn section(change: SectionChange) -> BgpDiff {
        BgpDiff {
            section: Some(change),
            ..BgpDiff::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.section.is_none()
            && self.prefixes.is_empty()
            && self.neighbors.is_empty()
            && self.settings.is_empty()
    }
}

impl fmt::Display for BgpDiff {
    /// One line: `[bgp] prefixes: +1 (192.0.2.10/32); settings: hold_down_ms`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.section {
            Some(SectionChange::Added) => return f.write_str("[bgp] section added"),
            Some(SectionChange::Removed) => return f.write_str("[bgp] section removed"),
            None if self.is_empty() => return f.write_str("[bgp] unchanged"),
            None => {}
        }
        let mut parts = Vec::new();
        for (kind, e) in [
            ("prefixes", &self.prefixes),
            ("neighbours", &self.neighbors),
        ] {
            if !e.is_empty() {
                parts.push(format!("{kind}: {}", e.signed()));
            }
        }
        if !self.settings.is_empty() {
            parts.push(format!("settings: {}", names(&self.settings)));
        }
        write!(f, "[bgp] {}", parts.join("; "))
    }
}

impl SpecDiff {
    pub fn between(old: &PopSpec, new: &PopSpec) -> SpecDiff {
        SpecDiff {
            pop: old.pop != new.pop,
            limits: old.limits != new.limits,
            ports: Entries::of(
                old.ports.iter().map(|p| (p.name.clone(), p)),
                new.ports.iter().map(|p| (p.name.clone(), p)),
            ),
            regions: Entries::of(
                old.regions.iter().map(|r| (r.name.clone(), r)),
                new.regions.iter().map(|r| (r.name.clone(), r)),
            ),
            paths: Entries::of(
                old.paths.iter().map(|p| (p.name.clone(), p)),
                new.paths.iter().map(|p| (p.name.clone(), p)),
            ),
            eips: Entries::of_eips(&old.eips, &new.eips),
            bgp: BgpDiff::between(old.bgp.as_ref(), new.bgp.as_ref()),
        }
    }

    pub fn is_empty(&self) -> bool {
        !self.pop
            && !self.limits
            && self.ports.is_empty()
            && self.regions.is_empty()
            && self.paths.is_empty()
            && self.eips.is_empty()
            && self.bgp.is_empty()
    }
}

/// At most this many names per list in the one-line form.
const SHOWN: usize = 5;

fn names(list: &[String]) -> String {
    let mut s = list
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if list.len() > SHOWN {
        s.push_str(&format!(" and {} more", list.len() - SHOWN));
    }
    s
}

impl fmt::Display for SpecDiff {
    /// One line: `EIPs: +1 (192.0.2.30), ~1 (192.0.2.10); paths: -1 (bj-2)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("no difference");
        }
        let mut parts = Vec::new();
        if self.pop {
            parts.push("[pop] section changed".to_string());
        }
        if self.limits {
            parts.push("[limits] section changed".to_string());
        }
        for (kind, e) in [
            ("ports", &self.ports),
            ("regions", &self.regions),
            ("paths", &self.paths),
            ("EIPs", &self.eips),
        ] {
            if e.is_empty() {
                continue;
            }
            parts.push(format!("{kind}: {}", e.signed()));
        }
        if !self.bgp.is_empty() {
            parts.push(self.bgp.to_string());
        }
        f.write_str(&parts.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::testkit::EXAMPLE;

    #[test]
    fn names_what_was_added_removed_and_changed() {
        let old: PopSpec = toml::from_str(EXAMPLE).unwrap();
        assert!(SpecDiff::between(&old, &old).is_empty());
        let mut new = old.clone();
        let first = new.eips.nth(0).unwrap().address;
        new.eips.remove(first);
        new.eips.nth_mut(0).unwrap().backend = Some("10.1.0.99".parse().unwrap());
        let mut added = new.eips.nth(0).unwrap().into_owned();
        added.address = "192.0.2.99".parse().unwrap();
        added.services.clear();
        new.eips.push(added);
        new.paths[1].weight = 7;
        let d = SpecDiff::between(&old, &new);
        assert_eq!(d.eips.added, vec!["192.0.2.99"]);
        assert_eq!(d.eips.removed, vec!["192.0.2.10"]);
        assert_eq!(d.eips.changed, vec!["192.0.2.20"]);
        assert_eq!(d.paths.changed, vec![old.paths[1].name.clone()]);
        assert!(!d.pop && d.ports.is_empty());
        let line = d.to_string();
        assert!(
            line.contains("EIPs: +1 (192.0.2.99), -1 (192.0.2.10), ~1 (192.0.2.20)"),
            "{line}"
        );
        assert!(line.starts_with("paths: ~1"), "{line}");
        assert!(d.bgp.is_empty());
    }

    fn bgp() -> BgpSpec {
        toml::from_str(
            r#"
            local_as = 64497
            router_id = "203.0.113.10"
            neighbors = [{ address = "203.0.113.9", remote_as = 64496 }]
            prefixes = [
              { prefix = "192.0.2.0/24", prepend = 1 },
              { prefix = "198.51.100.0/24" },
            ]
            "#,
        )
        .unwrap()
    }

    #[test]
    fn bgp_changes_are_named_by_prefix_neighbour_and_field() {
        let old = bgp();
        assert!(BgpDiff::between(Some(&old), Some(&old)).is_empty());
        let mut new = old.clone();
        new.prefixes[0].med = Some(10);
        new.prefixes.remove(1);
        new.prefixes.push(eip_dataplane::bgp_spec::PrefixSpec {
            prefix: "192.0.2.10/32".parse().unwrap(),
            communities: Vec::new(),
            prepend: 0,
            med: None,
        });
        new.neighbors[0].hold_time_s = 9;
        new.hold_down_ms = 500;
        let d = BgpDiff::between(Some(&old), Some(&new));
        assert_eq!(d.prefixes.added, vec!["192.0.2.10/32"]);
        assert_eq!(d.prefixes.removed, vec!["198.51.100.0/24"]);
        assert_eq!(d.prefixes.changed, vec!["192.0.2.0/24"]);
        assert_eq!(d.neighbors.changed, vec!["203.0.113.9"]);
        assert_eq!(d.settings, vec!["hold_down_ms"]);
        assert_eq!(
            d.to_string(),
            "[bgp] prefixes: +1 (192.0.2.10/32), -1 (198.51.100.0/24), ~1 (192.0.2.0/24); \
             neighbours: ~1 (203.0.113.9); settings: hold_down_ms"
        );
        let added = BgpDiff::between(None, Some(&new));
        assert_eq!(added.section, Some(SectionChange::Added));
        assert_eq!(added.to_string(), "[bgp] section added");
        assert!(BgpDiff::between(None, None).is_empty());
        // In the spec's diff too.
        let mut pop: PopSpec = toml::from_str(EXAMPLE).unwrap();
        let before = pop.clone();
        pop.bgp = Some(new);
        let line = SpecDiff::between(&before, &pop).to_string();
        assert_eq!(line, "[bgp] section added");
    }
}
