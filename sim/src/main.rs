//! `eddy-sim`: simulate an Eddy cluster from a scenario file.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use eddy_sim::Scenario;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { scenario, json } => match Scenario::load(&scenario) {
            Ok(scenario) => {
                if json {
                    match serde_json::to_string_pretty(&scenario) {
                        Ok(text) => println!("{text}"),
                        Err(err) => {
                            eprintln!("eddy-sim: {err}");
                            return ExitCode::FAILURE;
                        }
                    }
                } else {
                    print_summary(&scenario);
                }
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("eddy-sim: {err}");
                ExitCode::from(2)
            }
        },
    }
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
