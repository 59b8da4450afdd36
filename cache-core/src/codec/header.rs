//! The header in front of every stored value, and the lease entry.
//!
//! Format 2 (written since 0.1; format 1 entries stay readable):
//!
//! ```text
//! byte 0       0xCA  magic
//! byte 1       0x02  format version
//! byte 2       serializer id   (1 = MessagePack, 2 = JSON, 3 = postcard, 4 = CBOR)
//! byte 3       compressor id   (0 = none, 1 = zlib, 2 = gzip, 3 = zstd, 4 = lz4,
//!                               5 = xz, 6 = brotli, 7 = snappy)
//! byte 4       flags: bit 0 = tag stamps follow; other bits 0 (an entry with
//!              an unknown flag is not read)
//! bytes 5-12   version token, u64 big-endian (random per store)
//! bytes 13-16  compute time in milliseconds, u32 big-endian
//! bytes 17-24  logical expiry, Unix milliseconds, u64 big-endian (0: none)
//! [flag 0:     u16 big-endian length T, then T bytes of tag stamps]
//! then         the payload: the serialized value, compressed if byte 3 is not 0
//! ```
//!
//! A lease (a computation in progress, see `docs/FORMAT.md`) is
//!
//! ```text
//! byte 0       0xCB  lease magic
//! byte 1       0x02  format version
//! bytes 2-17   the holder's random token
//! ```
//!
//! Format 1 was the first four bytes and the payload. `docs/FORMAT.md` is the
//! normative description for readers in other languages.

use crate::error::CodecError;

/// First byte of every value entry.
pub const MAGIC: u8 = 0xCA;
/// First byte of a lease: a computation of this key is in progress.
pub const LEASE_MAGIC: u8 = 0xCB;
/// The format version this build writes.
pub const FORMAT_VERSION: u8 = 2;
/// Length of the format-2 header without tag stamps: where the payload
/// starts in the entries this build writes.
pub const HEADER_LEN: usize = 25;
/// Length of the format-1 header.
pub const V1_HEADER_LEN: usize = 4;
/// Length of a lease entry.
pub const LEASE_LEN: usize = 18;

/// Flag bit: tag stamps follow the fixed header.
const FLAG_TAGS: u8 = 1;

/// What a format-2 value says about itself besides its codec.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    /// Random per store: a compare-and-set on it replaces exactly the value
    /// that was read.
    pub version_token: u64,
    /// How long the computation took, in milliseconds (for early refresh).
    pub compute_millis: u32,
    /// When the value expires logically, in Unix milliseconds; 0: never.
    pub expires_at_millis: u64,
}

/// The decoded header of a value entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Format version: 1 or 2.
    pub version: u8,
    /// Id of the serializer that wrote the payload.
    pub serializer: u8,
    /// Id of the compressor applied to it (0: none).
    pub compressor: u8,
    /// The metadata (all zero in format-1 entries).
    pub meta: Meta,
}

impl Header {
    /// A format-2 header.
    pub fn new(serializer: u8, compressor: u8, meta: Meta) -> Self {
        Header {
            version: FORMAT_VERSION,
            serializer,
            compressor,
            meta,
        }
    }

    /// The format-2 header bytes (no tag stamps).
    pub fn to_bytes(self) -> [u8; HEADER_LEN] {
        let mut bytes = [0; HEADER_LEN];
        bytes[..5].copy_from_slice(&[MAGIC, FORMAT_VERSION, self.serializer, self.compressor, 0]);
        bytes[5..13].copy_from_slice(&self.meta.version_token.to_be_bytes());
        bytes[13..17].copy_from_slice(&self.meta.compute_millis.to_be_bytes());
        bytes[17..25].copy_from_slice(&self.meta.expires_at_millis.to_be_bytes());
        bytes
    }

    /// Splits a value entry into its header and payload. A lease, a foreign
    /// or a damaged entry is an error (and reads as a miss).
    pub fn split(entry: &[u8]) -> Result<(Header, &[u8]), CodecError> {
        let (header, start) = Self::parse(entry)?;
        Ok((header, &entry[start..]))
    }

    /// The header and the offset where the payload starts.
    pub fn parse(entry: &[u8]) -> Result<(Header, usize), CodecError> {
        match entry.first() {
            Some(&MAGIC) => {}
            Some(&LEASE_MAGIC) => return Err(CodecError::Lease),
            Some(_) => return Err(CodecError::BadHeader("first byte is not the 0xCA magic")),
            None => return Err(CodecError::BadHeader("empty entry")),
        }
        match entry.get(1) {
            Some(1) if entry.len() >= V1_HEADER_LEN => Ok((
                Header {
                    version: 1,
                    serializer: entry[2],
                    compressor: entry[3],
                    meta: Meta::default(),
                },
                V1_HEADER_LEN,
            )),
            Some(&FORMAT_VERSION) => Self::parse_v2(entry),
            Some(1) | None => Err(CodecError::BadHeader("shorter than its header")),
            Some(&version) => Err(CodecError::UnsupportedVersion(version)),
        }
    }

    fn parse_v2(entry: &[u8]) -> Result<(Header, usize), CodecError> {
        if entry.len() < HEADER_LEN {
            return Err(CodecError::BadHeader("shorter than its header"));
        }
        let flags = entry[4];
        if flags & !FLAG_TAGS != 0 {
            return Err(CodecError::BadHeader("unknown flags in the header"));
        }
        let be_u64 = |at: usize| {
            let mut word = [0; 8];
            word.copy_from_slice(&entry[at..at + 8]);
            u64::from_be_bytes(word)
        };
        let meta = Meta {
            version_token: be_u64(5),
            compute_millis: u32::from_be_bytes([entry[13], entry[14], entry[15], entry[16]]),
            expires_at_millis: be_u64(17),
        };
        let mut start = HEADER_LEN;
        if flags & FLAG_TAGS != 0 {
            let Some(len) = entry.get(HEADER_LEN..HEADER_LEN + 2) else {
                return Err(CodecError::BadHeader("tag stamps cut short"));
            };
            start += 2 + usize::from(u16::from_be_bytes([len[0], len[1]]));
            if start > entry.len() {
                return Err(CodecError::BadHeader("tag stamps cut short"));
            }
        }
        let header = Header {
            version: FORMAT_VERSION,
            serializer: entry[2],
            compressor: entry[3],
            meta,
        };
        Ok((header, start))
    }
}

/// The version of each tag a value depends on, captured before it was
/// computed: `(tag, version)` pairs, stored as a MessagePack array of
/// `[tag, version]` arrays after the fixed header (flag bit 0).
pub type TagStamps = Vec<(String, u64)>;

/// `entry` (a format-2 value without stamps) with `stamps` inserted after
/// its fixed header and flag bit 0 set.
pub fn with_stamps(entry: &[u8], stamps: &TagStamps) -> Result<Vec<u8>, CodecError> {
    let block = rmp_serde::to_vec(stamps).map_err(|e| CodecError::serialize("tag stamps", e))?;
    let len = u16::try_from(block.len())
        .map_err(|_| CodecError::serialize("tag stamps", "more than 64 KiB of tags"))?;
    let mut out = Vec::with_capacity(entry.len() + 2 + block.len());
    out.extend_from_slice(&entry[..HEADER_LEN]);
    out[4] |= FLAG_TAGS;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&block);
    out.extend_from_slice(&entry[HEADER_LEN..]);
    Ok(out)
}

/// The tag stamps of a format-2 value, if it has any.
pub fn stamps_of(entry: &[u8]) -> Result<Option<TagStamps>, CodecError> {
    if entry.len() < HEADER_LEN + 2 || entry[..2] != [MAGIC, FORMAT_VERSION] {
        return Ok(None);
    }
    if entry[4] & FLAG_TAGS == 0 {
        return Ok(None);
    }
    let len = usize::from(u16::from_be_bytes([
        entry[HEADER_LEN],
        entry[HEADER_LEN + 1],
    ]));
    let block = entry
        .get(HEADER_LEN + 2..HEADER_LEN + 2 + len)
        .ok_or(CodecError::BadHeader("tag stamps cut short"))?;
    rmp_serde::from_slice(block)
        .map(Some)
        .map_err(|e| CodecError::deserialize("tag stamps", e))
}

/// A lease: the entry a computing caller writes into the key (`SET NX PX`)
/// until it stores the value with a compare-and-set on the lease. A delete
/// of the key in the meantime kills the lease, so the late store fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease([u8; LEASE_LEN]);

impl Lease {
    /// A lease with a new random token.
    pub fn new() -> Self {
        let mut bytes = [0; LEASE_LEN];
        bytes[0] = LEASE_MAGIC;
        bytes[1] = FORMAT_VERSION;
        bytes[2..10].copy_from_slice(&fastrand::u64(..).to_be_bytes());
        bytes[10..18].copy_from_slice(&fastrand::u64(..).to_be_bytes());
        Lease(bytes)
    }

    /// The lease entry's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Whether `entry` is a lease (of anyone).
    pub fn is_lease(entry: &[u8]) -> bool {
        entry.first() == Some(&LEASE_MAGIC)
    }
}

impl Default for Lease {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_2_headers_round_trip_and_format_1_still_reads() {
        let meta = Meta {
            version_token: 0x0102_0304_0506_0708,
            compute_millis: 250,
            expires_at_millis: 1_700_000_000_000,
        };
        let mut entry = Header::new(1, 1, meta).to_bytes().to_vec();
        entry.extend_from_slice(b"payload");
        let (header, payload) = Header::split(&entry).unwrap();
        assert_eq!(header.meta, meta);
        assert_eq!(
            (header.version, header.serializer, header.compressor),
            (2, 1, 1)
        );
        assert_eq!(payload, b"payload");
        assert_eq!(&entry[..5], &[0xCA, 2, 1, 1, 0]);
        assert_eq!(&entry[5..13], &[1, 2, 3, 4, 5, 6, 7, 8]);

        let (old, payload) = Header::split(&[0xCA, 1, 2, 0, b'7']).unwrap();
        assert_eq!(
            (old.version, old.serializer, old.meta),
            (1, 2, Meta::default())
        );
        assert_eq!(payload, b"7");
    }

    #[test]
    fn tag_stamps_are_skipped_and_damage_is_an_error() {
        let mut entry = Header::new(1, 0, Meta::default()).to_bytes().to_vec();
        entry[4] = FLAG_TAGS;
        entry.extend_from_slice(&[0, 3, 0x91, 0x01, 0x02]);
        entry.extend_from_slice(b"value");
        assert_eq!(Header::split(&entry).unwrap().1, b"value");
        entry.truncate(HEADER_LEN + 3);
        assert!(Header::split(&entry).is_err());

        let mut unknown_flag = Header::new(1, 0, Meta::default()).to_bytes().to_vec();
        unknown_flag[4] = 0x80;
        assert!(Header::split(&unknown_flag).is_err());
        assert!(Header::split(&[0xCA, 2, 1]).is_err());
        assert!(Header::split(&[0xCA, 1]).is_err());
        assert!(matches!(
            Header::split(&[0xCA, 9, 1, 1]),
            Err(CodecError::UnsupportedVersion(9))
        ));
        assert!(Header::split(&[]).is_err());
    }

    #[test]
    fn tag_stamps_round_trip_and_the_payload_stays_readable() {
        let mut entry = Header::new(1, 0, Meta::default()).to_bytes().to_vec();
        entry.extend_from_slice(b"payload");
        let stamps = vec![("user:7".to_owned(), 3), ("catalog".to_owned(), 0)];
        let tagged = with_stamps(&entry, &stamps).unwrap();
        assert_eq!(stamps_of(&tagged).unwrap(), Some(stamps));
        assert_eq!(Header::split(&tagged).unwrap().1, b"payload");
        assert_eq!(stamps_of(&entry).unwrap(), None);
    }

    #[test]
    fn a_lease_is_not_a_value_and_tokens_differ() {
        let (a, b) = (Lease::new(), Lease::new());
        assert_ne!(a, b);
        assert!(Lease::is_lease(a.as_bytes()));
        assert_eq!(a.as_bytes().len(), LEASE_LEN);
        assert!(matches!(
            Header::split(a.as_bytes()),
            Err(CodecError::Lease)
        ));
    }
}
