//! Connections per second against the number of clients, one line per
//! model, when there are several client counts: each line with its own
//! colour, marker and dash pattern, its name written at its right end,
//! and a legend under the plot.
//!
//! What is not here: conn/s at one client count (a bar panel, `figures`),
//! the other panels.

use super::figures::clients;
use super::frame::{self, Axis};
use super::style::{self, INK};
use super::svg::{escape, text_width, Anchor, Svg};
use super::WIDTH;
use crate::compare::Row;

const LEFT: f64 = 90.0;
/// Room right of the plot for the lines' names.
const NAMES: f64 = 170.0;
const PLOT_HEIGHT: f64 = 380.0;
/// The least distance between two names at the lines' ends, px.
const NAME_GAP: f64 = 19.0;

/// Draws the chart of `rows` (models in order `models`, client counts
/// `counts`, ascending) from `top` down; returns its height.
pub fn draw(svg: &mut Svg, top: f64, rows: &[Row], models: &[&str], counts: &[usize]) -> f64 {
    let y = frame::heading(
        svg,
        top,
        "Connections per second against concurrent clients",
        "connections completed per second, median of the rounds; client counts evenly spaced",
    );
    let plot_top = y + 30.0;
    let bottom = plot_top + PLOT_HEIGHT;
    let (left, right) = (LEFT, WIDTH - NAMES);
    let highest = rows
        .iter()
        .map(|r| r.per_second.median)
        .fold(0.0f64, f64::max);
    let axis = Axis::to(highest, bottom, PLOT_HEIGHT);
    axis.draw(svg, (left, right));
    let y_of = |v: f64| axis.y(v);
    let slot = (right - left) / counts.len().max(1) as f64;
    let x_of = |i: usize| left + slot * (i as f64 + 0.5);
    for (i, &n) in counts.iter().enumerate() {
        svg.text((x_of(i), bottom + 26.0), 17.0, Anchor::Middle, &clients(n));
    }
    svg.line(
        (left, bottom),
        (right, bottom),
        &format!(r#"stroke="{INK}" stroke-width="2""#),
    );
    let mut ends = Vec::new();
    for (m, model) in models.iter().enumerate() {
        let style = style::line(m);
        let points: Vec<(f64, f64)> = counts
            .iter()
            .enumerate()
            .filter_map(|(i, &c)| {
                let r = rows.iter().find(|r| r.model == *model && r.clients == c)?;
                Some((x_of(i), y_of(r.per_second.median)))
            })
            .collect();
        let Some(&last) = points.last() else {
            continue;
        };
        svg.open(&format!(
            r#"class="rate-line" data-model="{}""#,
            escape(model)
        ));
        let d: Vec<String> = points
            .iter()
            .enumerate()
            .map(|(i, (x, y))| format!("{}{x:.1},{y:.1}", if i == 0 { 'M' } else { 'L' }))
            .collect();
        svg.path(&d.join(" "), &style.stroke_style());
        for &(x, y) in &points {
            svg.path(&style.marker_path(x, y), &style.marker_style());
        }
        svg.close();
        ends.push((last.1, m));
    }
    // The names at the lines' ends, pushed apart where lines end close.
    let spread = spread(ends.iter().map(|e| e.0).collect(), NAME_GAP, bottom);
    for ((end_y, m), name_y) in ends.iter().zip(spread) {
        let style = style::line(*m);
        let x = x_of(counts.len() - 1) + 14.0;
        svg.line(
            (x - 8.0, *end_y),
            (x + 10.0, name_y),
            &format!(r#"stroke="{}" stroke-width="1""#, style.colour),
        );
        svg.text((x + 14.0, name_y + 6.0), 17.0, Anchor::Start, models[*m]);
    }
    let legend_top = bottom + 60.0;
    legend(svg, legend_top, models) - top
}

/// The legend under the plot: each model's line and marker, and its
/// name; returns where it ends.
fn legend(svg: &mut Svg, top: f64, models: &[&str]) -> f64 {
    let widest = models
        .iter()
        .map(|m| text_width(m, 17.0))
        .fold(0.0f64, f64::max);
    let entry_w = 70.0 + widest + 24.0;
    let per_row = (((WIDTH - 40.0) / entry_w).floor() as usize).max(1);
    for (m, model) in models.iter().enumerate() {
        let style = style::line(m);
        let x = 20.0 + entry_w * (m % per_row) as f64;
        let y = top + 30.0 * (m / per_row) as f64;
        svg.path(&format!("M{x:.1},{y:.1} h56"), &style.stroke_style());
        svg.path(&style.marker_path(x + 28.0, y), &style.marker_style());
        svg.text((x + 66.0, y + 6.0), 17.0, Anchor::Start, model);
    }
    top + 30.0 * models.len().div_ceil(per_row) as f64
}

/// Where to write labels wanted at heights `ys` (px, down) so that no two
/// are nearer than `gap` and none is below `lowest`: in their order down
/// the page, each pushed down off the one above it, then, from the
/// bottom, each pushed up off `lowest` and the one below it (a leader
/// line joins a label to its line's end).
fn spread(ys: Vec<f64>, gap: f64, lowest: f64) -> Vec<f64> {
    let mut order: Vec<usize> = (0..ys.len()).collect();
    order.sort_by(|&a, &b| ys[a].total_cmp(&ys[b]));
    let mut placed = ys.clone();
    let mut previous = f64::NEG_INFINITY;
    for &i in &order {
        placed[i] = ys[i].max(previous + gap);
        previous = placed[i];
    }
    let mut next = lowest + gap;
    for &i in order.iter().rev() {
        placed[i] = placed[i].min(next - gap);
        next = placed[i];
    }
    placed
}

#[cfg(test)]
mod tests {
    use super::spread;

    #[test]
    fn close_labels_are_pushed_apart_and_far_ones_kept() {
        let placed = spread(vec![100.0, 101.0, 300.0], 20.0, 400.0);
        assert!(placed[1] - placed[0] >= 20.0 - 1e-9, "{placed:?}");
        assert_eq!(placed[2], 300.0);
        assert_eq!(spread(vec![10.0, 50.0], 20.0, 400.0), vec![10.0, 50.0]);
        // Two at the bottom: the lower stays there, the other goes up.
        assert_eq!(spread(vec![400.0, 399.0], 20.0, 400.0), vec![400.0, 380.0]);
    }
}
