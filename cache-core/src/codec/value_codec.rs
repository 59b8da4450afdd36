//! Serializer + compressor + header: what is stored for a value.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::compressor::{Compressor, ZlibCompressor};
use super::header::{stamps_of, with_stamps, Header, Meta, TagStamps, HEADER_LEN};
use super::serializer::{BuiltinFormat, MsgpackSerializer, Serializer};
use crate::error::CodecError;

/// Encodes values for storage and decodes stored entries.
///
/// Writes with one serializer and one compressor; reads entries written by
/// any serializer or compressor it knows, so changing the codec of a running
/// system does not turn old entries into misses.
///
/// ```
/// use cache_core::Codec;
/// let codec = Codec::default(); // MessagePack + zlib above 1 KiB
/// let bytes = codec.encode(&vec!["abc"; 1000]).unwrap();
/// assert_eq!(&bytes[..4], &[0xCA, 2, 1, 1]); // magic, format 2, msgpack, zlib
/// let back: Vec<String> = codec.decode(&bytes).unwrap();
/// assert_eq!(back.len(), 1000);
/// ```
#[derive(Clone, Debug)]
pub struct Codec {
    serializer: Arc<dyn Serializer>,
    compressor: Arc<dyn Compressor>,
    compress_threshold: usize,
    max_value_size: usize,
    serializers: Vec<Arc<dyn Serializer>>,
    compressors: Vec<Arc<dyn Compressor>>,
}

impl Default for Codec {
    fn default() -> Self {
        Codec::builder().build()
    }
}

impl Codec {
    /// Starts a codec with the defaults: MessagePack, zlib level 6, compress
    /// payloads of 1 KiB and more, refuse values over 64 MiB.
    pub fn builder() -> CodecBuilder {
        CodecBuilder {
            serializer: Arc::new(MsgpackSerializer),
            compressor: Arc::new(ZlibCompressor::default()),
            compress_threshold: 1024,
            max_value_size: 64 * 1024 * 1024,
            extra_serializers: Vec::new(),
            extra_compressors: Vec::new(),
        }
    }

    /// The serializer values are written with.
    pub fn serializer(&self) -> &dyn Serializer {
        &*self.serializer
    }

    /// The compressor values are written with.
    pub fn compressor(&self) -> &dyn Compressor {
        &*self.compressor
    }

    /// The largest value, serialized and uncompressed, that is written or read.
    pub fn max_value_size(&self) -> usize {
        self.max_value_size
    }

    /// Serializes, compresses when it pays, and prefixes the header.
    pub fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, CodecError> {
        let (entry, _) = self.seal(self.serialize(value)?)?;
        Ok(Arc::try_unwrap(entry).unwrap_or_else(|shared| shared.to_vec()))
    }

    /// Checks the header, inflates (bounded by the max value size) and
    /// deserializes. Reads format 1 and 2 entries; a lease is an error.
    pub fn decode<T: DeserializeOwned>(&self, entry: &[u8]) -> Result<T, CodecError> {
        let (header, payload) = Header::split(entry)?;
        if header.compressor == 0 {
            self.check_size(payload.len())?;
            return self.deserialize_bytes(header.serializer, payload);
        }
        let inflated = self.inflate(header.compressor, payload)?;
        self.deserialize_bytes(header.serializer, &inflated)
    }

    /// First half of [`encode`](Self::encode): the serialized value, with
    /// room for the header in front. Cheap next to [`seal`](Self::seal) for
    /// large values, so callers may run `seal` on another thread.
    pub fn serialize<T: Serialize + ?Sized>(&self, value: &T) -> Result<Serialized, CodecError> {
        let mut bytes = Vec::with_capacity(64);
        bytes.extend_from_slice(&[0; HEADER_LEN]);
        match self.serializer.builtin_format() {
            Some(BuiltinFormat::Msgpack) => MsgpackSerializer::serialize_direct(value, &mut bytes)?,
            None => self.serializer.serialize(&value, &mut bytes)?,
        }
        let size = bytes.len() - HEADER_LEN;
        if size > self.max_value_size {
            return Err(CodecError::ValueTooLarge {
                size,
                limit: self.max_value_size,
            });
        }
        Ok(Serialized { bytes })
    }

    /// Second half of [`encode`](Self::encode): compresses when the payload
    /// reaches the threshold and compression pays, and writes the header
    /// (with a new random version token and no compute time or expiry).
    /// Returns the entry to store and the uncompressed payload (which callers
    /// waiting for this value can deserialize without inflating).
    pub fn seal(&self, serialized: Serialized) -> Result<(Arc<Vec<u8>>, Payload), CodecError> {
        self.seal_with(serialized, Meta::default())
    }

    /// [`seal`](Self::seal) with this metadata; a zero version token is
    /// replaced by a random one.
    pub fn seal_with(
        &self,
        serialized: Serialized,
        mut meta: Meta,
    ) -> Result<(Arc<Vec<u8>>, Payload), CodecError> {
        if meta.version_token == 0 {
            meta.version_token = fastrand::u64(1..);
        }
        let mut bytes = serialized.bytes;
        let payload_len = bytes.len() - HEADER_LEN;
        let serializer = self.serializer.id();
        if self.compressor.id() != 0 && payload_len >= self.compress_threshold {
            let mut packed = Vec::with_capacity(HEADER_LEN + payload_len / 2);
            packed
                .extend_from_slice(&Header::new(serializer, self.compressor.id(), meta).to_bytes());
            self.compressor
                .compress(&bytes[HEADER_LEN..], &mut packed)
                .map_err(|source| CodecError::Compression {
                    compressor: self.compressor.name(),
                    source,
                })?;
            // Store uncompressed when compression does not pay.
            if packed.len() < bytes.len() {
                let payload = Payload {
                    serializer,
                    bytes: Arc::new(bytes),
                    start: HEADER_LEN,
                    meta,
                    tags: None,
                };
                return Ok((Arc::new(packed), payload));
            }
        }
        bytes[..HEADER_LEN].copy_from_slice(&Header::new(serializer, 0, meta).to_bytes());
        let entry = Arc::new(bytes);
        let payload = Payload {
            serializer,
            bytes: entry.clone(),
            start: HEADER_LEN,
            meta,
            tags: None,
        };
        Ok((entry, payload))
    }

    /// [`seal_with`](Self::seal_with), with the versions of the tags the
    /// value depends on stored in its header (none: as `seal_with`).
    pub fn seal_tagged(
        &self,
        serialized: Serialized,
        meta: Meta,
        stamps: &TagStamps,
    ) -> Result<(Arc<Vec<u8>>, Payload), CodecError> {
        let (entry, mut payload) = self.seal_with(serialized, meta)?;
        if stamps.is_empty() {
            return Ok((entry, payload));
        }
        payload.tags = Some(Arc::new(stamps.clone()));
        Ok((Arc::new(with_stamps(&entry, stamps)?), payload))
    }

    /// Checks an entry's header and inflates it (bounded by the max value
    /// size): the payload, ready to deserialize. An uncompressed entry is
    /// not copied.
    pub fn open(&self, entry: Vec<u8>) -> Result<Payload, CodecError> {
        let (header, start) = Header::parse(&entry)?;
        self.find_serializer(header.serializer)?;
        let tags = stamps_of(&entry)?.map(Arc::new);
        if header.compressor == 0 {
            self.check_size(entry.len() - start)?;
            return Ok(Payload {
                serializer: header.serializer,
                bytes: Arc::new(entry),
                start,
                meta: header.meta,
                tags,
            });
        }
        let inflated = self.inflate(header.compressor, &entry[start..])?;
        Ok(Payload {
            serializer: header.serializer,
            bytes: Arc::new(inflated),
            start: 0,
            meta: header.meta,
            tags,
        })
    }

    /// Whether opening `entry` means inflating it.
    pub fn is_compressed(entry: &[u8]) -> bool {
        entry.len() >= 4 && entry[0] == super::header::MAGIC && entry[3] != 0
    }

    /// Deserializes an opened payload.
    pub fn deserialize<T: DeserializeOwned>(&self, payload: &Payload) -> Result<T, CodecError> {
        self.deserialize_bytes(payload.serializer, payload.as_bytes())
    }

    fn deserialize_bytes<T: DeserializeOwned>(
        &self,
        serializer_id: u8,
        payload: &[u8],
    ) -> Result<T, CodecError> {
        let serializer = self.find_serializer(serializer_id)?;
        match serializer.builtin_format() {
            Some(BuiltinFormat::Msgpack) => MsgpackSerializer::deserialize_direct(payload),
            None => {
                let mut value = None;
                serializer.deserialize(payload, &mut |de| {
                    value = Some(erased_serde::deserialize::<T>(de)?);
                    Ok(())
                })?;
                value.ok_or(CodecError::Deserialize {
                    serializer: serializer.name(),
                    message: "the serializer produced no value".into(),
                })
            }
        }
    }

    fn inflate(&self, compressor_id: u8, payload: &[u8]) -> Result<Vec<u8>, CodecError> {
        let compressor = self.find_compressor(compressor_id)?;
        let mut out = Vec::with_capacity(payload.len().saturating_mul(4).min(self.max_value_size));
        compressor.decompress(payload, self.max_value_size, &mut out)?;
        Ok(out)
    }

    fn check_size(&self, len: usize) -> Result<(), CodecError> {
        if len > self.max_value_size {
            return Err(CodecError::TooLarge {
                limit: self.max_value_size,
            });
        }
        Ok(())
    }

    fn find_serializer(&self, id: u8) -> Result<&dyn Serializer, CodecError> {
        if self.serializer.id() == id {
            return Ok(&*self.serializer);
        }
        self.serializers
            .iter()
            .find(|s| s.id() == id)
            .map(|s| &**s)
            .ok_or(CodecError::UnknownSerializer(id))
    }

    fn find_compressor(&self, id: u8) -> Result<&dyn Compressor, CodecError> {
        if self.compressor.id() == id {
            return Ok(&*self.compressor);
        }
        self.compressors
            .iter()
            .find(|c| c.id() == id)
            .map(|c| &**c)
            .ok_or(CodecError::UnknownCompressor(id))
    }
}

/// A serialized value before compression, with room for the header.
#[derive(Debug)]
pub struct Serialized {
    bytes: Vec<u8>,
}

impl Serialized {
    /// Length of the serialized value.
    pub fn len(&self) -> usize {
        self.bytes.len() - HEADER_LEN
    }

    /// Whether the serialized value is empty (never for the built-ins).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A stored value's serialized bytes, uncompressed, and the serializer that
/// wrote them. Cheap to clone: callers that share one lookup or one
/// computation deserialize the same bytes, each into its own value.
#[derive(Clone, Debug)]
pub struct Payload {
    serializer: u8,
    bytes: Arc<Vec<u8>>,
    start: usize,
    meta: Meta,
    tags: Option<Arc<TagStamps>>,
}

impl Payload {
    /// The serialized value.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[self.start..]
    }

    /// Id of the serializer that wrote it.
    pub fn serializer_id(&self) -> u8 {
        self.serializer
    }

    /// The entry's metadata (all zero for a format-1 entry).
    pub fn meta(&self) -> Meta {
        self.meta
    }

    /// The versions of the tags the value depends on, if it has any.
    pub fn tags(&self) -> Option<&TagStamps> {
        self.tags.as_deref()
    }
}

/// Configures a [`Codec`].
#[must_use]
#[derive(Debug)]
pub struct CodecBuilder {
    serializer: Arc<dyn Serializer>,
    compressor: Arc<dyn Compressor>,
    compress_threshold: usize,
    max_value_size: usize,
    extra_serializers: Vec<Arc<dyn Serializer>>,
    extra_compressors: Vec<Arc<dyn Compressor>>,
}

impl CodecBuilder {
    /// Writes values with `serializer`.
    pub fn serializer(mut self, serializer: impl Serializer) -> Self {
        self.serializer = Arc::new(serializer);
        self
    }

    /// Compresses payloads with `compressor` (use [`NoCompression`](super::NoCompression) to never compress).
    pub fn compressor(mut self, compressor: impl Compressor) -> Self {
        self.compressor = Arc::new(compressor);
        self
    }

    /// Payloads shorter than this many bytes are stored uncompressed (default 1024).
    pub fn compress_threshold(mut self, bytes: usize) -> Self {
        self.compress_threshold = bytes;
        self
    }

    /// Refuse to write, or to inflate on read, values larger than this
    /// (default 64 MiB). Bounds the memory a poisoned entry can take.
    pub fn max_value_size(mut self, bytes: usize) -> Self {
        self.max_value_size = bytes;
        self
    }

    /// Also reads entries written by `serializer`.
    pub fn read_serializer(mut self, serializer: impl Serializer) -> Self {
        self.extra_serializers.push(Arc::new(serializer));
        self
    }

    /// Also reads entries compressed by `compressor`.
    pub fn read_compressor(mut self, compressor: impl Compressor) -> Self {
        self.extra_compressors.push(Arc::new(compressor));
        self
    }

    /// The codec. It reads everything compiled into this crate plus what
    /// `read_serializer`/`read_compressor` added.
    pub fn build(self) -> Codec {
        let mut serializers = super::serializers();
        serializers.extend(self.extra_serializers);
        let mut compressors = super::compressors();
        compressors.extend(self.extra_compressors);
        Codec {
            serializer: self.serializer,
            compressor: self.compressor,
            compress_threshold: self.compress_threshold,
            max_value_size: self.max_value_size,
            serializers,
            compressors,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::codec::JsonSerializer;

    #[test]
    fn small_values_are_not_compressed_large_ones_are() {
        let codec = Codec::default();
        let small = codec.encode(&"abc").unwrap();
        assert_eq!(&small[..5], [0xCA, 2, 1, 0, 0]);
        assert_eq!(&small[HEADER_LEN..], [0xA3, b'a', b'b', b'c']);
        let large = codec.encode(&"abc".repeat(1000)).unwrap();
        assert_eq!(large[3], 1);
        assert!(large.len() < 200);
        assert_eq!(codec.decode::<String>(&large).unwrap(), "abc".repeat(1000));
    }

    #[test]
    fn incompressible_payloads_are_stored_plain() {
        // 2 KiB of pseudo-random bytes do not shrink under zlib.
        let mut x: u64 = 0x9E3779B97F4A7C15;
        let noise: Vec<u8> = (0..2048)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let entry = Codec::default()
            .encode(&serde_bytes::Bytes::new(&noise))
            .unwrap();
        assert_eq!(
            entry[3], 0,
            "compressor id must be 0 when zlib does not pay"
        );
        assert_eq!(
            entry.len(),
            HEADER_LEN + 3 + 2048,
            "header + bin16 marker + bytes"
        );
    }

    #[test]
    fn reads_entries_written_by_another_codec() {
        let json = Codec::builder().serializer(JsonSerializer).build();
        let msgpack = Codec::default();
        let mut map = BTreeMap::new();
        map.insert("k".to_string(), vec![1u32, 2, 3]);
        let entry = json.encode(&map).unwrap();
        assert_eq!(entry[2], JsonSerializer::ID);
        assert_eq!(
            msgpack
                .decode::<BTreeMap<String, Vec<u32>>>(&entry)
                .unwrap(),
            map
        );
    }

    #[test]
    fn bad_entries_are_errors_not_panics() {
        let codec = Codec::builder().max_value_size(1000).build();
        assert!(matches!(
            codec.decode::<u8>(b""),
            Err(CodecError::BadHeader(_))
        ));
        assert!(matches!(
            codec.decode::<u8>(b"\x00\x01\x01\x00\x01"),
            Err(CodecError::BadHeader(_))
        ));
        assert!(matches!(
            codec.decode::<u8>(b"\xCA\x09\x01\x00\x01"),
            Err(CodecError::UnsupportedVersion(9))
        ));
        assert!(matches!(
            codec.decode::<u8>(b"\xCA\x01\x77\x00\x01"),
            Err(CodecError::UnknownSerializer(0x77))
        ));
        assert!(matches!(
            codec.decode::<u8>(b"\xCA\x01\x01\x77\x01"),
            Err(CodecError::UnknownCompressor(0x77))
        ));
        assert!(matches!(
            codec.decode::<u8>(b"\xCA\x01\x01\x01garbage"),
            Err(CodecError::Compression { .. })
        ));
        assert!(matches!(
            codec.decode::<u8>(b"\xCA\x01\x01\x00\xA3abc"),
            Err(CodecError::Deserialize { .. })
        ));
        // A zlib bomb: 1 MB of zeros packs into ~1 KB and must be refused.
        let bomb = Codec::builder()
            .compress_threshold(0)
            .build()
            .encode(&vec![0u8; 1_000_000])
            .unwrap();
        assert!(bomb.len() < 5_000);
        assert!(matches!(
            codec.decode::<Vec<u8>>(&bomb),
            Err(CodecError::TooLarge { limit: 1000 })
        ));
    }
}
