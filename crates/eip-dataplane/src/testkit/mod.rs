//! Test support shared by this crate's unit tests, the other crates' integration
//! tests and the benchmark (feature `testkit`): one place that builds POP
//! descriptions and frames, and the few host facts tests need.
//!
//! Nothing here is used by production code.

pub mod host;
