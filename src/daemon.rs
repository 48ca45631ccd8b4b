//! `sloprobe run`: build everything from config, run every probe on its schedule,
//! serve the endpoints, and stop cleanly on SIGTERM/SIGINT.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::assembly::Config;
use crate::config::ConfigError;
use crate::demo;
use crate::outcome::Watch;
use crate::probe::{self, BuildContext, BuiltProbe};
use crate::runlog::RunLog;
use crate::schedule::Ticker;
use crate::server::{self, AppState};
use crate::slo::{self, Sli, Slo};
use crate::telemetry::{Plan, ProbePlan, Telemetry};

/// Telemetry's plan: every kind's catalog, and per probe its labels and the thresholds to
/// count exactly (per-run and percentile budgets, and the SLO thresholds naming it).
pub fn telemetry_plan(probes: &[BuiltProbe], slos: &[Slo]) -> Plan {
    let mut plan = Plan::default();
    for kind in crate::assembly::KINDS {
        plan.add_kind(kind.name, &probe::measures_of(kind));
    }
    for p in probes {
        let mut thresholds: Vec<Watch> = Vec::new();
        let mut watch = |key: &'static str, value: f64, unit| {
            if !thresholds.iter().any(|w| w.key == key && w.value == value) {
                thresholds.push(Watch { key, value, unit });
            }
        };
        for t in p.budgets.all() {
            watch(t.key, t.value, t.unit);
        }
        for slo in slos.iter().filter(|s| s.probes.contains(&p.name)) {
            if let Sli::Below { key, threshold, .. } = &slo.sli
                && let Some(m) = p.measures.iter().find(|m| m.key == key.as_str())
            {
                watch(m.key, *threshold, m.unit);
            }
        }
        thresholds.shrink_to_fit();
        let headline = crate::assembly::kind(p.kind).map_or(&[][..], |k| k.headline);
        let mut exemplar_keys: Vec<&'static str> = headline.to_vec();
        for w in &thresholds {
            if !exemplar_keys.contains(&w.key) {
                exemplar_keys.push(w.key);
            }
        }
        plan.probes.insert(
            p.name.clone(),
            ProbePlan {
                kind: p.kind,
                labels: p.labels.clone(),
                thresholds,
                // build() appends a probe's own measures after its kind's catalog.
                extra: p
                    .measures
                    .get(plan.catalogs.get(p.kind).map_or(0, Vec::len)..)
                    .unwrap_or(&[])
                    .to_vec(),
                single_valued: p.single_valued,
                base: Arc::from([]),
                run_success: Arc::from([]),
                last_success: Arc::default(),
                unscheduled: p.unavailable.is_some(),
                exemplar_keys,
            },
        );
    }
    plan
}

/// `/probe` runs in flight at most, unless `[server] probe_concurrency` says otherwise.
pub const DEFAULT_PROBE_CONCURRENCY: usize = 16;

/// Everything `run`, `check` and `slo` need, validated: config, built probes, SLOs.
pub struct Loaded {
    pub config: Config,
    pub probes: Vec<BuiltProbe>,
    pub slos: Vec<Slo>,
    pub error_budgets: Vec<slo::ErrorBudget>,
}

pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let config = Config::load(path)?;
    let ctx = BuildContext::with_browser(config.browser.clone());
    let probes = probe::build_all(&config.probes, &ctx)?;
    // A module is built once with its kind's sample target, so its mistakes surface here.
    for m in &config.modules {
        probe::build(&m.sample, &ctx).map_err(|mut e| {
            e.key = e.key.replacen("probe", "module", 1);
            e
        })?;
    }
    let slos = slo::resolve(&config.slos, config.rum.as_ref(), &probes)?;
    let error_budgets = slo::resolve_error_budgets(&config.error_budgets, &slos)?;
    Ok(Loaded {
        config,
        probes,
        slos,
        error_budgets,
    })
}

impl Loaded {
    fn plan(&self, instance_id: &str) -> Plan {
        let mut plan = telemetry_plan(&self.probes, &self.slos);
        plan.histograms = self.config.histograms;
        plan.instance_id = Some(instance_id.to_string());
        plan.config_hash = self.config.hash.clone();
        if let Some(rum) = &self.config.rum {
            plan.field_measures = crate::rum::MEASURES.iter().collect();
            plan.add_kind("rum", &plan.field_measures.clone());
            plan.field_routes = rum.max_routes;
        }
        plan
    }

    /// Thresholds of the SLOs on RUM vitals: (vital, threshold).
    fn field_slo_thresholds(&self) -> Vec<(String, f64)> {
        self.slos
            .iter()
            .filter_map(|s| match &s.sli {
                Sli::Field { key, threshold, .. } => Some((key.clone(), *threshold)),
                _ => None,
            })
            .collect()
    }
}

/// The config a probe loop runs next: a reload swaps it in place. (A lock, not a `watch`
/// channel: nothing waits for the change, and a channel is ~0.4 KB a probe.)
type CurrentProbe = Arc<RwLock<Arc<BuiltProbe>>>;

/// One probe's loop: its schedule runs on while a reload swaps the probe it runs, so an
/// unchanged probe keeps its phase and its series.
struct Loop {
    schedule: String,
    probe: CurrentProbe,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// The running probe loops, by name, what they wait for (the watchdog reads it), and
/// the runtime they run on.
struct Loops(
    HashMap<String, Loop>,
    Arc<crate::systemd::Progress>,
    tokio::runtime::Handle,
);

use crate::telemetry::SharedTelemetry;

impl Loops {
    /// Starts, keeps or stops loops so that exactly `probes` run; returns
    /// (kept, started, stopped).
    async fn apply(
        &mut self,
        probes: Vec<BuiltProbe>,
        telemetry: &SharedTelemetry,
        log: &Arc<RunLog>,
    ) -> (usize, usize, usize) {
        let probes: Vec<BuiltProbe> = probes
            .into_iter()
            .filter(|p| match &p.unavailable {
                Some(why) => {
                    tracing::warn!(probe = %p.name, kind = p.kind, reason = %why, "probe not scheduled: it cannot run on this host");
                    false
                }
                None => true,
            })
            .collect();
        let names: HashSet<String> = probes.iter().map(|p| p.name.clone()).collect();
        self.1.retain(&|n| names.contains(n));
        let mut stopping = Vec::new();
        for name in self
            .0
            .keys()
            .filter(|n| !names.contains(*n))
            .cloned()
            .collect::<Vec<_>>()
        {
            stopping.push(self.0.remove(&name).expect("present"));
        }
        let (mut kept, mut started) = (0, 0);
        for p in probes {
            let schedule = p.schedule.describe();
            let p = Arc::new(p);
            match self.0.get(&p.name) {
                Some(l) if l.schedule == schedule => {
                    *l.probe.write().expect("probe lock") = p;
                    kept += 1;
                }
                _ => {
                    if let Some(old) = self.0.remove(&p.name) {
                        stopping.push(old);
                    }
                    tracing::info!(probe = %p.name, kind = p.kind, schedule = %schedule, "scheduled");
                    let current = Arc::new(RwLock::new(p.clone()));
                    let (stop_tx, stop_rx) = oneshot::channel();
                    let beat = self.1.beat(&p.name);
                    let task = self.2.spawn(probe_loop(
                        current.clone(),
                        telemetry.clone(),
                        log.clone(),
                        beat,
                        stop_rx,
                    ));
                    self.0.insert(
                        p.name.clone(),
                        Loop {
                            schedule,
                            probe: current,
                            stop: stop_tx,
                            task,
                        },
                    );
                    started += 1;
                }
            }
        }
        let stopped = stopping.len();
        stop_all(stopping).await;
        (kept, started, stopped)
    }

    /// Stops scheduling and lets in-flight runs finish or time out.
    async fn stop(&mut self) {
        stop_all(self.0.drain().map(|(_, l)| l).collect()).await;
    }
}

async fn stop_all(loops: Vec<Loop>) {
    let mut tasks = Vec::with_capacity(loops.len());
    for l in loops {
        let _ = l.stop.send(());
        tasks.push(l.task);
    }
    for task in tasks {
        let _ = task.await;
    }
}

/// Runs the daemon. `shard` (from `--shard`) wins over `[fleet] shard` on every reload;
/// `loaded` is already sharded.
/// Command-line settings of `run` that win over the config, on reload too.
#[derive(Default)]
pub struct RunFlags {
    pub shard: Option<crate::fleet::Shard>,
    /// `--web.listen-address`.
    pub listen: Option<std::net::SocketAddr>,
    /// `--web.config.file`: an exporter-toolkit web config for `[server]`'s TLS and basic auth.
    pub web_config: Option<PathBuf>,
}

impl RunFlags {
    /// The listener's TLS and basic auth: the web config file's, else the config's.
    fn security(&self, config: &Config) -> anyhow::Result<crate::web_security::Security> {
        match &self.web_config {
            Some(p) => crate::web_security::from_web_config_file(p).map_err(|e| anyhow::anyhow!(e)),
            None => Ok(config.server_security.clone()),
        }
    }
}

pub async fn run(path: PathBuf, mut loaded: Loaded, flags: RunFlags) -> anyhow::Result<()> {
    crate::telemetry::process::fix_allocator_thresholds();
    let shard = flags.shard;
    let listen_flag = flags.listen;
    let security = crate::web_security::shared(flags.security(&loaded.config)?);
    if !security.read().expect("security lock").is_open() {
        tracing::info!("listener security on (TLS and/or basic auth)");
    }
    // Before anything else: an early SIGHUP must reload, not kill (its default action).
    let mut signals = Signals::new()?;
    // The probes are built; their raw tables (~2 KB a probe) need not live on.
    loaded.config.probes = Vec::new();
    loaded.config.slos = Vec::new();
    loaded.config.error_budgets = Vec::new();
    for note in loaded.slos.iter().flat_map(|s| &s.notes) {
        tracing::warn!("{note}");
    }
    let listen = loaded.config.server.listen;
    let loaded_limits = loaded.config.server.limits();
    let loaded_remote_reload = loaded.config.server.remote_reload;
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

    let instance_id = crate::telemetry::stable_instance_id(&path, &listen.to_string());
    let location = loaded.config.location.clone();
    let otlp = loaded.config.otlp.clone();
    let telemetry = Arc::new(Telemetry::new(&location, loaded.plan(&instance_id), otlp.as_ref())?);
    if let Some(o) = &otlp {
        let endpoint = o.endpoint.as_deref().map_or_else(
            || "(the default: localhost:4317 for grpc, localhost:4318 for http)".to_string(),
            crate::redact::url,
        );
        tracing::info!(protocol = ?o.protocol, %endpoint, interval = ?o.interval, "OTLP push enabled");
    }
    let shared: SharedTelemetry = Arc::new(RwLock::new(telemetry));
    let rum_settings = loaded.config.rum.clone();
    let artifact_settings = loaded.config.artifacts.clone();
    if let Some(a) = &artifact_settings {
        crate::artifacts::install(a.clone()).with_context(|| format!("[artifacts] dir = {}", a.dir.display()))?;
        tracing::info!(dir = %a.dir.display(), keep = a.keep, max_size = a.max_size, "failed runs keep artifacts");
    }
    let (rum_stop_tx, rum_stop) = watch::channel(false);
    let rum = match &rum_settings {
        Some(settings) => {
            let collector =
                crate::rum::Collector::new(settings.clone(), &loaded.field_slo_thresholds(), shared.clone());
            let listener = tokio::net::TcpListener::bind(settings.listen)
                .await
                .with_context(|| format!("binding [rum] listen = {}", settings.listen))?;
            tracing::info!(listen = %settings.listen, origins = settings.allowed_origins.len(), "RUM collector serving /rum /collect");
            let mut stop = server_stop.clone();
            let router = collector.router();
            let rum_security = crate::web_security::shared(settings.security.clone());
            let server = tokio::spawn(async move {
                let shutdown = async move {
                    let _ = stop.changed().await;
                };
                server::serve(listener, router, server::Limits::default(), rum_security, shutdown).await;
            });
            let flush = tokio::spawn(collector.flush_loop(rum_stop));
            Some((server, flush))
        }
        None => None,
    };
    let log = Arc::new(RunLog::default());
    let probe_runtime = probe_runtime()?;
    #[cfg(target_os = "linux")]
    probe_runtime.handle.spawn(crate::precise_timer::drive_here());
    let mut loops = Loops(HashMap::new(), Arc::default(), probe_runtime.handle.clone());
    let unscheduled = loaded.probes.iter().filter(|p| p.unavailable.is_some()).count();
    let n = loaded.probes.len() - unscheduled;
    loops.apply(loaded.probes, &shared, &log).await;
    tracing::info!(probes = n, not_scheduled = unscheduled, location = %location, %instance_id, "probes running");
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
    let modules = std::mem::take(&mut loaded.config.modules);
    if !modules.is_empty() {
        tracing::info!(modules = modules.len(), "serving /probe?target=…&module=…");
    }
    let multi = Arc::new(RwLock::new(Arc::new(crate::multi_target::MultiTarget::new(
        modules,
        BuildContext::with_browser(loaded.config.browser.clone()),
        loaded
            .config
            .server
            .probe_concurrency
            .unwrap_or(DEFAULT_PROBE_CONCURRENCY),
    ))));
    let ready = Arc::new(AtomicBool::new(false));
    let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(1);
    signals.reload_requests = Some(reload_rx);
    let state = AppState {
        telemetry: shared.clone(),
        ready: ready.clone(),
        reload: Some(reload_tx),
        remote_reload: loaded_remote_reload,
        multi: multi.clone(),
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding [server] listen = {listen}"))?;
    tracing::info!(%listen, "serving /metrics /healthz /readyz");
    let mut stop_rx = server_stop.clone();
    let limits = loaded_limits;
    let server_security = security.clone();
    let server = tokio::spawn(async move {
        let shutdown = async move {
            let _ = stop_rx.changed().await;
        };
        server::serve(listener, server::router(state), limits, server_security, shutdown).await;
    });
    ready.store(true, Ordering::Relaxed);
    crate::systemd::notify(&format!("READY=1\nSTATUS={}", log.status(n)));
    let watchdog = crate::systemd::watchdog_interval().map(|interval| {
        let (progress, log) = (loops.1.clone(), log.clone());
        let probes = Arc::new(std::sync::atomic::AtomicUsize::new(n));
        let count = probes.clone();
        let task = tokio::spawn(crate::systemd::heartbeat(progress, interval, move || {
            log.status(count.load(Ordering::Relaxed))
        }));
        (task, probes)
    });

    loop {
        match signals.next().await {
            Signal::Stop => break,
            Signal::Reload(reply) => {
                tracing::info!(config = %path.display(), "reloading (SIGHUP or POST /-/reload)");
                // RELOADING=1 first and READY=1 last, also when the new config is refused:
                // a service manager waiting on the reload learns it has ended either way.
                crate::systemd::notify(&format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()));
                // Validate everything first; a bad file leaves the running set alone.
                let telemetry = shared.read().expect("telemetry lock").clone();
                let result = match load(&path).map(|mut next| {
                    if let Some(sh) = shard.or(next.config.shard) {
                        next.probes.retain(|p| sh.owns(&p.name));
                    }
                    next
                }) {
                    Err(e) => {
                        telemetry.reload_attempt(false);
                        tracing::error!(error = %e, "reload failed: keeping the running config");
                        crate::systemd::notify(&format!("READY=1\nSTATUS=reload failed: {e}"));
                        Err(e.to_string())
                    }
                    Ok(mut next) => {
                        if let Some(addr) = listen_flag {
                            next.config.server.listen = addr;
                        }
                        // Certificates and users are re-read; new connections use them.
                        match flags.security(&next.config) {
                            Ok(sec) => *security.write().expect("security lock") = Arc::new(sec),
                            Err(e) => tracing::error!(error = %e, "web config not reloaded: keeping the running one"),
                        }
                        let modules = std::mem::take(&mut next.config.modules);
                        let swapped = Arc::new(multi.read().expect("modules lock").reloaded(modules));
                        *multi.write().expect("modules lock") = swapped;
                        if next.config.server.listen != listen {
                            tracing::warn!("[server] listen changed: takes effect on restart");
                        }
                        if next.config.rum != rum_settings {
                            tracing::warn!("[rum] changes take effect on restart");
                        }
                        if next.config.artifacts != artifact_settings {
                            tracing::warn!("[artifacts] changes take effect on restart");
                        }
                        if next.config.location != location || next.config.otlp.is_some() != otlp.is_some() {
                            tracing::warn!("location and [export.otlp] changes take effect on restart");
                        }
                        let names: HashSet<String> = next.probes.iter().map(|p| p.name.clone()).collect();
                        log.retain(&|n| names.contains(n));
                        let plan = next.plan(&instance_id);
                        if telemetry.fits(&plan) && next.config.histograms == telemetry_mode(&telemetry) {
                            telemetry.config_loaded(plan, true);
                        } else {
                            // More probes than the series limits were sized for: new
                            // instruments (counters restart, which Prometheus handles).
                            tracing::warn!(
                                probes = next.probes.len(),
                                "telemetry rebuilt for the new probe count; counters restart"
                            );
                            let fresh = Arc::new(Telemetry::new(&location, plan, otlp.as_ref())?);
                            let old = std::mem::replace(&mut *shared.write().expect("telemetry lock"), fresh);
                            old.shutdown(Duration::from_secs(5)).await;
                        }
                        let count = next.probes.len();
                        let (kept, started, stopped) = loops.apply(next.probes, &shared, &log).await;
                        if let Some((_, probes)) = &watchdog {
                            probes.store(count, Ordering::Relaxed);
                        }
                        crate::systemd::notify(&format!("READY=1\nSTATUS={}", log.status(count)));
                        tracing::info!(kept, started, stopped, "reloaded");
                        Ok(format!("reloaded: {kept} kept, {started} started, {stopped} stopped"))
                    }
                };
                if let Some(reply) = reply {
                    let _ = reply.send(result);
                }
            }
        }
    }
    tracing::info!("shutting down: waiting for in-flight runs");
    ready.store(false, Ordering::Relaxed);
    crate::systemd::notify("STOPPING=1");
    loops.stop().await;
    summary.abort();
    if let Some((task, _)) = watchdog {
        task.abort();
    }
    // Page views still waiting for their final values are recorded before the last export.
    let _ = rum_stop_tx.send(true);
    let rum_server = match rum {
        Some((server, flush)) => {
            let _ = flush.await;
            Some(server)
        }
        None => None,
    };
    let telemetry = shared.read().expect("telemetry lock").clone();
    telemetry.shutdown(Duration::from_secs(5)).await;
    let _ = server_stop_tx.send(true);
    let _ = server.await;
    if let Some(s) = rum_server {
        let _ = s.await;
    }
    (probe_runtime.stop)();
    tracing::info!("stopped");
    Ok(())
}

/// Probes run on a runtime of their own, one thread unless `SLOPROBE_PROBE_THREADS` says
/// otherwise: a run is mostly waiting, and a second worker mostly adds wake-ups between
/// threads (CPU per http run 175 → 141 µs at 1,000 probes, docs/benchmarks.md). With one
/// thread it is a current-thread runtime driven by a thread of its own: no work-stealing
/// queues or worker handoff at all. The listeners (scrapes, RUM beacons, `/probe`) keep
/// the main runtime and its cores.
struct ProbeRuntime {
    handle: tokio::runtime::Handle,
    /// Ends the runtime without waiting for its tasks (the daemon has already stopped them).
    stop: Box<dyn FnOnce() + Send>,
}

fn probe_runtime() -> anyhow::Result<ProbeRuntime> {
    let threads = match std::env::var("SLOPROBE_PROBE_THREADS") {
        Ok(v) => v
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=256).contains(n))
            .with_context(|| format!("SLOPROBE_PROBE_THREADS={v:?}: give a number of threads, 1 to 256"))?,
        Err(_) => 1,
    };
    if threads > 1 {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("sloprobe-probes")
            .enable_all()
            .build()?;
        return Ok(ProbeRuntime {
            handle: rt.handle().clone(),
            stop: Box::new(move || rt.shutdown_background()),
        });
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let handle = rt.handle().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("sloprobe-probes".into())
        .spawn(move || {
            // Tasks spawned through the handle run while this thread is in block_on.
            rt.block_on(async {
                let _ = stopped.await;
            });
            rt.shutdown_background();
        })?;
    Ok(ProbeRuntime {
        handle,
        stop: Box::new(move || {
            let _ = stop.send(());
        }),
    })
}

fn telemetry_mode(t: &Telemetry) -> crate::telemetry::HistogramMode {
    t.histogram_mode()
}

/// Runs one probe on its timeline until told to stop. At most `max_in_flight` runs of it
/// are in flight (1 unless a long-running kind asks for more); a due run past that is
/// skipped as `overlap`. Stopping gives in-flight runs [`STOP_GRACE`] to end, then cuts
/// them off: they are counted as skipped (`interrupted`) and logged, never as failures.
async fn probe_loop(
    probes: CurrentProbe,
    telemetry: SharedTelemetry,
    log: Arc<RunLog>,
    beat: crate::systemd::Beat,
    mut stop: oneshot::Receiver<()>,
) {
    let first_probe = probes.read().expect("probe lock").clone();
    let mut ticker = Ticker::new(first_probe.schedule.clone());
    let _watch = first_probe.long_runs.then(|| {
        let t = telemetry.read().expect("telemetry lock").clone();
        t.watch_in_flight(&first_probe.name, first_probe.kind)
    });
    drop(first_probe);
    // Test hook for the watchdog test: the loop stops advancing after its first run. Debug
    // builds only (the tests'); a release binary has no way to be wedged from outside.
    let wedge = cfg!(debug_assertions) && std::env::var_os("SLOPROBE_TEST_WEDGE_SCHEDULER").is_some();
    let mut first = true;
    let mut running: Vec<JoinHandle<()>> = Vec::new();
    let (interrupt, interrupted) = watch::channel(false);
    loop {
        beat.waiting_for(ticker.next_due().into_std());
        if wedge && !first {
            let _ = stop.await;
            break;
        }
        first = false;
        let tick = tokio::select! {
            t = ticker.tick() => t,
            _ = &mut stop => break,
        };
        beat.busy();
        // The latest config of this probe (a reload may have swapped it) and telemetry.
        let probe = probes.read().expect("probe lock").clone();
        let telemetry = telemetry.read().expect("telemetry lock").clone();
        telemetry.record_lateness(tick.lateness);
        if tick.missed > 0 {
            telemetry.record_skipped(&probe.name, probe.kind, "missed", tick.missed);
            tracing::warn!(probe = %probe.name, missed = tick.missed, "host stalled: due runs missed");
        }
        if let Some(left) = probe.backoff_remaining() {
            telemetry.record_skipped(&probe.name, probe.kind, "retry_after", 1);
            tracing::debug!(probe = %probe.name, wait = ?left, "target asked to retry later: run skipped");
            continue;
        }
        running.retain(|h| !h.is_finished());
        if running.len() >= probe.max_in_flight.max(1) {
            telemetry.record_skipped(&probe.name, probe.kind, "overlap", 1);
            tracing::warn!(probe = %probe.name, in_flight = running.len(), "runs still in flight: this run skipped");
            continue;
        }
        let (p, t, log) = (probe.clone(), telemetry.clone(), log.clone());
        let mut interrupted = interrupted.clone();
        running.push(tokio::spawn(async move {
            let _in_flight = p.long_runs.then(|| crate::telemetry::in_flight::start(&p.name));
            let cut_off = async move {
                let _ = interrupted.wait_for(|cut| *cut).await;
            };
            // Boxed: the loop holds this task's handle until its next tick, and a task
            // cell is the size of its future (~1 KB a probe at 10,000 probes unboxed).
            let outcome = Box::pin(p.execute_until(cut_off)).await;
            if let Some(reason) = outcome.skipped {
                t.record_skipped(&p.name, p.kind, reason, 1);
                let measured: Vec<String> = outcome
                    .measurements
                    .iter()
                    .map(|(k, v)| format!("{k}={v:.3}"))
                    .collect();
                tracing::warn!(probe = %p.name, reason, measured = %measured.join(" "), "run skipped");
                return;
            }
            t.record(&outcome);
            log.record(&outcome);
            crate::artifacts::keep(&outcome, crate::once::run_json);
        }));
    }
    running.retain(|h| !h.is_finished());
    if running.is_empty() {
        return;
    }
    // Runs in flight get a moment to finish; a long one (a browser page load, a workflow
    // waiting on its job) is then cut off, recorded as interrupted, and cleans up
    // (processes, temp files, connections) as it is dropped.
    let all = futures_util::future::join_all(running.iter_mut());
    if tokio::time::timeout(STOP_GRACE, all).await.is_err() {
        let _ = interrupt.send(true);
        let all = futures_util::future::join_all(running.iter_mut());
        if tokio::time::timeout(STOP_GRACE, all).await.is_err() {
            for h in &running {
                h.abort();
            }
        }
    }
}

/// How long a stopping probe loop waits for its run in flight.
const STOP_GRACE: Duration = Duration::from_secs(5);

enum Signal {
    Stop,
    Reload(Option<server::ReloadReply>),
}

/// SIGTERM/SIGINT stop the daemon; SIGHUP reloads the config.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    hup: tokio::signal::unix::Signal,
    /// `POST /-/reload`.
    reload_requests: Option<tokio::sync::mpsc::Receiver<Option<server::ReloadReply>>>,
}

impl Signals {
    fn new() -> anyhow::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                term: signal(SignalKind::terminate())?,
                hup: signal(SignalKind::hangup())?,
                reload_requests: None,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals { reload_requests: None })
    }

    async fn next(&mut self) -> Signal {
        #[cfg(unix)]
        {
            let requested = async {
                match self.reload_requests.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => Signal::Stop,
                _ = self.term.recv() => Signal::Stop,
                _ = self.hup.recv() => Signal::Reload(None),
                Some(reply) = requested => Signal::Reload(reply),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Signal::Stop
        }
    }
}

/// CLOCK_MONOTONIC in µs, as systemd wants it beside RELOADING=1.
fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the struct we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}
