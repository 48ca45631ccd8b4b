//! `sloprobe bundle` on Vite and Next.js build outputs made here: route JS is the entry
//! and its static imports once each, sizes equal zlib level 9 (CPython's zlib) / brotli 11 of
//! exactly those files, budgets and baselines gate, bad inputs exit 2.

mod common;

use std::io::Write as _;
use std::path::Path;
use std::process::Command;

use common::*;

/// Deterministic, not very compressible content of `n` bytes.
fn content(seed: u64, n: usize) -> String {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (b'a' + (x % 26) as u8) as char
        })
        .collect()
}

/// The `file` of each script chunk of a route in a JSON report.
fn script_files(route: &serde_json::Value) -> Vec<&str> {
    route["scripts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["file"].as_str().unwrap())
        .collect()
}

/// gzip level 9 as zlib makes it, from an encoder nobody here wrote: CPython's zlib module
/// (the system zlib), in a gzip wrapper without name or time (wbits 31).
fn gzip9(data: &[u8]) -> u64 {
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import sys,zlib;c=zlib.compressobj(9,zlib.DEFLATED,31);d=sys.stdin.buffer.read();print(len(c.compress(d)+c.flush()))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn brotli11(data: &[u8]) -> u64 {
    let mut out = Vec::new();
    let params = brotli::enc::BrotliEncoderParams {
        quality: 11,
        lgwin: 22,
        ..Default::default()
    };
    brotli::BrotliCompress(&mut &data[..], &mut out, &params).unwrap();
    out.len() as u64
}

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn file(&self, rel: &str, text: &str) {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    fn read(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.dir.path().join(rel)).unwrap()
    }
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(bin())
            .args(["bundle", "-c"])
            .arg(self.dir.path().join("sloprobe.toml"))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
    fn json(&self, args: &[&str]) -> (i32, Vec<serde_json::Value>) {
        let mut all = vec!["--format", "json"];
        all.extend_from_slice(args);
        let (code, out, err) = self.run(&all);
        assert!(code != 2, "input error: {err}");
        (code, out.lines().map(|l| serde_json::from_str(l).unwrap()).collect())
    }
}

/// A Vite build: two routes sharing a vendor chunk, one dynamic import, CSS on two chunks.
fn vite() -> Fixture {
    let f = Fixture {
        dir: tempfile::tempdir().unwrap(),
    };
    for (file, seed, n) in [
        ("dist/assets/dashboard-a1.js", 1, 9000),
        ("dist/assets/orders-b2.js", 2, 7000),
        ("dist/assets/vendor-c3.js", 3, 30000),
        ("dist/assets/chart-d4.js", 4, 20000),
        ("dist/assets/util-e5.js", 5, 3000),
    ] {
        f.file(file, &content(seed, n));
    }
    f.file("dist/assets/dashboard-a1.css", &content(6, 4000));
    f.file("dist/assets/vendor-c3.css", &content(7, 2000));
    f.file(
        "dist/.vite/manifest.json",
        r#"{
  "src/pages/dashboard.tsx": {"file": "assets/dashboard-a1.js", "src": "src/pages/dashboard.tsx", "isEntry": true,
     "imports": ["_vendor.js"], "dynamicImports": ["src/chart.tsx"], "css": ["assets/dashboard-a1.css"]},
  "src/pages/orders.tsx": {"file": "assets/orders-b2.js", "isEntry": true, "imports": ["_vendor.js", "_util.js"]},
  "_vendor.js": {"file": "assets/vendor-c3.js", "imports": ["_util.js"], "css": ["assets/vendor-c3.css"]},
  "_util.js": {"file": "assets/util-e5.js"},
  "src/chart.tsx": {"file": "assets/chart-d4.js", "isDynamicEntry": true, "imports": ["_vendor.js"]}
}"#,
    );
    f
}

fn vite_config(extra: &str) -> String {
    format!(
        "[[bundle]]\nname = \"web\"\ndir = \"dist\"\nmanifest = \"vite\"\n{extra}\n[[bundle.route]]\npath = \"/dashboard\"\nentry = \"src/pages/dashboard.tsx\"\n[[bundle.route]]\npath = \"/orders\"\nentry = \"src/pages/orders.tsx\"\n[bundle.budget]\nscript_bytes = \"180KB\"\nstylesheet_bytes = \"40KB\"\n"
    )
}

#[test]
fn vite_route_js_is_the_entry_and_its_static_imports_once() {
    let f = vite();
    f.file("sloprobe.toml", &vite_config(""));
    let (code, routes) = f.json(&[]);
    assert_eq!(code, 0);
    let dash = routes.iter().find(|r| r["path"] == "/dashboard").unwrap();
    let files = script_files(dash);
    assert_eq!(
        files,
        ["assets/dashboard-a1.js", "assets/vendor-c3.js", "assets/util-e5.js"]
    );
    let expect: u64 = files.iter().map(|f2| gzip9(&f.read(&format!("dist/{f2}")))).sum();
    assert_eq!(dash["script_bytes"], expect, "gzip -9 of exactly the route's chunks");
    let css: u64 = ["assets/dashboard-a1.css", "assets/vendor-c3.css"]
        .iter()
        .map(|c| gzip9(&f.read(&format!("dist/{c}"))))
        .sum();
    assert_eq!(dash["stylesheet_bytes"], css);
    assert_eq!(dash["deferred"], serde_json::json!(["assets/chart-d4.js"]));
    // The shared vendor chunk counts for both routes, and util only once in orders.
    let orders = routes.iter().find(|r| r["path"] == "/orders").unwrap();
    assert_eq!(orders["scripts"].as_array().unwrap().len(), 3);

    // Brotli counts the same files with brotli -q 11.
    f.file("sloprobe.toml", &vite_config("compression = \"brotli\""));
    let (_, routes) = f.json(&[]);
    let dash = routes.iter().find(|r| r["path"] == "/dashboard").unwrap();
    let expect: u64 = files.iter().map(|f2| brotli11(&f.read(&format!("dist/{f2}")))).sum();
    assert_eq!(dash["script_bytes"], expect);
}

#[test]
fn budget_breach_and_baseline_growth_fail_the_gate() {
    let f = vite();
    f.file("sloprobe.toml", &vite_config("").replace("180KB", "20KB"));
    let (code, out, _) = f.run(&[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("OVER by") && out.contains("FAIL: web /dashboard: over budget"),
        "{out}"
    );

    // A baseline, then 6 KB more of vendor code: the growth shows, and fails with max_growth.
    f.file("sloprobe.toml", &vite_config("max_growth = \"5KB\""));
    let (code, out, _) = f.run(&["--format", "json"]);
    assert_eq!(code, 0);
    f.file("baseline.json", &out);
    f.file("dist/assets/vendor-c3.js", &(content(3, 30000) + &content(99, 12000)));
    let baseline = f.dir.path().join("baseline.json");
    let (code, routes) = f.json(&["--baseline", baseline.to_str().unwrap()]);
    assert_eq!(code, 1);
    let dash = routes.iter().find(|r| r["path"] == "/dashboard").unwrap();
    let grew = dash["growth"]["script_bytes"].as_i64().unwrap();
    assert!(grew > 5000, "growth {grew}");
    assert_eq!(dash["growth"]["over_max_growth"], true);
    let (_, out, _) = f.run(&["--baseline", baseline.to_str().unwrap()]);
    assert!(
        out.contains("since baseline: script +") && out.contains("over max_growth"),
        "{out}"
    );
}

#[test]
fn next_pages_and_app_router_manifests() {
    let f = Fixture {
        dir: tempfile::tempdir().unwrap(),
    };
    for (file, seed) in [
        ("static/chunks/framework.js", 1),
        ("static/chunks/main.js", 2),
        ("static/chunks/pages/_app.js", 3),
        ("static/chunks/pages/dashboard.js", 4),
        ("static/chunks/app/settings/page.js", 5),
        ("static/chunks/webpack.js", 6),
    ] {
        f.file(&format!(".next/{file}"), &content(seed, 5000));
    }
    f.file(".next/static/css/app.css", &content(7, 3000));
    f.file(
        ".next/build-manifest.json",
        r#"{"polyfillFiles": [], "rootMainFiles": ["static/chunks/webpack.js", "static/chunks/main.js"],
            "pages": {"/_app": ["static/chunks/framework.js", "static/chunks/main.js", "static/chunks/pages/_app.js", "static/css/app.css"],
                      "/dashboard": ["static/chunks/pages/dashboard.js"]}}"#,
    );
    f.file(
        ".next/app-build-manifest.json",
        r#"{"pages": {"/settings/page": ["static/chunks/app/settings/page.js", "static/css/app.css"]}}"#,
    );
    f.file(
        "sloprobe.toml",
        "[[bundle]]\nname = \"next\"\ndir = \".next\"\nmanifest = \"next\"\n[[bundle.route]]\npath = \"/dashboard\"\nentry = \"/dashboard\"\n[[bundle.route]]\npath = \"/settings\"\nentry = \"/settings\"\n",
    );
    let (code, routes) = f.json(&[]);
    assert_eq!(code, 0);
    let dash = &routes[0];
    let expect: u64 = ["framework.js", "main.js", "pages/_app.js", "pages/dashboard.js"]
        .iter()
        .map(|c| gzip9(&f.read(&format!(".next/static/chunks/{c}"))))
        .sum();
    assert_eq!(dash["script_bytes"], expect);
    assert_eq!(dash["stylesheet_bytes"], gzip9(&f.read(".next/static/css/app.css")));
    let settings = &routes[1];
    let files = script_files(settings);
    assert_eq!(
        files,
        [
            "static/chunks/webpack.js",
            "static/chunks/main.js",
            "static/chunks/app/settings/page.js"
        ]
    );
}

fn input_error(f: &Fixture, config: &str, needle: &str) {
    f.file("sloprobe.toml", config);
    let (code, out, err) = f.run(&[]);
    assert_eq!(code, 2, "expected an input error for {needle:?}: {out}{err}");
    assert!(err.contains(needle), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn bad_inputs_exit_2_with_a_clear_error() {
    let f = vite();
    input_error(
        &f,
        &vite_config("").replace("src/pages/orders.tsx", "src/pages/nope.tsx"),
        "is not in the Vite manifest",
    );
    std::fs::write(f.dir.path().join("dist/.vite/manifest.json"), "{not json").unwrap();
    input_error(&f, &vite_config(""), "malformed manifest");
    std::fs::remove_file(f.dir.path().join("dist/.vite/manifest.json")).unwrap();
    input_error(&f, &vite_config(""), "no .vite/manifest.json");

    // A manifest that points outside `dir`, a missing file, a symlink loop, a huge file.
    let g = vite();
    g.file("secret.txt", "outside");
    g.file(
        "dist/.vite/manifest.json",
        r#"{"a": {"file": "../secret.txt"}, "b": {"file": "assets/missing.js"}, "c": {"file": "assets/loop.js"}, "d": {"file": "assets/huge.js"}}"#,
    );
    let one = |entry: &str| {
        format!("[[bundle]]\nname = \"w\"\ndir = \"dist\"\n[[bundle.route]]\npath = \"/\"\nentry = \"{entry}\"\n")
    };
    input_error(&g, &one("a"), "resolves outside the bundle dir");
    input_error(&g, &one("b"), "missing.js");
    std::os::unix::fs::symlink("loop.js", g.dir.path().join("dist/assets/loop.js")).unwrap();
    input_error(&g, &one("c"), "loop.js");
    let huge = std::fs::File::create(g.dir.path().join("dist/assets/huge.js")).unwrap();
    huge.set_len(65 * 1024 * 1024).unwrap();
    input_error(&g, &one("d"), "over the");
    // Globs may not leave dir either; config errors carry file:line:key.
    input_error(
        &g,
        "[[bundle]]\nname = \"w\"\ndir = \"dist\"\nmanifest = \"none\"\n[[bundle.route]]\npath = \"/\"\nfiles = [\"../*.txt\"]\n",
        "`bundle.route.files`",
    );
    input_error(
        &g,
        "[[bundle]]\nname = \"w\"\ndir = \"dist\"\nmanifest = \"webpack\"\n",
        "sloprobe.toml:4:",
    );
}

#[test]
fn globs_without_a_manifest() {
    let f = vite();
    f.file(
        "sloprobe.toml",
        "[[bundle]]\nname = \"w\"\ndir = \"dist\"\nmanifest = \"none\"\n[[bundle.route]]\npath = \"/\"\nfiles = [\"assets/dashboard-*.js\", \"assets/*.css\"]\n[bundle.budget]\nscript_bytes = \"1KB\"\n",
    );
    let (code, routes) = f.json(&[]);
    assert_eq!(code, 1);
    assert_eq!(routes[0]["scripts"].as_array().unwrap().len(), 1);
    assert_eq!(routes[0]["stylesheets"].as_array().unwrap().len(), 2);
    assert_eq!(routes[0]["within_budget"], false);
}

/// A tiny app built by the real Vite (installed by scripts/test.sh into .cache/vite):
/// its manifest gives the route's entry, its shared chunk and CSS, and the dynamic import.
#[test]
fn real_vite_build() {
    let vite = Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/vite/node_modules/vite/bin/vite.js");
    assert!(
        vite.is_file(),
        "Vite is not installed: run scripts/test.sh, which installs it into .cache/vite"
    );
    let f = Fixture {
        dir: tempfile::tempdir().unwrap(),
    };
    f.file(
        "vite.config.mjs",
        "export default { logLevel: 'warn', build: { manifest: true, outDir: 'dist', rollupOptions: { input: { dashboard: 'src/pages/dashboard.js', orders: 'src/pages/orders.js' } } } };\n",
    );
    f.file(
        "src/shared.js",
        "export function format(n) { return `#${n.toFixed(2)} ` + 'shared-'.repeat(50); }\n",
    );
    f.file(
        "src/chart.js",
        "export function draw() { return 'chart-'.repeat(200); }\n",
    );
    f.file(
        "src/pages/dashboard.js",
        "import { format } from '../shared.js';\nimport './dashboard.css';\ndocument.body.textContent = format(1);\ndocument.body.onclick = () => import('../chart.js').then((m) => m.draw());\n",
    );
    f.file(
        "src/pages/dashboard.css",
        "body { color: rebeccapurple; margin: 0 auto; max-width: 60rem; }\n",
    );
    f.file(
        "src/pages/orders.js",
        "import { format } from '../shared.js';\ndocument.title = format(2);\n",
    );
    let out = Command::new("node")
        .arg(&vite)
        .arg("build")
        .current_dir(f.dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "vite build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    f.file(
        "sloprobe.toml",
        "[[bundle]]\nname = \"real\"\ndir = \"dist\"\n[[bundle.route]]\npath = \"/dashboard\"\nentry = \"src/pages/dashboard.js\"\n[bundle.budget]\nscript_bytes = \"180KB\"\n",
    );
    let (code, routes) = f.json(&[]);
    assert_eq!(code, 0);
    let r = &routes[0];
    let files = script_files(r);
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(
        files[0].starts_with("assets/dashboard-") && files[1].starts_with("assets/shared-"),
        "{files:?}"
    );
    let expect: u64 = files.iter().map(|f2| gzip9(&f.read(&format!("dist/{f2}")))).sum();
    assert_eq!(r["script_bytes"], expect);
    assert_eq!(r["stylesheets"].as_array().unwrap().len(), 1);
    let deferred = r["deferred"].as_array().unwrap();
    assert!(
        deferred.len() == 1 && deferred[0].as_str().unwrap().starts_with("assets/chart-"),
        "{deferred:?}"
    );
}

/// The `<script src>` (not `noModule`), `modulepreload` and stylesheet files of a built
/// page, relative to `.next`.
fn html_files(html: &str) -> (std::collections::BTreeSet<String>, std::collections::BTreeSet<String>) {
    let (mut scripts, mut styles) = (std::collections::BTreeSet::new(), std::collections::BTreeSet::new());
    let attr = |tag: &str, name: &str| -> Option<String> {
        let at = tag.find(&format!(" {name}=\""))? + name.len() + 3;
        Some(tag[at..at + tag[at..].find('"')?].to_string())
    };
    for (i, _) in html.match_indices('<') {
        let Some(end) = html[i..].find('>') else { break };
        let tag = &html[i..i + end];
        let strip = |p: String| p.trim_start_matches("/_next/").to_string();
        if tag.starts_with("<script") && !tag.contains("noModule") {
            if let Some(src) = attr(tag, "src") {
                scripts.insert(strip(src));
            }
        } else if tag.starts_with("<link") {
            let rel = attr(tag, "rel").unwrap_or_default();
            let href = attr(tag, "href").unwrap_or_default();
            if rel == "stylesheet" || (rel == "preload" && attr(tag, "as").as_deref() == Some("style")) {
                styles.insert(strip(href));
            } else if rel == "modulepreload" || (rel == "preload" && attr(tag, "as").as_deref() == Some("script")) {
                scripts.insert(strip(href));
            }
        }
    }
    (scripts, styles)
}

/// A small Next.js app (tests/next-app: app router with a client component in the root
/// layout and a dynamic import, pages router with `next/dynamic`) built for real by
/// Next 15 and 16 with webpack and Turbopack (npm, cached under .cache/next15 and
/// .cache/next16 by scripts/test.sh): each route's files are exactly the scripts,
/// modulepreloads and stylesheets of its built HTML, the root layout's chunk included;
/// dynamic imports are listed apart and are not in the HTML.
#[test]
fn real_next_builds_match_their_html() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (version, flag) in [("15", ""), ("15", "--turbopack"), ("16", ""), ("16", "--webpack")] {
        let cache = root.join(format!(".cache/next{version}"));
        let next = cache.join("node_modules/next/dist/bin/next");
        assert!(
            next.is_file(),
            "Next {version} is not installed: run scripts/test.sh, which installs it into {}",
            cache.display()
        );
        // Inside the cache, so Turbopack finds node_modules under its workspace root.
        let variant = format!("build-{}", if flag.is_empty() { "default" } else { &flag[2..] });
        let app = cache.join(&variant);
        let _ = std::fs::remove_dir_all(&app);
        copy_dir(&root.join("tests/next-app"), &app);
        // Bounded in time: a hung build is killed (with its workers) after 5 minutes.
        let out = Command::new("timeout")
            .args(["--kill-after=10", "300", "node"])
            .arg(&next)
            .arg("build")
            .args(flag.split_whitespace())
            .current_dir(&app)
            .env("NEXT_TELEMETRY_DISABLED", "1")
            .output()
            .unwrap();
        let label = format!("next {version} build {flag}");
        assert!(
            out.status.success(),
            "{label}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(
            app.join("sloprobe.toml"),
            "[[bundle]]\nname = \"next\"\ndir = \".next\"\nmanifest = \"next\"\n\
             [[bundle.route]]\npath = \"/\"\nentry = \"/\"\n\
             [[bundle.route]]\npath = \"/dashboard\"\nentry = \"/dashboard\"\n\
             [[bundle.route]]\npath = \"/legacy\"\nentry = \"/legacy\"\n",
        )
        .unwrap();
        let report = Command::new(bin())
            .args(["bundle", "--format", "json", "-c"])
            .arg(app.join("sloprobe.toml"))
            .output()
            .unwrap();
        assert!(
            report.status.code() == Some(0),
            "{label}: {}",
            String::from_utf8_lossy(&report.stderr)
        );
        let routes: Vec<serde_json::Value> = String::from_utf8_lossy(&report.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let webpack = flag == "--webpack" || (version == "15" && flag.is_empty());
        let mut every_app_route: Option<std::collections::BTreeSet<String>> = None;
        for (path, html) in [
            ("/", "server/app/index.html"),
            ("/dashboard", "server/app/dashboard.html"),
            ("/legacy", "server/pages/legacy.html"),
        ] {
            let r = routes.iter().find(|r| r["path"] == path).unwrap();
            let ours: std::collections::BTreeSet<String> = script_files(r).into_iter().map(str::to_string).collect();
            let css: std::collections::BTreeSet<String> = r["stylesheets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["file"].as_str().unwrap().to_string())
                .collect();
            let (scripts, styles) = html_files(&std::fs::read_to_string(app.join(".next").join(html)).unwrap());
            assert_eq!(ours, scripts, "{label} {path}: scripts beside the built HTML's");
            assert_eq!(css, styles, "{label} {path}: stylesheets beside the built HTML's");
            let deferred: Vec<&str> = r["deferred"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_str().unwrap())
                .collect();
            for d in &deferred {
                assert!(!scripts.contains(*d), "{label} {path}: deferred {d} is in the HTML");
                assert!(
                    app.join(".next").join(d).is_file(),
                    "{label} {path}: deferred {d} is no file"
                );
            }
            // webpack lists every dynamic import; Turbopack only next/dynamic's (docs/bundle.md).
            if path == "/legacy" || (path == "/dashboard" && webpack) {
                assert!(!deferred.is_empty(), "{label} {path}: its dynamic import is not listed");
            }
            if path != "/legacy" {
                // The root layout's client chunk loads on every app route.
                every_app_route = Some(match every_app_route {
                    None => ours.clone(),
                    Some(prev) => prev.intersection(&ours).cloned().collect(),
                });
            }
        }
        let shared = every_app_route.unwrap();
        assert!(
            shared.len() > 2,
            "{label}: app routes share only {shared:?}: the root layout's chunk is missing"
        );
        eprintln!("{label}: ok ({} files shared by app routes)", shared.len());
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// A Next route name that climbs out of `.next` is an input error, never a read elsewhere.
#[test]
fn next_routes_stay_inside_the_build() {
    let f = Fixture {
        dir: tempfile::tempdir().unwrap(),
    };
    f.file(".next/build-manifest.json", r#"{"pages": {}, "rootMainFiles": []}"#);
    f.file(
        "secret/page_client-reference-manifest.js",
        "globalThis.__RSC_MANIFEST[\"/x\"] = {}",
    );
    input_error(
        &f,
        "[[bundle]]\nname = \"next\"\ndir = \".next\"\nmanifest = \"next\"\n[[bundle.route]]\npath = \"/x\"\nentry = \"/../../secret\"\n",
        "leaves",
    );
}

/// Hostile or careless build folders: a manifest that is a link out of `dir`, a folder
/// link loop under a `**` glob, a linked folder that would count files twice, an import
/// the manifest does not have, one file under three spellings, and a baseline so large
/// the growth would wrap.
#[test]
fn build_folders_cannot_lead_outside_count_twice_or_hang() {
    use std::os::unix::fs::symlink;
    // The manifest is a link to a file outside `dir`: an input error that does not print it.
    let f = Fixture {
        dir: tempfile::tempdir().unwrap(),
    };
    f.file("secret.json", "{\"not\": \"yours: top-secret-text\"}");
    std::fs::create_dir_all(f.dir.path().join("dist/.vite")).unwrap();
    symlink(
        f.dir.path().join("secret.json"),
        f.dir.path().join("dist/.vite/manifest.json"),
    )
    .unwrap();
    f.file(
        "sloprobe.toml",
        "[[bundle]]\nname = \"w\"\ndir = \"dist\"\n[[bundle.route]]\npath = \"/\"\nentry = \"main.js\"\n",
    );
    let (code, out, err) = f.run(&[]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("outside the bundle dir") && !err.contains("top-secret-text"),
        "{err}"
    );

    // `**` over a folder with a link loop and a link to a sibling folder: each real file
    // once, and it ends.
    let f = Fixture {
        dir: tempfile::tempdir().unwrap(),
    };
    f.file("dist/js/app.js", &content(1, 4000));
    f.file("dist/js/deep/lib.js", &content(2, 4000));
    symlink(f.dir.path().join("dist/js"), f.dir.path().join("dist/js/deep/loop")).unwrap();
    symlink(f.dir.path().join("dist/js"), f.dir.path().join("dist/again")).unwrap();
    f.file(
        "sloprobe.toml",
        "[[bundle]]\nname = \"g\"\ndir = \"dist\"\nmanifest = \"none\"\n[[bundle.route]]\npath = \"/\"\nfiles = [\"**/*.js\"]\n",
    );
    let started = std::time::Instant::now();
    let (code, routes) = f.json(&[]);
    assert_eq!(code, 0);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let mut files = script_files(&routes[0]);
    files.sort();
    assert_eq!(files, ["js/app.js", "js/deep/lib.js"]);

    // An import missing from the manifest: the route's JS would be short, so exit 2.
    let f = vite();
    f.file(
        "dist/.vite/manifest.json",
        r#"{"src/main.js": {"file": "assets/dashboard-a1.js", "isEntry": true, "imports": ["_gone.js"]}}"#,
    );
    input_error(
        &f,
        "[[bundle]]\nname = \"w\"\ndir = \"dist\"\n[[bundle.route]]\npath = \"/\"\nentry = \"src/main.js\"\n",
        "\"_gone.js\" is imported but not in the Vite manifest",
    );

    // One file under three spellings counts once.
    let f = vite();
    f.file(
        "dist/.vite/manifest.json",
        r#"{"src/main.js": {"file": "assets/vendor-c3.js", "isEntry": true, "imports": ["a", "b"]},
            "a": {"file": "./assets/vendor-c3.js"}, "b": {"file": "assets//vendor-c3.js"}}"#,
    );
    f.file(
        "sloprobe.toml",
        "[[bundle]]\nname = \"w\"\ndir = \"dist\"\n[[bundle.route]]\npath = \"/\"\nentry = \"src/main.js\"\n",
    );
    let (code, routes) = f.json(&[]);
    assert_eq!(code, 0);
    assert_eq!(script_files(&routes[0]).len(), 1, "{:?}", routes[0]);
    assert_eq!(routes[0]["script_bytes"], gzip9(&f.read("dist/assets/vendor-c3.js")));

    // A baseline of 2^64 − 1 bytes: the route shrank, it did not grow past max_growth.
    let baseline = f.dir.path().join("baseline.json");
    std::fs::write(
        &baseline,
        "{\"type\":\"route\",\"bundle\":\"w\",\"path\":\"/\",\"script_bytes\":18446744073709551615,\"stylesheet_bytes\":0}\n",
    )
    .unwrap();
    f.file(
        "sloprobe.toml",
        "[[bundle]]\nname = \"w\"\ndir = \"dist\"\nmax_growth = \"1KB\"\n[[bundle.route]]\npath = \"/\"\nentry = \"src/main.js\"\n",
    );
    let (code, out, err) = f.run(&["--baseline", baseline.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("over max_growth"), "{out}");
}
