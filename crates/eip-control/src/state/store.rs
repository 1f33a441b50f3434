//! The state file `{version, spec}` that survives restarts, and what the daemon
//! boots with: that file, or the TOML configuration when there is none.

use super::plugins::Resolver;
use crate::config::{self, ConfigError};
use eip_dataplane::tables::{MacAddr, PopSpec, TableError, Tables};
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
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
    #[error("state file {path} is not a valid {{\"version\", \"spec\"}} document: {message}")]
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
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// The state file's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateDoc {
    pub version: u64,
    pub spec: PopSpec,
}

#[derive(Serialize)]
struct StateDocRef<'a> {
    version: u64,
    spec: &'a PopSpec,
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

/// The JSON file `{version, spec}` that survives restarts.
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

    /// Reads and parses the state file; `Ok(None)` if there is none. Does not
    /// build tables ([`StateFile::boot`] does).
    ///
    /// # Errors
    /// A file that exists but cannot be read or parsed: the daemon must not
    /// silently fall back to an older configuration.
    pub fn load(&self) -> Result<Option<StateDoc>, StateError> {
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
        let doc: StateDoc = serde_json::from_slice(&text).map_err(|e| StateError::Syntax {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
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
        if let Some(doc) = self.load()? {
            return Ok((doc, Origin::StateFile));
        }
        let spec = config::load_spec(config_path)?;
        Ok((StateDoc { version: 1, spec }, Origin::Config))
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
        let (doc, origin) = self.load_or_config(config_path)?;
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
            self.save(1, &boot.spec)?;
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
        let bytes = serde_json::to_vec_pretty(&StateDocRef { version, spec })
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
        let written = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)
                .map_err(|e| ("create temporary file", e))?;
            f.write_all(&bytes).map_err(|e| ("write", e))?;
            f.write_all(b"\n").map_err(|e| ("write", e))?;
            f.sync_all().map_err(|e| ("fsync", e))?;
            fs::rename(&tmp, &self.path).map_err(|e| ("rename", e))
        })();
        if let Err((step, source)) = written {
            let _ = fs::remove_file(&tmp);
            return Err(self.write_error(step, source));
        }
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
mod tests {
    use super::*;
    use crate::state::testkit::{temp_dir, EXAMPLE};

    #[test]
    fn a_broken_first_configuration_leaves_no_state() {
        let dir = temp_dir("firstbad");
        let config = dir.join("pop.toml");
        fs::write(&config, EXAMPLE.replacen("mtu = 1550", "mtu = 100", 1)).unwrap();
        let store = StateFile::new(dir.join("state.json"));
        let e = store.boot(&config, None).unwrap_err().to_string();
        // Reported as `eipd check` reports it: file, line and column, key path.
        let line = EXAMPLE
            .lines()
            .position(|l| l.starts_with("mtu = 1550"))
            .unwrap()
            + 1;
        let place = format!("{}:{line}:7: paths[0].mtu: ", config.display());
        assert!(e.starts_with(&place) && e.ends_with("\n1 error"), "{e}");
        assert!(!dir.join("state.json").exists());
        fs::write(&config, EXAMPLE).unwrap();
        let boot = store.boot(&config, None).unwrap();
        assert_eq!((boot.origin, boot.tables.version), (Origin::Config, 1));
        assert_eq!(store.load().unwrap().unwrap().spec, boot.spec);
    }

    #[test]
    fn broken_state_file_is_an_error_not_a_fallback() {
        let dir = temp_dir("broken");
        let store = StateFile::new(dir.join("state.json"));
        assert!(store.load().unwrap().is_none());
        fs::write(dir.join("state.json"), "{\"version\": 3}").unwrap();
        let e = store.load().unwrap_err().to_string();
        assert!(e.contains("missing field `spec`"), "{e}");
        let spec: PopSpec = toml::from_str(EXAMPLE).unwrap();
        let mut bad = spec.clone();
        bad.paths[0].mtu = 10;
        store.save(4, &bad).unwrap();
        let config = dir.join("unused.toml");
        let e = store.boot(&config, None).unwrap_err().to_string();
        assert!(e.contains("table version 4") && e.contains("mtu"), "{e}");
        store.save(4, &spec).unwrap();
        let boot = store.boot(&config, None).unwrap();
        assert_eq!((boot.tables.version, boot.spec), (4, spec));
        assert!(!dir.join(".state.json.tmp").exists());
    }
}
