//! What a stored entry is: its format, read from the header, and its value
//! decoded to JSON when the format is self-describing.

use cache_core::codec::header::{Header, Lease, Meta, LEASE_MAGIC, MAGIC, V1_HEADER_LEN};
use cache_core::codec::{compressors, serializers};
use cache_core::Codec;
use serde::Serialize;

use crate::any_value::AnyValue;

/// The format of an entry, named from its first four bytes.
pub fn format_label(head: &[u8]) -> String {
    if head.first() == Some(&LEASE_MAGIC) {
        return "lease (being computed)".to_owned();
    }
    if head.len() < V1_HEADER_LEN || head[0] != MAGIC {
        return "not a cache entry".to_owned();
    }
    if !matches!(head[1], 1 | 2) {
        return format!("format v{} (unknown to this tool)", head[1]);
    }
    let serializer = serializer_name(head[2]);
    match head[3] {
        0 => serializer,
        id => format!("{serializer}+{}", compressor_name(id)),
    }
}

fn serializer_name(id: u8) -> String {
    serializers()
        .iter()
        .find(|s| s.id() == id)
        .map_or_else(|| format!("serializer#{id}"), |s| s.name().to_owned())
}

fn compressor_name(id: u8) -> String {
    compressors()
        .iter()
        .find(|c| c.id() == id)
        .map_or_else(|| format!("compressor#{id}"), |c| c.name().to_owned())
}

/// Everything `show` says about one entry.
#[derive(Debug, Serialize)]
pub struct Inspection {
    /// `value`: decoded; `lease`: a computation of this key is in progress
    /// (no value yet); `undecodable`: a cache entry whose value could not be
    /// decoded here; `not_an_entry`: bytes without the cache's header.
    pub kind: &'static str,
    /// The header, for cache entries.
    pub format: Option<FormatInfo>,
    /// The serialized value's size, after inflating.
    pub payload_bytes: Option<usize>,
    /// The value as JSON.
    pub value: Option<serde_json::Value>,
    /// Why the value is not shown.
    pub problem: Option<String>,
    /// The first bytes, for entries that are not shown as a value.
    pub head: Option<String>,
}

/// The header of a cache entry.
#[derive(Debug, Serialize)]
pub struct FormatInfo {
    /// Format version (byte 1).
    pub version: u8,
    /// Serializer id (byte 2) and name.
    pub serializer_id: u8,
    /// Name of the serializer, or `serializer#id` when unknown here.
    pub serializer: String,
    /// Compressor id (byte 3; 0: none).
    pub compressor_id: u8,
    /// Name of the compressor.
    pub compressor: String,
    /// Format 2 metadata: the version token (hex).
    pub version_token: Option<String>,
    /// Format 2 metadata: how long the computation took, in ms.
    pub compute_ms: Option<u32>,
    /// Format 2 metadata: the logical expiry, Unix ms (absent: none).
    pub expires_at_unix_ms: Option<u64>,
}

/// Decodes `entry` as far as it goes. Never panics: a corrupt or foreign
/// entry is described.
pub fn inspect(codec: &Codec, entry: Vec<u8>) -> Inspection {
    let head = Some(escaped_head(&entry, entry.len() as u64));
    if Lease::is_lease(&entry) {
        return Inspection {
            kind: "lease",
            format: None,
            payload_bytes: None,
            value: None,
            problem: Some(
                "a computation of this key is in progress (a lease in the key); \
                 its value replaces the lease when it is stored"
                    .to_owned(),
            ),
            head,
        };
    }
    let header = match Header::split(&entry) {
        Ok((header, _)) => header,
        Err(e) => {
            let kind = if entry.first() == Some(&MAGIC) {
                "undecodable"
            } else {
                "not_an_entry"
            };
            return Inspection {
                kind,
                format: None,
                payload_bytes: None,
                value: None,
                problem: Some(e.to_string()),
                head,
            };
        }
    };
    let format = Some(format_info(header));
    let undecodable = |format, payload_bytes, problem: String| Inspection {
        kind: "undecodable",
        format,
        payload_bytes,
        value: None,
        problem: Some(problem),
        head: head.clone(),
    };
    // The entry moves into the codec: an uncompressed value is not copied.
    let payload = match codec.open(entry) {
        Ok(payload) => payload,
        Err(e) => return undecodable(format, None, e.to_string()),
    };
    match codec.deserialize::<AnyValue>(&payload) {
        Ok(AnyValue(value)) => Inspection {
            kind: "value",
            format,
            payload_bytes: Some(payload.as_bytes().len()),
            value: Some(value),
            problem: None,
            head: None,
        },
        Err(e) => {
            let why = if serializer_name(header.serializer) == "postcard" {
                "postcard is not self-describing: only the Rust type that wrote it can decode it"
                    .to_owned()
            } else {
                e.to_string()
            };
            undecodable(format, Some(payload.as_bytes().len()), why)
        }
    }
}

/// Describes an entry too large to read from its first bytes (`head`) and
/// its stored size: the header when it is a cache entry's, and why the
/// value is not shown.
pub fn inspect_head(head: &[u8], stored_bytes: u64, max_bytes: u64) -> Inspection {
    Inspection {
        kind: "too_large",
        format: Header::split(head)
            .ok()
            .map(|(header, _)| format_info(header)),
        payload_bytes: None,
        value: None,
        problem: Some(format!(
            "{stored_bytes} bytes stored, more than --max-bytes {max_bytes}: the value was not \
             read (raise --max-bytes to decode it)"
        )),
        head: Some(escaped_head(head, stored_bytes)),
    }
}

fn format_info(header: Header) -> FormatInfo {
    let v2 = header.version >= 2;
    let Meta {
        version_token,
        compute_millis,
        expires_at_millis,
    } = header.meta;
    FormatInfo {
        version: header.version,
        serializer_id: header.serializer,
        serializer: serializer_name(header.serializer),
        compressor_id: header.compressor,
        compressor: if header.compressor == 0 {
            "none".to_owned()
        } else {
            compressor_name(header.compressor)
        },
        version_token: v2.then(|| format!("{version_token:016x}")),
        compute_ms: v2.then_some(compute_millis),
        expires_at_unix_ms: (v2 && expires_at_millis != 0).then_some(expires_at_millis),
    }
}

/// The first 32 bytes of a value of `len` bytes, printable ASCII as is and
/// the rest as `\xNN`.
fn escaped_head(entry: &[u8], len: u64) -> String {
    let mut text = String::new();
    for &b in entry.iter().take(32) {
        if b.is_ascii_graphic() || b == b' ' {
            text.push(b as char);
        } else {
            text.push_str(&format!("\\x{b:02x}"));
        }
    }
    if len > 32 {
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_name_the_codec_or_say_what_is_wrong() {
        assert_eq!(format_label(&[0xCA, 1, 1, 1]), "msgpack+zlib");
        assert_eq!(format_label(&[0xCA, 2, 1, 1]), "msgpack+zlib");
        assert_eq!(format_label(&[0xCB, 2, 7, 7]), "lease (being computed)");
        assert_eq!(format_label(&[0xCA, 1, 2, 0]), "json");
        assert_eq!(
            format_label(&[0xCA, 1, 200, 99]),
            "serializer#200+compressor#99"
        );
        assert_eq!(
            format_label(&[0xCA, 9, 1, 1]),
            "format v9 (unknown to this tool)"
        );
        assert_eq!(format_label(b"hello"), "not a cache entry");
        assert_eq!(format_label(&[0xCA]), "not a cache entry");
    }

    #[test]
    fn values_decode_and_bad_entries_are_described() {
        let codec = Codec::default();
        let good = inspect(&codec, codec.encode(&vec!["a"; 2000]).unwrap());
        assert_eq!(good.kind, "value");
        assert_eq!(good.format.as_ref().unwrap().compressor, "zlib");
        assert_eq!(good.value.unwrap().as_array().unwrap().len(), 2000);

        let mut corrupt = codec.encode(&vec!["a"; 2000]).unwrap();
        corrupt.truncate(20);
        let bad = inspect(&codec, corrupt);
        assert_eq!(bad.kind, "undecodable");
        assert!(bad.problem.is_some());

        let lease = inspect(&codec, Lease::new().as_bytes().to_vec());
        assert_eq!(lease.kind, "lease");

        let foreign = inspect(&codec, b"plain text".to_vec());
        assert_eq!(foreign.kind, "not_an_entry");
        assert_eq!(foreign.head.as_deref(), Some("plain text"));
    }

    #[test]
    fn a_value_too_large_to_read_is_described_from_its_head() {
        let codec = Codec::default();
        let entry = codec.encode(&vec![7u64; 100]).unwrap();
        let big = inspect_head(&entry[..32], 1 << 30, 64 << 20);
        assert_eq!(big.kind, "too_large");
        assert_eq!(big.format.unwrap().serializer, "msgpack");
        assert!(big.value.is_none());
        assert!(big.problem.unwrap().contains("--max-bytes"));
        assert!(big.head.unwrap().ends_with('…'));
        let foreign = inspect_head(b"just text", 1 << 30, 1);
        assert!(foreign.format.is_none());
    }
}
