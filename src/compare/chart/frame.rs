//! What every panel has: its heading (a bold title over a line saying
//! what it measures), and a value axis from 0 with round ticks and grid
//! lines across the plot.
//!
//! What is not here: what the panels draw between the grid lines.

use super::style::{self, GRID};
use super::svg::{Anchor, Svg};

/// Where the title and the line under it start, px from the left.
pub const INDENT: f64 = 20.0;

/// Writes `title` and `subtitle` from `top` down; returns the subtitle's
/// baseline.
pub fn heading(svg: &mut Svg, top: f64, title: &str, subtitle: &str) -> f64 {
    svg.bold((INDENT, top + 34.0), 22.0, Anchor::Start, title);
    svg.text((INDENT, top + 62.0), 17.0, Anchor::Start, subtitle);
    top + 62.0
}

/// A value axis from 0 up, drawn into a plot from `bottom` up to
/// `bottom - height`.
pub struct Axis {
    ticks: Vec<f64>,
    /// The distance between round ticks, for their labels' decimals.
    step: f64,
    bottom: f64,
    height: f64,
}

impl Axis {
    /// An axis whose round ticks reach at least `highest`.
    pub fn to(highest: f64, bottom: f64, height: f64) -> Axis {
        let ticks = style::ticks(highest);
        let step = ticks.get(1).copied().unwrap_or(1.0);
        Axis {
            ticks,
            step,
            bottom,
            height,
        }
    }

    /// The same, with only its two ends labelled (a small panel).
    pub fn ends_only(mut self) -> Axis {
        let top = self.top();
        self.ticks = vec![0.0, top];
        self
    }

    /// The highest tick.
    pub fn top(&self) -> f64 {
        self.ticks.last().copied().unwrap_or(1.0)
    }

    /// Where `v` is, px down the page; clamped into the plot, so that a
    /// negative figure is at 0.
    pub fn y(&self, v: f64) -> f64 {
        let top = self.top();
        self.bottom - v.clamp(0.0, top) / top * self.height
    }

    /// The grid lines across the plot from `left` to `right`, with the
    /// ticks' labels left of it.
    pub fn draw(&self, svg: &mut Svg, (left, right): (f64, f64)) {
        for &t in &self.ticks {
            let y = self.y(t);
            svg.line((left, y), (right, y), &format!(r#"stroke="{GRID}""#));
            svg.text(
                (left - 8.0, y + 6.0),
                16.0,
                Anchor::End,
                &style::tick_label(t, self.step),
            );
        }
    }
}
