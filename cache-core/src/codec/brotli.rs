//! The Brotli compressor.

use std::io;

use super::compressor::{compression_error, read_bounded, Compressor};
use super::Paced;
use crate::error::CodecError;

/// Read/write buffer of the brotli streams.
const BUFFER_SIZE: usize = 4096;
/// log2 of brotli's sliding window: 4 MiB, brotli's default.
const WINDOW_LOG: i32 = 22;

/// Brotli (RFC 7932) through the pure-Rust `brotli` crate. Id 6.
/// Quality 0–11, default 5.
///
/// The default is 5, not brotli's 11: quality 11 compresses about ten times
/// slower for a few percent of size, which a cache write cannot afford.
///
/// Needs the `brotli` cargo feature (of `cache-memoize` or `cache-core`).
///
/// ```
/// use cache_core::codec::{BrotliCompressor, Compressor};
/// let brotli = BrotliCompressor::default();
/// let mut packed = Vec::new();
/// brotli.compress(&[9u8; 5000], &mut packed).unwrap();
/// assert!(packed.len() < 50);
/// ```
// The module's cfg again: carried into the metadata, it gives the
// re-export in `cache-memoize` its feature badge too.
#[cfg(feature = "brotli")]
#[cfg_attr(docsrs, doc(cfg(feature = "brotli")))]
#[derive(Clone, Copy, Debug)]
pub struct BrotliCompressor {
    quality: u32,
}

impl BrotliCompressor {
    /// Header id.
    pub const ID: u8 = 6;

    /// Brotli at `quality` (clamped to 0–11).
    pub fn new(quality: u32) -> Self {
        Self {
            quality: quality.min(11),
        }
    }

    /// The compression quality.
    pub fn quality(&self) -> u32 {
        self.quality
    }
}

impl Default for BrotliCompressor {
    fn default() -> Self {
        Self::new(5)
    }
}

impl Compressor for BrotliCompressor {
    fn id(&self) -> u8 {
        Self::ID
    }
    fn name(&self) -> &'static str {
        "brotli"
    }
    fn compress(&self, input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        let params = brotli::enc::BrotliEncoderParams {
            quality: self.quality as i32,
            lgwin: WINDOW_LOG,
            size_hint: input.len(),
            ..Default::default()
        };
        brotli::BrotliCompress(&mut Paced::new(input), out, &params).map(drop)
    }
    fn decompress(&self, input: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), CodecError> {
        read_bounded(brotli::Decompressor::new(input, BUFFER_SIZE), limit, out)
            .map_err(|e| compression_error(self.name(), limit, e))
    }
}
