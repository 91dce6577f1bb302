//! The `redline` command line: parses arguments and calls into the library.
#![forbid(unsafe_code)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use redline::config::Config;
use redline::generate::{dashboards, rules};
use redline::thresholds::Thresholds;

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
        /// Serve POST /-/reload, like Prometheus' flag of the same name. Off by default: anyone
        /// who reaches the port could trigger reloads. SIGHUP and file changes reload anyway.
        #[arg(long = "web.enable-lifecycle", env = "REDLINE_WEB_ENABLE_LIFECYCLE")]
        enable_lifecycle: bool,
    },
    /// Validate the configuration and thresholds; print every problem as file:line:col and exit non-zero.
    Check {
        /// Daemon configuration file (skipped if it does not exist and was not named).
        #[arg(short, long, env = "REDLINE_CONFIG")]
        config: Option<PathBuf>,
        /// Thresholds file [default: the one the config names, as `run` loads it (the built-in
        /// defaults when it names none); without --config, rules/thresholds.yaml].
        #[arg(short, long)]
        thresholds: Option<PathBuf>,
    },
    /// Write rules, rule tests and dashboards from the thresholds file.
    Generate {
        /// Thresholds file.
        #[arg(short, long, default_value = "rules/thresholds.yaml")]
        thresholds: PathBuf,
        /// Directory for redline.rules.yml and redline.rules.test.yml.
        #[arg(long, default_value = "rules")]
        rules_dir: PathBuf,
        /// Directory for the Grafana dashboards.
        #[arg(long, default_value = "grafana")]
        dashboards_dir: PathBuf,
        /// Where to write the runbook document.
        #[arg(long, default_value = "docs/runbooks.md")]
        runbooks: PathBuf,
        /// Where to write the Kubernetes PrometheusRule and thresholds ConfigMap.
        #[arg(long, default_value = "deploy/kubernetes")]
        kubernetes_dir: PathBuf,
        /// Namespace of the Kubernetes resources.
        #[arg(long, default_value = "queues")]
        namespace: String,
    },
    /// Capture the current metrics of all targets to a file (for `redline diff`).
    Snapshot {
        /// Output file.
        #[arg(short, long)]
        out: PathBuf,
        /// Collect once from the targets in this config (no daemon needed)...
        #[arg(short, long, env = "REDLINE_CONFIG", conflicts_with = "url")]
        config: Option<PathBuf>,
        /// ...or scrape a running redline, e.g. http://127.0.0.1:9860/metrics. A
        /// `user:password@` part is sent as basic auth and never written anywhere.
        #[arg(long)]
        url: Option<String>,
    },
    /// Compare two snapshots: a markdown report of what changed and which thresholds are crossed.
    Diff {
        /// Snapshot taken before.
        before: PathBuf,
        /// Snapshot taken after.
        after: PathBuf,
        /// Thresholds to judge the after-state by.
        #[arg(short, long, default_value = "rules/thresholds.yaml")]
        thresholds: PathBuf,
        /// Include unchanged series and redline's own per-capture noise.
        #[arg(long)]
        all: bool,
    },
    /// Every threshold with its current value, level and headroom, worst first; exit 0 healthy,
    /// 1 a warning crossed, 2 a critical crossed, 3 when nothing could be judged.
    Status {
        /// A running redline: http://127.0.0.1:9860 (or its /metrics URL); wins over --config...
        #[arg(long)]
        url: Option<String>,
        /// ...or collect from this config's targets (redline.yaml when neither is given).
        #[arg(short, long, env = "REDLINE_CONFIG")]
        config: Option<PathBuf>,
        /// Thresholds [default: the levels the daemon has in force; with --config, its file].
        #[arg(short, long)]
        thresholds: Option<PathBuf>,
        /// Time between the two captures rates are computed from (at least the collection interval).
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        window: std::time::Duration,
        /// Output format.
        #[arg(long, value_enum, default_value_t = StatusFormat::Text)]
        format: StatusFormat,
        /// Lowest crossed level that makes the exit code non-zero.
        #[arg(long, value_enum, default_value_t = FailOn::Warning)]
        fail_on: FailOn,
    },
    /// Prometheus rules.
    Rules {
        #[command(subcommand)]
        action: RulesAction,
    },
    /// Grafana dashboards.
    Dashboards {
        #[command(subcommand)]
        action: DashboardsAction,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum StatusFormat {
    /// A table; coloured on a terminal (unless NO_COLOR is set), plain when piped.
    Text,
    /// Every row with its numbers, for scripts.
    Json,
    /// A markdown table, for a CI job summary or a ticket.
    Markdown,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum FailOn {
    /// Exit 1 on a crossed warning, 2 on a crossed critical.
    Warning,
    /// Exit 2 on a crossed critical; warnings exit 0.
    Critical,
}

#[derive(Subcommand)]
enum RulesAction {
    /// Print (or write) the Prometheus rule file.
    Generate {
        /// Thresholds file.
        #[arg(short, long, default_value = "rules/thresholds.yaml")]
        thresholds: PathBuf,
        /// Write here instead of standard output.
        #[arg(short, long)]
        out: Option<PathBuf>,
        /// Emit a prometheus-operator PrometheusRule resource instead of a rule file.
        #[arg(long)]
        prometheus_rule: bool,
        /// metadata.name of the PrometheusRule.
        #[arg(long, default_value = "redline")]
        name: String,
        /// metadata.namespace of the PrometheusRule.
        #[arg(long)]
        namespace: Option<String>,
    },
}

#[derive(Subcommand)]
enum DashboardsAction {
    /// Write the Grafana dashboards.
    Generate {
        /// Thresholds file.
        #[arg(short, long, default_value = "rules/thresholds.yaml")]
        thresholds: PathBuf,
        /// Output directory.
        #[arg(short, long, default_value = "grafana")]
        out_dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // `status` reserves 1 and 2 for crossed levels: its usage errors are "unknown" (3).
            let code = e.exit_code();
            let status = std::env::args().nth(1).as_deref() == Some("status");
            return ExitCode::from(if code != 0 && status { 3 } else { u8::try_from(code).unwrap_or(2) });
        }
    };
    // `status` prints a report: the collectors it may start should not chat on stderr.
    let default_log = if matches!(cli.command, Command::Status { .. }) { "warn" } else { "info" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("REDLINE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_log)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if let Command::Status { url, config, thresholds, window, format, fail_on } = cli.command {
        return status(url.as_deref(), config.as_deref(), thresholds.as_deref(), window, format, fail_on);
    }
    match dispatch(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            err_line(&format!("redline: {e:#}"));
            ExitCode::FAILURE
        }
    }
}

/// Writes to standard output. A reader that went away (`redline diff … | head -1`) is not an
/// error to report: the error comes back as a broken pipe and `main` exits quietly.
fn out(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

/// Writes a line to standard error, ignoring a closed stderr.
fn err_line(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Check { config, thresholds } => check(config.as_deref(), thresholds.as_deref()),
        Command::Run { config, listen, enable_lifecycle } => run(&config, listen, enable_lifecycle),
        Command::Generate { thresholds, rules_dir, dashboards_dir, runbooks, kubernetes_dir, namespace } => {
            let t = Thresholds::load(&thresholds)?;
            let text = std::fs::read_to_string(&thresholds)?;
            let outputs = redline::artifacts::Outputs {
                rules_dir: &rules_dir,
                dashboards_dir: &dashboards_dir,
                runbooks: &runbooks,
                kubernetes_dir: &kubernetes_dir,
                namespace: &namespace,
            };
            let files = redline::artifacts::render_everything(&t, &text, &outputs);
            // Every alert needs a runbook section for its link to land on.
            if let Some((_, doc)) = files.iter().find(|(p, _)| p == &runbooks) {
                let missing = redline::generate::runbooks::check(&t, doc);
                anyhow::ensure!(missing.is_empty(), "runbooks incomplete:\n{}", missing.join("\n"));
            }
            let changed = redline::artifacts::write(files)?;
            for p in &changed {
                out(&format!("wrote {}\n", p.display()))?;
            }
            if changed.is_empty() {
                out("all generated files are up to date\n")?;
            }
            Ok(())
        }
        Command::Snapshot { out, config, url } => snapshot(&out, config.as_deref(), url.as_deref()),
        Command::Diff { before, after, thresholds, all } => {
            let read = |p: &std::path::Path| {
                std::fs::read_to_string(p).with_context(|| format!("cannot read snapshot {}", p.display()))
            };
            let b = redline::snapshot::Snapshot::parse(&read(&before)?);
            let a = redline::snapshot::Snapshot::parse(&read(&after)?);
            if b.taken_at == 0.0 || a.taken_at == 0.0 {
                anyhow::bail!(
                    "{} or {} is not a redline snapshot (no header line)",
                    before.display(),
                    after.display()
                );
            }
            let t = Thresholds::load(&thresholds)?;
            out(&redline::snapshot::diff(&b, &a, &t, all))
        }
        Command::Status { .. } => anyhow::bail!("status is handled before dispatch"),
        Command::Rules {
            action: RulesAction::Generate { thresholds, out, prometheus_rule, name, namespace },
        } => {
            let t = Thresholds::load(&thresholds)?;
            let text = if prometheus_rule {
                rules::prometheus_rule(&t, &name, namespace.as_deref())
            } else {
                rules::rule_file(&t)
            };
            emit(out.as_deref(), &text)
        }
        Command::Dashboards { action: DashboardsAction::Generate { thresholds, out_dir } } => {
            let t = Thresholds::load(&thresholds)?;
            for (name, text) in dashboards::dashboards(&t) {
                emit(Some(&out_dir.join(name)), &text)?;
            }
            Ok(())
        }
    }
}

/// `redline status`: its exit code is the verdict, so errors get their own (3, "unknown").
fn status(
    url: Option<&str>,
    config: Option<&std::path::Path>,
    thresholds: Option<&std::path::Path>,
    window: std::time::Duration,
    format: StatusFormat,
    fail_on: FailOn,
) -> ExitCode {
    use redline::status::{self as st, Input};
    let input = match url {
        Some(u) => Input::Url(u),
        None => Input::Config(config.unwrap_or(std::path::Path::new("redline.yaml"))),
    };
    let report = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|rt| rt.block_on(st::status(input, window, thresholds)).map_err(|e| e.to_string()));
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            eprintln!("redline status: {e}");
            return ExitCode::from(3);
        }
    };
    let color =
        std::io::IsTerminal::is_terminal(&std::io::stdout()) && std::env::var_os("NO_COLOR").is_none();
    print!(
        "{}",
        match format {
            StatusFormat::Text => st::text(&report, color),
            StatusFormat::Json => st::json(&report),
            StatusFormat::Markdown => st::markdown(&report),
        }
    );
    ExitCode::from(report.exit_code(match fail_on {
        FailOn::Warning => st::FailOn::Warning,
        FailOn::Critical => st::FailOn::Critical,
    }))
}

/// Checks both files and reports the problems of each before failing.
/// Without `--thresholds`, the thresholds checked are the ones `run` would load with this
/// config: the file it names (relative to the config's directory), or the built-in defaults.
fn check(config: Option<&Path>, thresholds: Option<&Path>) -> anyhow::Result<()> {
    let mut failed = false;
    // None: the config could not be read, so which thresholds it names is unknown.
    let mut named: Option<Option<PathBuf>> = Some(Some(PathBuf::from("rules/thresholds.yaml")));
    let mut loaded = None;
    if let Some(path) = config {
        match Config::load(path) {
            Ok(c) => {
                out(&format!("{}: OK\n", path.display()))?;
                named = Some(c.thresholds.file.clone());
                loaded = Some(c);
            }
            Err(e) => {
                err_line(&e.to_string());
                failed = true;
                named = None;
            }
        }
    }
    match thresholds.map(|t| Some(t.to_path_buf())).or(named) {
        Some(Some(file)) => match Thresholds::load(&file) {
            Ok(t) => {
                // SLOs against the queues the config can collect: only knowable with both files.
                let found = loaded
                    .as_ref()
                    .map(|c| redline::slo::check_against_config(&t.slos, c))
                    .unwrap_or_default();
                for p in &found.notes {
                    err_line(&format!("{}: note: {p}", file.display()));
                }
                for p in &found.problems {
                    err_line(&format!("{}: {p}", file.display()));
                }
                if found.problems.is_empty() {
                    out(&format!("{}: OK\n", file.display()))?;
                } else {
                    failed = true;
                }
            }
            Err(e) => {
                err_line(&e.to_string());
                failed = true;
            }
        },
        Some(None) => out("thresholds: the config names no file; the built-in defaults apply\n")?,
        None => {}
    }
    if failed {
        anyhow::bail!("invalid configuration");
    }
    Ok(())
}

fn snapshot(out_file: &Path, config: Option<&Path>, url: Option<&str>) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let taken_at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs_f64();
    let (source, body) = rt.block_on(async {
        match (url, config) {
            (Some(u), _) => {
                // Credentials go to basic auth; only the URL without them is shown or written.
                let u = redline::secret::HttpUrl::parse(u).context("--url")?;
                let (status, body) =
                    redline::http_client::request(hyper::Method::GET, &u, std::time::Duration::from_secs(30))
                        .await
                        .context("cannot scrape")?;
                anyhow::ensure!(status == 200, "{u} answered HTTP {status}");
                let body =
                    String::from_utf8(body.to_vec()).with_context(|| format!("{u}: not UTF-8 text"))?;
                Ok((u.to_string(), body))
            }
            (None, c) => {
                let path = c.unwrap_or(std::path::Path::new("redline.yaml"));
                let config = Config::load(path)?;
                let families = redline::collect::collect_once(&config).await?;
                Ok((
                    path.display().to_string(),
                    redline::expose::encode(families, redline::expose::Format::Text),
                ))
            }
        }
    })?;
    let text = format!("{}{body}", redline::snapshot::header(taken_at, &source));
    redline::artifacts::write_atomic(out_file, &text)
        .with_context(|| format!("cannot write {}", out_file.display()))?;
    out(&format!("wrote {} ({} lines)\n", out_file.display(), text.lines().count()))
}

fn emit(file: Option<&Path>, text: &str) -> anyhow::Result<()> {
    match file {
        Some(p) => {
            redline::artifacts::write_atomic(p, text)
                .with_context(|| format!("cannot write {}", p.display()))?;
            Ok(())
        }
        None => out(text),
    }
}

fn run(path: &Path, listen: Option<std::net::SocketAddr>, enable_lifecycle: bool) -> anyhow::Result<()> {
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
        let options = redline::daemon::Options { enable_lifecycle };
        redline::daemon::run(config, Some(path.to_path_buf()), options, listener, shutdown_signal()).await?;
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
