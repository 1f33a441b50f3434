//! The state file `{version, spec}` and its journal, which survive restarts, and
//! what the daemon boots with: those, or the TOML configuration when there is
//! none.

use super::diff::SpecDiff;
use super::edits;
use super::journal::{self, Entry};
use super::plugins::Resolver;
use crate::config::{self, ConfigError};
use eip_dataplane::tables::{MacAddr, PopSpec, TableError, Tables};
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where `eipd` keeps its state unless told otherwise.
pub const DEFAULT_STATE_FILE: &str = "/var/lib/eipd/state.json";

/// Why the state could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read state file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("state file {path} is not a valid state document: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("state file {path} (table version {version}) does not build: {source}")]
    Invalid {
        path: PathBuf,
        version: u64,
        #[source]
        source: TableError,
    },
    #[error("cannot write state file {path} ({step}): {source}")]
    Write {
        path: PathBuf,
        step: &'static str,
        #[source]
        source: io::Error,
    },
    #[error(
        "state file {path} is a symbolic link (to {target}): give the real path with --state, \
         or remove the link"
    )]
    Symlink { path: PathBuf, target: PathBuf },
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Which description `eipd run` starts from when a state file exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartFrom {
    /// The state file: what was in force when the daemon last ran (the default:
    /// changes made through the control socket survive a restart).
    #[default]
    State,
    /// The configuration file, committed as the next version over the state.
    Config,
}

/// The state file's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateDoc {
    pub version: u64,
    pub spec: PopSpec,
}

/// The description a daemon starts from, read once ([`StateFile::load_for_boot`]).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub doc: StateDoc,
    pub origin: Origin,
    /// From the state file: what replaying its journal did.
    replayed: Option<Replayed>,
}

/// Where the spec came from at startup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The state file: what was in force when the daemon last ran.
    StateFile,
    /// The TOML configuration, at version 1 (there was no state file).
    Config,
}

/// A spec with the tables built from it, ready for the workers and for
/// [`ControlPlane::new`](super::ControlPlane::new).
#[derive(Debug, Clone)]
pub struct Boot {
    /// The operator's spec (what the state file holds).
    pub spec: PopSpec,
    /// Built from `spec` as resolved.
    pub tables: Arc<Tables>,
    pub origin: Origin,
    /// What resolution filled in, to notice when it changes.
    pub(super) resolved: Resolved,
}

impl Boot {
    /// Builds the tables of `doc`, its spec first passed through `resolver`
    /// when there is one (the same one the [`ControlPlane`](super::ControlPlane)
    /// is given).
    ///
    /// # Errors
    /// The table builder's error.
    pub fn build(
        doc: StateDoc,
        origin: Origin,
        resolver: Option<&dyn Resolver>,
    ) -> Result<Boot, TableError> {
        Boot::build_all(doc, origin, resolver).map_err(|mut all| all.swap_remove(0))
    }

    /// [`Boot::build`] reporting every problem of the spec, not only the first.
    ///
    /// # Errors
    /// Every error the table builder finds.
    pub fn build_all(
        doc: StateDoc,
        origin: Origin,
        resolver: Option<&dyn Resolver>,
    ) -> Result<Boot, Vec<TableError>> {
        let (tables, resolved) = build(&doc.spec, doc.version, resolver)?;
        Ok(Boot {
            spec: doc.spec,
            tables: Arc::new(tables),
            origin,
            resolved,
        })
    }
}

/// The next-hop MACs a resolved spec uses (ports' gateways, then paths).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Resolved(Vec<Option<MacAddr>>);

impl Resolved {
    pub(super) fn of(spec: &PopSpec) -> Resolved {
        Resolved(
            spec.ports
                .iter()
                .map(|p| p.gateway_mac)
                .chain(spec.paths.iter().map(|p| p.next_hop_mac))
                .collect(),
        )
    }
}

/// Resolves `spec` (if there is a resolver) and builds tables of `version`.
fn build(
    spec: &PopSpec,
    version: u64,
    resolver: Option<&dyn Resolver>,
) -> Result<(Tables, Resolved), Vec<TableError>> {
    match resolver {
        Some(r) => {
            let resolved = r.resolve(spec);
            Ok((
                Tables::build_all(&resolved, version)?,
                Resolved::of(&resolved),
            ))
        }
        None => Ok((Tables::build_all(spec, version)?, Resolved::of(spec))),
    }
}

/// What replaying the journal at boot did.
#[derive(Debug, Clone, Copy)]
struct Replayed {
    applied: usize,
    valid_len: u64,
}

/// The configuration's spec as operator intent (see [`edits::intent`]).
fn config_intent(config_path: &Path) -> Result<PopSpec, ConfigError> {
    let mut spec = config::load_spec(config_path)?;
    edits::intent(&mut spec);
    Ok(spec)
}

/// The JSON file `{version, spec}` that survives restarts (with the journal
/// of changes since it was written, see [`journal`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        StateFile { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The journal of changes since the state file was written
    /// (`<state file>.journal`).
    pub fn journal_path(&self) -> PathBuf {
        journal::path_for(&self.path)
    }

    /// The last committed state: the state file with the journal's changes
    /// replayed over it; `Ok(None)` if there is no state file. Does not build
    /// tables ([`StateFile::boot`] does). A record cut short at the end of the
    /// journal (a crash while appending: that change was never acknowledged) is
    /// ignored and logged.
    ///
    /// # Errors
    /// A file that exists but cannot be read or parsed, a journal damaged
    /// before its last record, or one that does not follow the state file: the
    /// daemon must not silently fall back to an older configuration.
    pub fn load(&self) -> Result<Option<StateDoc>, StateError> {
        Ok(self.load_with_journal()?.map(|(doc, _)| doc))
    }

    fn load_with_journal(&self) -> Result<Option<(StateDoc, Replayed)>, StateError> {
        let Some(mut doc) = self.load_snapshot()? else {
            return Ok(None);
        };
        let journal = self.journal_path();
        let replay = journal::read(&journal)?;
        if let Some(why) = &replay.ignored_tail {
            tracing::warn!("{why}");
        }
        let mut applied = 0;
        for record in replay.records {
            if record.version <= doc.version {
                continue; // compacted into the state file already
            }
            let syntax = |message: String| StateError::Syntax {
                path: journal.clone(),
                message,
            };
            if record.version != doc.version + 1 {
                return Err(syntax(format!(
                    "the journal jumps from table version {} to {}: changes are missing",
                    doc.version, record.version
                )));
            }
            match record.entry {
                Entry::Ops(ops) => edits::apply_all(&ops, &mut doc.spec).map_err(|e| {
                    syntax(format!(
                        "change to version {} does not apply: {e}",
                        record.version
                    ))
                })?,
                Entry::Spec(spec) => doc.spec = *spec,
            }
            edits::intent(&mut doc.spec);
            doc.version = record.version;
            applied += 1;
        }
        Ok(Some((
            doc,
            Replayed {
                applied,
                valid_len: replay.valid_len,
            },
        )))
    }

    /// The state file alone, without the journal.
    fn load_snapshot(&self) -> Result<Option<StateDoc>, StateError> {
        self.refuse_symlink()?;
        let text = match fs::read(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StateError::Read {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        let mut doc = super::snapshot::decode(&text).map_err(|message| StateError::Syntax {
            path: self.path.clone(),
            message,
        })?;
        edits::intent(&mut doc.spec);
        if doc.version == 0 {
            return Err(StateError::Syntax {
                path: self.path.clone(),
                message: "version must be at least 1".into(),
            });
        }
        Ok(Some(doc))
    }

    /// The state file's document if there is one, else the TOML configuration's
    /// spec at version 1. Writes nothing: [`boot`](Self::boot) saves the initial
    /// state once it builds. For a daemon that must prepare something from the
    /// spec (e.g. wait for next hops to resolve) before calling `boot`.
    ///
    /// # Errors
    /// A broken state file or an unreadable configuration.
    pub fn load_or_config(&self, config_path: &Path) -> Result<(StateDoc, Origin), StateError> {
        self.load_from(config_path, StartFrom::State)
    }

    /// As [`load_or_config`](Self::load_or_config), choosing with `from` when
    /// both exist. From the configuration over an existing state, the version
    /// is the state's plus one, so versions never go back.
    ///
    /// # Errors
    /// A broken state file or an unreadable configuration.
    pub fn load_from(
        &self,
        config_path: &Path,
        from: StartFrom,
    ) -> Result<(StateDoc, Origin), StateError> {
        let loaded = self.load_for_boot(config_path, from)?;
        Ok((loaded.doc, loaded.origin))
    }

    /// [`load_from`](Self::load_from), keeping what [`boot_loaded`](Self::boot_loaded)
    /// needs, so that a daemon reads the state (or the configuration) once.
    ///
    /// # Errors
    /// As [`load_from`](Self::load_from).
    pub fn load_for_boot(&self, config_path: &Path, from: StartFrom) -> Result<Loaded, StateError> {
        Ok(match (self.load_with_journal()?, from) {
            (Some((doc, replayed)), StartFrom::State) => Loaded {
                doc,
                origin: Origin::StateFile,
                replayed: Some(replayed),
            },
            (Some((doc, _)), StartFrom::Config) => Loaded {
                doc: StateDoc {
                    version: doc.version + 1,
                    spec: config_intent(config_path)?,
                },
                origin: Origin::Config,
                replayed: None,
            },
            (None, _) => Loaded {
                doc: StateDoc {
                    version: 1,
                    spec: config_intent(config_path)?,
                },
                origin: Origin::Config,
                replayed: None,
            },
        })
    }

    /// How the configuration file differs from the state `doc` the daemon
    /// starts from: `None` when they agree (or the file cannot be read, which
    /// the caller reports separately if it matters).
    pub fn disagreement(&self, doc: &StateDoc, config_path: &Path) -> Option<SpecDiff> {
        let spec = config_intent(config_path).ok()?;
        let diff = SpecDiff::between(&doc.spec, &spec);
        (!diff.is_empty()).then_some(diff)
    }

    fn refuse_symlink(&self) -> Result<(), StateError> {
        journal::refuse_symlink(&self.path)
    }

    /// What `eipd` starts with: the state file if present (same spec, same
    /// version), else the TOML configuration at version 1, built with
    /// [`Boot::build`]. A configuration is saved as the state file only once it
    /// builds, so a broken first configuration leaves no state behind.
    ///
    /// # Errors
    /// A broken state file or configuration (naming the file and the entry), or
    /// a state file that cannot be written.
    pub fn boot(
        &self,
        config_path: &Path,
        resolver: Option<&dyn Resolver>,
    ) -> Result<Boot, StateError> {
        self.boot_from(config_path, resolver, StartFrom::State)
    }

    /// [`boot`](Self::boot), choosing with `from` when both a state file and the
    /// configuration exist.
    ///
    /// # Errors
    /// As [`boot`](Self::boot).
    pub fn boot_from(
        &self,
        config_path: &Path,
        resolver: Option<&dyn Resolver>,
        from: StartFrom,
    ) -> Result<Boot, StateError> {
        self.boot_loaded(
            self.load_for_boot(config_path, from)?,
            config_path,
            resolver,
        )
    }

    /// [`boot_from`](Self::boot_from) with what [`load_for_boot`](Self::load_for_boot)
    /// read (`config_path` names the configuration in errors).
    ///
    /// # Errors
    /// As [`boot`](Self::boot).
    pub fn boot_loaded(
        &self,
        loaded: Loaded,
        config_path: &Path,
        resolver: Option<&dyn Resolver>,
    ) -> Result<Boot, StateError> {
        let Loaded {
            doc,
            origin,
            replayed,
        } = loaded;
        let version = doc.version;
        let boot = match origin {
            Origin::StateFile => {
                Boot::build(doc, origin, resolver).map_err(|source| StateError::Invalid {
                    path: self.path.clone(),
                    version,
                    source,
                })?
            }
            // The operator's file: every problem, each at its line.
            Origin::Config => Boot::build_all(doc, origin, resolver)
                .map_err(|errors| config::refused_file(config_path, errors))?,
        };
        if origin == Origin::Config {
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                fs::create_dir_all(dir)
                    .map_err(|source| self.write_error("create directory", source))?;
            }
            self.save(version, &boot.spec)?;
            // The journal's records are all at or below the state file's
            // version now: skipped if a crash comes before this removal.
            match fs::remove_file(self.journal_path()) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(self.write_error("remove the old journal", e))
                }
                _ => {}
            }
        } else if let Some(replayed) = replayed {
            // Cut a record a crash left unfinished, so that the next one
            // appended follows the last whole one.
            let journal = self.journal_path();
            let len = fs::metadata(&journal).map_or(0, |m| m.len());
            if len > replayed.valid_len {
                OpenOptions::new()
                    .write(true)
                    .open(&journal)
                    .and_then(|f| {
                        f.set_len(replayed.valid_len)?;
                        f.sync_all()
                    })
                    .map_err(|e| self.write_error("cut the journal's unfinished record", e))?;
            }
            if replayed.applied > 0 {
                tracing::info!(
                    "state: {} changes replayed from {}",
                    replayed.applied,
                    journal.display()
                );
            }
        }
        Ok(boot)
    }

    /// Replaces the file atomically: a temporary file in the same directory is
    /// written and fsynced, renamed over the state file, and the directory is
    /// fsynced so that the rename survives a crash. Readers see the old or the new
    /// file, never a mix.
    ///
    /// # Errors
    /// The step that failed. The temporary file is removed; the state file is
    /// unchanged unless the final directory sync failed (the caller restores it).
    pub fn save(&self, version: u64, spec: &PopSpec) -> Result<(), StateError> {
        self.refuse_symlink()?;
        let bytes = super::snapshot::encode(version, spec)
            .map_err(|e| self.write_error("serialize", io::Error::other(e)))?;
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "state".into());
        let tmp = dir.join(format!(".{name}.tmp"));
        journal::replace_private(&tmp, &self.path, &[&bytes], "snapshot_before_rename")
            .map_err(|(step, source)| self.write_error(step, source))?;
        journal::crash_point("snapshot_after_rename");
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| self.write_error("fsync directory", source))
    }

    fn write_error(&self, step: &'static str, source: io::Error) -> StateError {
        StateError::Write {
            path: self.path.clone(),
            step,
            source,
        }
    }
}

#[cfg(test)]
mod tests;
