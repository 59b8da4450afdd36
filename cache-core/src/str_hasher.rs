//! A hasher for the short strings looked up on every memoized call (the
//! function prefix in the per-function counters, the alias in the cache
//! registry): one xxh3 over each written chunk instead of SipHash's rounds.
//! The strings are the program's own, never untrusted input, so
//! HashDoS resistance is not needed here.

use std::hash::{BuildHasher, Hasher};

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct StrHasher;

impl BuildHasher for StrHasher {
    type Hasher = ChunkHasher;
    fn build_hasher(&self) -> ChunkHasher {
        ChunkHasher(0)
    }
}

pub(crate) struct ChunkHasher(u64);

impl Hasher for ChunkHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0 = xxhash_rust::xxh3::xxh3_64_with_seed(bytes, self.0);
    }
    fn write_u8(&mut self, byte: u8) {
        self.0 = self.0.rotate_left(8) ^ u64::from(byte);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn different_strings_hash_apart() {
        let h = |s: &str| StrHasher.hash_one(s);
        assert_ne!(h("shop::price"), h("shop::prices"));
        assert_ne!(h("ab"), h("ba"));
        assert_eq!(h("same"), h("same"));
    }
}
