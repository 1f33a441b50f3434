//! Tests that need the kernel: real XDP, real AF_XDP sockets, real packets on veth
//! pairs inside network namespaces created (and always deleted) by the tests.
//!
//! They need root. When not root they FAIL, unless `EIP_SKIP_ROOT_TESTS=1` is set,
//! in which case they return early and say so. Run them with
//! `cargo test -p eip-dataplane --features afxdp afxdp` (as root), and the
//! throughput measurement with
//! `cargo test -p eip-dataplane --release --features afxdp veth_throughput -- --ignored --nocapture`.

mod packets;
mod testbed;
mod veth;
