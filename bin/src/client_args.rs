//! What every broker client tool (`sluice topics`, the console and perf tools) takes: where
//! the cluster is and this client's credentials, under the names Kafka's scripts use
//! (`--bootstrap-server`, `--command-config`) plus the TLS flags of every other subcommand.
//!
//! Settings are applied in this order, later ones winning:
//! 1. the `--command-config` properties file (any client key: `bootstrap.servers`,
//!    `tls.ca.file`, `tls.cert.file`, `tls.key.file`, `client.id`, `request.timeout.ms`, ...),
//!    read with [`ClientConfig::load`];
//! 2. the tool's own config file and `--*-property KEY=VALUE` flags (`--producer.config`,
//!    `--producer-property`, ...), where the tool has them;
//! 3. `--bootstrap-server` and `--tls-ca` / `--tls-cert` / `--tls-key`, or their environment
//!    variables (`SLUICE_BOOTSTRAP_SERVER`, `SLUICE_TLS_CA`, `SLUICE_TLS_CERT`, `SLUICE_TLS_KEY`).
//!
//! Servers and all three credential files are required; a missing one is named with every
//! way to give it.

use std::path::PathBuf;
use std::str::FromStr;

pub use sluice_client::broker::config::apply_file;
use sluice_client::broker::config::{keys, parse_bootstrap_servers};
use sluice_client::broker::{ClientConfig, ConfigError, FromProperties};

use crate::credentials::TlsFlags;

/// Where the cluster is and who this client is; flattened into every broker client tool.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ClientArgs {
    /// The brokers to start from, HOST:PORT[,HOST:PORT...] [else $SLUICE_BOOTSTRAP_SERVER, else bootstrap.servers in a config file]
    #[arg(long, value_name = "HOST:PORT", env = "SLUICE_BOOTSTRAP_SERVER", hide_env = true)]
    pub bootstrap_server: Option<String>,
    /// The credentials (the same flags as every other subcommand's).
    #[command(flatten)]
    pub tls: TlsFlags,
    /// A client properties file (Kafka's --command-config): bootstrap.servers, tls.ca.file,
    /// tls.cert.file, tls.key.file, client.id, request.timeout.ms and the other client keys
    #[arg(long, value_name = "FILE")]
    pub command_config: Option<PathBuf>,
}

/// A setting given nowhere.
#[derive(Debug, thiserror::Error)]
#[error("no {key} given: pass {flag} {value}, set {env}, or put {key}={value} in a --command-config file")]
pub struct Missing {
    /// The config key.
    pub key: &'static str,
    /// The flag.
    pub flag: &'static str,
    /// What the flag takes.
    pub value: &'static str,
    /// The environment variable.
    pub env: &'static str,
}

impl ClientArgs {
    /// The `--command-config` file's settings over the defaults (the defaults alone without
    /// one).
    pub fn file_config(&self) -> Result<ClientConfig, ConfigError> {
        match &self.command_config {
            Some(path) => ClientConfig::load(path),
            None => Ok(ClientConfig::default()),
        }
    }

    /// Applies `--bootstrap-server` and the TLS flags (or their environment variables) over
    /// `config`, then checks that the servers and all three credential files are given.
    pub fn finish(&self, config: &mut ClientConfig) -> anyhow::Result<()> {
        if let Some(servers) = &self.bootstrap_server {
            config.bootstrap_servers =
                parse_bootstrap_servers(servers).map_err(|e| anyhow::anyhow!("--bootstrap-server: {e}"))?;
        }
        let set = |slot: &mut Option<PathBuf>, given: &Option<PathBuf>| {
            if let Some(path) = given {
                *slot = Some(path.clone());
            }
        };
        set(&mut config.tls_ca_file, &self.tls.tls_ca);
        set(&mut config.tls_cert_file, &self.tls.tls_cert);
        set(&mut config.tls_key_file, &self.tls.tls_key);
        check_complete(config)?;
        Ok(())
    }

    /// The client settings of a tool without a config file of its own (`sluice topics`).
    pub fn client_config(&self) -> anyhow::Result<ClientConfig> {
        let mut config = self.file_config()?;
        self.finish(&mut config)?;
        Ok(config)
    }
}

/// Servers and all three credential files are given.
pub fn check_complete(config: &ClientConfig) -> Result<(), Missing> {
    let missing = |key, flag, value, env| Err(Missing { key, flag, value, env });
    if config.bootstrap_servers.is_empty() {
        return missing(
            keys::BOOTSTRAP_SERVERS,
            "--bootstrap-server",
            "HOST:PORT",
            "SLUICE_BOOTSTRAP_SERVER",
        );
    }
    if config.tls.is_some() {
        return Ok(());
    }
    if config.tls_ca_file.is_none() {
        return missing(keys::TLS_CA_FILE, "--tls-ca", "FILE", "SLUICE_TLS_CA");
    }
    if config.tls_cert_file.is_none() {
        return missing(keys::TLS_CERT_FILE, "--tls-cert", "FILE", "SLUICE_TLS_CERT");
    }
    if config.tls_key_file.is_none() {
        return missing(keys::TLS_KEY_FILE, "--tls-key", "FILE", "SLUICE_TLS_KEY");
    }
    Ok(())
}

/// A `KEY=VALUE` argument (`--config`, `--property`, `--producer-property`, ...). The value
/// is everything after the first `=`, and may be empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The key, trimmed.
    pub key: String,
    /// The value, as given.
    pub value: String,
}

impl FromStr for KeyValue {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => {
                Ok(KeyValue { key: key.trim().to_string(), value: value.to_string() })
            }
            _ => Err(format!("expected KEY=VALUE, got {s:?}")),
        }
    }
}

/// Applies `KEY=VALUE` arguments given with `flag` through `set`, naming the flag and the
/// argument in an error.
pub fn apply_key_values(
    given: &[KeyValue],
    flag: &str,
    mut set: impl FnMut(&str, &str) -> Result<(), ConfigError>,
) -> anyhow::Result<()> {
    for kv in given {
        set(&kv.key, &kv.value).map_err(|e| anyhow::anyhow!("{flag} {}={}: {e}", kv.key, kv.value))?;
    }
    Ok(())
}

/// Parses a `true` / `false` tool property (case-insensitive).
pub fn parse_bool(key: &str, value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("{key}={value}: must be true or false")),
    }
}

/// A current-thread tokio runtime (the SDK's tasks run on it).
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

/// A comma-separated list of whole numbers given to `flag` (partitions, broker ids); an
/// error names the flag and what each item should be.
pub fn int_list(flag: &str, what: &str, text: &str) -> anyhow::Result<Vec<i32>> {
    use anyhow::Context;
    text.split(',')
        .map(|item| item.trim().parse::<i32>().with_context(|| format!("{flag}: {item:?} is not {what}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use sluice_client::broker::ProducerConfig;

    use super::*;

    fn args() -> ClientArgs {
        ClientArgs::default()
    }

    #[test]
    fn flags_win_over_the_command_config_which_may_hold_any_client_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = dir.path().join("client.properties");
        std::fs::write(
            &cfg,
            "bootstrap.servers=file:9092\ntls.ca.file=/cfg/ca.pem\ntls.cert.file=/cfg/c.pem\n\
             tls.key.file=/cfg/c.key\nclient.id=tool\nrequest.timeout.ms=5000\n",
        )
        .expect("write");
        let a = ClientArgs {
            bootstrap_server: Some("flag1:1,flag2:2".into()),
            tls: TlsFlags { tls_cert: Some("/flag/c.pem".into()), ..TlsFlags::default() },
            command_config: Some(cfg),
        };
        let c = a.client_config().expect("complete");
        assert_eq!(c.bootstrap_servers, vec!["flag1:1", "flag2:2"]);
        assert_eq!(c.tls_ca_file.as_deref(), Some(std::path::Path::new("/cfg/ca.pem")));
        assert_eq!(c.tls_cert_file.as_deref(), Some(std::path::Path::new("/flag/c.pem")));
        assert_eq!(c.client_id, "tool");
        assert_eq!(c.request_timeout, std::time::Duration::from_secs(5));
    }

    #[test]
    fn a_missing_server_or_credential_names_every_way_to_give_it() {
        let err = args().client_config().expect_err("nothing given");
        assert_eq!(
            err.to_string(),
            "no bootstrap.servers given: pass --bootstrap-server HOST:PORT, set SLUICE_BOOTSTRAP_SERVER, \
             or put bootstrap.servers=HOST:PORT in a --command-config file"
        );
        let a = ClientArgs {
            bootstrap_server: Some("b:1".into()),
            tls: TlsFlags { tls_ca: Some("ca".into()), ..TlsFlags::default() },
            ..args()
        };
        let err = a.client_config().expect_err("no cert");
        assert_eq!(
            err.to_string(),
            "no tls.cert.file given: pass --tls-cert FILE, set SLUICE_TLS_CERT, or put tls.cert.file=FILE \
             in a --command-config file"
        );
        let a = ClientArgs { bootstrap_server: Some("b".into()), ..args() };
        let err = a.client_config().expect_err("no port");
        assert!(err.to_string().starts_with("--bootstrap-server: invalid value \"b\""), "{err}");
    }

    #[test]
    fn key_values_split_at_the_first_equals_sign() {
        let kv: KeyValue = "key.separator==".parse().expect("ok");
        assert_eq!((kv.key.as_str(), kv.value.as_str()), ("key.separator", "="));
        let kv: KeyValue = " acks =all".parse().expect("ok");
        assert_eq!((kv.key.as_str(), kv.value.as_str()), ("acks", "all"));
        let kv: KeyValue = "null.literal=".parse().expect("empty value");
        assert_eq!(kv.value, "");
        assert_eq!("acks".parse::<KeyValue>().expect_err("no ="), "expected KEY=VALUE, got \"acks\"");
        assert!("=1".parse::<KeyValue>().is_err());
    }

    #[test]
    fn a_tool_config_file_applies_over_earlier_settings_and_names_the_bad_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("producer.properties");
        std::fs::write(&file, "linger.ms=7\n").expect("write");
        let mut p = ProducerConfig::new(ClientConfig::new(["b:1"]).client_id("kept"));
        apply_file(&file, |k, v| p.set(k, v)).expect("applies");
        assert_eq!((p.linger.as_millis(), p.client.client_id.as_str()), (7, "kept"));
        std::fs::write(&file, "# c\nacks=2\n").expect("write");
        let err = apply_file(&file, |k, v| p.set(k, v)).expect_err("bad acks");
        assert!(
            err.to_string().ends_with(
                "producer.properties:2: invalid value \"2\" for acks: must be all (or -1), 0 or 1"
            ),
            "{err}"
        );
        let err = apply_key_values(&["linger.msec=1".parse().expect("kv")], "--producer-property", |k, v| {
            p.set(k, v)
        })
        .expect_err("unknown key");
        assert!(err.to_string().starts_with("--producer-property linger.msec=1: unknown key"), "{err}");
    }
}
