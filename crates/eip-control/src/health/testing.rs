//! A fake clock and probe sequence to drive a [`PathHealth`] in tests, shared
//! by the tests of each part of the state machine.

use super::{HealthConfig, PathHealth, Transition};
use eip_dataplane::tables::PathState;
use std::time::Duration;

pub(super) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Interval 10 ms, timeout 50 ms, loss window 10, down after 3 in a row or 4
/// in the window, up after 3 replies.
pub(super) fn config() -> HealthConfig {
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
pub(super) struct Driver {
    pub(super) path: PathHealth,
    pub(super) now: Duration,
    pub(super) seq: u16,
    pub(super) transitions: Vec<Transition>,
}

impl Driver {
    pub(super) fn new(config: HealthConfig) -> Self {
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
    pub(super) fn reply(&mut self, rtt: Duration) -> Option<Transition> {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        let mut t = self.path.probe_sent(seq, self.now);
        t = t.or(self.path.probe_reply(seq, self.now + rtt));
        self.now += self.path.config().interval;
        self.note(t)
    }

    /// One probe that is never answered; ticks past its timeout.
    pub(super) fn lose(&mut self) -> Option<Transition> {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        let sent = self.now;
        let mut t = self.path.probe_sent(seq, sent);
        let timeout = self.path.config().timeout;
        t = t.or(self.path.tick(sent + timeout + Duration::from_nanos(1)));
        self.now = sent + timeout + self.path.config().interval;
        self.note(t)
    }

    pub(super) fn up(config: HealthConfig) -> Self {
        let mut d = Driver::new(config);
        for _ in 0..d.path.config().up_after {
            d.reply(ms(5));
        }
        assert_eq!(d.path.state(), PathState::Up);
        d.transitions.clear();
        d
    }
}
