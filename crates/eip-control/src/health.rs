//! Health of one backbone path, as a sans-IO state machine, and the choice of the
//! paths that carry a region's traffic.
//!
//! [`PathHealth`] owns no socket and reads no clock (quinn-proto's rule): the
//! prober that does the I/O tells it what happened and when, with `now` as a
//! [`Duration`] since an epoch of the caller's choosing (one monotonic clock per
//! process; only differences matter):
//!
//! - [`PathHealth::probe_sent`] when a probe with sequence number `seq` left,
//! - [`PathHealth::probe_reply`] when its reply came back,
//! - [`PathHealth::tick`] regularly (at least once per interval; when
//!   [`PathHealth::next_timeout`] says), which declares overdue probes lost.
//!
//! Each returns a [`Transition`] when the path's state changes, with the reason
//! for the log. The same inputs always give the same outputs, so the tests drive
//! it with a fake clock and no sleeps.
//!
//! # State and flap damping
//!
//! Measured [`Health`] is separate from the operator's enable switch; the state
//! the table builder uses ([`PathState`]) is `Disabled` when disabled and the
//! measured health otherwise. A path that is up goes down after
//! [`down_after`](HealthConfig::down_after) consecutive lost probes, or when
//! [`down_loss`](HealthConfig::down_loss) of the last
//! [`loss_window`](HealthConfig::loss_window) probes were lost. A path that is
//! down comes back after [`up_after`](HealthConfig::up_after) consecutive replies,
//! and only once the window's loss is below `down_loss` again (otherwise the next
//! lost probe would put it straight back down). These are glb-director's "count
//! before failed" and "count before healthy": a path that loses a probe now and
//! then neither goes down nor, once down, comes back until it is steadily good.
//!
//! A new path starts *down*: it must earn its traffic with `up_after` replies.
//! At startup every path is down, and the table builder then uses all paths that
//! are down but not disabled (see [`select`]), so nothing is dropped meanwhile.
//!
//! # Measurements
//!
//! Smoothed RTT and RTT variation follow RFC 6298 (alpha 1/8, beta 1/4) over the
//! replies that came in time. Percentiles (p50/p90/p99, nearest rank) are over
//! the last [`rtt_window`](HealthConfig::rtt_window) of those replies, and loss
//! over the last `loss_window` probes whose fate is known. All of it lives in
//! fixed-size rings allocated once.

use eip_dataplane::tables::PathState;
use serde::{Serialize, Serializer};
use std::collections::VecDeque;
use std::fmt;
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
    /// machine does not send; it uses this for [`PathHealth::next_probe_at`] and
    /// to size the table of probes in flight.
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
    fn max_in_flight(&self) -> usize {
        let per_timeout = self.timeout.as_nanos() / self.interval.as_nanos().max(1);
        (per_timeout as usize + 1) * 2
    }
}

/// Measured health, whatever the operator says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Up,
    Down,
}

/// Why a path changed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// `count` probes in a row were lost.
    ConsecutiveLost { count: u32 },
    /// `lost` of the last `window` probes were lost.
    WindowLoss { lost: u32, window: u32 },
    /// `count` replies in a row came back in time.
    ConsecutiveReplies { count: u32 },
    /// The operator disabled the path.
    Disabled,
    /// The operator enabled the path; it resumes its measured health.
    Enabled,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Reason::ConsecutiveLost { count } => write!(f, "{count} consecutive probes lost"),
            Reason::WindowLoss { lost, window } => {
                let percent =
                    (u64::from(lost) * 100 + u64::from(window) / 2) / u64::from(window.max(1));
                write!(f, "loss {percent}% over last {window} probes")
            }
            Reason::ConsecutiveReplies { count } => write!(f, "{count} consecutive replies"),
            Reason::Disabled => f.write_str("disabled by operator"),
            Reason::Enabled => f.write_str("enabled by operator"),
        }
    }
}

/// A change of a path's [`PathState`], for the log and for the table builder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Transition {
    #[serde(rename = "at_us", serialize_with = "micros")]
    pub at: Duration,
    pub from: PathState,
    pub to: PathState,
    pub reason: Reason,
}

impl fmt::Display for Transition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} -> {}: {}",
            state_name(self.from),
            state_name(self.to),
            self.reason
        )
    }
}

fn state_name(state: PathState) -> &'static str {
    match state {
        PathState::Up => "up",
        PathState::Down => "down",
        PathState::Disabled => "disabled",
    }
}

/// Probe and reply counts since the path was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ProbeCounters {
    /// Probes sent.
    pub sent: u64,
    /// Replies that came in time.
    pub received: u64,
    /// Probes lost: timed out, answered late, or pushed out of the in-flight table
    /// (re-used sequence number, prober sending far faster than `interval`).
    pub lost: u64,
    /// Of `lost`, replies that came after the timeout but before `tick` noticed.
    pub late: u64,
    /// Replies that matched no probe in flight: after `tick` declared it lost,
    /// duplicated, or never sent.
    pub unmatched: u64,
}

/// A point-in-time report of one path. Durations serialize as microseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthSnapshot {
    /// What the table builder uses.
    pub state: PathState,
    /// Measured health (also while disabled).
    pub health: Health,
    pub enabled: bool,
    #[serde(rename = "srtt_us", serialize_with = "micros_opt")]
    pub srtt: Option<Duration>,
    #[serde(rename = "rttvar_us", serialize_with = "micros_opt")]
    pub rttvar: Option<Duration>,
    #[serde(rename = "p50_us", serialize_with = "micros_opt")]
    pub p50: Option<Duration>,
    #[serde(rename = "p90_us", serialize_with = "micros_opt")]
    pub p90: Option<Duration>,
    #[serde(rename = "p99_us", serialize_with = "micros_opt")]
    pub p99: Option<Duration>,
    /// `window_lost / window_probes`, 0 before any probe's fate is known.
    pub loss: f64,
    pub window_lost: u32,
    pub window_probes: u32,
    pub in_flight: u32,
    #[serde(flatten)]
    pub counters: ProbeCounters,
    /// When `state` last changed (or the path was created).
    #[serde(rename = "last_change_us", serialize_with = "micros")]
    pub last_change: Duration,
}

fn micros<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_nanos() as f64 / 1000.0)
}

fn micros_opt<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => micros(d, s),
        None => s.serialize_none(),
    }
}

/// A fixed-capacity ring that keeps the last `capacity` values pushed.
#[derive(Debug, Clone)]
struct Ring<T> {
    slots: Vec<T>,
    capacity: usize,
    /// Next slot to write once full.
    next: usize,
}

impl<T: Copy> Ring<T> {
    fn new(capacity: usize) -> Self {
        Ring {
            slots: Vec::with_capacity(capacity),
            capacity,
            next: 0,
        }
    }

    /// Appends `value`; returns the value it pushed out, if the ring was full.
    fn push(&mut self, value: T) -> Option<T> {
        if self.slots.len() < self.capacity {
            self.slots.push(value);
            return None;
        }
        let old = std::mem::replace(&mut self.slots[self.next], value);
        self.next = (self.next + 1) % self.capacity;
        Some(old)
    }

    fn len(&self) -> usize {
        self.slots.len()
    }

    /// The values, in no particular order.
    fn values(&self) -> &[T] {
        &self.slots
    }
}

/// RFC 6298 smoothed RTT and RTT variation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RttEstimator {
    srtt: Duration,
    rttvar: Duration,
}

impl RttEstimator {
    /// First measurement: SRTT = R, RTTVAR = R/2 (RFC 6298 section 2.2).
    fn new(sample: Duration) -> Self {
        RttEstimator {
            srtt: sample,
            rttvar: sample / 2,
        }
    }

    /// RTTVAR = 3/4 RTTVAR + 1/4 |SRTT - R|, then SRTT = 7/8 SRTT + 1/8 R
    /// (section 2.3), in whole nanoseconds, rounding down.
    fn update(&mut self, sample: Duration) {
        let (srtt, rttvar, r) = (
            self.srtt.as_nanos(),
            self.rttvar.as_nanos(),
            sample.as_nanos(),
        );
        self.rttvar = duration_from_nanos((3 * rttvar + srtt.abs_diff(r)) / 4);
        self.srtt = duration_from_nanos((7 * srtt + r) / 8);
    }
}

fn duration_from_nanos(nanos: u128) -> Duration {
    const NANOS_PER_SEC: u128 = 1_000_000_000;
    let secs = u64::try_from(nanos / NANOS_PER_SEC).unwrap_or(u64::MAX);
    Duration::new(secs, (nanos % NANOS_PER_SEC) as u32)
}

/// A probe waiting for its reply.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    seq: u16,
    sent: Duration,
}

/// Health state machine of one path. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct PathHealth {
    config: HealthConfig,
    enabled: bool,
    health: Health,
    last_change: Duration,
    /// In send order; bounded by `max_in_flight`.
    in_flight: VecDeque<InFlight>,
    max_in_flight: usize,
    last_sent: Option<Duration>,
    /// `true` = lost, for the last `loss_window` probes whose fate is known.
    outcomes: Ring<bool>,
    window_lost: u32,
    consecutive_lost: u32,
    consecutive_replies: u32,
    rtt: Option<RttEstimator>,
    /// RTTs of the last `rtt_window` replies in time.
    rtts: Ring<Duration>,
    counters: ProbeCounters,
}

impl PathHealth {
    /// A new, enabled path, measured [`Health::Down`] until `up_after` replies.
    ///
    /// # Errors
    /// The [`HealthConfigError`] of an invalid `config`.
    pub fn new(config: HealthConfig, now: Duration) -> Result<Self, HealthConfigError> {
        config.validate()?;
        let max_in_flight = config.max_in_flight();
        Ok(PathHealth {
            enabled: true,
            health: Health::Down,
            last_change: now,
            in_flight: VecDeque::with_capacity(max_in_flight),
            max_in_flight,
            last_sent: None,
            outcomes: Ring::new(config.loss_window),
            window_lost: 0,
            consecutive_lost: 0,
            consecutive_replies: 0,
            rtt: None,
            rtts: Ring::new(config.rtt_window),
            counters: ProbeCounters::default(),
            config,
        })
    }

    /// Takes `Up` as the starting health of a path with no probe history: its
    /// last known state (the tables at start, e.g. from the state file after a
    /// restart), kept until probes overturn it by the usual thresholds, so a
    /// restarted POP does not fall back while every path re-earns its place.
    pub fn assume_up(&mut self, now: Duration) {
        if self.counters.sent == 0 {
            self.health = Health::Up;
            self.last_change = now;
        }
    }

    /// Records that probe `seq` was sent at `now`. Declares overdue probes lost
    /// first, as [`tick`](Self::tick) does.
    ///
    /// If `seq` is still in flight (the prober re-used it), or the in-flight table
    /// is full (the prober sends far faster than `interval`), the older probe is
    /// counted lost: its reply could no longer be told apart or kept.
    pub fn probe_sent(&mut self, seq: u16, now: Duration) -> Option<Transition> {
        let mut transition = self.expire(now);
        self.counters.sent += 1;
        self.last_sent = Some(now);
        if let Some(i) = self.in_flight.iter().position(|p| p.seq == seq) {
            self.in_flight.remove(i);
            transition = transition.or(self.record_lost(now));
        }
        if self.in_flight.len() >= self.max_in_flight {
            self.in_flight.pop_front();
            transition = transition.or(self.record_lost(now));
        }
        self.in_flight.push_back(InFlight { seq, sent: now });
        transition
    }

    /// Records the reply to probe `seq`, received at `now`.
    ///
    /// A reply later than `timeout` counts the probe as lost (and in
    /// [`ProbeCounters::late`]); a reply that matches no probe in flight (already
    /// declared lost, duplicated, unknown) changes nothing but
    /// [`ProbeCounters::unmatched`]. So every probe is counted once. Other
    /// overdue probes are left to [`tick`](Self::tick), so that one call makes
    /// at most one transition.
    pub fn probe_reply(&mut self, seq: u16, now: Duration) -> Option<Transition> {
        let Some(i) = self.in_flight.iter().position(|p| p.seq == seq) else {
            self.counters.unmatched += 1;
            return None;
        };
        let probe = self.in_flight.remove(i)?;
        // A clock that went backwards gives 0, not a panic.
        let rtt = now.saturating_sub(probe.sent);
        if rtt > self.config.timeout {
            self.counters.late += 1;
            return self.record_lost(now);
        }
        self.counters.received += 1;
        match &mut self.rtt {
            Some(estimator) => estimator.update(rtt),
            None => self.rtt = Some(RttEstimator::new(rtt)),
        }
        self.rtts.push(rtt);
        self.record(false, now)
    }

    /// Declares every probe older than `timeout` lost.
    pub fn tick(&mut self, now: Duration) -> Option<Transition> {
        self.expire(now)
    }

    /// The operator's switch. Disabling keeps measuring; enabling resumes the
    /// measured health.
    pub fn set_enabled(&mut self, enabled: bool, now: Duration) -> Option<Transition> {
        if enabled == self.enabled {
            return None;
        }
        let from = self.state();
        self.enabled = enabled;
        let reason = if enabled {
            Reason::Enabled
        } else {
            Reason::Disabled
        };
        Some(self.changed(from, reason, now))
    }

    /// What the table builder should use for this path.
    pub fn state(&self) -> PathState {
        match (self.enabled, self.health) {
            (false, _) => PathState::Disabled,
            (true, Health::Up) => PathState::Up,
            (true, Health::Down) => PathState::Down,
        }
    }

    /// Measured health, whatever the operator's switch.
    pub fn health(&self) -> Health {
        self.health
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Smoothed RTT, once a reply has come in time.
    pub fn srtt(&self) -> Option<Duration> {
        self.rtt.map(|e| e.srtt)
    }

    /// RTT variation, once a reply has come in time.
    pub fn rttvar(&self) -> Option<Duration> {
        self.rtt.map(|e| e.rttvar)
    }

    pub fn counters(&self) -> &ProbeCounters {
        &self.counters
    }

    pub fn config(&self) -> &HealthConfig {
        &self.config
    }

    /// When the oldest probe in flight becomes overdue: the latest time to call
    /// [`tick`](Self::tick) for losses to be noticed on time. `None` when nothing
    /// is in flight.
    pub fn next_timeout(&self) -> Option<Duration> {
        self.in_flight
            .iter()
            .map(|p| p.sent.saturating_add(self.config.timeout))
            .min()
    }

    /// When the next probe is due: `interval` after the last one, or `now` if none
    /// was sent yet.
    pub fn next_probe_at(&self, now: Duration) -> Duration {
        self.last_sent
            .map_or(now, |t| t.saturating_add(self.config.interval))
    }

    /// A report of the path. Allocates (percentiles sort a copy of the RTT ring):
    /// call it at reporting rate, not per probe.
    pub fn snapshot(&self) -> HealthSnapshot {
        let mut sorted = self.rtts.values().to_vec();
        sorted.sort_unstable();
        let window_probes = self.outcomes.len() as u32;
        HealthSnapshot {
            state: self.state(),
            health: self.health,
            enabled: self.enabled,
            srtt: self.srtt(),
            rttvar: self.rttvar(),
            p50: percentile(&sorted, 50),
            p90: percentile(&sorted, 90),
            p99: percentile(&sorted, 99),
            loss: if window_probes == 0 {
                0.0
            } else {
                f64::from(self.window_lost) / f64::from(window_probes)
            },
            window_lost: self.window_lost,
            window_probes,
            in_flight: self.in_flight.len() as u32,
            counters: self.counters,
            last_change: self.last_change,
        }
    }

    fn expire(&mut self, now: Duration) -> Option<Transition> {
        let timeout = self.config.timeout;
        let before = self.in_flight.len();
        self.in_flight
            .retain(|p| now.saturating_sub(p.sent) <= timeout);
        let mut transition = None;
        for _ in self.in_flight.len()..before {
            // Losses only move towards down: at most one transition.
            transition = transition.or(self.record_lost(now));
        }
        transition
    }

    fn record_lost(&mut self, now: Duration) -> Option<Transition> {
        self.counters.lost += 1;
        self.record(true, now)
    }

    /// Adds one probe's fate to the window and the streaks, then applies the
    /// thresholds.
    fn record(&mut self, lost: bool, now: Duration) -> Option<Transition> {
        if self.outcomes.push(lost) == Some(true) {
            self.window_lost -= 1;
        }
        if lost {
            self.window_lost += 1;
            self.consecutive_lost = self.consecutive_lost.saturating_add(1);
            self.consecutive_replies = 0;
        } else {
            self.consecutive_replies = self.consecutive_replies.saturating_add(1);
            self.consecutive_lost = 0;
        }
        let c = &self.config;
        let (to, reason) = match self.health {
            Health::Up if self.consecutive_lost >= c.down_after => (
                Health::Down,
                Reason::ConsecutiveLost {
                    count: self.consecutive_lost,
                },
            ),
            Health::Up if self.window_lost >= c.down_loss => (
                Health::Down,
                Reason::WindowLoss {
                    lost: self.window_lost,
                    window: self.outcomes.len() as u32,
                },
            ),
            Health::Down
                if self.consecutive_replies >= c.up_after && self.window_lost < c.down_loss =>
            {
                (
                    Health::Up,
                    Reason::ConsecutiveReplies {
                        count: self.consecutive_replies,
                    },
                )
            }
            _ => return None,
        };
        let from = self.state();
        self.health = to;
        if !self.enabled {
            // Measured, but the state the builder sees stays Disabled.
            return None;
        }
        Some(self.changed(from, reason, now))
    }

    fn changed(&mut self, from: PathState, reason: Reason, now: Duration) -> Transition {
        self.last_change = now;
        Transition {
            at: now,
            from,
            to: self.state(),
            reason,
        }
    }
}

/// Nearest-rank percentile `p` (1..=100) of `sorted`: the smallest value with at
/// least `p` % of the values at or below it.
fn percentile(sorted: &[Duration], p: usize) -> Option<Duration> {
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

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
/// Re-run it whenever a [`Transition`] happens and at reporting rate (RTTs move).
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

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Interval 10 ms, timeout 50 ms, loss window 10, down after 3 in a row or 4
    /// in the window, up after 3 replies.
    fn config() -> HealthConfig {
        HealthConfig {
            interval: ms(10),
            timeout: ms(50),
            rtt_window: 100,
            loss_window: 10,
            down_after: 3,
            down_loss: 4,
            up_after: 3,
        }
    }

    /// A path and the fake clock and sequence numbers that drive it.
    struct Driver {
        path: PathHealth,
        now: Duration,
        seq: u16,
        transitions: Vec<Transition>,
    }

    impl Driver {
        fn new(config: HealthConfig) -> Self {
            Driver {
                path: PathHealth::new(config, Duration::ZERO).unwrap(),
                now: Duration::ZERO,
                seq: 0,
                transitions: Vec::new(),
            }
        }

        fn note(&mut self, t: Option<Transition>) -> Option<Transition> {
            self.transitions.extend(t);
            t
        }

        /// One probe answered after `rtt`, then the clock moves to the next
        /// interval. Returns the transition, if any.
        fn reply(&mut self, rtt: Duration) -> Option<Transition> {
            let seq = self.seq;
            self.seq = self.seq.wrapping_add(1);
            let mut t = self.path.probe_sent(seq, self.now);
            t = t.or(self.path.probe_reply(seq, self.now + rtt));
            self.now += self.path.config().interval;
            self.note(t)
        }

        /// One probe that is never answered; ticks past its timeout.
        fn lose(&mut self) -> Option<Transition> {
            let seq = self.seq;
            self.seq = self.seq.wrapping_add(1);
            let sent = self.now;
            let mut t = self.path.probe_sent(seq, sent);
            let timeout = self.path.config().timeout;
            t = t.or(self.path.tick(sent + timeout + Duration::from_nanos(1)));
            self.now = sent + timeout + self.path.config().interval;
            self.note(t)
        }

        fn up(config: HealthConfig) -> Self {
            let mut d = Driver::new(config);
            for _ in 0..d.path.config().up_after {
                d.reply(ms(5));
            }
            assert_eq!(d.path.state(), PathState::Up);
            d.transitions.clear();
            d
        }
    }

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

    #[test]
    fn starts_down_and_comes_up_after_exactly_up_after_replies() {
        let mut d = Driver::new(config());
        assert_eq!(d.path.state(), PathState::Down);
        assert_eq!(d.reply(ms(5)), None);
        assert_eq!(d.reply(ms(5)), None);
        let t = d.reply(ms(5)).expect("third reply brings it up");
        assert_eq!((t.from, t.to), (PathState::Down, PathState::Up));
        assert_eq!(t.reason, Reason::ConsecutiveReplies { count: 3 });
        assert_eq!(t.to_string(), "down -> up: 3 consecutive replies");
        assert_eq!(t.at, ms(20) + ms(5));
        assert_eq!(d.path.snapshot().last_change, ms(25));
    }

    #[test]
    fn goes_down_after_exactly_down_after_losses() {
        let mut d = Driver::up(config());
        assert_eq!(d.lose(), None);
        assert_eq!(d.lose(), None);
        assert_eq!(d.path.state(), PathState::Up);
        let t = d.lose().expect("third loss puts it down");
        assert_eq!((t.from, t.to), (PathState::Up, PathState::Down));
        assert_eq!(t.reason, Reason::ConsecutiveLost { count: 3 });
        assert_eq!(t.to_string(), "up -> down: 3 consecutive probes lost");
        // More losses change nothing.
        assert_eq!(d.lose(), None);
        assert_eq!(d.transitions.len(), 1);
        let s = d.path.snapshot();
        assert_eq!(
            (s.counters.sent, s.counters.received, s.counters.lost),
            (7, 3, 4)
        );
    }

    #[test]
    fn window_loss_puts_a_path_down_without_a_streak() {
        let mut d = Driver::up(config());
        // lost, ok, lost, ok, ...: never two in a row; the 4th loss in the
        // window of 10 does it.
        let mut t = None;
        for _ in 0..4 {
            assert_eq!(t, None);
            t = d.lose();
            if t.is_none() {
                d.reply(ms(5));
            }
        }
        let t = t.expect("4 of the last 10 lost");
        // Window: 3 replies from coming up, then l,r,l,r,l,r,l.
        assert_eq!(
            t.reason,
            Reason::WindowLoss {
                lost: 4,
                window: 10
            }
        );
        assert_eq!(t.to_string(), "up -> down: loss 40% over last 10 probes");
    }

    #[test]
    fn loss_below_thresholds_does_not_flap() {
        let mut d = Driver::up(config());
        // One probe in four lost: 25 % < 40 %, never two in a row.
        for i in 0..400 {
            if i % 4 == 0 {
                d.lose();
            } else {
                d.reply(ms(5));
            }
        }
        assert_eq!(d.transitions, vec![]);
        assert_eq!(d.path.state(), PathState::Up);
        let s = d.path.snapshot();
        assert_eq!((s.window_lost, s.window_probes), (2, 10));
        assert!((s.loss - 0.2).abs() < 1e-9);
    }

    #[test]
    fn a_down_path_with_intermittent_loss_stays_down() {
        let mut d = Driver::new(config());
        // Two replies, one loss, forever: never three replies in a row.
        for i in 0..300 {
            if i % 3 == 2 {
                d.lose();
            } else {
                d.reply(ms(5));
            }
        }
        assert_eq!(d.transitions, vec![]);
        assert_eq!(d.path.state(), PathState::Down);
    }

    #[test]
    fn up_waits_until_window_loss_is_below_the_threshold() {
        let mut d = Driver::up(config());
        for _ in 0..6 {
            d.lose();
        }
        assert_eq!(d.path.state(), PathState::Down);
        // Window: 1 reply + 6 lost + replies. Up needs 3 in a row *and* fewer
        // than 4 lost in the last 10: the 7th reply pushes the 3rd loss out.
        for n in 1..=7 {
            let t = d.reply(ms(5));
            if n < 7 {
                assert_eq!(t, None, "reply {n}");
            } else {
                assert_eq!(t.unwrap().reason, Reason::ConsecutiveReplies { count: 7 });
            }
        }
        assert_eq!(d.path.snapshot().window_lost, 3);
    }

    #[test]
    fn late_reply_is_lost_once() {
        let mut d = Driver::up(config());
        let t0 = d.now;
        d.path.probe_sent(100, t0);
        // Reply after the timeout, before any tick: lost, counted late.
        d.path.probe_reply(100, t0 + ms(51));
        let c = *d.path.counters();
        assert_eq!((c.lost, c.late, c.unmatched), (1, 1, 0));
        // Nothing left to expire, and a duplicate of the reply is unmatched.
        d.path.tick(t0 + ms(200));
        d.path.probe_reply(100, t0 + ms(201));
        let c = *d.path.counters();
        assert_eq!((c.lost, c.late, c.unmatched), (1, 1, 1));

        // Tick first, reply later: lost by the tick, the reply is unmatched.
        d.path.probe_sent(101, t0 + ms(300));
        d.path.tick(t0 + ms(351));
        d.path.probe_reply(101, t0 + ms(352));
        let c = *d.path.counters();
        assert_eq!((c.lost, c.late, c.unmatched), (2, 1, 2));

        // Exactly at the timeout is still in time.
        d.path.probe_sent(102, t0 + ms(400));
        d.path.tick(t0 + ms(450));
        d.path.probe_reply(102, t0 + ms(450));
        let c = *d.path.counters();
        assert_eq!((c.lost, c.received), (2, 4));
        assert_eq!(d.path.snapshot().window_lost, 2);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut d = Driver::new(config());
        d.seq = u16::MAX - 1;
        for _ in 0..4 {
            d.reply(ms(7));
        }
        assert_eq!(d.seq, 2);
        assert_eq!(d.path.counters().received, 4);
        assert_eq!(d.path.state(), PathState::Up);
        // In flight across the wrap: each reply matches its own probe.
        let t = d.now;
        d.path.probe_sent(u16::MAX, t);
        d.path.probe_sent(0, t + ms(10));
        d.path.probe_reply(0, t + ms(12)); // 2 ms
        d.path.probe_reply(u16::MAX, t + ms(13)); // 13 ms
        assert_eq!(d.path.counters().unmatched, 0);
        let mut rtts = d.path.rtts.values().to_vec();
        rtts.sort_unstable();
        assert_eq!(rtts, vec![ms(2), ms(7), ms(7), ms(7), ms(7), ms(13)]);
    }

    #[test]
    fn reused_sequence_number_loses_the_older_probe() {
        let mut d = Driver::up(config());
        let t = d.now;
        d.path.probe_sent(9, t);
        d.path.probe_sent(9, t + ms(10));
        d.path.probe_reply(9, t + ms(15));
        let c = *d.path.counters();
        assert_eq!((c.lost, c.received), (1, 4));
        assert!(d.path.srtt().is_some());
        assert_eq!(d.path.snapshot().in_flight, 0);
    }

    #[test]
    fn in_flight_table_is_bounded() {
        let mut d = Driver::up(config());
        // timeout 50 / interval 10 -> room for 12; send 100 at once.
        for seq in 0..100 {
            d.path.probe_sent(seq, d.now);
        }
        let s = d.path.snapshot();
        assert_eq!(s.in_flight, 12);
        assert_eq!(s.counters.lost, 88);
        assert_eq!(d.path.state(), PathState::Down);
    }

    #[test]
    fn rtt_estimator_follows_rfc_6298() {
        let mut d = Driver::new(config());
        assert_eq!(d.path.srtt(), None);
        d.reply(ms(100 - 90)); // 10 ms
        assert_eq!(d.path.srtt(), Some(ms(10)));
        assert_eq!(d.path.rttvar(), Some(ms(5)));
        d.reply(ms(20));
        // RTTVAR = 3/4 * 5 + 1/4 * |10 - 20| = 6.25; SRTT = 7/8 * 10 + 1/8 * 20 = 11.25
        assert_eq!(d.path.rttvar(), Some(Duration::from_micros(6_250)));
        assert_eq!(d.path.srtt(), Some(Duration::from_micros(11_250)));
        d.reply(ms(3));
        // RTTVAR = 3/4 * 6.25 + 1/4 * 8.25 = 6.75; SRTT = 7/8 * 11.25 + 3/8 = 10.21875
        assert_eq!(d.path.rttvar(), Some(Duration::from_micros(6_750)));
        assert_eq!(d.path.srtt(), Some(Duration::from_nanos(10_218_750)));
        // Lost probes do not feed the estimator.
        d.lose();
        assert_eq!(d.path.srtt(), Some(Duration::from_nanos(10_218_750)));
    }

    #[test]
    fn percentiles_over_the_window() {
        let mut c = config();
        c.timeout = ms(200);
        let mut d = Driver::new(c);
        let empty = d.path.snapshot();
        assert_eq!(
            (empty.p50, empty.p90, empty.p99, empty.srtt),
            (None, None, None, None)
        );
        // 1..=100 ms in a shuffled order.
        for i in 0..100u64 {
            d.reply(ms((i * 37) % 100 + 1));
        }
        let s = d.path.snapshot();
        assert_eq!(
            (s.p50, s.p90, s.p99),
            (Some(ms(50)), Some(ms(90)), Some(ms(99)))
        );
        // 100 more, all 150 ms: the window (100) holds only these.
        for _ in 0..100 {
            d.reply(ms(150));
        }
        let s = d.path.snapshot();
        assert_eq!((s.p50, s.p99), (Some(ms(150)), Some(ms(150))));

        // Small window: the last 10 of 1..=20 are 11..=20.
        let mut c = config();
        c.rtt_window = 10;
        let mut d = Driver::new(c);
        for i in 1..=20 {
            d.reply(ms(i));
        }
        let s = d.path.snapshot();
        assert_eq!(
            (s.p50, s.p90, s.p99),
            (Some(ms(15)), Some(ms(19)), Some(ms(20)))
        );
        assert_eq!(percentile(&[ms(4)], 99), Some(ms(4)));
    }

    #[test]
    fn disabled_path_keeps_measuring_and_resumes_its_health() {
        let mut d = Driver::up(config());
        let t = d.path.set_enabled(false, d.now).unwrap();
        assert_eq!(
            (t.from, t.to, t.reason),
            (PathState::Up, PathState::Disabled, Reason::Disabled)
        );
        assert_eq!(d.path.set_enabled(false, d.now), None);
        for _ in 0..5 {
            // Measured down, but no transition: the builder's state is unchanged.
            assert_eq!(d.lose(), None);
        }
        assert_eq!(d.path.state(), PathState::Disabled);
        assert_eq!(d.path.health(), Health::Down);
        let t = d.path.set_enabled(true, d.now).unwrap();
        assert_eq!(
            (t.from, t.to, t.reason),
            (PathState::Disabled, PathState::Down, Reason::Enabled)
        );
        assert_eq!(t.to_string(), "disabled -> down: enabled by operator");
        assert_eq!(d.path.snapshot().last_change, d.now);
    }

    #[test]
    fn timers_for_the_driver() {
        let mut p = PathHealth::new(config(), ms(1000)).unwrap();
        assert_eq!(p.next_probe_at(ms(1000)), ms(1000));
        assert_eq!(p.next_timeout(), None);
        p.probe_sent(1, ms(1000));
        p.probe_sent(2, ms(1010));
        assert_eq!(p.next_probe_at(ms(1012)), ms(1020));
        assert_eq!(p.next_timeout(), Some(ms(1050)));
        p.probe_reply(1, ms(1011));
        assert_eq!(p.next_timeout(), Some(ms(1060)));
    }

    #[test]
    fn clock_going_backwards_does_not_panic() {
        let mut p = PathHealth::new(config(), ms(1000)).unwrap();
        p.probe_sent(1, ms(1000));
        p.probe_reply(1, ms(900));
        assert_eq!(p.srtt(), Some(Duration::ZERO));
        p.probe_sent(2, ms(1000));
        assert_eq!(p.tick(ms(0)), None);
        assert_eq!(p.snapshot().in_flight, 1);
    }

    #[test]
    fn snapshot_serializes_with_units() {
        let mut d = Driver::up(config());
        d.lose();
        let json = serde_json::to_value(d.path.snapshot()).unwrap();
        assert_eq!(json["state"], "up");
        assert_eq!(json["health"], "up");
        assert_eq!(json["enabled"], true);
        assert_eq!(json["srtt_us"], 5000.0);
        assert_eq!(json["p99_us"], 5000.0);
        assert_eq!(json["sent"], 4);
        assert_eq!(json["received"], 3);
        assert_eq!(json["lost"], 1);
        assert_eq!(json["window_lost"], 1);
        assert_eq!(json["loss"], 0.25);
        assert_eq!(json["last_change_us"], 25_000.0);
        let fresh = PathHealth::new(config(), Duration::ZERO).unwrap();
        let json = serde_json::to_value(fresh.snapshot()).unwrap();
        assert!(json["srtt_us"].is_null());
        let t = Transition {
            at: ms(1),
            from: PathState::Up,
            to: PathState::Down,
            reason: Reason::WindowLoss {
                lost: 8,
                window: 20,
            },
        };
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            r#"{"at_us":1000.0,"from":"up","to":"down","reason":{"kind":"window_loss","lost":8,"window":20}}"#
        );
    }

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
