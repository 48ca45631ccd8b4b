//! Each file's raw and compressed size, computed once, never outside `dir`.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::config::{Compression, InputError};

/// Largest file a bundle may contain: anything bigger is an input error, not a chunk.
const MAX_FILE: u64 = 64 * 1024 * 1024;

/// One file a route loads.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub file: String,
    /// The file really read (links and `.`/`..` resolved): one file under two spellings
    /// is one file.
    pub real: PathBuf,
    pub raw: u64,
    pub compressed: u64,
}

/// `dir/rel` when it exists and its real location (links resolved) is inside `dir`; an
/// input error when it leads outside. `dir` is canonical.
pub fn inside(dir: &Path, rel: &str) -> Result<Option<PathBuf>, InputError> {
    if rel.contains('\0') {
        return Err(InputError(format!("{rel:?} is no file name")));
    }
    let joined = dir.join(rel.trim_start_matches('/'));
    if std::fs::symlink_metadata(&joined).is_err() {
        return Ok(None);
    }
    // canonicalize resolves `..` and symlinks (a loop is an error here), so the check
    // below sees the file that would really be read.
    let real = std::fs::canonicalize(&joined).map_err(|e| InputError(format!("{}: {e}", joined.display())))?;
    if !real.starts_with(dir) {
        return Err(InputError(format!(
            "{rel:?} resolves outside the bundle dir ({})",
            real.display()
        )));
    }
    Ok(Some(real))
}

/// Each file's raw and compressed size, computed once, never outside `dir`.
pub struct Sizes<'a> {
    dir: &'a Path,
    compression: Compression,
    cache: HashMap<PathBuf, Chunk>,
}

impl<'a> Sizes<'a> {
    pub fn new(dir: &'a Path, compression: Compression) -> Self {
        Sizes {
            dir,
            compression,
            cache: HashMap::new(),
        }
    }

    pub fn of(&mut self, rel: &str) -> Result<Chunk, InputError> {
        let real = inside(self.dir, rel)?
            .ok_or_else(|| InputError(format!("{}: no such file", self.dir.join(rel).display())))?;
        if let Some(c) = self.cache.get(&real) {
            return Ok(Chunk {
                file: rel.to_string(),
                ..c.clone()
            });
        }
        let data = crate::config::read_capped(&real, MAX_FILE).map_err(InputError)?;
        let compressed = compressed_len(&data, self.compression);
        let chunk = Chunk {
            file: rel.to_string(),
            real: real.clone(),
            raw: data.len() as u64,
            compressed,
        };
        self.cache.insert(real, chunk.clone());
        Ok(chunk)
    }

    /// The chunks of `files`, each real file once (the first spelling kept).
    pub fn all(&mut self, files: &[String]) -> Result<Vec<Chunk>, InputError> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::with_capacity(files.len());
        for f in files {
            let c = self.of(f)?;
            if seen.insert(c.real.clone()) {
                out.push(c);
            }
        }
        Ok(out)
    }
}

/// gzip at level 9 or brotli at quality 11, as the budgets mean.
pub fn compressed_len(data: &[u8], c: Compression) -> u64 {
    match c {
        Compression::Gzip => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            let _ = gz.write_all(data);
            gz.finish().map_or(0, |v| v.len() as u64)
        }
        Compression::Brotli => {
            let mut out = Vec::new();
            let params = brotli::enc::BrotliEncoderParams {
                quality: 11,
                lgwin: 22,
                ..Default::default()
            };
            let _ = brotli::BrotliCompress(&mut &data[..], &mut out, &params);
            out.len() as u64
        }
    }
}
