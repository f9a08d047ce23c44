//! SVG charts for `--plot DIR`: every row's advantage over its peer with the goal, and hit-ratio
//! curves per trace.

use crate::hitratio::{Ratios, Trace};
use crate::report::{Better, Row};
use plotters::prelude::*;
use std::path::Path;

type PlotResult = Result<(), Box<dyn std::error::Error>>;

/// A curve: its name, colour and which figure of [`Ratios`] it draws.
type Series = (&'static str, RGBColor, fn(&Ratios) -> f64);

/// How many times better than its peer a row is (above 1: braincache wins), and its goal on
/// the same scale: throughput and hit ratios as they are, times and latencies inverted.
fn advantage(r: &Row) -> Option<(f64, Option<f64>)> {
    if !r.ratio.is_finite() || r.ratio <= 0.0 {
        return None;
    }
    Some(match r.better {
        Better::Higher => (r.ratio, r.goal),
        Better::Lower => (1.0 / r.ratio, r.goal.map(|g| 1.0 / g)),
    })
}

/// `ratios.svg`: one horizontal bar per row (log scale), a tick at its goal, a line at 1x.
pub fn ratios(dir: &Path, rows: &[Row]) -> PlotResult {
    let bars: Vec<(String, f64, Option<f64>)> = rows
        .iter()
        .filter_map(|r| {
            advantage(r).map(|(a, g)| {
                let mut label = format!("{} vs {}", r.workload, r.peer);
                if label.len() > 90 {
                    label.truncate(87);
                    label.push_str("...");
                }
                (label, a, g)
            })
        })
        .collect();
    if bars.is_empty() {
        return Ok(());
    }
    let path = dir.join("ratios.svg");
    let height = 120 + 26 * bars.len() as u32;
    let root = SVGBackend::new(&path, (1400, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let hi = bars
        .iter()
        .flat_map(|(_, a, g)| [*a, g.unwrap_or(1.0)])
        .fold(2.0f64, f64::max)
        * 1.3;
    let lo = bars
        .iter()
        .flat_map(|(_, a, g)| [*a, g.unwrap_or(1.0)])
        .fold(0.5f64, f64::min)
        / 1.3;
    let n = bars.len();
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "braincache vs its peer, same run (x times better; > 1 wins; | = goal)",
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(620)
        .build_cartesian_2d((lo..hi).log_scale(), 0f64..n as f64)?;
    chart
        .configure_mesh()
        .y_labels(n)
        .y_label_formatter(&|y| {
            let i = y.floor() as usize;
            bars.get(n.saturating_sub(i + 1))
                .map(|b| b.0.clone())
                .unwrap_or_default()
        })
        .y_label_style(("sans-serif", 12))
        .x_desc("advantage over the peer (log scale)")
        .draw()?;
    for (i, (_, a, goal)) in bars.iter().enumerate() {
        let y = (n - i - 1) as f64;
        let met = goal.is_none_or(|g| *a >= g);
        let color = if met { GREEN.mix(0.7) } else { RED.mix(0.7) };
        chart.draw_series(std::iter::once(Rectangle::new(
            [(lo, y + 0.15), (*a, y + 0.85)],
            color.filled(),
        )))?;
        if let Some(g) = goal {
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(*g, y + 0.05), (*g, y + 0.95)],
                BLACK.stroke_width(3),
            )))?;
        }
    }
    chart.draw_series(std::iter::once(PathElement::new(
        vec![(1.0, 0.0), (1.0, n as f64)],
        BLUE.stroke_width(1),
    )))?;
    root.present()?;
    Ok(())
}

/// `hitratio-<n>.svg`: hit ratio against the bound for each policy, one chart per trace.
pub fn curves(dir: &Path, curves: &[(Trace, Vec<(f64, Ratios)>)]) -> PlotResult {
    for (idx, (trace, points)) in curves.iter().enumerate() {
        let path = dir.join(format!("hitratio-{}.svg", idx + 1));
        let root = SVGBackend::new(&path, (900, 560)).into_drawing_area();
        root.fill(&WHITE)?;
        let x_max = points.iter().map(|p| p.0).fold(1.0, f64::max);
        let x_min = points.iter().map(|p| p.0).fold(x_max, f64::min);
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!(
                    "hit ratio, {} ({} keys)",
                    trace.name(),
                    crate::hitratio::UNIVERSE
                ),
                ("sans-serif", 20),
            )
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(55)
            .build_cartesian_2d((x_min..x_max).log_scale(), 0f64..1f64)?;
        chart
            .configure_mesh()
            .x_desc("bound, % of the key space (log scale)")
            .y_desc("hit ratio")
            .draw()?;
        let series: [Series; 4] = [
            ("braincache", RGBColor(0, 140, 60), |r| r.braincache),
            ("moka", RGBColor(200, 60, 40), |r| r.moka),
            ("quick_cache", RGBColor(40, 90, 200), |r| r.quick_cache),
            ("Bélády optimum", RGBColor(90, 90, 90), |r| r.optimum),
        ];
        for (name, color, pick) in series {
            let data: Vec<(f64, f64)> = points.iter().map(|(x, r)| (*x, pick(r))).collect();
            chart
                .draw_series(LineSeries::new(data.clone(), color.stroke_width(2)))?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart.draw_series(data.into_iter().map(|p| Circle::new(p, 3, color.filled())))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
    }
    Ok(())
}
