//! `sluice broker start|stop`: kafka-server-start.sh and kafka-server-stop.sh.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use sluice_broker::config::BrokerConfig;
use sluice_net::TlsIdentity;

use crate::keeper_cmd::stop_pid;

/// Name of the pid file in the first of `log.dirs`.
pub const PID_FILE: &str = "sluice-broker.pid";

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
    Start {
        /// The configuration file.
        config: PathBuf,
    },
    /// Stop the broker running with this config (SIGTERM through the pid file in the first
    /// of log.dirs) and wait for it to exit.
    Stop {
        /// The configuration file it was started with.
        #[arg(default_value = "config/server.properties")]
        config: PathBuf,
    },
}

/// Runs a broker command.
pub fn run(cmd: BrokerCommand) -> Result<()> {
    match cmd {
        BrokerCommand::Start { config } => start(&config),
        BrokerCommand::Stop { config } => stop(&config),
    }
}

fn pid_file(config: &BrokerConfig) -> Result<PathBuf> {
    config.log_dirs.first().map(|d| d.join(PID_FILE)).ok_or_else(|| anyhow!("log.dirs is empty"))
}

fn start(config_path: &Path) -> Result<()> {
    let config = BrokerConfig::load(config_path)?;
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

fn stop(config_path: &Path) -> Result<()> {
    let config = BrokerConfig::load(config_path)?;
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
