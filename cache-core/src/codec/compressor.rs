//! The compressor plug point.

use std::fmt;
use std::io::{self, Read, Write};

use super::Paced;
use crate::error::CodecError;

/// Compresses serialized values, and inflates them without ever producing
/// more than a given number of bytes (so a poisoned entry cannot exhaust
/// memory).
///
/// Ids 0–127 are reserved for compressors of this crate; use 128–255 for
/// your own.
///
/// ```
/// use cache_core::codec::{Compressor, ZlibCompressor};
/// let zlib = ZlibCompressor::default();
/// let mut packed = Vec::new();
/// zlib.compress(&[7u8; 10_000], &mut packed).unwrap();
/// let mut unpacked = Vec::new();
/// zlib.decompress(&packed, 10_000, &mut unpacked).unwrap();
/// assert_eq!(unpacked, vec![7u8; 10_000]);
/// assert!(zlib.decompress(&packed, 9_999, &mut Vec::new()).is_err());
/// ```
pub trait Compressor: Send + Sync + fmt::Debug + 'static {
    /// The id written into the value header (0 means "not compressed").
    fn id(&self) -> u8;

    /// A short name for logs and benchmark tables.
    fn name(&self) -> &'static str;

    /// Appends the compressed `input` to `out`.
    fn compress(&self, input: &[u8], out: &mut Vec<u8>) -> io::Result<()>;

    /// Appends the inflated `input` to `out`, failing with
    /// [`CodecError::TooLarge`] once more than `limit` bytes would come out.
    fn decompress(&self, input: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), CodecError>;
}

/// Stores payloads as they are. Id 0.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoCompression;

impl Compressor for NoCompression {
    fn id(&self) -> u8 {
        0
    }
    fn name(&self) -> &'static str {
        "none"
    }
    fn compress(&self, input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        out.extend_from_slice(input);
        Ok(())
    }
    fn decompress(&self, input: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), CodecError> {
        if input.len() > limit {
            return Err(CodecError::TooLarge { limit });
        }
        out.extend_from_slice(input);
        Ok(())
    }
}

/// zlib (RFC 1950) through flate2's zlib-rs backend, as django-redis's
/// `ZlibCompressor`. Id 1. Level 0–9, default 6.
#[derive(Clone, Copy, Debug)]
pub struct ZlibCompressor {
    level: u32,
}

impl ZlibCompressor {
    /// Header id.
    pub const ID: u8 = 1;

    /// zlib at `level` (clamped to 0–9).
    pub fn new(level: u32) -> Self {
        Self {
            level: level.min(9),
        }
    }

    /// The compression level.
    pub fn level(&self) -> u32 {
        self.level
    }
}

impl Default for ZlibCompressor {
    fn default() -> Self {
        Self::new(6)
    }
}

impl Compressor for ZlibCompressor {
    fn id(&self) -> u8 {
        Self::ID
    }
    fn name(&self) -> &'static str {
        "zlib"
    }
    fn compress(&self, input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        let mut encoder =
            flate2::write::ZlibEncoder::new(out, flate2::Compression::new(self.level));
        Paced::new(&mut encoder).write_all(input)?;
        encoder.finish()?;
        Ok(())
    }
    fn decompress(&self, input: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), CodecError> {
        read_bounded(flate2::read::ZlibDecoder::new(input), limit, out)
            .map_err(|e| compression_error(self.name(), limit, e))
    }
}

/// Reads `reader` to the end into `out`, or fails once it yields more than
/// `limit` bytes.
pub fn read_bounded(reader: impl Read, limit: usize, out: &mut Vec<u8>) -> io::Result<()> {
    let start = out.len();
    let read = reader.take(limit as u64 + 1).read_to_end(out)?;
    if read > limit {
        out.truncate(start);
        return Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            "value exceeds limit",
        ));
    }
    Ok(())
}

/// Maps a decompression I/O error, telling the size limit apart.
pub fn compression_error(compressor: &'static str, limit: usize, e: io::Error) -> CodecError {
    if e.kind() == io::ErrorKind::FileTooLarge {
        CodecError::TooLarge { limit }
    } else {
        CodecError::Compression {
            compressor,
            source: e,
        }
    }
}
