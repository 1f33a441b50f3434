use super::*;

const EXAMPLE: &str = include_str!("../../../../docs/example-pop.toml");

fn build_text(text: &str) -> Result<Tables, String> {
    build(text, Path::new("test.toml"))
        .map(|(_, tables)| tables)
        .map_err(|e| e.to_string())
}

#[test]
fn the_documented_example_builds_and_probes() {
    let t = build_text(EXAMPLE).unwrap();
    assert!(!t.eips.is_empty());
    assert!(!t.paths.is_empty());
    // Path probing needs both ends.
    assert!(t.probe_source.is_some());
    assert!(t.regions.iter().all(|r| r.probe_target.is_some()));
}

fn expect_error(edit: impl Fn(&str) -> String, needles: &[&str]) {
    let text = edit(EXAMPLE);
    let err = build_text(&text).expect_err("must be refused");
    for n in needles {
        assert!(err.contains(n), "error {err:?} lacks {n:?}");
    }
}

#[test]
fn errors_name_the_entry_and_the_field() {
    expect_error(
        |t| t.replacen("vni = 100", "vni = 16777216", 1),
        &["regions[0].vni", "24 bits"],
    );
    expect_error(
        |t| t.replacen("region = \"beijing\"", "region = \"tokyo\"", 1),
        &["paths[0].region", "tokyo"],
    );
    expect_error(
        |t| t.replacen("mtu = 1550", "mtu = 100", 1),
        &["paths[0].mtu", "100"],
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
        &["192.0.2.10", "already defined by eips[0]"],
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

/// Valid TOML and a valid POP description but for five problems.
const FIVE_PROBLEMS: &str = r#"[pop]
name = "t"
vtep = "198.51.100.1"
inner_mac = "02:00:00:00:01:01"
outer_ttl = 0

[[ports]]
name = "internet"
role = "internet"
mac = "02:00:00:00:00:01"
gateway_mac = "02:00:00:00:00:fe"

[[ports]]
name = "backbone"
role = "backbone"
mac = "02:00:00:00:00:02"

[[regions]]
name = "beijing"
vni = 100
vtep = "198.51.100.2"
inner_mac = "02:00:00:00:10:01"

[[paths]]
name = "bb0"
region = "beijing"
port = "backbone"
next_hop_mac = "02:00:00:00:02:02"
mtu = 100

[[eips]]
address = "192.0.2.10"
region = "beijing"
backend = "10.1.0.10"

[[eips]]
address = "192.0.2.11"
region = "tokyo"
backend = "10.1.0.11"

[[eips]]
address = "192.0.2.12"
region = "beijing"
backend = "10.1.0.10"

[[eips]]
address = "192.0.2.13"
region = "beijing"
"#;

#[test]
fn every_problem_is_reported_with_its_line_and_column() {
    let err = build(FIVE_PROBLEMS, Path::new("pop.toml")).unwrap_err();
    assert_eq!(err.table_errors().count(), 5);
    assert_eq!(
        err.to_string(),
        "pop.toml:5:13: pop.outer_ttl: must be at least 1
pop.toml:29:7: paths[0].mtu: 100 is outside 626..=9216
pop.toml:38:10: eips[1].region: names region \"tokyo\", which is not defined
pop.toml:44:11: eips[2].backend: 10.1.0.10 is already the 1:1 backend of eips[0] (192.0.2.10); \
in one region a backend address belongs to one EIP (returns are told apart by it)
pop.toml:46:1: eips[3].backend: an EIP needs a backend, services, or both
5 errors"
    );
}

#[test]
fn check_reports_them_too() {
    let dir = std::env::temp_dir().join(format!("eip-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("pop.toml");
    std::fs::write(&path, FIVE_PROBLEMS).unwrap();
    let err = load_for_check(&path).unwrap_err().to_string();
    assert_eq!(err.lines().count(), 6, "{err}");
    assert!(
        err.starts_with(&format!("{}:5:13: ", path.display())),
        "{err}"
    );
    assert!(err.ends_with("\n5 errors"), "{err}");
    let err = load(&path).unwrap_err().to_string();
    assert!(err.ends_with("\n5 errors"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_syntax_error_is_shown_with_its_line_and_a_caret() {
    let text = EXAMPLE.replacen("name = \"beijing\"", "name = beijing", 1);
    let line = text.lines().position(|l| l == "name = beijing").unwrap() + 1;
    let err = build(&text, Path::new("pop.toml")).unwrap_err();
    let ConfigError::Syntax { position, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*position, Some(Position { line, column: 8 }));
    let shown = err.to_string();
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), 3, "{shown}");
    assert!(
        lines[0].starts_with(&format!("pop.toml:{line}:8: invalid string")),
        "{shown}"
    );
    assert_eq!(lines[1], format!(" {line} | name = beijing"));
    assert_eq!(lines[2], "    |        ^");
}

#[test]
fn an_unknown_field_is_shown_at_its_line() {
    let text = EXAMPLE.replacen("outer_ttl = 64", "outer_ttl = 64\nouter_tll = 64", 1);
    let line = text.lines().position(|l| l == "outer_tll = 64").unwrap() + 1;
    let err = build(&text, Path::new("pop.toml")).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("pop.toml:{line}:1: unknown field `outer_tll`")),
        "{err}"
    );
    assert!(
        err.ends_with(&format!("\n {line} | outer_tll = 64\n    | ^^^^^^^^^")),
        "{err}"
    );
}

#[test]
fn a_missing_field_is_shown_at_its_entry() {
    let text = EXAMPLE.replacen("vni = 100\n", "", 1);
    let line = text.lines().position(|l| l == "[[regions]]").unwrap() + 1;
    let err = build(&text, Path::new("pop.toml")).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("pop.toml:{line}:1: missing field `vni`")),
        "{err}"
    );
}

#[test]
fn an_eips_file_adds_its_eips_after_the_tomls_and_its_errors_name_its_lines() {
    let dir = std::env::temp_dir().join(format!("eip-config-list-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("pop.toml");
    let text = EXAMPLE.replacen(
        "[pop]\n",
        "[pop]\neips_file = \"eips.jsonl\"   # beside this file\n",
        1,
    );
    std::fs::write(&config, &text).unwrap();
    let own = EXAMPLE.matches("[[eips]]").count();
    let list = dir.join("eips.jsonl");
    std::fs::write(
        &list,
        "# two more\n\
         {\"address\": \"203.0.113.200\", \"region\": \"beijing\", \"backend\": \"10.77.0.1\"}\n\
         \n\
         {\"address\": \"203.0.113.201\", \"region\": \"beijing\", \"backend\": \"10.77.0.2\"}\n",
    )
    .unwrap();
    let (spec, tables) = load(&config).unwrap();
    assert_eq!(spec.eips.len(), own + 2);
    assert_eq!(
        spec.eips.nth(own).unwrap().address.to_string(),
        "203.0.113.200"
    );
    assert!(
        spec.pop.eips_file.is_none(),
        "the description holds the EIPs"
    );
    assert_eq!(tables.eips.len(), own + 2);

    // The table builder's errors in listed EIPs are placed in the list.
    std::fs::write(
        &list,
        "{\"address\": \"203.0.113.200\", \"region\": \"beijing\", \"backend\": \"10.77.0.1\"}\n\
         # a comment\n\
         {\"address\": \"203.0.113.201\", \"region\": \"tokyo\", \"backend\": \"10.77.0.2\"}\n",
    )
    .unwrap();
    let err = load(&config).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{}:3:40: eips[{}].region: names region \"tokyo\", which is not defined\n1 error",
            list.display(),
            own + 1
        )
    );
    // A line that is not an EIP stops the load at that line.
    std::fs::write(
        &list,
        "{\"address\": \"203.0.113.200\", \"region\": \"beijing\",}\n",
    )
    .unwrap();
    let err = load_for_check(&config).unwrap_err().to_string();
    assert!(err.starts_with(&format!("{}:1:", list.display())), "{err}");
    // A missing list is a read error naming it.
    std::fs::remove_file(&list).unwrap();
    let err = load(&config).unwrap_err().to_string();
    assert!(err.contains("eips.jsonl"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
