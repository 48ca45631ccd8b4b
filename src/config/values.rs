//! Value types written as strings in config: durations, byte sizes and secrets.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, de};

/// A duration written as `250ms`, `30s`, `5m`, `1h30m`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub Duration);

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("invalid duration {s:?} ({e}); write e.g. \"250ms\", \"30s\", \"5m\""))?;
    Ok(d)
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s).map(Dur).map_err(de::Error::custom)
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

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Str(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(Size(n)),
            Raw::Str(s) => parse_size(&s).map(Size).map_err(de::Error::custom),
        }
    }
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
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("secret {reference}: cannot read {}: {e}", path.display()))?;
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
