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
