//! The control socket end to end: a real server on a temporary socket, a real
//! `swap` channel with fake worker threads that call `refresh()` like the poll
//! loop does, and the state file on disk.

mod common;

use common::*;
use eip_control::api::Admin;

#[test]
fn every_command() {
    let rig = rig("all", ServerConfig::default());
    let mut c = rig.client();
    let mut version = 1;
    let mut change = |c: &mut Client, line: &str| {
        let reply = ok(c, line);
        version += 1;
        assert_eq!(reply.version, version, "{line}");
        assert!(
            matches!(reply.data, Some(Data::Applied { previous_version, unchanged: false, .. }) if previous_version == version - 1),
            "{reply:?}"
        );
        version
    };

    // Queries.
    let r = ok(&mut c, r#"{"api":1,"cmd":"show_tables"}"#);
    let Some(Data::Tables { summary }) = r.data else {
        panic!()
    };
    assert_eq!(summary["table_version"], 1);
    assert_eq!(summary["eips"], 3);
    let r = ok(&mut c, r#"{"cmd":"show_paths"}"#);
    let Some(Data::Paths { paths }) = r.data else {
        panic!()
    };
    assert_eq!(paths.len(), 2);
    assert!(paths.iter().all(|p| p.usable));
    assert_eq!(paths[0].health.as_ref().unwrap()["health"], "down");
    assert!(paths[1].health.is_none());
    // Intent and observed health, apart.
    assert_eq!(
        (paths[0].admin, paths[0].observed),
        (Admin::Enabled, Some(PathState::Down))
    );
    assert_eq!((paths[1].admin, paths[1].observed), (Admin::Enabled, None));
    assert_eq!(
        paths[1].next_hop_mac_in_use.to_string(),
        "02:00:00:00:02:06"
    );
    let r = ok(&mut c, r#"{"cmd":"show_eips","address":"192.0.2.20"}"#);
    let Some(Data::Eips { eips }) = r.data else {
        panic!()
    };
    assert_eq!(eips.len(), 1);
    assert_eq!(eips[0].services.len(), 2);
    let r = ok(&mut c, r#"{"cmd":"stats"}"#);
    let Some(Data::Stats { stats }) = r.data else {
        panic!()
    };
    assert_eq!(stats["eips"][0]["address"], "192.0.2.10");
    assert_eq!(stats["eips"][0]["in"]["bytes"], 1000);
    assert!(stats["elapsed_ms"].is_u64());

    // EIPs, services, backends.
    change(
        &mut c,
        r#"{"cmd":"add_eip","eip":{"address":"192.0.2.30","region":"beijing","backend":"10.1.0.30"}}"#,
    );
    change(
        &mut c,
        r#"{"cmd":"update_eip","address":"192.0.2.30","backend":"10.1.0.31"}"#,
    );
    change(
        &mut c,
        r#"{"cmd":"add_service","eip":"192.0.2.30","service":{"protocol":"tcp","port":443,"backends":[{"address":"10.1.0.32"}]}}"#,
    );
    change(
        &mut c,
        r#"{"cmd":"add_backend","eip":"192.0.2.30","protocol":"tcp","port":443,"backend":{"address":"10.1.0.33","port":8443,"weight":2}}"#,
    );
    change(
        &mut c,
        r#"{"cmd":"update_backend","eip":"192.0.2.30","protocol":"tcp","port":443,"address":"10.1.0.33","weight":5}"#,
    );
    change(
        &mut c,
        r#"{"cmd":"drain_backend","eip":"192.0.2.30","protocol":"tcp","port":443,"address":"10.1.0.32"}"#,
    );
    let (_, s) = spec(&mut c);
    let e = s
        .eips
        .iter()
        .find(|e| e.address.to_string() == "192.0.2.30")
        .unwrap();
    assert_eq!(e.backend.unwrap().to_string(), "10.1.0.31");
    let weights: Vec<u32> = e.services[0].backends.iter().map(|b| b.weight).collect();
    assert_eq!(weights, vec![0, 5]);
    change(
        &mut c,
        r#"{"cmd":"remove_backend","eip":"192.0.2.30","protocol":"tcp","port":443,"address":"10.1.0.32"}"#,
    );
    change(
        &mut c,
        r#"{"cmd":"remove_service","eip":"192.0.2.30","protocol":"tcp","port":443}"#,
    );

    // Paths.
    change(
        &mut c,
        r#"{"cmd":"add_path","path":{"name":"sha-bj-cmcc","region":"beijing","port":"backbone","next_hop_mac":"02:00:00:00:02:0a","mtu":1550}}"#,
    );
    change(
        &mut c,
        r#"{"cmd":"update_path","name":"sha-bj-cmcc","weight":3,"mtu":9000}"#,
    );
    change(
        &mut c,
        r#"{"cmd":"set_path_admin","name":"sha-bj-cmcc","admin":"disabled"}"#,
    );
    let r = ok(&mut c, r#"{"cmd":"show_paths"}"#);
    let Some(Data::Paths { paths }) = r.data else {
        panic!()
    };
    let p = &paths[2];
    assert_eq!(
        (p.spec.state, p.spec.weight, p.spec.mtu),
        (PathState::Disabled, 3, 9000)
    );
    assert_eq!(p.admin, Admin::Disabled);
    assert!(!p.usable);
    change(
        &mut c,
        r#"{"cmd":"set_path_admin","name":"sha-bj-cmcc","admin":"enabled"}"#,
    );
    // Enabled again with no prober verdict for it: up.
    let (_, s) = spec(&mut c);
    assert_eq!(s.paths[2].state, PathState::Up);
    change(&mut c, r#"{"cmd":"remove_path","name":"sha-bj-cmcc"}"#);

    // Transaction and validate.
    let v = change(
        &mut c,
        r#"{"cmd":"transaction","ops":[
            {"cmd":"remove_eip","address":"192.0.2.30"},
            {"cmd":"add_eip","eip":{"address":"2001:db8:e1::30","region":"beijing","backend":"fd00:1::30"}}]}"#
            .replace('\n', " ")
            .as_str(),
    );
    let r = ok(
        &mut c,
        r#"{"cmd":"validate","ops":[{"cmd":"remove_eip","address":"2001:db8:e1::30"}]}"#,
    );
    assert_eq!(r.version, v);
    assert!(
        matches!(r.data, Some(Data::Validated { would_be_version, .. }) if would_be_version == v + 1)
    );

    // No-op: no new version.
    let r = ok(
        &mut c,
        r#"{"cmd":"update_eip","address":"2001:db8:e1::30","region":"beijing"}"#,
    );
    assert_eq!(r.version, v);
    assert!(matches!(
        r.data,
        Some(Data::Applied {
            unchanged: true,
            ..
        })
    ));

    // Every worker forwards with the last version; the file has it too.
    wait_until("workers on the last version", || {
        rig.workers.min_seen() == v
    });
    assert_eq!(rig.control.version(), v);
    assert_eq!(rig.state_version(), v);
}

#[test]
fn bad_input_changes_nothing_and_the_server_keeps_serving() {
    let rig = rig(
        "bad",
        ServerConfig {
            request_timeout: Duration::from_millis(300),
            ..ServerConfig::default()
        },
    );
    let mut c = rig.client();
    let (version, before) = spec(&mut c);
    let unchanged = |c: &mut Client| {
        assert_eq!(spec(c), (version, before.clone()));
        assert_eq!(rig.state_version(), version);
    };

    let cases: &[(&str, ErrorCode, &str)] = &[
        ("{\"cmd\":", ErrorCode::BadJson, "not JSON"),
        ("[1,2]", ErrorCode::BadJson, "JSON object"),
        (
            r#"{"cmd":"reboot"}"#,
            ErrorCode::UnknownCommand,
            "unknown command \"reboot\"",
        ),
        (
            r#"{"api":7,"cmd":"show_tables"}"#,
            ErrorCode::UnsupportedApi,
            "asks for 7",
        ),
        (
            r#"{"cmd":"add_eip","eip":{"address":"192.0.2.300","region":"beijing","backend":"10.1.0.99"}}"#,
            ErrorCode::InvalidValue,
            "add_eip: eip.address: invalid IP address syntax",
        ),
        (
            r#"{"cmd":"add_eip","eip":{"address":"192.0.2.40","region":"tokyo","backend":"10.1.0.40"}}"#,
            ErrorCode::NotFound,
            "field `region` names region \"tokyo\", which is not defined",
        ),
        (
            r#"{"cmd":"add_path","path":{"name":"p","region":"beijing","port":"nowhere","next_hop_mac":"02:00:00:00:00:09"}}"#,
            ErrorCode::NotFound,
            "field `port` names port \"nowhere\"",
        ),
        (
            r#"{"cmd":"add_eip","eip":{"address":"192.0.2.10","region":"beijing","backend":"10.1.0.41"}}"#,
            ErrorCode::Duplicate,
            "EIP 192.0.2.10 exists already (eips[0])",
        ),
        (
            r#"{"cmd":"add_eip","eip":{"address":"192.0.2.41","region":"beijing","backend":"10.1.0.10"}}"#,
            ErrorCode::InvalidValue,
            "backend 10.1.0.10 is also used by eips[0] (192.0.2.10)",
        ),
        (
            r#"{"cmd":"remove_eip","address":"198.51.100.99"}"#,
            ErrorCode::NotFound,
            "remove_eip: EIP 198.51.100.99 does not exist",
        ),
        (
            r#"{"cmd":"update_path","name":"sha-bj-telecom","mtu":100}"#,
            ErrorCode::InvalidValue,
            "paths[0] (\"sha-bj-telecom\"): field `mtu`: 100 is outside",
        ),
        (
            r#"{"cmd":"remove_backend","eip":"192.0.2.20","protocol":"udp","port":53,"address":"10.1.0.22","if_version":99}"#,
            ErrorCode::VersionConflict,
            "expects table version 99",
        ),
        (
            r#"{"cmd":"stats","extra":1}"#,
            ErrorCode::InvalidValue,
            "unknown field `extra`",
        ),
    ];
    for (line, code, needle) in cases {
        let message = refused(&mut c, line, *code);
        assert!(
            message.contains(needle),
            "{line}: {message:?} lacks {needle:?}"
        );
        unchanged(&mut c);
    }

    // Not UTF-8.
    let mut raw = rig.client();
    raw.stream().write_all(b"{\"cmd\":\"\xff\"}\n").unwrap();
    let reply: Reply = serde_json::from_str(&raw.read_reply().unwrap()).unwrap();
    assert_eq!(reply.error.unwrap().code, ErrorCode::BadJson);

    // Oversized: `too_large`, then the connection is closed.
    let mut big = rig.client();
    let mut writer = big.stream().try_clone().unwrap();
    let sender = thread::spawn(move || {
        let mut line = vec![b' '; server::ServerConfig::default().max_request_bytes + 10];
        line.push(b'\n');
        // The server stops reading once it is over the limit: ignore the EPIPE.
        let _ = writer.write_all(&line);
    });
    let reply: Reply = serde_json::from_str(&big.read_reply().unwrap()).unwrap();
    assert_eq!(reply.error.unwrap().code, ErrorCode::TooLarge);
    assert!(big.read_reply().is_err());
    sender.join().unwrap();

    // A client that disconnects in the middle of a request.
    let mut gone = UnixStream::connect(&rig.socket).unwrap();
    gone.write_all(br#"{"cmd":"remove_eip","addr"#).unwrap();
    drop(gone);

    // A client that stops in the middle of a request: `timeout`, then closed.
    let mut stalled = rig.client();
    stalled
        .stream()
        .write_all(br#"{"cmd":"remove_eip","address":"192.0.2.10""#)
        .unwrap();
    let reply: Reply = serde_json::from_str(&stalled.read_reply().unwrap()).unwrap();
    assert_eq!(reply.error.unwrap().code, ErrorCode::Timeout);
    assert!(stalled.read_reply().is_err());

    // Still serving, on the old connection and on new ones; nothing changed.
    unchanged(&mut c);
    unchanged(&mut rig.client());
    // Blank lines are skipped, and pipelined requests answered in order.
    let mut p = rig.client();
    p.stream()
        .write_all(b"\n\r\n{\"cmd\":\"show_tables\"}\n{\"cmd\":\"nope\"}\n")
        .unwrap();
    let first: Reply = serde_json::from_str(&p.read_reply().unwrap()).unwrap();
    let second: Reply = serde_json::from_str(&p.read_reply().unwrap()).unwrap();
    assert!(first.ok);
    assert_eq!(second.error.unwrap().code, ErrorCode::UnknownCommand);
}

#[test]
fn a_transaction_is_all_or_nothing() {
    let rig = rig("atomic", ServerConfig::default());
    let mut c = rig.client();
    let (version, before) = spec(&mut c);
    // The third op is bad: neither of the first two is applied.
    let message = refused(
        &mut c,
        r#"{"cmd":"transaction","ops":[{"cmd":"remove_eip","address":"192.0.2.10"},{"cmd":"drain_backend","eip":"192.0.2.20","protocol":"tcp","port":80,"address":"10.1.0.20"},{"cmd":"remove_path","name":"no-such-path"}]}"#,
        ErrorCode::NotFound,
    );
    assert_eq!(
        message,
        "ops[2] (remove_path): path \"no-such-path\" does not exist (paths: \"sha-bj-telecom\", \"sha-bj-unicom\")"
    );
    assert_eq!(spec(&mut c), (version, before.clone()));
    // Ops that are fine one by one but not together: the table builder decides.
    refused(
        &mut c,
        r#"{"cmd":"transaction","ops":[{"cmd":"add_eip","eip":{"address":"192.0.2.50","region":"beijing","backend":"10.1.0.50"}},{"cmd":"add_eip","eip":{"address":"192.0.2.51","region":"beijing","backend":"10.1.0.50"}}]}"#,
        ErrorCode::InvalidValue,
    );
    assert_eq!(spec(&mut c), (version, before.clone()));
    // A good transaction: one new version for all its ops.
    let r = ok(
        &mut c,
        r#"{"cmd":"transaction","ops":[{"cmd":"remove_eip","address":"192.0.2.10"},{"cmd":"add_eip","eip":{"address":"192.0.2.50","region":"beijing","backend":"10.1.0.10"}}]}"#,
    );
    assert_eq!(r.version, version + 1);
    assert!(matches!(r.data, Some(Data::Applied { changes: 2, .. })));
}

#[test]
fn validate_applies_nothing() {
    let rig = rig("validate", ServerConfig::default());
    let mut c = rig.client();
    let (version, before) = spec(&mut c);
    let r = ok(
        &mut c,
        r#"{"cmd":"validate","ops":[{"cmd":"remove_eip","address":"192.0.2.10"},{"cmd":"set_path_admin","name":"sha-bj-telecom","admin":"disabled"}]}"#,
    );
    let Some(Data::Validated {
        changes,
        would_be_version,
        summary,
        ..
    }) = r.data
    else {
        panic!("{r:?}")
    };
    assert_eq!((changes, would_be_version), (2, version + 1));
    assert_eq!(summary["eips"], 2);
    assert_eq!(
        summary["regions"][0]["usable_paths"],
        serde_json::json!(["sha-bj-unicom"])
    );
    // A bad one is refused the same way a transaction would be.
    refused(
        &mut c,
        r#"{"cmd":"validate","ops":[{"cmd":"remove_path","name":"x"}]}"#,
        ErrorCode::NotFound,
    );
    assert_eq!(spec(&mut c), (version, before));
    assert_eq!(rig.state_version(), version);
    assert_eq!(rig.workers.min_seen(), version);
}

#[test]
fn state_survives_a_restart() {
    let mut rig = rig("restart", ServerConfig::default());
    let mut c = rig.client();
    ok(
        &mut c,
        r#"{"cmd":"drain_backend","eip":"192.0.2.20","protocol":"udp","port":53,"address":"10.1.0.22"}"#,
    );
    ok(
        &mut c,
        r#"{"cmd":"set_path_admin","name":"sha-bj-unicom","admin":"disabled"}"#,
    );
    let (version, before) = spec(&mut c);
    assert_eq!(version, 3);
    drop(c);
    let server = rig.server.take().unwrap();
    drop(server);
    assert!(!rig.socket.exists(), "socket file removed on shutdown");

    // The config file is ignored now that there is state.
    fs::write(&rig.config, "this is not TOML").unwrap();
    let boot = StateFile::new(rig.dir.join("state.json"))
        .boot(&rig.config, None)
        .unwrap();
    assert_eq!(boot.origin, Origin::StateFile);
    assert_eq!((boot.tables.version, &boot.spec), (version, &before));

    let again = start(rig.dir.clone(), rig.config.clone(), ServerConfig::default());
    let mut c = again.client();
    assert_eq!(spec(&mut c), (version, before));
    let r = ok(
        &mut c,
        r#"{"cmd":"set_path_admin","name":"sha-bj-unicom","admin":"enabled"}"#,
    );
    assert_eq!(r.version, version + 1);
}

#[test]
fn the_socket_file() {
    let rig = rig("sock", ServerConfig::default());
    let mode = fs::metadata(&rig.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // No staging leftovers next to it.
    let names: Vec<String> = fs::read_dir(&rig.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with(".eipd")), "{names:?}");

    // A second daemon on the same socket is refused; the first keeps serving.
    let second = server::spawn(
        &rig.socket,
        Arc::clone(&rig.control),
        ServerConfig::default(),
    );
    assert!(
        matches!(second, Err(ServerError::InUse { .. })),
        "{second:?}"
    );
    ok(&mut rig.client(), r#"{"cmd":"show_tables"}"#);

    // A stale socket (nobody listening) is replaced.
    let stale = rig.dir.join("stale.sock");
    drop(UnixListener::bind(&stale).unwrap());
    assert!(stale.exists());
    let handle = server::spawn(&stale, Arc::clone(&rig.control), ServerConfig::default()).unwrap();
    let mut c = Client::connect(&stale, Duration::from_secs(5)).unwrap();
    ok(&mut c, r#"{"cmd":"show_tables"}"#);
    drop(c);
    handle.stop();
    assert!(!stale.exists());

    // Some other file is never removed.
    let file = rig.dir.join("precious");
    fs::write(&file, "keep").unwrap();
    let r = server::spawn(&file, Arc::clone(&rig.control), ServerConfig::default());
    assert!(matches!(r, Err(ServerError::NotASocket { .. })), "{r:?}");
    assert_eq!(fs::read_to_string(&file).unwrap(), "keep");
}

#[test]
fn a_stuck_worker_is_reported_and_the_change_stands() {
    let rig = rig("stuck", ServerConfig::default());
    let mut c = rig.client();
    rig.workers.paused[1].store(true, Ordering::Release);
    let r = call(
        &mut c,
        r#"{"cmd":"drain_backend","eip":"192.0.2.20","protocol":"udp","port":53,"address":"10.1.0.22"}"#,
    );
    assert!(!r.ok);
    assert_eq!(r.version, 2);
    let e = r.error.unwrap();
    assert_eq!(e.code, ErrorCode::Timeout);
    assert!(e.message.contains("workers [1]"), "{e:?}");
    assert_eq!(rig.control.version(), 2);
    assert_eq!(rig.state_version(), 2);
    rig.workers.paused[1].store(false, Ordering::Release);
    wait_until("the stuck worker to catch up", || {
        rig.workers.min_seen() == 2
    });
    let r = ok(
        &mut c,
        r#"{"cmd":"set_path_admin","name":"sha-bj-unicom","admin":"disabled"}"#,
    );
    assert_eq!(r.version, 3);
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// 1,000 changes in a row, each acknowledged by both workers before its reply,
/// with readers running alongside.
#[test]
fn a_thousand_sequential_updates() {
    const UPDATES: u64 = 1000;
    let rig = rig("thousand", ServerConfig::default());
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (socket, stop) = (rig.socket.clone(), Arc::clone(&stop));
        thread::spawn(move || {
            let mut c = Client::connect(&socket, Duration::from_secs(10)).unwrap();
            let (mut last, mut reads) = (0, 0u64);
            while !stop.load(Ordering::Acquire) {
                let r = call(&mut c, r#"{"cmd":"show_tables"}"#);
                assert!(r.version >= last, "version went back");
                last = r.version;
                reads += 1;
            }
            reads
        })
    };
    let mut c = rig.client();
    let mut latencies = Vec::with_capacity(UPDATES as usize);
    let started = Instant::now();
    for i in 1..=UPDATES {
        let line = format!(
            r#"{{"cmd":"update_backend","eip":"192.0.2.20","protocol":"tcp","port":80,"address":"10.1.0.21","weight":{}}}"#,
            i + 2
        );
        let t = Instant::now();
        let r = ok(&mut c, &line);
        latencies.push(t.elapsed());
        assert_eq!(r.version, 1 + i);
    }
    let total = started.elapsed();
    stop.store(true, Ordering::Release);
    let reads = reader.join().unwrap();
    assert_eq!(rig.control.version(), 1 + UPDATES);
    assert_eq!(rig.state_version(), 1 + UPDATES);
    wait_until("workers on the last version", || {
        rig.workers.min_seen() == 1 + UPDATES
    });
    latencies.sort();
    println!(
        "{UPDATES} sequential updates in {total:?} ({:.0}/s), each built, fsynced, published \
         and acknowledged by {WORKERS} workers; latency p50 {:?} p90 {:?} p99 {:?} max {:?}; \
         {reads} concurrent show_tables",
        UPDATES as f64 / total.as_secs_f64(),
        percentile(&latencies, 50),
        percentile(&latencies, 90),
        percentile(&latencies, 99),
        latencies[latencies.len() - 1],
    );
}
