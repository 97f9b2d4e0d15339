//! The on-disk record: a fixed header with a checksum, then the payload.
//!
//! ```text
//! 0  u8   magic 0xED
//! 1  u8   format version (1)
//! 2  u8   tag (what the payload is; the log does not interpret it)
//! 3  u8   reserved, 0
//! 4  u32  payload length
//! 8  u32  CRC-32 of bytes 12.. to the end of the payload
//! 12 u64  first offset
//! 20 u32  count of offsets the record covers (0 for markers)
//! 24 u64  first hlc
//! 32 u64  last hlc
//! 40 ...  payload
//! ```
//! All integers little-endian.

pub const HEADER_LEN: usize = 40;
const MAGIC: u8 = 0xED;
const VERSION: u8 = 1;

/// What a record says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    pub tag: u8,
    pub first_offset: u64,
    pub count: u32,
    pub first_hlc: u64,
    pub last_hlc: u64,
}

impl RecordHeader {
    /// The offset after the last one this record covers.
    pub fn end_offset(&self) -> u64 {
        self.first_offset + u64::from(self.count)
    }
}

/// Header and payload as one buffer, ready to write.
pub fn encode(header: &RecordHeader, payload: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(HEADER_LEN + payload.len());
    buf.extend_from_slice(&[MAGIC, VERSION, header.tag, 0]);
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(&header.first_offset.to_le_bytes());
    buf.extend_from_slice(&header.count.to_le_bytes());
    buf.extend_from_slice(&header.first_hlc.to_le_bytes());
    buf.extend_from_slice(&header.last_hlc.to_le_bytes());
    buf.extend_from_slice(payload);
    let crc = crc32fast::hash(&buf[12..]);
    buf[8..12].copy_from_slice(&crc.to_le_bytes());
    buf
}

/// Why bytes are not a valid record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    /// Fewer bytes than the record needs: a torn write at the tail.
    Short,
    /// Wrong magic, version, or checksum.
    Corrupt(&'static str),
}

/// Reads the fixed part of a header: the payload length, checked magic and
/// version.
pub fn payload_len(head: &[u8]) -> Result<usize, Invalid> {
    if head.len() < HEADER_LEN {
        return Err(Invalid::Short);
    }
    if head[0] != MAGIC {
        return Err(Invalid::Corrupt("bad magic"));
    }
    if head[1] != VERSION {
        return Err(Invalid::Corrupt("unknown record version"));
    }
    Ok(u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize)
}

/// Decodes and checks a whole record (header and payload).
pub fn decode(record: &[u8]) -> Result<(RecordHeader, &[u8]), Invalid> {
    let len = payload_len(record)?;
    if record.len() < HEADER_LEN + len {
        return Err(Invalid::Short);
    }
    let record = &record[..HEADER_LEN + len];
    let stored = u32::from_le_bytes([record[8], record[9], record[10], record[11]]);
    if crc32fast::hash(&record[12..]) != stored {
        return Err(Invalid::Corrupt("checksum mismatch"));
    }
    let u64_at = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&record[i..i + 8]);
        u64::from_le_bytes(b)
    };
    let header = RecordHeader {
        tag: record[2],
        first_offset: u64_at(12),
        count: u32::from_le_bytes([record[20], record[21], record[22], record[23]]),
        first_hlc: u64_at(24),
        last_hlc: u64_at(32),
    };
    Ok((header, &record[HEADER_LEN..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> RecordHeader {
        RecordHeader { tag: 7, first_offset: 100, count: 3, first_hlc: 5, last_hlc: 9 }
    }

    #[test]
    fn records_round_trip() {
        let bytes = encode(&header(), b"hello");
        let (h, payload) = decode(&bytes).unwrap();
        assert_eq!(h, header());
        assert_eq!(payload, b"hello");
        assert_eq!(h.end_offset(), 103);
    }

    #[test]
    fn torn_and_flipped_records_are_told_apart() {
        let bytes = encode(&header(), b"hello");
        assert_eq!(decode(&bytes[..bytes.len() - 1]), Err(Invalid::Short));
        assert_eq!(decode(&bytes[..10]), Err(Invalid::Short));
        let mut flipped = bytes.clone();
        flipped[HEADER_LEN + 1] ^= 0x40;
        assert_eq!(decode(&flipped), Err(Invalid::Corrupt("checksum mismatch")));
        let mut magic = bytes;
        magic[0] = 0;
        assert_eq!(decode(&magic), Err(Invalid::Corrupt("bad magic")));
    }
}
