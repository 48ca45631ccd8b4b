//! `sloprobe run`: build everything from config, run every probe on its schedule,
//! serve the endpoints, and stop cleanly on SIGTERM/SIGINT.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{Config, ConfigError};
use crate::demo;
use crate::probe::{self, BuildContext, BuiltProbe};
use crate::runlog::RunLog;
use crate::schedule::Ticker;
use crate::server::{self, AppState};
use crate::slo::{self, Slo};
use crate::telemetry::{Plan, Telemetry};

/// Telemetry's plan for a set of probes: their catalogs, and budgets as bucket edges.
pub fn telemetry_plan<'a>(probes: impl IntoIterator<Item = &'a BuiltProbe>) -> Plan {
    let mut plan = Plan::default();
    for p in probes {
        plan.probes += 1;
        plan.add_kind(p.kind, &p.measures);
        for t in p.budgets.all() {
            plan.add_threshold(p.kind, t.key, t.value);
        }
    }
    plan
}

/// Everything `run`, `check` and `slo` need, validated: config, built probes, SLOs.
pub struct Loaded {
    pub config: Config,
    pub probes: Vec<BuiltProbe>,
    pub slos: Vec<Slo>,
}

pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let config = Config::load(path)?;
    let probes = probe::build_all(&config.probes, &BuildContext::new())?;
    let plan = telemetry_plan(probes.iter());
    let slos = slo::resolve(&config, &probes, &plan)?;
    Ok(Loaded { config, probes, slos })
}

/// One set of running probes with the telemetry built for them. A reload replaces the
/// whole set, because budgets (bucket edges) may have changed with the probes.
struct Generation {
    telemetry: Arc<Telemetry>,
    stop: watch::Sender<bool>,
    loops: Vec<JoinHandle<()>>,
}

impl Generation {
    fn start(loaded: Loaded, log: &Arc<RunLog>) -> anyhow::Result<Generation> {
        let Loaded { config, probes, .. } = loaded;
        let plan = telemetry_plan(probes.iter());
        let telemetry = Arc::new(Telemetry::new(&config.location, plan, config.otlp.as_ref())?);
        if let Some(o) = &config.otlp {
            let endpoint = o.endpoint.as_deref().map_or_else(
                || "(from OTEL_EXPORTER_OTLP_ENDPOINT or default)".to_string(),
                crate::redact::url,
            );
            tracing::info!(protocol = ?o.protocol, %endpoint, interval = ?o.interval, "OTLP push enabled");
        }
        let (stop, stop_rx) = watch::channel(false);
        let loops = probes
            .into_iter()
            .map(|p| {
                tracing::info!(probe = %p.name, kind = p.kind, schedule = %p.schedule.describe(), "scheduled");
                tokio::spawn(probe_loop(Arc::new(p), telemetry.clone(), log.clone(), stop_rx.clone()))
            })
            .collect::<Vec<_>>();
        tracing::info!(probes = loops.len(), location = %config.location, "probes running");
        Ok(Generation { telemetry, stop, loops })
    }

    /// Stops scheduling, lets in-flight runs finish or time out, flushes push exporters.
    async fn stop(self) {
        let _ = self.stop.send(true);
        for l in self.loops {
            let _ = l.await;
        }
        self.telemetry.shutdown(Duration::from_secs(5)).await;
    }
}

pub async fn run(path: PathBuf, loaded: Loaded) -> anyhow::Result<()> {
    // Before anything else: an early SIGHUP must reload, not kill (its default action).
    let mut signals = Signals::new()?;
    let listen = loaded.config.server.listen;
    let loaded_limits = loaded.config.server.limits();
    let (server_stop_tx, server_stop) = watch::channel(false);
    if let Some(d) = &loaded.config.demo {
        let listener = demo::bind(d.listen)
            .await
            .with_context(|| format!("binding demo target on {}", d.listen))?;
        tracing::info!(listen = %d.listen, "demo target serving");
        let mut stop = server_stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = demo::serve(listener) => {}
                _ = stop.changed() => {}
            }
        });
    }

    let log = Arc::new(RunLog::default());
    let mut current = Generation::start(loaded, &log)?;
    let summary = tokio::spawn({
        let log = log.clone();
        async move {
            let mut every = tokio::time::interval(crate::runlog::SUMMARY_EVERY);
            every.tick().await;
            loop {
                every.tick().await;
                log.summary();
            }
        }
    });
    let ready = Arc::new(AtomicBool::new(false));
    let shared = Arc::new(RwLock::new(current.telemetry.clone()));
    let state = AppState {
        telemetry: shared.clone(),
        ready: ready.clone(),
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding [server] listen = {listen}"))?;
    tracing::info!(%listen, "serving /metrics /healthz /readyz");
    let mut stop_rx = server_stop.clone();
    let limits = loaded_limits;
    let server = tokio::spawn(async move {
        let shutdown = async move {
            let _ = stop_rx.changed().await;
        };
        server::serve(listener, server::router(state), limits, shutdown).await;
    });
    ready.store(true, Ordering::Relaxed);
    notify_systemd("READY=1");

    loop {
        match signals.next().await {
            Signal::Stop => break,
            Signal::Reload => {
                tracing::info!(config = %path.display(), "SIGHUP: reloading");
                // Validate everything first; a bad file leaves the running set alone.
                match load(&path) {
                    Err(e) => tracing::error!(error = %e, "reload failed: keeping the running config"),
                    Ok(next) => {
                        if next.config.server.listen != listen {
                            tracing::warn!("[server] listen changed: takes effect on restart");
                        }
                        notify_systemd("RELOADING=1");
                        let old = current;
                        old.stop().await;
                        let names: std::collections::HashSet<String> =
                            next.probes.iter().map(|p| p.name.clone()).collect();
                        log.retain(&|n| names.contains(n));
                        current = Generation::start(next, &log)?;
                        *shared.write().expect("telemetry lock") = current.telemetry.clone();
                        notify_systemd("READY=1");
                        tracing::info!("reloaded");
                    }
                }
            }
        }
    }
    tracing::info!("shutting down: waiting for in-flight runs");
    ready.store(false, Ordering::Relaxed);
    notify_systemd("STOPPING=1");
    current.stop().await;
    summary.abort();
    let _ = server_stop_tx.send(true);
    let _ = server.await;
    tracing::info!("stopped");
    Ok(())
}

/// Runs one probe on its timeline until told to stop; waits for its in-flight run.
pub async fn probe_loop(
    probe: Arc<BuiltProbe>,
    telemetry: Arc<Telemetry>,
    log: Arc<RunLog>,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticker = Ticker::new(probe.schedule.clone());
    let mut running: Option<JoinHandle<()>> = None;
    loop {
        let tick = tokio::select! {
            t = ticker.tick() => t,
            _ = stop.changed() => break,
        };
        telemetry.record_lateness(&probe.name, probe.kind, tick.lateness);
        if tick.missed > 0 {
            telemetry.record_skipped(&probe.name, probe.kind, "missed", tick.missed);
            tracing::warn!(probe = %probe.name, missed = tick.missed, "host stalled: due runs missed");
        }
        if let Some(left) = probe.backoff_remaining() {
            telemetry.record_skipped(&probe.name, probe.kind, "retry_after", 1);
            tracing::debug!(probe = %probe.name, wait = ?left, "target asked to retry later: run skipped");
            continue;
        }
        if running.as_ref().is_some_and(|h| !h.is_finished()) {
            telemetry.record_skipped(&probe.name, probe.kind, "overlap", 1);
            tracing::warn!(probe = %probe.name, "previous run still in flight: this run skipped");
            continue;
        }
        let (p, t, log) = (probe.clone(), telemetry.clone(), log.clone());
        running = Some(tokio::spawn(async move {
            let outcome = p.execute().await;
            t.record(&outcome);
            log.record(&outcome);
        }));
    }
    if let Some(h) = running {
        let _ = h.await;
    }
}

enum Signal {
    Stop,
    Reload,
}

/// SIGTERM/SIGINT stop the daemon; SIGHUP reloads the config.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                term: signal(SignalKind::terminate())?,
                hup: signal(SignalKind::hangup())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    async fn next(&mut self) -> Signal {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => Signal::Stop,
                _ = self.term.recv() => Signal::Stop,
                _ = self.hup.recv() => Signal::Reload,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Signal::Stop
        }
    }
}

/// Tells systemd (Type=notify) about readiness; a no-op elsewhere.
fn notify_systemd(state: &str) {
    #[cfg(unix)]
    if let Some(path) = std::env::var_os("NOTIFY_SOCKET") {
        let sock = std::os::unix::net::UnixDatagram::unbound();
        if let Ok(sock) = sock {
            let _ = sock.send_to(state.as_bytes(), path);
        }
    }
}
