//! `--prefix`: which caches a command looks at. A cache prefix (`shop`: every
//! version of it), or a prefix and version as the `cache` column of `stats`
//! prints them (`shop:1`: that version only).

use cache_core::key::{escape_glob, KeyParts};

/// The caches selected by `--prefix`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheSelector {
    prefix: String,
    version: Option<u32>,
}

impl CacheSelector {
    /// Reads `--prefix`. A value ending in `:{digits}` is a prefix and its
    /// version: `stats` prints caches that way, and a prefix that itself
    /// ends in `:{digits}` is still reachable with its version
    /// (`app:2:5` is prefix `app:2`, version 5).
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err(
                "the prefix is empty: give a cache prefix (`shop`) or a prefix and \
                        version (`shop:1`), or leave --prefix out to see every cache"
                    .to_owned(),
            );
        }
        let Some((prefix, version)) = text
            .rsplit_once(':')
            .filter(|(_, v)| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        else {
            return Ok(Self {
                prefix: text.to_owned(),
                version: None,
            });
        };
        if prefix.is_empty() {
            return Err(format!(
                "`{text}` has a version but no prefix: write it as `shop:{version}`"
            ));
        }
        let version = version.parse().map_err(|_| {
            format!("the version in `{text}` is larger than a cache version can be")
        })?;
        Ok(Self {
            prefix: prefix.to_owned(),
            version: Some(version),
        })
    }

    /// A `SCAN … MATCH` glob of every key of the selected caches.
    pub fn glob(&self) -> String {
        match self.version {
            Some(version) => format!("{}:{version}:*", escape_glob(&self.prefix)),
            None => format!("{}:*", escape_glob(&self.prefix)),
        }
    }

    /// The key of `tag`'s version in the selected cache (version 1, the
    /// default, when `--prefix` names no version).
    pub fn tag_key(&self, tag: &str) -> String {
        cache_core::KeyBuilder::new(&self.prefix, self.version.unwrap_or(1)).tag_key(tag)
    }

    /// The parts of `key`, when it belongs to a selected cache.
    pub fn parts<'k>(&self, key: &'k str) -> Option<KeyParts<'k>> {
        KeyParts::parse_with_prefix(key, &self.prefix)
            .filter(|parts| self.version.is_none_or(|v| v == parts.version))
    }
}

/// The parts of `key`: split at the selected prefix when `--prefix` was
/// given (`None` outside it), else at its first `:{digits}:`.
pub fn parts_of<'k>(key: &'k str, selector: Option<&CacheSelector>) -> Option<KeyParts<'k>> {
    match selector {
        Some(selector) => selector.parts(key),
        None => KeyParts::parse(key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> CacheSelector {
        CacheSelector::parse(text).unwrap()
    }

    #[test]
    fn a_prefix_selects_every_version_and_prefix_colon_version_one() {
        let any = parse("shop");
        assert_eq!(any.glob(), "shop:*");
        assert_eq!(any.parts("shop:1:f:k").unwrap().version, 1);
        assert_eq!(any.parts("shop:2:f:k").unwrap().version, 2);
        assert!(any.parts("shopping:1:f:k").is_none());

        // What the `cache` column of `stats` prints.
        let v1 = parse("shop:1");
        assert_eq!(v1.glob(), "shop:1:*");
        assert_eq!(v1.parts("shop:1:f:k").unwrap().user_key, "f:k");
        assert!(v1.parts("shop:2:f:k").is_none());

        // A prefix ending in `:{digits}` itself, named with its version.
        let nested = parse("app:2:5");
        assert_eq!(nested.parts("app:2:5:f:k").unwrap().prefix, "app:2");
        assert_eq!(parse("a*b:3").glob(), r"a\*b:3:*");
    }

    #[test]
    fn empty_prefixes_are_refused_with_what_to_write() {
        assert!(CacheSelector::parse("").unwrap_err().contains("empty"));
        assert!(CacheSelector::parse(":1").unwrap_err().contains("shop:1"));
        assert!(CacheSelector::parse("shop:99999999999").is_err());
    }
}
