//! Frames: the bytes on a QUIC stream.
//!
//! ```text
//! +----------------+---------+------------------------------------------+
//! | u32 BE length  | version | bincode 2 (standard, varint) Envelope<B>  |
//! +----------------+---------+------------------------------------------+
//!                  '------------- `length` bytes ----------------------'
//! ```
//!
//! The length is checked against the stream's maximum *before* anything is allocated, and
//! the bincode decoder runs with a hard limit too, so a lying length inside the payload cannot
//! make us allocate either. The version byte sits outside bincode, so a peer speaking another
//! envelope version gets [`FrameError::UnsupportedVersion`] rather than a confusing decode
//! error. This module is the only place that knows the encoding: swapping bincode means
//! changing this file.

use std::io;

use bytes::{BufMut, Bytes, BytesMut};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::shared_bytes;

/// Version of the envelope layout. Bump it when [`Envelope`] changes shape.
pub const ENVELOPE_VERSION: u8 = 1;

/// Default largest frame a stream accepts (16 MiB).
pub const DEFAULT_MAX_FRAME: u32 = 16 * 1024 * 1024;

/// Hard ceiling on what the decoder may allocate, whatever a frame claims (1 GiB).
const DECODE_LIMIT: usize = 1 << 30;

/// Bytes before the payload: the length prefix.
pub const LENGTH_PREFIX: usize = 4;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<DECODE_LIMIT>()
}

/// Everything that travels in one frame: who it answers, how it is traced, what it says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope<B> {
    /// Pairs a reply with its request; pushes carry 0.
    pub correlation_id: u64,
    /// W3C trace context of the span that sent this frame, if tracing is on.
    pub trace: Option<TraceContext>,
    /// The typed message.
    pub body: B,
}

impl<B> Envelope<B> {
    /// An envelope without trace context.
    pub fn new(correlation_id: u64, body: B) -> Self {
        Envelope { correlation_id, trace: None, body }
    }
}

/// A W3C trace context (`traceparent`): trace id, parent span id and flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceContext {
    /// 16-byte trace id.
    pub trace_id: [u8; 16],
    /// 8-byte id of the sending span.
    pub span_id: [u8; 8],
    /// Trace flags (bit 0: sampled).
    pub flags: u8,
}

impl TraceContext {
    /// Parses a `traceparent` header value (`00-<32 hex>-<16 hex>-<2 hex>`).
    pub fn from_traceparent(s: &str) -> Option<Self> {
        let mut parts = s.trim().split('-');
        let version = parts.next()?;
        let trace = parts.next()?;
        let span = parts.next()?;
        let flags = parts.next()?;
        if version.len() != 2 || version == "ff" || trace.len() != 32 || span.len() != 16 || flags.len() != 2
        {
            return None;
        }
        if version == "00" && parts.next().is_some() {
            return None;
        }
        let mut ctx = TraceContext { trace_id: [0; 16], span_id: [0; 8], flags: 0 };
        hex_into(trace, &mut ctx.trace_id)?;
        hex_into(span, &mut ctx.span_id)?;
        let mut f = [0u8; 1];
        hex_into(flags, &mut f)?;
        ctx.flags = f[0];
        // All-zero ids are invalid by the spec.
        if ctx.trace_id == [0; 16] || ctx.span_id == [0; 8] {
            return None;
        }
        Some(ctx)
    }

    /// Formats as a `traceparent` header value.
    pub fn to_traceparent(&self) -> String {
        let mut s = String::with_capacity(55);
        s.push_str("00-");
        for b in self.trace_id {
            s.push_str(&format!("{b:02x}"));
        }
        s.push('-');
        for b in self.span_id {
            s.push_str(&format!("{b:02x}"));
        }
        s.push_str(&format!("-{:02x}", self.flags));
        s
    }
}

fn hex_into(s: &str, out: &mut [u8]) -> Option<()> {
    if s.len() != out.len() * 2 {
        return None;
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(())
}

/// Why a frame could not be read, written or decoded.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The length prefix is above the stream's maximum.
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// What the prefix (or the encoder) said.
        len: u64,
        /// The stream's limit.
        max: u32,
    },
    /// The envelope version is not one we speak.
    #[error("frame has envelope version {got}, this build speaks version {supported}")]
    UnsupportedVersion {
        /// The version byte received.
        got: u8,
        /// [`ENVELOPE_VERSION`].
        supported: u8,
    },
    /// The payload is not a valid envelope for the expected message type.
    #[error("malformed frame: {reason}")]
    Malformed {
        /// The decoder's reason.
        reason: String,
    },
    /// The stream ended in the middle of a frame.
    #[error("stream ended inside a frame: expected {expected} bytes, got {got}")]
    Truncated {
        /// Bytes the frame needed.
        expected: usize,
        /// Bytes that arrived.
        got: usize,
    },
    /// The message could not be encoded (a serde error: should not happen for our types).
    #[error("cannot encode frame: {reason}")]
    Encode {
        /// The encoder's reason.
        reason: String,
    },
    /// Reading the stream failed.
    #[error("stream read failed: {0}")]
    Io(#[from] io::Error),
}

/// One encoded frame, as the pieces it goes to the stream in: the envelope's own bytes, and
/// each large [`shared_bytes`] field as the very `Bytes` the message held (not a copy).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frame {
    chunks: Vec<Bytes>,
    len: usize,
}

impl Frame {
    /// The frame's length on the wire, its length prefix included.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the frame has no bytes (never true of an encoded frame).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The pieces, in order.
    pub fn into_chunks(self) -> Vec<Bytes> {
        self.chunks
    }

    /// The frame's bytes in one buffer (a copy: for tests and small frames).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len);
        for c in &self.chunks {
            out.extend_from_slice(c);
        }
        out
    }
}

/// One frame holding `env`, refusing it if it would exceed `max`.
pub fn encode<B: Serialize>(env: &Envelope<B>, max: u32) -> Result<Frame, FrameError> {
    // Size first (a pass that copies nothing), so the length prefix is known before any
    // piece is handed over, and the envelope's own bytes (all but the shared fields) take
    // exactly one allocation.
    let mut size = Counter { total: 0, shared: 0 };
    shared_bytes::sharing(|| bincode::serde::encode_into_std_write(env, &mut size, config()))
        .map_err(|e| FrameError::Encode { reason: e.to_string() })?;
    let len = size.total + 1;
    if len as u64 > u64::from(max) {
        return Err(FrameError::TooLarge { len: len as u64, max });
    }
    let own = LENGTH_PREFIX + len - size.shared;
    let mut out = Pieces { chunks: Vec::new(), current: Vec::with_capacity(own) };
    // `len <= max <= u32::MAX` was checked just above.
    out.current.extend_from_slice(&(len as u32).to_be_bytes());
    out.current.push(ENVELOPE_VERSION);
    let written = shared_bytes::sharing(|| bincode::serde::encode_into_std_write(env, &mut out, config()))
        .map_err(|e| FrameError::Encode { reason: e.to_string() })?;
    if written != size.total {
        return Err(FrameError::Encode {
            reason: format!("the message encoded to {written} bytes after measuring {}", size.total),
        });
    }
    let mut chunks = out.chunks;
    if !out.current.is_empty() {
        chunks.push(Bytes::from(out.current));
    }
    Ok(Frame { chunks, len: LENGTH_PREFIX + len })
}

/// Counts what would be written, and how much of it shared fields' bytes.
struct Counter {
    total: usize,
    shared: usize,
}

impl io::Write for Counter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.total += bytes.len();
        if shared_bytes::take_offered(bytes).is_some() {
            self.shared += bytes.len();
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Collects a frame's pieces: bytes written are copied into `current`, except a byte string
/// that is the `Bytes` a [`shared_bytes`] field offered, which becomes a piece of its own.
struct Pieces {
    chunks: Vec<Bytes>,
    current: Vec<u8>,
}

impl io::Write for Pieces {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        match shared_bytes::take_offered(bytes) {
            Some(shared) => {
                if !self.current.is_empty() {
                    let next = Vec::with_capacity(self.current.capacity().saturating_sub(self.current.len()));
                    self.chunks.push(Bytes::from(std::mem::replace(&mut self.current, next)));
                }
                self.chunks.push(shared);
            }
            None => self.current.extend_from_slice(bytes),
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Decodes a frame's payload (everything after the length prefix). A [`shared_bytes`] field
/// becomes a slice of `payload`, not a copy.
pub fn decode<B: DeserializeOwned>(payload: &Bytes) -> Result<Envelope<B>, FrameError> {
    let (&version, _) =
        payload.split_first().ok_or_else(|| FrameError::Malformed { reason: "empty frame".into() })?;
    if version != ENVELOPE_VERSION {
        return Err(FrameError::UnsupportedVersion { got: version, supported: ENVELOPE_VERSION });
    }
    let rest = &payload[1..];
    let (env, used) = shared_bytes::lending(payload, || {
        bincode::serde::borrow_decode_from_slice::<Envelope<B>, _>(rest, config())
    })
    .map_err(|e| FrameError::Malformed { reason: e.to_string() })?;
    if used != rest.len() {
        return Err(FrameError::Malformed {
            reason: format!("{} bytes left over after the envelope", rest.len() - used),
        });
    }
    Ok(env)
}

/// Reads one frame's payload. `Ok(None)` means the stream ended cleanly between frames.
pub async fn read_payload<R: AsyncRead + Unpin>(r: &mut R, max: u32) -> Result<Option<Bytes>, FrameError> {
    let mut prefix = [0u8; LENGTH_PREFIX];
    let mut got = 0;
    while got < LENGTH_PREFIX {
        let n = r.read(&mut prefix[got..]).await?;
        if n == 0 {
            if got == 0 {
                return Ok(None);
            }
            return Err(FrameError::Truncated { expected: LENGTH_PREFIX, got });
        }
        got += n;
    }
    let len = u32::from_be_bytes(prefix);
    if len > max {
        return Err(FrameError::TooLarge { len: u64::from(len), max });
    }
    let len = len as usize;
    // Read into uninitialised capacity: zeroing a large buffer first costs as much as a copy.
    let mut payload = BytesMut::with_capacity(len);
    while payload.len() < len {
        let want = len - payload.len();
        let mut rest = (&mut payload).limit(want);
        let n = r.read_buf(&mut rest).await?;
        if n == 0 {
            return Err(FrameError::Truncated { expected: len, got: payload.len() });
        }
    }
    Ok(Some(payload.freeze()))
}

/// Reads and decodes one frame. `Ok(None)` means the stream ended cleanly between frames.
pub async fn read<B: DeserializeOwned, R: AsyncRead + Unpin>(
    r: &mut R,
    max: u32,
) -> Result<Option<Envelope<B>>, FrameError> {
    match read_payload(r, max).await? {
        Some(p) => decode(&p).map(Some),
        None => Ok(None),
    }
}

/// Writes queued frames to `send` in queue order until every sender is gone, then finishes
/// the stream. Whatever is already queued when a write starts goes out in that one write
/// (up to 256 KiB), so a burst of small frames costs one stream write, not one each.
pub(crate) async fn write_queued(mut send: quinn::SendStream, mut queue: tokio::sync::mpsc::Receiver<Frame>) {
    while let Some(first) = queue.recv().await {
        // Whole frames handed over as their pieces (quinn keeps chunks instead of copying a
        // slice): the frames waiting now go in one write.
        let mut size = first.len();
        let mut chunks = first.into_chunks();
        while size < 256 * 1024 {
            match queue.try_recv() {
                Ok(more) => {
                    size += more.len();
                    chunks.extend(more.into_chunks());
                }
                Err(_) => break,
            }
        }
        if let Err(e) = send.write_all_chunks(&mut chunks).await {
            tracing::debug!(error = %e, "stream write failed; dropping the queue");
            return;
        }
    }
    let _ = send.finish();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    enum Msg {
        Small(u32),
        Bytes(#[serde(with = "serde_bytes")] Vec<u8>),
    }

    #[tokio::test]
    async fn frames_round_trip_back_to_back_on_one_stream() {
        let a = Envelope { correlation_id: 7, trace: None, body: Msg::Small(42) };
        let trace = TraceContext::from_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
        let b = Envelope { correlation_id: u64::MAX, trace, body: Msg::Bytes(vec![9; 100_000]) };
        let mut buf = encode(&a, DEFAULT_MAX_FRAME).expect("encode a").to_vec();
        buf.extend(encode(&b, DEFAULT_MAX_FRAME).expect("encode b").to_vec());
        let mut r = &buf[..];
        assert_eq!(read::<Msg, _>(&mut r, DEFAULT_MAX_FRAME).await.expect("a"), Some(a));
        assert_eq!(read::<Msg, _>(&mut r, DEFAULT_MAX_FRAME).await.expect("b"), Some(b));
        assert_eq!(read::<Msg, _>(&mut r, DEFAULT_MAX_FRAME).await.expect("end"), None);
    }

    #[tokio::test]
    async fn an_oversize_length_prefix_is_refused_before_reading_the_body() {
        let mut bytes = 1_000_000u32.to_be_bytes().to_vec();
        bytes.push(ENVELOPE_VERSION);
        let err = read_payload(&mut &bytes[..], 1024).await.expect_err("too large");
        assert!(matches!(err, FrameError::TooLarge { len: 1_000_000, max: 1024 }), "{err}");
    }

    #[test]
    fn the_encoder_refuses_frames_over_the_maximum() {
        let env = Envelope::new(1, Msg::Bytes(vec![0; 2048]));
        let err = encode(&env, 1024).expect_err("too large");
        assert!(matches!(err, FrameError::TooLarge { max: 1024, .. }), "{err}");
        let fits = encode(&env, 4096).expect("fits");
        assert_eq!(fits.len(), fits.to_vec().len());
    }

    #[tokio::test]
    async fn a_stream_ending_mid_frame_is_truncated_not_clean() {
        let frame = encode(&Envelope::new(1, Msg::Small(1)), DEFAULT_MAX_FRAME).expect("encode").to_vec();
        for cut in 1..frame.len() {
            let err = read_payload(&mut &frame[..cut], DEFAULT_MAX_FRAME).await.expect_err("truncated");
            assert!(matches!(err, FrameError::Truncated { .. }), "cut at {cut}: {err}");
        }
    }

    #[test]
    fn another_envelope_version_is_named() {
        let mut frame = encode(&Envelope::new(1, Msg::Small(1)), DEFAULT_MAX_FRAME).expect("encode").to_vec();
        frame[LENGTH_PREFIX] = 9;
        let err = decode::<Msg>(&Bytes::copy_from_slice(&frame[LENGTH_PREFIX..])).expect_err("version");
        assert!(matches!(err, FrameError::UnsupportedVersion { got: 9, supported: ENVELOPE_VERSION }));
    }

    #[test]
    fn garbage_and_trailing_bytes_are_malformed_never_a_panic() {
        let mut frame = encode(&Envelope::new(1, Msg::Small(1)), DEFAULT_MAX_FRAME).expect("encode").to_vec();
        frame.push(0);
        let payload = Bytes::copy_from_slice(&frame[LENGTH_PREFIX..]);
        assert!(matches!(decode::<Msg>(&payload), Err(FrameError::Malformed { .. })));
        // A deterministic spread of junk payloads, including huge claimed lengths.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for n in 0..2000 {
            let mut payload = vec![ENVELOPE_VERSION];
            for _ in 0..(n % 64) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                payload.push(x as u8);
            }
            let _ = decode::<Msg>(&Bytes::from(payload));
        }
        let huge_vec = [ENVELOPE_VERSION, 1, 0, 1, 251, 255, 255, 255, 255, 255, 255, 255, 255];
        assert!(decode::<Msg>(&Bytes::copy_from_slice(&huge_vec)).is_err());
    }

    #[test]
    fn traceparent_round_trips_and_rejects_invalid_values() {
        let s = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let ctx = TraceContext::from_traceparent(s).expect("valid");
        assert_eq!(ctx.flags, 1);
        assert_eq!(ctx.to_traceparent(), s);
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        ] {
            assert!(TraceContext::from_traceparent(bad).is_none(), "{bad:?} accepted");
        }
    }
}
