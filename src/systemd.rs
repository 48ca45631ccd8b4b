//! The systemd notify protocol (`Type=notify`): READY, RELOADING, STOPPING, STATUS, and a
//! watchdog heartbeat that stops when the probe loops stop advancing, so a wedged
//! scheduler gets restarted rather than kept alive by a healthy-looking thread.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Sends `state` to `$NOTIFY_SOCKET` (a path, or `@name` for an abstract socket); a no-op
/// when the variable is unset.
pub fn notify(state: &str) {
    #[cfg(target_os = "linux")]
    if let Some(path) = std::env::var_os("NOTIFY_SOCKET") {
        use std::os::linux::net::SocketAddrExt;
        use std::os::unix::net::{SocketAddr, UnixDatagram};
        let Ok(sock) = UnixDatagram::unbound() else { return };
        let path = path.to_string_lossy();
        let addr = match path.strip_prefix('@') {
            Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
            None => SocketAddr::from_pathname(path.as_ref()),
        };
        if let Ok(addr) = addr {
            let _ = sock.send_to_addr(state.as_bytes(), &addr);
        }
    }
}

/// `WatchdogSec=` as systemd passes it (`WATCHDOG_USEC`, for this PID).
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// What the probe loops are waiting for: each loop's next due time. A loop whose due time
/// has passed long ago without it starting the run means the scheduler is stuck.
#[derive(Default)]
pub struct Progress {
    loops: Mutex<HashMap<String, Arc<AtomicU64>>>,
    base: OnceInstant,
}

#[derive(Default)]
struct OnceInstant(std::sync::OnceLock<Instant>);

impl OnceInstant {
    fn get(&self) -> Instant {
        *self.0.get_or_init(Instant::now)
    }
}

/// One loop's handle: the due time it waits for, in ms since `Progress` started.
#[derive(Clone)]
pub struct Beat {
    due_ms: Arc<AtomicU64>,
    base: Instant,
}

const IDLE: u64 = u64::MAX;

impl Beat {
    /// The loop now waits for `due`.
    pub fn waiting_for(&self, due: Instant) {
        let ms = due.saturating_duration_since(self.base).as_millis() as u64;
        self.due_ms.store(ms, Ordering::Relaxed);
    }

    /// The loop is running (or stopped), not waiting.
    pub fn busy(&self) {
        self.due_ms.store(IDLE, Ordering::Relaxed);
    }
}

impl Progress {
    pub fn beat(&self, probe: &str) -> Beat {
        let due_ms = Arc::new(AtomicU64::new(IDLE));
        self.loops
            .lock()
            .expect("progress lock")
            .insert(probe.to_string(), due_ms.clone());
        Beat {
            due_ms,
            base: self.base.get(),
        }
    }

    /// Forgets loops of probes that are gone.
    pub fn retain(&self, keep: &dyn Fn(&str) -> bool) {
        self.loops.lock().expect("progress lock").retain(|k, _| keep(k));
    }

    /// A loop that should have started a run more than `grace` ago and has not.
    pub fn stalled(&self, grace: Duration) -> Option<String> {
        let now = self.base.get().elapsed().as_millis() as u64;
        let grace = grace.as_millis() as u64;
        self.loops
            .lock()
            .expect("progress lock")
            .iter()
            .find(|(_, due)| {
                let d = due.load(Ordering::Relaxed);
                d != IDLE && now > d.saturating_add(grace)
            })
            .map(|(name, _)| name.clone())
    }
}

/// Pings the watchdog every half interval while no loop is stalled, with a STATUS line.
pub async fn heartbeat(progress: Arc<Progress>, interval: Duration, status: impl Fn() -> String) {
    let grace = interval.max(Duration::from_secs(2));
    let mut tick = tokio::time::interval(interval / 2);
    loop {
        tick.tick().await;
        match progress.stalled(grace) {
            None => notify(&format!("WATCHDOG=1\nSTATUS={}", status())),
            Some(probe) => {
                tracing::error!(%probe, "scheduler stalled: watchdog pings withheld so systemd restarts the daemon");
                notify(&format!("STATUS=scheduler stalled (probe {probe} overdue)"));
            }
        }
    }
}
