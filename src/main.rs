//! The `redline` command line: parses arguments and calls into the library.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use redline::config::Config;

/// Redis, job-queue, PostgreSQL and host monitoring with generated alerts and dashboards.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: collect in the background and serve /metrics.
    Run {
        /// Daemon configuration file.
        #[arg(short, long, env = "REDLINE_CONFIG", default_value = "redline.yaml")]
        config: PathBuf,
        /// Override the configured listen address (e.g. 0.0.0.0:9860).
        #[arg(long, env = "REDLINE_LISTEN")]
        listen: Option<std::net::SocketAddr>,
    },
    /// Validate the configuration; print every problem as file:line:col and exit non-zero.
    Check {
        /// Daemon configuration file.
        #[arg(short, long, env = "REDLINE_CONFIG", default_value = "redline.yaml")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("REDLINE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { config } => check(&config),
        Command::Run { config, listen } => run(&config, listen),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("redline: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check(path: &std::path::Path) -> anyhow::Result<()> {
    Config::load(path)?;
    println!("{}: OK", path.display());
    Ok(())
}

fn run(path: &std::path::Path, listen: Option<std::net::SocketAddr>) -> anyhow::Result<()> {
    let mut config = Config::load(path)?;
    if let Some(l) = listen {
        config.listen = l;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        redline::daemon::run(config, listener, shutdown_signal()).await?;
        Ok(())
    })
}

/// Completes on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
