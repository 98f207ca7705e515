//! The protobuf wire format, read by hand: varints, fixed 32/64-bit values and
//! length-delimited bytes. Every read is bounds-checked; malformed input is an error that
//! names the byte offset, never a panic.

/// What one field carries on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireValue<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

impl WireValue<'_> {
    pub fn wire_name(&self) -> &'static str {
        match self {
            WireValue::Varint(_) => "varint",
            WireValue::Fixed64(_) => "fixed64",
            WireValue::Bytes(_) => "length-delimited",
            WireValue::Fixed32(_) => "fixed32",
        }
    }
}

/// A wire-format error at a byte offset of the buffer being read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} at byte {offset}")]
pub struct WireError {
    pub offset: usize,
    pub what: &'static str,
    /// The number of the field being read, when its key was read.
    pub field: Option<u32>,
}

/// Reads fields one after another from a message's bytes.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn error(&self, what: &'static str) -> WireError {
        WireError {
            offset: self.pos,
            what,
            field: None,
        }
    }

    pub fn varint(&mut self) -> Result<u64, WireError> {
        let start = self.pos;
        let mut out = 0u64;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                self.pos = start;
                return Err(self.error("truncated varint"));
            };
            self.pos += 1;
            // The tenth byte may only carry the top bit of a 64-bit value.
            if i == 9 && b > 1 {
                self.pos = start;
                return Err(self.error("varint overflows 64 bits"));
            }
            out |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(out);
            }
        }
        self.pos = start;
        Err(self.error("varint longer than 10 bytes"))
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or_else(|| self.error(what))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// The next (field number, value), or None at the end of the buffer.
    pub fn field(&mut self) -> Result<Option<(u32, WireValue<'a>)>, WireError> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key_at = self.pos;
        let key = self.varint()?;
        let number = u32::try_from(key >> 3)
            .ok()
            .filter(|&n| n > 0 && n < (1 << 29))
            .ok_or(WireError {
                offset: key_at,
                what: "invalid field number",
                field: None,
            })?;
        self.value(key, key_at)
            .map(|value| Some((number, value)))
            .map_err(|e| WireError {
                field: Some(number),
                ..e
            })
    }

    fn value(&mut self, key: u64, key_at: usize) -> Result<WireValue<'a>, WireError> {
        Ok(match key & 7 {
            0 => WireValue::Varint(self.varint()?),
            1 => {
                let b = self.take(8, "truncated fixed64")?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                WireValue::Fixed64(u64::from_le_bytes(a))
            }
            2 => {
                let len_at = self.pos;
                let len = usize::try_from(self.varint()?).map_err(|_| WireError {
                    offset: len_at,
                    what: "length does not fit in memory",
                    field: None,
                })?;
                WireValue::Bytes(self.take(len, "length-delimited field runs past the end")?)
            }
            5 => {
                let b = self.take(4, "truncated fixed32")?;
                let mut a = [0u8; 4];
                a.copy_from_slice(b);
                WireValue::Fixed32(u32::from_le_bytes(a))
            }
            // 3 and 4 are the deprecated groups, which Kubernetes never sends.
            _ => {
                return Err(WireError {
                    offset: key_at,
                    what: "unsupported wire type (groups or 6/7)",
                    field: None,
                });
            }
        })
    }

    /// Byte offset of the next read.
    pub fn position(&self) -> usize {
        self.pos
    }
}

/// Encoding, for tests only: the decoder never writes protobuf.
#[cfg(test)]
pub fn encode_varint(mut v: u64, out: &mut Vec<u8>) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_each_wire_type() {
        let mut buf = Vec::new();
        encode_varint(1 << 3, &mut buf);
        encode_varint(300, &mut buf);
        encode_varint((2 << 3) | 1, &mut buf);
        buf.extend_from_slice(&1.5f64.to_bits().to_le_bytes());
        encode_varint((3 << 3) | 2, &mut buf);
        encode_varint(2, &mut buf);
        buf.extend_from_slice(b"hi");
        encode_varint((4 << 3) | 5, &mut buf);
        buf.extend_from_slice(&7u32.to_le_bytes());
        let mut r = Reader::new(&buf);
        assert_eq!(r.field().unwrap(), Some((1, WireValue::Varint(300))));
        assert_eq!(
            r.field().unwrap(),
            Some((2, WireValue::Fixed64(1.5f64.to_bits())))
        );
        assert_eq!(r.field().unwrap(), Some((3, WireValue::Bytes(b"hi"))));
        assert_eq!(r.field().unwrap(), Some((4, WireValue::Fixed32(7))));
        assert_eq!(r.field().unwrap(), None);
    }

    #[test]
    fn names_the_offset_of_bad_input() {
        // field 1, length 5, but only 2 bytes follow.
        let err = Reader::new(&[0x0a, 0x05, 1, 2]).field().unwrap_err();
        assert_eq!(err.what, "length-delimited field runs past the end");
        assert_eq!(err.offset, 2);
        let err = Reader::new(&[0x08, 0xff]).field().unwrap_err();
        assert_eq!((err.what, err.offset), ("truncated varint", 1));
        let err = Reader::new(&[0x0b]).field().unwrap_err();
        assert_eq!(err.what, "unsupported wire type (groups or 6/7)");
        let err = Reader::new(&[0x00, 0x00]).field().unwrap_err();
        assert_eq!(err.what, "invalid field number");
        let eleven = [0xff; 11];
        assert!(Reader::new(&eleven).varint().is_err());
    }

    proptest! {
        #[test]
        fn varints_round_trip(v in any::<u64>()) {
            let mut buf = Vec::new();
            encode_varint(v, &mut buf);
            let mut r = Reader::new(&buf);
            prop_assert_eq!(r.varint().unwrap(), v);
            prop_assert_eq!(r.position(), buf.len());
        }

        #[test]
        fn truncated_varints_are_errors(v in (1u64 << 7)..) {
            let mut buf = Vec::new();
            encode_varint(v, &mut buf);
            buf.pop();
            prop_assert!(Reader::new(&buf).varint().is_err());
        }

        #[test]
        fn arbitrary_bytes_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut r = Reader::new(&buf);
            // Reading stops at the end or at the first error; offsets stay in bounds.
            loop {
                match r.field() {
                    Ok(Some(_)) => prop_assert!(r.position() <= buf.len()),
                    Ok(None) => break,
                    Err(e) => { prop_assert!(e.offset <= buf.len()); break; }
                }
            }
        }

        #[test]
        fn length_delimited_fields_round_trip(
            fields in proptest::collection::vec((1u32..1000, proptest::collection::vec(any::<u8>(), 0..40)), 0..8)
        ) {
            let mut buf = Vec::new();
            for (n, bytes) in &fields {
                encode_varint((u64::from(*n) << 3) | 2, &mut buf);
                encode_varint(bytes.len() as u64, &mut buf);
                buf.extend_from_slice(bytes);
            }
            let mut r = Reader::new(&buf);
            for (n, bytes) in &fields {
                prop_assert_eq!(r.field().unwrap(), Some((*n, WireValue::Bytes(bytes))));
            }
            prop_assert_eq!(r.field().unwrap(), None);
            // Any cut inside the last field is an error, not a shorter message.
            if !fields.is_empty() {
                let mut r = Reader::new(&buf[..buf.len() - 1]);
                for _ in 0..fields.len() - 1 { r.field().unwrap(); }
                prop_assert!(r.field().is_err());
            }
        }
    }
}
