//! Shared plug-ins: an `Arc` of a serializer or compressor is one too, so
//! the entries of [`serializers()`](super::serializers) and
//! [`compressors()`](super::compressors) can configure a
//! [`Codec`](super::Codec) directly.

use std::io;
use std::sync::Arc;

use super::serializer::{BuiltinFormat, Visit};
use super::{Compressor, Serializer};
use crate::error::CodecError;

impl<S: Serializer + ?Sized> Serializer for Arc<S> {
    fn id(&self) -> u8 {
        (**self).id()
    }
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn serialize(
        &self,
        value: &dyn erased_serde::Serialize,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        (**self).serialize(value, out)
    }
    fn deserialize<'de>(&self, bytes: &'de [u8], visit: Visit<'_, 'de>) -> Result<(), CodecError> {
        (**self).deserialize(bytes, visit)
    }
    fn builtin_format(&self) -> Option<BuiltinFormat> {
        (**self).builtin_format()
    }
}

impl<C: Compressor + ?Sized> Compressor for Arc<C> {
    fn id(&self) -> u8 {
        (**self).id()
    }
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn compress(&self, input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        (**self).compress(input, out)
    }
    fn decompress(&self, input: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), CodecError> {
        (**self).decompress(input, limit, out)
    }
}
