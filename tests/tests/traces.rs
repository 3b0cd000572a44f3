//! Distributed traces: with `OTEL_EXPORTER_OTLP_ENDPOINT` set, one produce is one trace from
//! the producer process through the broker. A small OTLP/HTTP receiver in this process
//! (protobuf `ExportTraceServiceRequest`s on `/v1/traces`) collects what the processes export.
//! A keeper write sent to a follower is one trace across it, the leader, and every member's
//! replication and apply of it.

use std::convert::Infallible;
use std::io::Write as _;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;
use sluice_tests::{poll_until, sluice_bin, tls_args, BrokerCluster, KeeperEnsemble, TestPki};

/// One received span.
#[derive(Debug, Clone)]
struct Got {
    service: String,
    name: String,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent: Vec<u8>,
    /// The span's attributes (its fields), as text.
    attributes: Vec<(String, String)>,
}

impl Got {
    fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::StringValue(s) => s.clone(),
        Value::IntValue(i) => i.to_string(),
        other => format!("{other:?}"),
    }
}

type Spans = Arc<Mutex<Vec<Got>>>;

fn record(spans: &Spans, req: ExportTraceServiceRequest) {
    let mut out = spans.lock().unwrap_or_else(|p| p.into_inner());
    for rs in req.resource_spans {
        let service = rs
            .resource
            .iter()
            .flat_map(|r| r.attributes.iter())
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
            .map(text)
            .unwrap_or_default();
        for span in rs.scope_spans.into_iter().flat_map(|s| s.spans) {
            out.push(Got {
                service: service.clone(),
                name: span.name,
                trace_id: span.trace_id,
                span_id: span.span_id,
                parent: span.parent_span_id,
                attributes: span
                    .attributes
                    .into_iter()
                    .filter_map(|kv| Some((kv.key, text(kv.value?.value.as_ref()?))))
                    .collect(),
            });
        }
    }
}

/// Serves OTLP/HTTP (protobuf) on `listener` until the runtime stops.
async fn receiver(listener: tokio::net::TcpListener, spans: Spans) {
    while let Ok((stream, _)) = listener.accept().await {
        let spans = spans.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let spans = spans.clone();
                async move {
                    let path = req.uri().path().to_string();
                    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                    let status = match ExportTraceServiceRequest::decode(body) {
                        Ok(r) if path == "/v1/traces" => {
                            record(&spans, r);
                            200
                        }
                        Ok(_) => 404,
                        Err(_) => 400,
                    };
                    let response = hyper::Response::builder()
                        .status(status)
                        .header("content-type", "application/x-protobuf")
                        .body(Full::new(Bytes::new()))
                        .expect("response");
                    Ok::<_, Infallible>(response)
                }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
        });
    }
}

/// Kills the child process on every path out of the test.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits up to `within` for the child to exit; its output (stdout, stderr).
fn finish(mut child: Killed, within: Duration) -> (bool, String) {
    match poll_until(within, || child.0.try_wait().ok().flatten().ok_or_else(String::new)) {
        Ok(status) => {
            let mut err = String::new();
            if let Some(mut e) = child.0.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            (status.success(), err)
        }
        Err(_) => (false, format!("still running after {within:?}; killed")),
    }
}

/// A runtime serving the OTLP receiver on a free port: (the runtime, its endpoint, the spans
/// received so far).
fn start_receiver() -> (tokio::runtime::Runtime, String, Spans) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind receiver");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    let spans: Spans = Arc::default();
    rt.spawn(receiver(listener, spans.clone()));
    (rt, endpoint, spans)
}

#[test]
fn one_produce_is_one_trace_from_the_producer_through_the_broker() {
    let (rt, endpoint, spans) = start_receiver();
    // Export every 200 ms instead of every 5 s.
    let env = [("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()), ("OTEL_BSP_SCHEDULE_DELAY", "200")];
    // The brokers log JSON, with the append's debug line.
    let broker_env = [
        env[0],
        env[1],
        ("SLUICE_LOG_FORMAT", "json"),
        ("RUST_LOG", "info,sluice_actors::broker::partition=debug"),
    ];
    let cluster = BrokerCluster::start_on_with_env(1, 2, "", "", &broker_env);
    let tool = |args: &[&str]| {
        let mut c = Command::new(sluice_bin());
        c.arg(args[0])
            .args(["--bootstrap-server", &cluster.bootstrap()])
            .args(tls_args(&cluster.client_files()))
            .args(&args[1..]);
        c
    };
    let created =
        tool(&["topics", "--create", "--topic", "traced", "--partitions", "1", "--replication-factor", "2"])
            .stdin(Stdio::null())
            .output()
            .expect("topics");
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));

    let mut producer = tool(&["console-producer", "--topic", "traced", "--producer-property", "acks=all"]);
    producer.envs(env).stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped());
    let mut producer = Killed(producer.spawn().expect("console-producer"));
    {
        let mut stdin = producer.0.stdin.take().expect("stdin");
        stdin.write_all(b"traced record\n").expect("write stdin");
    }
    let (ok, stderr) = finish(producer, Duration::from_secs(30));
    assert!(ok, "console-producer failed: {stderr}");

    // The producer flushed its spans on exit; the brokers send theirs every 200 ms.
    let found = poll_until(Duration::from_secs(20), || {
        let got = spans.lock().unwrap_or_else(|p| p.into_inner()).clone();
        got.iter()
            .find(|s| s.service == "sluice-console-producer" && s.name == "produce")
            .and_then(|client| {
                let same = |s: &&Got| s.trace_id == client.trace_id && s.service == "sluice-broker";
                let rpc = got.iter().filter(same).find(|s| s.name.ends_with(" Produce"))?;
                let append = got.iter().filter(same).find(|s| s.name == "append")?;
                let replicated = got.iter().filter(same).find(|s| s.name == "wait_replicated")?;
                let carried = got.iter().filter(same).find(|s| s.name == "follower_fetch")?;
                // The follower's own append of what that fetch carried, in the follower.
                got.iter().filter(same).find(|s| {
                    s.name == "follower_append"
                        && s.parent == carried.span_id
                        && s.attribute("follower").is_some()
                        && s.attribute("follower") == carried.attribute("follower")
                })?;
                Some((client.clone(), rpc.clone(), append.clone(), replicated.clone(), carried.clone()))
            })
            .ok_or_else(|| format!("{:?}", got.iter().map(|s| (&s.service, &s.name)).collect::<Vec<_>>()))
    });
    let (client, rpc, append, replicated, carried) = found.unwrap_or_else(|names| {
        panic!("no produce trace through the broker within 20 s; spans received: {names}")
    });
    let got = spans.lock().unwrap_or_else(|p| p.into_inner()).clone();
    // client span → server request span → append (and the wait for the replicas).
    assert_eq!(rpc.parent, client.span_id, "the broker's request span is the producer's request's child");
    assert_eq!(append.parent, rpc.span_id, "the append is the request span's child");
    assert_eq!(replicated.parent, rpc.span_id, "the wait for the replicas is the request span's child");
    assert_eq!(
        carried.parent, append.span_id,
        "the follower fetch that carried the record is the append's child"
    );
    // With debug on for the partition module, its actor handlers are spans of their own.
    assert!(
        got.iter().any(|s| s.service == "sluice-broker"
            && s.name == "Partition Append"
            && s.attribute("actor") == Some("Partition")),
        "no span of the Partition actor's Append handler"
    );
    // The producer's request hangs under the record's `send` span, the trace's root.
    let send = got
        .iter()
        .find(|s| s.service == "sluice-console-producer" && s.span_id == client.parent)
        .expect("the record's send span");
    assert_eq!(send.name, "send");
    assert_eq!(send.trace_id, client.trace_id);
    assert!(send.parent.is_empty(), "the send span is the root: {send:?}");
    // JSON log lines inside a traced request carry its trace id (the request span's field).
    let hex: String = client.trace_id.iter().map(|b| format!("{b:02x}")).collect();
    let logs: String =
        cluster.brokers.iter().map(|b| std::fs::read_to_string(&b.log).unwrap_or_default()).collect();
    let line =
        logs.lines().find(|l| l.contains("\"appended\"") && l.contains(&format!("\"trace_id\":\"{hex}\"")));
    assert!(line.is_some(), "no JSON log line of the append with trace id {hex}:\n{}", cluster.log_tails(20));

    // A consumer's poll that returns the record is one trace: `poll` → its `fetch` → the
    // broker's Fetch.
    let mut consumer =
        tool(&["console-consumer", "--topic", "traced", "--from-beginning", "--max-messages", "1"]);
    consumer.envs(env).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    let (ok, stderr) = finish(Killed(consumer.spawn().expect("console-consumer")), Duration::from_secs(30));
    assert!(ok, "console-consumer failed: {stderr}");
    let polled = poll_until(Duration::from_secs(20), || {
        let got = spans.lock().unwrap_or_else(|p| p.into_inner()).clone();
        got.iter()
            .filter(|s| s.service == "sluice-console-consumer" && s.name == "poll")
            .filter(|s| s.attribute("records") == Some("1"))
            .find_map(|poll| {
                let fetch = got.iter().find(|s| s.parent == poll.span_id && s.name == "fetch")?;
                got.iter().find(|s| {
                    s.service == "sluice-broker" && s.parent == fetch.span_id && s.name.ends_with(" Fetch")
                })
            })
            .map(|_| ())
            .ok_or_else(|| {
                let names: Vec<_> =
                    got.iter().filter(|s| s.service != "sluice-broker").map(|s| &s.name).collect();
                format!("{names:?}")
            })
    });
    if let Err(names) = polled {
        panic!("no poll → fetch → broker Fetch trace within 20 s; client spans received: {names}");
    }
    drop(cluster);
    rt.shutdown_timeout(Duration::from_secs(1));
}

#[test]
fn a_keeper_write_at_a_follower_is_one_trace_across_every_member() {
    let (rt, endpoint, spans) = start_receiver();
    let env = [("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()), ("OTEL_BSP_SCHEDULE_DELAY", "200")];
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::new("traces");
    let ensemble = KeeperEnsemble::start_with_env(&pki, dir.path(), 3, 200, "", &env);
    let tls = pki.client("fixture");
    let leader = rt.block_on(ensemble.leader(&tls, Duration::from_secs(20))).expect("a leader");
    let follower = (leader + 1) % 3;
    let files = pki.issue(sluice_certs::CertSpec::new("shell", sluice_certs::Role::Client));
    let mut shell = Command::new(sluice_bin());
    shell
        .args(["keeper-shell", &ensemble.members[follower].addr])
        .args(tls_args(&files))
        .args(["create", "/traced", "data"])
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let (ok, stderr) = finish(Killed(shell.spawn().expect("keeper-shell")), Duration::from_secs(30));
    assert!(ok, "keeper-shell failed: {stderr}");
    let found = poll_until(Duration::from_secs(20), || {
        let got = spans.lock().unwrap_or_else(|p| p.into_inner()).clone();
        got.iter()
            .find(|s| s.service == "sluice-keeper-shell" && s.name == "keeper_write")
            .and_then(|w| {
                let same = |s: &&Got| s.trace_id == w.trace_id && s.service == "sluice-keeper";
                // The follower's request span (child of the shell's write), its proposal, and
                // the leader's span for the forwarded proposal (child of that).
                let request =
                    got.iter().filter(same).find(|s| s.parent == w.span_id && s.name.ends_with(" Write"))?;
                let propose =
                    got.iter().filter(same).find(|s| s.parent == request.span_id && s.name == "propose")?;
                let at_leader = got
                    .iter()
                    .filter(same)
                    .find(|s| s.name.ends_with(" Propose") && s.parent == propose.span_id)?;
                // Under the leader's span: every member's apply of the write, and each
                // follower's replication of it.
                let members = |name: &str| {
                    let mut ids: Vec<String> = got
                        .iter()
                        .filter(same)
                        .filter(|s| s.name == name && s.parent == at_leader.span_id)
                        .filter_map(|s| s.attribute("member").map(str::to_string))
                        .collect();
                    ids.sort();
                    ids
                };
                let leader_id = (leader + 1).to_string();
                let followers: Vec<String> =
                    (1..=3).map(|i: usize| i.to_string()).filter(|i| *i != leader_id).collect();
                (members("apply") == ["1", "2", "3"] && members("replicate") == followers).then_some(())
            })
            .ok_or_else(|| {
                // The write's trace, if the shell's span arrived.
                let write = got.iter().find(|s| s.name == "keeper_write").map(|w| w.trace_id.clone());
                let traced: Vec<_> = got
                    .iter()
                    .filter(|s| write.as_ref().is_none_or(|t| *t == s.trace_id))
                    .map(|s| (&s.service, &s.name, s.attribute("member")))
                    .collect();
                format!("{traced:?}")
            })
    });
    if let Err(names) = found {
        panic!(
            "no keeper write trace across the follower it was sent to, the leader, and every member's \
             replication and apply within 20 s; spans received: {names}"
        );
    }
    drop(ensemble);
    rt.shutdown_timeout(Duration::from_secs(1));
}
