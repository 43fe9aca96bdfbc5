//! A small SVG writer: rectangles, lines, paths, text and groups,
//! appended to one string, with the text escaped and every `<text>` given
//! its own font size. No fonts are loaded: the viewer picks a sans-serif.
//!
//! What is not here: where anything goes (the panels), colours and
//! shapes (`style`).

use std::fmt::Write as _;

/// The smallest font size any text gets, px: readable when projected.
pub const MIN_FONT: f64 = 16.0;

/// How wide a line of `text` is at `size` px, roughly: an average
/// sans-serif letter is about 0.55 em; 0.6 leaves a margin.
pub fn text_width(text: &str, size: f64) -> f64 {
    text.chars().count() as f64 * size * 0.6
}

/// `text` escaped for XML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Where a text's `x` is: its start, middle or end.
#[derive(Debug, Clone, Copy)]
pub enum Anchor {
    Start,
    Middle,
    End,
}

impl Anchor {
    fn name(self) -> &'static str {
        match self {
            Anchor::Start => "start",
            Anchor::Middle => "middle",
            Anchor::End => "end",
        }
    }
}

/// The elements written so far; [`Svg::finish`] wraps them in `<svg>`.
#[derive(Debug, Default)]
pub struct Svg {
    body: String,
}

impl Svg {
    /// Opens a `<g>` with these attributes (already escaped), as
    /// `class="histogram" data-model="prefork"`.
    pub fn open(&mut self, attributes: &str) {
        let _ = writeln!(self.body, "<g {attributes}>");
    }

    /// Closes the last `<g>`.
    pub fn close(&mut self) {
        self.body.push_str("</g>\n");
    }

    /// A rectangle; `attributes` gives its fill, class and data.
    pub fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, attributes: &str) {
        let _ = writeln!(
            self.body,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" {attributes}/>"#,
            w.max(0.0),
            h.max(0.0)
        );
    }

    /// A straight line.
    pub fn line(&mut self, (x1, y1): (f64, f64), (x2, y2): (f64, f64), attributes: &str) {
        let _ = writeln!(
            self.body,
            r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" {attributes}/>"#
        );
    }

    /// A path of path data `d`.
    pub fn path(&mut self, d: &str, attributes: &str) {
        let _ = writeln!(self.body, r#"<path d="{d}" {attributes}/>"#);
    }

    /// One line of text at (`x`, `y`), `y` its baseline; `size` is raised
    /// to [`MIN_FONT`].
    pub fn text(&mut self, (x, y): (f64, f64), size: f64, anchor: Anchor, text: &str) {
        self.styled_text((x, y), size, anchor, "", text);
    }

    /// The same in bold.
    pub fn bold(&mut self, (x, y): (f64, f64), size: f64, anchor: Anchor, text: &str) {
        self.styled_text((x, y), size, anchor, r#"font-weight="bold" "#, text);
    }

    fn styled_text(
        &mut self,
        (x, y): (f64, f64),
        size: f64,
        anchor: Anchor,
        extra: &str,
        text: &str,
    ) {
        let _ = writeln!(
            self.body,
            r#"<text x="{x:.1}" y="{y:.1}" font-size="{:.0}" text-anchor="{}" {extra}fill="{}">{}</text>"#,
            size.max(MIN_FONT),
            anchor.name(),
            super::style::INK,
            escape(text)
        );
    }

    /// The whole document, `width` by `height` px, on white, with the
    /// patterns the bars may fill with.
    pub fn finish(self, width: f64, height: f64, title: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="DejaVu Sans, Verdana, Arial, sans-serif">"#
        );
        let _ = writeln!(out, "<title>{}</title>", escape(title));
        out.push_str(&super::style::defs());
        let _ = writeln!(
            out,
            r#"<rect x="0" y="0" width="{width:.0}" height="{height:.0}" fill="white"/>"#
        );
        out.push_str(&self.body);
        out.push_str("</svg>\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_never_small() {
        let mut svg = Svg::default();
        svg.text((1.0, 2.0), 10.0, Anchor::Middle, "a<b & \"c\"");
        let out = svg.finish(100.0, 50.0, "t&");
        let doc = roxmltree::Document::parse(&out).unwrap();
        let text = doc.descendants().find(|n| n.has_tag_name("text")).unwrap();
        assert_eq!(text.text(), Some("a<b & \"c\""));
        assert_eq!(text.attribute("font-size"), Some("16"));
    }
}
