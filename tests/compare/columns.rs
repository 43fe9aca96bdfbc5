//! Every model measured, every column filled with a real figure, and the
//! lesson of chapter 30 in its crudest form: fork costs more than a pool.

use crate::compare;
use crate::util::TempDir;

const MODELS: [&str; 15] = [
    "iterative",
    "fork",
    "prefork",
    "prefork-poll",
    "prefork-epoll",
    "prefork-epoll-exclusive",
    "prefork-lock",
    "prefork-mutex",
    "prefork-pass",
    "threads",
    "pool",
    "pool-lock",
    "pool-pass",
    "event",
    "reuseport",
];

#[test]
fn compare_runs_every_model_fills_every_column_and_draws_one_series_per_model() {
    let dir = TempDir::new("compare");
    let chart = dir.path().join("models.svg");
    let started = std::time::Instant::now();
    let rows = compare(&[
        "--clients",
        "8",
        "--connections",
        "2000",
        "--repeat",
        "1",
        "--chart",
        chart.to_str().unwrap(),
    ]);
    eprintln!(
        "compare over {} models took {:?}",
        rows.len(),
        started.elapsed()
    );
    let names: Vec<&str> = rows.iter().map(|r| r["model"].as_str().unwrap()).collect();
    assert_eq!(names, MODELS);
    for r in &rows {
        let model = r["model"].as_str().unwrap();
        assert_eq!(r["clients"], 8, "{r}");
        assert_eq!(r["connections"], 2000, "{model}: {r}");
        assert_eq!(r["failed"], 0, "{model}: {r}");
        for column in ["per_second", "p50_ms", "p99_ms"] {
            assert!(
                r[column]["median"].as_f64().unwrap() > 0.0,
                "{model}: {column} in {r}"
            );
        }
        assert!(r["pss_peak_mib"].as_f64().unwrap() > 0.0, "{model}: {r}");
        for column in [
            "cpu_per_connection_us",
            "above_iterative_us",
            "wakeups_per_connection",
            "load_cpu_per_connection_us",
        ] {
            assert!(
                r[column]["median"].as_f64().is_some(),
                "{model}: {column} in {r}"
            );
        }
        assert!(r["processes"].as_u64().unwrap() >= 2, "{model}: {r}");
        assert!(r["threads"].as_u64().unwrap() >= 2, "{model}: {r}");
        // The spread adds up to the connections made.
        assert_eq!(r["spread"]["total"], 2000, "{model}: {r}");
        assert!(
            r["spread"]["workers"].as_u64().unwrap() >= 1,
            "{model}: {r}"
        );
    }
    let svg = std::fs::read_to_string(&chart).unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("the chart is well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let texts: Vec<String> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| n.text().unwrap_or("").trim().to_string())
        .collect();
    for model in MODELS {
        assert_eq!(
            texts.iter().filter(|t| *t == model).count(),
            1,
            "one legend entry for {model}: {texts:?}"
        );
    }
    // One point per model at the one client count.
    let points = doc
        .descendants()
        .filter(|n| n.has_tag_name("circle"))
        .count();
    assert_eq!(points, MODELS.len());
}

#[test]
fn fork_spends_more_server_cpu_per_connection_than_prefork() {
    // The lesson of UNP chapter 30: fork(2) per connection costs far more
    // than a pool. 2000 connections, so the 10 ms ticks of the CPU clock
    // are small next to the difference.
    let rows = compare(&[
        "--models",
        "fork,prefork",
        "--clients",
        "4",
        "--connections",
        "2000",
        "--repeat",
        "1",
    ]);
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
    for r in &rows {
        assert_eq!(r["spread"]["total"], r["connections"], "{r}");
    }
}
