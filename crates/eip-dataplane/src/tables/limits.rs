//! Per-EIP rate limits: what the operator writes (`limits = { in_bps = "100Mbit" }`
//! on an EIP, `[limits]` for the POP's default) and what a snapshot holds.
//!
//! Each of the four caps is resolved on its own: an EIP's own value if it gives
//! one (`0` = no cap, even when the POP has a default), else the POP's default,
//! else no cap. The default lives in the snapshot's small parts and is resolved
//! per packet, so that changing it never rebuilds the EIPs.

use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

/// Caps of one EIP or of the POP default. Absent fields inherit (see module doc).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    /// Bits per second toward the EIP (client -> backend), IP packets counted whole.
    #[serde(
        default,
        deserialize_with = "bits",
        skip_serializing_if = "Option::is_none"
    )]
    pub in_bps: Option<u64>,
    /// Packets per second toward the EIP.
    #[serde(
        default,
        deserialize_with = "packets",
        skip_serializing_if = "Option::is_none"
    )]
    pub in_pps: Option<u64>,
    /// Bits per second from the EIP (returns, after decapsulation).
    #[serde(
        default,
        deserialize_with = "bits",
        skip_serializing_if = "Option::is_none"
    )]
    pub out_bps: Option<u64>,
    /// Packets per second from the EIP.
    #[serde(
        default,
        deserialize_with = "packets",
        skip_serializing_if = "Option::is_none"
    )]
    pub out_pps: Option<u64>,
}

impl LimitsSpec {
    /// Whether no field is given.
    pub fn is_empty(&self) -> bool {
        self.compile() == Limits::INHERIT
    }

    /// The compiled form kept in a snapshot.
    pub fn compile(&self) -> Limits {
        let f = |v: Option<u64>| v.unwrap_or(INHERIT);
        Limits {
            caps: [
                f(self.in_bps),
                f(self.in_pps),
                f(self.out_bps),
                f(self.out_pps),
            ],
        }
    }
}

/// A cap that the EIP leaves to the POP default.
pub const INHERIT: u64 = u64::MAX;

/// Index of each cap in [`Limits::caps`].
pub mod cap {
    pub const IN_BPS: usize = 0;
    pub const IN_PPS: usize = 1;
    pub const OUT_BPS: usize = 2;
    pub const OUT_PPS: usize = 3;
}

/// Compiled caps: per cap, a rate per second (bits or packets), `0` for none,
/// [`INHERIT`] for the POP default's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub caps: [u64; 4],
}

impl Limits {
    /// Inherits everything.
    pub const INHERIT: Limits = Limits { caps: [INHERIT; 4] };
    /// No cap at all.
    pub const NONE: Limits = Limits { caps: [0; 4] };

    /// These caps over `default`: inherited ones come from it (and are none if
    /// it inherits too).
    #[inline(always)]
    pub fn over(&self, default: &Limits) -> Limits {
        let mut caps = self.caps;
        for (c, d) in caps.iter_mut().zip(default.caps) {
            if *c == INHERIT {
                *c = if d == INHERIT { 0 } else { d };
            }
        }
        Limits { caps }
    }
}

/// A rate as a number, or text with an SI prefix: `"100Mbit"`, `"1.5Gbit"`,
/// `"2M"`, `"50kpps"`. `unit` is the suffix allowed after the prefix (`bit`,
/// `bps` for bits; `pps` for packets); 1k = 1000.
pub fn parse_rate(text: &str, units: &[&str]) -> Result<u64, String> {
    let t = text.trim();
    let mut rest = t;
    for u in units {
        if let Some(r) = t.strip_suffix(u) {
            rest = r;
            break;
        }
    }
    let (number, scale) = match rest.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let scale = match c {
                'k' | 'K' => 1e3,
                'M' => 1e6,
                'G' => 1e9,
                'T' => 1e12,
                _ => return Err(rate_error(text, units)),
            };
            (&rest[..i], scale)
        }
        _ => (rest, 1.0),
    };
    let value: f64 = number.trim().parse().map_err(|_| rate_error(text, units))?;
    let scaled = value * scale;
    if !scaled.is_finite() || scaled < 0.0 || scaled >= INHERIT as f64 {
        return Err(rate_error(text, units));
    }
    Ok(scaled.round() as u64)
}

fn rate_error(text: &str, units: &[&str]) -> String {
    format!(
        "invalid rate {text:?}: expected a whole number or a number with k, M, G or T and {} (e.g. \"100M{}\"); 0 means no cap",
        units.join(" or "),
        units[0]
    )
}

/// A number or rate text.
#[derive(Deserialize)]
#[serde(untagged)]
enum RateValue {
    Number(u64),
    Text(String),
}

fn rate<'de, D: Deserializer<'de>>(d: D, units: &[&str]) -> Result<Option<u64>, D::Error> {
    match Option::<RateValue>::deserialize(d)? {
        None => Ok(None),
        Some(RateValue::Number(n)) if n < INHERIT => Ok(Some(n)),
        Some(RateValue::Number(n)) => {
            Err(serde::de::Error::custom(rate_error(&n.to_string(), units)))
        }
        Some(RateValue::Text(t)) => parse_rate(&t, units)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

fn bits<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    rate(d, &["bit", "bps"])
}

fn packets<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    rate(d, &["pps"])
}

impl fmt::Display for LimitsSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (name, v) in [
            ("in_bps", self.in_bps),
            ("in_pps", self.in_pps),
            ("out_bps", self.out_bps),
            ("out_pps", self.out_pps),
        ] {
            if let Some(v) = v {
                if !first {
                    f.write_str(" ")?;
                }
                first = false;
                write!(f, "{name}={v}")?;
            }
        }
        if first {
            f.write_str("none")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_with_si_prefixes() {
        let bits = ["bit", "bps"];
        assert_eq!(parse_rate("100Mbit", &bits), Ok(100_000_000));
        assert_eq!(parse_rate("1.5Gbit", &bits), Ok(1_500_000_000));
        assert_eq!(parse_rate("64kbps", &bits), Ok(64_000));
        assert_eq!(parse_rate("2M", &bits), Ok(2_000_000));
        assert_eq!(parse_rate("1200", &bits), Ok(1200));
        assert_eq!(parse_rate("50kpps", &["pps"]), Ok(50_000));
        for bad in ["", "fast", "10Xbit", "-1Mbit", "1e30Tbit", "Mbit"] {
            assert!(parse_rate(bad, &bits).is_err(), "{bad}");
        }
    }

    #[test]
    fn toml_takes_numbers_and_text_and_refuses_unknown_fields() {
        let l: LimitsSpec = toml::from_str("in_bps = \"10Mbit\"\nout_pps = 5000").unwrap();
        assert_eq!(
            l,
            LimitsSpec {
                in_bps: Some(10_000_000),
                out_pps: Some(5000),
                ..Default::default()
            }
        );
        assert!(toml::from_str::<LimitsSpec>("in_bps = \"ten\"").is_err());
        assert!(toml::from_str::<LimitsSpec>("in_bits = 1").is_err());
    }

    #[test]
    fn an_eip_cap_overrides_the_default_and_zero_lifts_it() {
        let default = LimitsSpec {
            in_bps: Some(1000),
            in_pps: Some(10),
            ..Default::default()
        }
        .compile();
        let eip = LimitsSpec {
            in_pps: Some(0),
            out_bps: Some(5),
            ..Default::default()
        }
        .compile();
        assert_eq!(eip.over(&default).caps, [1000, 0, 5, 0]);
        assert_eq!(Limits::INHERIT.over(&Limits::INHERIT).caps, [0; 4]);
    }
}
