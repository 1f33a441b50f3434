//! Control side of the anycast EIP data plane: configuration, drivers that are not
//! AF_XDP (pcap replay), reports, and the `eipd`/`eipctl` binaries.

pub mod api;
pub mod client;
pub mod config;
pub mod health;
pub mod metrics;
pub mod neighbours;
pub mod pcap;
pub mod probe;
pub mod replay;
pub mod report;
pub mod server;
pub mod state;
