//! Demo routes for the `workflow` kind: a recording pipeline. Init returns an id and part
//! URLs; parts are PUT; finalize starts a job whose status moves queued → transcribing →
//! docifying → ready on timers set by query parameters; DELETE cleans up. Faults: 429 or
//! 503 on the first attempts of each part, a job that fails, one that never finishes.
//! Parameters: docs/demo.md.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State as Ctx};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use http_body_util::BodyExt;
use serde::Deserialize;

/// Each router (each demo target) has its own recordings.
type Shared = Arc<Mutex<State>>;

pub fn routes() -> Router {
    Router::new()
        .route("/pipeline/recordings", post(init))
        .route("/pipeline/recordings/{id}/parts/{n}", put(part))
        .route("/pipeline/recordings/{id}/finalize", post(finalize))
        .route("/pipeline/recordings/{id}", get(status))
        .route("/pipeline/recordings/{id}", delete(remove))
        .route("/pipeline/stats", get(stats))
        .with_state(Shared::default())
}

/// Timers in milliseconds from finalize, and faults.
#[derive(Debug, Clone, Default, Deserialize)]
struct Params {
    /// Parts to hand out URLs for (default 3, at most 1,000).
    parts: Option<usize>,
    /// ms in `queued` after finalize.
    queue: Option<u64>,
    /// ms in `transcribing`.
    transcribe: Option<u64>,
    /// ms in `docifying`.
    docify: Option<u64>,
    /// Answer 429 to the first N attempts of each part.
    throttle: Option<u32>,
    /// Answer 503 to the first N attempts of each part.
    unavailable: Option<u32>,
    /// Retry-After seconds with those (default 0).
    retry_after: Option<u32>,
    /// The job fails after transcribing.
    fail: Option<u8>,
    /// The job never leaves transcribing.
    never: Option<u8>,
}

struct Recording {
    params: Params,
    /// Attempts per part so far.
    attempts: HashMap<usize, u32>,
    bytes: u64,
    finalized: Option<Instant>,
}

#[derive(Default)]
struct State {
    recordings: HashMap<String, Recording>,
    next: u64,
    deleted: u64,
    parts_ok: u64,
    /// Body bytes of every stored part.
    bytes: u64,
}

/// Recordings kept at most; older ones are dropped (a long-running demo stays small).
const MAX_RECORDINGS: usize = 10_000;

fn json(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn init(Ctx(st): Ctx<Shared>, Query(p): Query<Params>, req: Request) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_string();
    let parts = p.parts.unwrap_or(3).clamp(1, 1000);
    let mut s = st.lock().expect("demo state");
    s.next += 1;
    let id = format!("rec{}", s.next);
    if s.recordings.len() >= MAX_RECORDINGS {
        s.recordings.clear();
    }
    s.recordings.insert(
        id.clone(),
        Recording {
            params: p,
            attempts: HashMap::new(),
            bytes: 0,
            finalized: None,
        },
    );
    let urls: Vec<String> = (1..=parts)
        .map(|n| format!("\"http://{host}/pipeline/recordings/{id}/parts/{n}?sig=demo-signature\""))
        .collect();
    json(
        StatusCode::CREATED,
        format!(r#"{{"id":"{id}","part_urls":[{}]}}"#, urls.join(",")),
    )
}

async fn part(Ctx(st): Ctx<Shared>, Path((id, n)): Path<(String, usize)>, req: Request) -> Response {
    let (fault, retry_after) = {
        let mut s = st.lock().expect("demo state");
        let Some(r) = s.recordings.get_mut(&id) else {
            return StatusCode::NOT_FOUND.into_response();
        };
        let tries = r.attempts.entry(n).or_default();
        *tries += 1;
        let tries = *tries;
        let fault = if tries <= r.params.throttle.unwrap_or(0) {
            Some(StatusCode::TOO_MANY_REQUESTS)
        } else if tries <= r.params.throttle.unwrap_or(0) + r.params.unavailable.unwrap_or(0) {
            Some(StatusCode::SERVICE_UNAVAILABLE)
        } else {
            None
        };
        (fault, r.params.retry_after.unwrap_or(0))
    };
    // The body is read (streamed and counted) either way, as a real store would.
    let mut body: Body = req.into_body();
    let mut n_bytes = 0u64;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => n_bytes += f.data_ref().map_or(0, |d| d.len() as u64),
            Err(_) => return StatusCode::BAD_REQUEST.into_response(),
        }
    }
    if let Some(code) = fault {
        return (code, [(header::RETRY_AFTER, retry_after.to_string())]).into_response();
    }
    let mut s = st.lock().expect("demo state");
    s.parts_ok += 1;
    s.bytes += n_bytes;
    if let Some(r) = s.recordings.get_mut(&id) {
        r.bytes += n_bytes;
    }
    (StatusCode::OK, [(header::ETAG, format!("\"part-{n}\""))]).into_response()
}

async fn finalize(Ctx(st): Ctx<Shared>, Path(id): Path<String>) -> Response {
    let mut s = st.lock().expect("demo state");
    match s.recordings.get_mut(&id) {
        Some(r) => {
            r.finalized.get_or_insert_with(Instant::now);
            json(StatusCode::ACCEPTED, format!(r#"{{"id":"{id}","bytes":{}}}"#, r.bytes))
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn status(Ctx(st): Ctx<Shared>, Path(id): Path<String>) -> Response {
    let s = st.lock().expect("demo state");
    let Some(r) = s.recordings.get(&id) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let p = &r.params;
    let ms = |v: Option<u64>| Duration::from_millis(v.unwrap_or(0));
    let state = match r.finalized {
        None => "uploading",
        Some(t) => {
            let since = t.elapsed();
            let queued = ms(p.queue);
            let transcribed = queued + ms(p.transcribe);
            let documented = transcribed + ms(p.docify);
            if since < queued {
                "queued"
            } else if since < transcribed || p.never == Some(1) {
                "transcribing"
            } else if p.fail == Some(1) {
                "failed"
            } else if since < documented {
                "docifying"
            } else {
                "ready"
            }
        }
    };
    json(StatusCode::OK, format!(r#"{{"id":"{id}","status":"{state}"}}"#))
}

async fn remove(Ctx(st): Ctx<Shared>, Path(id): Path<String>) -> Response {
    let mut s = st.lock().expect("demo state");
    if s.recordings.remove(&id).is_some() {
        s.deleted += 1;
        StatusCode::NO_CONTENT.into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

/// What the pipeline has seen, for tests: recordings deleted and parts stored.
async fn stats(Ctx(st): Ctx<Shared>) -> Response {
    let s = st.lock().expect("demo state");
    json(
        StatusCode::OK,
        format!(
            r#"{{"deleted":{},"parts_ok":{},"bytes":{},"open":{}}}"#,
            s.deleted,
            s.parts_ok,
            s.bytes,
            s.recordings.len()
        ),
    )
}
