//! Every model measured, every column filled with a real figure, and the
//! lesson of chapter 30 in its crudest form: fork costs more than a pool.

use crate::charts::{marked, models_of};
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
fn compare_runs_every_model_fills_every_column_and_charts_each() {
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
            "faults_per_connection",
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
    // One client count: a bar of conn/s per model, not lines; a cost bar
    // and a histogram of connections per worker for each.
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
