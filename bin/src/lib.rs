//! The `sluice` command line: every Sluice service and tool behind one binary, named after
//! the Kafka and ZooKeeper scripts people already know.
//!
//! This crate parses arguments, sets up logging and calls into the library crates; it holds
//! no service logic of its own.

pub mod acls_cmd;
pub mod broker_cmd;
pub mod certs_cmd;
pub mod client_args;
pub mod cluster_cmd;
pub mod configs_cmd;
pub mod console;
pub mod consumer_perf;
pub mod credentials;
pub mod daemon;
pub mod dev_cmd;
pub mod groups_cmd;
pub mod keeper_cmd;
pub mod keeper_perf;
pub mod logging;
pub mod metrics;
pub mod perf;
pub mod producer_perf;
pub mod reassign_cmd;
pub mod records_cmd;
pub mod topics_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Sluice: a distributed commit log with its own coordination service, over mutually
/// authenticated QUIC.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, propagate_version = true)]
#[command(
    after_help = "Logging: RUST_LOG sets the filter (default: info), e.g. RUST_LOG=sluice_net=debug.\n\
Traces: OTEL_EXPORTER_OTLP_ENDPOINT (e.g. http://localhost:4318) exports spans over OTLP/HTTP; \
OTEL_SERVICE_NAME names the service (default: sluice-<command>)."
)]
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
    /// A local cluster in one command: `dev up` makes certificates and configs, starts
    /// keepers and brokers on free ports and prints how to connect; `dev down` stops them;
    /// `dev status` shows them.
    #[command(subcommand)]
    Dev(dev_cmd::DevCommand),
    /// Make the cluster CA and node / client certificates (like a small `openssl ca`).
    #[command(subcommand)]
    Certs(certs_cmd::CertsCommand),
    /// Run, stop or query a keeper server (the coordination service).
    #[command(subcommand)]
    Keeper(keeper_cmd::KeeperCommand),
    /// Run or stop a broker (the commit log): kafka-server-start.sh / kafka-server-stop.sh.
    #[command(subcommand)]
    Broker(broker_cmd::BrokerCommand),
    /// Create, delete, list and describe topics: kafka-topics.sh.
    ///
    /// Exactly one of --create, --delete, --describe, --list. Prints `Created topic T.`,
    /// `Topic T is marked for deletion.`, one name per line, or per topic
    /// `Topic: T<TAB>PartitionCount: N<TAB>ReplicationFactor: N<TAB>Configs: k=v,...` and a
    /// line per partition `<TAB>Topic: T<TAB>Partition: P<TAB>Leader: L<TAB>Replicas: 1,2<TAB>Isr: 1,2`
    /// (`Leader: none` without a leader; `<TAB>Offline: 3` appended when replicas are
    /// offline). --topic is an exact name (not a regular expression as in Kafka). A broker's
    /// refusal is printed with the topic and the exit status is non-zero.
    Topics(topics_cmd::TopicsArgs),
    /// List, describe and delete consumer groups, and reset their offsets:
    /// kafka-consumer-groups.sh.
    ///
    /// Exactly one of --list, --describe, --delete, --reset-offsets. --describe prints, per
    /// group, Kafka's padded table `GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG
    /// CONSUMER-ID HOST CLIENT-ID`, one row per partition the group has a committed offset for
    /// or a member is assigned (`-` for what is unknown or absent); --members and --state
    /// print the members and the group's state instead. `Consumer group 'G' has no active
    /// members.` goes to stderr, as Kafka's does. --reset-offsets only prints the new offsets
    /// (`GROUP TOPIC PARTITION NEW-OFFSET`) unless --execute, and refuses groups with active
    /// members, as Kafka does. An unknown group, a refused reset or a failed deletion is
    /// reported on stderr and the exit status is non-zero.
    ConsumerGroups(groups_cmd::GroupsArgs),
    /// Delete the records below an offset in partitions: kafka-delete-records.sh.
    ///
    /// Reads Kafka's offset JSON file, `{"partitions": [{"topic": "t", "partition": 0,
    /// "offset": 3}], "version": 1}` (offset -1: everything committed), asks each partition's
    /// leader to move its log start there, and prints Kafka's lines: `Executing records
    /// delete operation`, `Records delete operation completed:`, then per partition
    /// `partition: t-0<TAB>low_watermark: 3` or `partition: t-0<TAB>error: ...`. A failed
    /// partition makes the exit status non-zero. Consumers positioned below the new start
    /// reset by their auto.offset.reset.
    DeleteRecords(records_cmd::DeleteRecordsArgs),
    /// Print partitions' offsets: kafka-get-offsets.sh.
    ///
    /// One `topic:partition:offset` line per partition, sorted: the latest offset (--time -1,
    /// the default: the end a consumer reads to), the earliest (-2: the log start), or the
    /// first offset whose record's timestamp is at least --time ms (empty when there is none).
    /// --topic is an exact name (Kafka's is a regular expression); without it, every topic.
    GetOffsets(records_cmd::GetOffsetsArgs),
    /// Print a partition's segment and index files as Kafka's DumpLogSegments does:
    /// kafka-dump-log.sh.
    ///
    /// --files a.log,b.index,c.timeindex (a broker's log dir holds them under
    /// <topic>-<partition>/). A segment prints `Log starting offset: N` and one `baseOffset:
    /// ... lastOffset: ... count: ... position: ... CreateTime: ... size: ... compresscodec: ...
    /// crc: ... isvalid: true` line per batch; --deep-iteration adds a `| offset: ...` line per
    /// record, --print-data-log its key and payload. An index prints `offset: O position: P`,
    /// a time index `timestamp: T offset: O`. A batch that does not parse ends its file's
    /// listing with `Found an invalid batch at position P ...`. No broker is needed.
    DumpLog(records_cmd::DumpLogArgs),
    /// Elect partitions' leaders: kafka-leader-election.sh.
    ///
    /// --election-type preferred (the first replica leads again) or unclean (a partition
    /// without a live leader gets its first live replica, in sync or not: what it lacks is
    /// lost), with --topic T --partition P, --all-topic-partitions or --path-to-json-file F
    /// (Kafka's {"partitions": [{"topic": "t", "partition": 0}]}). Prints Kafka's lines:
    /// `Successfully completed leader election (PREFERRED) for partitions t-0, ...`, `Valid
    /// replica already elected for partitions ...` and one `Error completing leader election
    /// (PREFERRED) for partition: t-0: ...` per failure (the exit status is then non-zero).
    LeaderElection(cluster_cmd::LeaderElectionArgs),
    /// Describe and change topics' and the cluster's default configs while it runs: kafka-configs.sh.
    ///
    /// --describe --entity-type topics [--entity-name T] prints `Dynamic configs for topic T
    /// are:` and a `  k=v sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:k=v}` line per
    /// override; --alter --entity-type topics --entity-name T --add-config k=v,k2=[a,b]
    /// --delete-config k3 prints `Completed updating config for topic T.` Every broker
    /// applies the change without a restart (retention, segments, cleanup policy,
    /// min.insync.replicas, ...). Needs AlterConfigs / DescribeConfigs on the topic.
    /// --entity-type brokers --entity-default does the same for the cluster-wide dynamic
    /// defaults (log.retention.ms, log.segment.bytes, log.roll.ms, log.cleanup.policy,
    /// min.insync.replicas, compression.type, message.max.bytes,
    /// unclean.leader.election.enable, log.flush.*, the replication throttle's rates, ...),
    /// under every topic's own overrides; --entity-type brokers --entity-name ID sets them for
    /// one live broker only (`Dynamic configs for broker ID are:`, `Completed updating config
    /// for broker ID.`); needs AlterConfigs / DescribeConfigs on the cluster.
    Configs(configs_cmd::ConfigsArgs),
    /// Add, remove and list the brokers' ACLs: kafka-acls.sh.
    ///
    /// A principal is User:<name>, the name being a certificate's first DNS name (else its
    /// CN); User:* is everyone. With no ACL on a resource only super.users may use it
    /// (allow.everyone.if.no.acl.found=false). Examples:
    ///   sluice acls --add --allow-principal User:alice --consumer --topic t --group g
    ///   sluice acls --add --allow-principal User:bob --producer --topic logs- --resource-pattern-type PREFIXED
    ///   sluice acls --add --deny-principal User:bob --operation Write --topic logs-secret
    ///   sluice acls --list --topic t
    ///   sluice acls --remove --force --allow-principal User:alice --operation Read --topic t
    /// Prints Kafka's lines: `Adding ACLs for resource `ResourcePattern(...)`: ` with one
    /// `(principal=..., host=..., operation=..., permissionType=...)` line per ACL, then
    /// `Current ACLs for resource ...`. Changing ACLs needs Alter on the cluster, listing
    /// them Describe (or super.users).
    Acls(acls_cmd::AclsArgs),
    /// Describe the brokers' log directories: kafka-log-dirs.sh --describe.
    ///
    /// Prints `Querying brokers for log directories information`, `Received log directory
    /// information from brokers 1,2,3` and Kafka's JSON: per broker its log dirs, per dir its
    /// partitions with their size in bytes.
    LogDirs(cluster_cmd::LogDirsArgs),
    /// Move partitions' replicas between brokers: kafka-reassign-partitions.sh.
    ///
    /// --generate --topics-to-move-json-file T --broker-list 2,3,4 prints the current
    /// assignment and a proposed one ({"version":1,"partitions":[{"topic":"t","partition":0,
    /// "replicas":[2,3,4],"log_dirs":["any","any","any"]}]}); --execute
    /// --reassignment-json-file F [--throttle B] starts the moves and prints the current
    /// assignment to roll back with; --verify --reassignment-json-file F says `Reassignment of
    /// partition t-0 is completed.` or `... is still in progress.` per partition and, once all
    /// are complete, removes the throttle; --list shows the moves in progress. A move adds the
    /// new replicas, waits until they are in sync, moves leadership onto the target if it
    /// must, then drops the old replicas, whose data is deleted. --throttle limits the moving
    /// replicas' replication to B bytes per second.
    ReassignPartitions(reassign_cmd::ReassignArgs),
    /// Send each line of stdin as a record: kafka-console-producer.sh.
    ///
    /// With --property parse.key=true a line is KEY<key.separator>VALUE (a tab by default).
    /// At end of input it flushes and waits for every record; each record that failed is
    /// reported on stderr with its number (= its line) and the broker's error, and then the
    /// exit status is non-zero. Ctrl-C stops reading and still waits for what was sent (a
    /// second Ctrl-C stops waiting).
    ConsoleProducer(console::ConsoleProducerArgs),
    /// Print a topic's records on stdout: kafka-console-consumer.sh.
    ///
    /// Reads every partition of the topic (or --partition), from the end unless
    /// --from-beginning or --offset; with --group G, as a member of consumer group G, the
    /// partitions the group gives it, from the group's committed offsets. Prints the value of
    /// each record; --property print.* adds fields in Kafka's order and format:
    /// `CreateTime:1700000000000<TAB>Partition:0<TAB>Offset:5<TAB>key<TAB>value`. Keys and
    /// values are printed as UTF-8 (invalid bytes replaced), `null` when absent. Stops at
    /// --max-messages, after --timeout-ms without a record, on Ctrl-C / SIGTERM, or when
    /// stdout is closed (a group member then commits what it printed and leaves the group),
    /// then prints `Processed a total of N messages` on stderr.
    ConsoleConsumer(console::ConsoleConsumerArgs),
    /// Measure producing: kafka-producer-perf-test.sh (Kafka's output lines).
    ///
    /// Sends --num-records values of --record-size random uppercase letters (no key), paced
    /// to --throughput records/s. A record's latency runs from `send` to its
    /// acknowledgement, measured in microseconds; every latency is kept up to 4 million
    /// records (16 MB), beyond that every k-th, as Kafka samples, for the percentiles.
    ProducerPerfTest(producer_perf::ProducerPerfArgs),
    /// Measure consuming: kafka-consumer-perf-test.sh (Kafka's header and values line).
    ///
    /// Reads every partition of the topic (or, with --group, subscribes as --threads members
    /// of that group), from the beginning unless --from-latest, until --messages records
    /// were read or none arrived for --timeout ms. Times are printed in UTC as yyyy-MM-dd
    /// HH:mm:ss:SSS; rebalance.time.ms is the time until the group's members had their
    /// first assignments (0 without --group). On a terminal, stderr shows the progress,
    /// refreshed in place.
    ConsumerPerfTest(consumer_perf::ConsumerPerfArgs),
    /// A zkCli-like shell for a keeper: one command from the arguments, else from stdin.
    ///
    /// Commands: ls [-s] [-w] [-R] PATH, get [-s] [-w] PATH, stat [-w] PATH, addWatch [-m
    /// PERSISTENT|PERSISTENT_RECURSIVE] PATH, create [-e] [-s] [-c] [-t TTL_MS] PATH [DATA],
    /// set [-v VERSION] PATH DATA, delete [-v VERSION] PATH, deleteall PATH, sync PATH,
    /// getEphemerals [PATH], getAllChildrenNumber PATH, removewatches PATH [-c|-d|-a], help,
    /// quit. -s adds the node's stat, -w sets a watch; reading from stdin, each event is
    /// printed as zkCli prints it: `WATCHER::` then `WatchedEvent state:SyncConnected
    /// type:NodeDataChanged path:/a`.
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
    use clap::{CommandFactory, FromArgMatches};
    let matches = Cli::command().get_matches_from(daemon::normalize_args(std::env::args_os()));
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    // The subcommand names the service in traces: sluice-broker, sluice-console-producer.
    let telemetry = logging::init(cli.log_format, matches.subcommand_name().unwrap_or("cli"));
    let result = match cli.command {
        Command::Dev(c) => dev_cmd::run(c),
        Command::Certs(c) => certs_cmd::run(c),
        Command::Keeper(c) => keeper_cmd::run(c),
        Command::Broker(c) => broker_cmd::run(c),
        Command::Topics(a) => topics_cmd::run(a),
        Command::ConsumerGroups(a) => groups_cmd::run(a),
        Command::DeleteRecords(a) => records_cmd::run(a),
        Command::GetOffsets(a) => records_cmd::run_get_offsets(a),
        Command::LeaderElection(a) => cluster_cmd::run_leader_election(a),
        Command::LogDirs(a) => cluster_cmd::run_log_dirs(a),
        Command::ReassignPartitions(a) => reassign_cmd::run(a),
        Command::Acls(a) => acls_cmd::run(a),
        Command::Configs(a) => configs_cmd::run(a),
        Command::DumpLog(a) => records_cmd::run_dump_log(a),
        Command::ConsoleProducer(a) => console::run_producer(a),
        Command::ConsoleConsumer(a) => console::run_consumer(a),
        Command::ProducerPerfTest(a) => producer_perf::run(a),
        Command::ConsumerPerfTest(a) => consumer_perf::run(a),
        Command::KeeperShell(a) => keeper_cmd::shell(a),
        Command::KeeperPerfTest(a) => keeper_perf::run(a),
        Command::TransportPerfTest(a) => perf::run_test(a),
        Command::TransportPerfServer(a) => perf::run_server(a),
    };
    // Spans still buffered go out before the process ends.
    telemetry.shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
