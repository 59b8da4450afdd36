//! The 4-byte header in front of every stored value.
//!
//! ```text
//! byte 0   0xCA  magic
//! byte 1   0x01  format version
//! byte 2   serializer id   (1 = MessagePack, 2 = JSON, 3 = postcard, 4 = CBOR)
//! byte 3   compressor id   (0 = none, 1 = zlib, 2 = gzip, 3 = zstd, 4 = lz4,
//!                           5 = xz, 6 = brotli, 7 = snappy)
//! byte 4.. payload: the serialized value, compressed if byte 3 is not 0
//! ```
//!
//! `docs/FORMAT.md` is the normative description for readers in other languages.

use crate::error::CodecError;

/// First byte of every entry.
pub const MAGIC: u8 = 0xCA;
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// Header length in bytes.
pub const HEADER_LEN: usize = 4;

/// The decoded header of an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Id of the serializer that wrote the payload.
    pub serializer: u8,
    /// Id of the compressor applied to it (0: none).
    pub compressor: u8,
}

impl Header {
    /// The four header bytes.
    pub fn to_bytes(self) -> [u8; HEADER_LEN] {
        [MAGIC, FORMAT_VERSION, self.serializer, self.compressor]
    }

    /// Splits an entry into its header and payload.
    pub fn split(entry: &[u8]) -> Result<(Header, &[u8]), CodecError> {
        if entry.len() < HEADER_LEN {
            return Err(CodecError::BadHeader("shorter than the 4-byte header"));
        }
        if entry[0] != MAGIC {
            return Err(CodecError::BadHeader("first byte is not the 0xCA magic"));
        }
        if entry[1] != FORMAT_VERSION {
            return Err(CodecError::UnsupportedVersion(entry[1]));
        }
        Ok((
            Header {
                serializer: entry[2],
                compressor: entry[3],
            },
            &entry[HEADER_LEN..],
        ))
    }
}
