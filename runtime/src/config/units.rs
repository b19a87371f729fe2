//! Human-friendly sizes (`64Mi`, `512k`) and durations (`5s`, `250ms`) as they
//! appear in manifests, CLI flags and the admin API.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A byte count written with an optional binary (`Ki`, `Mi`, `Gi`) or decimal
/// (`k`, `M`, `G`) suffix, as Kubernetes and Cloud Run spell memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub const fn mib(n: u64) -> Self {
        ByteSize(n << 20)
    }

    pub fn bytes(self) -> u64 {
        self.0
    }
}

const SIZE_UNITS: [(&str, u64); 8] = [
    ("Ki", 1 << 10),
    ("Mi", 1 << 20),
    ("Gi", 1 << 30),
    ("Ti", 1 << 40),
    ("k", 1_000),
    ("M", 1_000_000),
    ("G", 1_000_000_000),
    ("T", 1_000_000_000_000),
];

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let s = s.strip_suffix('B').unwrap_or(s);
        let (digits, multiplier) = SIZE_UNITS
            .iter()
            .find_map(|(suffix, mult)| s.strip_suffix(suffix).map(|d| (d, *mult)))
            .unwrap_or((s, 1));
        let n: u64 = digits.trim().parse().map_err(|_| {
            format!("invalid size `{s}`: expected a whole number with an optional unit, like `64Mi`, `512Ki`, `1Gi` or `1048576`")
        })?;
        n.checked_mul(multiplier)
            .map(ByteSize)
            .ok_or_else(|| format!("size `{s}` is too large"))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (suffix, mult) in SIZE_UNITS[..4].iter().rev() {
            if self.0 >= *mult && self.0.is_multiple_of(*mult) {
                return write!(f, "{}{suffix}", self.0 / mult);
            }
        }
        write!(f, "{}", self.0)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(ByteSize(n)),
            Raw::Text(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// A duration written like `5s`, `250ms`, `1m 30s` (humantime syntax).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span(pub Duration);

impl FromStr for Span {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        humantime::parse_duration(s.trim()).map(Span).map_err(|e| {
            format!("invalid duration `{s}`: {e}; write it like `5s`, `250ms` or `2m`")
        })
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        humantime::format_duration(self.0).fmt(f)
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!("64Mi".parse::<ByteSize>().unwrap(), ByteSize(64 << 20));
        assert_eq!("512Ki".parse::<ByteSize>().unwrap(), ByteSize(512 << 10));
        assert_eq!("2G".parse::<ByteSize>().unwrap(), ByteSize(2_000_000_000));
        assert_eq!("1MiB".parse::<ByteSize>().unwrap(), ByteSize(1 << 20));
        assert_eq!("4096".parse::<ByteSize>().unwrap(), ByteSize(4096));
        assert!("64Q".parse::<ByteSize>().is_err());
        assert!("-1Mi".parse::<ByteSize>().is_err());
        assert!("99999999999Ti".parse::<ByteSize>().is_err());
    }

    #[test]
    fn sizes_display_round_trip() {
        for s in ["64Mi", "1Gi", "3Ki", "1000"] {
            assert_eq!(s.parse::<ByteSize>().unwrap().to_string(), s);
        }
    }

    #[test]
    fn durations_parse() {
        assert_eq!("5s".parse::<Span>().unwrap().0, Duration::from_secs(5));
        assert_eq!(
            "250ms".parse::<Span>().unwrap().0,
            Duration::from_millis(250)
        );
        assert!("five seconds".parse::<Span>().is_err());
    }
}
