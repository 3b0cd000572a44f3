//! `sluice-perf/1`: the transport's own protocol, for its benchmark
//! (`sluice transport-perf-test`) and its tests. It carries opaque bytes and nothing else.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::server::{Peer, ServerChannel};

/// Echo bytes back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EchoRequest {
    /// Caller's own id, returned as is.
    pub id: u64,
    /// Bytes to return.
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    /// On an ordered channel: pushes the server sends before this reply.
    pub pushes_before: u32,
    /// Milliseconds the server waits before answering (to test concurrency).
    pub delay_ms: u32,
    /// Extra bytes the server appends to the echoed payload (to test reply limits).
    pub reply_padding: u32,
}

impl EchoRequest {
    /// Echo `payload` back at once: no pushes, no delay, no padding.
    pub fn new(id: u64, payload: Vec<u8>) -> Self {
        EchoRequest { id, payload, pushes_before: 0, delay_ms: 0, reply_padding: 0 }
    }
}

/// The echo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EchoReply {
    /// The request's id.
    pub id: u64,
    /// The request's bytes.
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    /// On an ordered channel: pushes sent on it so far, this reply's included.
    pub pushes_sent: u64,
    /// On an ordered channel: this request's position among those the server received on
    /// it, from 1 (0 on an RPC stream).
    pub position: u64,
}

/// Bytes for the server to count and drop (bulk transfer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkRequest {
    /// The bytes (shared, so a sender can resend them without copying; sent and received
    /// without a copy into or out of the frame).
    #[serde(with = "crate::shared_bytes")]
    pub data: bytes::Bytes,
}

/// What the server received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkReply {
    /// Bytes in this request.
    pub received: u64,
    /// Bytes received by this server process in all.
    pub total: u64,
}

/// Who am I, as the server sees me.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhoAmI;

/// A push on an ordered channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerfPush {
    /// Position among the pushes on this channel, from 1.
    pub seq: u64,
}

crate::protocol! {
    /// The transport benchmark and test protocol.
    pub protocol Perf {
        alpn: "sluice-perf/1",
        request: PerfRequest,
        response: PerfResponse,
        push: PerfPush,
        handler: PerfHandler,
        rpcs: {
            echo: Echo(EchoRequest) -> EchoReply;
            sink: Sink(SinkRequest) -> SinkReply;
            who_am_i: WhoAmI(WhoAmI) -> String;
        }
    }
}

/// The server of [`Perf`].
#[derive(Debug, Default)]
pub struct PerfServer {
    total: AtomicU64,
}

impl PerfHandler for PerfServer {
    async fn echo(&self, _peer: &Peer, r: EchoRequest) -> EchoReply {
        if r.delay_ms > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(u64::from(r.delay_ms))).await;
        }
        let mut payload = r.payload;
        payload.resize(payload.len() + r.reply_padding as usize, 0);
        EchoReply { id: r.id, payload, pushes_sent: 0, position: 0 }
    }

    async fn sink(&self, _peer: &Peer, r: SinkRequest) -> SinkReply {
        let n = r.data.len() as u64;
        SinkReply { received: n, total: self.total.fetch_add(n, Ordering::Relaxed) + n }
    }

    async fn who_am_i(&self, peer: &Peer, _r: WhoAmI) -> String {
        peer.principal.name.clone()
    }

    /// Answers requests in order; before each echo reply, sends the pushes it asks for.
    async fn ordered(&self, _peer: Peer, mut channel: ServerChannel<Perf>) {
        let tx = channel.sender();
        let mut pushes = 0u64;
        let mut position = 0u64;
        while let Ok(Some(req)) = channel.next_request().await {
            position += 1;
            let response = match req.request {
                PerfRequest::Echo(e) => {
                    for _ in 0..e.pushes_before {
                        pushes += 1;
                        if tx.push(PerfPush { seq: pushes }).await.is_err() {
                            return;
                        }
                    }
                    let mut payload = e.payload;
                    payload.resize(payload.len() + e.reply_padding as usize, 0);
                    PerfResponse::Echo(EchoReply { id: e.id, payload, pushes_sent: pushes, position })
                }
                PerfRequest::Sink(s) => PerfResponse::Sink(self.sink(channel.peer(), s).await),
                PerfRequest::WhoAmI(w) => PerfResponse::WhoAmI(self.who_am_i(channel.peer(), w).await),
            };
            if tx.reply(req.correlation_id, response).await.is_err() {
                return;
            }
        }
    }
}
