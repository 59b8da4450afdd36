//! Which serializers and compressors this build has: the always-on ones plus
//! those whose cargo features are enabled.

use std::sync::Arc;

use super::{
    Compressor, JsonSerializer, MsgpackSerializer, NoCompression, Serializer, ZlibCompressor,
};

/// Every serializer compiled in, at its default settings, in id order.
///
/// A [`Codec`](super::Codec) reads entries written by any of them.
///
/// ```
/// let names: Vec<_> = cache_core::codec::serializers().iter().map(|s| s.name()).collect();
/// assert_eq!(&names[..2], ["msgpack", "json"]);
/// ```
pub fn serializers() -> Vec<Arc<dyn Serializer>> {
    vec![
        Arc::new(MsgpackSerializer),
        Arc::new(JsonSerializer),
        #[cfg(feature = "postcard")]
        Arc::new(super::PostcardSerializer),
        #[cfg(feature = "cbor")]
        Arc::new(super::CborSerializer),
    ]
}

/// Every compressor compiled in, at its default level, in id order
/// (starting with [`NoCompression`]).
///
/// A [`Codec`](super::Codec) reads entries compressed by any of them.
///
/// ```
/// let names: Vec<_> = cache_core::codec::compressors().iter().map(|c| c.name()).collect();
/// assert_eq!(&names[..2], ["none", "zlib"]);
/// ```
pub fn compressors() -> Vec<Arc<dyn Compressor>> {
    vec![
        Arc::new(NoCompression),
        Arc::new(ZlibCompressor::default()),
        #[cfg(feature = "gzip")]
        Arc::new(super::GzipCompressor::default()),
        #[cfg(feature = "zstd")]
        Arc::new(super::ZstdCompressor::default()),
        #[cfg(feature = "lz4")]
        Arc::new(super::Lz4Compressor),
        #[cfg(feature = "xz")]
        Arc::new(super::XzCompressor::default()),
        #[cfg(feature = "brotli")]
        Arc::new(super::BrotliCompressor::default()),
        #[cfg(feature = "snappy")]
        Arc::new(super::SnappyCompressor),
    ]
}
