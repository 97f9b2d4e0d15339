//! The HTML report of one run (`eddy-sim run --report DIR`): the summary
//! and three plots drawn as inline SVG: p99 latency over time against the
//! SLO, a heat map of each node's utilisation, and the price of the nodes
//! in use with the money spent so far. Beside it the series as CSV and the
//! summary as JSON. SVG is written directly: the plots need lines,
//! rectangles and text, which a browser draws, and plotting libraries
//! bring font discovery that machines without system fonts lack.

use std::fmt::Write as _;
use std::path::Path;

use crate::report::{SeriesPoint, Summary, series_csv, summary_text};

const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 40.0;
/// Columns of the heat map at most; the series is folded into them.
const HEAT_COLUMNS: usize = 240;

/// Writes `index.html`, `series.csv` and `summary.json` into `dir`.
pub fn write_report(dir: &Path, summary: &Summary, series: &[SeriesPoint]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("index.html"), page(summary, series))?;
    std::fs::write(dir.join("series.csv"), series_csv(series))?;
    let json = serde_json::to_string_pretty(summary).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("summary.json"), json)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The whole page.
pub fn page(summary: &Summary, series: &[SeriesPoint]) -> String {
    let hours: Vec<f64> = series.iter().map(|p| p.t_s / 3600.0).collect();
    let p99: Vec<f64> = series.iter().map(|p| p.p99_ms).collect();
    let slo = vec![summary.slo_p99_ms; series.len()];
    let price: Vec<f64> = series.iter().map(|p| p.price_per_hour).collect();
    let mut spent = Vec::with_capacity(series.len());
    let mut total = 0.0;
    let mut last_t = 0.0;
    for p in series {
        total += p.price_per_hour * (p.t_s - last_t) / 3600.0;
        last_t = p.t_s;
        spent.push(total);
    }
    let mut html = String::from("<!doctype html>\n<html><head><meta charset=\"utf-8\">");
    let _ = write!(html, "<title>eddy-sim: {}</title>", escape(&summary.scenario));
    html.push_str("<style>body{font-family:sans-serif;margin:2em;max-width:960px}pre{background:#f4f4f4;padding:1em}</style></head><body>\n");
    let _ = writeln!(html, "<h1>{}</h1>\n<pre>{}</pre>", escape(&summary.scenario), escape(&summary_text(summary)));
    html.push_str("<h2>p99 latency over time</h2>\n");
    let latency = Scale::log(&[&p99, &slo]);
    html.push_str(&line_chart(&hours, &[("p99 ms", &p99, "#c0392b"), ("SLO", &slo, "#7f8c8d")], latency, "ms (log)"));
    html.push_str("<h2>Utilisation per node</h2>\n");
    html.push_str(&heat_map(&hours, series));
    html.push_str("<h2>Cost</h2>\n");
    let price_line = [("price per hour of the nodes in use", price.as_slice(), "#2980b9")];
    html.push_str(&line_chart(&hours, &price_line, Scale::linear(&[&price]), "per hour"));
    html.push_str(&line_chart(&hours, &[("spent so far", &spent, "#27ae60")], Scale::linear(&[&spent]), "money"));
    html.push_str("<p>Data: <a href=\"series.csv\">series.csv</a>, <a href=\"summary.json\">summary.json</a></p>\n");
    html.push_str("</body></html>\n");
    html
}

/// Rounds `x` up to 1, 2 or 5 times a power of ten, for axis ends.
fn nice_ceiling(x: f64) -> f64 {
    if !(x.is_finite() && x > 0.0) {
        return 1.0;
    }
    let power = 10f64.powf(x.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * power).find(|v| *v >= x).unwrap_or(10.0 * power)
}

fn svg_open(height: f64) -> String {
    format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" font-size=\"11\">\n")
}

/// How values map onto the height of a chart.
#[derive(Debug, Clone, Copy)]
enum Scale {
    /// From 0 to a round ceiling.
    Linear { max: f64 },
    /// Decades from `low` to `high` (both powers of ten): latency spans
    /// milliseconds to minutes when a node falls behind.
    Log { low: f64, high: f64 },
}

impl Scale {
    fn linear(values: &[&[f64]]) -> Scale {
        let highest = values.iter().flat_map(|v| v.iter()).copied().filter(|v| v.is_finite()).fold(0.0, f64::max);
        Scale::Linear { max: nice_ceiling(highest) }
    }

    fn log(values: &[&[f64]]) -> Scale {
        let finite = || values.iter().flat_map(|v| v.iter()).copied().filter(|v| v.is_finite() && *v > 0.0);
        let lowest = finite().fold(f64::MAX, f64::min);
        let highest = finite().fold(0.0, f64::max);
        if highest <= 0.0 {
            return Scale::Log { low: 0.1, high: 10.0 };
        }
        let low = 10f64.powf(lowest.log10().floor());
        let high = 10f64.powf(highest.log10().ceil()).max(low * 10.0);
        Scale::Log { low, high }
    }

    /// Share of the height for `value`, within [0, 1].
    fn at(self, value: f64) -> f64 {
        let share = match self {
            Scale::Linear { max } => value / max,
            Scale::Log { low, high } => (value.max(low).log10() - low.log10()) / (high.log10() - low.log10()),
        };
        if share.is_finite() { share.clamp(0.0, 1.0) } else { 0.0 }
    }

    /// Tick values: five steps, or one a decade.
    fn ticks(self) -> Vec<f64> {
        match self {
            Scale::Linear { max } => (0..=5).map(|i| max * f64::from(i) / 5.0).collect(),
            Scale::Log { low, high } => {
                let decades = (high.log10() - low.log10()).round() as i32;
                (0..=decades).map(|d| low * 10f64.powi(d)).collect()
            }
        }
    }
}

/// Axes over `hours` of time and `scale`; answers the SVG so far.
fn axes(end_hours: f64, scale: Scale, y_label: &str) -> String {
    let mut svg = svg_open(HEIGHT);
    let (x0, y0, x1, y1) = (LEFT, HEIGHT - BOTTOM, WIDTH - RIGHT, TOP);
    let _ = writeln!(svg, "<path d=\"M{x0} {y1}V{y0}H{x1}\" stroke=\"#333\" fill=\"none\"/>");
    for i in 0..=6 {
        let f = f64::from(i) / 6.0;
        let x = x0 + f * (x1 - x0);
        let _ = writeln!(
            svg,
            "<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            y0 + 15.0,
            tick(f * end_hours)
        );
    }
    for value in scale.ticks() {
        let y = y0 - scale.at(value) * (y0 - y1);
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            x0 - 5.0,
            y + 4.0,
            tick(value)
        );
        let _ = writeln!(svg, "<path d=\"M{x0} {y:.1}H{x1}\" stroke=\"#eee\"/>");
    }
    let _ = writeln!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">hours</text>",
        (x0 + x1) / 2.0,
        HEIGHT - 5.0
    );
    let _ = writeln!(svg, "<text x=\"5\" y=\"15\">{}</text>", escape(y_label));
    svg
}

fn tick(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.3}").trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

/// Lines over a shared time axis, each with a legend entry.
fn line_chart(hours: &[f64], lines: &[(&str, &[f64], &str)], scale: Scale, y_label: &str) -> String {
    let end = hours.last().copied().filter(|h| *h > 0.0).unwrap_or(1.0);
    let mut svg = axes(end, scale, y_label);
    let (x0, y0) = (LEFT, HEIGHT - BOTTOM);
    let (w, h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    for (i, (label, ys, colour)) in lines.iter().enumerate() {
        let points: Vec<String> = hours
            .iter()
            .zip(ys.iter())
            .map(|(x, y)| format!("{:.1},{:.1}", x0 + x / end * w, y0 - scale.at(*y) * h))
            .collect();
        let _ = writeln!(svg, "<polyline points=\"{}\" stroke=\"{colour}\" fill=\"none\"/>", points.join(" "));
        let lx = x0 + 10.0 + 220.0 * i as f64;
        let _ = writeln!(svg, "<rect x=\"{lx}\" y=\"{}\" width=\"12\" height=\"3\" fill=\"{colour}\"/>", TOP - 12.0);
        let _ = writeln!(svg, "<text x=\"{}\" y=\"{}\">{}</text>", lx + 16.0, TOP - 8.0, escape(label));
    }
    svg.push_str("</svg>\n");
    svg
}

/// Colour of a utilisation: white at 0, orange towards 1, dark red above.
fn heat_colour(utilisation: f64) -> String {
    if utilisation > 1.0 {
        return "#7b0000".to_owned();
    }
    let u = utilisation.clamp(0.0, 1.0);
    let g = (255.0 - 175.0 * u) as u8;
    let b = (255.0 - 255.0 * u) as u8;
    format!("#ff{g:02x}{b:02x}")
}

/// One row per node, one column per time slice (the busiest moment of it).
fn heat_map(hours: &[f64], series: &[SeriesPoint]) -> String {
    let nodes = series.first().map_or(0, |p| p.utilisation.len());
    if nodes == 0 {
        return "<p>(no nodes)</p>\n".to_owned();
    }
    let columns = series.len().clamp(1, HEAT_COLUMNS);
    let row_h = (400.0 / nodes as f64).clamp(2.0, 16.0);
    let height = TOP + row_h * nodes as f64 + BOTTOM;
    let (w, x0) = (WIDTH - LEFT - RIGHT, LEFT);
    let mut svg = svg_open(height);
    let cell_w = w / columns as f64;
    for c in 0..columns {
        let from = c * series.len() / columns;
        let to = ((c + 1) * series.len() / columns).max(from + 1);
        for n in 0..nodes {
            let busiest = series[from..to].iter().filter_map(|p| p.utilisation.get(n)).copied().fold(0.0, f64::max);
            let _ = writeln!(
                svg,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.2}\" height=\"{row_h:.2}\" fill=\"{}\"/>",
                x0 + c as f64 * cell_w,
                TOP + n as f64 * row_h,
                cell_w + 0.3,
                heat_colour(busiest)
            );
        }
    }
    let label_every = ((nodes as f64 * 12.0 / (row_h * nodes as f64)).ceil() as usize).max(1);
    for n in (0..nodes).step_by(label_every) {
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">node {}</text>",
            x0 - 5.0,
            TOP + (n as f64 + 0.8) * row_h,
            n + 1
        );
    }
    let end = hours.last().copied().unwrap_or(0.0);
    let _ = writeln!(svg, "<text x=\"{x0}\" y=\"{:.1}\">0 h</text>", height - 20.0);
    let _ = writeln!(svg, "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{end:.2} h</text>", x0 + w, height - 20.0);
    let _ = writeln!(
        svg,
        "<text x=\"{x0}\" y=\"{:.1}\">white idle, orange busy, dark red above capacity (busiest moment of each slice)</text>",
        height - 5.0
    );
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_draws_every_node_and_the_slo_and_escapes_names() {
        let mut s = crate::test_scenarios::one_node(2, 1000.0, 600, 1);
        s.name = "a<b".into();
        let run = crate::fast::run(&s, |_| {});
        let html = page(&run.summary, &run.series);
        assert!(html.contains("a&lt;b") && !html.contains("a<b"));
        assert_eq!(html.matches("<svg").count(), 4);
        assert!(html.contains("SLO") && html.contains("node 1"));
        // Ten points a minute apart, one polyline each for p99, SLO, price, spent.
        assert_eq!(html.matches("<polyline").count(), 4);
        assert_eq!(run.series.len(), 10);
        assert!(html.contains(&format!("{:.2} ms", run.summary.p99_ms)));
    }

    #[test]
    fn axes_end_on_round_numbers_and_overload_is_dark() {
        assert_eq!(nice_ceiling(0.7), 1.0);
        assert_eq!(nice_ceiling(13.0), 20.0);
        assert_eq!(nice_ceiling(4800.0), 5000.0);
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(heat_colour(0.0), "#ffffff");
        let log = Scale::log(&[&[3.0, 250.0]]);
        assert_eq!(log.ticks(), vec![1.0, 10.0, 100.0, 1000.0]);
        assert!((log.at(10.0) - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(log.at(1e9), 1.0);
        assert_eq!(heat_colour(1.5), "#7b0000");
    }
}
