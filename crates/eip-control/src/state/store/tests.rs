//! The state file: first boot, broken files, permissions, symlinks, a configuration that differs.

use super::*;
use crate::state::testkit::{temp_dir, EXAMPLE};
use std::os::unix::fs::PermissionsExt;

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

#[test]
fn the_state_file_is_owner_only() {
    let dir = temp_dir("mode");
    let store = StateFile::new(dir.join("state.json"));
    let spec: PopSpec = toml::from_str(EXAMPLE).unwrap();
    // Even over a world-readable file left by an older version.
    fs::write(dir.join("state.json"), "{}").unwrap();
    fs::set_permissions(dir.join("state.json"), fs::Permissions::from_mode(0o644)).unwrap();
    store.save(1, &spec).unwrap();
    let mode = fs::metadata(dir.join("state.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn a_symlink_as_state_file_is_refused_not_replaced() {
    let dir = temp_dir("symlink");
    let link = dir.join("state.json");
    std::os::unix::fs::symlink(dir.join("nowhere.json"), &link).unwrap();
    let store = StateFile::new(&link);
    let spec: PopSpec = toml::from_str(EXAMPLE).unwrap();
    for e in [
        store.load().unwrap_err().to_string(),
        store.save(1, &spec).unwrap_err().to_string(),
    ] {
        assert!(
            e.contains("symbolic link") && e.contains("nowhere.json"),
            "{e}"
        );
    }
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn a_configuration_that_differs_from_the_state_is_noticed_and_can_win() {
    let dir = temp_dir("differs");
    let config = dir.join("pop.toml");
    fs::write(&config, EXAMPLE).unwrap();
    let store = StateFile::new(dir.join("state.json"));
    let spec: PopSpec = toml::from_str(EXAMPLE).unwrap();
    let mut state = spec.clone();
    let first = state.eips.nth(0).unwrap().address;
    state.eips.remove(first);
    store.save(7, &state).unwrap();

    let (doc, origin) = store.load_from(&config, StartFrom::State).unwrap();
    assert_eq!((doc.version, origin), (7, Origin::StateFile));
    let diff = store.disagreement(&doc, &config).expect("they differ");
    assert_eq!(diff.eips.added, vec!["192.0.2.10"]);

    // From the configuration: the next version, saved.
    let boot = store.boot_from(&config, None, StartFrom::Config).unwrap();
    assert_eq!((boot.origin, boot.tables.version), (Origin::Config, 8));
    let saved = store.load().unwrap().unwrap();
    assert_eq!((saved.version, &saved.spec), (8, &spec));
    assert!(store.disagreement(&saved, &config).is_none());
}
