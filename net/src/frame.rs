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

use bytes::BufMut;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};

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

/// Appends one frame holding `env` to `buf`, refusing it if it would exceed `max`.
///
/// Appending (rather than returning a new buffer) lets callers put a stream header and the
/// first frame into one write.
pub fn encode_into<B: Serialize>(buf: &mut Vec<u8>, env: &Envelope<B>, max: u32) -> Result<(), FrameError> {
    let start = buf.len();
    // Size first (a pass that copies nothing: byte strings only add their length), so a
    // large frame — a fetch answer of a megabyte — is written into one allocation instead
    // of being copied again at every doubling of the buffer.
    let mut size = Counter(0);
    if bincode::serde::encode_into_std_write(env, &mut size, config()).is_ok() {
        buf.reserve(LENGTH_PREFIX + 1 + size.0);
    }
    buf.extend_from_slice(&[0, 0, 0, 0, ENVELOPE_VERSION]);
    if let Err(e) = bincode::serde::encode_into_std_write(env, buf, config()) {
        buf.truncate(start);
        return Err(FrameError::Encode { reason: e.to_string() });
    }
    let len = buf.len() - start - LENGTH_PREFIX;
    if len as u64 > u64::from(max) {
        buf.truncate(start);
        return Err(FrameError::TooLarge { len: len as u64, max });
    }
    // `len <= max <= u32::MAX` was checked just above.
    buf[start..start + LENGTH_PREFIX].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(())
}

/// Counts what would be written.
struct Counter(usize);

impl io::Write for Counter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0 += bytes.len();
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One frame holding `env`.
pub fn encode<B: Serialize>(env: &Envelope<B>, max: u32) -> Result<Vec<u8>, FrameError> {
    let mut buf = Vec::new();
    encode_into(&mut buf, env, max)?;
    Ok(buf)
}

/// Decodes a frame's payload (everything after the length prefix).
pub fn decode<B: DeserializeOwned>(payload: &[u8]) -> Result<Envelope<B>, FrameError> {
    let (&version, rest) =
        payload.split_first().ok_or_else(|| FrameError::Malformed { reason: "empty frame".into() })?;
    if version != ENVELOPE_VERSION {
        return Err(FrameError::UnsupportedVersion { got: version, supported: ENVELOPE_VERSION });
    }
    let (env, used) = bincode::serde::decode_from_slice::<Envelope<B>, _>(rest, config())
        .map_err(|e| FrameError::Malformed { reason: e.to_string() })?;
    if used != rest.len() {
        return Err(FrameError::Malformed {
            reason: format!("{} bytes left over after the envelope", rest.len() - used),
        });
    }
    Ok(env)
}

/// Reads one frame's payload. `Ok(None)` means the stream ended cleanly between frames.
pub async fn read_payload<R: AsyncRead + Unpin>(r: &mut R, max: u32) -> Result<Option<Vec<u8>>, FrameError> {
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
    let mut payload = Vec::with_capacity(len);
    while payload.len() < len {
        let want = len - payload.len();
        let mut rest = (&mut payload).limit(want);
        let n = r.read_buf(&mut rest).await?;
        if n == 0 {
            return Err(FrameError::Truncated { expected: len, got: payload.len() });
        }
    }
    Ok(Some(payload))
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
pub(crate) async fn write_queued(
    mut send: quinn::SendStream,
    mut queue: tokio::sync::mpsc::Receiver<Vec<u8>>,
) {
    while let Some(first) = queue.recv().await {
        // Whole frames handed over as they are (a `Vec` becomes `Bytes` without a copy, and
        // quinn keeps chunks instead of copying a slice): the frames waiting now go in one
        // write.
        let mut size = first.len();
        let mut chunks = vec![bytes::Bytes::from(first)];
        while size < 256 * 1024 {
            match queue.try_recv() {
                Ok(more) => {
                    size += more.len();
                    chunks.push(bytes::Bytes::from(more));
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
        let mut buf = Vec::new();
        encode_into(&mut buf, &a, DEFAULT_MAX_FRAME).expect("encode a");
        encode_into(&mut buf, &b, DEFAULT_MAX_FRAME).expect("encode b");
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
        let mut buf = vec![0xAA];
        let err = encode_into(&mut buf, &env, 1024).expect_err("too large");
        assert!(matches!(err, FrameError::TooLarge { max: 1024, .. }), "{err}");
        assert_eq!(buf, vec![0xAA], "a refused frame leaves the buffer as it was");
    }

    #[tokio::test]
    async fn a_stream_ending_mid_frame_is_truncated_not_clean() {
        let frame = encode(&Envelope::new(1, Msg::Small(1)), DEFAULT_MAX_FRAME).expect("encode");
        for cut in 1..frame.len() {
            let err = read_payload(&mut &frame[..cut], DEFAULT_MAX_FRAME).await.expect_err("truncated");
            assert!(matches!(err, FrameError::Truncated { .. }), "cut at {cut}: {err}");
        }
    }

    #[test]
    fn another_envelope_version_is_named() {
        let mut frame = encode(&Envelope::new(1, Msg::Small(1)), DEFAULT_MAX_FRAME).expect("encode");
        frame[LENGTH_PREFIX] = 9;
        let err = decode::<Msg>(&frame[LENGTH_PREFIX..]).expect_err("version");
        assert!(matches!(err, FrameError::UnsupportedVersion { got: 9, supported: ENVELOPE_VERSION }));
    }

    #[test]
    fn garbage_and_trailing_bytes_are_malformed_never_a_panic() {
        let mut frame = encode(&Envelope::new(1, Msg::Small(1)), DEFAULT_MAX_FRAME).expect("encode");
        frame.push(0);
        assert!(matches!(decode::<Msg>(&frame[LENGTH_PREFIX..]), Err(FrameError::Malformed { .. })));
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
            let _ = decode::<Msg>(&payload);
        }
        let huge_vec = [ENVELOPE_VERSION, 1, 0, 1, 251, 255, 255, 255, 255, 255, 255, 255, 255];
        assert!(decode::<Msg>(&huge_vec).is_err());
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
