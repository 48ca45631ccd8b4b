//! `sloprobe bundle`: the client-budget guardrail on the build output, before anything is
//! deployed. "Route JS" is exactly what a route loads before interaction: its entry chunk
//! and the chunks it imports statically, transitively, each counted once; dynamic imports
//! are listed apart. Sizes are compressed as the budgets mean (gzip -9, or brotli).
//! Reads Vite's manifest, Next.js's build manifests, or globs; never a file outside `dir`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::{ConfigError, Size, Source, Spanned};

/// Largest file a bundle may contain: anything bigger is an input error, not a chunk.
const MAX_FILE: u64 = 64 * 1024 * 1024;
const MAX_MANIFEST: u64 = 16 * 1024 * 1024;

/// `[[bundle]]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BundleConfig {
    /// A name for reports.
    pub name: Spanned<String>,
    /// The build output directory, relative to the config file.
    pub dir: Spanned<String>,
    /// Which manifest says what a route loads.
    #[serde(default)]
    pub manifest: ManifestKind,
    /// How bytes are counted: gzip level 9 (as budgets mean) or brotli quality 11.
    #[serde(default)]
    pub compression: Compression,
    /// With `--baseline`: fail when a route's compressed JS or CSS grows by more than this.
    pub max_growth: Option<Spanned<Size>>,
    /// The routes to judge.
    #[serde(rename = "route")]
    pub routes: Vec<RouteConfig>,
    /// Budgets for every route (a route's own `budget` wins).
    #[serde(default)]
    pub budget: BundleBudget,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ManifestKind {
    /// Vite: `.vite/manifest.json` or `manifest.json` (build.manifest = true).
    #[default]
    Vite,
    /// Next.js: `build-manifest.json` (pages router) and `app-build-manifest.json`.
    Next,
    /// No manifest: the route's `files` globs.
    None,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    Gzip,
    Brotli,
}

/// `[[bundle.route]]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// The URL path this route serves, for reports.
    pub path: Spanned<String>,
    /// Vite: the manifest key (source path); Next: the page path.
    pub entry: Option<Spanned<String>>,
    /// `manifest = "none"`: globs under `dir` (JS and CSS told apart by extension).
    #[serde(default)]
    pub files: Vec<Spanned<String>>,
    /// This route's own budgets.
    pub budget: Option<BundleBudget>,
}

/// `[bundle.budget]`: the names the browser probe uses, so one budget file covers CI,
/// lab and field.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BundleBudget {
    /// Compressed bytes of the JS the route loads before interaction.
    pub script_bytes: Option<Spanned<Size>>,
    /// Compressed bytes of the CSS of those chunks.
    pub stylesheet_bytes: Option<Spanned<Size>>,
}

#[derive(Deserialize)]
struct BundleFile {
    #[serde(default, rename = "bundle")]
    bundles: Vec<BundleConfig>,
}

/// What a route loads: (scripts, stylesheets, deferred), as paths relative to `dir`.
type RouteFiles = (Vec<String>, Vec<String>, Vec<String>);
/// A baseline's (script, stylesheet) compressed bytes by (bundle, route path).
pub type Baseline = HashMap<(String, String), (u64, u64)>;

/// An input problem (exit 2): a config error with file:line, or a build-output problem.
#[derive(Debug)]
pub struct InputError(pub String);

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<ConfigError> for InputError {
    fn from(e: ConfigError) -> Self {
        InputError(format!("config error: {e}"))
    }
}

/// One file a route loads.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub file: String,
    pub raw: u64,
    pub compressed: u64,
}

#[derive(Debug)]
pub struct RouteReport {
    pub bundle: String,
    pub path: String,
    pub scripts: Vec<Chunk>,
    pub stylesheets: Vec<Chunk>,
    /// Files loaded later (dynamic imports): listed, not counted.
    pub deferred: Vec<String>,
    pub budget_script: Option<u64>,
    pub budget_stylesheet: Option<u64>,
    pub max_growth: Option<u64>,
    pub compression: Compression,
}

impl RouteReport {
    pub fn script_bytes(&self) -> u64 {
        self.scripts.iter().map(|c| c.compressed).sum()
    }
    pub fn stylesheet_bytes(&self) -> u64 {
        self.stylesheets.iter().map(|c| c.compressed).sum()
    }
    pub fn within_budget(&self) -> bool {
        self.budget_script.is_none_or(|b| self.script_bytes() <= b)
            && self.budget_stylesheet.is_none_or(|b| self.stylesheet_bytes() <= b)
    }
}

/// Loads the `[[bundle]]` tables of a config file and measures every route.
pub fn run(config: &Path) -> Result<Vec<RouteReport>, InputError> {
    let text = crate::config::read_capped(config, crate::config::MAX_CONFIG_FILE).map_err(InputError)?;
    let text = String::from_utf8(text).map_err(|_| InputError(format!("{}: not UTF-8 text", config.display())))?;
    let source = Source {
        path: config.to_path_buf(),
        text,
    };
    let file: BundleFile = parse_bundles(&source)?;
    if file.bundles.is_empty() {
        return Err(InputError(format!("{}: no [[bundle]] tables", config.display())));
    }
    let base = config.parent().unwrap_or(Path::new("."));
    let mut out = Vec::new();
    for b in &file.bundles {
        out.extend(measure(b, base, &source)?);
    }
    Ok(out)
}

/// Only the `bundle` key of the file matters here (the same file may hold probes).
fn parse_bundles(source: &Source) -> Result<BundleFile, InputError> {
    let doc = toml::de::DeTable::parse(&source.text).map_err(|e| InputError::from(source.from_toml(&e)))?;
    let span = doc.span();
    let mut only = toml::de::DeTable::new();
    for (k, v) in doc.into_inner() {
        if k.get_ref() == "bundle" {
            only.insert(k, v);
        }
    }
    use serde::de::IntoDeserializer as _;
    BundleFile::deserialize(toml::Spanned::new(span, only).into_deserializer())
        .map_err(|e| InputError::from(source.from_toml(&e)))
}

fn measure(b: &BundleConfig, base: &Path, source: &Source) -> Result<Vec<RouteReport>, InputError> {
    let err_at =
        |s: std::ops::Range<usize>, key: &str, msg: String| InputError::from(source.error_at(s, Some(key), msg));
    let dir = base.join(b.dir.get_ref());
    let dir = std::fs::canonicalize(&dir)
        .map_err(|e| err_at(b.dir.span(), "bundle.dir", format!("{}: {e}", dir.display())))?;
    if !dir.is_dir() {
        return Err(err_at(
            b.dir.span(),
            "bundle.dir",
            format!("{} is not a directory", dir.display()),
        ));
    }
    let manifest = Manifest::load(b.manifest, &dir)?;
    let mut sizes = Sizes::new(&dir, b.compression);
    let mut reports = Vec::new();
    for r in &b.routes {
        let (scripts, styles, deferred) = match (&manifest, &r.entry) {
            (Manifest::Vite(m), Some(entry)) => vite_route(m, entry.get_ref()).ok_or_else(|| {
                err_at(
                    entry.span(),
                    "bundle.route.entry",
                    format!("entry {:?} is not in the Vite manifest", entry.get_ref()),
                )
            })?,
            (Manifest::Next { pages, app, root }, Some(entry)) => next_route(pages, app, root, entry.get_ref())
                .ok_or_else(|| {
                    err_at(
                        entry.span(),
                        "bundle.route.entry",
                        format!(
                            "page {:?} is in neither build-manifest.json nor app-build-manifest.json",
                            entry.get_ref()
                        ),
                    )
                })?,
            (Manifest::None, None) => glob_route(&dir, &r.files, source)?,
            (Manifest::None, Some(e)) => {
                return Err(err_at(
                    e.span(),
                    "bundle.route.entry",
                    "manifest = \"none\" takes `files`, not `entry`".into(),
                ));
            }
            (_, None) => {
                return Err(err_at(
                    r.path.span(),
                    "bundle.route.entry",
                    "a route needs `entry` (the manifest key or page)".into(),
                ));
            }
        };
        let budget = r.budget.as_ref().unwrap_or(&b.budget);
        let pick = |own: &Option<Spanned<Size>>, all: &Option<Spanned<Size>>| {
            own.as_ref().or(all.as_ref()).map(|s| s.get_ref().0)
        };
        reports.push(RouteReport {
            bundle: b.name.get_ref().clone(),
            path: r.path.get_ref().clone(),
            scripts: scripts.iter().map(|f| sizes.of(f)).collect::<Result<_, _>>()?,
            stylesheets: styles.iter().map(|f| sizes.of(f)).collect::<Result<_, _>>()?,
            deferred,
            budget_script: pick(&budget.script_bytes, &b.budget.script_bytes),
            budget_stylesheet: pick(&budget.stylesheet_bytes, &b.budget.stylesheet_bytes),
            max_growth: b.max_growth.as_ref().map(|g| g.get_ref().0),
            compression: b.compression,
        });
    }
    Ok(reports)
}

#[derive(Deserialize)]
struct ViteChunk {
    file: String,
    #[serde(default)]
    imports: Vec<String>,
    #[serde(default, rename = "dynamicImports")]
    dynamic_imports: Vec<String>,
    #[serde(default)]
    css: Vec<String>,
}

enum Manifest {
    Vite(HashMap<String, ViteChunk>),
    Next {
        pages: BTreeMap<String, Vec<String>>,
        app: BTreeMap<String, Vec<String>>,
        root: Vec<String>,
    },
    None,
}

impl Manifest {
    fn load(kind: ManifestKind, dir: &Path) -> Result<Manifest, InputError> {
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
            ManifestKind::Next => {
                let build = read("build-manifest.json")?.ok_or_else(|| {
                    InputError(format!(
                        "{}: no build-manifest.json (point `dir` at .next)",
                        dir.display()
                    ))
                })?;
                let list = |v: &Value, key: &str| -> Result<BTreeMap<String, Vec<String>>, InputError> {
                    match v.get(key) {
                        None => Ok(BTreeMap::new()),
                        Some(p) => serde_json::from_value(p.clone()).map_err(|e| {
                            InputError(format!("{}: malformed `{key}` in a Next manifest: {e}", dir.display()))
                        }),
                    }
                };
                let pages = list(&build, "pages")?;
                let root: Vec<String> = match build.get("rootMainFiles") {
                    Some(r) => serde_json::from_value(r.clone())
                        .map_err(|e| InputError(format!("{}: malformed rootMainFiles: {e}", dir.display())))?,
                    None => Vec::new(),
                };
                let app = match read("app-build-manifest.json")? {
                    Some(v) => list(&v, "pages")?,
                    None => BTreeMap::new(),
                };
                Ok(Manifest::Next { pages, app, root })
            }
        }
    }
}

/// Vite: the entry's chunk and its static imports, transitively, once each; the CSS of
/// those chunks; dynamic imports (of any of them) apart.
fn vite_route(m: &HashMap<String, ViteChunk>, entry: &str) -> Option<RouteFiles> {
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

/// Next.js: pages router `_app` plus the page's files; app router: the root main files
/// plus the page's.
fn next_route(
    pages: &BTreeMap<String, Vec<String>>,
    app: &BTreeMap<String, Vec<String>>,
    root: &[String],
    entry: &str,
) -> Option<RouteFiles> {
    let files: Vec<&String> = if let Some(page) = pages.get(entry) {
        pages.get("/_app").into_iter().flatten().chain(page).collect()
    } else {
        let page = app
            .get(entry)
            .or_else(|| app.get(&format!("{}/page", entry.trim_end_matches('/'))))?;
        root.iter().chain(page).collect()
    };
    let mut scripts = Vec::new();
    let mut styles = Vec::new();
    for f in files {
        let list = if f.ends_with(".css") { &mut styles } else { &mut scripts };
        if !list.contains(f) {
            list.push(f.clone());
        }
    }
    Some((scripts, styles, Vec::new()))
}

fn glob_route(dir: &Path, globs: &[Spanned<String>], source: &Source) -> Result<RouteFiles, InputError> {
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

/// Each file's raw and compressed size, computed once, never outside `dir`.
struct Sizes<'a> {
    dir: &'a Path,
    compression: Compression,
    cache: HashMap<String, Chunk>,
}

impl<'a> Sizes<'a> {
    fn new(dir: &'a Path, compression: Compression) -> Self {
        Sizes {
            dir,
            compression,
            cache: HashMap::new(),
        }
    }

    fn of(&mut self, rel: &str) -> Result<Chunk, InputError> {
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

/// The per-route report as JSON (also the `--baseline` input).
pub fn to_json(r: &RouteReport) -> Value {
    let chunks = |list: &[Chunk]| -> Vec<Value> {
        list.iter()
            .map(|c| json!({"file": c.file, "raw": c.raw, "compressed": c.compressed}))
            .collect()
    };
    json!({
        "type": "route",
        "bundle": r.bundle,
        "path": r.path,
        "compression": match r.compression { Compression::Gzip => "gzip", Compression::Brotli => "brotli" },
        "script_bytes": r.script_bytes(),
        "script_raw_bytes": r.scripts.iter().map(|c| c.raw).sum::<u64>(),
        "stylesheet_bytes": r.stylesheet_bytes(),
        "stylesheet_raw_bytes": r.stylesheets.iter().map(|c| c.raw).sum::<u64>(),
        "budget": {"script_bytes": r.budget_script, "stylesheet_bytes": r.budget_stylesheet},
        "within_budget": r.within_budget(),
        "scripts": chunks(&r.scripts),
        "stylesheets": chunks(&r.stylesheets),
        "deferred": r.deferred,
    })
}

/// A previous report's (script, stylesheet) compressed bytes by (bundle, route).
pub fn read_baseline(path: &Path) -> Result<Baseline, InputError> {
    let bytes = crate::config::read_capped(path, MAX_MANIFEST).map_err(InputError)?;
    let text = String::from_utf8_lossy(&bytes);
    let mut out = HashMap::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).map_err(|e| {
            InputError(format!(
                "{}:{}: not a `sloprobe bundle --format json` line: {e}",
                path.display(),
                i + 1
            ))
        })?;
        if v["type"] != "route" {
            continue;
        }
        let key = (
            v["bundle"].as_str().unwrap_or_default().to_string(),
            v["path"].as_str().unwrap_or_default().to_string(),
        );
        out.insert(
            key,
            (
                v["script_bytes"].as_u64().unwrap_or(0),
                v["stylesheet_bytes"].as_u64().unwrap_or(0),
            ),
        );
    }
    Ok(out)
}

/// Growth over the baseline, as (script delta, stylesheet delta), when the route is in it.
pub fn delta(r: &RouteReport, baseline: &Baseline) -> Option<(i64, i64)> {
    let (s, c) = baseline.get(&(r.bundle.clone(), r.path.clone()))?;
    Some((
        r.script_bytes() as i64 - *s as i64,
        r.stylesheet_bytes() as i64 - *c as i64,
    ))
}

/// The `bundle` command: prints the report, returns the exit code (0 / 1 / 2).
pub fn cli(config: &Path, json_out: bool, baseline: Option<&Path>, out: &mut dyn std::io::Write) -> i32 {
    let reports = match run(config) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    let base = match baseline.map(read_baseline).transpose() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    let mut failed = Vec::new();
    for r in &reports {
        let growth = base.as_ref().and_then(|b| delta(r, b));
        let grown_too_much = match (growth, r.max_growth) {
            (Some((s, c)), Some(max)) => s > max as i64 || c > max as i64,
            _ => false,
        };
        if !r.within_budget() {
            failed.push(format!("{} {}: over budget", r.bundle, r.path));
        }
        if grown_too_much {
            failed.push(format!("{} {}: grew more than max_growth", r.bundle, r.path));
        }
        if json_out {
            let mut v = to_json(r);
            if let Some((s, c)) = growth {
                v["growth"] = json!({"script_bytes": s, "stylesheet_bytes": c, "over_max_growth": grown_too_much});
            }
            let _ = writeln!(out, "{v}");
        } else {
            print_route(out, r, growth, grown_too_much);
        }
    }
    if !json_out {
        if failed.is_empty() {
            let _ = writeln!(out, "\nPASS: {} route(s) within budget", reports.len());
        } else {
            let _ = writeln!(out, "\nFAIL: {}", failed.join("; "));
        }
    }
    if failed.is_empty() { 0 } else { 1 }
}

fn kb(n: u64) -> String {
    format!("{:.1} KB", n as f64 / 1000.0)
}

fn print_route(out: &mut dyn std::io::Write, r: &RouteReport, growth: Option<(i64, i64)>, grown: bool) {
    let c = match r.compression {
        Compression::Gzip => "gzip -9",
        Compression::Brotli => "brotli",
    };
    let _ = writeln!(out, "\n{} {}  ({c})", r.bundle, r.path);
    let verdict = |value: u64, budget: Option<u64>| match budget {
        Some(b) if value <= b => format!("ok, {} under {}", kb(b - value), kb(b)),
        Some(b) => format!("OVER by {} (budget {})", kb(value - b), kb(b)),
        None => "no budget".to_string(),
    };
    let raw: u64 = r.scripts.iter().map(|c| c.raw).sum();
    let _ = writeln!(
        out,
        "  script      {:>10} ({} raw, {} files)  {}",
        kb(r.script_bytes()),
        kb(raw),
        r.scripts.len(),
        verdict(r.script_bytes(), r.budget_script)
    );
    let raw: u64 = r.stylesheets.iter().map(|c| c.raw).sum();
    let _ = writeln!(
        out,
        "  stylesheet  {:>10} ({} raw, {} files)  {}",
        kb(r.stylesheet_bytes()),
        kb(raw),
        r.stylesheets.len(),
        verdict(r.stylesheet_bytes(), r.budget_stylesheet)
    );
    if let Some((s, css)) = growth {
        let _ = writeln!(
            out,
            "  since baseline: script {s:+} B, stylesheet {css:+} B{}",
            if grown { "  (over max_growth)" } else { "" }
        );
    }
    let mut biggest: Vec<&Chunk> = r.scripts.iter().chain(&r.stylesheets).collect();
    biggest.sort_by_key(|c| std::cmp::Reverse(c.compressed));
    for ch in biggest.iter().take(3) {
        let _ = writeln!(out, "    {:>10}  {}", kb(ch.compressed), ch.file);
    }
    if !r.deferred.is_empty() {
        let _ = writeln!(
            out,
            "  loaded later (dynamic imports, not counted): {}",
            r.deferred.join(", ")
        );
    }
}
