//! What differs between two POP descriptions, said the way an operator reads it:
//! EIPs, paths, regions and ports added, removed or changed by name, and whether
//! the POP section changed. Used to say why a configuration file and the state
//! file disagree, and what a reload changes.

use eip_dataplane::tables::PopSpec;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

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
        let old: BTreeMap<String, &T> = old.collect();
        let new: BTreeMap<String, &T> = new.collect();
        let mut e = Entries::default();
        for (name, item) in &new {
            match old.get(name) {
                None => e.added.push(name.clone()),
                Some(before) if before != item => e.changed.push(name.clone()),
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
            eips: Entries::of(
                old.eips.iter().map(|e| (e.address.to_string(), e)),
                new.eips.iter().map(|e| (e.address.to_string(), e)),
            ),
        }
    }

    pub fn is_empty(&self) -> bool {
        !self.pop
            && !self.limits
            && self.ports.is_empty()
            && self.regions.is_empty()
            && self.paths.is_empty()
            && self.eips.is_empty()
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
            let mut items = Vec::new();
            for (sign, list) in [("+", &e.added), ("-", &e.removed), ("~", &e.changed)] {
                if !list.is_empty() {
                    items.push(format!("{sign}{} ({})", list.len(), names(list)));
                }
            }
            parts.push(format!("{kind}: {}", items.join(", ")));
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
        let first = new.eips[0].address;
        new.eips.remove(first);
        new.eips[0].backend = Some("10.1.0.99".parse().unwrap());
        let mut added = new.eips[0].clone();
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
    }
}
