//! `sloprobe bundle`: the client-budget guardrail on the build output, before anything is
//! deployed. "Route JS" is exactly what a route loads before interaction: its entry chunk
//! and the chunks it imports statically, transitively, each counted once; dynamic imports
//! are listed apart. Sizes are compressed as the budgets mean (zlib level 9 in gzip framing, or brotli 11).
//! Reads Vite's manifest, Next.js's build manifests, or globs; never a file outside `dir`.

mod config;
mod manifest;
mod next;
mod report;
mod sizes;

use std::path::Path;

use serde::Deserialize;

pub use config::{BundleBudget, BundleConfig, Compression, InputError, ManifestKind, RouteConfig};
use manifest::{Manifest, glob_route, vite_route};
use report::print_route;
pub use report::{Baseline, RouteReport, delta, read_baseline, to_json};
use sizes::Sizes;
pub use sizes::{Chunk, compressed_len};

use crate::config::{Size, Source, Spanned};
use serde_json::json;

#[derive(Deserialize)]
struct BundleFile {
    #[serde(default, rename = "bundle")]
    bundles: Vec<BundleConfig>,
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
            (Manifest::Vite(m), Some(entry)) => vite_route(m, entry.get_ref())
                .map_err(|e| err_at(entry.span(), "bundle.route.entry", e))?
                .ok_or_else(|| {
                    err_at(
                        entry.span(),
                        "bundle.route.entry",
                        format!("entry {:?} is not in the Vite manifest", entry.get_ref()),
                    )
                })?,
            (Manifest::Next(next), Some(entry)) => next.route(entry.get_ref())?.ok_or_else(|| {
                err_at(
                    entry.span(),
                    "bundle.route.entry",
                    format!(
                        "page {:?} is not in this Next build (neither build-manifest.json's pages nor an app-router page under server/app)",
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
            scripts: sizes.all(&scripts)?,
            stylesheets: sizes.all(&styles)?,
            deferred,
            budget_script: pick(&budget.script_bytes, &b.budget.script_bytes),
            budget_stylesheet: pick(&budget.stylesheet_bytes, &b.budget.stylesheet_bytes),
            max_growth: b.max_growth.as_ref().map(|g| g.get_ref().0),
            compression: b.compression,
        });
    }
    Ok(reports)
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
