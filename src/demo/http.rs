//! Demo routes for the `http` kind: fixed and injected server time, trickled, endless and
//! sized bodies, statuses, redirects and uploads. Every route and parameter is listed in
//! docs/demo.md.

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use futures_util::stream;
use http_body_util::BodyExt;
use serde::Deserialize;

/// The http kind's routes (any method).
pub fn routes() -> Router {
    Router::new()
        .route(
            "/",
            any(|| async { html("<!doctype html><title>sloprobe demo</title><p>ok</p>") }),
        )
        .route("/api/items", any(items))
        .route("/delay/{ms}", any(delay))
        .route("/trickle", any(trickle))
        .route("/endless", any(endless))
        .route("/bytes/{n}", any(bytes))
        .route("/status/{code}", any(status))
        .route("/redirect/{n}", any(redirect))
        .route("/upload", any(upload))
}

pub(super) async fn add_request_id(mut resp: Response) -> Response {
    let id = format!("{:x}", pseudo_random());
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

fn pseudo_random() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    u64::from(nanos).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 16
}

fn html(s: &'static str) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], s).into_response()
}

async fn items() -> Response {
    let jitter = 5 + pseudo_random() % 21;
    tokio::time::sleep(Duration::from_millis(jitter)).await;
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"items":[{"id":1,"name":"alpha"},{"id":2,"name":"beta"}]}"#,
    )
        .into_response()
}

async fn delay(Path(ms): Path<u64>) -> Response {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    "ok".into_response()
}

#[derive(Deserialize)]
struct TrickleParams {
    #[serde(default)]
    delay: u64,
    #[serde(default = "one")]
    chunks: u64,
    #[serde(default)]
    interval: u64,
    #[serde(default = "default_chunk")]
    size: usize,
}

/// Largest generated chunk: the target is for tests and demos, not for exhausting memory.
const MAX_CHUNK: usize = 16 * 1024 * 1024;

fn one() -> u64 {
    1
}

fn default_chunk() -> usize {
    1024
}

async fn trickle(Query(p): Query<TrickleParams>) -> Response {
    tokio::time::sleep(Duration::from_millis(p.delay)).await;
    let size = p.size.min(MAX_CHUNK);
    let chunk = Bytes::from(vec![b'a'; size]);
    let interval = Duration::from_millis(p.interval);
    let body = stream::unfold(0u64, move |i| {
        let chunk = chunk.clone();
        async move {
            if i >= p.chunks {
                return None;
            }
            if i > 0 {
                tokio::time::sleep(interval).await;
            }
            Some((Ok::<_, Infallible>(chunk), i + 1))
        }
    });
    let len = p.chunks.saturating_mul(size as u64);
    ([(header::CONTENT_LENGTH, len.to_string())], Body::from_stream(body)).into_response()
}

#[derive(Deserialize)]
struct EndlessParams {
    #[serde(default = "ten")]
    interval: u64,
    #[serde(default = "default_chunk")]
    size: usize,
}

fn ten() -> u64 {
    10
}

async fn endless(Query(p): Query<EndlessParams>) -> Response {
    let chunk = Bytes::from(vec![b'e'; p.size.min(MAX_CHUNK)]);
    let interval = Duration::from_millis(p.interval);
    let body = stream::unfold((), move |()| {
        let chunk = chunk.clone();
        async move {
            if !interval.is_zero() {
                tokio::time::sleep(interval).await;
            }
            Some((Ok::<_, Infallible>(chunk), ()))
        }
    });
    Body::from_stream(body).into_response()
}

async fn bytes(Path(n): Path<usize>) -> Response {
    let n = n.min(256 * 1024 * 1024);
    Bytes::from(vec![b'b'; n]).into_response()
}

async fn status(Path(code): Path<u16>) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
    let mut resp = (status, format!("status {code}")).into_response();
    if code == 429 {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp
}

async fn redirect(Path(n): Path<u32>) -> Response {
    if n == 0 {
        return "redirects done".into_response();
    }
    let loc = format!("/redirect/{}", n - 1);
    (StatusCode::FOUND, [(header::LOCATION, loc)], "").into_response()
}

async fn upload(req: Request) -> Response {
    let mut body = req.into_body();
    let mut n: u64 = 0;
    while let Some(Ok(frame)) = body.frame().await {
        if let Some(d) = frame.data_ref() {
            n += d.len() as u64;
        }
    }
    format!("{n}").into_response()
}
