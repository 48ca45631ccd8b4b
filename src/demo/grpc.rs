//! Demo route for the `grpc` kind: the standard health service over h2c on the demo port.
//! Service "" and "ok" are SERVING, "down" NOT_SERVING, "delay/MS" SERVING after MS
//! milliseconds (at most 10 s); any other name is NOT_FOUND, as the reference server says.

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures_util::stream;
use hyper::body::Frame;
use prost::Message as _;

pub fn routes() -> Router {
    Router::new().route("/grpc.health.v1.Health/Check", post(check))
}

#[derive(Clone, PartialEq, prost::Message)]
struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    service: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct HealthCheckResponse {
    #[prost(int32, tag = "1")]
    status: i32,
}

/// The service name of the one uncompressed gRPC message in `body`.
fn service_of(body: &[u8]) -> Option<String> {
    let [0, a, b, c, d] = *body.get(..5)? else {
        return None;
    };
    let message = body.get(5..)?;
    let len = u32::from_be_bytes([a, b, c, d]) as usize;
    HealthCheckRequest::decode(message.get(..len)?).ok().map(|r| r.service)
}

async fn check(body: Bytes) -> Response {
    let Some(service) = service_of(&body) else {
        return answer(None, 13, "malformed request");
    };
    let status = match service.as_str() {
        "" | "ok" => 1,
        "down" => 2,
        s => match s.strip_prefix("delay/").and_then(|ms| ms.parse::<u64>().ok()) {
            Some(ms) => {
                tokio::time::sleep(Duration::from_millis(ms.min(10_000))).await;
                1
            }
            None => return answer(None, 5, "unknown service"),
        },
    };
    answer(Some(status), 0, "")
}

/// A gRPC answer: the HealthCheckResponse (when any) as one frame, then the trailers.
fn answer(status: Option<i32>, code: u8, message: &str) -> Response {
    let mut frames: Vec<Result<Frame<Bytes>, Infallible>> = Vec::new();
    if let Some(status) = status {
        let message = HealthCheckResponse { status }.encode_to_vec();
        let mut framed = vec![0];
        framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
        framed.extend_from_slice(&message);
        frames.push(Ok(Frame::data(Bytes::from(framed))));
    }
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from(u16::from(code)));
    if let Ok(v) = HeaderValue::from_str(message)
        && !message.is_empty()
    {
        trailers.insert("grpc-message", v);
    }
    frames.push(Ok(Frame::trailers(trailers)));
    let body = Body::new(http_body_util::StreamBody::new(stream::iter(frames)));
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/grpc")], body).into_response()
}
