//! One convention for TLS credentials across every subcommand.
//!
//! For each of the three files, the first that is set wins:
//! 1. the flag (`--tls-ca`, `--tls-cert`, `--tls-key`),
//! 2. the environment (`SLUICE_TLS_CA`, `SLUICE_TLS_CERT`, `SLUICE_TLS_KEY`),
//! 3. `tls.ca.file` / `tls.cert.file` / `tls.key.file` in the Kafka-style `--command-config`
//!    properties file (relative paths are taken from the current directory, as Kafka does).

use std::path::{Path, PathBuf};

use sluice_net::tls::keys;
use sluice_net::{TlsError, TlsFiles, TlsIdentity};

use sluice_config::properties::{self, PropertiesError};

/// Keys a `--command-config` file may hold.
pub const COMMAND_CONFIG_KEYS: &[&str] = &[keys::CA, keys::CERT, keys::KEY];

/// The three credential flags, the same in every subcommand (flattened into [`TlsArgs`] and
/// into the broker tools' `ClientArgs`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsFlags {
    /// The cluster CA certificate (PEM) [else $SLUICE_TLS_CA, else tls.ca.file in --command-config]
    #[arg(long, value_name = "FILE", env = "SLUICE_TLS_CA", hide_env = true)]
    pub tls_ca: Option<PathBuf>,
    /// This process's certificate (PEM) [else $SLUICE_TLS_CERT, else tls.cert.file]
    #[arg(long, value_name = "FILE", env = "SLUICE_TLS_CERT", hide_env = true)]
    pub tls_cert: Option<PathBuf>,
    /// This process's private key (PEM) [else $SLUICE_TLS_KEY, else tls.key.file]
    #[arg(long, value_name = "FILE", env = "SLUICE_TLS_KEY", hide_env = true)]
    pub tls_key: Option<PathBuf>,
}

/// TLS credential arguments, shared by every subcommand that connects or listens.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsArgs {
    /// The three files.
    #[command(flatten)]
    pub flags: TlsFlags,
    /// A properties file with tls.ca.file, tls.cert.file and tls.key.file (as Kafka's --command-config)
    #[arg(long, value_name = "FILE")]
    pub command_config: Option<PathBuf>,
}

/// Why credentials could not be found or read.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// One of the three files is named nowhere.
    #[error("no {key} given: pass {flag} FILE, set {env}, or put {key}=FILE in a --command-config file")]
    Missing {
        /// The config key.
        key: &'static str,
        /// The flag.
        flag: &'static str,
        /// The environment variable.
        env: &'static str,
    },
    /// The command-config file is bad.
    #[error(transparent)]
    Properties(#[from] PropertiesError),
    /// A file is unreadable or holds the wrong thing.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

impl TlsArgs {
    /// Credentials made from three paths (for spawning child processes and tests).
    pub fn from_files(files: &TlsFiles) -> Self {
        TlsArgs {
            flags: TlsFlags {
                tls_ca: Some(files.ca.clone()),
                tls_cert: Some(files.cert.clone()),
                tls_key: Some(files.key.clone()),
            },
            command_config: None,
        }
    }

    /// Which three files to use.
    pub fn resolve(&self) -> Result<TlsFiles, CredentialsError> {
        let config = match &self.command_config {
            Some(path) => properties::read(path, COMMAND_CONFIG_KEYS)?,
            None => Vec::new(),
        };
        let from_config = |key: &str| config.iter().find(|e| e.key == key).map(|e| PathBuf::from(&e.value));
        let pick = |given: &Option<PathBuf>, key: &'static str, flag: &'static str, env: &'static str| {
            given.clone().or_else(|| from_config(key)).ok_or(CredentialsError::Missing { key, flag, env })
        };
        Ok(TlsFiles {
            ca: pick(&self.flags.tls_ca, keys::CA, "--tls-ca", "SLUICE_TLS_CA")?,
            cert: pick(&self.flags.tls_cert, keys::CERT, "--tls-cert", "SLUICE_TLS_CERT")?,
            key: pick(&self.flags.tls_key, keys::KEY, "--tls-key", "SLUICE_TLS_KEY")?,
        })
    }

    /// Resolves and reads the credentials.
    pub fn load(&self) -> Result<TlsIdentity, CredentialsError> {
        Ok(TlsIdentity::load(&self.resolve()?)?)
    }
}

/// The three file paths for certificate `name` in a `sluice certs` directory.
pub fn files_in(dir: &Path, name: &str) -> TlsFiles {
    TlsFiles {
        ca: dir.join(sluice_certs::CA_CERT_FILE),
        cert: sluice_certs::IssuedCert::cert_path(dir, name),
        key: sluice_certs::IssuedCert::key_path(dir, name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_command_config_and_missing_files_name_every_way_to_give_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = dir.path().join("client.properties");
        std::fs::write(&cfg, "tls.ca.file=/cfg/ca.pem\ntls.cert.file=/cfg/c.pem\n").expect("write");
        let args = TlsArgs {
            flags: TlsFlags {
                tls_ca: Some("/flag/ca.pem".into()),
                tls_cert: None,
                tls_key: Some("/flag/c.key".into()),
            },
            command_config: Some(cfg.clone()),
        };
        let files = args.resolve().expect("resolve");
        assert_eq!(files.ca, PathBuf::from("/flag/ca.pem"));
        assert_eq!(files.cert, PathBuf::from("/cfg/c.pem"));
        assert_eq!(files.key, PathBuf::from("/flag/c.key"));

        let args = TlsArgs { flags: TlsFlags { tls_key: None, ..args.flags.clone() }, ..args };
        let msg = args.resolve().expect_err("no key").to_string();
        assert_eq!(msg, "no tls.key.file given: pass --tls-key FILE, set SLUICE_TLS_KEY, or put tls.key.file=FILE in a --command-config file");
    }

    #[test]
    fn an_unreadable_file_is_named_with_its_key() {
        let args = TlsArgs::from_files(&TlsFiles {
            ca: "/nonexistent/ca.pem".into(),
            cert: "/nonexistent/c.pem".into(),
            key: "/nonexistent/c.key".into(),
        });
        let msg = args.load().expect_err("unreadable").to_string();
        assert!(msg.starts_with("cannot read tls.ca.file /nonexistent/ca.pem"), "{msg}");
    }
}
