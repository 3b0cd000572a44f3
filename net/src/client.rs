//! The client side: connecting with a hello, typed calls, ordered channels, and a
//! per-address connection cache that reconnects with bounded backoff.
//!
//! Under TLS 1.3 a client finishes its handshake before the server has checked the client's
//! certificate, so a successful QUIC `connect` proves nothing. Every connection therefore
//! starts with a hello on its own stream; when the server refused our certificate, the hello
//! fails with the TLS alert the server sent, and [`ConnectError`] turns it into a sentence a
//! person can act on.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tracing::{debug, Instrument};

use crate::frame::{self, Envelope, FrameError, TraceContext, DEFAULT_MAX_FRAME};
use crate::protocol::{codes, stream_kind, Hello, HelloReply, Protocol, Rpc, ServerBody, WireError};
use crate::tls::{self, ClientTls, TlsError, TransportOptions, NEGOTIATE_ALPN};

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Largest frame sent or accepted.
    pub max_frame: u32,
    /// How long one call may take, from opening its stream to the reply.
    pub request_timeout: Duration,
    /// How long [`Client::connection`] keeps retrying before it gives up.
    pub connect_timeout: Duration,
    /// First wait between connection attempts; doubles up to `max_backoff`.
    pub initial_backoff: Duration,
    /// Longest wait between connection attempts.
    pub max_backoff: Duration,
    /// QUIC settings.
    pub transport: TransportOptions,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            max_frame: DEFAULT_MAX_FRAME,
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            transport: TransportOptions::default(),
        }
    }
}

/// Why a connection could not be made. Each variant's message says what to check.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The address is not `host:port` or does not resolve.
    #[error("cannot resolve {addr}: {reason} (expected HOST:PORT)")]
    Address {
        /// What was given.
        addr: String,
        /// Why it failed.
        reason: String,
    },
    /// Our TLS material is unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// No local UDP socket.
    #[error("cannot open a local UDP socket: {0}")]
    Socket(std::io::Error),
    /// We do not trust the server's certificate.
    #[error("the server's certificate at {addr} is not trusted: {reason} — is tls.ca.file the CA that signed the server's certificate, and does the certificate name the host you connect to?")]
    ServerCertificateRejected {
        /// Server address.
        addr: String,
        /// rustls' reason.
        reason: String,
    },
    /// The server requires a client certificate and we sent none.
    #[error("server at {addr} requires a client certificate and we sent none — set tls.cert.file and tls.key.file (or --tls-cert / --tls-key)")]
    CertificateRequired {
        /// Server address.
        addr: String,
    },
    /// The server refused our certificate.
    #[error("server at {addr} refused our certificate: {reason} — {hint}")]
    CertificateRefused {
        /// Server address.
        addr: String,
        /// The TLS alert, in words.
        reason: &'static str,
        /// What to do about it.
        hint: &'static str,
    },
    /// The server speaks another protocol or version.
    #[error("protocol mismatch with {addr}: we speak {ours}, {}", match theirs { Some(t) => format!("the server speaks {t}"), None => "the server speaks none of the protocols we offered — is this the right port?".into() })]
    ProtocolMismatch {
        /// Server address.
        addr: String,
        /// Our ALPN.
        ours: &'static str,
        /// The server's, when it told us.
        theirs: Option<String>,
    },
    /// No answer in time.
    #[error("no answer from {addr} within {after:?} — is the server running and is the address right? (QUIC runs over UDP)")]
    Timeout {
        /// Server address.
        addr: String,
        /// How long we waited.
        after: Duration,
    },
    /// The connection failed for another reason.
    #[error("connection to {addr} failed: {source}")]
    Connection {
        /// Server address.
        addr: String,
        /// quinn's reason.
        source: quinn::ConnectionError,
    },
    /// The peer ended the TLS handshake with another alert.
    #[error("TLS handshake with {addr} refused: {reason}")]
    Refused {
        /// Server address.
        addr: String,
        /// The alert and its text.
        reason: String,
    },
    /// The hello exchange failed in a way not explained by the connection.
    #[error("hello with {addr} failed: {reason}")]
    Hello {
        /// Server address.
        addr: String,
        /// Why.
        reason: String,
    },
}

impl ConnectError {
    /// Whether trying again could help (timeouts and lost connections) as opposed to
    /// configuration problems (certificates, protocol, address).
    pub fn is_transient(&self) -> bool {
        match self {
            ConnectError::Timeout { .. } | ConnectError::Hello { .. } => true,
            // A TLS alert is a verdict on our configuration; retrying cannot change it.
            ConnectError::Connection { source, .. } => !is_tls_alert(source),
            _ => false,
        }
    }
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// No connection could be made.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// A frame we sent or received was bad (detected on our side).
    #[error("{0}")]
    Frame(#[from] FrameError),
    /// The server reported a transport-level error for this stream.
    #[error("server refused the request: {0}")]
    Remote(WireError),
    /// The connection was lost.
    #[error("connection to {addr} lost: {source}")]
    ConnectionLost {
        /// Server address.
        addr: String,
        /// quinn's reason.
        source: quinn::ConnectionError,
    },
    /// The stream failed without the connection failing.
    #[error("stream to {addr} failed: {reason}")]
    Stream {
        /// Server address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// No reply in time.
    #[error("{rpc} to {addr} got no reply within {after:?}")]
    Timeout {
        /// The request's name.
        rpc: &'static str,
        /// Server address.
        addr: String,
        /// How long we waited.
        after: Duration,
    },
    /// The server closed the stream without replying.
    #[error("{rpc} to {addr}: the server closed the stream without a reply")]
    NoReply {
        /// The request's name.
        rpc: &'static str,
        /// Server address.
        addr: String,
    },
    /// The reply answered another request.
    #[error("reply correlation id {got} does not match request {sent}")]
    CorrelationMismatch {
        /// Our id.
        sent: u64,
        /// The reply's.
        got: u64,
    },
    /// The reply is of another kind than the request's reply type.
    #[error("{rpc}: the server answered with another reply kind: {got}")]
    UnexpectedReply {
        /// The request's name.
        rpc: &'static str,
        /// What came back (debug form, shortened).
        got: String,
    },
    /// The ordered channel has ended.
    #[error("ordered channel to {addr} closed: {reason}")]
    ChannelClosed {
        /// Server address.
        addr: String,
        /// Why.
        reason: String,
    },
}

/// Requests whose frame is at most this big share the connection's lane; bigger ones get a
/// stream of their own, so a bulk transfer never holds up small calls behind it.
pub const LANE_MAX_FRAME: usize = 64 * 1024;

struct ConnShared {
    conn: quinn::Connection,
    addr: String,
    server_name: String,
    /// The smaller of our limit and the server's.
    max_frame: u32,
    request_timeout: Duration,
    next_id: AtomicU64,
}

/// One authenticated connection to a server of protocol `P`. Cheap to clone; any number of
/// calls may run on it concurrently, each on its own stream.
pub struct Connection<P: Protocol> {
    shared: Arc<ConnShared>,
    lane: Arc<tokio::sync::RwLock<Option<OrderedCaller<P>>>>,
}

impl<P: Protocol> Clone for Connection<P> {
    fn clone(&self) -> Self {
        Connection { shared: self.shared.clone(), lane: self.lane.clone() }
    }
}

impl<P: Protocol> std::fmt::Debug for Connection<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("addr", &self.shared.addr).field("protocol", &P::ALPN).finish()
    }
}

impl<P: Protocol> Connection<P> {
    /// Connects once to `addr` (no retries) and says hello. Must run inside a tokio runtime.
    async fn establish(
        endpoint: &quinn::Endpoint,
        config: &quinn::ClientConfig,
        addr: &str,
        (sock, host): (SocketAddr, String),
        opts: &ClientOptions,
    ) -> Result<Self, ConnectError> {
        let connecting = endpoint
            .connect_with(config.clone(), sock, &host)
            .map_err(|e| ConnectError::Address { addr: addr.into(), reason: e.to_string() })?;
        let conn = match tokio::time::timeout(opts.connect_timeout, connecting).await {
            Err(_) => return Err(ConnectError::Timeout { addr: addr.into(), after: opts.connect_timeout }),
            Ok(Err(e)) => return Err(classify::<P>(addr, e)),
            Ok(Ok(c)) => c,
        };
        let negotiated = conn
            .handshake_data()
            .and_then(|h| h.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
            .and_then(|h| h.protocol.clone());
        if negotiated.as_deref() == Some(NEGOTIATE_ALPN.as_bytes()) {
            // The server will close at once, saying which protocol it speaks.
            let reason = tokio::time::timeout(Duration::from_secs(2), conn.closed()).await;
            let theirs = match reason {
                Ok(quinn::ConnectionError::ApplicationClosed(c))
                    if c.error_code == codes::PROTOCOL_MISMATCH =>
                {
                    String::from_utf8_lossy(&c.reason).strip_prefix("server speaks ").map(str::to_string)
                }
                _ => None,
            };
            conn.close(codes::PROTOCOL_MISMATCH, b"");
            return Err(ConnectError::ProtocolMismatch { addr: addr.into(), ours: P::ALPN, theirs });
        }
        let mut shared = ConnShared {
            conn,
            addr: addr.into(),
            server_name: String::new(),
            max_frame: opts.max_frame,
            request_timeout: opts.request_timeout,
            next_id: AtomicU64::new(1),
        };
        let hello = Hello { alpn: P::ALPN.into(), software: crate::SOFTWARE.into() };
        let reply = match tokio::time::timeout(
            opts.connect_timeout,
            exchange::<Hello, HelloReply, ()>(&shared, stream_kind::HELLO, hello, None, "Hello"),
        )
        .await
        {
            Err(_) => {
                shared.conn.close(codes::DONE, b"hello timed out");
                return Err(ConnectError::Timeout { addr: addr.into(), after: opts.connect_timeout });
            }
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                // A refused certificate shows up here: the connection's close reason says why.
                if let Some(reason) = shared.conn.close_reason() {
                    return Err(classify::<P>(addr, reason));
                }
                if let Ok(reason) =
                    tokio::time::timeout(Duration::from_millis(500), shared.conn.closed()).await
                {
                    return Err(classify::<P>(addr, reason));
                }
                return Err(ConnectError::Hello { addr: addr.into(), reason: e.to_string() });
            }
        };
        debug!(%addr, server = %reply.server, we_are = %reply.you, "connected");
        shared.server_name = reply.server;
        shared.max_frame = opts.max_frame.min(reply.max_frame);
        Ok(Connection { shared: Arc::new(shared), lane: Arc::new(tokio::sync::RwLock::new(None)) })
    }

    /// Sends one request and waits for its reply.
    pub async fn call<R: Rpc<P>>(&self, request: R) -> Result<R::Reply, RpcError> {
        self.call_traced(request, None).await
    }

    /// [`call`](Self::call) waiting up to `after` instead of the request timeout, for a
    /// request the server may rightly hold longer (a group join waits for the rebalance).
    pub async fn call_within<R: Rpc<P>>(&self, request: R, after: Duration) -> Result<R::Reply, RpcError> {
        self.call_inner(request, None, after).await
    }

    /// [`call`](Self::call) with a W3C trace context in the envelope. Every call without
    /// one (`None`, or [`call`](Self::call)) carries the current span's, if the binary
    /// installed [`crate::trace`] hooks.
    ///
    /// Small requests travel on the connection's lane (one long-lived stream multiplexing
    /// many calls); a request whose frame exceeds [`LANE_MAX_FRAME`] gets its own stream.
    pub async fn call_traced<R: Rpc<P>>(
        &self,
        request: R,
        trace: Option<TraceContext>,
    ) -> Result<R::Reply, RpcError> {
        self.call_inner(request, trace, self.shared.request_timeout).await
    }

    async fn call_inner<R: Rpc<P>>(
        &self,
        request: R,
        trace: Option<TraceContext>,
        after: Duration,
    ) -> Result<R::Reply, RpcError> {
        let timeout = || RpcError::Timeout { rpc: R::NAME, addr: self.shared.addr.clone(), after };
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let trace = trace.or_else(crate::trace::current);
        let env = Envelope { correlation_id: id, trace, body: request.into_request() };
        let frame = frame::encode(&env, self.shared.max_frame)?;
        if frame.len() <= LANE_MAX_FRAME {
            let lane = self.lane().await?;
            return lane.send_encoded::<R>(id, frame).await?.reply_within(after).await;
        }
        let fut =
            exchange_encoded::<P::Response, P::Push>(&self.shared, stream_kind::RPC, id, frame, R::NAME);
        let response = tokio::time::timeout(after, fut).await.map_err(|_| timeout())??;
        R::from_response(response)
            .map_err(|other| RpcError::UnexpectedReply { rpc: R::NAME, got: short_debug(&other) })
    }

    /// The open lane, opening a new one if there is none or it has closed.
    async fn lane(&self) -> Result<OrderedCaller<P>, RpcError> {
        if let Some(lane) = self.lane.read().await.as_ref().filter(|l| !l.is_closed()) {
            return Ok(lane.clone());
        }
        let mut slot = self.lane.write().await;
        if let Some(lane) = slot.as_ref().filter(|l| !l.is_closed()) {
            return Ok(lane.clone());
        }
        let channel = OrderedChannel::open(self, stream_kind::MUX, None).await?;
        let caller = channel.caller();
        *slot = Some(caller.clone());
        Ok(caller)
    }

    /// Opens an ordered channel: requests, replies and server pushes on one stream, in order.
    pub async fn open_ordered(&self) -> Result<OrderedChannel<P>, RpcError> {
        OrderedChannel::open(self, stream_kind::ORDERED, None).await
    }

    /// [`open_ordered`](Self::open_ordered), handing each push to `on_push` (on the channel's
    /// reader, in order) instead of the channel's own queue: a client that reconnects keeps
    /// one stream of pushes across its channels, and can note what a push means before the
    /// reply that follows it completes.
    pub async fn open_ordered_with(
        &self,
        on_push: impl FnMut(P::Push) + Send + 'static,
    ) -> Result<OrderedCaller<P>, RpcError> {
        Ok(OrderedChannel::open(self, stream_kind::ORDERED, Some(Box::new(on_push))).await?.caller())
    }

    /// Sends `total` bytes (repeating `chunk`) on one stream to a server that accepts
    /// `DISCARD` streams, without framing or copying; returns the count the server received.
    /// This measures the bare transport: the ceiling for anything framed on top of it.
    pub async fn discard(&self, chunk: bytes::Bytes, total: u64) -> Result<u64, RpcError> {
        let s = &self.shared;
        let (mut send, mut recv) = s.conn.open_bi().await.map_err(|e| lost(s, e))?;
        send.write_all(&[stream_kind::DISCARD]).await.map_err(|e| write_err(s, e))?;
        let mut sent = 0u64;
        while sent < total {
            let n = (chunk.len() as u64).min(total - sent) as usize;
            send.write_chunk(chunk.slice(..n)).await.map_err(|e| write_err(s, e))?;
            sent += n as u64;
        }
        let _ = send.finish();
        let mut count = [0u8; 8];
        recv.read_exact(&mut count)
            .await
            .map_err(|e| RpcError::Stream { addr: s.addr.clone(), reason: e.to_string() })?;
        Ok(u64::from_be_bytes(count))
    }

    /// The server's name, as it said in the hello.
    pub fn server_name(&self) -> &str {
        &self.shared.server_name
    }

    /// The address this connection was made to.
    pub fn addr(&self) -> &str {
        &self.shared.addr
    }

    /// Whether the connection is still open.
    pub fn is_open(&self) -> bool {
        self.shared.conn.close_reason().is_none()
    }

    /// The underlying QUIC connection (for diagnostics and tests of raw streams).
    pub fn quic(&self) -> &quinn::Connection {
        &self.shared.conn
    }

    /// Closes the connection.
    pub fn close(&self) {
        self.shared.conn.close(codes::DONE, b"closed by client");
    }
}

/// One request/reply on a fresh stream (used for the hello).
async fn exchange<Q: serde::Serialize, R: serde::de::DeserializeOwned, Pu: serde::de::DeserializeOwned>(
    shared: &ConnShared,
    kind: u8,
    body: Q,
    trace: Option<TraceContext>,
    rpc: &'static str,
) -> Result<R, RpcError> {
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let frame = frame::encode(&Envelope { correlation_id: id, trace, body }, shared.max_frame)?;
    exchange_encoded::<R, Pu>(shared, kind, id, frame, rpc).await
}

/// Opens a stream of `kind`, sends one encoded frame on it and reads the reply.
async fn exchange_encoded<R: serde::de::DeserializeOwned, Pu: serde::de::DeserializeOwned>(
    shared: &ConnShared,
    kind: u8,
    id: u64,
    frame: frame::Frame,
    rpc: &'static str,
) -> Result<R, RpcError> {
    let (mut send, mut recv) = shared.conn.open_bi().await.map_err(|e| lost(shared, e))?;
    // The frame is handed to quinn as it is, without copying it behind the kind byte.
    send.write_all(&[kind]).await.map_err(|e| write_err(shared, e))?;
    send.write_all_chunks(&mut frame.into_chunks()).await.map_err(|e| write_err(shared, e))?;
    let _ = send.finish();
    let reply = frame::read::<ServerBody<R, Pu>, _>(&mut recv, shared.max_frame)
        .await
        .map_err(|e| read_err(shared, e))?
        .ok_or_else(|| RpcError::NoReply { rpc, addr: shared.addr.clone() })?;
    match reply.body {
        ServerBody::Reply(r) if reply.correlation_id == id => Ok(r),
        ServerBody::Reply(_) => Err(RpcError::CorrelationMismatch { sent: id, got: reply.correlation_id }),
        ServerBody::Error(e) => Err(RpcError::Remote(e)),
        ServerBody::Push(_) => Err(RpcError::UnexpectedReply { rpc, got: "a push on an RPC stream".into() }),
    }
}

fn lost(shared: &ConnShared, source: quinn::ConnectionError) -> RpcError {
    RpcError::ConnectionLost { addr: shared.addr.clone(), source }
}

fn write_err(shared: &ConnShared, e: quinn::WriteError) -> RpcError {
    match e {
        quinn::WriteError::ConnectionLost(source) => lost(shared, source),
        other => RpcError::Stream { addr: shared.addr.clone(), reason: other.to_string() },
    }
}

fn read_err(shared: &ConnShared, e: FrameError) -> RpcError {
    match (e, shared.conn.close_reason()) {
        (FrameError::Io(_), Some(source)) => lost(shared, source),
        (FrameError::Io(io), None) => RpcError::Stream { addr: shared.addr.clone(), reason: io.to_string() },
        (other, _) => RpcError::Frame(other),
    }
}

fn short_debug<T: std::fmt::Debug>(v: &T) -> String {
    let mut s = format!("{v:?}");
    if s.len() > 200 {
        let mut cut = 200;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

fn crypto_alert(code: quinn::TransportErrorCode) -> Option<u8> {
    let c = u64::from(code);
    (0x100..0x200).contains(&c).then(|| (c - 0x100) as u8)
}

fn is_tls_alert(e: &quinn::ConnectionError) -> bool {
    match e {
        quinn::ConnectionError::TransportError(te) => crypto_alert(te.code).is_some(),
        quinn::ConnectionError::ConnectionClosed(cc) => crypto_alert(cc.error_code).is_some(),
        _ => false,
    }
}

/// Turns a connection failure into an actionable [`ConnectError`].
fn classify<P: Protocol>(addr: &str, e: quinn::ConnectionError) -> ConnectError {
    use quinn::ConnectionError as C;
    let addr_s = addr.to_string();
    match e {
        // Raised on our side: we refused the server's certificate.
        C::TransportError(te) if crypto_alert(te.code).is_some() => {
            if te.reason.contains("certificate") || te.reason.contains("Certificate") {
                ConnectError::ServerCertificateRejected { addr: addr_s, reason: te.reason }
            } else {
                ConnectError::Refused { addr: addr_s, reason: te.reason }
            }
        }
        // Sent by the server: a TLS alert.
        C::ConnectionClosed(cc) if crypto_alert(cc.error_code).is_some() => {
            let alert = crypto_alert(cc.error_code).unwrap_or_default();
            let refused =
                |reason, hint| ConnectError::CertificateRefused { addr: addr_s.clone(), reason, hint };
            match alert {
                116 => ConnectError::CertificateRequired { addr: addr_s },
                48 => refused(
                    "unknown issuer",
                    "is tls.cert.file signed by the cluster CA (the server's tls.ca.file)? Reissue it with `sluice certs issue`",
                ),
                45 => refused(
                    "certificate expired or not yet valid",
                    "reissue it with `sluice certs issue` and check both machines' clocks",
                ),
                44 => refused("certificate revoked", "ask for a new certificate"),
                42 | 43 => refused(
                    "bad or unsupported certificate",
                    "tls.cert.file must be a certificate made by `sluice certs` for a node or client",
                ),
                46 => refused("certificate not usable for a client", "use a client or node certificate from `sluice certs`"),
                51 => refused(
                    "its signature does not verify against the cluster CA",
                    "tls.cert.file was signed by another CA of the same name; reissue it from the cluster CA with `sluice certs issue`",
                ),
                120 => ConnectError::ProtocolMismatch { addr: addr_s, ours: P::ALPN, theirs: None },
                _ => ConnectError::Refused {
                    addr: addr_s,
                    reason: format!("TLS alert {alert}: {}", String::from_utf8_lossy(&cc.reason)),
                },
            }
        }
        C::ApplicationClosed(ac) if ac.error_code == codes::PROTOCOL_MISMATCH => {
            let theirs =
                String::from_utf8_lossy(&ac.reason).strip_prefix("server speaks ").map(str::to_string);
            ConnectError::ProtocolMismatch { addr: addr_s, ours: P::ALPN, theirs }
        }
        C::TimedOut => ConnectError::Timeout { addr: addr_s, after: Duration::ZERO },
        other => ConnectError::Connection { addr: addr_s, source: other },
    }
}

/// Splits `host:port` (or `[v6]:port`) and resolves it.
async fn resolve(addr: &str) -> Result<(SocketAddr, String), ConnectError> {
    let bad = |reason: String| ConnectError::Address { addr: addr.into(), reason };
    let (host, port) = addr.rsplit_once(':').ok_or_else(|| bad("no port".into()))?;
    port.parse::<u16>().map_err(|_| bad(format!("port {port:?} is not a number from 0 to 65535")))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad("no host".into()));
    }
    let mut addrs = tokio::net::lookup_host(addr).await.map_err(|e| bad(e.to_string()))?;
    let sock = addrs.next().ok_or_else(|| bad("no address found".into()))?;
    Ok((sock, host.to_string()))
}

type Slot<P> = Arc<tokio::sync::Mutex<Option<Connection<P>>>>;

/// A client of protocol `P`: one local endpoint, one cached connection per server address,
/// reconnection with bounded exponential backoff.
pub struct Client<P: Protocol> {
    endpoints: Mutex<HashMap<bool, quinn::Endpoint>>,
    config: quinn::ClientConfig,
    opts: ClientOptions,
    cache: Mutex<HashMap<String, Slot<P>>>,
}

impl<P: Protocol> std::fmt::Debug for Client<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("protocol", &P::ALPN).finish_non_exhaustive()
    }
}

impl<P: Protocol> Client<P> {
    /// A client presenting `tls`. Must be created inside a tokio runtime.
    pub fn new(tls: &ClientTls, opts: ClientOptions) -> Result<Self, ConnectError> {
        let config = tls::client_config(tls, P::ALPN, &opts.transport)?;
        Ok(Client { endpoints: Mutex::new(HashMap::new()), config, opts, cache: Mutex::new(HashMap::new()) })
    }

    /// The client's options.
    pub fn options(&self) -> &ClientOptions {
        &self.opts
    }

    fn endpoint(&self, v6: bool) -> Result<quinn::Endpoint, ConnectError> {
        let mut eps = self.endpoints.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(ep) = eps.get(&v6) {
            return Ok(ep.clone());
        }
        let bind: SocketAddr = if v6 { "[::]:0".parse() } else { "0.0.0.0:0".parse() }
            .map_err(|e: std::net::AddrParseError| ConnectError::Socket(std::io::Error::other(e)))?;
        let ep = crate::socket::endpoint(bind, None, &self.opts.transport).map_err(ConnectError::Socket)?;
        eps.insert(v6, ep.clone());
        Ok(ep)
    }

    /// Connects once to `addr`, bypassing the cache.
    pub async fn connect(&self, addr: &str) -> Result<Connection<P>, ConnectError> {
        self.connect_with(addr, &self.opts).await
    }

    async fn connect_with(&self, addr: &str, opts: &ClientOptions) -> Result<Connection<P>, ConnectError> {
        let target = resolve(addr).await?;
        let ep = self.endpoint(target.0.is_ipv6())?;
        Connection::establish(&ep, &self.config, addr, target, opts).await
    }

    /// The cached connection to `addr`, (re)connecting if there is none or it has closed.
    /// Transient failures are retried with exponential backoff until `connect_timeout`;
    /// configuration failures (certificates, protocol) are returned at once.
    pub async fn connection(&self, addr: &str) -> Result<Connection<P>, ConnectError> {
        let slot = {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            cache.entry(addr.to_string()).or_default().clone()
        };
        let mut slot = slot.lock().await;
        if let Some(c) = slot.as_ref().filter(|c| c.is_open()) {
            return Ok(c.clone());
        }
        let deadline = Instant::now() + self.opts.connect_timeout;
        let mut backoff = crate::Backoff::new(self.opts.initial_backoff, self.opts.max_backoff);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let remaining = deadline.saturating_duration_since(Instant::now());
            let mut opts = self.opts.clone();
            opts.connect_timeout = remaining.max(Duration::from_millis(1));
            match self.connect_with(addr, &opts).in_current_span().await {
                Ok(c) => {
                    *slot = Some(c.clone());
                    return Ok(c);
                }
                Err(e) if e.is_transient() && Instant::now() + backoff.peek() < deadline => {
                    let wait = backoff.next_delay();
                    debug!(%addr, attempt, error = %e, retry_in = ?wait, "connect failed; retrying");
                    tokio::time::sleep(wait).await;
                }
                Err(ConnectError::Timeout { .. }) => {
                    return Err(ConnectError::Timeout { addr: addr.into(), after: self.opts.connect_timeout })
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Closes and forgets the cached connection to `addr`, if any: calls waiting on it fail
    /// at once (the caller knows the peer is gone, e.g. its registration vanished). The next
    /// call connects afresh.
    pub fn forget(&self, addr: &str) {
        let slot = self.cache.lock().unwrap_or_else(|p| p.into_inner()).remove(addr);
        if let Some(slot) = slot {
            if let Ok(conn) = slot.try_lock() {
                if let Some(c) = conn.as_ref() {
                    c.close();
                }
            }
        }
    }

    /// Calls `addr` on the cached connection (connecting first if needed). The call itself is
    /// not retried: whether a request that died with its connection took effect is for the
    /// caller to decide.
    pub async fn call<R: Rpc<P>>(&self, addr: &str, request: R) -> Result<R::Reply, RpcError> {
        let conn = self.connection(addr).await?;
        conn.call(request).await
    }

    /// [`call`](Self::call) waiting up to `after` for the reply instead of the request
    /// timeout.
    pub async fn call_within<R: Rpc<P>>(
        &self,
        addr: &str,
        request: R,
        after: Duration,
    ) -> Result<R::Reply, RpcError> {
        let conn = self.connection(addr).await?;
        conn.call_within(request, after).await
    }
}

struct ChannelShared<R> {
    pending: Mutex<HashMap<u64, oneshot::Sender<Result<R, RpcError>>>>,
    closed: Mutex<Option<String>>,
    next_id: AtomicU64,
}

/// The client end of an ordered channel.
///
/// Calls are pipelined on one stream and answered in order. Pushes arrive through
/// [`next_push`](Self::next_push); a push the server sent before a reply is always queued
/// before that reply completes, so after a call returns, every push the server sent before
/// answering it can be taken with [`try_next_push`](Self::try_next_push).
pub struct OrderedChannel<P: Protocol> {
    caller: OrderedCaller<P>,
    pushes: mpsc::UnboundedReceiver<P::Push>,
}

/// A clonable handle for making calls on an ordered channel from several tasks.
pub struct OrderedCaller<P: Protocol> {
    shared: Arc<ChannelShared<P::Response>>,
    tx: mpsc::Sender<frame::Frame>,
    addr: Arc<str>,
    max_frame: u32,
    request_timeout: Duration,
}

impl<P: Protocol> Clone for OrderedCaller<P> {
    fn clone(&self) -> Self {
        OrderedCaller {
            shared: self.shared.clone(),
            tx: self.tx.clone(),
            addr: self.addr.clone(),
            max_frame: self.max_frame,
            request_timeout: self.request_timeout,
        }
    }
}

impl<P: Protocol> std::fmt::Debug for OrderedChannel<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderedChannel").field("addr", &self.caller.addr).finish_non_exhaustive()
    }
}

impl<P: Protocol> std::fmt::Debug for OrderedCaller<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderedCaller").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl<P: Protocol> OrderedChannel<P> {
    async fn open(
        conn: &Connection<P>,
        kind: u8,
        on_push: Option<Box<dyn FnMut(P::Push) + Send>>,
    ) -> Result<Self, RpcError> {
        let s = &conn.shared;
        let (mut send, mut recv) = s.conn.open_bi().await.map_err(|e| lost(s, e))?;
        send.write_all(&[kind]).await.map_err(|e| write_err(s, e))?;
        let shared = Arc::new(ChannelShared::<P::Response> {
            pending: Mutex::new(HashMap::new()),
            closed: Mutex::new(None),
            next_id: AtomicU64::new(1),
        });
        let (tx, rx) = mpsc::channel::<frame::Frame>(4096);
        let (own_tx, pushes) = mpsc::unbounded_channel();
        let mut on_push = on_push.unwrap_or_else(|| {
            Box::new(move |p| {
                let _ = own_tx.send(p);
            })
        });
        let addr: Arc<str> = s.addr.as_str().into();
        // Writer: frames go out in the order callers queued them.
        tokio::spawn(frame::write_queued(send, rx));
        // Reader: pushes are queued before the replies that follow them are completed.
        let reader_shared = shared.clone();
        let max_frame = s.max_frame;
        let reader_addr = addr.clone();
        let quic = s.conn.clone();
        tokio::spawn(async move {
            let reason = loop {
                match frame::read::<ServerBody<P::Response, P::Push>, _>(&mut recv, max_frame).await {
                    Ok(Some(env)) => match env.body {
                        ServerBody::Push(p) => on_push(p),
                        ServerBody::Reply(r) => {
                            let waiter = reader_shared
                                .pending
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .remove(&env.correlation_id);
                            if let Some(w) = waiter {
                                let _ = w.send(Ok(r));
                            }
                        }
                        ServerBody::Error(e) => {
                            let waiter = reader_shared
                                .pending
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .remove(&env.correlation_id);
                            match waiter {
                                // An error for one request fails that request only.
                                Some(w) if env.correlation_id != 0 => {
                                    let _ = w.send(Err(RpcError::Remote(e)));
                                }
                                _ => break format!("server: {e}"),
                            }
                        }
                    },
                    Ok(None) => break "server ended the channel".to_string(),
                    Err(FrameError::Io(e)) => match quic.close_reason() {
                        Some(c) => break format!("connection lost: {c}"),
                        None => break e.to_string(),
                    },
                    Err(e) => break e.to_string(),
                }
            };
            debug!(addr = %reader_addr, %reason, "ordered channel closed");
            *reader_shared.closed.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason.clone());
            let waiters: Vec<_> =
                reader_shared.pending.lock().unwrap_or_else(|p| p.into_inner()).drain().collect();
            for (_, w) in waiters {
                let _ = w.send(Err(RpcError::ChannelClosed {
                    addr: reader_addr.to_string(),
                    reason: reason.clone(),
                }));
            }
        });
        Ok(OrderedChannel {
            caller: OrderedCaller {
                shared,
                tx,
                addr,
                max_frame: s.max_frame,
                request_timeout: s.request_timeout,
            },
            pushes,
        })
    }

    /// Sends a request and waits for its reply (other calls may be in flight meanwhile).
    pub async fn call<R: Rpc<P>>(&self, request: R) -> Result<R::Reply, RpcError> {
        self.caller.call(request).await
    }

    /// A clonable handle for calls from other tasks.
    pub fn caller(&self) -> OrderedCaller<P> {
        self.caller.clone()
    }

    /// The next push; `None` once the channel has ended and every push was taken.
    pub async fn next_push(&mut self) -> Option<P::Push> {
        self.pushes.recv().await
    }

    /// A push that has already arrived, if any.
    pub fn try_next_push(&mut self) -> Option<P::Push> {
        self.pushes.try_recv().ok()
    }
}

impl<P: Protocol> OrderedCaller<P> {
    /// The address its connection was made to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends a request and waits for its reply.
    pub async fn call<R: Rpc<P>>(&self, request: R) -> Result<R::Reply, RpcError> {
        self.call_traced(request, None).await
    }

    /// [`call`](Self::call) with a trace context.
    pub async fn call_traced<R: Rpc<P>>(
        &self,
        request: R,
        trace: Option<TraceContext>,
    ) -> Result<R::Reply, RpcError> {
        self.send_traced(request, trace).await?.reply().await
    }

    /// Queues a request and returns at once with a handle for its reply. Requests queued
    /// one after another from one task reach the server in that order (pipelining).
    pub async fn send<R: Rpc<P>>(&self, request: R) -> Result<PendingReply<P, R>, RpcError> {
        self.send_traced(request, None).await
    }

    /// [`send`](Self::send) with a trace context.
    pub async fn send_traced<R: Rpc<P>>(
        &self,
        request: R,
        trace: Option<TraceContext>,
    ) -> Result<PendingReply<P, R>, RpcError> {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let trace = trace.or_else(crate::trace::current);
        let bytes = frame::encode(
            &Envelope { correlation_id: id, trace, body: request.into_request() },
            self.max_frame,
        )?;
        self.send_encoded(id, bytes).await
    }

    /// Queues an already encoded frame whose correlation id is `id`.
    async fn send_encoded<R: Rpc<P>>(
        &self,
        id: u64,
        frame: frame::Frame,
    ) -> Result<PendingReply<P, R>, RpcError> {
        let (tx, rx) = oneshot::channel();
        {
            // Checked under the pending lock, so a closing reader cannot miss this waiter.
            let mut pending = self.shared.pending.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(reason) = self.shared.closed.lock().unwrap_or_else(|p| p.into_inner()).clone() {
                return Err(RpcError::ChannelClosed { addr: self.addr.to_string(), reason });
            }
            pending.insert(id, tx);
        }
        if self.tx.send(frame).await.is_err() {
            self.shared.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
            return Err(RpcError::ChannelClosed {
                addr: self.addr.to_string(),
                reason: "writer stopped".into(),
            });
        }
        Ok(PendingReply { id, rx, caller: self.clone(), _rpc: PhantomData })
    }

    /// Whether the channel has ended.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.lock().unwrap_or_else(|p| p.into_inner()).is_some() || self.tx.is_closed()
    }
}

/// A request queued on an ordered channel, waiting for its reply.
pub struct PendingReply<P: Protocol, R: Rpc<P>> {
    id: u64,
    rx: oneshot::Receiver<Result<P::Response, RpcError>>,
    caller: OrderedCaller<P>,
    _rpc: PhantomData<R>,
}

impl<P: Protocol, R: Rpc<P>> std::fmt::Debug for PendingReply<P, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingReply").field("id", &self.id).field("rpc", &R::NAME).finish()
    }
}

impl<P: Protocol, R: Rpc<P>> PendingReply<P, R> {
    /// Waits for the reply (at most the request timeout).
    pub async fn reply(self) -> Result<R::Reply, RpcError> {
        let after = self.caller.request_timeout;
        self.reply_within(after).await
    }

    /// Waits for the reply, at most `after`.
    pub async fn reply_within(self, after: Duration) -> Result<R::Reply, RpcError> {
        let addr = self.caller.addr.to_string();
        let response = match tokio::time::timeout(after, self.rx).await {
            Err(_) => {
                self.caller.shared.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.id);
                return Err(RpcError::Timeout { rpc: R::NAME, addr, after });
            }
            Ok(Err(_)) => return Err(RpcError::ChannelClosed { addr, reason: "reader stopped".into() }),
            Ok(Ok(r)) => r?,
        };
        R::from_response(response)
            .map_err(|other| RpcError::UnexpectedReply { rpc: R::NAME, got: short_debug(&other) })
    }
}
