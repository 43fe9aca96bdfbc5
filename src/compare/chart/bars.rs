//! A panel of vertical bars, one slot per model named under it, with a
//! value axis on the left, whiskers from the lowest to the highest round,
//! a figure above each bar, and a legend above the plot: the cost above
//! iterative, the latencies and conn/s at one client count are all drawn
//! by it.
//!
//! What is not here: which figures make the bars (`figures`), the SVG
//! writer (`svg`).

use super::frame::{self, Axis};
use super::style::INK;
use super::svg::{text_width, Anchor, Svg};
use super::WIDTH;

/// One bar.
pub struct Bar {
    /// Its height; drawn from 0, never below.
    pub value: f64,
    /// Its whisker, lowest to highest round, clamped at 0.
    pub range: Option<(f64, f64)>,
    /// The figure written above it.
    pub label: String,
    /// Its fill: a colour or a pattern.
    pub fill: &'static str,
    /// Its class and data, escaped, as `class="cost-bar" data-model="fork"`.
    pub attributes: String,
}

/// The bars of one model, side by side.
pub struct Slot {
    /// The model, written under the slot.
    pub name: String,
    pub bars: Vec<Bar>,
}

/// A whole panel.
pub struct Panel {
    pub title: String,
    /// What the value axis measures, written above it.
    pub axis: String,
    /// What each bar of a slot is, when there are several: its fill and
    /// its name.
    pub legend: Vec<(&'static str, String)>,
    pub slots: Vec<Slot>,
    /// Said in place of the bars when there are none.
    pub empty: &'static str,
}

const LEFT: f64 = 90.0;
const RIGHT: f64 = 30.0;
const PLOT_HEIGHT: f64 = 300.0;
/// Room above the highest bar for its figure.
const HEADROOM: f64 = 28.0;
/// Room under the plot for the names, on two lines.
const NAMES: f64 = 64.0;

/// Draws `panel` from `top` down; returns its height.
pub fn draw(svg: &mut Svg, top: f64, panel: &Panel) -> f64 {
    let mut y = frame::heading(svg, top, &panel.title, &panel.axis);
    if !panel.legend.is_empty() {
        y += 30.0;
        legend(svg, (LEFT, y), &panel.legend);
    }
    let plot_top = y + HEADROOM;
    let plot_bottom = plot_top + PLOT_HEIGHT;
    let (left, right) = (LEFT, WIDTH - RIGHT);
    if panel.slots.is_empty() {
        svg.text(
            ((left + right) / 2.0, plot_top + PLOT_HEIGHT / 2.0),
            18.0,
            Anchor::Middle,
            panel.empty,
        );
        return plot_bottom + NAMES - top;
    }
    let highest = panel
        .slots
        .iter()
        .flat_map(|s| &s.bars)
        .map(|b| b.value.max(b.range.map_or(0.0, |r| r.1)))
        .fold(0.0f64, f64::max);
    let axis = Axis::to(highest, plot_bottom, PLOT_HEIGHT);
    axis.draw(svg, (left, right));
    let y_of = |v: f64| axis.y(v);
    let slot_w = (right - left) / panel.slots.len() as f64;
    for (i, slot) in panel.slots.iter().enumerate() {
        let centre = left + slot_w * (i as f64 + 0.5);
        let k = slot.bars.len().max(1) as f64;
        let group = (slot_w * 0.75).min(k * 64.0);
        let bar_w = group / k;
        for (j, bar) in slot.bars.iter().enumerate() {
            let x = centre - group / 2.0 + bar_w * j as f64;
            let bar_top = y_of(bar.value);
            svg.rect(
                x + 2.0,
                bar_top,
                bar_w - 4.0,
                plot_bottom - bar_top,
                &format!(
                    r#"fill="{}" stroke="{INK}" stroke-width="1" {}"#,
                    bar.fill, bar.attributes
                ),
            );
            let mid = x + bar_w / 2.0;
            let mut label_y = bar_top;
            if let Some((low, high)) = bar.range {
                whisker(svg, mid, (y_of(low), y_of(high)), bar_w);
                label_y = label_y.min(y_of(high));
            }
            svg.text((mid, label_y - 7.0), 16.0, Anchor::Middle, &bar.label);
        }
        names(svg, centre, plot_bottom, slot_w, &slot.name);
    }
    svg.line(
        (left, plot_bottom),
        (right, plot_bottom),
        &format!(r#"stroke="{INK}" stroke-width="2""#),
    );
    plot_bottom + NAMES - top
}

/// A vertical whisker from `low` to `high` (px), capped at both ends.
fn whisker(svg: &mut Svg, x: f64, (low, high): (f64, f64), bar_w: f64) {
    let cap = (bar_w * 0.4).min(14.0);
    let ink = format!(r#"stroke="{INK}" stroke-width="2""#);
    svg.line((x, low), (x, high), &ink);
    for y in [low, high] {
        svg.line((x - cap / 2.0, y), (x + cap / 2.0, y), &ink);
    }
}

/// A model's name under its slot, broken after its hyphen when it is
/// too wide for one line ("prefork-" over "lock").
fn names(svg: &mut Svg, centre: f64, bottom: f64, slot_w: f64, name: &str) {
    let size = 17.0;
    let lines: Vec<String> = match name.split_once('-') {
        Some((a, b)) if text_width(name, size) > slot_w - 6.0 => vec![format!("{a}-"), b.into()],
        _ => vec![name.to_string()],
    };
    for (i, line) in lines.iter().enumerate() {
        svg.text(
            (centre, bottom + 24.0 + 21.0 * i as f64),
            size,
            Anchor::Middle,
            line,
        );
    }
}

/// The legend: a swatch and a name for each kind of bar, in a row
/// starting at (`x`, `y`), `y` the text's baseline.
pub fn legend(svg: &mut Svg, (mut x, y): (f64, f64), entries: &[(&'static str, String)]) {
    for (fill, name) in entries {
        svg.rect(
            x,
            y - 16.0,
            22.0,
            20.0,
            &format!(r#"fill="{fill}" stroke="{INK}" stroke-width="1""#),
        );
        svg.text((x + 30.0, y), 17.0, Anchor::Start, name);
        x += 30.0 + text_width(name, 17.0) + 30.0;
    }
}
