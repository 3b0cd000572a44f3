//! The `sluice` command line: every Sluice service and tool behind one binary, named after
//! the Kafka and ZooKeeper scripts people already know.
//!
//! This crate parses arguments, sets up logging and calls into the library crates; it holds
//! no service logic of its own.

pub mod broker_cmd;
pub mod certs_cmd;
pub mod credentials;
pub mod keeper_cmd;
pub mod keeper_perf;
pub mod logging;
pub mod metrics;
pub mod perf;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Sluice: a distributed commit log with its own coordination service, over mutually
/// authenticated QUIC.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, propagate_version = true)]
#[command(after_help = "Logging: RUST_LOG sets the filter (default: info), e.g. RUST_LOG=sluice_net=debug.")]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = logging::LogFormat::Pretty, env = "SLUICE_LOG_FORMAT")]
    pub log_format: logging::LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make the cluster CA and node / client certificates (like a small `openssl ca`).
    #[command(subcommand)]
    Certs(certs_cmd::CertsCommand),
    /// Run, stop or query a keeper server (the coordination service).
    #[command(subcommand)]
    Keeper(keeper_cmd::KeeperCommand),
    /// Run or stop a broker (the commit log): kafka-server-start.sh / kafka-server-stop.sh.
    #[command(subcommand)]
    Broker(broker_cmd::BrokerCommand),
    /// A zkCli-like shell for a keeper: one command from the arguments, else from stdin.
    KeeperShell(keeper_cmd::ShellArgs),
    /// Measure a keeper: create / set / get operations per second and latency with 1, 8 and
    /// 64 concurrent sessions (like ZooKeeper's load tools).
    KeeperPerfTest(keeper_perf::KeeperPerfArgs),
    /// Measure the transport between two processes: bulk MB/s and small RPCs per second.
    ///
    /// Without --connect it makes throwaway certificates, starts `sluice
    /// transport-perf-server` as a child process on a free port, runs the measurements
    /// against it and stops it.
    TransportPerfTest(perf::PerfTestArgs),
    /// Serve the transport benchmark protocol (sluice-perf/1) until stopped.
    ///
    /// Prints `listening on HOST:PORT` on stdout once ready.
    TransportPerfServer(perf::PerfServerArgs),
}

/// Runs the command line; the exit code says whether it worked.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    let result = match cli.command {
        Command::Certs(c) => certs_cmd::run(c),
        Command::Keeper(c) => keeper_cmd::run(c),
        Command::Broker(c) => broker_cmd::run(c),
        Command::KeeperShell(a) => keeper_cmd::shell(a),
        Command::KeeperPerfTest(a) => keeper_perf::run(a),
        Command::TransportPerfTest(a) => perf::run_test(a),
        Command::TransportPerfServer(a) => perf::run_server(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
