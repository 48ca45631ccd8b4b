//! What each route loads, from Vite's manifest, Next.js's build (next.rs), or globs: its
//! scripts and stylesheets (static imports, transitively, once each) and the deferred
//! (dynamically imported) files, as paths relative to `dir`.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::config::{InputError, MAX_MANIFEST, ManifestKind};
use crate::config::{Source, Spanned};

pub use super::next::RouteFiles;

#[derive(Deserialize)]
pub struct ViteChunk {
    file: String,
    #[serde(default)]
    imports: Vec<String>,
    #[serde(default, rename = "dynamicImports")]
    dynamic_imports: Vec<String>,
    #[serde(default)]
    css: Vec<String>,
}

pub enum Manifest {
    Vite(HashMap<String, ViteChunk>),
    Next(super::next::Next),
    None,
}

impl Manifest {
    pub fn load(kind: ManifestKind, dir: &Path) -> Result<Manifest, InputError> {
        let read = |name: &str| -> Result<Option<Value>, InputError> {
            let path = dir.join(name);
            if !path.exists() {
                return Ok(None);
            }
            let bytes = crate::config::read_capped(&path, MAX_MANIFEST).map_err(InputError)?;
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| InputError(format!("{}: malformed manifest: {e}", path.display())))
        };
        match kind {
            ManifestKind::None => Ok(Manifest::None),
            ManifestKind::Vite => {
                let v = match read(".vite/manifest.json")? {
                    Some(v) => v,
                    None => read("manifest.json")?.ok_or_else(|| {
                        InputError(format!(
                            "{}: no .vite/manifest.json or manifest.json (build with `build.manifest: true`)",
                            dir.display()
                        ))
                    })?,
                };
                serde_json::from_value(v)
                    .map(Manifest::Vite)
                    .map_err(|e| InputError(format!("{}: not a Vite manifest: {e}", dir.display())))
            }
            ManifestKind::Next => super::next::Next::load(dir).map(Manifest::Next),
        }
    }
}

/// Vite: the entry's chunk and its static imports, transitively, once each; the CSS of
/// those chunks; dynamic imports (of any of them) apart.
pub fn vite_route(m: &HashMap<String, ViteChunk>, entry: &str) -> Option<RouteFiles> {
    m.get(entry)?;
    let mut seen = BTreeSet::new();
    let mut order = Vec::new();
    let mut stack = vec![entry.to_string()];
    while let Some(key) = stack.pop() {
        if !seen.insert(key.clone()) {
            continue;
        }
        let Some(chunk) = m.get(&key) else { continue };
        order.push(key.clone());
        stack.extend(chunk.imports.iter().rev().cloned());
    }
    let mut scripts = Vec::new();
    let mut styles = Vec::new();
    let mut deferred = BTreeSet::new();
    for key in &order {
        let c = &m[key];
        if !scripts.contains(&c.file) {
            scripts.push(c.file.clone());
        }
        for css in &c.css {
            if !styles.contains(css) {
                styles.push(css.clone());
            }
        }
        for d in &c.dynamic_imports {
            if let Some(dc) = m.get(d)
                && !seen.contains(d)
            {
                deferred.insert(dc.file.clone());
            }
        }
    }
    Some((scripts, styles, deferred.into_iter().collect()))
}

pub fn glob_route(dir: &Path, globs: &[Spanned<String>], source: &Source) -> Result<RouteFiles, InputError> {
    let mut scripts = Vec::new();
    let mut styles = Vec::new();
    for g in globs {
        if g.get_ref().contains("..") || Path::new(g.get_ref()).is_absolute() {
            return Err(InputError::from(source.error_at(
                g.span(),
                Some("bundle.route.files"),
                format!("{:?} leaves `dir`: globs are relative to it, without ..", g.get_ref()),
            )));
        }
        let pattern = dir.join(g.get_ref());
        let matches = glob::glob(&pattern.to_string_lossy()).map_err(|e| {
            InputError::from(source.error_at(g.span(), Some("bundle.route.files"), format!("bad glob: {e}")))
        })?;
        let mut any = false;
        for p in matches.filter_map(Result::ok).filter(|p| p.is_file()) {
            any = true;
            let rel = p.strip_prefix(dir).unwrap_or(&p).to_string_lossy().to_string();
            let list = if rel.ends_with(".css") {
                &mut styles
            } else {
                &mut scripts
            };
            if !list.contains(&rel) {
                list.push(rel);
            }
        }
        if !any {
            return Err(InputError::from(source.error_at(
                g.span(),
                Some("bundle.route.files"),
                format!("{:?} matches no file", g.get_ref()),
            )));
        }
    }
    Ok((scripts, styles, Vec::new()))
}
