//! Why a POP description cannot become a table. Each error names the entry and the
//! field, so an operator can find the line to fix: [`TableError::place`] is where
//! the error is in the description (a key path such as `eips[3].backend`, which the
//! control side maps to a line of the configuration file), [`TableError::reason`]
//! what is wrong there.

use std::fmt;
use std::net::IpAddr;

/// One step down into a POP description: a section (`pop`) or an element of a list
/// (`paths[1]`), with a label that tells people which one (`"sha-bj-unicom"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryStep {
    /// The key of the section or list, as written in the configuration.
    pub key: &'static str,
    /// The index into the list; `None` for a section or a whole list.
    pub index: Option<usize>,
    /// Printed in parentheses after the step: a name or an address.
    pub label: Option<String>,
}

/// An entry of a POP description, from the top. Prints as error texts name entries,
/// `eips[1] (192.0.2.20): services[0] (Tcp/80)`; [`Entry::key_path`] is its place in
/// the configuration file, `eips[1].services[0]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Entry(Vec<EntryStep>);

impl Entry {
    /// A section or a whole list at the top: `pop`, `ports`.
    pub fn section(key: &'static str) -> Entry {
        Entry(vec![EntryStep {
            key,
            index: None,
            label: None,
        }])
    }

    /// Element `index` of a list at the top: `paths[1]`.
    pub fn item(key: &'static str, index: usize) -> Entry {
        Entry::default().then(key, index)
    }

    /// This entry's element `index` of its list `key`: `eips[1]` then `services[0]`.
    pub fn then(mut self, key: &'static str, index: usize) -> Entry {
        self.0.push(EntryStep {
            key,
            index: Some(index),
            label: None,
        });
        self
    }

    /// Labels the last step (a name or an address, printed in parentheses).
    pub fn label(mut self, label: impl fmt::Display) -> Entry {
        if let Some(last) = self.0.last_mut() {
            last.label = Some(label.to_string());
        }
        self
    }

    /// The steps from the top of the description.
    pub fn steps(&self) -> &[EntryStep] {
        &self.0
    }

    /// Where the entry (or its `field`) is in the configuration file:
    /// `eips[1].services[0].port`.
    pub fn key_path(&self, field: Option<&str>) -> String {
        let mut out = String::new();
        for step in &self.0 {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(step.key);
            if let Some(i) = step.index {
                out.push_str(&format!("[{i}]"));
            }
        }
        if let Some(field) = field {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(field);
        }
        out
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, step) in self.0.iter().enumerate() {
            if n > 0 {
                f.write_str(": ")?;
            }
            f.write_str(step.key)?;
            if let Some(i) = step.index {
                write!(f, "[{i}]")?;
            }
            if let Some(label) = &step.label {
                write!(f, " ({label})")?;
            }
        }
        Ok(())
    }
}

/// A rejected POP description. Nothing is built when any check fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    #[error("{kind} name {name:?} is used twice (entries {first} and {second})")]
    DuplicateName {
        kind: &'static str,
        /// The list of such entries: `ports`, `regions`, `paths`.
        list: &'static str,
        name: String,
        first: usize,
        second: usize,
    },
    #[error("{entry}: field `{field}` names {kind} {name:?}, which is not defined")]
    UnknownReference {
        entry: Entry,
        field: &'static str,
        kind: &'static str,
        name: String,
    },
    #[error("{entry}: field `{field}`: {reason}")]
    InvalidValue {
        entry: Entry,
        field: &'static str,
        reason: String,
    },
    #[error("EIP {address} is defined twice (eips[{first}] and eips[{second}])")]
    DuplicateEip {
        address: IpAddr,
        first: usize,
        second: usize,
    },
    #[error(
        "{entry}: backend {backend} is also used by {other}; in one region a backend \
         address must belong to one EIP, or return traffic could not be told apart"
    )]
    BackendConflict {
        /// The EIP (its `backend`), or a backend of one of its services (its
        /// `address`).
        entry: Entry,
        backend: IpAddr,
        /// Where the EIP that had the backend first uses it, in the same way.
        other: Entry,
    },
    #[error("the POP needs exactly one port with role \"internet\" or \"both\"; found {found}")]
    InternetPort { found: usize },
}

impl TableError {
    /// The entry the error is about and, when it is one field of it, that field.
    pub fn place(&self) -> (Entry, Option<&'static str>) {
        match self {
            TableError::DuplicateName { list, second, .. } => {
                (Entry::item(list, *second), Some("name"))
            }
            TableError::UnknownReference { entry, field, .. }
            | TableError::InvalidValue { entry, field, .. } => {
                (entry.clone(), (!field.is_empty()).then_some(*field))
            }
            TableError::BackendConflict { entry, .. } => {
                (entry.clone(), Some(backend_field(entry)))
            }
            TableError::DuplicateEip { second, .. } => {
                (Entry::item("eips", *second), Some("address"))
            }
            TableError::InternetPort { .. } => (Entry::section("ports"), None),
        }
    }

    /// [`place`](Self::place) as a key path of the configuration: `eips[3].backend`.
    pub fn key_path(&self) -> String {
        let (entry, field) = self.place();
        entry.key_path(field)
    }

    /// What is wrong, without the entry (for a message that shows the place
    /// separately, as `file:line:column: key_path: reason`).
    pub fn reason(&self) -> String {
        match self {
            TableError::DuplicateName {
                kind,
                list,
                name,
                first,
                ..
            } => format!("{kind} name {name:?} is already used by {list}[{first}]"),
            TableError::UnknownReference { kind, name, .. } => {
                format!("names {kind} {name:?}, which is not defined")
            }
            TableError::InvalidValue { reason, .. } => reason.clone(),
            TableError::DuplicateEip { address, first, .. } => {
                format!("EIP {address} is already defined by eips[{first}]")
            }
            TableError::BackendConflict { backend, other, .. } => {
                let role = match backend_field(other) {
                    "backend" => "the 1:1 backend",
                    _ => "a service backend",
                };
                format!(
                    "{backend} is already {role} of {other}; in one region a backend address \
                     belongs to one EIP (returns are told apart by it)"
                )
            }
            TableError::InternetPort { .. } => self.to_string(),
        }
    }
}

/// The field holding the backend of a [`TableError::BackendConflict`] entry: an
/// EIP's 1:1 `backend`, or the `address` of a service backend.
fn backend_field(entry: &Entry) -> &'static str {
    match entry.steps() {
        [_eip] => "backend",
        _ => "address",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_print_as_before_and_give_their_key_path() {
        let e = Entry::item("eips", 1)
            .label("192.0.2.20")
            .then("services", 0)
            .label("Tcp/80")
            .then("backends", 2);
        assert_eq!(
            e.to_string(),
            "eips[1] (192.0.2.20): services[0] (Tcp/80): backends[2]"
        );
        assert_eq!(
            e.key_path(Some("port")),
            "eips[1].services[0].backends[2].port"
        );
        assert_eq!(Entry::section("pop").key_path(Some("vtep")), "pop.vtep");
        assert_eq!(Entry::section("ports").key_path(None), "ports");
    }

    #[test]
    fn every_error_has_a_place_and_a_reason() {
        let dup = TableError::DuplicateName {
            kind: "path",
            list: "paths",
            name: "a".into(),
            first: 0,
            second: 2,
        };
        assert_eq!(dup.key_path(), "paths[2].name");
        assert_eq!(dup.reason(), "path name \"a\" is already used by paths[0]");
        let eip = TableError::DuplicateEip {
            address: "192.0.2.1".parse().unwrap(),
            first: 0,
            second: 3,
        };
        assert_eq!(eip.key_path(), "eips[3].address");
        let ports = TableError::InternetPort { found: 0 };
        assert_eq!(ports.key_path(), "ports");
        assert!(ports.reason().contains("found 0"));
    }
}
