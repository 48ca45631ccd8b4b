//! Value types written as strings in config: durations, byte sizes and secrets.

use std::fmt;
use std::time::Duration;

use std::borrow::Cow;
use std::ops::Range;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, de};

/// A config value with the byte range it was written at, so checks made after parsing
/// can still name the line. Deserializes through `toml::Spanned`; its JSON Schema is the
/// inner value's.
#[derive(Clone, Debug, PartialEq)]
pub struct Spanned<T> {
    span: Range<usize>,
    value: T,
}

impl<T> Spanned<T> {
    pub fn new(span: Range<usize>, value: T) -> Self {
        Spanned { span, value }
    }

    pub fn span(&self) -> Range<usize> {
        self.span.clone()
    }

    pub fn get_ref(&self) -> &T {
        &self.value
    }

    pub fn into_inner(self) -> T {
        self.value
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Spanned<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = toml::Spanned::<T>::deserialize(d)?;
        Ok(Spanned {
            span: s.span(),
            value: s.into_inner(),
        })
    }
}

impl<T: JsonSchema> JsonSchema for Spanned<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }
    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }
    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        T::json_schema(g)
    }
}

/// An enum value as a config file writes it (`"openai-chat"`, `"cold"`), for output.
pub fn as_written<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "?".to_string(),
    }
}

/// A duration written as `250ms`, `30s`, `5m`, `1h30m`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub Duration);

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("invalid duration {s:?} ({e}); write e.g. \"250ms\", \"30s\", \"5m\""))?;
    Ok(d)
}

impl JsonSchema for Dur {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^\\s*[0-9]",
            "description": "A duration: \"250ms\", \"30s\", \"5m\", \"1h30m\"."
        })
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Dur;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a duration string such as \"30s\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Dur, E> {
                parse_duration(s).map(Dur).map_err(E::custom)
            }
            // A bare number has no unit: say which to add rather than "expected a string".
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Dur, E> {
                Err(E::custom(format!(
                    "a duration needs a unit: write \"{n}s\" (or \"{n}ms\", \"{n}m\", \"{n}h\"), not {n}"
                )))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Dur, E> {
                self.visit_i64(n as i64)
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Dur, E> {
                Err(E::custom(format!(
                    "a duration needs a unit: write \"{n}s\" (or \"250ms\", \"5m\"), not {n}"
                )))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// A byte size written as `180KB` (decimal), `10MiB` (binary) or a plain number of bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Size(pub u64);

pub fn parse_size(s: &str) -> Result<u64, String> {
    s.trim()
        .parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| format!("invalid size {s:?} ({e}); write e.g. \"180KB\", \"10MiB\""))
}

impl JsonSchema for Size {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "Size".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "anyOf": [
                { "type": "string", "pattern": "^\\s*[0-9]" },
                { "type": "integer", "minimum": 0 }
            ],
            "description": "A byte size: \"180KB\" (decimal), \"10MiB\" (binary) or a number of bytes."
        })
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match toml::Value::deserialize(d)? {
            toml::Value::Integer(n) if n < 0 => Err(de::Error::custom(format!("size {n} is negative"))),
            toml::Value::Integer(n) => Ok(Size(n as u64)),
            toml::Value::String(s) => parse_size(&s).map(Size).map_err(de::Error::custom),
            other => Err(de::Error::custom(format!(
                "expected a size such as \"180KB\" or a number of bytes, got a value of type {}",
                other.type_str()
            ))),
        }
    }
}

/// Text that may be a secret reference (`env:NAME`, `file:PATH`). Wrong types are
/// reported without echoing the value: a token pasted as a bare number must not land in
/// an error message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretText(pub String);

impl SecretText {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for SecretText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match toml::Value::deserialize(d)? {
            toml::Value::String(s) => Ok(SecretText(s)),
            other => Err(de::Error::custom(format!(
                "expected a string such as \"env:NAME\" or \"file:PATH\", got a value of type {} (not shown)",
                other.type_str()
            ))),
        }
    }
}

impl JsonSchema for SecretText {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "SecretText".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A secret reference, \"env:NAME\" or \"file:PATH\" (header values may also be literal text)."
        })
    }
}

/// Largest secret file read (`file:PATH`).
pub const MAX_SECRET_FILE: u64 = 64 * 1024;

/// Reads a file named in config: it must be a regular file (a FIFO would hang the
/// daemon, `/dev/zero` would never end), at most `cap` bytes.
pub fn read_capped(path: &std::path::Path, cap: u64) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if meta.is_dir() {
        return Err(format!("{} is a directory, not a file", path.display()));
    }
    if !meta.is_file() {
        return Err(format!(
            "{} is not a regular file (a device, FIFO or socket cannot be read as config)",
            path.display()
        ));
    }
    if meta.len() > cap {
        return Err(format!(
            "{} is {} bytes, over the {} byte limit for this file",
            path.display(),
            meta.len(),
            cap
        ));
    }
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut data = Vec::with_capacity(meta.len() as usize);
    // The file may grow between the stat and the read: never read past the cap.
    file.take(cap + 1)
        .read_to_end(&mut data)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if data.len() as u64 > cap {
        return Err(format!(
            "{} grew over the {cap} byte limit while being read",
            path.display()
        ));
    }
    Ok(data)
}

/// A reference to a secret (`env:NAME` or `file:PATH`), resolved once at load.
/// Debug and Display show the reference, never the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    reference: String,
    value: String,
}

impl Secret {
    pub fn is_reference(s: &str) -> bool {
        s.starts_with("env:") || s.starts_with("file:")
    }

    /// Resolves `env:NAME` / `file:PATH` (relative paths from `base`).
    pub fn resolve(reference: &str, base: &std::path::Path) -> Result<Secret, String> {
        let value = if let Some(name) = reference.strip_prefix("env:") {
            match std::env::var(name) {
                Ok(v) if !v.is_empty() => v,
                Ok(_) => return Err(format!("secret {reference}: environment variable {name} is empty")),
                Err(_) => return Err(format!("secret {reference}: environment variable {name} is not set")),
            }
        } else if let Some(path) = reference.strip_prefix("file:") {
            let path = base.join(path);
            let bytes = read_capped(&path, MAX_SECRET_FILE).map_err(|e| format!("secret {reference}: {e}"))?;
            let text = String::from_utf8(bytes).map_err(|_| format!("secret {reference}: file is not UTF-8 text"))?;
            let v = text.trim_end_matches(['\n', '\r']).to_string();
            if v.is_empty() {
                return Err(format!("secret {reference}: file {} is empty", path.display()));
            }
            v
        } else {
            return Err(
                "a secret must be written as \"env:NAME\" or \"file:PATH\"; literal secrets are not accepted"
                    .to_string(),
            );
        };
        Ok(Secret {
            reference: reference.to_string(),
            value,
        })
    }

    pub fn expose(&self) -> &str {
        &self.value
    }

    pub fn reference(&self) -> &str {
        &self.reference
    }

    /// A secret derived from this one (a header value built around it), as secret.
    pub fn map(&self, f: impl FnOnce(&str) -> String) -> Secret {
        Secret {
            reference: self.reference.clone(),
            value: f(&self.value),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} <redacted>)", self.reference)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} <redacted>", self.reference)
    }
}

/// The JSON Schema of a budget or SLO threshold: a duration, a size, a number, or (for
/// `pNN` keys) a table of them.
pub struct ThresholdSchema;

impl JsonSchema for ThresholdSchema {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "Threshold".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "anyOf": [
                { "type": "string" },
                { "type": "number" },
                { "type": "object", "additionalProperties": { "type": ["string", "number"] } }
            ],
            "description": "A threshold in the measurement's unit: \"500ms\", \"180KB\", 0.1; a `p95` key takes a table of them."
        })
    }
}

/// Short human form of a duration for tables and plans: `1.234ms`, `2.5s`.
pub fn fmt_seconds(s: f64) -> String {
    if s < 1.0 {
        format!("{:.3}ms", s * 1000.0)
    } else {
        format!("{s:.3}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert!(parse_duration("5 parsecs").is_err());
        assert_eq!(parse_size("180KB").unwrap(), 180_000);
        assert_eq!(parse_size("10MiB").unwrap(), 10 * 1024 * 1024);
        assert!(parse_size("ten").is_err());
    }

    #[test]
    fn secrets_never_print_their_value() {
        // SAFETY: test-only env mutation of a variable no other test reads.
        unsafe { std::env::set_var("SLOPROBE_TEST_SECRET_VALUES", "hunter2") };
        let s = Secret::resolve("env:SLOPROBE_TEST_SECRET_VALUES", std::path::Path::new(".")).unwrap();
        assert_eq!(s.expose(), "hunter2");
        assert!(!format!("{s:?} {s}").contains("hunter2"));
        assert!(Secret::resolve("env:SLOPROBE_TEST_SURELY_UNSET", std::path::Path::new(".")).is_err());
        assert!(Secret::resolve("hunter2", std::path::Path::new(".")).is_err());
    }
}
