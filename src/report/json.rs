//! The rules every JSON document wafersim writes follows, so that it loads as it is in pandas
//! (`read_json`, `json_normalize`) or any parser that reads numbers as doubles:
//!
//! - Every number fits a double. FLOP counts, which pass 2^64 over a recipe, are JSON numbers
//!   (the nearest `f64`) and keep their exact integer beside them as a decimal string,
//!   `<name>_exact` ([`ExactCount`]); every other integer is a count below 2^53 in practice.
//! - Names are snake_case with the unit last (`breakdown` keys end in `_cycles`); no name is a
//!   Python keyword; no nested object repeats a key of its parent (`run_sparsity` over
//!   `sparsity`), so `json_normalize` with `meta` needs no prefix.
//! - A category is a machine key (`io`, `data_parallel`) with its display label beside it.
//! - Every report carries `schema_version` ([`SCHEMA_VERSION`]), bumped by any change of a field
//!   name, type or meaning, and listed in the changelog with what it changed.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The version of every JSON report's field names and types (`schema_version`). 1 is the
/// unversioned format before it was written down; 2 renamed fields for pandas (CHANGELOG).
pub const SCHEMA_VERSION: u32 = 2;

/// An exact integer count written as a decimal string (a JSON number would round it above
/// 2^53, and pandas refuses integers above 2^64).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExactCount(pub u128);

impl Serialize for ExactCount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ExactCount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
        match text.parse::<u128>() {
            Ok(n) if digits => Ok(ExactCount(n)),
            _ => Err(serde::de::Error::custom(format!(
                "'{text}': an exact count is a string of decimal digits below 2^128"
            ))),
        }
    }
}

impl schemars::JsonSchema for ExactCount {
    fn schema_name() -> Cow<'static, str> {
        "ExactCount".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[0-9]+$",
            "description": "An exact integer count as a decimal string (the number field beside it is its nearest double)."
        })
    }
}

impl From<u128> for ExactCount {
    fn from(n: u128) -> Self {
        ExactCount(n)
    }
}

/// A FLOP count as reports write it: the nearest double and the exact integer.
pub fn flops_pair(flops: u128) -> (f64, ExactCount) {
    (flops as f64, ExactCount(flops))
}

/// `serialize_with` for a `u128` count a report writes as a JSON number (the nearest double).
pub fn serialize_as_f64<S: Serializer>(count: &u128, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(*count as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exact_count_round_trips_as_a_string_and_refuses_anything_else() {
        let big = ExactCount(u128::MAX);
        let text = serde_json::to_string(&big).unwrap();
        assert_eq!(text, format!("\"{}\"", u128::MAX));
        assert_eq!(serde_json::from_str::<ExactCount>(&text).unwrap(), big);
        for bad in ["\"\"", "\"+1\"", "\"1e3\"", "\"-1\"", "12"] {
            assert!(serde_json::from_str::<ExactCount>(bad).is_err(), "{bad}");
        }
    }
}
