//! How values become bytes: a [`Serializer`], a [`Compressor`], and the
//! 4-byte [`header`] that records which were used (see `docs/FORMAT.md`).

pub mod compressor;
pub mod header;
pub mod serializer;
mod value_codec;

pub use compressor::{Compressor, NoCompression, ZlibCompressor};
pub use serializer::{JsonSerializer, MsgpackSerializer, Serializer};
pub use value_codec::{Codec, CodecBuilder};
