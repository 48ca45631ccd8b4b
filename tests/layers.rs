//! The source's import graph stays one-way: no file imports (by `use` or by path) from a
//! file that imports it, directly or around a cycle, and `src/config/` imports nothing
//! above it. Files are parsed with `syn`, so paths inside function bodies count as much as
//! `use` lines; a `mod x;` declaration is not an import.
//!
//! `cargo test --test layers -- --nocapture` prints the layers, bottom first.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// Module path (e.g. `["probe", "vector"]`) → the file that holds it, for every file under `src/`.
fn module_files() -> BTreeMap<Vec<String>, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::from("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix("src").unwrap();
            let mut segments: Vec<String> = rel.iter().map(|s| s.to_string_lossy().into_owned()).collect();
            let file = segments.pop().unwrap();
            match file.as_str() {
                "lib.rs" | "main.rs" if segments.is_empty() => {}
                "mod.rs" => {}
                other => segments.push(other.trim_end_matches(".rs").to_string()),
            }
            if file == "main.rs" && segments.is_empty() {
                // The binary is its own crate above the library; it gets a name of its own.
                segments.push("<main>".into());
            }
            out.insert(segments, path);
        }
    }
    out
}

/// Collects every path a file names, made absolute from the module it is written in.
struct Imports<'a> {
    /// The module the visitor is in (file module plus inline `mod x { }` blocks).
    module: Vec<String>,
    /// Child modules declared (`mod x;` or inline) in each module, for relative paths.
    children: &'a BTreeMap<Vec<String>, BTreeSet<String>>,
    is_main: bool,
    found: Vec<(Vec<String>, String)>,
}

impl Imports<'_> {
    /// Absolute module path for `segments` as written in the current module, or None when
    /// it names something outside the crate (std, a dependency, a local item).
    fn absolute(&self, segments: &[String]) -> Option<Vec<String>> {
        let first = segments.first()?;
        let mut base = self.module.clone();
        let rest = match first.as_str() {
            "crate" => {
                base.clear();
                &segments[1..]
            }
            "sloprobe" if self.is_main => {
                base.clear();
                &segments[1..]
            }
            "self" => &segments[1..],
            "super" => {
                let mut rest = segments;
                while rest.first().is_some_and(|s| s == "super") {
                    base.pop();
                    rest = &rest[1..];
                }
                rest
            }
            name if self.children.get(&self.module).is_some_and(|c| c.contains(name)) => segments,
            _ => return None,
        };
        base.extend(rest.iter().cloned());
        Some(base)
    }

    fn record(&mut self, segments: &[String], written: String) {
        if let Some(abs) = self.absolute(segments) {
            self.found.push((abs, written));
        }
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                let mut full = prefix.clone();
                if n.ident != "self" {
                    full.push(n.ident.to_string());
                }
                self.record(&full, format!("use {}", full.join("::")));
            }
            syn::UseTree::Rename(r) => {
                let mut full = prefix.clone();
                if r.ident != "self" {
                    full.push(r.ident.to_string());
                }
                self.record(&full, format!("use {}", full.join("::")));
            }
            syn::UseTree::Glob(_) => {
                let full = prefix.clone();
                self.record(&full, format!("use {}::*", full.join("::")));
            }
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix, t);
                }
            }
        }
    }
}

impl<'ast> Visit<'ast> for Imports<'_> {
    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), &u.tree);
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if m.content.is_some() {
            self.module.push(m.ident.to_string());
            syn::visit::visit_item_mod(self, m);
            self.module.pop();
        }
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segments: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        if segments.len() > 1 {
            self.record(&segments, segments.join("::"));
        }
        syn::visit::visit_path(self, p);
    }
}

/// The file a module path resolves to: its longest prefix that is a file module.
fn resolve<'a>(files: &'a BTreeMap<Vec<String>, PathBuf>, abs: &[String]) -> Option<&'a PathBuf> {
    (0..=abs.len()).rev().find_map(|n| files.get(&abs[..n]))
}

/// Module path of a file, and the child modules each module declares (file and inline).
fn declared_children(files: &BTreeMap<Vec<String>, PathBuf>) -> BTreeMap<Vec<String>, BTreeSet<String>> {
    let mut children: BTreeMap<Vec<String>, BTreeSet<String>> = BTreeMap::new();
    for (module, path) in files {
        let ast = syn::parse_file(&std::fs::read_to_string(path).unwrap()).unwrap();
        fn walk(module: &[String], items: &[syn::Item], out: &mut BTreeMap<Vec<String>, BTreeSet<String>>) {
            for item in items {
                if let syn::Item::Mod(m) = item {
                    out.entry(module.to_vec()).or_default().insert(m.ident.to_string());
                    if let Some((_, inner)) = &m.content {
                        let mut child = module.to_vec();
                        child.push(m.ident.to_string());
                        walk(&child, inner, out);
                    }
                }
            }
        }
        walk(module, &ast.items, &mut children);
    }
    children
}

type Graph = BTreeMap<PathBuf, BTreeMap<PathBuf, String>>;

/// File → (imported file → one example of how it is named there).
fn import_graph() -> Graph {
    let files = module_files();
    let children = declared_children(&files);
    let mut graph = Graph::new();
    for (module, path) in &files {
        let ast = syn::parse_file(&std::fs::read_to_string(path).unwrap()).unwrap();
        let mut visitor = Imports {
            module: module.clone(),
            children: &children,
            is_main: module.first().is_some_and(|m| m == "<main>"),
            found: Vec::new(),
        };
        visitor.visit_file(&ast);
        let edges = graph.entry(path.clone()).or_default();
        for (abs, written) in visitor.found {
            if let Some(target) = resolve(&files, &abs)
                && target != path
            {
                edges.entry(target.clone()).or_insert(written);
            }
        }
    }
    graph
}

/// Strongly connected components with more than one file (Tarjan).
fn cycles(graph: &Graph) -> Vec<Vec<PathBuf>> {
    struct State<'a> {
        graph: &'a Graph,
        index: BTreeMap<&'a PathBuf, usize>,
        low: BTreeMap<&'a PathBuf, usize>,
        stack: Vec<&'a PathBuf>,
        on_stack: BTreeSet<&'a PathBuf>,
        out: Vec<Vec<PathBuf>>,
    }
    fn connect<'a>(s: &mut State<'a>, v: &'a PathBuf) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph[v].keys() {
            if !s.index.contains_key(w) {
                connect(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            loop {
                let w = s.stack.pop().unwrap();
                s.on_stack.remove(w);
                component.push(w.clone());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.out.push(component);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v) {
            connect(&mut s, v);
        }
    }
    s.out
}

#[test]
fn no_file_imports_a_file_that_imports_it() {
    let graph = import_graph();
    let found = cycles(&graph);
    let mut report = String::new();
    for component in &found {
        report.push_str(&format!("cycle of {} files:\n", component.len()));
        for file in component {
            for (target, written) in &graph[file] {
                if component.contains(target) {
                    report.push_str(&format!("  {} -> {}   ({written})\n", file.display(), target.display()));
                }
            }
        }
    }
    assert!(found.is_empty(), "import cycles among source files:\n{report}");
}

#[test]
fn config_imports_nothing_above_it() {
    let graph = import_graph();
    let config = Path::new("src/config");
    let mut upward = Vec::new();
    for (file, edges) in &graph {
        if !file.starts_with(config) {
            continue;
        }
        for (target, written) in edges {
            if !target.starts_with(config) {
                upward.push(format!("{} -> {}   ({written})", file.display(), target.display()));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "src/config/ must import only itself:\n{}",
        upward.join("\n")
    );
}

#[test]
fn layers_bottom_first() {
    // Longest import chain below each file; printed for docs/architecture.md.
    let graph = import_graph();
    if !cycles(&graph).is_empty() {
        return; // the cycle test reports it
    }
    fn depth(graph: &Graph, file: &PathBuf, memo: &mut BTreeMap<PathBuf, usize>) -> usize {
        if let Some(d) = memo.get(file) {
            return *d;
        }
        let d = graph[file].keys().map(|t| depth(graph, t, memo) + 1).max().unwrap_or(0);
        memo.insert(file.clone(), d);
        d
    }
    let mut memo = BTreeMap::new();
    let mut layers: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for file in graph.keys() {
        let d = depth(&graph, file, &mut memo);
        layers
            .entry(d)
            .or_default()
            .push(file.strip_prefix("src").unwrap().display().to_string());
    }
    for (d, files) in &layers {
        println!("layer {d}: {}", files.join(" "));
    }
    assert!(
        layers.len() > 1,
        "a source tree with one layer has no structure to check"
    );
}
