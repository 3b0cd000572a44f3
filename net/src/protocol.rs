//! Protocols: the message types of one ALPN, and the compile-time pairing of each request
//! with its reply.
//!
//! A protocol is declared once with [`protocol!`](crate::protocol!). From that, a client's
//! `call(EchoRequest { .. })` returns `EchoReply` — calling with the wrong reply type does not
//! compile — and a server implements a handler trait with one method per request whose return
//! type is that request's reply, so a server cannot answer with the wrong reply either.
//!
//! ```no_run
//! use sluice_net::perf::{EchoReply, EchoRequest, Perf};
//! async fn call(conn: sluice_net::Connection<Perf>) -> Result<(), sluice_net::RpcError> {
//!     let reply: EchoReply = conn.call(EchoRequest::new(1, vec![])).await?;
//!     # let _ = reply;
//!     Ok(())
//! }
//! ```
//!
//! The wrong reply type for a request does not compile:
//!
//! ```compile_fail,E0308
//! use sluice_net::perf::{EchoRequest, Perf, SinkReply};
//! async fn call(conn: sluice_net::Connection<Perf>) -> Result<(), sluice_net::RpcError> {
//!     let reply: SinkReply = conn.call(EchoRequest::new(1, vec![])).await?;
//!     # let _ = reply;
//!     Ok(())
//! }
//! ```
//!
//! Nor does a handler that answers a request with another request's reply:
//!
//! ```compile_fail,E0271
//! use serde::{Deserialize, Serialize};
//! #[derive(Debug, Serialize, Deserialize)] pub struct Ping;
//! #[derive(Debug, Serialize, Deserialize)] pub struct Pong;
//! #[derive(Debug, Serialize, Deserialize)] pub struct Stat;
//! #[derive(Debug, Serialize, Deserialize)] pub struct StatReply;
//! sluice_net::protocol! {
//!     pub protocol Demo {
//!         alpn: "sluice-demo/1", request: Req, response: Resp, push: (), handler: DemoHandler,
//!         rpcs: { ping: Ping(Ping) -> Pong; stat: Stat(Stat) -> StatReply; }
//!     }
//! }
//! struct Server;
//! impl DemoHandler for Server {
//!     async fn ping(&self, _: &sluice_net::Peer, _: Ping) -> StatReply { StatReply }
//!     async fn stat(&self, _: &sluice_net::Peer, _: Stat) -> StatReply { StatReply }
//! }
//! ```

use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// One application protocol: its ALPN and its three message types.
pub trait Protocol: Send + Sync + 'static {
    /// Protocol name and version, e.g. `sluice-keeper/1`. Carried in ALPN.
    const ALPN: &'static str;
    /// Every request a client may send.
    type Request: Serialize + DeserializeOwned + Debug + Send + Sync + 'static;
    /// Every reply a server may send.
    type Response: Serialize + DeserializeOwned + Debug + Send + Sync + 'static;
    /// What a server may push unasked on an ordered channel (watch events, ...).
    type Push: Serialize + DeserializeOwned + Debug + Send + Sync + 'static;

    /// The name of a request's kind (`Produce`), for traces.
    fn request_name(request: &Self::Request) -> &'static str {
        let _ = request;
        "request"
    }
}

/// A request type of protocol `P`, tied to its reply type.
pub trait Rpc<P: Protocol>: Send + Sized + 'static {
    /// What the server answers.
    type Reply: Send + 'static;
    /// The request's name, for errors and traces.
    const NAME: &'static str;
    /// Wraps the request into the protocol's request enum.
    fn into_request(self) -> P::Request;
    /// Unwraps the reply; gives the response back if it is another kind.
    fn from_response(response: P::Response) -> Result<Self::Reply, P::Response>;
}

/// Transport-level errors a server reports in a frame. Codes are stable: variants are only
/// ever appended, never reordered or removed (bincode encodes the variant index).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum WireError {
    /// The peer's frame was over the server's maximum.
    #[error("frame of {len} bytes exceeds the server's maximum of {max} bytes")]
    FrameTooLarge {
        /// Claimed length.
        len: u64,
        /// The server's limit.
        max: u32,
    },
    /// The peer's frame could not be decoded.
    #[error("server could not decode the frame: {reason}")]
    MalformedFrame {
        /// The decoder's reason.
        reason: String,
    },
    /// The peer's envelope version is not the server's.
    #[error("server speaks envelope version {supported}, frame had {got}")]
    UnsupportedVersion {
        /// Version received.
        got: u8,
        /// Version the server speaks.
        supported: u8,
    },
    /// The stream header named no known stream kind.
    #[error("unknown stream kind {kind}")]
    UnknownStreamKind {
        /// The byte received.
        kind: u8,
    },
    /// The server does not offer what was asked (for example an ordered channel).
    #[error("not supported: {what}")]
    Unsupported {
        /// What.
        what: String,
    },
    /// The server is shutting down.
    #[error("server is shutting down")]
    ShuttingDown,
    /// The server's reply to this request would exceed the frame limit.
    #[error("the server's reply of {len} bytes exceeds the frame limit of {max} bytes")]
    ReplyTooLarge {
        /// Encoded size of the reply.
        len: u64,
        /// The limit.
        max: u32,
    },
}

impl From<&crate::frame::FrameError> for WireError {
    fn from(e: &crate::frame::FrameError) -> Self {
        use crate::frame::FrameError as F;
        match e {
            F::TooLarge { len, max } => WireError::FrameTooLarge { len: *len, max: *max },
            F::UnsupportedVersion { got, supported } => {
                WireError::UnsupportedVersion { got: *got, supported: *supported }
            }
            other => WireError::MalformedFrame { reason: other.to_string() },
        }
    }
}

/// What a server sends on a stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ServerBody<R, P> {
    /// The answer to the request with the envelope's correlation id.
    Reply(R),
    /// An unsolicited message (ordered channels only).
    Push(P),
    /// A transport-level error. With correlation id 0 it ends the stream; with a request's
    /// id it fails only that request.
    Error(WireError),
}

/// The first byte of every client-opened stream: what the stream is for.
pub mod stream_kind {
    /// The application-level hello (see `client`).
    pub const HELLO: u8 = 1;
    /// One request, one reply.
    pub const RPC: u8 = 2;
    /// A long-lived ordered channel.
    pub const ORDERED: u8 = 3;
    /// A long-lived lane multiplexing many small RPCs: the server runs each request
    /// concurrently and replies as each finishes, matched by correlation id.
    pub const MUX: u8 = 4;
    /// Transport diagnostics: the server reads and drops everything, then answers with the
    /// byte count as a big-endian `u64`. Only servers with `ServerOptions::discard` accept it.
    pub const DISCARD: u8 = 0xFE;
}

/// The application-level hello: proves the TLS handshake was accepted on both sides.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Hello {
    pub alpn: String,
    pub software: String,
}

/// The server's answer to [`Hello`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct HelloReply {
    /// The principal the server saw in our certificate.
    pub you: String,
    /// The server's own name.
    pub server: String,
    pub software: String,
    /// The largest frame the server accepts; the client refuses bigger requests itself.
    pub max_frame: u32,
}

/// Decodes `payload` as a hello frame's payload, first as a client's [`Hello`] and then as a
/// server's [`HelloReply`], encoding each that decodes and decoding it again. For the fuzz
/// target `wire_frames` (`log/fuzz`), which cannot name these types. Returns how many of the
/// two decoded; an error names one whose second decoding differs from its first.
#[doc(hidden)]
pub fn hello_round_trip(payload: &bytes::Bytes) -> Result<usize, String> {
    fn one<B: Serialize + serde::de::DeserializeOwned + std::fmt::Debug>(
        payload: &bytes::Bytes,
    ) -> Result<usize, String> {
        let Ok(env) = crate::frame::decode::<B>(payload) else { return Ok(0) };
        let frame = crate::frame::encode(&env, u32::MAX).map_err(|e| format!("does not encode: {e}"))?;
        // The encoded frame starts with its 4-byte length.
        let bytes = bytes::Bytes::from(frame.to_vec()).slice(4..);
        let again = crate::frame::decode::<B>(&bytes).map_err(|e| format!("does not decode again: {e}"))?;
        if format!("{env:?}") != format!("{again:?}") {
            return Err(format!("{env:?} came back as {again:?}"));
        }
        Ok(1)
    }
    Ok(one::<Hello>(payload)? + one::<HelloReply>(payload)?)
}

/// QUIC application error codes used when closing streams and connections.
pub mod codes {
    use quinn::VarInt;
    /// A frame over the maximum.
    pub const FRAME_TOO_LARGE: VarInt = VarInt::from_u32(0x01);
    /// A frame that could not be decoded.
    pub const MALFORMED_FRAME: VarInt = VarInt::from_u32(0x02);
    /// An unknown stream kind.
    pub const UNKNOWN_STREAM: VarInt = VarInt::from_u32(0x03);
    /// The connection ended normally.
    pub const DONE: VarInt = VarInt::from_u32(0x04);
    /// The client asked for a protocol the server does not speak.
    pub const PROTOCOL_MISMATCH: VarInt = VarInt::from_u32(0x10);
    /// The peer's certificate carries no usable name.
    pub const NO_PRINCIPAL: VarInt = VarInt::from_u32(0x11);
    /// The server is shutting down.
    pub const SHUTDOWN: VarInt = VarInt::from_u32(0x12);
    /// The port takes cluster nodes only and the peer's certificate is a client's.
    pub const NOT_A_NODE: VarInt = VarInt::from_u32(0x13);
}

/// Counts a request served and records how long it took, by protocol and request name:
/// `sluice_rpc_requests_total` and `sluice_rpc_request_duration_seconds` (a histogram), with
/// labels `protocol` (the ALPN) and `rpc`. Called for every plain call; a service that
/// answers requests on its own ordered channels calls it for those.
pub fn served(protocol: &'static str, rpc: &'static str, started: std::time::Instant) {
    let labels = [("protocol", protocol), ("rpc", rpc)];
    metrics::counter!("sluice_rpc_requests_total", &labels).increment(1);
    metrics::histogram!("sluice_rpc_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
}

/// Declares a protocol: its ALPN, request / response / push enums, the pairing of each
/// request with its reply, and a typed handler trait for servers.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// #[derive(Debug, Serialize, Deserialize)] pub struct Ping(pub u64);
/// #[derive(Debug, Serialize, Deserialize)] pub struct Pong(pub u64);
/// sluice_net::protocol! {
///     /// A tiny protocol.
///     pub protocol Demo {
///         alpn: "sluice-demo/1",
///         request: DemoRequest,
///         response: DemoResponse,
///         push: (),
///         handler: DemoHandler,
///         rpcs: { ping: Ping(Ping) -> Pong; }
///     }
/// }
/// struct Server;
/// impl DemoHandler for Server {
///     async fn ping(&self, _peer: &sluice_net::Peer, p: Ping) -> Pong { Pong(p.0) }
/// }
/// ```
///
/// Users of the macro depend on `serde` themselves (the enums derive its traits).
#[macro_export]
macro_rules! protocol {
    (
        $(#[$meta:meta])*
        $vis:vis protocol $name:ident {
            alpn: $alpn:literal,
            request: $req_enum:ident,
            response: $resp_enum:ident,
            push: $push:ty,
            handler: $handler:ident,
            rpcs: { $( $method:ident : $variant:ident ( $req:ty ) -> $reply:ty ; )* }
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy)]
        $vis struct $name;

        #[doc = concat!("Every request of [`", stringify!($name), "`].")]
        #[derive(Debug, ::serde::Serialize, ::serde::Deserialize)]
        #[allow(missing_docs)]
        $vis enum $req_enum { $( $variant($req), )* }

        #[doc = concat!("Every reply of [`", stringify!($name), "`].")]
        #[derive(Debug, ::serde::Serialize, ::serde::Deserialize)]
        #[allow(missing_docs)]
        $vis enum $resp_enum { $( $variant($reply), )* }

        impl $crate::Protocol for $name {
            const ALPN: &'static str = $alpn;
            type Request = $req_enum;
            type Response = $resp_enum;
            type Push = $push;
            fn request_name(request: &$req_enum) -> &'static str {
                match request { $( $req_enum::$variant(_) => stringify!($variant), )* }
            }
        }

        $(
            impl $crate::Rpc<$name> for $req {
                type Reply = $reply;
                const NAME: &'static str = stringify!($variant);
                fn into_request(self) -> $req_enum { $req_enum::$variant(self) }
                fn from_response(r: $resp_enum) -> ::std::result::Result<$reply, $resp_enum> {
                    #[allow(unreachable_patterns)]
                    match r { $resp_enum::$variant(x) => Ok(x), other => Err(other) }
                }
            }
        )*

        #[doc = concat!("A server of [`", stringify!($name), "`]: one method per request, returning its reply.")]
        $vis trait $handler: ::std::marker::Send + ::std::marker::Sync + 'static {
            $(
                #[allow(missing_docs)]
                fn $method(&self, peer: &$crate::Peer, request: $req)
                    -> impl ::std::future::Future<Output = $reply> + ::std::marker::Send;
            )*
            /// Runs one ordered channel until it ends. The default refuses it.
            fn ordered(&self, peer: $crate::Peer, channel: $crate::ServerChannel<$name>)
                -> impl ::std::future::Future<Output = ()> + ::std::marker::Send
            {
                let _ = peer;
                async move { channel.refuse("this service has no ordered channel").await }
            }
        }

        impl<H: $handler> $crate::Service<$name> for $crate::Typed<H> {
            async fn call(&self, peer: &$crate::Peer, request: $req_enum) -> $resp_enum {
                let started = ::std::time::Instant::now();
                let (rpc, response) = match request {
                    $( $req_enum::$variant(r) => (stringify!($variant), $resp_enum::$variant(self.0.$method(peer, r).await)), )*
                };
                $crate::protocol::served(<$name as $crate::Protocol>::ALPN, rpc, started);
                response
            }
            fn ordered(&self, peer: $crate::Peer, channel: $crate::ServerChannel<$name>)
                -> impl ::std::future::Future<Output = ()> + ::std::marker::Send
            {
                self.0.ordered(peer, channel)
            }
        }
    };
}
