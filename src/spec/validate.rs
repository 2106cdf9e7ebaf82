//! Range checks shared by the spec types, each naming file, key, value and what is allowed.

use crate::error::{Error, Result};

/// The longest spec `name`: two names and a hash make a folder name well under the 255 bytes
/// file systems allow.
pub const NAME_MAX_CHARS: usize = 64;

/// Checks the values of one spec file; every failure names `origin` and the dotted key.
pub struct Checker<'a> {
    pub origin: &'a str,
}

impl Checker<'_> {
    pub fn positive(&self, key: &str, value: u64) -> Result<()> {
        if value == 0 {
            return Err(self.fail(key, &value.to_string(), "a whole number > 0"));
        }
        Ok(())
    }

    pub fn at_most(&self, key: &str, value: u64, limit: u64, why: &str) -> Result<()> {
        if value > limit {
            return Err(self.fail(key, &value.to_string(), &format!("at most {limit} ({why})")));
        }
        Ok(())
    }

    /// Refuses a product of keys over `limit`. `factors` are (name, value) pairs, the first
    /// being `key`'s: the message shows `key` with its own value and the product apart, worked
    /// out in full (`u128`: the callers' factors are range-checked first, so it cannot wrap).
    pub fn product_at_most(
        &self,
        key: &str,
        factors: &[(&str, u64)],
        limit: u64,
        what: &str,
    ) -> Result<()> {
        let product: u128 = factors.iter().map(|&(_, v)| u128::from(v)).product();
        if product <= u128::from(limit) {
            return Ok(());
        }
        let names: Vec<&str> = factors.iter().map(|&(name, _)| name).collect();
        let values: Vec<String> = factors.iter().map(|&(_, v)| v.to_string()).collect();
        let value = factors.first().map_or(0, |&(_, v)| v);
        Err(self.fail(
            key,
            &value.to_string(),
            &format!(
                "such that {what}, {} = {} = {product}, is at most {limit}",
                names.join(" x "),
                values.join(" x ")
            ),
        ))
    }

    pub fn range(&self, key: &str, value: u64, low: u64, high: u64) -> Result<()> {
        if !(low..=high).contains(&value) {
            return Err(self.fail(key, &value.to_string(), &format!("{low} to {high}")));
        }
        Ok(())
    }

    /// A spec's `name`, which becomes part of folder names (`wafersim-out/<model>-<fabric>/`):
    /// letters, digits, `.`, `_` and `-`, not starting with `.`, at most [`NAME_MAX_CHARS`], so
    /// that no name reaches outside the output folder (`..`, `/`, an absolute path) or hides.
    pub fn name(&self, key: &str, value: &str) -> Result<()> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        let fits = !value.is_empty() && value.len() <= NAME_MAX_CHARS;
        if !fits || value.starts_with('.') || !value.chars().all(allowed) {
            return Err(self.fail(
                key,
                &format!("{value:?}"),
                &format!(
                    "1 to {NAME_MAX_CHARS} of the letters A-Z a-z, digits 0-9, '.', '_' and \
                     '-', not starting with '.' (a name becomes a folder name)"
                ),
            ));
        }
        Ok(())
    }

    pub fn fail(&self, key: &str, value: &str, allowed: &str) -> Error {
        Error::input(format!(
            "{}: key `{key}` = {value} is not allowed: must be {allowed}",
            self.origin
        ))
    }
}
