//! The one URL redaction: every URL that reaches a log line, `once`/`check` output or an
//! error message goes through here first.

/// Drops the password (and user name) and every query value; keeps scheme, host, port,
/// path and query keys, which is what a reader needs to tell URLs apart.
pub fn url(s: &str) -> String {
    match url::Url::parse(s) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("redacted"));
            }
            if !u.username().is_empty() {
                let _ = u.set_username("redacted");
            }
            if u.query().is_some() {
                let pairs: Vec<(String, String)> = u
                    .query_pairs()
                    .map(|(k, _)| (k.into_owned(), "redacted".to_string()))
                    .collect();
                u.query_pairs_mut().clear().extend_pairs(pairs);
            }
            if u.fragment().is_some() {
                u.set_fragment(None);
            }
            u.to_string()
        }
        Err(_) => unparsable(s),
    }
}

/// What was typed where a URL was expected, for the error that says it does not parse:
/// whatever stands before an `@` and every query value masked, the fragment dropped, made
/// printable and short.
fn unparsable(s: &str) -> String {
    let s = s.split('#').next().unwrap_or_default();
    let (base, query) = s.split_once('?').unwrap_or((s, ""));
    let base = match base.rfind('@') {
        Some(at) => {
            let start = base[..at].rfind('/').map_or(0, |i| i + 1);
            format!("{}redacted@{}", &base[..start], &base[at + 1..])
        }
        None => base.to_string(),
    };
    let mut out = base;
    if s.contains('?') {
        let keys: Vec<String> = query
            .split('&')
            .map(|pair| format!("{}=redacted", pair.split('=').next().unwrap_or_default()))
            .collect();
        out = format!("{out}?{}", keys.join("&"));
    }
    escaped(&out, 120)
}

/// Every http(s) URL inside free text (a browser's or driver's error message), redacted.
pub fn text(s: &str) -> String {
    // Most text (a peer address, a TLS version, an error message) has no URL: skip the regex.
    if !s.contains("://") {
        return s.to_string();
    }
    static URLS: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = URLS.get_or_init(|| regex::Regex::new(r#"(?i)\b(?:https?|wss?)://[^\s"'<>]+"#).expect("url regex"));
    re.replace_all(s, |c: &regex::Captures<'_>| url(&c[0])).into_owned()
}

/// A response header's value as evidence shows it: credentials and session material
/// (`Set-Cookie`, `Authorization`, anything named like a token, key or secret) redacted.
pub fn header(name: &str, value: &[u8]) -> String {
    let n = name.to_ascii_lowercase();
    let sensitive = matches!(
        n.as_str(),
        "authorization" | "proxy-authorization" | "cookie" | "set-cookie" | "www-authenticate" | "proxy-authenticate"
    ) || ["token", "secret", "key", "session", "auth", "signature", "password"]
        .iter()
        .any(|w| n.contains(w));
    if sensitive {
        return "<redacted>".to_string();
    }
    printable(&String::from_utf8_lossy(value), 512)
}

/// Target text kept in a file (a failed run's evidence): URLs redacted, each line made
/// printable, at most `max` bytes of input read.
pub fn block(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(max)]);
    text.lines().map(|l| printable(l, max)).collect::<Vec<_>>().join("\n")
}

/// Text a target wrote (a server's error, a page's exception, an element id), made safe
/// to print: URLs redacted, one line (control characters, line and paragraph separators
/// and bidi overrides escaped, so it cannot forge log lines or recolour a terminal), and
/// at most `max` characters. The one place target text passes before it is printed.
pub fn printable(s: &str, max: usize) -> String {
    escaped(&self::text(s), max)
}

/// `printable` without the URL pass (for text that is already redacted).
fn escaped(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max + 16));
    for (shown, c) in text.chars().enumerate() {
        if shown >= max {
            let rest = text.chars().count() - shown;
            out.push_str(&format!("…({rest} more)"));
            break;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control()
                || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') =>
            {
                out.push_str(&format!("\\u{{{:x}}}", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn target_text_is_one_bounded_line() {
        let forged = "bad\n2026-12-05T00:00:00Z INFO probe=x ok\r\x1b[31mred\u{202e}";
        let p = super::printable(forged, 100);
        assert!(
            !p.contains('\n') && !p.contains('\r') && !p.contains('\x1b') && !p.contains('\u{202e}'),
            "{p}"
        );
        assert!(p.starts_with("bad\\n2026"), "{p}");
        let long = "x".repeat(5000);
        let p = super::printable(&long, 300);
        assert!(p.starts_with(&"x".repeat(300)) && p.ends_with("…(4700 more)"), "{p}");
        assert_eq!(
            super::printable("see http://u:pw@h/?t=s", 100),
            "see http://redacted:redacted@h/?t=redacted"
        );
    }

    #[test]
    fn urls_inside_text_are_redacted() {
        let r = super::text("navigation to \"http://u:pw@h:1/p?k=secret\" failed");
        assert_eq!(r, "navigation to \"http://redacted:redacted@h:1/p?k=redacted\" failed");
    }

    #[test]
    fn credentials_and_query_values_go() {
        let r = super::url("https://alice:s3cret@example.com:8443/p/a?token=abc&x=1#frag");
        assert_eq!(
            r,
            "https://redacted:redacted@example.com:8443/p/a?token=redacted&x=redacted"
        );
        assert_eq!(super::url("http://h/"), "http://h/");
        // Unparsable: shown as typed, but credentials and query values still go.
        assert_eq!(super::url("http//exa mple.com/"), "http//exa mple.com/");
        let r = super::url("http//alice:s3cret@exa mple.com/p?token=s3cret&x#frag");
        assert_eq!(r, "http//redacted@exa mple.com/p?token=redacted&x=redacted");
        assert!(!super::url("ht tp://a:s3cret@h").contains("s3cret"));
    }
}
