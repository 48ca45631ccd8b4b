//! The daemon's own HTTP endpoints: `/metrics` (Prometheus), `/healthz`, `/readyz`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::telemetry::Telemetry;

#[derive(Clone)]
pub struct AppState {
    /// Swapped on reload, when the probes (and so the instruments) change.
    pub telemetry: Arc<RwLock<Arc<Telemetry>>>,
    /// Set once every probe's schedule is running; cleared when shutting down.
    pub ready: Arc<AtomicBool>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// Collection and encoding are CPU work proportional to the series count; they run on
/// the blocking pool so probe timers are not held up, and stream out in chunks.
async fn metrics(State(s): State<AppState>) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<String>(4);
    let telemetry = s.telemetry.read().expect("telemetry lock").clone();
    tokio::task::spawn_blocking(move || {
        let result = telemetry.prometheus_text(&mut |chunk| {
            let _ = tx.blocking_send(chunk);
        });
        if let Err(e) = result {
            tracing::warn!(error = %e, "collecting metrics");
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, std::convert::Infallible>(chunk), rx))
    });
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        Body::from_stream(body),
    )
        .into_response()
}

async fn readyz(State(s): State<AppState>) -> Response {
    if s.ready.load(Ordering::Relaxed) {
        "ready\n".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}
