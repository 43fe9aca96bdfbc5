//! The charts of `--chart` and the page of `--html`: one SVG of marked
//! panels, one self-contained page, which rsvg-convert and headless
//! Chromium render.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::compare_report as compare;
use crate::util::*;

/// The rows of a report.
fn rows(report: &serde_json::Value) -> &Vec<serde_json::Value> {
    report["rows"].as_array().expect("rows")
}

/// The elements of `doc` of class `class` (the first word of it).
pub(crate) fn marked<'a>(
    doc: &'a roxmltree::Document,
    class: &str,
) -> Vec<roxmltree::Node<'a, 'a>> {
    doc.descendants()
        .filter(|n| {
            n.attribute("class")
                .is_some_and(|c| c.split(' ').next() == Some(class))
        })
        .collect()
}

/// The models of the elements of class `class`, in their order.
pub(crate) fn models_of(doc: &roxmltree::Document, class: &str) -> Vec<String> {
    marked(doc, class)
        .iter()
        .map(|n| n.attribute("data-model").unwrap_or("").to_string())
        .collect()
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
