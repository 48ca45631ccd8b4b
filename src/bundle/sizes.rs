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
    pub raw: u64,
    pub compressed: u64,
}

/// Each file's raw and compressed size, computed once, never outside `dir`.
pub struct Sizes<'a> {
    dir: &'a Path,
    compression: Compression,
    cache: HashMap<String, Chunk>,
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
        if let Some(c) = self.cache.get(rel) {
            return Ok(c.clone());
        }
        let joined = self.dir.join(rel.trim_start_matches('/'));
        // canonicalize resolves `..` and symlinks (a loop is an error here), so the check
        // below sees the file that would really be read.
        let real: PathBuf =
            std::fs::canonicalize(&joined).map_err(|e| InputError(format!("{}: {e}", joined.display())))?;
        if !real.starts_with(self.dir) {
            return Err(InputError(format!(
                "{rel:?} resolves outside the bundle dir ({})",
                real.display()
            )));
        }
        let data = crate::config::read_capped(&real, MAX_FILE).map_err(InputError)?;
        let compressed = compressed_len(&data, self.compression);
        let chunk = Chunk {
            file: rel.to_string(),
            raw: data.len() as u64,
            compressed,
        };
        self.cache.insert(rel.to_string(), chunk.clone());
        Ok(chunk)
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
