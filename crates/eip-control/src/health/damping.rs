//! Flap damping, glb-director's "count before failed" and "count before
//! healthy" plus a loss window: a path that loses a probe now and then neither
//! goes down nor, once down, comes back until it is steadily good.

use super::ring::Ring;
use super::{Health, HealthConfig, Reason};

/// The fate of a path's recent probes, against which the thresholds are
/// applied.
#[derive(Debug, Clone)]
pub(super) struct Damper {
    /// `true` = lost, for the last `loss_window` probes whose fate is known.
    outcomes: Ring<bool>,
    window_lost: u32,
    consecutive_lost: u32,
    consecutive_replies: u32,
}

impl Damper {
    pub(super) fn new(loss_window: usize) -> Self {
        Damper {
            outcomes: Ring::new(loss_window),
            window_lost: 0,
            consecutive_lost: 0,
            consecutive_replies: 0,
        }
    }

    /// Adds one probe's fate to the window and the streaks, then applies the
    /// thresholds of `c` to a path measured `health`: the health it changes
    /// to, and why.
    pub(super) fn record(
        &mut self,
        lost: bool,
        health: Health,
        c: &HealthConfig,
    ) -> Option<(Health, Reason)> {
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
        match health {
            Health::Up if self.consecutive_lost >= c.down_after => Some((
                Health::Down,
                Reason::ConsecutiveLost {
                    count: self.consecutive_lost,
                },
            )),
            Health::Up if self.window_lost >= c.down_loss => Some((
                Health::Down,
                Reason::WindowLoss {
                    lost: self.window_lost,
                    window: self.outcomes.len() as u32,
                },
            )),
            Health::Down
                if self.consecutive_replies >= c.up_after && self.window_lost < c.down_loss =>
            {
                Some((
                    Health::Up,
                    Reason::ConsecutiveReplies {
                        count: self.consecutive_replies,
                    },
                ))
            }
            _ => None,
        }
    }

    /// Lost probes in the window.
    pub(super) fn window_lost(&self) -> u32 {
        self.window_lost
    }

    /// Probes in the window: those whose fate is known, up to `loss_window`.
    pub(super) fn window_probes(&self) -> u32 {
        self.outcomes.len() as u32
    }
}

#[cfg(test)]
mod tests {
    use crate::health::testing::{config, ms, Driver};
    use crate::health::Reason;
    use eip_dataplane::tables::PathState;

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
}
