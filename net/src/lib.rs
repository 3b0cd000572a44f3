//! `sluice-net`: mutually authenticated QUIC between every Sluice process.
//!
//! What lives here: TLS 1.3 configuration with required client certificates ([`tls`]),
//! length-prefixed bincode frames in a versioned envelope ([`frame`]), protocols whose
//! requests are tied to their replies at compile time ([`protocol`], [`protocol!`]), the
//! server ([`server`]) and the client with its connection cache ([`client`]), the hooks that
//! carry trace context through envelopes ([`trace`]), plus the transport's own benchmark
//! protocol ([`perf`]), and TCP listeners, plain or TLS with the same client certificates, for
//! the doors that speak other systems' wire protocols ([`tcp`]).
//!
//! What may not live here: znodes, partitions, sessions or any other meaning of the messages.
//! Services define their protocols with [`protocol!`] in their own crates; this crate moves
//! their bytes and knows nothing else about them.
//!
//! Rules every link follows:
//! - ALPN names protocol and version (`sluice-keeper/1`); a mismatch is refused with both
//!   sides' protocols named.
//! - A client says hello right after connecting, so a refused certificate is reported at
//!   connect time, not on the first request.
//! - A bad frame ends only the stream it came on.

pub mod backoff;
pub mod client;
pub mod frame;
mod peer;
pub mod perf;
pub mod protocol;
pub mod server;
pub mod shared_bytes;
mod socket;
pub mod tcp;
pub mod tls;
pub mod trace;

pub use backoff::Backoff;
pub use client::{
    Client, ClientOptions, ConnectError, Connection, OrderedCaller, OrderedChannel, PendingReply, RpcError,
};
pub use frame::{Envelope, Frame, FrameError, TraceContext, DEFAULT_MAX_FRAME, ENVELOPE_VERSION};
pub use protocol::{Protocol, Rpc, WireError};
pub use server::{
    Access, ChannelClosed, ChannelRequest, ChannelSender, Peer, Routes, Server, ServerChannel, ServerError,
    ServerOptions, Service, Typed,
};
pub use tls::{ClientTls, Principal, TlsError, TlsFiles, TlsIdentity, TransportOptions, MAX_UDP_PAYLOAD};

/// This build's name and version, sent in the hello.
pub const SOFTWARE: &str = concat!("sluice/", env!("CARGO_PKG_VERSION"));
