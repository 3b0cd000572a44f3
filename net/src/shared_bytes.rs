//! `#[serde(with = "sluice_net::shared_bytes")]` for a `Bytes` field that may be large (a
//! batch of records): in a frame it travels without being copied on either side.
//!
//! On the wire it is exactly a byte string (bincode: a varint length, then the bytes), the
//! same as `Bytes`' own serde, so marking a field changes no protocol. What changes is where
//! the bytes go:
//! - [`frame::encode`](crate::frame::encode) hands the field's `Bytes` to the stream as a
//!   piece of its own instead of copying it into the frame's buffer;
//! - [`frame::decode`](crate::frame::decode) gives the field a slice of the received frame
//!   instead of a copy (the frame's buffer lives as long as any such slice does).
//!
//! Outside a frame (any other serializer or deserializer) the field behaves as plain bytes.
//! The two directions meet through thread-locals that only the frame code sets, for the
//! length of one synchronous encode or decode: serde gives a field no other way to reach the
//! writer it is being written to. A mismatch (bytes not offered, a slice from elsewhere)
//! falls back to copying, so the result is always correct.

use std::cell::{Cell, RefCell};
use std::fmt;

use bytes::Bytes;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Serializer;

/// Fields shorter than this are copied: a piece of their own would cost more than the copy.
const SHARE_MIN: usize = 512;

thread_local! {
    /// An encode that collects pieces is running on this thread.
    static SHARING: Cell<bool> = const { Cell::new(false) };
    /// The field being written now, offered to the frame's writer.
    static OFFERED: RefCell<Option<Bytes>> = const { RefCell::new(None) };
    /// The frame being decoded on this thread: fields borrow from it.
    static SOURCE: RefCell<Option<Bytes>> = const { RefCell::new(None) };
}

/// Serializes the field as a byte string, offering its `Bytes` to a frame encode running on
/// this thread.
pub fn serialize<S: Serializer>(bytes: &Bytes, serializer: S) -> Result<S::Ok, S::Error> {
    if bytes.len() >= SHARE_MIN && SHARING.with(Cell::get) {
        OFFERED.with(|o| *o.borrow_mut() = Some(bytes.clone()));
    }
    serializer.serialize_bytes(bytes)
}

/// Deserializes a byte string: a slice of the frame being decoded when it lies within it,
/// else a copy.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Bytes, D::Error> {
    deserializer.deserialize_bytes(BytesVisitor)
}

struct BytesVisitor;

impl<'de> Visitor<'de> for BytesVisitor {
    type Value = Bytes;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte string")
    }

    fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Bytes, E> {
        Ok(SOURCE
            .with(|s| s.borrow().as_ref().and_then(|src| within(src, v)))
            .unwrap_or_else(|| Bytes::copy_from_slice(v)))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
        Ok(Bytes::copy_from_slice(v))
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
        Ok(Bytes::from(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Bytes, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(b) = seq.next_element::<u8>()? {
            out.push(b);
        }
        Ok(Bytes::from(out))
    }
}

/// `part` as a slice of `whole`, if it lies within it.
fn within(whole: &Bytes, part: &[u8]) -> Option<Bytes> {
    let (start, at) = (whole.as_ptr() as usize, part.as_ptr() as usize);
    (at >= start && at + part.len() <= start + whole.len()).then(|| whole.slice_ref(part))
}

/// Restores a thread-local's previous value when dropped (also on a panic).
struct Restore<F: FnMut()>(F);

impl<F: FnMut()> Drop for Restore<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

/// Runs an encode during which fields offer their `Bytes` (see [`take_offered`]).
pub(crate) fn sharing<T>(encode: impl FnOnce() -> T) -> T {
    let was = SHARING.with(|s| s.replace(true));
    let _restore = Restore(move || {
        SHARING.with(|s| s.set(was));
        OFFERED.with(|o| o.borrow_mut().take());
    });
    encode()
}

/// The offered field's `Bytes`, if `written` is exactly its bytes (so the writer may keep
/// the `Bytes` instead of copying `written`).
pub(crate) fn take_offered(written: &[u8]) -> Option<Bytes> {
    if written.len() < SHARE_MIN {
        return None;
    }
    OFFERED.with(|o| {
        let mut o = o.borrow_mut();
        let same = o.as_ref().is_some_and(|b| b.as_ptr() == written.as_ptr() && b.len() == written.len());
        if same {
            o.take()
        } else {
            None
        }
    })
}

/// Runs a decode of `source` during which fields borrow from it.
pub(crate) fn lending<T>(source: &Bytes, decode: impl FnOnce() -> T) -> T {
    let was = SOURCE.with(|s| s.replace(Some(source.clone())));
    let mut was = Some(was);
    let _restore = Restore(move || {
        let previous = was.take().flatten();
        SOURCE.with(|s| *s.borrow_mut() = previous);
    });
    decode()
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::frame::{self, Envelope, DEFAULT_MAX_FRAME, LENGTH_PREFIX};

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    struct Batch {
        topic: String,
        #[serde(with = "crate::shared_bytes")]
        records: Bytes,
        #[serde(with = "crate::shared_bytes")]
        small: Bytes,
    }

    fn batch(records: usize) -> Batch {
        Batch {
            topic: "t".into(),
            records: Bytes::from((0..records).map(|i| i as u8).collect::<Vec<u8>>()),
            small: Bytes::from_static(b"tiny"),
        }
    }

    #[test]
    fn a_large_field_is_its_own_piece_of_the_frame_and_a_slice_of_the_received_one() {
        let sent = batch(100_000);
        let frame = frame::encode(&Envelope::new(7, sent.clone()), DEFAULT_MAX_FRAME).expect("encode");
        let pieces = frame.clone().into_chunks();
        assert!(
            pieces.iter().any(|p| p.as_ptr() == sent.records.as_ptr() && p.len() == sent.records.len()),
            "the records were copied into the frame instead of sent as they are"
        );
        let wire = Bytes::from(frame.to_vec());
        assert_eq!(wire.len(), frame.len());
        let payload = wire.slice(LENGTH_PREFIX..);
        let got: Envelope<Batch> = frame::decode(&payload).expect("decode");
        assert_eq!(got.body, sent);
        let (start, end) = (payload.as_ptr() as usize, payload.as_ptr() as usize + payload.len());
        let at = got.body.records.as_ptr() as usize;
        assert!(
            at >= start && at + got.body.records.len() <= end,
            "the records were copied out of the frame"
        );
    }

    #[test]
    fn the_wire_form_is_plain_bytes_and_outside_a_frame_it_copies() {
        #[derive(Serialize, Deserialize)]
        struct Plain {
            topic: String,
            records: Bytes,
            small: Bytes,
        }
        let b = batch(2_000);
        let plain = Plain { topic: b.topic.clone(), records: b.records.clone(), small: b.small.clone() };
        let ours = frame::encode(&Envelope::new(1, b.clone()), DEFAULT_MAX_FRAME).expect("ours");
        let theirs = frame::encode(&Envelope::new(1, plain), DEFAULT_MAX_FRAME).expect("plain");
        assert_eq!(ours.to_vec(), theirs.to_vec(), "marking a field changed the protocol");
        // Any other serializer: an ordinary byte string.
        let config = bincode::config::standard();
        let bytes = bincode::serde::encode_to_vec(&b, config).expect("bincode");
        let (back, _): (Batch, usize) = bincode::serde::decode_from_slice(&bytes, config).expect("back");
        assert_eq!(back, b);
    }

    #[test]
    fn a_field_offered_but_not_written_is_not_kept_for_the_next_frame() {
        let first = batch(4_096);
        let _ = frame::encode(&Envelope::new(1, first), DEFAULT_MAX_FRAME).expect("first");
        assert!(OFFERED.with(|o| o.borrow().is_none()));
        assert!(!SHARING.with(Cell::get));
        assert!(SOURCE.with(|s| s.borrow().is_none()));
    }
}
