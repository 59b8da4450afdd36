//! How values become bytes: a [`Serializer`], a [`Compressor`], and the
//! 4-byte [`header`] that records which were used (see `docs/FORMAT.md`).
//!
//! Always available: [`MsgpackSerializer`] (the default), [`JsonSerializer`],
//! [`ZlibCompressor`] (the default) and [`NoCompression`]. The others are
//! behind cargo features of the same name (`all-codecs` enables them all):
//!
//! | Feature    | Item                 | Header id      |
//! |------------|----------------------|----------------|
//! | `postcard` | `PostcardSerializer` | serializer 3   |
//! | `cbor`     | `CborSerializer`     | serializer 4   |
//! | `gzip`     | `GzipCompressor`     | compressor 2   |
//! | `zstd`     | `ZstdCompressor`     | compressor 3   |
//! | `lz4`      | `Lz4Compressor`      | compressor 4   |
//! | `xz`       | `XzCompressor`       | compressor 5   |
//! | `brotli`   | `BrotliCompressor`   | compressor 6   |
//! | `snappy`   | `SnappyCompressor`   | compressor 7   |
//!
//! [`serializers`] and [`compressors`] list those compiled in.

#[cfg(feature = "brotli")]
mod brotli;
#[cfg(feature = "cbor")]
mod cbor;
mod compiled_in;
pub mod compressor;
#[cfg(feature = "gzip")]
mod gzip;
pub mod header;
#[cfg(feature = "lz4")]
mod lz4;
mod paced;
#[cfg(feature = "postcard")]
mod postcard;
pub mod serializer;
mod shared;
#[cfg(feature = "snappy")]
mod snappy;
mod value_codec;
#[cfg(feature = "xz")]
mod xz;
#[cfg(feature = "zstd")]
mod zstd;

pub use compressor::{Compressor, NoCompression, ZlibCompressor};
pub use paced::Paced;
pub use serializer::{JsonSerializer, MsgpackSerializer, Serializer, Visit};
pub use value_codec::{Codec, CodecBuilder, Payload, Serialized};

#[cfg(feature = "brotli")]
#[cfg_attr(docsrs, doc(cfg(feature = "brotli")))]
pub use brotli::BrotliCompressor;
#[cfg(feature = "cbor")]
#[cfg_attr(docsrs, doc(cfg(feature = "cbor")))]
pub use cbor::CborSerializer;
pub use compiled_in::{compressors, serializers};
#[cfg(feature = "gzip")]
#[cfg_attr(docsrs, doc(cfg(feature = "gzip")))]
pub use gzip::GzipCompressor;
#[cfg(feature = "lz4")]
#[cfg_attr(docsrs, doc(cfg(feature = "lz4")))]
pub use lz4::Lz4Compressor;
#[cfg(feature = "postcard")]
#[cfg_attr(docsrs, doc(cfg(feature = "postcard")))]
pub use postcard::PostcardSerializer;
#[cfg(feature = "snappy")]
#[cfg_attr(docsrs, doc(cfg(feature = "snappy")))]
pub use snappy::SnappyCompressor;
#[cfg(feature = "xz")]
#[cfg_attr(docsrs, doc(cfg(feature = "xz")))]
pub use xz::XzCompressor;
#[cfg(feature = "zstd")]
#[cfg_attr(docsrs, doc(cfg(feature = "zstd")))]
pub use zstd::ZstdCompressor;
