//! A function as named on the command line: `quickstart::primes` (in any
//! cache), or with its cache, `shop:1:quickstart::primes`.

use cache_core::key::{escape_glob, KeyParts, ARGS_HASH_GLOB};

use crate::cache_selector::{parts_of, CacheSelector};

/// Selects the entries of one memoized function.
#[derive(Clone, Copy, Debug)]
pub struct FunctionSpec<'a> {
    name: &'a str,
}

impl<'a> FunctionSpec<'a> {
    /// The function `name` names.
    pub fn new(name: &'a str) -> Self {
        Self { name }
    }

    /// A `SCAN … MATCH` glob that finds at least this function's entries,
    /// in every cache and whether the name includes its cache or not
    /// ([`matches`](Self::matches) decides). `SCAN` walks the whole keyspace
    /// whatever the glob, so a narrower one would save nothing.
    pub fn glob(&self) -> String {
        format!("*{}:{ARGS_HASH_GLOB}", escape_glob(self.name))
    }

    /// Whether `parts` is an entry of this function.
    pub fn matches(&self, parts: &KeyParts<'_>) -> bool {
        let Some(function) = parts.function else {
            return false;
        };
        if function == self.name {
            return true;
        }
        // `{prefix}:{version}:{function}`, the version compared as a number
        // so that nothing is allocated per key.
        let Some((version, name)) = self
            .name
            .strip_prefix(parts.prefix)
            .and_then(|rest| rest.strip_prefix(':'))
            .and_then(|rest| rest.split_once(':'))
        else {
            return false;
        };
        name == function
            && !version.is_empty()
            && version.bytes().all(|b| b.is_ascii_digit())
            && version.parse() == Ok(parts.version)
    }

    /// Whether `key` is named like an entry of this function in a selected
    /// cache (whether it holds one is for its value's header to say). A key
    /// that is not UTF-8 never is: the library writes UTF-8 keys only.
    pub fn selects(&self, key: &[u8], caches: Option<&CacheSelector>) -> bool {
        std::str::from_utf8(key)
            .ok()
            .and_then(|key| parts_of(key, caches))
            .is_some_and(|parts| self.matches(&parts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cache_core::KeyBuilder;

    #[test]
    fn a_function_is_named_alone_or_with_its_cache() {
        let key = KeyBuilder::new("shop", 1)
            .function_key("app::primes", &(&7u32,))
            .unwrap();
        let parts = parts_of(key.as_str(), None).unwrap();
        assert!(FunctionSpec::new("app::primes").matches(&parts));
        assert!(FunctionSpec::new("shop:1:app::primes").matches(&parts));
        assert!(!FunctionSpec::new("shop:2:app::primes").matches(&parts));
        assert!(!FunctionSpec::new("primes").matches(&parts));
        assert!(!FunctionSpec::new("app::primes2").matches(&parts));
        let hand = parts_of("shop:1:app::primes", None).unwrap();
        assert!(!FunctionSpec::new("app::primes").matches(&hand));
    }

    #[test]
    fn keys_are_selected_within_the_chosen_caches_and_only_as_utf8() {
        let key = KeyBuilder::new("shop", 1)
            .function_key("app::primes", &(&7u32,))
            .unwrap();
        let spec = FunctionSpec::new("app::primes");
        let key = key.as_str().as_bytes();
        assert!(spec.selects(key, None));
        let v1 = CacheSelector::parse("shop:1").unwrap();
        let v2 = CacheSelector::parse("shop:2").unwrap();
        assert!(spec.selects(key, Some(&v1)));
        assert!(!spec.selects(key, Some(&v2)));
        let mut not_utf8 = key.to_vec();
        not_utf8[0] = 0xff;
        assert!(!spec.selects(&not_utf8, None));
    }

    #[test]
    fn the_glob_is_escaped_and_ends_in_an_args_hash() {
        let glob = FunctionSpec::new("a[1]").glob();
        assert!(glob.starts_with(r"*a\[1\]:[0-9a-f]"));
        assert!(glob.ends_with("[0-9a-f]"));
    }
}
