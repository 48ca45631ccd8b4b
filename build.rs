//! Records the git revision the binary is built from (`--version`, `sloprobe_build_info`).
use std::process::Command;

fn main() {
    let revision = std::env::var("SLOPROBE_REVISION")
        .ok()
        .filter(|r| !r.is_empty())
        .or_else(|| {
            let out = Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()?;
            let rev = String::from_utf8(out.stdout).ok()?.trim().to_string();
            // --no-optional-locks: a plain `git status` refreshes and rewrites .git/index,
            // which the rerun-if-changed below watches, so the next build would run this
            // script (and rebuild the crate) again.
            let dirty = Command::new("git")
                .args(["--no-optional-locks", "status", "--porcelain", "--untracked-files=no"])
                .output()
                .ok()
                .is_some_and(|o| !o.stdout.is_empty());
            (out.status.success() && !rev.is_empty()).then(|| if dirty { format!("{rev}-dirty") } else { rev })
        });
    println!(
        "cargo:rustc-env=SLOPROBE_REVISION={}",
        revision.unwrap_or_else(|| "unknown".into())
    );
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=SLOPROBE_BUILD_DATE={date}");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/index");
    println!("cargo:rerun-if-env-changed=SLOPROBE_REVISION");
}
