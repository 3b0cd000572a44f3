//! Mutual TLS on every link: who may connect, and what each refused client is told.
//!
//! Every case runs real QUIC with certificates from `sluice-certs`, and every refusal must
//! be reported at connect time (by the hello), not on some later request.

use sluice_certs::{CertSpec, Role};
use sluice_net::perf::{Perf, WhoAmI};
use sluice_net::{Client, ClientOptions, ClientTls, ConnectError, TlsIdentity};
use sluice_tests::{PerfServerHandle, TestPki};
use std::time::Duration;

fn opts() -> ClientOptions {
    ClientOptions { connect_timeout: Duration::from_secs(5), ..ClientOptions::default() }
}

/// After any refusal the server must still serve a good client.
async fn server_still_serves(pki: &TestPki, server: &PerfServerHandle) {
    let client = Client::<Perf>::new(&pki.client("good-client"), opts()).expect("client");
    let conn = client.connect(&server.addr_string()).await.expect("good client connects");
    assert_eq!(conn.call(WhoAmI).await.expect("who am i"), "good-client");
}

#[tokio::test]
async fn handshake_succeeds_and_each_side_learns_the_others_name() {
    let pki = TestPki::new("cluster");
    let server = PerfServerHandle::start(&pki.node("broker-1"), "broker-1");
    let (_client, conn) = server.connect(&pki.client("alice"), opts()).await;
    assert_eq!(conn.server_name(), "broker-1");
    assert_eq!(conn.call(WhoAmI).await.expect("call"), "alice", "the server sees the client's principal");
}

#[tokio::test]
async fn client_without_a_certificate_is_told_to_configure_one() {
    let pki = TestPki::new("cluster");
    let server = PerfServerHandle::start(&pki.node("broker-1"), "broker-1");
    let tls = ClientTls::without_certificate(pki.ca_pem()).expect("tls");
    let client = Client::<Perf>::new(&tls, opts()).expect("client");
    let err = client.connect(&server.addr_string()).await.expect_err("must be refused");
    assert!(matches!(err, ConnectError::CertificateRequired { .. }), "{err:?}");
    assert!(err.to_string().contains("tls.cert.file"), "{err}");
    server_still_serves(&pki, &server).await;
}

#[tokio::test]
async fn client_certificate_from_another_ca_is_refused_as_unknown_issuer() {
    let pki = TestPki::new("cluster");
    let other = TestPki::new("someone-else");
    let server = PerfServerHandle::start(&pki.node("broker-1"), "broker-1");
    // Trusts the right CA, but its own certificate is signed by another one.
    let cert = other.issue(CertSpec::new("mallory", Role::Client));
    let cert_pem = std::fs::read_to_string(&cert.cert).expect("read");
    let key_pem = std::fs::read_to_string(&cert.key).expect("read");
    let id = TlsIdentity::from_pem(pki.ca_pem(), &cert_pem, &key_pem).expect("identity");
    let client = Client::<Perf>::new(&ClientTls::new(id), opts()).expect("client");
    // Through the retrying, caching path: a refusal is final and comes back at once.
    let t0 = std::time::Instant::now();
    let err = client.connection(&server.addr_string()).await.expect_err("must be refused");
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "a refused certificate was retried for {:?}",
        t0.elapsed()
    );
    match &err {
        ConnectError::CertificateRefused { reason, .. } => assert_eq!(*reason, "unknown issuer"),
        other => panic!("expected CertificateRefused, got {other:?}"),
    }
    assert!(err.to_string().contains("cluster CA"), "{err}");
    server_still_serves(&pki, &server).await;
}

#[tokio::test]
async fn client_that_trusts_another_ca_refuses_the_server() {
    let pki = TestPki::new("cluster");
    let other = TestPki::new("someone-else");
    let server = PerfServerHandle::start(&pki.node("broker-1"), "broker-1");
    // Its own certificate is fine, but it trusts the wrong CA.
    let cert = pki.issue(CertSpec::new("bob", Role::Client));
    let id = TlsIdentity::from_pem(
        other.ca_pem(),
        &std::fs::read_to_string(&cert.cert).expect("read"),
        &std::fs::read_to_string(&cert.key).expect("read"),
    )
    .expect("identity");
    let client = Client::<Perf>::new(&ClientTls::new(id), opts()).expect("client");
    let err = client.connect(&server.addr_string()).await.expect_err("must refuse the server");
    match &err {
        ConnectError::ServerCertificateRejected { reason, .. } => {
            assert!(reason.contains("UnknownIssuer"), "{reason}")
        }
        other => panic!("expected ServerCertificateRejected, got {other:?}"),
    }
    assert!(err.to_string().contains("tls.ca.file"), "{err}");
    server_still_serves(&pki, &server).await;
}

#[tokio::test]
async fn expired_client_certificate_is_refused_and_the_message_says_so() {
    let pki = TestPki::new("cluster");
    let server = PerfServerHandle::start(&pki.node("broker-1"), "broker-1");
    let client = Client::<Perf>::new(&ClientTls::new(pki.expired("old-client", Role::Client)), opts())
        .expect("client");
    let err = client.connect(&server.addr_string()).await.expect_err("must be refused");
    match &err {
        ConnectError::CertificateRefused { reason, .. } => assert!(reason.contains("expired"), "{reason}"),
        other => panic!("expected CertificateRefused, got {other:?}"),
    }
    assert!(err.to_string().contains("sluice certs issue"), "{err}");
    server_still_serves(&pki, &server).await;
}

#[tokio::test]
async fn expired_server_certificate_is_refused_by_the_client() {
    let pki = TestPki::new("cluster");
    let server = PerfServerHandle::start(&pki.expired("old-broker", Role::Node), "old-broker");
    let client = Client::<Perf>::new(&pki.client("alice"), opts()).expect("client");
    let err = client.connect(&server.addr_string()).await.expect_err("must refuse the server");
    match &err {
        ConnectError::ServerCertificateRejected { reason, .. } => {
            assert!(reason.contains("expired"), "{reason}")
        }
        other => panic!("expected ServerCertificateRejected, got {other:?}"),
    }
}

mod other_version {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Serialize, Deserialize)]
    pub struct Ping;

    sluice_net::protocol! {
        /// The perf protocol's name at a version the server does not speak.
        pub protocol PerfV2 {
            alpn: "sluice-perf/2",
            request: V2Request,
            response: V2Response,
            push: (),
            handler: V2Handler,
            rpcs: { ping: Ping(Ping) -> u64; }
        }
    }

    sluice_net::protocol! {
        /// Another protocol altogether, as a keeper client pointed at a broker's port.
        pub protocol Keeper {
            alpn: "sluice-keeper/1",
            request: KRequest,
            response: KResponse,
            push: (),
            handler: KHandler,
            rpcs: { ping: Ping(Ping) -> u64; }
        }
    }
}

#[tokio::test]
async fn wrong_protocol_version_is_refused_naming_both_sides() {
    let pki = TestPki::new("cluster");
    let server = PerfServerHandle::start(&pki.node("broker-1"), "broker-1");
    let client = Client::<other_version::PerfV2>::new(&pki.client("alice"), opts()).expect("client");
    let err = client.connect(&server.addr_string()).await.expect_err("must be refused");
    match &err {
        ConnectError::ProtocolMismatch { ours, theirs, .. } => {
            assert_eq!(*ours, "sluice-perf/2");
            assert_eq!(theirs.as_deref(), Some("sluice-perf/1"));
        }
        other => panic!("expected ProtocolMismatch, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("sluice-perf/2") && msg.contains("sluice-perf/1"), "{msg}");

    // Another protocol altogether (a keeper client pointed at the wrong port) likewise.
    let client = Client::<other_version::Keeper>::new(&pki.client("alice"), opts()).expect("client");
    let err = client.connect(&server.addr_string()).await.expect_err("must be refused");
    assert!(err.to_string().contains("we speak sluice-keeper/1, the server speaks sluice-perf/1"), "{err}");
    server_still_serves(&pki, &server).await;
}

#[tokio::test]
async fn a_port_for_cluster_nodes_refuses_client_certificates_and_takes_node_ones() {
    let pki = TestPki::new("cluster");
    let opts_nodes =
        sluice_net::ServerOptions { name: "keeper-peer".into(), nodes_only: true, ..Default::default() };
    let addr = "127.0.0.1:0".parse().expect("addr");
    let server = PerfServerHandle::start_on(addr, &pki.node("keeper-1"), opts_nodes);
    let client = Client::<Perf>::new(&pki.client("app"), opts()).expect("client");
    let err = client.connect(&server.addr_string()).await.expect_err("a client certificate is refused");
    assert!(err.to_string().contains("this port is for cluster nodes only"), "{err}");
    // Another member (a node certificate, which also carries clientAuth) gets in.
    let node = Client::<Perf>::new(&ClientTls::new(pki.node("keeper-2")), opts()).expect("client");
    let conn = node.connect(&server.addr_string()).await.expect("a node connects");
    assert_eq!(conn.call(WhoAmI).await.expect("who am i"), "keeper-2");
}

/// One port, several protocols: the ALPN a client asks for picks the service
/// (`sluice_net::Routes`), and each protocol says who may open it — the way a broker serves
/// its client protocol and, to node certificates only, the inter-broker one.
#[tokio::test]
async fn one_port_serves_several_protocols_picked_by_alpn_each_with_its_own_access() {
    use std::sync::Arc;

    use other_version::{KHandler, Keeper, PerfV2, Ping, V2Handler};
    use sluice_net::{Access, Peer, Routes, Server, ServerOptions, Typed};

    struct Two;
    impl V2Handler for Two {
        async fn ping(&self, _: &Peer, _: Ping) -> u64 {
            2
        }
    }
    struct Three;
    impl KHandler for Three {
        async fn ping(&self, _: &Peer, _: Ping) -> u64 {
            3
        }
    }
    let pki = TestPki::new("routes");
    let addr = "127.0.0.1:0".parse().expect("addr");
    let server = Server::<Perf>::bind(addr, &pki.node("broker-1"), ServerOptions::default()).expect("bind");
    let addr = server.local_addr().expect("local addr").to_string();
    let routes = Routes::new()
        .with::<PerfV2, _>(Arc::new(Typed(Two)), Access::Everyone)
        .with::<Keeper, _>(Arc::new(Typed(Three)), Access::NodesOnly);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(server.serve_with(
        Arc::new(Typed(sluice_net::perf::PerfServer::default())),
        routes,
        async move {
            let _ = stopped.await;
        },
    ));
    // --- each protocol reaches its own service on the one port
    let app = pki.client("app");
    let perf = Client::<Perf>::new(&app, opts()).expect("client");
    assert_eq!(perf.call(&addr, WhoAmI).await.expect("perf call"), "app");
    let v2 = Client::<PerfV2>::new(&app, opts()).expect("client");
    assert_eq!(v2.call(&addr, Ping).await.expect("a route open to everyone"), 2);
    // --- a route for nodes refuses a client certificate at connect, naming the protocol
    let as_client = Client::<Keeper>::new(&app, opts()).expect("client");
    let err = as_client.connect(&addr).await.expect_err("a client certificate is refused");
    assert!(err.to_string().contains("sluice-keeper/1 is for cluster nodes only"), "{err}");
    // ... and takes a node certificate
    let as_node = Client::<Keeper>::new(&ClientTls::new(pki.node("broker-2")), opts()).expect("client");
    assert_eq!(as_node.call(&addr, Ping).await.expect("a node's call"), 3);
    // --- the refusal left the other protocols serving
    assert_eq!(perf.call(&addr, WhoAmI).await.expect("perf call"), "app");
    let _ = stop.send(());
    served.await.expect("server task").expect("served");
}
