//! Demo routes for the `assistant` kind: streaming LLM responses in every wire format the
//! probe reads (docs/demo.md), with injected first-token delay, inter-token gaps and faults. Route:
//! `/llm/{format}?first=MS&gap=MS&tokens=N` plus optional `reasoning=MS` (thinking output
//! at MS, before the answer), `ping=1` (`: ping` comments), `crlf=1`, `error_after=K`,
//! `malformed=1`, `stall_after=K`, `no_content=1`, `status=429`, `nonstream=1` (one JSON
//! answer, as a server that ignores `stream: true`), `tool=1` (openai-chat: a tool call whose
//! name chunk comes at 0 ms and whose arguments are the tokens).

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde::Deserialize;

/// The assistant kind's routes.
pub fn routes() -> Router {
    Router::new().route("/llm/{format}", any(llm))
}

#[derive(Deserialize)]
pub struct LlmParams {
    #[serde(default = "default_first")]
    first: u64,
    #[serde(default = "default_gap")]
    gap: u64,
    #[serde(default = "default_tokens")]
    tokens: u32,
    reasoning: Option<u64>,
    #[serde(default)]
    ping: u8,
    #[serde(default)]
    crlf: u8,
    error_after: Option<u32>,
    #[serde(default)]
    malformed: u8,
    stall_after: Option<u32>,
    #[serde(default)]
    no_content: u8,
    status: Option<u16>,
    #[serde(default)]
    nonstream: u8,
    #[serde(default)]
    tool: u8,
}

fn default_first() -> u64 {
    200
}
fn default_gap() -> u64 {
    20
}
fn default_tokens() -> u32 {
    10
}

/// One piece of the response body, due `at` ms after the response starts.
struct Step {
    at: u64,
    text: String,
}

struct Script {
    steps: Vec<Step>,
    crlf: bool,
    /// Stop sending (but keep the connection open) after the steps.
    stall: bool,
}

impl Script {
    fn event(&mut self, at: u64, name: Option<&str>, data: &str) {
        let nl = if self.crlf { "\r\n" } else { "\n" };
        let mut text = String::new();
        if let Some(n) = name {
            text.push_str(&format!("event: {n}{nl}"));
        }
        text.push_str(&format!("data: {data}{nl}{nl}"));
        self.steps.push(Step { at, text });
    }

    fn raw(&mut self, at: u64, text: String) {
        self.steps.push(Step { at, text });
    }
}

pub async fn llm(Path(format): Path<String>, Query(p): Query<LlmParams>) -> Response {
    if let Some(code) = p.status.filter(|c| *c != 200) {
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
        let mut resp = (status, r#"{"error":{"message":"injected"}}"#).into_response();
        if code == 429 {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
        }
        return resp;
    }
    if p.nonstream == 1 {
        let body = match format.as_str() {
            "openai-responses" => r#"{"id":"r1","object":"response","status":"completed","output":[]}"#,
            "anthropic-messages" => {
                r#"{"id":"m1","type":"message","role":"assistant","content":[{"type":"text","text":"hi"}]}"#
            }
            _ => {
                r#"{"id":"c1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"}}]}"#
            }
        };
        return ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    }
    let mut s = Script {
        steps: Vec::new(),
        crlf: p.crlf == 1,
        stall: false,
    };
    // When content token i is due, and whether the script stops there.
    let token_at = |i: u32| p.first.saturating_add(u64::from(i).saturating_mul(p.gap));
    // Bounded so a typo cannot make the target script millions of events.
    let content_tokens = if p.no_content == 1 { 0 } else { p.tokens.min(100_000) };
    let cut = p.error_after.or(p.stall_after).unwrap_or(u32::MAX).min(content_tokens);
    if p.ping == 1 {
        s.raw(
            p.first / 2,
            if s.crlf {
                ": ping\r\n\r\n".into()
            } else {
                ": ping\n\n".into()
            },
        );
    }
    let ct = match format.as_str() {
        "openai-chat" => {
            s.event(0, None, r#"{"id":"c1","object":"chat.completion.chunk","model":"demo-model","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#);
            if let Some(r) = p.reasoning {
                s.event(
                    r,
                    None,
                    r#"{"choices":[{"index":0,"delta":{"content":null,"reasoning_content":"thinking"}}]}"#,
                );
            }
            if p.tool == 1 {
                s.event(0, None, r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"lookup","arguments":""}}]},"finish_reason":null}]}"#);
            }
            for i in 0..cut {
                let data = if i == 0 && p.malformed == 1 {
                    r#"{"choices":[{"index":0,"delta":{"content":"tok"#.to_string()
                } else if p.tool == 1 {
                    format!(
                        r#"{{"choices":[{{"index":0,"delta":{{"tool_calls":[{{"index":0,"function":{{"arguments":"a{i}"}}}}]}},"finish_reason":null}}]}}"#
                    )
                } else {
                    format!(r#"{{"choices":[{{"index":0,"delta":{{"content":"tok{i} "}},"finish_reason":null}}]}}"#)
                };
                s.event(token_at(i), None, &data);
            }
            let end = token_at(cut);
            if p.error_after.is_some() {
                s.event(end, None, r#"{"error":{"message":"The server had an error while processing your request.","type":"server_error"}}"#);
            } else if p.stall_after.is_none() {
                s.event(
                    end,
                    None,
                    r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
                );
                let usage = format!(
                    r#"{{"choices":[],"usage":{{"prompt_tokens":12,"completion_tokens":{content_tokens},"total_tokens":{}}}}}"#,
                    12 + content_tokens
                );
                s.event(end, None, &usage);
                s.event(end, None, "[DONE]");
            }
            "text/event-stream"
        }
        "openai-responses" => {
            s.event(
                0,
                Some("response.created"),
                r#"{"type":"response.created","response":{"id":"r1","status":"in_progress"}}"#,
            );
            if let Some(r) = p.reasoning {
                s.event(
                    r,
                    Some("response.reasoning_summary_text.delta"),
                    r#"{"type":"response.reasoning_summary_text.delta","delta":"thinking"}"#,
                );
            }
            for i in 0..cut {
                let data = if i == 0 && p.malformed == 1 {
                    r#"{"type":"response.output_text.delta","delta":"#.to_string()
                } else {
                    format!(
                        r#"{{"type":"response.output_text.delta","output_index":0,"content_index":0,"delta":"tok{i} "}}"#
                    )
                };
                s.event(token_at(i), Some("response.output_text.delta"), &data);
            }
            let end = token_at(cut);
            if p.error_after.is_some() {
                s.event(end, Some("response.failed"), r#"{"type":"response.failed","response":{"status":"failed","error":{"code":"server_error","message":"injected failure"}}}"#);
            } else if p.stall_after.is_none() {
                let done = format!(
                    r#"{{"type":"response.completed","response":{{"id":"r1","status":"completed","usage":{{"input_tokens":12,"output_tokens":{content_tokens},"total_tokens":{}}}}}}}"#,
                    12 + content_tokens
                );
                s.event(end, Some("response.completed"), &done);
            }
            "text/event-stream"
        }
        "anthropic-messages" => {
            s.event(0, Some("message_start"), r#"{"type":"message_start","message":{"id":"m1","type":"message","role":"assistant","model":"demo-model","content":[],"usage":{"input_tokens":12,"output_tokens":1}}}"#);
            s.event(0, Some("ping"), r#"{"type": "ping"}"#);
            let mut index = 0;
            if let Some(r) = p.reasoning {
                s.event(
                    r,
                    Some("content_block_start"),
                    r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}"#,
                );
                s.event(r, Some("content_block_delta"), r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"thinking"}}"#);
                s.event(
                    r,
                    Some("content_block_stop"),
                    r#"{"type":"content_block_stop","index":0}"#,
                );
                index = 1;
            }
            let start = format!(
                r#"{{"type":"content_block_start","index":{index},"content_block":{{"type":"text","text":""}}}}"#
            );
            s.event(
                p.reasoning.unwrap_or(0).min(p.first),
                Some("content_block_start"),
                &start,
            );
            for i in 0..cut {
                let data = if i == 0 && p.malformed == 1 {
                    r#"{"type":"content_block_delta","delta":{"#.to_string()
                } else {
                    format!(
                        r#"{{"type":"content_block_delta","index":{index},"delta":{{"type":"text_delta","text":"tok{i} "}}}}"#
                    )
                };
                s.event(token_at(i), Some("content_block_delta"), &data);
            }
            let end = token_at(cut);
            if p.error_after.is_some() {
                s.event(
                    end,
                    Some("error"),
                    r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
                );
            } else if p.stall_after.is_none() {
                s.event(
                    end,
                    Some("content_block_stop"),
                    &format!(r#"{{"type":"content_block_stop","index":{index}}}"#),
                );
                let delta = format!(
                    r#"{{"type":"message_delta","delta":{{"stop_reason":"end_turn","stop_sequence":null}},"usage":{{"output_tokens":{content_tokens}}}}}"#
                );
                s.event(end, Some("message_delta"), &delta);
                s.event(end, Some("message_stop"), r#"{"type":"message_stop"}"#);
            }
            "text/event-stream"
        }
        "sse" => {
            for i in 0..cut {
                s.event(token_at(i), None, &format!("tok{i}"));
            }
            "text/event-stream"
        }
        "chunked" => {
            for i in 0..cut {
                s.raw(token_at(i), format!("tok{i} "));
            }
            "text/plain"
        }
        _ => return (StatusCode::NOT_FOUND, "unknown format").into_response(),
    };
    s.stall = p.stall_after.is_some();
    s.steps.sort_by_key(|st| st.at);
    stream(s, ct)
}

fn stream(script: Script, content_type: &'static str) -> Response {
    let start = tokio::time::Instant::now();
    let stall = script.stall;
    let steps = script.steps.into_iter();
    let body = futures_util::stream::unfold((steps, stall), move |(mut steps, stall)| async move {
        match steps.next() {
            Some(step) => {
                // A day at most: `first`/`gap` come from the query string.
                tokio::time::sleep_until(start + Duration::from_millis(step.at.min(86_400_000))).await;
                Some((Ok::<_, Infallible>(Bytes::from(step.text)), (steps, stall)))
            }
            None if stall => {
                std::future::pending::<()>().await;
                None
            }
            None => None,
        }
    });
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(body),
    )
        .into_response()
}
