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

/// Collection and encoding are CPU work proportional to the series count (0.3 s for
/// 1,000 probes). They run on their own thread at a lower CPU priority, so on a busy host
/// the probes' timers win the CPU and a scrape does not make runs start late.
async fn metrics(State(s): State<AppState>) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<String>(4);
    let telemetry = s.telemetry.read().expect("telemetry lock").clone();
    let spawned = std::thread::Builder::new()
        .name("metrics-encode".into())
        .spawn(move || {
            lower_thread_priority();
            let result = telemetry.prometheus_text(&mut |chunk| {
                let _ = tx.blocking_send(chunk);
            });
            if let Err(e) = result {
                tracing::warn!(error = %e, "collecting metrics");
            }
        });
    if let Err(e) = spawned {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("cannot start encoder: {e}\n")).into_response();
    }
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

/// Linux keeps a nice value per thread; `PRIO_PROCESS` with 0 means the calling thread.
fn lower_thread_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority has no memory-safety preconditions; failure is harmless.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    }
}
