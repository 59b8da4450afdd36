//! The CBOR serializer.

use cbor4ii::core::dec::Read as _;
use cbor4ii::core::utils::SliceReader;

use super::serializer::{Serializer, Visit};
use crate::error::CodecError;

/// CBOR (RFC 8949) via [cbor4ii](https://docs.rs/cbor4ii). Id 4.
///
/// Self-describing like MessagePack (structs are maps with field names), with
/// a standard tag system; readable by any CBOR library (Python's `cbor2`).
/// cbor4ii is used rather than ciborium because its deserializer is a public
/// type that can be handed to `erased_serde`, which the [`Serializer`] trait
/// needs.
///
/// Needs the `cbor` cargo feature (of `cache-memoize` or `cache-core`).
///
/// ```
/// use cache_core::codec::{CborSerializer, Serializer};
/// let mut out = Vec::new();
/// CborSerializer.serialize(&vec![1u8, 2], &mut out).unwrap();
/// assert_eq!(out, [0x82, 1, 2]);
/// ```
// The module's cfg again: carried into the metadata, it gives the
// re-export in `cache-memoize` its feature badge too.
#[cfg(feature = "cbor")]
#[cfg_attr(docsrs, doc(cfg(feature = "cbor")))]
#[derive(Clone, Copy, Debug, Default)]
pub struct CborSerializer;

impl CborSerializer {
    /// Header id.
    pub const ID: u8 = 4;
    const NAME: &'static str = "cbor";

    fn deserialize_error(e: impl std::fmt::Display) -> CodecError {
        CodecError::deserialize(Self::NAME, e)
    }
}

impl Serializer for CborSerializer {
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
        cbor4ii::serde::to_writer(out, &value).map_err(|e| CodecError::serialize(Self::NAME, e))
    }
    fn deserialize<'de>(&self, bytes: &'de [u8], visit: Visit<'_, 'de>) -> Result<(), CodecError> {
        let mut de = cbor4ii::serde::Deserializer::new(SliceReader::new(bytes));
        visit(&mut <dyn erased_serde::Deserializer>::erase(&mut de))
            .map_err(Self::deserialize_error)?;
        let mut rest = de.into_inner();
        match rest.fill(1) {
            Ok(left) if left.as_ref().is_empty() => Ok(()),
            _ => Err(Self::deserialize_error("bytes left over after the value")),
        }
    }
}
