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

    /// `url` (already redacted) with a label in front, e.g. a Sentinel
    /// master group's name before its sentinels' URLs.
    pub(crate) fn labelled(label: &str, url: &RedactedUrl) -> Self {
        Self {
            redacted: format!("{label} {}", url.redacted),
        }
    }

    /// The redacted text.
    pub fn as_str(&self) -> &str {
        &self.redacted
    }
}

fn redact(raw: &str) -> String {
    match url::Url::parse(raw) {
        // A password with a `/` can still parse, wrongly: in
        // `redis://u:12/ab@host` the url crate sees host `u`, port 12 and
        // path `/ab@host`, and finds no password to hide. A Redis URL's path
        // is a db number or a socket path, never user info, so an `@` there
        // means the split was wrong.
        Ok(url) if !(url.has_host() && url.path().contains('@')) => redact_parsed(url),
        _ => redact_unparsed(raw),
    }
}

fn redact_parsed(mut url: url::Url) -> String {
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
    url.to_string().replace("%2A%2A%2A%2A", "****")
}

/// For URLs the url crate cannot split: hides everything between the
/// scheme and the last `@` before the query or fragment. A `/` does not end
/// the search, because a password may contain one (`redis://:ab/cd@host`);
/// hiding a path that holds an `@` too is the safe mistake.
fn redact_unparsed(raw: &str) -> String {
    let authority_start = raw.find("://").map_or(0, |i| i + 3);
    let rest = &raw[authority_start..];
    let before_query = rest.find(['?', '#']).unwrap_or(rest.len());
    match rest[..before_query].rfind('@') {
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

    #[test]
    fn hides_passwords_that_contain_a_slash() {
        for (raw, want) in [
            // The url crate refuses these (port `ab`, `cd`).
            ("redis://:ab/cd@host:6379", "redis://****@host:6379"),
            ("redis://user:ab/cd@host:6379/2", "redis://****@host:6379/2"),
            ("rediss://u:a/b/c@h:1?x=1", "rediss://****@h:1?x=1"),
            // The url crate parses this one as host `u`, port 12, path
            // `/cd@host`: no password found, yet one is there.
            ("redis://u:12/cd@host:6379", "redis://****@host:6379"),
            ("redis://:12/cd@host", "redis://****@host"),
        ] {
            let got = RedactedUrl::new(raw);
            assert_eq!(got.as_str(), want, "{raw}");
        }
    }
}
