//! `compare --html`: one self-contained page (no external resources: no
//! script, no style sheet, no font, no image fetched) with the settings,
//! the warnings, the brief and the full tables, their footer, and the
//! chart's SVG inlined.
//!
//! What is not here: the chart itself (`chart`), the tables (`table`).

use std::fmt::Write as _;
use std::path::Path;

use super::{brief_table, chart, footer, table, Report};

/// Writes the page of `report` to `path`.
pub fn write(path: &Path, report: &Report) -> Result<(), String> {
    std::fs::write(path, page(report)).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The page of `report`.
pub fn page(report: &Report) -> String {
    let s = &report.settings;
    let esc = |t: &str| {
        t.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let mut out = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>preforkd compare</title>\n<style>\n\
         body { font-family: sans-serif; font-size: 18px; margin: 1em auto; max-width: 1240px; padding: 0 1em; }\n\
         pre { font-size: 16px; overflow-x: auto; background: #f6f6f6; padding: 0.5em; }\n\
         svg { max-width: 100%; height: auto; }\n\
         th { text-align: left; padding-right: 1em; }\n\
         </style>\n</head>\n<body>\n<h1>preforkd compare</h1>\n<table>\n",
    );
    let settings = [
        ("command", format!("preforkd {}", s.command)),
        (
            "rounds",
            format!("{}, of {} each, after a warm-up", s.repeat, s.limit),
        ),
        ("workers", s.workers.to_string()),
        ("cores", s.cores.to_string()),
        ("kernel", s.kernel.clone()),
        ("seed", s.seed.to_string()),
    ];
    for (name, value) in settings {
        let _ = writeln!(out, "<tr><th>{name}</th><td>{}</td></tr>", esc(&value));
    }
    out.push_str("</table>\n");
    if !report.warnings.is_empty() {
        out.push_str("<ul>\n");
        for w in &report.warnings {
            let _ = writeln!(out, "<li>warning: {}</li>", esc(w));
        }
        out.push_str("</ul>\n");
    }
    let _ = write!(
        out,
        "<h2>The brief table</h2>\n<pre>{}</pre>\n<p>{}</p>\n<h2>The charts</h2>\n{}\
         <h2>Every figure</h2>\n<pre>{}</pre>\n</body>\n</html>\n",
        esc(&brief_table(report)),
        esc(&footer(report)).replace('\n', "<br>\n"),
        chart::svg(report),
        esc(&table(report)),
    );
    out
}
