//! Range checks shared by the spec types, each naming file, key, value and what is allowed.

use crate::error::{Error, Result};

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

    pub fn fail(&self, key: &str, value: &str, allowed: &str) -> Error {
        Error::input(format!(
            "{}: key `{key}` = {value} is not allowed: must be {allowed}",
            self.origin
        ))
    }
}
