//! Backend health checks in the POP description: how the backends behind an
//! EIP are checked (`check = { kind = "tcp", ... }` on a service, an EIP, or
//! `[pop] backend_check` as the POP's default).
//!
//! Operator intent only: the tables ignore it; the health the checks measure is
//! observed state that is never written back here. Field-by-field
//! documentation: `docs/config.md` (section "Backend health checks").

use serde::{Deserialize, Serialize};

/// Shortest check interval accepted, milliseconds.
pub const MIN_CHECK_INTERVAL_MS: u64 = 10;
/// Longest check timeout accepted, milliseconds.
pub const MAX_CHECK_TIMEOUT_MS: u64 = 60_000;

/// What a check sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    /// A TCP SYN to the backend's port: a SYN-ACK is a success (answered with a
    /// RST), a RST a failure, silence a loss.
    Tcp,
    /// An ICMP echo request to the backend's address.
    Icmp,
    /// No check: the backend is taken as up (turns off an inherited check).
    None,
}

/// How one backend (or every backend of a service or EIP) is checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, try_from = "RawCheck")]
pub struct CheckSpec {
    pub kind: CheckKind,
    /// TCP port checked (default: the backend's service port; required for
    /// a 1:1 backend).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Time between checks of one backend.
    pub interval_ms: u64,
    /// A check with no answer after this long is lost (at least `interval_ms`).
    pub timeout_ms: u64,
    /// Consecutive failed checks that put an up backend down.
    pub down_after: u32,
    /// Consecutive successful checks that bring a down backend back up.
    pub up_after: u32,
}

/// [`CheckSpec`] as written, before its values are checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    kind: CheckKind,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default = "default_interval_ms")]
    interval_ms: u64,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    #[serde(default = "default_down_after")]
    down_after: u32,
    #[serde(default = "default_up_after")]
    up_after: u32,
}

fn default_interval_ms() -> u64 {
    1000
}
fn default_timeout_ms() -> u64 {
    1000
}
fn default_down_after() -> u32 {
    3
}
fn default_up_after() -> u32 {
    2
}

impl TryFrom<RawCheck> for CheckSpec {
    type Error = String;

    fn try_from(r: RawCheck) -> Result<Self, String> {
        if r.interval_ms < MIN_CHECK_INTERVAL_MS {
            return Err(format!(
                "check interval_ms {} is below the minimum {MIN_CHECK_INTERVAL_MS}",
                r.interval_ms
            ));
        }
        if r.timeout_ms < r.interval_ms || r.timeout_ms > MAX_CHECK_TIMEOUT_MS {
            return Err(format!(
                "check timeout_ms {} must be between interval_ms ({}) and {MAX_CHECK_TIMEOUT_MS}",
                r.timeout_ms, r.interval_ms
            ));
        }
        if r.down_after == 0 || r.up_after == 0 {
            return Err("check down_after and up_after must be at least 1".into());
        }
        if r.port == Some(0) {
            return Err("check port 0 is not a port".into());
        }
        Ok(CheckSpec {
            kind: r.kind,
            port: r.port,
            interval_ms: r.interval_ms,
            timeout_ms: r.timeout_ms,
            down_after: r.down_after,
            up_after: r.up_after,
        })
    }
}

impl CheckSpec {
    /// A check of `kind` with the default timing.
    pub fn new(kind: CheckKind) -> CheckSpec {
        CheckSpec {
            kind,
            port: None,
            interval_ms: default_interval_ms(),
            timeout_ms: default_timeout_ms(),
            down_after: default_down_after(),
            up_after: default_up_after(),
        }
    }

    /// Longest time from a backend failing to its being declared down, by
    /// silence: the next check leaves within one interval, and the
    /// `down_after`-th lost one is declared lost `timeout` after it left
    /// (`down_after * interval + timeout`). A refusal (RST) is seen at once, so
    /// refused backends go down after about `down_after * interval`.
    pub fn detection_ms(&self) -> u64 {
        u64::from(self.down_after) * self.interval_ms + self.timeout_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Doc {
        check: CheckSpec,
    }

    fn parse(text: &str) -> Result<CheckSpec, String> {
        toml::from_str::<Doc>(text)
            .map(|d| d.check)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_bounds() {
        let c = parse(r#"check = { kind = "tcp", port = 80 }"#).unwrap();
        assert_eq!(
            c,
            CheckSpec {
                port: Some(80),
                ..CheckSpec::new(CheckKind::Tcp)
            }
        );
        assert_eq!(c.detection_ms(), 4000);
        let c = parse(r#"check = { kind = "icmp", interval_ms = 100, timeout_ms = 300 }"#).unwrap();
        assert_eq!((c.interval_ms, c.timeout_ms), (100, 300));
        for bad in [
            r#"check = { kind = "tcp", interval_ms = 5 }"#,
            r#"check = { kind = "tcp", interval_ms = 500, timeout_ms = 100 }"#,
            r#"check = { kind = "tcp", down_after = 0 }"#,
            r#"check = { kind = "tcp", port = 0 }"#,
            r#"check = { kind = "http" }"#,
            r#"check = { kind = "tcp", nonsense = 1 }"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
