//! Page URL → `http.route` label. Configured patterns first (`/orders/:id`, `/docs/*`);
//! any other path is normalised (id-like segments become `:id`, query and fragment are
//! dropped), and once `max_routes` distinct labels exist, new ones fold into `other`.
//! A raw URL never becomes a label.
//!
//! Labels are handed out as small ids: a pending vital holds a `u32`, not a shared
//! `Arc<str>` whose reference count every core would keep writing to.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

pub const OTHER: &str = "other";

/// A route label's index in [`Routes`].
pub type RouteId = u32;
/// Segments kept before the rest of a path folds into `/*`.
const MAX_SEGMENTS: usize = 8;

pub struct Routes {
    router: matchit::Router<RouteId>,
    max: usize,
    /// Labels by id; id 0 is `other`.
    names: RwLock<Vec<Arc<str>>>,
    ids: Mutex<HashMap<Arc<str>, RouteId>>,
}

impl Routes {
    /// `patterns` as written in config; an error names the bad one.
    pub fn new(patterns: &[String], max: usize) -> Result<Routes, String> {
        let mut router = matchit::Router::new();
        let mut names: Vec<Arc<str>> = vec![Arc::from(OTHER)];
        let mut ids = HashMap::new();
        for p in patterns {
            let label: Arc<str> = Arc::from(p.as_str());
            let id = *ids.entry(label.clone()).or_insert_with(|| {
                names.push(label);
                (names.len() - 1) as RouteId
            });
            router
                .insert(matchit_syntax(p)?, id)
                .map_err(|e| format!("route pattern {p:?}: {e}"))?;
        }
        if ids.len() > max {
            return Err(format!("{} route patterns, more than max_routes = {max}", ids.len()));
        }
        Ok(Routes {
            router,
            max,
            names: RwLock::new(names),
            ids: Mutex::new(ids),
        })
    }

    /// A label by id.
    pub fn name(&self, id: RouteId) -> Arc<str> {
        let names = self.names.read().expect("routes lock");
        names.get(id as usize).unwrap_or(&names[0]).clone()
    }

    /// The label id for a page URL (absolute, or a path).
    pub fn label(&self, page: &str) -> RouteId {
        let path = path_of(page);
        if let Ok(m) = self.router.at(&path) {
            return *m.value;
        }
        let normal = normalise(&path);
        let mut ids = self.ids.lock().expect("routes lock");
        if let Some(id) = ids.get(normal.as_str()) {
            return *id;
        }
        if ids.len() >= self.max {
            return 0;
        }
        let label: Arc<str> = Arc::from(normal.as_str());
        let mut names = self.names.write().expect("routes lock");
        names.push(label.clone());
        let id = (names.len() - 1) as RouteId;
        ids.insert(label, id);
        id
    }

    /// Distinct labels handed out so far (patterns included), `other` aside.
    pub fn len(&self) -> usize {
        self.ids.lock().expect("routes lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `/orders/:id` and `/docs/*` (the config syntax) → matchit's `{id}` and `{*rest}`.
fn matchit_syntax(p: &str) -> Result<String, String> {
    if !p.starts_with('/') {
        return Err(format!("route pattern {p:?} must start with /"));
    }
    if p.contains(['?', '#', '{', '}']) {
        return Err(format!(
            "route pattern {p:?}: write parameters as :name and a trailing * for the rest"
        ));
    }
    let mut out = String::new();
    let segments: Vec<&str> = p[1..].split('/').collect();
    for (i, seg) in segments.iter().enumerate() {
        out.push('/');
        if let Some(name) = seg.strip_prefix(':') {
            if name.is_empty() {
                return Err(format!("route pattern {p:?}: a parameter needs a name, e.g. :id"));
            }
            out.push_str(&format!("{{{name}}}"));
        } else if *seg == "*" {
            if i + 1 != segments.len() {
                return Err(format!("route pattern {p:?}: * may only end a pattern"));
            }
            out.push_str("{*rest}");
        } else {
            out.push_str(seg);
        }
    }
    Ok(out)
}

/// The path of an absolute URL or of a path; no query, no fragment.
fn path_of(page: &str) -> String {
    let path = match url::Url::parse(page) {
        Ok(u) if u.has_host() => u.path().to_string(),
        _ => page.split(['?', '#']).next().unwrap_or("").to_string(),
    };
    if path.starts_with('/') {
        path
    } else {
        format!("/{path}")
    }
}

/// Keeps words, replaces ids: a segment becomes `:id` unless it is a short word that
/// starts with a letter and has at most two digits (`v2`, `checkout`, `en-gb`).
fn normalise(path: &str) -> String {
    let mut out = String::new();
    for (i, seg) in path.split('/').filter(|s| !s.is_empty()).enumerate() {
        if i == MAX_SEGMENTS {
            out.push_str("/*");
            break;
        }
        out.push('/');
        let wordy = seg.len() <= 32
            && seg.starts_with(|c: char| c.is_ascii_alphabetic())
            && seg
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~'))
            && seg.chars().filter(char::is_ascii_digit).count() <= 2;
        out.push_str(if wordy { seg } else { ":id" });
    }
    if out.is_empty() { "/".into() } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_then_normalised_paths_then_other() {
        let r = Routes::new(&["/orders/:id".into(), "/docs/*".into()], 5).unwrap();
        assert_eq!(
            &*r.name(r.label("https://shop.example/orders/123?x=1#f")),
            "/orders/:id"
        );
        assert_eq!(&*r.name(r.label("/docs/a/b/c")), "/docs/*");
        assert_eq!(
            &*r.name(r.label("https://shop.example/users/8f14e45f-ceea/profile")),
            "/users/:id/profile"
        );
        assert_eq!(&*r.name(r.label("https://shop.example/")), "/");
        assert_eq!(&*r.name(r.label("/v2/checkout")), "/v2/checkout");
        assert_eq!(&*r.name(r.label("/a/b/c/d/e/f/g/h/i/j")), "other"); // 6th label: folded
        assert_eq!(&*r.name(r.label("/v2/checkout?again")), "/v2/checkout");
        assert_eq!(r.len(), 5);
        assert!(Routes::new(&["orders".into()], 5).is_err());
        assert!(Routes::new(&["/a/*/b".into()], 5).is_err());
        assert!(Routes::new(&["/a".into(), "/b".into()], 1).is_err());
    }

    #[test]
    fn long_paths_and_odd_segments() {
        assert_eq!(normalise("/a/b/c/d/e/f/g/h/i/j"), "/a/b/c/d/e/f/g/h/*");
        assert_eq!(normalise("/search/%3Cscript%3E"), "/search/:id");
        assert_eq!(normalise("/2024/10/post"), "/:id/:id/post");
        assert_eq!(normalise("/abc123def"), "/:id");
    }
}
