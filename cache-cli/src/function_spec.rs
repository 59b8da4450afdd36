//! A function as named on the command line: `quickstart::primes` (in any
//! cache), or with its cache, `shop:1:quickstart::primes`.

use cache_core::key::{escape_glob, KeyParts, ARGS_HASH_GLOB};

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
        // `{prefix}:{version}:{function}`, compared without allocating.
        let version = parts.version.to_string();
        self.name
            .strip_prefix(parts.prefix)
            .and_then(|rest| rest.strip_prefix(':'))
            .and_then(|rest| rest.strip_prefix(version.as_str()))
            .and_then(|rest| rest.strip_prefix(':'))
            == Some(function)
    }
}

/// The parts of `key`, split at the known cache prefix when there is one.
pub fn parts_of<'k>(key: &'k str, cache_prefix: Option<&str>) -> Option<KeyParts<'k>> {
    match cache_prefix {
        Some(prefix) => KeyParts::parse_with_prefix(key, prefix),
        None => KeyParts::parse(key),
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
    fn the_glob_is_escaped_and_ends_in_an_args_hash() {
        let glob = FunctionSpec::new("a[1]").glob();
        assert!(glob.starts_with(r"*a\[1\]:[0-9a-f]"));
        assert!(glob.ends_with("[0-9a-f]"));
    }
}
