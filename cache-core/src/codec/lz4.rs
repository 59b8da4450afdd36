//! The LZ4 compressor.

use std::io::{self, Write};

use super::compressor::{compression_error, read_bounded, Compressor};
use crate::error::CodecError;

/// LZ4 frame format through [lz4_flex](https://docs.rs/lz4_flex) (pure Rust,
/// no unsafe). Id 4.
///
/// The fastest to compress and decompress, at a lower ratio than zlib. The
/// frame format (not the raw block format) is used, so `lz4 -d` and Python's
/// `lz4.frame.decompress` read the payloads.
///
/// Needs the `lz4` cargo feature (of `cache-memoize` or `cache-core`).
///
/// ```
/// use cache_core::codec::{Compressor, Lz4Compressor};
/// let mut packed = Vec::new();
/// Lz4Compressor.compress(&[0u8; 1000], &mut packed).unwrap();
/// assert_eq!(&packed[..4], &[0x04, 0x22, 0x4d, 0x18]); // LZ4 frame magic
/// ```
// The module's cfg again: carried into the metadata, it gives the
// re-export in `cache-memoize` its feature badge too.
#[cfg(feature = "lz4")]
#[cfg_attr(docsrs, doc(cfg(feature = "lz4")))]
#[derive(Clone, Copy, Debug, Default)]
pub struct Lz4Compressor;

impl Lz4Compressor {
    /// Header id.
    pub const ID: u8 = 4;
}

impl Compressor for Lz4Compressor {
    fn id(&self) -> u8 {
        Self::ID
    }
    fn name(&self) -> &'static str {
        "lz4"
    }
    fn compress(&self, input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        let mut encoder = lz4_flex::frame::FrameEncoder::new(out);
        // Not paced: lz4 is fast, and its frame encoder picks the block
        // size from the first write, so pieces would change the output.
        encoder.write_all(input)?;
        encoder.finish().map_err(io::Error::other)?;
        Ok(())
    }
    fn decompress(&self, input: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), CodecError> {
        read_bounded(lz4_flex::frame::FrameDecoder::new(input), limit, out)
            .map_err(|e| compression_error(self.name(), limit, e))
    }
}
