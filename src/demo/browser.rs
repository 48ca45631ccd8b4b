//! Demo routes for the `browser` kind: a page whose vitals and bytes are known. Its LCP
//! image arrives after an injected delay, a late layout shift moves the content by a
//! known fraction, and its JS and CSS come gzipped at a known size. Routes and
//! parameters: docs/demo.md.

use std::io::Write as _;
use std::time::Duration;

use axum::Router;
use axum::extract::Query;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde::Deserialize;

pub fn routes() -> Router {
    Router::new()
        .route("/page", any(page))
        .route("/page/hero.svg", any(hero))
        .route("/page/app.js", any(script))
        .route("/page/app.css", any(stylesheet))
        .route("/page/hang", any(hang))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PageParams {
    /// Milliseconds before the hero image (the LCP element) is served.
    lcp_delay: u64,
    /// A layout shift of this score, 200 ms after load (0 = none).
    shift: f64,
    /// KiB of JavaScript / CSS before compression.
    js_kb: u32,
    css_kb: u32,
    /// Another origin (e.g. "http://localhost:9465") to load two images from: one with
    /// Timing-Allow-Origin, one without.
    third: Option<String>,
    /// KiB of JavaScript (before compression) from `third`, without Timing-Allow-Origin.
    third_js: u32,
    /// After load + 300 ms, a large image served this many ms late is inserted above the
    /// content without reserved space: it becomes the LCP and shifts the page when it
    /// arrives (0 = none). What a fixed sleep after load misses.
    late_image: u64,
    /// One main-thread task of this many ms, 100 ms after load (TBT = this − 50).
    block: u64,
    /// A resource that never finishes: the load event never fires.
    hang: u8,
    /// An uncaught script error.
    error: u8,
    /// A <video> fed by a canvas stream, for the first-frame metrics_script example.
    video: u8,
}

async fn page(Query(p): Query<PageParams>) -> Response {
    let mut head = String::new();
    if p.css_kb > 0 {
        head.push_str(&format!(
            r#"<link rel="stylesheet" href="/page/app.css?kb={}">"#,
            p.css_kb.min(4096)
        ));
    }
    if p.js_kb > 0 {
        head.push_str(&format!(
            r#"<script src="/page/app.js?kb={}"></script>"#,
            p.js_kb.min(4096)
        ));
    }
    let mut body = format!(
        r#"<div id="content"><h1>sloprobe demo page</h1><p>Known vitals for the browser probe.</p>
<img id="hero" src="/page/hero.svg?delay={}" width="600" height="400" alt="hero"></div>"#,
        p.lcp_delay.min(60_000)
    );
    if let Some(origin) = p.third.as_deref().filter(|o| valid_origin(o)) {
        body.push_str(&format!(
            r#"<img src="{origin}/page/hero.svg?tao=1&amp;w=10" width="10" height="10" alt=""><img src="{origin}/page/hero.svg?w=10" width="10" height="10" alt="">"#
        ));
    }
    if let Some(origin) = p.third.as_deref().filter(|o| valid_origin(o) && p.third_js > 0) {
        body.push_str(&format!(
            r#"<script src="{origin}/page/app.js?kb={}"></script>"#,
            p.third_js.min(4096)
        ));
    }
    if p.late_image > 0 {
        body.push_str(&format!(
            r#"<script>addEventListener('load', () => setTimeout(() => {{
  const img = new Image(); img.id = 'late'; img.alt = 'late'; img.src = '/page/hero.svg?w=1200&delay={}';
  document.body.insertBefore(img, document.getElementById('content'));
}}, 300));</script>"#,
            p.late_image.min(60_000)
        ));
    }
    if p.block > 0 {
        body.push_str(&format!(
            r#"<script>addEventListener('load', () => setTimeout(() => {{
  const end = performance.now() + {}; while (performance.now() < end) {{}}
}}, 100));</script>"#,
            p.block.min(5_000)
        ));
    }
    if p.hang > 0 {
        body.push_str(r#"<img src="/page/hang" width="1" height="1" alt="">"#);
    }
    if p.error > 0 {
        body.push_str("<script>window.notDefinedAnywhere.call()</script>");
    }
    if p.video > 0 {
        body.push_str(
            r#"<canvas id="frames" width="64" height="36" style="display:none"></canvas><video id="player" muted playsinline width="64" height="36"></video>
<script>
const c = document.getElementById('frames'), g = c.getContext('2d');
let n = 0; (function draw() { g.fillStyle = n++ % 2 ? '#246' : '#642'; g.fillRect(0, 0, 64, 36); requestAnimationFrame(draw); })();
document.getElementById('player').srcObject = c.captureStream(30);
</script>"#,
        );
    }
    if p.shift > 0.0 && p.shift.is_finite() {
        // The content fills the viewport's width and more than its height, so moving it
        // down by d px shifts it by impact 1 × distance d / max(width, height).
        body.push_str(&format!(
            r#"<script>addEventListener('load', () => setTimeout(() => {{
  const d = Math.round({} * Math.max(innerWidth, innerHeight));
  const spacer = document.createElement('div'); spacer.style.height = d + 'px';
  document.body.insertBefore(spacer, document.getElementById('content'));
}}, 200));</script>"#,
            p.shift.min(1.0)
        ));
    }
    let html = format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>sloprobe demo page</title>
<style>body{{margin:0}}#content{{min-height:200vh;background:#eef}}</style>{head}</head><body>{body}</body></html>"#
    );
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}

/// "scheme://host[:port]" with nothing that could break out of an attribute.
fn valid_origin(o: &str) -> bool {
    let rest = o.strip_prefix("http://").or_else(|| o.strip_prefix("https://"));
    rest.is_some_and(|r| {
        !r.is_empty()
            && r.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '-' | '[' | ']'))
    })
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct HeroParams {
    delay: u64,
    tao: u8,
    w: Option<u32>,
}

async fn hero(Query(p): Query<HeroParams>) -> Response {
    tokio::time::sleep(Duration::from_millis(p.delay.min(60_000))).await;
    let (w, h) = p.w.map_or((600, 400), |w| (w.min(2000), w.min(2000)));
    // Many small tiles of varied colour: Chromium ignores near-empty images (under 0.05
    // bits per pixel) as LCP candidates, so a flat rectangle would never be the LCP.
    let mut svg = format!(r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}">"#);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let tile = (w.max(h) / 20).max(1);
    for ty in (0..h).step_by(tile as usize) {
        for tx in (0..w).step_by(tile as usize) {
            let c = next(&mut x) & 0xff_ffff;
            svg.push_str(&format!(
                r##"<rect x="{tx}" y="{ty}" width="{tile}" height="{tile}" fill="#{c:06x}"/>"##
            ));
        }
    }
    svg.push_str("</svg>");
    let mut resp = ([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response();
    if p.tao > 0 {
        resp.headers_mut()
            .insert("timing-allow-origin", header::HeaderValue::from_static("*"));
    }
    resp
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SizeParams {
    kb: u32,
}

/// `kb` KiB of deterministic text, gzipped: the same bytes on every request, so a test
/// can fetch it and know its encoded size.
pub fn gzipped_asset(kind: &str, kb: u32) -> Vec<u8> {
    let size = kb as usize * 1024;
    let mut text = String::with_capacity(size);
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    loop {
        let line = match kind {
            "css" => format!(".c{:x}{{margin:{}px}}\n", next(&mut x) & 0xffff, next(&mut x) % 97),
            _ => format!("var v{:x}={};\n", next(&mut x) & 0xffff, next(&mut x) % 9973),
        };
        if text.len() + line.len() > size {
            break;
        }
        text.push_str(&line);
    }
    // Whole statements only, padded to the exact size: the script must run without errors.
    text.extend(std::iter::repeat_n('\n', size - text.len()));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = gz.write_all(text.as_bytes());
    gz.finish().unwrap_or_default()
}

/// xorshift64: deterministic filler.
fn next(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

fn gzipped(content_type: &'static str, body: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_ENCODING, "gzip"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        body,
    )
        .into_response()
}

async fn script(Query(p): Query<SizeParams>) -> Response {
    gzipped("text/javascript", gzipped_asset("js", p.kb.min(4096)))
}

async fn stylesheet(Query(p): Query<SizeParams>) -> Response {
    gzipped("text/css", gzipped_asset("css", p.kb.min(4096)))
}

/// Never answers (until the connection's idle timeout).
async fn hang() -> Response {
    tokio::time::sleep(Duration::from_secs(3600)).await;
    StatusCode::GATEWAY_TIMEOUT.into_response()
}
