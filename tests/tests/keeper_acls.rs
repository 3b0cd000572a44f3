//! Znode ACLs on the keeper, as users meet them: real `sluice keeper` and `sluice broker`
//! processes, real QUIC + mTLS, client certificates from the same CA for `alice`, `bob` and
//! `root`; the SDK and `sluice keeper-shell`. Reference: ZooKeeper Programmer's Guide, "ACL
//! Permissions" and "Builtin ACL Schemes".

use std::process::Command;
use std::time::Duration;

use sluice_certs::{CertSpec, Role};
use sluice_client::keeper::{KeeperClient, KeeperClientError, KeeperClientOptions};
use sluice_keeper_core::acl::perms;
use sluice_keeper_core::{Acl, CreateMode, ErrorCode, Op};
use sluice_net::{ClientTls, TlsFiles, TlsIdentity};
use sluice_tests::{sluice_bin, tls_args, BrokerCluster, KeeperProcess, TestPki};

const P: CreateMode = CreateMode::Persistent;

async fn connect(pki: &TestPki, addr: &str, name: &str) -> KeeperClient {
    let opts = KeeperClientOptions { session_timeout: Duration::from_secs(10), ..Default::default() };
    KeeperClient::connect(addr, &pki.client(name), opts).await.expect("connect").0
}

fn code(r: Result<impl std::fmt::Debug, KeeperClientError>) -> ErrorCode {
    match r {
        Err(KeeperClientError::Keeper(e)) => e.code(),
        other => panic!("expected a keeper error, got {other:?}"),
    }
}

/// One `sluice keeper-shell` command as `files`' principal: (success, stdout, stderr).
fn shell(connect: &str, files: &TlsFiles, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(sluice_bin())
        .args(["keeper-shell", connect])
        .args(tls_args(files))
        .args(args)
        .output()
        .expect("keeper-shell");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_znode_is_held_to_its_acl_across_certificates_restarts_and_multis() {
    let pki = TestPki::new("cluster");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut keeper = KeeperProcess::start_with(
        &pki,
        dir.path(),
        200,
        "X509AuthenticationProvider.superUser=root\nsnapCount=10\n",
    );
    let alice = connect(&pki, &keeper.addr, "alice").await;
    let bob = connect(&pki, &keeper.addr, "bob").await;

    // --- alice's node: only alice may touch it; bob sees that it exists and nothing else
    let mine = vec![Acl::new(perms::ALL, "x509", "alice")];
    alice.create_with_acl("/private", b"secret", P, mine.clone()).await.expect("alice creates /private");
    alice.create("/private/kid", b"", P).await.expect("alice creates below it");
    assert_eq!(alice.get_data("/private", false).await.expect("alice reads").0, b"secret");
    assert_eq!(code(bob.get_data("/private", false).await), ErrorCode::NoAuth);
    assert_eq!(code(bob.children("/private", false).await), ErrorCode::NoAuth);
    assert_eq!(code(bob.get_acl("/private").await), ErrorCode::NoAuth);
    assert_eq!(code(bob.set_data("/private", b"x", -1).await), ErrorCode::NoAuth);
    assert_eq!(code(bob.delete("/private/kid", -1).await), ErrorCode::NoAuth);
    assert_eq!(code(bob.create("/private/bobs", b"", P).await), ErrorCode::NoAuth);
    assert!(bob.exists("/private", false).await.expect("exists is not checked").is_some());
    match bob.get_data("/private", false).await {
        Err(KeeperClientError::Keeper(e)) => {
            let text = e.to_string();
            assert!(text.contains("/private") && text.contains("x509:bob"), "names the node and who: {text}");
        }
        other => panic!("bob read alice's node: {other:?}"),
    }

    // Each refusal is an audit line naming who was refused what.
    let log = std::fs::read_to_string(&keeper.log).expect("keeper log");
    let audit: Vec<&str> = log.lines().filter(|l| l.contains("sluice::authorizer")).collect();
    assert!(audit.len() >= 6, "{log}");
    assert!(audit.iter().all(|l| l.contains("x509:bob") && l.contains("/private")), "{audit:#?}");

    // --- setACL checks the ACL version; a stale one fails and changes nothing
    let (acl, stat) = alice.get_acl("/private").await.expect("getAcl");
    assert_eq!((acl, stat.aversion), (mine.clone(), 0));
    let shared = vec![Acl::new(perms::ALL, "x509", "alice"), Acl::read_only()];
    assert_eq!(code(alice.set_acl("/private", shared.clone(), 3).await), ErrorCode::BadVersion);
    assert_eq!(code(bob.set_acl("/private", shared.clone(), 0).await), ErrorCode::NoAuth);
    assert_eq!(code(bob.get_data("/private", false).await), ErrorCode::NoAuth, "still alice's only");
    let stat = alice.set_acl("/private", shared.clone(), 0).await.expect("setAcl at version 0");
    assert_eq!(stat.aversion, 1);
    assert_eq!(bob.get_data("/private", false).await.expect("now world-readable").0, b"secret");
    assert_eq!(code(bob.set_data("/private", b"x", -1).await), ErrorCode::NoAuth, "read is not write");

    // --- a multi with one forbidden op applies nothing
    let multi = bob
        .multi(vec![
            Op::Create { path: "/bobs".into(), data: vec![], mode: P },
            Op::SetData { path: "/private".into(), data: b"x".to_vec(), version: -1 },
        ])
        .await;
    assert_eq!(code(multi), ErrorCode::NoAuth);
    assert!(bob.exists("/bobs", false).await.expect("exists").is_none(), "the allowed create was not kept");

    // --- `auth` stands for the creator's identities; bad ACLs are InvalidACL
    bob.create_with_acl("/bobs", b"", P, vec![Acl::new(perms::ALL, "auth", "")]).await.expect("auth ACL");
    assert_eq!(bob.get_acl("/bobs").await.expect("getAcl").0, [Acl::new(perms::ALL, "x509", "bob")]);
    let invalid = bob.create_with_acl("/bad", b"", P, vec![Acl::new(perms::ALL, "world", "everyone")]).await;
    assert_eq!(code(invalid), ErrorCode::InvalidAcl);
    let invalid = bob.create_with_acl("/bad", b"", P, vec![]).await;
    assert_eq!(code(invalid), ErrorCode::InvalidAcl);

    // --- digest identities come from addauth, and only for the connection's client
    bob.create_with_acl("/dig", b"d", P, vec![Acl::new(perms::ALL, "auth", "")]).await.expect("create");
    let carol = connect(&pki, &keeper.addr, "carol").await;
    let ids = carol.add_auth("digest", b"carol:pw").await.expect("addauth");
    let digest = ids.iter().find(|i| i.scheme == "digest").expect("a digest id").id.clone();
    assert!(digest.starts_with("carol:"), "{digest}");
    carol.create_with_acl("/carols", b"c", P, vec![Acl::new(perms::ALL, "auth", "")]).await.expect("create");
    let (acl, _) = carol.get_acl("/carols").await.expect("getAcl");
    assert!(acl.contains(&Acl::new(perms::ALL, "digest", &digest)), "{acl:?}");
    assert!(acl.contains(&Acl::new(perms::ALL, "x509", "carol")), "{acl:?}");
    assert_eq!(code(bob.get_data("/carols", false).await), ErrorCode::NoAuth);
    bob.add_auth("digest", b"carol:pw").await.expect("bob learns carol's password");
    assert_eq!(bob.get_data("/carols", false).await.expect("the digest matches").0, b"c");
    assert_eq!(code(alice.add_auth("sasl", b"x").await), ErrorCode::AuthFailed);

    // --- the ACLs survive a restart (log replay and snapshot); a super user passes them
    keeper.restart();
    let bob = connect(&pki, &keeper.addr, "bob").await;
    assert_eq!(code(bob.set_data("/private", b"x", -1).await), ErrorCode::NoAuth);
    assert_eq!(bob.get_acl("/private").await.expect("world may read the ACL").0, shared);
    let root = connect(&pki, &keeper.addr, "root").await;
    root.delete("/private/kid", -1).await.expect("the super user deletes alice's child");
    root.set_data("/private", b"root was here", -1).await.expect("and writes her node");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_cannot_change_the_brokers_znodes_but_reads_them() {
    let cluster = BrokerCluster::start(3, "");
    cluster.wait_until_every_broker_sees_all(Duration::from_secs(30));
    let connect = cluster.zookeeper_connect();
    let alice = cluster.pki.issue(CertSpec::new("alice", Role::Client));

    // --- reads are open, as Kafka's zookeeper.set.acl leaves them
    let (ok, out, err) = shell(&connect, &alice, &["get", "/brokers/ids/1"]);
    assert!(ok && out.contains("\"port\""), "{out}{err}");
    let (ok, out, err) = shell(&connect, &alice, &["get", "/controller"]);
    assert!(ok && out.contains("brokerid"), "{out}{err}");
    let (ok, out, err) = shell(&connect, &alice, &["getAcl", "/brokers/ids/1"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("'x509,'broker-1\n: cdrwa") && out.contains("'world,'anyone\n: r"),
        "zkCli's format: {out}"
    );

    // --- changes are refused with NoAuth, naming the node and the principal
    for args in [
        &["delete", "/brokers/ids/1"][..],
        &["set", "/controller", "{}"],
        &["delete", "/controller"],
        &["set", "/controller_epoch", "99"],
        &["create", "/brokers/topics/evil", "{}"],
        &["setAcl", "/brokers/ids/1", "world:anyone:cdrwa"],
    ] {
        let (ok, out, err) = shell(&connect, &alice, args);
        assert!(!ok, "{args:?} was allowed: {out}");
        assert!(err.contains("not authorized") && err.contains("x509:alice"), "{args:?}: {err}");
    }

    // --- nothing changed: the brokers still hold their registrations and the controller
    let admin = cluster.client_files();
    let (ok, out, err) = shell(&connect, &admin, &["ls", "/brokers/ids"]);
    assert!(ok && out.trim() == "[1, 2, 3]", "{out}{err}");
    let k = KeeperClient::connect(
        &connect,
        &ClientTls::new(TlsIdentity::load(&alice).expect("identity")),
        KeeperClientOptions::default(),
    )
    .await
    .expect("connect")
    .0;
    let (data, _) = k.get_data("/controller_epoch", false).await.expect("epoch");
    assert_ne!(data, b"99");

    // --- and they keep working: a topic created now gets leaders on the brokers
    let ran = sluice_tests::run_sluice(
        &cluster.bootstrap(),
        &admin,
        &["topics", "--create", "--topic", "after", "--partitions", "3", "--replication-factor", "3"],
        "",
    );
    ran.ok("a topic after the refusals");
    let (ok, out, err) = shell(&connect, &alice, &["getAcl", "/brokers/topics/after"]);
    assert!(ok && out.contains("'world,'anyone\n: r"), "{out}{err}");

    // --- the shell's own ACL commands: create with an ACL, setAcl with a version, addauth.
    // (Not under the chroot: the brokers made /sluice theirs; the keeper's root is open.)
    let (ok, _, err) = shell(&connect, &alice, &["create", "/mine", "x"]);
    assert!(!ok && err.contains("not authorized"), "the chroot is the brokers': {err}");
    let root = &cluster.keepers[0].addr;
    let (ok, out, err) = shell(root, &alice, &["create", "/mine", "x", "x509:alice:cdrwa,world:anyone:r"]);
    assert!(ok, "{out}{err}");
    let (ok, _, err) = shell(root, &alice, &["setAcl", "-v", "5", "/mine", "x509:alice:cdrwa"]);
    assert!(!ok && err.contains("version"), "a stale version: {err}");
    let (ok, out, err) = shell(root, &alice, &["setAcl", "-s", "-v", "0", "/mine", "x509:alice:cdrwa"]);
    assert!(ok && out.contains("aclVersion = 1"), "{out}{err}");
    let (ok, _, err) = shell(root, &admin, &["get", "/mine"]);
    assert!(!ok && err.contains("x509:admin"), "no longer world-readable: {err}");
    let (ok, _, err) = shell(root, &admin, &["addauth", "digest", "nopassword"]);
    assert!(!ok && err.contains("user:password"), "{err}");
}
