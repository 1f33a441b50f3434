//! A probe answered with a refusal (a TCP RST to a backend check): a loss
//! known at once rather than at the probe's timeout.

use super::{PathHealth, Transition};
use std::time::Duration;

impl PathHealth {
    /// Records that probe `seq` was refused at `now`: counted lost at once. A
    /// refusal that matches no probe in flight counts as unmatched, like a
    /// reply.
    pub fn probe_failed(&mut self, seq: u16, now: Duration) -> Option<Transition> {
        let Some(i) = self.in_flight.iter().position(|p| p.seq == seq) else {
            self.counters.unmatched += 1;
            return None;
        };
        self.in_flight.remove(i);
        self.record_lost(now)
    }
}
