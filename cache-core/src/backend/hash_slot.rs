//! Which Redis Cluster hash slot a key lives in.

/// The cluster hash slot of `key`: CRC16 (XMODEM) of the key, or of its
/// `{hash tag}` when it has a non-empty one, modulo 16384.
pub(crate) fn hash_slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let hashed = match bytes.iter().position(|&b| b == b'{') {
        Some(open) => match bytes[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &bytes[open + 1..open + 1 + len],
            _ => bytes,
        },
        None => bytes,
    };
    crc16::State::<crc16::XMODEM>::calculate(hashed) % 16384
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_slots_match_the_cluster_spec() {
        // The spec's CRC16 check value: CRC16("123456789") = 0x31C3, below
        // 16384, so it is also the slot.
        assert_eq!(hash_slot("123456789"), 0x31C3);
        // Known slots, as `CLUSTER KEYSLOT` answers them (Redis 7).
        assert_eq!(hash_slot("foo"), 12182);
        assert_eq!(hash_slot("bar"), 5061);
        assert_eq!(hash_slot("hello"), 866);
        // Hash tags (the spec's examples): only the tag is hashed ...
        assert_eq!(hash_slot("{user1000}.following"), 3443);
        assert_eq!(hash_slot("{user1000}.followers"), 3443);
        assert_eq!(hash_slot("user1000"), 3443);
        // ... the first `{…}` counts even when others follow ...
        assert_eq!(hash_slot("foo{bar}{zap}"), 5061);
        // ... an empty `{}` means the whole key is hashed ...
        assert_eq!(hash_slot("foo{}{bar}"), 8363);
        // ... and the tag runs from the first `{` to the next `}`.
        assert_eq!(hash_slot("foo{{bar}}zap"), 4015);
        assert_eq!(hash_slot("{bar"), 4015);
    }
}
