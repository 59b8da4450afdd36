//! The Snappy compressor.

use std::io;

use super::compressor::{compression_error, Compressor};
use crate::error::CodecError;

/// Snappy raw format through [snap](https://docs.rs/snap) (pure Rust). Id 7.
///
/// Very fast with a modest ratio. The raw format (as Python's
/// `snappy.decompress` and most key-value stores) starts with the inflated
/// length, which is checked against the limit before anything is allocated.
///
/// Needs the `snappy` cargo feature (of `cache-memoize` or `cache-core`).
///
/// ```
/// use cache_core::codec::{Compressor, SnappyCompressor};
/// let mut packed = Vec::new();
/// SnappyCompressor.compress(&[5u8; 4000], &mut packed).unwrap();
/// assert!(SnappyCompressor.decompress(&packed, 3999, &mut Vec::new()).is_err());
/// ```
// The module's cfg again: carried into the metadata, it gives the
// re-export in `cache-memoize` its feature badge too.
#[cfg(feature = "snappy")]
#[cfg_attr(docsrs, doc(cfg(feature = "snappy")))]
#[derive(Clone, Copy, Debug, Default)]
pub struct SnappyCompressor;

impl SnappyCompressor {
    /// Header id.
    pub const ID: u8 = 7;
}

impl Compressor for SnappyCompressor {
    fn id(&self) -> u8 {
        Self::ID
    }
    fn name(&self) -> &'static str {
        "snappy"
    }
    fn compress(&self, input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        let start = out.len();
        out.resize(start + snap::raw::max_compress_len(input.len()), 0);
        let written = snap::raw::Encoder::new()
            .compress(input, &mut out[start..])
            .map_err(io::Error::other)?;
        out.truncate(start + written);
        Ok(())
    }
    fn decompress(&self, input: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), CodecError> {
        let corrupt = |e: snap::Error| compression_error(self.name(), limit, io::Error::other(e));
        let len = snap::raw::decompress_len(input).map_err(corrupt)?;
        if len > limit {
            return Err(CodecError::TooLarge { limit });
        }
        let start = out.len();
        out.resize(start + len, 0);
        snap::raw::Decoder::new()
            .decompress(input, &mut out[start..])
            .map_err(|e| {
                out.truncate(start);
                corrupt(e)
            })?;
        Ok(())
    }
}
