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

mod config;
mod damping;
mod refusal;
mod ring;
mod rtt;
mod selection;
#[cfg(test)]
mod testing;

pub use config::{HealthConfig, HealthConfigError, MAX_TIMEOUT, MAX_WINDOW, MIN_INTERVAL};
pub use selection::{select, Candidate, RttTolerance, Selection, SelectionMode};

use damping::Damper;
use eip_dataplane::tables::PathState;
use rtt::RttStats;
use serde::Serialize;
use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

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
    #[serde(rename = "at_us", serialize_with = "crate::units::micros")]
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
    #[serde(rename = "srtt_us", serialize_with = "crate::units::micros_opt")]
    pub srtt: Option<Duration>,
    #[serde(rename = "rttvar_us", serialize_with = "crate::units::micros_opt")]
    pub rttvar: Option<Duration>,
    #[serde(rename = "p50_us", serialize_with = "crate::units::micros_opt")]
    pub p50: Option<Duration>,
    #[serde(rename = "p90_us", serialize_with = "crate::units::micros_opt")]
    pub p90: Option<Duration>,
    #[serde(rename = "p99_us", serialize_with = "crate::units::micros_opt")]
    pub p99: Option<Duration>,
    /// `window_lost / window_probes`, 0 before any probe's fate is known.
    pub loss: f64,
    pub window_lost: u32,
    pub window_probes: u32,
    pub in_flight: u32,
    #[serde(flatten)]
    pub counters: ProbeCounters,
    /// Every RTT in time since the path was created (for the metrics).
    #[serde(skip)]
    pub rtt_histogram: crate::metrics::RttHistogram,
    /// When `state` last changed (or the path was created).
    #[serde(rename = "last_change_us", serialize_with = "crate::units::micros")]
    pub last_change: Duration,
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
    damper: Damper,
    rtt: RttStats,
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
            damper: Damper::new(config.loss_window),
            rtt: RttStats::new(config.rtt_window),
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
        self.rtt.sample(rtt);
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
        self.rtt.srtt()
    }

    /// RTT variation, once a reply has come in time.
    pub fn rttvar(&self) -> Option<Duration> {
        self.rtt.rttvar()
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
        let [p50, p90, p99] = self.rtt.percentiles();
        let window_lost = self.damper.window_lost();
        let window_probes = self.damper.window_probes();
        HealthSnapshot {
            state: self.state(),
            health: self.health,
            enabled: self.enabled,
            srtt: self.srtt(),
            rttvar: self.rttvar(),
            p50,
            p90,
            p99,
            loss: if window_probes == 0 {
                0.0
            } else {
                f64::from(window_lost) / f64::from(window_probes)
            },
            window_lost,
            window_probes,
            in_flight: self.in_flight.len() as u32,
            counters: self.counters,
            rtt_histogram: *self.rtt.histogram(),
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

    /// Adds one probe's fate to the damper and applies its verdict.
    fn record(&mut self, lost: bool, now: Duration) -> Option<Transition> {
        let (to, reason) = self.damper.record(lost, self.health, &self.config)?;
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

#[cfg(test)]
mod tests {
    use super::testing::{config, ms, Driver};
    use super::*;

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
        let mut rtts = d.path.rtt.window().to_vec();
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
}
