//! The keeper's configuration file, with zoo.cfg's keys and defaults.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `tickTime` | 2000 | ms; the unit of session timeouts |
//! | `dataDir` | (required) | transaction log and snapshots |
//! | `clientPort` | 2181 | QUIC (UDP) port for clients; 0 picks a free one |
//! | `clientPortAddress` | 0.0.0.0 | address to listen on |
//! | `secureClientPort` | (none: no ZooKeeper door) | TCP port of the ZooKeeper door: ZooKeeper's client protocol over TLS, a client certificate from the cluster CA required; may be the same number as `clientPort` (TCP and UDP ports do not collide); 0 picks a free one |
//! | `plaintextClientPort` | (none) | TCP port of the ZooKeeper door without TLS (anyone who reaches it is served; a warning at start): ZooKeeper's plain `clientPort`, which here is QUIC |
//! | `4lw.commands.whitelist` | srvr | the four-letter words the door answers, comma-separated; `*` for all (ZooKeeper's key and default) |
//! | `znode.container.checkIntervalMs` | 60000 | ms between looks for container nodes left empty and TTL nodes past their TTL, which the server then deletes (ZooKeeper's key) |
//! | `znode.container.maxPerMinute` | 10000 | at most this many of those deletions a minute |
//! | `maxClientCnxns` | 60 | connections one client address may hold open on the ZooKeeper door; 0: no limit (ZooKeeper's key and default) |
//! | `jute.maxbuffer` | 1048575 | bytes: the largest request the door reads (plus 1024 for headers, as ZooKeeper's `jute.maxbuffer.extrasize`); a larger one closes that connection |
//! | `minSessionTimeout` | 2 × tickTime | ms |
//! | `maxSessionTimeout` | 20 × tickTime | ms |
//! | `snapCount` | 100000 | transactions between snapshots |
//! | `autopurge.snapRetainCount` | 3 | snapshots kept (at least 3, as ZooKeeper) |
//! | `autopurge.purgeInterval` | 0 | accepted for compatibility: the keeper purges after every snapshot |
//! | `tls.ca.file`, `tls.cert.file`, `tls.key.file` | (required) | the cluster CA, this server's certificate and key |
//! | `metricsProvider.httpPort` | (none: no endpoint) | TCP port of the Prometheus `/metrics` endpoint; 0 picks a free one |
//! | `metricsProvider.httpHost` | 0.0.0.0 | address of that endpoint |
//! | `server.N` | (none: standalone) | `host:peerPort` of ensemble member N (1-254); `dataDir/myid` holds this server's N |
//! | `initLimit` | 10 | ticks a member may take to install a snapshot from the leader |
//! | `syncLimit` | 5 | ticks a write waits for a quorum before failing with "no quorum" (never more than the session timeout) |
//! | `raft.heartbeatMs` | 100 | ms between the leader's heartbeats |
//! | `raft.electionTimeoutMs` | 300 | ms t: a follower that hears no leader for its lease (1.5 t) and then a random [t, 1.5 t) stands for election; a leader cut off by the network is replaced in 2.5-3 t (one whose process died, at once: its TCP liveness link closes) |
//! | `ensemble.allowTwoServers` | false | allow a 2-server ensemble (it survives no failure) |
//!
//! ZooKeeper's `initLimit` / `syncLimit` bound how long a follower may take to sync and how
//! far it may lag; with Raft the leader's heartbeats and the election timeout decide
//! liveness, so the two keys keep their "ticks" unit for what remains: snapshot transfer and
//! the bound on a write without a quorum.
//!
//! Unknown keys, bad values and missing required keys stop start-up with the file, the line
//! and the reason.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sluice_config::properties::{self, Entry, PropertiesError};
use sluice_keeper_core::{SessionConfig, SuperUsers};
use sluice_net::TlsFiles;

use sluice_actors::keeper::KeeperSettings;
use sluice_ensemble::EnsembleSettings;

/// Keys this file may hold.
pub const KEYS: &[&str] = &[
    "tickTime",
    "dataDir",
    "clientPort",
    "clientPortAddress",
    "secureClientPort",
    "plaintextClientPort",
    "4lw.commands.whitelist",
    "jute.maxbuffer",
    "maxClientCnxns",
    "znode.container.checkIntervalMs",
    "znode.container.maxPerMinute",
    "minSessionTimeout",
    "maxSessionTimeout",
    "snapCount",
    "autopurge.snapRetainCount",
    "autopurge.purgeInterval",
    "tls.ca.file",
    "tls.cert.file",
    "tls.key.file",
    "metricsProvider.httpPort",
    "metricsProvider.httpHost",
    "initLimit",
    "syncLimit",
    "raft.heartbeatMs",
    "raft.electionTimeoutMs",
    "ensemble.allowTwoServers",
    "ssl.keyStore.location",
    "ssl.keyStore.type",
    "ssl.keyStore.password",
    "ssl.trustStore.location",
    "ssl.trustStore.type",
    "ssl.clientAuth",
    "X509AuthenticationProvider.superUser",
    "zookeeper.X509AuthenticationProvider.superUser",
    "DigestAuthenticationProvider.superDigest",
    "zookeeper.DigestAuthenticationProvider.superDigest",
];

/// ZooKeeper 3.8 keys that mean nothing here: accepted, so an operator's `zoo.cfg` starts,
/// and listed with the reason in one notice at start.
pub const NO_EFFECT: &[(&str, &str)] = &[
    ("admin.enableServer", ADMIN),
    ("admin.serverPort", ADMIN),
    ("admin.serverAddress", ADMIN),
    ("admin.commandURL", ADMIN),
    ("admin.idleTimeout", ADMIN),
    ("metricsProvider.className", "the keeper's metrics are Prometheus text at metricsProvider.httpPort"),
    ("metricsProvider.exportJvmInfo", "there is no JVM"),
    ("dataLogDir", "the keeper keeps its transaction log in dataDir"),
    ("preAllocSize", "log files grow as they are written"),
    ("globalOutstandingLimit", "each session's requests are bounded by its pipeline"),
    ("leaderServes", "every member serves clients"),
    ("cnxTimeout", ELECTION),
    ("electionAlg", ELECTION),
    ("electionPortBindRetry", ELECTION),
    (
        "quorumListenOnAllIPs",
        "a member listens on the address of its server.N line (every address when it names a host)",
    ),
    ("standaloneEnabled", "one server without server.N lines is standalone"),
    ("reconfigEnabled", "membership changes are not served (ZooKeeper's reconfig)"),
    ("forceSync", "every write is fsynced before it is acknowledged"),
    ("syncEnabled", "there are no observers"),
    ("serverCnxnFactory", "the ZooKeeper door is the keeper's own"),
    ("localSessionsEnabled", "every session is global"),
    ("localSessionsUpgradingEnabled", "every session is global"),
    ("fsync.warningthresholdms", "slow fsyncs show in the keeper's latency metrics"),
    ("ssl.trustStore.password", "PEM stores are read without a password"),
    ("ssl.protocol", TLS_STACK),
    ("ssl.enabledProtocols", TLS_STACK),
    ("ssl.ciphersuites", TLS_STACK),
    ("ssl.context.supplier.class", TLS_STACK),
    ("ssl.hostnameVerification", "peers are verified by the cluster CA and the node certificate's role"),
    ("ssl.crl", "certificate revocation lists are not read"),
    ("ssl.ocsp", "OCSP is not used"),
    (
        "ssl.handshakeDetectionTimeoutMillis",
        "the ZooKeeper door gives a client 10 s for its handshake and connect",
    ),
    ("sslQuorum", QUORUM_TLS),
    ("ssl.quorum.keyStore.location", QUORUM_TLS),
    ("ssl.quorum.keyStore.password", QUORUM_TLS),
    ("ssl.quorum.keyStore.type", QUORUM_TLS),
    ("ssl.quorum.trustStore.location", QUORUM_TLS),
    ("ssl.quorum.trustStore.password", QUORUM_TLS),
    ("ssl.quorum.trustStore.type", QUORUM_TLS),
    ("ssl.quorum.hostnameVerification", QUORUM_TLS),
    ("portUnification", "the plain and TLS doors are separate ports (plaintextClientPort, secureClientPort)"),
    ("authProvider.x509", "x509 (the client certificate) is built in"),
    ("authProvider.1", "the x509, ip and digest schemes are built in"),
    (
        "skipACL",
        "znode ACLs are always checked; name super users with X509AuthenticationProvider.superUser instead",
    ),
    ("observerMasterPort", NO_OBSERVERS),
    ("observer.reconnectDelayMs", NO_OBSERVERS),
    ("observer.election.DelayMs", NO_OBSERVERS),
    ("commitLogCount", ZAB),
    ("maxConcurrentSnapSyncs", ZAB),
    ("maxConcurrentDiffSyncs", ZAB),
    ("learner.closeSocketAsync", ZAB),
    ("leader.closeSocketAsync", ZAB),
    ("learner.asyncSending", ZAB),
    ("forward_learner_requests_to_commit_processor_disabled", ZAB),
    ("follower.skipLearnerRequestToNextProcessor", ZAB),
    ("messageTracker.BufferSize", ZAB),
    ("messageTracker.Enabled", ZAB),
    ("connectToLearnerMasterLimit", ELECTION),
    ("maxTimeToWaitForEpoch", ELECTION),
    ("quorumCnxnTimeoutMs", ELECTION),
    ("fastleader.minNotificationInterval", ELECTION),
    ("fastleader.maxNotificationInterval", ELECTION),
    ("tcpKeepAlive", "members talk over QUIC, which keeps its links alive itself"),
    ("clientTcpKeepAlive", "a connection whose session expires is closed by the door"),
    ("multiAddress.enabled", MULTI_ADDRESS),
    ("multiAddress.reachabilityCheckTimeoutMs", MULTI_ADDRESS),
    ("multiAddress.reachabilityCheckEnabled", MULTI_ADDRESS),
    ("snapSizeLimitInKb", SNAPSHOTS),
    ("txnLogSizeLimitInKb", SNAPSHOTS),
    ("snapshot.compression.method", "snapshots are bincode with a CRC-32C, uncompressed"),
    ("snapshot.trust.empty", "a server loads its newest snapshot that passes its CRC and replays the log after it; none at all is an empty tree"),
    ("digest.enabled", "log records and snapshots carry a CRC-32C; there is no tree digest"),
    ("datadir.autocreate", "dataDir is created when missing"),
    ("db.autocreate", "an emptied member cannot win an election against members holding later entries (Raft's up-to-date rule)"),
    ("flushDelay", GROUP_COMMIT),
    ("maxWriteQueuePollTime", GROUP_COMMIT),
    ("maxBatchSize", GROUP_COMMIT),
    ("requestThrottleLimit", PIPELINE),
    ("requestThrottleStallTime", PIPELINE),
    ("requestThrottleDropStale", PIPELINE),
    ("requestStaleLatencyCheck", PIPELINE),
    ("requestStaleConnectionCheck", PIPELINE),
    ("request_throttler.shutdownTimeout", PIPELINE),
    ("throttledOpWaitTime", PIPELINE),
    ("largeRequestMaxBytes", "a request is bounded by jute.maxbuffer"),
    ("largeRequestThreshold", "a request is bounded by jute.maxbuffer"),
    ("connectionMaxTokens", CONNECTION_THROTTLE),
    ("connectionTokenFillTime", CONNECTION_THROTTLE),
    ("connectionTokenFillCount", CONNECTION_THROTTLE),
    ("connectionFreezeTime", CONNECTION_THROTTLE),
    ("connectionDropIncrease", CONNECTION_THROTTLE),
    ("connectionDropDecrease", CONNECTION_THROTTLE),
    ("connectionDecreaseRatio", CONNECTION_THROTTLE),
    ("connection_throttle_weight_enabled", CONNECTION_THROTTLE),
    ("connection_throttle_global_session_weight", CONNECTION_THROTTLE),
    ("connection_throttle_local_session_weight", CONNECTION_THROTTLE),
    ("connection_throttle_renew_session_weight", CONNECTION_THROTTLE),
    ("maxCnxns", "the ZooKeeper door limits connections per client address only (maxClientCnxns)"),
    ("clientPortListenBacklog", "the doors use the runtime's accept backlog (1024)"),
    ("advancedFlowControlEnabled", OWN_DOOR),
    ("outstandingHandshake.limit", OWN_DOOR),
    ("netty.server.earlyDropSecureConnectionHandshakes", OWN_DOOR),
    ("nio.numSelectorThreads", THREADS),
    ("nio.numWorkerThreads", THREADS),
    ("commitProcessor.numWorkerThreads", THREADS),
    ("commitProcessor.maxReadBatchSize", THREADS),
    ("commitProcessor.maxCommitBatchSize", THREADS),
    ("maxResponseCacheSize", "replies are serialised for each request; there is no response cache"),
    ("maxGetChildrenResponseCacheSize", "replies are serialised for each request; there is no response cache"),
    ("watchManagerName", WATCHES),
    ("watcherCleanThreadsNum", WATCHES),
    ("watcherCleanThreshold", WATCHES),
    ("watcherCleanIntervalInSeconds", WATCHES),
    ("maxInProcessingDeadWatchers", WATCHES),
    ("bitHashCacheSize", WATCHES),
    ("extendedTypesEnabled", "TTL nodes are always served (server ids 1-254, as ZooKeeper with extendedTypesEnabled=true)"),
    ("emulate353TTLNodes", "TTLs use ZooKeeper 3.5.4+'s encoding; 3.5.3's is not read"),
    ("enforceQuota", "znode quotas (/zookeeper/quota) are not enforced"),
    ("enableEagerACLCheck", "a write's ACL check happens where it is applied, a read's where it is served"),
    ("audit.enable", "requests an ACL refuses are logged under sluice::authorizer; other requests are not"),
    ("audit.impl.class", "requests an ACL refuses are logged under sluice::authorizer; other requests are not"),
    ("jute.maxbuffer.extrasize", "room above jute.maxbuffer is a fixed 1024 bytes"),
    ("znode.container.maxNeverUsedIntervalMs", "a container that never had a child is never deleted (ZooKeeper's default, 0)"),
    ("readonlymode.enabled", "the keeper offers no read-only mode: a server without quorum closes its ZooKeeper connections"),
    ("admin.forceHttps", ADMIN),
    ("admin.portUnification", ADMIN),
    ("metricsProvider.numWorkerThreads", METRICS_PROVIDER),
    ("metricsProvider.maxQueueSize", METRICS_PROVIDER),
    ("metricsProvider.workerShutdownTimeoutMs", METRICS_PROVIDER),
    ("DigestAuthenticationProvider.enabled", "the digest scheme is always served"),
    ("DigestAuthenticationProvider.digestAlg", "digests are SHA-1, ZooKeeper's default"),
    ("superUser", SASL),
    ("sessionRequireClientSASLAuth", SASL),
    ("kerberos.removeHostFromPrincipal", SASL),
    ("kerberos.removeRealmFromPrincipal", SASL),
    ("kerberos.canonicalizeHostNames", SASL),
    ("ssl.authProvider", X509_BUILT_IN),
    ("ensembleAuthName", AUTH_SCHEMES),
    ("enforce.auth.enabled", "sessions are not refused for their auth schemes: secureClientPort already requires a client certificate, and znode ACLs decide the rest"),
    ("enforce.auth.schemes", "sessions are not refused for their auth schemes: secureClientPort already requires a client certificate, and znode ACLs decide the rest"),
    ("ssl.keyStore.passwordPath", "PEM stores are read without a password"),
    ("ssl.trustStore.passwordPath", "PEM stores are read without a password"),
    ("ssl.quorum.keyStore.passwordPath", QUORUM_TLS),
    ("ssl.quorum.trustStore.passwordPath", QUORUM_TLS),
    ("ssl.quorum.protocol", QUORUM_TLS),
    ("ssl.quorum.enabledProtocols", QUORUM_TLS),
    ("ssl.quorum.ciphersuites", QUORUM_TLS),
    ("ssl.quorum.context.supplier.class", QUORUM_TLS),
    ("ssl.quorum.crl", QUORUM_TLS),
    ("ssl.quorum.ocsp", QUORUM_TLS),
    ("ssl.quorum.clientAuth", QUORUM_TLS),
    ("ssl.quorum.handshakeDetectionTimeoutMillis", QUORUM_TLS),
    ("client.portUnification", PORT_UNIFICATION),
    ("fips-mode", TLS_STACK),
    ("observer.syncEnabled", NO_OBSERVERS),
    ("connection_throttle_tokens", CONNECTION_THROTTLE),
    ("connection_throttle_fill_time", CONNECTION_THROTTLE),
    ("connection_throttle_fill_count", CONNECTION_THROTTLE),
    ("connection_throttle_freeze_time", CONNECTION_THROTTLE),
    ("connection_throttle_drop_increase", CONNECTION_THROTTLE),
    ("connection_throttle_drop_decrease", CONNECTION_THROTTLE),
    ("connection_throttle_decrease_ratio", CONNECTION_THROTTLE),
    ("request_throttle_max_requests", PIPELINE),
    ("request_throttle_stall_time", PIPELINE),
    ("request_throttle_drop_stale", PIPELINE),
    ("request_stale_latency_check", PIPELINE),
    ("request_stale_connection_check", PIPELINE),
    ("throttled_op_wait_time", PIPELINE),
    ("netty.advancedFlowControl.enabled", OWN_DOOR),
    ("netty.server.outstandingHandshake.limit", OWN_DOOR),
    ("leader.maxConcurrentSnapSyncs", ZAB),
    ("leader.maxConcurrentDiffSyncs", ZAB),
    ("leader.maxTimeToWaitForEpoch", ELECTION),
    ("secureClientPortAddress", "the doors listen on clientPortAddress"),
    ("sslQuorumReloadCertFiles", QUORUM_TLS),
    ("client.certReload", "certificates are read at start"),
    ("serializeLastProcessedZxid.enabled", ADMIN),
    ("admin.needClientAuth", ADMIN),
    ("admin.rateLimiterIntervalInMS", ADMIN),
    ("admin.snapshot.enabled", ADMIN),
    ("admin.restore.enabled", ADMIN),
    ("closeSessionTxn.enabled", "sessions are closed by a transaction of their own"),
];

const AUTH_SCHEMES: &str = "the x509, ip and digest schemes are built in";
const CONNECTION_THROTTLE: &str =
    "the ZooKeeper door does not rate-limit new connections; maxClientCnxns caps them per client address";
const GROUP_COMMIT: &str =
    "the log writer fsyncs whatever is queued in one write (group commit), with no delay or batch cap";
const METRICS_PROVIDER: &str = "the keeper's metrics are Prometheus text at metricsProvider.httpPort";
const MULTI_ADDRESS: &str = "a member has one peer address, its server.N line's";
const NO_OBSERVERS: &str = "there are no observers: every member votes";
const OWN_DOOR: &str = "the ZooKeeper door is the keeper's own";
const PIPELINE: &str = "each session's requests are bounded by its pipeline";
const PORT_UNIFICATION: &str =
    "the plain and TLS doors are separate ports (plaintextClientPort, secureClientPort)";
const SASL: &str = "SASL and Kerberos are not built: clients prove who they are with a TLS client certificate (x509) or addauth digest";
const SNAPSHOTS: &str =
    "snapshots are taken every snapCount transactions, and the log is trimmed behind them";
const THREADS: &str = "the runtimes size themselves to the machine's cores";
const WATCHES: &str = "a session's watches go with it at once; there is no lazy watcher cleaner";
const ZAB: &str =
    "members replicate with Raft over QUIC: ZooKeeper's Zab leader/learner machinery is not there";
const X509_BUILT_IN: &str = "x509 (the client certificate) is built in";
const TLS_STACK: &str = "TLS is rustls's: TLS 1.3 and 1.2 with its default cipher suites";
const QUORUM_TLS: &str =
    "members always talk over mutually authenticated QUIC with the server's own certificate";

const ADMIN: &str =
    "the AdminServer's commands are the four-letter words on the ZooKeeper port and `sluice keeper status`";
const ELECTION: &str = "the ensemble elects with Raft over the peer port of server.N";

/// Why `key` has no effect here, if it is one of [`NO_EFFECT`] (with or without ZooKeeper's
/// `zookeeper.` system-property prefix).
pub fn no_effect(key: &str) -> Option<&'static str> {
    // ZooKeeper reads an unknown zoo.cfg key as the system property `zookeeper.<key>`, so
    // files carry both spellings.
    let bare = key.strip_prefix("zookeeper.").unwrap_or(key);
    NO_EFFECT.iter().find(|(k, _)| *k == key || *k == bare).map(|(_, why)| *why)
}

/// A keeper's whole configuration.
#[derive(Debug, Clone)]
pub struct KeeperConfig {
    /// Store and session settings.
    pub settings: KeeperSettings,
    /// Where clients connect.
    pub listen: SocketAddr,
    /// TLS files.
    pub tls: TlsFiles,
    /// Where to serve Prometheus metrics (`metricsProvider.httpPort`, ZooKeeper's key).
    pub metrics: Option<SocketAddr>,
    /// The ensemble (`server.N` lines), or `None` for a standalone server.
    pub ensemble: Option<EnsembleSettings>,
    /// The ZooKeeper door's listeners and limits.
    pub zookeeper: ZooKeeperDoor,
    /// Who passes every znode ACL check (`X509AuthenticationProvider.superUser`,
    /// `DigestAuthenticationProvider.superDigest`, with or without ZooKeeper's `zookeeper.`
    /// system-property prefix).
    pub super_users: SuperUsers,
    /// What the file says that has no effect here (ZooKeeper's keys of [`NO_EFFECT`], the
    /// election port and client part of `server.N` lines): the keeper logs it at start.
    pub notices: Vec<String>,
}

/// Where the ZooKeeper door listens and what it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZooKeeperDoor {
    /// `secureClientPort`: TLS with a client certificate.
    pub secure: Option<SocketAddr>,
    /// `plaintextClientPort`: no TLS.
    pub plaintext: Option<SocketAddr>,
    /// `4lw.commands.whitelist`, lower case; `*` allows every word.
    pub four_letter_words: Vec<String>,
    /// `jute.maxbuffer`, bytes.
    pub max_buffer: usize,
    /// `maxClientCnxns`: connections one client address may hold open (0: no limit).
    pub max_client_cnxns: usize,
}

impl ZooKeeperDoor {
    /// Whether the four-letter word `word` may be answered.
    pub fn allows(&self, word: &str) -> bool {
        self.four_letter_words.iter().any(|w| w == "*" || w == word)
    }
}

/// What is wrong with a keeper configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read, a line is malformed, a value invalid or a required key
    /// missing.
    #[error(transparent)]
    Properties(#[from] PropertiesError),
    /// The ensemble is not one this server can join.
    #[error("{path}: {reason}")]
    Ensemble {
        /// The file (configuration or `myid`).
        path: PathBuf,
        /// Why, and what to do.
        reason: String,
    },
}

impl KeeperConfig {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| PropertiesError::Read { path: path.to_path_buf(), source })?;
        Self::parse(&text, path)
    }

    /// Parses configuration text; `path` is used in errors and to resolve relative paths
    /// (which are taken from the current directory, as ZooKeeper does).
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let entries = properties::parse(text, path)?;
        let is_known = |k: &str| KEYS.contains(&k) || no_effect(k).is_some() || k.starts_with("server.");
        properties::refuse_unknown(
            &entries,
            path,
            is_known,
            KEYS.iter().copied().chain(NO_EFFECT.iter().map(|(k, _)| *k)),
        )?;
        let mut notices: Vec<String> = entries
            .iter()
            .filter_map(|e| no_effect(&e.key).map(|why| format!("{} ({why})", e.key)))
            .collect();
        let get = |key: &str| entries.iter().find(|e| e.key == key);
        let num = |key: &str, default: u64, min: u64| -> Result<u64, ConfigError> {
            match get(key) {
                None => Ok(default),
                Some(e) => match e.value.parse::<u64>() {
                    Ok(v) if v >= min => Ok(v),
                    Ok(_) => Err(invalid(path, e, &format!("must be at least {min}"))),
                    Err(_) => Err(invalid(path, e, "must be a whole number")),
                },
            }
        };
        let tick = num("tickTime", 2000, 1)?;
        let tick_ms = u32::try_from(tick)
            .map_err(|_| invalid(path, get("tickTime").expect("present when too big"), "too large"))?;
        let mut sessions = SessionConfig::from_tick(tick_ms);
        sessions.min_timeout_ms = num("minSessionTimeout", u64::from(sessions.min_timeout_ms), 1)? as u32;
        sessions.max_timeout_ms = num("maxSessionTimeout", u64::from(sessions.max_timeout_ms), 1)? as u32;
        if sessions.min_timeout_ms > sessions.max_timeout_ms {
            let e = get("minSessionTimeout").or_else(|| get("maxSessionTimeout"));
            if let Some(e) = e {
                return Err(invalid(path, e, "minSessionTimeout is above maxSessionTimeout"));
            }
        }
        let port_of = |key: &str, default: u16| -> Result<u16, ConfigError> {
            match get(key) {
                None => Ok(default),
                Some(e) => e.value.parse().map_err(|_| invalid(path, e, "must be a port number (0-65535)")),
            }
        };
        let ip_of = |key: &str| -> Result<IpAddr, ConfigError> {
            match get(key) {
                None => Ok(IpAddr::from([0, 0, 0, 0])),
                Some(e) => e.value.parse().map_err(|_| invalid(path, e, "must be an IP address")),
            }
        };
        let port = port_of("clientPort", 2181)?;
        let ip = ip_of("clientPortAddress")?;
        let door_port = |key: &str| -> Result<Option<SocketAddr>, ConfigError> {
            match get(key) {
                None => Ok(None),
                Some(_) => Ok(Some(SocketAddr::new(ip, port_of(key, 0)?))),
            }
        };
        let four_letter_words = match get("4lw.commands.whitelist") {
            None => vec!["srvr".to_string()],
            Some(e) => {
                let words: Vec<String> =
                    e.value.split(',').map(|w| w.trim().to_lowercase()).filter(|w| !w.is_empty()).collect();
                for w in &words {
                    if w != "*" && !sluice_zookeeper_proto::FOUR_LETTER_WORDS.contains(&w.as_str()) {
                        return Err(invalid(
                            path,
                            e,
                            &format!(
                                "{w:?} is not a four-letter word; known: {}, or * for all",
                                sluice_zookeeper_proto::FOUR_LETTER_WORDS.join(", ")
                            ),
                        ));
                    }
                }
                words
            }
        };
        let zookeeper = ZooKeeperDoor {
            secure: door_port("secureClientPort")?,
            plaintext: door_port("plaintextClientPort")?,
            four_letter_words,
            max_buffer: num("jute.maxbuffer", 0xfffff, 1024)? as usize,
            max_client_cnxns: num("maxClientCnxns", 60, 0)? as usize,
        };
        let listed = |key: &str| -> Vec<(&Entry, String)> {
            [key.to_string(), format!("zookeeper.{key}")]
                .iter()
                .filter_map(|k| get(k))
                .flat_map(|e| {
                    e.value
                        .split(',')
                        .map(str::trim)
                        .filter(|v| !v.is_empty())
                        .map(move |v| (e, v.to_string()))
                })
                .collect()
        };
        let mut super_users = SuperUsers::default();
        for (_, name) in listed("X509AuthenticationProvider.superUser") {
            super_users.x509.push(name);
        }
        for (e, digest) in listed("DigestAuthenticationProvider.superDigest") {
            if !matches!(digest.split_once(':'), Some((u, h)) if !u.is_empty() && !h.is_empty()) {
                return Err(invalid(
                    path,
                    e,
                    "must be user:digest, the digest being base64(SHA-1(user:password)), e.g. super: followed by what \
                     `echo -n super:secret | openssl dgst -binary -sha1 | base64` prints",
                ));
            }
            super_users.digest.push(digest);
        }
        let metrics = match get("metricsProvider.httpPort") {
            None => None,
            Some(_) => Some(SocketAddr::new(
                ip_of("metricsProvider.httpHost")?,
                port_of("metricsProvider.httpPort", 0)?,
            )),
        };
        let required = |key: &'static str, hint: &'static str| -> Result<PathBuf, ConfigError> {
            match get(key) {
                Some(e) if !e.value.is_empty() => Ok(PathBuf::from(&e.value)),
                Some(e) => Err(invalid(path, e, "must not be empty")),
                None => Err(PropertiesError::missing(path, key, hint).into()),
            }
        };
        let data_dir = required("dataDir", "a directory for the transaction log and snapshots")?;
        // The TLS files: tls.*, or ZooKeeper's PEM stores (an operator's TLS block carries over).
        let tls = match sluice_config::stores::pem_stores(&entries, path, &sluice_config::stores::ZOOKEEPER)? {
            Some((ca, cert_and_key)) => {
                if let Some(e) = ["tls.ca.file", "tls.cert.file", "tls.key.file"].iter().find_map(|k| get(k)) {
                    return Err(invalid(
                        path,
                        e,
                        "the TLS files are given twice: keep either tls.ca.file/tls.cert.file/tls.key.file or \
                         ssl.keyStore.location/ssl.trustStore.location",
                    ));
                }
                TlsFiles { ca, cert: cert_and_key.clone(), key: cert_and_key }
            }
            None => TlsFiles {
                ca: required(
                    "tls.ca.file",
                    "the cluster CA certificate, e.g. from `sluice certs init` (or ZooKeeper's \
                     ssl.trustStore.location with ssl.trustStore.type=PEM)",
                )?,
                cert: required(
                    "tls.cert.file",
                    "this server's certificate (or ZooKeeper's ssl.keyStore.location with ssl.keyStore.type=PEM)",
                )?,
                key: required("tls.key.file", "this server's private key")?,
            },
        };
        if let Some(e) = get("ssl.clientAuth").filter(|e| !e.value.eq_ignore_ascii_case("need")) {
            return Err(invalid(
                path,
                e,
                "only need: every client proves who it is with a certificate on secureClientPort (the \
                 plaintextClientPort door serves clients without one)",
            ));
        }
        let snap_count = num("snapCount", 100_000, 2)? as usize;
        let snap_retain_count = num("autopurge.snapRetainCount", 3, 3)? as usize;
        num("autopurge.purgeInterval", 0, 0)?;
        let mut servers = BTreeMap::new();
        for e in entries.iter().filter(|e| e.key.starts_with("server.")) {
            let n =
                e.key["server.".len()..].parse::<u64>().ok().filter(|n| (1..=254).contains(n)).ok_or_else(
                    || {
                        invalid(
                        path,
                        e,
                        "the N of server.N must be a number from 1 to 254 (a session id's top byte is its \
                         server's id, and 255 there marks a node with a TTL, as in ZooKeeper)",
                    )
                    },
                )?;
            let (peer, unused) = server_line(&e.value).map_err(|why| invalid(path, e, &why.to_string()))?;
            if unused && notices.iter().all(|n| !n.starts_with("server.N")) {
                notices.push(format!(
                    "server.N's election port, role and client address ({}) {ELECTION}",
                    e.key
                ));
            }
            // (A repeated key is refused by the properties parser.)
            servers.insert(n, peer);
        }
        let ensemble = if servers.is_empty() {
            None
        } else {
            let myid_path = data_dir.join("myid");
            let text = std::fs::read_to_string(&myid_path).map_err(|e| ConfigError::Ensemble {
                path: myid_path.clone(),
                reason: format!(
                    "cannot read it ({e}): an ensemble member keeps its id there; write this server's N \
                     (of its server.N line) into it"
                ),
            })?;
            let my_id = text.trim().parse::<u64>().map_err(|_| ConfigError::Ensemble {
                path: myid_path.clone(),
                reason: format!(
                    "holds {:?}; it must hold this server's id, a number from 1 to 254",
                    text.trim()
                ),
            })?;
            let ids = servers.keys().map(u64::to_string).collect::<Vec<_>>().join(", ");
            if !servers.contains_key(&my_id) {
                return Err(ConfigError::Ensemble {
                    path: path.into(),
                    reason: format!(
                        "{} says this is server {my_id}, but there is no server.{my_id} line (servers: {ids})",
                        myid_path.display()
                    ),
                });
            }
            let allow_two = match get("ensemble.allowTwoServers") {
                None => false,
                Some(e) => match e.value.to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(invalid(path, e, "must be true or false")),
                },
            };
            if servers.len() == 2 && !allow_two {
                return Err(ConfigError::Ensemble {
                    path: path.into(),
                    reason: format!(
                        "an ensemble of 2 servers ({ids}) needs both up to write and so survives no failure; \
                         list 3 servers (or 5), or set ensemble.allowTwoServers=true if you mean it"
                    ),
                });
            }
            let heartbeat_ms = num("raft.heartbeatMs", 100, 10)?;
            let election_timeout_ms = num("raft.electionTimeoutMs", 300, 1)?;
            if election_timeout_ms < heartbeat_ms * 3 {
                let e = get("raft.electionTimeoutMs").or_else(|| get("raft.heartbeatMs"));
                if let Some(e) = e {
                    return Err(invalid(
                        path,
                        e,
                        "raft.electionTimeoutMs must be at least 3 × raft.heartbeatMs",
                    ));
                }
            }
            let init_limit = num("initLimit", 10, 1)?;
            let sync_limit = num("syncLimit", 5, 1)?;
            Some(EnsembleSettings {
                my_id,
                members: servers,
                heartbeat_ms,
                election_timeout_ms,
                write_timeout: Duration::from_millis(sync_limit * tick),
                install_timeout: Duration::from_millis(init_limit * tick),
            })
        };
        Ok(KeeperConfig {
            settings: KeeperSettings {
                data_dir,
                sessions,
                snap_count,
                snap_retain_count,
                container_check: Duration::from_millis(num("znode.container.checkIntervalMs", 60_000, 1)?),
                container_max_per_minute: num("znode.container.maxPerMinute", 10_000, 1)? as usize,
            },
            listen: SocketAddr::new(ip, port),
            tls,
            metrics,
            ensemble,
            zookeeper,
            super_users,
            notices,
        })
    }
}

/// A `server.N` address that is not `host:peerPort`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be host:peerPort[:electionPort][;clientPort], e.g. k1:2888:3888 (got {0:?})")]
pub struct BadPeerAddress(pub String);

/// ZooKeeper's `server.N` value, `host:peerPort[:electionPort[:participant]][;[clientHost:]clientPort]`,
/// as the `host:peerPort` the ensemble uses; `true` when it had more (the election port and
/// the client part are read and not used: Raft elects over the peer port). An observer is
/// refused: there are none here.
fn server_line(value: &str) -> Result<(String, bool), BadPeerAddress> {
    let bad = || BadPeerAddress(value.to_string());
    let (main, client) = match value.split_once(';') {
        Some((m, c)) => (m.trim(), Some(c.trim())),
        None => (value.trim(), None),
    };
    let (host, rest) = if main.starts_with('[') {
        let end = main.find(']').ok_or_else(bad)?;
        (&main[..=end], main[end + 1..].strip_prefix(':').ok_or_else(bad)?)
    } else {
        main.split_once(':').ok_or_else(bad)?
    };
    let mut parts = rest.split(':');
    let peer = parts.next().ok_or_else(bad)?;
    let election = parts.next();
    let role = parts.next();
    if parts.next().is_some() || election.is_some_and(|p| p.parse::<u16>().is_err()) {
        return Err(bad());
    }
    match role {
        None | Some("participant") => {}
        Some(_) => {
            return Err(BadPeerAddress(format!("{value} (observers are not served: every member votes)")))
        }
    }
    let joined = format!("{host}:{peer}");
    split_host_port(&joined)?;
    Ok((joined, election.is_some() || client.is_some()))
}

/// Splits `host:port` (port 1-65535).
fn split_host_port(value: &str) -> Result<(&str, u16), BadPeerAddress> {
    let bad = || BadPeerAddress(value.to_string());
    let (host, port) = value.rsplit_once(':').ok_or_else(bad)?;
    let port = port.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad)?;
    if host.is_empty() || host.contains(':') && !host.starts_with('[') {
        return Err(bad());
    }
    Ok((host.trim_start_matches('[').trim_end_matches(']'), port))
}

/// Where a member listens for its peers: the IP of its `server.N` line, or every address
/// when the line names a host.
pub fn listen_addr(peer: &str) -> Result<SocketAddr, BadPeerAddress> {
    let (host, port) = split_host_port(peer)?;
    let ip = host.parse::<IpAddr>().unwrap_or(IpAddr::from([0, 0, 0, 0]));
    Ok(SocketAddr::new(ip, port))
}

fn invalid(path: &Path, e: &Entry, reason: &str) -> ConfigError {
    PropertiesError::invalid(path, e, reason).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TLS: &str = "tls.ca.file=ca.pem\ntls.cert.file=k.pem\ntls.key.file=k.key\n";

    #[test]
    fn defaults_are_zookeepers() {
        let c = KeeperConfig::parse(&format!("dataDir=/var/k\n{TLS}"), Path::new("k.cfg")).expect("parse");
        assert_eq!(c.listen, "0.0.0.0:2181".parse().expect("addr"));
        assert_eq!(
            c.settings.sessions,
            SessionConfig { tick_ms: 2000, min_timeout_ms: 4000, max_timeout_ms: 40000 }
        );
        assert_eq!((c.settings.snap_count, c.settings.snap_retain_count), (100_000, 3));
        assert_eq!(c.metrics, None, "no metrics endpoint unless asked for");
        let c = KeeperConfig::parse(
            &format!(
                "dataDir=/d
metricsProvider.httpPort=7000
{TLS}"
            ),
            Path::new("k"),
        )
        .expect("parse");
        assert_eq!(
            c.metrics,
            Some("0.0.0.0:7000".parse().expect("addr")),
            "ZooKeeper's key and host default"
        );
    }

    #[test]
    fn the_rest_of_zookeepers_guide_is_accepted_with_or_without_the_property_prefix() {
        let text = format!(
            "dataDir=/d\n{TLS}zookeeper.nio.numSelectorThreads=4\nnio.numWorkerThreads=8\ncommitLogCount=500\n\
             zookeeper.connection_throttle_tokens=100\nwatchManagerName=x\n"
        );
        let c = KeeperConfig::parse(&text, Path::new("zoo.cfg")).expect("accepted");
        for key in
            ["zookeeper.nio.numSelectorThreads", "nio.numWorkerThreads", "commitLogCount", "watchManagerName"]
        {
            assert!(c.notices.iter().any(|n| n.starts_with(key)), "{key}: {:?}", c.notices);
        }
        assert!(KeeperConfig::parse(&format!("dataDir=/d\n{TLS}nio.numSelectorThreadz=4\n"), Path::new("z"))
            .is_err());
    }

    #[test]
    fn zookeepers_pem_stores_and_super_users_are_read() {
        let text = "dataDir=/d\nssl.keyStore.location=/s/k.pem\nssl.keyStore.type=PEM\n\
                    ssl.trustStore.location=/s/ca.pem\nssl.trustStore.type=PEM\nssl.clientAuth=NEED\n\
                    ssl.enabledProtocols=TLSv1.3\nsslQuorum=true\n\
                    X509AuthenticationProvider.superUser=root, ops\n\
                    zookeeper.DigestAuthenticationProvider.superDigest=super:abc=\n";
        let c = KeeperConfig::parse(text, Path::new("zoo.cfg")).expect("parse");
        assert_eq!(
            c.tls,
            TlsFiles { ca: "/s/ca.pem".into(), cert: "/s/k.pem".into(), key: "/s/k.pem".into() }
        );
        assert_eq!(c.super_users.x509, ["root", "ops"]);
        assert_eq!(c.super_users.digest, ["super:abc="]);
        assert!(c.notices.iter().any(|n| n.starts_with("sslQuorum")), "{:?}", c.notices);
        let err = |text: &str| KeeperConfig::parse(text, Path::new("zoo.cfg")).expect_err(text).to_string();
        assert!(err(&format!("dataDir=/d\n{TLS}ssl.clientAuth=want\n")).contains("only need"));
        let twice = err(&format!(
            "dataDir=/d\n{TLS}ssl.keyStore.location=/k\nssl.keyStore.type=PEM\nssl.trustStore.location=/c\n\
             ssl.trustStore.type=PEM\n"
        ));
        assert!(twice.contains("given twice"), "{twice}");
        assert!(err(&format!("dataDir=/d\n{TLS}DigestAuthenticationProvider.superDigest=nocolon\n"))
            .contains("user:digest"));
    }

    #[test]
    fn every_bad_line_names_the_file_line_key_and_why() {
        let cases = [
            ("tickTime=fast\n", "k.cfg:1: tickTime=fast: must be a whole number"),
            (
                "tickTime=100\nminSessionTimeout=5000\nmaxSessionTimeout=1000\n",
                "minSessionTimeout is above maxSessionTimeout",
            ),
            ("clientPort=70000\n", "k.cfg:1: clientPort=70000: must be a port number"),
            ("clientPortAddress=here\n", "must be an IP address"),
            (
                "metricsProvider.httpPort=http\n",
                "k.cfg:1: metricsProvider.httpPort=http: must be a port number",
            ),
            (
                "metricsProvider.httpPort=1\nmetricsProvider.httpHost=x\n",
                "k.cfg:2: metricsProvider.httpHost=x",
            ),
            ("autopurge.snapRetainCount=1\n", "must be at least 3"),
            ("tickTim=2000\n", "k.cfg:1: unknown key \"tickTim\""),
            ("server.1=k1\n", "k.cfg:1: server.1=k1: must be host:peerPort[:electionPort]"),
            (
                "server.0=k1:2888\n",
                "k.cfg:1: server.0=k1:2888: the N of server.N must be a number from 1 to 254",
            ),
            ("server.255=k1:2888\n", "255 there marks a node with a TTL"),
            ("znode.container.checkIntervalMs=0\n", "must be at least 1"),
            ("server.1=k1:2888\n", "/d/myid: cannot read it"),
        ];
        for (text, want) in cases {
            let err =
                KeeperConfig::parse(&format!("{text}dataDir=/d\n{TLS}"), Path::new("k.cfg")).expect_err(text);
            assert!(err.to_string().contains(want), "{text:?}: {err}");
        }
        let err = KeeperConfig::parse(TLS, Path::new("k.cfg")).expect_err("no dataDir");
        assert_eq!(
            err.to_string(),
            "k.cfg: dataDir is required (a directory for the transaction log and snapshots)"
        );
    }
    #[test]
    fn an_ensemble_member_needs_its_myid_in_the_server_list_and_an_odd_or_explicit_size() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().display().to_string();
        let three = "server.1=127.0.0.1:2888\nserver.2=k2:2888\nserver.3=k3:2888\n";
        let parse =
            |extra: &str| KeeperConfig::parse(&format!("dataDir={data}\n{TLS}{extra}"), Path::new("k.cfg"));
        let err = parse(three).expect_err("no myid");
        assert!(err.to_string().contains("myid: cannot read it"), "{err}");
        std::fs::write(dir.path().join("myid"), "one\n").expect("myid");
        assert!(parse(three).expect_err("bad myid").to_string().contains("must hold this server's id"));
        std::fs::write(dir.path().join("myid"), "4\n").expect("myid");
        let err = parse(three).expect_err("not listed").to_string();
        assert!(err.contains("this is server 4, but there is no server.4 line (servers: 1, 2, 3)"), "{err}");
        std::fs::write(dir.path().join("myid"), "1\n").expect("myid");
        let two = "server.1=127.0.0.1:2888\nserver.2=k2:2888\n";
        let err = parse(two).expect_err("two servers").to_string();
        assert!(err.contains("ensemble.allowTwoServers=true"), "{err}");
        assert!(parse(&format!("{two}ensemble.allowTwoServers=true\n")).is_ok());
        let e = parse(three).expect("three").ensemble.expect("an ensemble");
        assert_eq!((e.my_id, e.members.len()), (1, 3));
        assert_eq!((e.heartbeat_ms, e.election_timeout_ms), (100, 300));
        assert_eq!(e.write_timeout, Duration::from_millis(5 * 2000), "syncLimit ticks");
        assert_eq!(e.install_timeout, Duration::from_millis(10 * 2000), "initLimit ticks");
        assert_eq!(listen_addr(&e.members[&1]), Ok("127.0.0.1:2888".parse().expect("addr")));
        assert_eq!(
            listen_addr("k2:2888"),
            Ok("0.0.0.0:2888".parse().expect("addr")),
            "a host name: all addresses"
        );
        let err =
            parse(&format!("{three}raft.heartbeatMs=500\n")).expect_err("election too short").to_string();
        assert!(err.contains("at least 3 × raft.heartbeatMs"), "{err}");
        let err = parse(&format!("{three}server.2=k9:2888\n")).expect_err("dup").to_string();
        assert!(err.contains("server.2 is already set on line"), "{err}");
    }

    #[test]
    fn zookeepers_own_server_lines_and_admin_keys_are_read_and_named_as_unused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().display().to_string();
        std::fs::write(dir.path().join("myid"), "2\n").expect("myid");
        let zk = "server.1=127.0.0.1:2888:3888\nserver.2=[::1]:2889:3889:participant;2181\n\
                  server.3=k3:2890:3890;0.0.0.0:2181\nadmin.enableServer=false\n";
        let c =
            KeeperConfig::parse(&format!("dataDir={data}\n{TLS}{zk}"), Path::new("zoo.cfg")).expect("parse");
        let e = c.ensemble.expect("an ensemble");
        assert_eq!(e.members[&1], "127.0.0.1:2888");
        assert_eq!(e.members[&2], "[::1]:2889");
        assert_eq!(e.members[&3], "k3:2890");
        assert!(c.notices.iter().any(|n| n.starts_with("admin.enableServer (")), "{:?}", c.notices);
        assert!(
            c.notices.iter().any(|n| n.contains("election port") && n.contains("Raft")),
            "{:?}",
            c.notices
        );
        let observer = format!("dataDir={data}\n{TLS}server.1=k1:2888:3888\nserver.2=k2:2888:3888:observer\nserver.3=k3:2888:3888\n");
        let err = KeeperConfig::parse(&observer, Path::new("zoo.cfg")).expect_err("observer").to_string();
        assert!(err.contains("observers are not served"), "{err}");
        let typo = format!("dataDir={data}\n{TLS}maxClientCnx=60\n");
        let err = KeeperConfig::parse(&typo, Path::new("zoo.cfg")).expect_err("typo").to_string();
        assert!(err.contains("did you mean \"maxClientCnxns\"?"), "{err}");
    }
}
