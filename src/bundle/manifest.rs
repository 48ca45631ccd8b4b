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
            // Never through a link that leaves `dir`: its text could reach CI logs.
            let Some(path) = super::sizes::inside(dir, name)? else {
                return Ok(None);
            };
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
/// those chunks; dynamic imports (of any of them) apart. An import the manifest does not
/// have is an error: the route's JS would be short.
pub fn vite_route(m: &HashMap<String, ViteChunk>, entry: &str) -> Result<Option<RouteFiles>, String> {
    if !m.contains_key(entry) {
        return Ok(None);
    }
    let mut seen = BTreeSet::new();
    let mut order = Vec::new();
    let mut stack = vec![entry.to_string()];
    while let Some(key) = stack.pop() {
        if !seen.insert(key.clone()) {
            continue;
        }
        let chunk = m
            .get(&key)
            .ok_or_else(|| format!("{key:?} is imported but not in the Vite manifest"))?;
        order.push(key.clone());
        stack.extend(chunk.imports.iter().rev().cloned());
    }
    let mut scripts = Vec::new();
    let mut styles = Vec::new();
    let mut listed = std::collections::HashSet::new();
    let mut deferred = BTreeSet::new();
    for key in &order {
        let c = &m[key];
        if listed.insert(c.file.clone()) {
            scripts.push(c.file.clone());
        }
        for css in &c.css {
            if listed.insert(css.clone()) {
                styles.push(css.clone());
            }
        }
        for d in &c.dynamic_imports {
            let dc = m
                .get(d)
                .ok_or_else(|| format!("{d:?} is imported but not in the Vite manifest"))?;
            if !seen.contains(d) {
                deferred.insert(dc.file.clone());
            }
        }
    }
    Ok(Some((scripts, styles, deferred.into_iter().collect())))
}

/// Files under `dir` matching the route's globs: walked without following directory links
/// (a link loop cannot hang it, a linked folder cannot count a file twice), each real
/// file once.
pub fn glob_route(dir: &Path, globs: &[Spanned<String>], source: &Source) -> Result<RouteFiles, InputError> {
    let mut scripts = Vec::new();
    let mut styles = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for g in globs {
        let at = |msg: String| InputError::from(source.error_at(g.span(), Some("bundle.route.files"), msg));
        if g.get_ref().contains("..") || Path::new(g.get_ref()).is_absolute() {
            return Err(at(format!(
                "{:?} leaves `dir`: globs are relative to it, without ..",
                g.get_ref()
            )));
        }
        let matcher = globset::GlobBuilder::new(g.get_ref())
            .literal_separator(true)
            .build()
            .map_err(|e| at(format!("bad glob: {e}")))?
            .compile_matcher();
        let mut any = false;
        for entry in walkdir::WalkDir::new(dir).follow_links(false).sort_by_file_name() {
            let entry = entry.map_err(|e| InputError(format!("{}: {e}", dir.display())))?;
            if entry.file_type().is_dir() {
                continue;
            }
            let Ok(rel) = entry.path().strip_prefix(dir) else {
                continue;
            };
            if !matcher.is_match(rel) {
                continue;
            }
            // A link to a file is followed (inside `dir` only); to a folder, never.
            let Some(real) = super::sizes::inside(dir, &rel.to_string_lossy())? else {
                continue;
            };
            if !real.is_file() || !seen.insert(real) {
                continue;
            }
            any = true;
            let rel = rel.to_string_lossy().to_string();
            if rel.ends_with(".css") {
                styles.push(rel);
            } else {
                scripts.push(rel);
            }
        }
        if !any {
            return Err(at(format!("{:?} matches no file", g.get_ref())));
        }
    }
    Ok((scripts, styles, Vec::new()))
}
