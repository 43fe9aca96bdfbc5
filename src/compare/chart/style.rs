//! How the charts look: the colours, the hatching, each model's line
//! (colour, marker shape, dash pattern: told apart by more than hue),
//! the axis ticks and how numbers are written on them.
//!
//! What is not here: the SVG elements (`svg`), the panels.

/// Text and axes.
pub const INK: &str = "#222222";
/// Grid lines.
pub const GRID: &str = "#d0d0d0";
/// Bars of a single series: a dark blue.
pub const BAR: &str = "#1f5f99";
/// Bars that the rounds cannot tell from zero: a light grey.
pub const NOISE: &str = "#b8b8b8";
/// A bar filled with the light hatching (`url(#hatch)`).
pub const HATCH: &str = "url(#hatch)";

/// The `<defs>` every chart has: a light blue hatching, for the second
/// bar of a pair (its lightness and its stripes set it apart, not only
/// its hue).
pub fn defs() -> String {
    format!(
        r##"<defs><pattern id="hatch" patternUnits="userSpaceOnUse" width="8" height="8" patternTransform="rotate(45)"><rect width="8" height="8" fill="#bcd7ee"/><line x1="0" y1="0" x2="0" y2="8" stroke="{BAR}" stroke-width="3"/></pattern></defs>
"##
    )
}

/// Okabe and Ito's colours, which read apart for the colour-blind too
/// (less the yellow, faint on white), and two more.
const COLOURS: [&str; 10] = [
    "#000000", "#e69f00", "#56b4e9", "#009e73", "#0072b2", "#d55e00", "#cc79a7", "#777777",
    "#8c564b", "#b8a000",
];

/// Dash patterns of the lines, in turn.
const DASHES: [&str; 4] = ["none", "10 5", "3 4", "12 4 3 4"];

/// The shapes a line's points are marked with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Marker {
    Circle,
    Square,
    TriangleUp,
    Diamond,
    TriangleDown,
}

const MARKERS: [Marker; 5] = [
    Marker::Circle,
    Marker::Square,
    Marker::TriangleUp,
    Marker::Diamond,
    Marker::TriangleDown,
];

/// How the `i`th model's line is drawn.
#[derive(Debug, Clone, Copy)]
pub struct Line {
    pub colour: &'static str,
    pub dash: &'static str,
    pub marker: Marker,
    /// Markers of the second five are hollow: ten models, ten marks.
    pub hollow: bool,
}

/// The `i`th model's line: no two of the first ten share both a marker
/// and a fill.
pub fn line(i: usize) -> Line {
    Line {
        colour: COLOURS[i % COLOURS.len()],
        dash: DASHES[i % DASHES.len()],
        marker: MARKERS[i % MARKERS.len()],
        hollow: (i / MARKERS.len()) % 2 == 1,
    }
}

impl Line {
    /// The SVG path of this line's marker centred on (`x`, `y`), about
    /// 12 px across.
    pub fn marker_path(&self, x: f64, y: f64) -> String {
        let r = 6.0;
        match self.marker {
            Marker::Circle => format!(
                "M{:.1},{y:.1} a{r},{r} 0 1,0 {:.1},0 a{r},{r} 0 1,0 {:.1},0 Z",
                x - r,
                2.0 * r,
                -2.0 * r
            ),
            Marker::Square => format!(
                "M{:.1},{:.1} h{:.1} v{:.1} h{:.1} Z",
                x - r,
                y - r,
                2.0 * r,
                2.0 * r,
                -2.0 * r
            ),
            Marker::TriangleUp => format!(
                "M{x:.1},{:.1} L{:.1},{:.1} L{:.1},{:.1} Z",
                y - r * 1.2,
                x + r * 1.1,
                y + r * 0.8,
                x - r * 1.1,
                y + r * 0.8
            ),
            Marker::TriangleDown => format!(
                "M{x:.1},{:.1} L{:.1},{:.1} L{:.1},{:.1} Z",
                y + r * 1.2,
                x + r * 1.1,
                y - r * 0.8,
                x - r * 1.1,
                y - r * 0.8
            ),
            Marker::Diamond => format!(
                "M{x:.1},{:.1} L{:.1},{y:.1} L{x:.1},{:.1} L{:.1},{y:.1} Z",
                y - r * 1.3,
                x + r * 1.3,
                y + r * 1.3,
                x - r * 1.3
            ),
        }
    }

    /// The attributes of its marker: filled, or white with a coloured
    /// rim.
    pub fn marker_style(&self) -> String {
        let fill = if self.hollow { "white" } else { self.colour };
        format!(r#"fill="{fill}" stroke="{}" stroke-width="2""#, self.colour)
    }

    /// The attributes of the line itself.
    pub fn stroke_style(&self) -> String {
        format!(
            r#"fill="none" stroke="{}" stroke-width="3" stroke-dasharray="{}""#,
            self.colour, self.dash
        )
    }
}

/// Ticks from 0 to at least `top`, four to eight of them, at 1, 2 or 5
/// times a power of ten.
pub fn ticks(top: f64) -> Vec<f64> {
    let top = if top.is_finite() && top > 0.0 {
        top
    } else {
        1.0
    };
    let rough = top / 5.0;
    let power = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|&s| s >= rough)
        .unwrap_or(10.0 * power);
    let n = (top / step - 1e-9).ceil().max(1.0) as usize;
    (0..=n).map(|i| i as f64 * step).collect()
}

/// A figure in at most four or five characters: "0.07", "2.7", "27",
/// "2700", "27k" from 27 000 up.
pub fn short(x: f64) -> String {
    let a = x.abs();
    if a >= 100_000.0 {
        format!("{:.0}k", x / 1000.0)
    } else if a >= 10_000.0 {
        format!("{:.1}k", x / 1000.0)
    } else if a >= 10.0 || a == 0.0 {
        format!("{x:.0}")
    } else if a >= 1.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// A tick's label: as few decimals as its step needs.
pub fn tick_label(x: f64, step: f64) -> String {
    if step >= 1.0 || x == 0.0 {
        format!("{x:.0}")
    } else {
        let decimals = (-step.log10()).ceil().max(0.0) as usize;
        format!("{x:.decimals$}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_cover_the_top_in_round_steps() {
        assert_eq!(ticks(273.6), vec![0.0, 100.0, 200.0, 300.0]);
        assert_eq!(ticks(9.0), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        let labels: Vec<String> = ticks(0.0).iter().map(|&t| tick_label(t, 0.2)).collect();
        assert_eq!(labels, ["0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
        let t = ticks(0.14);
        assert!(*t.last().unwrap() >= 0.14 && t.len() <= 9, "{t:?}");
    }

    #[test]
    fn ten_models_have_ten_different_marks() {
        let marks: Vec<(Marker, bool)> =
            (0..10).map(|i| (line(i).marker, line(i).hollow)).collect();
        for (i, a) in marks.iter().enumerate() {
            assert!(!marks[i + 1..].contains(a), "{i}: {marks:?}");
        }
    }

    #[test]
    fn short_figures() {
        assert_eq!(short(0.067), "0.07");
        assert_eq!(short(2.72), "2.7");
        assert_eq!(short(273.6), "274");
        assert_eq!(short(13496.0), "13.5k");
        assert_eq!(tick_label(0.4, 0.2), "0.4");
        assert_eq!(tick_label(200.0, 100.0), "200");
    }
}
