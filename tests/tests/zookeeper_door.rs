//! The keeper's ZooKeeper door, as ZooKeeper's own clients meet it: ZooKeeper's Java CLI
//! (`ZooKeeperMain`, zkCli.sh's class) and kazoo over TLS with the cluster's certificates,
//! against real keeper processes (a 3-server ensemble) and real brokers; four-letter words;
//! refused certificates and malformed frames on raw TLS connections.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use sluice_certs::{CertSpec, Role};
use sluice_net::{ClientTls, TlsFiles, TlsIdentity};
use sluice_tests::{peer, poll_until, BrokerCluster, JsonLines, KeeperEnsemble, KeeperProcess, TestPki};
use sluice_zookeeper_proto::jute::{Reader, Writer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The door on every keeper (TLS, a free TCP port), with every four-letter word allowed.
const DOOR: &str = "secureClientPort=0\n4lw.commands.whitelist=*\n";

fn ensemble(dir: &Path, pki: &TestPki) -> KeeperEnsemble {
    KeeperEnsemble::start(pki, dir, 3, 500, DOOR)
}

fn door_hosts(keepers: &[KeeperProcess]) -> String {
    keepers
        .iter()
        .map(|k| k.zookeeper_tls.clone().expect("secureClientPort is listening"))
        .collect::<Vec<_>>()
        .join(",")
}

/// `python3` with kazoo, or a panic naming the install command.
fn python() -> PathBuf {
    sluice_tests::python_with("kazoo", "kazoo, ZooKeeper's Python client", "pip install kazoo")
}

fn kazoo(command: &str, hosts: &str, client: &TlsFiles) -> JsonLines {
    let name = client.cert.file_stem().and_then(|s| s.to_str()).expect("cert name").to_string();
    let dir = client.cert.parent().expect("cert dir").display().to_string();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/zookeeper_clients.py");
    let mut cmd = Command::new(python());
    cmd.arg(script).arg(command).args(["--hosts", hosts, "--tls", &format!("{dir}:{name}")]);
    JsonLines::spawn(&mut cmd, format!("zookeeper_clients.py {command}"))
}

#[test]
fn kazoo_reads_writes_watches_transacts_and_locks_through_the_door() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::new("zk-kazoo");
    let keepers = ensemble(dir.path(), &pki);
    let client = pki.issue(CertSpec::new("kazoo", Role::Client));
    let (lines, ok) =
        kazoo("basics", &door_hosts(&keepers.members), &client).finish(Duration::from_secs(150));
    let step = |name: &str| -> &Value {
        lines.iter().find(|l| l["step"] == name).unwrap_or_else(|| panic!("no step {name}: {lines:?}"))
    };
    assert!(ok, "the kazoo script failed: {lines:?}");
    assert_eq!(step("create-get")["data"], "v0");
    assert_eq!(step("create-get")["version"], 0);
    let v = step("versions");
    assert_eq!(v["stale_set"], "BadVersionError");
    assert_eq!(v["exists_again"], "NodeExistsError");
    assert_eq!(v["missing_get"], "NoNodeError");
    assert_eq!(v["missing_exists"], Value::Null);
    assert_eq!(v["stale_delete"], "BadVersionError");
    assert_eq!(v["data"], "v1");
    assert_eq!(step("deleted")["exists"], false);
    // The parent's cversion was 2 (a create and a delete), as ZooKeeper numbers them.
    assert_eq!(
        step("sequential")["paths"],
        serde_json::json!(["/kazoo/job-0000000002", "/kazoo/job-0000000003", "/kazoo/job-0000000004"])
    );
    assert_eq!(step("sequential")["owner_is_session"], true);
    assert_eq!(step("watches")["data"], serde_json::json!(["d0", "d1", "d2", "d3"]));
    assert_eq!(step("watches")["children"], serde_json::json!([[], ["a"], ["a", "b"]]));
    let t = step("transaction");
    assert_eq!(t["ok"], serde_json::json!([true, "/kazoo/txn-a", "ZnodeStat"]));
    assert_eq!(t["failed"], serde_json::json!(["RolledBackError", "NoNodeError", "RuntimeInconsistency"]));
    assert_eq!(t["b_exists"], false, "a failed transaction leaves nothing behind");
    assert_eq!(t["data"], "txn");
    assert_eq!(step("acl")["acls"], serde_json::json!([[31, "world", "anyone"]]));
    let lock = step("lock");
    assert_eq!(lock["errors"], serde_json::json!([]));
    assert_eq!(lock["most_holders"], 1, "two contenders held the lock at once");
    assert_eq!(lock["counter"], 15, "every increment under the lock counted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_lock_recipe_and_kazoos_lock_exclude_each_other_on_one_path() {
    use sluice_client::keeper::{KeeperClient, KeeperClientOptions, Lock};
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::new("zk-lock");
    let keepers = ensemble(dir.path(), &pki);
    let hosts = door_hosts(&keepers.members);
    let kazoo_files = pki.issue(CertSpec::new("kazoo", Role::Client));
    let opts = KeeperClientOptions { session_timeout: Duration::from_secs(10), ..Default::default() };
    let (client, events) =
        KeeperClient::connect(&keepers.connect_string(), &pki.client("rust"), opts).await.expect("connect");
    let mut lock = Lock::new(client.clone(), events, "/locks/shared").with_identifier("rust");
    // --- kazoo holds it: the Rust lock waits, times out and leaves the queue
    let mut holder = kazoo("hold-lock", &hosts, &kazoo_files);
    assert_eq!(holder.expect_step("held", Duration::from_secs(60))["held"], true);
    assert!(!lock.acquire(Duration::from_secs(1)).await.expect("acquire"), "kazoo holds it");
    let left = client.children("/locks/shared", false).await.expect("children");
    assert_eq!(left.len(), 1, "only kazoo's node stays after the timeout: {left:?}");
    assert!(left[0].contains("__lock__"), "{left:?}");
    // As kazoo's Election reads it: the holder's identifier first.
    assert_eq!(lock.contenders().await.expect("contenders"), ["kazoo"]);
    // --- kazoo releases: the Rust lock gets it, and kazoo cannot
    holder.say("release");
    holder.expect_step("released", Duration::from_secs(30));
    assert!(lock.acquire(Duration::from_secs(10)).await.expect("acquire"), "free now");
    assert_eq!(lock.contenders().await.expect("contenders"), ["rust"], "the Rust contender leads");
    let (lines, ok) = kazoo("try-lock", &hosts, &kazoo_files).finish(Duration::from_secs(60));
    assert!(ok, "{lines:?}");
    assert_eq!(
        lines.iter().find(|l| l["step"] == "tried").map(|l| l["acquired"].clone()),
        Some(Value::Bool(false))
    );
    assert_eq!(
        lines.iter().find(|l| l["step"] == "contenders").map(|l| l["contenders"].clone()),
        Some(serde_json::json!(["rust"])),
        "kazoo's Election reads the Rust contender's identifier"
    );
    // --- the Rust lock releases: kazoo gets it
    lock.release().await.expect("release");
    let (lines, ok) = kazoo("try-lock", &hosts, &kazoo_files).finish(Duration::from_secs(60));
    assert!(ok, "{lines:?}");
    assert_eq!(
        lines.iter().find(|l| l["step"] == "tried").map(|l| l["acquired"].clone()),
        Some(Value::Bool(true))
    );
}

#[test]
fn a_kazoo_session_its_ephemeral_and_its_watches_survive_the_loss_of_its_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::new("zk-failover");
    let mut keepers = ensemble(dir.path(), &pki);
    let client = pki.issue(CertSpec::new("kazoo", Role::Client));
    let mut py = kazoo("failover", &door_hosts(&keepers.members), &client);
    let connected = py.expect_step("connected", Duration::from_secs(60));
    let port = connected["port"].as_u64().expect("port");
    let victim = keepers
        .members
        .iter()
        .position(|k| k.zookeeper_tls.as_deref().is_some_and(|a| a.ends_with(&format!(":{port}"))))
        .unwrap_or_else(|| panic!("kazoo is connected to port {port}, which is no keeper's door"));
    keepers.members[victim].kill();
    py.say("killed");
    let s = py.expect_step("survived", Duration::from_secs(120));
    assert_eq!(s["suspended"], true, "kazoo noticed its server go: {s}");
    assert_eq!(s["reconnected"], true, "{s}");
    assert_eq!(s["same_session"], true, "{s}");
    assert_eq!(s["lost_session"], false, "{s}");
    assert_ne!(s["new_port"].as_u64(), Some(port), "it moved to another server: {s}");
    assert_eq!(s["ephemeral_exists"], true, "{s}");
    assert_eq!(s["data"], serde_json::json!(["before", "after"]), "{s}");
    assert!(
        s["children"]
            .as_array()
            .and_then(|c| c.last())
            .is_some_and(|c| c.as_array().is_some_and(|c| c.contains(&"child".into()))),
        "the child watch fired after the move: {s}"
    );
    let (_, ok) = py.finish(Duration::from_secs(30));
    assert!(ok, "the kazoo script failed after the move");
}

/// ZooKeeper's Java CLI over TLS, as `dependencies.md` sets it up (zkCli.sh's class).
fn zkcli(server: &str, files: &TlsFiles, dir: &Path, args: &[&str]) -> String {
    let java = peer("java", "apt-get install zookeeper (it brings a Java runtime and ZooKeeper's CLI)");
    let jars = Path::new("/usr/share/java");
    assert!(
        jars.join("zookeeper.jar").exists(),
        "ZooKeeper's Java CLI is missing: apt-get install zookeeper (.ci/run does)"
    );
    let mut classpath: Vec<String> =
        ["zookeeper.jar", "zookeeper-jute.jar", "slf4j-api.jar", "commons-cli.jar"]
            .iter()
            .map(|j| jars.join(j).display().to_string())
            .collect();
    for e in std::fs::read_dir(jars).expect("/usr/share/java").flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        // The netty jars without a version in their name (Debian links them).
        if name.starts_with("netty-") && !name.chars().any(|c| c.is_ascii_digit()) {
            classpath.push(e.path().display().to_string());
        }
    }
    let keystore = dir.join("zkcli-keystore.pem");
    let pem = format!(
        "{}{}",
        std::fs::read_to_string(&files.key).expect("key"),
        std::fs::read_to_string(&files.cert).expect("cert")
    );
    std::fs::write(&keystore, pem).expect("keystore");
    let out = Command::new(java)
        .arg("-cp")
        .arg(classpath.join(":"))
        .arg("-Dzookeeper.client.secure=true")
        .arg("-Dzookeeper.clientCnxnSocket=org.apache.zookeeper.ClientCnxnSocketNetty")
        .arg(format!("-Dzookeeper.ssl.keyStore.location={}", keystore.display()))
        .arg("-Dzookeeper.ssl.keyStore.type=PEM")
        .arg(format!("-Dzookeeper.ssl.trustStore.location={}", files.ca.display()))
        .arg("-Dzookeeper.ssl.trustStore.type=PEM")
        .args(["org.apache.zookeeper.ZooKeeperMain", "-server", server])
        .args(args)
        .output()
        .expect("run ZooKeeperMain");
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn zookeepers_cli_lists_the_registered_brokers_and_drops_a_killed_one() {
    let mut cluster = BrokerCluster::start_on(3, 3, "", DOOR);
    cluster.wait_until_every_broker_sees_all(Duration::from_secs(30));
    let files = cluster.client_files();
    // The brokers' zookeeper.connect ends in the chroot /sluice, as an operator's would.
    let server = format!("{}/sluice", cluster.keepers[1].zookeeper_tls.clone().expect("secureClientPort"));
    let ls = |cluster: &BrokerCluster| zkcli(&server, &files, cluster.dir.path(), &["ls", "/brokers/ids"]);
    let listed = |out: &str| out.lines().map(str::trim).find(|l| l.starts_with('[')).map(str::to_string);
    let out = ls(&cluster);
    assert_eq!(listed(&out).as_deref(), Some("[1, 2, 3]"), "zkCli printed:\n{out}");
    // The broker dies: once its keeper session expires, its registration goes.
    cluster.brokers[2].kill();
    let gone = poll_until(Duration::from_secs(40), || {
        let out = ls(&cluster);
        match listed(&out).as_deref() {
            Some("[1, 2]") => Ok(()),
            other => Err(format!("zkCli still prints {other:?}")),
        }
    });
    gone.unwrap_or_else(|e| panic!("{e}\n{}", cluster.log_tails(20)));
}

/// A TLS connection to a door, or `None` when it is refused during or right after the
/// handshake.
async fn tls(
    addr: &str,
    client: ClientTls,
) -> Option<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let config = sluice_net::tls::tcp_client_config(&client).expect("tls config");
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from("127.0.0.1".to_string()).expect("name");
    connector.connect(name, tcp).await.ok()
}

type Stream = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

/// The next frame, `None` when the server closed the connection (or 10 s passed).
async fn frame(s: &mut Stream) -> Option<Vec<u8>> {
    let read = async {
        let size = s.read_i32().await.ok()?;
        let mut buf = vec![0; usize::try_from(size).ok()?];
        s.read_exact(&mut buf).await.ok()?;
        Some(buf)
    };
    tokio::time::timeout(Duration::from_secs(10), read).await.ok().flatten()
}

/// Sends a connect request for a new session; its id, or `None` if refused.
async fn session(s: &mut Stream) -> Option<i64> {
    let mut w = Writer::framed();
    w.int(0).long(0).int(10_000).long(0).buffer(&[0; 16]).boolean(false);
    s.write_all(&w.frame()).await.ok()?;
    let answer = frame(s).await?;
    let mut r = Reader::new(&answer);
    r.int("protocolVersion").ok()?;
    r.int("timeOut").ok()?;
    r.long("sessionId").ok().filter(|id| *id != 0)
}

/// Sends request `op` (its body written by `body`); the reply header's zxid and error code.
async fn call(s: &mut Stream, xid: i32, op: i32, body: impl FnOnce(&mut Writer)) -> Option<(i64, i32)> {
    let mut w = Writer::framed();
    w.int(xid).int(op);
    body(&mut w);
    s.write_all(&w.frame()).await.ok()?;
    let answer = frame(s).await?;
    let mut r = Reader::new(&answer);
    (r.int("xid").ok()? == xid).then_some(())?;
    Some((r.long("zxid").ok()?, r.int("err").ok()?))
}

/// A getData of `/`: the reply header's error code.
async fn get_root(s: &mut Stream, xid: i32) -> Option<i32> {
    let answer = call(s, xid, sluice_zookeeper_proto::op::GET_DATA, |w| {
        w.string("/").boolean(false);
    });
    answer.await.map(|(_, err)| err)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_letter_words_refused_certificates_and_bad_frames_leave_other_clients_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::new("zk-raw");
    let keeper = KeeperProcess::start_with(
        &pki,
        dir.path(),
        500,
        "secureClientPort=0\n4lw.commands.whitelist=ruok,mntr,srvr\njute.maxbuffer=4096\n",
    );
    let addr = keeper.zookeeper_tls.clone().expect("secureClientPort");
    let files = pki.issue(CertSpec::new("raw", Role::Client));
    let me = || ClientTls::new(TlsIdentity::load(&files).expect("identity"));
    let word =
        |w: &str| sluice_tests::zookeeper_word(&addr, &files, w).unwrap_or_else(|e| panic!("{w}: {e}"));

    // --- four-letter words over TLS, in ZooKeeper's formats; others refused by the whitelist
    assert_eq!(word("ruok"), "imok");
    let mntr = word("mntr");
    let stats: std::collections::HashMap<&str, &str> =
        mntr.lines().filter_map(|l| l.split_once('\t')).collect();
    assert_eq!(stats.len(), mntr.lines().count(), "every mntr line is key<TAB>value:\n{mntr}");
    assert_eq!(stats.get("zk_server_state"), Some(&"standalone"), "{mntr}");
    assert!(
        stats.get("zk_znode_count").and_then(|n| n.parse::<u64>().ok()).is_some_and(|n| n >= 1),
        "{mntr}"
    );
    assert!(word("srvr").contains("\nMode: standalone\n"));
    assert_eq!(word("cons"), "cons is not executed because it is not in the whitelist.\n");

    // --- no certificate, or one from another CA: refused at the handshake
    let ca = std::fs::read_to_string(&files.ca).expect("ca");
    let nobody = ClientTls::without_certificate(&ca).expect("tls");
    let refused = match tls(&addr, nobody).await {
        None => true,
        Some(mut s) => session(&mut s).await.is_none(),
    };
    assert!(refused, "a client without a certificate was served");
    let stranger_pki = TestPki::new("zk-stranger");
    let mut stranger = stranger_pki.issue(CertSpec::new("stranger", Role::Client));
    stranger.ca = files.ca.clone();
    let stranger = ClientTls::new(TlsIdentity::load(&stranger).expect("identity"));
    let refused = match tls(&addr, stranger).await {
        None => true,
        Some(mut s) => session(&mut s).await.is_none(),
    };
    assert!(refused, "a certificate of another CA was served");

    // --- a session that stays; then frames that close their own connection
    let mut good = tls(&addr, me()).await.expect("handshake");
    assert!(session(&mut good).await.is_some(), "a session through the door");
    assert_eq!(get_root(&mut good, 1).await, Some(0));
    // The zxid a client keeps for reconnecting covers its own writes, deletes included.
    use sluice_zookeeper_proto::op;
    let created = call(&mut good, 2, op::CREATE, |w| {
        w.string("/z").buffer(b"").int(1).int(31).string("world").string("anyone").int(0);
    })
    .await;
    let (created_at, err) = created.expect("create answered");
    assert_eq!(err, 0);
    let deleted = call(&mut good, 3, op::DELETE, |w| {
        w.string("/z").int(-1);
    })
    .await;
    let (deleted_at, err) = deleted.expect("delete answered");
    assert_eq!(err, 0);
    assert!(deleted_at > created_at, "a delete's reply zxid {deleted_at} is after its create's {created_at}");
    let bad_frames: [(&str, Vec<u8>); 3] = [
        ("a negative length", vec![0xff, 0xff, 0xff, 0xf0, 0, 0]),
        ("over jute.maxbuffer", (8192i32).to_be_bytes().to_vec()),
        ("an unknown op code", {
            let mut w = Writer::framed();
            w.int(7).int(999);
            w.frame()
        }),
    ];
    for (what, bytes) in bad_frames {
        let mut s = tls(&addr, me()).await.expect("handshake");
        assert!(session(&mut s).await.is_some());
        s.write_all(&bytes).await.expect("write");
        s.flush().await.expect("flush");
        assert_eq!(frame(&mut s).await, None, "{what}: the connection should close");
        // The other client is still served.
        assert_eq!(get_root(&mut good, 2).await, Some(0), "after {what}");
    }
    let logs = std::fs::read_to_string(&keeper.log).unwrap_or_default();
    assert!(logs.contains("unknown op code 999"), "the keeper says why it closed:\n{logs}");
    assert!(logs.contains("over jute.maxbuffer"), "{logs}");
}

/// Apache ZooKeeper 3.8, standalone, on a free port; killed when dropped.
struct ApacheZooKeeper {
    child: std::process::Child,
    addr: String,
}

impl ApacheZooKeeper {
    fn start(dir: &Path) -> ApacheZooKeeper {
        let java = peer("java", "apt-get install zookeeper (it brings a Java runtime and Apache ZooKeeper)");
        assert!(
            Path::new("/usr/share/java/zookeeper.jar").exists(),
            "Apache ZooKeeper is missing: apt-get install zookeeper (.ci/run does)"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let data = dir.join("zk-data");
        std::fs::create_dir_all(&data).expect("data dir");
        let cfg = dir.join("zoo.cfg");
        std::fs::write(
            &cfg,
            format!(
                "tickTime=500\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
                 admin.enableServer=false\n4lw.commands.whitelist=*\nextendedTypesEnabled=true\n",
                data.display()
            ),
        )
        .expect("zoo.cfg");
        let log = std::fs::File::create(dir.join("zookeeper.log")).expect("log");
        let child = Command::new(java)
            .arg(format!("-Dzookeeper.log.dir={}", dir.display()))
            .arg("-Dznode.container.checkIntervalMs=100")
            .args(["-cp", "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar"])
            .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
            .arg(&cfg)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start ZooKeeper");
        let addr = format!("127.0.0.1:{port}");
        let zk = ApacheZooKeeper { child, addr };
        poll_until(Duration::from_secs(60), || {
            let mut s = std::net::TcpStream::connect(&zk.addr).map_err(|e| e.to_string())?;
            // A server still starting may accept and say nothing: never wait on it for long.
            s.set_read_timeout(Some(Duration::from_secs(2))).map_err(|e| e.to_string())?;
            std::io::Write::write_all(&mut s, b"ruok").map_err(|e| e.to_string())?;
            let mut out = String::new();
            std::io::Read::read_to_string(&mut s, &mut out).map_err(|e| e.to_string())?;
            (out == "imok").then_some(()).ok_or(out)
        })
        .unwrap_or_else(|e| {
            let log = std::fs::read_to_string(dir.join("zookeeper.log")).unwrap_or_default();
            panic!("Apache ZooKeeper did not start ({e}):\n{log}")
        });
        zk
    }
}

impl Drop for ApacheZooKeeper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One sequence of operations through the `zookeeper-client` crate, each outcome written
/// down without what differs between servers by nature (zxids, times, session ids).
async fn script(addr: &str) -> Vec<String> {
    use zookeeper_client as zk;
    let mut log = Vec::new();
    let connect = || zk::Client::connector().with_session_timeout(Duration::from_secs(10)).connect(addr);
    let c = connect().await.expect("connect");
    let other = connect().await.expect("connect a second session");
    let me = c.session_id();
    let stat = |s: &zk::Stat| {
        format!(
            "v{} cv{} len{} kids{} own{}",
            s.version,
            s.cversion,
            s.data_length,
            s.num_children,
            match s.ephemeral_owner {
                0 => "none".to_string(),
                o if o == me.0 => "me".to_string(),
                // ZooKeeper's encodings of a container and of a node with a TTL.
                i64::MIN => "container".to_string(),
                o if o >> 56 == -1 => format!("ttl{}", o & 0xff_ffff_ffff),
                _ => "other".to_string(),
            }
        )
    };
    let persistent = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    let ephemeral_seq = zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all());
    macro_rules! step {
        ($name:expr, $e:expr) => {
            log.push(format!("{}: {}", $name, $e));
            // Shown if the test fails: how far the script got against which server.
            eprintln!("{addr} {}", log.last().map_or("", String::as_str));
        };
    }
    step!(
        "create",
        match c.create("/diff", b"a", &persistent).await {
            Ok((s, seq)) => format!("{} seq{}", stat(&s), seq.into_i64()),
            Err(e) => format!("{e:?}"),
        }
    );
    step!("create again", format!("{:?}", c.create("/diff", b"a", &persistent).await.err()));
    step!("create under missing", format!("{:?}", c.create("/diff/no/child", b"", &persistent).await.err()));
    step!("bad path", format!("{:?}", c.create("/diff/", b"", &persistent).await.err()));
    step!(
        "get",
        match c.get_data("/diff").await {
            Ok((d, s)) => format!("{} {}", String::from_utf8_lossy(&d), stat(&s)),
            Err(e) => format!("{e:?}"),
        }
    );
    step!("stale set", format!("{:?}", c.set_data("/diff", b"b", Some(5)).await.err()));
    step!(
        "set",
        match c.set_data("/diff", b"b", Some(0)).await {
            Ok(s) => stat(&s),
            Err(e) => format!("{e:?}"),
        }
    );
    // A one-shot data watch fires once, on another session's write.
    let (_, _, watcher) = c.get_and_watch_data("/diff").await.expect("get and watch");
    other.set_data("/diff", b"c", None).await.expect("other sets");
    let ev = tokio::time::timeout(Duration::from_secs(10), watcher.changed()).await;
    step!(
        "data watch",
        match ev {
            Ok(ev) => format!("{:?} {}", ev.event_type, ev.path),
            Err(_) => "no event".to_string(),
        }
    );
    // An exists watch on a missing node fires on its creation.
    let (found, watcher) = c.check_and_watch_stat("/diff/later").await.expect("exists and watch");
    other.create("/diff/later", b"", &persistent).await.expect("other creates");
    let ev = tokio::time::timeout(Duration::from_secs(10), watcher.changed()).await;
    step!(
        "exist watch",
        match ev {
            Ok(ev) => format!("found {} then {:?} {}", found.is_some(), ev.event_type, ev.path),
            Err(_) => "no event".to_string(),
        }
    );
    for _ in 0..2 {
        step!(
            "ephemeral sequential",
            match c.create("/diff/e-", b"", &ephemeral_seq).await {
                Ok((s, seq)) => format!("{} seq{}", stat(&s), seq.into_i64()),
                Err(e) => format!("{e:?}"),
            }
        );
    }
    step!(
        "child of ephemeral",
        format!("{:?}", c.create("/diff/e-0000000001/x", b"", &persistent).await.err())
    );
    step!(
        "children",
        match c.get_children("/diff").await {
            Ok((mut kids, s)) => {
                kids.sort();
                format!("{kids:?} {}", stat(&s))
            }
            Err(e) => format!("{e:?}"),
        }
    );
    step!("delete non-empty", format!("{:?}", c.delete("/diff", None).await.err()));
    step!("exists missing", format!("{:?}", c.check_stat("/diff/nope").await.map(|s| s.is_some())));
    step!(
        "acl",
        match c.get_acl("/diff").await {
            Ok((acls, s)) => format!("{acls:?} {}", stat(&s)),
            Err(e) => format!("{e:?}"),
        }
    );
    // A multi that fails at its second op changes nothing; one that succeeds reports each op.
    let mut w = c.new_multi_writer();
    w.add_create("/diff/m", b"1", &persistent).expect("op");
    w.add_check_version("/diff", 99).expect("op");
    w.add_delete("/diff/later", None).expect("op");
    step!("failed multi", format!("{:?}", w.commit().await.map(|r| r.len())));
    step!("after failed multi", format!("{:?}", c.check_stat("/diff/m").await.map(|s| s.is_some())));
    let mut w = c.new_multi_writer();
    w.add_create("/diff/m", b"1", &persistent).expect("op");
    w.add_set_data("/diff/m", b"2", Some(0)).expect("op");
    w.add_check_version("/diff/m", 1).expect("op");
    w.add_delete("/diff/later", None).expect("op");
    step!(
        "multi",
        match w.commit().await {
            Ok(results) => results
                .iter()
                .map(|r| match r {
                    // Apache ZooKeeper 3.8 answers a multi's create with an invalid stat
                    // (ZOOKEEPER-4026); the door answers the real one. Only the path is compared.
                    zk::MultiWriteResult::Create { path, .. } => format!("create {path}"),
                    zk::MultiWriteResult::SetData { stat: s } => format!("set {}", stat(s)),
                    other => format!("{other:?}"),
                })
                .collect::<Vec<_>>()
                .join("; "),
            Err(e) => format!("{e:?}"),
        }
    );
    let mut r = c.new_multi_reader();
    r.add_get_data("/diff/m").expect("op");
    r.add_get_children("/diff/nope").expect("op");
    step!(
        "multi read",
        match r.commit().await {
            Ok(results) => results
                .iter()
                .map(|r| match r {
                    zk::MultiReadResult::Data { data, stat: s } =>
                        format!("{} {}", String::from_utf8_lossy(data), stat(s)),
                    other => format!("{other:?}"),
                })
                .collect::<Vec<_>>()
                .join("; "),
            Err(e) => format!("{e:?}"),
        }
    );
    // The session's ephemerals, a subtree's size, and a watch taken back before it fires.
    step!(
        "ephemerals",
        format!(
            "{:?}",
            c.list_ephemerals("/diff").await.map(|mut e| {
                e.sort();
                e
            })
        )
    );
    step!("descendants", format!("{:?}", c.count_descendants_number("/diff").await));
    step!("missing descendants", format!("{:?}", c.count_descendants_number("/nope").await));
    let (_, _, watcher) = c.get_and_watch_data("/diff/m").await.expect("get and watch");
    // Deprecated in favour of dropping the watcher, which does not wait for the server:
    // this is the call that sends removeWatches and reads the answer.
    #[allow(deprecated)]
    let removed = watcher.remove().await;
    step!("remove watch", format!("{removed:?}"));
    // A container goes once it has had a child and has none; a TTL node once idle that long.
    let container = zk::CreateMode::Container.with_acls(zk::Acls::anyone_all());
    step!(
        "container",
        match c.create("/diff/box", b"", &container).await {
            Ok((s, _)) => stat(&s),
            Err(e) => format!("{e:?}"),
        }
    );
    let ttl =
        zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all()).with_ttl(Duration::from_millis(300));
    step!(
        "ttl",
        match c.create("/diff/ttl", b"", &ttl).await {
            Ok((s, _)) => stat(&s),
            Err(e) => format!("{e:?}"),
        }
    );
    step!("container child", format!("{:?}", c.create("/diff/box/x", b"", &persistent).await.map(|_| ())));
    step!("delete container child", format!("{:?}", c.delete("/diff/box/x", None).await));
    for gone in ["/diff/box", "/diff/ttl"] {
        // An exists watch says when the server reaps it (within 20 s).
        let (found, watcher) = c.check_and_watch_stat(gone).await.expect("exists and watch");
        let reaped = match found {
            None => true,
            Some(_) => tokio::time::timeout(Duration::from_secs(20), watcher.changed())
                .await
                .is_ok_and(|ev| ev.event_type == zk::EventType::NodeDeleted),
        };
        step!("reaped", format!("{gone} {reaped}"));
    }
    // A persistent recursive watch sees a subtree's changes, in order.
    let mut watcher = c.watch("/diff", zk::AddWatchMode::PersistentRecursive).await.expect("addWatch");
    other.create("/diff/m/deep", b"", &persistent).await.expect("create deep");
    other.set_data("/diff/m/deep", b"x", None).await.expect("set deep");
    other.delete("/diff/m/deep", None).await.expect("delete deep");
    let mut seen = Vec::new();
    for _ in 0..3 {
        match tokio::time::timeout(Duration::from_secs(10), watcher.changed()).await {
            Ok(ev) => seen.push(format!("{:?} {}", ev.event_type, ev.path)),
            Err(_) => seen.push("no event".into()),
        }
    }
    step!("recursive watch", seen.join(", "));
    // ACLs: a digest identity from addauth, the auth scheme, NoAuth, setACL's version,
    // a READ-only reader's view of digests, a multi with a forbidden op, invalid ACLs.
    let acl_text = |acl: &[zk::Acl]| {
        acl.iter()
            .map(|a| format!("{}:{}:{}", a.scheme(), a.id(), a.permission()))
            .collect::<Vec<_>>()
            .join(",")
    };
    step!("addauth", format!("{:?}", c.auth("digest", b"user:pw").await));
    let creator = zk::CreateMode::Persistent.with_acls(zk::Acls::creator_all());
    step!("create with auth", format!("{:?}", c.create("/diff/acl", b"s", &creator).await.map(|_| ())));
    step!(
        "getACL",
        match c.get_acl("/diff/acl").await {
            Ok((acl, s)) => format!("{} av{}", acl_text(&acl), s.aversion),
            Err(e) => format!("{e:?}"),
        }
    );
    step!("other reads", format!("{:?}", other.get_data("/diff/acl").await.map(|(d, _)| d)));
    step!("other writes", format!("{:?}", other.set_data("/diff/acl", b"x", None).await.map(|_| ())));
    step!("other exists", format!("{:?}", other.check_stat("/diff/acl").await.map(|s| s.is_some())));
    step!("other getACL", format!("{:?}", other.get_acl("/diff/acl").await.map(|(a, _)| acl_text(&a))));
    let (mine, _) = c.get_acl("/diff/acl").await.expect("getACL");
    let opened: Vec<zk::Acl> =
        mine.iter().cloned().chain([zk::Acl::new(zk::Permission::READ, zk::AuthId::anyone())]).collect();
    step!(
        "setACL stale",
        format!("{:?}", c.set_acl("/diff/acl", &opened, Some(5)).await.map(|s| s.aversion))
    );
    step!(
        "other setACL",
        format!("{:?}", other.set_acl("/diff/acl", &opened, None).await.map(|s| s.aversion))
    );
    step!("setACL", format!("{:?}", c.set_acl("/diff/acl", &opened, Some(0)).await.map(|s| s.aversion)));
    step!("other reads now", format!("{:?}", other.get_data("/diff/acl").await.map(|(d, _)| d)));
    step!("other getACL now", format!("{:?}", other.get_acl("/diff/acl").await.map(|(a, _)| acl_text(&a))));
    let mut w = other.new_multi_writer();
    w.add_create("/diff/ok", b"", &persistent).expect("op");
    w.add_set_data("/diff/acl", b"x", None).expect("op");
    step!("forbidden multi", format!("{:?}", w.commit().await.map(|r| r.len())));
    step!("after forbidden multi", format!("{:?}", other.check_stat("/diff/ok").await.map(|s| s.is_some())));
    let nobody = [zk::Acl::new(zk::Permission::ALL, zk::AuthId::new("world", "nobody"))];
    let invalid = zk::CreateMode::Persistent.with_acls(zk::Acls::new(&nobody));
    step!("invalid ACL", format!("{:?}", c.create("/diff/bad", b"", &invalid).await.map(|_| ())));
    step!(
        "auth without identities",
        format!("{:?}", other.create("/diff/bad", b"", &creator).await.map(|_| ()))
    );
    let local = [zk::Acl::new(zk::Permission::READ, zk::AuthId::new("ip", "127.0.0.0/8"))];
    let by_ip = zk::CreateMode::Persistent.with_acls(zk::Acls::new(&local));
    step!("ip ACL", format!("{:?}", c.create("/diff/ip", b"i", &by_ip).await.map(|_| ())));
    step!("ip reads", format!("{:?}", other.get_data("/diff/ip").await.map(|(d, _)| d)));
    step!("ip writes", format!("{:?}", other.set_data("/diff/ip", b"x", None).await.map(|_| ())));
    let third = connect().await.expect("connect a third session");
    step!("bad scheme", format!("{:?}", third.auth("nosuch", b"x").await));
    step!("sync", format!("{:?}", c.sync("/diff").await));
    // Closing the session deletes its ephemeral nodes.
    drop(c);
    // A child watch says when they go (each change re-reads, at most 10 s apart).
    let mut left = Vec::new();
    for _ in 0..10 {
        let (mut kids, watcher) = other.list_and_watch_children("/diff").await.expect("children and watch");
        kids.sort();
        left = kids;
        if !left.iter().any(|k| k.starts_with("e-")) {
            break;
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), watcher.changed()).await;
    }
    step!("after close", format!("{left:?}"));
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_zookeeper_client_crate_sees_the_same_results_errors_and_events_from_the_door_as_from_zookeeper()
{
    let dir = tempfile::tempdir().expect("tempdir");
    let apache = ApacheZooKeeper::start(dir.path());
    let pki = TestPki::new("zk-diff");
    let keeper = KeeperProcess::start_with(
        &pki,
        dir.path(),
        500,
        "plaintextClientPort=0\nznode.container.checkIntervalMs=100\n",
    );
    let door = keeper.zookeeper_plain.clone().expect("plaintextClientPort");
    // Bounded, naming the server that did not answer (stderr shows the last step done).
    let within = Duration::from_secs(100);
    let theirs = tokio::time::timeout(within, script(&apache.addr)).await.unwrap_or_else(|_| {
        let log = std::fs::read_to_string(dir.path().join("zookeeper.log")).unwrap_or_default();
        panic!("the script against Apache ZooKeeper did not finish within {within:?}; its log:\n{log}")
    });
    let ours = tokio::time::timeout(within, script(&door)).await.unwrap_or_else(|_| {
        let log = std::fs::read_to_string(&keeper.log).unwrap_or_default();
        panic!("the script against the door did not finish within {within:?}; the keeper's log:\n{log}")
    });
    for (t, o) in theirs.iter().zip(&ours) {
        assert_eq!(o, t, "the door differs from Apache ZooKeeper\nZooKeeper: {theirs:#?}\ndoor: {ours:#?}");
    }
    assert_eq!(ours.len(), theirs.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_client_cnxns_bounds_the_connections_of_one_address() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::new("zk-cnxns");
    let keeper = KeeperProcess::start_with(&pki, dir.path(), 500, "secureClientPort=0\nmaxClientCnxns=2\n");
    let addr = keeper.zookeeper_tls.clone().expect("secureClientPort");
    let files = pki.issue(CertSpec::new("many", Role::Client));
    let me = || ClientTls::new(TlsIdentity::load(&files).expect("identity"));
    let mut first = tls(&addr, me()).await.expect("handshake");
    assert!(session(&mut first).await.is_some(), "first connection");
    let mut second = tls(&addr, me()).await.expect("handshake");
    assert!(session(&mut second).await.is_some(), "second connection");
    let refused = match tls(&addr, me()).await {
        None => true,
        Some(mut s) => session(&mut s).await.is_none(),
    };
    assert!(refused, "a third connection from the same address was served");
    let logs = std::fs::read_to_string(&keeper.log).unwrap_or_default();
    assert!(logs.contains("too many connections from 127.0.0.1 - max is 2"), "{logs}");
    // One closes: its place is given back.
    drop(first);
    let served = sluice_tests::wait_for(Duration::from_secs(10), || async {
        match tls(&addr, me()).await {
            Some(mut s) => session(&mut s).await.is_some(),
            None => false,
        }
    })
    .await;
    assert!(served, "a new connection after one closed");
    assert_eq!(get_root(&mut second, 1).await, Some(0), "the second still served");
}
