//! `sluice broker start|stop`: kafka-server-start.sh and kafka-server-stop.sh.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use sluice_broker::config::BrokerConfig;
use sluice_net::TlsIdentity;

use crate::client_args::KeyValue;
use crate::keeper_cmd::stop_pid;

/// Name of the pid file in the first of `log.dirs`.
pub const PID_FILE: &str = "sluice-broker.pid";
/// Where a `-daemon` broker's output goes, in the first of `log.dirs`.
pub const OUT_FILE: &str = "sluice-broker.out";

/// Broker commands.
#[derive(Debug, clap::Subcommand)]
pub enum BrokerCommand {
    /// Run a broker in the foreground with a Kafka-style server.properties.
    ///
    /// Prints `broker listening on HOST:PORT` (the QUIC listener) once it serves, preceded by
    /// `broker metrics at http://HOST:PORT/metrics` when metrics.port is set and by `broker SSL
    /// listener on HOST:PORT` for each Kafka listener (SSL, PLAINTEXT); stops cleanly on SIGTERM or
    /// Ctrl-C: it leaves the cluster at once (closing its keeper session), then flushes and
    /// closes its logs. Every key, its default and meaning are documented in
    /// config/server.properties; an unknown key or bad value stops start-up naming the file,
    /// the line and why.
    ///
    /// -daemon (or --daemon) runs it in the background as kafka-server-start.sh does: its
    /// output goes to sluice-broker.out in the first of log.dirs, and the command returns
    /// once the broker serves (printing its listening line), or fails showing why it did
    /// not. --override key=value (repeatable) replaces the file's setting of that key.
    Start {
        /// The configuration file.
        config: PathBuf,
        /// Run in the background (also written -daemon, as Kafka's script takes it).
        #[arg(long)]
        daemon: bool,
        /// A setting that replaces the file's, KEY=VALUE (repeatable).
        #[arg(long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<KeyValue>,
    },
    /// Stop the broker running with this config (SIGTERM through the pid file in the first
    /// of log.dirs) and wait for it to exit.
    Stop {
        /// The configuration file it was started with.
        #[arg(default_value = "config/server.properties")]
        config: PathBuf,
        /// The --override settings it was started with, if they moved log.dirs.
        #[arg(long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<KeyValue>,
    },
}

/// Runs a broker command.
pub fn run(cmd: BrokerCommand) -> Result<()> {
    match cmd {
        BrokerCommand::Start { config, daemon: false, overrides } => start(&config, &overrides),
        BrokerCommand::Start { config, daemon: true, overrides } => {
            let loaded = load(&config, &overrides)?;
            let out = loaded
                .log_dirs
                .first()
                .map(|d| d.join(OUT_FILE))
                .ok_or_else(|| anyhow!("log.dirs is empty"))?;
            crate::daemon::start("broker", &config, &overrides, &out)
        }
        BrokerCommand::Stop { config, overrides } => stop(&config, &overrides),
    }
}

fn pid_file(config: &BrokerConfig) -> Result<PathBuf> {
    config.log_dirs.first().map(|d| d.join(PID_FILE)).ok_or_else(|| anyhow!("log.dirs is empty"))
}

/// The config file with `overrides` applied.
fn load(config_path: &Path, overrides: &[KeyValue]) -> Result<BrokerConfig> {
    Ok(BrokerConfig::parse(&crate::daemon::config_text(config_path, overrides)?, config_path)?)
}

fn start(config_path: &Path, overrides: &[KeyValue]) -> Result<()> {
    let config = load(config_path, overrides)?;
    let identity = TlsIdentity::load(&config.tls)?;
    let pid_file = pid_file(&config)?;
    let system = actix::System::new();
    let result = system.block_on(async {
        if let Some(addr) = config.metrics {
            let bound = crate::metrics::serve(addr).await?;
            println!("broker metrics at http://{bound}/metrics");
        }
        let pid = pid_file.clone();
        sluice_broker::server::run(
            config,
            identity,
            move |listening| {
                let _ = std::fs::write(&pid, std::process::id().to_string());
                for (security, addr) in &listening.kafka {
                    println!("broker {} listener on {addr}", security.name());
                }
                println!("broker listening on {}", listening.quic);
                let _ = std::io::stdout().flush();
            },
            crate::perf::shutdown_signal(),
        )
        .await
        .map_err(anyhow::Error::from)
    });
    let _ = std::fs::remove_file(&pid_file);
    result.with_context(|| format!("broker with {} failed", config_path.display()))
}

fn stop(config_path: &Path, overrides: &[KeyValue]) -> Result<()> {
    let config = load(config_path, overrides)?;
    let pid_file = pid_file(&config)?;
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .map_err(|_| {
            anyhow!(
                "no broker is running with log.dirs {} (no {})",
                pid_file.parent().map_or_else(String::new, |p| p.display().to_string()),
                PID_FILE
            )
        })?
        .trim()
        .parse()
        .with_context(|| format!("{} does not hold a process id", pid_file.display()))?;
    stop_pid("broker", pid, &pid_file)
}
