//! Reading config files: capped reads, include globs, the hash of everything read, and the
//! split of a file into its `[[probe]]` tables and the rest.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::IntoDeserializer as _;
use toml::de::{DeTable, DeValue};

use super::error::{ConfigError, Source};
use super::values::{Spanned, read_capped};

/// Largest config file read (daemon file or probe file).
pub const MAX_CONFIG_FILE: u64 = 16 * 1024 * 1024;
/// Largest request body file (`body_file`); `body_size` generates larger bodies.
pub const MAX_BODY_FILE: u64 = 64 * 1024 * 1024;

/// Reads one config file (capped, UTF-8).
pub fn read_source(path: &Path) -> Result<Source, ConfigError> {
    let error = |message: String| ConfigError {
        file: path.to_path_buf(),
        line: 0,
        column: 0,
        key: String::new(),
        message,
    };
    let bytes = read_capped(path, MAX_CONFIG_FILE).map_err(|e| error(format!("cannot load config file: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|_| error("config file is not UTF-8 text".to_string()))?;
    Ok(Source { path: tidy(path), text })
}

/// `config/../probes/demo.toml` as `probes/demo.toml`: `.` and `dir/..` dropped without
/// touching the file system, so error messages and `check` name files as a reader would.
fn tidy(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.components().next_back(), Some(Component::Normal(_))) => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    if out.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        out
    }
}

/// The files one `include` pattern names, sorted; a plain path that matches nothing is an error.
pub fn expand_include(source: &Source, base: &Path, pattern: &Spanned<String>) -> Result<Vec<PathBuf>, ConfigError> {
    let full = base.join(pattern.get_ref());
    if full.is_dir() {
        return Err(source.error_at(
            pattern.span(),
            Some("include"),
            format!(
                "{} is a directory; include its files with a glob such as \"{}/*.toml\"",
                full.display(),
                pattern.get_ref().trim_end_matches('/')
            ),
        ));
    }
    let full_str = full.to_string_lossy();
    let paths = glob::glob(&full_str)
        .map_err(|e| source.error_at(pattern.span(), Some("include"), format!("bad glob: {e}")))?;
    // Every match must be a readable regular file: a dangling link, a FIFO or a directory
    // skipped in silence would make a probe vanish with `check` still passing.
    let mut files = Vec::new();
    for entry in paths {
        let path = entry.map_err(|e| {
            source.error_at(
                pattern.span(),
                Some("include"),
                format!("cannot read {}: {}", e.path().display(), e.error()),
            )
        })?;
        let problem = match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => None,
            Ok(m) if m.is_dir() => Some("is a directory (include its files with a glob)"),
            Ok(_) => Some("is not a regular file (a FIFO, socket or device)"),
            Err(_) if path.symlink_metadata().is_ok() => Some("is a symbolic link to nothing"),
            Err(_) => Some("cannot be read"),
        };
        if let Some(problem) = problem {
            return Err(source.error_at(
                pattern.span(),
                Some("include"),
                format!("{} (matched by {:?}) {problem}", path.display(), pattern.get_ref()),
            ));
        }
        files.push(path);
    }
    files.sort();
    let is_glob = pattern.get_ref().contains(['*', '?', '[']);
    if files.is_empty() && !is_glob {
        return Err(source.error_at(
            pattern.span(),
            Some("include"),
            format!("included file {} does not exist", full.display()),
        ));
    }
    Ok(files)
}

/// FNV-1a over every file read, in order (`sloprobe_config_info{config_hash}`).
#[derive(Clone, Copy, Debug)]
pub struct ConfigHash(u64);

impl Default for ConfigHash {
    fn default() -> Self {
        ConfigHash(0xcbf2_9ce4_8422_2325)
    }
}

impl ConfigHash {
    pub fn add(&mut self, bytes: &[u8]) {
        self.0 = bytes
            .iter()
            .fold(self.0, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3));
    }

    pub fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

/// One `[[probe]]` table as written, spans kept.
pub type ProbeTable<'a> = toml::Spanned<DeValue<'a>>;

/// One file's parts: everything but `[[probe]]` and `[[module]]` deserialized as `T` (the
/// daemon file's shape), and those tables as written for the kinds to read.
pub struct SplitFile<'a, T> {
    pub rest: T,
    pub probes: Vec<ProbeTable<'a>>,
    pub modules: Vec<ProbeTable<'a>>,
}

pub fn split_file<'a, T: for<'de> Deserialize<'de>>(source: &'a Source) -> Result<SplitFile<'a, T>, ConfigError> {
    let doc = DeTable::parse(&source.text).map_err(|e| source.from_toml(&e))?;
    let span = doc.span();
    let mut rest = DeTable::new();
    let (mut probe_tables, mut module_tables) = (None, None);
    for (key, value) in doc.into_inner() {
        match key.get_ref().as_ref() {
            "probe" => probe_tables = Some(value),
            "module" => module_tables = Some(value),
            _ => {
                rest.insert(key, value);
            }
        }
    }
    let raw = T::deserialize(toml::Spanned::new(span, rest).into_deserializer()).map_err(|e| {
        let mut err = source.from_toml(&e);
        // `[[probe]]` and `[[module]]` are read apart, so serde's list of top-level keys lacks them.
        let top_level = !err.key.contains('.');
        if let Some(m) =
            super::error::unknown_field(&err.message, if top_level { &["probe", "module"] } else { &[] }, "")
        {
            err.message = m;
        }
        err
    })?;
    let tables = |found: Option<toml::Spanned<DeValue<'a>>>, key: &str| -> Result<Vec<ProbeTable<'a>>, ConfigError> {
        let Some(tables) = found else {
            return Ok(Vec::new());
        };
        let at = tables.span();
        match tables.into_inner() {
            DeValue::Array(items) => Ok(items.into_iter().collect()),
            _ => Err(source.error_at(at, Some(key), format!("write {key}s as [[{key}]] tables"))),
        }
    };
    Ok(SplitFile {
        rest: raw,
        probes: tables(probe_tables, "probe")?,
        modules: tables(module_tables, "module")?,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn paths_are_tidied_as_written() {
        use std::path::Path;
        assert_eq!(
            super::tidy(Path::new("config/../probes/demo.toml")),
            Path::new("probes/demo.toml")
        );
        assert_eq!(super::tidy(Path::new("./a/./b.toml")), Path::new("a/b.toml"));
        assert_eq!(super::tidy(Path::new("../x.toml")), Path::new("../x.toml"));
        assert_eq!(
            super::tidy(Path::new("/etc/sloprobe/../s.toml")),
            Path::new("/etc/s.toml")
        );
    }
}
