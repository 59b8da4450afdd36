//! The postcard serializer: compact, varint-based, not self-describing.

use super::serializer::{Serializer, Visit};
use crate::error::CodecError;

/// [postcard](https://docs.rs/postcard) via its serde support. Id 3.
///
/// The most compact of the built-in formats (no field names, varint
/// integers), and among the fastest. It is not self-describing: the reader
/// must ask for exactly the type that was written, so types that need
/// `deserialize_any` (`serde_json::Value`, `#[serde(flatten)]`,
/// `#[serde(untagged)]`, `skip_serializing_if`) do not round-trip, and adding
/// or reordering struct fields makes old entries undecodable (they become
/// misses). Prefer it for stable, fully typed values.
///
/// Needs the `postcard` cargo feature (of `cache-memoize` or `cache-core`).
///
/// ```
/// use cache_core::codec::{PostcardSerializer, Serializer};
/// let mut out = Vec::new();
/// PostcardSerializer.serialize(&(300u32, "hi"), &mut out).unwrap();
/// assert_eq!(out, [0xAC, 0x02, 2, b'h', b'i']);
/// ```
// The module's cfg again: carried into the metadata, it gives the
// re-export in `cache-memoize` its feature badge too.
#[cfg(feature = "postcard")]
#[cfg_attr(docsrs, doc(cfg(feature = "postcard")))]
#[derive(Clone, Copy, Debug, Default)]
pub struct PostcardSerializer;

impl PostcardSerializer {
    /// Header id.
    pub const ID: u8 = 3;
    const NAME: &'static str = "postcard";

    fn deserialize_error(e: impl std::fmt::Display) -> CodecError {
        CodecError::deserialize(Self::NAME, e)
    }
}

impl Serializer for PostcardSerializer {
    fn id(&self) -> u8 {
        Self::ID
    }
    fn name(&self) -> &'static str {
        Self::NAME
    }
    fn serialize(
        &self,
        value: &dyn erased_serde::Serialize,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        postcard::to_io(value, out)
            .map(drop)
            .map_err(|e| CodecError::serialize(Self::NAME, e))
    }
    fn deserialize<'de>(&self, bytes: &'de [u8], visit: Visit<'_, 'de>) -> Result<(), CodecError> {
        let mut de = postcard::Deserializer::from_bytes(bytes);
        visit(&mut <dyn erased_serde::Deserializer>::erase(&mut de)).map_err(|e| {
            if e.to_string() == postcard::Error::WontImplement.to_string() {
                Self::deserialize_error(
                    "postcard is not self-describing: it cannot read types that need \
                     `deserialize_any` (serde_json::Value, untagged or flattened types)",
                )
            } else {
                Self::deserialize_error(e)
            }
        })?;
        // Leftover bytes mean the entry holds something other than the
        // requested type, even if a prefix of it happened to parse.
        let rest = de.finalize().map_err(Self::deserialize_error)?;
        if rest.is_empty() {
            Ok(())
        } else {
            Err(Self::deserialize_error(format!(
                "{} bytes left over after the value",
                rest.len()
            )))
        }
    }
}
