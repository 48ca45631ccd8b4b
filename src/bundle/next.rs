//! What a Next.js route loads, from a real `.next` build (Next 15 and 16, webpack and
//! Turbopack), the way Next itself decides which `<script>` tags a page gets:
//!
//! - **Pages router**: `build-manifest.json`'s `/_app` and the page's files, plus its
//!   `lowPriorityFiles` (the build and SSG manifests every page loads).
//! - **App router**: `rootMainFiles`, plus the client chunks of every segment the route
//!   renders (the root layout's client components load on every route). Those come from
//!   the route's client reference manifest (`server/app/<route>/page_client-reference-manifest.js`):
//!   its `entryJSFiles`/`entryCSSFiles` where the build writes them (Turbopack), else the
//!   chunks of its client modules (webpack). Without one, `app-build-manifest.json`
//!   (Next 15: layouts and page; it also lists page chunks the browser never loads).
//! - **Deferred**: dynamic imports (`import()`, `next/dynamic`) from
//!   `react-loadable-manifest.json` (webpack: keyed by importing module) or the route's
//!   own one (Turbopack), listed apart, never counted in the route's initial JS.
//!
//! Polyfills are left out: they load only in browsers without ES modules (`noModule`).
//!
//! Next 16 with Turbopack writes the client reference manifest as a script that builds
//! the object from a table of strings; no JSON copy exists and no crate reads it. The
//! two fields needed are read here by substituting the table into them (`turbopack_fields`),
//! nothing else of the script is interpreted; tests/bundle.rs checks the result against
//! the `<script>` tags of real `next build` output.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::config::{InputError, MAX_MANIFEST};

/// What a route loads: (scripts, stylesheets, deferred), as paths relative to `dir`.
pub type RouteFiles = (Vec<String>, Vec<String>, Vec<String>);

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BuildManifest {
    pages: BTreeMap<String, Vec<String>>,
    root_main_files: Vec<String>,
    polyfill_files: Vec<String>,
    low_priority_files: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Loadable {
    #[serde(default)]
    files: Vec<String>,
}

pub struct Next {
    dir: PathBuf,
    build: BuildManifest,
    /// Next 15's `app-build-manifest.json` pages, when present.
    app_build: BTreeMap<String, Vec<String>>,
    /// webpack's `react-loadable-manifest.json`: "importer -> imported" → files.
    loadable: BTreeMap<String, Vec<String>>,
}

/// `dir/rel` when it is a file inside `dir` (links resolved); `..` is refused outright.
fn inside(dir: &Path, rel: &str) -> Result<Option<PathBuf>, InputError> {
    if rel.split(['/', '\\']).any(|part| part == "..") {
        return Err(InputError(format!("{rel:?} leaves {}", dir.display())));
    }
    Ok(super::sizes::inside(dir, rel)?.filter(|p| p.is_file()))
}

fn read_json(dir: &Path, rel: &str) -> Result<Option<Value>, InputError> {
    let Some(path) = inside(dir, rel)? else {
        return Ok(None);
    };
    let bytes = crate::config::read_capped(&path, MAX_MANIFEST).map_err(InputError)?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| InputError(format!("{}: malformed manifest: {e}", path.display())))
}

fn read_text(dir: &Path, rel: &str) -> Result<Option<String>, InputError> {
    let Some(path) = inside(dir, rel)? else {
        return Ok(None);
    };
    let bytes = crate::config::read_capped(&path, MAX_MANIFEST).map_err(InputError)?;
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| InputError(format!("{}: not UTF-8", path.display())))
}

fn malformed(dir: &Path, what: &str, e: impl std::fmt::Display) -> InputError {
    InputError(format!("{}: malformed {what}: {e}", dir.display()))
}

impl Next {
    pub fn load(dir: &Path) -> Result<Next, InputError> {
        let build = read_json(dir, "build-manifest.json")?.ok_or_else(|| {
            InputError(format!(
                "{}: no build-manifest.json (point `dir` at .next)",
                dir.display()
            ))
        })?;
        let build: BuildManifest =
            serde_json::from_value(build).map_err(|e| malformed(dir, "build-manifest.json", e))?;
        let app_build = match read_json(dir, "app-build-manifest.json")? {
            Some(v) => match v.get("pages") {
                Some(p) => {
                    serde_json::from_value(p.clone()).map_err(|e| malformed(dir, "app-build-manifest.json", e))?
                }
                None => BTreeMap::new(),
            },
            None => BTreeMap::new(),
        };
        let loadable = match read_json(dir, "react-loadable-manifest.json")? {
            Some(v) => serde_json::from_value::<BTreeMap<String, Loadable>>(v)
                .map_err(|e| malformed(dir, "react-loadable-manifest.json", e))?
                .into_iter()
                .map(|(k, l)| (k, l.files))
                .collect(),
            None => BTreeMap::new(),
        };
        Ok(Next {
            dir: dir.to_path_buf(),
            build,
            app_build,
            loadable,
        })
    }

    /// The files of the route whose page is `entry` ("/dashboard", "/"); `None` when no
    /// manifest knows it.
    pub fn route(&self, entry: &str) -> Result<Option<RouteFiles>, InputError> {
        let mut files = Files::new(&self.build.polyfill_files);
        let mut deferred = BTreeSet::new();
        let trimmed = entry.trim_end_matches('/');
        if let Some(page) = self.build.pages.get(entry) {
            files.extend(self.build.pages.get("/_app").into_iter().flatten());
            files.extend(page);
            files.extend(self.build.low_priority_files.iter().filter(|f| f.ends_with(".js")));
            // webpack: "pages/legacy.js -> ../lib/heavy"
            let own = format!("pages{}", if trimmed.is_empty() { "/index" } else { trimmed });
            for (key, f) in &self.loadable {
                let importer = key.split(" -> ").next().unwrap_or_default();
                if strip_ext(importer) == own || strip_ext(importer) == format!("{own}/index") {
                    deferred.extend(f.iter().cloned());
                }
            }
            deferred.extend(self.turbopack_loadable(&format!(
                "server/pages{}",
                if trimmed.is_empty() { "/index" } else { trimmed }
            ))?);
            return Ok(Some(files.finish(deferred)));
        }
        let crm_path = format!("server/app{trimmed}/page_client-reference-manifest.js");
        let crm = read_text(&self.dir, &crm_path)?;
        let page_key = format!("{trimmed}/page");
        if crm.is_none() && !self.app_build.contains_key(&page_key) {
            return Ok(None);
        }
        files.extend(&self.build.root_main_files);
        let mut client_modules = Vec::new();
        if let Some(text) = &crm {
            let m =
                client_reference_manifest(text).ok_or_else(|| malformed(&self.dir, &crm_path, "no manifest object"))?;
            match m.get("entryJSFiles").and_then(Value::as_object) {
                Some(entries) => {
                    for list in entries.values() {
                        files.extend(paths(list).iter());
                    }
                }
                None => {
                    for module in m
                        .get("clientModules")
                        .and_then(Value::as_object)
                        .into_iter()
                        .flat_map(|o| o.values())
                    {
                        let chunks = module.get("chunks").and_then(Value::as_array);
                        files.extend(
                            chunks
                                .into_iter()
                                .flatten()
                                .filter_map(Value::as_str)
                                .filter(|c| c.ends_with(".js")),
                        );
                    }
                }
            }
            for list in m
                .get("entryCSSFiles")
                .and_then(Value::as_object)
                .into_iter()
                .flat_map(|o| o.values())
            {
                files.extend(paths(list).iter());
            }
            client_modules = m
                .get("clientModules")
                .and_then(Value::as_object)
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default();
        }
        // Without a client reference manifest, Next 15's app-build-manifest: every layout
        // above the page, and the page. (It lists a page's chunk even when nothing of it
        // runs in the browser, so the client reference manifest goes first.)
        if crm.is_none() {
            let mut segment = String::new();
            for part in std::iter::once("").chain(trimmed.split('/').filter(|p| !p.is_empty())) {
                if !part.is_empty() {
                    segment.push('/');
                    segment.push_str(part);
                }
                files.extend(self.app_build.get(&format!("{segment}/layout")).into_iter().flatten());
            }
            files.extend(self.app_build.get(&page_key).into_iter().flatten());
        }
        // webpack: "app/dashboard/chart.js -> ../lib/heavy", where the importer is one of
        // this route's client modules.
        for (key, f) in &self.loadable {
            let importer = key.split(" -> ").next().unwrap_or_default();
            if !importer.is_empty() && client_modules.iter().any(|m| m.ends_with(&format!("/{importer}"))) {
                deferred.extend(f.iter().cloned());
            }
        }
        deferred.extend(self.turbopack_loadable(&format!("server/app{trimmed}/page"))?);
        Ok(Some(files.finish(deferred)))
    }

    /// Turbopack's per-route react-loadable-manifest.json: its files.
    fn turbopack_loadable(&self, route_dir: &str) -> Result<Vec<String>, InputError> {
        let rel = format!("{route_dir}/react-loadable-manifest.json");
        let Some(v) = read_json(&self.dir, &rel)? else {
            return Ok(Vec::new());
        };
        let map: BTreeMap<String, Loadable> = serde_json::from_value(v).map_err(|e| malformed(&self.dir, &rel, e))?;
        Ok(map.into_values().flat_map(|l| l.files).collect())
    }
}

fn strip_ext(p: &str) -> &str {
    p.rsplit_once('.').map_or(p, |(stem, _)| stem)
}

/// File paths in a manifest list: strings, or `{"path": ...}` (CSS), relative to `.next`.
fn paths(list: &Value) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().or_else(|| v.get("path").and_then(Value::as_str)))
        .map(|p| p.strip_prefix("/_next/").unwrap_or(p).to_string())
        .collect()
}

/// The route's scripts and stylesheets, in order, once each, polyfills left out.
struct Files<'a> {
    polyfills: &'a [String],
    scripts: Vec<String>,
    styles: Vec<String>,
    seen: std::collections::HashSet<String>,
}

impl<'a> Files<'a> {
    fn new(polyfills: &'a [String]) -> Files<'a> {
        Files {
            polyfills,
            scripts: Vec::new(),
            styles: Vec::new(),
            seen: std::collections::HashSet::new(),
        }
    }

    fn extend<S: AsRef<str>>(&mut self, files: impl IntoIterator<Item = S>) {
        for f in files {
            let f = f.as_ref();
            let f = f.strip_prefix("/_next/").unwrap_or(f);
            if self.polyfills.iter().any(|p| p == f) {
                continue;
            }
            let list = if f.ends_with(".css") {
                &mut self.styles
            } else if f.ends_with(".js") {
                &mut self.scripts
            } else {
                continue;
            };
            if self.seen.insert(f.to_string()) {
                list.push(f.to_string());
            }
        }
    }

    fn finish(self, deferred: BTreeSet<String>) -> RouteFiles {
        let deferred = deferred
            .into_iter()
            .map(|d| d.strip_prefix("/_next/").map(str::to_string).unwrap_or(d))
            .filter(|d| !self.seen.contains(d))
            .collect();
        (self.scripts, self.styles, deferred)
    }
}

/// The manifest object of a client reference manifest: JSON after `= ` (webpack), or
/// Turbopack's script, of which only `clientModules` keys, `entryJSFiles` and
/// `entryCSSFiles` are read.
fn client_reference_manifest(text: &str) -> Option<Value> {
    if text.contains("const s = [") {
        return turbopack_fields(text);
    }
    // globalThis.__RSC_MANIFEST["/dashboard/page"] = {...}
    let key = text.rfind("__RSC_MANIFEST[")?;
    let close = key + text[key..].find(']')?;
    let at = close + text[close..].find('{')?;
    let end = balanced(text, at)?;
    serde_json::from_str(&text[at..end]).ok()
}

/// The bytes of `text` outside string literals, with their positions (the quotes
/// themselves left out): what the three readers below scan.
fn code(text: &str) -> impl Iterator<Item = (usize, u8)> + '_ {
    let (mut in_string, mut escaped) = (false, false);
    text.bytes().enumerate().filter(move |&(_, b)| {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            false
        } else if b == b'"' {
            in_string = true;
            false
        } else {
            true
        }
    })
}

/// The end (exclusive) of the bracketed value starting at `start` (`{` or `[`).
fn balanced(text: &str, start: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, b) in code(&text[start..]) {
        match b {
            b'{' | b'[' | b'(' => depth += 1,
            b'}' | b']' | b')' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(start + i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

/// Splits a bracketed list's inside at its top-level commas.
fn top_level_items(inside: &str) -> Vec<&str> {
    let (mut out, mut from, mut depth) = (Vec::new(), 0, 0i32);
    for (i, b) in code(inside) {
        match b {
            b'{' | b'[' | b'(' => depth += 1,
            b'}' | b']' | b')' => depth -= 1,
            b',' if depth == 0 => {
                out.push(inside[from..i].trim());
                from = i + 1;
            }
            _ => {}
        }
    }
    let last = inside[from..].trim();
    if !last.is_empty() {
        out.push(last);
    }
    out
}

/// Replaces `name[i]` references (outside strings) with `table[i]`.
fn substitute(text: &str, name: u8, table: &[String]) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for (i, b) in code(text) {
        if i < copied || b != name || bytes.get(i + 1) != Some(&b'[') {
            continue;
        }
        if i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_') {
            continue;
        }
        let digits = text[i + 2..].bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && bytes.get(i + 2 + digits) == Some(&b']') {
            out.push_str(&text[copied..i]);
            out.push_str(table.get(text[i + 2..i + 2 + digits].parse::<usize>().ok()?)?);
            copied = i + 3 + digits;
        }
    }
    out.push_str(&text[copied..]);
    Some(out)
}

/// Turbopack's client reference manifest: `const pN = "prefix"`, a string table
/// `const s = [pN+"file", ...]`, a list table `const l = [[s[0],...], ...]`, then the
/// object. Returns `{"entryJSFiles", "entryCSSFiles", "clientModules": {key: null}}`.
fn turbopack_fields(text: &str) -> Option<Value> {
    let mut prefixes = BTreeMap::new();
    if let Some(at) = text.find("const p0 = ") {
        let stmt = &text[at + 6..at + text[at..].find(';')?];
        for item in top_level_items(stmt) {
            let (name, value) = item.split_once('=')?;
            prefixes.insert(
                name.trim().to_string(),
                serde_json::from_str::<String>(value.trim()).ok()?,
            );
        }
    }
    let s_at = text.find("const s = [")? + "const s = ".len();
    let s_end = balanced(text, s_at)?;
    let mut strings = Vec::new();
    for item in top_level_items(&text[s_at + 1..s_end - 1]) {
        let value = match item.split_once('+') {
            Some((p, rest)) => format!(
                "{}{}",
                prefixes.get(p.trim())?,
                serde_json::from_str::<String>(rest.trim()).ok()?
            ),
            None => serde_json::from_str::<String>(item).ok()?,
        };
        strings.push(serde_json::to_string(&value).ok()?);
    }
    let mut lists = Vec::new();
    if let Some(at) = text.find("const l = [") {
        let at = at + "const l = ".len();
        let end = balanced(text, at)?;
        for item in top_level_items(&text[at + 1..end - 1]) {
            lists.push(substitute(item, b's', &strings)?);
        }
    }
    let mut out = serde_json::Map::new();
    for field in ["entryJSFiles", "entryCSSFiles"] {
        let Some(at) = text.find(&format!("\"{field}\":")) else {
            continue;
        };
        let start = at + field.len() + 3;
        let end = balanced(text, start)?;
        let json = substitute(&substitute(&text[start..end], b'l', &lists)?, b's', &strings)?;
        out.insert(field.to_string(), serde_json::from_str(&json).ok()?);
    }
    // clientModules: only its keys are used (module paths, for dynamic imports).
    if let Some(at) = text.find("\"clientModules\":") {
        let start = at + "\"clientModules\":".len();
        let end = balanced(text, start)?;
        let mut keys = serde_json::Map::new();
        for item in top_level_items(&text[start + 1..end - 1]) {
            if let Some((k, _)) = item.split_once("\":") {
                keys.insert(k.trim_start_matches('"').to_string(), Value::Null);
            }
        }
        out.insert("clientModules".into(), Value::Object(keys));
    }
    Some(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turbopack_manifest_script() {
        let js = r#"(() => {
const p0 = "/_next/static/chunks/", p2 = "static/chunks/";
const s = [p0+"a.js",p2+"b.js",p2+"c.css","static/chunks/d.js"];
const l = [[s[0]],[{"path":s[2],"inlined":false}],[s[1],s[3]]];
const e = (id, chunks, async = false) => ({ id, name: "*", chunks, async });
const m = {"moduleLoading":{"prefix":""},"clientModules":{"[project]/app/x.js":e(1,l[0])},"entryCSSFiles":{"[project]/app/layout":l[1]},"entryJSFiles":{"[project]/app/layout":l[2],"[project]/app/page":[s[1]]}};
(globalThis.__RSC_MANIFEST ??= {})["/page"] = m;
})();"#;
        let m = client_reference_manifest(js).unwrap();
        assert_eq!(
            m["entryJSFiles"]["[project]/app/layout"],
            serde_json::json!(["static/chunks/b.js", "static/chunks/d.js"])
        );
        assert_eq!(
            paths(&m["entryCSSFiles"]["[project]/app/layout"]),
            ["static/chunks/c.css"]
        );
        assert!(m["clientModules"].get("[project]/app/x.js").is_some());
        // Broken input is None, never a panic.
        for cut in [10, 60, 120, 200, js.len() - 30] {
            let _ = client_reference_manifest(&js[..cut]);
        }
        assert!(client_reference_manifest("const s = [p9+\"x\"];").is_none());
    }

    #[test]
    fn webpack_manifest_json() {
        let js = r#"globalThis.__RSC_MANIFEST=(globalThis.__RSC_MANIFEST||{});globalThis.__RSC_MANIFEST["/dashboard/page"]={"clientModules":{"/p/app/chart.js":{"id":"1","chunks":["7","static/chunks/app/dashboard/page-1.js"]}},"entryCSSFiles":{"/p/app/layout":[]}};"#;
        let m = client_reference_manifest(js).unwrap();
        assert_eq!(
            m["clientModules"]["/p/app/chart.js"]["chunks"][1],
            "static/chunks/app/dashboard/page-1.js"
        );
    }
}
