//! A region's name as every EIP of the description holds it: one pointer to
//! a name shared by all EIPs of that region (a million EIPs name a handful of
//! regions), 8 bytes where an inline `CompactString` took 24.
//!
//! Names are interned when made (read from a file, the control socket or a
//! test): equal names share one allocation, found in a process-wide set. The
//! set drops names no EIP holds any more whenever it has doubled, so a stream
//! of mistyped regions sent to the control socket does not pile up.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Borrow;
use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::{Arc, Mutex};

/// An interned region name: compares, hashes, prints and serialises as its
/// text.
#[derive(Clone)]
pub struct RegionName(Arc<Box<str>>);

/// Names in use, for sharing, and when to drop those no one holds.
struct Names {
    set: HashSet<ByText>,
    purge_at: usize,
}

/// A name in the set, found by its text.
#[derive(Clone)]
struct ByText(Arc<Box<str>>);

impl Borrow<str> for ByText {
    fn borrow(&self) -> &str {
        &self.0
    }
}
impl PartialEq for ByText {
    fn eq(&self, o: &Self) -> bool {
        **self.0 == **o.0
    }
}
impl Eq for ByText {}
impl Hash for ByText {
    fn hash<H: Hasher>(&self, h: &mut H) {
        (**self.0).hash(h)
    }
}

static NAMES: Mutex<Option<Names>> = Mutex::new(None);

thread_local! {
    /// The last name this thread made: EIPs in a file come region by region,
    /// so most names are made without the lock.
    static LAST: RefCell<Option<RegionName>> = const { RefCell::new(None) };
}

impl RegionName {
    /// The shared name `text`.
    pub fn new(text: &str) -> RegionName {
        LAST.with(|last| {
            let mut last = last.borrow_mut();
            if let Some(name) = last.as_ref().filter(|n| n.as_str() == text) {
                return name.clone();
            }
            let name = RegionName::interned(text);
            *last = Some(name.clone());
            name
        })
    }

    fn interned(text: &str) -> RegionName {
        let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
        let names = names.get_or_insert_with(|| Names {
            set: HashSet::new(),
            purge_at: 64,
        });
        if let Some(n) = names.set.get(text) {
            return RegionName(Arc::clone(&n.0));
        }
        if names.set.len() >= names.purge_at {
            // Held by the set alone: no EIP names it any more.
            names.set.retain(|n| Arc::strong_count(&n.0) > 1);
            names.purge_at = (2 * names.set.len()).max(64);
        }
        let name = Arc::new(Box::<str>::from(text));
        names.set.insert(ByText(Arc::clone(&name)));
        RegionName(name)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for RegionName {
    fn default() -> Self {
        RegionName::new("")
    }
}

impl Deref for RegionName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for RegionName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for RegionName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for RegionName {
    fn from(text: &str) -> Self {
        RegionName::new(text)
    }
}

impl From<String> for RegionName {
    fn from(text: String) -> Self {
        RegionName::new(&text)
    }
}

impl From<&String> for RegionName {
    fn from(text: &String) -> Self {
        RegionName::new(text)
    }
}

impl PartialEq for RegionName {
    fn eq(&self, o: &Self) -> bool {
        Arc::ptr_eq(&self.0, &o.0) || *self.0 == *o.0
    }
}
impl Eq for RegionName {}

impl PartialEq<str> for RegionName {
    fn eq(&self, o: &str) -> bool {
        self.as_str() == o
    }
}
impl PartialEq<&str> for RegionName {
    fn eq(&self, o: &&str) -> bool {
        self.as_str() == *o
    }
}
impl PartialEq<String> for RegionName {
    fn eq(&self, o: &String) -> bool {
        self.as_str() == o
    }
}

impl PartialEq<&String> for RegionName {
    fn eq(&self, o: &&String) -> bool {
        self.as_str() == o.as_str()
    }
}

impl PartialEq<RegionName> for String {
    fn eq(&self, o: &RegionName) -> bool {
        self.as_str() == o.as_str()
    }
}
impl PartialEq<RegionName> for str {
    fn eq(&self, o: &RegionName) -> bool {
        self == o.as_str()
    }
}
impl PartialEq<RegionName> for &str {
    fn eq(&self, o: &RegionName) -> bool {
        *self == o.as_str()
    }
}

impl PartialOrd for RegionName {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for RegionName {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(o.as_str())
    }
}

impl Hash for RegionName {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.as_str().hash(h)
    }
}

impl fmt::Debug for RegionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for RegionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl Serialize for RegionName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for RegionName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = RegionName;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a region name")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RegionName, E> {
                Ok(RegionName::new(v))
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<RegionName, E> {
                std::str::from_utf8(v)
                    .map(RegionName::new)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Bytes(v), &self))
            }
        }
        d.deserialize_str(Text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_names_share_one_allocation() {
        let a = RegionName::new("region-name-test-a");
        let text =
            serde::de::value::StrDeserializer::<serde::de::value::Error>::new("region-name-test-a");
        let b = RegionName::deserialize(text).unwrap();
        let c = std::thread::spawn(|| RegionName::from("region-name-test-a"))
            .join()
            .unwrap();
        assert!(Arc::ptr_eq(&a.0, &b.0) && Arc::ptr_eq(&a.0, &c.0));
        assert_eq!(a, "region-name-test-a");
        assert_eq!(
            format!("{a} {a:?}"),
            "region-name-test-a \"region-name-test-a\""
        );
        assert_eq!(std::mem::size_of::<RegionName>(), 8);
        // A map keyed by names is found by text (hash and equality agree).
        let map: std::collections::HashMap<RegionName, u32> = [(a.clone(), 7)].into();
        assert_eq!(map.get("region-name-test-a"), Some(&7));
    }

    #[test]
    fn names_no_one_holds_are_dropped() {
        // Many names made and let go (mistyped regions on the control
        // socket): the set does not keep them all.
        for i in 0..10_000 {
            drop(RegionName::new(&format!("region-name-test-gone-{i}")));
        }
        let kept = RegionName::new("region-name-test-kept");
        for i in 0..1_000 {
            drop(RegionName::new(&format!("region-name-test-gone-again-{i}")));
        }
        let size = NAMES.lock().unwrap().as_ref().unwrap().set.len();
        assert!(size < 2_000, "{size} names in the set");
        assert_eq!(RegionName::new("region-name-test-kept"), kept);
    }
}
