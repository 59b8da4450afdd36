//! The Zstandard compressor.

use std::io;

use super::compressor::{compression_error, read_bounded, Compressor};
use crate::error::CodecError;

/// Zstandard (RFC 8878) through the `zstd` crate (libzstd). Id 3.
/// Levels 1–22, default 3.
///
/// Usually the best size for the time among the built-in compressors.
///
/// Needs the `zstd` cargo feature (of `cache-memoize` or `cache-core`).
///
/// ```
/// use cache_core::codec::{Compressor, ZstdCompressor};
/// let zstd = ZstdCompressor::default();
/// let mut packed = Vec::new();
/// zstd.compress(&[1u8; 10_000], &mut packed).unwrap();
/// let mut unpacked = Vec::new();
/// zstd.decompress(&packed, 10_000, &mut unpacked).unwrap();
/// assert_eq!(unpacked, [1u8; 10_000]);
/// ```
// The module's cfg again: carried into the metadata, it gives the
// re-export in `cache-memoize` its feature badge too.
#[cfg(feature = "zstd")]
#[cfg_attr(docsrs, doc(cfg(feature = "zstd")))]
#[derive(Clone, Copy, Debug)]
pub struct ZstdCompressor {
    level: i32,
}

impl ZstdCompressor {
    /// Header id.
    pub const ID: u8 = 3;

    /// zstd at `level` (clamped to 1–22).
    pub fn new(level: i32) -> Self {
        Self {
            level: level.clamp(1, 22),
        }
    }

    /// The compression level.
    pub fn level(&self) -> i32 {
        self.level
    }
}

impl Default for ZstdCompressor {
    fn default() -> Self {
        Self::new(3)
    }
}

impl Compressor for ZstdCompressor {
    fn id(&self) -> u8 {
        Self::ID
    }
    fn name(&self) -> &'static str {
        "zstd"
    }
    fn compress(&self, input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        // One-shot compression records the value's size in the frame
        // header, which lets the reader refuse a bomb before inflating it.
        out.extend_from_slice(&::zstd::bulk::compress(input, self.level)?);
        Ok(())
    }
    fn decompress(&self, input: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), CodecError> {
        if let Ok(Some(size)) = ::zstd::zstd_safe::get_frame_content_size(input) {
            if size > limit as u64 {
                return Err(CodecError::TooLarge { limit });
            }
        }
        let mut inflate = || -> io::Result<()> {
            let mut decoder = ::zstd::stream::read::Decoder::with_buffer(input)?;
            // A frame header may ask for a window of up to 2 GiB, allocated
            // before any output. Frames written here have a window no larger
            // than the value; streamed frames of other writers get 8 MiB.
            decoder.window_log_max(window_log_for(limit).max(MIN_WINDOW_LOG))?;
            read_bounded(decoder, limit, out)
        };
        inflate().map_err(|e| compression_error(self.name(), limit, e))
    }
}

/// Window log allowed whatever the limit: 8 MiB, libzstd's window up to
/// level 9 for inputs of unknown size.
const MIN_WINDOW_LOG: u32 = 23;

/// The smallest window log (within zstd's 10–31) whose window holds `limit`
/// bytes.
fn window_log_for(limit: usize) -> u32 {
    let bits = usize::BITS - limit.saturating_sub(1).leading_zeros();
    bits.clamp(10, 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_covers_the_limit() {
        assert_eq!(window_log_for(0), 10);
        assert_eq!(window_log_for(1024), 10);
        assert_eq!(window_log_for(1025), 11);
        assert_eq!(window_log_for(64 << 20), 26);
        assert_eq!(window_log_for(usize::MAX), 31);
    }
}
