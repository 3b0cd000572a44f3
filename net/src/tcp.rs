//! TCP listeners for the doors that speak other systems' wire protocols (Kafka's, ZooKeeper's):
//! plain or TLS with a client certificate from the cluster CA required, and the 4-byte
//! big-endian size prefix both protocols frame their messages with.
//!
//! A door accepts here, runs the handshake on the connection's own task (a slow or hostile
//! client never holds up the accept loop), and gets a [`Peer`] naming the certificate's
//! principal — or `ANONYMOUS` on a plaintext listener, as Kafka names it.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::tls::{principal_of, Principal};
use crate::Peer;

/// How a TCP listener secures its connections.
#[derive(Clone)]
pub enum TcpSecurity {
    /// TLS with a required client certificate ([`crate::tls::tcp_server_config`]).
    Tls(Arc<rustls::ServerConfig>),
    /// No TLS: anyone who can reach the port, as principal `ANONYMOUS`.
    Plaintext,
}

impl std::fmt::Debug for TcpSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TcpSecurity::Tls(_) => "Tls",
            TcpSecurity::Plaintext => "Plaintext",
        })
    }
}

/// The principal of connections on a plaintext listener (Kafka's `User:ANONYMOUS`).
pub const ANONYMOUS: &str = "ANONYMOUS";

/// A bound TCP listener.
#[derive(Debug)]
pub struct TcpDoor {
    listener: TcpListener,
    security: TcpSecurity,
}

/// An accepted connection before its handshake.
#[derive(Debug)]
pub struct Incoming {
    stream: TcpStream,
    remote: SocketAddr,
    security: TcpSecurity,
}

/// Why a connection's handshake failed (the door logs it and drops the connection).
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The TLS handshake failed: no client certificate, one from another CA, a client that
    /// does not speak TLS, ...
    #[error("TLS handshake with {remote} failed: {source}")]
    Tls {
        /// The client.
        remote: SocketAddr,
        /// rustls's reason.
        source: io::Error,
    },
    /// The handshake did not finish in time.
    #[error("TLS handshake with {remote} did not finish within {timeout:?}")]
    Timeout {
        /// The client.
        remote: SocketAddr,
        /// The limit.
        timeout: Duration,
    },
    /// The certificate names no one (no DNS SAN and no common name).
    #[error(
        "the certificate of {remote} names no principal (no DNS subject alternative name, no common name)"
    )]
    NoPrincipal {
        /// The client.
        remote: SocketAddr,
    },
}

static NEXT_CONNECTION: AtomicUsize = AtomicUsize::new(1 << 40);

impl TcpDoor {
    /// Binds `addr` (port 0 picks a free port).
    pub async fn bind(addr: SocketAddr, security: TcpSecurity) -> io::Result<TcpDoor> {
        let listener = TcpListener::bind(addr).await?;
        Ok(TcpDoor { listener, security })
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Whether connections are TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self.security, TcpSecurity::Tls(_))
    }

    /// The next connection. Errors are the listener's own (out of file descriptors, ...):
    /// the caller backs off and accepts again ([`TcpDoor::next`] does).
    pub async fn accept(&self) -> io::Result<Incoming> {
        let (stream, remote) = self.listener.accept().await?;
        let _ = stream.set_nodelay(true);
        Ok(Incoming { stream, remote, security: self.security.clone() })
    }

    /// Serves connections until the task running it is dropped: each one accepted
    /// ([`TcpDoor::next`]), held to `per_ip` (if any), handshaken within `handshake` on its
    /// own task, then given to `serve`. A connection turned away is reported to `refused`
    /// (for the door's log line and metrics) and closed; the loop goes on.
    pub async fn serve<S, Fut, R>(
        self,
        door: &'static str,
        per_ip: Option<Arc<PerIpLimit>>,
        handshake: Duration,
        refused: R,
        serve: S,
    ) where
        S: Fn(Peer, TcpConn) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
        R: Fn(SocketAddr, Refused) + Send + Sync + 'static,
    {
        let serve = Arc::new(serve);
        let refused = Arc::new(refused);
        loop {
            let incoming = self.next(door).await;
            let remote = incoming.remote();
            let slot = match &per_ip {
                None => None,
                Some(limits) => match limits.take(remote.ip()) {
                    Some(slot) => Some(slot),
                    None => {
                        refused(remote, Refused::PerIp { limit: limits.limit() });
                        continue;
                    }
                },
            };
            let (serve, refused) = (serve.clone(), refused.clone());
            tokio::spawn(async move {
                let _slot = slot;
                match incoming.handshake(handshake).await {
                    Ok((peer, conn)) => serve(peer, conn).await,
                    Err(e) => refused(remote, Refused::Handshake(e)),
                }
            });
        }
    }

    /// The next connection, waiting out the listener's own failures (out of file
    /// descriptors and the like: logged as `door`'s, then 100 ms before the next try, so a
    /// failing listener never spins).
    pub async fn next(&self, door: &str) -> Incoming {
        loop {
            match self.accept().await {
                Ok(i) => return i,
                Err(e) => {
                    tracing::warn!(door, error = %e, "accepting a connection failed; trying again in 100 ms");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

impl Incoming {
    /// The client's address.
    pub fn remote(&self) -> SocketAddr {
        self.remote
    }

    /// Runs the TLS handshake (nothing on a plaintext listener) within `timeout`.
    pub async fn handshake(self, timeout: Duration) -> Result<(Peer, TcpConn), HandshakeError> {
        let remote = self.remote;
        let connection_id = NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed);
        match self.security {
            TcpSecurity::Plaintext => {
                let principal =
                    Principal { name: ANONYMOUS.to_string(), dns_names: Vec::new(), server_auth: false };
                Ok((Peer { principal, remote, connection_id }, TcpConn::Plain(self.stream)))
            }
            TcpSecurity::Tls(config) => {
                let acceptor = tokio_rustls::TlsAcceptor::from(config);
                let tls = tokio::time::timeout(timeout, acceptor.accept(self.stream))
                    .await
                    .map_err(|_| HandshakeError::Timeout { remote, timeout })?
                    .map_err(|source| HandshakeError::Tls { remote, source })?;
                let principal = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain: &[CertificateDer<'static>]| chain.first())
                    .and_then(|leaf| principal_of(leaf.as_ref()))
                    .ok_or(HandshakeError::NoPrincipal { remote })?;
                Ok((Peer { principal, remote, connection_id }, TcpConn::Tls(Box::new(tls))))
            }
        }
    }
}

/// An established connection, TLS or plain.
#[derive(Debug)]
pub enum TcpConn {
    /// Over TLS.
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// Plain TCP.
    Plain(TcpStream),
}

impl AsyncRead for TcpConn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TcpConn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            TcpConn::Plain(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for TcpConn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            TcpConn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            TcpConn::Plain(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            TcpConn::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
            TcpConn::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            TcpConn::Tls(s) => s.is_write_vectored(),
            TcpConn::Plain(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TcpConn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            TcpConn::Plain(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TcpConn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            TcpConn::Plain(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// Why [`TcpDoor::serve`] turned a connection away.
#[derive(Debug)]
pub enum Refused {
    /// Its address holds the [`PerIpLimit`]'s number of connections already.
    PerIp {
        /// The limit.
        limit: usize,
    },
    /// The TLS handshake failed.
    Handshake(HandshakeError),
}

/// How many connections each client address may hold open at once (Kafka's
/// `max.connections.per.ip`, ZooKeeper's `maxClientCnxns`). Shared by a door's listeners.
#[derive(Debug)]
pub struct PerIpLimit {
    limit: usize,
    open: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
}

/// A connection's place under a [`PerIpLimit`], given back when dropped.
#[derive(Debug)]
pub struct IpSlot {
    limits: Arc<PerIpLimit>,
    ip: std::net::IpAddr,
}

impl PerIpLimit {
    /// At most `limit` connections per address.
    pub fn new(limit: usize) -> Arc<PerIpLimit> {
        Arc::new(PerIpLimit { limit, open: std::sync::Mutex::new(std::collections::HashMap::new()) })
    }

    /// The limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// A place for one more connection from `ip`, or `None` when it holds `limit` already.
    pub fn take(self: &Arc<Self>, ip: std::net::IpAddr) -> Option<IpSlot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= self.limit {
            return None;
        }
        *n += 1;
        Some(IpSlot { limits: self.clone(), ip })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Why a size-prefixed frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SizedFrameError {
    /// The size prefix is larger than the limit (or negative).
    #[error("a frame of {size} bytes is over the limit of {max} bytes")]
    Oversize {
        /// The size the prefix claims.
        size: i64,
        /// The limit.
        max: usize,
    },
    /// The connection failed or closed inside a frame.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Reads one frame prefixed by its size as a 4-byte big-endian signed integer (Kafka's and
/// ZooKeeper's framing) of at most `max` bytes. `Ok(None)` when the peer closed the
/// connection between frames. Memory for the frame is reserved only as its bytes arrive,
/// so a prefix claiming a large size costs nothing until the bytes are sent.
pub async fn read_sized<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
) -> Result<Option<BytesMut>, SizedFrameError> {
    match read_prefix(r).await? {
        None => Ok(None),
        Some(prefix) => read_body(r, prefix, max).await.map(Some),
    }
}

/// Reads the 4 bytes of a size prefix (`Ok(None)`: the peer closed the connection before
/// the first), for a door that must look at them before taking them as a size (ZooKeeper's
/// four-letter words arrive where a size would).
pub async fn read_prefix<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<[u8; 4]>, SizedFrameError> {
    let mut prefix = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = r.read(&mut prefix[got..]).await?;
        if n == 0 {
            if got == 0 {
                return Ok(None);
            }
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed inside a size prefix",
            )
            .into());
        }
        got += n;
    }
    Ok(Some(prefix))
}

/// Reads the frame whose size `prefix` gives (at most `max` bytes); see [`read_sized`].
pub async fn read_body<R: AsyncRead + Unpin>(
    r: &mut R,
    prefix: [u8; 4],
    max: usize,
) -> Result<BytesMut, SizedFrameError> {
    let size = i32::from_be_bytes(prefix);
    if size < 0 || size as usize > max {
        return Err(SizedFrameError::Oversize { size: size as i64, max });
    }
    let size = size as usize;
    let mut buf = BytesMut::with_capacity(size.min(64 << 10));
    while buf.len() < size {
        buf.reserve((size - buf.len()).min(1 << 20));
        let limit = (size - buf.len()) as u64;
        let n = (&mut *r).take(limit).read_buf(&mut buf).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("connection closed after {} of a frame's {size} bytes", buf.len()),
            )
            .into());
        }
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_per_ip_limit_counts_open_connections_per_address() {
        let limits = PerIpLimit::new(2);
        let a: std::net::IpAddr = [127, 0, 0, 1].into();
        let b: std::net::IpAddr = [127, 0, 0, 2].into();
        let first = limits.take(a).expect("first");
        let _second = limits.take(a).expect("second");
        assert!(limits.take(a).is_none(), "a third from the same address");
        assert!(limits.take(b).is_some(), "another address has its own count");
        drop(first);
        assert!(limits.take(a).is_some(), "a closed connection gives its place back");
    }

    #[tokio::test]
    async fn sized_frames_are_read_whole_and_limits_hold() {
        let mut input: &[u8] = &[0, 0, 0, 3, b'a', b'b', b'c', 0, 0, 0, 0];
        let first = read_sized(&mut input, 10).await.expect("read").expect("a frame");
        assert_eq!(&first[..], b"abc");
        let empty = read_sized(&mut input, 10).await.expect("read").expect("an empty frame");
        assert!(empty.is_empty());
        assert!(read_sized(&mut input, 10).await.expect("clean end").is_none());

        let mut big: &[u8] = &[0, 0, 0, 11];
        assert!(matches!(
            read_sized(&mut big, 10).await,
            Err(SizedFrameError::Oversize { size: 11, max: 10 })
        ));
        let mut negative: &[u8] = &[0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            read_sized(&mut negative, 10).await,
            Err(SizedFrameError::Oversize { size: -1, .. })
        ));
        let mut cut: &[u8] = &[0, 0, 0, 5, 1, 2];
        assert!(
            matches!(read_sized(&mut cut, 10).await, Err(SizedFrameError::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof)
        );
        let mut half_prefix: &[u8] = &[0, 0];
        assert!(matches!(read_sized(&mut half_prefix, 10).await, Err(SizedFrameError::Io(_))));
    }
}
