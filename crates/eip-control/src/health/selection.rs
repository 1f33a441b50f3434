//! The choice of the paths that carry a region's traffic: the healthy ones
//! within an RTT tolerance of the fastest, else the table builder's fallback.

use super::{HealthConfigError, HealthSnapshot};
use eip_dataplane::tables::PathState;
use serde::Serialize;
use std::time::Duration;

/// How much slower than the fastest healthy path a path may be and still carry
/// traffic: up to `best * factor + slack`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RttTolerance {
    factor: f64,
    slack: Duration,
}

impl Default for RttTolerance {
    /// `best * 1.2 + 2 ms`: a relative margin for long paths, an absolute one for
    /// short paths where 20 % is below the noise.
    fn default() -> Self {
        RttTolerance {
            factor: 1.2,
            slack: Duration::from_millis(2),
        }
    }
}

impl RttTolerance {
    /// # Errors
    /// [`HealthConfigError::RttFactor`] unless `factor` is finite and at least 1
    /// (below 1 not even the best path would qualify).
    pub fn new(factor: f64, slack: Duration) -> Result<Self, HealthConfigError> {
        if !factor.is_finite() || factor < 1.0 {
            return Err(HealthConfigError::RttFactor { factor });
        }
        Ok(RttTolerance { factor, slack })
    }

    pub fn factor(&self) -> f64 {
        self.factor
    }

    pub fn slack(&self) -> Duration {
        self.slack
    }

    /// The slowest smoothed RTT that qualifies when the best is `best`.
    pub fn limit(&self, best: Duration) -> Duration {
        Duration::try_from_secs_f64(best.as_secs_f64() * self.factor)
            .unwrap_or(Duration::MAX)
            .saturating_add(self.slack)
    }
}

/// One path of a region, as [`select`] sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub state: PathState,
    pub srtt: Option<Duration>,
    /// The path's configured weight; 0 never carries traffic (drained).
    pub weight: u32,
}

impl Candidate {
    pub fn new(snapshot: &HealthSnapshot, weight: u32) -> Self {
        Candidate {
            state: snapshot.state,
            srtt: snapshot.srtt,
            weight,
        }
    }
}

/// Which kind of set [`select`] chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SelectionMode {
    /// Paths that are up, within the RTT tolerance of the fastest.
    Healthy,
    /// No path is up: every path that is down but not disabled (the table
    /// builder's panic mode; the prober may be wrong, and trying beats dropping).
    Fallback,
    /// Every path is disabled or has weight 0: the region's traffic is dropped.
    NoPath,
}

/// The paths of a region that should carry traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub mode: SelectionMode,
    /// Indices into the candidates, ascending.
    pub eligible: Vec<usize>,
    /// The [`PathState`] to give each candidate in the table spec so that the
    /// table builder (Maglev over `Up` paths with weight, else over `Down` ones)
    /// uses exactly `eligible`: `Up` for eligible paths in healthy mode,
    /// `Disabled` for disabled ones, `Down` for the rest.
    pub table_states: Vec<PathState>,
}

/// Chooses the paths of one region that carry traffic.
///
/// Among paths that are up with a weight above 0, the eligible ones are those
/// whose smoothed RTT is within `tolerance` of the best, so traffic takes the
/// fastest healthy paths; an up path with no RTT yet qualifies only if none has
/// one. If no path is up, every path that is down (not disabled) with a weight
/// above 0 is eligible, with no RTT filter ([`SelectionMode::Fallback`]: the same
/// rule as the table builder's panic mode). If none is, nothing is.
///
/// Re-run it whenever a [`Transition`](super::Transition) happens and at
/// reporting rate (RTTs move).
pub fn select(candidates: &[Candidate], tolerance: &RttTolerance) -> Selection {
    let usable = |c: &Candidate, state: PathState| c.state == state && c.weight > 0;
    let up = || {
        candidates
            .iter()
            .enumerate()
            .filter(|(_, c)| usable(c, PathState::Up))
    };
    let best = up().filter_map(|(_, c)| c.srtt).min();
    let (mode, eligible): (SelectionMode, Vec<usize>) = if up().next().is_some() {
        let fits = |c: &Candidate| match (best, c.srtt) {
            (Some(best), Some(srtt)) => srtt <= tolerance.limit(best),
            // Up without a measurement: a path the daemon started with as up
            // (its last known state) keeps its place until it is measured.
            (Some(_), None) => true,
            (None, _) => true,
        };
        let eligible = up().filter(|(_, c)| fits(c)).map(|(i, _)| i).collect();
        (SelectionMode::Healthy, eligible)
    } else {
        let eligible: Vec<usize> = candidates
            .iter()
            .enumerate()
            .filter(|(_, c)| usable(c, PathState::Down))
            .map(|(i, _)| i)
            .collect();
        let mode = if eligible.is_empty() {
            SelectionMode::NoPath
        } else {
            SelectionMode::Fallback
        };
        (mode, eligible)
    };
    let table_states = candidates
        .iter()
        .enumerate()
        .map(|(i, c)| match c.state {
            PathState::Disabled => PathState::Disabled,
            _ if mode == SelectionMode::Healthy && eligible.binary_search(&i).is_ok() => {
                PathState::Up
            }
            _ => PathState::Down,
        })
        .collect();
    Selection {
        mode,
        eligible,
        table_states,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::testing::{config, ms, Driver};

    fn cand(state: PathState, srtt_ms: Option<u64>, weight: u32) -> Candidate {
        Candidate {
            state,
            srtt: srtt_ms.map(ms),
            weight,
        }
    }

    /// The table builder's rule (`tables::build::fill_path_table`): paths up
    /// with weight, else paths down with weight.
    fn builder_picks(states: &[PathState], c: &[Candidate]) -> Vec<usize> {
        let pick = |s: PathState| -> Vec<usize> {
            (0..c.len())
                .filter(|&i| states[i] == s && c[i].weight > 0)
                .collect()
        };
        let up = pick(PathState::Up);
        if up.is_empty() {
            pick(PathState::Down)
        } else {
            up
        }
    }

    fn check(c: &[Candidate], tol: &RttTolerance) -> Selection {
        let s = select(c, tol);
        assert_eq!(builder_picks(&s.table_states, c), s.eligible, "{c:?}");
        s
    }

    #[test]
    fn selects_the_fast_healthy_paths() {
        use PathState::{Disabled, Down, Up};
        let tol = RttTolerance::default();
        // best 20 -> limit 20 * 1.2 + 2 = 26 ms.
        let c = [
            cand(Up, Some(20), 1),
            cand(Up, Some(26), 1),
            cand(Up, Some(27), 1),
            cand(Down, Some(1), 1),
            cand(Disabled, Some(1), 1),
            cand(Up, Some(10), 0),
        ];
        let s = check(&c, &tol);
        assert_eq!(s.mode, SelectionMode::Healthy);
        assert_eq!(s.eligible, vec![0, 1]);
        assert_eq!(s.table_states, vec![Up, Up, Down, Down, Disabled, Down]);
        assert_eq!(tol.limit(ms(20)), ms(26));
        // Short paths: the slack dominates (1 ms * 1.2 + 2 = 3.2 ms).
        let c = [
            cand(Up, Some(1), 1),
            cand(Up, Some(3), 1),
            cand(Up, Some(4), 1),
        ];
        assert_eq!(check(&c, &tol).eligible, vec![0, 1]);
        // A tighter tolerance.
        let strict = RttTolerance::new(1.0, Duration::ZERO).unwrap();
        let c = [
            cand(Up, Some(5), 1),
            cand(Up, Some(5), 2),
            cand(Up, Some(6), 1),
        ];
        assert_eq!(check(&c, &strict).eligible, vec![0, 1]);
    }

    #[test]
    fn selection_falls_back_like_the_table_builder() {
        use PathState::{Disabled, Down, Up};
        let tol = RttTolerance::default();
        // No path up: every down path with weight, whatever its RTT.
        let c = [
            cand(Down, Some(100), 1),
            cand(Down, None, 1),
            cand(Disabled, Some(1), 1),
            cand(Down, Some(1), 0),
        ];
        let s = check(&c, &tol);
        assert_eq!(s.mode, SelectionMode::Fallback);
        assert_eq!(s.eligible, vec![0, 1]);
        assert_eq!(s.table_states, vec![Down, Down, Disabled, Down]);
        // An up path with weight 0 does not count as up.
        let c = [cand(Up, Some(1), 0), cand(Down, Some(9), 1)];
        assert_eq!(check(&c, &tol).eligible, vec![1]);
        // Nothing usable.
        let c = [cand(Disabled, Some(1), 1), cand(Down, Some(1), 0)];
        let s = check(&c, &tol);
        assert_eq!(s.mode, SelectionMode::NoPath);
        assert!(s.eligible.is_empty());
        assert_eq!(check(&[], &tol).mode, SelectionMode::NoPath);
    }

    #[test]
    fn unmeasured_up_paths() {
        use PathState::Up;
        let tol = RttTolerance::default();
        let c = [cand(Up, None, 1), cand(Up, Some(5), 1)];
        assert_eq!(check(&c, &tol).eligible, vec![0, 1], "kept until measured");
        let c = [cand(Up, None, 1), cand(Up, None, 1)];
        assert_eq!(check(&c, &tol).eligible, vec![0, 1]);
    }

    #[test]
    fn tolerance_rejects_nonsense() {
        for factor in [0.9, -1.0, f64::NAN, f64::INFINITY] {
            assert!(RttTolerance::new(factor, ms(1)).is_err(), "{factor}");
        }
        let huge = RttTolerance::new(1e300, ms(1)).unwrap();
        assert_eq!(huge.limit(ms(1)), Duration::MAX);
    }

    #[test]
    fn candidates_from_snapshots() {
        let d = Driver::up(config());
        let c = Candidate::new(&d.path.snapshot(), 3);
        assert_eq!(c, cand(PathState::Up, Some(5), 3));
    }
}
