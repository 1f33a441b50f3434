//! How many clients the control socket serves, and how it keeps a slot for a new
//! operator whatever idle clients do.

mod common;

use common::*;

#[test]
fn too_many_clients_are_told_busy() {
    let rig = rig(
        "busy",
        ServerConfig {
            max_clients: 2,
            // Nobody is idle long enough to be evicted in this test.
            evict_idle_after: Duration::from_secs(3600),
            ..ServerConfig::default()
        },
    );
    let mut a = rig.client();
    let mut b = rig.client();
    ok(&mut a, r#"{"cmd":"show_tables"}"#);
    ok(&mut b, r#"{"cmd":"show_tables"}"#);
    let mut third = UnixStream::connect(&rig.socket).unwrap();
    let mut reply = String::new();
    third.read_to_string(&mut reply).unwrap();
    let reply: Reply = serde_json::from_str(reply.trim_end()).unwrap();
    assert_eq!(reply.error.unwrap().code, ErrorCode::Busy);
    // A client that writes its request at once reads the refusal, not a broken pipe.
    let mut fourth = Client::connect(&rig.socket, Duration::from_secs(5)).unwrap();
    let line = fourth.call_raw(r#"{"cmd":"show_tables"}"#).unwrap();
    assert!(line.contains("\"busy\""), "{line}");
    drop(a);
    // The slot frees once the server notices the disconnect.
    wait_until("a free slot", || {
        let mut c = rig.client();
        c.call_raw(r#"{"cmd":"show_tables"}"#)
            .is_ok_and(|r| r.contains("\"ok\":true"))
    });
    ok(&mut b, r#"{"cmd":"show_tables"}"#);
}

/// Idle connections cannot lock operators out: with every slot taken by clients
/// that said nothing for a while, a new one is served and the idlest is closed.
#[test]
fn idle_clients_make_room_for_a_new_operator() {
    let rig = rig(
        "evict",
        ServerConfig {
            max_clients: 3,
            evict_idle_after: Duration::from_millis(200),
            ..ServerConfig::default()
        },
    );
    let mut idle: Vec<Client> = (0..3).map(|_| rig.client()).collect();
    for c in &mut idle {
        ok(c, r#"{"cmd":"show_tables"}"#);
    }
    std::thread::sleep(Duration::from_millis(300));
    // Three newcomers in a row each get in, and each evicts one idle client.
    for _ in 0..3 {
        let mut fresh = rig.client();
        ok(&mut fresh, r#"{"cmd":"show_tables"}"#);
        std::mem::forget(fresh);
        std::thread::sleep(Duration::from_millis(300));
    }
    // The first idle ones were closed by the server.
    let closed = idle
        .iter_mut()
        .map(|c| c.call_raw(r#"{"cmd":"show_tables"}"#))
        .filter(Result::is_err)
        .count();
    assert!(closed >= 2, "only {closed} idle clients were evicted");
}
