//! Zig-zag varints as Kafka's records use them (protobuf's encoding).

/// Appends `v` as a zig-zag varint (at most 5 bytes).
pub(crate) fn put_i32(buf: &mut Vec<u8>, v: i32) {
    put_u64(buf, u64::from(((v << 1) ^ (v >> 31)) as u32));
}

/// Appends `v` as a zig-zag varlong (at most 10 bytes).
pub(crate) fn put_i64(buf: &mut Vec<u8>, v: i64) {
    put_u64(buf, ((v << 1) ^ (v >> 63)) as u64);
}

fn put_u64(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn get_u64(input: &mut &[u8], max_bytes: usize) -> Option<u64> {
    let mut v = 0u64;
    for i in 0..max_bytes {
        let (&b, rest) = input.split_first()?;
        *input = rest;
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Reads a zig-zag varint; `None` if truncated or longer than 5 bytes.
pub(crate) fn get_i32(input: &mut &[u8]) -> Option<i32> {
    let u = get_u64(input, 5)?;
    let u = u32::try_from(u).ok()?;
    Some(((u >> 1) as i32) ^ -((u & 1) as i32))
}

/// Reads a zig-zag varlong; `None` if truncated or longer than 10 bytes.
pub(crate) fn get_i64(input: &mut &[u8]) -> Option<i64> {
    let u = get_u64(input, 10)?;
    Some(((u >> 1) as i64) ^ -((u & 1) as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_encodings_and_round_trips() {
        let mut b = Vec::new();
        for (v, bytes) in [(0, vec![0u8]), (-1, vec![1]), (1, vec![2]), (-64, vec![127]), (64, vec![128, 1])]
        {
            b.clear();
            put_i32(&mut b, v);
            assert_eq!(b, bytes, "{v}");
        }
        for v in [i32::MIN, -300, 0, 300, i32::MAX] {
            b.clear();
            put_i32(&mut b, v);
            assert_eq!(get_i32(&mut &b[..]), Some(v));
        }
        for v in [i64::MIN, -1, 0, 1 << 40, i64::MAX] {
            b.clear();
            put_i64(&mut b, v);
            assert_eq!(get_i64(&mut &b[..]), Some(v));
        }
        assert_eq!(get_i32(&mut &[0x80u8, 0x80][..]), None, "truncated");
        assert_eq!(get_i32(&mut &[0xffu8; 6][..]), None, "too long");
    }
}
