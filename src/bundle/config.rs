//! `[[bundle]]` as written, and the input errors (exit 2) the command reports.

use schemars::JsonSchema;
use serde::Deserialize;

use crate::config::{ConfigError, Size, Spanned};

/// Largest manifest or baseline read.
pub const MAX_MANIFEST: u64 = 16 * 1024 * 1024;

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
