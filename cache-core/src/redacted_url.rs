//! A connection URL that never shows its password.

use std::fmt;

/// A Redis URL whose `Display` and `Debug` replace the password (in the
/// user-info part or a `password=`/`pass=` query parameter) with `****`.
///
/// ```
/// use cache_core::RedactedUrl;
/// let url = RedactedUrl::new("redis://app:s3cret@db.internal:6379/2");
/// assert_eq!(url.to_string(), "redis://app:****@db.internal:6379/2");
/// assert!(!format!("{url:?}").contains("s3cret"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct RedactedUrl {
    redacted: String,
}

impl RedactedUrl {
    /// Redacts `url`. Works on URLs that do not parse, too.
    pub fn new(url: &str) -> Self {
        Self {
            redacted: redact(url),
        }
    }

    /// Several URLs (the seed nodes of a cluster), each redacted, joined by `,`.
    pub(crate) fn list(urls: &[String]) -> Self {
        let redacted: Vec<String> = urls.iter().map(|u| redact(u)).collect();
        Self {
            redacted: redacted.join(","),
        }
    }

    /// The redacted text.
    pub fn as_str(&self) -> &str {
        &self.redacted
    }
}

fn redact(raw: &str) -> String {
    if let Ok(mut url) = url::Url::parse(raw) {
        if url.password().is_some() {
            // Only fails for URLs that cannot have a password, which this one has.
            let _ = url.set_password(Some("****"));
        }
        let has_secret_param = url.query_pairs().any(|(k, _)| is_secret_param(&k));
        if has_secret_param {
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(k, v)| {
                    let v = if is_secret_param(&k) {
                        "****".into()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
        return url.to_string().replace("%2A%2A%2A%2A", "****");
    }
    // Unparsable: hide everything between the scheme and the last '@' of the
    // authority, which is where a password would be.
    let authority_start = raw.find("://").map_or(0, |i| i + 3);
    let rest = &raw[authority_start..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}****@{}", &raw[..authority_start], &rest[at + 1..]),
        None => raw.to_owned(),
    }
}

fn is_secret_param(name: &str) -> bool {
    matches!(name, "password" | "pass" | "pwd")
}

impl fmt::Display for RedactedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl fmt::Debug for RedactedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedactedUrl({:?})", self.redacted)
    }
}

#[cfg(test)]
mod tests {
    use super::RedactedUrl;

    #[test]
    fn hides_passwords_everywhere() {
        for (raw, want) in [
            ("redis://:pw@h:1/0", "redis://:****@h:1/0"),
            ("rediss://user:pw@h:1", "rediss://user:****@h:1"),
            ("redis://h:1", "redis://h:1"),
            (
                "redis+unix:///tmp/r.sock?db=1&pass=pw",
                "redis+unix:///tmp/r.sock?db=1&pass=****",
            ),
            (
                "unix:///tmp/r.sock?password=pw",
                "unix:///tmp/r.sock?password=****",
            ),
            ("not a url u:pw@x", "****@x"),
            ("redis://u:p w@h%%/", "redis://u:****@h%%/"),
        ] {
            let got = RedactedUrl::new(raw);
            assert_eq!(got.as_str(), want, "{raw}");
        }
    }
}
