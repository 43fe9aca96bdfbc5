//! `compare --chart`: one SVG file of panels for a teacher to project,
//! after Stevens' Figures 30.1 and 30.2: the cost above iterative per
//! design, the connections each worker served, the latencies, and conn/s
//! (against the client counts when there are several). The SVG is
//! written by hand, so that each bar and panel can carry a class and its
//! model for a test to find; it loads no fonts, leaving the text to the
//! viewer. Every text is at least 16 px.
//!
//! What is not here: the page of `--html` (`super::html`), the tables
//! (`super::table`).

mod bars;
mod figures;
mod frame;
mod lines;
mod style;
mod svg;
mod workers;

use std::path::Path;

use super::{Report, Row};
use svg::{text_width, Anchor, Svg};

/// The width of the chart, px; the panels are stacked down it.
const WIDTH: f64 = 1200.0;

/// Writes the chart of `report` to `path`.
pub fn write(path: &Path, report: &Report) -> Result<(), String> {
    std::fs::write(path, svg(report)).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The chart of `report`, as an SVG document.
pub fn svg(report: &Report) -> String {
    let mut models: Vec<&str> = Vec::new();
    for r in &report.rows {
        if !models.contains(&r.model.as_str()) {
            models.push(&r.model);
        }
    }
    let mut counts: Vec<usize> = report.rows.iter().map(|r| r.clients).collect();
    counts.sort_unstable();
    counts.dedup();
    let at = |n: usize| -> Vec<&Row> { report.rows.iter().filter(|r| r.clients == n).collect() };
    let mut svg = Svg::default();
    let mut y = header(&mut svg, report);
    for &n in &counts {
        y += bars::draw(&mut svg, y, &figures::cost(&at(n), n));
    }
    for &n in &counts {
        y += workers::draw(&mut svg, y, &at(n), n);
    }
    for &n in &counts {
        y += bars::draw(&mut svg, y, &figures::latency(&at(n), n));
    }
    match counts.as_slice() {
        [n] => y += bars::draw(&mut svg, y, &figures::rate(&at(*n), *n)),
        _ => y += lines::draw(&mut svg, y, &report.rows, &models, &counts),
    }
    svg.finish(WIDTH, y + 20.0, "preforkd compare")
}

/// The title and the settings under it; returns where they end.
fn header(svg: &mut Svg, report: &Report) -> f64 {
    let s = &report.settings;
    let mut y = 40.0;
    svg.bold(
        (20.0, y),
        28.0,
        Anchor::Start,
        "preforkd compare: the server designs of UNP chapter 30",
    );
    let mut lines = wrap(&format!("preforkd {}", s.command), WIDTH - 40.0, 17.0);
    lines.push(format!(
        "{} cores, {}; {} rounds of {} each after a warm-up; {} workers per pool",
        s.cores, s.kernel, s.repeat, s.limit, s.workers
    ));
    lines.push(
        "Bars: the median of the rounds; whiskers: the lowest to the highest round.".to_string(),
    );
    for line in &lines {
        y += 26.0;
        svg.text((20.0, y), 17.0, Anchor::Start, line);
    }
    for w in &report.warnings {
        for line in wrap(&format!("warning: {w}"), WIDTH - 40.0, 17.0) {
            y += 26.0;
            svg.text((20.0, y), 17.0, Anchor::Start, &line);
        }
    }
    y + 10.0
}

/// `text` broken at spaces into lines of at most `width` px at `size`
/// (a word longer than that keeps a line of its own).
fn wrap(text: &str, width: f64, size: f64) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let longer = if line.is_empty() {
            word.to_string()
        } else {
            format!("{line} {word}")
        };
        if text_width(&longer, size) > width && !line.is_empty() {
            lines.push(std::mem::replace(&mut line, word.to_string()));
        } else {
            line = longer;
        }
    }
    lines.push(line);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::{Noise, Settings, Spread, Stat};

    fn row(model: &str, clients: usize, above: Option<Stat>, per_worker: Vec<u64>) -> Row {
        let s = |m: f64| Stat {
            median: m,
            min: m * 0.9,
            max: m * 1.1,
        };
        Row {
            model: model.into(),
            clients,
            rounds: 2,
            connections: 400,
            failed: 0,
            per_second: s(10000.0),
            p50_ms: s(0.07),
            p99_ms: s(0.2),
            cpu_per_connection_us: s(30.0),
            above_iterative_us: above,
            within_noise: above.is_some_and(|a| a.within_noise_of_zero()),
            fork_times: None,
            wakeups_per_connection: s(2.0),
            faults_per_connection: s(1.0),
            load_cpu_per_connection_us: s(20.0),
            load_bound: false,
            pss_peak_mib: 2.0,
            processes: 3,
            threads: 3,
            spread: Spread::of(&per_worker),
            per_worker,
            first_error: None,
        }
    }

    fn report(counts: &[usize]) -> Report {
        let cost = |median, min, max| Some(Stat { median, min, max });
        let rows = counts
            .iter()
            .flat_map(|&n| {
                [
                    row("iterative", n, cost(0.0, 0.0, 0.0), vec![200]),
                    row("fork", n, cost(270.0, 250.0, 290.0), vec![]),
                    row("prefork-lock", n, cost(-3.0, -6.0, 1.0), vec![120, 80]),
                ]
            })
            .collect();
        Report {
            settings: Settings {
                command: "compare --models iterative,fork,prefork-lock <&>".into(),
                repeat: 2,
                limit: "200 connections".into(),
                workers: 2,
                cores: 2,
                kernel: "Linux 6.1".into(),
                seed: 1,
            },
            noise: Noise::default(),
            rows,
            warnings: vec!["a warning".into()],
        }
    }

    #[test]
    fn every_design_has_its_cost_bar_and_its_histogram() {
        for counts in [&[1][..], &[1, 8][..]] {
            let out = svg(&report(counts));
            let doc = roxmltree::Document::parse(&out).unwrap();
            let marked = |class: &str| -> Vec<(String, String)> {
                doc.descendants()
                    .filter(|n| n.attribute("class") == Some(class))
                    .map(|n| {
                        let a = |k| n.attribute(k).unwrap_or("").to_string();
                        (a("data-model"), a("data-clients"))
                    })
                    .collect()
            };
            assert_eq!(marked("cost-bar").len(), 3 * counts.len(), "{counts:?}");
            assert_eq!(marked("histogram").len(), 3 * counts.len(), "{counts:?}");
            let fork = doc
                .descendants()
                .find(|n| {
                    n.attribute("class") == Some("histogram")
                        && n.attribute("data-model") == Some("fork")
                })
                .unwrap();
            assert!(fork.descendants().any(|n| n.text() == Some("a new worker")));
            assert!(doc.descendants().any(|n| n.text() == Some("≈0")));
            // A negative cost is a bar of no height, never below the axis.
            for bar in doc
                .descendants()
                .filter(|n| n.attribute("class") == Some("cost-bar"))
            {
                assert!(bar.attribute("height").unwrap().parse::<f64>().unwrap() >= 0.0);
            }
            for text in doc.descendants().filter(|n| n.has_tag_name("text")) {
                let size: f64 = text.attribute("font-size").unwrap().parse().unwrap();
                assert!(size >= 16.0, "{:?}", text.text());
            }
            let lines = marked("rate-line").len();
            let rate_bars = marked("rate-bar").len();
            match counts.len() {
                1 => assert_eq!((lines, rate_bars), (0, 3)),
                _ => assert_eq!((lines, rate_bars), (3, 0)),
            }
        }
    }

    #[test]
    fn long_lines_wrap_at_spaces() {
        let lines = wrap("aaaa bbbb cccc", 10.0 * 16.0 * 0.6, 16.0);
        assert_eq!(lines, vec!["aaaa bbbb", "cccc"]);
    }
}
