//! Demo routes for the `browser` kind: a page whose vitals and bytes are known. Its LCP
//! image arrives after an injected delay, a late layout shift moves the content by a
//! known fraction, and its JS and CSS come gzipped at a known size. Routes and
//! parameters: docs/demo.md. Under `/app/` a small app for browser journeys: a login
//! form, a dashboard whose content waits on a slow API call, a button whose click handler
//! blocks for a known time (a known INP), and a player whose first frame waits on a slow
//! segment.

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
        .route("/app/login", any(login))
        .route("/app/dashboard", any(dashboard))
        .route("/app/api/stats", any(stats))
        .route("/app/player", any(player))
        .route("/app/segment", any(segment))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AppParams {
    /// Milliseconds the dashboard's stats API takes (its cards render after it).
    api_delay: u64,
    /// Milliseconds the dashboard's "Recalculate" click handler blocks the main thread.
    handler: u64,
    /// Milliseconds the player's first segment takes after "Play".
    segment_delay: u64,
    /// An origin serving `web-vitals.iife.js`: the dashboard then reports its own INP
    /// (web-vitals' `onINP`) into `window.__wvInp`, to compare with the probe's.
    wv: Option<String>,
}

const APP_STYLE: &str =
    "<style>body{font:16px sans-serif;margin:2em}.card{padding:1em;background:#def;margin:.5em 0}</style>";

fn html(status: StatusCode, title: &str, body: &str) -> Response {
    let page = format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>{APP_STYLE}</head><body>{body}</body></html>"#
    );
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
}

/// The query string passed on from page to page (only the parameters we know, re-encoded).
fn carried(p: &AppParams) -> String {
    let mut q = format!(
        "api_delay={}&handler={}&segment_delay={}",
        p.api_delay, p.handler, p.segment_delay
    );
    if let Some(wv) = p.wv.as_deref().filter(|o| valid_origin(o)) {
        q.push_str("&wv=");
        q.push_str(wv);
    }
    q
}

/// GET: the sign-in form. POST: any user with a non-empty password is signed in (a session
/// cookie) and sent to the dashboard; an empty password gets the form back with a 401.
async fn login(method: axum::http::Method, Query(p): Query<AppParams>, body: axum::body::Bytes) -> Response {
    let q = carried(&p);
    let form = format!(
        r#"<h1>Sign in</h1><form method="post" action="/app/login?{q}"><label>User <input id="user" name="user" autocomplete="off"></label>
<label>Password <input id="password" name="password" type="password"></label><button id="sign-in" type="submit">Sign in</button></form>"#
    );
    if method != axum::http::Method::POST {
        let page = format!("{form}<script>console.warn('sign-in page ready');</script>");
        return html(StatusCode::OK, "Sign in", &page);
    }
    let fields: Vec<(String, String)> = url::form_urlencoded::parse(&body[..body.len().min(4096)])
        .into_owned()
        .collect();
    let password = fields
        .iter()
        .find(|(k, _)| k == "password")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    if password.is_empty() {
        return html(
            StatusCode::UNAUTHORIZED,
            "Sign in",
            &format!("<p id=\"error\">Wrong password</p>{form}"),
        );
    }
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, format!("/app/dashboard?{q}")),
            (header::SET_COOKIE, "session=demo; Path=/app; HttpOnly".to_string()),
        ],
    )
        .into_response()
}

async fn dashboard(Query(p): Query<AppParams>, headers: axum::http::HeaderMap) -> Response {
    let signed_in = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|c| c.split(';').any(|kv| kv.trim() == "session=demo"));
    if !signed_in {
        return html(StatusCode::UNAUTHORIZED, "Dashboard", "<p>Sign in first.</p>");
    }
    let vitals = match p.wv.as_deref().filter(|o| valid_origin(o)) {
        Some(origin) => format!(
            r#"<script src="{origin}/web-vitals.iife.js"></script><script>webVitals.onINP((m) => {{ window.__wvInp = m.value; }}, {{ reportAllChanges: true }});</script>"#
        ),
        None => String::new(),
    };
    let body = format!(
        r#"<h1>Dashboard</h1><div id="stats"><p>Loading…</p></div><button id="recalculate">Recalculate</button><p id="result"></p>
<script>
fetch('/app/api/stats?delay={api}').then((r) => r.json()).then((d) => {{
  document.getElementById('stats').innerHTML = '<div class="card">' + d.users + ' users</div><div class="card">' + d.uptime + ' uptime</div>';
}});
document.getElementById('recalculate').addEventListener('click', () => {{
  const end = performance.now() + {handler}; while (performance.now() < end) {{}}
  document.getElementById('result').textContent = 'Recalculated';
}});
</script>{vitals}"#,
        api = p.api_delay.min(60_000),
        handler = p.handler.min(5_000),
    );
    html(StatusCode::OK, "Dashboard", &body)
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct DelayParams {
    delay: u64,
}

async fn stats(Query(p): Query<DelayParams>) -> Response {
    tokio::time::sleep(Duration::from_millis(p.delay.min(60_000))).await;
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"users":1234,"uptime":"99.95%"}"#,
    )
        .into_response()
}

/// "Play" fetches the first segment, then the <video> plays a canvas stream.
async fn player(Query(p): Query<AppParams>) -> Response {
    let body = format!(
        r#"<h1>Player</h1><button id="play">Play</button><video id="player" muted playsinline width="320" height="180"></video>
<canvas id="frames" width="320" height="180" style="display:none"></canvas>
<script>
const c = document.getElementById('frames'), g = c.getContext('2d');
let n = 0; (function draw() {{ g.fillStyle = n++ % 2 ? '#246' : '#642'; g.fillRect(0, 0, 320, 180); requestAnimationFrame(draw); }})();
document.getElementById('play').addEventListener('click', async () => {{
  await fetch('/app/segment?delay={delay}').then((r) => r.arrayBuffer());
  const v = document.getElementById('player'); v.srcObject = c.captureStream(30); v.play();
}});
</script>"#,
        delay = p.segment_delay.min(60_000)
    );
    html(StatusCode::OK, "Player", &body)
}

async fn segment(Query(p): Query<DelayParams>) -> Response {
    tokio::time::sleep(Duration::from_millis(p.delay.min(60_000))).await;
    ([(header::CONTENT_TYPE, "video/webm")], vec![0u8; 16 * 1024]).into_response()
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
