//! Per-batch compression, byte-compatible with Kafka.
//!
//! | codec | attribute bits | format |
//! |---|---|---|
//! | none | 0 | — |
//! | gzip | 1 | RFC 1952 |
//! | snappy | 2 | xerial framing (what Kafka's Java client writes); raw snappy is also read |
//! | lz4 | 3 | LZ4 frame format |
//! | zstd | 4 | zstd frame |
//!
//! Decompression stops with an error past `max_bytes`, so a small batch cannot expand into
//! an unbounded allocation.

use std::io::{Read, Write};

/// A batch's compression codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Uncompressed.
    None,
    /// gzip.
    Gzip,
    /// snappy.
    Snappy,
    /// lz4.
    Lz4,
    /// zstd.
    Zstd,
}

/// Why compressing or decompressing failed.
#[derive(Debug, thiserror::Error)]
pub enum CompressionError {
    /// The attribute bits name no codec.
    #[error("unknown compression codec id {0}")]
    UnknownCodec(u8),
    /// The data is not valid for the codec.
    #[error("{codec:?} data is corrupt: {reason}")]
    Corrupt {
        /// The codec.
        codec: Compression,
        /// The decoder's reason.
        reason: String,
    },
    /// The data would decompress to more than allowed.
    #[error("{codec:?} data decompresses to more than {max} bytes")]
    TooLarge {
        /// The codec.
        codec: Compression,
        /// The limit.
        max: usize,
    },
}

const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const XERIAL_BLOCK: usize = 32 * 1024;

impl Compression {
    /// The codec for attribute bits 0-2.
    pub fn from_id(id: u8) -> Result<Self, CompressionError> {
        Ok(match id {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            other => return Err(CompressionError::UnknownCodec(other)),
        })
    }

    /// Attribute bits 0-2 for this codec.
    pub fn id(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// The `compression.type` name.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }

    /// Compresses `data`.
    pub fn compress(self, data: &[u8]) -> Vec<u8> {
        match self {
            Compression::None => data.to_vec(),
            Compression::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                // Writing to a Vec cannot fail.
                let _ = e.write_all(data);
                e.finish().unwrap_or_default()
            }
            Compression::Snappy => {
                let mut out = Vec::with_capacity(data.len() / 2 + 32);
                out.extend_from_slice(XERIAL_MAGIC);
                out.extend_from_slice(&1i32.to_be_bytes()); // version
                out.extend_from_slice(&1i32.to_be_bytes()); // compatible version
                let mut enc = snap::raw::Encoder::new();
                for block in data.chunks(XERIAL_BLOCK) {
                    let c = enc.compress_vec(block).unwrap_or_default();
                    out.extend_from_slice(&(c.len() as i32).to_be_bytes());
                    out.extend_from_slice(&c);
                }
                out
            }
            Compression::Lz4 => {
                // 64 KiB independent blocks, as Kafka's KafkaLZ4BlockOutputStream writes them
                // (lz4_flex's `Auto` picked 4 MiB blocks for a 1 MiB batch: 4x slower).
                let info = lz4_flex::frame::FrameInfo::new()
                    .block_size(lz4_flex::frame::BlockSize::Max64KB)
                    .block_mode(lz4_flex::frame::BlockMode::Independent);
                let mut e = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
                let _ = e.write_all(data);
                e.finish().unwrap_or_default()
            }
            Compression::Zstd => zstd::stream::encode_all(data, 3).unwrap_or_default(),
        }
    }

    /// Decompresses `data`, refusing to produce more than `max_bytes`.
    pub fn decompress(self, data: &[u8], max_bytes: usize) -> Result<Vec<u8>, CompressionError> {
        let corrupt = |reason: String| CompressionError::Corrupt { codec: self, reason };
        match self {
            Compression::None => Ok(data.to_vec()),
            Compression::Gzip => read_bounded(self, flate2::read::GzDecoder::new(data), max_bytes),
            Compression::Lz4 => read_bounded(self, lz4_flex::frame::FrameDecoder::new(data), max_bytes),
            Compression::Zstd => {
                let d = zstd::stream::read::Decoder::new(data).map_err(|e| corrupt(e.to_string()))?;
                read_bounded(self, d, max_bytes)
            }
            Compression::Snappy => {
                let mut dec = snap::raw::Decoder::new();
                let mut one = |block: &[u8], out: &mut Vec<u8>| -> Result<(), CompressionError> {
                    let n = snap::raw::decompress_len(block).map_err(|e| corrupt(e.to_string()))?;
                    if out.len() + n > max_bytes {
                        return Err(CompressionError::TooLarge { codec: self, max: max_bytes });
                    }
                    let start = out.len();
                    out.resize(start + n, 0);
                    dec.decompress(block, &mut out[start..]).map_err(|e| corrupt(e.to_string()))?;
                    Ok(())
                };
                let mut out = Vec::new();
                if let Some(mut rest) = data.strip_prefix(XERIAL_MAGIC.as_slice()) {
                    rest = rest.get(8..).ok_or_else(|| corrupt("xerial header cut short".into()))?;
                    while !rest.is_empty() {
                        let len =
                            rest.get(..4).ok_or_else(|| corrupt("xerial block length cut short".into()))?;
                        let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
                        let len = usize::try_from(len)
                            .map_err(|_| corrupt(format!("negative block length {len}")))?;
                        let block =
                            rest.get(4..4 + len).ok_or_else(|| corrupt("xerial block cut short".into()))?;
                        one(block, &mut out)?;
                        rest = &rest[4 + len..];
                    }
                } else {
                    one(data, &mut out)?;
                }
                Ok(out)
            }
        }
    }
}

fn read_bounded(codec: Compression, r: impl Read, max: usize) -> Result<Vec<u8>, CompressionError> {
    let mut out = Vec::new();
    let mut limited = r.take(max as u64 + 1);
    limited.read_to_end(&mut out).map_err(|e| CompressionError::Corrupt { codec, reason: e.to_string() })?;
    if out.len() > max {
        return Err(CompressionError::TooLarge { codec, max });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Compression; 5] =
        [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];

    #[test]
    fn every_codec_round_trips_including_empty_and_multi_block_data() {
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        for c in ALL {
            for data in [&b""[..], b"hello", &big] {
                let z = c.compress(data);
                assert_eq!(c.decompress(&z, 1 << 20).expect("decompress"), data, "{c:?}");
            }
            assert_eq!(Compression::from_id(c.id()).expect("id"), c);
        }
        assert!(matches!(Compression::from_id(5), Err(CompressionError::UnknownCodec(5))));
    }

    #[test]
    fn a_decompression_bomb_is_refused() {
        let zeros = vec![0u8; 1 << 20];
        for c in ALL.into_iter().skip(1) {
            let z = c.compress(&zeros);
            assert!(z.len() < zeros.len() / 10, "{c:?} compresses zeros");
            let err = c.decompress(&z, 64 * 1024).expect_err("over the limit");
            assert!(matches!(err, CompressionError::TooLarge { max: 65536, .. }), "{c:?}: {err}");
        }
    }

    #[test]
    fn raw_snappy_without_xerial_framing_is_read_too() {
        let raw = snap::raw::Encoder::new().compress_vec(b"librdkafka style").expect("compress");
        assert_eq!(Compression::Snappy.decompress(&raw, 1024).expect("raw"), b"librdkafka style");
    }

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        let mut x: u32 = 12345;
        for n in 0..300 {
            let junk: Vec<u8> = (0..n)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (x >> 16) as u8
                })
                .collect();
            for c in ALL.into_iter().skip(1) {
                let _ = c.decompress(&junk, 1 << 16);
            }
        }
    }
}
