//! The bar panels' figures, from the rows at one client count: the cost
//! above iterative (Stevens' Figure 30.1), the latencies p50 and p99, and
//! conn/s when there is one client count.
//!
//! What is not here: drawing the bars (`bars`), the histograms of
//! connections per worker (`workers`), conn/s against several client
//! counts (`lines`).

use super::bars::{Bar, Panel, Slot};
use super::style::{self, BAR, HATCH, NOISE};
use super::svg::escape;
use crate::compare::{Row, Stat};

/// "1 client", "8 clients".
pub fn clients(n: usize) -> String {
    match n {
        1 => "1 client".to_string(),
        n => format!("{n} clients"),
    }
}

/// The class and data attributes of a bar of `row`.
fn attributes(class: &str, row: &Row) -> String {
    format!(
        r#"class="{class}" data-model="{}" data-clients="{}""#,
        escape(&row.model),
        row.clients
    )
}

/// A bar of `stat`'s median, whiskered from its lowest to its highest
/// round.
fn bar(stat: &Stat, label: String, fill: &'static str, attributes: String) -> Bar {
    Bar {
        value: stat.median,
        range: Some((stat.min, stat.max)),
        label,
        fill,
        attributes,
    }
}

/// A slot per row, of the bars `bars_of` makes of it; a row it makes
/// none of is left out.
fn slots(rows: &[&Row], bars_of: impl Fn(&Row) -> Option<Vec<Bar>>) -> Vec<Slot> {
    rows.iter()
        .filter_map(|r| {
            Some(Slot {
                name: r.model.clone(),
                bars: bars_of(r)?,
            })
        })
        .collect()
}

/// The cost above iterative of each model at one client count: a bar of
/// the median, whiskered from the lowest round to the highest; a cost
/// the rounds cannot tell from zero is a grey bar of its median (0 if
/// that is negative) labelled ≈0.
pub fn cost(rows: &[&Row], clients_n: usize) -> Panel {
    let slots = slots(rows, |r| {
        let a = r.above_iterative_us?;
        let (label, fill) = if r.within_noise {
            ("≈0".to_string(), NOISE)
        } else {
            (format!("{:.1}", a.median), BAR)
        };
        Some(vec![bar(&a, label, fill, attributes("cost-bar", r))])
    });
    Panel {
        title: format!(
            "Cost above iterative, per design (cf. Figure 30.1), {}",
            clients(clients_n)
        ),
        axis: "µs of CPU per connection above iterative (grey, ≈0: within the noise of the rounds)"
            .into(),
        legend: Vec::new(),
        slots,
        empty: "no cost above iterative: run iterative too (--models iterative,...)",
    }
}

/// p50 (solid) and p99 (hatched) of each model at one client count.
pub fn latency(rows: &[&Row], clients_n: usize) -> Panel {
    let slots = slots(rows, |r| {
        let of = |s: &Stat, fill, class| bar(s, style::short(s.median), fill, attributes(class, r));
        Some(vec![
            of(&r.p50_ms, BAR, "latency-bar p50"),
            of(&r.p99_ms, HATCH, "latency-bar p99"),
        ])
    });
    Panel {
        title: format!("Latency of a connection, {}", clients(clients_n)),
        axis: "ms from connect to the end of the reply".into(),
        legend: vec![
            (BAR, "p50: half the connections took less".into()),
            (HATCH, "p99: all but 1 in 100 took less".into()),
        ],
        slots,
        empty: "no rows",
    }
}

/// conn/s of each model, at the one client count.
pub fn rate(rows: &[&Row], clients_n: usize) -> Panel {
    let slots = slots(rows, |r| {
        let label = format!("{:.0}", r.per_second.median);
        Some(vec![bar(
            &r.per_second,
            label,
            BAR,
            attributes("rate-bar", r),
        )])
    });
    Panel {
        title: format!("Connections per second, {}", clients(clients_n)),
        axis: "connections completed per second".into(),
        legend: Vec::new(),
        slots,
        empty: "no rows",
    }
}
