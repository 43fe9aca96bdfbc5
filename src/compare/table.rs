//! The tables `compare` prints: the full one (every figure), the brief one
//! (what a projector shows: under 100 columns), and the footer under
//! either, which says how the figures were made and how noisy they are.

use super::{Report, Row, Stat};

/// A figure with its noise: "1234 ±56".
fn with_noise(s: &Stat, decimals: usize) -> String {
    format!("{:.*} ±{:.*}", decimals, s.median, decimals, s.half_range())
}

/// The cost above `iterative`: "≈0" where its range reaches zero.
fn above(r: &Row) -> String {
    if r.model == "iterative" {
        return "0".to_string();
    }
    match (&r.above_iterative_us, r.within_noise) {
        (None, _) => "-".to_string(),
        (Some(_), true) => "≈0".to_string(),
        (Some(a), false) => with_noise(a, 1),
    }
}

/// How many times this model's cost fork's is, at least.
fn fork_times(r: &Row) -> String {
    match r.fork_times {
        _ if r.model == "fork" => "1".to_string(),
        _ if r.model == "iterative" => "-".to_string(),
        None => "-".to_string(),
        Some(t) if t >= 10.0 => format!("≥{t:.0}"),
        Some(t) if t > 0.0 => format!("≥{t:.1}"),
        Some(_) => "≈0".to_string(),
    }
}

fn spread(r: &Row) -> String {
    let s = &r.spread;
    format!("{}/{}/{} ({})", s.min, s.median, s.max, s.workers)
}

/// conn/s, with its range as a share of the median.
fn per_second(r: &Row) -> String {
    let s = &r.per_second;
    let percent = 100.0 * s.half_range() / s.median.max(1e-9);
    format!("{:.0} ±{percent:.0}%", s.median)
}

/// Every figure of every row.
pub fn table(report: &Report) -> String {
    let head = [
        "model",
        "clients",
        "conn/s",
        "p50 ms",
        "p99 ms",
        "CPU/conn µs",
        "above iter. µs",
        "fork ×",
        "wake/conn",
        "faults/conn",
        "load µs/conn",
        "PSS MiB",
        "procs",
        "threads",
        "spread min/med/max (workers)",
        "failed",
    ];
    let cells = report.rows.iter().map(|r| {
        vec![
            r.model.clone(),
            r.clients.to_string(),
            per_second(r),
            format!("{:.3}", r.p50_ms.median),
            format!("{:.3}", r.p99_ms.median),
            with_noise(&r.cpu_per_connection_us, 1),
            above(r),
            fork_times(r),
            format!("{:.1}", r.wakeups_per_connection.median),
            format!("{:.1}", r.faults_per_connection.median),
            format!("{:.1}", r.load_cpu_per_connection_us.median),
            format!("{:.1}", r.pss_peak_mib),
            r.processes.to_string(),
            r.threads.to_string(),
            spread(r),
            r.failed.to_string(),
        ]
    });
    render(&head, cells.collect())
}

/// What a class can read on a projector, in under 100 columns.
pub fn brief_table(report: &Report) -> String {
    let head = [
        "model",
        "clients",
        "above iter. µs",
        "fork ×",
        "conn/s",
        "wake/conn",
        "spread (workers)",
    ];
    let cells = report.rows.iter().map(|r| {
        vec![
            r.model.clone(),
            r.clients.to_string(),
            above(r),
            fork_times(r),
            per_second(r),
            format!("{:.1}", r.wakeups_per_connection.median),
            spread(r),
        ]
    });
    render(&head, cells.collect())
}

/// How the figures were made, how noisy the machine was, and what to
/// distrust.
pub fn footer(report: &Report) -> String {
    let s = &report.settings;
    let mut out = format!(
        "Each figure is the median of {} rounds of {} each, after a discarded warm-up;\n\
         ± is half the range of the rounds, which ran interleaved in a shuffled order (seed {}).\n\
         Noise here: ±{:.1} µs of CPU per connection and ±{:.0}% of conn/s (the median cell's).\n\
         A cost above iterative whose range reaches zero prints as ≈0; fork × is fork's lowest\n\
         cost over this one's highest. {} cores, {}, {} workers.\n",
        s.repeat,
        s.limit,
        s.seed,
        report.noise.cpu_per_connection_us,
        report.noise.per_second_percent,
        s.cores,
        s.kernel,
        s.workers,
    );
    for w in &report.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    out
}

/// Columns padded to their widest cell: names left, numbers right.
fn render(head: &[&str], cells: Vec<Vec<String>>) -> String {
    let widths: Vec<usize> = (0..head.len())
        .map(|i| {
            cells
                .iter()
                .map(|c| c[i].chars().count())
                .chain([head[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cols: Vec<&str>| -> String {
        let padded: Vec<String> = cols
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let pad = " ".repeat(widths[i] - c.chars().count());
                if i == 0 {
                    format!("{c}{pad}")
                } else {
                    format!("{pad}{c}")
                }
            })
            .collect();
        padded.join("  ").trim_end().to_string()
    };
    let mut out = vec![line(head.to_vec())];
    for c in &cells {
        out.push(line(c.iter().map(String::as_str).collect()));
    }
    out.join("\n") + "\n"
}

/// The width of a table as printed: its longest line, in characters.
pub fn width(table: &str) -> usize {
    table.lines().map(|l| l.chars().count()).max().unwrap_or(0)
}
