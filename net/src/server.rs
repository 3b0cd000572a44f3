//! The server side: one QUIC endpoint per listener, mTLS required, one task per connection
//! and per stream.
//!
//! Every stream a client opens starts with one byte saying what it is for
//! (`stream_kind`): the hello, one RPC, or an ordered channel. A bad frame on a stream is
//! answered with a [`WireError`] frame and ends *that stream only*; the connection, its other
//! streams and every other connection carry on.
//!
//! ALPN: the server offers its protocol and `sluice-negotiate`. A client of another protocol
//! or version that also offers `sluice-negotiate` is let through the handshake only to be
//! closed at once with [`codes::PROTOCOL_MISMATCH`] and the reason "server speaks X", so the
//! client can name both sides' protocols in its error.
//!
//! One endpoint may speak further protocols beside its own ([`Routes`], given to
//! [`Server::serve_with`]): the ALPN the client asks for picks the service, and each route
//! says who may open it ([`Access`]). A broker serves its client protocol and the
//! inter-broker protocol this way, the second to node certificates only.

use std::future::Future;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::{debug, info, warn, Instrument};

use crate::frame::{self, Envelope, FrameError, TraceContext, DEFAULT_MAX_FRAME};
pub use crate::peer::Peer;
use crate::protocol::{codes, stream_kind, Hello, HelloReply, Protocol, ServerBody, WireError};
use crate::tls::{self, TlsError, TlsIdentity, TransportOptions};

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Largest frame accepted or sent.
    pub max_frame: u32,
    /// The name this server reports in the hello.
    pub name: String,
    /// QUIC settings.
    pub transport: TransportOptions,
    /// Frames an ordered channel may queue before senders wait.
    pub channel_queue: usize,
    /// Accept `DISCARD` streams (raw transport measurements). Off except in the perf server.
    pub discard: bool,
    /// Take only cluster nodes: a peer whose certificate is not a node's (no serverAuth
    /// usage: a client's) is refused. For ports between servers (the keeper's peer port).
    pub nodes_only: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_frame: DEFAULT_MAX_FRAME,
            name: "sluice".into(),
            transport: TransportOptions::default(),
            channel_queue: 4096,
            discard: false,
            nodes_only: false,
        }
    }
}

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The TLS material or configuration was refused.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The UDP socket could not be bound.
    #[error("cannot listen on {addr} (UDP): {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS reason.
        source: std::io::Error,
    },
}

/// What a server does with the requests of protocol `P`.
///
/// Usually implemented through [`Typed`] and the handler trait that
/// [`protocol!`](crate::protocol!) declares.
pub trait Service<P: Protocol>: Send + Sync + 'static {
    /// Answers one request (each arrives on its own stream, concurrently with others).
    fn call(&self, peer: &Peer, request: P::Request) -> impl Future<Output = P::Response> + Send;

    /// Runs one ordered channel until it ends. The default refuses it.
    fn ordered(&self, peer: Peer, channel: ServerChannel<P>) -> impl Future<Output = ()> + Send {
        let _ = peer;
        async move { channel.refuse("this service has no ordered channel").await }
    }
}

/// Adapts a typed handler (declared by [`protocol!`](crate::protocol!)) to [`Service`].
#[derive(Debug, Clone)]
pub struct Typed<H>(pub H);

/// Who may open a protocol's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Any certificate the cluster CA signed.
    Everyone,
    /// Cluster nodes only: a certificate without the serverAuth usage (a client's) is refused
    /// before any stream is read, with [`codes::NOT_A_NODE`].
    NodesOnly,
}

/// The protocols an endpoint speaks beside its own, each with its service and who may open
/// it. The client's ALPN picks the route.
#[derive(Default)]
pub struct Routes {
    routes: Vec<Arc<dyn Route>>,
}

impl std::fmt::Debug for Routes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.routes.iter().map(|r| r.alpn())).finish()
    }
}

impl Routes {
    /// No further protocols.
    pub fn new() -> Self {
        Routes::default()
    }

    /// Also serves protocol `Q` with `service`, to the peers `access` admits.
    pub fn with<Q: Protocol, T: Service<Q>>(mut self, service: Arc<T>, access: Access) -> Self {
        self.routes.push(Arc::new(ServiceRoute::<Q, T> { service, access, _protocol: PhantomData }));
        self
    }

    fn find(&self, alpn: &[u8]) -> Option<&Arc<dyn Route>> {
        self.routes.iter().find(|r| r.alpn().as_bytes() == alpn)
    }
}

/// One protocol's service, with the protocol type erased so that routes of different
/// protocols share a list.
trait Route: Send + Sync + 'static {
    fn alpn(&self) -> &'static str;
    fn access(&self) -> Access;
    fn serve(
        self: Arc<Self>,
        conn: quinn::Connection,
        peer: Peer,
        opts: Arc<ServerOptions>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

struct ServiceRoute<Q, T> {
    service: Arc<T>,
    access: Access,
    _protocol: PhantomData<fn() -> Q>,
}

impl<Q: Protocol, T: Service<Q>> Route for ServiceRoute<Q, T> {
    fn alpn(&self) -> &'static str {
        Q::ALPN
    }

    fn access(&self) -> Access {
        self.access
    }

    fn serve(
        self: Arc<Self>,
        conn: quinn::Connection,
        peer: Peer,
        opts: Arc<ServerOptions>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(serve_connection::<Q, T>(conn, peer, self.service.clone(), opts))
    }
}

/// A listening QUIC endpoint serving protocol `P` (and the further [`Routes`] it is served
/// with).
#[derive(Debug)]
pub struct Server<P: Protocol> {
    endpoint: quinn::Endpoint,
    identity: TlsIdentity,
    opts: Arc<ServerOptions>,
    _protocol: PhantomData<P>,
}

impl<P: Protocol> Server<P> {
    /// Binds `addr` (port 0 picks a free port). Must run inside a tokio runtime.
    pub fn bind(addr: SocketAddr, identity: &TlsIdentity, opts: ServerOptions) -> Result<Self, ServerError> {
        let cfg = tls::server_config(identity, &[P::ALPN], &opts.transport)?;
        let reset_keys = tls::reset_keys(identity);
        let endpoint = crate::socket::endpoint(addr, Some((cfg, reset_keys)), &opts.transport)
            .map_err(|source| ServerError::Bind { addr, source })?;
        Ok(Server { endpoint, identity: identity.clone(), opts: Arc::new(opts), _protocol: PhantomData })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// Serves connections until `shutdown` completes, then closes every connection and waits
    /// (briefly) for them to say goodbye.
    pub async fn serve<S: Service<P>>(self, service: Arc<S>, shutdown: impl Future<Output = ()> + Send) {
        // With no further protocols the endpoint's configuration stays as bound: no error.
        let _ = self.serve_with(service, Routes::new(), shutdown).await;
    }

    /// As [`serve`](Self::serve), and serves every protocol of `routes` on the same endpoint
    /// too (the client's ALPN picks one). Who may open `P` is [`ServerOptions::nodes_only`];
    /// each route says its own. Fails only if the TLS configuration naming the added
    /// protocols cannot be made, before anything is served.
    pub async fn serve_with<S: Service<P>>(
        self,
        service: Arc<S>,
        routes: Routes,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServerError> {
        if !routes.routes.is_empty() {
            let alpns: Vec<&str> =
                std::iter::once(P::ALPN).chain(routes.routes.iter().map(|r| r.alpn())).collect();
            let cfg = tls::server_config(&self.identity, &alpns, &self.opts.transport)?;
            self.endpoint.set_server_config(Some(cfg));
        }
        let routes = Arc::new(routes);
        let local = self.endpoint.local_addr().ok();
        info!(protocol = P::ALPN, addr = ?local, "listening");
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                incoming = self.endpoint.accept() => match incoming {
                    Some(incoming) => {
                        let (service, opts, routes) = (service.clone(), self.opts.clone(), routes.clone());
                        tokio::spawn(handle_connection::<P, S>(incoming, service, opts, routes));
                    }
                    None => break,
                },
                _ = &mut shutdown => break,
            }
        }
        info!(protocol = P::ALPN, "shutting down");
        self.endpoint.close(codes::SHUTDOWN, b"server shutting down");
        let _ = tokio::time::timeout(Duration::from_secs(2), self.endpoint.wait_idle()).await;
        Ok(())
    }
}

async fn handle_connection<P: Protocol, S: Service<P>>(
    incoming: quinn::Incoming,
    service: Arc<S>,
    opts: Arc<ServerOptions>,
    routes: Arc<Routes>,
) {
    let remote = incoming.remote_address();
    let conn = match incoming.await {
        Ok(c) => c,
        Err(e) => {
            // Refused certificates end here: the client learns it from its hello.
            warn!(%remote, error = %e, "TLS handshake refused");
            return;
        }
    };
    let alpn = conn
        .handshake_data()
        .and_then(|h| h.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|h| h.protocol.clone());
    let alpn = alpn.unwrap_or_default();
    let route = if alpn == P::ALPN.as_bytes() {
        None
    } else if let Some(route) = routes.find(&alpn) {
        Some(route.clone())
    } else {
        let asked = String::from_utf8_lossy(&alpn);
        warn!(%remote, asked = %asked, ours = P::ALPN, "client speaks another protocol; refused");
        conn.close(codes::PROTOCOL_MISMATCH, format!("server speaks {}", P::ALPN).as_bytes());
        return;
    };
    let Some(principal) = tls::peer_principal(&conn) else {
        warn!(%remote, "client certificate carries no name; refused");
        conn.close(codes::NO_PRINCIPAL, b"client certificate has no DNS name or common name");
        return;
    };
    let (protocol, access) = match &route {
        None => (P::ALPN, if opts.nodes_only { Access::NodesOnly } else { Access::Everyone }),
        Some(route) => (route.alpn(), route.access()),
    };
    if access == Access::NodesOnly && !principal.server_auth {
        warn!(%remote, peer = %principal, protocol, "a client certificate asked for a protocol of cluster nodes; refused");
        let why = match route {
            None => {
                "this port is for cluster nodes only; the certificate is a client's (no serverAuth usage): \
                     connect to the client port, or use a node certificate"
                    .to_string()
            }
            Some(_) => format!(
                "{protocol} is for cluster nodes only; the certificate is a client's (no serverAuth usage): \
                 clients speak {}, or use a node certificate",
                P::ALPN
            ),
        };
        conn.close(codes::NOT_A_NODE, why.as_bytes());
        return;
    }
    let peer = Peer { principal, remote, connection_id: conn.stable_id() };
    match route {
        None => serve_connection::<P, S>(conn, peer, service, opts).await,
        Some(route) => route.serve(conn, peer, opts).await,
    }
}

/// Serves one admitted connection of protocol `P`: a task per stream, until it ends.
async fn serve_connection<P: Protocol, S: Service<P>>(
    conn: quinn::Connection,
    peer: Peer,
    service: Arc<S>,
    opts: Arc<ServerOptions>,
) {
    let remote = peer.remote;
    let span = tracing::info_span!("conn", peer = %peer.principal, %remote, id = peer.connection_id);
    async move {
        debug!("connected");
        loop {
            match conn.accept_bi().await {
                Ok((send, recv)) => {
                    let (service, opts, peer) = (service.clone(), opts.clone(), peer.clone());
                    tokio::spawn(handle_stream::<P, S>(send, recv, service, opts, peer).in_current_span());
                }
                Err(e) => {
                    debug!(reason = %e, "connection ended");
                    break;
                }
            }
        }
    }
    .instrument(span)
    .await
}

async fn handle_stream<P: Protocol, S: Service<P>>(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    service: Arc<S>,
    opts: Arc<ServerOptions>,
    peer: Peer,
) {
    let mut kind = [0u8; 1];
    if recv.read_exact(&mut kind).await.is_err() {
        return;
    }
    match kind[0] {
        stream_kind::RPC => serve_rpc::<P, S>(send, recv, &*service, &opts, &peer).await,
        stream_kind::HELLO => {
            let hello: Envelope<Hello> = match frame::read(&mut recv, opts.max_frame).await {
                Ok(Some(h)) => h,
                Ok(None) => return,
                Err(e) => {
                    return refuse_stream::<HelloReply>(&mut send, &mut recv, 0, &e, opts.max_frame).await
                }
            };
            debug!(client_software = %hello.body.software, "hello");
            let reply = HelloReply {
                you: peer.principal.name.clone(),
                server: opts.name.clone(),
                software: crate::SOFTWARE.into(),
                max_frame: opts.max_frame,
            };
            let env = Envelope::new(hello.correlation_id, ServerBody::<HelloReply, ()>::Reply(reply));
            write_and_finish(&mut send, &env, opts.max_frame).await;
        }
        stream_kind::ORDERED => {
            let channel = ServerChannel::<P>::start(send, recv, peer.clone(), &opts);
            service.ordered(peer, channel).await;
        }
        stream_kind::MUX => {
            let mut lane = ServerChannel::<P>::start(send, recv, peer.clone(), &opts);
            let tx = lane.sender();
            // Each request runs concurrently; replies go out as they finish. A handler that is
            // ready at once (most answer from memory) is not worth a task of its own.
            while let Ok(Some(req)) = lane.next_request().await {
                let (service, tx, peer) = (service.clone(), tx.clone(), peer.clone());
                let span = crate::trace::request_span::<P>(&peer, &req.request, req.trace.as_ref());
                let span = if span.is_none() { tracing::Span::current() } else { span };
                let mut job = Box::pin(
                    async move {
                        let response = service.call(&peer, req.request).await;
                        let _ = tx.reply(req.correlation_id, response).await;
                    }
                    .instrument(span),
                );
                let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
                if job.as_mut().poll(&mut cx).is_pending() {
                    tokio::spawn(job);
                }
            }
        }
        stream_kind::DISCARD if opts.discard => {
            let mut total = 0u64;
            loop {
                match recv.read_chunk(usize::MAX, true).await {
                    Ok(Some(chunk)) => total += chunk.bytes.len() as u64,
                    Ok(None) => break,
                    Err(_) => return,
                }
            }
            if send.write_all(&total.to_be_bytes()).await.is_ok() {
                let _ = send.finish();
            }
        }
        other => {
            let env =
                Envelope::new(0, ServerBody::<(), ()>::Error(WireError::UnknownStreamKind { kind: other }));
            write_and_finish(&mut send, &env, opts.max_frame).await;
            let _ = recv.stop(codes::UNKNOWN_STREAM);
        }
    }
}

async fn serve_rpc<P: Protocol, S: Service<P>>(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    service: &S,
    opts: &ServerOptions,
    peer: &Peer,
) {
    let req: Envelope<P::Request> = match frame::read(&mut recv, opts.max_frame).await {
        Ok(Some(r)) => r,
        Ok(None) => return,
        Err(e) => return refuse_stream::<P::Response>(&mut send, &mut recv, 0, &e, opts.max_frame).await,
    };
    let span = crate::trace::request_span::<P>(peer, &req.body, req.trace.as_ref());
    let response = service.call(peer, req.body).instrument(span).await;
    let env = Envelope::new(req.correlation_id, ServerBody::<P::Response, P::Push>::Reply(response));
    write_and_finish(&mut send, &env, opts.max_frame).await;
}

/// Tells the client what was wrong with its frame, then ends this stream (only).
async fn refuse_stream<R: serde::Serialize>(
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
    correlation_id: u64,
    err: &FrameError,
    max_frame: u32,
) {
    if let FrameError::Io(e) = err {
        debug!(error = %e, "stream failed");
        return;
    }
    warn!(error = %err, "bad frame; closing the stream");
    let code = stop_code(err);
    let env = Envelope::new(correlation_id, ServerBody::<R, ()>::Error(WireError::from(err)));
    write_and_finish(send, &env, max_frame).await;
    let _ = recv.stop(code);
}

async fn write_and_finish<B: serde::Serialize>(send: &mut quinn::SendStream, env: &Envelope<B>, max: u32) {
    match frame::encode(env, max) {
        Ok(frame) => {
            // Handed to quinn as its pieces (no copy of a large reply into its buffer).
            if let Err(e) = send.write_all_chunks(&mut frame.into_chunks()).await {
                debug!(error = %e, "reply not delivered");
                return;
            }
            let _ = send.finish();
        }
        Err(e) => {
            warn!(error = %e, "reply could not be encoded; telling the client");
            let err = Envelope::new(env.correlation_id, ServerBody::<(), ()>::Error(reply_error(&e)));
            let written = match frame::encode(&err, max) {
                Ok(frame) => send.write_all_chunks(&mut frame.into_chunks()).await.is_ok(),
                Err(_) => false,
            };
            if written {
                let _ = send.finish();
            } else {
                let _ = send.reset(codes::MALFORMED_FRAME);
            }
        }
    }
}

/// The QUIC code for stopping a stream that sent a bad frame.
fn stop_code(e: &FrameError) -> quinn::VarInt {
    match e {
        FrameError::TooLarge { .. } => codes::FRAME_TOO_LARGE,
        _ => codes::MALFORMED_FRAME,
    }
}

/// What to tell a client whose reply could not be encoded.
fn reply_error(e: &FrameError) -> WireError {
    match e {
        FrameError::TooLarge { len, max } => WireError::ReplyTooLarge { len: *len, max: *max },
        other => {
            WireError::MalformedFrame { reason: format!("the server could not encode its reply: {other}") }
        }
    }
}

/// The server end of an ordered channel: requests come in order, replies and pushes go out
/// in the order they are sent, on one stream.
#[derive(Debug)]
pub struct ServerChannel<P: Protocol> {
    recv: quinn::RecvStream,
    sender: ChannelSender<P>,
    peer: Peer,
    max_frame: u32,
}

/// Sends replies and pushes on an ordered channel; cheap to clone, usable from any task.
#[derive(Debug)]
pub struct ChannelSender<P: Protocol> {
    tx: mpsc::Sender<frame::Frame>,
    max_frame: u32,
    _protocol: PhantomData<P>,
}

impl<P: Protocol> Clone for ChannelSender<P> {
    fn clone(&self) -> Self {
        ChannelSender { tx: self.tx.clone(), max_frame: self.max_frame, _protocol: PhantomData }
    }
}

/// The ordered channel has ended (the client went away or the stream failed).
#[derive(Debug, Clone, thiserror::Error)]
#[error("ordered channel closed")]
pub struct ChannelClosed;

/// One request read from an ordered channel.
#[derive(Debug)]
pub struct ChannelRequest<R> {
    /// Pass it back to [`ChannelSender::reply`].
    pub correlation_id: u64,
    /// The caller's trace context.
    pub trace: Option<TraceContext>,
    /// The request.
    pub request: R,
}

impl<P: Protocol> ServerChannel<P> {
    fn start(send: quinn::SendStream, recv: quinn::RecvStream, peer: Peer, opts: &ServerOptions) -> Self {
        let (tx, rx) = mpsc::channel::<frame::Frame>(opts.channel_queue);
        tokio::spawn(frame::write_queued(send, rx).in_current_span());
        ServerChannel {
            recv,
            sender: ChannelSender { tx, max_frame: opts.max_frame, _protocol: PhantomData },
            peer,
            max_frame: opts.max_frame,
        }
    }

    /// The client on the other end.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// A handle for sending replies and pushes.
    pub fn sender(&self) -> ChannelSender<P> {
        self.sender.clone()
    }

    /// The next request, in the order the client sent them. `Ok(None)`: the client closed
    /// the channel. On a bad frame the client is told why, the channel ends, and the error is
    /// returned.
    pub async fn next_request(&mut self) -> Result<Option<ChannelRequest<P::Request>>, FrameError> {
        match frame::read::<P::Request, _>(&mut self.recv, self.max_frame).await {
            Ok(Some(env)) => Ok(Some(ChannelRequest {
                correlation_id: env.correlation_id,
                trace: env.trace,
                request: env.body,
            })),
            Ok(None) => Ok(None),
            Err(e) => {
                if !matches!(e, FrameError::Io(_)) {
                    warn!(error = %e, "bad frame on ordered channel; closing it");
                    let _ = self.sender.send(0, ServerBody::Error(WireError::from(&e))).await;
                    let _ = self.recv.stop(stop_code(&e));
                }
                Err(e)
            }
        }
    }

    /// Refuses the channel with a reason.
    pub async fn refuse(self, why: &str) {
        let _ = self.sender.send(0, ServerBody::Error(WireError::Unsupported { what: why.into() })).await;
    }
}

impl<P: Protocol> ChannelSender<P> {
    /// Sends the reply to the request with `correlation_id`.
    pub async fn reply(&self, correlation_id: u64, response: P::Response) -> Result<(), ChannelClosed> {
        self.send(correlation_id, ServerBody::Reply(response)).await
    }

    /// Pushes an unsolicited message.
    pub async fn push(&self, message: P::Push) -> Result<(), ChannelClosed> {
        self.send(0, ServerBody::Push(message)).await
    }

    /// Pushes without waiting, for callers that may not block (actors). Fails when the
    /// channel has ended or its queue is full (the client is not reading).
    pub fn try_push(&self, message: P::Push) -> Result<(), ChannelClosed> {
        let bytes = frame::encode(
            &Envelope::new(0, ServerBody::<P::Response, P::Push>::Push(message)),
            self.max_frame,
        )
        .map_err(|_| ChannelClosed)?;
        self.tx.try_send(bytes).map_err(|_| ChannelClosed)
    }

    async fn send(
        &self,
        correlation_id: u64,
        body: ServerBody<P::Response, P::Push>,
    ) -> Result<(), ChannelClosed> {
        let bytes = match frame::encode(&Envelope::new(correlation_id, body), self.max_frame) {
            Ok(b) => b,
            Err(e) if correlation_id != 0 => {
                // A reply too big to send: the request fails, the channel goes on.
                warn!(error = %e, "reply could not be encoded; telling the client");
                let err = Envelope::new(correlation_id, ServerBody::<(), ()>::Error(reply_error(&e)));
                frame::encode(&err, self.max_frame).map_err(|_| ChannelClosed)?
            }
            Err(e) => {
                // A push that cannot be sent: the channel cannot stay consistent.
                warn!(error = %e, "ordered channel push could not be encoded; closing the channel");
                return Err(ChannelClosed);
            }
        };
        self.tx.send(bytes).await.map_err(|_| ChannelClosed)
    }
}
