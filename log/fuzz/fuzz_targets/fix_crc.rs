//! Shared by the targets: rewrite the CRC of every batch in a buffer.
//!
//! A random mutation almost never keeps a batch's CRC-32C valid, so on raw input alone the
//! fuzzer would spend its time in the CRC check and rarely reach the record decoder or
//! recovery's offset checks. Each target therefore runs on the input as given *and* on a
//! copy whose CRCs were recomputed here (the lengths, magic and everything else stay as
//! the fuzzer made them).

/// Offset of the CRC field; the CRC covers the batch from `CRC_START` to its end.
const CRC_OFFSET: usize = 17;
const CRC_START: usize = 21;
/// `baseOffset` and `batchLength` are not counted in `batchLength`.
const LOG_OVERHEAD: usize = 12;

/// Walks the batches back to back from the front of `bytes` by their `batchLength` and
/// recomputes each one's CRC, stopping at the first length that does not fit. Returns
/// whether anything changed.
pub fn fix_crcs(bytes: &mut [u8]) -> bool {
    let mut changed = false;
    let mut pos = 0;
    while bytes.len() - pos >= CRC_START {
        let b = &mut bytes[pos..];
        let len = i32::from_be_bytes([b[8], b[9], b[10], b[11]]);
        let Ok(len) = usize::try_from(len) else { break };
        let total = LOG_OVERHEAD + len;
        if total < CRC_START || total > b.len() {
            break;
        }
        let crc = crc32c::crc32c(&b[CRC_START..total]).to_be_bytes();
        changed |= b[CRC_OFFSET..CRC_START] != crc;
        b[CRC_OFFSET..CRC_START].copy_from_slice(&crc);
        pos += total;
    }
    changed
}
