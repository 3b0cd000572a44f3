//! `sluice certs init` and `sluice certs issue`.

use std::path::PathBuf;

use anyhow::Result;
use sluice_certs::{CertSpec, Role};

/// Certificate subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum CertsCommand {
    /// Make a new cluster CA and one certificate per node and client.
    ///
    /// Writes DIR/ca.pem, DIR/ca.key and DIR/NAME.pem, DIR/NAME.key for every name; keys
    /// are mode 0600. Each certificate names NAME, localhost, 127.0.0.1, ::1 and every --san.
    Init {
        /// Where to write the files (created if missing).
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// A server process (keeper, broker); repeatable. Gets server and client usage.
        #[arg(long = "node", value_name = "NAME")]
        nodes: Vec<String>,
        /// A client (CLI, application); repeatable. Gets client usage only.
        #[arg(long = "client", value_name = "NAME")]
        clients: Vec<String>,
        /// An extra host name or IP address for every certificate; repeatable.
        #[arg(long = "san", value_name = "HOST")]
        sans: Vec<String>,
        /// Replace an existing CA (every certificate it signed stops being trusted).
        #[arg(long)]
        force: bool,
    },
    /// Add one certificate signed by the existing CA in DIR.
    Issue {
        /// The directory holding ca.pem and ca.key.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// The certificate's name (its principal).
        name: String,
        /// Make a client certificate (default: node).
        #[arg(long)]
        client: bool,
        /// An extra host name or IP address; repeatable.
        #[arg(long = "san", value_name = "HOST")]
        sans: Vec<String>,
    },
}

/// Runs a certificate subcommand, saying what it wrote.
pub fn run(cmd: CertsCommand) -> Result<()> {
    match cmd {
        CertsCommand::Init { dir, nodes, clients, sans, force } => {
            let report = sluice_certs::init(&dir, &nodes, &clients, &sans, force)?;
            println!("CA:        {}", report.ca_cert.display());
            for (role, path) in report.issued {
                println!("{:<10} {}", format!("{role}:"), path.display());
            }
            println!("Private keys (*.key) are readable by their owner only; never commit them.");
        }
        CertsCommand::Issue { dir, name, client, sans } => {
            let role = if client { Role::Client } else { Role::Node };
            let path = sluice_certs::issue(&dir, &CertSpec::new(name, role).with_sans(sans))?;
            println!("{role}: {}", path.display());
        }
    }
    Ok(())
}
