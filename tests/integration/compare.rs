//! `preforkd compare`: every model fills every column with real figures,
//! fork costs more than prefork, and `--chart` and `--html` write one SVG
//! of marked panels and one self-contained page, which rsvg-convert and
//! headless Chromium render.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::util::*;

/// Runs `preforkd compare ARGS --json` and returns its report,
/// `{settings, noise, rows, warnings}`.
fn compare(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["compare"];
    all.extend_from_slice(args);
    all.push("--json");
    // Ten servers started and stopped, round after round, on a machine
    // that runs the other tests meanwhile: minutes, not seconds, before
    // calling it stuck.
    let out = run_command_within(Command::new(BIN).args(&all), Duration::from_secs(240));
    assert!(
        out.status.success(),
        "compare failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// The rows of a report.
fn rows(report: &serde_json::Value) -> &Vec<serde_json::Value> {
    report["rows"].as_array().expect("rows")
}

const MODELS: [&str; 10] = [
    "iterative",
    "fork",
    "prefork",
    "prefork-lock",
    "prefork-pass",
    "threads",
    "pool",
    "pool-pass",
    "event",
    "reuseport",
];

/// The elements of `doc` of class `class` (the first word of it).
fn marked<'a>(doc: &'a roxmltree::Document, class: &str) -> Vec<roxmltree::Node<'a, 'a>> {
    doc.descendants()
        .filter(|n| {
            n.attribute("class")
                .is_some_and(|c| c.split(' ').next() == Some(class))
        })
        .collect()
}

/// The models of the elements of class `class`, in their order.
fn models_of(doc: &roxmltree::Document, class: &str) -> Vec<String> {
    marked(doc, class)
        .iter()
        .map(|n| n.attribute("data-model").unwrap_or("").to_string())
        .collect()
}

#[test]
fn compare_runs_every_model_fills_every_column_and_charts_each() {
    let dir = TempDir::new("compare");
    let chart = dir.path().join("models.svg");
    let started = std::time::Instant::now();
    let report = compare(&[
        "--clients",
        "8",
        "--connections",
        "2000",
        "--repeat",
        "2",
        "--chart",
        chart.to_str().unwrap(),
    ]);
    let rows = rows(&report);
    eprintln!(
        "compare over {} models took {:?}",
        rows.len(),
        started.elapsed()
    );
    let names: Vec<&str> = rows.iter().map(|r| r["model"].as_str().unwrap()).collect();
    assert_eq!(names, MODELS);
    assert_eq!(report["settings"]["repeat"], 2, "{}", report["settings"]);
    for r in rows {
        let model = r["model"].as_str().unwrap();
        assert_eq!(r["clients"], 8, "{r}");
        assert_eq!(r["rounds"], 2, "{r}");
        assert_eq!(r["connections"], 4000, "{model}: {r}");
        assert_eq!(r["failed"], 0, "{model}: {r}");
        for column in ["per_second", "p50_ms", "p99_ms"] {
            assert!(
                r[column]["median"].as_f64().unwrap() > 0.0,
                "{model}: {column} in {r}"
            );
        }
        assert!(r["pss_peak_mib"].as_f64().unwrap() > 0.0, "{model}: {r}");
        for column in ["cpu_per_connection_us", "above_iterative_us"] {
            assert!(
                r[column]["median"].as_f64().is_some(),
                "{model}: {column} in {r}"
            );
        }
        assert!(r["processes"].as_u64().unwrap() >= 2, "{model}: {r}");
        assert!(r["threads"].as_u64().unwrap() >= 2, "{model}: {r}");
        // The median round's spread adds up to its connections.
        assert_eq!(r["spread"]["total"], 2000, "{model}: {r}");
        assert!(
            r["spread"]["workers"].as_u64().unwrap() >= 1,
            "{model}: {r}"
        );
    }
    let svg = std::fs::read_to_string(&chart).unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("the chart is well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    // One client count: a bar of conn/s per model, not lines.
    for class in ["cost-bar", "histogram", "rate-bar"] {
        assert_eq!(models_of(&doc, class), MODELS, "{class}");
    }
    assert!(marked(&doc, "rate-line").is_empty());
}

#[test]
fn fork_spends_more_server_cpu_per_connection_than_prefork() {
    // The lesson of UNP chapter 30: fork(2) per connection costs far more
    // than a pool. 2000 connections, so the 10 ms ticks of the CPU clock
    // are small next to the difference.
    let report = compare(&[
        "--models",
        "fork,prefork",
        "--clients",
        "4",
        "--connections",
        "2000",
        "--repeat",
        "2",
    ]);
    let rows = rows(&report);
    let cpu = |model: &str| {
        rows.iter()
            .find(|r| r["model"] == model)
            .and_then(|r| r["cpu_per_connection_us"]["median"].as_f64())
            .unwrap()
    };
    eprintln!(
        "CPU per connection: fork {:.1} µs, prefork {:.1} µs",
        cpu("fork"),
        cpu("prefork")
    );
    assert!(cpu("fork") > cpu("prefork"), "{rows:?}");
}

/// Whether `program` runs here (`program --version`).
fn runs(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Asserts that `png` is a PNG of some size, and returns its width.
fn png_width(png: &Path, what: &str) -> u32 {
    let bytes = std::fs::read(png).unwrap_or_else(|e| panic!("{what}: no PNG: {e}"));
    assert!(
        bytes.len() > 10_000 && bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{what}: {} bytes, not a PNG of a chart",
        bytes.len()
    );
    u32::from_be_bytes(bytes[16..20].try_into().unwrap())
}

#[test]
fn the_chart_has_a_panel_per_design_in_large_text_and_the_page_inlines_it() {
    let dir = TempDir::new("chart");
    let svg_path = dir.path().join("X.svg");
    let html_path = dir.path().join("X.html");
    let models = ["iterative", "fork", "prefork", "pool"];
    let report = compare(&[
        "--models",
        "iterative,fork,prefork,pool",
        "--clients",
        "1",
        "--connections",
        "200",
        "--repeat",
        "2",
        "--chart",
        svg_path.to_str().unwrap(),
        "--html",
        html_path.to_str().unwrap(),
    ]);
    assert_eq!(rows(&report).len(), models.len());
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("the chart is well-formed XML");
    assert_eq!(models_of(&doc, "cost-bar"), models);
    assert_eq!(models_of(&doc, "histogram"), models);
    // p50 and p99 of each.
    assert_eq!(marked(&doc, "latency-bar").len(), 2 * models.len());
    for panel in marked(&doc, "histogram") {
        let model = panel.attribute("data-model").unwrap();
        let bars = panel
            .descendants()
            .filter(|n| n.attribute("class") == Some("worker-bar"))
            .count();
        let says_new = panel
            .descendants()
            .any(|n| n.text() == Some("a new worker"));
        match model {
            "fork" => assert!(bars == 0 && says_new, "{model}"),
            "iterative" => assert_eq!(bars, 1, "{model}"),
            _ => assert!(bars >= 1 && !says_new, "{model}: {bars} bars"),
        }
        assert!(
            panel.descendants().any(|n| n.text() == Some(model)),
            "{model}: titled with its name"
        );
    }
    for bar in marked(&doc, "cost-bar") {
        let height: f64 = bar.attribute("height").unwrap().parse().unwrap();
        assert!(height >= 0.0, "a cost bar is never negative");
    }
    let texts: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .collect();
    assert!(texts.len() > 20);
    for t in &texts {
        let size: f64 = t
            .attribute("font-size")
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{:?}: no font-size", t.text()));
        assert!(size >= 16.0, "{:?} at {size} px", t.text());
    }
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(html.contains("<svg"), "the chart is inlined");
    for model in models {
        assert!(html.contains(model), "{model} in the page");
    }
    // Self-contained: nothing fetched (the SVG namespace is a name only).
    let outside = html.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    for fetch in ["http://", "https://", "<link", "<script", "src="] {
        assert!(!outside.contains(fetch), "{fetch} in the page");
    }

    if needs(
        runs("rsvg-convert"),
        "rsvg-convert",
        "apt-get install librsvg2-bin",
    ) {
        let png = dir.path().join("rsvg.png");
        let out = run_command_within(
            Command::new("rsvg-convert")
                .arg(&svg_path)
                .arg("-o")
                .arg(&png),
            Duration::from_secs(60),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(png_width(&png, "rsvg-convert"), 1200);
    }
    let chromium = "/usr/bin/chromium";
    if needs(
        Path::new(chromium).exists(),
        "chromium",
        "apt-get install chromium",
    ) {
        let png = dir.path().join("chromium.png");
        let profile = dir.path().join("profile");
        let out = run_command_within(
            Command::new(chromium)
                .args([
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--window-size=1200,2000",
                ])
                .arg(format!("--user-data-dir={}", profile.display()))
                .arg(format!("--screenshot={}", png.display()))
                .arg(format!("file://{}", html_path.display())),
            Duration::from_secs(120),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        png_width(&png, "chromium");
    }
}
