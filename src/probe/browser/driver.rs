//! The browser behind `kind = "browser"`: chromedriver spawned on a loopback port in its
//! own process group (or a given `webdriver_url`), health-checked before each run and
//! restarted when it died; a slot limit (`max_concurrent_browsers`); a free-memory floor;
//! and, per run, every Chromium process the run started, found by its profile directory,
//! for its memory (PSS) and for a kill that leaves nothing behind.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt as _, Empty};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use schemars::JsonSchema;
use serde::Deserialize;
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};

use crate::config::{ConfigError, Size, Source, Spanned};
use crate::outcome::{ErrorType, ProbeError};

/// `[browser]` in the daemon file: where Chromium and chromedriver are, and how many
/// browsers may run at once.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BrowserConfig {
    /// chromedriver to spawn (default: `chromedriver` on PATH).
    pub chromedriver: Option<Spanned<String>>,
    /// The browser binary (default: chromium, chromium-browser or google-chrome on PATH).
    pub chromium: Option<Spanned<String>>,
    /// Use a running WebDriver server instead of spawning chromedriver.
    pub webdriver_url: Option<Spanned<String>>,
    /// Browsers running at once (default 1); runs over the limit queue, and a run that
    /// gets no slot within its timeout is skipped.
    pub max_concurrent_browsers: Option<Spanned<u32>>,
    /// No launch below this much available memory (default "512MiB"): a classified
    /// `insufficient_memory` failure instead of a host OOM.
    pub min_free_memory: Option<Spanned<Size>>,
    /// Extra Chromium command-line switches.
    #[serde(default)]
    pub args: Vec<String>,
}

const DEFAULT_MIN_FREE: u64 = 512 * 1024 * 1024;
const DRIVER_START: Duration = Duration::from_secs(15);
const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);

/// The settings a run needs, resolved from `[browser]`.
#[derive(Debug, Clone)]
pub struct HostSettings {
    pub chromedriver: Option<PathBuf>,
    pub chromium: Option<PathBuf>,
    pub webdriver_url: Option<String>,
    pub max_concurrent: usize,
    pub min_free_memory: u64,
    pub args: Vec<String>,
}

impl HostSettings {
    pub fn from_config(c: &BrowserConfig) -> HostSettings {
        HostSettings {
            chromedriver: c
                .chromedriver
                .as_ref()
                .map(|p| PathBuf::from(p.get_ref()))
                .or_else(|| on_path(&["chromedriver"])),
            chromium: c
                .chromium
                .as_ref()
                .map(|p| PathBuf::from(p.get_ref()))
                .or_else(|| on_path(&["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"]))
                .map(past_wrapper),
            webdriver_url: c
                .webdriver_url
                .as_ref()
                .map(|u| u.get_ref().trim_end_matches('/').to_string()),
            max_concurrent: c
                .max_concurrent_browsers
                .as_ref()
                .map_or(1, |n| (*n.get_ref()).max(1) as usize),
            min_free_memory: c.min_free_memory.as_ref().map_or(DEFAULT_MIN_FREE, |s| s.get_ref().0),
            args: c.args.clone(),
        }
    }

    /// Why no browser can run here, if so (nothing to spawn and nothing to connect to).
    pub fn missing(&self) -> Option<String> {
        if self.webdriver_url.is_some() {
            return None;
        }
        let exists = |p: &Option<PathBuf>| p.as_ref().is_some_and(|p| p.is_file());
        match (exists(&self.chromedriver), exists(&self.chromium)) {
            (true, true) => None,
            (false, true) => Some(
                "chromedriver not found (install chromium-driver, or set [browser] chromedriver or webdriver_url)"
                    .into(),
            ),
            (true, false) => {
                Some("Chromium not found (install chromium, or set [browser] chromium or webdriver_url)".into())
            }
            (false, false) => Some(
                "neither Chromium nor chromedriver found (install chromium and chromium-driver, or set [browser] chromium and chromedriver, or webdriver_url)"
                    .into(),
            ),
        }
    }
}

impl Default for HostSettings {
    fn default() -> Self {
        HostSettings::from_config(&BrowserConfig::default())
    }
}

/// The browser binary behind a distribution's launcher script. Debian's `/usr/bin/chromium`
/// is a shell script that sources `/etc/chromium.d/*`, which add flags (GPU rasterization,
/// API keys) the lab runs must not depend on; the binary itself is run instead.
fn past_wrapper(path: PathBuf) -> PathBuf {
    let is_script = |p: &std::path::Path| {
        let mut head = [0u8; 2];
        std::fs::File::open(p)
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
            .is_ok_and(|()| &head == b"#!")
    };
    if !is_script(&path) {
        return path;
    }
    const BEHIND: &[&str] = &[
        "/usr/lib/chromium/chromium",
        "/usr/lib/chromium-browser/chromium-browser",
        "/usr/lib64/chromium-browser/chromium-browser",
        "/opt/google/chrome/chrome",
    ];
    BEHIND
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file() && !is_script(p))
        .unwrap_or(path)
}

fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names
        .iter()
        .flat_map(|n| std::env::split_paths(&path).map(move |d| d.join(n)))
        .find(|p| p.is_file())
}

/// Shared by every browser probe built together: one chromedriver, one slot pool.
pub struct Browsers {
    pub settings: HostSettings,
    slots: Arc<Semaphore>,
    driver: Mutex<Option<Driver>>,
    generation: std::sync::atomic::AtomicU64,
    http: HttpClient<HttpConnector, Empty<bytes::Bytes>>,
}

impl std::fmt::Debug for Browsers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browsers").field("settings", &self.settings).finish()
    }
}

/// A spawned chromedriver; dropping it kills its whole process group (the browsers it
/// started are in it).
struct Driver {
    child: tokio::process::Child,
    pgid: i32,
    url: String,
    generation: u64,
    /// XDG_CONFIG_HOME of chromedriver and its browsers: Chromium's crash handler starts
    /// its own process group, and this path in its command line finds it.
    _home: Profile,
}

impl Drop for Driver {
    fn drop(&mut self) {
        kill_group(self.pgid);
        let _ = self.child.start_kill();
        // `home` is dropped next: whatever still runs under it is killed, then removed.
    }
}

/// The guard chromedriver runs under (POSIX sh): it starts chromedriver, and once this
/// process is gone (or chromedriver is) kills what runs under this process's browser
/// profiles, removes them, and ends its process group. $1: our pid, $2: the temp dir,
/// then chromedriver and its arguments.
const GUARD_SCRIPT: &str = r#"parent=$1; tmp=$2; shift 2
"$@" &
child=$!
while kill -0 "$parent" 2>/dev/null && kill -0 "$child" 2>/dev/null; do sleep 0.2; done
if ! kill -0 "$parent" 2>/dev/null; then
  pkill -KILL -f "sloprobe-browser-$parent-" 2>/dev/null
  rm -rf "$tmp"/sloprobe-browser-"$parent"-*
fi
kill -KILL 0"#;

/// The shell the guard runs in; `SLOPROBE_NO_BROWSER_GUARD` (tests) runs chromedriver bare.
/// Variables a browser needs (locale, time zone, fonts, the program search path), and no
/// others.
const CHILD_ENV: &[&str] = &[
    "PATH",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "FONTCONFIG_FILE",
    "FONTCONFIG_PATH",
];

fn child_env() -> Vec<(std::ffi::OsString, std::ffi::OsString)> {
    CHILD_ENV
        .iter()
        .filter_map(|k| Some((std::ffi::OsString::from(k), std::env::var_os(k)?)))
        .collect()
}

fn guard_shell() -> Option<&'static str> {
    if std::env::var_os("SLOPROBE_NO_BROWSER_GUARD").is_some() {
        return None;
    }
    ["/bin/sh", "/usr/bin/sh"]
        .into_iter()
        .find(|p| std::path::Path::new(p).is_file())
}

fn kill_group(pgid: i32) {
    if pgid > 1 {
        // SAFETY: kill(2) with a negative pid signals that process group; no memory involved.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
    }
}

impl Browsers {
    pub fn new(settings: HostSettings) -> Browsers {
        Browsers {
            slots: Arc::new(Semaphore::new(settings.max_concurrent)),
            settings,
            driver: Mutex::new(None),
            generation: std::sync::atomic::AtomicU64::new(0),
            http: HttpClient::builder(hyper_util::rt::TokioExecutor::new()).build(HttpConnector::new()),
        }
    }

    /// A browser slot, waiting at most `wait`.
    pub async fn slot(&self, wait: Duration) -> Option<OwnedSemaphorePermit> {
        tokio::time::timeout(wait, self.slots.clone().acquire_owned())
            .await
            .ok()?
            .ok()
    }

    /// The browser-level DevTools WebSocket URL of a Chromium listening at `address`.
    pub async fn devtools_url(&self, address: &str) -> Option<String> {
        let address = address.replace("localhost", "127.0.0.1");
        let v = self.get_json(&format!("http://{address}/json/version")).await?;
        v["webSocketDebuggerUrl"].as_str().map(str::to_string)
    }

    /// A small JSON document from a loopback endpoint (chromedriver's or Chromium's).
    async fn get_json(&self, url: &str) -> Option<serde_json::Value> {
        let uri = url.parse::<http::Uri>().ok()?;
        let fetch = async {
            let resp = self.http.get(uri).await.ok()?;
            let body = http_body_util::Limited::new(resp.into_body(), 64 * 1024)
                .collect()
                .await
                .ok()?
                .to_bytes();
            serde_json::from_slice(&body).ok()
        };
        tokio::time::timeout(HEALTH_TIMEOUT, fetch).await.ok().flatten()
    }

    /// Fails when available memory is under the floor.
    pub fn check_memory(&self) -> Result<(), ProbeError> {
        let Some(free) = mem_available() else { return Ok(()) };
        if free < self.settings.min_free_memory {
            return Err(ProbeError::new(
                ErrorType::InsufficientMemory,
                format!(
                    "{} available, under the {} floor (min_free_memory): browser not started",
                    bytesize::ByteSize(free).display().iec(),
                    bytesize::ByteSize(self.settings.min_free_memory).display().iec()
                ),
            ));
        }
        Ok(())
    }

    /// Whether runs start local processes this daemon can see (and must clean up).
    pub fn local(&self) -> bool {
        self.settings.webdriver_url.is_none()
    }

    /// The WebDriver URL to open a session on, and which driver it is (a number that
    /// changes with every restart): the given URL, or our chromedriver, (re)started when
    /// it died or stopped answering.
    pub async fn endpoint(&self) -> Result<(String, u64), ProbeError> {
        if let Some(url) = &self.settings.webdriver_url {
            return Ok((url.clone(), 0));
        }
        let mut driver = self.driver.lock().await;
        if let Some(d) = driver.as_mut() {
            let alive = matches!(d.child.try_wait(), Ok(None));
            if alive && self.ready(&d.url).await {
                return Ok((d.url.clone(), d.generation));
            }
            tracing::warn!(alive, "chromedriver not answering: restarting it");
            *driver = None;
        }
        let mut d = self.spawn().await?;
        d.generation = self.generation.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let found = (d.url.clone(), d.generation);
        *driver = Some(d);
        Ok(found)
    }

    async fn spawn(&self) -> Result<Driver, ProbeError> {
        let fail = |m: String| ProbeError::new(ErrorType::BrowserError, m);
        let exe = self
            .settings
            .chromedriver
            .clone()
            .ok_or_else(|| fail("chromedriver not found".into()))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| fail(format!("no free loopback port for chromedriver: {e}")))?
            .port();
        let home = Profile::new()?;
        // Under a guard: if this process dies without cleaning up (SIGKILL, a crash), the
        // guard kills every browser under our profiles and removes them.
        let mut command = match guard_shell() {
            Some(sh) => {
                let mut c = tokio::process::Command::new(sh);
                c.arg("-c")
                    .arg(GUARD_SCRIPT)
                    .arg("sloprobe-browser-guard")
                    .arg(std::process::id().to_string())
                    .arg(std::env::temp_dir())
                    .arg(&exe);
                c
            }
            None => tokio::process::Command::new(&exe),
        };
        // chromedriver and Chromium get a clean environment: the daemon's may hold the
        // secrets its config names as env:NAME, which a browser has no business seeing.
        command.env_clear().envs(child_env());
        let child = command
            .arg(format!("--port={port}"))
            .env("HOME", &home.dir)
            .env("XDG_CONFIG_HOME", &home.dir)
            .env("XDG_CACHE_HOME", &home.dir)
            // chromedriver's scoped dirs and Chromium's singleton sockets go under the
            // driver's own profile, which its Drop (or the guard) removes; in the system
            // temp dir a killed browser left them behind (1,100 seen after test runs).
            .env("TMPDIR", &home.dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| fail(format!("cannot start {}: {e}", exe.display())))?;
        let pgid = child.id().map_or(0, |p| p as i32);
        let mut d = Driver {
            child,
            pgid,
            url: format!("http://127.0.0.1:{port}"),
            generation: 0,
            _home: home,
        };
        let until = Instant::now() + DRIVER_START;
        while Instant::now() < until {
            if let Ok(Some(status)) = d.child.try_wait() {
                return Err(fail(format!("chromedriver exited at start ({status})")));
            }
            if self.ready(&d.url).await {
                tracing::info!(pid = pgid, url = %d.url, "chromedriver started");
                return Ok(d);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = d.child.start_kill();
        Err(fail(format!("chromedriver not ready within {DRIVER_START:?}")))
    }

    /// GET /status says `"ready": true`.
    async fn ready(&self, base: &str) -> bool {
        let status = self.get_json(&format!("{base}/status")).await;
        status.and_then(|v| v.pointer("/value/ready").and_then(serde_json::Value::as_bool)) == Some(true)
    }

    /// The chromedriver pid (under its guard, the guard's child), for tests that kill it.
    pub async fn driver_pid(&self) -> Option<u32> {
        let started = self.driver.lock().await.as_ref().and_then(|d| d.child.id())?;
        let child_of = |parent: u32| -> Option<u32> {
            std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
                let pid: u32 = e.file_name().to_str()?.parse().ok()?;
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
                let ppid: u32 = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()?;
                (ppid == parent).then_some(pid)
            })
        };
        Some(child_of(started).unwrap_or(started))
    }
}

/// Memory one Chromium run takes: the whole browser with the run's tab measured 472 MiB
/// PSS (median, docs/benchmarks.md "Browser"), rounded up.
const MEMORY_PER_BROWSER: u64 = 512 * 1024 * 1024;

impl HostSettings {
    /// Why this host cannot carry the browser probes as configured, if so: more slots than
    /// cores or memory carry (lab timings degrade when browsers share a core: 20 at once on
    /// 2 cores gave LCPs 20× off), or more browser work per second than the slots run
    /// (queued runs wait into their timeout). `runs` holds each browser probe's (timeout,
    /// shortest period).
    pub fn capacity_warnings(&self, runs: &[(Duration, Duration)]) -> Vec<String> {
        let mut out = Vec::new();
        if runs.is_empty() || self.webdriver_url.is_some() {
            return out;
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let memory = mem_total().unwrap_or(0);
        let by_memory = (memory / MEMORY_PER_BROWSER).max(1) as usize;
        let carried = cores.min(by_memory);
        if self.max_concurrent > carried {
            out.push(format!(
                "max_concurrent_browsers = {} but this host carries {carried} at once ({cores} core(s), {:.1} GiB, ~512 MiB a browser): lab timings degrade when browsers share a core; set it to {carried} or less",
                self.max_concurrent,
                memory as f64 / (1u64 << 30) as f64
            ));
        }
        // Seconds of browser time asked per second, at worst (every run takes its timeout).
        let demand: f64 = runs
            .iter()
            .map(|(timeout, period)| timeout.as_secs_f64() / period.as_secs_f64().max(0.001))
            .sum();
        let slots = self.max_concurrent.min(carried);
        if demand > slots as f64 {
            out.push(format!(
                "{} browser probe(s) may ask for {demand:.1} browser-seconds a second and {slots} slot(s) run them: runs queue and can time out waiting; run them less often, shorten their timeouts, or add slots on a bigger host",
                runs.len()
            ));
        }
        out
    }
}

/// MemTotal from /proc/meminfo, in bytes.
fn mem_total() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// MemAvailable from /proc/meminfo, in bytes.
fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// A fresh profile directory for one run; removed (after its processes are killed)
/// when dropped.
pub struct Profile {
    pub dir: PathBuf,
}

impl Profile {
    pub fn new() -> Result<Profile, ProbeError> {
        let base = std::env::temp_dir();
        for _ in 0..8 {
            // Our pid in the name: the guard finds what to remove if we die unclean.
            let dir = base.join(format!("sloprobe-browser-{}-{:016x}", std::process::id(), rand_u64()));
            match std::fs::create_dir(&dir) {
                Ok(()) => return Ok(Profile { dir }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(ProbeError::new(
                        ErrorType::BrowserError,
                        format!("cannot create a browser profile in {}: {e}", base.display()),
                    ));
                }
            }
        }
        Err(ProbeError::new(
            ErrorType::BrowserError,
            "cannot create a browser profile",
        ))
    }

    /// Every live process started with this directory in its command line (a run's
    /// browser, or a chromedriver's crash handlers), with their descendants.
    pub fn processes(&self) -> Vec<i32> {
        processes_of(&self.dir.display().to_string())
    }

    /// Kills every process of this run's browser and removes the profile.
    pub fn clean(&self) {
        for _ in 0..3 {
            let pids = self.processes();
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                // SAFETY: kill(2) on a pid we found under our own profile dir.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Profile {
    fn drop(&mut self) {
        self.clean();
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// Live processes whose command line contains `marker`, and all their descendants
/// (Chromium's GPU and utility processes do not all repeat the profile switch).
pub fn processes_of(marker: &str) -> Vec<i32> {
    let mut all: Vec<(i32, i32, bool)> = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Some((ppid, state)) = stat(pid) else { continue };
        if state == 'Z' || state == 'X' {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let hit = String::from_utf8_lossy(&cmdline).contains(marker);
        all.push((pid, ppid, hit));
    }
    let mut found: Vec<i32> = all.iter().filter(|p| p.2).map(|p| p.0).collect();
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        for p in &all {
            if p.1 == parent && !found.contains(&p.0) {
                found.push(p.0);
            }
        }
        i += 1;
    }
    found
}

/// (ppid, state) from /proc/PID/stat (fields after the parenthesised name).
fn stat(pid: i32) -> Option<(i32, char)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let mut f = rest.split_whitespace();
    let state = f.next()?.chars().next()?;
    let ppid = f.next()?.parse().ok()?;
    Some((ppid, state))
}

/// Summed proportional set size of `pids`, in bytes (shared pages split between them).
pub fn pss(pids: &[i32]) -> u64 {
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok())
        .filter_map(|s| {
            let line = s.lines().find(|l| l.starts_with("Pss:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .sum::<u64>()
        * 1024
}

/// Chromium processes running on this host at all (for tests and the benchmark).
pub fn chromium_processes() -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()))
        .filter(|pid| stat(*pid).is_some_and(|(_, st)| st != 'Z' && st != 'X'))
        .filter(|pid| {
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
            let name = exe.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
            name.contains("chrom") || name.contains("chrome")
        })
        .collect()
}
/// `[browser]`: a WebDriver URL that parses, a sane slot count.
impl BrowserConfig {
    pub fn check(&self, source: &Source) -> Result<HostSettings, ConfigError> {
        let c = self;
        if let Some(u) = &c.webdriver_url {
            let ok = url::Url::parse(u.get_ref())
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
            if !ok {
                return Err(source.error_at(
                    u.span(),
                    Some("browser.webdriver_url"),
                    format!("{:?} is not an http(s) URL", crate::redact::url(u.get_ref())),
                ));
            }
        }
        if let Some(n) = &c.max_concurrent_browsers
            && !(1..=64).contains(n.get_ref())
        {
            return Err(source.error_at(n.span(), Some("browser.max_concurrent_browsers"), "between 1 and 64"));
        }
        for (key, p) in [
            ("browser.chromedriver", &c.chromedriver),
            ("browser.chromium", &c.chromium),
        ] {
            if let Some(p) = p
                && !std::path::Path::new(p.get_ref()).is_file()
            {
                return Err(source.error_at(p.span(), Some(key), format!("{} is not a file", p.get_ref())));
            }
        }
        Ok(HostSettings::from_config(c))
    }
}
