//! Jute's binary encoding, as ZooKeeper's `BinaryInputArchive` / `BinaryOutputArchive` write
//! it: big-endian `int` (4 bytes) and `long` (8), `boolean` as one byte, `buffer` and
//! `ustring` as an `int` length (-1: null) and the bytes, `vector` as an `int` count (-1:
//! null) and the elements.
//!
//! The reader never allocates more than the bytes it was given can hold: a length or count
//! larger than what is left is refused before anything is reserved.

/// Why bytes are not the record they should be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {what}: {reason}")]
pub struct JuteError {
    /// The field or record being read.
    pub what: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

fn malformed(what: &'static str, reason: impl Into<String>) -> JuteError {
    JuteError { what, reason: reason.into() }
}

/// Reads jute fields from a frame.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], JuteError> {
        if n > self.remaining() {
            return Err(malformed(what, format!("needs {n} bytes, {} left", self.remaining())));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// An `int`.
    pub fn int(&mut self, what: &'static str) -> Result<i32, JuteError> {
        let b = self.take(4, what)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A `long`.
    pub fn long(&mut self, what: &'static str) -> Result<i64, JuteError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }

    /// A `boolean` (any non-zero byte is true, as Java's `readBoolean`).
    pub fn boolean(&mut self, what: &'static str) -> Result<bool, JuteError> {
        Ok(self.take(1, what)?[0] != 0)
    }

    fn length(&mut self, what: &'static str) -> Result<Option<usize>, JuteError> {
        match self.int(what)? {
            -1 => Ok(None),
            n if n < 0 => Err(malformed(what, format!("length {n}"))),
            n => Ok(Some(n as usize)),
        }
    }

    /// A `buffer` (`None`: null).
    pub fn buffer(&mut self, what: &'static str) -> Result<Option<Vec<u8>>, JuteError> {
        match self.length(what)? {
            None => Ok(None),
            Some(n) => Ok(Some(self.take(n, what)?.to_vec())),
        }
    }

    /// A `ustring` (`None`: null); it must be UTF-8.
    pub fn string(&mut self, what: &'static str) -> Result<Option<String>, JuteError> {
        match self.length(what)? {
            None => Ok(None),
            Some(n) => {
                let bytes = self.take(n, what)?;
                String::from_utf8(bytes.to_vec()).map(Some).map_err(|_| malformed(what, "not UTF-8"))
            }
        }
    }

    /// A `ustring` that must not be null (a path).
    pub fn path(&mut self, what: &'static str) -> Result<String, JuteError> {
        self.string(what)?.ok_or_else(|| malformed(what, "null"))
    }

    /// A `vector` whose elements `read` reads (`None`: null). Each element takes at least
    /// one byte, so a count above the bytes left is refused before anything is reserved.
    pub fn vector<T>(
        &mut self,
        what: &'static str,
        mut read: impl FnMut(&mut Self) -> Result<T, JuteError>,
    ) -> Result<Option<Vec<T>>, JuteError> {
        let Some(n) = self.length(what)? else { return Ok(None) };
        if n > self.remaining() {
            return Err(malformed(what, format!("claims {n} elements in {} bytes", self.remaining())));
        }
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(read(self)?);
        }
        Ok(Some(out))
    }

    /// A vector of strings; null reads as empty.
    pub fn strings(&mut self, what: &'static str) -> Result<Vec<String>, JuteError> {
        Ok(self.vector(what, |r| r.path(what))?.unwrap_or_default())
    }
}

/// Writes jute fields.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// A writer with room for the 4-byte frame size, filled in by [`Writer::frame`].
    pub fn framed() -> Self {
        Writer { buf: vec![0; 4] }
    }

    /// An `int`.
    pub fn int(&mut self, v: i32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// A `long`.
    pub fn long(&mut self, v: i64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// A `boolean`.
    pub fn boolean(&mut self, v: bool) -> &mut Self {
        self.buf.push(u8::from(v));
        self
    }

    /// A `buffer`.
    pub fn buffer(&mut self, v: &[u8]) -> &mut Self {
        self.int(v.len() as i32);
        self.buf.extend_from_slice(v);
        self
    }

    /// A `ustring`.
    pub fn string(&mut self, v: &str) -> &mut Self {
        self.buffer(v.as_bytes())
    }

    /// A vector of strings.
    pub fn strings<S: AsRef<str>>(&mut self, v: &[S]) -> &mut Self {
        self.int(v.len() as i32);
        for s in v {
            self.string(s.as_ref());
        }
        self
    }

    /// The frame: the size prefix filled in.
    pub fn frame(mut self) -> Vec<u8> {
        let size = (self.buf.len() - 4) as i32;
        self.buf[..4].copy_from_slice(&size.to_be_bytes());
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_and_lengths_beyond_the_bytes_are_refused() {
        let mut w = Writer::framed();
        w.int(-7).long(1 << 40).boolean(true).buffer(b"ab").string("/x").strings(&["a", "b"]);
        let frame = w.frame();
        assert_eq!(i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize, frame.len() - 4);
        let mut r = Reader::new(&frame[4..]);
        assert_eq!(r.int("i"), Ok(-7));
        assert_eq!(r.long("l"), Ok(1 << 40));
        assert_eq!(r.boolean("b"), Ok(true));
        assert_eq!(r.buffer("buf"), Ok(Some(b"ab".to_vec())));
        assert_eq!(r.path("p"), Ok("/x".to_string()));
        assert_eq!(r.strings("v"), Ok(vec!["a".to_string(), "b".to_string()]));
        assert_eq!(r.remaining(), 0);

        let huge = [0x7f, 0xff, 0xff, 0xff, 1, 2];
        assert!(Reader::new(&huge).buffer("data").is_err());
        assert!(Reader::new(&huge).vector("acl", |r| r.int("perms")).is_err());
        assert!(Reader::new(&[0xff, 0xff, 0xff, 0xfe]).string("path").is_err());
        assert_eq!(Reader::new(&[0xff, 0xff, 0xff, 0xff]).buffer("data"), Ok(None));
        assert!(Reader::new(&[0, 0, 0, 1, 0xff]).string("path").is_err(), "not UTF-8");
    }
}
