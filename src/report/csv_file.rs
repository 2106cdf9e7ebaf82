//! Every CSV file wafersim writes goes through [`csv_text`], from one `Serialize` row type per
//! file: the row's field names are the header (one source for names and values), and the `csv`
//! crate quotes a field holding a comma, a quote or a line break, so a model path like
//! `a,"b".toml` stays one field.

use serde::Serialize;

use crate::error::{Error, Result};

/// The CSV text of `rows`, header first (no rows, no text). Rows must be flat structs.
pub fn csv_text<R: Serialize>(rows: impl IntoIterator<Item = R>) -> Result<String> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    for row in rows {
        writer.serialize(row).map_err(csv_error)?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| Error::Simulation(format!("cannot write CSV: {e}")))?;
    String::from_utf8(bytes).map_err(|e| Error::Simulation(format!("CSV is not UTF-8: {e}")))
}

fn csv_error(e: csv::Error) -> Error {
    Error::Simulation(format!("cannot write a CSV row: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Row<'a> {
        model: &'a str,
        cycles: u128,
        share: f64,
    }

    #[test]
    fn quotes_what_would_split_a_field_and_names_columns_from_the_row() {
        let text = csv_text([Row {
            model: "a,\"b\".toml",
            cycles: u128::MAX,
            share: 0.5,
        }])
        .unwrap();
        assert_eq!(
            text,
            format!(
                "model,cycles,share\n\"a,\"\"b\"\".toml\",{},0.5\n",
                u128::MAX
            )
        );
    }
}
