//! The gzip compressor.

use std::io::{self, Write};

use super::compressor::{compression_error, read_bounded, Compressor};
use super::Paced;
use crate::error::CodecError;

/// gzip (RFC 1952) through flate2's zlib-rs backend. Id 2. Level 0–9,
/// default 6.
///
/// The same deflate stream as [`ZlibCompressor`](super::ZlibCompressor) in a
/// bigger (18-byte) envelope with a CRC-32; pick it when other readers
/// expect gzip (`gzip -d`, Python's `gzip.decompress`).
///
/// Needs the `gzip` cargo feature (of `cache-memoize` or `cache-core`).
///
/// ```
/// use cache_core::codec::{Compressor, GzipCompressor};
/// let mut packed = Vec::new();
/// GzipCompressor::default().compress(b"hello hello hello", &mut packed).unwrap();
/// assert_eq!(&packed[..2], &[0x1f, 0x8b]); // gzip magic
/// ```
// The module's cfg again: carried into the metadata, it gives the
// re-export in `cache-memoize` its feature badge too.
#[cfg(feature = "gzip")]
#[cfg_attr(docsrs, doc(cfg(feature = "gzip")))]
#[derive(Clone, Copy, Debug)]
pub struct GzipCompressor {
    level: u32,
}

impl GzipCompressor {
    /// Header id.
    pub const ID: u8 = 2;

    /// gzip at `level` (clamped to 0–9).
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

impl Default for GzipCompressor {
    fn default() -> Self {
        Self::new(6)
    }
}

impl Compressor for GzipCompressor {
    fn id(&self) -> u8 {
        Self::ID
    }
    fn name(&self) -> &'static str {
        "gzip"
    }
    fn compress(&self, input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        let mut encoder = flate2::write::GzEncoder::new(out, flate2::Compression::new(self.level));
        Paced::new(&mut encoder).write_all(input)?;
        encoder.finish()?;
        Ok(())
    }
    fn decompress(&self, input: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), CodecError> {
        read_bounded(flate2::read::GzDecoder::new(input), limit, out)
            .map_err(|e| compression_error(self.name(), limit, e))
    }
}
