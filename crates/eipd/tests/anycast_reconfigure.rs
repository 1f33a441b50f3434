//! A live change of `[bgp]` on `scripts/anycast-testbed.sh`: POP A announces
//! the pool to the FRR router; its configuration file is edited to add a /32
//! for one EIP and give the pool a MED, and `eipctl reload` applies it. The
//! router learns the /32 and the MED while its BGP session with POP A never
//! flaps (FRR's established count and up-since are unchanged) and pings to the
//! EIP lose nothing; removing the /32 again withdraws it from the router.

mod common;
// Shared with anycast_e2e.rs, which uses all of it.
#[allow(dead_code)]
#[path = "anycast/harness.rs"]
mod harness;

use common::require_root;
use harness::{ping_figures, Anycast};
use serde_json::Value;
use std::time::{Duration, Instant};

/// The router's answer to `vtysh -c <command>` as JSON.
fn vtysh(tb: &Anycast, command: &str) -> Value {
    let out = tb
        .ns(
            "AT_NS_ROUTER",
            &["vtysh", "--vty_socket", tb.var("AT_FRR_DIR"), "-c", command],
        )
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

/// The router's BGP paths to exactly `prefix`.
fn paths(tb: &Anycast, prefix: &str) -> Vec<Value> {
    let v = vtysh(tb, &format!("show ip bgp {prefix} json"));
    v["paths"]
        .as_array()
        .map(|paths| {
            paths
                .iter()
                .filter(|p| p["network"].as_str().is_none_or(|n| n == prefix))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// What says whether the router's session with POP A was ever reset:
/// (state, times established, times dropped). (FRR's established-since epoch
/// is computed from the uptime and jitters by a second: not compared.)
fn session(tb: &Anycast) -> (String, u64, u64) {
    let pop = tb.var("AT_POPA_INET_IP");
    let v = vtysh(tb, &format!("show bgp neighbors {pop} json"));
    let n = &v[pop];
    (
        n["bgpState"].as_str().unwrap_or("").to_string(),
        n["connectionsEstablished"].as_u64().unwrap_or(0),
        n["connectionsDropped"].as_u64().unwrap_or(0),
    )
}

/// POP A's BIRD's row for `protocol` (`name proto table state since info`):
/// a protocol restarted by the reconfiguration has another `since`.
fn bird_protocol(tb: &Anycast, protocol: &str) -> String {
    let socket = format!("{}.bird", tb.var("AT_POPA_SOCKET"));
    let out = std::process::Command::new("birdc")
        .args(["-s", &socket, "show", "protocols", protocol])
        .output()
        .expect("birdc");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.lines()
        .find(|l| l.starts_with(protocol))
        .unwrap_or_else(|| panic!("no {protocol} in {text}"))
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether two rows of [`bird_protocol`] are of one run of the protocol: the
/// same but for `since`, which moves by a millisecond now and then without a
/// restart (BIRD prints it from the monotonic clock through the wall clock's
/// offset). A restart by the reload would move it by half a second or more:
/// the reload comes 500 ms after the first row was read.
fn same_run(a: &str, b: &str) -> bool {
    fn since_ms(row: &str) -> Option<i64> {
        let since = row.split(' ').nth(4)?;
        let (hms, ms) = since.split_once('.')?;
        let mut t = 0;
        for part in hms.split(':') {
            t = t * 60 + part.parse::<i64>().ok()?;
        }
        Some(t * 1000 + ms.parse::<i64>().ok()?)
    }
    let others = |row: &str| -> Vec<String> {
        row.split(' ')
            .enumerate()
            .filter(|(i, _)| *i != 4)
            .map(|(_, f)| f.to_string())
            .collect()
    };
    match (since_ms(a), since_ms(b)) {
        (Some(x), Some(y)) => others(a) == others(b) && (x - y).abs() < 250,
        _ => a == b,
    }
}

fn wait_until(tb: &Anycast, what: &str, timeout: Duration, ok: impl Fn() -> bool) -> Duration {
    let t = Instant::now();
    while !ok() {
        assert!(
            t.elapsed() < timeout,
            "{what} not within {timeout:?}\nPOP A:\n{}",
            std::fs::read_to_string(tb.log('a')).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    t.elapsed()
}

fn reload(tb: &Anycast) -> Value {
    let r = tb.eipctl_json('a', &["reload"]);
    assert_eq!(r["ok"], true, "{r}");
    r
}

#[test]
#[ignore = "needs root (network namespaces, XDP): scripts/test.sh runs it as root"]
fn a_reload_adds_a_prefix_and_changes_a_med_without_a_session_reset() {
    require_root();
    let tb = Anycast::up(&[]);
    let pool = tb.var("AT_EIP_PREFIX").to_string();
    let host = format!("{}/32", tb.var("AT_EIP1"));
    let _a = tb.start_pop('a');
    tb.wait_next_hop(
        Some(tb.var("AT_POPA_INET_IP")),
        Instant::now(),
        Duration::from_secs(20),
    );
    let before = session(&tb);
    assert_eq!(before.0, "Established", "{before:?}");
    assert!(before.1 >= 1, "{before:?}");
    assert!(paths(&tb, &host).is_empty());
    assert!(paths(&tb, &pool)[0]["metric"].is_null(), "no MED yet");
    // What BIRD must keep: the pool's announce protocol and the session
    // (protocols are named by prefix and neighbour address).
    let symbol = |text: &str| text.replace(['.', ':', '/'], "_");
    let kept = [
        format!("eip_p_{}", symbol(&pool)),
        format!("eip_n_{}", symbol(tb.var("AT_ROUTER_POPA_IP"))),
    ];
    // Read once BIRD has settled: right after the session came up, its
    // protocol's "since" stamp moved once more by a millisecond (seen in CI).
    let read = || -> Vec<String> { kept.iter().map(|p| bird_protocol(&tb, p)).collect() };
    let mut bird_before = read();
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        let again = read();
        if again == bird_before {
            break;
        }
        bird_before = again;
    }
    assert!(bird_before[0].contains(" up "), "{bird_before:?}");

    let config = tb.var("AT_POPA_CONFIG").to_string();
    let original = std::fs::read_to_string(&config).unwrap();
    let line = original
        .lines()
        .find(|l| l.starts_with("prefixes = ["))
        .expect("a prefixes line")
        .to_string();
    let edited_line = line
        .strip_suffix(" } ]")
        .map(|head| format!("{head}, med = 77 }}, {{ prefix = \"{host}\" }} ]"))
        .expect("prefixes = [ { ... } ]");
    std::fs::write(&config, original.replace(&line, &edited_line)).unwrap();

    // 400 pings every 10 ms across both reloads; a count, not a deadline, so
    // the last one is waited for rather than counted lost.
    let ping = tb
        .ns(
            "AT_NS_CLIENT",
            &[
                "ping",
                "-D",
                "-n",
                "-i",
                "0.01",
                "-W",
                "1",
                "-c",
                "400",
                tb.var("AT_EIP1"),
            ],
        )
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("ping");
    std::thread::sleep(Duration::from_millis(500));
    let changed = Instant::now();
    let r = reload(&tb);
    let bgp = &r["data"]["diff"]["bgp"];
    assert_eq!(bgp["prefixes"]["added"], serde_json::json!([host]), "{r}");
    assert_eq!(bgp["prefixes"]["changed"], serde_json::json!([pool]), "{r}");
    let learned = wait_until(&tb, "the /32 at the router", Duration::from_secs(5), || {
        !paths(&tb, &host).is_empty()
    });
    let med = wait_until(&tb, "the MED at the router", Duration::from_secs(5), || {
        paths(&tb, &pool).first().is_some_and(|p| p["metric"] == 77)
    });
    println!(
        "reload -> router: /32 learned {learned:?} after the reply, the MED {med:?} after that \
         ({:?} from the request)",
        changed.elapsed()
    );
    assert_eq!(
        paths(&tb, &host)[0]["peer"]["peerId"],
        tb.var("AT_POPA_INET_IP")
    );
    assert_eq!(session(&tb), before, "the session with POP A was reset");
    let bird_after: Vec<String> = kept.iter().map(|p| bird_protocol(&tb, p)).collect();
    for (after, before) in bird_after.iter().zip(&bird_before) {
        assert!(
            same_run(after, before),
            "BIRD restarted a protocol that did not change: {after:?} after, {before:?} before"
        );
    }
    assert!(
        bird_protocol(&tb, &format!("eip_p_{}", symbol(&host))).contains(" up "),
        "the /32's protocol is enabled"
    );

    // The /32 goes again.
    std::thread::sleep(Duration::from_millis(500));
    let r = reload_original(&tb, &config, &original);
    assert_eq!(
        r["data"]["diff"]["bgp"]["prefixes"]["removed"],
        serde_json::json!([host]),
        "{r}"
    );
    let gone = wait_until(&tb, "the /32 withdrawn", Duration::from_secs(5), || {
        paths(&tb, &host).is_empty()
    });
    wait_until(&tb, "the MED gone", Duration::from_secs(5), || {
        paths(&tb, &pool)
            .first()
            .is_some_and(|p| p["metric"].is_null())
    });
    println!("reload -> router: /32 withdrawn in {gone:?}");
    assert_eq!(session(&tb), before, "the session with POP A was reset");
    let bird_after: Vec<String> = kept.iter().map(|p| bird_protocol(&tb, p)).collect();
    for (after, before) in bird_after.iter().zip(&bird_before) {
        assert!(
            same_run(after, before),
            "BIRD restarted a protocol that did not change: {after:?} after, {before:?} before"
        );
    }

    let (sent, received, gap) = ping_figures(ping);
    println!("pings: {received}/{sent} answered, longest gap {gap:?}");
    assert_eq!(sent, 400, "pings sent");
    assert_eq!(sent, received, "pings lost across the reloads");

    // The pool was announced once and never withdrawn; both changes counted.
    let status = tb.eipctl_json('a', &["show", "bgp"]);
    let b = &status["data"]["bgp"];
    assert_eq!(b["reconfigurations"], 2, "{status}");
    assert_eq!(b["prefixes"].as_array().map(Vec::len), Some(1), "{status}");
    assert_eq!(b["prefixes"][0]["prefix"], pool.as_str(), "{status}");
    assert_eq!(b["prefixes"][0]["announces"], 1, "{status}");
    assert_eq!(b["prefixes"][0]["withdraws"], 0, "{status}");
    let log = std::fs::read_to_string(tb.log('a')).unwrap();
    assert!(log.contains(&format!("bgp: {host}: announce")), "{log}");
    assert!(
        log.contains(&format!("bgp: {host}: withdraw: removed from [bgp]")),
        "{log}"
    );
    assert_eq!(log.matches("bgp: applied [bgp]").count(), 2, "{log}");
}

fn reload_original(tb: &Anycast, config: &str, original: &str) -> Value {
    std::fs::write(config, original).unwrap();
    reload(tb)
}
