//! What a path's health is measured against: probe timing, window sizes and
//! the flap-damping thresholds, checked once so the state machine can trust
//! them.

use std::time::Duration;

/// Shortest probe interval accepted.
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);
/// Longest probe timeout accepted. Together with [`MIN_INTERVAL`] it bounds the
/// probes in flight to 6,001, far below the 65,536 16-bit sequence numbers, so a
/// reply always matches the probe it answers.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest RTT or loss window accepted (memory per path stays small).
pub const MAX_WINDOW: usize = 4096;

/// Prober settings of one path (or of all paths).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthConfig {
    /// Time between probes. Default 100 ms; at least [`MIN_INTERVAL`]. The state
    /// machine does not send; it uses this for
    /// [`PathHealth::next_probe_at`](super::PathHealth::next_probe_at) and to
    /// size the table of probes in flight.
    pub interval: Duration,
    /// A probe with no reply after this long is lost; so is a reply that comes
    /// later. Default 500 ms; at least `interval`, at most [`MAX_TIMEOUT`].
    pub timeout: Duration,
    /// Replies over which p50/p90/p99 are computed. Default 256.
    pub rtt_window: usize,
    /// Probes over which loss is measured. Default 20.
    pub loss_window: usize,
    /// Consecutive lost probes that put an up path down. Default 3.
    pub down_after: u32,
    /// Lost probes within the loss window that put an up path down. Default 8
    /// (40 % of 20). At most `loss_window`.
    pub down_loss: u32,
    /// Consecutive replies that bring a down path back up. Default 5.
    pub up_after: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            interval: Duration::from_millis(100),
            timeout: Duration::from_millis(500),
            rtt_window: 256,
            loss_window: 20,
            down_after: 3,
            down_loss: 8,
            up_after: 5,
        }
    }
}

/// A setting that makes no sense.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HealthConfigError {
    #[error("probe interval {interval:?} is below the minimum {MIN_INTERVAL:?}")]
    IntervalTooShort { interval: Duration },
    #[error("probe timeout {timeout:?} is shorter than the probe interval {interval:?}")]
    TimeoutBelowInterval {
        timeout: Duration,
        interval: Duration,
    },
    #[error("probe timeout {timeout:?} is above the maximum {MAX_TIMEOUT:?}")]
    TimeoutTooLong { timeout: Duration },
    #[error("{field} is {value}, must be between 1 and {MAX_WINDOW}")]
    Window { field: &'static str, value: usize },
    #[error("{field} is 0, must be at least 1")]
    ZeroThreshold { field: &'static str },
    #[error("down_loss {down_loss} is more than the loss window of {loss_window} probes")]
    LossAboveWindow { down_loss: u32, loss_window: usize },
    #[error("RTT tolerance factor {factor} must be a finite number of at least 1")]
    RttFactor { factor: f64 },
}

impl HealthConfig {
    /// Checks every setting.
    ///
    /// # Errors
    /// The first [`HealthConfigError`] found.
    pub fn validate(&self) -> Result<(), HealthConfigError> {
        if self.interval < MIN_INTERVAL {
            return Err(HealthConfigError::IntervalTooShort {
                interval: self.interval,
            });
        }
        if self.timeout < self.interval {
            return Err(HealthConfigError::TimeoutBelowInterval {
                timeout: self.timeout,
                interval: self.interval,
            });
        }
        if self.timeout > MAX_TIMEOUT {
            return Err(HealthConfigError::TimeoutTooLong {
                timeout: self.timeout,
            });
        }
        for (field, value) in [
            ("rtt_window", self.rtt_window),
            ("loss_window", self.loss_window),
        ] {
            if value == 0 || value > MAX_WINDOW {
                return Err(HealthConfigError::Window { field, value });
            }
        }
        for (field, value) in [
            ("down_after", self.down_after),
            ("down_loss", self.down_loss),
            ("up_after", self.up_after),
        ] {
            if value == 0 {
                return Err(HealthConfigError::ZeroThreshold { field });
            }
        }
        if self.down_loss as usize > self.loss_window {
            return Err(HealthConfigError::LossAboveWindow {
                down_loss: self.down_loss,
                loss_window: self.loss_window,
            });
        }
        Ok(())
    }

    /// Probes that can be in flight at once when sent every `interval`, with room
    /// for a prober that runs a little fast.
    pub(super) fn max_in_flight(&self) -> usize {
        let per_timeout = self.timeout.as_nanos() / self.interval.as_nanos().max(1);
        (per_timeout as usize + 1) * 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::testing::ms;
    use crate::health::PathHealth;

    #[test]
    fn defaults_are_valid() {
        HealthConfig::default().validate().unwrap();
        PathHealth::new(HealthConfig::default(), Duration::ZERO).unwrap();
    }

    #[test]
    fn nonsense_config_is_rejected() {
        let with = |f: fn(&mut HealthConfig)| {
            let mut c = HealthConfig::default();
            f(&mut c);
            PathHealth::new(c, Duration::ZERO).unwrap_err()
        };
        assert_eq!(
            with(|c| c.interval = Duration::ZERO),
            HealthConfigError::IntervalTooShort {
                interval: Duration::ZERO
            }
        );
        assert!(matches!(
            with(|c| c.interval = ms(9)),
            HealthConfigError::IntervalTooShort { .. }
        ));
        assert_eq!(
            with(|c| c.timeout = ms(50)),
            HealthConfigError::TimeoutBelowInterval {
                timeout: ms(50),
                interval: ms(100)
            }
        );
        assert!(matches!(
            with(|c| c.timeout = Duration::from_secs(61)),
            HealthConfigError::TimeoutTooLong { .. }
        ));
        assert_eq!(
            with(|c| c.loss_window = 0),
            HealthConfigError::Window {
                field: "loss_window",
                value: 0
            }
        );
        assert!(matches!(
            with(|c| c.rtt_window = MAX_WINDOW + 1),
            HealthConfigError::Window {
                field: "rtt_window",
                ..
            }
        ));
        for (field, f) in [
            (
                "down_after",
                (|c| c.down_after = 0) as fn(&mut HealthConfig),
            ),
            ("down_loss", |c| c.down_loss = 0),
            ("up_after", |c| c.up_after = 0),
        ] {
            assert_eq!(with(f), HealthConfigError::ZeroThreshold { field });
        }
        assert_eq!(
            with(|c| c.down_loss = 21),
            HealthConfigError::LossAboveWindow {
                down_loss: 21,
                loss_window: 20
            }
        );
        assert_eq!(
            with(|c| c.timeout = ms(50)).to_string(),
            "probe timeout 50ms is shorter than the probe interval 100ms"
        );
        // The boundaries themselves are fine.
        let mut c = HealthConfig::default();
        c.interval = MIN_INTERVAL;
        c.timeout = MIN_INTERVAL;
        c.down_loss = c.loss_window as u32;
        c.validate().unwrap();
    }
}
