//! Which EIPs get series of their own: none, all, or the top N by packets in,
//! so that a POP with a million EIPs does not put millions of series in every
//! scrape.

use std::fmt;
use std::str::FromStr;

/// Default number of EIPs shown by `top:N`.
pub const DEFAULT_TOP_EIPS: usize = 100;

/// Which EIPs have `eipd_eip_*` series (`--metrics-eips`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EipSeries {
    /// No per-EIP series.
    None,
    /// Every EIP of the tables (4 series each).
    All,
    /// The `N` EIPs with the most packets in since the table version took
    /// effect (ties: table order).
    Top(usize),
}

impl Default for EipSeries {
    fn default() -> Self {
        EipSeries::Top(DEFAULT_TOP_EIPS)
    }
}

/// A `--metrics-eips` value that is not `none`, `all` or `top:N`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?}: expected none, all or top:N (N a whole number, e.g. top:100)")]
pub struct EipSeriesError {
    pub value: String,
}

impl FromStr for EipSeries {
    type Err = EipSeriesError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || EipSeriesError {
            value: s.to_string(),
        };
        match s {
            "none" => Ok(EipSeries::None),
            "all" => Ok(EipSeries::All),
            _ => {
                let n = s.strip_prefix("top:").ok_or_else(err)?;
                n.parse().map(EipSeries::Top).map_err(|_| err())
            }
        }
    }
}

impl fmt::Display for EipSeries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EipSeries::None => f.write_str("none"),
            EipSeries::All => f.write_str("all"),
            EipSeries::Top(n) => write!(f, "top:{n}"),
        }
    }
}

impl EipSeries {
    /// Indices of the EIPs to show among `slots`, given each one's packets
    /// in (`packets_in(slot)`), in table order. `Top(n)` costs one pass over
    /// the slots and a partial sort of `n` candidates; it allocates one index
    /// per EIP (at scrape rate).
    pub fn select(self, slots: usize, packets_in: impl Fn(usize) -> u64) -> Vec<usize> {
        match self {
            EipSeries::None => Vec::new(),
            EipSeries::All => (0..slots).collect(),
            EipSeries::Top(n) => {
                let mut order: Vec<usize> = (0..slots).collect();
                let busier =
                    |a: &usize, b: &usize| packets_in(*b).cmp(&packets_in(*a)).then(a.cmp(b));
                if n < order.len() {
                    if n > 0 {
                        order.select_nth_unstable_by(n - 1, busier);
                    }
                    order.truncate(n);
                }
                order.sort_unstable_by(busier);
                order
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eip_dataplane::counters::Traffic;

    fn traffic(packets: &[u64]) -> Vec<Traffic> {
        packets
            .iter()
            .map(|&packets| Traffic { packets, bytes: 0 })
            .collect()
    }

    #[test]
    fn parses_and_prints() {
        for (text, want) in [
            ("none", EipSeries::None),
            ("all", EipSeries::All),
            ("top:5", EipSeries::Top(5)),
            ("top:0", EipSeries::Top(0)),
        ] {
            assert_eq!(text.parse::<EipSeries>(), Ok(want));
            assert_eq!(want.to_string(), text);
        }
        for bad in ["", "top", "top:", "top:-1", "top:x", "ALL", "5"] {
            let e = bad.parse::<EipSeries>().unwrap_err();
            assert!(e.to_string().contains("none, all or top:N"), "{e}");
        }
        assert_eq!(EipSeries::default(), EipSeries::Top(100));
    }

    #[test]
    fn selects_the_busiest_in_order_ties_by_table_order() {
        let t = traffic(&[5, 0, 9, 5, 1, 9]);
        assert_eq!(
            EipSeries::Top(3).select(t.len(), |i| t[i].packets),
            vec![2, 5, 0]
        );
        assert_eq!(
            EipSeries::Top(4).select(t.len(), |i| t[i].packets),
            vec![2, 5, 0, 3]
        );
        assert_eq!(
            EipSeries::Top(10).select(t.len(), |i| t[i].packets),
            vec![2, 5, 0, 3, 4, 1]
        );
        assert_eq!(
            EipSeries::Top(0).select(t.len(), |i| t[i].packets),
            Vec::<usize>::new()
        );
        assert_eq!(
            EipSeries::All.select(t.len(), |i| t[i].packets),
            vec![0, 1, 2, 3, 4, 5]
        );
        assert_eq!(
            EipSeries::None.select(t.len(), |i| t[i].packets),
            Vec::<usize>::new()
        );
        assert_eq!(EipSeries::Top(3).select(0, |_| 0), Vec::<usize>::new());
    }
}
