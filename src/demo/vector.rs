//! Demo routes for the `vector` kind: a Qdrant-shaped search endpoint over 1,000 fixed
//! points, whose "approximate" answers miss on purpose, so the shipped config shows recall
//! below 1 with no database. Routes and parameters: docs/demo.md.

use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::{Value, json};

const POINTS: usize = 1000;
pub const DIMENSION: usize = 32;

pub fn routes() -> Router {
    Router::new().route("/collections/{name}/points/query", post(query))
}

fn points() -> &'static Vec<Vec<f32>> {
    static P: OnceLock<Vec<Vec<f32>>> = OnceLock::new();
    P.get_or_init(|| {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        (0..POINTS)
            .map(|_| {
                (0..DIMENSION)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        ((x >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
                    })
                    .collect()
            })
            .collect()
    })
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Params {
    /// Of the k approximate results, this many are swapped for far points.
    miss: usize,
    /// Milliseconds before answering.
    delay: u64,
}

async fn query(Path(_name): Path<String>, Query(p): Query<Params>, body: Bytes) -> Response {
    tokio::time::sleep(Duration::from_millis(p.delay.min(60_000))).await;
    let json_answer = |code: StatusCode, v: Value| {
        (code, [(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response()
    };
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return json_answer(
            StatusCode::BAD_REQUEST,
            json!({"status": {"error": "body is not JSON"}}),
        );
    };
    let q: Vec<f32> = match serde_json::from_value(req["query"].clone()) {
        Ok(q) => q,
        Err(_) => {
            return json_answer(
                StatusCode::BAD_REQUEST,
                json!({"status": {"error": "query is not a vector"}}),
            );
        }
    };
    if q.len() != DIMENSION {
        return json_answer(
            StatusCode::BAD_REQUEST,
            json!({"status": {"error": format!("expected dimension {DIMENSION}, got {}", q.len())}}),
        );
    }
    let limit = req["limit"].as_u64().unwrap_or(10).clamp(1, POINTS as u64) as usize;
    let exact = req["params"]["exact"].as_bool().unwrap_or(false);
    // Cosine similarity: higher is closer, as Qdrant scores it.
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt().max(1e-12);
    let qn = norm(&q);
    let mut scored: Vec<(usize, f64)> = points()
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let dot: f64 = v.iter().zip(&q).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum();
            (i, dot / (norm(v) * qn))
        })
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut top: Vec<(usize, f64)> = scored[..limit].to_vec();
    if !exact {
        for (j, slot) in top.iter_mut().rev().take(p.miss.min(limit)).enumerate() {
            *slot = scored[POINTS - 1 - j];
        }
    }
    let hits: Vec<Value> = top.iter().map(|(i, s)| json!({"id": i, "score": s})).collect();
    json_answer(
        StatusCode::OK,
        json!({"result": {"points": hits}, "status": "ok", "time": 0.0}),
    )
}
