//! The xz (LZMA2) compressor.

use std::io::{self, Write};

use lzma_rust2::{XzOptions, XzReader, XzWriter};

use super::compressor::{compression_error, read_bounded, Compressor};
use super::Paced;
use crate::error::CodecError;

/// The smallest LZMA2 dictionary used for small values.
const MIN_DICT_SIZE: u32 = 4096;

/// xz (LZMA2 in the .xz container) through
/// [lzma-rust2](https://docs.rs/lzma-rust2) (pure Rust). Id 5. Presets 0–9,
/// default 6, as Python's `lzma` (django-redis's `LzmaCompressor`).
///
/// The best ratio of the built-in compressors on text, and by far the
/// slowest to compress. The dictionary is never larger than the value (the
/// preset's 8 MiB would be allocated and cleared for every value otherwise),
/// which changes nothing in the output but the header's dictionary size.
///
/// Needs the `xz` cargo feature (of `cache-memoize` or `cache-core`).
///
/// ```
/// use cache_core::codec::{Compressor, XzCompressor};
/// let mut packed = Vec::new();
/// XzCompressor::default().compress(b"abcabcabcabc", &mut packed).unwrap();
/// assert_eq!(&packed[..6], b"\xfd7zXZ\x00"); // xz magic
/// ```
// The module's cfg again: carried into the metadata, it gives the
// re-export in `cache-memoize` its feature badge too.
#[cfg(feature = "xz")]
#[cfg_attr(docsrs, doc(cfg(feature = "xz")))]
#[derive(Clone, Copy, Debug)]
pub struct XzCompressor {
    preset: u32,
}

impl XzCompressor {
    /// Header id.
    pub const ID: u8 = 5;

    /// xz at `preset` (clamped to 0–9).
    pub fn new(preset: u32) -> Self {
        Self {
            preset: preset.min(9),
        }
    }

    /// The compression preset.
    pub fn preset(&self) -> u32 {
        self.preset
    }
}

impl Default for XzCompressor {
    fn default() -> Self {
        Self::new(6)
    }
}

impl Compressor for XzCompressor {
    fn id(&self) -> u8 {
        Self::ID
    }
    fn name(&self) -> &'static str {
        "xz"
    }
    fn compress(&self, input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        let mut options = XzOptions::with_preset(self.preset);
        let value_size = u32::try_from(input.len()).unwrap_or(u32::MAX);
        let dict = &mut options.lzma_options.dict_size;
        *dict = (*dict).min(value_size.max(MIN_DICT_SIZE));
        let mut writer = XzWriter::new(out, options)?;
        Paced::new(&mut writer).write_all(input)?;
        writer.finish()?;
        Ok(())
    }
    fn decompress(&self, input: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), CodecError> {
        // The header names the dictionary size, which the reader allocates
        // up front: refuse dictionaries beyond what a value within `limit`
        // needs (twice the limit covers the header's rounding) or the 8 MiB
        // of the default preset, whichever is larger, plus 1 MiB for the
        // decoder's own state. Such a dictionary means a value over the limit.
        let mem_limit_kib = u32::try_from(limit.max(4 << 20) / 512 + 1024).unwrap_or(u32::MAX);
        let reader = XzReader::new_mem_limit(input, false, mem_limit_kib);
        read_bounded(reader, limit, out).map_err(|e| match e.kind() {
            io::ErrorKind::OutOfMemory => CodecError::TooLarge { limit },
            _ => compression_error(self.name(), limit, e),
        })
    }
}
