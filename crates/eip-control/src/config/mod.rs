//! Loading the POP's TOML configuration into a table snapshot.
//!
//! Reference: `docs/config.md`. Errors are reported as compilers report them,
//! `pop.toml:42:11: eips[3].backend: reason`, one per line:
//!
//! * a file that is not TOML, or not a POP description (unknown field, wrong type,
//!   missing field), stops at its first problem, shown with the offending line and
//!   a caret under it;
//! * a POP description the table builder refuses gets every problem reported at
//!   once, each at the line of the entry and field it names.
//!
//! A configuration that fails any check builds nothing.

mod eips_file;
mod locate;
mod source;

pub use source::{Position, Snippet};

use eip_dataplane::tables::{PopSpec, TableError, Tables};
use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};

/// Why a configuration file was refused. Printed as a compiler prints errors:
/// `file:line:column: what`, one line each (see the module documentation).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not TOML, or TOML that is not a POP description: the first problem, which
    /// stops parsing.
    Syntax {
        path: PathBuf,
        /// Where the problem is (the parser gives no place for a few errors).
        position: Option<Position>,
        message: String,
        /// The offending line with a caret under the problem.
        snippet: Option<Box<Snippet>>,
    },
    /// A POP description the table builder refuses: every problem found.
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

/// One reason a configuration does not build, and where it is in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub error: TableError,
    /// Line and column of the field the error names (or of its entry when the
    /// field is not written, e.g. a missing `backend`); `None` when the file
    /// does not show it (e.g. there is no `ports` list at all).
    pub position: Option<Position>,
    /// The file the position is in when it is not the configuration itself:
    /// the EIP list file (`[pop] eips_file`).
    pub file: Option<PathBuf>,
}

impl ConfigError {
    /// The typed table errors of an [`Invalid`](ConfigError::Invalid) configuration.
    pub fn table_errors(&self) -> impl Iterator<Item = &TableError> {
        let problems = match self {
            ConfigError::Invalid { problems, .. } => &problems[..],
            _ => &[],
        };
        problems.iter().map(|p| &p.error)
    }
}

/// `path:line:column` (or `path` alone when there is no position).
fn place(f: &mut fmt::Formatter<'_>, path: &Path, position: Option<&Position>) -> fmt::Result {
    write!(f, "{}", path.display())?;
    match position {
        Some(p) => write!(f, ":{p}"),
        None => Ok(()),
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { path, source } => {
                write!(f, "cannot read configuration {}: {source}", path.display())
            }
            ConfigError::Syntax {
                path,
                position,
                message,
                snippet,
            } => {
                place(f, path, position.as_ref())?;
                // toml's messages may span lines ("invalid string\nexpected `\"`"):
                // one line here, the snippet below it.
                let message: Vec<&str> = message.lines().map(str::trim).collect();
                write!(f, ": {}", message.join("; "))?;
                match snippet {
                    Some(s) => write!(f, "\n{s}"),
                    None => Ok(()),
                }
            }
            ConfigError::Invalid { path, problems } => {
                for p in problems {
                    place(f, p.file.as_deref().unwrap_or(path), p.position.as_ref())?;
                    writeln!(f, ": {}: {}", p.error.key_path(), p.error.reason())?;
                }
                match problems.len() {
                    1 => write!(f, "1 error"),
                    n => write!(f, "{n} errors"),
                }
            }
        }
    }
}

/// Parses configuration text (`origin` names it in errors, and a relative
/// `[pop] eips_file` is found beside it). The EIP list file's entries follow
/// the TOML's `[[eips]]`; the description keeps the EIPs, not the file's name.
///
/// # Errors
/// [`ConfigError::Syntax`] with the line and column of the first problem (in
/// the EIP list file when it is there), [`ConfigError::Read`] when the EIP
/// list file cannot be read.
pub fn parse(text: &str, origin: &Path) -> Result<PopSpec, ConfigError> {
    let mut spec: PopSpec = toml::from_str(text).map_err(|e| {
        let span = e.span();
        let message = e.message().trim_end();
        let eip = span.as_ref().and_then(|s| locate::eip_at(text, s.start));
        ConfigError::Syntax {
            path: origin.to_path_buf(),
            position: span.as_ref().map(|s| Position::of(text, s.start)),
            message: match eip {
                Some(eip) => format!("{eip}: {message}"),
                None => message.to_string(),
            },
            snippet: span.map(|s| Box::new(Snippet::of(text, s))),
        }
    })?;
    if let Some(name) = spec.pop.eips_file.take() {
        let listed = eips_file::load(&eips_file::resolve(&name, origin))?;
        // In bulk: one index build, not a million copy-on-write pushes.
        let mut all: Vec<_> = spec.eips.iter().map(Cow::into_owned).collect();
        all.extend(listed);
        spec.eips = all.into();
    }
    Ok(spec)
}

/// The configuration refused for `errors` (at least one), each placed in `text`
/// (or in its EIP list file, for the EIPs that come from there).
pub fn refused(text: &str, origin: &Path, errors: Vec<TableError>) -> ConfigError {
    let locator = locate::Locator::new(text);
    // EIPs past the TOML's own come from the list file, in its order.
    let list = locator.eips_file().map(|name| {
        let path = eips_file::resolve(Path::new(&name), origin);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        (path, text, locator.eip_count())
    });
    ConfigError::Invalid {
        path: origin.to_path_buf(),
        problems: errors
            .into_iter()
            .map(|error| {
                let (entry, field) = error.place();
                let listed = list.as_ref().and_then(|(path, text, own)| {
                    let step = entry.steps().first().filter(|s| s.key == "eips")?;
                    let k = step.index?.checked_sub(*own)?;
                    let field = if entry.steps().len() == 1 {
                        field
                    } else {
                        None
                    };
                    Some((path.clone(), eips_file::position_of(text, k, field)))
                });
                match listed {
                    Some((file, position)) => Problem {
                        position,
                        error,
                        file: Some(file),
                    },
                    None => Problem {
                        position: locator.position(&entry, field),
                        error,
                        file: None,
                    },
                }
            })
            .collect(),
    }
}

/// [`refused`] for a file whose text is read again to place the errors (they
/// are reported without a line if it cannot be read).
pub fn refused_file(path: &Path, errors: Vec<TableError>) -> ConfigError {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    refused(&text, path, errors)
}

/// Parses and validates configuration text, building table version 1.
///
/// # Errors
/// The first syntax problem, or every problem the table builder finds.
pub fn build(text: &str, origin: &Path) -> Result<(PopSpec, Tables), ConfigError> {
    let spec = parse(text, origin)?;
    let tables = Tables::build_all(&spec, 1).map_err(|errors| refused(text, origin, errors))?;
    Ok((spec, tables))
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads and parses a configuration file without building tables (next-hop MACs
/// may still have to come from the neighbour table).
pub fn load_spec(path: &Path) -> Result<PopSpec, ConfigError> {
    parse(&read(path)?, path)
}

/// Reads, parses and validates a configuration file, building table version 1.
pub fn load(path: &Path) -> Result<(PopSpec, Tables), ConfigError> {
    build(&read(path)?, path)
}

/// Reads and validates a configuration for `eipd check`/`eipctl validate`: next
/// hops given as addresses are looked up in this namespace's neighbour table, and
/// those not found there are left to `eipd run` (returned, not an error). Every
/// problem is reported, each with its line. Also returns the description read
/// (its `[bgp]`, which the tables ignore, is checked by the caller).
pub fn load_for_check(path: &Path) -> Result<Checked, ConfigError> {
    let text = read(path)?;
    let spec = parse(&text, path)?;
    let (filled, unresolved) = crate::neighbours::resolve_for_check(&spec);
    let tables = Tables::build_all(&filled, 1).map_err(|errors| refused(&text, path, errors))?;
    Ok(Checked {
        spec,
        tables,
        unresolved,
    })
}

/// What [`load_for_check`] found valid.
#[derive(Debug)]
pub struct Checked {
    pub spec: PopSpec,
    pub tables: Tables,
    /// Next hops whose MAC `eipd run` is left to learn.
    pub unresolved: Vec<std::net::Ipv4Addr>,
}

#[cfg(test)]
mod tests;
