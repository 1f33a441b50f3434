//! Backend health checks in the POP description: how the backends behind an
//! EIP are checked (`check = { kind = "tcp", ... }` or `kind = "http"` with a
//! `path`, `host` and `expect`ed status range, on a service, an EIP, or
//! `[pop] backend_check` as the POP's default).
//!
//! Operator intent only: the tables ignore it; the health the checks measure is
//! observed state that is never written back here. Field-by-field
//! documentation: `docs/config.md` (section "Backend health checks").

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// Shortest check interval accepted, milliseconds.
pub const MIN_CHECK_INTERVAL_MS: u64 = 10;
/// Longest check timeout accepted, milliseconds.
pub const MAX_CHECK_TIMEOUT_MS: u64 = 60_000;
/// Longest `path` of an HTTP check, bytes (the request goes in one segment).
pub const MAX_HTTP_PATH: usize = 800;
/// Longest `host` of an HTTP check, bytes.
pub const MAX_HTTP_HOST: usize = 255;

/// What a check sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    /// A TCP SYN to the backend's port: a SYN-ACK is a success (answered with a
    /// RST), a RST a failure, silence a loss.
    Tcp,
    /// An ICMP echo request to the backend's address.
    Icmp,
    /// A TCP connection to the backend's port carrying `GET <path>`: a status
    /// in the `expect` range is a success, another status, a RST or silence a
    /// failure.
    Http,
    /// No check: the backend is taken as up (turns off an inherited check).
    None,
}

impl CheckKind {
    /// The name the configuration uses.
    pub fn label(self) -> &'static str {
        match self {
            CheckKind::Tcp => "tcp",
            CheckKind::Icmp => "icmp",
            CheckKind::Http => "http",
            CheckKind::None => "none",
        }
    }
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
    /// `http`: the path requested (default `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `http`: the `Host` header (default: the backend's address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// `http`: the statuses that are a success (default 200-399).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<StatusRange>,
}

/// A range of HTTP statuses, written `"200-399"` or `"204"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusRange {
    pub first: u16,
    pub last: u16,
}

impl StatusRange {
    /// What an `http` check without `expect` accepts.
    pub const DEFAULT: StatusRange = StatusRange {
        first: 200,
        last: 399,
    };

    pub fn contains(&self, status: u16) -> bool {
        (self.first..=self.last).contains(&status)
    }
}

impl fmt::Display for StatusRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

impl FromStr for StatusRange {
    type Err = CheckError;

    fn from_str(text: &str) -> Result<Self, CheckError> {
        let bad = || CheckError::Expect(text.to_string());
        let (a, b) = text.split_once('-').unwrap_or((text, text));
        let status = |t: &str| {
            t.trim()
                .parse::<u16>()
                .ok()
                .filter(|s| (100..=599).contains(s))
        };
        let (first, last) = (status(a).ok_or_else(bad)?, status(b).ok_or_else(bad)?);
        if first > last {
            return Err(bad());
        }
        Ok(StatusRange { first, last })
    }
}

impl Serialize for StatusRange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for StatusRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Why a check as written is refused; each names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    #[error("check interval_ms {0} is below the minimum {MIN_CHECK_INTERVAL_MS}")]
    Interval(u64),
    #[error("check timeout_ms {timeout} must be between interval_ms ({interval}) and {MAX_CHECK_TIMEOUT_MS}")]
    Timeout { timeout: u64, interval: u64 },
    #[error("check down_after and up_after must be at least 1")]
    Counts,
    #[error("check port 0 is not a port")]
    Port,
    #[error("check {field} is only for kind = \"http\" (this check is {})", .kind.label())]
    NotHttp {
        field: &'static str,
        kind: CheckKind,
    },
    #[error("check path {0:?}: must start with '/', be at most {MAX_HTTP_PATH} bytes, and hold no spaces or control characters")]
    Path(String),
    #[error(
        "check host {0:?}: must be 1 to {MAX_HTTP_HOST} bytes with no spaces or control characters"
    )]
    Host(String),
    #[error("check expect {0:?}: want a status (\"200\") or a range (\"200-399\") within 100-599")]
    Expect(String),
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
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    expect: Option<StatusRange>,
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

/// Printable ASCII without spaces: what fits a request line or a header value.
fn is_token(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_graphic())
}

impl TryFrom<RawCheck> for CheckSpec {
    type Error = CheckError;

    fn try_from(r: RawCheck) -> Result<Self, CheckError> {
        if r.interval_ms < MIN_CHECK_INTERVAL_MS {
            return Err(CheckError::Interval(r.interval_ms));
        }
        if r.timeout_ms < r.interval_ms || r.timeout_ms > MAX_CHECK_TIMEOUT_MS {
            return Err(CheckError::Timeout {
                timeout: r.timeout_ms,
                interval: r.interval_ms,
            });
        }
        if r.down_after == 0 || r.up_after == 0 {
            return Err(CheckError::Counts);
        }
        if r.port == Some(0) {
            return Err(CheckError::Port);
        }
        if r.kind != CheckKind::Http {
            for (field, set) in [
                ("path", r.path.is_some()),
                ("host", r.host.is_some()),
                ("expect", r.expect.is_some()),
            ] {
                if set {
                    return Err(CheckError::NotHttp {
                        field,
                        kind: r.kind,
                    });
                }
            }
        }
        if let Some(p) = &r.path {
            if !p.starts_with('/') || p.len() > MAX_HTTP_PATH || !is_token(p) {
                return Err(CheckError::Path(p.clone()));
            }
        }
        if let Some(h) = &r.host {
            if h.is_empty() || h.len() > MAX_HTTP_HOST || !is_token(h) {
                return Err(CheckError::Host(h.clone()));
            }
        }
        Ok(CheckSpec {
            kind: r.kind,
            port: r.port,
            interval_ms: r.interval_ms,
            timeout_ms: r.timeout_ms,
            down_after: r.down_after,
            up_after: r.up_after,
            path: r.path,
            host: r.host,
            expect: r.expect,
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
            path: None,
            host: None,
            expect: None,
        }
    }

    /// `http`: the path requested.
    pub fn http_path(&self) -> &str {
        self.path.as_deref().unwrap_or("/")
    }

    /// `http`: the statuses that are a success.
    pub fn http_expect(&self) -> StatusRange {
        self.expect.unwrap_or(StatusRange::DEFAULT)
    }

    /// One line for people: `http GET /healthz expect 200-399, every 1000 ms, ...`.
    pub fn describe(&self) -> String {
        let what = match self.kind {
            CheckKind::Tcp | CheckKind::Icmp => self.kind.label().to_string(),
            CheckKind::None => return "none".to_string(),
            CheckKind::Http => format!(
                "http GET {}{} expect {}",
                self.http_path(),
                self.host
                    .as_ref()
                    .map_or_else(String::new, |h| format!(" host {h}")),
                self.http_expect()
            ),
        };
        let port = self.port.map_or_else(String::new, |p| format!(" port {p}"));
        format!(
            "{what}{port}, every {} ms, timeout {} ms, down after {}, up after {}",
            self.interval_ms, self.timeout_ms, self.down_after, self.up_after
        )
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
            r#"check = { kind = "tcp", nonsense = 1 }"#,
            r#"check = { kind = "tcp", path = "/" }"#,
            r#"check = { kind = "http", path = "health" }"#,
            r#"check = { kind = "http", path = "/a b" }"#,
            r#"check = { kind = "http", host = "" }"#,
            r#"check = { kind = "http", expect = "600" }"#,
            r#"check = { kind = "http", expect = "399-200" }"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn http_fields_default_parse_and_round_trip() {
        let c = parse(r#"check = { kind = "http" }"#).unwrap();
        assert_eq!((c.http_path(), c.host.as_deref()), ("/", None));
        assert_eq!(c.http_expect(), StatusRange::DEFAULT);
        let c = parse(
            r#"check = { kind = "http", port = 8080, path = "/healthz?deep=1", host = "api.example", expect = "204" }"#,
        )
        .unwrap();
        assert_eq!(c.http_path(), "/healthz?deep=1");
        assert_eq!(
            c.http_expect(),
            StatusRange {
                first: 204,
                last: 204
            }
        );
        assert!(c.http_expect().contains(204) && !c.http_expect().contains(200));
        assert_eq!(
            c.describe(),
            "http GET /healthz?deep=1 host api.example expect 204 port 8080, every 1000 ms, \
             timeout 1000 ms, down after 3, up after 2"
        );
        // Written back as the operator wrote it.
        let text = toml::to_string(&c).unwrap();
        assert!(text.contains("expect = \"204\""), "{text}");
        let again: CheckSpec = toml::from_str(&text).unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn errors_name_the_field() {
        for (bad, field) in [
            (r#"check = { kind = "http", path = "health" }"#, "path"),
            (r#"check = { kind = "http", host = "a b" }"#, "host"),
            (r#"check = { kind = "http", expect = "2xx" }"#, "expect"),
            (r#"check = { kind = "icmp", expect = "200" }"#, "expect"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(&format!("check {field}")), "{bad}: {e}");
        }
    }
}
