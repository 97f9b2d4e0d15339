//! `eddy-sim`: simulate an Eddy cluster from a scenario file.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use eddy_sim::Scenario;
use eddy_sim::fast::Run;
use eddy_sim::plan::Targets;

#[derive(Parser)]
#[command(name = "eddy-sim", about = "Simulate an Eddy cluster: the real planner and models against a scenario")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Read and check a scenario file, and print what it describes.
    Check {
        scenario: PathBuf,
        /// The scenario as JSON, with every default filled in.
        #[arg(long)]
        json: bool,
    },
    /// Simulate a scenario with the fast engine and print the summary.
    Run {
        scenario: PathBuf,
        /// The summary as one JSON object on standard output.
        #[arg(long)]
        json: bool,
        /// Also write the time series (one row a simulated minute): JSON if
        /// the name ends in .json, else CSV.
        #[arg(long)]
        series: Option<PathBuf>,
        /// Write an HTML report with plots (index.html), the series and the
        /// summary into this directory.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Event by event instead of time steps, to check the fast engine
        /// (failures act, but no planner moves anything: set placement.mode
        /// to "off").
        #[arg(long)]
        exact: bool,
    },
    /// Run every policy on the same scenario and seed, side by side.
    Compare {
        scenario: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Find the cheapest counts of the scenario's node types that meet the
    /// targets under its workload and failures; print the frontier.
    Plan {
        scenario: PathBuf,
        /// p99 response time over the whole run, in ms.
        #[arg(long)]
        slo_p99_ms: f64,
        /// Share of the events answered within the timeout, such as 0.999.
        #[arg(long)]
        availability: f64,
        /// Most nodes of each type to try.
        #[arg(long, default_value_t = 12)]
        max_count: u32,
        /// The result as one JSON object on standard output.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { scenario, json } => check(&scenario, json),
        Command::Run { scenario, json, series, report, exact } => {
            run(&scenario, json, series.as_deref(), report.as_deref(), exact)
        }
        Command::Compare { scenario, json } => compare(&scenario, json),
        Command::Plan { scenario, slo_p99_ms, availability, max_count, json } => {
            plan(&scenario, Targets { slo_p99_ms, availability }, max_count, json)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("eddy-sim: {err:#}");
            // A scenario or target that cannot be used is the caller's to fix.
            let usage = err.downcast_ref::<eddy_sim::ScenarioError>().is_some()
                || err.downcast_ref::<eddy_sim::plan::BadTarget>().is_some();
            if usage { ExitCode::from(2) } else { ExitCode::FAILURE }
        }
    }
}

fn check(path: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let scenario = Scenario::load(path)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&scenario)?);
    } else {
        print_summary(&scenario);
    }
    Ok(())
}

fn progress_bar(label: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(1000);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {percent}% {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(label.to_owned());
    bar
}

/// Runs the fast engine with a progress bar on standard error.
fn simulate(scenario: &Scenario, label: &str) -> Run {
    let bar = progress_bar(label);
    let run = eddy_sim::fast::run(scenario, |done| bar.set_position((done * 1000.0) as u64));
    bar.finish_and_clear();
    run
}

fn run(
    path: &std::path::Path,
    json: bool,
    series: Option<&std::path::Path>,
    report: Option<&std::path::Path>,
    exact: bool,
) -> anyhow::Result<()> {
    let scenario = Scenario::load(path)?;
    let run = if exact {
        let bar = progress_bar(&scenario.name);
        let run = eddy_sim::exact::run(&scenario, |done| bar.set_position((done * 1000.0) as u64));
        bar.finish_and_clear();
        run?
    } else {
        simulate(&scenario, &scenario.name)
    };
    if let Some(series_path) = series {
        let text = if series_path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) {
            serde_json::to_string(&run.series)?
        } else {
            eddy_sim::report::series_csv(&run.series)
        };
        std::fs::write(series_path, text)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", series_path.display()))?;
    }
    if run.summary.planner_calls > 0 {
        let calls = run.summary.planner_calls as f64;
        eprintln!(
            "planner: {} calls in {:.2} s ({:.2} ms a call)",
            run.summary.planner_calls,
            run.planner_time_s,
            run.planner_time_s * 1000.0 / calls
        );
    }
    if let Some(dir) = report {
        eddy_sim::html::write_report(dir, &run.summary, &run.series)
            .map_err(|e| anyhow::anyhow!("cannot write the report into {}: {e}", dir.display()))?;
        eprintln!("report: {}", dir.join("index.html").display());
    }
    if json {
        println!("{}", serde_json::to_string(&run.summary)?);
    } else {
        print!("{}", eddy_sim::report::summary_text(&run.summary));
    }
    Ok(())
}

fn compare(path: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let scenario = Scenario::load(path)?;
    let bar = progress_bar(&scenario.name);
    let summaries = eddy_sim::compare::compare(&scenario, |name, done| {
        bar.set_message(name.as_str());
        bar.set_position((done * 1000.0) as u64);
    });
    bar.finish_and_clear();
    if json {
        println!("{}", serde_json::to_string(&summaries)?);
    } else {
        print!("{}", eddy_sim::report::comparison_text(&summaries));
    }
    Ok(())
}

fn plan(path: &std::path::Path, targets: Targets, max_count: u32, json: bool) -> anyhow::Result<()> {
    targets.validate()?;
    let scenario = Scenario::load(path)?;
    let bar = progress_bar("clusters");
    let planned = eddy_sim::plan::search(&scenario, targets, max_count, |done, of| {
        bar.set_length(of as u64);
        bar.set_position(done as u64);
    });
    bar.finish_and_clear();
    if json {
        println!("{}", serde_json::to_string(&planned)?);
    } else {
        print!("{}", eddy_sim::plan::planned_text(&planned));
    }
    if planned.recommended.is_none() {
        anyhow::bail!("no cluster of at most {max_count} nodes per type meets the targets");
    }
    Ok(())
}

fn print_summary(s: &Scenario) {
    println!("scenario    {} (seed {}, {} s in steps of {} s)", s.name, s.seed, s.duration_s, s.step_s);
    let cores: f64 = s.node_types.iter().map(|t| t.cores * f64::from(t.count)).sum();
    let price: f64 = s.node_types.iter().map(|t| t.price_per_hour * f64::from(t.count)).sum();
    println!("nodes       {} ({cores} cores, {price:.2} per hour)", s.node_count());
    for t in &s.node_types {
        println!(
            "  {:<10} {} x {} cores, speed {}, {:.3}/h, zones {}",
            t.name,
            t.count,
            t.cores,
            t.speed,
            t.price_per_hour,
            t.zones.join(",")
        );
    }
    println!("partitions  {} (replication factor {})", s.partitions, s.replication_factor);
    println!("failures    {}", s.failures.len());
    println!("placement   {} with policy {}", s.placement.mode.as_str(), s.placement.policy.name.as_str());
}
