//! Changes that would blackhole EIPs: a region that holds EIPs loses its last
//! usable path (removed, disabled, or at weight 0). Refused unless the request
//! says it means it (`blackhole_ok`); then the reply names the EIPs.

use crate::api::{ApiError, ErrorCode};
use eip_dataplane::tables::{PathState, PopSpec};
use std::collections::BTreeSet;
use std::net::IpAddr;

/// EIPs listed in a message at most.
const LIST: usize = 8;

/// Regions of `spec` with at least one usable path: one the operator has not
/// disabled, with a weight above 0. Observed health does not count: a path
/// that is down now may come back; one the operator removed will not.
fn served(spec: &PopSpec) -> BTreeSet<&str> {
    spec.paths
        .iter()
        .filter(|p| p.state != PathState::Disabled && p.weight > 0)
        .map(|p| p.region.as_str())
        .collect()
}

/// The regions that `after` leaves without a usable path although `before`
/// gave them one, each with its EIPs in `after` (regions without EIPs omitted).
pub(super) fn newly_blackholed(before: &PopSpec, after: &PopSpec) -> Vec<(String, Vec<IpAddr>)> {
    let (was, now) = (served(before), served(after));
    let mut out: Vec<(String, Vec<IpAddr>)> = Vec::new();
    for region in was.difference(&now) {
        let eips: Vec<IpAddr> = after
            .eips
            .iter()
            .filter(|e| e.region == *region)
            .map(|e| e.address)
            .collect();
        if !eips.is_empty() {
            out.push((region.to_string(), eips));
        }
    }
    out
}

/// The refusal for [`newly_blackholed`]'s non-empty answer.
pub(super) fn refusal(regions: &[(String, Vec<IpAddr>)]) -> ApiError {
    let what: Vec<String> = regions
        .iter()
        .map(|(r, eips)| {
            let shown: Vec<String> = eips.iter().take(LIST).map(|a| a.to_string()).collect();
            let more = eips.len().saturating_sub(LIST);
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            format!(
                "region {r:?} ({} EIPs: {}{more})",
                eips.len(),
                shown.join(", ")
            )
        })
        .collect();
    ApiError::new(
        ErrorCode::WouldBlackhole,
        format!(
            "the change leaves {} with no usable path (every path removed, disabled or at \
             weight 0): their traffic would be dropped; send it with \"blackhole_ok\": true \
             (eipctl --blackhole-ok) if that is what you mean",
            what.join(" and ")
        ),
    )
}

/// Every EIP of `regions`, for the reply of a change made with `blackhole_ok`.
pub(super) fn eips(regions: Vec<(String, Vec<IpAddr>)>) -> Vec<IpAddr> {
    regions.into_iter().flat_map(|(_, e)| e).collect()
}

#[cfg(test)]
mod tests {
    use crate::api::{Data, ErrorCode, Request};
    use crate::state::store::StateFile;
    use crate::state::testkit::{disk, setup, temp_dir, EXAMPLE};
    use std::fs;

    fn line(json: &str) -> Request {
        Request::parse(json.as_bytes()).unwrap()
    }

    /// Martian or POP-owned EIPs and backends, refused through the socket's
    /// request path with a typed error; nothing changes.
    #[test]
    fn martian_and_own_addresses_are_refused_as_eips_and_backends() {
        let (dir, cp, sink) = setup("martian");
        let before = disk(&dir);
        let published = sink.published.lock().unwrap().len();
        for (bad, why) in [
            ("0.0.0.0", "martian"),
            ("255.255.255.255", "martian"),
            ("224.0.0.1", "martian"),
            ("127.0.0.1", "martian"),
            ("169.254.0.7", "martian"),
            ("198.51.100.1", "own addresses"),
            ("198.51.100.5", "own addresses"),
            ("198.51.100.6", "own addresses"),
            ("198.51.100.2", "own addresses"),
            ("10.255.0.1", "own addresses"),
            ("10.255.0.2", "own addresses"),
        ] {
            for json in [
                format!(
                    r#"{{"cmd":"add_eip","eip":{{"address":"{bad}","region":"beijing","backend":"10.1.0.99"}}}}"#
                ),
                format!(
                    r#"{{"cmd":"add_eip","eip":{{"address":"192.0.2.99","region":"beijing","backend":"{bad}"}}}}"#
                ),
            ] {
                let reply = cp.handle(line(&json));
                let e = reply.error.expect(&json);
                assert_eq!(e.code, ErrorCode::InvalidValue, "{json}");
                assert!(
                    e.message.contains(bad) && e.message.contains(why),
                    "{json}: {}",
                    e.message
                );
                assert_eq!(reply.version, 1);
            }
        }
        for (eip, backend) in [
            ("::1", "fd00:1::99"),
            ("ff02::1", "fd00:1::99"),
            ("2001:db8:e1::99", "fe80::1"),
        ] {
            let json = format!(
                r#"{{"cmd":"add_eip","eip":{{"address":"{eip}","region":"beijing","backend":"{backend}"}}}}"#
            );
            assert_eq!(
                cp.handle(line(&json)).error.expect(&json).code,
                ErrorCode::InvalidValue
            );
        }
        assert_eq!(cp.version(), 1);
        assert_eq!(disk(&dir), before, "nothing saved");
        assert_eq!(
            sink.published.lock().unwrap().len(),
            published,
            "nothing published"
        );
    }

    /// The same addresses in the configuration file fail at start (and `check`).
    #[test]
    fn martian_eips_in_the_configuration_fail_the_boot() {
        for extra in [
            "[[eips]]\naddress = \"127.0.0.1\"\nregion = \"beijing\"\nbackend = \"10.1.0.99\"\n",
            "[[eips]]\naddress = \"192.0.2.99\"\nregion = \"beijing\"\nbackend = \"198.51.100.1\"\n",
        ] {
            let dir = temp_dir("martian-config");
            let config = dir.join("pop.toml");
            let text = EXAMPLE.replacen("[[eips]]", &format!("{extra}\n[[eips]]"), 1);
            fs::write(&config, text).unwrap();
            let store = StateFile::new(dir.join("state").join("state.json"));
            let err = store.boot(&config, None).expect_err(extra).to_string();
            assert!(err.contains("cannot be"), "{err}");
            assert!(!dir.join("state").join("state.json").exists(), "nothing saved");
        }
    }

    #[test]
    fn the_last_usable_path_of_a_region_with_eips_needs_blackhole_ok() {
        let (dir, cp, _) = setup("blackhole");
        // One of two paths: fine.
        let r = cp.handle(line(
            r#"{"cmd":"set_path_admin","name":"sha-bj-telecom","admin":"disabled"}"#,
        ));
        assert!(r.ok, "{r:?}");
        let before = disk(&dir);
        for json in [
            r#"{"cmd":"remove_path","name":"sha-bj-unicom"}"#,
            r#"{"cmd":"set_path_admin","name":"sha-bj-unicom","admin":"disabled"}"#,
            r#"{"cmd":"update_path","name":"sha-bj-unicom","weight":0}"#,
            r#"{"cmd":"transaction","ops":[{"cmd":"remove_path","name":"sha-bj-unicom"}]}"#,
        ] {
            let r = cp.handle(line(json));
            let e = r.error.expect(json);
            assert_eq!(e.code, ErrorCode::WouldBlackhole, "{json}");
            assert!(
                e.message.contains("\"beijing\"")
                    && e.message.contains("192.0.2.10")
                    && e.message.contains("blackhole_ok"),
                "{}",
                e.message
            );
            assert_eq!(r.version, 2);
        }
        assert_eq!(disk(&dir), before, "nothing saved");
        let r = cp.handle(line(
            r#"{"cmd":"remove_path","name":"sha-bj-unicom","blackhole_ok":true}"#,
        ));
        assert!(r.ok, "{r:?}");
        match r.data {
            Some(Data::Applied { blackholed, .. }) => {
                let mut got: Vec<String> = blackholed.iter().map(|a| a.to_string()).collect();
                got.sort();
                assert_eq!(got, ["192.0.2.10", "192.0.2.20", "2001:db8:e1::10"]);
            }
            other => panic!("{other:?}"),
        }
        // Already blackholed: unrelated changes are not refused for it.
        let r = cp.handle(line(r#"{"cmd":"remove_eip","address":"192.0.2.10"}"#));
        assert!(r.ok, "{r:?}");
    }
}
