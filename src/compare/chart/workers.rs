//! Connections per worker (Stevens' Figure 30.2): one small histogram per
//! model at one client count, one bar per worker, busiest first, every
//! panel on the same scale so that the models compare; a model that
//! starts a worker per connection says so instead.
//!
//! What is not here: the other panels, the SVG writer.

use super::figures::clients;
use super::frame::{self, Axis};
use super::style::{self, BAR, GRID, INK};
use super::svg::{escape, Anchor, Svg};
use super::WIDTH;
use crate::compare::Row;

/// The most panels in a row.
const COLUMNS: usize = 6;
const CELL_HEIGHT: f64 = 250.0;
const MARGIN: f64 = 20.0;

/// Draws the histograms of `rows` from `top` down; returns their height.
pub fn draw(svg: &mut Svg, top: f64, rows: &[&Row], clients_n: usize) -> f64 {
    let y = frame::heading(
        svg,
        top,
        &format!(
            "Connections per worker, busiest first (cf. Figure 30.2), {}",
            clients(clients_n)
        ),
        "connections each worker served in the median round; one bar per worker, the same scale in every panel",
    );
    let grid_top = y + 12.0;
    let highest = rows
        .iter()
        .flat_map(|r| r.per_worker.iter())
        .copied()
        .max()
        .unwrap_or(0) as f64;
    let scale_top = style::ticks(highest).last().copied().unwrap_or(1.0);
    // As few rows as fit, filled evenly: 10 models are two rows of 5.
    let grid_rows = rows.len().div_ceil(COLUMNS).max(1);
    let columns = rows.len().div_ceil(grid_rows).max(1);
    let cell_w = (WIDTH - 2.0 * MARGIN) / columns as f64;
    for (i, row) in rows.iter().enumerate() {
        let x = MARGIN + cell_w * (i % columns) as f64;
        let y = grid_top + CELL_HEIGHT * (i / columns) as f64;
        histogram(svg, (x, y), cell_w, row, scale_top);
    }
    grid_top + CELL_HEIGHT * grid_rows as f64 - top
}

/// One model's panel, in the cell at (`x`, `y`), `w` wide.
fn histogram(svg: &mut Svg, (x, y): (f64, f64), w: f64, row: &Row, scale_top: f64) {
    svg.open(&format!(
        r#"class="histogram" data-model="{}" data-clients="{}""#,
        escape(&row.model),
        row.clients
    ));
    svg.rect(
        x + 4.0,
        y + 4.0,
        w - 8.0,
        CELL_HEIGHT - 14.0,
        &format!(r#"fill="none" stroke="{GRID}" stroke-width="1""#),
    );
    svg.bold((x + w / 2.0, y + 30.0), 19.0, Anchor::Middle, &row.model);
    let left = x + 58.0;
    let right = x + w - 14.0;
    let plot_top = y + 64.0;
    let bottom = y + CELL_HEIGHT - 42.0;
    if row.per_worker.is_empty() {
        let middle = (left + right) / 2.0 - 22.0;
        let centre = (plot_top + bottom) / 2.0;
        svg.text((middle, centre), 17.0, Anchor::Middle, "a new worker");
        svg.text(
            (middle, centre + 22.0),
            17.0,
            Anchor::Middle,
            "per connection",
        );
        svg.close();
        return;
    }
    let axis = Axis::to(scale_top, bottom, bottom - plot_top).ends_only();
    axis.draw(svg, (left, right));
    let y_of = |v: f64| axis.y(v);
    let ink = format!(r#"stroke="{INK}" stroke-width="1""#);
    let n = row.per_worker.len();
    let bar_w = (right - left) / n as f64;
    let gap = if bar_w > 8.0 { 2.0 } else { 0.0 };
    for (i, &count) in row.per_worker.iter().enumerate() {
        let bx = left + bar_w * i as f64;
        let top = y_of(count as f64);
        svg.rect(
            bx + gap / 2.0,
            top,
            bar_w - gap,
            bottom - top,
            &format!(r#"class="worker-bar" fill="{BAR}" {ink}"#),
        );
    }
    // The busiest and the idlest worker's counts, over their bars.
    let most = row.per_worker[0];
    let least = row.per_worker[n - 1];
    svg.text(
        (left + bar_w / 2.0, y_of(most as f64) - 6.0),
        16.0,
        Anchor::Middle,
        &most.to_string(),
    );
    if n > 1 {
        svg.text(
            (left + bar_w * (n as f64 - 0.5), y_of(least as f64) - 6.0),
            16.0,
            Anchor::Middle,
            &least.to_string(),
        );
    }
    let workers = match n {
        1 => "1 worker".to_string(),
        n => format!("{n} workers"),
    };
    svg.text(
        ((left + right) / 2.0, bottom + 26.0),
        16.0,
        Anchor::Middle,
        &workers,
    );
    svg.line((left, bottom), (right, bottom), &ink);
    svg.close();
}
