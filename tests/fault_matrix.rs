//! The fault matrix: every probe kind against hostile targets (loopback only). One table
//! row per fault; for each row the runner asserts
//! - the run fails with the expected error type (or passes, where that is right),
//! - it ends within its timeout, and nothing panics,
//! - a healthy probe running beside it is fine and starts on time,
//! - no socket to the target and no task is left behind,
//! - no secret (bearer, secret header, URL password, query value) reaches the output,
//! - the run's allocation peak stays under its kind's documented bound (docs/operations.md
//!   "What one run can cost"), whatever the target sends: a counting allocator below.
//!
//! A new probe kind joins by adding rows: a server (or none) and its probe table. The
//! daemon's own listeners (RUM collector, /metrics, /-/reload) have a table of their own:
//! hostile clients instead of hostile servers, with the same checks plus peak memory.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::hostile::{self, Handler};
use common::*;
use sloprobe::outcome::{MAX_RETRY_AFTER, Outcome};

/// Counts live heap bytes and their peak for the whole test process: the run under test,
/// its healthy neighbour and the (small-buffered) hostile servers. A row resets the peak to
/// what is live when it starts, so its peak is what the row added.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call forwards to the system allocator unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The allocation a row may add, MiB: its kind's bound from docs/operations.md ("What one
/// run can cost"), which the target cannot move.
fn memory_bound_mib(name: &str) -> usize {
    match name.split(':').next().unwrap_or("") {
        // 16 MiB answer cap, its parse bounded to 262,144 JSON values.
        "vector/http" => 48,
        // 1 MiB per PostgreSQL message; k + 16 rows, 64 sampled vectors.
        "vector/pgvector" => 32,
        // 1 MiB per SSE line, 4 MiB per event.
        "assistant" => 24,
        // 1 MiB per message (frame), 1 MiB of unsent writes.
        "websocket" => 24,
        // DevTools: 16 MiB per message, 5,000 requests in the log.
        "browser" => 64,
        // 1 MiB of body kept, its JSON bounded to 65,536 values; parts streamed.
        "workflow" => 16,
        // http: 1 MiB of headers, the body streamed (max_body counted, not kept).
        _ => 16,
    }
}

const TOKEN: &str = "fm-bearer-7c1d";
const URL_PASSWORD: &str = hostile::ECHOED_SECRET;
const QUERY_SECRET: &str = "fm-query-5e2";
const TIMEOUT: f64 = 1.0;

enum Server {
    /// Nothing listens on the port.
    Nothing,
    /// A raw TCP server; `true` reads the request head before the handler runs.
    Raw(Handler, bool),
    /// The demo router over TLS with a certificate for `localhost` (expired when the
    /// row's name says so).
    Tls,
}

/// What a row's probe table is written from.
struct Ctx {
    /// `http://user:password@127.0.0.1:PORT` (or https://...@localhost:PORT for TLS rows).
    base: String,
    port: u16,
    /// PEM of the CA that signed a TLS row's certificate.
    ca_file: String,
    /// Port of a recorder server on another origin.
    recorder: u16,
}

struct Case {
    name: &'static str,
    server: Server,
    probe: fn(&Ctx) -> String,
    /// Error type, or "none" for a run that must pass.
    expect: &'static str,
    check: fn(&Outcome, &Ctx),
}

const SECRETS_BLOCK: &str =
    "[probe.request]\nbearer = \"env:FM_TOKEN\"\n[probe.request.headers]\nx-api-key = \"env:FM_TOKEN\"\n";

fn http(url: String, extra: &str) -> String {
    format!(
        "[[probe]]\nname = \"victim\"\nkind = \"http\"\nurl = \"{url}\"\nevery = \"30s\"\ntimeout = \"{TIMEOUT}s\"\n{extra}\n{}",
        SECRETS_BLOCK
    )
}

fn assistant(url: String, extra: &str) -> String {
    format!(
        "[[probe]]\nname = \"victim\"\nkind = \"assistant\"\nformat = \"openai-chat\"\nurl = \"{url}\"\nevery = \"30s\"\ntimeout = \"{TIMEOUT}s\"\nbody = '{{\"model\":\"m\",\"stream\":true}}'\n{extra}\n{}",
        SECRETS_BLOCK
    )
}

fn ws_probe(c: &Ctx) -> String {
    // Credentials in a ws:// URL are a config error (never sent); the query secret and
    // the secret headers still check redaction.
    let port = c.port;
    format!(
        "[[probe]]\nname = \"victim\"\nkind = \"websocket\"\nurl = \"ws://127.0.0.1:{port}/ws?k={QUERY_SECRET}\"\nevery = \"30s\"\ntimeout = \"{TIMEOUT}s\"\npings = 2\n[[probe.step]]\nsend = 'x'\nexpect = {{ regex = \"x\" }}\n{SECRETS_BLOCK}"
    )
}

/// Browser rows get a longer timeout: starting Chromium alone takes half a second.
fn browser_probe(c: &Ctx) -> String {
    format!(
        "[[probe]]\nname = \"victim\"\nkind = \"browser\"\nurl = \"{}/page?k={QUERY_SECRET}\"\nevery = \"1m\"\ntimeout = \"5s\"\nsettle = \"100ms\"\n[[probe.step]]\nset_cookie = {{ name = \"session\", value = \"env:FM_TOKEN\" }}\n",
        c.base
    )
}

/// A pgvector probe whose DSN (with the URL password) sits in a secret file.
fn pg_probe(c: &Ctx) -> String {
    let file = std::env::temp_dir().join(format!("sloprobe-fm-dsn-{}", c.port));
    std::fs::write(
        &file,
        format!("postgres://fmuser:{URL_PASSWORD}@127.0.0.1:{}/db", c.port),
    )
    .unwrap();
    format!(
        "[[probe]]\nname = \"victim\"\nkind = \"vector\"\ndsn = \"file:{}\"\ntable = \"items\"\ncolumn = \"embedding\"\nevery = \"30s\"\ntimeout = \"{TIMEOUT}s\"\n",
        file.display()
    )
}

fn vector_http_probe(c: &Ctx) -> String {
    format!(
        "[[probe]]\nname = \"victim\"\nkind = \"vector\"\nbackend = \"http\"\npreset = \"qdrant\"\nurl = \"{}/collections/docs/points/query\"\nquery_vectors = \"random\"\ndimension = 4\nevery = \"30s\"\ntimeout = \"{TIMEOUT}s\"\n{SECRETS_BLOCK}",
        c.base
    )
}

/// A workflow of one step `step` (its keys after name and url) at `path`, with a secret
/// header from a variable.
fn workflow_probe(c: &Ctx, path: &str, step: &str) -> String {
    format!(
        "[[probe]]\nname = \"victim\"\nkind = \"workflow\"\nevery = \"30s\"\ntimeout = \"{TIMEOUT}s\"\n[probe.vars]\ntoken = \"env:FM_TOKEN\"\n[[probe.step]]\nname = \"s\"\nurl = \"http://127.0.0.1:{}{path}\"\nheaders = {{ Authorization = \"Bearer ${{token}}\" }}\n{step}",
        c.port
    )
}

const POLL: &str = "[probe.step.poll]\ninterval = \"100ms\"\npointer = \"/status\"\nuntil = [\"ready\"]\n";

/// A probe of one of blackbox_exporter's kinds against the row's port: `keys` after the
/// shared ones (`{port}` is replaced).
fn plain_kind(c: &Ctx, kind: &str, keys: &str) -> String {
    format!(
        "[[probe]]\nname = \"victim\"\nkind = \"{kind}\"\nevery = \"30s\"\ntimeout = \"{TIMEOUT}s\"\n{}\n",
        keys.replace("{port}", &c.port.to_string())
    )
}

const WAIT_FOR_BANNER: &str = "target = \"127.0.0.1:{port}\"\n[[probe.query]]\nexpect = '^220 '\n";
const DNS_OVER_TCP: &str = "server = \"127.0.0.1:{port}\"\nquery_name = \"example.com\"\ntransport = \"tcp\"\n";

fn with_query(c: &Ctx, path: &str) -> String {
    format!("{}{path}?apikey={QUERY_SECRET}", c.base)
}

fn nothing(_: &Outcome, _: &Ctx) {}

fn retry_capped(o: &Outcome, _: &Ctx) {
    let d = o.retry_after.expect("a 429 with a usable Retry-After is kept");
    assert!(d <= MAX_RETRY_AFTER, "retry_after {d:?} over the cap");
}

fn no_retry(o: &Outcome, _: &Ctx) {
    assert!(
        o.retry_after.is_none(),
        "unusable Retry-After kept: {:?}",
        o.retry_after
    );
}

fn during_wait(o: &Outcome, _: &Ctx) {
    let msg = &o.error.as_ref().unwrap().message;
    assert!(msg.contains("during wait"), "{msg}");
}

fn during_transfer(o: &Outcome, _: &Ctx) {
    let msg = &o.error.as_ref().unwrap().message;
    assert!(msg.contains("during transfer"), "{msg}");
}

fn readable(o: &Outcome, _: &Ctx) {
    let msg = &o.error.as_ref().unwrap().message;
    for debug_dump in ["Query {", "query_type", "OtherError", "Some(", "{ "] {
        assert!(!msg.contains(debug_dump), "debug dump in message: {msg}");
    }
}

/// Target text in the error is one line of bounded length, with no terminal escape.
fn one_bounded_line(o: &Outcome, _: &Ctx) {
    let msg = &o.error.as_ref().unwrap().message;
    assert!(msg.chars().count() < 700, "{} characters", msg.chars().count());
    assert!(!msg.contains(['\n', '\r', '\x1b']), "{msg:?}");
}

fn credentials_dropped_cross_origin(o: &Outcome, c: &Ctx) {
    let seen = hostile::recorded(c.recorder).join("\n").to_ascii_lowercase();
    assert!(seen.contains("get /landing"), "the redirect was not followed: {seen:?}");
    assert!(!seen.contains(TOKEN), "credentials crossed origins: {seen}");
    assert!(!seen.contains("authorization"), "authorization crossed origins: {seen}");
    assert_eq!(m(o, "redirects"), 1.0);
}

fn credentials_kept_same_origin(_: &Outcome, c: &Ctx) {
    let seen = hostile::recorded(c.port).join("\n");
    assert!(
        seen.contains("/landed") && seen.contains(&format!("Bearer {TOKEN}")),
        "same-origin redirect lost its credentials: {seen}"
    );
}

fn credentials_kept_when_asked(_: &Outcome, c: &Ctx) {
    let seen = hostile::recorded(c.recorder).join("\n");
    assert!(
        seen.contains(TOKEN),
        "redirect_credentials = \"always\" dropped them: {seen}"
    );
}

fn ra(value: &str) -> &'static str {
    // Percent-encoded into the path the retry_after handler reads.
    Box::leak(format!("/ra/{}", urlencode(value)).into_boxed_str())
}

fn cases() -> Vec<Case> {
    use hostile::*;
    let mut rows = vec![
        Case {
            name: "refused",
            server: Server::Nothing,
            probe: |c| http(with_query(c, "/"), ""),
            expect: "connect_refused",
            check: nothing,
        },
        Case {
            name: "nxdomain",
            server: Server::Nothing,
            probe: |_| {
                http(
                    format!("http://u:{URL_PASSWORD}@no-such-host.invalid/?k={QUERY_SECRET}"),
                    "",
                )
            },
            expect: "dns_nxdomain",
            check: readable,
        },
        Case {
            name: "accept and stay silent",
            server: Server::Raw(silent, false),
            probe: |c| http(with_query(c, "/"), ""),
            expect: "timeout",
            check: during_wait,
        },
        Case {
            name: "read the request, never answer",
            server: Server::Raw(never_answer, true),
            probe: |c| http(with_query(c, "/"), ""),
            expect: "timeout",
            check: during_wait,
        },
        Case {
            name: "close at once",
            server: Server::Raw(close_at_once, true),
            probe: |c| http(with_query(c, "/"), ""),
            expect: "connection_closed",
            check: nothing,
        },
        Case {
            name: "hang mid-body",
            server: Server::Raw(hang_mid_body, true),
            probe: |c| http(with_query(c, "/"), ""),
            expect: "timeout",
            check: during_transfer,
        },
        Case {
            name: "endless body",
            server: Server::Raw(endless_body, true),
            probe: |c| {
                http(
                    with_query(c, "/"),
                    "[probe.expect]\nmax_body = \"1MiB\"\nbody_regex = \"never\"",
                )
            },
            expect: "body_too_large",
            check: nothing,
        },
        Case {
            name: "redirect loop",
            server: Server::Raw(redirect_loop, true),
            probe: |c| http(with_query(c, "/loop"), "follow_redirects = 5"),
            expect: "redirect_limit",
            check: |o, _| assert_eq!(m(o, "redirects"), 5.0),
        },
        Case {
            name: "cross-origin redirect with secrets",
            server: Server::Raw(redirector, true),
            probe: |c| http(format!("{}/xo/{}", c.base, c.recorder), "follow_redirects = 2"),
            expect: "none",
            check: credentials_dropped_cross_origin,
        },
        Case {
            name: "same-origin redirect keeps credentials",
            server: Server::Raw(redirector, true),
            probe: |c| http(format!("{}/same/x", c.base), "follow_redirects = 2"),
            expect: "none",
            check: credentials_kept_same_origin,
        },
        Case {
            name: "cross-origin redirect, credentials kept on request",
            server: Server::Raw(redirector, true),
            probe: |c| {
                http(
                    format!("{}/xo/{}", c.base, c.recorder),
                    "follow_redirects = 2\nredirect_credentials = \"always\"",
                )
            },
            expect: "none",
            check: credentials_kept_when_asked,
        },
        Case {
            name: "garbage instead of HTTP",
            server: Server::Raw(garbage, true),
            probe: |c| http(with_query(c, "/"), ""),
            expect: "protocol_error",
            check: nothing,
        },
        Case {
            name: "1 MiB response header",
            server: Server::Raw(oversize_headers, true),
            probe: |c| http(with_query(c, "/"), ""),
            expect: "protocol_error",
            check: nothing,
        },
        Case {
            name: "plain HTTP answering a TLS handshake",
            server: Server::Raw(plain_to_tls, false),
            probe: |c| http(with_query(c, "/").replace("http://", "https://"), ""),
            expect: "tls_handshake",
            check: readable,
        },
        Case {
            name: "self-signed (untrusted) certificate",
            server: Server::Tls,
            probe: |c| http(with_query(c, "/"), ""),
            expect: "tls_cert_invalid",
            check: readable,
        },
        Case {
            name: "expired certificate",
            server: Server::Tls,
            probe: |c| http(with_query(c, "/"), &format!("[probe.tls]\nca_file = \"{}\"", c.ca_file)),
            expect: "tls_cert_expired",
            check: readable,
        },
        Case {
            name: "certificate for another host",
            server: Server::Tls,
            probe: |c| {
                http(
                    with_query(c, "/").replace("@localhost:", "@127.0.0.1:"),
                    &format!("[probe.tls]\nca_file = \"{}\"", c.ca_file),
                )
            },
            expect: "tls_cert_invalid",
            check: readable,
        },
        // Assistant (streaming) rows.
        Case {
            name: "assistant: malformed SSE",
            server: Server::Raw(sse_malformed, true),
            probe: |c| assistant(with_query(c, "/"), ""),
            expect: "protocol_error",
            check: nothing,
        },
        Case {
            name: "assistant: one 200 MB SSE line",
            server: Server::Raw(sse_huge_line, true),
            probe: |c| assistant(with_query(c, "/"), ""),
            expect: "protocol_error",
            check: nothing,
        },
        Case {
            name: "assistant: 26 M data lines, never a blank line",
            server: Server::Raw(sse_many_lines, true),
            probe: |c| assistant(with_query(c, "/"), ""),
            expect: "protocol_error",
            check: nothing,
        },
        Case {
            name: "assistant: stream stalls",
            server: Server::Raw(sse_stalled, true),
            probe: |c| assistant(with_query(c, "/"), "stall_timeout = \"300ms\""),
            expect: "stream_stalled",
            check: |o, _| assert!(m(o, "ttft") < 0.3),
        },
        Case {
            name: "assistant: error event",
            server: Server::Raw(sse_error_event, true),
            probe: |c| assistant(with_query(c, "/"), ""),
            expect: "upstream_error",
            check: nothing,
        },
        Case {
            name: "assistant: 429 with Retry-After far beyond u64 seconds",
            server: Server::Raw(retry_after, true),
            probe: |c| assistant(format!("{}{}", c.base, ra("99999999999999999999999")), ""),
            expect: "rate_limited",
            check: retry_capped,
        },
        Case {
            name: "assistant: endless SSE of valid events",
            server: Server::Raw(sse_endless, true),
            probe: |c| assistant(with_query(c, "/"), "").replace("\"openai-chat\"", "\"sse\""),
            expect: "timeout",
            check: |o, _| {
                assert!(
                    o.details.iter().any(|(k, _)| *k == "samples_dropped"),
                    "{:?}",
                    o.details
                )
            },
        },
    ];
    // WebSocket rows.
    rows.extend([
        Case {
            name: "websocket: upgrade refused with 403",
            server: Server::Raw(ws_refused, true),
            probe: |c| ws_probe(c),
            expect: "http_status",
            check: |o, _| assert_eq!(o.label("http.response.status_code"), Some("403")),
        },
        Case {
            name: "websocket: garbage after the upgrade",
            server: Server::Raw(ws_garbage, true),
            probe: |c| ws_probe(c),
            expect: "protocol_error",
            check: nothing,
        },
        Case {
            name: "websocket: invalid UTF-8 text frame",
            server: Server::Raw(ws_bad_utf8, true),
            probe: |c| ws_probe(c),
            expect: "protocol_error",
            check: nothing,
        },
        Case {
            name: "websocket: accept and stay silent",
            server: Server::Raw(silent, false),
            probe: |c| ws_probe(c),
            expect: "timeout",
            check: nothing,
        },
        Case {
            name: "websocket: ping flood, pongs never read",
            server: Server::Raw(ws_ping_flood, true),
            probe: |c| ws_probe(c),
            expect: "timeout",
            check: nothing,
        },
        Case {
            name: "websocket: heartbeat flood, replies never read",
            server: Server::Raw(ws_heartbeat_flood, true),
            probe: |c| ws_probe(c) + "[[probe.keepalive]]\nwhen = { regex = \"^2$\" }\nreply = \"3\"\n",
            expect: "timeout",
            check: nothing,
        },
        Case {
            name: "websocket: refused",
            server: Server::Nothing,
            probe: |c| ws_probe(c),
            expect: "connect_refused",
            check: nothing,
        },
    ]);
    // Browser rows: Chromium's own network errors, classified.
    rows.extend([
        Case {
            name: "tcp: refused",
            server: Server::Nothing,
            probe: |c| plain_kind(c, "tcp", "target = \"127.0.0.1:{port}\""),
            expect: "connect_refused",
            check: nothing,
        },
        Case {
            name: "tcp: accept and stay silent",
            server: Server::Raw(silent, false),
            probe: |c| plain_kind(c, "tcp", WAIT_FOR_BANNER),
            expect: "timeout",
            check: nothing,
        },
        Case {
            name: "tcp: a 200 MB line",
            server: Server::Raw(endless_line, false),
            probe: |c| plain_kind(c, "tcp", WAIT_FOR_BANNER),
            expect: "message_too_large",
            check: one_bounded_line,
        },
        Case {
            name: "tcp: endless lines, none matching",
            server: Server::Raw(endless_lines, false),
            probe: |c| plain_kind(c, "tcp", WAIT_FOR_BANNER),
            expect: "message_too_large",
            check: nothing,
        },
        Case {
            name: "tcp: close at once",
            server: Server::Raw(close_at_once, false),
            probe: |c| plain_kind(c, "tcp", WAIT_FOR_BANNER),
            expect: "connection_closed",
            check: nothing,
        },
        Case {
            name: "tcp: plain text answering a TLS handshake",
            server: Server::Raw(plain_to_tls, false),
            probe: |c| plain_kind(c, "tcp", "target = \"127.0.0.1:{port}\"\ntls = true"),
            expect: "tls_handshake",
            check: nothing,
        },
        Case {
            name: "dns: udp refused",
            server: Server::Nothing,
            probe: |c| plain_kind(c, "dns", "server = \"127.0.0.1:{port}\"\nquery_name = \"example.com\""),
            expect: "connect_refused",
            check: nothing,
        },
        Case {
            name: "dns: tcp accept and stay silent",
            server: Server::Raw(silent, false),
            probe: |c| plain_kind(c, "dns", DNS_OVER_TCP),
            expect: "timeout",
            check: nothing,
        },
        Case {
            name: "dns: tcp length of 65,535, then silence",
            server: Server::Raw(dns_long_length_then_silence, false),
            probe: |c| plain_kind(c, "dns", DNS_OVER_TCP),
            expect: "timeout",
            check: nothing,
        },
        Case {
            name: "dns: tcp garbage answer",
            server: Server::Raw(dns_garbage_answer, false),
            probe: |c| plain_kind(c, "dns", DNS_OVER_TCP),
            expect: "protocol_error",
            check: one_bounded_line,
        },
        Case {
            name: "dns: tcp close at once",
            server: Server::Raw(close_at_once, false),
            probe: |c| plain_kind(c, "dns", DNS_OVER_TCP),
            expect: "connection_closed",
            check: nothing,
        },
        Case {
            name: "grpc: refused",
            server: Server::Nothing,
            probe: |c| plain_kind(c, "grpc", "target = \"127.0.0.1:{port}\""),
            expect: "connect_refused",
            check: nothing,
        },
        Case {
            name: "grpc: accept and stay silent",
            server: Server::Raw(silent, false),
            probe: |c| plain_kind(c, "grpc", "target = \"127.0.0.1:{port}\""),
            expect: "timeout",
            check: nothing,
        },
        Case {
            name: "grpc: an HTTP/1 server",
            server: Server::Raw(http_400_held, true),
            probe: |c| plain_kind(c, "grpc", "target = \"127.0.0.1:{port}\""),
            expect: "protocol_error",
            check: one_bounded_line,
        },
        Case {
            name: "grpc: garbage instead of HTTP/2",
            server: Server::Raw(garbage_held, false),
            probe: |c| plain_kind(c, "grpc", "target = \"127.0.0.1:{port}\""),
            expect: "protocol_error",
            check: one_bounded_line,
        },
        Case {
            name: "icmp: nxdomain",
            server: Server::Nothing,
            probe: |c| plain_kind(c, "icmp", "target = \"no-such-host.invalid\""),
            expect: "dns_nxdomain",
            check: readable,
        },
        Case {
            name: "browser: refused",
            server: Server::Nothing,
            probe: browser_probe,
            expect: "connect_refused",
            check: nothing,
        },
        Case {
            name: "browser: accept and stay silent",
            server: Server::Raw(silent, false),
            probe: browser_probe,
            expect: "timeout",
            check: nothing,
        },
        Case {
            name: "browser: close at once",
            server: Server::Raw(close_at_once, true),
            probe: browser_probe,
            expect: "connection_closed",
            check: nothing,
        },
        Case {
            name: "browser: garbage instead of HTTP",
            server: Server::Raw(garbage, true),
            probe: browser_probe,
            expect: "protocol_error",
            check: nothing,
        },
        Case {
            name: "browser: endless body",
            server: Server::Raw(endless_body, true),
            probe: browser_probe,
            expect: "timeout",
            check: nothing,
        },
        Case {
            name: "browser: 429",
            server: Server::Raw(retry_after, true),
            probe: |c| browser_probe(c).replace("/page?", &format!("{}?", ra("-1"))),
            expect: "rate_limited",
            check: nothing,
        },
    ]);
    // Vector rows: a PostgreSQL that is not there, silent, hangs up, or is not PostgreSQL;
    // a vector API that rate-limits or answers garbage.
    rows.extend([
        Case {
            name: "vector/pgvector: refused",
            server: Server::Nothing,
            probe: pg_probe,
            expect: "connect_refused",
            check: nothing,
        },
        Case {
            name: "vector/pgvector: accept and stay silent",
            server: Server::Raw(silent, false),
            probe: pg_probe,
            expect: "timeout",
            check: nothing,
        },
        Case {
            name: "vector/pgvector: close at once",
            server: Server::Raw(close_at_once, false),
            probe: pg_probe,
            expect: "connection_closed",
            check: nothing,
        },
        Case {
            name: "vector/pgvector: not PostgreSQL",
            server: Server::Raw(garbage, false),
            probe: pg_probe,
            expect: "protocol_error",
            check: nothing,
        },
        Case {
            name: "vector/pgvector: endless rows",
            server: Server::Raw(pg_endless_rows, false),
            probe: pg_probe,
            expect: "protocol_error",
            check: nothing,
        },
        Case {
            name: "vector/pgvector: a message claiming 2 GiB",
            server: Server::Raw(pg_huge_message, false),
            probe: pg_probe,
            expect: "protocol_error",
            check: nothing,
        },
        Case {
            name: "vector/pgvector: vector_dims() of 20,000,000",
            server: Server::Raw(pg_huge_dimension, false),
            probe: |c| pg_probe(c).replace("every = ", "query_vectors = \"random\"\nevery = "),
            expect: "protocol_error",
            check: nothing,
        },
        Case {
            name: "vector/pgvector: cleartext password asked without TLS",
            server: Server::Raw(pg_cleartext, false),
            probe: pg_probe,
            expect: "auth_failed",
            check: |_, c| {
                let seen = hostile::recorded(c.port);
                assert!(
                    seen.iter().all(|r| !r.contains(URL_PASSWORD)),
                    "password sent: {seen:?}"
                );
            },
        },
        Case {
            name: "vector/pgvector: 1 MB login error quoting the password",
            server: Server::Raw(pg_echoing_error, false),
            probe: pg_probe,
            expect: "auth_failed",
            check: one_bounded_line,
        },
        Case {
            name: "vector/pgvector: one column where two were asked",
            server: Server::Raw(pg_short_row, false),
            probe: pg_probe,
            expect: "protocol_error",
            check: nothing,
        },
        Case {
            name: "vector/pgvector: an HTTP server",
            server: Server::Raw(http_400_held, false),
            probe: pg_probe,
            expect: "protocol_error",
            check: |o, _| assert!(m(o, "total") < 0.5, "took {}", m(o, "total")),
        },
        Case {
            name: "vector/http: 16 MiB of tiny JSON values",
            server: Server::Raw(json_of_tiny_values, true),
            probe: vector_http_probe,
            expect: "protocol_error",
            check: nothing,
        },
        Case {
            name: "vector/http: 429",
            server: Server::Raw(retry_after, true),
            probe: |c| vector_http_probe(c).replace("/collections/docs/points/query", ra("-1")),
            expect: "rate_limited",
            check: nothing,
        },
        Case {
            name: "vector/http: garbage instead of HTTP",
            server: Server::Raw(garbage, true),
            probe: vector_http_probe,
            expect: "protocol_error",
            check: nothing,
        },
        Case {
            name: "workflow: a step target that hangs",
            server: Server::Raw(silent, false),
            probe: |c| workflow_probe(c, &format!("/?k={QUERY_SECRET}"), ""),
            expect: "timeout",
            check: nothing,
        },
        Case {
            name: "workflow: a 429 storm on parts",
            server: Server::Raw(retry_after, true),
            probe: |c| {
                workflow_probe(
                    c,
                    "/ra/0#${part}",
                    "[probe.step.upload]\nparts = 8\npart_size = \"4KiB\"\nconcurrency = 4\nmax_attempts = 20\n",
                )
            },
            expect: "rate_limited",
            check: |o, _| {
                assert_eq!(o.get("s.parts_failed"), Some(8.0), "{:?}", o.measurements);
                assert!(o.get("s.retries_throttled").unwrap_or(0.0) >= 8.0);
            },
        },
        Case {
            name: "workflow: a poll that never converges",
            server: Server::Raw(json_status, true),
            probe: |c| workflow_probe(c, "/job", POLL),
            expect: "timeout",
            check: |o, _| {
                let msg = &o.error.as_ref().unwrap().message;
                assert!(msg.contains("last state: queued"), "{msg}");
            },
        },
        Case {
            name: "workflow: an endless status body",
            server: Server::Raw(endless_body, true),
            probe: |c| workflow_probe(c, "/job", POLL),
            expect: "body_too_large",
            check: nothing,
        },
        Case {
            name: "workflow: a status body that is not JSON",
            server: Server::Raw(html_page, true),
            probe: |c| workflow_probe(c, "/job", POLL),
            expect: "extraction_failed",
            check: nothing,
        },
        Case {
            name: "workflow: an extraction that does not match",
            server: Server::Raw(json_status, true),
            probe: |c| workflow_probe(c, "/init", "[probe.step.extract]\nid = { pointer = \"/id\" }\n"),
            expect: "extraction_failed",
            check: nothing,
        },
        Case {
            name: "vector/http: accept and stay silent",
            server: Server::Raw(silent, false),
            probe: vector_http_probe,
            expect: "timeout",
            check: nothing,
        },
    ]);
    // Every Retry-After shape: huge, overflowing, far-future dates, negative, garbage.
    for value in [
        "18446744073709551615",
        "9223372036854775807",
        "Thu, 01 Jan 2099 00:00:00 GMT",
    ] {
        rows.push(Case {
            name: Box::leak(format!("429, Retry-After: {value}").into_boxed_str()),
            server: Server::Raw(retry_after, true),
            probe: match value {
                "18446744073709551615" => |c| http(format!("{}{}", c.base, ra("18446744073709551615")), ""),
                "9223372036854775807" => |c| http(format!("{}{}", c.base, ra("9223372036854775807")), ""),
                _ => |c| http(format!("{}{}", c.base, ra("Thu, 01 Jan 2099 00:00:00 GMT")), ""),
            },
            expect: "rate_limited",
            check: retry_capped,
        });
    }
    for (value, probe) in [
        (
            "-1",
            (|c| http(format!("{}{}", c.base, ra("-1")), "")) as fn(&Ctx) -> String,
        ),
        ("soon", |c| http(format!("{}{}", c.base, ra("soon")), "")),
        ("", |c| http(format!("{}{}", c.base, ra("")), "")),
    ] {
        rows.push(Case {
            name: Box::leak(format!("429, Retry-After: {value:?}").into_boxed_str()),
            server: Server::Raw(retry_after, true),
            probe,
            expect: "rate_limited",
            check: no_retry,
        });
    }
    rows
}

/// Runs one row on its own single-threaded runtime, so a probe that hogs the CPU starves
/// its healthy neighbour visibly, and the runtime's task count is this row's alone.
fn run_case(case: &Case, healthy_url: &str, recorder: u16) -> Result<(), String> {
    let pki = pki(case.name.contains("expired"));
    let dir = write_files(&[("ca.pem", &pki.ca_pem)]);
    let ca_file = path_str(&dir.path().join("ca.pem"));
    let (port, _server, _tls): (u16, Option<hostile::Hostile>, Option<Target>) = match case.server {
        Server::Nothing => (refused_port(), None, None),
        Server::Raw(h, read) => {
            let s = hostile::start(h, read);
            (s.port, Some(s), None)
        }
        Server::Tls => {
            let t = hostile::runtime().block_on(tls_target(&pki));
            (t.addr.port(), None, Some(t))
        }
    };
    let host = if matches!(case.server, Server::Tls) {
        format!("https://fmuser:{URL_PASSWORD}@localhost:{port}")
    } else {
        format!("http://fmuser:{URL_PASSWORD}@127.0.0.1:{port}")
    };
    let ctx = Ctx {
        base: host,
        port,
        ca_file,
        recorder,
    };
    let victim_toml = (case.probe)(&ctx);
    let healthy_toml = format!(
        "[[probe]]\nname = \"healthy\"\nkind = \"http\"\nurl = \"{healthy_url}\"\nevery = \"30s\"\ntimeout = \"1s\"\n"
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let live_before = LIVE.load(Ordering::Relaxed);
    PEAK.store(live_before, Ordering::Relaxed);
    let (victim, healthy, lateness, tasks_left, limit) = rt.block_on(async {
        let (_d, probes) = build_probes(&format!("{victim_toml}\n{healthy_toml}"));
        let limit = probes[0].timeout.as_secs_f64();
        let planned = Instant::now() + Duration::from_millis(150);
        let healthy_run = async {
            tokio::time::sleep_until(planned.into()).await;
            let lateness = planned.elapsed();
            (probes[1].execute().await, lateness)
        };
        let (victim, (healthy, lateness)) = tokio::join!(probes[0].execute(), healthy_run);
        drop(probes);
        // Connection tasks are aborted when their run ends; give the runtime a moment.
        let metrics = tokio::runtime::Handle::current().metrics();
        let mut left = metrics.num_alive_tasks();
        for _ in 0..100 {
            if left == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            left = metrics.num_alive_tasks();
        }
        (victim, healthy, lateness, left, limit)
    });
    drop(rt);
    let added_mib = PEAK.load(Ordering::Relaxed).saturating_sub(live_before) as f64 / 1048576.0;

    let got = error_type(&victim);
    if got != case.expect {
        return Err(format!(
            "error type {got}, expected {} ({:?})",
            case.expect, victim.error
        ));
    }
    let total = m(&victim, "total");
    if total > limit + 0.3 {
        return Err(format!("run took {total:.3}s against a {limit}s timeout"));
    }
    (case.check)(&victim, &ctx);
    if !healthy.success() || m(&healthy, "ttfb") > 0.3 {
        return Err(format!(
            "healthy neighbour suffered: {:?} ttfb {:?}",
            healthy.error,
            healthy.get("ttfb")
        ));
    }
    if lateness > Duration::from_millis(50) {
        return Err(format!("healthy neighbour started {lateness:?} late"));
    }
    if tasks_left != 0 {
        return Err(format!("{tasks_left} task(s) left after the run"));
    }
    let bound = memory_bound_mib(case.name);
    if added_mib > bound as f64 {
        return Err(format!(
            "allocation peak {added_mib:.1} MiB over the row's bound of {bound} MiB"
        ));
    }
    eprintln!(
        "fault matrix: {:<55} peak +{added_mib:.1} MiB (bound {bound})",
        case.name
    );
    let mut sockets = hostile::client_sockets_to(port);
    for _ in 0..50 {
        if sockets == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        sockets = hostile::client_sockets_to(port);
    }
    if sockets != 0 {
        return Err(format!("{sockets} socket(s) to the target left open"));
    }
    let output = format!(
        "{} {:?} {:?}",
        sloprobe::once::run_json(&victim, 1),
        victim.error,
        victim.details
    );
    for secret in [TOKEN, URL_PASSWORD, QUERY_SECRET] {
        if output.contains(secret) {
            return Err(format!("secret {secret} in output: {output}"));
        }
    }
    Ok(())
}

#[test]
fn fault_matrix() {
    // SAFETY: set before any probe is built; only this test binary reads it.
    unsafe { std::env::set_var("FM_TOKEN", TOKEN) };
    let healthy = hostile::runtime().block_on(plain_target());
    let healthy_url = healthy.url("/delay/20");
    let recorder = hostile::start(hostile::recorder, true);
    let mut failures = Vec::new();
    let rows = cases();
    for case in &rows {
        let t = Instant::now();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_case(case, &healthy_url, recorder.port)
        }));
        let verdict = match result {
            Ok(Ok(())) => "ok".to_string(),
            Ok(Err(e)) => {
                failures.push(format!("{}: {e}", case.name));
                format!("FAILED: {e}")
            }
            Err(_) => {
                failures.push(format!("{}: panicked", case.name));
                "PANICKED".to_string()
            }
        };
        eprintln!(
            "fault matrix: {:<55} {:>6.2}s {verdict}",
            case.name,
            t.elapsed().as_secs_f64()
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

/// The first `/metrics` text that has the healthy probe's series (10 s at most).
fn first_healthy_scrape(scrape: &dyn Fn() -> Option<String>) -> Option<String> {
    for _ in 0..100 {
        if let Some(t) = scrape().filter(|t| t.contains("probe_name=\"healthy\"")) {
            return Some(t);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

fn scrape_value(text: &str, name: &str, must: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && must.iter().all(|m| l.contains(m)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Slowloris against the daemon's listener under a 256-fd limit: the listener holds at most
/// its connection cap, drops clients that never finish their headers, and the probes go
/// on without a single failed run.
#[test]
fn slowloris_against_the_daemon() {
    use std::io::{Read, Write};
    let target = hostile::runtime().block_on(plain_target());
    let port = free_port();
    let dir = write_files(&[(
        "sloprobe.toml",
        &format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n\n[[probe]]\nname = \"healthy\"\nkind = \"http\"\nurl = \"{}\"\nevery = \"200ms\"\ntimeout = \"150ms\"\n",
            target.url("/delay/5")
        ),
    )]);
    let daemon = Child(
        std::process::Command::new("sh")
            .args(["-c", "ulimit -n 256 && exec \"$0\" run -c \"$1\""])
            .arg(bin())
            .arg(dir.path().join("sloprobe.toml"))
            .env("SLOPROBE_LOG", "error")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let scrape = || {
        hostile::runtime()
            .block_on(http_get(&format!("{base}/metrics")))
            .map(|(_, t)| t)
    };
    let before = first_healthy_scrape(&scrape).expect("daemon never served metrics");
    let ok_before = scrape_value(
        &before,
        "probe_runs_total",
        &["probe_name=\"healthy\"", "outcome=\"success\""],
    );

    // 300 clients that send half a request head and then one byte a second.
    let mut clients: Vec<std::net::TcpStream> = (0..300)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n").unwrap();
            s
        })
        .collect();
    let start = Instant::now();
    let mut most_fds = 0;
    while start.elapsed() < Duration::from_secs(7) {
        for c in &mut clients {
            let _ = c.write_all(b"X");
        }
        let fds = std::fs::read_dir(format!("/proc/{}/fd", daemon.0.id())).map_or(0, |d| d.count());
        most_fds = most_fds.max(fds);
        std::thread::sleep(Duration::from_secs(1));
    }
    let mut dropped = 0;
    for c in &mut clients {
        c.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
        let mut buf = [0u8; 512];
        // The server closed it (EOF or reset) or answered 408; a read timeout means open.
        let let_go = match c.read(&mut buf) {
            Ok(n) => n == 0 || buf.starts_with(b"HTTP/1.1 408"),
            Err(e) => !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
        };
        dropped += usize::from(let_go);
    }
    drop(clients);
    let elapsed = start.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(300));
    let after = scrape().expect("metrics after the attack");
    let ok_after = scrape_value(
        &after,
        "probe_runs_total",
        &["probe_name=\"healthy\"", "outcome=\"success\""],
    );
    let failed = scrape_value(
        &after,
        "probe_runs_total",
        &["probe_name=\"healthy\"", "outcome=\"failure\""],
    );
    drop(daemon);

    // The cap under `ulimit -n 256` is 64 connections; the rest waited in the kernel's queue.
    assert!(most_fds <= 64 + 40, "daemon held {most_fds} fds under attack");
    assert!(
        dropped >= 64,
        "only {dropped} slow clients were cut off by the header timeout"
    );
    assert_eq!(failed, 0.0, "probe runs failed during the attack");
    let expected = elapsed / 0.2;
    assert!(
        ok_after - ok_before >= expected * 0.8,
        "{} runs during {elapsed:.1}s of attack, expected about {expected:.0}",
        ok_after - ok_before
    );
}

/// The daemon's own listeners against hostile clients: the RUM collector, `/metrics` and
/// `/-/reload`. Each row attacks a running daemon that also runs a healthy probe every
/// 200 ms, then asserts what the probe rows assert for targets: the listener refused what
/// it should (counted by reason), the neighbour probe kept its schedule without a failure,
/// the daemon's peak memory stayed under a bound the attacker cannot move, its sockets went
/// back to where they were, and the collector's key never reached `/metrics` or the log.
struct ListenerCase {
    name: &'static str,
    attack: fn(&Ports),
    /// `rum_beacons_total` must count this refusal reason at least once.
    refused_as: Option<&'static str>,
}

struct Ports {
    metrics: u16,
    rum: u16,
}

const RUM_KEY: &str = "fm-rum-key-41aa";
/// Peak RSS a row may reach: the collector's 64 MiB body budget, two scrape encoders and
/// the daemon itself (~30 MB), with room for the allocator.
const LISTENER_PEAK_MIB: u64 = 200;

fn raw(port: u16, request: &[u8]) -> std::net::TcpStream {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let _ = s.write_all(request);
    s
}

/// Like `raw`, from another loopback address (127.0.0.2 and up): one client IP each.
fn raw_from(client: u8, port: u16, request: &[u8]) -> std::net::TcpStream {
    use std::io::Write;
    let stream = hostile::runtime().block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(([127, 0, 0, client], 0).into()).unwrap();
        socket.connect(([127, 0, 0, 1], port).into()).await.unwrap()
    });
    let mut s = stream.into_std().unwrap();
    s.set_nonblocking(false).unwrap();
    let _ = s.write_all(request);
    s
}

fn read_status(mut s: std::net::TcpStream) -> u16 {
    use std::io::Read;
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut buf = [0u8; 12];
    let _ = s.read(&mut buf);
    std::str::from_utf8(&buf[9..12])
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn listener_cases() -> Vec<ListenerCase> {
    vec![
        ListenerCase {
            name: "rum: 60 slow 5 MiB Faro bodies at once",
            attack: |p| {
                let head = format!(
                    "POST /collect?api_key={RUM_KEY} HTTP/1.1\r\nHost: x\r\nContent-Length: 5242880\r\n\r\n{{\"meta\":"
                );
                // From 60 addresses, each within its per-client rate: only the memory
                // budget stands between them and 300 MiB of bodies.
                let held: Vec<_> = (0..60).map(|i| raw_from(2 + i, p.rum, head.as_bytes())).collect();
                std::thread::sleep(Duration::from_secs(2));
                drop(held);
            },
            refused_as: Some("memory_budget"),
        },
        ListenerCase {
            name: "rum: Faro measurements with 100,000 values keys",
            attack: |p| {
                let mut values = String::from("{\"lcp\":900");
                for i in 0..100_000 {
                    values.push_str(&format!(",\"k{i}\":1"));
                }
                values.push('}');
                let body = format!(
                    "{{\"meta\":{{\"page\":{{\"url\":\"/x\"}}}},\"measurements\":[{{\"type\":\"web-vitals\",\"values\":{values}}}]}}"
                );
                let head = format!(
                    "POST /collect?api_key={RUM_KEY} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let sent: Vec<_> = (0..12)
                    .map(|_| {
                        let mut req = head.clone().into_bytes();
                        req.extend_from_slice(body.as_bytes());
                        raw(p.rum, &req)
                    })
                    .collect();
                for s in sent {
                    let status = read_status(s);
                    assert!(matches!(status, 400 | 429 | 503), "expensive beacon answered {status}");
                }
            },
            refused_as: Some("no_valid_metrics"),
        },
        ListenerCase {
            name: "rum: 300 requests with a wrong key",
            attack: |p| {
                let req =
                    b"POST /rum?api_key=wrong HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
                for _ in 0..300 {
                    assert_eq!(read_status(raw(p.rum, req)), 401);
                }
                // The rate budget is intact for the right key.
                let body = r#"{"name":"LCP","value":900,"id":"v5-fm","navigationType":"navigate"}"#;
                let ok = format!(
                    "POST /rum?api_key={RUM_KEY} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                assert_eq!(read_status(raw(p.rum, ok.as_bytes())), 204);
            },
            refused_as: Some("api_key"),
        },
        ListenerCase {
            name: "rum and metrics: 200 silent connections each",
            attack: |p| {
                let held: Vec<_> = (0..200).flat_map(|_| [raw(p.rum, b""), raw(p.metrics, b"")]).collect();
                // The header timeout (1s here) counts from accept: the slots come back.
                std::thread::sleep(Duration::from_millis(1500));
                let healthz = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
                assert_eq!(read_status(raw(p.metrics, healthz)), 200);
                assert_eq!(read_status(raw(p.rum, healthz)), 200);
                drop(held);
            },
            refused_as: None,
        },
        ListenerCase {
            name: "metrics: 40 scrapes at once that never read",
            attack: |p| {
                let req = b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n";
                let held: Vec<_> = (0..40).map(|_| raw(p.metrics, req)).collect();
                std::thread::sleep(Duration::from_secs(1));
                drop(held);
            },
            refused_as: None,
        },
        ListenerCase {
            name: "probe: 120 /probe runs at once on a silent target, a target outside allow, a 64 KiB target",
            attack: |p| {
                // Each run waits 1 s on the metrics port for a line that never comes; 16
                // run at once ([server] probe_concurrency), the rest wait their timeout.
                let req = format!(
                    "GET /probe?module=banner&target=127.0.0.1:{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                    p.metrics
                );
                let sent: Vec<_> = (0..120).map(|_| raw(p.metrics, req.as_bytes())).collect();
                let statuses: Vec<u16> = sent.into_iter().map(read_status).collect();
                assert!(statuses.iter().all(|s| matches!(s, 200 | 503)), "{statuses:?}");
                assert!(statuses.contains(&503), "no run was refused: {statuses:?}");
                let outside =
                    b"GET /probe?module=banner&target=10.0.0.1:22 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
                assert_eq!(read_status(raw(p.metrics, outside)), 403);
                let long = format!(
                    "GET /probe?module=banner&target=127.0.0.1:1{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                    "0".repeat(64 * 1024)
                );
                assert!(matches!(read_status(raw(p.metrics, long.as_bytes())), 400 | 414 | 431));
            },
            refused_as: None,
        },
        ListenerCase {
            name: "reload: 50 page-like POSTs",
            attack: |p| {
                let req = b"POST /-/reload HTTP/1.1\r\nHost: x\r\nOrigin: http://evil.example\r\nX-Sloprobe-Reload: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
                for _ in 0..50 {
                    assert_eq!(read_status(raw(p.metrics, req)), 403);
                }
            },
            refused_as: None,
        },
    ]
}

fn peak_rss_mib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0)
        / 1024
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

#[test]
fn listeners_against_hostile_clients() {
    let target = hostile::runtime().block_on(plain_target());
    let mut failures = Vec::new();
    for case in listener_cases() {
        let ports = Ports {
            metrics: free_port(),
            rum: free_port(),
        };
        let dir = write_files(&[(
            "sloprobe.toml",
            &format!(
                "[server]\nlisten = \"127.0.0.1:{}\"\nheader_read_timeout = \"1s\"\n[rum]\nlisten = \"127.0.0.1:{}\"\nallowed_origins = [\"https://app.example.com\"]\napi_key = \"env:FM_RUM_KEY\"\n\n[[probe]]\nname = \"healthy\"\nkind = \"http\"\nurl = \"{}\"\nevery = \"200ms\"\ntimeout = \"150ms\"\n\n[[module]]\nname = \"banner\"\nkind = \"tcp\"\nallow = ['127\\.0\\.0\\.1:\\d+']\ntimeout = \"1s\"\n[[module.query]]\nexpect = '^never$'\n",
                ports.metrics,
                ports.rum,
                target.url("/api/items")
            ),
        )]);
        let log = dir.path().join("daemon.log");
        // 512 fds: each listener's connection cap is 128, which the silent row exceeds.
        let daemon = Child(
            std::process::Command::new("sh")
                .args(["-c", "ulimit -n 512 && exec \"$0\" run -c \"$1\""])
                .arg(bin())
                .arg(dir.path().join("sloprobe.toml"))
                .env("FM_RUM_KEY", RUM_KEY)
                .env("SLOPROBE_LOG", "debug")
                .stdout(std::process::Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap(),
        );
        let pid = daemon.0.id();
        let scrape = || {
            hostile::runtime()
                .block_on(http_get(&format!("http://127.0.0.1:{}/metrics", ports.metrics)))
                .map(|(_, t)| t)
        };
        let runs = |t: &str, outcome: &str| {
            scrape_value(
                t,
                "probe_runs_total",
                &["probe_name=\"healthy\"", &format!("outcome=\"{outcome}\"")],
            )
        };
        let Some(before) = first_healthy_scrape(&scrape) else {
            failures.push(format!("{}: daemon never served metrics", case.name));
            continue;
        };
        std::thread::sleep(Duration::from_millis(300));
        let fds_before = open_fds(pid);
        let ok_before = runs(&before, "success");
        let start = Instant::now();
        (case.attack)(&ports);
        // Let the connections close and a few more runs happen.
        std::thread::sleep(Duration::from_millis(1200));
        let elapsed = start.elapsed().as_secs_f64();
        let Some(after) = scrape() else {
            failures.push(format!("{}: no /metrics after the attack", case.name));
            continue;
        };
        let mut problems = Vec::new();
        let (ok, failed) = (runs(&after, "success") - ok_before, runs(&after, "failure"));
        if failed > 0.0 {
            problems.push(format!("{failed} neighbour runs failed"));
        }
        if ok < elapsed / 0.2 * 0.7 {
            problems.push(format!("{ok} neighbour runs in {elapsed:.1}s (every 200ms)"));
        }
        if let Some(reason) = case.refused_as
            && scrape_value(&after, "rum_beacons_total", &[&format!("reason=\"{reason}\"")]) < 1.0
        {
            problems.push(format!("nothing counted as {reason}"));
        }
        let peak = peak_rss_mib(pid);
        if peak > LISTENER_PEAK_MIB {
            problems.push(format!("peak RSS {peak} MiB over {LISTENER_PEAK_MIB}"));
        }
        let fds = open_fds(pid);
        if fds > fds_before + 8 {
            problems.push(format!("{fds} fds after the attack, {fds_before} before"));
        }
        drop(daemon);
        let logged = std::fs::read_to_string(&log).unwrap_or_default();
        if after.contains(RUM_KEY) || logged.contains(RUM_KEY) {
            problems.push("the RUM key reached /metrics or the log".into());
        }
        if !problems.is_empty() {
            failures.push(format!("{}: {}", case.name, problems.join("; ")));
        }
    }
    assert!(failures.is_empty(), "listener rows failed:\n{}", failures.join("\n"));
}
