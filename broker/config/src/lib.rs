//! The broker's `server.properties`, with the keys and defaults of ZooKeeper-mode Kafka 3.x.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `broker.id` | (required) | this broker's id, 0 to 2147483647, unique in the cluster (no generated ids) |
//! | `listeners` | `quic://0.0.0.0:9092` | `NAME://HOST:PORT,...`: one `quic://` (Sluice's protocols), optionally `SSL://` and `PLAINTEXT://` (Kafka's wire protocol over TLS / plain TCP). HOST empty (0.0.0.0), a name (resolved when the file is read), an IPv4 or a bracketed IPv6 address; port 0 picks a free one |
//! | `advertised.listeners` | `listeners`, an unspecified host (empty, 0.0.0.0, `[::]`) replaced by 127.0.0.1 | per listener name, `NAME://HOST:PORT` registered in the keeper for clients; port 0 means the port bound |
//! | `ssl.client.auth` | required | only `required`: the SSL listener's clients prove who they are |
//! | `socket.request.max.bytes` | 104857600 | the largest Kafka request read |
//! | `connections.max.idle.ms` | 600000 | idle Kafka connections are closed after this |
//! | `max.connections.per.ip` | 2147483647 | Kafka connections per client address |
//! | `super.users` | (none) | principals that may do anything, `User:<name>;User:<name>` |
//! | `allow.everyone.if.no.acl.found` | false | whether a resource no ACL names is open to everyone |
//! | `broker.rack` | (none) | this broker's rack, for rack-aware replica assignment |
//! | `zookeeper.connect` | (required) | the keeper ensemble, `host:port[,host:port...][/chroot]` |
//! | `zookeeper.session.timeout.ms` | 18000 | the broker's keeper session timeout |
//! | `tls.ca.file`, `tls.cert.file`, `tls.key.file` | (required) | the cluster CA, this broker's certificate and key |
//! | `ssl.keystore.location`, `ssl.truststore.location` (`ssl.*.type=PEM`) | (unset) | Kafka's PEM stores, instead of the three `tls.*` files |
//! | `metrics.port` | (none: no endpoint) | TCP port of the Prometheus `/metrics` endpoint; 0 picks a free one |
//! | `metrics.host` | 0.0.0.0 | IP address of that endpoint (only with `metrics.port`) |
//! | `log.dirs` | /tmp/kafka-logs | comma-separated directories holding partition logs |
//! | `log.dir` | /tmp/kafka-logs | the older single-key form; `log.dirs` wins when both are set |
//! | `num.partitions` | 1 | partitions of an auto-created or partition-less topic |
//! | `default.replication.factor` | 1 | replicas of an auto-created or factor-less topic |
//! | `min.insync.replicas` | 1 | in-sync replicas an `acks=all` produce needs |
//! | `delete.topic.enable` | true | whether topics may be deleted |
//! | `auto.create.topics.enable` | true | create a topic when a client asks for its metadata |
//! | `auto.leader.rebalance.enable` | true | move leadership back to preferred replicas |
//! | `leader.imbalance.check.interval.seconds` | 300 | how often the controller checks leader balance |
//! | `leader.imbalance.per.broker.percentage` | 10 | share (0-100) of non-preferred leaders on a broker that triggers a rebalance |
//! | `offsets.topic.num.partitions` | 50 | partitions of `__consumer_offsets` |
//! | `offsets.topic.replication.factor` | 3 | replicas of `__consumer_offsets` (a single broker needs 1) |
//! | `offsets.retention.minutes` | 10080 | how long committed offsets of an empty group are kept |
//! | `replica.lag.time.max.ms` | 30000 | a follower that has not caught up for this long leaves the ISR |
//! | `unclean.leader.election.enable` | false | allow an out-of-sync replica to become leader (data loss) |
//! | `group.initial.rebalance.delay.ms` | 3000 | how long a new group waits for more members before its first rebalance |
//! | `group.min.session.timeout.ms` | 6000 | the shortest `session.timeout.ms` a consumer may ask for |
//! | `group.max.session.timeout.ms` | 1800000 | the longest `session.timeout.ms` a consumer may ask for |
//! | `num.replica.fetchers` | 1 | follower fetchers (actors) per source broker; a partition's fetcher is picked by hashing it |
//! | `replica.fetch.wait.max.ms` | 500 | how long a follower's fetch waits at the leader for data (below `replica.lag.time.max.ms`) |
//! | `replica.fetch.min.bytes` | 1 | bytes a follower's fetch waits for |
//! | `replica.fetch.max.bytes` | 1048576 | bytes per partition a follower fetches at once (at least one batch) |
//! | `replica.fetch.response.max.bytes` | 10485760 | bytes in one follower fetch answer |
//! | `replica.fetch.backoff.ms` | 1000 | how long a follower waits after a failed fetch |
//! | `controlled.shutdown.enable` | true | on SIGTERM, ask the controller to move leadership away first |
//! | `controlled.shutdown.max.retries` | 3 | attempts at that before shutting down anyway |
//! | `controlled.shutdown.retry.backoff.ms` | 5000 | wait between attempts |
//! | `log.segment.bytes` | 1073741824 | a segment is rolled before it grows past this (61 to 2147483647) |
//! | `log.roll.hours` | 168 | a segment is rolled once its records span this long |
//! | `log.roll.ms` | (none) | the same in ms; wins over `log.roll.hours` |
//! | `log.retention.hours` | 168 | delete segments older than this; -1 keeps them forever |
//! | `log.retention.minutes` | (none) | the same in minutes; wins over hours |
//! | `log.retention.ms` | (none) | the same in ms; wins over minutes and hours |
//! | `log.retention.bytes` | -1 | delete the oldest segments while a partition is larger; -1: no limit |
//! | `log.retention.check.interval.ms` | 300000 | how often retention runs |
//! | `log.flush.interval.messages` | (none: the OS flushes) | fsync after this many records |
//! | `log.flush.interval.ms` | (none: the OS flushes) | fsync data this old |
//! | `log.index.interval.bytes` | 4096 | bytes between two offset-index entries |
//! | `message.max.bytes` | 1048588 | the largest record batch accepted |
//! | `compression.type` | producer | `producer` (keep the producer's codec), `uncompressed`, `gzip`, `snappy`, `lz4` or `zstd` |
//! | `log.cleanup.policy` | delete | `delete`, `compact` or `compact,delete` |
//! | `log.cleaner.threads` | 1 | compaction threads; 0 runs none (compacted topics are then not compacted) |
//! | `log.cleaner.delete.retention.ms` | 86400000 | how long a tombstone outlives the compaction that found it |
//! | `log.cleaner.min.cleanable.ratio` | 0.5 | dirty share (0 to 1) of a log that makes it worth compacting |
//! | `log.cleaner.min.compaction.lag.ms` | 0 | records younger than this are not compacted |
//!
//! Booleans are `true` or `false`; numbers are whole (but the cleanable ratio). For
//! `log.flush.interval.messages` and `log.flush.interval.ms`, Kafka's "never" value
//! 9223372036854775807 is taken as unset. Relative paths are kept as written (they are taken
//! from the broker's working directory); reading the file creates nothing.
//!
//! Unknown keys, empty or bad values and missing required keys stop start-up with the file,
//! the line and the reason.
//!
//! Per-topic configs ([`sluice_broker_core::topic::TOPIC_CONFIG_KEYS`]) override the
//! broker-wide log settings through [`BrokerConfig::topic_log_config`].

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sluice_broker_core::{throttle, BrokerError};
use sluice_client::keeper::ConnectString;
use sluice_config::properties::{self, Entry, PropertiesError};
use sluice_log::{CleanupPolicy, CompressionType, LogConfig};
use sluice_net::TlsFiles;

pub mod keys;
pub use keys::{Key, KEYS};

/// The default listener: Kafka binds every address and advertises the host name; Sluice binds
/// and advertises loopback, since an advertised name must be in the broker's certificate.
pub const DEFAULT_LISTENER: &str = "quic://127.0.0.1:9092";
/// Kafka's default `log.dir`.
pub const DEFAULT_LOG_DIR: &str = "/tmp/kafka-logs";

const ADVICE: &str = "Sluice listens on QUIC: write quic://HOST:PORT, e.g. quic://0.0.0.0:9092";
const MS: &str = " of milliseconds";
const HOUR_MS: i64 = 60 * 60 * 1000;
const MINUTE_MS: i64 = 60 * 1000;

/// A broker's whole configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerConfig {
    /// `broker.id`.
    pub broker_id: i32,
    /// Where to bind (`listeners`).
    pub listener: SocketAddr,
    /// The host registered in the keeper for clients (`advertised.listeners`): an IPv6
    /// address is written without brackets.
    pub advertised_host: String,
    /// The port registered in the keeper. 0 (a listener on port 0, or an advertised port 0)
    /// means the port bound: the server fills it in after binding.
    pub advertised_port: u16,
    /// The Kafka protocol's listeners (`SSL://`, `PLAINTEXT://` in `listeners`), with the
    /// addresses `advertised.listeners` gives them.
    pub kafka_listeners: Vec<KafkaListener>,
    /// `socket.request.max.bytes`: the largest request the Kafka listeners read.
    pub socket_request_max_bytes: usize,
    /// `connections.max.idle.ms`: a Kafka-listener connection idle this long is closed.
    pub connections_max_idle: Duration,
    /// `max.connections.per.ip`: Kafka-listener connections one address may hold.
    pub max_connections_per_ip: usize,
    /// `super.users`: principals (`User:<name>`) that may do anything.
    pub super_users: Vec<String>,
    /// `allow.everyone.if.no.acl.found`.
    pub allow_everyone_if_no_acl_found: bool,
    /// `zookeeper.set.acl`: the broker's znodes get ACLs.
    pub zookeeper_set_acl: bool,
    /// `broker.rack`.
    pub rack: Option<String>,
    /// `zookeeper.connect`, as written (checked to be a connect string).
    pub zookeeper_connect: String,
    /// `zookeeper.session.timeout.ms`.
    pub zookeeper_session_timeout: Duration,
    /// `log.dirs` (or `log.dir`), relative paths as written.
    pub log_dirs: Vec<PathBuf>,
    /// `tls.ca.file`, `tls.cert.file`, `tls.key.file`.
    pub tls: TlsFiles,
    /// Where to serve Prometheus metrics (`metrics.host`:`metrics.port`), if anywhere.
    pub metrics: Option<SocketAddr>,
    /// `delete.topic.enable`.
    pub delete_topic_enable: bool,
    /// `auto.create.topics.enable`.
    pub auto_create_topics_enable: bool,
    /// `num.partitions`.
    pub num_partitions: i32,
    /// `default.replication.factor`.
    pub default_replication_factor: i16,
    /// `min.insync.replicas`.
    pub min_insync_replicas: i32,
    /// `auto.leader.rebalance.enable`.
    pub auto_leader_rebalance_enable: bool,
    /// `leader.imbalance.check.interval.seconds`.
    pub leader_imbalance_check_interval: Duration,
    /// `leader.imbalance.per.broker.percentage` (0-100).
    pub leader_imbalance_per_broker_percentage: u32,
    /// Keys written that Kafka knows and that have no effect here, with why
    /// ([`keys::NO_EFFECT`]): the broker lists them in one notice at start.
    pub no_effect: Vec<(String, &'static str)>,
    /// `offsets.topic.num.partitions`.
    pub offsets_topic_num_partitions: i32,
    /// `offsets.topic.replication.factor`.
    pub offsets_topic_replication_factor: i16,
    /// `offsets.retention.minutes`.
    pub offsets_retention: Duration,
    /// `replica.lag.time.max.ms`.
    pub replica_lag_time_max: Duration,
    /// `unclean.leader.election.enable`.
    pub unclean_leader_election_enable: bool,
    /// `log.retention.check.interval.ms`.
    pub log_retention_check_interval: Duration,
    /// `group.initial.rebalance.delay.ms`.
    pub group_initial_rebalance_delay: Duration,
    /// `group.min.session.timeout.ms`.
    pub group_min_session_timeout: Duration,
    /// `group.max.session.timeout.ms`.
    pub group_max_session_timeout: Duration,
    /// `log.cleaner.threads` (0: no compaction threads).
    pub log_cleaner_threads: u32,
    /// `num.replica.fetchers`.
    pub num_replica_fetchers: u32,
    /// `replica.fetch.wait.max.ms`.
    pub replica_fetch_wait_max: Duration,
    /// `replica.fetch.min.bytes`.
    pub replica_fetch_min_bytes: u32,
    /// `replica.fetch.max.bytes`.
    pub replica_fetch_max_bytes: u32,
    /// `replica.fetch.response.max.bytes`.
    pub replica_fetch_response_max_bytes: u32,
    /// `replica.fetch.backoff.ms`.
    pub replica_fetch_backoff: Duration,
    /// `controlled.shutdown.enable`.
    pub controlled_shutdown_enable: bool,
    /// `controlled.shutdown.max.retries`.
    pub controlled_shutdown_max_retries: u32,
    /// `controlled.shutdown.retry.backoff.ms`.
    pub controlled_shutdown_retry_backoff: Duration,
    /// The broker-wide log defaults, which topic configs override: segment bytes, roll,
    /// retention, flush, `message.max.bytes`, `compression.type`, index interval, cleanup
    /// policy and cleaner settings.
    pub log: LogConfig,
}

/// What is wrong with a broker configuration: the file cannot be read, a line is malformed,
/// a key is unknown, a value invalid or a required key missing (each naming the file and
/// line).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// See [`PropertiesError`].
    #[error(transparent)]
    Properties(#[from] PropertiesError),
}

impl BrokerConfig {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| PropertiesError::Read { path: path.to_path_buf(), source })?;
        Self::parse(&text, path)
    }

    /// Parses configuration text; `path` is only used in errors. Nothing is created on disk
    /// and no path is checked; a listener given as a host name is resolved.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let entries = properties::parse(text, path)?;
        properties::refuse_unknown(
            &entries,
            path,
            |k| keys::key(k).is_some() || keys::no_effect(k).is_some(),
            KEYS.iter().map(|k| k.name).chain(keys::NO_EFFECT.iter().map(|(k, _)| *k)),
        )?;
        let no_effect: Vec<(String, &'static str)> =
            entries.iter().filter_map(|e| keys::no_effect(&e.key).map(|why| (e.key.clone(), why))).collect();
        let p = Props { path, entries: &entries };
        // (A key without effect may be empty: Kafka's files write `ssl.endpoint.identification.algorithm=`.)
        if let Some(e) = entries.iter().find(|e| e.value.is_empty() && keys::no_effect(&e.key).is_none()) {
            let reason = if keys::key(&e.key).is_some_and(|k| k.default == keys::Default::Required) {
                "is empty, and this key is required: write its value"
            } else {
                "is empty: write a value, or remove the line to take the default"
            };
            return Err(p.invalid(e, reason));
        }

        let broker_id = match p.get("broker.id") {
            None => {
                return Err(p.missing("broker.id", "this broker's id, a whole number unique in the cluster"))
            }
            Some(e) => whole(&e.value, 0, i32::MAX.into(), "", "none, it is required").map_err(|_| {
                p.invalid(
                    e,
                    "must be a whole number from 0 to 2147483647, unique in the cluster \
                     (Sluice does not generate broker ids)",
                )
            })? as i32,
        };

        // The default, quic://127.0.0.1:9092, needs no resolving and advertises what it binds.
        let listeners: Vec<(Security, Listener, SocketAddr)> = match p.get("listeners") {
            None => vec![(
                Security::Quic,
                Listener { host: Host::Ip(Ipv4Addr::LOCALHOST.into()), port: 9092 },
                SocketAddr::from((Ipv4Addr::LOCALHOST, 9092)),
            )],
            Some(e) => {
                let mut out = Vec::new();
                let parsed = parse_listeners(&e.value).map_err(|r| p.invalid(e, r))?;
                if !parsed.iter().any(|(s, _)| *s == Security::Quic) {
                    return Err(p.invalid(e, format!("has no quic:// listener; {LISTENERS_ADVICE}")));
                }
                for (security, l) in parsed {
                    let addr = bind_addr(&l).map_err(|r| p.invalid(e, r))?;
                    out.push((security, l, addr));
                }
                out
            }
        };
        let mut advertised: Vec<(Security, Listener)> = Vec::new();
        if let Some(e) = p.get("advertised.listeners") {
            for (security, l) in parse_listeners(&e.value).map_err(|r| p.invalid(e, r))? {
                if !listeners.iter().any(|(s, _, _)| *s == security) {
                    return Err(p.invalid(
                        e,
                        format!(
                            "advertises {} but listeners has no {} listener; add one to listeners or \
                             remove it here",
                            security.scheme(),
                            security.scheme()
                        ),
                    ));
                }
                if l.host.is_unspecified() {
                    return Err(p.invalid(
                        e,
                        format!(
                            "must name a host clients can reach, not an unspecified address; write e.g. \
                             {}://broker1.example.com:9092, or leave that listener out to advertise the \
                             listener itself (an unspecified host advertised as 127.0.0.1)",
                            security.scheme()
                        ),
                    ));
                }
                advertised.push((security, l));
            }
        }
        // A listener on every address tells clients nothing they can dial: as Kafka refuses
        // to advertise 0.0.0.0, it needs an advertised listener naming this machine.
        if let Some(e) = p.get("listeners") {
            for (security, l, _) in &listeners {
                if l.host.is_unspecified() && !advertised.iter().any(|(s, _)| s == security) {
                    let scheme = security.scheme();
                    return Err(p.invalid(
                        e,
                        format!(
                            "{scheme}:// binds every address, and clients need one they can reach: add \
                             advertised.listeners={scheme}://HOST:{port} naming this machine as clients \
                             reach it (a name in its certificate), or bind one address, e.g. \
                             {scheme}://10.0.0.5:{port}",
                            port = l.port
                        ),
                    ));
                }
            }
        }
        let advertised_of = |security: Security, bound: &Listener| -> (String, u16) {
            match advertised.iter().find(|(s, _)| *s == security) {
                Some((_, l)) => (advertised_host_of(&l.host), l.port),
                None => (advertised_host_of(&bound.host), bound.port),
            }
        };
        let Some((_, quic, listener_addr)) = listeners.iter().find(|(s, _, _)| *s == Security::Quic).cloned()
        else {
            // parse_listeners insists on one.
            return Err(p.missing("listeners", ADVICE));
        };
        let (advertised_host, advertised_port) = advertised_of(Security::Quic, &quic);
        let kafka_listeners = listeners
            .iter()
            .filter_map(|(security, l, bind)| {
                let kind = match security {
                    Security::Quic => return None,
                    Security::Ssl => KafkaSecurity::Ssl,
                    Security::Plaintext => KafkaSecurity::Plaintext,
                };
                let (advertised_host, advertised_port) = advertised_of(*security, l);
                Some(KafkaListener { security: kind, bind: *bind, advertised_host, advertised_port })
            })
            .collect();
        if let Some(e) = p.get("ssl.client.auth") {
            if !e.value.trim().eq_ignore_ascii_case("required") {
                return Err(p.invalid(
                    e,
                    "the SSL listener always requires a client certificate (its principal is who the \
                     client is); write ssl.client.auth=required, or list a PLAINTEXT:// listener for \
                     clients without certificates",
                ));
            }
        }
        let socket_request_max_bytes = p.int("socket.request.max.bytes", 1, i32::MAX, " of bytes")? as usize;
        let connections_max_idle = ms(p.int("connections.max.idle.ms", 1, i64::MAX, MS)?);
        let max_connections_per_ip = p.int("max.connections.per.ip", 1, i32::MAX, "")? as usize;

        let super_users = match p.get("super.users") {
            None => Vec::new(),
            Some(e) => super_users(&e.value).map_err(|r| p.invalid(e, r))?,
        };
        let allow_everyone_if_no_acl_found = p.boolean("allow.everyone.if.no.acl.found")?;
        let zookeeper_set_acl = p.boolean("zookeeper.set.acl")?;
        let rack = p.get("broker.rack").map(|e| e.value.clone());

        let zookeeper_connect = match p.get("zookeeper.connect") {
            None => {
                return Err(p.missing(
                    "zookeeper.connect",
                    "the keeper ensemble, host:port[,host:port...][/chroot], e.g. 127.0.0.1:2181/sluice",
                ))
            }
            Some(e) => {
                ConnectString::parse(&e.value).map_err(|err| {
                    p.invalid(
                        e,
                        format!("{err}; write host:port[,host:port...][/chroot], e.g. 127.0.0.1:2181"),
                    )
                })?;
                e.value.clone()
            }
        };
        let zookeeper_session_timeout = ms(p.int("zookeeper.session.timeout.ms", 1, i32::MAX, MS)?);

        // The TLS files: tls.*, or Kafka's PEM stores (an operator's TLS block carries over).
        let tls = match sluice_config::stores::pem_stores(&entries, path, &sluice_config::stores::KAFKA)? {
            Some((ca, cert_and_key)) => {
                if let Some(e) =
                    ["tls.ca.file", "tls.cert.file", "tls.key.file"].iter().find_map(|k| p.get(k))
                {
                    return Err(p.invalid(
                        e,
                        "the TLS files are given twice: keep either tls.ca.file/tls.cert.file/tls.key.file or \
                         ssl.keystore.location/ssl.truststore.location",
                    ));
                }
                TlsFiles { ca, cert: cert_and_key.clone(), key: cert_and_key }
            }
            None => TlsFiles {
                ca: p.required_path(
                    "tls.ca.file",
                    "the cluster CA certificate, e.g. from `sluice certs init` (or Kafka's \
                     ssl.truststore.location with ssl.truststore.type=PEM)",
                )?,
                cert: p.required_path(
                    "tls.cert.file",
                    "this broker's certificate (or Kafka's ssl.keystore.location with ssl.keystore.type=PEM)",
                )?,
                key: p.required_path("tls.key.file", "this broker's private key")?,
            },
        };

        let metrics = match p.get("metrics.port") {
            None => {
                if let Some(e) = p.get("metrics.host") {
                    return Err(p.invalid(
                        e,
                        "has no effect without metrics.port: set metrics.port (0 picks a free port) to \
                         serve /metrics, or remove this line",
                    ));
                }
                None
            }
            Some(e) => {
                let port = e
                    .value
                    .parse::<u16>()
                    .map_err(|_| p.invalid(e, "must be a TCP port from 0 to 65535 (0 picks a free one)"))?;
                let ip = match p.get("metrics.host") {
                    None => IpAddr::from(Ipv4Addr::UNSPECIFIED),
                    Some(h) => {
                        h.value.trim_start_matches('[').trim_end_matches(']').parse().map_err(|_| {
                            p.invalid(h, "must be an IP address, e.g. 0.0.0.0 (every address) or 127.0.0.1")
                        })?
                    }
                };
                Some(SocketAddr::new(ip, port))
            }
        };

        let log_dir =
            p.get("log.dir").map(|e| parse_dirs(&e.value).map_err(|r| p.invalid(e, r))).transpose()?;
        let log_dirs = match p.get("log.dirs") {
            Some(e) => parse_dirs(&e.value).map_err(|r| p.invalid(e, r))?,
            None => log_dir.unwrap_or_else(|| vec![PathBuf::from(DEFAULT_LOG_DIR)]),
        };

        let num_partitions = p.int("num.partitions", 1, i32::MAX, "")? as i32;
        let default_replication_factor = p.int("default.replication.factor", 1, i16::MAX, "")? as i16;
        let min_insync_replicas = p.int("min.insync.replicas", 1, i32::MAX, "")? as i32;
        let delete_topic_enable = p.boolean("delete.topic.enable")?;
        let auto_create_topics_enable = p.boolean("auto.create.topics.enable")?;
        let auto_leader_rebalance_enable = p.boolean("auto.leader.rebalance.enable")?;
        let leader_imbalance_check_interval = Duration::from_secs(p.int(
            "leader.imbalance.check.interval.seconds",
            1,
            i32::MAX,
            " of seconds",
        )? as u64);
        let leader_imbalance_per_broker_percentage =
            p.int("leader.imbalance.per.broker.percentage", 0, 100, " (a percentage)")? as u32;
        let offsets_topic_num_partitions = p.int("offsets.topic.num.partitions", 1, i32::MAX, "")? as i32;
        let offsets_topic_replication_factor =
            p.int("offsets.topic.replication.factor", 1, i16::MAX, "")? as i16;
        let offsets_retention =
            ms(p.int("offsets.retention.minutes", 1, i32::MAX, " of minutes")? * MINUTE_MS);
        let replica_lag_time_max = ms(p.int("replica.lag.time.max.ms", 1, i64::MAX, MS)?);
        let unclean_leader_election_enable = p.boolean("unclean.leader.election.enable")?;
        let group_initial_rebalance_delay = ms(p.int("group.initial.rebalance.delay.ms", 0, i32::MAX, MS)?);
        let group_min_session_timeout = ms(p.int("group.min.session.timeout.ms", 1, i32::MAX, MS)?);
        let group_max_session_timeout = ms(p.int("group.max.session.timeout.ms", 1, i32::MAX, MS)?);
        if group_max_session_timeout < group_min_session_timeout {
            let reason = format!(
                "must be at least group.min.session.timeout.ms ({} ms)",
                group_min_session_timeout.as_millis()
            );
            return Err(match p.get("group.max.session.timeout.ms") {
                Some(e) => p.invalid(e, reason),
                None => p.invalid_default("group.max.session.timeout.ms", reason),
            });
        }
        let num_replica_fetchers = p.int("num.replica.fetchers", 1, i32::MAX, "")? as u32;
        let replica_fetch_wait_max = ms(p.int("replica.fetch.wait.max.ms", 0, i32::MAX, MS)?);
        let replica_fetch_min_bytes = p.int("replica.fetch.min.bytes", 1, i32::MAX, " of bytes")? as u32;
        let replica_fetch_max_bytes = p.int("replica.fetch.max.bytes", 1, i32::MAX, " of bytes")? as u32;
        let replica_fetch_response_max_bytes =
            p.int("replica.fetch.response.max.bytes", 1, i32::MAX, " of bytes")? as u32;
        let replica_fetch_backoff = ms(p.int("replica.fetch.backoff.ms", 0, i32::MAX, MS)?);
        let controlled_shutdown_enable = p.boolean("controlled.shutdown.enable")?;
        let controlled_shutdown_max_retries =
            p.int("controlled.shutdown.max.retries", 0, i32::MAX, "")? as u32;
        let controlled_shutdown_retry_backoff =
            ms(p.int("controlled.shutdown.retry.backoff.ms", 0, i32::MAX, MS)?);
        let log_retention_check_interval = ms(p.int("log.retention.check.interval.ms", 1, i64::MAX, MS)?);
        let log_cleaner_threads = p.int("log.cleaner.threads", 0, i32::MAX, "")? as u32;

        let log = p.log_config()?;
        Ok(BrokerConfig {
            broker_id,
            listener: listener_addr,
            advertised_host,
            advertised_port,
            kafka_listeners,
            socket_request_max_bytes,
            connections_max_idle,
            max_connections_per_ip,
            super_users,
            allow_everyone_if_no_acl_found,
            zookeeper_set_acl,
            rack,
            zookeeper_connect,
            zookeeper_session_timeout,
            log_dirs,
            tls,
            metrics,
            delete_topic_enable,
            auto_create_topics_enable,
            num_partitions,
            default_replication_factor,
            min_insync_replicas,
            auto_leader_rebalance_enable,
            leader_imbalance_check_interval,
            leader_imbalance_per_broker_percentage,
            no_effect,
            offsets_topic_num_partitions,
            offsets_topic_replication_factor,
            offsets_retention,
            replica_lag_time_max,
            unclean_leader_election_enable,
            log_retention_check_interval,
            group_initial_rebalance_delay,
            group_min_session_timeout,
            group_max_session_timeout,
            log_cleaner_threads,
            num_replica_fetchers,
            replica_fetch_wait_max,
            replica_fetch_min_bytes,
            replica_fetch_max_bytes,
            replica_fetch_response_max_bytes,
            replica_fetch_backoff,
            controlled_shutdown_enable,
            controlled_shutdown_max_retries,
            controlled_shutdown_retry_backoff,
            log,
        })
    }

    /// `advertised_host:advertised_port` as clients dial it, an IPv6 host in brackets.
    pub fn advertised_endpoint(&self) -> String {
        if self.advertised_host.contains(':') {
            format!("[{}]:{}", self.advertised_host, self.advertised_port)
        } else {
            format!("{}:{}", self.advertised_host, self.advertised_port)
        }
    }

    /// The log settings of a topic: its configs (Kafka's per-topic keys,
    /// [`sluice_broker_core::topic::TOPIC_CONFIG_KEYS`]) over this broker's [`Self::log`].
    /// `min.insync.replicas` and `unclean.leader.election.enable` are checked but are not
    /// log settings (see [`Self::topic_min_insync_replicas`]). `retention.ms` and
    /// `retention.bytes` take -1 for no limit.
    pub fn topic_log_config(&self, overrides: &BTreeMap<String, String>) -> Result<LogConfig, BrokerError> {
        sluice_broker_core::topic::validate_config_keys(overrides)?;
        let mut log = self.log.clone();
        for (key, raw) in overrides {
            let bad =
                |reason: String| BrokerError::InvalidConfig { key: key.clone(), value: raw.clone(), reason };
            let v = raw.trim();
            if [throttle::LEADER_REPLICAS, throttle::FOLLOWER_REPLICAS].contains(&key.as_str()) {
                // Not a log setting: which replicas a replication throttle applies to.
                throttle::ThrottledReplicas::parse(key, v)?;
                continue;
            }
            if v.is_empty() {
                return Err(bad("is empty: give a value, or remove it to take the broker's default".into()));
            }
            let d = &self.log;
            match key.as_str() {
                "cleanup.policy" => {
                    log.cleanup_policy = v.parse::<CleanupPolicy>().map_err(|e| bad(e.reason.to_string()))?;
                }
                "compression.type" => {
                    log.compression_type =
                        v.parse::<CompressionType>().map_err(|e| bad(e.reason.to_string()))?;
                }
                "delete.retention.ms" => {
                    log.delete_retention_ms =
                        whole(v, 0, i64::MAX, MS, &d.delete_retention_ms.to_string()).map_err(bad)?;
                }
                "flush.messages" => {
                    log.flush_interval_messages = never_if_max(
                        whole(v, 1, i64::MAX, "", &show(d.flush_interval_messages)).map_err(bad)?,
                    )
                    .map(|n| n as u64);
                }
                "flush.ms" => {
                    log.flush_interval_ms =
                        never_if_max(whole(v, 0, i64::MAX, MS, &show(d.flush_interval_ms)).map_err(bad)?);
                }
                "index.interval.bytes" => {
                    log.index_interval_bytes =
                        whole(v, 0, i32::MAX.into(), " of bytes", &d.index_interval_bytes.to_string())
                            .map_err(bad)? as u64;
                }
                "max.message.bytes" => {
                    log.max_message_bytes =
                        whole(v, 0, i32::MAX.into(), " of bytes", &d.max_message_bytes.to_string())
                            .map_err(bad)? as u64;
                }
                "min.cleanable.dirty.ratio" => {
                    log.min_cleanable_dirty_ratio =
                        ratio(v, &d.min_cleanable_dirty_ratio.to_string()).map_err(bad)?;
                }
                "min.compaction.lag.ms" => {
                    log.min_compaction_lag_ms =
                        whole(v, 0, i64::MAX, MS, &d.min_compaction_lag_ms.to_string()).map_err(bad)?;
                }
                "min.insync.replicas" => {
                    whole(v, 1, i32::MAX.into(), "", &self.min_insync_replicas.to_string()).map_err(bad)?;
                }
                "retention.bytes" => {
                    log.retention_bytes = unlimited(v, 0, " of bytes", &show(d.retention_bytes))
                        .map_err(bad)?
                        .map(|n| n as u64);
                }
                "retention.ms" => {
                    log.retention_ms = unlimited(v, 0, MS, &show(d.retention_ms)).map_err(bad)?;
                }
                "segment.bytes" => {
                    // The range is LogConfig::validate's, below.
                    log.segment_bytes =
                        whole(v, 0, i64::MAX, " of bytes", &d.segment_bytes.to_string()).map_err(bad)? as u64;
                }
                "segment.ms" => {
                    log.roll_ms = whole(v, 1, i64::MAX, MS, &d.roll_ms.to_string()).map_err(bad)?;
                }
                "unclean.leader.election.enable" => {
                    parse_bool(v).ok_or_else(|| {
                        bad(format!(
                            "must be true or false (this broker's default: {})",
                            self.unclean_leader_election_enable
                        ))
                    })?;
                }
                _ => return Err(bad("not a topic config".into())),
            }
        }
        log.validate().map_err(|e| {
            let key = topic_key_of(e.key);
            let value = overrides.get(key).cloned().unwrap_or(e.value);
            BrokerError::InvalidConfig { key: key.to_string(), value, reason: e.reason.to_string() }
        })?;
        Ok(log)
    }

    /// Every per-topic config key with the value a topic without an override gets from
    /// this broker (what DescribeConfigs lists beside a topic's overrides), written as the
    /// key takes it: `-1` for no limit, Kafka's `Long.MAX_VALUE` for "never" (flush).
    pub fn topic_config_defaults(&self) -> BTreeMap<String, String> {
        let l = &self.log;
        let never = |v: Option<String>| v.unwrap_or_else(|| i64::MAX.to_string());
        let unlimited = |v: Option<String>| v.unwrap_or_else(|| "-1".to_string());
        let cleanup = match (l.cleanup_policy.compact, l.cleanup_policy.delete) {
            (true, true) => "compact,delete",
            (true, false) => "compact",
            _ => "delete",
        };
        let compression = match l.compression_type {
            CompressionType::Producer => "producer",
            CompressionType::Codec(sluice_log::Compression::None) => "uncompressed",
            CompressionType::Codec(c) => c.name(),
        };
        [
            ("cleanup.policy", cleanup.to_string()),
            ("compression.type", compression.to_string()),
            ("delete.retention.ms", l.delete_retention_ms.to_string()),
            ("flush.messages", never(l.flush_interval_messages.map(|n| n.to_string()))),
            ("flush.ms", never(l.flush_interval_ms.map(|n| n.to_string()))),
            (throttle::FOLLOWER_REPLICAS, String::new()),
            ("index.interval.bytes", l.index_interval_bytes.to_string()),
            (throttle::LEADER_REPLICAS, String::new()),
            ("max.message.bytes", l.max_message_bytes.to_string()),
            ("min.cleanable.dirty.ratio", l.min_cleanable_dirty_ratio.to_string()),
            ("min.compaction.lag.ms", l.min_compaction_lag_ms.to_string()),
            ("min.insync.replicas", self.min_insync_replicas.to_string()),
            ("retention.bytes", unlimited(l.retention_bytes.map(|n| n.to_string()))),
            ("retention.ms", unlimited(l.retention_ms.map(|n| n.to_string()))),
            ("segment.bytes", l.segment_bytes.to_string()),
            ("segment.ms", l.roll_ms.to_string()),
            ("unclean.leader.election.enable", self.unclean_leader_election_enable.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// A topic's `min.insync.replicas`: its config, else this broker's. An invalid config
    /// (refused by [`Self::topic_log_config`] when the topic was configured) is ignored.
    pub fn topic_min_insync_replicas(&self, overrides: &BTreeMap<String, String>) -> i32 {
        self.min_insync_replicas_of(overrides.get("min.insync.replicas").map(String::as_str))
    }

    /// `min.insync.replicas` as a topic's config says it (`None`: not set), else this
    /// broker's. An invalid value is ignored.
    pub fn min_insync_replicas_of(&self, value: Option<&str>) -> i32 {
        value
            .and_then(|v| v.trim().parse::<i32>().ok())
            .filter(|n| *n >= 1)
            .unwrap_or(self.min_insync_replicas)
    }

    /// A topic's `unclean.leader.election.enable`: its config, else this broker's. An
    /// invalid config is ignored.
    pub fn topic_unclean_leader_election_enable(&self, overrides: &BTreeMap<String, String>) -> bool {
        overrides
            .get("unclean.leader.election.enable")
            .and_then(|v| parse_bool(v.trim()))
            .unwrap_or(self.unclean_leader_election_enable)
    }
}

/// `super.users`: `Type:name` principals separated by `;` (Kafka's separator; a name may
/// hold commas, as certificate names do).
fn super_users(value: &str) -> Result<Vec<String>, String> {
    value
        .split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => Ok(p.to_string()),
            _ => Err(format!(
                "{p:?} is not a principal: write each as User:<name> (the certificate's first DNS name, else its CN), separated by ;"
            )),
        })
        .collect()
}

/// The entries of a file, with the helpers that turn a bad one into a [`ConfigError`].
struct Props<'a> {
    path: &'a Path,
    entries: &'a [Entry],
}

impl Props<'_> {
    fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key == key)
    }

    fn invalid(&self, e: &Entry, reason: impl Into<String>) -> ConfigError {
        PropertiesError::invalid(self.path, e, reason).into()
    }

    /// A setting whose key is not in the file (`line` 0).
    fn invalid_default(&self, key: &str, reason: String) -> ConfigError {
        PropertiesError::Invalid {
            path: self.path.into(),
            line: 0,
            key: key.into(),
            value: String::new(),
            reason,
        }
        .into()
    }

    fn missing(&self, key: &'static str, hint: &'static str) -> ConfigError {
        PropertiesError::missing(self.path, key, hint).into()
    }

    fn required_path(&self, key: &'static str, hint: &'static str) -> Result<PathBuf, ConfigError> {
        self.get(key).map(|e| PathBuf::from(&e.value)).ok_or_else(|| self.missing(key, hint))
    }

    /// `true` or `false`, the key table's default when absent.
    fn boolean(&self, key: &str) -> Result<bool, ConfigError> {
        let default = keys::default_value(key);
        match self.get(key) {
            None => parse_bool(default)
                .ok_or_else(|| self.invalid_default(key, format!("the default {default} is not a boolean"))),
            Some(e) => parse_bool(&e.value)
                .ok_or_else(|| self.invalid(e, format!("must be true or false (the default is {default})"))),
        }
    }

    /// A whole number from `min` to `max`, the key table's default when absent.
    fn int(&self, key: &str, min: i64, max: impl Into<i64>, unit: &str) -> Result<i64, ConfigError> {
        let (default, max) = (keys::default_value(key), max.into());
        match self.get(key) {
            None => whole(default, min, max, unit, default).map_err(|r| self.invalid_default(key, r)),
            Some(e) => whole(&e.value, min, max, unit, default).map_err(|r| self.invalid(e, r)),
        }
    }

    /// The key's value, or the key table's default when absent; with its line, if written.
    fn value_or_default<'a>(&'a self, key: &str) -> (&'a str, Option<&'a Entry>) {
        match self.get(key) {
            Some(e) => (&e.value, Some(e)),
            None => (keys::default_value(key), None),
        }
    }

    /// [`Self::invalid`] for a written value, [`Self::invalid_default`] for a default.
    fn invalid_at(&self, key: &str, e: Option<&Entry>, reason: impl Into<String>) -> ConfigError {
        match e {
            Some(e) => self.invalid(e, reason),
            None => self.invalid_default(key, reason.into()),
        }
    }

    /// Like [`Self::int`], `None` when absent.
    fn opt_int(
        &self,
        key: &str,
        min: i64,
        max: i64,
        unit: &str,
        default: &str,
    ) -> Result<Option<i64>, ConfigError> {
        self.get(key)
            .map(|e| whole(&e.value, min, max, unit, default).map_err(|r| self.invalid(e, r)))
            .transpose()
    }

    /// -1 (no limit, `Some(None)`) or a whole number of at least `min`; `None` when absent.
    fn opt_unlimited(
        &self,
        key: &str,
        min: i64,
        unit: &str,
        default: &str,
    ) -> Result<Option<Option<i64>>, ConfigError> {
        self.get(key)
            .map(|e| unlimited(&e.value, min, unit, default).map_err(|r| self.invalid(e, r)))
            .transpose()
    }

    /// The broker-wide log settings, checked by [`LogConfig::validate`] too.
    fn log_config(&self) -> Result<LogConfig, ConfigError> {
        let mut log = LogConfig::default();
        // Kafka refuses a retention time of 0 at the broker level; the most precise key wins.
        let retention_ms = self.opt_unlimited("log.retention.ms", 1, MS, "unset")?;
        let retention_minutes = self
            .get("log.retention.minutes")
            .map(|e| self.minutes_or_hours(e, " of minutes", "unset"))
            .transpose()?;
        let retention_hours = self
            .get("log.retention.hours")
            .map(|e| self.minutes_or_hours(e, " of hours", keys::default_value("log.retention.hours")))
            .transpose()?;
        log.retention_ms = match (retention_ms, retention_minutes, retention_hours) {
            (Some(ms), _, _) => ms,
            (None, Some(minutes), _) => minutes.map(|m| m * MINUTE_MS),
            (None, None, Some(hours)) => hours.map(|h| h * HOUR_MS),
            (None, None, None) => Some(self.int("log.retention.hours", 1, i32::MAX, " of hours")? * HOUR_MS),
        };
        log.retention_bytes = self
            .opt_unlimited("log.retention.bytes", 0, " of bytes", "-1")?
            .unwrap_or(None)
            .map(|n| n as u64);
        let roll_hours = self.int("log.roll.hours", 1, i32::MAX, " of hours")?;
        log.roll_ms = self.opt_int("log.roll.ms", 1, i64::MAX, MS, "unset")?.unwrap_or(roll_hours * HOUR_MS);
        log.segment_bytes = self.int("log.segment.bytes", 0, i64::MAX, " of bytes")? as u64;
        log.flush_interval_messages = self
            .opt_int("log.flush.interval.messages", 1, i64::MAX, "", "unset")?
            .and_then(never_if_max)
            .map(|n| n as u64);
        log.flush_interval_ms =
            self.opt_int("log.flush.interval.ms", 0, i64::MAX, MS, "unset")?.and_then(never_if_max);
        log.index_interval_bytes = self.int("log.index.interval.bytes", 0, i32::MAX, " of bytes")? as u64;
        log.max_message_bytes = self.int("message.max.bytes", 0, i32::MAX, " of bytes")? as u64;
        for key in ["compression.type", "log.cleanup.policy"] {
            let (value, e) = self.value_or_default(key);
            let bad = |err: sluice_log::ConfigError| self.invalid_at(key, e, err.reason);
            match key {
                "compression.type" => log.compression_type = value.parse().map_err(bad)?,
                _ => log.cleanup_policy = value.parse().map_err(bad)?,
            }
        }
        log.delete_retention_ms = self.int("log.cleaner.delete.retention.ms", 0, i64::MAX, MS)?;
        let key = "log.cleaner.min.cleanable.ratio";
        let (value, e) = self.value_or_default(key);
        log.min_cleanable_dirty_ratio =
            ratio(value, keys::default_value(key)).map_err(|r| self.invalid_at(key, e, r))?;
        log.min_compaction_lag_ms = self.int("log.cleaner.min.compaction.lag.ms", 0, i64::MAX, MS)?;
        log.validate().map_err(|err| {
            // The defaults are valid, so one of the keys behind the setting is present.
            let entry = broker_keys_of(err.key).iter().find_map(|k| self.get(k));
            match entry {
                Some(e) => self.invalid(e, err.reason),
                None => self.invalid_default(err.key, err.reason.to_string()),
            }
        })?;
        Ok(log)
    }

    /// `log.retention.minutes` / `log.retention.hours`: -1 (no limit) or at least 1, as an
    /// `int` in Kafka.
    fn minutes_or_hours(&self, e: &Entry, unit: &str, default: &str) -> Result<Option<i64>, ConfigError> {
        let v = unlimited(&e.value, 1, unit, default).map_err(|r| self.invalid(e, r))?;
        match v {
            Some(n) if n > i64::from(i32::MAX) => Err(self.invalid(
                e,
                format!(
                    "must be -1 (no limit) or a whole number{unit} from 1 to 2147483647 (default {default})"
                ),
            )),
            v => Ok(v),
        }
    }
}

/// The keys of `server.properties` behind a key named in a [`sluice_log::ConfigError`].
fn broker_keys_of(log_key: &str) -> &'static [&'static str] {
    match log_key {
        "log.segment.bytes" => &["log.segment.bytes"],
        "log.roll.ms" => &["log.roll.ms", "log.roll.hours"],
        "message.max.bytes" => &["message.max.bytes"],
        "log.flush.interval.messages" => &["log.flush.interval.messages"],
        "log.flush.interval.ms" => &["log.flush.interval.ms"],
        "log.retention.ms" => &["log.retention.ms", "log.retention.minutes", "log.retention.hours"],
        "log.index.interval.bytes" => &["log.index.interval.bytes"],
        "delete.retention.ms" => &["log.cleaner.delete.retention.ms"],
        "min.cleanable.dirty.ratio" => &["log.cleaner.min.cleanable.ratio"],
        "min.compaction.lag.ms" => &["log.cleaner.min.compaction.lag.ms"],
        "cleanup.policy" => &["log.cleanup.policy"],
        "compression.type" => &["compression.type"],
        _ => &[],
    }
}

/// The per-topic key behind a key named in a [`sluice_log::ConfigError`].
fn topic_key_of(log_key: &'static str) -> &'static str {
    match log_key {
        "log.segment.bytes" => "segment.bytes",
        "log.roll.ms" => "segment.ms",
        "message.max.bytes" => "max.message.bytes",
        "log.flush.interval.messages" => "flush.messages",
        "log.flush.interval.ms" => "flush.ms",
        "log.retention.ms" => "retention.ms",
        "log.index.interval.bytes" => "index.interval.bytes",
        other => other,
    }
}

/// `true` or `false` in any case (Kafka's `ConfigDef` ignores case: `TRUE` and `False` are
/// booleans too).
fn parse_bool(v: &str) -> Option<bool> {
    if v.eq_ignore_ascii_case("true") {
        Some(true)
    } else if v.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// A whole number from `min` to `max`; the error says what to write.
fn whole(value: &str, min: i64, max: i64, unit: &str, default: &str) -> Result<i64, String> {
    let allowed = || {
        if max == i64::MAX {
            format!("must be a whole number{unit} of at least {min} (default {default})")
        } else {
            format!("must be a whole number{unit} from {min} to {max} (default {default})")
        }
    };
    match value.parse::<i64>() {
        Ok(v) if (min..=max).contains(&v) => Ok(v),
        _ => Err(allowed()),
    }
}

/// `-1` (no limit: `None`) or a whole number of at least `min`.
fn unlimited(value: &str, min: i64, unit: &str, default: &str) -> Result<Option<i64>, String> {
    match value.parse::<i64>() {
        Ok(-1) => Ok(None),
        Ok(v) if v >= min => Ok(Some(v)),
        _ => Err(format!(
            "must be -1 (no limit) or a whole number{unit} of at least {min} (default {default})"
        )),
    }
}

/// A ratio from 0 to 1.
fn ratio(value: &str, default: &str) -> Result<f64, String> {
    value
        .parse::<f64>()
        .ok()
        .filter(|r| (0.0..=1.0).contains(r))
        .ok_or_else(|| format!("must be a number from 0 to 1, e.g. 0.5 (default {default})"))
}

/// Kafka's "never" (`Long.MAX_VALUE`) is unset here.
fn never_if_max(n: i64) -> Option<i64> {
    (n != i64::MAX).then_some(n)
}

fn show<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "unset".into(), |v| v.to_string())
}

fn ms(n: i64) -> Duration {
    Duration::from_millis(n.max(0) as u64)
}

/// `log.dirs`: comma-separated, each once.
fn parse_dirs(value: &str) -> Result<Vec<PathBuf>, String> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for d in value.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let d = PathBuf::from(d);
        if dirs.contains(&d) {
            return Err(format!("lists {} twice: list each directory once", d.display()));
        }
        dirs.push(d);
    }
    if dirs.is_empty() {
        return Err("lists no directory: write one or more paths separated by commas".into());
    }
    Ok(dirs)
}

/// The host of a `quic://HOST:PORT` listener.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    /// Empty: every address.
    Any,
    /// An IP address.
    Ip(IpAddr),
    /// A host name.
    Name(String),
}

impl Host {
    fn is_unspecified(&self) -> bool {
        match self {
            Host::Any => true,
            Host::Ip(ip) => ip.is_unspecified(),
            Host::Name(_) => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Listener {
    host: Host,
    port: u16,
}

/// A listener's protocol, by the name `listeners` gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Security {
    /// `quic://`: Sluice's own protocols.
    Quic,
    /// `SSL://`: Kafka's protocol over TLS.
    Ssl,
    /// `PLAINTEXT://`: Kafka's protocol over plain TCP.
    Plaintext,
}

impl Security {
    fn scheme(self) -> &'static str {
        match self {
            Security::Quic => "quic",
            Security::Ssl => "SSL",
            Security::Plaintext => "PLAINTEXT",
        }
    }
}

/// How a Kafka-protocol listener secures its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KafkaSecurity {
    /// `SSL`: TLS, a client certificate from the cluster CA required.
    Ssl,
    /// `PLAINTEXT`: no TLS; every client is `User:ANONYMOUS`.
    Plaintext,
}

impl KafkaSecurity {
    /// The listener name, as Kafka writes it (`SSL`, `PLAINTEXT`).
    pub fn name(self) -> &'static str {
        match self {
            KafkaSecurity::Ssl => "SSL",
            KafkaSecurity::Plaintext => "PLAINTEXT",
        }
    }
}

/// A listener speaking Kafka's wire protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaListener {
    /// `SSL` or `PLAINTEXT`.
    pub security: KafkaSecurity,
    /// Where to bind (TCP).
    pub bind: SocketAddr,
    /// The host registered for it (`advertised.listeners`), IPv6 without brackets.
    pub advertised_host: String,
    /// The port registered for it; 0 means the port bound.
    pub advertised_port: u16,
}

const LISTENERS_ADVICE: &str = "write NAME://HOST:PORT entries separated by commas, with exactly one \
     quic:// (Sluice's own clients and the brokers' links) and at most one each of SSL:// (Kafka's \
     protocol over TLS) and PLAINTEXT:// (Kafka's protocol without TLS), e.g. \
     quic://0.0.0.0:9093,SSL://0.0.0.0:9094";

/// Parses `listeners` / `advertised.listeners`: `NAME://HOST:PORT` entries, each name at most
/// once. For `listeners` one must be `quic://`; `advertised.listeners` may name a subset.
fn parse_listeners(value: &str) -> Result<Vec<(Security, Listener)>, String> {
    let mut out: Vec<(Security, Listener)> = Vec::new();
    for entry in value.split(',').map(str::trim) {
        if entry.is_empty() {
            return Err(format!("has an empty entry; {LISTENERS_ADVICE}"));
        }
        let (security, rest) = match entry.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("quic") => (Security::Quic, rest),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("ssl") => (Security::Ssl, rest),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("plaintext") => (Security::Plaintext, rest),
            Some((scheme, _)) => {
                return Err(format!(
                    "{scheme}:// is not a listener Sluice has (SASL is not built, and listener names \
                     other than the protocols' own are not supported); {LISTENERS_ADVICE}"
                ))
            }
            None => return Err(format!("{entry:?} has no scheme; {LISTENERS_ADVICE}")),
        };
        if out.iter().any(|(s, _)| *s == security) {
            return Err(format!("names {}:// twice; {LISTENERS_ADVICE}", security.scheme()));
        }
        out.push((security, parse_listener(rest, security.scheme())?));
    }
    Ok(out)
}

/// Parses the `HOST:PORT` of a `scheme://HOST:PORT` listener.
fn parse_listener(rest: &str, scheme: &str) -> Result<Listener, String> {
    let (host, port) = if let Some(after) = rest.strip_prefix('[') {
        let (ip, tail) = after.split_once(']').ok_or_else(|| {
            format!("an IPv6 address needs its closing bracket; write e.g. {scheme}://[::1]:9092")
        })?;
        let port = tail
            .strip_prefix(':')
            .ok_or_else(|| format!("needs a port after the address; write e.g. {scheme}://[::1]:9092"))?;
        let ip = ip
            .parse::<Ipv6Addr>()
            .map_err(|_| format!("[{ip}] is not an IPv6 address; write e.g. {scheme}://[::1]:9092"))?;
        (Host::Ip(IpAddr::V6(ip)), port)
    } else {
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| format!("{scheme}://{rest} needs a port; write e.g. {scheme}://0.0.0.0:9092"))?;
        let host = if host.is_empty() {
            Host::Any
        } else if host.contains(':') {
            return Err(format!("an IPv6 address must be in brackets; write e.g. {scheme}://[::1]:9092"));
        } else if let Ok(ip) = host.parse::<Ipv4Addr>() {
            Host::Ip(IpAddr::V4(ip))
        } else if is_host_name(host) {
            Host::Name(host.to_string())
        } else {
            return Err(format!(
                "{host:?} is not a host name or an IP address; write e.g. {scheme}://0.0.0.0:9092"
            ));
        };
        (host, port)
    };
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("port {port:?} must be a number from 0 to 65535 (0 picks a free port)"))?;
    Ok(Listener { host, port })
}

/// Letters, digits, `-` and `_` in dot-separated labels.
fn is_host_name(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

/// Where to bind: a name is resolved (its first IPv4 address, else its first).
fn bind_addr(l: &Listener) -> Result<SocketAddr, String> {
    match &l.host {
        Host::Any => Ok(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), l.port)),
        Host::Ip(ip) => Ok(SocketAddr::new(*ip, l.port)),
        Host::Name(name) => {
            let cannot = |why: String| {
                format!("cannot resolve {name} ({why}); write an IP address, e.g. quic://0.0.0.0:{}", l.port)
            };
            let addrs: Vec<SocketAddr> =
                (name.as_str(), l.port).to_socket_addrs().map_err(|e| cannot(e.to_string()))?.collect();
            addrs
                .iter()
                .find(|a| a.is_ipv4())
                .or(addrs.first())
                .copied()
                .ok_or_else(|| cannot("no address".into()))
        }
    }
}

/// The host clients are told (never an unspecified one: `parse` refuses those unadvertised).
fn advertised_host_of(host: &Host) -> String {
    match host {
        Host::Name(name) => name.clone(),
        Host::Ip(ip) => ip.to_string(),
        Host::Any => Ipv4Addr::UNSPECIFIED.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_config_defaults_name_every_topic_key_and_read_back_as_the_brokers_settings() {
        for extra in ["", "log.retention.bytes=1000\nlog.cleanup.policy=compact\ncompression.type=zstd\nlog.flush.interval.messages=5\n"] {
            let c = parse(extra).expect("parse");
            let defaults = c.topic_config_defaults();
            let keys: Vec<&str> = defaults.keys().map(String::as_str).collect();
            let mut want = sluice_broker_core::topic::TOPIC_CONFIG_KEYS.to_vec();
            want.sort_unstable();
            assert_eq!(keys, want, "every topic key, and only those");
            // Given back as overrides they change nothing.
            assert_eq!(c.topic_log_config(&defaults), Ok(c.log.clone()), "{extra}");
            assert_eq!(c.topic_min_insync_replicas(&defaults), c.min_insync_replicas);
        }
    }

    const BASE: &str = "broker.id=1\nzookeeper.connect=127.0.0.1:2181/sluice\n\
                        tls.ca.file=ca.pem\ntls.cert.file=b.pem\ntls.key.file=b.key\n";

    fn parse(extra: &str) -> Result<BrokerConfig, ConfigError> {
        BrokerConfig::parse(&format!("{BASE}{extra}"), Path::new("s.properties"))
    }

    fn err(extra: &str) -> String {
        parse(extra).expect_err(extra).to_string()
    }

    #[test]
    fn the_rest_of_kafkas_reference_is_accepted_and_named_in_the_notice() {
        let c = parse(
            "sasl.enabled.mechanisms=GSSAPI\nprocess.roles=broker\nremote.log.storage.system.enable=false\n\
             listener.security.protocol.map=SSL:SSL\ngroup.consumer.session.timeout.ms=45000\n",
        )
        .expect("accepted");
        let named: Vec<&str> = c.no_effect.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            named,
            [
                "sasl.enabled.mechanisms",
                "process.roles",
                "remote.log.storage.system.enable",
                "listener.security.protocol.map",
                "group.consumer.session.timeout.ms"
            ]
        );
        assert!(err("sasl.enabled.mechanismz=x\n").contains("did you mean"), "a near miss is still refused");
    }

    #[test]
    fn kafkas_pem_stores_give_the_tls_files_and_not_twice() {
        let stores = "broker.id=1\nzookeeper.connect=k:2181\nssl.keystore.type=PEM\n\
                      ssl.keystore.location=/s/b.pem\nssl.truststore.type=PEM\nssl.truststore.location=/s/ca.pem\n\
                      ssl.keystore.password=x\nssl.enabled.protocols=TLSv1.2,TLSv1.3\n";
        let c = BrokerConfig::parse(stores, Path::new("s.properties")).expect("PEM stores");
        assert_eq!(
            c.tls,
            TlsFiles { ca: "/s/ca.pem".into(), cert: "/s/b.pem".into(), key: "/s/b.pem".into() }
        );
        let both = err("ssl.keystore.type=PEM\nssl.keystore.location=/b.pem\nssl.truststore.type=PEM\n\
                        ssl.truststore.location=/ca.pem\n");
        assert!(both.contains("given twice"), "{both}");
        let jks = BrokerConfig::parse(
            "broker.id=1\nzookeeper.connect=k:2181\nssl.keystore.location=/b.jks\nssl.truststore.location=/t.jks\n",
            Path::new("s.properties"),
        )
        .expect_err("JKS")
        .to_string();
        assert!(jks.contains("ssl.keystore.type=PEM"), "{jks}");
    }

    fn topic(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("socket address")
    }

    #[test]
    fn defaults_are_kafkas() {
        let c = parse("").expect("parse");
        assert_eq!(c.broker_id, 1);
        assert_eq!(c.listener, addr("127.0.0.1:9092"));
        assert_eq!((c.advertised_host.as_str(), c.advertised_port), ("127.0.0.1", 9092));
        assert_eq!(c.rack, None);
        assert_eq!(c.zookeeper_connect, "127.0.0.1:2181/sluice");
        assert_eq!(c.zookeeper_session_timeout, Duration::from_millis(18_000));
        assert_eq!(c.log_dirs, vec![PathBuf::from("/tmp/kafka-logs")]);
        assert_eq!(
            c.tls,
            TlsFiles { ca: "ca.pem".into(), cert: "b.pem".into(), key: "b.key".into() },
            "relative paths kept as written"
        );
        assert_eq!(c.metrics, None);
        assert!(c.delete_topic_enable && c.auto_create_topics_enable && c.auto_leader_rebalance_enable);
        assert!(!c.unclean_leader_election_enable);
        assert_eq!((c.num_partitions, c.default_replication_factor, c.min_insync_replicas), (1, 1, 1));
        assert_eq!(c.leader_imbalance_check_interval, Duration::from_secs(300));
        assert_eq!(c.leader_imbalance_per_broker_percentage, 10);
        assert!(c.no_effect.is_empty());
        assert_eq!((c.offsets_topic_num_partitions, c.offsets_topic_replication_factor), (50, 3));
        assert_eq!(c.offsets_retention, Duration::from_secs(10_080 * 60));
        assert_eq!(c.replica_lag_time_max, Duration::from_millis(30_000));
        assert_eq!(c.log_retention_check_interval, Duration::from_millis(300_000));
        assert_eq!(c.group_initial_rebalance_delay, Duration::from_millis(3000));
        assert_eq!(
            (c.group_min_session_timeout, c.group_max_session_timeout),
            (Duration::from_millis(6000), Duration::from_millis(1_800_000))
        );
        assert_eq!((c.log_cleaner_threads, c.num_replica_fetchers), (1, 1));
        assert_eq!(c.log, LogConfig::default(), "sluice_log's defaults are Kafka's");
        assert_eq!(c.log.retention_ms, Some(168 * 3_600_000));
        assert_eq!(c.log.roll_ms, 168 * 3_600_000);
        assert_eq!((c.log.segment_bytes, c.log.max_message_bytes), (1_073_741_824, 1_048_588));
        assert_eq!(c.advertised_endpoint(), "127.0.0.1:9092");
        let written = parse(&format!("listeners={DEFAULT_LISTENER}\n")).expect("the default written out");
        assert_eq!((written.listener, written.advertised_endpoint()), (c.listener, c.advertised_endpoint()));
    }

    #[test]
    fn every_key_can_be_set() {
        let c = parse(
            "listeners=quic://127.0.0.1:9093\nadvertised.listeners=quic://b1.example.com:19093\n\
             broker.rack=r1\nzookeeper.session.timeout.ms=6000\nmetrics.port=9404\nmetrics.host=127.0.0.1\n\
             log.dirs=/a, /b\nnum.partitions=3\ndefault.replication.factor=2\nmin.insync.replicas=2\n\
             delete.topic.enable=false\nauto.create.topics.enable=false\nauto.leader.rebalance.enable=false\n\
             leader.imbalance.check.interval.seconds=60\nleader.imbalance.per.broker.percentage=0\n\
             background.threads=2\noffsets.topic.num.partitions=5\noffsets.topic.replication.factor=1\n\
             offsets.retention.minutes=2\nreplica.lag.time.max.ms=500\nunclean.leader.election.enable=true\n\
             group.initial.rebalance.delay.ms=0\ngroup.min.session.timeout.ms=1000\n\
             group.max.session.timeout.ms=2000\nnum.replica.fetchers=4\nlog.segment.bytes=1000\n\
             log.roll.hours=2\nlog.retention.bytes=5000\nlog.retention.check.interval.ms=100\n\
             log.flush.interval.messages=10\nlog.flush.interval.ms=20\nlog.index.interval.bytes=0\n\
             message.max.bytes=999\ncompression.type=zstd\nlog.cleanup.policy=compact,delete\n\
             log.cleaner.threads=0\nlog.cleaner.delete.retention.ms=7\nlog.cleaner.min.cleanable.ratio=0.25\n\
             log.cleaner.min.compaction.lag.ms=8\n",
        )
        .expect("parse");
        assert_eq!(c.listener, addr("127.0.0.1:9093"));
        assert_eq!(c.advertised_endpoint(), "b1.example.com:19093");
        assert_eq!(c.rack.as_deref(), Some("r1"));
        assert_eq!(c.zookeeper_session_timeout, Duration::from_secs(6));
        assert_eq!(c.metrics, Some(addr("127.0.0.1:9404")));
        assert_eq!(c.log_dirs, vec![PathBuf::from("/a"), PathBuf::from("/b")]);
        assert_eq!((c.num_partitions, c.default_replication_factor, c.min_insync_replicas), (3, 2, 2));
        assert!(!c.delete_topic_enable && !c.auto_create_topics_enable && !c.auto_leader_rebalance_enable);
        assert!(c.unclean_leader_election_enable);
        assert_eq!(c.leader_imbalance_check_interval, Duration::from_secs(60));
        assert_eq!(c.leader_imbalance_per_broker_percentage, 0);
        assert_eq!(
            c.no_effect,
            [("background.threads".to_string(), keys::no_effect("background.threads").unwrap_or_default())]
        );
        assert_eq!((c.offsets_topic_num_partitions, c.offsets_topic_replication_factor), (5, 1));
        assert_eq!(c.offsets_retention, Duration::from_secs(120));
        assert_eq!(c.replica_lag_time_max, Duration::from_millis(500));
        assert_eq!(c.group_initial_rebalance_delay, Duration::ZERO);
        assert_eq!(
            (c.group_min_session_timeout, c.group_max_session_timeout),
            (Duration::from_secs(1), Duration::from_secs(2))
        );
        assert_eq!((c.log_cleaner_threads, c.num_replica_fetchers), (0, 4));
        assert_eq!(c.log_retention_check_interval, Duration::from_millis(100));
        let want = LogConfig {
            segment_bytes: 1000,
            roll_ms: 2 * 3_600_000,
            max_message_bytes: 999,
            flush_interval_messages: Some(10),
            flush_interval_ms: Some(20),
            retention_ms: Some(168 * 3_600_000),
            retention_bytes: Some(5000),
            index_interval_bytes: 0,
            compression_type: "zstd".parse().expect("codec"),
            cleanup_policy: CleanupPolicy::COMPACT_DELETE,
            delete_retention_ms: 7,
            min_cleanable_dirty_ratio: 0.25,
            min_compaction_lag_ms: 8,
        };
        assert_eq!(c.log, want);
    }

    #[test]
    fn unknown_key_names_file_and_line() {
        let e = err("\n# a comment\nlog.retention.hour=5\n");
        assert!(e.starts_with("s.properties:8: unknown key \"log.retention.hour\""), "{e}");
        assert!(e.contains("log.retention.hours"), "lists the known keys: {e}");
    }

    #[test]
    fn a_session_range_upside_down_is_refused_naming_both_keys() {
        let e = err("group.max.session.timeout.ms=5000\n");
        assert!(
            e.contains(
                "group.max.session.timeout.ms=5000: must be at least group.min.session.timeout.ms (6000 ms)"
            ),
            "{e}"
        );
        let e = err("group.min.session.timeout.ms=2000000\n");
        assert!(e.contains("group.max.session.timeout.ms") && e.contains("2000000 ms"), "{e}");
    }

    #[test]
    fn bad_boolean_names_key_line_and_why() {
        assert_eq!(
            err("delete.topic.enable=yes\n"),
            "s.properties:6: delete.topic.enable=yes: must be true or false (the default is true)"
        );
        // Any case, as Kafka reads booleans.
        assert!(
            !parse("auto.create.topics.enable=False\n")
                .expect("False is a boolean")
                .auto_create_topics_enable
        );
    }

    #[test]
    fn bad_numbers_name_key_line_and_what_to_write() {
        let cases = [
            (
                "num.partitions=0\n",
                "s.properties:6: num.partitions=0: must be a whole number from 1 to 2147483647 (default 1)",
            ),
            (
                "leader.imbalance.per.broker.percentage=101\n",
                "must be a whole number (a percentage) from 0 to 100 (default 10)",
            ),
            ("default.replication.factor=40000\n", "must be a whole number from 1 to 32767"),
            (
                "offsets.topic.replication.factor=0\n",
                "offsets.topic.replication.factor=0: must be a whole number",
            ),
            ("replica.lag.time.max.ms=1.5\n", "must be a whole number of milliseconds of at least 1"),
            ("message.max.bytes=99999999999999999999999\n", "from 0 to 2147483647"),
            ("log.retention.bytes=-2\n", "must be -1 (no limit) or a whole number of bytes of at least 0"),
            (
                "log.flush.interval.messages=0\n",
                "log.flush.interval.messages=0: must be a whole number of at least 1",
            ),
            ("log.cleaner.min.cleanable.ratio=1.5\n", "must be a number from 0 to 1, e.g. 0.5 (default 0.5)"),
            ("log.cleaner.min.cleanable.ratio=NaN\n", "must be a number from 0 to 1"),
            (
                "compression.type=brotli\n",
                "compression.type=brotli: must be one of producer, uncompressed, gzip",
            ),
            (
                "log.cleanup.policy=purge\n",
                "log.cleanup.policy=purge: must be delete, compact or compact,delete",
            ),
            ("broker.rack=\n", "s.properties:6: broker.rack=: is empty: write a value, or remove the line"),
            ("metrics.port=http\n", "metrics.port=http: must be a TCP port from 0 to 65535"),
            (
                "metrics.port=1\nmetrics.host=localhost\n",
                "s.properties:7: metrics.host=localhost: must be an IP address",
            ),
            ("metrics.host=127.0.0.1\n", "has no effect without metrics.port"),
            ("log.dirs=/a,/b,/a\n", "lists /a twice"),
            ("log.dirs= , \n", "lists no directory"),
        ];
        for (text, want) in cases {
            let e = err(text);
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn empty_value_names_the_key() {
        let e = BrokerConfig::parse(&BASE.replace("broker.id=1", "broker.id="), Path::new("s.properties"))
            .expect_err("empty broker.id")
            .to_string();
        assert_eq!(e, "s.properties:1: broker.id=: is empty, and this key is required: write its value");
        assert!(err("num.partitions=\n").starts_with("s.properties:6: num.partitions=: is empty"));
    }

    #[test]
    fn missing_broker_id_is_named() {
        let text = BASE.replace("broker.id=1\n", "");
        let e = BrokerConfig::parse(&text, Path::new("s.properties")).expect_err("no id").to_string();
        assert_eq!(
            e,
            "s.properties: broker.id is required (this broker's id, a whole number unique in the cluster)"
        );
    }

    #[test]
    fn missing_or_bad_keeper_and_tls_keys_are_named() {
        for key in ["zookeeper.connect", "tls.ca.file", "tls.cert.file", "tls.key.file"] {
            let text: String =
                BASE.lines().filter(|l| !l.starts_with(key)).map(|l| format!("{l}\n")).collect();
            let e = BrokerConfig::parse(&text, Path::new("s.properties")).expect_err(key).to_string();
            assert!(e.starts_with(&format!("s.properties: {key} is required (")), "{e}");
        }
        let text = BASE.replace("127.0.0.1:2181/sluice", "k1");
        let e = BrokerConfig::parse(&text, Path::new("s.properties")).expect_err("no port").to_string();
        assert!(
            e.starts_with("s.properties:2: zookeeper.connect=k1: connect string \"k1\": k1 has no port"),
            "{e}"
        );
        assert!(e.contains("write host:port[,host:port...][/chroot]"), "{e}");
        let e = BrokerConfig::parse(&BASE.replace("broker.id=1", "broker.id=-1"), Path::new("s"))
            .expect_err("negative id")
            .to_string();
        assert!(e.contains("broker.id=-1: must be a whole number from 0 to 2147483647"), "{e}");
        assert!(e.contains("does not generate broker ids"), "{e}");
    }

    #[test]
    fn retention_ms_wins_over_minutes_and_hours() {
        let all = "log.retention.hours=1\nlog.retention.minutes=2\nlog.retention.ms=3\n";
        assert_eq!(parse(all).expect("all").log.retention_ms, Some(3));
        let mh = "log.retention.hours=1\nlog.retention.minutes=2\n";
        assert_eq!(parse(mh).expect("minutes").log.retention_ms, Some(120_000));
        assert_eq!(parse("log.retention.hours=1\n").expect("hours").log.retention_ms, Some(3_600_000));
        assert_eq!(parse("log.retention.hours=5\nlog.retention.ms=-1\n").expect("ms").log.retention_ms, None);
        assert_eq!(parse("log.retention.hours=-1\n").expect("forever").log.retention_ms, None);
        let e = err("log.retention.ms=0\n");
        assert!(e.contains(
            "log.retention.ms=0: must be -1 (no limit) or a whole number of milliseconds of at least 1"
        ));
        assert!(err("log.retention.hours=99999999999\n").contains("from 1 to 2147483647"));
        let roll = parse("log.roll.hours=1\nlog.roll.ms=5\n").expect("roll");
        assert_eq!(roll.log.roll_ms, 5, "log.roll.ms wins over log.roll.hours");
    }

    #[test]
    fn segment_bytes_are_checked_by_the_log_and_name_the_line() {
        let e = err("log.segment.bytes=14\n");
        assert_eq!(e, "s.properties:6: log.segment.bytes=14: must be between 61 and 2147483647");
        assert!(err("log.segment.bytes=3000000000\n").contains("must be between 61 and 2147483647"));
    }

    #[test]
    fn kafkas_never_flush_value_is_unset() {
        let c = parse(
            "log.flush.interval.messages=9223372036854775807\nlog.flush.interval.ms=9223372036854775807\n",
        )
        .expect("parse");
        assert_eq!((c.log.flush_interval_messages, c.log.flush_interval_ms), (None, None));
    }

    #[test]
    fn log_dirs_wins_over_the_older_log_dir() {
        let c = parse("log.dir=/old\n").expect("log.dir");
        assert_eq!(c.log_dirs, vec![PathBuf::from("/old")]);
        let c = parse("log.dir=/old\nlog.dirs=data/a,data/b\n").expect("both");
        assert_eq!(
            c.log_dirs,
            vec![PathBuf::from("data/a"), PathBuf::from("data/b")],
            "relative, as written"
        );
    }

    #[test]
    fn listeners_are_checked_with_advice() {
        let e = err("listeners=PLAINTEXT://0.0.0.0:9092\n");
        assert!(
            e.starts_with("s.properties:6: listeners=PLAINTEXT://0.0.0.0:9092: has no quic:// listener; write NAME://HOST:PORT"),
            "{e}"
        );
        assert!(err("listeners=SASL_SSL://0.0.0.0:9092,quic://:1\n")
            .contains("SASL_SSL:// is not a listener Sluice has"));
        assert!(err("listeners=0.0.0.0:9092\n").contains("has no scheme"));
        assert!(err("listeners=quic://a:1,quic://b:2\n").contains("names quic:// twice"));
        assert!(err("listeners=quic://a:1,,SSL://b:2\n").contains("has an empty entry"));
        assert!(err("listeners=quic://host\n").contains("needs a port"));
        assert!(
            err("listeners=quic://host:99999\n").contains("port \"99999\" must be a number from 0 to 65535")
        );
        assert!(err("listeners=quic://ho st:1\n").contains("is not a host name or an IP address"));
        assert!(err("listeners=quic://:1,SSL://[::1:2\n").contains("write e.g. SSL://[::1]:9092"));
    }

    #[test]
    fn kafka_listeners_are_parsed_and_advertised_per_name() {
        let c = parse(
            "listeners=quic://127.0.0.1:9092,SSL://0.0.0.0:9092,PLAINTEXT://127.0.0.1:9094\n\
             advertised.listeners=SSL://b1.example.com:19092\n",
        )
        .expect("parse");
        assert_eq!(c.listener, addr("127.0.0.1:9092"));
        assert_eq!(c.advertised_endpoint(), "127.0.0.1:9092", "quic:// is advertised as bound");
        assert_eq!(
            c.kafka_listeners,
            vec![
                KafkaListener {
                    security: KafkaSecurity::Ssl,
                    bind: addr("0.0.0.0:9092"),
                    advertised_host: "b1.example.com".into(),
                    advertised_port: 19092,
                },
                KafkaListener {
                    security: KafkaSecurity::Plaintext,
                    bind: addr("127.0.0.1:9094"),
                    advertised_host: "127.0.0.1".into(),
                    advertised_port: 9094,
                },
            ]
        );
        assert_eq!(c.socket_request_max_bytes, 104_857_600);
        assert_eq!(c.connections_max_idle, Duration::from_secs(600));
        assert_eq!(c.max_connections_per_ip, i32::MAX as usize);
        let e = err("listeners=quic://:1\nadvertised.listeners=SSL://b1:9092\n");
        assert!(e.contains("advertises SSL but listeners has no SSL listener"), "{e}");
        assert!(err("listeners=quic://127.0.0.1:1,SSL://127.0.0.1:2\nssl.client.auth=none\n")
            .contains("always requires a client certificate"));
        assert!(parse("listeners=quic://127.0.0.1:1,SSL://127.0.0.1:2\nssl.client.auth=REQUIRED\n").is_ok());
        assert!(parse("").expect("defaults").kafka_listeners.is_empty(), "no Kafka listener unless listed");
    }

    #[test]
    fn super_users_are_semicolon_separated_principals() {
        let c =
            parse("super.users=User:broker-1; User:CN=admin,O=x ;\nallow.everyone.if.no.acl.found=true\n")
                .expect("valid");
        assert_eq!(c.super_users, ["User:broker-1", "User:CN=admin,O=x"]);
        assert!(c.allow_everyone_if_no_acl_found);
        let d = parse("").expect("defaults");
        assert!(d.super_users.is_empty() && !d.allow_everyone_if_no_acl_found);
        let upper =
            parse("allow.everyone.if.no.acl.found=TRUE\ndelete.topic.enable=False\n").expect("any case");
        assert!(upper.allow_everyone_if_no_acl_found && !upper.delete_topic_enable);
        let e = err("super.users=alice\n");
        assert!(e.contains("User:<name>") && e.contains("super.users"), "{e}");
    }

    #[test]
    fn a_listener_on_every_address_needs_an_advertised_one() {
        for bound in [
            "quic://:0",
            "quic://0.0.0.0:9092",
            "quic://[::]:9092",
            "quic://127.0.0.1:9092,SSL://0.0.0.0:9093",
        ] {
            let e = err(&format!("listeners={bound}\n"));
            assert!(e.contains("binds every address") && e.contains("advertised.listeners="), "{bound}: {e}");
        }
        let c =
            parse("listeners=quic://:0\nadvertised.listeners=quic://b1.example.com:9092\n").expect("parse");
        assert_eq!(c.listener, addr("0.0.0.0:0"));
        assert_eq!((c.advertised_host.as_str(), c.advertised_port), ("b1.example.com", 9092));
        let d = parse("").expect("the default");
        assert_eq!(d.listener, addr("127.0.0.1:9092"), "binds what it advertises");
        assert_eq!((d.advertised_host.as_str(), d.advertised_port), ("127.0.0.1", 9092));
        assert_eq!(
            parse("listeners=QUIC://10.0.0.5:9000\n").expect("upper-case scheme").advertised_host,
            "10.0.0.5"
        );
    }

    #[test]
    fn ipv6_listener_parses() {
        let c = parse("listeners=quic://[::1]:9093\n").expect("parse");
        assert_eq!(c.listener, addr("[::1]:9093"));
        assert_eq!((c.advertised_host.as_str(), c.advertised_port), ("::1", 9093));
        assert_eq!(c.advertised_endpoint(), "[::1]:9093");
        let c = parse("listeners=quic://[::]:9092\nadvertised.listeners=quic://[::1]:9092\n")
            .expect("unspecified");
        assert_eq!(c.listener, addr("[::]:9092"));
        assert_eq!(c.advertised_endpoint(), "[::1]:9092");
        assert!(err("listeners=quic://::1:9093\n").contains("an IPv6 address must be in brackets"));
        assert!(err("listeners=quic://[::1:9093\n").contains("closing bracket"));
        assert!(err("listeners=quic://[zz]:1\n").contains("[zz] is not an IPv6 address"));
    }

    #[test]
    fn a_listener_name_is_resolved_and_advertised_as_written() {
        let c = parse("listeners=quic://localhost:9094\n").expect("parse");
        assert!(c.listener.ip().is_loopback(), "{}", c.listener);
        assert_eq!(c.listener.port(), 9094);
        assert_eq!(c.advertised_endpoint(), "localhost:9094");
    }

    #[test]
    fn advertised_listener_must_be_reachable() {
        let c =
            parse("listeners=quic://0.0.0.0:0\nadvertised.listeners=quic://[fe80::1]:9092\n").expect("parse");
        assert_eq!(c.listener, addr("0.0.0.0:0"));
        assert_eq!((c.advertised_host.as_str(), c.advertised_port), ("fe80::1", 9092));
        let e = err("advertised.listeners=quic://0.0.0.0:9092\n");
        assert!(
            e.starts_with("s.properties:6: advertised.listeners=quic://0.0.0.0:9092: must name a host"),
            "{e}"
        );
        assert!(
            err("advertised.listeners=SSL://b1:9092\n").contains("advertises SSL but listeners has no SSL")
        );
    }

    #[test]
    fn topic_override_of_retention_ms_applies() {
        let c = parse("log.retention.hours=1\n").expect("parse");
        let log = c.topic_log_config(&topic(&[("retention.ms", "5000")])).expect("override");
        assert_eq!(log.retention_ms, Some(5000));
        assert_eq!(
            LogConfig { retention_ms: c.log.retention_ms, ..log.clone() },
            c.log,
            "only retention.ms changes"
        );
        assert_eq!(
            c.topic_log_config(&topic(&[("retention.ms", "-1")])).expect("forever").retention_ms,
            None
        );
        assert_eq!(c.topic_log_config(&BTreeMap::new()).expect("none"), c.log);
    }

    #[test]
    fn every_topic_override_applies() {
        let c = parse("").expect("parse");
        let log = c
            .topic_log_config(&topic(&[
                ("cleanup.policy", "compact"),
                ("compression.type", "lz4"),
                ("delete.retention.ms", "1"),
                ("flush.messages", "2"),
                ("flush.ms", "3"),
                ("index.interval.bytes", "4"),
                ("max.message.bytes", "5"),
                ("min.cleanable.dirty.ratio", "0.1"),
                ("min.compaction.lag.ms", "6"),
                ("min.insync.replicas", "2"),
                ("retention.bytes", "7"),
                ("retention.ms", "8"),
                ("segment.bytes", "1024"),
                ("segment.ms", "9"),
                ("unclean.leader.election.enable", "true"),
            ]))
            .expect("overrides");
        let want = LogConfig {
            segment_bytes: 1024,
            roll_ms: 9,
            max_message_bytes: 5,
            flush_interval_messages: Some(2),
            flush_interval_ms: Some(3),
            retention_ms: Some(8),
            retention_bytes: Some(7),
            index_interval_bytes: 4,
            compression_type: "lz4".parse().expect("codec"),
            cleanup_policy: CleanupPolicy::COMPACT,
            delete_retention_ms: 1,
            min_cleanable_dirty_ratio: 0.1,
            min_compaction_lag_ms: 6,
        };
        assert_eq!(log, want);
    }

    #[test]
    fn bad_topic_override_is_invalid_config() {
        let c = parse("").expect("parse");
        let bad = |k: &str, v: &str| c.topic_log_config(&topic(&[(k, v)])).expect_err(k);
        let e = bad("retention.ms", "soon");
        assert!(
            matches!(&e, BrokerError::InvalidConfig { key, value, .. }
                if key == "retention.ms" && value == "soon"),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "invalid config retention.ms=soon: must be -1 (no limit) or a whole number of milliseconds of at \
             least 0 (default 604800000)"
        );
        let e = bad("segment.bytes", "10");
        assert_eq!(
            e.to_string(),
            "invalid config segment.bytes=10: must be between 61 and 2147483647",
            "named as the topic key"
        );
        assert!(bad("min.insync.replicas", "0")
            .to_string()
            .contains("min.insync.replicas=0: must be a whole number"));
        assert!(bad("unclean.leader.election.enable", "1").to_string().contains("must be true or false"));
        assert!(bad("cleanup.policy", "purge")
            .to_string()
            .contains("must be delete, compact or compact,delete"));
        assert!(bad("min.cleanable.dirty.ratio", "2").to_string().contains("from 0 to 1"));
        assert!(bad("flush.ms", "").to_string().contains("flush.ms=: is empty"));
        let e = bad("retention.hours", "1");
        assert!(
            matches!(&e, BrokerError::InvalidConfig { key, reason, .. }
                if key == "retention.hours" && reason.contains("not a topic config")),
            "{e:?}"
        );
    }

    #[test]
    fn topic_min_insync_replicas_falls_back_to_the_brokers() {
        let c = parse("min.insync.replicas=2\nunclean.leader.election.enable=true\n").expect("parse");
        assert_eq!(c.topic_min_insync_replicas(&BTreeMap::new()), 2);
        assert_eq!(c.topic_min_insync_replicas(&topic(&[("min.insync.replicas", "3")])), 3);
        assert_eq!(
            c.topic_min_insync_replicas(&topic(&[("min.insync.replicas", "0")])),
            2,
            "invalid: ignored"
        );
        assert!(c.topic_unclean_leader_election_enable(&BTreeMap::new()));
        assert!(
            !c.topic_unclean_leader_election_enable(&topic(&[("unclean.leader.election.enable", "false")]))
        );
    }

    #[test]
    fn load_reads_the_file_and_names_it_when_it_cannot() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("server.properties");
        std::fs::write(&path, BASE).expect("write");
        assert_eq!(BrokerConfig::load(&path).expect("load").broker_id, 1);
        let missing = dir.path().join("nope.properties");
        let e = BrokerConfig::load(&missing).expect_err("missing").to_string();
        assert!(e.starts_with(&format!("cannot read {}", missing.display())), "{e}");
    }

    #[test]
    fn the_sample_file_is_valid_and_documents_every_key() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/server.properties");
        let c = BrokerConfig::load(&path).expect("the sample parses");
        assert_eq!(c.broker_id, 1);
        assert_eq!(c.listener, addr("127.0.0.1:9092"));
        assert_eq!(c.advertised_endpoint(), "127.0.0.1:9092");
        assert_eq!(c.log_dirs, vec![PathBuf::from("/tmp/sluice-logs")]);
        assert_eq!(c.zookeeper_connect, "127.0.0.1:2181/sluice");
        assert_eq!(
            c.tls,
            TlsFiles {
                ca: "certs/ca.pem".into(),
                cert: "certs/broker-1.pem".into(),
                key: "certs/broker-1.key".into()
            }
        );
        assert_eq!(c.offsets_topic_replication_factor, 1, "a single broker can host __consumer_offsets");
        let text = std::fs::read_to_string(&path).expect("read");
        let documented: Vec<&str> = text
            .lines()
            .filter_map(|l| l.trim().trim_start_matches(['#', '!']).split_once('='))
            .map(|(k, _)| k.trim())
            .filter(|k| !k.contains(char::is_whitespace)) // prose, not a key=value line
            .collect();
        for key in KEYS {
            assert!(documented.contains(&key.name), "{} is not in the sample", key.name);
        }
        for key in &documented {
            assert!(keys::key(key).is_some(), "the sample documents {key}, which is not a key");
        }
    }

    #[test]
    fn the_sample_file_is_the_key_tables_rendering() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/server.properties");
        let want = keys::sample();
        if std::env::var_os("SLUICE_BLESS").is_some() {
            std::fs::write(&path, &want).expect("write the sample");
        }
        let have = std::fs::read_to_string(&path).expect("read the sample");
        let first = have.lines().zip(want.lines()).position(|(a, b)| a != b);
        assert!(
            have == want,
            "config/server.properties differs from the key table (broker/config/src/keys.rs) from line {}: \
             `SLUICE_BLESS=1 cargo test -p sluice-broker-config the_sample_file` rewrites it",
            first.map_or_else(|| have.lines().count().min(want.lines().count()) + 1, |i| i + 1)
        );
    }

    #[test]
    fn every_default_in_the_key_table_is_what_an_empty_file_gets() {
        // Parsing only the required keys takes every other key's default from the table
        // (a default that does not parse fails here, naming its key).
        parse("").expect("defaults parse");
        for k in KEYS {
            if let keys::Default::Value(v) = k.default {
                // The key written with its default value means the same as leaving it out
                // (metrics.host needs metrics.port beside it).
                let beside = if k.name == "metrics.host" { "metrics.port=0\n" } else { "" };
                let without = parse(beside).expect("defaults parse");
                let written = parse(&format!("{beside}{}={v}\n", k.name))
                    .unwrap_or_else(|e| panic!("{} = its default {v} is refused: {e}", k.name));
                assert_eq!(written, without, "{} = {v} differs from leaving it out", k.name);
            }
        }
    }
}
