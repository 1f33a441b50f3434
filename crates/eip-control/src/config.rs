//! Loading the POP's TOML configuration into a table snapshot.
//!
//! Reference: `docs/config.md`. Errors say which file, which entry, which field and
//! why; a configuration that fails any check builds nothing.

use eip_dataplane::tables::{PopSpec, TableError, Tables};
use std::path::{Path, PathBuf};

/// Why a configuration file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("configuration {path} is not valid: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("configuration {path} is not usable: {source}")]
    Invalid {
        path: PathBuf,
        #[source]
        source: TableError,
    },
}

/// Parses configuration text (`origin` names it in errors).
pub fn parse(text: &str, origin: &Path) -> Result<PopSpec, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Syntax {
        path: origin.to_path_buf(),
        message: e.to_string().trim_end().to_string(),
    })
}

/// Reads and parses a configuration file without building tables (next-hop MACs
/// may still have to come from the neighbour table).
pub fn load_spec(path: &Path) -> Result<PopSpec, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

/// Reads, parses and validates a configuration file, building table version 1.
pub fn load(path: &Path) -> Result<(PopSpec, Tables), ConfigError> {
    let spec = load_spec(path)?;
    let tables = Tables::build(&spec, 1).map_err(|source| ConfigError::Invalid {
        path: path.to_path_buf(),
        source,
    })?;
    Ok((spec, tables))
}

/// Reads and validates a configuration for `eipd check`/`eipctl validate`: next
/// hops given as addresses are looked up in this namespace's neighbour table, and
/// those not found there are left to `eipd run` (returned, not an error).
pub fn load_for_check(path: &Path) -> Result<(Tables, Vec<std::net::Ipv4Addr>), ConfigError> {
    let spec = load_spec(path)?;
    let (filled, unresolved) = crate::neighbours::resolve_for_check(&spec);
    let tables = Tables::build(&filled, 1).map_err(|source| ConfigError::Invalid {
        path: path.to_path_buf(),
        source,
    })?;
    Ok((tables, unresolved))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../../docs/example-pop.toml");

    fn build(text: &str) -> Result<Tables, String> {
        let spec = parse(text, Path::new("test.toml")).map_err(|e| e.to_string())?;
        Tables::build(&spec, 1).map_err(|e| e.to_string())
    }

    #[test]
    fn the_documented_example_builds() {
        let t = build(EXAMPLE).unwrap();
        assert!(!t.eips.is_empty());
        assert!(!t.paths.is_empty());
    }

    fn expect_error(edit: impl Fn(&str) -> String, needles: &[&str]) {
        let text = edit(EXAMPLE);
        let err = build(&text).expect_err("must be refused");
        for n in needles {
            assert!(err.contains(n), "error {err:?} lacks {n:?}");
        }
    }

    #[test]
    fn errors_name_the_entry_and_the_field() {
        expect_error(
            |t| t.replacen("vni = 100", "vni = 16777216", 1),
            &["regions[0]", "vni", "24 bits"],
        );
        expect_error(
            |t| t.replacen("region = \"beijing\"", "region = \"tokyo\"", 1),
            &["paths[0]", "region", "tokyo"],
        );
        expect_error(
            |t| t.replacen("mtu = 1550", "mtu = 100", 1),
            &["paths[0]", "mtu", "100"],
        );
        expect_error(
            |t| t.replacen("mac = \"02:00:00:00:00:01\"", "mac = \"02:00:00\"", 1),
            &["MAC", "02:00:00"],
        );
        expect_error(
            |t| t.replacen("vtep = \"198.51.100.1\"", "vtep = \"198.51.100.300\"", 1),
            &["test.toml", "vtep"],
        );
        expect_error(
            |t| t.replacen("[[eips]]", "[[eips]]\nbogus = 1", 1),
            &["unknown field", "bogus"],
        );
        expect_error(
            |t| {
                format!("{t}\n[[eips]]\naddress = \"192.0.2.10\"\nregion = \"beijing\"\nbackend = \"10.1.0.99\"\n")
            },
            &["192.0.2.10", "twice"],
        );
        expect_error(
            |t| {
                format!("{t}\n[[eips]]\naddress = \"192.0.2.99\"\nregion = \"beijing\"\nbackend = \"10.1.0.10\"\n")
            },
            &["10.1.0.10", "eips[0]"],
        );
        expect_error(
            |t| {
                format!("{t}\n[[eips]]\naddress = \"192.0.2.98\"\nregion = \"beijing\"\nbackend = \"2001:db8::1\"\n")
            },
            &["address family"],
        );
        expect_error(
            |t| format!("{t}\n[[eips]]\naddress = \"192.0.2.97\"\nregion = \"beijing\"\n"),
            &["needs a backend"],
        );
    }
}
