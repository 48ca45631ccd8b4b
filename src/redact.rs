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
        Err(_) => "<unparsable url>".to_string(),
    }
}

/// Every http(s) URL inside free text (a browser's or driver's error message), redacted.
pub fn text(s: &str) -> String {
    static URLS: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = URLS.get_or_init(|| regex::Regex::new(r#"(?i)\b(?:https?|wss?)://[^\s"'<>]+"#).expect("url regex"));
    re.replace_all(s, |c: &regex::Captures<'_>| url(&c[0])).into_owned()
}

#[cfg(test)]
mod tests {
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
        assert_eq!(super::url("not a url s3cret"), "<unparsable url>");
    }
}
