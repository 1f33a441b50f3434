//! Prober settings: the health settings of every path, and the RTT tolerances
//! with hysteresis that decide which up paths carry traffic.

use crate::health::{HealthConfig, HealthConfigError, RttTolerance};
use std::time::Duration;

/// Prober settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ProberConfig {
    /// Interval, timeout and flap damping, the same for every path.
    pub health: HealthConfig,
    /// An up path starts carrying traffic when its smoothed RTT is within this
    /// of the best in its region (default `best * 1.2 + 2 ms`).
    pub join: RttTolerance,
    /// ... and stops only beyond this (default `best * 1.5 + 5 ms`). At least
    /// as wide as `join`.
    pub leave: RttTolerance,
    /// Echoed in every probe's payload; replies without it are ignored. Give
    /// each process a different one (e.g. from the clock and the pid), so a
    /// restarted daemon does not count replies to its predecessor's probes.
    pub nonce: u64,
}

impl Default for ProberConfig {
    fn default() -> Self {
        ProberConfig {
            health: HealthConfig::default(),
            join: RttTolerance::default(),
            leave: RttTolerance::new(1.5, Duration::from_millis(5)).expect("1.5 is a valid factor"),
            nonce: 0,
        }
    }
}

/// A prober setting that makes no sense.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProberConfigError {
    #[error(transparent)]
    Health(#[from] HealthConfigError),
    #[error(
        "RTT hysteresis: leave tolerance ({leave_factor} x + {leave_slack:?}) must be at least \
         the join tolerance ({join_factor} x + {join_slack:?})"
    )]
    Hysteresis {
        join_factor: f64,
        join_slack: Duration,
        leave_factor: f64,
        leave_slack: Duration,
    },
}

impl ProberConfig {
    /// # Errors
    /// The first [`ProberConfigError`] found.
    pub fn validate(&self) -> Result<(), ProberConfigError> {
        self.health.validate()?;
        if self.leave.factor() < self.join.factor() || self.leave.slack() < self.join.slack() {
            return Err(ProberConfigError::Hysteresis {
                join_factor: self.join.factor(),
                join_slack: self.join.slack(),
                leave_factor: self.leave.factor(),
                leave_slack: self.leave.slack(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::testing::{config, ms, spec, tables};
    use crate::probe::Prober;

    #[test]
    fn config_is_validated() {
        let mut c = config();
        c.leave = RttTolerance::new(1.1, ms(5)).unwrap();
        assert!(matches!(
            c.validate(),
            Err(ProberConfigError::Hysteresis { .. })
        ));
        let mut c = config();
        c.health.interval = ms(1);
        assert!(matches!(c.validate(), Err(ProberConfigError::Health(_))));
        assert!(Prober::new(&tables(&spec(), 1), c, ms(0)).is_err());
        ProberConfig::default().validate().unwrap();
    }
}
