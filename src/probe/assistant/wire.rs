//! The wire formats an assistant stream may use, and what each event means for the
//! measurements ([`classify`]): visible output, reasoning, usage, the end, or an error.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::outcome::{ErrorType, ProbeError};

/// The stream's wire format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
pub enum Format {
    /// OpenAI chat.completions SSE.
    #[serde(rename = "openai-chat")]
    OpenAiChat,
    /// OpenAI Responses API events.
    #[serde(rename = "openai-responses")]
    OpenAiResponses,
    /// Anthropic Messages SSE.
    #[serde(rename = "anthropic-messages")]
    AnthropicMessages,
    /// Any SSE stream: the first non-empty `data` is the first token.
    #[serde(rename = "sse")]
    Sse,
    /// Any streamed body: the first non-empty bytes are the first token.
    #[serde(rename = "chunked")]
    Chunked,
}

impl Format {
    pub fn provider(self) -> Option<&'static str> {
        match self {
            Format::OpenAiChat | Format::OpenAiResponses => Some("openai"),
            Format::AnthropicMessages => Some("anthropic"),
            Format::Sse | Format::Chunked => None,
        }
    }

    /// The event that ends a well-formed stream, for formats that have one.
    pub fn terminal(self) -> Option<&'static str> {
        match self {
            Format::OpenAiChat => Some("data: [DONE]"),
            Format::OpenAiResponses => Some("response.completed"),
            Format::AnthropicMessages => Some("message_stop"),
            Format::Sse | Format::Chunked => None,
        }
    }
}

/// What one event means for the measurements.
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    /// Visible output (text, refusal, tool-call arguments).
    Content,
    /// Reasoning / thinking output.
    Reasoning,
    /// Token usage reported by the server (absent fields stay as they were).
    Usage { input: Option<u64>, output: Option<u64> },
    /// The stream's terminal event.
    Done,
    /// An error reported inside the stream.
    Error(String),
}

pub fn protocol_error(format: Format, data: &str, e: serde_json::Error) -> ProbeError {
    let snippet: String = data.chars().take(80).collect();
    ProbeError::new(
        ErrorType::ProtocolError,
        format!(
            "malformed {} event ({e}): {snippet}",
            crate::config::as_written(&format)
        ),
    )
}

pub fn non_empty_str(v: Option<&Value>) -> bool {
    v.and_then(Value::as_str).is_some_and(|s| !s.is_empty())
}

pub fn u64_at(v: &Value, path: &[&str]) -> Option<u64> {
    path.iter().try_fold(v, |v, k| v.get(k)).and_then(Value::as_u64)
}

pub fn error_message(v: &Value) -> String {
    v.get("message")
        .or_else(|| v.get("error").and_then(|e| e.get("message")))
        .and_then(Value::as_str)
        .unwrap_or("unspecified error")
        .to_string()
}

/// What one SSE event means, per wire format. Role-only chunks, empty or null content,
/// pings and usage-only chunks carry no `Content`.
pub fn classify(format: Format, event: &str, data: &str) -> Result<Vec<Signal>, ProbeError> {
    let mut out = Vec::new();
    match format {
        Format::Sse => {
            if !data.trim().is_empty() {
                out.push(Signal::Content);
            }
        }
        Format::Chunked => out.push(Signal::Content),
        Format::OpenAiChat => {
            if data.trim() == "[DONE]" {
                return Ok(vec![Signal::Done]);
            }
            let v: Value = serde_json::from_str(data).map_err(|e| protocol_error(format, data, e))?;
            if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
                return Ok(vec![Signal::Error(error_message(&serde_json::json!({ "error": err })))]);
            }
            if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
                out.push(Signal::Usage {
                    input: u64_at(u, &["prompt_tokens"]),
                    output: u64_at(u, &["completion_tokens"]),
                });
            }
            for choice in v.get("choices").and_then(Value::as_array).into_iter().flatten() {
                let Some(delta) = choice.get("delta") else { continue };
                if non_empty_str(delta.get("reasoning_content")) || non_empty_str(delta.get("reasoning")) {
                    out.push(Signal::Reasoning);
                }
                // A tool call's first chunk carries its name with `"arguments": ""`; the
                // first token is the first non-empty arguments, as for the other formats.
                let tools = delta.get("tool_calls").and_then(Value::as_array).is_some_and(|calls| {
                    calls
                        .iter()
                        .any(|c| non_empty_str(c.get("function").and_then(|f| f.get("arguments"))))
                });
                if non_empty_str(delta.get("content")) || non_empty_str(delta.get("refusal")) || tools {
                    out.push(Signal::Content);
                }
            }
        }
        Format::OpenAiResponses => {
            // LiteLLM and other OpenAI-compatible proxies end a Responses stream with the
            // chat format's `[DONE]` after `response.completed`; the openai SDK skips it.
            if data.trim() == "[DONE]" {
                return Ok(vec![Signal::Done]);
            }
            let v: Value = serde_json::from_str(data).map_err(|e| protocol_error(format, data, e))?;
            let kind = v.get("type").and_then(Value::as_str).unwrap_or(event);
            match kind {
                "response.output_text.delta" | "response.refusal.delta" | "response.function_call_arguments.delta"
                    if non_empty_str(v.get("delta")) =>
                {
                    out.push(Signal::Content)
                }
                "response.reasoning_text.delta" | "response.reasoning_summary_text.delta"
                    if non_empty_str(v.get("delta")) =>
                {
                    out.push(Signal::Reasoning)
                }
                "response.completed" | "response.incomplete" => {
                    let usage = v
                        .get("response")
                        .and_then(|r| r.get("usage"))
                        .cloned()
                        .unwrap_or_default();
                    out.push(Signal::Usage {
                        input: u64_at(&usage, &["input_tokens"]),
                        output: u64_at(&usage, &["output_tokens"]),
                    });
                    out.push(Signal::Done);
                }
                "response.failed" => {
                    let err = v
                        .get("response")
                        .and_then(|r| r.get("error"))
                        .cloned()
                        .unwrap_or_default();
                    out.push(Signal::Error(error_message(&err)));
                }
                "error" => out.push(Signal::Error(error_message(&v))),
                _ => {}
            }
        }
        Format::AnthropicMessages => {
            let v: Value = serde_json::from_str(data).map_err(|e| protocol_error(format, data, e))?;
            let kind = v.get("type").and_then(Value::as_str).unwrap_or(event);
            match kind {
                "message_start" => out.push(Signal::Usage {
                    input: u64_at(&v, &["message", "usage", "input_tokens"]),
                    output: None,
                }),
                "content_block_delta" => {
                    let delta = v.get("delta").cloned().unwrap_or_default();
                    match delta.get("type").and_then(Value::as_str) {
                        Some("text_delta") if non_empty_str(delta.get("text")) => out.push(Signal::Content),
                        Some("input_json_delta") if non_empty_str(delta.get("partial_json")) => {
                            out.push(Signal::Content)
                        }
                        Some("thinking_delta") if non_empty_str(delta.get("thinking")) => out.push(Signal::Reasoning),
                        _ => {}
                    }
                }
                // Cumulative: the last one is the total. Bridges (LiteLLM) send 0 input
                // tokens in `message_start` and the real count here, as the API may too.
                "message_delta" => out.push(Signal::Usage {
                    input: u64_at(&v, &["usage", "input_tokens"]),
                    output: u64_at(&v, &["usage", "output_tokens"]),
                }),
                "message_stop" => out.push(Signal::Done),
                "error" => out.push(Signal::Error(error_message(&v))),
                _ => {}
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::sse;
    use super::*;

    /// Runs raw stream bytes through the SSE parser, split into reads at `cuts`, and
    /// classifies every event.
    fn parse(format: Format, wire: &str, cuts: &[usize]) -> Vec<Result<Vec<Signal>, ErrorType>> {
        let mut pieces = Vec::new();
        let mut last = 0;
        for &c in cuts.iter().chain(std::iter::once(&wire.len())) {
            if c > last && c <= wire.len() {
                pieces.push(&wire.as_bytes()[last..c]);
                last = c;
            }
        }
        let mut decoder = sse::Decoder::new(1024 * 1024);
        let mut events = Vec::new();
        for p in pieces {
            decoder.feed(p, &mut events).expect("within max_event");
        }
        events
            .into_iter()
            .map(|e| classify(format, &e.event, &e.data).map_err(|e| e.kind))
            .collect()
    }

    const CHAT: &str = "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n\
: ping\n\n\
data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":null}}]}\n\n\
data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n\
data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"}}]}\n\n\
data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2}}\n\n\
data: [DONE]\n\n";

    fn chat_expected() -> Vec<Result<Vec<Signal>, ErrorType>> {
        vec![
            Ok(vec![]), // role-only, empty content
            Ok(vec![]), // null content
            Ok(vec![Signal::Content]),
            Ok(vec![Signal::Content]),
            Ok(vec![Signal::Usage {
                input: Some(9),
                output: Some(2),
            }]),
            Ok(vec![Signal::Done]),
        ]
    }

    #[test]
    fn openai_chat_at_every_split_point_and_with_crlf() {
        // One read, several events per read.
        assert_eq!(parse(Format::OpenAiChat, CHAT, &[]), chat_expected());
        // Every possible split into two reads, and byte-by-byte.
        for cut in 1..CHAT.len() {
            assert_eq!(parse(Format::OpenAiChat, CHAT, &[cut]), chat_expected(), "cut at {cut}");
        }
        let every: Vec<usize> = (1..CHAT.len()).collect();
        assert_eq!(parse(Format::OpenAiChat, CHAT, &every), chat_expected());
        let crlf = CHAT.replace('\n', "\r\n");
        for cut in 1..crlf.len() {
            assert_eq!(
                parse(Format::OpenAiChat, &crlf, &[cut]),
                chat_expected(),
                "crlf cut at {cut}"
            );
        }
    }

    #[test]
    fn openai_chat_reasoning_tools_errors_and_malformed() {
        let r = classify(
            Format::OpenAiChat,
            "message",
            r#"{"choices":[{"delta":{"content":null,"reasoning_content":"hmm"}}]}"#,
        );
        assert_eq!(r.unwrap(), vec![Signal::Reasoning]);
        let r = classify(
            Format::OpenAiChat,
            "message",
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{"}}]}}]}"#,
        );
        assert_eq!(r.unwrap(), vec![Signal::Content]);
        // The name chunk (empty arguments) is not the first token.
        let r = classify(
            Format::OpenAiChat,
            "message",
            r#"{"choices":[{"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]}}]}"#,
        );
        assert_eq!(r.unwrap(), vec![]);
        let r = classify(Format::OpenAiChat, "message", r#"{"error":{"message":"overloaded"}}"#).unwrap();
        assert_eq!(r, vec![Signal::Error("overloaded".into())]);
        let e = classify(Format::OpenAiChat, "message", r#"{"choices":[{"delta":{"content":"x""#).unwrap_err();
        assert_eq!(e.kind, ErrorType::ProtocolError);
    }

    #[test]
    fn anthropic_events() {
        let wire = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n\
event: ping\ndata: {\"type\": \"ping\"}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"Let me\"}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n\
event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"input_tokens\":27,\"output_tokens\":15}}\n\n\
event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n\
event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
        let expected = vec![
            Ok(vec![Signal::Usage {
                input: Some(25),
                output: None,
            }]),
            Ok(vec![]),
            Ok(vec![Signal::Reasoning]),
            Ok(vec![Signal::Content]),
            Ok(vec![Signal::Usage {
                input: Some(27),
                output: Some(15),
            }]),
            Ok(vec![Signal::Error("Overloaded".into())]),
            Ok(vec![Signal::Done]),
        ];
        for cut in [0, 7, 20, 100, 150, 333] {
            assert_eq!(parse(Format::AnthropicMessages, wire, &[cut]), expected, "cut at {cut}");
        }
    }

    #[test]
    fn responses_events() {
        let wire = "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{}}\n\n\
event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"\"}\n\n\
event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Hi\"}\n\n\
event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":5,\"output_tokens\":7}}}\n\n";
        let got = parse(Format::OpenAiResponses, wire, &[33]);
        assert_eq!(
            got,
            vec![
                Ok(vec![]),
                Ok(vec![]),
                Ok(vec![Signal::Content]),
                Ok(vec![
                    Signal::Usage {
                        input: Some(5),
                        output: Some(7)
                    },
                    Signal::Done
                ]),
            ]
        );
        // A proxy's trailing `[DONE]` after `response.completed` is an end, not malformed.
        assert_eq!(
            classify(Format::OpenAiResponses, "", "[DONE]").unwrap(),
            vec![Signal::Done]
        );
        let failed = r#"{"type":"response.failed","response":{"error":{"code":"server_error","message":"boom"}}}"#;
        assert_eq!(
            classify(Format::OpenAiResponses, "response.failed", failed).unwrap(),
            vec![Signal::Error("boom".into())]
        );
    }

    #[test]
    fn generic_sse_counts_first_non_empty_data() {
        let wire = ": keepalive\n\nevent: status\ndata: \n\ndata: first\n\n";
        // The comment is no event; the empty-data event is one, but carries no output.
        assert_eq!(
            parse(Format::Sse, wire, &[3]),
            vec![Ok(vec![]), Ok(vec![Signal::Content])]
        );
    }
}
