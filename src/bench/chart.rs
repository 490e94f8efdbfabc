//! The latency-vs-throughput chart of a run (SVG): one curve per (target, single-row read
//! workload), a point per pacing (each open-loop rate, then closed loop at the maximum), p99
//! latency on a logarithmic axis.

use std::path::Path;

use plotters::prelude::*;

use super::report::Report;
use super::BenchError;

const SIZE: (u32, u32) = (960, 600);

/// Draws the report's latency curves into an SVG file at `path`.
pub fn draw_latency_chart(report: &Report, path: &Path) -> Result<(), BenchError> {
    let curves = report.latency_curves();
    let points = curves.iter().flat_map(|(_, points)| points.iter());
    let max_throughput = points.clone().map(|p| p.0).fold(1.0, f64::max);
    let (min_latency, max_latency) = points.fold((f64::MAX, 0.01f64), |(low, high), p| {
        (low.min(p.1), high.max(p.1))
    });
    let chart_error = |e: String| BenchError::Chart(path.display().to_string(), e);
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| chart_error(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption("p99 latency vs throughput", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(
            0.0..max_throughput * 1.05,
            (min_latency.min(max_latency) * 0.8..max_latency * 1.25).log_scale(),
        )
        .map_err(|e| chart_error(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("requests per second")
        .y_desc("p99 latency (ms)")
        .draw()
        .map_err(|e| chart_error(e.to_string()))?;
    for (index, (label, points)) in curves.iter().enumerate() {
        let color = Palette99::pick(index).to_rgba();
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(|e| chart_error(e.to_string()))?
            .label(label.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2)));
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(|e| chart_error(e.to_string()))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| chart_error(e.to_string()))?;
    root.present().map_err(|e| chart_error(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::report::{Measurement, Pace};
    use std::collections::BTreeMap;

    fn measurement(target: &str, pacing: Pace, rps: f64, p99: f64) -> Measurement {
        Measurement {
            workload: "get_features s".into(),
            keys: 100,
            pacing,
            target: target.into(),
            items_per_request: 1,
            item_unit: "req",
            requests_per_second: rps,
            latency_micros: [p99 / 2.0, p99 / 1.5, p99, p99 * 1.1, p99 * 1.2],
            succeeded: 10,
            errors: BTreeMap::new(),
            cpu_micros_per_request: None,
            client_cpu_micros_per_request: None,
        }
    }

    #[test]
    fn draws_one_curve_per_target_with_a_point_per_pacing() {
        let report = Report {
            measurements: vec![
                measurement("quiver", Pace::Closed, 9000.0, 4000.0),
                measurement("quiver", Pace::Rate(1000.0), 1000.0, 900.0),
                measurement("limit", Pace::Closed, 20000.0, 2000.0),
                measurement("limit", Pace::Rate(1000.0), 1000.0, 500.0),
            ],
            ..Report::default()
        };
        let curves = report.latency_curves();
        assert_eq!(curves.len(), 2);
        assert_eq!(curves[0].1, vec![(1000.0, 0.5), (20000.0, 2.0)]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chart.svg");
        draw_latency_chart(&report, &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"));
        // Two curves of two points each, and their two legend marks.
        let curves = svg.matches("stroke-width=\"2\" points=").count();
        assert_eq!(curves, 4, "{svg}");
        assert!(svg.contains("quiver: get_features s"));
    }
}
