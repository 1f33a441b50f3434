//! Units of the JSON reports: durations serialize as microseconds (`f64`), the
//! unit of every `_us` field of the health and prober reports.

use serde::Serializer;
use std::time::Duration;

/// Serializes a duration as microseconds.
pub fn micros<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_nanos() as f64 / 1000.0)
}

/// [`micros`], or `null` for `None`.
pub fn micros_opt<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => micros(d, s),
        None => s.serialize_none(),
    }
}
