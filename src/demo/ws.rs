//! Demo routes for the `websocket` kind: `/ws`, a realtime endpoint with injectable
//! delays and faults (docs/demo.md). The upgrade is answered here and the socket handed to
//! tokio-tungstenite, so control frames can be delayed or dropped on purpose.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Bytes, Message};

/// The websocket kind's routes.
pub fn routes() -> Router {
    Router::new().route("/ws", any(ws))
}

#[derive(Deserialize, Clone, Copy, Default)]
struct WsParams {
    /// Hold each pong this many ms.
    #[serde(default)]
    pong_delay: u64,
    /// Drop every other pong (answer it with a pong of another payload).
    #[serde(default)]
    drop_pongs: u8,
    /// Echo a message back after this many ms.
    #[serde(default)]
    reply_delay: u64,
    /// Confirm `{"type":"subscribe"}` after this many ms.
    #[serde(default)]
    subscribe_delay: u64,
    /// After a subscription, push `{"type":"order"}` this many ms later.
    push_after: Option<u64>,
    /// Close with this code after `close_after` messages (at once by default).
    close: Option<u16>,
    #[serde(default)]
    close_after: u32,
    /// Send one message of this many bytes right after the upgrade.
    big: Option<usize>,
    /// Refuse the upgrade with this status.
    refuse: Option<u16>,
}

/// Largest injected message: the demo target is not a memory exhauster.
const MAX_BIG: usize = 64 * 1024 * 1024;

async fn ws(Query(p): Query<WsParams>, mut req: Request) -> Response {
    if let Some(code) = p.refuse {
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::FORBIDDEN);
        return (status, "upgrade refused (injected)").into_response();
    }
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned() else {
        return (StatusCode::BAD_REQUEST, "not a websocket upgrade").into_response();
    };
    let protocol = req
        .headers()
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(|v| v.trim().to_string());
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            let config = WebSocketConfig::default().max_message_size(Some(MAX_BIG + 1024));
            let socket = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
            session(socket, p).await;
        }
    });
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    if let Ok(v) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    if let Some(v) = protocol.and_then(|p| HeaderValue::from_str(&p).ok()) {
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, v);
    }
    resp
}

async fn session<S>(mut ws: WebSocketStream<S>, p: WsParams)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let close = |code: u16| {
        Message::Close(Some(CloseFrame {
            code: CloseCode::from(code),
            reason: "injected".into(),
        }))
    };
    if let Some(n) = p.big {
        let _ = ws.send(Message::text("x".repeat(n.min(MAX_BIG)))).await;
    }
    if let (Some(code), 0) = (p.close, p.close_after) {
        let _ = ws.send(close(code)).await;
        return;
    }
    let (mut pings, mut messages) = (0u64, 0u32);
    let mut push: Option<(Instant, String)> = None;
    let ms = Duration::from_millis;
    // Injected delays use the precise timer: Tokio's rounds up to the next millisecond,
    // which would be charged to whatever measures this target.
    let delay = |d: u64| async move {
        if d > 0 {
            crate::precise_timer::sleep_until(std::time::Instant::now() + Duration::from_millis(d)).await;
        }
    };
    loop {
        let msg = tokio::select! {
            m = ws.next() => m,
            () = async { tokio::time::sleep_until(push.as_ref().expect("guarded").0).await }, if push.is_some() => {
                let (_, topic) = push.take().expect("guarded");
                let _ = ws.send(Message::text(format!(r#"{{"type":"order","topic":{topic:?},"id":1}}"#))).await;
                continue;
            }
        };
        let Some(Ok(msg)) = msg else { return };
        match msg {
            Message::Ping(_) => {
                pings += 1;
                if p.drop_pongs == 1 && pings % 2 == 0 {
                    // Replaces the pong tungstenite queued for this ping.
                    let _ = ws.send(Message::Pong(Bytes::from_static(b"dropped"))).await;
                } else {
                    delay(p.pong_delay).await;
                    let _ = ws.flush().await;
                }
            }
            Message::Text(text) => {
                messages += 1;
                let json: Option<serde_json::Value> = serde_json::from_str(text.as_str()).ok();
                let kind = json.as_ref().and_then(|j| j.get("type")).and_then(|t| t.as_str());
                if kind == Some("subscribe") {
                    let topic = json
                        .as_ref()
                        .and_then(|j| j.get("topic"))
                        .and_then(|t| t.as_str())
                        .unwrap_or("default")
                        .to_string();
                    delay(p.subscribe_delay).await;
                    let reply = format!(r#"{{"type":"subscribed","topic":{topic:?}}}"#);
                    if ws.send(Message::text(reply)).await.is_err() {
                        return;
                    }
                    if let Some(after) = p.push_after {
                        push = Some((Instant::now() + ms(after), topic));
                    }
                } else {
                    delay(p.reply_delay).await;
                    if ws.send(Message::Text(text)).await.is_err() {
                        return;
                    }
                }
                if let Some(code) = p.close
                    && messages >= p.close_after
                {
                    let _ = ws.send(close(code)).await;
                    return;
                }
            }
            Message::Close(_) => {
                let _ = ws.close(None).await;
                return;
            }
            _ => {}
        }
    }
}
