//! The single writer: changes, failures, the journal, observed health.
//!
//! Why one file: every case goes through the same writer, store and sink.

use super::*;
use crate::api::{AddEip, Admin, BackendRef, RemoveEip, SetPathAdmin, UpdateBackend};
use crate::state::store::Origin;
use crate::state::testkit::{disk, setup, state_file, FakeSink, EXAMPLE};
use crate::state::StateDoc;
use eip_dataplane::tables::{MacAddr, PathState, Protocol};
use std::fs;
use std::path::Path;

fn drain(address: &str) -> Op {
    Op::DrainBackend(BackendRef {
        eip: "192.0.2.20".parse().unwrap(),
        protocol: Protocol::Tcp,
        port: 80,
        address: address.parse().unwrap(),
        backend_port: None,
    })
}

#[test]
fn a_change_is_built_saved_published_and_then_visible() {
    let (dir, cp, sink) = setup("change");
    let before = disk(&dir);
    assert_eq!(cp.version(), 1);
    let reply = cp.apply(&[drain("10.1.0.21")], None, false);
    assert!(reply.ok, "{reply:?}");
    assert_eq!(reply.version, 2);
    assert_eq!(*sink.published.lock().unwrap(), vec![2]);
    let doc = state_file(&dir);
    assert_eq!(doc.version, 2);
    assert_eq!(doc.spec, *cp.snapshot().spec);
    // In the journal, not in a rewritten state file.
    assert_eq!(disk(&dir).0, before.0);
    assert!(disk(&dir).1.len() > before.1.len());
    assert_eq!(
        doc.spec.eips.nth(1).unwrap().services[0].backends[1].weight,
        0
    );
    // Draining again changes nothing: no new version, nothing published.
    let again = cp.apply(&[drain("10.1.0.21")], None, false);
    assert_eq!(again.version, 2);
    assert!(matches!(
        again.data,
        Some(Data::Applied {
            unchanged: true,
            ..
        })
    ));
    assert_eq!(sink.published.lock().unwrap().len(), 1);
    // A restart from the file has the same spec and version.
    let boot = StateFile::new(dir.join("state/state.json"))
        .boot(&dir.join("pop.toml"), None)
        .unwrap();
    assert_eq!(boot.origin, Origin::StateFile);
    assert_eq!(boot.tables.version, 2);
    assert_eq!(boot.spec, *cp.snapshot().spec);
}

#[test]
fn failures_change_nothing() {
    let (dir, cp, sink) = setup("fail");
    let before = disk(&dir);
    let spec = (*cp.snapshot().spec).clone();
    let missing = cp.apply(&[drain("10.9.9.9")], None, false);
    let e = missing.error.unwrap();
    assert_eq!(e.code, ErrorCode::NotFound);
    assert_eq!(
        e.message,
        "drain_backend: service 192.0.2.20 tcp/80 has no backend 10.9.9.9 (backends: 10.1.0.20:80, 10.1.0.21:8080)"
    );
    // Second op fails: the first is not applied either.
    let bad = cp.apply(
        &[
            drain("10.1.0.21"),
            Op::RemoveEip(RemoveEip {
                address: "192.0.2.99".parse().unwrap(),
            }),
        ],
        None,
        false,
    );
    assert_eq!(
        bad.error.unwrap().message,
        "ops[1] (remove_eip): EIP 192.0.2.99 does not exist"
    );
    // Validation by the table builder.
    let mut eip = spec.eips.nth(0).unwrap().into_owned();
    eip.address = "192.0.2.77".parse().unwrap();
    eip.region = "tokyo".into();
    let r = cp.apply(&[Op::AddEip(AddEip { eip })], None, false);
    let e = r.error.unwrap();
    assert_eq!(e.code, ErrorCode::NotFound);
    assert!(e.message.contains("region \"tokyo\""), "{e}");
    // Stale if_version.
    let r = cp.apply(&[drain("10.1.0.21")], Some(7), false);
    assert_eq!(r.error.unwrap().code, ErrorCode::VersionConflict);
    // The sink refusing.
    *sink.mode.lock().unwrap() = Some(SinkError::Rejected("no".into()));
    let r = cp.apply(&[drain("10.1.0.21")], None, false);
    assert_eq!(r.error.unwrap().code, ErrorCode::Internal);
    assert_eq!(cp.version(), 1);
    assert_eq!(*cp.snapshot().spec, spec);
    assert_eq!(disk(&dir), before);
    assert!(sink.published.lock().unwrap().is_empty());
}

#[test]
fn storage_failure_changes_nothing() {
    let (dir, cp, _sink) = setup("storage");
    // A directory where the journal goes makes the append fail.
    fs::create_dir(dir.join("state/state.json.journal")).unwrap();
    let r = cp.apply(&[drain("10.1.0.21")], None, false);
    let e = r.error.unwrap();
    assert_eq!(e.code, ErrorCode::Storage);
    assert!(e.message.contains("state.json.journal (open)"), "{e}");
    assert_eq!(cp.version(), 1);
    let doc: StateDoc = crate::state::snapshot::decode(&disk(&dir).0).unwrap();
    assert_eq!(doc.version, 1);
}

#[test]
fn timeout_is_reported_but_the_change_stands() {
    let (dir, cp, sink) = setup("timeout");
    *sink.mode.lock().unwrap() = Some(SinkError::Timeout {
        version: 2,
        lagging: vec![1],
        timeout: Duration::from_millis(5),
    });
    let r = cp.apply(&[drain("10.1.0.21")], None, false);
    assert!(!r.ok);
    assert_eq!(r.version, 2);
    let e = r.error.unwrap();
    assert_eq!(e.code, ErrorCode::Timeout);
    assert!(e.message.contains("workers [1]"), "{e}");
    assert_eq!(cp.version(), 2);
    assert_eq!(state_file(&dir).version, 2);
}

#[test]
fn validate_applies_nothing() {
    let (_dir, cp, sink) = setup("validate");
    let r = cp.apply(&[drain("10.1.0.21")], None, true);
    assert!(r.ok);
    assert!(matches!(
        r.data,
        Some(Data::Validated {
            would_be_version: 2,
            ..
        })
    ));
    assert_eq!(cp.version(), 1);
    assert!(sink.published.lock().unwrap().is_empty());
}

#[test]
fn path_admin_is_intent_and_health_is_observed() {
    let (dir, cp, sink) = setup("paths");
    let disable = Op::SetPathAdmin(SetPathAdmin {
        name: "sha-bj-unicom".into(),
        admin: Admin::Disabled,
    });
    assert!(cp.apply(&[disable], None, false).ok);
    assert_eq!(cp.version(), 2);
    let saved = |cp: &ControlPlane, i: usize| cp.snapshot().spec.paths[i].state;
    let in_tables = |cp: &ControlPlane, i: usize| cp.snapshot().tables.paths[i].state;
    assert_eq!(saved(&cp, 1), PathState::Disabled);
    // The prober cannot override the operator (but its word is kept)...
    assert_eq!(
        cp.set_path_health(&[("sha-bj-unicom", Health::Down), ("gone", Health::Up)]),
        Ok(None)
    );
    // ...and moves enabled paths: a new generation, the same version.
    let generation = cp.snapshot().generation();
    assert_eq!(
        cp.set_path_health(&[("sha-bj-telecom", Health::Down)]),
        Ok(Some(generation + 1))
    );
    assert_eq!(
        cp.set_path_health(&[("sha-bj-telecom", Health::Down)]),
        Ok(None)
    );
    assert_eq!(cp.version(), 2);
    assert_eq!(in_tables(&cp, 0), PathState::Down);
    // What the operator said is unchanged: enabled (saved as `up`).
    assert_eq!(saved(&cp, 0), PathState::Up);
    assert_eq!(state_file(&dir).spec.paths[0].state, PathState::Up);
    // An operator change keeps the observed health in the tables.
    let weight = Op::UpdateBackend(UpdateBackend {
        eip: "192.0.2.20".parse().unwrap(),
        protocol: Protocol::Tcp,
        port: 80,
        address: "10.1.0.21".parse().unwrap(),
        backend_port: Some(8080),
        weight: 5,
    });
    assert!(cp.apply(&[weight], None, false).ok);
    assert_eq!(cp.version(), 3);
    assert_eq!(in_tables(&cp, 0), PathState::Down);
    // Enabled again: the path resumes the health measured meanwhile.
    let enable = Op::SetPathAdmin(SetPathAdmin {
        name: "sha-bj-unicom".into(),
        admin: Admin::Enabled,
    });
    assert!(cp.apply(&[enable], None, false).ok);
    assert_eq!(in_tables(&cp, 1), PathState::Down);
    assert_eq!(saved(&cp, 1), PathState::Up);
    let published = sink.published.lock().unwrap().clone();
    assert_eq!(published.len(), 4, "{published:?}");
    assert!(published.windows(2).all(|w| w[0] < w[1]), "{published:?}");
}

#[test]
fn a_health_flap_writes_nothing_and_bumps_no_version() {
    let (dir, cp, sink) = setup("flap");
    assert!(cp.apply(&[drain("10.1.0.21")], None, false).ok);
    let before = disk(&dir);
    let modified = |name: &str| {
        fs::metadata(dir.join("state").join(name))
            .unwrap()
            .modified()
            .unwrap()
    };
    let times = (modified("state.json"), modified("state.json.journal"));
    let (version, generation) = (cp.version(), cp.snapshot().generation());
    for i in 0..10u64 {
        let health = if i % 2 == 0 { Health::Down } else { Health::Up };
        assert_eq!(
            cp.set_path_health(&[("sha-bj-telecom", health)]),
            Ok(Some(generation + i + 1))
        );
        let want = if i % 2 == 0 {
            PathState::Down
        } else {
            PathState::Up
        };
        assert_eq!(cp.snapshot().tables.paths[0].state, want);
        assert_eq!(cp.version(), version);
    }
    assert_eq!(disk(&dir), before);
    assert_eq!(
        (modified("state.json"), modified("state.json.journal")),
        times
    );
    assert_eq!(sink.published.lock().unwrap().len(), 11);
    // A reply to a query says the version, not the generation.
    let reply = cp.handle(Request::new(Command::Query(crate::api::Query::ShowPaths)));
    assert_eq!(reply.version, version);
    let Some(Data::Paths { paths }) = reply.data else {
        panic!("{reply:?}")
    };
    assert_eq!(paths[0].admin, Admin::Enabled);
    assert_eq!(paths[0].observed, Some(PathState::Up));
    assert_eq!(paths[1].observed, None);
}

#[test]
fn failover_works_when_the_disk_does_not() {
    let (dir, cp, _sink) = setup("fulldisk");
    // Any write to the journal fails, as on a full disk.
    fs::create_dir(dir.join("state/state.json.journal")).unwrap();
    let r = cp.apply(&[drain("10.1.0.21")], None, false);
    assert_eq!(r.error.unwrap().code, ErrorCode::Storage);
    assert!(cp
        .set_path_health(&[("sha-bj-telecom", Health::Down)])
        .unwrap()
        .is_some());
    assert_eq!(cp.snapshot().tables.paths[0].state, PathState::Down);
    assert_eq!(cp.version(), 1);
}

#[test]
fn restart_replays_the_journal_and_compaction_keeps_it_short() {
    let (dir, cp, _sink) = setup("replay");
    let cp = cp.with_compaction_at(1);
    let store = StateFile::new(dir.join("state/state.json"));
    let config = dir.join("pop.toml");
    let mut last = 0;
    for (i, address) in ["10.1.0.21", "10.1.0.20"].iter().enumerate() {
        assert!(cp.apply(&[drain(address)], None, false).ok);
        cp.wait_for_compaction();
        // Each change was compacted: the state file has it, the journal is empty.
        let doc: StateDoc = crate::state::snapshot::decode(&disk(&dir).0).unwrap();
        assert_eq!(doc.version, i as u64 + 2);
        assert!(disk(&dir).1.is_empty());
        last = doc.version;
    }
    let cp = cp.with_compaction_at(u64::MAX);
    let eips = cp.snapshot().spec.eips.len();
    let add = |n: u8| {
        let mut eip = cp.snapshot().spec.eips.nth(0).unwrap().into_owned();
        eip.address = format!("192.0.2.{n}").parse().unwrap();
        eip.backend = Some(format!("10.1.0.{n}").parse().unwrap());
        Op::AddEip(AddEip { eip })
    };
    // A transaction is one record; a failing one writes nothing.
    assert!(cp.apply(&[add(101), add(102)], None, false).ok);
    let journal = disk(&dir).1;
    let r = cp.apply(&[add(103), add(101)], None, false);
    assert_eq!(r.error.unwrap().code, ErrorCode::Duplicate);
    assert_eq!(disk(&dir).1, journal);
    assert!(cp.apply(&[drain("10.1.0.21")], None, false).ok); // unchanged: no record
    assert_eq!(disk(&dir).1, journal);
    let reload = crate::state::journal::read(&store.journal_path()).unwrap();
    assert_eq!(reload.records.len(), 1);
    assert_eq!(reload.records[0].version, last + 1);
    // Restart: state file + journal = the state in force.
    let boot = store.boot(&config, None).unwrap();
    assert_eq!(boot.origin, Origin::StateFile);
    assert_eq!(boot.tables.version, cp.version());
    assert_eq!(boot.spec, *cp.snapshot().spec);
    assert_eq!(boot.spec.eips.len(), eips + 2);
}

#[test]
fn a_torn_last_record_is_ignored_and_cut_at_restart() {
    let (dir, cp, _sink) = setup("tornboot");
    assert!(cp.apply(&[drain("10.1.0.21")], None, false).ok);
    let store = StateFile::new(dir.join("state/state.json"));
    let good = disk(&dir).1.len() as u64;
    assert!(cp.apply(&[drain("10.1.0.20")], None, false).ok);
    // The second record cut short, as a crash while appending leaves it.
    let journal = store.journal_path();
    let f = fs::OpenOptions::new().write(true).open(&journal).unwrap();
    f.set_len(good + 5).unwrap();
    drop(f);
    let boot = store.boot(&dir.join("pop.toml"), None).unwrap();
    assert_eq!(boot.tables.version, 2);
    assert_eq!(fs::metadata(&journal).unwrap().len(), good);
    // Changes go on after the last whole record.
    let cp = ControlPlane::new(store.clone(), boot, FakeSink::default());
    assert!(cp.apply(&[drain("10.1.0.20")], None, false).ok);
    assert_eq!(state_file(&dir).version, 3);
    assert_eq!(
        state_file(&dir).spec.eips.nth(1).unwrap().services[0].backends[0].weight,
        0
    );
}

#[test]
fn more_eips_than_the_filter_maps_hold_are_refused_before_anything() {
    let (dir, cp, sink) = setup("maxeips");
    let n = cp.snapshot().spec.eips.len();
    let cp = cp.with_max_eips(n + 1);
    let add = |k: u8| {
        let mut eip = cp.snapshot().spec.eips.nth(0).unwrap().into_owned();
        eip.address = format!("192.0.2.{k}").parse().unwrap();
        eip.backend = Some(format!("10.1.0.{k}").parse().unwrap());
        Op::AddEip(AddEip { eip })
    };
    let before = disk(&dir);
    let r = cp.apply(&[add(101), add(102)], None, false);
    let e = r.error.unwrap();
    assert_eq!(e.code, ErrorCode::InvalidValue);
    assert!(
        e.message.contains(&format!("more than the {} ", n + 1)) && e.message.contains("max_eips"),
        "{e}"
    );
    assert_eq!(disk(&dir), before);
    assert!(sink.published.lock().unwrap().is_empty());
    assert_eq!(cp.snapshot().spec.eips.len(), n);
    // Up to the limit is fine.
    assert!(cp.apply(&[add(101)], None, false).ok);
}

#[test]
fn the_descriptions_max_eips_refuses_an_add_before_anything() {
    let (dir, cp, sink) = setup("popmax");
    let n = cp.snapshot().spec.eips.len();
    let file = dir.join("limited.toml");
    let text = EXAMPLE.replacen("[pop]\n", &format!("[pop]\nmax_eips = {}\n", n + 1), 1);
    fs::write(&file, text).unwrap();
    assert!(cp.reload(Some(&file), None, false).ok);
    assert_eq!(cp.snapshot().spec.pop.max_eips, Some(n as u32 + 1));
    let add = |k: u8| {
        let mut eip = cp.snapshot().spec.eips.nth(0).unwrap().into_owned();
        eip.address = format!("192.0.2.{k}").parse().unwrap();
        eip.backend = Some(format!("10.1.0.{k}").parse().unwrap());
        Op::AddEip(AddEip { eip })
    };
    let before = disk(&dir);
    let published = sink.published.lock().unwrap().len();
    let e = cp.apply(&[add(101), add(102)], None, false).error.unwrap();
    assert_eq!(e.code, ErrorCode::InvalidValue);
    assert!(
        e.message
            .starts_with("pop: field `max_eips`: the description has")
            && e.message
                .contains(&format!("more than max_eips = {}", n + 1)),
        "{e}"
    );
    assert_eq!(disk(&dir), before);
    assert_eq!(sink.published.lock().unwrap().len(), published);
    assert_eq!(cp.snapshot().spec.eips.len(), n);
    assert!(cp.apply(&[add(101)], None, false).ok);
}

#[test]
fn a_resolver_fills_in_and_refresh_follows_it() {
    let (_dir, cp, sink) = setup("resolve");
    let mac = Arc::new(Mutex::new(MacAddr([2, 0, 0, 0, 9, 9])));
    let m = Arc::clone(&mac);
    let cp = cp.with_resolver(Arc::new(move |spec: &PopSpec| {
        let mut s = spec.clone();
        s.paths[0].next_hop_mac = Some(*m.lock().unwrap());
        s
    }));
    // The first refresh picks up the resolver's MAC; the next changes nothing.
    assert_eq!(cp.refresh(), Ok(Some(2)));
    assert_eq!(cp.refresh(), Ok(None));
    assert_eq!(
        &cp.snapshot().tables.paths[0].template[..6],
        &[2, 0, 0, 0, 9, 9]
    );
    // The operator's spec is what is kept.
    assert_eq!(
        cp.snapshot().spec.paths[0].next_hop_mac,
        Some(MacAddr([2, 0, 0, 0, 2, 2]))
    );
    *mac.lock().unwrap() = MacAddr([2, 0, 0, 0, 9, 10]);
    assert_eq!(cp.refresh(), Ok(Some(3)));
    assert_eq!(*sink.published.lock().unwrap(), vec![2, 3]);
}

#[test]
fn trace_goes_to_the_tracer_with_the_tables_in_force() {
    use crate::api::{ErrorCode, TraceEnd, TraceRequest, TraceSummary};
    use crate::state::TraceService;

    struct FakeTracer;
    impl TraceService for FakeTracer {
        fn trace(&self, request: &TraceRequest, tables: &Tables) -> Result<TraceSummary, ApiError> {
            Ok(TraceSummary {
                file: request.file.clone(),
                written: tables.ports.len() as u64,
                lost: 0,
                ended: TraceEnd::Time,
                elapsed_ms: 1,
            })
        }
    }
    let request = || Request::new(Command::Trace(TraceRequest::new("/tmp/t.pcapng")));
    let (_dir, cp, _) = setup("trace");
    let reply = cp.handle(request());
    assert_eq!(reply.error.unwrap().code, ErrorCode::Unavailable);
    let cp = cp.with_trace(Arc::new(FakeTracer));
    let reply = cp.handle(request());
    let Some(Data::Trace(summary)) = reply.data else {
        panic!("{reply:?}")
    };
    assert_eq!(summary.written, cp.snapshot().tables.ports.len() as u64);
    assert_eq!(summary.file, Path::new("/tmp/t.pcapng"));
}

#[test]
fn limits_change_journaled_survive_a_restart_and_keep_the_slot() {
    use crate::api::SetLimits;
    use eip_dataplane::tables::spec::LimitsSpec;
    let (dir, cp, _sink) = setup("limits");
    let eip: std::net::IpAddr = "192.0.2.20".parse().unwrap();
    let slot = cp.snapshot().tables.eip_slot(eip);
    let caps = LimitsSpec {
        in_bps: Some(10_000_000),
        out_pps: Some(500),
        ..Default::default()
    };
    let set = |address, limits| Op::SetLimits(SetLimits { address, limits });
    let reply = cp.apply(&[set(Some(eip), Some(caps))], None, false);
    assert!(reply.ok, "{reply:?}");
    let default = LimitsSpec {
        in_pps: Some(1000),
        ..Default::default()
    };
    let reply = cp.apply(&[set(None, Some(default))], None, false);
    assert!(reply.ok, "{reply:?}");
    let snap = cp.snapshot();
    assert_eq!(
        snap.tables.eip_slot(eip),
        slot,
        "a limit keeps the EIP's slot"
    );
    let own = snap.tables.eips.limits(slot.unwrap()).unwrap();
    assert_eq!(
        own.over(&snap.tables.default_limits).caps,
        [10_000_000, 1000, 0, 500]
    );
    // An unknown EIP changes nothing.
    let unknown = cp.apply(
        &[set(Some("192.0.2.99".parse().unwrap()), None)],
        None,
        false,
    );
    assert!(!unknown.ok);
    // From the journal at restart.
    let boot = StateFile::new(dir.join("state/state.json"))
        .boot(&dir.join("pop.toml"), None)
        .unwrap();
    assert_eq!(boot.spec.limits, Some(default));
    assert_eq!(boot.spec.eips.nth(1).unwrap().limits(), Some(&caps));
    // Removing them.
    let reply = cp.apply(&[set(Some(eip), None), set(None, None)], None, false);
    assert!(reply.ok, "{reply:?}");
    assert!(!cp.snapshot().tables.policing());
}

#[test]
fn acl_set_journaled_shown_with_hits_and_bad_input_changes_nothing() {
    use crate::api::{Query, SetAcl, ShowAcl};
    use eip_dataplane::tables::spec::AclSpec;
    let (dir, cp, _sink) = setup("acl");
    let eip: std::net::IpAddr = "192.0.2.20".parse().unwrap();
    let slot = cp.snapshot().tables.eip_slot(eip).unwrap();
    let acl: AclSpec = toml::from_str(
        r#"default = "deny"
rules = [{ action = "allow", source = "198.51.100.0/24", protocol = "tcp", ports = "80" }]"#,
    )
    .unwrap();
    let set = |acl| Op::SetAcl(SetAcl { address: eip, acl });
    let reply = cp.apply(&[set(Some(acl.clone()))], None, false);
    assert!(reply.ok, "{reply:?}");
    let snap = cp.snapshot();
    assert_eq!(
        snap.tables.eip_slot(eip),
        Some(slot),
        "the EIP keeps its slot"
    );
    let compiled = snap.tables.eips.acl(slot).expect("compiled");
    assert_eq!(compiled.rules(), 1);
    let version = cp.version();

    // Bad input: a typed error naming the rule, nothing changed.
    let bad = Op::from_json(serde_json::json!({
        "cmd": "set_acl", "address": "192.0.2.20",
        "acl": {"rules": [{"action": "deny"}, {"action": "deny", "protocol": "icmp", "ports": "1"}]}
    }))
    .unwrap_err();
    assert_eq!(bad.code, crate::api::ErrorCode::InvalidValue);
    assert!(bad.message.contains("rules[1]"), "{}", bad.message);
    let unknown = cp.apply(
        &[Op::SetAcl(SetAcl {
            address: "192.0.2.99".parse().unwrap(),
            acl: Some(acl.clone()),
        })],
        None,
        false,
    );
    assert!(!unknown.ok);
    let too_many = AclSpec {
        default: Default::default(),
        rules: vec![acl.rules[0].clone(); eip_dataplane::tables::acl::MAX_RULES + 1],
    };
    let refused = cp.apply(&[set(Some(too_many))], None, false);
    assert!(!refused.ok);
    let e = refused.error.unwrap();
    assert_eq!(e.code, crate::api::ErrorCode::InvalidValue);
    assert!(
        e.message.contains("192.0.2.20") && e.message.contains("4096"),
        "{}",
        e.message
    );
    assert_eq!(cp.version(), version);
    assert_eq!(
        cp.snapshot().spec.eips.by_address(eip).unwrap().acl(),
        Some(&acl)
    );

    // show_acl: the list and its hits from the counters, for this list only.
    let id = compiled.id;
    let cp = cp.with_stats(std::sync::Arc::new(move || {
        let mut c = eip_dataplane::counters::Counters::new(slot as usize + 1, 0);
        c.acl_hit(slot, 0, id, 2, 0);
        c.acl_hit(slot, 0, id, 2, 1);
        c.acl_hit(slot, 0, id, 2, 1);
        c
    }));
    let reply = cp.query(Query::ShowAcl(ShowAcl { address: eip }));
    match reply.data {
        Some(Data::Acl {
            acl: Some(a), hits, ..
        }) => {
            assert_eq!(a, acl);
            assert_eq!(hits, [1, 2]);
        }
        other => panic!("{other:?}"),
    }
    let none = cp.query(Query::ShowAcl(ShowAcl {
        address: "192.0.2.10".parse().unwrap(),
    }));
    assert!(
        matches!(none.data, Some(Data::Acl { acl: None, .. })),
        "{none:?}"
    );

    // From the journal at restart; then removed.
    let boot = StateFile::new(dir.join("state/state.json"))
        .boot(&dir.join("pop.toml"), None)
        .unwrap();
    assert_eq!(boot.spec.eips.by_address(eip).unwrap().acl(), Some(&acl));
    let reply = cp.apply(&[set(None)], None, false);
    assert!(reply.ok, "{reply:?}");
    assert!(cp.snapshot().tables.eips.acl(slot).is_none());
}
