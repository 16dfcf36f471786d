//! Kubernetes resource quantities (`500m`, `2`, `1.5Gi`, `4G`, `1e3`): parsed exactly, compared
//! by value, and kept as written so what a team asked for is what the cluster is sent.
//!
//! The value is held in nano-units (the smallest suffix, `n`), which makes every quantity the
//! API server accepts for cpu, memory, pods and storage an integer, up to `Ei` without
//! overflow. Negative quantities are refused: nothing sk8 sets may be negative.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

const NANOS: u128 = 1_000_000_000;
/// The longest quantity accepted, generous for anything real and short enough to read back.
const MAX_LEN: usize = 64;

/// A non-negative Kubernetes quantity.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, example = "8Gi")]
pub struct Quantity(Parsed);

/// The text as written and its value.
#[derive(Clone, Debug)]
struct Parsed {
    text: String,
    nanos: u128,
}

impl Quantity {
    pub fn parse(text: &str) -> Result<Self, String> {
        let nanos = parse_nanos(text).ok_or_else(|| {
            format!(
                "{text:?} is not a Kubernetes quantity like 500m, 2, 1.5Gi or 4G (a number with \
                 an optional suffix n, u, m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi or Ei)"
            )
        })?;
        Ok(Quantity(Parsed {
            text: text.to_owned(),
            nanos,
        }))
    }

    /// An exact count (pods, executors), as a quantity.
    pub fn from_count(n: u64) -> Self {
        Quantity(Parsed {
            text: n.to_string(),
            nanos: u128::from(n) * NANOS,
        })
    }

    /// A byte count, written in the largest binary unit that divides it.
    pub fn from_bytes(bytes: u64) -> Self {
        let (value, unit) = [("Ti", 40), ("Gi", 30), ("Mi", 20), ("Ki", 10)]
            .into_iter()
            .find(|(_, shift)| bytes != 0 && bytes.is_multiple_of(1 << shift))
            .map_or((bytes, ""), |(unit, shift)| (bytes >> shift, unit));
        Quantity(Parsed {
            text: format!("{value}{unit}"),
            nanos: u128::from(bytes) * NANOS,
        })
    }

    /// Millicores (for cpu), written as cores when whole.
    pub fn from_millis(millis: u64) -> Self {
        let text = if millis.is_multiple_of(1000) {
            (millis / 1000).to_string()
        } else {
            format!("{millis}m")
        };
        Quantity(Parsed {
            text,
            nanos: u128::from(millis) * 1_000_000,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.0.text
    }

    /// The value in nano-units, for arithmetic across quantities.
    pub fn nanos(&self) -> u128 {
        self.0.nanos
    }
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.nanos() == other.nanos()
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.nanos().cmp(&other.nanos())
    }
}

impl TryFrom<String> for Quantity {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        Quantity::parse(&s)
    }
}

impl From<Quantity> for String {
    fn from(q: Quantity) -> String {
        q.0.text
    }
}

impl std::fmt::Display for Quantity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `<digits>[.<digits>]` then a suffix or an exponent, as the API server's parser reads it.
fn parse_nanos(text: &str) -> Option<u128> {
    if text.is_empty() || text.len() > MAX_LEN {
        return None;
    }
    let text = text.strip_prefix('+').unwrap_or(text);
    let number_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(number_end);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
        return None;
    }
    let (multiplier, divisor) = scale(suffix)?;
    // value = (whole.fraction) * multiplier / divisor, in nanos, computed on integers.
    let digits = format!("{whole}{fraction}");
    let mantissa: u128 = digits.parse().ok()?;
    let fraction_scale = 10u128.checked_pow(u32::try_from(fraction.len()).ok()?)?;
    let scaled = mantissa.checked_mul(multiplier)?.checked_mul(NANOS)?;
    let denominator = fraction_scale.checked_mul(divisor)?;
    // A value finer than a nano-unit cannot be held exactly; the API server rounds it up.
    Some(scaled.div_ceil(denominator))
}

/// A suffix as `multiplier / divisor` of the unit.
fn scale(suffix: &str) -> Option<(u128, u128)> {
    let binary = |shift: u32| Some((1u128 << shift, 1));
    let decimal = |exp: u32| Some((10u128.pow(exp), 1));
    match suffix {
        "" => decimal(0),
        "n" => Some((1, NANOS)),
        "u" => Some((1, 1_000_000)),
        "m" => Some((1, 1_000)),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => binary(10),
        "Mi" => binary(20),
        "Gi" => binary(30),
        "Ti" => binary(40),
        "Pi" => binary(50),
        "Ei" => binary(60),
        exponent => {
            let digits = exponent.strip_prefix(['e', 'E'])?;
            let (negative, digits) = match digits.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, digits.strip_prefix('+').unwrap_or(digits)),
            };
            if digits.is_empty() || digits.len() > 2 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            let power = 10u128.checked_pow(digits.parse().ok()?)?;
            Some(if negative { (1, power) } else { (power, 1) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nanos(text: &str) -> u128 {
        Quantity::parse(text).unwrap().nanos()
    }

    #[test]
    fn suffixes_and_fractions_are_exact() {
        assert_eq!(nanos("500m"), 500_000_000);
        assert_eq!(nanos("0.5"), nanos("500m"));
        assert_eq!(nanos("2"), 2 * NANOS);
        assert_eq!(nanos("1Gi"), (1u128 << 30) * NANOS);
        assert_eq!(nanos("1.5Gi"), nanos("1536Mi"));
        assert_eq!(nanos("4G"), 4_000_000_000 * NANOS);
        assert_eq!(nanos("1e3"), 1000 * NANOS);
        assert_eq!(nanos("1E3"), nanos("1k"));
        assert_eq!(nanos("1E"), 10u128.pow(18) * NANOS);
        assert_eq!(nanos("100n"), 100);
        assert_eq!(nanos(".5"), nanos("500m"));
        assert_eq!(nanos("8Ei"), (8u128 << 60) * NANOS);
    }

    #[test]
    fn malformed_quantities_are_refused() {
        for bad in [
            "", "lots", "1.2.3", "-1", "1 Gi", "1gi", "Gi", "1Gb", "1e", "1e999", ".", "1.5.Gi",
        ] {
            assert!(Quantity::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn comparisons_are_by_value_and_text_is_kept() {
        let a = Quantity::parse("1024Mi").unwrap();
        let b = Quantity::parse("1Gi").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.as_str(), "1024Mi");
        assert!(Quantity::parse("1001m").unwrap() > Quantity::parse("1").unwrap());
    }

    #[test]
    fn computed_quantities_read_well() {
        assert_eq!(Quantity::from_bytes(3 << 30).as_str(), "3Gi");
        assert_eq!(Quantity::from_bytes(1408 << 20).as_str(), "1408Mi");
        assert_eq!(Quantity::from_millis(2500).as_str(), "2500m");
        assert_eq!(Quantity::from_millis(3000).as_str(), "3");
    }
}
