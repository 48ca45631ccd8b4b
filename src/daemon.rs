//! `sloprobe run`: build everything from config, run every probe on its schedule,
//! serve the endpoints, and stop cleanly on SIGTERM/SIGINT.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::outcome::Outcome;
use crate::probe::{self, BuildContext, BuiltProbe};
use crate::schedule::Ticker;
use crate::server::{self, AppState};
use crate::telemetry::{Plan, Telemetry};
use crate::{config::fmt_seconds, demo};

/// Telemetry's plan for a set of probes: their catalogs, and budgets as bucket edges.
pub fn telemetry_plan<'a>(probes: impl IntoIterator<Item = &'a BuiltProbe> + Clone) -> Plan {
    let mut plan = Plan::default();
    for p in probes.clone() {
        plan.probes += 1;
        plan.add_kind(p.kind, &p.measures);
    }
    for p in probes {
        for t in p.budgets.all() {
            plan.add_threshold(p.kind, t.key, t.value);
        }
    }
    plan
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    let ctx = BuildContext::new();
    let probes: Vec<Arc<BuiltProbe>> = probe::build_all(&config.probes, &ctx)?
        .into_iter()
        .map(Arc::new)
        .collect();
    let plan = telemetry_plan(probes.iter().map(|p| p.as_ref()));
    let telemetry = Arc::new(Telemetry::new(&config.location, plan, config.otlp.as_ref())?);
    if let Some(o) = &config.otlp {
        tracing::info!(protocol = ?o.protocol, endpoint = o.endpoint.as_deref().unwrap_or("(from OTEL_EXPORTER_OTLP_ENDPOINT or default)"), interval = ?o.interval, "OTLP push enabled");
    }
    let (stop_tx, stop_rx) = watch::channel(false);

    if let Some(d) = &config.demo {
        let listener = demo::bind(d.listen)
            .await
            .with_context(|| format!("binding demo target on {}", d.listen))?;
        tracing::info!(listen = %d.listen, "demo target serving");
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            tokio::select! {
                r = demo::serve(listener) => if let Err(e) = r { tracing::error!(error = %e, "demo target stopped") },
                _ = stop.changed() => {}
            }
        });
    }

    let ready = Arc::new(AtomicBool::new(false));
    let state = AppState {
        telemetry: telemetry.clone(),
        ready: ready.clone(),
    };
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("binding [server] listen = {}", config.server.listen))?;
    tracing::info!(listen = %config.server.listen, "serving /metrics /healthz /readyz");
    let mut server_stop = stop_rx.clone();
    let server = tokio::spawn(async move {
        let shutdown = async move {
            let _ = server_stop.changed().await;
        };
        if let Err(e) = axum::serve(listener, server::router(state))
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "metrics server failed");
        }
    });

    let loops: Vec<JoinHandle<()>> = probes
        .iter()
        .map(|p| {
            tracing::info!(probe = %p.name, kind = p.kind, schedule = %p.schedule.describe(), "scheduled");
            tokio::spawn(probe_loop(p.clone(), telemetry.clone(), stop_rx.clone()))
        })
        .collect();
    ready.store(true, Ordering::Relaxed);
    notify_systemd("READY=1");
    tracing::info!(probes = probes.len(), location = %config.location, "sloprobe running");

    wait_for_signal().await;
    tracing::info!("shutting down: waiting for in-flight runs");
    ready.store(false, Ordering::Relaxed);
    notify_systemd("STOPPING=1");
    let _ = stop_tx.send(true);
    for l in loops {
        let _ = l.await;
    }
    let _ = server.await;
    telemetry.shutdown(std::time::Duration::from_secs(5)).await;
    tracing::info!("stopped");
    Ok(())
}

/// Runs one probe on its timeline until told to stop; waits for its in-flight run.
pub async fn probe_loop(probe: Arc<BuiltProbe>, telemetry: Arc<Telemetry>, mut stop: watch::Receiver<bool>) {
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
        let (p, t) = (probe.clone(), telemetry.clone());
        running = Some(tokio::spawn(async move {
            let outcome = p.execute().await;
            t.record(&outcome);
            log_outcome(&outcome);
        }));
    }
    if let Some(h) = running {
        let _ = h.await;
    }
}

fn log_outcome(o: &Outcome) {
    let ms = |k: &str| o.get(k).map(fmt_seconds).unwrap_or_else(|| "-".into());
    match &o.error {
        None if o.breaches.is_empty() => {
            // Routine at 1,000 probes; SLOPROBE_LOG=info,sloprobe=debug shows every run.
            tracing::debug!(probe = %o.probe, kind = o.kind, ttfb = %ms("ttfb"), total = %ms("total"), "ok")
        }
        None => {
            let broken: Vec<String> = o
                .breaches
                .iter()
                .map(|b| {
                    format!(
                        "{} {} > {}",
                        b.measurement,
                        fmt_seconds(b.value),
                        fmt_seconds(b.threshold)
                    )
                })
                .collect();
            tracing::warn!(probe = %o.probe, kind = o.kind, ttfb = %ms("ttfb"), total = %ms("total"), budget = %broken.join(", "), "budget broken")
        }
        Some(e) => {
            tracing::warn!(probe = %o.probe, kind = o.kind, error_type = %e.kind, error = %e.message, total = %ms("total"), "failed")
        }
    }
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
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
