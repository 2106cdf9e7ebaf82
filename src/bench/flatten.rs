//! A JSON report flattened into its numeric figures: dotted paths (`runs.1.phases.0.cycles`,
//! array elements by index) to numbers, in the report's own order.
//!
//! Generic on purpose: a field a report gains later is picked up without a change here. Numbers
//! are read from their JSON text, so an integer beyond `u64` (a whole recipe's FLOPs) stays
//! exact; `serde_json::Value` would round it to an `f64`.

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde::ser::{Serialize, Serializer};
use serde_json::value::RawValue;

/// One numeric figure: an exact integer, or a float as the report printed it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Figure {
    Int(i128),
    Float(f64),
}

impl Figure {
    /// The figure of a JSON number's text; `None` if the text is not a number.
    pub fn parse(text: &str) -> Option<Figure> {
        let integer = text.strip_prefix('-').unwrap_or(text);
        if !integer.is_empty() && integer.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(value) = text.parse::<i128>() {
                return Some(Figure::Int(value));
            }
        }
        text.parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .map(Figure::Float)
    }

    pub fn as_f64(self) -> f64 {
        match self {
            Figure::Int(v) => v as f64,
            Figure::Float(v) => v,
        }
    }

    /// The relative change from `self` to `new`, |new − old| / |old|: 0 when equal (integers
    /// compared exactly), infinite when `self` is 0 and `new` is not.
    pub fn relative_change(self, new: Figure) -> f64 {
        let difference = match (self, new) {
            (Figure::Int(a), Figure::Int(b)) => {
                b.checked_sub(a).map_or(b as f64 - a as f64, |d| d as f64)
            }
            (a, b) => b.as_f64() - a.as_f64(),
        };
        if difference == 0.0 {
            0.0
        } else if self.as_f64() == 0.0 {
            f64::INFINITY
        } else {
            difference.abs() / self.as_f64().abs()
        }
    }
}

impl std::fmt::Display for Figure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Figure::Int(v) => write!(f, "{v}"),
            Figure::Float(v) => write!(f, "{v}"),
        }
    }
}

impl Serialize for Figure {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match *self {
            Figure::Int(v) => serializer.serialize_i128(v),
            Figure::Float(v) => serializer.serialize_f64(v),
        }
    }
}

impl<'de> Deserialize<'de> for Figure {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        Figure::parse(raw.get())
            .ok_or_else(|| serde::de::Error::custom(format!("{} is not a number", raw.get())))
    }
}

/// Every numeric figure of the JSON document `json`, by dotted path, in document order;
/// strings (but an integer's exact digits in a field named `*_exact`), booleans and nulls are
/// not figures. Paths equal to one of `skip`, or under one
/// (`ops` skips `ops.3.cycles`), are left out.
pub fn flatten(json: &str, skip: &[String]) -> Result<Vec<(String, Figure)>, serde_json::Error> {
    let root: Box<RawValue> = serde_json::from_str(json)?;
    let mut figures = Vec::new();
    walk(String::new(), &root, skip, &mut figures)?;
    Ok(figures)
}

fn walk(
    path: String,
    raw: &RawValue,
    skip: &[String],
    figures: &mut Vec<(String, Figure)>,
) -> Result<(), serde_json::Error> {
    if skip.iter().any(|s| is_under(&path, s)) {
        return Ok(());
    }
    let child = |key: &str| match path.is_empty() {
        true => key.to_string(),
        false => format!("{path}.{key}"),
    };
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'{') => {
            let Fields(fields) = serde_json::from_str(text)?;
            for (key, value) in fields {
                walk(child(&key), &value, skip, figures)?;
            }
        }
        Some(b'[') => {
            let items: Vec<Box<RawValue>> = serde_json::from_str(text)?;
            for (i, value) in items.iter().enumerate() {
                walk(child(&i.to_string()), value, skip, figures)?;
            }
        }
        // An exact integer the report keeps as a string beside its float (`flops_dense_exact`
        // beside `flops_dense`, for the counts beyond what an f64 holds exactly) is a figure.
        Some(b'"') if path.ends_with("_exact") => {
            let digits: String = serde_json::from_str(text)?;
            if let Some(figure @ Figure::Int(_)) = Figure::parse(&digits) {
                figures.push((path, figure));
            }
        }
        _ => figures.extend(Figure::parse(text).map(|figure| (path, figure))),
    }
    Ok(())
}

/// Whether `path` is `prefix` or lies under it.
pub fn is_under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

/// An object's fields in document order, values unparsed.
pub struct Fields(pub Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;
        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = Fields;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
                let mut fields = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, Box<RawValue>>()? {
                    fields.push((key, value));
                }
                Ok(Fields(fields))
            }
        }
        deserializer.deserialize_map(FieldsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_beyond_u64_stay_exact_and_paths_follow_the_document() {
        let json = r#"{"b": {"flops": 217000000000000000000123, "x": [1.5, "s", null, -2]},
                       "a": true, "ops": [{"cycles": 3}], "f_exact": "12345678901234567890123",
                       "name_exact": "not digits"}"#;
        let figures = flatten(json, &["ops".to_string()]).unwrap();
        assert_eq!(
            figures,
            vec![
                ("b.flops".to_string(), Figure::Int(217000000000000000000123)),
                ("b.x.0".to_string(), Figure::Float(1.5)),
                ("b.x.3".to_string(), Figure::Int(-2)),
                ("f_exact".to_string(), Figure::Int(12345678901234567890123)),
            ]
        );
    }

    #[test]
    fn one_in_a_huge_integer_is_a_change() {
        let (a, b) = (Figure::Int(1 << 100), Figure::Int((1 << 100) + 1));
        assert!(a.relative_change(b) > 0.0);
        assert_eq!(a.relative_change(a), 0.0);
        assert_eq!(
            Figure::Int(0).relative_change(Figure::Int(1)),
            f64::INFINITY
        );
        assert_eq!(Figure::Int(4).relative_change(Figure::Float(5.0)), 0.25);
    }

    #[test]
    fn a_skipped_prefix_is_a_whole_segment() {
        assert!(is_under("ops.1.cycles", "ops"));
        assert!(is_under("ops", "ops"));
        assert!(!is_under("ops_total", "ops"));
    }
}
