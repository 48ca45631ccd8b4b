//! One Chromium kept per browser slot, and a fresh browser context per run.
//!
//! Launching Chromium costs ~0.4 s of wall time and CPU per run. A new *browser context*
//! (what an incognito window is) costs far less and is just as cold: its own HTTP cache,
//! cookies, storage and connection pools, all dropped with it. WebDriver cannot create
//! one, so the run opens Chromium's browser-level DevTools socket (the `debuggerAddress`
//! chromedriver reports) for two calls, `Target.createBrowserContext` and
//! `Target.createTarget`, then drives the new tab over WebDriver as before. The context
//! is created with `disposeOnDetach`, so if the run is cut off and the socket dropped,
//! Chromium throws the context away by itself. The next run's tab is prepared as soon as
//! a run ends, off its clock. A browser is recycled after `RECYCLE_AFTER` runs, and
//! discarded (its processes killed) after any browser-level failure or a cut-off run.
//!
//! The DevTools calls are a few lines of JSON over the WebSocket crate the websocket probe
//! already uses; a CDP client crate would bring hundreds of generated types for two calls.

use std::sync::Arc;
use std::time::Duration;

use fantoccini::wd::WindowHandle;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::sync::OwnedSemaphorePermit;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use super::driver::{Browsers, Profile};
use crate::outcome::{ErrorType, ProbeError};

/// Runs one Chromium serves before it is replaced (bounds slow leaks in long-lived browsers).
pub const RECYCLE_AFTER: u32 = 50;
const CDP_TIMEOUT: Duration = Duration::from_secs(10);
/// DevTools events quote URLs and headers; a page can make them large, never larger than this.
const MAX_DEVTOOLS_MESSAGE: usize = 16 * 1024 * 1024;

pub fn error(during: &str, e: impl std::fmt::Display) -> ProbeError {
    let text = e.to_string();
    if crashed(&text) {
        return ProbeError::new(
            ErrorType::BrowserError,
            format!("the page crashed while {during} (its renderer died: out of memory, a Chromium bug, or killed)"),
        );
    }
    // WebDriver errors can quote the page URL (with its credentials and query).
    let msg: String = crate::redact::text(&text).chars().take(300).collect();
    ProbeError::new(ErrorType::BrowserError, format!("{during}: {msg}"))
}

/// Errors while a navigation is under way (the old document is gone) are retried;
/// a lost session or browser is not.
pub fn session_lost(e: &fantoccini::error::CmdError) -> bool {
    use fantoccini::error::{CmdError, ErrorStatus};
    if crashed(&e.to_string()) {
        return true;
    }
    match e {
        CmdError::Standard(w) => matches!(
            w.error,
            ErrorStatus::InvalidSessionId | ErrorStatus::NoSuchWindow | ErrorStatus::SessionNotCreated
        ),
        CmdError::Lost(_) | CmdError::Failed(_) => true,
        _ => false,
    }
}

/// Whether a WebDriver error says the page's renderer is gone (chromedriver: "tab
/// crashed", "session deleted because of page crash").
pub fn crashed(text: &str) -> bool {
    text.contains("tab crashed") || text.contains("page crash")
}

/// A running Chromium behind a WebDriver session.
pub struct Browser {
    client: Option<fantoccini::Client>,
    /// Which chromedriver started it (`Browsers::endpoint`); a restart orphans the rest.
    driver: u64,
    /// The browser-level DevTools WebSocket URL; `None` for a remote `webdriver_url`,
    /// whose browser is used for one run and closed.
    devtools: Option<String>,
    /// The window the session opened with; the run's tab is another one.
    home: Option<WindowHandle>,
    runs: u32,
    tab: Option<Tab>,
    /// Dropped after the session: kills whatever still runs under the profile.
    profile: Option<Profile>,
}

/// A run's browser context: alive as long as its DevTools socket is, which the network
/// watch reads until the tab is closed.
pub struct Tab {
    network: super::network::Watch,
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(c) = self.client.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(5), c.close()).await;
            });
        }
    }
}

/// What else it takes to keep Chromium from calling out on every launch: with the flags
/// above alone it still asks accounts.google.com, update.googleapis.com and
/// clients2.google.com, and a new window opens the distribution's home page (Debian's:
/// start.duckduckgo.com) — seen through a logging proxy; `tests/browser_probe.rs` checks
/// none are left. Those services' URLs point at port 9, which Chromium refuses to
/// connect to; the home page is about:blank (prefs below); the rest follows Lighthouse's
/// chrome-launcher.
const QUIET: &[&str] = &[
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-component-extensions-with-background-pages",
    "--disable-breakpad",
    "--no-pings",
    "--metrics-recording-only",
    "--disable-search-engine-choice-screen",
    "--gaia-url=http://127.0.0.1:9",
    "--google-apis-url=http://127.0.0.1:9",
    "--lso-url=http://127.0.0.1:9",
    "--component-updater=url-source=http://127.0.0.1:9",
];

/// Features that call out (optimization hints, network time, translation, media router).
const DISABLED_FEATURES: &str = "OptimizationHints,OptimizationGuideModelDownloading,OptimizationHintsFetching,MediaRouter,DialMediaRouteProvider,Translate,NetworkTimeServiceQuerying,AutofillServerCommunication,CertificateTransparencyComponentUpdater,InterestFeedContentSuggestions,PrivacySandboxSettings4";

impl Browser {
    pub fn client(&self) -> &fantoccini::Client {
        self.client.as_ref().expect("open session")
    }

    pub fn profile(&self) -> Option<&Profile> {
        self.profile.as_ref()
    }

    /// Starts Chromium through chromedriver.
    pub async fn launch(browsers: &Browsers) -> Result<Browser, ProbeError> {
        let (endpoint, driver) = browsers.endpoint().await?;
        let profile = if browsers.local() { Some(Profile::new()?) } else { None };
        let mut args = vec![
            "--headless=new".to_string(),
            "--disable-gpu".into(),
            "--no-first-run".into(),
            "--no-default-browser-check".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-extensions".into(),
            "--disable-dev-shm-usage".into(),
            "--mute-audio".into(),
            "--autoplay-policy=no-user-gesture-required".into(),
            "--window-size=1350,940".into(),
        ];
        // Chromium keeps only the last --disable-features: an operator's list joins ours.
        let mut disabled = String::from(DISABLED_FEATURES);
        for a in &browsers.settings.args {
            if let Some(more) = a.strip_prefix("--disable-features=") {
                disabled.push(',');
                disabled.push_str(more);
            }
        }
        args.extend(QUIET.iter().map(|a| a.to_string()));
        args.push(format!("--disable-features={disabled}"));
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            // Chromium's sandbox refuses to run as root.
            args.push("--no-sandbox".into());
        }
        let mut options = serde_json::Map::new();
        if let Some(p) = &profile {
            args.push(format!("--user-data-dir={}", p.dir.display()));
            if let Some(bin) = &browsers.settings.chromium {
                options.insert("binary".into(), json!(bin));
            }
        }
        args.extend(
            browsers
                .settings
                .args
                .iter()
                .filter(|a| !a.starts_with("--disable-features="))
                .cloned(),
        );
        options.insert("args".into(), json!(args));
        // No preconnects of the browser's own, and no home page loaded in a new window: the
        // page's requests are all a run makes.
        options.insert(
            "prefs".into(),
            json!({
                "net": {"network_prediction_options": 2},
                "homepage": "about:blank",
                "homepage_is_newtabpage": false,
                "session": {"restore_on_startup": 4, "startup_urls": ["about:blank"]},
            }),
        );
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        // Navigation returns at once; the probe waits for load itself, up to its deadline.
        caps.insert("pageLoadStrategy".into(), json!("none"));
        caps.insert("goog:chromeOptions".into(), Value::Object(options));
        let client = fantoccini::ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&endpoint)
            .await
            .map_err(|e| error("starting the browser", e))?;
        let mut browser = Browser {
            client: Some(client),
            driver,
            devtools: None,
            home: None,
            runs: 0,
            tab: None,
            profile,
        };
        if browsers.local() {
            let address = browser
                .client()
                .capabilities()
                .and_then(|c| c.get("goog:chromeOptions"))
                .and_then(|o| o.get("debuggerAddress"))
                .and_then(Value::as_str)
                .map(str::to_string);
            if let Some(address) = address {
                browser.devtools = browsers.devtools_url(&address).await;
            }
            browser.home = browser.client().window().await.ok();
        }
        Ok(browser)
    }

    /// Whether this browser serves more than one run.
    pub fn reusable(&self) -> bool {
        self.devtools.is_some() && self.home.is_some()
    }

    /// Opens a fresh browser context with one tab and points the session at it.
    pub async fn open_tab(&mut self) -> Result<(), ProbeError> {
        if !self.reusable() || self.tab.is_some() {
            return Ok(());
        }
        let url = self.devtools.clone().unwrap_or_default();
        let mut ws = devtools_socket(&url).await?;
        let context = call(
            &mut ws,
            1,
            "Target.createBrowserContext",
            json!({"disposeOnDetach": true}),
        )
        .await?;
        let context = context["browserContextId"].as_str().unwrap_or_default().to_string();
        let target = call(
            &mut ws,
            2,
            "Target.createTarget",
            json!({"url": "about:blank", "browserContextId": context}),
        )
        .await?;
        let target = target["targetId"].as_str().unwrap_or_default().to_string();
        let attached = call(
            &mut ws,
            3,
            "Target.attachToTarget",
            json!({"targetId": target, "flatten": true}),
        )
        .await?;
        let page_session = attached["sessionId"].as_str().unwrap_or_default().to_string();
        let handle = WindowHandle::try_from(target).map_err(|e| error("opening a tab", e))?;
        self.client()
            .switch_to_window(handle)
            .await
            .map_err(|e| error("switching to the new tab", e))?;
        let network = super::network::Watch::start(ws, page_session)
            .await
            .map_err(|e| error("watching the tab's network", e))?;
        self.tab = Some(Tab { network });
        Ok(())
    }

    /// Adds `traceparent` to the run's requests (local browsers: the DevTools socket is ours).
    pub fn tracer(&self) -> Option<super::network::Tracer> {
        self.tab.as_ref().map(|t| t.network.tracer())
    }

    /// The run's network log, when the browser is local (its DevTools socket is ours).
    pub fn network(&self) -> Option<Arc<std::sync::Mutex<super::network::Log>>> {
        self.tab.as_ref().map(|t| t.network.log.clone())
    }

    /// Ends the run's context (its tab, cache, cookies and connections go with it) and
    /// turns the session back to its first window.
    pub async fn close_tab(&mut self) -> Result<(), ProbeError> {
        self.runs += 1;
        if let Some(tab) = self.tab.take() {
            drop(tab);
            if let Some(home) = self.home.clone() {
                self.client()
                    .switch_to_window(home)
                    .await
                    .map_err(|e| error("closing the run's tab", e))?;
            }
        }
        Ok(())
    }

    pub fn worn_out(&self) -> bool {
        self.runs >= RECYCLE_AFTER
    }
}

async fn devtools_socket(url: &str) -> Result<WebSocketStream<tokio::net::TcpStream>, ProbeError> {
    let parsed = url::Url::parse(url).map_err(|e| error("DevTools address", e))?;
    let host = parsed.host_str().unwrap_or("127.0.0.1");
    // "localhost" in Chromium's answer means its loopback listener.
    let host = if host == "localhost" { "127.0.0.1" } else { host };
    let addr = format!("{host}:{}", parsed.port().unwrap_or(9222));
    let connect = async {
        let tcp = tokio::net::TcpStream::connect(&addr)
            .await
            .map_err(|e| error("DevTools", e))?;
        // One DevTools message is capped: a page cannot make one event cost more.
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(MAX_DEVTOOLS_MESSAGE))
            .max_frame_size(Some(MAX_DEVTOOLS_MESSAGE));
        let (ws, _) = tokio_tungstenite::client_async_with_config(url, tcp, Some(config))
            .await
            .map_err(|e| error("DevTools", e))?;
        Ok(ws)
    };
    tokio::time::timeout(CDP_TIMEOUT, connect)
        .await
        .map_err(|_| error("DevTools", "no answer"))?
}

/// One DevTools call: send, then read until the answer with this id (events are skipped).
async fn call(
    ws: &mut WebSocketStream<tokio::net::TcpStream>,
    id: u64,
    method: &str,
    params: Value,
) -> Result<Value, ProbeError> {
    let exchange = async {
        ws.send(Message::text(
            json!({"id": id, "method": method, "params": params}).to_string(),
        ))
        .await
        .map_err(|e| error(method, e))?;
        while let Some(msg) = ws.next().await {
            let Message::Text(text) = msg.map_err(|e| error(method, e))? else {
                continue;
            };
            let Ok(v) = serde_json::from_str::<Value>(text.as_str()) else {
                continue;
            };
            if v["id"].as_u64() == Some(id) {
                if let Some(e) = v.get("error") {
                    return Err(error(method, e));
                }
                return Ok(v["result"].clone());
            }
        }
        Err(error(method, "DevTools socket closed"))
    };
    tokio::time::timeout(CDP_TIMEOUT, exchange)
        .await
        .map_err(|_| error(method, "no answer"))?
}

/// The host's browsers (chromedriver, slots) and the Chromiums idle between runs, each
/// with the next run's tab open. Shared by every browser probe built together.
pub struct Pool {
    host: Browsers,
    idle: std::sync::Mutex<Vec<Browser>>,
}

impl Pool {
    pub fn new(host: Browsers) -> Pool {
        Pool {
            host,
            idle: std::sync::Mutex::default(),
        }
    }

    fn idle(&self) -> Option<Browser> {
        self.idle.lock().expect("idle browsers").pop()
    }

    fn give_back(&self, b: Browser) {
        self.idle.lock().expect("idle browsers").push(b);
    }
}

impl std::ops::Deref for Pool {
    type Target = Browsers;
    fn deref(&self) -> &Browsers {
        &self.host
    }
}

/// A browser slot held for one run. Finished, it hands the browser back to the pool
/// with the next run's tab prepared; dropped unfinished (the run was cut off), the
/// browser is discarded with all its processes.
pub struct Lease {
    pub browser: Option<Browser>,
    permit: Option<OwnedSemaphorePermit>,
    pool: Arc<Pool>,
}

impl Lease {
    pub async fn take(pool: Arc<Pool>, permit: OwnedSemaphorePermit) -> Result<Lease, ProbeError> {
        // Health-checks (and restarts) chromedriver; browsers of an earlier one are gone.
        let (_, driver) = pool.endpoint().await?;
        let mut browser = None;
        while let Some(b) = pool.idle() {
            if b.driver == driver && b.client().window().await.is_ok() {
                browser = Some(b);
                break;
            }
            let _ = tokio::task::spawn_blocking(move || drop(b)).await;
        }
        let mut browser = match browser {
            Some(b) => b,
            None => Browser::launch(&pool).await?,
        };
        if let Err(e) = browser.open_tab().await {
            // A browser that died while idle: start a new one once.
            drop(browser);
            browser = Browser::launch(&pool).await?;
            browser.open_tab().await.map_err(|_| e)?;
        }
        Ok(Lease {
            browser: Some(browser),
            permit: Some(permit),
            pool,
        })
    }

    pub fn browser(&self) -> &Browser {
        self.browser.as_ref().expect("leased browser")
    }

    /// Ends the run. A healthy, reusable browser goes back to the pool in the background,
    /// its next tab opened off this run's clock; the slot stays taken until it is back.
    pub async fn finish(mut self, healthy: bool) {
        let Some(mut browser) = self.browser.take() else { return };
        let permit = self.permit.take();
        if !healthy || !browser.reusable() {
            // Killing its processes and removing its profile blocks for a moment.
            let _ = tokio::task::spawn_blocking(move || drop(browser)).await;
            drop(permit);
            return;
        }
        let pool = self.pool.clone();
        tokio::spawn(async move {
            let ready = browser.close_tab().await.is_ok() && !browser.worn_out() && browser.open_tab().await.is_ok();
            if ready {
                pool.give_back(browser);
            } else {
                let _ = tokio::task::spawn_blocking(move || drop(browser)).await;
            }
            drop(permit);
        });
    }
}
