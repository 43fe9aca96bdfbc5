//! `compare --chart`: connections per second against concurrent clients,
//! one series per model, as an SVG file (plotters; its SVG backend leaves
//! the fonts to the browser, so nothing is loaded from the system).

use std::path::Path;

use plotters::prelude::*;

use super::Report;

/// Writes the chart of `rows` to `path`.
pub fn write(path: &Path, report: &Report) -> Result<(), String> {
    let rows = &report.rows;
    let mut models: Vec<&str> = Vec::new();
    for r in rows {
        if !models.contains(&r.model.as_str()) {
            models.push(&r.model);
        }
    }
    let mut clients: Vec<usize> = rows.iter().map(|r| r.clients).collect();
    clients.sort_unstable();
    clients.dedup();
    let top = rows
        .iter()
        .map(|r| r.per_second.median)
        .fold(0.0f64, f64::max)
        .max(1.0)
        * 1.1;
    let fail = |e: &dyn std::fmt::Display| format!("cannot draw {}: {e}", path.display());
    let root = SVGBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    // Client counts on a categorical axis (1, 8, 64 are far apart).
    let xs = clients.len().max(1);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "preforkd compare: connections per second",
            ("sans-serif", 22),
        )
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.5f64..(xs as f64 - 0.5), 0f64..top)
        .map_err(|e| fail(&e))?;
    let label_of = |x: &f64| -> String {
        let i = x.round();
        if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < clients.len() {
            match clients[i as usize] {
                1 => "1 client".to_string(),
                n => format!("{n} clients"),
            }
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .x_labels(xs * 2 + 1)
        .x_label_formatter(&label_of)
        .y_label_formatter(&|y| format!("{y:.0}"))
        .y_desc("connections per second")
        .disable_x_mesh()
        .draw()
        .map_err(|e| fail(&e))?;
    for (i, model) in models.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let points: Vec<(f64, f64)> = clients
            .iter()
            .enumerate()
            .filter_map(|(x, c)| {
                rows.iter()
                    .find(|r| r.model == *model && r.clients == *c)
                    .map(|r| (x as f64, r.per_second.median))
            })
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(|e| fail(&e))?
            .label(*model)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))
            .map_err(|e| fail(&e))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))
}
