//! Every key of `server.properties`, written once: its name, the section of the sample file
//! it is documented in, what it means, its default and how the sample shows it. The table
//! drives the parser (unknown keys, required keys, every default —
//! [`BrokerConfig::parse`](crate::BrokerConfig::parse) reads defaults from here) and the
//! documentation: `config/server.properties` is [`sample`]'s output, checked by a test
//! (`SLUICE_BLESS=1 cargo test -p sluice-broker-config the_sample_file` rewrites it after a change here).

/// A key's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Default {
    /// The key must be set.
    Required,
    /// Unset unless written; the text says what unset means (may be empty).
    Unset(&'static str),
    /// This value, as it would be written in the file.
    Value(&'static str),
    /// Worked out from other keys, as described.
    Derived(&'static str),
}

/// How the sample file shows a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sample {
    /// Set to this value.
    Set(&'static str),
    /// Commented out, with this example value.
    Example(&'static str),
    /// Commented out, showing its default (or nothing).
    Default,
}

/// One key of `server.properties`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    /// The key, as Kafka names it.
    pub name: &'static str,
    /// The sample file's section.
    pub section: &'static str,
    /// What it means.
    pub meaning: &'static str,
    /// Its default.
    pub default: Default,
    /// How the sample shows it.
    pub sample: Sample,
}

/// Every key, in the sample file's order.
pub const KEYS: &[Key] = &[
    Key {
        name: "broker.id",
        section: "Server basics",
        meaning: "This broker's id: a whole number from 0 to 2147483647, unique in the cluster.",
        default: Default::Required,
        sample: Sample::Set("1"),
    },
    Key {
        name: "broker.rack",
        section: "Server basics",
        meaning: "This broker's rack, used to spread a partition's replicas over racks.",
        default: Default::Unset(""),
        sample: Sample::Example("rack-1"),
    },
    Key {
        name: "listeners",
        section: "Listeners",
        meaning: "NAME://HOST:PORT entries separated by commas: exactly one quic:// (Sluice's own clients and the brokers' links, over QUIC), and optionally SSL:// (Kafka's wire protocol over TLS with a client certificate required, for Kafka's own clients) and PLAINTEXT:// (Kafka's wire protocol without TLS; every client is User:ANONYMOUS; a warning at start). HOST may be empty (every address; then advertised.listeners must name this machine for the protocol, as Kafka will not advertise 0.0.0.0), a host name, an IPv4 address or a bracketed IPv6 address such as [::1]; port 0 picks a free port. QUIC is UDP and the Kafka listeners TCP, so quic:// and SSL:// may share a port number.",
        default: Default::Value(crate::DEFAULT_LISTENER),
        sample: Sample::Set("quic://127.0.0.1:9092,SSL://127.0.0.1:9093"),
    },
    Key {
        name: "advertised.listeners",
        section: "Listeners",
        meaning: "The NAME://HOST:PORT clients are told to dial, per listener name (registered in the keeper; a Kafka client is given every broker's address on the listener it came in through). A listener left out is advertised as bound.",
        default: Default::Derived("each listener, with an unspecified host (empty, 0.0.0.0, [::]) replaced by 127.0.0.1; port 0 means the port the listener bound"),
        sample: Sample::Example("quic://broker1.example.com:9092,SSL://broker1.example.com:9093"),
    },
    Key {
        name: "ssl.client.auth",
        section: "Listeners",
        meaning: "Whether the SSL listener requires a client certificate: always `required` (the certificate's principal is who the client is); a PLAINTEXT listener serves clients without one.",
        default: Default::Value("required"),
        sample: Sample::Default,
    },
    Key {
        name: "socket.request.max.bytes",
        section: "Listeners",
        meaning: "The largest request a Kafka listener reads; a larger size prefix closes the connection, as in Kafka.",
        default: Default::Value("104857600"),
        sample: Sample::Default,
    },
    Key {
        name: "connections.max.idle.ms",
        section: "Listeners",
        meaning: "A Kafka-listener connection with no request for this long is closed.",
        default: Default::Value("600000"),
        sample: Sample::Default,
    },
    Key {
        name: "max.connections.per.ip",
        section: "Listeners",
        meaning: "Kafka-listener connections one client address may hold at once; more are closed at accept.",
        default: Default::Value("2147483647"),
        sample: Sample::Default,
    },
    Key {
        name: "tls.ca.file",
        section: "TLS",
        meaning: "The cluster CA certificate (for example from `sluice certs init`).",
        default: Default::Derived(STORES),
        sample: Sample::Set("certs/ca.pem"),
    },
    Key {
        name: "tls.cert.file",
        section: "TLS",
        meaning: "This broker's certificate, signed by the cluster CA.",
        default: Default::Derived(STORES),
        sample: Sample::Set("certs/broker-1.pem"),
    },
    Key {
        name: "tls.key.file",
        section: "TLS",
        meaning: "This broker's private key.",
        default: Default::Derived(STORES),
        sample: Sample::Set("certs/broker-1.key"),
    },
    Key {
        name: "ssl.keystore.location",
        section: "TLS",
        meaning: "Kafka's PEM key store, instead of tls.cert.file and tls.key.file: one file holding this broker's certificate chain and its (unencrypted) private key.",
        default: Default::Unset(""),
        sample: Sample::Example("certs/broker-1-keystore.pem"),
    },
    Key {
        name: "ssl.keystore.type",
        section: "TLS",
        meaning: "PEM, the only type read (a JKS or PKCS12 store converts with keytool and openssl).",
        default: Default::Unset(" (required with ssl.keystore.location)"),
        sample: Sample::Example("PEM"),
    },
    Key {
        name: "ssl.truststore.location",
        section: "TLS",
        meaning: "Kafka's PEM trust store, instead of tls.ca.file: the cluster CA certificate.",
        default: Default::Unset(""),
        sample: Sample::Example("certs/ca.pem"),
    },
    Key {
        name: "ssl.truststore.type",
        section: "TLS",
        meaning: "PEM, the only type read.",
        default: Default::Unset(" (required with ssl.truststore.location)"),
        sample: Sample::Example("PEM"),
    },
    Key {
        name: "ssl.key.password",
        section: "TLS",
        meaning: "Refused when set: encrypted private keys are not read (decrypt the key with `openssl pkey`).",
        default: Default::Unset(""),
        sample: Sample::Default,
    },
    Key {
        name: "super.users",
        section: "Authorization",
        meaning: "Principals that may do anything, `User:<name>` separated by `;` (a certificate's principal is User:<first DNS name, else CN>). List the brokers' own certificates here, as in Kafka, or grant them ClusterAction on the cluster.",
        default: Default::Unset(" (nobody)"),
        sample: Sample::Set("User:broker-1;User:cli"),
    },
    Key {
        name: "zookeeper.set.acl",
        section: "Authorization",
        meaning: "Whether the broker creates its znodes with ACLs: every permission for itself and the super.users principals (x509), read for everyone. Other certificates then cannot change /brokers, /controller, /admin, /config or /kafka-acl*. Kafka's key (Kafka's default is false).",
        default: Default::Value("true"),
        sample: Sample::Default,
    },
    Key {
        name: "allow.everyone.if.no.acl.found",
        section: "Authorization",
        meaning: "Whether a resource that no ACL names is open to every principal (Kafka's switch; leave it false and grant with `sluice acls`).",
        default: Default::Value("false"),
        sample: Sample::Default,
    },
    Key {
        name: "zookeeper.connect",
        section: "Keeper",
        meaning: "The keeper ensemble: host:port[,host:port...][/chroot].",
        default: Default::Required,
        sample: Sample::Set("127.0.0.1:2181/sluice"),
    },
    Key {
        name: "zookeeper.session.timeout.ms",
        section: "Keeper",
        meaning: "The broker's keeper session timeout in milliseconds.",
        default: Default::Value("18000"),
        sample: Sample::Default,
    },
    Key {
        name: "metrics.port",
        section: "Metrics",
        meaning: "TCP port of the Prometheus /metrics endpoint; 0 picks a free port.",
        default: Default::Unset(" (no endpoint)"),
        sample: Sample::Example("9404"),
    },
    Key {
        name: "metrics.host",
        section: "Metrics",
        meaning: "IP address of the /metrics endpoint; only with metrics.port.",
        default: Default::Value("0.0.0.0"),
        sample: Sample::Default,
    },
    Key {
        name: "delete.topic.enable",
        section: "Topics",
        meaning: "Whether topics may be deleted.",
        default: Default::Value("true"),
        sample: Sample::Default,
    },
    Key {
        name: "auto.create.topics.enable",
        section: "Topics",
        meaning: "Create a topic when a client asks for metadata of a topic that does not exist.",
        default: Default::Value("true"),
        sample: Sample::Default,
    },
    Key {
        name: "num.partitions",
        section: "Topics",
        meaning: "Partitions of a topic created without a partition count (and of auto-created topics).",
        default: Default::Value("1"),
        sample: Sample::Default,
    },
    Key {
        name: "default.replication.factor",
        section: "Topics",
        meaning: "Replicas of a topic created without a replication factor.",
        default: Default::Value("1"),
        sample: Sample::Default,
    },
    Key {
        name: "min.insync.replicas",
        section: "Topics",
        meaning: "In-sync replicas an acks=all produce needs; a topic's min.insync.replicas overrides it.",
        default: Default::Value("1"),
        sample: Sample::Default,
    },
    Key {
        name: "unclean.leader.election.enable",
        section: "Topics",
        meaning: "Let an out-of-sync replica become leader when no in-sync one is left (loses data).",
        default: Default::Value("false"),
        sample: Sample::Default,
    },
    Key {
        name: "auto.leader.rebalance.enable",
        section: "Leadership and replication",
        meaning: "Move leadership back to each partition's preferred replica in the background.",
        default: Default::Value("true"),
        sample: Sample::Default,
    },
    Key {
        name: "leader.imbalance.check.interval.seconds",
        section: "Leadership and replication",
        meaning: "How often, in seconds, the controller checks leader balance.",
        default: Default::Value("300"),
        sample: Sample::Default,
    },
    Key {
        name: "leader.imbalance.per.broker.percentage",
        section: "Leadership and replication",
        meaning: "Share (0-100) of a broker's partitions led by a non-preferred replica that triggers a rebalance.",
        default: Default::Value("10"),
        sample: Sample::Default,
    },
    Key {
        name: "replica.lag.time.max.ms",
        section: "Leadership and replication",
        meaning: "A follower that has not caught up for this many milliseconds leaves the ISR.",
        default: Default::Value("30000"),
        sample: Sample::Default,
    },
    Key {
        name: "num.replica.fetchers",
        section: "Leadership and replication",
        meaning: "Follower fetchers (actors) per source broker.",
        default: Default::Value("1"),
        sample: Sample::Default,
    },
    Key {
        name: "replica.fetch.wait.max.ms",
        section: "Leadership and replication",
        meaning: "How long a follower's fetch waits at the leader for new data, in ms.",
        default: Default::Value("500"),
        sample: Sample::Default,
    },
    Key {
        name: "replica.fetch.min.bytes",
        section: "Leadership and replication",
        meaning: "Bytes a follower's fetch waits for.",
        default: Default::Value("1"),
        sample: Sample::Default,
    },
    Key {
        name: "replica.fetch.max.bytes",
        section: "Leadership and replication",
        meaning: "Bytes per partition a follower fetches at once (at least one batch).",
        default: Default::Value("1048576"),
        sample: Sample::Default,
    },
    Key {
        name: "replica.fetch.response.max.bytes",
        section: "Leadership and replication",
        meaning: "Bytes in one follower fetch answer.",
        default: Default::Value("10485760"),
        sample: Sample::Default,
    },
    Key {
        name: "replica.fetch.backoff.ms",
        section: "Leadership and replication",
        meaning: "How long a follower waits after a failed fetch, in ms.",
        default: Default::Value("1000"),
        sample: Sample::Default,
    },
    Key {
        name: "controlled.shutdown.enable",
        section: "Leadership and replication",
        meaning: "On SIGTERM, ask the controller to move this broker's leaderships away first, so producers see only a leader change.",
        default: Default::Value("true"),
        sample: Sample::Default,
    },
    Key {
        name: "controlled.shutdown.max.retries",
        section: "Leadership and replication",
        meaning: "Attempts at a controlled shutdown before shutting down anyway.",
        default: Default::Value("3"),
        sample: Sample::Default,
    },
    Key {
        name: "controlled.shutdown.retry.backoff.ms",
        section: "Leadership and replication",
        meaning: "Wait between those attempts, in ms.",
        default: Default::Value("5000"),
        sample: Sample::Default,
    },
    Key {
        name: "offsets.topic.num.partitions",
        section: "Consumer groups",
        meaning: "Partitions of the __consumer_offsets topic.",
        default: Default::Value("50"),
        sample: Sample::Default,
    },
    Key {
        name: "offsets.topic.replication.factor",
        section: "Consumer groups",
        meaning: "Replicas of __consumer_offsets. 3 needs three brokers: this sample sets 1, as Kafka's own single-broker sample does.",
        default: Default::Value("3"),
        sample: Sample::Set("1"),
    },
    Key {
        name: "offsets.retention.minutes",
        section: "Consumer groups",
        meaning: "How long, in minutes, the committed offsets of an empty group are kept (10080 is 7 days).",
        default: Default::Value("10080"),
        sample: Sample::Default,
    },
    Key {
        name: "group.initial.rebalance.delay.ms",
        section: "Consumer groups",
        meaning: "Milliseconds a new group waits for more members before its first rebalance.",
        default: Default::Value("3000"),
        sample: Sample::Default,
    },
    Key {
        name: "group.min.session.timeout.ms",
        section: "Consumer groups",
        meaning: "The shortest session.timeout.ms a consumer may ask for.",
        default: Default::Value("6000"),
        sample: Sample::Default,
    },
    Key {
        name: "group.max.session.timeout.ms",
        section: "Consumer groups",
        meaning: "The longest session.timeout.ms a consumer may ask for (a consumer silent that long leaves its group).",
        default: Default::Value("1800000"),
        sample: Sample::Default,
    },
    Key {
        name: "log.dirs",
        section: "Log basics",
        meaning: "Directories holding the partition logs, separated by commas.",
        default: Default::Value(crate::DEFAULT_LOG_DIR),
        sample: Sample::Set("/tmp/sluice-logs"),
    },
    Key {
        name: "log.dir",
        section: "Log basics",
        meaning: "The older single-directory key; log.dirs wins when both are set.",
        default: Default::Value(crate::DEFAULT_LOG_DIR),
        sample: Sample::Default,
    },
    Key {
        name: "message.max.bytes",
        section: "Log basics",
        meaning: "The largest record batch accepted, in bytes; a topic's max.message.bytes overrides it.",
        default: Default::Value("1048588"),
        sample: Sample::Default,
    },
    Key {
        name: "compression.type",
        section: "Log basics",
        meaning: "How batches are stored: producer (as the producer compressed them), uncompressed, gzip, snappy, lz4 or zstd.",
        default: Default::Value("producer"),
        sample: Sample::Default,
    },
    Key {
        name: "log.index.interval.bytes",
        section: "Log basics",
        meaning: "Bytes of batches between two offset-index entries.",
        default: Default::Value("4096"),
        sample: Sample::Default,
    },
    Key {
        name: "log.segment.bytes",
        section: "Segments",
        meaning: "A segment is rolled before it grows past this many bytes (61 to 2147483647).",
        default: Default::Value("1073741824"),
        sample: Sample::Default,
    },
    Key {
        name: "log.roll.hours",
        section: "Segments",
        meaning: "A segment is rolled once its records span this many hours.",
        default: Default::Value("168"),
        sample: Sample::Default,
    },
    Key {
        name: "log.roll.ms",
        section: "Segments",
        meaning: "The same in milliseconds; wins over log.roll.hours.",
        default: Default::Unset(""),
        sample: Sample::Default,
    },
    Key {
        name: "log.flush.interval.messages",
        section: "Flush",
        meaning: "Fsync after this many records; unset leaves flushing to the OS.",
        default: Default::Unset(""),
        sample: Sample::Example("10000"),
    },
    Key {
        name: "log.flush.interval.ms",
        section: "Flush",
        meaning: "Fsync data older than this many milliseconds; unset leaves flushing to the OS.",
        default: Default::Unset(""),
        sample: Sample::Example("1000"),
    },
    Key {
        name: "log.retention.hours",
        section: "Retention",
        meaning: "Delete segments older than this many hours; -1 keeps them forever.",
        default: Default::Value("168"),
        sample: Sample::Default,
    },
    Key {
        name: "log.retention.minutes",
        section: "Retention",
        meaning: "The same in minutes; wins over log.retention.hours.",
        default: Default::Unset(""),
        sample: Sample::Default,
    },
    Key {
        name: "log.retention.ms",
        section: "Retention",
        meaning: "The same in milliseconds; wins over log.retention.minutes and log.retention.hours.",
        default: Default::Unset(""),
        sample: Sample::Default,
    },
    Key {
        name: "log.retention.bytes",
        section: "Retention",
        meaning: "Delete a partition's oldest segments while it holds more bytes than this; -1: no limit.",
        default: Default::Value("-1"),
        sample: Sample::Default,
    },
    Key {
        name: "log.retention.check.interval.ms",
        section: "Retention",
        meaning: "How often, in milliseconds, retention runs.",
        default: Default::Value("300000"),
        sample: Sample::Default,
    },
    Key {
        name: "log.cleanup.policy",
        section: "Compaction",
        meaning: "What happens to old segments: delete (by retention), compact (keep each key's latest record) or compact,delete.",
        default: Default::Value("delete"),
        sample: Sample::Default,
    },
    Key {
        name: "log.cleaner.threads",
        section: "Compaction",
        meaning: "Compaction threads; 0 runs none, and compacted topics are then not compacted.",
        default: Default::Value("1"),
        sample: Sample::Default,
    },
    Key {
        name: "log.cleaner.delete.retention.ms",
        section: "Compaction",
        meaning: "How long, in milliseconds, a tombstone outlives the compaction that found it.",
        default: Default::Value("86400000"),
        sample: Sample::Default,
    },
    Key {
        name: "log.cleaner.min.cleanable.ratio",
        section: "Compaction",
        meaning: "Dirty share (0 to 1) of a log that makes it worth compacting.",
        default: Default::Value("0.5"),
        sample: Sample::Default,
    },
    Key {
        name: "log.cleaner.min.compaction.lag.ms",
        section: "Compaction",
        meaning: "Records younger than this many milliseconds are not compacted.",
        default: Default::Value("0"),
        sample: Sample::Default,
    },
];

/// The key named `name`.
/// How the TLS files may be given.
const STORES: &str =
    "required, unless ssl.keystore.location and ssl.truststore.location (type PEM) name them";

/// Kafka 3.x keys that mean nothing here: accepted, so an operator's existing
/// `server.properties` starts, and listed with the reason in one notice at start.
pub const NO_EFFECT: &[(&str, &str)] = &[
    ("ssl.keystore.password", "PEM stores are read without a password (the key must be unencrypted)"),
    ("ssl.truststore.password", "PEM stores are read without a password"),
    ("ssl.protocol", TLS_STACK),
    ("ssl.enabled.protocols", TLS_STACK),
    ("ssl.cipher.suites", TLS_STACK),
    ("ssl.keymanager.algorithm", TLS_STACK),
    ("ssl.trustmanager.algorithm", TLS_STACK),
    ("ssl.secure.random.implementation", TLS_STACK),
    ("ssl.provider", TLS_STACK),
    ("ssl.engine.factory.class", TLS_STACK),
    (
        "ssl.endpoint.identification.algorithm",
        "brokers verify each other by the cluster CA and the node certificate's role, not by host name",
    ),
    (
        "ssl.principal.mapping.rules",
        "a principal is always User:<the certificate's first DNS name, else its CN>",
    ),
    ("num.network.threads", THREADS),
    ("num.io.threads", THREADS),
    ("background.threads", THREADS),
    ("num.recovery.threads.per.data.dir", THREADS),
    ("num.replica.alter.log.dirs.threads", THREADS),
    ("queued.max.requests", THREADS),
    ("socket.send.buffer.bytes", "the kernel sizes TCP buffers; QUIC's windows are the transport's"),
    ("socket.receive.buffer.bytes", "the kernel sizes TCP buffers; QUIC's windows are the transport's"),
    (
        "replica.socket.receive.buffer.bytes",
        "the kernel sizes TCP buffers; QUIC's windows are the transport's",
    ),
    (
        "replica.socket.timeout.ms",
        "replica fetches time out with replica.fetch.wait.max.ms and the link's idle timeout",
    ),
    ("transaction.state.log.replication.factor", TRANSACTIONS),
    ("transaction.state.log.min.isr", TRANSACTIONS),
    ("transaction.state.log.num.partitions", TRANSACTIONS),
    ("transaction.state.log.segment.bytes", TRANSACTIONS),
    ("transactional.id.expiration.ms", TRANSACTIONS),
    ("transaction.max.timeout.ms", TRANSACTIONS),
    (
        "zookeeper.connection.timeout.ms",
        "the keeper client connects within zookeeper.session.timeout.ms and then retries with backoff",
    ),
    ("zookeeper.max.in.flight.requests", "the keeper client pipelines its requests without a cap"),
    ("log.flush.scheduler.interval.ms", CHECKPOINTS),
    ("log.flush.offset.checkpoint.interval.ms", CHECKPOINTS),
    ("log.flush.start.offset.checkpoint.interval.ms", CHECKPOINTS),
    ("replica.high.watermark.checkpoint.interval.ms", CHECKPOINTS),
    ("log.preallocate", "segments grow as they are written"),
    ("log.cleaner.enable", "the cleaner runs while log.cleaner.threads is above 0"),
    ("log.cleaner.dedupe.buffer.size", CLEANER),
    ("log.cleaner.io.buffer.size", CLEANER),
    ("log.cleaner.io.buffer.load.factor", CLEANER),
    ("log.cleaner.io.max.bytes.per.second", CLEANER),
    ("log.cleaner.backoff.ms", CLEANER),
    ("inter.broker.protocol.version", "brokers speak one protocol (sluice-interbroker/2)"),
    ("log.message.format.version", "records are always RecordBatch v2"),
    ("metric.reporters", METRICS),
    ("metrics.num.samples", METRICS),
    ("metrics.sample.window.ms", METRICS),
    ("metrics.recording.level", METRICS),
    ("offsets.topic.segment.bytes", "__consumer_offsets takes the broker's log.segment.bytes"),
    ("offsets.load.buffer.size", "a coordinator reads its partition of __consumer_offsets whole"),
    ("offsets.commit.timeout.ms", "a commit waits as an acks=all produce does, for request.timeout.ms"),
    ("offsets.retention.check.interval.ms", "expired offsets are looked for on the coordinators' own timer"),
    ("quota.window.num", QUOTAS),
    ("quota.window.size.seconds", QUOTAS),
    ("group.max.size", "groups have no size limit here"),
    ("sasl.enabled.mechanisms", SASL),
    ("sasl.jaas.config", SASL),
    ("sasl.kerberos.kinit.cmd", SASL),
    ("sasl.kerberos.min.time.before.relogin", SASL),
    ("sasl.kerberos.principal.to.local.rules", SASL),
    ("sasl.kerberos.service.name", SASL),
    ("sasl.kerberos.ticket.renew.jitter", SASL),
    ("sasl.kerberos.ticket.renew.window.factor", SASL),
    ("sasl.login.callback.handler.class", SASL),
    ("sasl.login.class", SASL),
    ("sasl.login.connect.timeout.ms", SASL),
    ("sasl.login.read.timeout.ms", SASL),
    ("sasl.login.refresh.buffer.seconds", SASL),
    ("sasl.login.refresh.min.period.seconds", SASL),
    ("sasl.login.refresh.window.factor", SASL),
    ("sasl.login.refresh.window.jitter", SASL),
    ("sasl.login.retry.backoff.max.ms", SASL),
    ("sasl.login.retry.backoff.ms", SASL),
    ("sasl.mechanism.inter.broker.protocol", SASL),
    ("sasl.oauthbearer.clock.skew.seconds", SASL),
    ("sasl.oauthbearer.expected.audience", SASL),
    ("sasl.oauthbearer.expected.issuer", SASL),
    ("sasl.oauthbearer.jwks.endpoint.refresh.ms", SASL),
    ("sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms", SASL),
    ("sasl.oauthbearer.jwks.endpoint.retry.backoff.ms", SASL),
    ("sasl.oauthbearer.jwks.endpoint.url", SASL),
    ("sasl.oauthbearer.scope.claim.name", SASL),
    ("sasl.oauthbearer.sub.claim.name", SASL),
    ("sasl.oauthbearer.token.endpoint.url", SASL),
    ("sasl.server.callback.handler.class", SASL),
    ("sasl.server.max.receive.size", SASL),
    ("sasl.client.callback.handler.class", SASL),
    ("connections.max.reauth.ms", SASL),
    ("delegation.token.expiry.check.interval.ms", DELEGATION_TOKENS),
    ("delegation.token.expiry.time.ms", DELEGATION_TOKENS),
    ("delegation.token.master.key", DELEGATION_TOKENS),
    ("delegation.token.max.lifetime.ms", DELEGATION_TOKENS),
    ("delegation.token.secret.key", DELEGATION_TOKENS),
    ("transaction.state.log.load.buffer.size", TRANSACTIONS),
    ("transaction.abort.timed.out.transaction.cleanup.interval.ms", TRANSACTIONS),
    ("transaction.remove.expired.transaction.cleanup.interval.ms", TRANSACTIONS),
    ("transaction.partition.verification.enable", TRANSACTIONS),
    ("replication.quota.window.num", QUOTAS),
    ("replication.quota.window.size.seconds", QUOTAS),
    ("alter.log.dirs.replication.quota.window.num", QUOTAS),
    ("alter.log.dirs.replication.quota.window.size.seconds", QUOTAS),
    ("controller.quota.window.num", QUOTAS),
    ("controller.quota.window.size.seconds", QUOTAS),
    ("client.quota.callback.class", QUOTAS),
    ("remote.log.storage.system.enable", TIERED),
    ("remote.log.storage.manager.class.name", TIERED),
    ("remote.log.storage.manager.class.path", TIERED),
    ("remote.log.storage.manager.impl.prefix", TIERED),
    ("remote.log.metadata.manager.class.name", TIERED),
    ("remote.log.metadata.manager.class.path", TIERED),
    ("remote.log.metadata.manager.impl.prefix", TIERED),
    ("remote.log.metadata.manager.listener.name", TIERED),
    ("remote.log.metadata.custom.metadata.max.bytes", TIERED),
    ("remote.log.index.file.cache.total.size.bytes", TIERED),
    ("remote.log.manager.task.interval.ms", TIERED),
    ("remote.log.manager.thread.pool.size", TIERED),
    ("remote.log.reader.threads", TIERED),
    ("remote.log.reader.max.pending.tasks", TIERED),
    ("log.local.retention.bytes", TIERED),
    ("log.local.retention.ms", TIERED),
    ("remote.fetch.max.wait.ms", TIERED),
    ("remote.log.manager.copier.thread.pool.size", TIERED),
    ("remote.log.manager.copy.max.bytes.per.second", TIERED),
    ("remote.log.manager.copy.quota.window.num", TIERED),
    ("remote.log.manager.copy.quota.window.size.seconds", TIERED),
    ("remote.log.manager.expiration.thread.pool.size", TIERED),
    ("remote.log.manager.fetch.max.bytes.per.second", TIERED),
    ("remote.log.manager.fetch.quota.window.num", TIERED),
    ("remote.log.manager.fetch.quota.window.size.seconds", TIERED),
    ("listener.security.protocol.map", LISTENER_NAMES),
    ("inter.broker.listener.name", LISTENER_NAMES),
    ("security.inter.broker.protocol", LISTENER_NAMES),
    ("control.plane.listener.name", LISTENER_NAMES),
    ("request.timeout.ms", LINKS),
    ("controller.socket.timeout.ms", LINKS),
    ("socket.connection.setup.timeout.ms", LINKS),
    ("socket.connection.setup.timeout.max.ms", LINKS),
    ("max.connections", CONNECTION_LIMITS),
    ("max.connection.creation.rate", CONNECTION_LIMITS),
    ("max.connections.per.ip.overrides", CONNECTION_LIMITS),
    ("socket.listen.backlog.size", "the Kafka listeners use the runtime's accept backlog (1024)"),
    ("queued.max.request.bytes", "each Kafka connection has at most 64 requests in flight; there is no shared request queue"),
    ("connection.failed.authentication.delay.ms", "a failed TLS handshake closes the connection at once"),
    ("zookeeper.clientCnxnSocket", KEEPER_LINK),
    ("zookeeper.ssl.client.enable", KEEPER_LINK),
    ("zookeeper.ssl.keystore.location", KEEPER_LINK),
    ("zookeeper.ssl.keystore.password", KEEPER_LINK),
    ("zookeeper.ssl.keystore.type", KEEPER_LINK),
    ("zookeeper.ssl.truststore.location", KEEPER_LINK),
    ("zookeeper.ssl.truststore.password", KEEPER_LINK),
    ("zookeeper.ssl.truststore.type", KEEPER_LINK),
    ("zookeeper.ssl.cipher.suites", KEEPER_LINK),
    ("zookeeper.ssl.crl.enable", KEEPER_LINK),
    ("zookeeper.ssl.enabled.protocols", KEEPER_LINK),
    ("zookeeper.ssl.endpoint.identification.algorithm", KEEPER_LINK),
    ("zookeeper.ssl.ocsp.enable", KEEPER_LINK),
    ("zookeeper.ssl.protocol", KEEPER_LINK),
    ("security.providers", TLS_STACK),
    ("ssl.allow.dn.changes", CERT_RELOAD),
    ("ssl.allow.san.changes", CERT_RELOAD),
    ("principal.builder.class", PRINCIPAL),
    ("authorizer.class.name", "ACLs are always checked, by the built-in authorizer (AclAuthorizer's rules, ACLs in the keeper)"),
    ("alter.config.policy.class.name", PLUGINS),
    ("create.topic.policy.class.name", PLUGINS),
    ("alter.config.policy.kraft.compatibility.enable", PLUGINS),
    ("replica.selector.class", "consumers fetch from the leader: there is no preferred read replica"),
    ("kafka.metrics.reporters", METRICS),
    ("kafka.metrics.polling.interval.secs", METRICS),
    ("auto.include.jmx.reporter", METRICS),
    ("telemetry.max.bytes", "client telemetry (PushTelemetry) is not served"),
    ("password.encoder.secret", PASSWORD_ENCODER),
    ("password.encoder.old.secret", PASSWORD_ENCODER),
    ("password.encoder.cipher.algorithm", PASSWORD_ENCODER),
    ("password.encoder.iterations", PASSWORD_ENCODER),
    ("password.encoder.key.length", PASSWORD_ENCODER),
    ("password.encoder.keyfactory.algorithm", PASSWORD_ENCODER),
    ("broker.id.generation.enable", BROKER_ID),
    ("reserved.broker.max.id", BROKER_ID),
    ("fetch.purgatory.purge.interval.requests", PURGATORY),
    ("producer.purgatory.purge.interval.requests", PURGATORY),
    ("delete.records.purgatory.purge.interval.requests", PURGATORY),
    ("log.message.timestamp.type", TIMESTAMPS),
    ("log.message.timestamp.difference.max.ms", TIMESTAMPS),
    ("log.message.timestamp.after.max.ms", TIMESTAMPS),
    ("log.message.timestamp.before.max.ms", TIMESTAMPS),
    ("log.message.downconversion.enable", "records are always RecordBatch v2 (Produce v3+, Fetch v4+): nothing is down-converted"),
    ("log.roll.jitter.hours", "a segment rolls at log.roll.ms exactly, without jitter"),
    ("log.roll.jitter.ms", "a segment rolls at log.roll.ms exactly, without jitter"),
    ("log.segment.delete.delay.ms", "a deleted segment's files are removed at once"),
    ("log.index.size.max.bytes", "a segment's indexes are kept in memory and grow with it; segments roll on log.segment.bytes and log.roll.ms"),
    ("log.cleaner.max.compaction.lag.ms", "compaction is driven by log.cleaner.min.cleanable.ratio and log.cleaner.min.compaction.lag.ms; there is no maximum lag"),
    ("compression.gzip.level", "the broker compresses at each codec's default level"),
    ("compression.lz4.level", "the broker compresses at each codec's default level"),
    ("compression.zstd.level", "the broker compresses at each codec's default level"),
    ("fetch.max.bytes", "a fetch answer is bounded by the request's own max_bytes"),
    ("offset.metadata.max.bytes", "the coordinator keeps at most 4096 bytes of offset metadata, Kafka's default"),
    ("max.incremental.fetch.session.cache.slots", "the broker keeps at most 1000 fetch sessions, Kafka's default"),
    ("offsets.commit.required.acks", "an offset commit is written as an acks=all produce (Kafka's default, -1)"),
    ("offsets.topic.compression.codec", "__consumer_offsets batches are written uncompressed (Kafka's default, 0)"),
    ("producer.id.expiration.ms", "idempotent producers' state is kept with the log and never expires by time (at most 5 batches a producer)"),
    ("zookeeper.metadata.migration.enable", "there is no KRaft to migrate to: the cluster's metadata stays in the keeper"),
    ("max.request.partition.size.limit", PARTITION_CAP),
    ("process.roles", KRAFT),
    ("node.id", KRAFT),
    ("controller.listener.names", KRAFT),
    ("controller.quorum.voters", KRAFT),
    ("controller.quorum.election.timeout.ms", KRAFT),
    ("controller.quorum.election.backoff.max.ms", KRAFT),
    ("controller.quorum.fetch.timeout.ms", KRAFT),
    ("controller.quorum.append.linger.ms", KRAFT),
    ("controller.quorum.request.timeout.ms", KRAFT),
    ("controller.quorum.retry.backoff.ms", KRAFT),
    ("metadata.log.dir", KRAFT),
    ("metadata.log.max.record.bytes.between.snapshots", KRAFT),
    ("metadata.log.max.snapshot.interval.ms", KRAFT),
    ("metadata.log.segment.bytes", KRAFT),
    ("metadata.log.segment.ms", KRAFT),
    ("metadata.max.retention.bytes", KRAFT),
    ("metadata.max.retention.ms", KRAFT),
    ("metadata.max.idle.interval.ms", KRAFT),
    ("broker.heartbeat.interval.ms", KRAFT),
    ("broker.session.timeout.ms", KRAFT),
    ("initial.broker.registration.timeout.ms", KRAFT),
    ("early.start.listeners", KRAFT),
    ("sasl.mechanism.controller.protocol", KRAFT),
    ("eligible.leader.replicas.enable", KRAFT),
    ("controller.quorum.bootstrap.servers", KRAFT),
    ("log.dir.failure.timeout.ms", KRAFT),
    ("group.consumer.assignors", NEW_GROUPS),
    ("group.consumer.heartbeat.interval.ms", NEW_GROUPS),
    ("group.consumer.max.heartbeat.interval.ms", NEW_GROUPS),
    ("group.consumer.max.session.timeout.ms", NEW_GROUPS),
    ("group.consumer.max.size", NEW_GROUPS),
    ("group.consumer.min.heartbeat.interval.ms", NEW_GROUPS),
    ("group.consumer.min.session.timeout.ms", NEW_GROUPS),
    ("group.consumer.session.timeout.ms", NEW_GROUPS),
    ("group.coordinator.rebalance.protocols", NEW_GROUPS),
    ("group.coordinator.threads", NEW_GROUPS),
    ("group.coordinator.append.linger.ms", NEW_GROUPS),
    ("group.share.delivery.count.limit", NEW_GROUPS),
    ("group.share.heartbeat.interval.ms", NEW_GROUPS),
    ("group.share.max.groups", NEW_GROUPS),
    ("group.share.max.heartbeat.interval.ms", NEW_GROUPS),
    ("group.share.max.record.lock.duration.ms", NEW_GROUPS),
    ("group.share.max.session.timeout.ms", NEW_GROUPS),
    ("group.share.max.size", NEW_GROUPS),
    ("group.share.min.heartbeat.interval.ms", NEW_GROUPS),
    ("group.share.min.record.lock.duration.ms", NEW_GROUPS),
    ("group.share.min.session.timeout.ms", NEW_GROUPS),
    ("group.share.partition.max.record.locks", NEW_GROUPS),
    ("group.share.record.lock.duration.ms", NEW_GROUPS),
    ("group.share.session.timeout.ms", NEW_GROUPS),
];

const BROKER_ID: &str = "broker.id is required: ids are not generated";
const CERT_RELOAD: &str = "certificates are read at start and not reconfigured while the broker runs";
const CONNECTION_LIMITS: &str =
    "the Kafka listeners limit connections per client address only (max.connections.per.ip)";
const DELEGATION_TOKENS: &str = "delegation tokens are not built (they authenticate over SASL)";
const KEEPER_LINK: &str = "the broker reaches the keeper over mutually authenticated QUIC with its own TLS files (tls.*, or ssl.keystore/ssl.truststore)";
const KRAFT: &str = "ZooKeeper mode only: the cluster's metadata lives in the keeper, and there is no KRaft controller quorum";
const LINKS: &str = "calls between brokers run over their QUIC links, which reconnect with backoff and time out on the link's idle timeout";
const LISTENER_NAMES: &str = "a listener's name is its protocol (quic://, SSL://, PLAINTEXT://), and brokers and the controller talk over quic://";
const NEW_GROUPS: &str = "only the classic group protocol (JoinGroup/SyncGroup) is served: KIP-848 consumer groups and share groups are not built";
const PARTITION_CAP: &str = "requests are not capped by their number of partitions";
const PASSWORD_ENCODER: &str =
    "dynamic configs hold no passwords here (TLS material is read from files), so nothing is encoded";
const PLUGINS: &str = "Java plug-in classes are not loaded; requests are checked by the broker's own rules";
const PRINCIPAL: &str = "a principal is always User:<the certificate's first DNS name, else its CN>";
const PURGATORY: &str =
    "a waiting request is a future woken by its partition; there is no purgatory to purge";
const SASL: &str = "SASL is not built: a Kafka client is who its TLS client certificate says (SSL://), or User:ANONYMOUS (PLAINTEXT://)";
const TIERED: &str = "tiered storage is not built: every segment stays in log.dirs";
const TIMESTAMPS: &str =
    "batches keep the producer's CreateTime: timestamps are neither checked nor rewritten at append";
const TLS_STACK: &str = "TLS is rustls's: TLS 1.3 and 1.2 with its default cipher suites";
const THREADS: &str = "the runtimes size themselves to the machine's cores";
const TRANSACTIONS: &str = "transactions are not built";
const CHECKPOINTS: &str = "checkpoints are written on the log manager's tick (at most every 60 s)";
const CLEANER: &str = "the cleaner sizes its own buffers and is woken by the log manager's tick";
const METRICS: &str = "metrics are the Prometheus endpoint (metrics.port)";
const QUOTAS: &str = "quotas are not built";

/// Why `name` has no effect here, if it is one of [`NO_EFFECT`].
pub fn no_effect(name: &str) -> Option<&'static str> {
    NO_EFFECT.iter().find(|(k, _)| *k == name).map(|(_, why)| *why)
}

pub fn key(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}

/// The default value of `name`, as written in the file.
///
/// # Panics
/// If `name` is not in [`KEYS`] with a [`Default::Value`]: a mistake in this crate, which
/// the tests parsing an empty configuration catch.
pub(crate) fn default_value(name: &str) -> &'static str {
    match key(name).map(|k| k.default) {
        Some(Default::Value(v)) => v,
        other => panic!("{name} has no default value in the key table (found {other:?})"),
    }
}

/// The comment lines opening the sample file.
const HEADER: &str = "\
# Sluice broker configuration: Kafka's server.properties keys, with the defaults of
# ZooKeeper-mode Kafka 3.x. This sample runs one local broker next to a local keeper.
#
# Lines starting with # are comments; a commented-out key shows its default or an example.
# Unknown keys, empty values and bad values stop the broker with the file, line and reason.
# Relative paths are taken from the broker's working directory.
# This file is generated from broker/config/src/keys.rs.
";

/// Width the sample's comments are wrapped to.
const WIDTH: usize = 92;

/// The sample `server.properties`: every key in its section, with its meaning and default.
pub fn sample() -> String {
    let mut out = String::from(HEADER);
    let mut section = "";
    for k in KEYS {
        if k.section != section {
            section = k.section;
            out.push_str(&format!(
                "\n############################# {section} #############################\n"
            ));
        }
        let default = match k.default {
            Default::Required => "Required.".to_string(),
            Default::Unset(what) => format!("Default: none{what}."),
            Default::Value(v) => format!("Default: {v}"),
            Default::Derived(how) => format!("Default: {how}."),
        };
        out.push('\n');
        // "Default: X" stays on one line.
        wrap(&format!("{} {}", k.meaning, default.replacen("Default: ", "Default:\u{1}", 1)), &mut out);
        let line = match (k.sample, k.default) {
            (Sample::Set(v), _) => format!("{}={v}", k.name),
            (Sample::Example(v), _) => format!("#{}={v}", k.name),
            (Sample::Default, Default::Value(v)) => format!("#{}={v}", k.name),
            (Sample::Default, _) => format!("#{}=", k.name),
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// Appends `text` as `# ` comment lines of at most [`WIDTH`] characters.
fn wrap(text: &str, out: &mut String) {
    let mut line = String::from("#");
    for word in text.split_whitespace() {
        if line.len() > 1 && line.len() + 1 + word.len() > WIDTH {
            out.push_str(&line);
            out.push('\n');
            line = String::from("#");
        }
        line.push(' ');
        line.push_str(&word.replace('\u{1}', " "));
    }
    out.push_str(&line);
    out.push('\n');
}
