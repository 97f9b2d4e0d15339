//! `eddyd`: runs one Eddy node.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use eddy_node::RunningNode;
use eddy_node::config::{DEV_ADDR, NodeConfig};
use tracing_subscriber::EnvFilter;

// A node allocates and frees many small buffers per event (messages, log
// records); mimalloc does that with far less CPU than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "eddyd", version, about = "Run an Eddy node")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start a complete single-node cluster (controller and worker) with
    /// embedded storage; no other setup needed.
    Dev {
        /// Where the node keeps its data.
        #[arg(long, default_value = "eddy-data")]
        data_dir: PathBuf,
        /// Address the client API listens on.
        #[arg(long, default_value = DEV_ADDR)]
        listen: String,
    },
    /// Run one node from a TOML manifest; EDDY_<SECTION>__<FIELD> variables
    /// override the manifest's fields.
    Run {
        #[arg(long)]
        config: PathBuf,
    },
    /// Check a manifest (with environment overrides) and print the result.
    Check {
        #[arg(long)]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (config, dev) = match load(&cli.command) {
        Ok(loaded) => loaded,
        Err(err) => {
            eprintln!("eddyd: {err}");
            return ExitCode::from(2);
        }
    };
    if let Command::Check { .. } = cli.command {
        match toml::to_string_pretty(&config) {
            Ok(text) => {
                println!("{text}");
                return ExitCode::SUCCESS;
            }
            Err(err) => {
                eprintln!("eddyd: cannot print the manifest: {err}");
                return ExitCode::FAILURE;
            }
        }
    }
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("eddyd: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config, dev)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("eddyd: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(command: &Command) -> Result<(NodeConfig, bool), eddy_node::config::ConfigError> {
    match command {
        Command::Dev { data_dir, listen } => Ok((NodeConfig::load(NodeConfig::dev(data_dir, listen), None)?, true)),
        Command::Run { config } | Command::Check { config } => {
            Ok((NodeConfig::load(NodeConfig::default(), Some(config))?, false))
        }
    }
}

fn init_logging() {
    let filter = EnvFilter::try_from_env("EDDY_LOG").unwrap_or_else(|_| {
        EnvFilter::new("info,openraft=error,h2=warn,tower=warn,hyper=warn,fjall=warn,lsm_tree=warn")
    });
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).init();
}

async fn serve(config: NodeConfig, dev: bool) -> anyhow::Result<()> {
    let data_dir = config.node.data_dir.clone();
    let node = RunningNode::start(config).await?;
    if dev {
        println!("eddy is running: a single-node cluster (controller and worker)");
        println!("  client endpoint  {}", node.addr());
        println!("  data dir         {}", data_dir.display());
        println!("  try              eddyctl --endpoints {} status", node.addr());
    } else {
        println!("eddyd listening on {}", node.addr());
    }
    tokio::select! {
        signal = wait_for_signal() => signal?,
        reason = node.failed() => {
            tracing::error!(%reason, "the node cannot go on; exiting so that it is restarted");
            node.shutdown().await;
            anyhow::bail!("{reason}; check the disk and the data dir, then start eddyd again");
        }
    }
    tracing::info!("stopping");
    node.shutdown().await;
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result?,
        _ = terminate.recv() => {}
    }
    Ok(())
}
