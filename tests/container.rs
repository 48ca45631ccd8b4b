//! The sidecar image, built for real with `buildah bud` (FROM scratch: nothing is pulled).
//! `podman run` cannot work in this sandbox (crun cannot set rlimits or cgroups), so the
//! image is verified by mounting it and running its entrypoint from the mounted root as the
//! image's non-root user. scripts/test.sh builds the static binary the image copies.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

struct Image(String);

impl Drop for Image {
    fn drop(&mut self) {
        let _ = Command::new("buildah").args(["rmi", "-f", &self.0]).output();
    }
}

struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("buildah").args(["umount", &self.0]).output();
        let _ = Command::new("buildah").args(["rm", &self.0]).output();
    }
}

fn buildah(args: &[&str]) -> String {
    let out = Command::new(tool("buildah")).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "buildah {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn sidecar_image_builds_and_runs_as_non_root() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let binary = root.join("target/static/x86_64-unknown-linux-gnu/release/sloprobe");
    assert!(
        binary.is_file(),
        "static binary missing: scripts/test.sh builds it (see Containerfile)"
    );
    // Static: it must run without the host's dynamic loader.
    let file = Command::new("file")
        .arg(&binary)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    if let Ok(desc) = file {
        assert!(
            desc.contains("statically linked") || desc.contains("static-pie"),
            "{desc}"
        );
    }
    let size = std::fs::metadata(&binary).unwrap().len();
    // 27.2 MB with the WebDriver and PostgreSQL clients of the browser and vector probes;
    // 32.8 MB with the tcp, dns, grpc and icmp kinds, /probe and the blackbox importer
    // (thin LTO saves nothing measurable; symbols stay so panics name their functions).
    assert!(size <= 36 * 1024 * 1024, "binary is {size} bytes (≤ 36 MB)");

    let tag = format!("localhost/sloprobe-test-{}", std::process::id());
    let _image = Image(tag.clone());
    let version = env!("CARGO_PKG_VERSION");
    let revision = "0123456789abcdef0123456789abcdef01234567";
    buildah(&[
        "bud",
        "--quiet",
        "--format",
        "docker",
        "-f",
        "Containerfile",
        "--build-arg",
        &format!("VERSION={version}"),
        "--build-arg",
        &format!("REVISION={revision}"),
        "-t",
        &tag,
        root.to_str().unwrap(),
    ]);
    let inspect: serde_json::Value = serde_json::from_str(&buildah(&["inspect", "--type", "image", &tag])).unwrap();
    let cfg = &inspect["Docker"]["config"];
    assert_eq!(cfg["User"], "65532:65532", "{cfg}");
    // OCI annotations registries and scanners read.
    let labels = &cfg["Labels"];
    assert_eq!(labels["org.opencontainers.image.version"], version, "{labels}");
    assert_eq!(labels["org.opencontainers.image.revision"], revision, "{labels}");
    assert_eq!(labels["org.opencontainers.image.licenses"], "Apache-2.0", "{labels}");
    assert!(
        labels["org.opencontainers.image.source"]
            .as_str()
            .is_some_and(|s| s.starts_with("https://"))
    );
    assert_eq!(cfg["Entrypoint"], serde_json::json!(["/usr/bin/sloprobe"]));
    assert_eq!(
        cfg["Healthcheck"]["Test"],
        serde_json::json!(["CMD", "/usr/bin/sloprobe", "health"]),
        "{cfg}"
    );

    let container = Container(buildah(&["from", &tag]));
    let mnt = buildah(&["mount", &container.0]);
    let mnt = Path::new(&mnt);
    // The image's whole file list: the binary, its config, the schema; nothing else.
    assert!(mnt.join("usr/bin/sloprobe").is_file() && mnt.join("etc/sloprobe/sloprobe.toml").is_file());
    assert!(!mnt.join("bin/sh").exists(), "a shell in a scratch image?");
    // Run the entrypoint inside the mounted root as the image's user: chroot there, then
    // drop to UID/GID 65532 (coreutils' --userspec), as a container runtime would.
    let run = |args: &[&str]| {
        Command::new(tool("chroot"))
            .arg("--userspec=65532:65532")
            .arg(mnt)
            .arg("/usr/bin/sloprobe")
            .args(args)
            .output()
            .unwrap()
    };
    let v = run(&["--version"]);
    assert!(
        v.status.success() && String::from_utf8_lossy(&v.stdout).contains("sloprobe"),
        "{v:?}"
    );
    // The image's own config, found through SLOPROBE_CONFIG's default path as in the image.
    let check = run(&["check", "-c", "/etc/sloprobe/sloprobe.toml"]);
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    // `health` is what HEALTHCHECK runs: nothing listens here, so it must say unhealthy.
    let h = run(&[
        "health",
        "--url",
        &format!("http://127.0.0.1:{}/readyz", refused_port()),
    ]);
    assert_eq!(h.status.code(), Some(1));

    // The Kubernetes example (deploy/kubernetes/statefulset.yaml): valid against the API's
    // schemas, and its container spec works in this image as written: the args, the
    // downward-API shard index (the pod-index label, given here as a StatefulSet's pod 1
    // would get it), the probes on the paths and port it names. Only the listen address is
    // moved to loopback for the sandbox.
    let manifest_path = root.join("deploy/kubernetes/statefulset.yaml");
    let validate = Command::new(root.join(".venv-test/bin/kubernetes-validate"))
        .args(["--strict", "--quiet"])
        .arg(&manifest_path)
        .output()
        .expect("kubernetes-validate (PyPI) is installed by scripts/test.sh into .venv-test");
    assert!(
        validate.status.success(),
        "{}{}",
        String::from_utf8_lossy(&validate.stdout),
        String::from_utf8_lossy(&validate.stderr)
    );
    let text = std::fs::read_to_string(&manifest_path).unwrap();
    let docs: Vec<serde_yaml_ng::Value> = text
        .split("\n---\n")
        .map(|d| serde_yaml_ng::from_str(d).unwrap())
        .collect();
    let sts = docs.iter().find(|d| d["kind"] == "StatefulSet").expect("a StatefulSet");
    let replicas = sts["spec"]["replicas"].as_u64().unwrap();
    let c = &sts["spec"]["template"]["spec"]["containers"][0];
    let port = free_port();
    let args: Vec<String> = c["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| {
            let a = a.as_str().unwrap();
            match a.strip_prefix("--web.listen-address=") {
                Some(_) => format!("--web.listen-address=127.0.0.1:{port}"),
                None => a.to_string(),
            }
        })
        .collect();
    let mut env: Vec<(String, String)> = Vec::new();
    for e in c["env"].as_sequence().unwrap() {
        let name = e["name"].as_str().unwrap().to_string();
        let value = match e["value"].as_str() {
            Some(v) => v.to_string(),
            None => {
                let path = e["valueFrom"]["fieldRef"]["fieldPath"].as_str().unwrap();
                assert_eq!(path, "metadata.labels['apps.kubernetes.io/pod-index']");
                "1".to_string()
            }
        };
        env.push((name, value));
    }
    let count = env
        .iter()
        .find(|(n, _)| n == "SLOPROBE_SHARD_COUNT")
        .map(|(_, v)| v.clone());
    assert_eq!(count, Some(replicas.to_string()), "shard count and replicas must agree");
    // The ConfigMap's config, with the example's outside URL swapped for a loopback target.
    let config_dir = env
        .iter()
        .find(|(n, _)| n == "SLOPROBE_CONFIG")
        .map(|(_, v)| v.clone())
        .unwrap();
    let mut config: String = docs.iter().find(|d| d["kind"] == "ConfigMap").unwrap()["data"]["sloprobe.toml"]
        .as_str()
        .unwrap()
        .to_string();
    config = config.replace("https://example.com/", &format!("http://127.0.0.1:{}/", refused_port()));
    let config_in_image = mnt.join(config_dir.trim_start_matches('/'));
    std::fs::write(&config_in_image, config).unwrap();
    let mut daemon = Command::new(tool("chroot"));
    daemon
        .arg("--userspec=65532:65532")
        .arg(mnt)
        .arg("/usr/bin/sloprobe")
        .args(&args);
    for (n, v) in &env {
        daemon.env(n, v);
    }
    let _daemon = Child(
        daemon
            .env("SLOPROBE_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    for probe in ["readinessProbe", "livenessProbe"] {
        let path = c[probe]["httpGet"]["path"].as_str().unwrap();
        assert_eq!(c[probe]["httpGet"]["port"], "metrics");
        let url = format!("http://127.0.0.1:{port}{path}");
        let ok = rt.block_on(eventually(100, std::time::Duration::from_millis(100), || async {
            http_get(&url).await.filter(|(s, _)| *s == 200)
        }));
        assert!(ok.is_some(), "{probe} {path} never answered 200");
    }
    let (_, metrics) = rt
        .block_on(http_get(&format!("http://127.0.0.1:{port}/metrics")))
        .unwrap();
    let owned = sloprobe::fleet::Shard { index: 1, count: 3 }.owns("example");
    assert_eq!(metrics.contains("probe_name=\"example\""), owned, "shard 1/3 ignored");
}
