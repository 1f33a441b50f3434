//! Tests that need the kernel: real XDP, real AF_XDP sockets, real packets on veth
//! pairs inside network namespaces created (and always deleted) by the tests.
//!
//! They need root, so they are marked `#[ignore]` (reported as ignored, never as
//! passed, without it). Run them as root with
//! `cargo test -p eip-afxdp -- --include-ignored --skip helper_ --skip measure_`, and
//! the throughput measurement with
//! `cargo test -p eip-afxdp --release measure_veth_throughput -- --ignored --nocapture`.

mod packets;
mod testbed;
mod veth;
