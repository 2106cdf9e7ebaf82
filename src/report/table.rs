//! A plain-text table with right-aligned numbers, and number formatting.

use std::fmt::Write;

/// Rows of cells under a header; the first column is left-aligned, the rest right-aligned.
#[derive(Debug, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    /// Columns from the left that hold text and are left-aligned (at least the first).
    left: usize,
}

impl Table {
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Self {
        Table {
            header: header.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
            left: 1,
        }
    }

    /// Left-aligns the first `columns` columns (text), instead of only the first.
    pub fn left_aligned(mut self, columns: usize) -> Self {
        self.left = columns.max(1);
        self
    }

    /// Adds a row; it has as many cells as the header has columns.
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        let row: Vec<String> = cells.into_iter().map(Into::into).collect();
        debug_assert_eq!(
            row.len(),
            self.header.len(),
            "a row of {:?} under the header {:?}",
            row,
            self.header
        );
        self.rows.push(row);
    }

    pub fn render(&self) -> String {
        let columns = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let line = |out: &mut String, cells: &[String]| {
            for (i, cell) in cells.iter().enumerate().take(columns) {
                let pad = widths[i] - cell.chars().count();
                if i == 0 {
                    let _ = write!(out, "{cell}{}", " ".repeat(pad));
                } else if i < self.left {
                    let _ = write!(out, "  {cell}{}", " ".repeat(pad));
                } else {
                    let _ = write!(out, "  {}{cell}", " ".repeat(pad));
                }
            }
            out.push('\n');
        };
        line(&mut out, &self.header);
        let total: usize = widths.iter().sum::<usize>() + 2 * (columns.saturating_sub(1));
        out.push_str(&"-".repeat(total));
        out.push('\n');
        for row in &self.rows {
            line(&mut out, row);
        }
        out
    }
}

/// A number with an SI prefix and 3 significant digits: `7.62 G`, `1.21 E`.
/// A sparsity as tables and titles show it: four decimals at most (a mask file's mean has any
/// number of digits; four are what a reader compares).
pub fn shown_sparsity(sparsity: f64) -> f64 {
    (sparsity * 1e4).round() / 1e4
}

pub fn si(value: f64, unit: &str) -> String {
    const PREFIXES: [(f64, &str); 7] = [
        (1e21, "Z"),
        (1e18, "E"),
        (1e15, "P"),
        (1e12, "T"),
        (1e9, "G"),
        (1e6, "M"),
        (1e3, "k"),
    ];
    for (scale, prefix) in PREFIXES {
        if value.abs() >= scale {
            return format!("{} {prefix}{unit}", three_digits(value / scale));
        }
    }
    format!("{} {unit}", three_digits(value))
}

fn three_digits(x: f64) -> String {
    if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// A duration in the largest unit that keeps it above 1: `9.25 h`, `2.25 min`, `4.61 µs`.
pub fn duration(seconds: f64) -> String {
    const UNITS: [(f64, &str); 7] = [
        (86_400.0, "d"),
        (3_600.0, "h"),
        (60.0, "min"),
        (1.0, "s"),
        (1e-3, "ms"),
        (1e-6, "µs"),
        (1e-9, "ns"),
    ];
    for (scale, unit) in UNITS {
        if seconds.abs() >= scale {
            return format!("{} {unit}", three_digits(seconds / scale));
        }
    }
    format!("{} ns", three_digits(seconds * 1e9))
}

/// An integer with thousands separators: `1,208,602,624`.
pub fn thousands(value: u128) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_numbers() {
        assert_eq!(thousands(1_208_602_624), "1,208,602,624");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(si(7.62e9, "FLOP"), "7.62 GFLOP");
        assert_eq!(si(6.56e15, "FLOP/s"), "6.56 PFLOP/s");
        assert_eq!(si(123.4, "B"), "123 B");
        assert_eq!(duration(33_290.0), "9.25 h");
        assert_eq!(duration(135.0), "2.25 min");
        assert_eq!(duration(2.5), "2.50 s");
        assert_eq!(duration(4.61e-6), "4.61 µs");
        assert_eq!(duration(1.5e-3), "1.50 ms");
        assert_eq!(duration(2e-8), "20.0 ns");
    }

    #[test]
    fn aligns_columns() {
        let mut t = Table::new(["phase", "steps"]);
        t.row(["pretrain", "23052"]);
        t.row(["softprompt", "7"]);
        assert_eq!(
            t.render(),
            "phase       steps\n-----------------\npretrain    23052\nsoftprompt      7\n"
        );
    }
}
