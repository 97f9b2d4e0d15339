//! What a run reports: the summary (one JSON object with `--json`) and a
//! time series.

use serde::Serialize;

/// The whole run in figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub scenario: String,
    pub seed: u64,
    pub policy: String,
    pub mode: String,
    /// Events offered over the run.
    pub events: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub slo_p99_ms: f64,
    /// Share of the served events answered within the SLO's p99 target.
    pub slo_attainment: f64,
    /// Share of the offered events answered within the timeout (events to
    /// a partition without a leader are not answered).
    pub availability: f64,
    /// Price of the nodes in use over the run, in the scenario's currency.
    pub cost: f64,
    pub moves: u64,
    pub bytes_moved: f64,
    pub planner_calls: u64,
    /// Nodes whose latency model, fed the simulated telemetry, had switched
    /// from the queueing prior to its learned curve by the end.
    pub nodes_on_learned_curve: usize,
}

/// One point of the time series, every minute of simulated time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesPoint {
    pub t_s: f64,
    pub events_per_s: f64,
    /// p99 of the events of the last minute.
    pub p99_ms: f64,
    pub price_per_hour: f64,
    pub moves_in_flight: usize,
    /// CPU demand over capacity, per node in node order.
    pub utilisation: Vec<f64>,
}

/// The summary for a terminal.
pub fn summary_text(s: &Summary) -> String {
    format!(
        "scenario        {} (seed {}, policy {}, mode {})\n\
         events          {:.0}\n\
         latency         p50 {:.2} ms, p99 {:.2} ms, p999 {:.2} ms\n\
         slo             {:.2}% of events within {} ms\n\
         availability    {:.4}%\n\
         cost            {:.2}\n\
         moves           {} ({:.1} MB copied), {} planner calls\n\
         models          {} nodes on their learned latency curve\n",
        s.scenario,
        s.seed,
        s.policy,
        s.mode,
        s.events,
        s.p50_ms,
        s.p99_ms,
        s.p999_ms,
        s.slo_attainment * 100.0,
        s.slo_p99_ms,
        s.availability * 100.0,
        s.cost,
        s.moves,
        s.bytes_moved / 1e6,
        s.planner_calls,
        s.nodes_on_learned_curve,
    )
}

/// Policies side by side, one row each.
pub fn comparison_text(summaries: &[Summary]) -> String {
    let mut out = String::from("| policy | p50 ms | p99 ms | p999 ms | within SLO | availability | cost | moves |\n");
    out.push_str("|---|---|---|---|---|---|---|---|\n");
    for s in summaries {
        out.push_str(&format!(
            "| {} | {:.2} | {:.2} | {:.2} | {:.2}% | {:.4}% | {:.2} | {} |\n",
            s.policy,
            s.p50_ms,
            s.p99_ms,
            s.p999_ms,
            s.slo_attainment * 100.0,
            s.availability * 100.0,
            s.cost,
            s.moves
        ));
    }
    out
}

/// The time series as CSV: one row a point, one utilisation column a node.
pub fn series_csv(series: &[SeriesPoint]) -> String {
    let nodes = series.first().map_or(0, |p| p.utilisation.len());
    let mut out = String::from("t_s,events_per_s,p99_ms,price_per_hour,moves_in_flight");
    for n in 1..=nodes {
        out.push_str(&format!(",utilisation_node_{n}"));
    }
    out.push('\n');
    for p in series {
        out.push_str(&format!("{},{},{},{},{}", p.t_s, p.events_per_s, p.p99_ms, p.price_per_hour, p.moves_in_flight));
        for u in &p.utilisation {
            out.push_str(&format!(",{u}"));
        }
        out.push('\n');
    }
    out
}
