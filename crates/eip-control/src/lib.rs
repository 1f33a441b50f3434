//! Control side of the anycast EIP data plane, as a library with no AF_XDP and no
//! BPF (it builds without clang): the configuration, the state store and the single
//! writer every change goes through, the control-socket API with its server and
//! client, flow explanations (`explain`), path health and probing, pcap replay,
//! packet trace, reports and metrics. The `eipd` binary drives it with the real
//! driver; `eipctl` uses its client and API types.

#![forbid(unsafe_code)]

pub mod api;
pub mod backends;
pub mod client;
pub mod config;
pub mod explain;
pub mod health;
pub mod metrics;
pub mod neighbours;
pub mod pcap;
pub mod probe;
pub mod replay;
pub mod report;
pub mod server;
pub mod state;
pub mod trace;
pub mod units;
