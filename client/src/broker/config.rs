//! Client, producer and consumer settings, under Kafka's names and with Kafka's defaults.
//!
//! Each setting has one `DEFAULT_*` constant, used by `Default` (and so by parsing, which
//! starts from the defaults). Settings come from builders
//! (`ProducerConfig::new(client).acks(Acks::Leader).linger(..)`), from `set(key, value)`, or
//! from a Kafka-style properties file ([`ProducerConfig::from_properties`], which accepts the
//! common client keys too, as Kafka's `producer.properties` does). Every error names the
//! key, the value and why; an unknown key is refused with the known keys listed; errors from
//! a file also name the file and line.
//!
//! Mutual TLS is always on: a client needs the cluster CA, its certificate and its key
//! (`tls.ca.file`, `tls.cert.file`, `tls.key.file`), or credentials already loaded
//! ([`ClientConfig::tls`]).
//!
//! Where Sluice differs from Kafka:
//! - `enable.idempotence` as in Kafka 3.2+: unset, it is on when `acks=all`, `retries` > 0
//!   and `max.in.flight.requests.per.connection` ≤ 5 (the defaults), else quietly off;
//!   `true` with a conflicting setting is refused naming it. An idempotent producer gets a
//!   producer id and numbers its batches per partition, so a resend after a lost answer is
//!   written once (the partition leaders, and the followers that replicate them, keep each
//!   producer's last five batches). Without idempotence a retried batch may be written twice;
//!   its order is kept all the same (the broker holds later batches after a failure until
//!   the resend). No transactions.
//! - `batch.size` counts uncompressed record bytes (Kafka estimates compressed sizes).
//! - `max.in.flight.requests.per.connection` limits requests in flight *per partition* on
//!   a connection (a request holds at most one batch of each partition, as Kafka's do), so
//!   `1` still guarantees order across retries, as in Kafka.
//! - `delivery.timeout.ms` shorter than `linger.ms + request.timeout.ms` is raised to that
//!   sum with a warning (Kafka does so for the default and refuses an explicit value).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sluice_config::properties::{self, Entry, PropertiesError};
use sluice_log::Compression;
use sluice_net::tls::keys as tls_keys;
use sluice_net::{ClientOptions, ClientTls, TlsError, TlsFiles, TlsIdentity};

/// The key names.
pub mod keys {
    /// `HOST:PORT[,HOST:PORT...]`: brokers to ask for the cluster's metadata first.
    pub const BOOTSTRAP_SERVERS: &str = "bootstrap.servers";
    /// The cluster CA certificate (PEM).
    pub const TLS_CA_FILE: &str = sluice_net::tls::keys::CA;
    /// This client's certificate (PEM).
    pub const TLS_CERT_FILE: &str = sluice_net::tls::keys::CERT;
    /// This client's private key (PEM).
    pub const TLS_KEY_FILE: &str = sluice_net::tls::keys::KEY;
    /// A name for this client in log lines.
    pub const CLIENT_ID: &str = "client.id";
    /// How long one request may take.
    pub const REQUEST_TIMEOUT_MS: &str = "request.timeout.ms";
    /// Metadata older than this is refreshed.
    pub const METADATA_MAX_AGE_MS: &str = "metadata.max.age.ms";
    /// Wait before retrying a failed request.
    pub const RETRY_BACKOFF_MS: &str = "retry.backoff.ms";
    /// First wait before reconnecting.
    pub const RECONNECT_BACKOFF_MS: &str = "reconnect.backoff.ms";
    /// Longest wait before reconnecting.
    pub const RECONNECT_BACKOFF_MAX_MS: &str = "reconnect.backoff.max.ms";
    /// How long establishing a connection may take.
    pub const SOCKET_CONNECTION_SETUP_TIMEOUT_MS: &str = "socket.connection.setup.timeout.ms";

    /// `all`/`-1`, `0` or `1`.
    pub const ACKS: &str = "acks";
    /// How long a batch waits for more records.
    pub const LINGER_MS: &str = "linger.ms";
    /// Bytes per batch.
    pub const BATCH_SIZE: &str = "batch.size";
    /// `none`, `gzip`, `snappy`, `lz4` or `zstd`.
    pub const COMPRESSION_TYPE: &str = "compression.type";
    /// How often a batch is retried.
    pub const RETRIES: &str = "retries";
    /// Time from `send` to success or failure.
    pub const DELIVERY_TIMEOUT_MS: &str = "delivery.timeout.ms";
    /// Largest request (and so record) sent.
    pub const MAX_REQUEST_SIZE: &str = "max.request.size";
    /// Requests in flight per partition.
    pub const MAX_IN_FLIGHT: &str = "max.in.flight.requests.per.connection";
    /// Bytes of records waiting to be sent.
    pub const BUFFER_MEMORY: &str = "buffer.memory";
    /// How long `send` may wait for metadata and buffer space.
    pub const MAX_BLOCK_MS: &str = "max.block.ms";
    /// Only `false` for now.
    pub const ENABLE_IDEMPOTENCE: &str = "enable.idempotence";

    /// The consumer group to join (with `subscribe`) and commit offsets for.
    pub const GROUP_ID: &str = "group.id";
    /// A member silent for this long is removed from its group.
    pub const SESSION_TIMEOUT_MS: &str = "session.timeout.ms";
    /// How often a member heartbeats.
    pub const HEARTBEAT_INTERVAL_MS: &str = "heartbeat.interval.ms";
    /// How long a rebalance waits for members to rejoin (the rebalance timeout).
    pub const MAX_POLL_INTERVAL_MS: &str = "max.poll.interval.ms";
    /// Commit positions in the background.
    pub const ENABLE_AUTO_COMMIT: &str = "enable.auto.commit";
    /// ... this often.
    pub const AUTO_COMMIT_INTERVAL_MS: &str = "auto.commit.interval.ms";
    /// Assignors, preferred first (`range`, `roundrobin`, `sticky`, `cooperative-sticky` or
    /// Kafka's class names); with only cooperative ones the consumer rebalances incrementally.
    pub const PARTITION_ASSIGNMENT_STRATEGY: &str = "partition.assignment.strategy";
    /// `earliest`, `latest` or `none`.
    pub const AUTO_OFFSET_RESET: &str = "auto.offset.reset";
    /// A fetch waits for this many bytes.
    pub const FETCH_MIN_BYTES: &str = "fetch.min.bytes";
    /// ... at most this long.
    pub const FETCH_MAX_WAIT_MS: &str = "fetch.max.wait.ms";
    /// Most bytes in one fetch answer.
    pub const FETCH_MAX_BYTES: &str = "fetch.max.bytes";
    /// Most bytes per partition in one fetch answer.
    pub const MAX_PARTITION_FETCH_BYTES: &str = "max.partition.fetch.bytes";
    /// Most records one `poll` returns.
    pub const MAX_POLL_RECORDS: &str = "max.poll.records";
    /// Verify batch CRCs.
    pub const CHECK_CRCS: &str = "check.crcs";
    /// Ask the brokers to create a topic the consumer names that does not exist (they do
    /// when their `auto.create.topics.enable` is on).
    pub const ALLOW_AUTO_CREATE_TOPICS: &str = "allow.auto.create.topics";
}

/// `request.timeout.ms` (Kafka's default).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_millis(30_000);
/// `metadata.max.age.ms`.
pub const DEFAULT_METADATA_MAX_AGE: Duration = Duration::from_millis(300_000);
/// `retry.backoff.ms`.
pub const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_millis(100);
/// `reconnect.backoff.ms`.
pub const DEFAULT_RECONNECT_BACKOFF: Duration = Duration::from_millis(50);
/// `reconnect.backoff.max.ms`.
pub const DEFAULT_RECONNECT_BACKOFF_MAX: Duration = Duration::from_millis(1_000);
/// `socket.connection.setup.timeout.ms`.
pub const DEFAULT_CONNECTION_SETUP_TIMEOUT: Duration = Duration::from_millis(10_000);
/// `client.id`.
pub const DEFAULT_CLIENT_ID: &str = "";

/// `acks` (Kafka 3's default).
pub const DEFAULT_ACKS: Acks = Acks::All;
/// `linger.ms`.
pub const DEFAULT_LINGER: Duration = Duration::from_millis(5);
/// `batch.size`.
pub const DEFAULT_BATCH_SIZE: usize = 16_384;
/// `compression.type`.
pub const DEFAULT_COMPRESSION: Compression = Compression::None;
/// `retries`.
pub const DEFAULT_RETRIES: u32 = i32::MAX as u32;
/// `delivery.timeout.ms`.
pub const DEFAULT_DELIVERY_TIMEOUT: Duration = Duration::from_millis(120_000);
/// `max.request.size`.
pub const DEFAULT_MAX_REQUEST_SIZE: usize = 1_048_576;
/// `max.in.flight.requests.per.connection`.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 5;
/// `buffer.memory`.
pub const DEFAULT_BUFFER_MEMORY: u64 = 33_554_432;
/// `max.block.ms`.
pub const DEFAULT_MAX_BLOCK: Duration = Duration::from_millis(60_000);

/// `auto.offset.reset`.
pub const DEFAULT_AUTO_OFFSET_RESET: AutoOffsetReset = AutoOffsetReset::Latest;
/// `fetch.min.bytes`.
pub const DEFAULT_FETCH_MIN_BYTES: u32 = 1;
/// `fetch.max.wait.ms`.
pub const DEFAULT_FETCH_MAX_WAIT: Duration = Duration::from_millis(500);
/// `fetch.max.bytes`.
pub const DEFAULT_FETCH_MAX_BYTES: u32 = 52_428_800;
/// `max.partition.fetch.bytes`.
pub const DEFAULT_MAX_PARTITION_FETCH_BYTES: u32 = 1_048_576;
/// `max.poll.records`.
pub const DEFAULT_MAX_POLL_RECORDS: usize = 500;
/// `check.crcs`.
pub const DEFAULT_CHECK_CRCS: bool = true;
/// `allow.auto.create.topics` (Kafka's consumer default).
pub const DEFAULT_ALLOW_AUTO_CREATE_TOPICS: bool = true;
/// `session.timeout.ms` (Kafka 3's default).
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_millis(45_000);
/// `heartbeat.interval.ms`.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_millis(3_000);
/// `max.poll.interval.ms`.
pub const DEFAULT_MAX_POLL_INTERVAL: Duration = Duration::from_millis(300_000);
/// `enable.auto.commit`.
pub const DEFAULT_ENABLE_AUTO_COMMIT: bool = true;
/// `auto.commit.interval.ms`.
pub const DEFAULT_AUTO_COMMIT_INTERVAL: Duration = Duration::from_millis(5_000);
/// `partition.assignment.strategy` (Kafka 3 lists `cooperative-sticky` after `range`; a
/// consumer is cooperative only when every assignor it lists is, so the default is eager).
pub const DEFAULT_ASSIGNMENT_STRATEGY: &[&str] = &["range"];

/// What is wrong with a setting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A value is not valid for its key.
    #[error("invalid value {value:?} for {key}: {reason}")]
    Invalid {
        /// The key.
        key: String,
        /// The value given.
        value: String,
        /// Why it is refused, and what is accepted.
        reason: String,
    },
    /// A key this kind of configuration does not have.
    #[error("unknown key {key:?}; known keys: {known}")]
    UnknownKey {
        /// The key given.
        key: String,
        /// The keys accepted here, comma-separated.
        known: String,
    },
    /// A required setting is missing.
    #[error("{key} is required: {hint}")]
    Missing {
        /// The key.
        key: &'static str,
        /// What to put there.
        hint: &'static str,
    },
    /// A bad setting in a properties file.
    #[error("{path}:{line}: {source}")]
    AtLine {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with the line's setting.
        source: Box<ConfigError>,
    },
    /// The properties file cannot be read or has a malformed line.
    #[error(transparent)]
    Properties(#[from] PropertiesError),
    /// The TLS files cannot be read or do not hold what they should.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

fn invalid(key: &str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.to_string(), value: value.to_string(), reason: reason.into() }
}

fn int(key: &str, value: &str, min: i64, max: i64) -> Result<i64, ConfigError> {
    match value.trim().parse::<i64>() {
        Ok(v) if (min..=max).contains(&v) => Ok(v),
        _ => Err(invalid(key, value, format!("must be a whole number from {min} to {max}"))),
    }
}

fn millis(key: &str, value: &str, min: i64, max: i64) -> Result<Duration, ConfigError> {
    int(key, value, min, max).map(|v| Duration::from_millis(v as u64))
}

fn any_millis(key: &str, value: &str) -> Result<Duration, ConfigError> {
    millis(key, value, 0, i64::MAX)
}

fn boolean(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(key, value, "must be true or false")),
    }
}

fn unknown(key: &str, lists: &[&[&str]]) -> ConfigError {
    let known: Vec<&str> = lists.iter().flat_map(|l| l.iter().copied()).collect();
    ConfigError::UnknownKey { key: key.to_string(), known: known.join(", ") }
}

/// Reads a properties file and applies every entry with `set` (a config's `set`, or a
/// tool's own keys first), naming the file and line of the first bad one.
pub fn apply_file(
    path: &Path,
    set: impl FnMut(&str, &str) -> Result<(), ConfigError>,
) -> Result<(), ConfigError> {
    apply(&read_file(path)?, path, set)
}

/// Applies every entry with `set`, naming the file and line of the first bad one.
fn apply(
    entries: &[Entry],
    path: &Path,
    mut set: impl FnMut(&str, &str) -> Result<(), ConfigError>,
) -> Result<(), ConfigError> {
    for e in entries {
        set(&e.key, &e.value).map_err(|source| ConfigError::AtLine {
            path: path.to_path_buf(),
            line: e.line,
            source: Box::new(source),
        })?;
    }
    Ok(())
}

/// A configuration read from a properties file: the defaults, then each entry's key set in
/// turn (`ClientConfig`: client keys, as an admin tool's `--command-config`;
/// `ProducerConfig` / `ConsumerConfig`: client keys and their own, as Kafka's
/// `producer.properties` / `consumer.properties`).
pub trait FromProperties: Default {
    /// Sets one key from its text value.
    fn set_property(&mut self, key: &str, value: &str) -> Result<(), ConfigError>;

    /// Reads a properties file (errors name the file and line).
    fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::from_properties(&read_file(path)?, path)
    }

    /// Applies parsed properties (`path` names the file in errors) over the defaults.
    fn from_properties(entries: &[Entry], path: &Path) -> Result<Self, ConfigError> {
        let mut c = Self::default();
        apply(entries, path, |k, v| c.set_property(k, v))?;
        Ok(c)
    }
}

impl FromProperties for ClientConfig {
    fn set_property(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        self.set(key, value)
    }
}

impl FromProperties for ProducerConfig {
    fn set_property(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        self.set(key, value)
    }
}

impl FromProperties for ConsumerConfig {
    fn set_property(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        self.set(key, value)
    }
}

/// `Ok` if `ok`, else `key`=`value` is invalid for `reason`.
fn require(ok: bool, key: &str, value: String, reason: &str) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(invalid(key, &value, reason))
    }
}

fn read_file(path: &Path) -> Result<Vec<Entry>, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| PropertiesError::Read { path: path.to_path_buf(), source })?;
    Ok(properties::parse(&text, path)?)
}

/// Parses `HOST:PORT[,HOST:PORT...]` (the `bootstrap.servers` value and the
/// `--bootstrap-server` flag); IPv6 hosts go in brackets (`[::1]:9092`). Errors name
/// `bootstrap.servers`.
pub fn parse_bootstrap_servers(value: &str) -> Result<Vec<String>, ConfigError> {
    let key = keys::BOOTSTRAP_SERVERS;
    let mut servers = Vec::new();
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad =
            |why: &str| invalid(key, value, format!("{part:?} {why}; expected HOST:PORT[,HOST:PORT...]"));
        let (host, port) = part.rsplit_once(':').ok_or_else(|| bad("has no port"))?;
        if host.is_empty() || host == "[]" {
            return Err(bad("has no host"));
        }
        if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
            return Err(bad("is an IPv6 address without brackets (write [ADDRESS]:PORT)"));
        }
        match port.parse::<u16>() {
            Ok(p) if p > 0 => {}
            _ => return Err(bad("has a port that is not a number from 1 to 65535")),
        }
        servers.push(part.to_string());
    }
    if servers.is_empty() {
        return Err(invalid(key, value, "names no server; expected HOST:PORT[,HOST:PORT...]"));
    }
    Ok(servers)
}

/// What every broker client needs: where the cluster is, who we are, and timeouts.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `bootstrap.servers`: brokers to ask for metadata first (any live broker will do;
    /// after the first answer the client knows them all).
    pub bootstrap_servers: Vec<String>,
    /// `tls.ca.file`.
    pub tls_ca_file: Option<PathBuf>,
    /// `tls.cert.file`.
    pub tls_cert_file: Option<PathBuf>,
    /// `tls.key.file`.
    pub tls_key_file: Option<PathBuf>,
    /// Credentials already loaded; when set, the three files are not read.
    pub tls: Option<ClientTls>,
    /// `client.id`: a name for this client in log lines (the protocol does not carry it).
    pub client_id: String,
    /// `request.timeout.ms`: how long one request may wait for its answer.
    pub request_timeout: Duration,
    /// `metadata.max.age.ms`: metadata older than this is refreshed even without errors.
    pub metadata_max_age: Duration,
    /// `retry.backoff.ms`: wait before retrying a failed request or refreshing metadata again.
    pub retry_backoff: Duration,
    /// `reconnect.backoff.ms`: first wait between connection attempts (doubles up to the max).
    pub reconnect_backoff: Duration,
    /// `reconnect.backoff.max.ms`: longest wait between connection attempts.
    pub reconnect_backoff_max: Duration,
    /// `socket.connection.setup.timeout.ms`: how long connecting to one broker may take.
    pub connection_setup_timeout: Duration,
}

impl Default for ClientConfig {
    /// No servers and no credentials (both required, see [`ClientConfig::validate`]); every
    /// other setting at its default.
    fn default() -> Self {
        ClientConfig {
            bootstrap_servers: Vec::new(),
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            tls: None,
            client_id: DEFAULT_CLIENT_ID.to_string(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            metadata_max_age: DEFAULT_METADATA_MAX_AGE,
            retry_backoff: DEFAULT_RETRY_BACKOFF,
            reconnect_backoff: DEFAULT_RECONNECT_BACKOFF,
            reconnect_backoff_max: DEFAULT_RECONNECT_BACKOFF_MAX,
            connection_setup_timeout: DEFAULT_CONNECTION_SETUP_TIMEOUT,
        }
    }
}

impl ClientConfig {
    /// The keys a client configuration accepts.
    pub const KEYS: &'static [&'static str] = &[
        keys::BOOTSTRAP_SERVERS,
        keys::TLS_CA_FILE,
        keys::TLS_CERT_FILE,
        keys::TLS_KEY_FILE,
        keys::CLIENT_ID,
        keys::REQUEST_TIMEOUT_MS,
        keys::METADATA_MAX_AGE_MS,
        keys::RETRY_BACKOFF_MS,
        keys::RECONNECT_BACKOFF_MS,
        keys::RECONNECT_BACKOFF_MAX_MS,
        keys::SOCKET_CONNECTION_SETUP_TIMEOUT_MS,
    ];

    /// A configuration for these bootstrap servers (`HOST:PORT` each); credentials still
    /// have to be given ([`tls_files`](Self::tls_files) or [`tls`](Self::tls)).
    pub fn new<S: Into<String>>(bootstrap_servers: impl IntoIterator<Item = S>) -> Self {
        ClientConfig {
            bootstrap_servers: bootstrap_servers.into_iter().map(Into::into).collect(),
            ..ClientConfig::default()
        }
    }

    /// A configuration from the environment, as the `sluice` tools read it:
    /// `SLUICE_BOOTSTRAP_SERVER` (`HOST:PORT[,HOST:PORT...]`) and the three TLS files
    /// `SLUICE_TLS_CA`, `SLUICE_TLS_CERT`, `SLUICE_TLS_KEY`. A missing one is named.
    pub fn from_env() -> Result<Self, ConfigError> {
        let var = env_var;
        let mut config = ClientConfig::default();
        config.set(
            keys::BOOTSTRAP_SERVERS,
            &var("SLUICE_BOOTSTRAP_SERVER", "the brokers to start from, HOST:PORT[,HOST:PORT...]")?,
        )?;
        let files = tls_files_from_env()?;
        config.tls_ca_file = Some(files.ca);
        config.tls_cert_file = Some(files.cert);
        config.tls_key_file = Some(files.key);
        Ok(config)
    }

    /// Sets one key from its text value.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        self.set_known(key, value).unwrap_or_else(|| Err(unknown(key, &[Self::KEYS])))
    }

    /// `None` when `key` is not a client key.
    pub(crate) fn set_known(&mut self, key: &str, value: &str) -> Option<Result<(), ConfigError>> {
        let path = || {
            if value.trim().is_empty() {
                Err(invalid(key, value, "must name a file"))
            } else {
                Ok(Some(PathBuf::from(value.trim())))
            }
        };
        let r = (|| {
            match key {
                keys::BOOTSTRAP_SERVERS => self.bootstrap_servers = parse_bootstrap_servers(value)?,
                keys::TLS_CA_FILE => self.tls_ca_file = path()?,
                keys::TLS_CERT_FILE => self.tls_cert_file = path()?,
                keys::TLS_KEY_FILE => self.tls_key_file = path()?,
                keys::CLIENT_ID => self.client_id = value.trim().to_string(),
                keys::REQUEST_TIMEOUT_MS => {
                    self.request_timeout = millis(key, value, 1, i64::from(i32::MAX))?
                }
                keys::METADATA_MAX_AGE_MS => self.metadata_max_age = any_millis(key, value)?,
                keys::RETRY_BACKOFF_MS => self.retry_backoff = any_millis(key, value)?,
                keys::RECONNECT_BACKOFF_MS => self.reconnect_backoff = any_millis(key, value)?,
                keys::RECONNECT_BACKOFF_MAX_MS => self.reconnect_backoff_max = any_millis(key, value)?,
                keys::SOCKET_CONNECTION_SETUP_TIMEOUT_MS => {
                    self.connection_setup_timeout = millis(key, value, 1, i64::MAX)?
                }
                _ => return Ok(false),
            }
            Ok(true)
        })();
        match r {
            Ok(false) => None,
            Ok(true) => Some(Ok(())),
            Err(e) => Some(Err(e)),
        }
    }

    /// Replaces the bootstrap servers.
    pub fn bootstrap_servers<S: Into<String>>(mut self, servers: impl IntoIterator<Item = S>) -> Self {
        self.bootstrap_servers = servers.into_iter().map(Into::into).collect();
        self
    }

    /// The three TLS files.
    pub fn tls_files(mut self, files: TlsFiles) -> Self {
        self.tls_ca_file = Some(files.ca);
        self.tls_cert_file = Some(files.cert);
        self.tls_key_file = Some(files.key);
        self
    }

    /// Credentials already loaded (the files are then not read).
    pub fn tls(mut self, tls: ClientTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// `client.id`.
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = id.into();
        self
    }

    /// `request.timeout.ms`.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// `metadata.max.age.ms`.
    pub fn metadata_max_age(mut self, age: Duration) -> Self {
        self.metadata_max_age = age;
        self
    }

    /// `retry.backoff.ms`.
    pub fn retry_backoff(mut self, backoff: Duration) -> Self {
        self.retry_backoff = backoff;
        self
    }

    /// `reconnect.backoff.ms`.
    pub fn reconnect_backoff(mut self, backoff: Duration) -> Self {
        self.reconnect_backoff = backoff;
        self
    }

    /// `reconnect.backoff.max.ms`.
    pub fn reconnect_backoff_max(mut self, backoff: Duration) -> Self {
        self.reconnect_backoff_max = backoff;
        self
    }

    /// `socket.connection.setup.timeout.ms`.
    pub fn connection_setup_timeout(mut self, timeout: Duration) -> Self {
        self.connection_setup_timeout = timeout;
        self
    }

    /// Checks that servers and credentials are given.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.bootstrap_servers.is_empty() {
            return Err(ConfigError::Missing {
                key: keys::BOOTSTRAP_SERVERS,
                hint: "name at least one broker as HOST:PORT (or pass --bootstrap-server)",
            });
        }
        if self.tls.is_none() {
            self.tls_files_given()?;
        }
        Ok(())
    }

    fn tls_files_given(&self) -> Result<TlsFiles, ConfigError> {
        let need = |v: &Option<PathBuf>, key: &'static str| {
            v.clone().ok_or(ConfigError::Missing {
                key,
                hint: "brokers require mutual TLS: give the cluster CA (tls.ca.file) and this client's \
                       certificate and key (tls.cert.file, tls.key.file), e.g. from `sluice certs issue`",
            })
        };
        Ok(TlsFiles {
            ca: need(&self.tls_ca_file, tls_keys::CA)?,
            cert: need(&self.tls_cert_file, tls_keys::CERT)?,
            key: need(&self.tls_key_file, tls_keys::KEY)?,
        })
    }

    /// The credentials: those given with [`tls`](Self::tls), else the three files, read now.
    pub fn client_tls(&self) -> Result<ClientTls, ConfigError> {
        match &self.tls {
            Some(tls) => Ok(tls.clone()),
            None => Ok(ClientTls::new(TlsIdentity::load(&self.tls_files_given()?)?)),
        }
    }

    /// Transport settings from these settings.
    pub(crate) fn transport_options(&self) -> ClientOptions {
        ClientOptions {
            request_timeout: self.request_timeout,
            connect_timeout: self.connection_setup_timeout,
            initial_backoff: self.reconnect_backoff.max(Duration::from_millis(1)),
            max_backoff: self.reconnect_backoff_max.max(self.reconnect_backoff),
            ..ClientOptions::default()
        }
    }
}

/// `acks`: what the leader waits for before answering a produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// `0`: no answer wanted; records count as sent once written to the connection.
    None,
    /// `1`: the leader has appended them.
    Leader,
    /// `all` / `-1`: every in-sync replica has them.
    All,
}

impl Acks {
    /// The wire value: 0, 1 or -1.
    pub fn as_i16(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

impl FromStr for Acks {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "all" | "-1" => Ok(Acks::All),
            "0" => Ok(Acks::None),
            "1" => Ok(Acks::Leader),
            _ => Err(invalid(keys::ACKS, s, "must be all (or -1), 0 or 1")),
        }
    }
}

/// Parses a producer's `compression.type`: `none`, `gzip`, `snappy`, `lz4` or `zstd`.
pub fn parse_compression(value: &str) -> Result<Compression, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "none" => Ok(Compression::None),
        "gzip" => Ok(Compression::Gzip),
        "snappy" => Ok(Compression::Snappy),
        "lz4" => Ok(Compression::Lz4),
        "zstd" => Ok(Compression::Zstd),
        _ => Err(invalid(keys::COMPRESSION_TYPE, value, "must be none, gzip, snappy, lz4 or zstd")),
    }
}

/// Producer settings.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// Servers, credentials, timeouts.
    pub client: ClientConfig,
    /// `acks`.
    pub acks: Acks,
    /// `linger.ms`: a batch is sent this long after its first record, if not full before.
    pub linger: Duration,
    /// `batch.size`: a batch is closed once its records take this many bytes (uncompressed);
    /// a larger record gets a batch of its own. 0 sends every record in its own batch.
    pub batch_size: usize,
    /// `compression.type`.
    pub compression: Compression,
    /// `retries`: how often a batch is sent again after a retriable error (within the
    /// delivery timeout).
    pub retries: u32,
    /// `delivery.timeout.ms`: a record's future fails this long after its batch was
    /// started if the batch has not been acknowledged by then.
    pub delivery_timeout: Duration,
    /// `max.request.size`: the largest record (with a batch's overhead) that may be sent.
    pub max_request_size: usize,
    /// `max.in.flight.requests.per.connection`: produce requests per partition awaiting their
    /// answer.
    pub max_in_flight: usize,
    /// `buffer.memory`: bytes of records waiting to be sent or acknowledged (each counted as
    /// the size of a batch holding it alone); `send` waits (up to `max.block.ms`) when it is
    /// used up, and meanwhile every batch is sent without lingering.
    pub buffer_memory: u64,
    /// `max.block.ms`: how long `send` may wait for metadata and buffer space.
    pub max_block: Duration,
    /// `enable.idempotence` as set (`None`: unset, see [`ProducerConfig::idempotent`]).
    pub enable_idempotence: Option<bool>,
}

/// Kafka's limit on requests in flight per partition for an idempotent producer (the
/// brokers keep this many batches per producer).
pub const MAX_IN_FLIGHT_FOR_IDEMPOTENCE: usize = 5;

impl ProducerConfig {
    /// The producer keys (besides [`ClientConfig::KEYS`]).
    pub const KEYS: &'static [&'static str] = &[
        keys::ACKS,
        keys::LINGER_MS,
        keys::BATCH_SIZE,
        keys::COMPRESSION_TYPE,
        keys::RETRIES,
        keys::DELIVERY_TIMEOUT_MS,
        keys::MAX_REQUEST_SIZE,
        keys::MAX_IN_FLIGHT,
        keys::BUFFER_MEMORY,
        keys::MAX_BLOCK_MS,
        keys::ENABLE_IDEMPOTENCE,
    ];

    /// Default producer settings for this client.
    pub fn new(client: ClientConfig) -> Self {
        ProducerConfig {
            client,
            acks: DEFAULT_ACKS,
            linger: DEFAULT_LINGER,
            batch_size: DEFAULT_BATCH_SIZE,
            compression: DEFAULT_COMPRESSION,
            retries: DEFAULT_RETRIES,
            delivery_timeout: DEFAULT_DELIVERY_TIMEOUT,
            max_request_size: DEFAULT_MAX_REQUEST_SIZE,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            buffer_memory: DEFAULT_BUFFER_MEMORY,
            max_block: DEFAULT_MAX_BLOCK,
            enable_idempotence: None,
        }
    }

    /// Whether the producer is idempotent: as set, or (unset) when the other settings allow
    /// it (`acks=all`, `retries` > 0, at most 5 requests in flight), as Kafka 3.2+ decides.
    pub fn idempotent(&self) -> bool {
        let compatible =
            self.acks == Acks::All && self.retries > 0 && self.max_in_flight <= MAX_IN_FLIGHT_FOR_IDEMPOTENCE;
        self.enable_idempotence.unwrap_or(compatible)
    }

    /// `enable.idempotence`.
    pub fn idempotence(mut self, enable: bool) -> Self {
        self.enable_idempotence = Some(enable);
        self
    }

    /// Sets one key (client or producer) from its text value.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let v = value;
        match key {
            keys::ACKS => self.acks = v.parse()?,
            keys::LINGER_MS => self.linger = any_millis(key, v)?,
            keys::BATCH_SIZE => self.batch_size = int(key, v, 0, i64::from(i32::MAX))? as usize,
            keys::COMPRESSION_TYPE => self.compression = parse_compression(v)?,
            keys::RETRIES => self.retries = int(key, v, 0, i64::from(i32::MAX))? as u32,
            keys::DELIVERY_TIMEOUT_MS => self.delivery_timeout = millis(key, v, 1, i64::from(i32::MAX))?,
            keys::MAX_REQUEST_SIZE => self.max_request_size = int(key, v, 1, i64::from(i32::MAX))? as usize,
            keys::MAX_IN_FLIGHT => self.max_in_flight = int(key, v, 1, i64::from(i32::MAX))? as usize,
            keys::BUFFER_MEMORY => self.buffer_memory = int(key, v, 1, 1 << 50)? as u64,
            keys::MAX_BLOCK_MS => self.max_block = any_millis(key, v)?,
            keys::ENABLE_IDEMPOTENCE => self.enable_idempotence = Some(boolean(key, v)?),
            _ => {
                return self
                    .client
                    .set_known(key, v)
                    .unwrap_or_else(|| Err(unknown(key, &[ClientConfig::KEYS, Self::KEYS])))
            }
        }
        Ok(())
    }

    /// `acks`.
    pub fn acks(mut self, acks: Acks) -> Self {
        self.acks = acks;
        self
    }

    /// `linger.ms`.
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// `batch.size`.
    pub fn batch_size(mut self, bytes: usize) -> Self {
        self.batch_size = bytes;
        self
    }

    /// `compression.type`.
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// `retries`.
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// `delivery.timeout.ms`.
    pub fn delivery_timeout(mut self, timeout: Duration) -> Self {
        self.delivery_timeout = timeout;
        self
    }

    /// `max.request.size`.
    pub fn max_request_size(mut self, bytes: usize) -> Self {
        self.max_request_size = bytes;
        self
    }

    /// `max.in.flight.requests.per.connection`.
    pub fn max_in_flight(mut self, requests: usize) -> Self {
        self.max_in_flight = requests;
        self
    }

    /// `buffer.memory`.
    pub fn buffer_memory(mut self, bytes: u64) -> Self {
        self.buffer_memory = bytes;
        self
    }

    /// `max.block.ms`.
    pub fn max_block(mut self, timeout: Duration) -> Self {
        self.max_block = timeout;
        self
    }

    /// Checks the client part and the ranges the builder does not check.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.client.validate()?;
        require(
            self.max_in_flight >= 1,
            keys::MAX_IN_FLIGHT,
            self.max_in_flight.to_string(),
            "must be at least 1",
        )?;
        require(self.max_request_size >= 1, keys::MAX_REQUEST_SIZE, "0".into(), "must be at least 1")?;
        require(self.buffer_memory >= 1, keys::BUFFER_MEMORY, "0".into(), "must be at least 1")?;
        self.check_idempotence()?;
        require(
            self.delivery_timeout > Duration::ZERO,
            keys::DELIVERY_TIMEOUT_MS,
            "0".into(),
            "must be at least 1",
        )
    }

    /// `enable.idempotence=true` with settings it cannot work with is refused, naming them.
    fn check_idempotence(&self) -> Result<(), ConfigError> {
        if self.enable_idempotence == Some(true) {
            let why = "enable.idempotence=true needs acks=all (or set enable.idempotence=false)";
            require(self.acks == Acks::All, keys::ACKS, self.acks.as_i16().to_string(), why)?;
            let why = "enable.idempotence=true needs retries > 0 (or set enable.idempotence=false)";
            require(self.retries > 0, keys::RETRIES, "0".into(), why)?;
            let why = "enable.idempotence=true needs at most 5 requests in flight (or set enable.idempotence=false)";
            require(
                self.max_in_flight <= MAX_IN_FLIGHT_FOR_IDEMPOTENCE,
                keys::MAX_IN_FLIGHT,
                self.max_in_flight.to_string(),
                why,
            )?;
        }
        Ok(())
    }

    /// `delivery.timeout.ms`, raised to `linger.ms + request.timeout.ms` if below it.
    pub fn effective_delivery_timeout(&self) -> Duration {
        self.delivery_timeout.max(self.linger + self.client.request_timeout)
    }
}

impl Default for ProducerConfig {
    /// Default producer settings with no servers or credentials yet.
    fn default() -> Self {
        ProducerConfig::new(ClientConfig::default())
    }
}

/// `auto.offset.reset`: where to start in a partition without a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoOffsetReset {
    /// `earliest`: the log start offset.
    Earliest,
    /// `latest`: the log end offset (only records produced from now on).
    Latest,
    /// `none`: fail with `NoOffsetForPartition` / `OffsetOutOfRange`.
    None,
}

impl FromStr for AutoOffsetReset {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "earliest" => Ok(AutoOffsetReset::Earliest),
            "latest" => Ok(AutoOffsetReset::Latest),
            "none" => Ok(AutoOffsetReset::None),
            _ => Err(invalid(keys::AUTO_OFFSET_RESET, s, "must be earliest, latest or none")),
        }
    }
}

/// Consumer settings.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Servers, credentials, timeouts.
    pub client: ClientConfig,
    /// `group.id`: the group [`subscribe`](super::consumer::Consumer::subscribe) joins and
    /// offsets are committed for.
    pub group_id: Option<String>,
    /// `session.timeout.ms`.
    pub session_timeout: Duration,
    /// `heartbeat.interval.ms`.
    pub heartbeat_interval: Duration,
    /// `max.poll.interval.ms`: the rebalance timeout.
    pub max_poll_interval: Duration,
    /// `enable.auto.commit`: commit positions every `auto.commit.interval.ms` (from `poll`),
    /// before a rebalance and on `close`.
    pub enable_auto_commit: bool,
    /// `auto.commit.interval.ms`.
    pub auto_commit_interval: Duration,
    /// `partition.assignment.strategy`: assignor names, preferred first.
    pub assignment_strategy: Vec<String>,
    /// `auto.offset.reset`.
    pub auto_offset_reset: AutoOffsetReset,
    /// `fetch.min.bytes`: a fetch is answered once this many bytes are available...
    pub fetch_min_bytes: u32,
    /// `fetch.max.wait.ms`: ... or after this long.
    pub fetch_max_wait: Duration,
    /// `fetch.max.bytes`: most bytes in one fetch answer (at least one batch comes anyway).
    pub fetch_max_bytes: u32,
    /// `max.partition.fetch.bytes`: most bytes per partition in one fetch answer.
    pub max_partition_fetch_bytes: u32,
    /// `max.poll.records`: most records one `poll` returns (the rest stay buffered).
    pub max_poll_records: usize,
    /// `check.crcs`: verify each batch's CRC-32C before decoding it.
    pub check_crcs: bool,
    /// `allow.auto.create.topics`.
    pub allow_auto_create_topics: bool,
}

impl ConsumerConfig {
    /// The consumer keys (besides [`ClientConfig::KEYS`]).
    pub const KEYS: &'static [&'static str] = &[
        keys::GROUP_ID,
        keys::SESSION_TIMEOUT_MS,
        keys::HEARTBEAT_INTERVAL_MS,
        keys::MAX_POLL_INTERVAL_MS,
        keys::ENABLE_AUTO_COMMIT,
        keys::AUTO_COMMIT_INTERVAL_MS,
        keys::PARTITION_ASSIGNMENT_STRATEGY,
        keys::AUTO_OFFSET_RESET,
        keys::FETCH_MIN_BYTES,
        keys::FETCH_MAX_WAIT_MS,
        keys::FETCH_MAX_BYTES,
        keys::MAX_PARTITION_FETCH_BYTES,
        keys::MAX_POLL_RECORDS,
        keys::CHECK_CRCS,
        keys::ALLOW_AUTO_CREATE_TOPICS,
    ];

    /// Default consumer settings for this client.
    pub fn new(client: ClientConfig) -> Self {
        ConsumerConfig {
            client,
            group_id: None,
            session_timeout: DEFAULT_SESSION_TIMEOUT,
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            max_poll_interval: DEFAULT_MAX_POLL_INTERVAL,
            enable_auto_commit: DEFAULT_ENABLE_AUTO_COMMIT,
            auto_commit_interval: DEFAULT_AUTO_COMMIT_INTERVAL,
            assignment_strategy: DEFAULT_ASSIGNMENT_STRATEGY.iter().map(|s| s.to_string()).collect(),
            auto_offset_reset: DEFAULT_AUTO_OFFSET_RESET,
            fetch_min_bytes: DEFAULT_FETCH_MIN_BYTES,
            fetch_max_wait: DEFAULT_FETCH_MAX_WAIT,
            fetch_max_bytes: DEFAULT_FETCH_MAX_BYTES,
            max_partition_fetch_bytes: DEFAULT_MAX_PARTITION_FETCH_BYTES,
            max_poll_records: DEFAULT_MAX_POLL_RECORDS,
            check_crcs: DEFAULT_CHECK_CRCS,
            allow_auto_create_topics: DEFAULT_ALLOW_AUTO_CREATE_TOPICS,
        }
    }

    /// Sets one key (client or consumer) from its text value.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let v = value;
        let bytes = |min| int(key, v, min, i64::from(i32::MAX)).map(|n| n as u32);
        match key {
            keys::GROUP_ID => {
                let id = v.trim();
                self.group_id = (!id.is_empty()).then(|| id.to_string());
            }
            keys::SESSION_TIMEOUT_MS => self.session_timeout = millis(key, v, 1, i64::from(i32::MAX))?,
            keys::HEARTBEAT_INTERVAL_MS => self.heartbeat_interval = millis(key, v, 1, i64::from(i32::MAX))?,
            keys::MAX_POLL_INTERVAL_MS => self.max_poll_interval = millis(key, v, 1, i64::from(i32::MAX))?,
            keys::ENABLE_AUTO_COMMIT => self.enable_auto_commit = boolean(key, v)?,
            keys::AUTO_COMMIT_INTERVAL_MS => {
                self.auto_commit_interval = millis(key, v, 0, i64::from(i32::MAX))?
            }
            keys::PARTITION_ASSIGNMENT_STRATEGY => {
                let names: Vec<String> =
                    v.split(',').map(str::trim).filter(|n| !n.is_empty()).map(str::to_string).collect();
                if names.is_empty() {
                    return Err(invalid(
                        key,
                        v,
                        "name at least one assignor: range, roundrobin, sticky or cooperative-sticky",
                    ));
                }
                if let Some(bad) = names.iter().find(|n| super::assignor::assignor(n).is_none()) {
                    return Err(invalid(
                        key,
                        v,
                        format!(
                            "unknown assignor {bad}: use range, roundrobin, sticky or cooperative-sticky"
                        ),
                    ));
                }
                self.assignment_strategy = names;
            }
            keys::AUTO_OFFSET_RESET => self.auto_offset_reset = v.parse()?,
            keys::FETCH_MIN_BYTES => self.fetch_min_bytes = bytes(0)?,
            keys::FETCH_MAX_WAIT_MS => self.fetch_max_wait = millis(key, v, 0, i64::from(i32::MAX))?,
            keys::FETCH_MAX_BYTES => self.fetch_max_bytes = bytes(0)?,
            keys::MAX_PARTITION_FETCH_BYTES => self.max_partition_fetch_bytes = bytes(0)?,
            keys::MAX_POLL_RECORDS => self.max_poll_records = int(key, v, 1, i64::from(i32::MAX))? as usize,
            keys::CHECK_CRCS => self.check_crcs = boolean(key, v)?,
            keys::ALLOW_AUTO_CREATE_TOPICS => self.allow_auto_create_topics = boolean(key, v)?,
            _ => {
                return self
                    .client
                    .set_known(key, v)
                    .unwrap_or_else(|| Err(unknown(key, &[ClientConfig::KEYS, Self::KEYS])))
            }
        }
        Ok(())
    }

    /// `group.id`.
    pub fn group_id(mut self, id: impl Into<String>) -> Self {
        self.group_id = Some(id.into());
        self
    }

    /// `session.timeout.ms`.
    pub fn session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout;
        self
    }

    /// `heartbeat.interval.ms`.
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = interval;
        self
    }

    /// `max.poll.interval.ms`.
    pub fn max_poll_interval(mut self, interval: Duration) -> Self {
        self.max_poll_interval = interval;
        self
    }

    /// `enable.auto.commit`.
    pub fn enable_auto_commit(mut self, enable: bool) -> Self {
        self.enable_auto_commit = enable;
        self
    }

    /// `auto.commit.interval.ms`.
    pub fn auto_commit_interval(mut self, interval: Duration) -> Self {
        self.auto_commit_interval = interval;
        self
    }

    /// `partition.assignment.strategy`.
    pub fn assignment_strategy<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.assignment_strategy = names.into_iter().map(Into::into).collect();
        self
    }

    /// `auto.offset.reset`.
    pub fn auto_offset_reset(mut self, reset: AutoOffsetReset) -> Self {
        self.auto_offset_reset = reset;
        self
    }

    /// `fetch.min.bytes`.
    pub fn fetch_min_bytes(mut self, bytes: u32) -> Self {
        self.fetch_min_bytes = bytes;
        self
    }

    /// `fetch.max.wait.ms`.
    pub fn fetch_max_wait(mut self, wait: Duration) -> Self {
        self.fetch_max_wait = wait;
        self
    }

    /// `fetch.max.bytes`.
    pub fn fetch_max_bytes(mut self, bytes: u32) -> Self {
        self.fetch_max_bytes = bytes;
        self
    }

    /// `max.partition.fetch.bytes`.
    pub fn max_partition_fetch_bytes(mut self, bytes: u32) -> Self {
        self.max_partition_fetch_bytes = bytes;
        self
    }

    /// `max.poll.records`.
    pub fn max_poll_records(mut self, records: usize) -> Self {
        self.max_poll_records = records;
        self
    }

    /// `check.crcs`.
    pub fn check_crcs(mut self, check: bool) -> Self {
        self.check_crcs = check;
        self
    }

    /// `allow.auto.create.topics`.
    pub fn allow_auto_create_topics(mut self, allow: bool) -> Self {
        self.allow_auto_create_topics = allow;
        self
    }

    /// Checks the client part and the ranges the builder does not check.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.client.validate()?;
        if self.max_poll_records == 0 {
            return Err(invalid(keys::MAX_POLL_RECORDS, "0", "must be at least 1"));
        }
        if self.heartbeat_interval >= self.session_timeout {
            let ms = self.heartbeat_interval.as_millis().to_string();
            return Err(invalid(keys::HEARTBEAT_INTERVAL_MS, &ms, "must be lower than session.timeout.ms"));
        }
        if let Some(bad) = self.assignment_strategy.iter().find(|n| super::assignor::assignor(n).is_none()) {
            let why = format!("unknown assignor {bad}: use range, roundrobin, sticky or cooperative-sticky");
            return Err(invalid(keys::PARTITION_ASSIGNMENT_STRATEGY, bad, why));
        }
        if self.assignment_strategy.is_empty() {
            return Err(invalid(keys::PARTITION_ASSIGNMENT_STRATEGY, "", "name at least one assignor"));
        }
        Ok(())
    }
}

impl Default for ConsumerConfig {
    /// Default consumer settings with no servers or credentials yet.
    fn default() -> Self {
        ConsumerConfig::new(ClientConfig::default())
    }
}

/// An environment variable the tools read; a missing or empty one is named with `hint`.
fn env_var(name: &'static str, hint: &'static str) -> Result<String, ConfigError> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty()).ok_or(ConfigError::Missing { key: name, hint })
}

/// This client's TLS files from the environment, as the `sluice` tools read them:
/// `SLUICE_TLS_CA`, `SLUICE_TLS_CERT`, `SLUICE_TLS_KEY` (a missing one is named).
pub fn tls_files_from_env() -> Result<TlsFiles, ConfigError> {
    Ok(TlsFiles {
        ca: env_var("SLUICE_TLS_CA", "the cluster CA certificate (PEM)")?.into(),
        cert: env_var("SLUICE_TLS_CERT", "this client's certificate (PEM)")?.into(),
        key: env_var("SLUICE_TLS_KEY", "this client's private key (PEM)")?.into(),
    })
}

/// This client's TLS identity from the environment ([`tls_files_from_env`]), loaded now: what
/// a keeper client connects with.
pub fn tls_from_env() -> Result<ClientTls, ConfigError> {
    Ok(ClientTls::new(TlsIdentity::load(&tls_files_from_env()?)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(text: &str) -> Vec<Entry> {
        properties::parse(text, Path::new("p.properties")).expect("parse")
    }

    #[test]
    fn defaults_are_kafkas() {
        let p = ProducerConfig::default();
        assert_eq!(p.acks, Acks::All);
        assert_eq!(p.linger, Duration::from_millis(5));
        assert_eq!(p.batch_size, 16384);
        assert_eq!(p.compression, Compression::None);
        assert_eq!(p.retries, 2147483647);
        assert_eq!(p.delivery_timeout, Duration::from_millis(120_000));
        assert_eq!(p.max_request_size, 1048576);
        assert_eq!(p.max_in_flight, 5);
        assert_eq!(p.buffer_memory, 33554432);
        assert_eq!(p.max_block, Duration::from_millis(60_000));
        let c = &p.client;
        assert_eq!(c.request_timeout, Duration::from_millis(30_000));
        assert_eq!(c.metadata_max_age, Duration::from_millis(300_000));
        assert_eq!(c.retry_backoff, Duration::from_millis(100));
        assert_eq!(c.reconnect_backoff, Duration::from_millis(50));
        let k = ConsumerConfig::default();
        assert_eq!(k.auto_offset_reset, AutoOffsetReset::Latest);
        assert_eq!(k.fetch_min_bytes, 1);
        assert_eq!(k.fetch_max_wait, Duration::from_millis(500));
        assert_eq!(k.fetch_max_bytes, 52428800);
        assert_eq!(k.max_partition_fetch_bytes, 1048576);
        assert_eq!(k.max_poll_records, 500);
        assert!(k.check_crcs);
        assert_eq!(k.group_id, None);
    }

    #[test]
    fn a_producer_properties_file_sets_client_and_producer_keys() {
        let text = "bootstrap.servers=b1:9092, b2:9093\ntls.ca.file=ca.pem\ntls.cert.file=me.pem\n\
                    tls.key.file=me.key\nclient.id=loader\nacks=1\nlinger.ms=20\nbatch.size=65536\n\
                    compression.type=zstd\nretries=3\ndelivery.timeout.ms=60000\nmax.request.size=2097152\n\
                    max.in.flight.requests.per.connection=1\nbuffer.memory=1000000\n\
                    enable.idempotence=false\n\
                    request.timeout.ms=5000\n";
        let p = ProducerConfig::from_properties(&entries(text), Path::new("p.properties")).expect("valid");
        assert_eq!(p.client.bootstrap_servers, vec!["b1:9092", "b2:9093"]);
        assert_eq!(p.client.tls_cert_file.as_deref(), Some(Path::new("me.pem")));
        assert_eq!(p.client.client_id, "loader");
        assert_eq!(p.client.request_timeout, Duration::from_secs(5));
        assert_eq!((p.acks, p.linger, p.batch_size), (Acks::Leader, Duration::from_millis(20), 65536));
        assert_eq!((p.compression, p.retries, p.max_in_flight), (Compression::Zstd, 3, 1));
        assert_eq!((p.max_request_size, p.buffer_memory), (2097152, 1_000_000));
        p.validate().expect("complete");
    }

    #[test]
    fn acks_accepts_kafkas_spellings() {
        for (text, acks) in [
            ("all", Acks::All),
            ("-1", Acks::All),
            ("ALL", Acks::All),
            ("0", Acks::None),
            ("1", Acks::Leader),
        ] {
            assert_eq!(text.parse::<Acks>().expect(text), acks);
        }
        assert_eq!(Acks::All.as_i16(), -1);
        let err = "2".parse::<Acks>().expect_err("2");
        assert_eq!(err.to_string(), "invalid value \"2\" for acks: must be all (or -1), 0 or 1");
    }

    #[test]
    fn a_bad_value_names_the_file_line_key_value_and_why() {
        let err = ProducerConfig::from_properties(
            &entries("acks=all\n\nlinger.ms=soon\n"),
            Path::new("p.properties"),
        )
        .expect_err("bad linger");
        assert_eq!(
            err.to_string(),
            "p.properties:3: invalid value \"soon\" for linger.ms: must be a whole number from 0 to \
             9223372036854775807"
        );
        let err = ConsumerConfig::default().set("auto.offset.reset", "smallest").expect_err("old name");
        assert_eq!(
            err.to_string(),
            "invalid value \"smallest\" for auto.offset.reset: must be earliest, latest or none"
        );
        let err = ProducerConfig::default().set("compression.type", "brotli").expect_err("codec");
        assert!(err.to_string().contains("none, gzip, snappy, lz4 or zstd"), "{err}");
        let err = ProducerConfig::default().set("max.in.flight.requests.per.connection", "0").expect_err("0");
        assert!(err.to_string().contains("from 1 to"), "{err}");
    }

    #[test]
    fn an_unknown_key_lists_the_known_ones_for_that_kind_of_client() {
        let err = ProducerConfig::default().set("linger.msec", "5").expect_err("typo");
        let msg = err.to_string();
        assert!(msg.starts_with("unknown key \"linger.msec\"; known keys: bootstrap.servers"), "{msg}");
        assert!(msg.contains("linger.ms") && msg.contains("buffer.memory"), "{msg}");
        assert!(!msg.contains("fetch.min.bytes"), "consumer keys are not producer keys: {msg}");
        let err = ConsumerConfig::default().set("acks", "1").expect_err("producer key");
        assert!(err.to_string().contains("max.poll.records"), "{err}");
        let err = ClientConfig::default().set("group.id", "g").expect_err("consumer key");
        assert!(matches!(err, ConfigError::UnknownKey { .. }), "{err}");
    }

    #[test]
    fn idempotence_follows_kafka_3_2_defaults_and_refuses_conflicts() {
        // Unset: on with the defaults (acks=all, retries, 5 in flight), off with acks=1.
        let mut p = ProducerConfig::default();
        assert!(p.idempotent());
        p.set("acks", "1").expect("acks");
        assert!(!p.idempotent(), "unset and acks=1: quietly off");
        p.check_idempotence().expect("no conflict when unset");
        // Explicitly true with acks=1: refused, naming the conflict and the fix.
        p.set("enable.idempotence", "true").expect("a boolean");
        let err = p.check_idempotence().expect_err("conflict");
        assert!(err.to_string().contains("needs acks=all"), "{err}");
        p.set("acks", "all").expect("acks");
        p.check_idempotence().expect("consistent");
        p.set("max.in.flight.requests.per.connection", "6").expect("in flight");
        assert!(p.check_idempotence().expect_err("too many in flight").to_string().contains("at most 5"));
        // Explicitly false: off whatever else.
        p.set("enable.idempotence", "false").expect("false");
        assert!(!p.idempotent());
        assert!(p.set("enable.idempotence", "maybe").is_err());
    }

    #[test]
    fn group_id_is_kept_and_consumer_keys_parse() {
        let text =
            "group.id=readers\nauto.offset.reset=earliest\nfetch.min.bytes=1024\nfetch.max.wait.ms=100\n\
                    max.poll.records=10\ncheck.crcs=false\nbootstrap.servers=[::1]:9092\n";
        let c = ConsumerConfig::from_properties(&entries(text), Path::new("c.properties")).expect("valid");
        assert_eq!(c.group_id.as_deref(), Some("readers"));
        assert_eq!(c.auto_offset_reset, AutoOffsetReset::Earliest);
        assert_eq!((c.fetch_min_bytes, c.fetch_max_wait), (1024, Duration::from_millis(100)));
        assert_eq!((c.max_poll_records, c.check_crcs), (10, false));
        assert_eq!(c.client.bootstrap_servers, vec!["[::1]:9092"]);
    }

    #[test]
    fn bootstrap_servers_must_be_host_port_lists() {
        assert_eq!(
            parse_bootstrap_servers("a:1,b:2 , c:3").expect("ok"),
            vec!["a:1".to_string(), "b:2".into(), "c:3".into()]
        );
        for bad in ["", "a", "a:", ":9092", "a:x", "a:0", "a:70000", "::1:9092", ","] {
            let err = parse_bootstrap_servers(bad).expect_err(bad);
            assert!(err.to_string().contains("bootstrap.servers"), "{err}");
        }
        let err = parse_bootstrap_servers("::1:9092").expect_err("v6");
        assert!(err.to_string().contains("brackets"), "{err}");
    }

    #[test]
    fn servers_and_mutual_tls_credentials_are_required() {
        let err = ClientConfig::default().validate().expect_err("no servers");
        assert!(err.to_string().starts_with("bootstrap.servers is required"), "{err}");
        let mut c = ClientConfig::new(["b:9092"]);
        c.set("tls.ca.file", "ca.pem").expect("set");
        let err = c.validate().expect_err("no cert");
        assert!(
            err.to_string().starts_with("tls.cert.file is required: brokers require mutual TLS"),
            "{err}"
        );
        let c = c.tls_files(TlsFiles { ca: "a".into(), cert: "b".into(), key: "c".into() });
        c.validate().expect("complete");
        let err = c.client_tls().expect_err("files do not exist");
        assert!(matches!(err, ConfigError::Tls(_)), "{err}");
    }

    #[test]
    fn builders_set_what_they_name_and_delivery_timeout_covers_linger_and_request_timeout() {
        let p = ProducerConfig::new(ClientConfig::new(["b:1"]).request_timeout(Duration::from_secs(50)))
            .acks(Acks::None)
            .linger(Duration::from_millis(100))
            .delivery_timeout(Duration::from_secs(10));
        assert_eq!(p.acks, Acks::None);
        assert_eq!(p.effective_delivery_timeout(), Duration::from_millis(50_100));
        let c = ConsumerConfig::new(ClientConfig::new(["b:1"])).max_poll_records(0);
        assert!(c.validate().is_err());
    }
}
