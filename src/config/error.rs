//! Config errors that point at the file, line and key.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; 0 when the problem has no position (a missing file).
    pub line: usize,
    pub column: usize,
    /// Dotted key path such as `probe.expect.status`; empty when unknown.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.key.is_empty() {
            write!(f, ": key `{}`", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// A config file's text, kept so errors found after parsing can still name a line.
#[derive(Debug, Clone)]
pub struct Source {
    pub path: PathBuf,
    pub text: String,
}

impl Source {
    pub fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.path.clone(),
            line: 0,
            column: 0,
            key: String::new(),
            message: message.into(),
        }
    }

    /// An error at a byte span; the key path is taken from the text when not given.
    pub fn error_at(&self, span: Range<usize>, key: Option<&str>, message: impl Into<String>) -> ConfigError {
        let (line, column) = line_col(&self.text, span.start);
        let key = match key {
            Some(k) => k.to_string(),
            None => key_path_at(&self.text, span.start),
        };
        ConfigError {
            file: self.path.clone(),
            line,
            column,
            key,
            message: message.into(),
        }
    }

    /// Converts a toml parse/deserialize error.
    pub fn from_toml(&self, err: &toml::de::Error) -> ConfigError {
        let message = err.message().trim().to_string();
        match err.span() {
            Some(span) => self.error_at(span, None, message),
            None => self.error(message),
        }
    }
}

/// serde's "unknown field `timout`, expected one of `url`, …" rewritten for a reader:
/// the keys that are also accepted here (`also`) added to the list, and the closest one
/// suggested. None when `message` is not an unknown-field error.
pub fn unknown_field(message: &str, also: &[&str], context: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (field, rest) = rest.split_once('`')?;
    let mut known: Vec<String> = rest.split('`').skip(1).step_by(2).map(str::to_string).collect();
    for k in also {
        if !known.iter().any(|x| x == k) {
            known.push(k.to_string());
        }
    }
    let closest = known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(field, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4) && *d < k.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| format!("; did you mean `{k}`?"))
        .unwrap_or_default();
    let list: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
    Some(format!(
        "unknown field `{field}`{context}{closest} (expected one of {})",
        list.join(", ")
    ))
}

pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(offset, |nl| offset - nl - 1) + 1;
    (line, column)
}

/// Best-effort dotted key for the position: the nearest `[table]` header above,
/// plus the `key =` on the line itself.
fn key_path_at(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line = text[line_start..line_end].trim();
    let header = |l: &str| -> Option<String> {
        let l = l.trim();
        if l.starts_with('[') {
            Some(l.trim_matches(|c| c == '[' || c == ']').trim().to_string())
        } else {
            None
        }
    };
    if let Some(h) = header(line) {
        return h;
    }
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"').to_string())
        .unwrap_or_default();
    let table = text[..line_start].lines().rev().find_map(header);
    match (table, key.is_empty()) {
        (Some(t), false) => format!("{t}.{key}"),
        (Some(t), true) => t,
        (None, _) => key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_path_uses_table_header() {
        let text = "location = \"x\"\n[[probe]]\nname = \"a\"\n[probe.expect]\nstatus = [\"x\"]\n";
        let off = text.find("[\"x\"]").unwrap();
        assert_eq!(key_path_at(text, off), "probe.expect.status");
        assert_eq!(line_col(text, off), (5, 10));
    }
}
