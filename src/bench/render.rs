//! A comparison as a terminal table and as Markdown (for a pull request).

use super::compare::{Comparison, Missing, Moved, Origin, Side};
use crate::report::Table;

/// The comparison for a terminal: a header, the figures that moved (compared first, then the
/// host's), what is missing, changed specs, and a verdict.
pub fn render_table(c: &Comparison) -> String {
    let mut text = format!(
        "wafersim compare: {}\n  base {}\n  new  {}\n\n",
        tolerance_line(c),
        origin_line(&c.base),
        origin_line(&c.new)
    );
    let (compared, host): (Vec<&Moved>, Vec<&Moved>) = c.moved.iter().partition(|m| !m.host);
    if !compared.is_empty() {
        text += &moved_table(&compared).render();
        text.push('\n');
    }
    if !host.is_empty() {
        text += "host figures (the simulator's own speed and work): shown, never compared\n";
        text += &moved_table(&host).render();
        text.push('\n');
    }
    for missing in &c.missing {
        text += &format!("{}\n", missing_line(missing));
    }
    for spec in &c.specs_changed {
        text += &format!(
            "{}: the {} file changed (sha256 {} -> {})\n",
            spec.case,
            spec.spec,
            short(&spec.old_sha256),
            short(&spec.new_sha256)
        );
    }
    for command in &c.commands_changed {
        text += &format!(
            "{}: the command changed ({} -> {})\n",
            command.case, command.old, command.new
        );
    }
    text += &format!("{}\n", verdict(c));
    text
}

/// The comparison as Markdown: a heading with the verdict, the moved figures as a table, the
/// host's folded away, what is missing as a list.
pub fn render_markdown(c: &Comparison) -> String {
    let mut text = format!(
        "### wafersim compare: {}\n\n{}\n\n- base: {}\n- new: {}\n\n",
        verdict(c),
        tolerance_line(c),
        origin_line(&c.base),
        origin_line(&c.new)
    );
    let (compared, host): (Vec<&Moved>, Vec<&Moved>) = c.moved.iter().partition(|m| !m.host);
    if !compared.is_empty() {
        text += &moved_markdown(&compared);
        text.push('\n');
    }
    if !c.missing.is_empty() {
        for missing in &c.missing {
            text += &format!("- {}\n", missing_line(missing));
        }
        text.push('\n');
    }
    for spec in &c.specs_changed {
        text += &format!(
            "- `{}`: the {} file changed (sha256 `{}` → `{}`)\n",
            spec.case,
            spec.spec,
            short(&spec.old_sha256),
            short(&spec.new_sha256)
        );
    }
    for command in &c.commands_changed {
        text += &format!(
            "- `{}`: the command changed (`{}` → `{}`)\n",
            command.case, command.old, command.new
        );
    }
    if !host.is_empty() {
        text += "<details><summary>host figures (the simulator's own speed and work): shown, \
                 never compared</summary>\n\n";
        text += &moved_markdown(&host);
        text += "\n</details>\n";
    }
    text
}

fn tolerance_line(c: &Comparison) -> String {
    format!(
        "{} figures compared at a relative tolerance of {}% (0% means exact)",
        c.figures_compared, c.tolerance_percent
    )
}

fn origin_line(o: &Origin) -> String {
    format!(
        "{}: suite {}, wafersim {} (commit {}, timing model {}), benched in {:.2} s",
        o.file,
        o.suite,
        o.wafersim_version,
        short(&o.wafersim_commit),
        o.timing_model_version,
        o.host_seconds
    )
}

fn verdict(c: &Comparison) -> String {
    let missing = c.missing.len();
    match (c.passed, c.figures_beyond_tolerance, missing) {
        (true, _, _) if c.moved.iter().all(|m| m.host) => "no figure moved".to_string(),
        (true, _, _) => "figures moved, all within the tolerance".to_string(),
        (false, beyond, _) => format!(
            "FAILED: {beyond} figure{} moved beyond the tolerance, {missing} case{} or figure{} \
             missing",
            plural(beyond),
            plural(missing),
            plural(missing)
        ),
    }
}

fn missing_line(m: &Missing) -> String {
    let (lacks, has) = match m.missing_from {
        Side::New => ("new", "base"),
        Side::Base => ("base", "new"),
    };
    match &m.field {
        None => format!("case {}: in {has} only, missing from {lacks}", m.case),
        Some(field) => format!(
            "case {}: figure {field} in {has} only, missing from {lacks}",
            m.case
        ),
    }
}

fn status(m: &Moved) -> &'static str {
    match (m.host, m.beyond_tolerance) {
        (true, _) => "host",
        (false, true) => "BEYOND",
        (false, false) => "within",
    }
}

fn change(m: &Moved) -> String {
    match m.change_percent {
        // A one-cycle change of a billion-cycle step is still shown as a change.
        Some(p) if p.abs() >= 0.01 => format!("{p:+.2}%"),
        Some(p) => format!("{p:+.2e}%"),
        None => "from 0".to_string(),
    }
}

fn moved_table(moved: &[&Moved]) -> Table {
    let mut table = Table::new(["case", "field", "old", "new", "change", "status"]).left_aligned(2);
    for m in moved {
        table.row([
            m.case.clone(),
            m.field.clone(),
            m.old.to_string(),
            m.new.to_string(),
            change(m),
            status(m).to_string(),
        ]);
    }
    table
}

fn moved_markdown(moved: &[&Moved]) -> String {
    let mut text =
        "| case | field | old | new | change | |\n|---|---|---:|---:|---:|---|\n".to_string();
    for m in moved {
        text += &format!(
            "| `{}` | `{}` | {} | {} | {} | {} |\n",
            m.case,
            m.field,
            m.old,
            m.new,
            change(m),
            match status(m) {
                "BEYOND" => "**beyond**",
                other => other,
            }
        );
    }
    text
}

/// The first 12 characters of a hash or commit.
fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
