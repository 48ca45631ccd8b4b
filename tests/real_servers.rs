//! The assistant and websocket probes against real servers nobody here wrote, run with the
//! examples docs/config.md shows (host aside): a LiteLLM proxy (PyPI) in front of fakellm
//! (PyPI) for the three vendor stream formats, with token counts beside the official
//! `openai` and `anthropic` SDKs on the same server; python-socketio and strawberry's
//! graphql-transport-ws (PyPI) and the reference Node `socket.io` and `graphql-ws` servers
//! (npm) for the websocket protocols. The Python servers live in `.venv-stream`, the Node
//! packages in `.cache/realtime`, both installed by scripts/test.sh; every process started
//! here is killed by process group. Loopback only.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::server::Server;
use common::*;
use serde_json::Value;

const MASTER_KEY: &str = "sk-sloprobe-test-master-key-0123456789";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn venv(exe: &str) -> PathBuf {
    let p = root().join(".venv-stream/bin").join(exe);
    assert!(p.exists(), "{} is missing: run scripts/test.sh", p.display());
    p
}

async fn fakellm() -> Server {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(venv("fakellm"));
    cmd.args(["serve", "--host", "127.0.0.1", "--port", &port.to_string(), "--config"])
        .arg(root().join("tests/servers/fakellm.yaml"));
    Server::start(cmd, port, dir, "fakellm").await
}

async fn litellm(upstream: u16) -> Server {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = std::fs::read_to_string(root().join("tests/servers/litellm.yaml"))
        .unwrap()
        .replace("FAKELLM", &format!("127.0.0.1:{upstream}"));
    std::fs::write(dir.path().join("litellm.yaml"), config).unwrap();
    let mut cmd = Command::new(venv("litellm"));
    cmd.args([
        "--config",
        "litellm.yaml",
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
    ])
    .env("LITELLM_MASTER_KEY", MASTER_KEY)
    // The model cost map ships in the package; never fetch it.
    .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    .env("LITELLM_TELEMETRY", "False")
    .env("NO_PROXY", "*");
    let server = Server::start(cmd, port, dir, "litellm").await;
    // The port opens before the app is up.
    let health = format!("http://127.0.0.1:{port}/health/liveliness");
    let ready = eventually(600, Duration::from_millis(100), || http_get(&health)).await;
    assert!(
        ready.is_some_and(|(s, _)| s == 200),
        "litellm not ready:\n{}",
        server.log()
    );
    server
}

async fn python_server(script: &str, what: &str) -> Server {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(venv("python3"));
    cmd.arg(root().join("tests/servers").join(script)).arg(port.to_string());
    Server::start(cmd, port, dir, what).await
}

/// A reference Node server (tests/servers/*.cjs) on the npm packages in .cache/realtime.
async fn node_server(script: &str, what: &str) -> Server {
    let modules = root().join(".cache/realtime/node_modules");
    assert!(
        modules.join("socket.io").exists(),
        "{} is missing: run scripts/test.sh",
        modules.display()
    );
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("node");
    cmd.arg(root().join("tests/servers").join(script))
        .arg(port.to_string())
        .env("NODE_PATH", modules);
    Server::start(cmd, port, dir, what).await
}

/// The `[[probe]]` named `name` in one of docs/config.md's TOML examples, unindented.
fn documented_probe(name: &str) -> String {
    let docs = std::fs::read_to_string(root().join("docs/config.md")).unwrap();
    let needle = format!("name = \"{name}\"");
    for block in docs.split("```toml\n").skip(1) {
        let block = &block[..block.find("```").unwrap()];
        if !block.contains(&needle) {
            continue;
        }
        let lines: Vec<String> = block
            .lines()
            .map(|l| l.strip_prefix("  ").unwrap_or(l).to_string())
            .collect();
        let at = lines.iter().position(|l| l.contains(&needle)).unwrap();
        let start = (0..at).rev().find(|&i| lines[i] == "[[probe]]").unwrap();
        let end = (at..lines.len())
            .find(|&i| lines[i] == "[[probe]]")
            .unwrap_or(lines.len());
        return lines[start..end].join("\n") + "\n";
    }
    panic!("docs/config.md has no example probe {name:?}");
}

/// Runs `sloprobe once --format json` on `config` with `env`; the run lines.
async fn once(config: &str, env: &[(&str, &str)]) -> Vec<Value> {
    let dir = write_files(&[("sloprobe.toml", config)]);
    let path = dir.path().join("sloprobe.toml");
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_sloprobe"))
            .args(["once", "--format", "json", "-c"])
            .arg(&path)
            .envs(env)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let runs: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == "run")
        .collect();
    assert!(
        !runs.is_empty(),
        "no runs:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The key is a secret: never in output.
    assert!(!stdout.contains(MASTER_KEY) && !String::from_utf8_lossy(&out.stderr).contains(MASTER_KEY));
    runs
}

/// What the official SDK reports for one streamed answer (tests/servers/sdk_stream.py).
fn sdk(format: &str, base: &str, model: &str) -> Value {
    let out = Command::new(venv("python3"))
        .arg(root().join("tests/servers/sdk_stream.py"))
        .args([format, base, MASTER_KEY, model])
        .env("NO_PROXY", "*")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documented_assistant_examples_against_litellm_beside_the_sdks() {
    let upstream = fakellm().await;
    let proxy = litellm(upstream.port).await;
    let base = format!("http://127.0.0.1:{}", proxy.port);
    let keys = [("OPENAI_API_KEY", MASTER_KEY), ("ANTHROPIC_API_KEY", MASTER_KEY)];
    for (name, format, model) in [
        ("assistant-ttft", "openai-chat", "gpt-4o-mini"),
        ("assistant-responses", "openai-responses", "gpt-4.1-mini"),
        ("assistant-claude", "anthropic-messages", "claude-sonnet-4-5"),
    ] {
        let config = documented_probe(name).replace("https://api.example.com", &base);
        assert!(config.contains(&format!("format = \"{format}\"")), "{config}");
        let run = &once(&config, &keys).await[0];
        assert_eq!(run["success"], true, "{name}: {run}");
        let m = &run["measurements"];
        let reference = sdk(format, &base, model);
        // Token counts are the server's usage, read as the SDK reads it.
        assert_eq!(run["labels"]["probe.token.source"], "usage", "{name}");
        for (ours, theirs) in [("output_tokens", "output"), ("input_tokens", "input")] {
            assert_eq!(
                m[ours].as_f64(),
                reference["usage"][theirs].as_f64(),
                "{name} {ours}: {run} vs {reference}"
            );
        }
        let ttft = m["ttft"].as_f64().unwrap();
        assert!(
            ttft >= m["first_chunk"].as_f64().unwrap() && ttft <= m["e2e"].as_f64().unwrap(),
            "{name}: {m}"
        );
    }
    // LiteLLM's Anthropic bridge sends 0 input tokens in message_start and the count in
    // message_delta: the count must be the real one.
    let claude = documented_probe("assistant-claude").replace("https://api.example.com", &base);
    let run = &once(&claude, &keys).await[0];
    assert!(run["measurements"]["input_tokens"].as_f64().unwrap() > 0.0, "{run}");

    // A tool call: the first token is the first non-empty arguments, not the name chunk.
    let tool = documented_probe("assistant-ttft")
        .replace("https://api.example.com", &base)
        .replace(
            r#""messages":[{"role":"user","content":"Say hi"}]}"#,
            r#""messages":[{"role":"user","content":"Weather?"}],"tools":[{"type":"function","function":{"name":"lookup","parameters":{"type":"object"}}}]}"#,
        );
    assert!(tool.contains("lookup"), "{tool}");
    let run = &once(&tool, &keys).await[0];
    assert_eq!(run["success"], true, "{run}");
    assert!(run["measurements"]["output_tokens"].as_f64().unwrap() > 0.0, "{run}");

    // A mocked model that answers `stream: true` with one JSON message.
    let flat = documented_probe("assistant-claude")
        .replace("https://api.example.com", &base)
        .replace("claude-sonnet-4-5", "claude-not-streamed");
    let run = &once(&flat, &keys).await[0];
    assert_eq!(run["error_type"], "not_streamed", "{run}");
    let msg = run["error"].as_str().unwrap();
    assert!(
        msg.contains("application/json") && msg.contains("Anthropic message"),
        "{msg}"
    );
}

/// The docs' Socket.IO example against `server`, which pings every second and drops a
/// silent client after about two; its `order` push comes 3.5 s after the subscription.
async fn socketio_example_against(server: &Server) {
    let config = documented_probe("socketio-orders")
        .replace("wss://realtime.example.com", &format!("ws://127.0.0.1:{}", server.port));
    let run = &once(&config, &[]).await[0];
    assert_eq!(run["success"], true, "{run}\n{}", server.log());
    let m = &run["measurements"];
    assert!(m["keepalive_replies"].as_f64().unwrap() >= 2.0, "{m}");
    assert!(m["push_wait"].as_f64().unwrap() >= 3.4, "{m}");
    assert!(
        m["connect_ack"].as_f64().is_some() && m["subscribe"].as_f64().is_some(),
        "{m}"
    );
    assert_eq!(run["samples"]["ping_rtt"].as_array().map(Vec::len), Some(3), "{run}");

    // Without the keepalive rule the same server drops the probe before the push.
    let start = config.find("[[probe.keepalive]]").unwrap();
    let end = config[start..].find("[[probe.step]]").unwrap() + start;
    let silent = format!("{}{}", &config[..start], &config[end..]);
    let run = &once(&silent, &[]).await[0];
    assert_eq!(run["success"], false, "{run}");
    assert_eq!(run["error_type"], "connection_closed", "{run}");
}

/// The docs' graphql-transport-ws example against `server`: 40 pings at 100 ms make 4 s,
/// past the server's 3 s connection_init deadline, which the handshake steps meet because
/// they run first.
async fn graphql_ws_example_against(server: &Server) {
    let config =
        documented_probe("graphql-orders").replace("wss://api.example.com", &format!("ws://127.0.0.1:{}", server.port));
    let run = &once(&config, &[]).await[0];
    assert_eq!(run["success"], true, "{run}\n{}", server.log());
    let m = &run["measurements"];
    assert!(m["ack"].as_f64().is_some() && m["subscribe"].as_f64().is_some(), "{m}");
    assert_eq!(run["samples"]["ping_rtt"].as_array().map(Vec::len), Some(40), "{run}");
    assert_eq!(m["ping_loss"], 0.0, "{m}");
    // The subscription's pushes arrive during the pings: read and counted, not errors.
    assert!(m["skipped_messages"].as_f64().unwrap() >= 10.0, "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documented_socketio_example_against_python_socketio() {
    socketio_example_against(&python_server("socketio_server.py", "python-socketio").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documented_socketio_example_against_node_socket_io() {
    socketio_example_against(&node_server("socketio_server.cjs", "socket.io").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documented_graphql_ws_example_against_strawberry() {
    graphql_ws_example_against(&python_server("graphql_ws_server.py", "strawberry").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documented_graphql_ws_example_against_node_graphql_ws() {
    graphql_ws_example_against(&node_server("graphql_ws_server.cjs", "graphql-ws").await).await;
}
