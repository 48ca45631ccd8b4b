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
    // 27.2 MB with the WebDriver and PostgreSQL clients of the browser and vector probes
    // (thin LTO saves nothing measurable; symbols stay so panics name their functions).
    assert!(size <= 30 * 1024 * 1024, "binary is {size} bytes (≤ 30 MB)");

    let tag = format!("localhost/sloprobe-test-{}", std::process::id());
    let _image = Image(tag.clone());
    buildah(&[
        "bud",
        "--quiet",
        "--format",
        "docker",
        "-f",
        "Containerfile",
        "-t",
        &tag,
        root.to_str().unwrap(),
    ]);
    let inspect: serde_json::Value = serde_json::from_str(&buildah(&["inspect", "--type", "image", &tag])).unwrap();
    let cfg = &inspect["Docker"]["config"];
    assert_eq!(cfg["User"], "65532:65532", "{cfg}");
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
}
