//! Replies: one JSON line per request, with the table version in force.

use super::{Admin, ApiError, Explanation, TraceSummary, API_VERSION};
use crate::state::SpecDiff;
use eip_dataplane::tables::spec::{EipSpec, PathSpec};
use eip_dataplane::tables::{MacAddr, PathState, PopSpec};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One reply line. `version` is the table version in force when the reply was
/// written: after a successful change, the new one, which every worker already
/// forwards with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub api: u32,
    pub ok: bool,
    pub version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Data>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
}

impl Reply {
    /// A successful reply.
    pub fn ok(version: u64, data: Data) -> Reply {
        Reply {
            api: API_VERSION,
            ok: true,
            version,
            data: Some(data),
            error: None,
        }
    }

    /// An error reply; `version` is the one still in force.
    pub fn error(version: u64, error: ApiError) -> Reply {
        Reply {
            api: API_VERSION,
            ok: false,
            version,
            data: None,
            error: Some(error),
        }
    }

    /// The reply as one JSON line, newline included.
    pub fn to_line(&self) -> String {
        // Serializing plain data into a string cannot fail; if it ever did, the
        // client still gets a well-formed line.
        let mut line = serde_json::to_string(self).unwrap_or_else(|e| {
            let message = Value::String(format!("cannot serialize reply: {e}"));
            format!(
                r#"{{"api":{API_VERSION},"ok":false,"version":{},"error":{{"code":"internal","message":{message}}}}}"#,
                self.version
            )
        });
        line.push('\n');
        line
    }
}

/// What a successful reply carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Data {
    /// `show_tables`: `report::summary_json` of the tables in force.
    Tables { summary: Value },
    /// `show_paths`.
    Paths { paths: Vec<PathView> },
    /// `show_eips`.
    Eips { eips: Vec<EipSpec> },
    /// `show_acl`: the EIP's list as configured (`None`: it has none) and
    /// each rule's hits, the default's last (empty without a statistics
    /// source; counts restart when the list changes).
    Acl {
        address: std::net::IpAddr,
        acl: Option<eip_dataplane::tables::spec::AclSpec>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        hits: Vec<u64>,
    },
    /// `show_spec`.
    Spec { spec: Box<PopSpec> },
    /// `explain`: what the data plane does with the flow.
    Explain { explain: Box<Explanation> },
    /// `stats`: `report::counters_json` plus `elapsed_ms` (daemon clock, for
    /// rates) and `runtime` (daemon-specific, e.g. AF_XDP ring counters).
    Stats { stats: Value },
    /// A change, transaction or not. `unchanged`: the ops changed nothing (e.g.
    /// draining a drained backend), so no new version was made.
    Applied {
        previous_version: u64,
        changes: usize,
        unchanged: bool,
        /// EIPs whose region the change (made with `blackhole_ok`) left with
        /// no usable path.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        blackholed: Vec<std::net::IpAddr>,
    },
    /// `reload`: the configuration file applied as one transaction (or, with
    /// `dry_run`, checked). `diff` says what it changes against the spec that
    /// was in force; `unchanged` when nothing.
    Reloaded {
        file: String,
        previous_version: u64,
        unchanged: bool,
        dry_run: bool,
        diff: Box<SpecDiff>,
        /// What the operator must know although the reload was accepted (a
        /// `[bgp]` section added to a daemon that runs no BGP task, ...).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        warnings: Vec<String>,
    },
    /// `validate`: the ops are acceptable; `summary` is what the tables would
    /// hold. Nothing was applied.
    Validated {
        changes: usize,
        unchanged: bool,
        would_be_version: u64,
        summary: Value,
    },
    /// `trace`: the trace has ended and its file is closed.
    Trace(TraceSummary),
    /// `show_bgp`: the BGP task's status (sessions, prefixes, why not announced).
    Bgp { bgp: Value },
    /// `drain`: started; the daemon withdraws after `wait_ms` and stops.
    Draining { wait_ms: u64 },
}

/// A path as `show_paths` reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathView {
    /// As the operator described it (its `state` is the administrative state
    /// as saved: `up` means enabled).
    pub spec: PathSpec,
    /// What the operator said: `enabled` or `disabled` (saved).
    pub admin: Admin,
    /// Health as the prober measured it (`up` or `down`; observed, never
    /// saved); absent until measured, when an enabled path counts as up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<PathState>,
    /// The next hop's MAC the tables use (`spec.next_hop_mac`, or what the
    /// daemon resolved `spec.next_hop` to).
    pub next_hop_mac_in_use: MacAddr,
    /// In the region's flow table right now.
    pub usable: bool,
    /// The region has no path up and uses its down ones.
    pub region_panic: bool,
    /// The prober's `HealthSnapshot`, when the daemon runs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ErrorCode;

    #[test]
    fn replies_round_trip() {
        let reply = Reply::ok(
            3,
            Data::Applied {
                previous_version: 2,
                changes: 1,
                unchanged: false,
                blackholed: Vec::new(),
            },
        );
        let line = reply.to_line();
        assert_eq!(
            line,
            "{\"api\":1,\"ok\":true,\"version\":3,\"data\":{\"kind\":\"applied\",\"previous_version\":2,\"changes\":1,\"unchanged\":false}}\n"
        );
        assert_eq!(serde_json::from_str::<Reply>(&line).unwrap(), reply);
        let reply = Reply::error(3, ApiError::not_found("EIP 192.0.2.1 does not exist"));
        let back: Reply = serde_json::from_str(&reply.to_line()).unwrap();
        assert_eq!(back, reply);
        // A code from a newer daemon still parses.
        let newer: Reply = serde_json::from_str(
            r#"{"api":1,"ok":false,"version":3,"error":{"code":"quota","message":"m"}}"#,
        )
        .unwrap();
        assert_eq!(newer.error.unwrap().code, ErrorCode::Unknown);
    }
}
