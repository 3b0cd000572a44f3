//! Typed RPC and ordered channels over real QUIC: concurrency, correlation, order,
//! reconnection and timeouts.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use sluice_net::perf::{EchoRequest, Perf, PerfPush, SinkRequest, WhoAmI};
use sluice_net::{Client, ClientOptions, ConnectError, ServerOptions};
use sluice_tests::{wait_for, PerfServerHandle, TestPki};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_calls_on_one_connection_each_get_their_own_reply() {
    let pki = TestPki::new("cluster");
    let server = PerfServerHandle::start(&pki.node("b1"), "b1");
    let (_client, conn) = server.connect(&pki.client("c"), ClientOptions::default()).await;
    let start = tokio::sync::Barrier::new(1000);
    let start = std::sync::Arc::new(start);
    let mut tasks = tokio::task::JoinSet::new();
    for id in 0..1000u64 {
        let (conn, start) = (conn.clone(), start.clone());
        tasks.spawn(async move {
            start.wait().await; // all 1000 are issued together
            let payload = id.to_le_bytes().repeat((id % 50 + 1) as usize);
            let reply = conn.call(EchoRequest::new(id, payload.clone())).await.expect("call");
            assert_eq!(reply.id, id, "reply answers its own request");
            assert_eq!(reply.payload, payload, "reply carries its own request's bytes");
            id
        });
    }
    let mut seen = HashSet::new();
    while let Some(id) = tasks.join_next().await {
        assert!(seen.insert(id.expect("task")));
    }
    assert_eq!(seen.len(), 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_channel_delivers_10000_pipelined_requests_and_interleaved_pushes_in_order() {
    let pki = TestPki::new("cluster");
    let server = PerfServerHandle::start(&pki.node("b1"), "b1");
    let (_client, conn) = server.connect(&pki.client("c"), ClientOptions::default()).await;
    let mut channel = conn.open_ordered().await.expect("ordered channel");
    let caller = channel.caller();

    // --- queue all 10,000 without waiting (pipelined), each asking for 0-2 pushes first
    let mut pending = Vec::with_capacity(10_000);
    for id in 0..10_000u64 {
        let req =
            EchoRequest { pushes_before: (id % 3) as u32, ..EchoRequest::new(id, id.to_be_bytes().to_vec()) };
        pending.push(caller.send(req).await.expect("queue request"));
    }

    // --- replies in send order; every push sent before a reply is already queued
    let mut pushes_taken = 0u64;
    for (i, p) in pending.into_iter().enumerate() {
        let reply = p.reply().await.expect("reply");
        assert_eq!(reply.id, i as u64);
        assert_eq!(reply.position, i as u64 + 1, "the server received request {i} in send order");
        while let Some(PerfPush { seq }) = channel.try_next_push() {
            pushes_taken += 1;
            assert_eq!(seq, pushes_taken, "pushes arrive in the order sent");
        }
        assert!(
            pushes_taken >= reply.pushes_sent,
            "reply {i} arrived before push {} that the server sent ahead of it",
            reply.pushes_sent
        );
    }
    let expected_pushes: u64 = (0..10_000u64).map(|i| i % 3).sum();
    assert_eq!(pushes_taken, expected_pushes);
}

#[tokio::test]
async fn the_cached_connection_is_reused_and_replaced_after_the_server_restarts() {
    let pki = TestPki::new("cluster");
    let identity = pki.node("b1");
    let server = PerfServerHandle::start(&identity, "b1");
    let addr = server.addr;
    let client = Client::<Perf>::new(&pki.client("c"), ClientOptions::default()).expect("client");
    let first = client.connection(&addr.to_string()).await.expect("connect");
    let again = client.connection(&addr.to_string()).await.expect("cached");
    assert_eq!(first.quic().stable_id(), again.quic().stable_id(), "the cache hands out the same connection");

    // --- restart the server on the same port
    server.stop().await;
    assert!(wait_for(Duration::from_secs(10), || async { !first.is_open() }).await, "client sees the close");
    let opts = ServerOptions { name: "b1-restarted".into(), ..ServerOptions::default() };
    let _server = PerfServerHandle::start_on(addr, &identity, opts);

    // --- the cache notices and reconnects
    let reply = client.call(&addr.to_string(), WhoAmI).await.expect("call after restart");
    assert_eq!(reply, "c");
    let now = client.connection(&addr.to_string()).await.expect("cached again");
    assert_ne!(now.quic().stable_id(), first.quic().stable_id());
    assert_eq!(now.server_name(), "b1-restarted");
}

/// A server that crashes (no CONNECTION_CLOSE sent) and comes back on the same address
/// with the same identity tells its old clients at once, with a QUIC stateless reset, that
/// their connections are gone: they need not wait out their idle timeout (30 s here).
#[test]
fn a_crashed_servers_clients_are_reset_at_once_when_it_restarts() {
    let pki = TestPki::new("cluster");
    let identity = pki.node("b1");
    let runtime = |name: &str| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(name)
            .enable_all()
            .build()
            .expect("runtime")
    };
    let (server_rt, client_rt) = (runtime("server"), runtime("client"));
    let server = server_rt.block_on(async { PerfServerHandle::start(&identity, "b1") });
    let addr = server.addr;
    let conn = client_rt.block_on(async {
        let (client, conn) = server.connect(&pki.client("c"), ClientOptions::default()).await;
        assert_eq!(conn.call(WhoAmI).await.expect("call"), "c");
        std::mem::forget(client);
        conn
    });
    // The crash: the server's runtime stops dead, without a graceful close (which the handle's
    // drop would send).
    std::mem::forget(server);
    server_rt.shutdown_background();
    let restarted_rt = runtime("restarted");
    // The dead runtime lets go of its socket in the background: bind again until the port is
    // free (a condition with a deadline, not a fixed wait).
    let deadline = Instant::now() + Duration::from_secs(10);
    let _restarted = restarted_rt.block_on(async {
        loop {
            let opts = ServerOptions { name: "b1-restarted".into(), ..ServerOptions::default() };
            match PerfServerHandle::try_start_on(addr, &identity, opts) {
                Ok(server) => break server,
                Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(20)).await,
                Err(e) => panic!("the crashed server's port never came free: {e}"),
            }
        }
    });
    client_rt.block_on(async {
        let started = Instant::now();
        let failed = conn.call(WhoAmI).await;
        let took = started.elapsed();
        assert!(failed.is_err(), "the old connection is gone: {failed:?}");
        assert!(!conn.is_open());
        assert!(took < Duration::from_secs(10), "reset after {took:?}: it waited for a timeout instead");
    });
}

#[tokio::test]
async fn connecting_retries_with_backoff_until_the_server_appears() {
    let pki = TestPki::new("cluster");
    let identity = pki.node("b1");
    // Reserve a free UDP port, then release it for the late server.
    let port = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let opts = ClientOptions {
        connect_timeout: Duration::from_secs(20),
        transport: sluice_net::TransportOptions {
            idle_timeout: Duration::from_millis(300),
            ..Default::default()
        },
        ..ClientOptions::default()
    };
    let client = std::sync::Arc::new(Client::<Perf>::new(&pki.client("c"), opts).expect("client"));
    let c2 = client.clone();
    let attempt = tokio::spawn(async move {
        c2.call(&addr.to_string(), SinkRequest { data: vec![1u8, 2, 3].into() }).await
    });
    // The server starts only once the client has been trying for a while.
    let t0 = Instant::now();
    assert!(wait_for(Duration::from_secs(5), || async { t0.elapsed() > Duration::from_millis(700) }).await);
    let _server = PerfServerHandle::start_on(addr, &identity, ServerOptions::default());
    let reply = attempt.await.expect("task").expect("call succeeds once the server is up");
    assert_eq!(reply.received, 3);
}

#[tokio::test]
async fn nobody_listening_is_a_clear_timeout_within_the_bound() {
    let pki = TestPki::new("cluster");
    let port = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let opts = ClientOptions { connect_timeout: Duration::from_millis(800), ..ClientOptions::default() };
    let client = Client::<Perf>::new(&pki.client("c"), opts).expect("client");
    let t0 = Instant::now();
    let err = client.connection(&format!("127.0.0.1:{port}")).await.expect_err("nobody there");
    assert!(t0.elapsed() < Duration::from_secs(5), "gave up after {:?}", t0.elapsed());
    assert!(matches!(err, ConnectError::Timeout { .. }), "{err:?}");
    assert!(err.to_string().contains("is the server running"), "{err}");

    let err = client.connection("no-port-here").await.expect_err("bad address");
    assert!(matches!(err, ConnectError::Address { .. }), "{err:?}");
    assert!(err.to_string().contains("HOST:PORT"), "{err}");
}

#[tokio::test]
async fn a_slow_call_does_not_hold_up_quick_ones_on_the_same_connection() {
    let pki = TestPki::new("cluster");
    let server = PerfServerHandle::start(&pki.node("b1"), "b1");
    let (_client, conn) = server.connect(&pki.client("c"), ClientOptions::default()).await;
    let slow_conn = conn.clone();
    let slow = tokio::spawn(async move {
        slow_conn.call(EchoRequest { delay_ms: 3_000, ..EchoRequest::new(0, vec![0]) }).await
    });
    // 50 quick calls on the same connection (and so the same lane) all finish while the
    // slow one is still being served.
    for id in 1..=50u64 {
        let r = conn.call(EchoRequest::new(id, vec![1])).await.expect("quick");
        assert_eq!(r.id, id);
    }
    assert!(!slow.is_finished(), "the quick calls were not held behind the slow one");
    assert_eq!(slow.await.expect("task").expect("slow call").id, 0);
}

#[tokio::test]
async fn the_client_adopts_the_servers_smaller_frame_limit_from_the_hello() {
    let pki = TestPki::new("cluster");
    let opts = ServerOptions { max_frame: 256 * 1024, ..ServerOptions::default() };
    let server = PerfServerHandle::start_on("127.0.0.1:0".parse().expect("addr"), &pki.node("b1"), opts);
    let (_client, conn) = server.connect(&pki.client("c"), ClientOptions::default()).await;
    let err = conn.call(EchoRequest::new(1, vec![0; 300 * 1024])).await.expect_err("over the server's limit");
    assert!(
        matches!(err, sluice_net::RpcError::Frame(sluice_net::FrameError::TooLarge { max: 262144, .. })),
        "refused locally with the server's limit: {err:?}"
    );
    let ok = conn.call(EchoRequest::new(2, vec![0; 200 * 1024])).await;
    assert_eq!(ok.expect("under the limit").id, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_loopback_path_mtu_discovery_reaches_the_large_packet_ceiling_and_loses_nothing() {
    // quinn accepts (and so lets a peer probe for) 1,472-byte datagrams unless the endpoint
    // says otherwise, and a segmentation-offload send of 10 larger ones does not fit one UDP
    // send: either mistake leaves the path at 1,452 bytes or drops it to 1,200.
    let pki = TestPki::new("cluster");
    let server = PerfServerHandle::start(&pki.node("b1"), "b1");
    let (_client, conn) = server.connect(&pki.client("c"), ClientOptions::default()).await;
    let data = bytes::Bytes::from(vec![7u8; 1 << 20]);
    let ceiling = sluice_net::MAX_UDP_PAYLOAD;
    let reached = wait_for(Duration::from_secs(10), || {
        let (conn, data) = (conn.clone(), data.clone());
        async move {
            conn.call(SinkRequest { data }).await.expect("bulk call");
            conn.quic().stats().path.current_mtu >= ceiling - 100
        }
    })
    .await;
    let path = conn.quic().stats().path;
    assert!(reached, "path MTU stayed at {} (ceiling {ceiling})", path.current_mtu);
    assert_eq!(path.lost_packets, 0, "large datagrams were lost: {path:?}");
}
