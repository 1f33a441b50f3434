//! `trace`: capture the frames the workers handle, at receive, transmit and drop,
//! into a pcapng file the daemon writes. The request and reply types; what the
//! filter matches is [`crate::trace::Matcher`].

use super::ApiError;
use crate::trace::MAX_SNAP;
use eip_dataplane::counters::DropReason;
use eip_dataplane::Verdict;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

/// Frames written when the request does not say.
pub const DEFAULT_TRACE_COUNT: u64 = 1000;
/// Most frames one trace may write.
pub const MAX_TRACE_COUNT: u64 = 1_000_000;
/// Seconds a trace runs when the request does not say.
pub const DEFAULT_TRACE_SECONDS: u64 = 10;
/// Longest trace, in seconds (the reply waits for the end).
pub const MAX_TRACE_SECONDS: u64 = 600;
/// Bytes kept of each frame when the request does not say.
pub const DEFAULT_SNAP: u32 = 256;
/// Fewest bytes per frame a request may ask for (the headers of a VXLAN frame).
pub const MIN_SNAP: u32 = 64;

/// Arguments of `trace`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceRequest {
    /// Which frames; the empty filter takes every frame the workers see.
    #[serde(default)]
    pub filter: TraceFilter,
    /// Stop after this many frames written (a frame seen at receive and transmit
    /// is two).
    #[serde(default = "default_count")]
    pub count: u64,
    /// ... or after this many seconds, whichever comes first.
    #[serde(default = "default_seconds")]
    pub seconds: u64,
    /// Bytes kept of each frame (the rest is cut; the original length is kept).
    #[serde(default = "default_snap")]
    pub snap: u32,
    /// The pcapng file the daemon creates (absolute path; it must not exist).
    pub file: PathBuf,
}

fn default_count() -> u64 {
    DEFAULT_TRACE_COUNT
}
fn default_seconds() -> u64 {
    DEFAULT_TRACE_SECONDS
}
fn default_snap() -> u32 {
    DEFAULT_SNAP
}

impl TraceRequest {
    /// A request with the defaults for everything but the file.
    pub fn new(file: impl Into<PathBuf>) -> Self {
        TraceRequest {
            filter: TraceFilter::default(),
            count: DEFAULT_TRACE_COUNT,
            seconds: DEFAULT_TRACE_SECONDS,
            snap: DEFAULT_SNAP,
            file: file.into(),
        }
    }

    /// Checks the bounds and the path.
    ///
    /// # Errors
    /// `invalid_value` naming the field.
    pub fn validate(&self) -> Result<(), ApiError> {
        if !(1..=MAX_TRACE_COUNT).contains(&self.count) {
            return Err(ApiError::invalid(format!(
                "trace: count must be 1..={MAX_TRACE_COUNT}, not {}",
                self.count
            )));
        }
        if !(1..=MAX_TRACE_SECONDS).contains(&self.seconds) {
            return Err(ApiError::invalid(format!(
                "trace: seconds must be 1..={MAX_TRACE_SECONDS}, not {}",
                self.seconds
            )));
        }
        if !(MIN_SNAP..=MAX_SNAP as u32).contains(&self.snap) {
            return Err(ApiError::invalid(format!(
                "trace: snap must be {MIN_SNAP}..={MAX_SNAP} bytes, not {}",
                self.snap
            )));
        }
        if !self.file.is_absolute() {
            return Err(ApiError::invalid(format!(
                "trace: file must be an absolute path (the daemon writes it), not {:?}",
                self.file
            )));
        }
        Ok(())
    }
}

/// Which frames a trace takes. Every criterion given must hold; none given
/// takes everything.
///
/// Address, protocol and port criteria are checked against the outer IP header
/// and, for VXLAN, the inner one (either may satisfy all of them). A frame is
/// traced if it matches as it arrives or, for a transmitted frame, as it leaves
/// (after NAT): so `eip` follows both directions of the EIP's traffic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceFilter {
    /// Source or destination is this address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eip: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<TraceProtocol>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_port: Option<u16>,
    /// Only dropped frames (for this reason, or `any`), recorded at the drop only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop: Option<DropFilter>,
}

/// The transport protocols a filter names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TraceProtocol {
    Tcp,
    Udp,
    /// ICMP or ICMPv6.
    Icmp,
}

/// The drop reasons a filter takes: one, or all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropFilter {
    Any,
    Reason(DropReason),
}

impl DropFilter {
    /// `any` or a drop reason's label (`unknown_vtep`).
    ///
    /// # Errors
    /// A message listing the labels.
    pub fn parse(text: &str) -> Result<DropFilter, String> {
        if text == "any" {
            return Ok(DropFilter::Any);
        }
        DropReason::ALL
            .iter()
            .find(|r| r.label() == text)
            .map(|&r| DropFilter::Reason(r))
            .ok_or_else(|| {
                let labels: Vec<&str> = DropReason::ALL.iter().map(|r| r.label()).collect();
                format!(
                    "unknown drop reason {text:?}; expected any or one of {}",
                    labels.join(", ")
                )
            })
    }

    /// Does a frame with this verdict pass?
    #[inline]
    pub fn matches(self, verdict: Verdict) -> bool {
        match (self, verdict) {
            (DropFilter::Any, Verdict::Drop(_)) => true,
            (DropFilter::Reason(want), Verdict::Drop(got)) => want == got,
            _ => false,
        }
    }
}

impl fmt::Display for DropFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DropFilter::Any => f.write_str("any"),
            DropFilter::Reason(r) => f.write_str(r.label()),
        }
    }
}

impl Serialize for DropFilter {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DropFilter {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        DropFilter::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Why a trace ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceEnd {
    /// `count` frames were written.
    Count,
    /// `seconds` passed.
    Time,
    /// The daemon is stopping.
    Shutdown,
}

/// What a finished trace reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceSummary {
    /// The pcapng file, closed.
    pub file: PathBuf,
    /// Frames written to it.
    pub written: u64,
    /// Matching frames not written because a worker's trace ring was full (the
    /// collector did not keep up); the worker never waits for it.
    pub lost: u64,
    pub ended: TraceEnd,
    pub elapsed_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Command, ErrorCode, Request};

    fn parse(line: &str) -> Result<Request, ApiError> {
        Request::parse(line.as_bytes())
    }

    #[test]
    fn trace_requests_parse_with_defaults_and_round_trip() {
        let r = parse(r#"{"cmd":"trace","file":"/tmp/x.pcapng"}"#).unwrap();
        assert_eq!(
            r.command,
            Command::Trace(TraceRequest::new("/tmp/x.pcapng"))
        );
        let line = r#"{"cmd":"trace","filter":{"eip":"192.0.2.10","protocol":"tcp","dst_port":80,"drop":"unknown_vtep"},"count":5,"seconds":2,"snap":2048,"file":"/tmp/x.pcapng"}"#;
        let r = parse(line).unwrap();
        let Command::Trace(t) = &r.command else {
            panic!("{r:?}")
        };
        assert_eq!(t.filter.eip, Some("192.0.2.10".parse().unwrap()));
        assert_eq!(t.filter.protocol, Some(TraceProtocol::Tcp));
        assert_eq!(t.filter.dst_port, Some(80));
        assert_eq!(
            t.filter.drop,
            Some(DropFilter::Reason(DropReason::UnknownVtep))
        );
        assert_eq!((t.count, t.seconds, t.snap), (5, 2, 2048));
        let again = Request::parse(r.to_line().trim_end().as_bytes()).unwrap();
        assert_eq!(again, r);
    }

    #[test]
    fn trace_refusals_name_the_field() {
        for (line, needle) in [
            (r#"{"cmd":"trace"}"#, "missing field `file`"),
            (r#"{"cmd":"trace","file":"x.pcapng"}"#, "absolute path"),
            (r#"{"cmd":"trace","file":"/x","count":0}"#, "count must be"),
            (
                r#"{"cmd":"trace","file":"/x","seconds":601}"#,
                "seconds must be",
            ),
            (r#"{"cmd":"trace","file":"/x","snap":4096}"#, "snap must be"),
            (
                r#"{"cmd":"trace","file":"/x","filter":{"drop":"nope"}}"#,
                "unknown drop reason \"nope\"",
            ),
            (
                r#"{"cmd":"trace","file":"/x","filter":{"protocol":"sctp"}}"#,
                "filter.protocol: unknown variant `sctp`",
            ),
            (
                r#"{"cmd":"trace","file":"/x","filter":{"port":80}}"#,
                "unknown field `port`",
            ),
        ] {
            let e = parse(line).expect_err(line);
            assert_eq!(e.code, ErrorCode::InvalidValue, "{line}");
            assert!(e.message.contains(needle), "{line}: {e}");
        }
        // Not a change: no place in a transaction.
        let e = parse(r#"{"cmd":"transaction","ops":[{"cmd":"trace","file":"/x"}]}"#).unwrap_err();
        assert!(e.message.contains("cannot be part of a transaction"), "{e}");
    }

    #[test]
    fn drop_filter_matches_verdicts() {
        let any = DropFilter::parse("any").unwrap();
        let vtep = DropFilter::parse("unknown_vtep").unwrap();
        assert!(any.matches(Verdict::Drop(DropReason::NoPath)));
        assert!(!any.matches(Verdict::Tx(0)));
        assert!(vtep.matches(Verdict::Drop(DropReason::UnknownVtep)));
        assert!(!vtep.matches(Verdict::Drop(DropReason::NoPath)));
        assert!(!vtep.matches(Verdict::ToKernel));
        assert_eq!(vtep.to_string(), "unknown_vtep");
        assert!(DropFilter::parse("UNKNOWN_VTEP").is_err());
    }
}
