//! The one definition of the key layout.
//!
//! Every key this crate writes is
//!
//! ```text
//! {cache prefix}:{version}:{key}
//! ```
//!
//! as in django's `KEY_PREFIX:VERSION:key`. A memoized function's key is
//!
//! ```text
//! {cache prefix}:{version}:{function prefix}:{args hash}
//! ```
//!
//! where `args hash` is 32 lowercase hex digits: the XXH3-128 hash of the
//! arguments serialized as MessagePack (structs as maps). XXH3 and MessagePack
//! are both fixed specifications, so the same arguments give the same key in
//! every process, on every machine and after upgrades; a golden test pins it.
//! MessagePack is self-delimiting, so two different argument lists of one
//! function never serialize to the same bytes; the function prefix sits in
//! the readable part, so two functions never share a key.
//!
//! Arguments whose serialized form depends on iteration order (a
//! `std::collections::HashMap`) give unstable keys: use `BTreeMap` or
//! `IndexMap` in arguments.

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;
use smallvec::SmallVec;

use crate::error::CodecError;

/// User keys longer than this are shortened to a readable head plus a hash.
pub const MAX_READABLE_KEY_LEN: usize = 1024;

/// Number of hex digits in an argument hash.
pub const ARGS_HASH_LEN: usize = 32;

/// How many bytes of a shortened user key stay readable (fewer when byte
/// 256 falls inside a character).
const READABLE_HEAD_LEN: usize = 256;

/// What a shortened key has after its readable head: `:#` and 32 hex digits.
const SHORTENED_MARK: &str = ":#";

/// The readable head a user key over [`MAX_READABLE_KEY_LEN`] bytes keeps:
/// its first 256 bytes, cut back to a character boundary.
fn readable_head(key: &str) -> &str {
    let mut cut = READABLE_HEAD_LEN.min(key.len());
    while !key.is_char_boundary(cut) {
        cut -= 1;
    }
    &key[..cut]
}

/// Builds full keys from user keys: `{prefix}:{version}:{key}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyBuilder {
    namespace: String,
}

impl KeyBuilder {
    /// A builder for `prefix` and `version` (django's `KEY_PREFIX` and `VERSION`).
    pub fn new(prefix: &str, version: u32) -> Self {
        Self {
            namespace: format!("{prefix}:{version}:"),
        }
    }

    /// What every full key of this builder starts with: `{prefix}:{version}:`.
    ///
    /// ```
    /// # use cache_core::KeyBuilder;
    /// assert_eq!(KeyBuilder::new("app", 2).namespace(), "app:2:");
    /// ```
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The full key of a user key. User keys longer than
    /// [`MAX_READABLE_KEY_LEN`] bytes keep their first part readable and end
    /// in the hash of the whole key (Redis keys of many kilobytes cost memory
    /// and bandwidth on every call).
    ///
    /// ```
    /// # use cache_core::KeyBuilder;
    /// let keys = KeyBuilder::new("app", 2);
    /// assert_eq!(keys.full_key("user:7"), "app:2:user:7");
    /// let long = keys.full_key(&"x".repeat(5000));
    /// assert_eq!(long.len(), "app:2:".len() + 256 + ":#".len() + 32);
    /// ```
    pub fn full_key(&self, key: &str) -> String {
        if key.len() > MAX_READABLE_KEY_LEN {
            let hash = xxhash_rust::xxh3::xxh3_128(key.as_bytes());
            let head = readable_head(key);
            return format!("{}{head}{SHORTENED_MARK}{hash:032x}", self.namespace);
        }
        let mut full = String::with_capacity(self.namespace.len() + key.len());
        full.push_str(&self.namespace);
        full.push_str(key);
        full
    }

    /// The full key of one call of a memoized function:
    /// `{ns}{function prefix}:{args hash}`, built in one allocation.
    ///
    /// ```
    /// # use cache_core::{KeyBuilder, key::function_key};
    /// let keys = KeyBuilder::new("app", 1);
    /// let full = keys.function_key("shop::price", &(&42u64,)).unwrap();
    /// assert_eq!(full.as_str(), keys.full_key(&function_key("shop::price", &(&42u64,)).unwrap()));
    /// ```
    pub fn function_key<A: Serialize + ?Sized>(
        &self,
        function_prefix: &str,
        args: &A,
    ) -> Result<FullKey, CodecError> {
        Ok(self.function_key_of(function_prefix, args_hash(args)?))
    }

    /// [`function_key`](Self::function_key) from the arguments' hash
    /// ([`args_hash`]).
    pub fn function_key_of(&self, function_prefix: &str, args_hash: u128) -> FullKey {
        if function_prefix.len() + 1 + ARGS_HASH_LEN > MAX_READABLE_KEY_LEN {
            let user_key = format!("{function_prefix}:{args_hash:032x}");
            return FullKey(self.full_key(&user_key));
        }
        let mut full =
            String::with_capacity(self.namespace.len() + function_prefix.len() + 1 + ARGS_HASH_LEN);
        full.push_str(&self.namespace);
        full.push_str(function_prefix);
        full.push(':');
        push_hex(&mut full, args_hash);
        FullKey(full)
    }

    /// The XXH3-128 hash of the bytes of
    /// [`function_key_of(function_prefix, args_hash)`](Self::function_key_of),
    /// computed without allocating (the local tier's key).
    ///
    /// ```
    /// # use cache_core::KeyBuilder;
    /// let keys = KeyBuilder::new("app", 1);
    /// let full = keys.function_key_of("shop::price", 7);
    /// assert_eq!(
    ///     keys.function_key_hash("shop::price", 7),
    ///     xxhash_rust::xxh3::xxh3_128(full.as_str().as_bytes())
    /// );
    /// ```
    pub fn function_key_hash(&self, function_prefix: &str, args_hash: u128) -> u128 {
        if function_prefix.len() + 1 + ARGS_HASH_LEN > MAX_READABLE_KEY_LEN {
            let full = self.function_key_of(function_prefix, args_hash);
            return xxhash_rust::xxh3::xxh3_128(full.as_str().as_bytes());
        }
        let (namespace, prefix) = (self.namespace.as_bytes(), function_prefix.as_bytes());
        let len = namespace.len() + prefix.len() + 1 + ARGS_HASH_LEN;
        let mut on_stack = [0u8; 256];
        let mut on_heap = Vec::new();
        let full = if len <= on_stack.len() {
            &mut on_stack[..len]
        } else {
            on_heap.resize(len, 0);
            &mut on_heap[..]
        };
        let (ns, rest) = full.split_at_mut(namespace.len());
        ns.copy_from_slice(namespace);
        let (p, rest) = rest.split_at_mut(prefix.len());
        p.copy_from_slice(prefix);
        rest[0] = b':';
        rest[1..].copy_from_slice(&hex_digits(args_hash));
        xxhash_rust::xxh3::xxh3_128(full)
    }

    /// The key holding the version of tag `tag`: `{ns}#tag:{tag}` (one key
    /// per tag, so one Cluster slot per tag).
    ///
    /// ```
    /// # use cache_core::KeyBuilder;
    /// assert_eq!(KeyBuilder::new("app", 1).tag_key("user:7"), "app:1:#tag:user:7");
    /// ```
    pub fn tag_key(&self, tag: &str) -> String {
        self.full_key(&format!("#tag:{tag}"))
    }

    /// A matcher for every key whose user key starts with `prefix`.
    ///
    /// A user key over [`MAX_READABLE_KEY_LEN`] bytes is stored as its first
    /// 256 bytes, `:#` and a hash of the whole key, so the rest of it cannot
    /// be read back. For a `prefix` of up to 256 bytes that changes nothing.
    /// A longer `prefix` selects the keys stored in full that start with it,
    /// and every shortened key whose readable head is the first 256 bytes of
    /// `prefix`: that includes every long key starting with `prefix`, and
    /// also long keys that share those 256 bytes but go on differently
    /// (which cannot be told apart from the hash), or a key stored in full
    /// that reads exactly like a shortened one. It never misses a key that
    /// starts with `prefix`.
    ///
    /// ```
    /// # use cache_core::KeyBuilder;
    /// let keys = KeyBuilder::new("app", 1);
    /// let prefix = "r".repeat(300);
    /// let matcher = keys.matcher_for_prefix(&prefix);
    /// assert!(matcher.matches(&keys.full_key(&format!("{prefix}:short"))));
    /// assert!(matcher.matches(&keys.full_key(&format!("{prefix}{}", "x".repeat(2000)))));
    /// // Over-selected: a long key with the same first 256 bytes.
    /// assert!(matcher.matches(&keys.full_key(&"r".repeat(2000))));
    /// assert!(!matcher.matches(&keys.full_key(&"r".repeat(299))));
    /// ```
    pub fn matcher_for_prefix(&self, prefix: &str) -> KeyMatcher {
        let whole = format!("{}{prefix}", self.namespace);
        let head = readable_head(prefix);
        if head.len() == prefix.len() {
            return KeyMatcher {
                prefix: whole,
                exact_hash_suffix: false,
                or_shortened_after: None,
            };
        }
        KeyMatcher {
            prefix: format!("{}{head}", self.namespace),
            exact_hash_suffix: false,
            or_shortened_after: Some(whole),
        }
    }

    /// A matcher for exactly the entries of the memoized function with this
    /// function prefix: `{ns}{function prefix}:` followed by one args hash,
    /// so a function named `a` never matches the entries of `a:b`.
    pub fn matcher_for_function(&self, function_prefix: &str) -> KeyMatcher {
        let mut prefix = self.full_key(function_prefix);
        prefix.push(':');
        KeyMatcher {
            prefix,
            exact_hash_suffix: true,
            or_shortened_after: None,
        }
    }
}

/// A complete key as stored in the backend, namespace included.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FullKey(String);

impl FullKey {
    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key as a `String`.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for FullKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Something that names an entry: a user key (`str`, namespaced by the
/// cache) or a [`FullKey`] (used as it is).
pub trait CacheKey {
    /// The full key under `keys`.
    fn full_key<'a>(&'a self, keys: &KeyBuilder) -> Cow<'a, str>;
}

impl CacheKey for str {
    fn full_key<'a>(&'a self, keys: &KeyBuilder) -> Cow<'a, str> {
        Cow::Owned(keys.full_key(self))
    }
}

impl CacheKey for String {
    fn full_key<'a>(&'a self, keys: &KeyBuilder) -> Cow<'a, str> {
        Cow::Owned(keys.full_key(self))
    }
}

impl CacheKey for FullKey {
    fn full_key<'a>(&'a self, _: &KeyBuilder) -> Cow<'a, str> {
        Cow::Borrowed(&self.0)
    }
}

/// The user key of one call of a memoized function: `{function prefix}:{args hash}`.
///
/// ```
/// # use cache_core::key::function_key;
/// let key = function_key("shop::price", &(&42u64, &"EUR")).unwrap();
/// assert!(key.starts_with("shop::price:"));
/// assert_eq!(key.len(), "shop::price:".len() + 32);
/// ```
pub fn function_key<A: Serialize + ?Sized>(
    function_prefix: &str,
    args: &A,
) -> Result<String, CodecError> {
    let hash = args_hash(args)?;
    let mut key = String::with_capacity(function_prefix.len() + 1 + ARGS_HASH_LEN);
    key.push_str(function_prefix);
    key.push(':');
    push_hex(&mut key, hash);
    Ok(key)
}

/// Appends `hash` as 32 lowercase hex digits.
fn push_hex(out: &mut String, hash: u128) {
    out.push_str(std::str::from_utf8(&hex_digits(hash)).expect("hex digits are ASCII"));
}

/// `hash` as 32 lowercase hex digits (as `{:032x}`, without the formatting
/// machinery: this runs on every memoized call).
fn hex_digits(hash: u128) -> [u8; 32] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 32];
    for (i, digit) in digits.iter_mut().enumerate() {
        *digit = DIGITS[((hash >> (124 - 4 * i)) & 0xf) as usize];
    }
    digits
}

/// The stable 128-bit hash of `args`' MessagePack form.
///
/// The bytes are written to a buffer on the stack (on the heap past 128
/// bytes) and hashed in one go: XXH3's one-shot and streaming forms give
/// the same hash, and the one-shot form skips the streaming state's
/// setup, which cost more than the hashing on a hit from the local tier.
pub fn args_hash<A: Serialize + ?Sized>(args: &A) -> Result<u128, CodecError> {
    let mut bytes = SmallVec::<[u8; 128]>::new();
    let mut ser = rmp_serde::Serializer::new(&mut bytes).with_struct_map();
    args.serialize(&mut ser)
        .map_err(|e| CodecError::serialize("msgpack (key)", e))?;
    Ok(xxhash_rust::xxh3::xxh3_128(&bytes))
}

/// Selects keys by prefix, the same way in every backend: Redis gets a
/// `SCAN MATCH` glob, the in-memory backend calls [`KeyMatcher::matches`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyMatcher {
    /// Every selected key starts with this (the glob is `{prefix}*`).
    prefix: String,
    exact_hash_suffix: bool,
    /// For a user-key prefix longer than a shortened key's readable head:
    /// `prefix` is that head, and a key is selected when it starts with
    /// this (the whole prefix, stored in full) or is a shortened key.
    or_shortened_after: Option<String>,
}

impl KeyMatcher {
    /// Whether `full_key` is selected.
    pub fn matches(&self, full_key: &str) -> bool {
        let Some(rest) = full_key.strip_prefix(self.prefix.as_str()) else {
            return false;
        };
        if self.exact_hash_suffix {
            return is_args_hash(rest);
        }
        match &self.or_shortened_after {
            None => true,
            Some(whole) => {
                full_key.starts_with(whole.as_str())
                    || rest.strip_prefix(SHORTENED_MARK).is_some_and(is_args_hash)
            }
        }
    }

    /// The Redis glob pattern for `SCAN … MATCH`, with glob metacharacters
    /// of the prefix escaped.
    pub fn glob(&self) -> String {
        let mut glob = escape_glob(&self.prefix);
        if self.exact_hash_suffix {
            glob.push_str(ARGS_HASH_GLOB);
        } else {
            glob.push('*');
        }
        glob
    }
}

/// Whether `text` is a 32-digit hex hash (an args hash, or the hash that
/// ends a shortened key).
fn is_args_hash(text: &str) -> bool {
    text.len() == ARGS_HASH_LEN && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `text` with the metacharacters of Redis globs (`* ? [ ] \\`) escaped, so
/// a `SCAN … MATCH` pattern built from it matches `text` literally.
///
/// ```
/// assert_eq!(cache_core::key::escape_glob("a*b[1]"), r"a\*b\[1\]");
/// ```
pub fn escape_glob(text: &str) -> String {
    let mut glob = String::with_capacity(text.len() + ARGS_HASH_GLOB.len() + 4);
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            glob.push('\\');
        }
        glob.push(c);
    }
    glob
}

/// The Redis glob of one args hash: 32 lowercase hex digits.
pub const ARGS_HASH_GLOB: &str = concat!(
    "[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]",
    "[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]",
    "[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]",
    "[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]",
);

/// A stored key taken apart along the layout, as far as the layout tells:
/// `{cache prefix}:{version}:{user key}`, and for a memoized function's entry
/// the function prefix in front of the args hash.
///
/// Tools that look inside Redis (the `cache-memoize` command) use it to
/// group entries by function without knowing the caches that wrote them.
///
/// ```
/// use cache_core::key::{KeyBuilder, KeyParts};
/// let keys = KeyBuilder::new("shop", 1);
/// let full = keys.function_key("shop::price", &(&42u64,)).unwrap();
/// let parts = KeyParts::parse(full.as_str()).unwrap();
/// assert_eq!((parts.prefix, parts.version), ("shop", 1));
/// assert_eq!(parts.function, Some("shop::price"));
/// assert_eq!(parts.namespace(), "shop:1:");
///
/// let by_hand = KeyParts::parse("shop:1:primes:100").unwrap();
/// assert_eq!((by_hand.user_key, by_hand.function), ("primes:100", None));
/// assert!(KeyParts::parse("session:abc").is_none()); // not written by a cache
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyParts<'a> {
    /// The cache prefix (`CacheBuilder::prefix`).
    pub prefix: &'a str,
    /// The cache version (`CacheBuilder::version`).
    pub version: u32,
    /// Everything after `{prefix}:{version}:`.
    pub user_key: &'a str,
    /// The function prefix, when the user key is `{function prefix}:{args
    /// hash}` (an entry of a memoized function); `None` for keys set by hand
    /// and for shortened over-long keys.
    pub function: Option<&'a str>,
}

impl<'a> KeyParts<'a> {
    /// Splits `full_key` at its first `:{digits}:` after a non-empty cache
    /// prefix. A cache prefix that itself contains `:{digits}:` is split at
    /// the wrong place: use [`parse_with_prefix`](Self::parse_with_prefix)
    /// when the prefix is known.
    pub fn parse(full_key: &'a str) -> Option<Self> {
        let mut from = 0;
        while let Some(found) = full_key[from..].find(':') {
            let colon = from + found;
            if colon > 0 {
                if let Some(parts) = Self::split_at(full_key, colon) {
                    return Some(parts);
                }
            }
            from = colon + 1;
        }
        None
    }

    /// Like [`parse`](Self::parse), for a known cache prefix.
    ///
    /// ```
    /// # use cache_core::key::KeyParts;
    /// let parts = KeyParts::parse_with_prefix("a:2:b:3:k", "a:2:b").unwrap();
    /// assert_eq!((parts.version, parts.user_key), (3, "k"));
    /// ```
    pub fn parse_with_prefix(full_key: &'a str, prefix: &str) -> Option<Self> {
        if prefix.is_empty() || !full_key.starts_with(prefix) {
            return None;
        }
        Self::split_at(full_key, prefix.len())
    }

    /// `full_key` split with its cache prefix ending at byte `colon`, if
    /// `:{version}:` follows there.
    fn split_at(full_key: &'a str, colon: usize) -> Option<Self> {
        let rest = full_key[colon..].strip_prefix(':')?;
        let (version, user_key) = rest.split_once(':')?;
        if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(KeyParts {
            prefix: &full_key[..colon],
            version: version.parse().ok()?,
            user_key,
            function: function_of(user_key),
        })
    }

    /// `{prefix}:{version}:`, the namespace of the cache that wrote the key.
    pub fn namespace(&self) -> String {
        format!("{}:{}:", self.prefix, self.version)
    }

    /// A matcher for every entry of this key's function (`None` for a key
    /// that is not a memoized function's entry).
    pub fn function_matcher(&self) -> Option<KeyMatcher> {
        let function = self.function?;
        Some(KeyBuilder::new(self.prefix, self.version).matcher_for_function(function))
    }
}

/// The function prefix of a user key `{function prefix}:{args hash}`.
fn function_of(user_key: &str) -> Option<&str> {
    let (function, hash) = user_key.rsplit_once(':')?;
    let is_hash = hash.len() == ARGS_HASH_LEN
        && hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    (is_hash && !function.is_empty()).then_some(function)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn different_argument_lists_get_different_keys() {
        let keys = [
            function_key("f", &(&1u32,)).unwrap(),
            function_key("f", &(&1u32, &2u32)).unwrap(),
            function_key("f", &(&"1",)).unwrap(),
            function_key("f", &(&12u32,)).unwrap(),
            function_key("f", &()).unwrap(),
            function_key("f1", &()).unwrap(),
            function_key("f", &(&"a b", &"c")).unwrap(),
            function_key("f", &(&"a", &"b c")).unwrap(),
        ];
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn function_matcher_selects_only_its_own_entries() {
        let kb = KeyBuilder::new("p", 1);
        let m = kb.matcher_for_function("a");
        let own = kb.full_key(&function_key("a", &(&1,)).unwrap());
        let nested = kb.full_key(&function_key("a:b", &(&1,)).unwrap());
        let longer = kb.full_key(&function_key("ab", &(&1,)).unwrap());
        assert!(m.matches(&own));
        assert!(!m.matches(&nested));
        assert!(!m.matches(&longer));
        assert_eq!(m.glob(), format!("p:1:a:{}", "[0-9a-f]".repeat(32)));
    }

    #[test]
    fn parts_round_trip_every_key_a_builder_makes() {
        let keys = KeyBuilder::new("app:eu", 7);
        let full = keys.function_key("svc::a:b", &(&1u8, &"x")).unwrap();
        let parts = KeyParts::parse_with_prefix(full.as_str(), "app:eu").unwrap();
        assert_eq!(parts.version, 7);
        assert_eq!(parts.function, Some("svc::a:b"));
        assert!(parts.function_matcher().unwrap().matches(full.as_str()));
        // Without the prefix, the first `:{digits}:` wins: "app:eu" has none.
        assert_eq!(KeyParts::parse(full.as_str()), Some(parts));
        // A shortened over-long key is not mistaken for a function entry.
        let long = keys.full_key(&format!("{}:{}", "f".repeat(2000), "0".repeat(32)));
        let parts = KeyParts::parse(&long).unwrap();
        assert_eq!(parts.function, None);
        // Upper-case hex is not an args hash; versions are digits only.
        assert_eq!(
            KeyParts::parse(&format!("p:1:f:{}", "A".repeat(32)))
                .unwrap()
                .function,
            None
        );
        assert!(KeyParts::parse("p:v1:k").is_none());
        assert!(KeyParts::parse(":1:k").is_none());
    }

    #[test]
    fn a_long_prefix_matches_every_shortened_key_that_starts_with_it() {
        let kb = KeyBuilder::new("p", 1);
        // Byte 256 falls inside an `é`: the readable head is 255 bytes.
        let prefix = format!("a{}", "é".repeat(200));
        let m = kb.matcher_for_prefix(&prefix);
        for tail in ["", "z", &"z".repeat(2_000), &"é".repeat(600)] {
            let key = format!("{prefix}{tail}");
            assert!(m.matches(&kb.full_key(&key)), "{} bytes", key.len());
        }
        assert!(!m.matches(&kb.full_key(&format!("a{}z", "é".repeat(199)))));
        assert!(!m.matches(&kb.full_key(&"b".repeat(2_000))));
        assert!(m.glob().ends_with('*'));
    }

    #[test]
    fn the_tier_hash_is_the_hash_of_the_full_key() {
        let keys = KeyBuilder::new("app", 3);
        let long = "p".repeat(MAX_READABLE_KEY_LEN);
        for prefix in ["shop::price", "", long.as_str()] {
            for args in [0u128, 42, u128::MAX] {
                let full = keys.function_key_of(prefix, args);
                assert_eq!(
                    keys.function_key_hash(prefix, args),
                    xxhash_rust::xxh3::xxh3_128(full.as_str().as_bytes()),
                    "prefix of {} bytes",
                    prefix.len()
                );
            }
        }
    }

    #[test]
    fn args_hash_is_the_streaming_hash_of_the_msgpack_bytes() {
        // One-shot over a buffer that spills to the heap, or not.
        for n in [0usize, 3, 200, 5_000] {
            let args = ("x".repeat(n), 7u8);
            let bytes = rmp_serde::to_vec_named(&args).unwrap();
            let mut streaming = xxhash_rust::xxh3::Xxh3::new();
            streaming.update(&bytes);
            assert_eq!(args_hash(&args).unwrap(), streaming.digest128(), "{n}");
        }
    }

    #[test]
    fn hex_is_the_formatters() {
        for hash in [
            0u128,
            1,
            u128::MAX,
            0x0123_4567_89ab_cdef_fedc_ba98_7654_3210,
        ] {
            let mut fast = String::new();
            push_hex(&mut fast, hash);
            assert_eq!(fast, format!("{hash:032x}"));
        }
    }

    #[test]
    fn glob_escapes_metacharacters() {
        let kb = KeyBuilder::new("a*b", 1);
        assert_eq!(kb.matcher_for_prefix("x?[y]").glob(), r"a\*b:1:x\?\[y\]*");
    }
}
