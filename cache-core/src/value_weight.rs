//! How many bytes a decoded value holds in memory, estimated from its
//! serialized form, for the local tier's byte budget. Serialized bytes
//! alone undercount badly: 30 three-letter strings are ~120 bytes of
//! MessagePack but ~1.7 KB decoded (a 24-byte `String` each, and a heap
//! block of at least 32 bytes behind it). So for MessagePack every string,
//! binary, array and map counts as one heap block more.

use crate::codec::serializer::MsgpackSerializer as MsgPack;

/// Bytes per heap block: the allocator's minimum chunk (32) plus the
/// element's inline part in its parent (a `String`/`Vec` is 24; rounded
/// up for maps' nodes).
const PER_BLOCK: u64 = 48;
/// The entry around a value: its map slot, key, box and bookkeeping.
const PER_ENTRY: u64 = 128;

/// The estimated size of a decoded `S` serialized as `payload` by the
/// serializer with id `serializer`.
pub(crate) fn weight_of<S>(payload: &[u8], serializer: u8) -> u64 {
    let inline = PER_ENTRY + std::mem::size_of::<S>() as u64;
    let len = payload.len() as u64;
    if serializer == MsgPack::ID {
        if let Some(blocks) = msgpack_heap_blocks(payload) {
            return inline + len + PER_BLOCK * blocks;
        }
    }
    // Other formats: a cruder rule.
    inline + 4 * len
}

/// The strings, binaries, arrays and maps in a MessagePack document (each
/// marker is read and its payload skipped; containers have none). `None`
/// for a truncated document.
fn msgpack_heap_blocks(bytes: &[u8]) -> Option<u64> {
    let mut at = 0usize;
    let mut blocks = 0u64;
    let len_at = |at: usize, size: usize| -> Option<usize> {
        let raw = bytes.get(at..at + size)?;
        Some(raw.iter().fold(0usize, |n, b| n << 8 | usize::from(*b)))
    };
    while at < bytes.len() {
        let marker = bytes[at];
        at += 1;
        // (bytes after the marker before the payload, payload length, heap block?)
        let skip = match marker {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => 0,
            0x80..=0x9f => {
                blocks += 1;
                0
            }
            0xa0..=0xbf => {
                blocks += 1;
                usize::from(marker & 0x1f)
            }
            0xc4 | 0xd9 => {
                blocks += 1;
                1 + len_at(at, 1)?
            }
            0xc5 | 0xda => {
                blocks += 1;
                2 + len_at(at, 2)?
            }
            0xc6 | 0xdb => {
                blocks += 1;
                4 + len_at(at, 4)?
            }
            0xc7 => 2 + len_at(at, 1)?,
            0xc8 => 3 + len_at(at, 2)?,
            0xc9 => 5 + len_at(at, 4)?,
            0xca => 4,
            0xcb => 8,
            0xcc | 0xd0 => 1,
            0xcd | 0xd1 => 2,
            0xce | 0xd2 => 4,
            0xcf | 0xd3 => 8,
            0xd4 => 2,
            0xd5 => 3,
            0xd6 => 5,
            0xd7 => 9,
            0xd8 => 17,
            0xdc => {
                blocks += 1;
                2
            }
            0xdd => {
                blocks += 1;
                4
            }
            0xde => {
                blocks += 1;
                2
            }
            0xdf => {
                blocks += 1;
                4
            }
            0xc1 => return None, // never used
        };
        at = at.checked_add(skip)?;
    }
    (at == bytes.len()).then_some(blocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_containers_are_counted() {
        let small: Vec<String> = (0..30).map(|i| format!("s{i:02}")).collect();
        let bytes = rmp_serde::to_vec(&small).unwrap();
        assert_eq!(msgpack_heap_blocks(&bytes), Some(31));
        let weight = weight_of::<Vec<String>>(&bytes, MsgPack::ID);
        // 30 strings of 3 bytes: about 1.7 KB decoded, not ~120 bytes.
        assert!((1_500..2_200).contains(&weight), "{weight}");
        let numbers = rmp_serde::to_vec(&(1u64, -5i32, 2.5f64, u64::MAX, "x".repeat(300))).unwrap();
        assert_eq!(msgpack_heap_blocks(&numbers), Some(2));
    }

    #[test]
    fn a_truncated_document_falls_back_to_the_crude_rule() {
        let bytes = rmp_serde::to_vec(&"a long string, longer than 31 bytes").unwrap();
        assert_eq!(msgpack_heap_blocks(&bytes[..5]), None);
        let weight = weight_of::<String>(&bytes[..5], MsgPack::ID);
        assert_eq!(weight, 128 + 24 + 20);
    }
}
