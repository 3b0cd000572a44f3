//! Authorization on the brokers (Kafka's ACLs), as users meet it: real `sluice` processes
//! with a second client certificate from the same CA, against three real brokers and a
//! keeper; `sluice acls` grants; Kafka's own clients (confluent-kafka) on the SSL listener
//! are held to the same ACLs and administer them with Kafka's CreateAcls/DescribeAcls/
//! DeleteAcls.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sluice_certs::{CertSpec, Role};
use sluice_client::broker::proto::acl::{
    AccessEntry, AclBinding, AclFilter, Operation, PatternType, Permission, ResourcePattern, ResourceType,
};
use sluice_client::broker::proto::{BrokerProtocol, DescribeAcls};
use sluice_client::broker::{Admin, ClientConfig};
use sluice_net::{Client, ClientOptions, ClientTls, TlsFiles, TlsIdentity};
use sluice_tests::{poll_until, BrokerCluster, JsonLines, Ran};

/// One partition on all three brokers; a quick offsets topic and first rebalance.
const EXTRA: &str = "offsets.topic.replication.factor=3\noffsets.topic.num.partitions=3\n\
                     group.initial.rebalance.delay.ms=0\ndefault.replication.factor=3\n";

fn sluice(cluster: &BrokerCluster, files: &TlsFiles, args: &[&str], stdin: &str) -> Ran {
    sluice_tests::run_sluice(&cluster.bootstrap(), files, args, stdin)
}

fn client_cert(cluster: &BrokerCluster, name: &str) -> TlsFiles {
    cluster.pki.issue(CertSpec::new(name, Role::Client))
}

/// Produces `line` to `topic` as `files`' principal.
fn produce(cluster: &BrokerCluster, files: &TlsFiles, topic: &str, line: &str) -> Ran {
    sluice(cluster, files, &["console-producer", "--topic", topic, "--sync"], &format!("{line}\n"))
}

/// Reads one record of `topic` in `group` from the beginning (or the group's offset).
fn consume_one(cluster: &BrokerCluster, files: &TlsFiles, topic: &str, group: &str) -> Ran {
    sluice(
        cluster,
        files,
        &[
            "console-consumer",
            "--topic",
            topic,
            "--group",
            group,
            "--from-beginning",
            "--max-messages",
            "1",
            "--timeout-ms",
            "20000",
        ],
        "",
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

/// How long after `Admin::create_acls` returned each broker's copy showed `binding` (to
/// the 20 ms the polling allows).
fn propagation(cluster: &BrokerCluster, admin_files: &TlsFiles, binding: AclBinding) -> Vec<Duration> {
    runtime().block_on(async {
        let config =
            ClientConfig::new(cluster.brokers.iter().map(|b| b.addr.clone())).tls_files(admin_files.clone());
        let admin = Admin::new(config).expect("admin");
        let tls = ClientTls::new(TlsIdentity::load(admin_files).expect("identity"));
        let net: Client<BrokerProtocol> = Client::new(&tls, ClientOptions::default()).expect("client");
        let filter = AclFilter {
            resource_type: Some(binding.pattern.resource_type),
            name: Some(binding.pattern.name.clone()),
            ..AclFilter::any()
        };
        let results = admin.create_acls(vec![binding.clone()]).await.expect("create_acls");
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        let written = Instant::now();
        let mut took = Vec::new();
        for b in &cluster.brokers {
            let seen = sluice_tests::wait_for(Duration::from_secs(10), || async {
                matches!(net.call(&b.addr, DescribeAcls { filter: filter.clone() }).await, Ok(Ok(list)) if list.contains(&binding))
            })
            .await;
            assert!(seen, "broker {} never saw {binding:?}", b.id);
            // (To the 20 ms of wait_for's polling.)
            took.push(written.elapsed());
        }
        took
    })
}

#[test]
fn a_certificate_without_acls_is_refused_and_grants_open_exactly_what_they_name() {
    let mut cluster = BrokerCluster::start(3, EXTRA);
    let admin = cluster.client_files();
    for t in ["t", "t-1", "u"] {
        sluice(&cluster, &admin, &["topics", "--create", "--topic", t, "--partitions", "1"], "").ok("create");
        produce(&cluster, &admin, t, &format!("hello {t}")).ok("admin produce");
    }
    let alice = client_cert(&cluster, "alice");

    // No ACLs: nothing, and each refusal names the principal, the operation and the resource.
    // (A producer asks for the topic's metadata first: Describe is what it lacks first.)
    produce(&cluster, &alice, "t", "x")
        .refused("alice's produce", "User:alice is not authorized to Describe topic t");
    consume_one(&cluster, &alice, "t", "g").refused("alice's consume", "User:alice is not authorized to");
    let listed = sluice(&cluster, &alice, &["topics", "--list"], "");
    assert!(
        listed.ok && !listed.stdout.lines().any(|l| l == "t" || l == "u"),
        "alice sees no topic in metadata: {listed:?}"
    );
    assert!(sluice(&cluster, &admin, &["topics", "--list"], "").ok("list").lines().any(|l| l == "t"));
    sluice(&cluster, &alice, &["topics", "--create", "--topic", "v", "--partitions", "1"], "")
        .refused("alice's create", "User:alice is not authorized to Create topic v");
    sluice(&cluster, &alice, &["topics", "--delete", "--topic", "u"], "")
        .refused("alice's delete", "User:alice is not authorized to Delete topic u");
    sluice(&cluster, &alice, &["acls", "--list"], "")
        .refused("alice's acl listing", "Describe on the cluster");

    // Consumer grant: t in g, and nothing else.
    let added = sluice(
        &cluster,
        &admin,
        &["acls", "--add", "--allow-principal", "User:alice", "--consumer", "--topic", "t", "--group", "g"],
        "",
    );
    let out = added.ok("acls --add --consumer");
    for want in [
        "Adding ACLs for resource `ResourcePattern(resourceType=TOPIC, name=t, patternType=LITERAL)`: ",
        "(principal=User:alice, host=*, operation=READ, permissionType=ALLOW)",
        "(principal=User:alice, host=*, operation=DESCRIBE, permissionType=ALLOW)",
        "Current ACLs for resource `ResourcePattern(resourceType=GROUP, name=g, patternType=LITERAL)`: ",
    ] {
        assert!(out.contains(want), "acls --add printed no {want:?}:\n{out}");
    }
    let read = consume_one(&cluster, &alice, "t", "g");
    assert_eq!(read.ok("alice consumes t in g").trim(), "hello t");
    consume_one(&cluster, &alice, "u", "g").refused("alice reads u", "topic u");
    consume_one(&cluster, &alice, "t", "g2").refused("alice joins g2", "User:alice is not authorized to");
    // (An idempotent producer, the default, first needs a producer id: IdempotentWrite on
    // the cluster, or Write on some topic.)
    produce(&cluster, &alice, "t", "x").refused(
        "alice's produce after the consumer grant",
        "User:alice is not authorized to IdempotentWrite",
    );

    // Producer grant (idempotent): alice produces to t.
    sluice(
        &cluster,
        &admin,
        &["acls", "--add", "--allow-principal", "User:alice", "--producer", "--idempotent", "--topic", "t"],
        "",
    )
    .ok("acls --add --producer");
    sluice(
        &cluster,
        &alice,
        &["console-producer", "--topic", "t", "--sync", "--producer-property", "enable.idempotence=true"],
        "from alice\n",
    )
    .ok("alice's idempotent produce");

    // PREFIXED covers t-* only; a Deny wins over the Allow.
    let bob = client_cert(&cluster, "bob");
    sluice(
        &cluster,
        &admin,
        &[
            "acls",
            "--add",
            "--allow-principal",
            "User:bob",
            "--producer",
            "--topic",
            "t-",
            "--resource-pattern-type",
            "PREFIXED",
        ],
        "",
    )
    .ok("acls --add prefixed");
    produce(&cluster, &bob, "t-1", "bob").ok("bob produces to t-1");
    produce(&cluster, &bob, "t", "bob")
        .refused("bob produces to t", "User:bob is not authorized to Describe topic t");
    sluice(
        &cluster,
        &admin,
        &["acls", "--add", "--deny-principal", "User:bob", "--operation", "Write", "--topic", "t-1"],
        "",
    )
    .ok("acls --add deny");
    produce(&cluster, &bob, "t-1", "bob")
        .refused("bob's denied produce", "User:bob is not authorized to Write topic t-1");

    let listed = sluice(
        &cluster,
        &admin,
        &["acls", "--list", "--topic", "t-1", "--resource-pattern-type", "MATCH"],
        "",
    );
    let out = listed.ok("acls --list MATCH");
    assert!(
        out.contains("name=t-, patternType=PREFIXED") && out.contains("operation=WRITE, permissionType=DENY"),
        "MATCH lists the prefixed and the literal ACLs that apply to t-1:\n{out}"
    );

    // Every broker's copy follows a change within a second.
    let grant = AclBinding {
        pattern: ResourcePattern {
            resource_type: ResourceType::Topic,
            name: "w".into(),
            pattern_type: PatternType::Literal,
        },
        entry: AccessEntry {
            principal: "User:carol".into(),
            host: "*".into(),
            operation: Operation::Read,
            permission: Permission::Allow,
        },
    };
    let took = propagation(&cluster, &admin, grant);
    eprintln!("ACL change seen by brokers 1, 2, 3 after {took:?}");
    assert!(
        took.iter().all(|d| *d < Duration::from_secs(1)),
        "an ACL change reached a broker after more than a second: {took:?}"
    );

    // A full restart (SIGKILL every broker): the ACLs are in the keeper and load again.
    for b in &mut cluster.brokers {
        b.kill();
    }
    for b in &mut cluster.brokers {
        b.restart();
    }
    cluster.wait_until_every_broker_sees_all(Duration::from_secs(30));
    poll_until(Duration::from_secs(30), || {
        let r = produce(&cluster, &alice, "t", "after the restart");
        if r.ok {
            Ok(())
        } else {
            Err(r.stderr)
        }
    })
    .expect("alice's grant survives the restart");
    produce(&cluster, &bob, "t-1", "bob").refused("bob's deny survives the restart", "Write topic t-1");

    // Removing the consumer grant takes alice's reads away again.
    sluice(
        &cluster,
        &admin,
        &[
            "acls",
            "--remove",
            "--force",
            "--allow-principal",
            "User:alice",
            "--operation",
            "Read",
            "--topic",
            "t",
        ],
        "",
    )
    .ok("acls --remove");
    poll_until(Duration::from_secs(5), || {
        let r = consume_one(&cluster, &alice, "t", "g");
        if r.ok {
            Err("alice still reads t".to_string())
        } else {
            Ok(())
        }
    })
    .expect("alice's read is gone");
}

fn python() -> PathBuf {
    sluice_tests::python_with(
        "confluent_kafka",
        "confluent-kafka, Kafka's Python client",
        "pip install confluent-kafka",
    )
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python/kafka_acls.py")
}

#[test]
fn kafka_clients_are_held_to_the_acls_and_administer_them_through_the_door() {
    let python = python();
    let cluster = BrokerCluster::start(1, "listeners=quic://127.0.0.1:0,SSL://127.0.0.1:0\noffsets.topic.replication.factor=1\noffsets.topic.num.partitions=3\ngroup.initial.rebalance.delay.ms=0\n");
    let admin = cluster.client_files();
    let alice = client_cert(&cluster, "alice");
    let ssl = cluster.brokers[0].kafka_addr("SSL").expect("SSL listener").to_string();
    let mut command = Command::new(python);
    command.arg(script()).args([
        "--bootstrap",
        &ssl,
        "--ca",
        &admin.ca.display().to_string(),
        "--admin-cert",
        &admin.cert.display().to_string(),
        "--admin-key",
        &admin.key.display().to_string(),
        "--user-cert",
        &alice.cert.display().to_string(),
        "--user-key",
        &alice.key.display().to_string(),
    ]);
    let run = JsonLines::spawn(&mut command, "kafka_acls.py".into());
    let (lines, ok) = run.finish(Duration::from_secs(100));
    let step = |name: &str| {
        lines
            .iter()
            .find(|l| l["step"] == name)
            .unwrap_or_else(|| panic!("no step {name:?} in {lines:?}\n{}", cluster.log_tails(30)))
            .clone()
    };
    assert!(ok, "kafka_acls.py failed: {lines:?}\n{}", cluster.log_tails(30));
    // Before any grant: the topic is invisible and a produce is refused with Kafka's code.
    assert_eq!(step("hidden")["visible"], false);
    assert_eq!(step("refused_produce")["code"], 29, "TOPIC_AUTHORIZATION_FAILED");
    assert_eq!(step("refused_admin")["code"], 31, "CLUSTER_AUTHORIZATION_FAILED for CreateAcls by alice");
    // CreateAcls and DescribeAcls through the door.
    let described = step("described");
    assert_eq!(described["count"], 3, "{described}");
    // Granted: visible, produces idempotently, and still may not join a group.
    assert_eq!(step("visible")["visible"], true);
    assert_eq!(step("produced")["delivered"], 10);
    assert_eq!(step("refused_group")["code"], 30, "GROUP_AUTHORIZATION_FAILED");
    // DeleteAcls takes the grant away.
    assert_eq!(step("deleted")["count"], 3);
    assert_eq!(step("refused_again")["code"], 29);
}
