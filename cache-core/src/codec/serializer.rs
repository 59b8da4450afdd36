//! The serializer plug point.

use std::fmt;

use crate::error::CodecError;

/// Turns values into bytes and back.
///
/// Object-safe through `erased_serde`, so a [`Codec`](super::Codec) can hold
/// any serializer, including one of your own. The built-in MessagePack
/// serializer is additionally called without dynamic dispatch on the hot path.
///
/// Ids 0–127 are reserved for serializers of this crate; use 128–255 for your
/// own.
///
/// ```
/// use cache_core::codec::{Serializer, JsonSerializer};
/// let json = JsonSerializer;
/// let mut out = Vec::new();
/// json.serialize(&vec![1, 2], &mut out).unwrap();
/// assert_eq!(out, b"[1,2]");
/// ```
pub trait Serializer: Send + Sync + fmt::Debug + 'static {
    /// The id written into the value header.
    fn id(&self) -> u8;

    /// A short name for logs and benchmark tables.
    fn name(&self) -> &'static str;

    /// Appends the serialized `value` to `out`.
    fn serialize(
        &self,
        value: &dyn erased_serde::Serialize,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError>;

    /// Builds a deserializer over `bytes` and hands it to `visit`, which
    /// deserializes the caller's type from it.
    fn deserialize<'de>(&self, bytes: &'de [u8], visit: Visit<'_, 'de>) -> Result<(), CodecError>;

    #[doc(hidden)]
    /// Lets the codec call built-in formats without dynamic dispatch.
    fn builtin_format(&self) -> Option<BuiltinFormat> {
        None
    }
}

/// What [`Serializer::deserialize`] hands its deserializer to: the caller's
/// code that deserializes its own type from it.
pub type Visit<'v, 'de> =
    &'v mut dyn FnMut(&mut dyn erased_serde::Deserializer<'de>) -> Result<(), erased_serde::Error>;

/// Formats the codec knows how to call directly.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuiltinFormat {
    /// rmp-serde, structs as maps.
    Msgpack,
}

/// MessagePack via rmp-serde, with structs written as maps (field names
/// included), so entries survive reordered fields and read as plain maps in
/// other languages. Id 1.
#[derive(Clone, Copy, Debug, Default)]
pub struct MsgpackSerializer;

impl MsgpackSerializer {
    /// Header id.
    pub const ID: u8 = 1;
    const NAME: &'static str = "msgpack";

    pub(crate) fn serialize_direct<T: serde::Serialize + ?Sized>(
        value: &T,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        let mut ser = rmp_serde::Serializer::new(out).with_struct_map();
        value
            .serialize(&mut ser)
            .map_err(|e| CodecError::serialize(Self::NAME, e))
    }

    pub(crate) fn deserialize_direct<T: serde::de::DeserializeOwned>(
        bytes: &[u8],
    ) -> Result<T, CodecError> {
        rmp_serde::from_slice(bytes).map_err(|e| CodecError::deserialize(Self::NAME, e))
    }
}

impl Serializer for MsgpackSerializer {
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
        Self::serialize_direct(value, out)
    }
    fn deserialize<'de>(&self, bytes: &'de [u8], visit: Visit<'_, 'de>) -> Result<(), CodecError> {
        let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
        let mut erased = <dyn erased_serde::Deserializer>::erase(&mut de);
        visit(&mut erased).map_err(|e| CodecError::deserialize(Self::NAME, e))
    }
    fn builtin_format(&self) -> Option<BuiltinFormat> {
        Some(BuiltinFormat::Msgpack)
    }
}

/// JSON via serde_json. Id 2.
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonSerializer;

impl JsonSerializer {
    /// Header id.
    pub const ID: u8 = 2;
    const NAME: &'static str = "json";
}

impl Serializer for JsonSerializer {
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
        serde_json::to_writer(out, value).map_err(|e| CodecError::serialize(Self::NAME, e))
    }
    fn deserialize<'de>(&self, bytes: &'de [u8], visit: Visit<'_, 'de>) -> Result<(), CodecError> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let mut erased = <dyn erased_serde::Deserializer>::erase(&mut de);
        visit(&mut erased).map_err(|e| CodecError::deserialize(Self::NAME, e))?;
        de.end().map_err(|e| CodecError::deserialize(Self::NAME, e))
    }
}
