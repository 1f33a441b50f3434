//! `docs/config.md` documents every field the configuration accepts, and nothing
//! else.
//!
//! The accepted keys come from the spec types themselves: a description with
//! every field set (a struct literal, so a new field does not compile until it
//! is given here) is serialized to TOML and its dotted key paths collected; each
//! type's own field list (what serde's derive hands a deserializer) checks that
//! none was left unset. The documented keys are the first column of the field
//! tables, under headings that name the section (`` ## `[[paths]]` ``).

use eip_dataplane::bgp_spec::{BgpSpec, Community, NeighborSpec, PrefixSpec};
use eip_dataplane::tables::acl::{AclAction, AclProtocol, AclRule, PortRange};
use eip_dataplane::tables::spec::*;
use serde::de::{self, DeserializeOwned, Visitor};
use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

const REFERENCE: &str = include_str!("../../../docs/config.md");

/// Fields accepted under a second name: `(section, alias)`. The reference names
/// them in the text of the field they stand for.
const ALIASES: &[(&str, &str)] = &[("eips", "default_backend")];

/// A check with every field set.
fn check() -> eip_dataplane::check_spec::CheckSpec {
    eip_dataplane::check_spec::CheckSpec {
        port: Some(80),
        path: Some("/healthz".into()),
        host: Some("api.example".into()),
        expect: Some(eip_dataplane::check_spec::StatusRange::DEFAULT),
        ..eip_dataplane::check_spec::CheckSpec::new(eip_dataplane::check_spec::CheckKind::Http)
    }
}

/// Sections documented by one table: `(section, documented as)`.
const SHARED: &[(&str, &str)] = &[
    ("eips.check", "pop.backend_check"),
    ("eips.services.check", "pop.backend_check"),
];

fn v4(text: &str) -> Ipv4Addr {
    text.parse().unwrap()
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// A POP description with every optional field set and every list non-empty.
fn full_spec() -> PopSpec {
    let mac = MacAddr([2, 0, 0, 0, 0, 1]);
    PopSpec {
        pop: PopSection {
            backend_check: Some(check()),
            max_eips: Some(1 << 20),
            eips_file: Some("eips.jsonl".into()),
            name: "pop".into(),
            vtep: v4("198.51.100.1"),
            extra_vteps: vec![v4("198.51.100.5")],
            vxlan_port: 4789,
            inner_mac: mac,
            outer_ttl: 64,
            probe_source: Some(v4("10.255.0.1")),
        },
        ports: vec![PortSpec {
            name: "internet".into(),
            role: PortRole::Both,
            interface: Some("eth0".into()),
            mac,
            gateway_mac: Some(mac),
            gateway: Some(ip("203.0.113.2")),
        }],
        regions: vec![RegionSpec {
            name: "beijing".into(),
            vni: 100,
            vtep: v4("198.51.100.2"),
            inner_mac: mac,
            probe_target: Some(v4("10.255.0.2")),
        }],
        paths: vec![PathSpec {
            name: "bb0".into(),
            region: "beijing".into(),
            port: "internet".into(),
            next_hop_mac: Some(mac),
            next_hop: Some(v4("198.51.100.9")),
            source: Some(v4("198.51.100.5")),
            destination: Some(v4("198.51.100.6")),
            mtu: 1550,
            weight: 1,
            state: PathState::Up,
        }],
        eips: vec![EipSpec {
            address: ip("192.0.2.20"),
            region: "beijing".into(),
            backend: Some(ip("10.1.0.20")),
            services: vec![ServiceSpec {
                check: Some(check()),
                protocol: Protocol::Tcp,
                port: 80,
                backends: vec![BackendSpec {
                    address: ip("10.1.0.21"),
                    port: Some(8080),
                    weight: 2,
                }],
            }]
            .into(),
            extras: Some(Box::new(EipExtras {
                check: Some(Box::new(check())),
                limits: Some(Box::new(LimitsSpec {
                    in_bps: Some(100_000_000),
                    in_pps: Some(50_000),
                    out_bps: Some(1_000_000_000),
                    out_pps: Some(0),
                })),
                acl: Some(Box::new(AclSpec {
                    default: AclAction::Deny,
                    rules: vec![AclRule {
                        action: AclAction::Allow,
                        source: Some(Prefix::parse("198.51.100.0/24").unwrap()),
                        protocol: Some(AclProtocol::Udp),
                        ports: Some(PortRange { lo: 1000, hi: 2000 }),
                    }],
                })),
            })),
        }]
        .into(),
        protection: ProtectionSpec {
            enabled: true,
            allow_sources: vec![Prefix::parse("100.64.0.0/10").unwrap()],
            own_addresses: vec![ip("198.51.100.200")],
            allow_tunnel_port: true,
            tunnel_port_eips: vec![ip("192.0.2.10")],
        },
        bgp: Some(BgpSpec {
            withdraw_when_backends_down: true,
            local_as: 64497,
            router_id: v4("203.0.113.10"),
            neighbors: vec![NeighborSpec {
                address: ip("203.0.113.9"),
                remote_as: 64496,
                local_address: Some(ip("203.0.113.10")),
                bfd: true,
                hold_time_s: 3,
                keepalive_s: 1,
            }],
            prefixes: vec![PrefixSpec {
                prefix: "192.0.2.0/24".parse().unwrap(),
                communities: vec![Community(64497, 1)],
                prepend: 1,
                med: Some(10),
            }],
            bfd_interval_ms: 100,
            bfd_multiplier: 3,
            graceful_restart: false,
            withdraw_after_ms: 0,
            hold_down_ms: 2000,
            drain_wait_ms: 5000,
            drain_prepend: 1,
            bird: "bird".into(),
        }),
        limits: Some(LimitsSpec {
            in_bps: Some(100_000_000),
            in_pps: Some(50_000),
            out_bps: Some(1_000_000_000),
            out_pps: Some(0),
        }),
    }
}

/// Every key of `value` as a dotted path (`eips.services.backends.port`); the
/// elements of a list of tables share their list's path.
fn key_paths(prefix: &str, value: &toml::Value, out: &mut BTreeSet<String>) {
    let walk_table = |table: &toml::Table, out: &mut BTreeSet<String>| {
        for (key, v) in table {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            out.insert(path.clone());
            key_paths(&path, v, out);
        }
    };
    match value {
        toml::Value::Table(t) => walk_table(t, out),
        toml::Value::Array(items) => {
            for item in items {
                if let toml::Value::Table(t) = item {
                    walk_table(t, out);
                }
            }
        }
        _ => {}
    }
}

/// The keys the spec types accept, from [`full_spec`].
fn accepted() -> BTreeSet<String> {
    let value = toml::Value::try_from(full_spec()).unwrap();
    let mut keys = BTreeSet::new();
    key_paths("", &value, &mut keys);
    keys
}

/// The keys `docs/config.md` documents: `section.field` for every row of a
/// field table, and each section heading's own path.
fn documented() -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let mut section: Option<String> = None;
    for line in REFERENCE.lines() {
        if line.starts_with('#') {
            // `## `[pop]``, `### `[[eips.services]]``; other headings end a section.
            section = line
                .split('`')
                .nth(1)
                .filter(|s| s.starts_with('['))
                .map(|s| s.trim_matches(['[', ']']).to_string());
            if let Some(s) = &section {
                keys.insert(s.clone());
            }
            continue;
        }
        let (Some(section), Some(row)) = (&section, line.strip_prefix("| `")) else {
            continue;
        };
        if let Some((field, _)) = row.split_once('`') {
            keys.insert(format!("{section}.{field}"));
        }
    }
    for (shared, table) in SHARED {
        let fields: Vec<String> = keys
            .iter()
            .filter_map(|k| k.strip_prefix(&format!("{table}.")).map(String::from))
            .collect();
        for f in fields {
            keys.insert(format!("{shared}.{f}"));
        }
    }
    keys
}

#[test]
fn the_reference_documents_every_accepted_field_and_no_other() {
    let accepted = accepted();
    let documented = documented();
    let missing: Vec<_> = accepted.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "docs/config.md does not document {missing:?}"
    );
    let stale: Vec<_> = documented.difference(&accepted).collect();
    assert!(
        stale.is_empty(),
        "docs/config.md documents {stale:?}, which the configuration does not accept"
    );
    for (section, alias) in ALIASES {
        assert!(
            REFERENCE.contains(&format!("Alias: `{alias}`")),
            "docs/config.md does not name the alias {section}.{alias}"
        );
    }
    // The fields the issue found missing.
    for key in [
        "ports.gateway",
        "paths.next_hop",
        "pop.probe_source",
        "regions.probe_target",
    ] {
        assert!(documented.contains(key), "{key}");
    }
}

/// A deserializer that only asks a type for its field names: serde's derive
/// passes them to `deserialize_struct` before reading anything.
struct FieldNames;

#[derive(Debug)]
struct Stop(Option<&'static [&'static str]>);

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a struct")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Stop(None)
    }
}

impl<'de> de::Deserializer<'de> for FieldNames {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(Stop(None))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Stop> {
        Err(Stop(Some(fields)))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

fn fields_of<T: DeserializeOwned>() -> &'static [&'static str] {
    match T::deserialize(FieldNames) {
        Err(Stop(Some(fields))) => fields,
        _ => panic!("{} is not a struct", std::any::type_name::<T>()),
    }
}

#[test]
fn the_full_spec_sets_every_field_of_every_type() {
    let accepted = accepted();
    let check = fields_of::<eip_dataplane::check_spec::CheckSpec>();
    let types: [(&str, &[&str]); 19] = [
        ("", fields_of::<PopSpec>()),
        ("pop", fields_of::<PopSection>()),
        ("pop.backend_check", check),
        ("eips.check", check),
        ("eips.services.check", check),
        ("ports", fields_of::<PortSpec>()),
        ("regions", fields_of::<RegionSpec>()),
        ("paths", fields_of::<PathSpec>()),
        ("eips", fields_of::<EipSpec>()),
        ("eips.services", fields_of::<ServiceSpec>()),
        ("limits", fields_of::<LimitsSpec>()),
        ("eips.limits", fields_of::<LimitsSpec>()),
        ("eips.acl", fields_of::<AclSpec>()),
        ("eips.acl.rules", fields_of::<AclRule>()),
        ("eips.services.backends", fields_of::<BackendSpec>()),
        ("protection", fields_of::<ProtectionSpec>()),
        ("bgp", fields_of::<BgpSpec>()),
        ("bgp.neighbors", fields_of::<NeighborSpec>()),
        ("bgp.prefixes", fields_of::<PrefixSpec>()),
    ];
    let mut listed = BTreeSet::new();
    for (section, fields) in types {
        for field in fields {
            if ALIASES.contains(&(section, field)) {
                continue;
            }
            let key = match section {
                "" => field.to_string(),
                s => format!("{s}.{field}"),
            };
            assert!(
                accepted.contains(&key),
                "full_spec() leaves {key} unset: set it, so that the reference test sees it"
            );
            listed.insert(key);
        }
    }
    // And every key found is a field of one of the types above (a new nested
    // type must be added to the list).
    assert_eq!(listed, accepted);
}

#[test]
fn the_full_spec_reads_back_as_written() {
    let text = toml::to_string(&full_spec()).unwrap();
    let back: PopSpec = toml::from_str(&text).unwrap();
    assert_eq!(back, full_spec());
}

#[test]
fn the_full_spec_survives_the_state_file() {
    let dir = std::env::temp_dir().join(format!("eip-reference-state-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = eip_control::state::StateFile::new(dir.join("state"));
    store.save(3, &full_spec()).unwrap();
    let doc = store.load().unwrap().unwrap();
    assert_eq!((doc.version, doc.spec), (3, full_spec()));
    std::fs::remove_dir_all(&dir).unwrap();
}
