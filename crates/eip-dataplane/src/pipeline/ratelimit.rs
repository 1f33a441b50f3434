//! Token bucket for ICMP errors this POP originates (RFC 1812 §4.3.2.8: a router
//! must be able to limit the rate of ICMP errors it sends), driven by the caller's clock.

use super::Timestamp;

/// Token bucket with a fixed rate and burst.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    per_second: u64,
    burst: u64,
    tokens: u64,
    last: u64,
}

impl TokenBucket {
    /// `per_second` tokens refill each second, up to `burst`.
    pub fn new(per_second: u64, burst: u64) -> Self {
        TokenBucket {
            per_second,
            burst,
            tokens: burst,
            last: 0,
        }
    }

    /// Takes one token if there is one.
    #[inline]
    pub fn take(&mut self, now: Timestamp) -> bool {
        if self.per_second > 0 && now.0 > self.last {
            let interval = 1_000_000_000 / self.per_second;
            let earned = (now.0 - self.last) / interval.max(1);
            if earned > 0 {
                self.tokens = (self.tokens + earned).min(self.burst);
                self.last += earned * interval;
            }
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refills_at_the_rate_and_caps_at_burst() {
        let mut b = TokenBucket::new(10, 2);
        let t0 = Timestamp(1_000_000_000);
        assert!(b.take(t0));
        assert!(b.take(t0));
        assert!(!b.take(t0));
        assert!(b.take(Timestamp(t0.0 + 100_000_000)));
        assert!(!b.take(Timestamp(t0.0 + 100_000_000)));
        let later = Timestamp(t0.0 + 10_000_000_000);
        assert!(b.take(later) && b.take(later) && !b.take(later));
    }
}
