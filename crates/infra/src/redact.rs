//! Keeping passwords out of what safebox prints.

/// `url` with any password replaced by `<redacted>`: the one in the user-info
/// part (`redis://user:<redacted>@host`) and a `pass=` or `password=` query
/// parameter (unix socket URLs). A user-info part without a colon is redacted
/// whole, since it may be a password written in the wrong place.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    // Everything up to the last `@` is user-info, even if it holds a `/` or `?`:
    // a password that was not percent-encoded must not leak into the "path".
    let (authority, tail) = match rest.rfind('@') {
        Some(at) => {
            let (userinfo, after) = (&rest[..at], &rest[at + 1..]);
            let host_end = after.find(['/', '?', '#']).unwrap_or(after.len());
            let (host, tail) = after.split_at(host_end);
            let authority = match userinfo.split_once(':') {
                Some((user, _)) => format!("{user}:<redacted>@{host}"),
                None => format!("<redacted>@{host}"),
            };
            (authority, tail)
        }
        None => {
            let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let (host, tail) = rest.split_at(host_end);
            (host.to_owned(), tail)
        }
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let (query, fragment) = match query.split_once('#') {
                Some((query, fragment)) => (query, Some(fragment)),
                None => (query, None),
            };
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((name, _))
                        if name.eq_ignore_ascii_case("pass")
                            || name.eq_ignore_ascii_case("password") =>
                    {
                        format!("{name}=<redacted>")
                    }
                    _ => pair.to_owned(),
                })
                .collect();
            let mut tail = format!("{path}?{}", query.join("&"));
            if let Some(fragment) = fragment {
                tail.push('#');
                tail.push_str(fragment);
            }
            tail
        }
        None => tail.to_owned(),
    };
    match scheme {
        Some(scheme) => format!("{scheme}://{authority}{tail}"),
        None => format!("{authority}{tail}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_passwords() {
        assert_eq!(
            redact_url("redis://user:hunter2@cache:6379/1"),
            "redis://user:<redacted>@cache:6379/1"
        );
        assert_eq!(
            redact_url("redis://:hunter2@cache"),
            "redis://:<redacted>@cache"
        );
        assert_eq!(
            redact_url("redis://hunter2@cache"),
            "redis://<redacted>@cache"
        );
        assert_eq!(
            redact_url("rediss://u:p@ss@host/0#insecure"),
            "rediss://u:<redacted>@host/0#insecure"
        );
        assert_eq!(
            redact_url("unix:///run/redis.sock?db=2&pass=hunter2"),
            "unix:///run/redis.sock?db=2&pass=<redacted>"
        );
        assert_eq!(
            redact_url("redis://u:pa/ss?x@cache/0"),
            "redis://u:<redacted>@cache/0"
        );
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(
            redact_url("mysql://app:p@ss/w@db:3306/safebox"),
            "mysql://app:<redacted>@db:3306/safebox"
        );
        assert_eq!(redact_url("mysql://app@db/x"), "mysql://<redacted>@db/x");
        assert_eq!(redact_url("/var/x.db"), "/var/x.db");
    }
}
