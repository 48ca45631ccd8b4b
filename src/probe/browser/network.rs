//! The run's network as the browser saw it: every request of the tab, its frames and
//! workers, from DevTools `Network.*` events on the browser-level DevTools socket the run
//! already holds (session.rs). Unlike Resource Timing, DevTools reports the size of every
//! response, cross-origin or not, Timing-Allow-Origin or not, and which requests are still
//! in flight: what the settle waits on.
//!
//! Bounded: at most [`MAX_REQUESTS`] requests are kept (later ones are counted, unmeasured),
//! URLs are cut at [`MAX_URL`] bytes, and one DevTools message is read only up to the
//! socket's message cap (a page cannot make us hold more).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

pub const MAX_REQUESTS: usize = 5_000;
const MAX_URL: usize = 2_048;

/// One request as DevTools reported it. Times are DevTools' monotonic seconds.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub url: String,
    /// DevTools' resource type: Document, Script, Stylesheet, Image, Font, Media, XHR, ...
    pub resource_type: String,
    pub get: bool,
    pub status: u16,
    pub mime: String,
    /// Response header bytes (what was received when the response started).
    pub headers: f64,
    /// Every byte received for it: headers and encoded body (DevTools' encodedDataLength).
    pub transfer: f64,
    pub finished: bool,
    pub failed: bool,
    pub from_cache: bool,
    pub start: f64,
    pub end: Option<f64>,
}

impl Request {
    /// The encoded (compressed) body: what came after the headers.
    pub fn body(&self) -> f64 {
        (self.transfer - self.headers).max(0.0)
    }
}

/// What the watcher has seen since the last [`Log::reset`].
#[derive(Debug)]
pub struct Log {
    pub requests: Vec<Request>,
    open: HashMap<String, usize>,
    /// Requests beyond [`MAX_REQUESTS`]: they happened, their bytes are unknown.
    pub dropped: u64,
    /// Monotonic seconds ↔ wall-clock seconds, from the first request's event.
    pub clock: Option<(f64, f64)>,
    last_change: Instant,
    /// Why the event stream ended early, if it did: figures after that are unknown.
    pub broken: Option<String>,
}

impl Default for Log {
    fn default() -> Log {
        Log {
            requests: Vec::new(),
            open: HashMap::new(),
            dropped: 0,
            clock: None,
            last_change: Instant::now(),
            broken: None,
        }
    }
}

impl Log {
    /// Forgets everything: the measured load starts (a warm run's first load is not it).
    pub fn reset(&mut self) {
        let broken = self.broken.take();
        *self = Log {
            broken,
            ..Log::default()
        };
    }

    pub fn in_flight(&self) -> usize {
        self.open.len()
    }

    /// How long no request has been in flight (zero while one is).
    pub fn quiet_for(&self, now: Instant) -> Duration {
        if self.open.is_empty() {
            now.saturating_duration_since(self.last_change)
        } else {
            Duration::ZERO
        }
    }

    fn apply(&mut self, session: &str, method: &str, p: &Value) {
        let id = |p: &Value| format!("{session}:{}", p["requestId"].as_str().unwrap_or_default());
        match method {
            "Network.requestWillBeSent" => {
                let url = p["request"]["url"].as_str().unwrap_or_default();
                // data: and blob: never touch the network (Lighthouse leaves them out too).
                if url.starts_with("data:") || url.starts_with("blob:") {
                    return;
                }
                let key = id(p);
                let ts = p["timestamp"].as_f64().unwrap_or_default();
                if self.clock.is_none()
                    && let Some(wall) = p["wallTime"].as_f64()
                {
                    self.clock = Some((ts, wall));
                }
                // A redirect reuses the id: the hop before it ends here, with its own bytes.
                if let Some(&i) = self.open.get(&key)
                    && p.get("redirectResponse").is_some()
                {
                    let r = &mut self.requests[i];
                    let resp: Response = serde_json::from_value(p["redirectResponse"].clone()).unwrap_or_default();
                    r.status = resp.status as u16;
                    r.headers = resp.encoded_data_length;
                    r.transfer = resp.encoded_data_length;
                    r.finished = true;
                    r.end = Some(ts);
                    self.open.remove(&key);
                }
                self.last_change = Instant::now();
                if self.requests.len() >= MAX_REQUESTS {
                    self.dropped += 1;
                    return;
                }
                let mut url = url.to_string();
                if url.len() > MAX_URL {
                    let mut cut = MAX_URL;
                    while !url.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    url.truncate(cut);
                }
                self.requests.push(Request {
                    url,
                    resource_type: p["type"].as_str().unwrap_or("Other").chars().take(32).collect(),
                    get: p["request"]["method"].as_str() == Some("GET"),
                    start: ts,
                    ..Request::default()
                });
                self.open.insert(key, self.requests.len() - 1);
            }
            "Network.requestServedFromCache" => {
                if let Some(&i) = self.open.get(&id(p)) {
                    self.requests[i].from_cache = true;
                }
            }
            "Network.responseReceived" => {
                if let Some(&i) = self.open.get(&id(p)) {
                    let resp: Response = serde_json::from_value(p["response"].clone()).unwrap_or_default();
                    let r = &mut self.requests[i];
                    r.status = resp.status as u16;
                    r.mime = resp.mime_type.chars().take(100).collect();
                    r.headers = resp.encoded_data_length;
                    r.from_cache |= resp.from_disk_cache || resp.from_prefetch_cache || resp.from_service_worker;
                    if let Some(t) = p["type"].as_str() {
                        r.resource_type = t.chars().take(32).collect();
                    }
                }
            }
            "Network.loadingFinished" | "Network.loadingFailed" => {
                if let Some(i) = self.open.remove(&id(p)) {
                    let r = &mut self.requests[i];
                    r.end = p["timestamp"].as_f64();
                    if method == "Network.loadingFinished" {
                        r.finished = true;
                        r.transfer = p["encodedDataLength"].as_f64().unwrap_or_default().max(r.headers);
                    } else {
                        r.failed = true;
                    }
                    self.last_change = Instant::now();
                }
            }
            _ => {}
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Response {
    status: f64,
    mime_type: String,
    encoded_data_length: f64,
    from_disk_cache: bool,
    from_prefetch_cache: bool,
    from_service_worker: bool,
}

/// `host` is first party: equal to an entry, or under a "*.domain" entry.
pub fn first_party_host(host: &str, first_party: &[String]) -> bool {
    let host = host.to_ascii_lowercase();
    first_party.iter().any(|p| match p.strip_prefix("*.") {
        Some(domain) => {
            host.len() > domain.len() + 1 && host.ends_with(domain) && host[..host.len() - domain.len()].ends_with('.')
        }
        None => host == *p,
    })
}

/// Which of a run's requests carry its `traceparent`: set once a run, before the page
/// loads. DevTools' Fetch domain holds each request until this watch lets it go on, with
/// the header added where `hosts` says (every host when `None`).
#[derive(Clone, Debug)]
pub struct TraceRule {
    pub traceparent: String,
    pub hosts: Option<Vec<String>>,
}

impl TraceRule {
    fn applies(&self, url: &str) -> bool {
        let Ok(u) = url::Url::parse(url) else { return false };
        if !matches!(u.scheme(), "http" | "https") {
            return false;
        }
        match &self.hosts {
            None => true,
            Some(hosts) => first_party_host(u.host_str().unwrap_or_default(), hosts),
        }
    }
}

type TraceRequest = (TraceRule, tokio::sync::oneshot::Sender<()>);

/// Reads a tab's DevTools events into its [`Log`] until dropped (which also drops the
/// socket, and with it the run's browser context).
pub struct Watch {
    pub log: Arc<Mutex<Log>>,
    task: tokio::task::JoinHandle<()>,
    trace: tokio::sync::mpsc::UnboundedSender<TraceRequest>,
}

/// Turns on `traceparent` for the run's requests (see [`TraceRule`]).
#[derive(Clone)]
pub struct Tracer(tokio::sync::mpsc::UnboundedSender<TraceRequest>);

impl Tracer {
    /// Returns once DevTools holds the tab's requests (or after 2 s: then requests go out
    /// without the header, never held).
    pub async fn start(&self, rule: TraceRule) -> bool {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.0.send((rule, tx)).is_err() {
            return false;
        }
        matches!(tokio::time::timeout(Duration::from_secs(2), rx).await, Ok(Ok(())))
    }
}

/// The `Fetch.continueRequest` for a held request: with `traceparent` added (its own
/// headers kept) when the rule applies, else unchanged.
fn continue_request(id: u64, session: &str, params: &Value, rule: Option<&TraceRule>) -> String {
    let request_id = params["requestId"].clone();
    let url = params["request"]["url"].as_str().unwrap_or_default();
    let mut p = json!({"requestId": request_id});
    if let Some(rule) = rule.filter(|r| r.applies(url)) {
        let mut headers: Vec<Value> = params["request"]["headers"]
            .as_object()
            .map(|h| {
                h.iter()
                    .filter(|(k, _)| !k.eq_ignore_ascii_case("traceparent"))
                    .map(|(k, v)| json!({"name": k, "value": v.as_str().unwrap_or_default()}))
                    .collect()
            })
            .unwrap_or_default();
        headers.push(json!({"name": "traceparent", "value": rule.traceparent}));
        p["headers"] = Value::Array(headers);
    }
    json!({"id": id, "sessionId": session, "method": "Fetch.continueRequest", "params": p}).to_string()
}

fn fetch_enable(id: u64, session: &str) -> String {
    json!({"id": id, "sessionId": session, "method": "Fetch.enable",
           "params": {"patterns": [{"urlPattern": "*", "requestStage": "Request"}]}})
    .to_string()
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `Network.enable` for a DevTools session, and auto-attach to its frames and workers.
fn enable(session: &str, first_id: u64) -> [String; 2] {
    [
        json!({"id": first_id, "sessionId": session, "method": "Network.enable", "params": {"maxPostDataSize": 0}})
            .to_string(),
        json!({"id": first_id + 1, "sessionId": session, "method": "Target.setAutoAttach",
               "params": {"autoAttach": true, "waitForDebuggerOnStart": false, "flatten": true}})
        .to_string(),
    ]
}

impl Watch {
    /// Starts watching the page session `session` (attached with `flatten`) on `ws`.
    pub async fn start(
        mut ws: WebSocketStream<tokio::net::TcpStream>,
        session: String,
    ) -> Result<Watch, tokio_tungstenite::tungstenite::Error> {
        for m in enable(&session, 1_000) {
            ws.send(Message::text(m)).await?;
        }
        let log = Arc::new(Mutex::new(Log::default()));
        let shared = log.clone();
        let (trace_tx, mut trace_rx) = tokio::sync::mpsc::unbounded_channel::<TraceRequest>();
        let task = tokio::spawn(async move {
            let mut next_id = 2_000u64;
            let mut sessions = vec![session.clone()];
            let mut rule: Option<TraceRule> = None;
            // The id of the page session's Fetch.enable, answered to the tracer once done.
            let mut enabling: Option<(u64, tokio::sync::oneshot::Sender<()>)> = None;
            let why = loop {
                let next = tokio::select! {
                    m = ws.next() => m,
                    Some((r, ack)) = trace_rx.recv() => {
                        rule = Some(r);
                        let mut failed = false;
                        let mut ack = Some(ack);
                        for s in &sessions {
                            failed |= ws.send(Message::text(fetch_enable(next_id, s))).await.is_err();
                            if *s == session && let Some(ack) = ack.take() {
                                enabling = Some((next_id, ack));
                            }
                            next_id += 1;
                        }
                        if failed {
                            break "DevTools socket closed".to_string();
                        }
                        continue;
                    }
                };
                let msg = match next {
                    None => break "DevTools socket closed".to_string(),
                    Some(Err(e)) => break format!("DevTools socket: {e}"),
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(_)) => continue,
                };
                let Ok(v) = serde_json::from_str::<Value>(msg.as_str()) else {
                    continue;
                };
                if let (Some(id), Some((want, _))) = (v["id"].as_u64(), &enabling)
                    && id == *want
                    && let Some((_, ack)) = enabling.take()
                {
                    let _ = ack.send(());
                }
                let Some(method) = v["method"].as_str() else { continue };
                let from = v["sessionId"].as_str().unwrap_or_default();
                if method == "Fetch.requestPaused" {
                    // Held until we answer: answered at once, whatever the rule.
                    let m = continue_request(next_id, from, &v["params"], rule.as_ref());
                    next_id += 1;
                    if ws.send(Message::text(m)).await.is_err() {
                        break "DevTools socket closed".to_string();
                    }
                    continue;
                }
                if method == "Target.attachedToTarget" {
                    // A frame in another process, or a worker: its requests are the page's too.
                    if let Some(child) = v["params"]["sessionId"].as_str() {
                        let mut failed = false;
                        for m in enable(child, next_id) {
                            failed |= ws.send(Message::text(m)).await.is_err();
                        }
                        next_id += 2;
                        if rule.is_some() {
                            failed |= ws.send(Message::text(fetch_enable(next_id, child))).await.is_err();
                            next_id += 1;
                        }
                        if sessions.len() < 256 {
                            sessions.push(child.to_string());
                        }
                        if failed {
                            break "DevTools socket closed".to_string();
                        }
                    }
                    continue;
                }
                if method.starts_with("Network.") {
                    shared.lock().expect("network log").apply(from, method, &v["params"]);
                }
            };
            shared.lock().expect("network log").broken = Some(why);
        });
        Ok(Watch {
            log,
            task,
            trace: trace_tx,
        })
    }

    pub fn tracer(&self) -> Tracer {
        Tracer(self.trace.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(log: &mut Log, method: &str, p: Value) {
        log.apply("s", method, &p);
    }

    #[test]
    fn bytes_redirects_and_in_flight() {
        let mut log = Log::default();
        event(
            &mut log,
            "Network.requestWillBeSent",
            json!({"requestId": "1", "request": {"url": "http://a/", "method": "GET"}, "timestamp": 1.0, "wallTime": 1000.0, "type": "Document"}),
        );
        assert_eq!(log.in_flight(), 1);
        assert_eq!(log.quiet_for(Instant::now()), Duration::ZERO);
        event(
            &mut log,
            "Network.requestWillBeSent",
            json!({"requestId": "1", "request": {"url": "http://a/home", "method": "GET"}, "timestamp": 1.1, "type": "Document",
                   "redirectResponse": {"status": 302, "encodedDataLength": 120}}),
        );
        event(
            &mut log,
            "Network.responseReceived",
            json!({"requestId": "1", "type": "Document", "response": {"status": 200, "mimeType": "text/html", "encodedDataLength": 150}}),
        );
        event(
            &mut log,
            "Network.loadingFinished",
            json!({"requestId": "1", "timestamp": 1.3, "encodedDataLength": 1150}),
        );
        event(
            &mut log,
            "Network.requestWillBeSent",
            json!({"requestId": "2", "request": {"url": "data:image/png;base64,AAAA", "method": "GET"}, "timestamp": 1.2}),
        );
        assert_eq!(log.in_flight(), 0);
        assert_eq!(log.requests.len(), 2);
        assert_eq!((log.requests[0].status, log.requests[0].transfer), (302, 120.0));
        let home = &log.requests[1];
        assert_eq!((home.status, home.transfer, home.body()), (200, 1150.0, 1000.0));
        assert_eq!(log.clock, Some((1.0, 1000.0)));
        log.reset();
        assert!(log.requests.is_empty());
    }

    #[test]
    fn requests_past_the_cap_are_counted_not_kept() {
        let mut log = Log::default();
        for i in 0..MAX_REQUESTS + 10 {
            event(
                &mut log,
                "Network.requestWillBeSent",
                json!({"requestId": i.to_string(), "request": {"url": format!("http://a/{}", "x".repeat(5000)), "method": "GET"}, "timestamp": 1.0}),
            );
        }
        assert_eq!(log.requests.len(), MAX_REQUESTS);
        assert_eq!(log.dropped, 10);
        assert!(log.requests[0].url.len() <= MAX_URL);
    }
}
