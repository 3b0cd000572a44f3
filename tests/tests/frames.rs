//! Bad frames end only their own stream.
//!
//! A stream carrying an oversize length prefix, random garbage or an unknown stream kind gets
//! a typed error frame back and is closed; meanwhile 100 requests in flight on the same
//! connection, and another connection, all succeed.

use std::time::Duration;

use sluice_net::frame::{self, LENGTH_PREFIX};
use sluice_net::perf::{EchoRequest, Perf, PerfPush, PerfResponse};
use sluice_net::protocol::{stream_kind, ServerBody};
use sluice_net::{Client, ClientOptions, FrameError, RpcError, ServerOptions, WireError};
use sluice_tests::{PerfServerHandle, TestPki};

const MAX_FRAME: u32 = 1024 * 1024;

/// Sends `bytes` on a raw stream and returns the server's answer.
async fn raw_exchange(conn: &quinn::Connection, bytes: &[u8]) -> ServerBody<PerfResponse, PerfPush> {
    let (mut send, mut recv) = conn.open_bi().await.expect("open raw stream");
    // The server may stop reading before all is written; that is its right.
    let _ = send.write_all(bytes).await;
    let _ = send.finish();
    let env = frame::read::<ServerBody<PerfResponse, PerfPush>, _>(&mut recv, MAX_FRAME)
        .await
        .expect("server answers with a frame")
        .expect("not an empty stream");
    env.body
}

#[tokio::test]
async fn oversize_and_garbage_streams_fail_alone_while_100_other_requests_succeed() {
    let pki = TestPki::new("cluster");
    let opts = ServerOptions { name: "b1".into(), max_frame: MAX_FRAME, ..ServerOptions::default() };
    let server = PerfServerHandle::start_on("127.0.0.1:0".parse().expect("addr"), &pki.node("b1"), opts);
    let client_opts = ClientOptions { max_frame: MAX_FRAME, ..ClientOptions::default() };
    let (_client, conn) = server.connect(&pki.client("c"), client_opts.clone()).await;
    let other_client = Client::<Perf>::new(&pki.client("d"), client_opts).expect("client");
    let other = other_client.connect(&server.addr_string()).await.expect("connect");

    // --- 100 requests in flight on the same connection (large enough to overlap the bad streams)
    let mut inflight = tokio::task::JoinSet::new();
    for id in 0..100u64 {
        let conn = conn.clone();
        inflight.spawn(async move {
            let payload = vec![id as u8; 200 * 1024];
            let reply = conn.call(EchoRequest::new(id, payload.clone())).await?;
            assert_eq!((reply.id, reply.payload), (id, payload));
            Ok::<_, RpcError>(())
        });
    }

    // --- meanwhile: an oversize length prefix, random garbage and an unknown stream kind
    let quic = conn.quic().clone();
    let mut oversize = vec![stream_kind::RPC];
    oversize.extend_from_slice(&(MAX_FRAME + 1).to_be_bytes());
    oversize.extend_from_slice(&[0u8; 4096]);
    let mut garbage = vec![stream_kind::RPC];
    let junk: Vec<u8> = (0..300u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    garbage.extend_from_slice(&(junk.len() as u32).to_be_bytes());
    garbage.extend_from_slice(&junk);
    let (a, b, c) = tokio::join!(
        raw_exchange(&quic, &oversize),
        raw_exchange(&quic, &garbage),
        raw_exchange(&quic, &[0xEE, 1, 2, 3]),
    );
    match a {
        ServerBody::Error(WireError::FrameTooLarge { len, max }) => {
            assert_eq!((len, max), (u64::from(MAX_FRAME) + 1, MAX_FRAME))
        }
        other => panic!("oversize frame: expected FrameTooLarge, got {other:?}"),
    }
    assert!(
        matches!(
            b,
            ServerBody::Error(WireError::MalformedFrame { .. } | WireError::UnsupportedVersion { .. })
        ),
        "garbage: {b:?}"
    );
    assert!(
        matches!(c, ServerBody::Error(WireError::UnknownStreamKind { kind: 0xEE })),
        "unknown kind: {c:?}"
    );

    // --- every in-flight request succeeded, the connection is open, the other one works
    while let Some(r) = inflight.join_next().await {
        r.expect("task").expect("in-flight request succeeds");
    }
    assert!(conn.is_open(), "the connection survives bad streams");
    let reply = other.call(EchoRequest::new(7, b"hi".to_vec())).await.expect("other conn");
    assert_eq!(reply.payload, b"hi");
    let reply = conn.call(EchoRequest::new(8, b"again".to_vec())).await.expect("same conn");
    assert_eq!(reply.payload, b"again");
}

#[tokio::test]
async fn a_request_over_the_limit_is_refused_locally_and_the_connection_is_unharmed() {
    let pki = TestPki::new("cluster");
    let server = PerfServerHandle::start(&pki.node("b1"), "b1");
    let opts = ClientOptions { max_frame: 64 * 1024, ..ClientOptions::default() };
    let (_client, conn) = server.connect(&pki.client("c"), opts).await;
    let err = conn.call(EchoRequest::new(1, vec![0; 100 * 1024])).await.expect_err("too large");
    assert!(matches!(err, RpcError::Frame(FrameError::TooLarge { max: 65536, .. })), "{err:?}");
    let ok = conn.call(EchoRequest::new(2, vec![1; 1000])).await.expect("small call");
    assert_eq!(ok.id, 2);
}

#[tokio::test]
async fn garbage_on_an_ordered_channel_closes_that_channel_only() {
    let pki = TestPki::new("cluster");
    let server = PerfServerHandle::start(&pki.node("b1"), "b1");
    let (_client, conn) = server.connect(&pki.client("c"), ClientOptions::default()).await;
    let good = conn.open_ordered().await.expect("ordered channel");

    let (mut send, mut recv) = conn.quic().open_bi().await.expect("raw");
    let mut bytes = vec![stream_kind::ORDERED];
    bytes.extend_from_slice(&5u32.to_be_bytes());
    bytes.extend_from_slice(&[9, 9, 9, 9, 9]); // envelope version 9
    send.write_all(&bytes).await.expect("write");
    let env = tokio::time::timeout(
        Duration::from_secs(10),
        frame::read::<ServerBody<PerfResponse, PerfPush>, _>(&mut recv, MAX_FRAME),
    )
    .await
    .expect("answer in time")
    .expect("frame")
    .expect("not empty");
    assert!(
        matches!(env.body, ServerBody::Error(WireError::UnsupportedVersion { got: 9, supported: 1 })),
        "{:?}",
        env.body
    );
    assert!(
        frame::read_payload(&mut recv, MAX_FRAME).await.map(|p| p.is_none()).unwrap_or(true),
        "channel ends after the error"
    );
    let _ = LENGTH_PREFIX;

    let reply = good
        .call(EchoRequest { pushes_before: 1, ..EchoRequest::new(3, vec![3]) })
        .await
        .expect("good channel still works");
    assert_eq!((reply.id, reply.pushes_sent), (3, 1));
}

#[tokio::test]
async fn a_reply_over_the_limit_fails_only_its_own_call_quickly_on_every_path() {
    let pki = TestPki::new("cluster");
    let opts = ServerOptions { max_frame: 256 * 1024, ..ServerOptions::default() };
    let server = PerfServerHandle::start_on("127.0.0.1:0".parse().expect("addr"), &pki.node("b1"), opts);
    let (_client, conn) = server.connect(&pki.client("c"), ClientOptions::default()).await;
    let channel = conn.open_ordered().await.expect("ordered channel");
    let too_big =
        |payload: usize| EchoRequest { reply_padding: 300 * 1024, ..EchoRequest::new(1, vec![1; payload]) };
    let check = |err: RpcError| {
        assert!(matches!(err, RpcError::Remote(WireError::ReplyTooLarge { max: 262144, .. })), "{err:?}");
    };
    let t0 = std::time::Instant::now();
    check(conn.call(too_big(10)).await.expect_err("small request on the lane"));
    check(conn.call(too_big(100 * 1024)).await.expect_err("large request on its own stream"));
    check(channel.call(too_big(10)).await.expect_err("ordered channel"));
    assert!(t0.elapsed() < Duration::from_secs(5), "typed errors, not timeouts: {:?}", t0.elapsed());
    // Everything still works.
    let ok = EchoRequest::new(2, vec![2; 10]);
    assert_eq!(conn.call(ok.clone()).await.expect("lane still open").id, 2);
    assert_eq!(channel.call(ok).await.expect("channel still open").id, 2);
}
