//! The line of an entry or field of the configuration file: the table builder
//! names what is wrong by its key path (`eips[3].backend`, see
//! [`TableError::place`](eip_dataplane::tables::TableError::place)); the file is
//! parsed a second time, keeping spans, and the path is walked down it.
//!
//! The spec types stay free of TOML: they are also read from the JSON state file
//! and the control socket, where there are no lines.

use super::source::Position;
use eip_dataplane::tables::Entry;
use std::ops::Range;
use toml_edit::{ImDocument, Item, Table, TableLike, Value};

/// Other names a field may be written under (serde aliases of the spec types).
const ALIASES: &[(&str, &str)] = &[("backend", "default_backend")];

/// Places key paths in one configuration text.
pub(super) struct Locator<'a> {
    text: &'a str,
    /// `None` when the text does not parse (then nothing has a position).
    doc: Option<ImDocument<&'a str>>,
}

/// A place in the document while walking down a key path.
#[derive(Clone, Copy)]
enum Node<'a> {
    Item(&'a Item),
    /// An element of an array of tables (`[[paths]]`).
    Table(&'a Table),
    /// An element of an inline array (`backends = [{ ... }]`).
    Value(&'a Value),
}

impl<'a> Node<'a> {
    fn span(self) -> Option<Range<usize>> {
        match self {
            Node::Item(i) => i.span(),
            Node::Table(t) => t.span(),
            Node::Value(v) => v.span(),
        }
    }

    fn get(self, key: &str) -> Option<Node<'a>> {
        let table: &'a dyn TableLike = match self {
            Node::Item(i) => i.as_table_like()?,
            Node::Table(t) => t,
            Node::Value(v) => v.as_inline_table()?,
        };
        table.get(key).map(Node::Item)
    }

    fn index(self, i: usize) -> Option<Node<'a>> {
        match self {
            Node::Item(Item::ArrayOfTables(a)) => a.get(i).map(Node::Table),
            Node::Item(Item::Value(Value::Array(a))) | Node::Value(Value::Array(a)) => {
                a.get(i).map(Node::Value)
            }
            _ => None,
        }
    }
}

impl<'a> Locator<'a> {
    pub(super) fn new(text: &'a str) -> Locator<'a> {
        Locator {
            text,
            doc: ImDocument::parse(text).ok(),
        }
    }

    /// The `[pop] eips_file` the text names, if any.
    pub(super) fn eips_file(&self) -> Option<String> {
        let pop = self.doc.as_ref()?.get("pop")?;
        Some(pop.get("eips_file")?.as_str()?.to_string())
    }

    /// How many EIPs the text itself writes (`[[eips]]` or an inline list).
    pub(super) fn eip_count(&self) -> usize {
        match self.doc.as_ref().and_then(|d| d.get("eips")) {
            Some(Item::ArrayOfTables(a)) => a.len(),
            Some(Item::Value(Value::Array(a))) => a.len(),
            _ => 0,
        }
    }

    /// Where `field` of `entry` is written: its value. When the field is not
    /// written (a default, or a required field that is missing), where the entry
    /// starts, or the nearest entry above it that is written.
    pub(super) fn position(&self, entry: &Entry, field: Option<&str>) -> Option<Position> {
        self.span(entry, field)
            .map(|s| Position::of(self.text, s.start))
    }

    fn span(&self, entry: &Entry, field: Option<&str>) -> Option<Range<usize>> {
        let mut node = Node::Item(self.doc.as_ref()?.as_item());
        let mut found = None;
        for step in entry.steps() {
            let Some(next) = node.get(step.key) else {
                return found;
            };
            node = match step.index {
                Some(i) => match next.index(i) {
                    Some(element) => element,
                    None => return next.span().or(found),
                },
                None => next,
            };
            found = node.span().or(found);
        }
        let Some(field) = field else { return found };
        let aliases = ALIASES
            .iter()
            .filter(|(name, _)| *name == field)
            .map(|(_, alias)| *alias);
        std::iter::once(field)
            .chain(aliases)
            .find_map(|key| node.get(key))
            .and_then(Node::span)
            .or(found)
    }
}

/// The EIP whose entry holds byte `offset` of `text` (`eips[i] (address)`),
/// when the entry is written as a `[[eips]]` table: a syntax error deep in
/// an EIP (say, a bad prefix in its `acl`) then names the EIP, not only the
/// line. The nearest header above `offset` must be `[[eips]]` or one of its
/// sub-tables (`[eips.acl]`, `[[eips.services]]`, ...).
pub(super) fn eip_at(text: &str, offset: usize) -> Option<String> {
    let before = text.get(..offset)?;
    let headers = before
        .lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('['));
    let mut entries = 0usize;
    let mut last = None;
    for l in headers {
        let name = l.trim_start_matches('[').split(']').next()?.trim();
        if name == "eips" && l.starts_with("[[") {
            entries += 1;
        }
        last = Some(name);
    }
    // The nearest header must be the EIP's own or one of its sub-tables.
    let name = last?;
    if name != "eips" && !name.starts_with("eips.") {
        return None;
    }
    let index = entries.checked_sub(1);
    let i = index?;
    let doc = ImDocument::parse(text).ok()?;
    let address = doc
        .get("eips")
        .and_then(|e| e.as_array_of_tables())
        .and_then(|a| a.get(i))
        .and_then(|t| t.get("address"))
        .and_then(|a| a.as_str())
        .map(str::to_string);
    Some(match address {
        Some(a) => format!("eips[{i}] ({a})"),
        None => format!("eips[{i}]"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offset_inside_an_eip_names_it() {
        let text = "[pop]\nname = \"p\"\n\n[[eips]]\naddress = \"192.0.2.1\"\n\n[[eips]]\naddress = \"192.0.2.2\"\nacl = { rules = [] }\n  [[eips.services]]\n  port = 80\n\n[bgp]\nlocal_as = 1\n";
        let at = |needle: &str| eip_at(text, text.find(needle).unwrap());
        assert_eq!(at("acl").as_deref(), Some("eips[1] (192.0.2.2)"));
        assert_eq!(at("port = 80").as_deref(), Some("eips[1] (192.0.2.2)"));
        assert_eq!(
            at("address = \"192.0.2.1").as_deref(),
            Some("eips[0] (192.0.2.1)")
        );
        assert_eq!(at("name"), None);
        assert_eq!(at("local_as"), None);
    }

    const TEXT: &str = r#"[pop]
name = "p"
outer_ttl = 0

[[ports]]
name = "a"

[[ports]]
name = "b"
mac = "02:00:00:00:00:01"

[[eips]]
address = "192.0.2.1"
default_backend = "10.0.0.1"
  [[eips.services]]
  port = 80
  backends = [
    { address = "10.0.0.2" },
    { address = "10.0.0.3", port = 0 },
  ]
"#;

    fn at(entry: Entry, field: Option<&str>) -> Option<String> {
        Locator::new(TEXT)
            .position(&entry, field)
            .map(|p| p.to_string())
    }

    #[test]
    fn fields_are_placed_at_their_value() {
        assert_eq!(
            at(Entry::section("pop"), Some("outer_ttl")).unwrap(),
            "3:13"
        );
        assert_eq!(at(Entry::item("ports", 1), Some("mac")).unwrap(), "10:7");
        let backend = Entry::item("eips", 0)
            .then("services", 0)
            .then("backends", 1);
        assert_eq!(at(backend.clone(), Some("port")).unwrap(), "19:36");
        assert_eq!(at(backend, None).unwrap(), "19:5");
        // Written under its alias.
        assert_eq!(
            at(Entry::item("eips", 0), Some("backend")).unwrap(),
            "14:19"
        );
    }

    #[test]
    fn what_is_not_written_is_placed_at_its_entry() {
        // Defaults and missing fields: the entry's header.
        assert_eq!(at(Entry::item("ports", 0), Some("mac")).unwrap(), "5:1");
        assert_eq!(
            at(Entry::item("eips", 0).then("services", 0), Some("protocol")).unwrap(),
            "15:3"
        );
        // No such element: the list; no such list: nothing.
        assert_eq!(at(Entry::item("ports", 7), Some("name")).unwrap(), "5:1");
        assert_eq!(at(Entry::item("paths", 0), Some("mtu")), None);
        assert_eq!(at(Entry::section("ports"), None).unwrap(), "5:1");
        assert_eq!(
            Locator::new("not toml [").position(&Entry::section("pop"), None),
            None
        );
    }
}
