//! Wake-ups to within tens of microseconds. Tokio's timer wheel ticks in whole
//! milliseconds and an idle runtime sleeps in `epoll_wait`, whose millisecond timeout rounds
//! up again, so a scheduled run starts 1–2 ms late at best. Due times are kept in a heap;
//! what fires them:
//! - in the daemon, a `timerfd` (nanosecond expiry) in the probe runtime's own epoll set,
//!   read by a task there ([`drive_here`]): the runtime's worker wakes straight from
//!   `epoll_wait` and wakes the due tasks on its own queue, with no second thread in the
//!   way (a third fewer context switches than the timer thread);
//! - elsewhere (`once`, the demo target, tests), one thread sleeping on a condition
//!   variable (a nanosecond futex timeout), which wakes the waiting task at the due time.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

struct Entry {
    due: Instant,
    seq: u64,
    wake: oneshot::Sender<()>,
}

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        (self.due, self.seq) == (o.due, o.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(o.due, o.seq))
    }
}

#[derive(Default)]
struct State {
    heap: BinaryHeap<Reverse<Entry>>,
    seq: u64,
}

impl State {
    /// Queues a wake-up at `due`; true when it is now the earliest.
    fn push(&mut self, due: Instant, wake: oneshot::Sender<()>) -> bool {
        self.seq += 1;
        let earliest = self.heap.peek().is_none_or(|Reverse(e)| due < e.due);
        self.heap.push(Reverse(Entry {
            due,
            seq: self.seq,
            wake,
        }));
        earliest
    }

    /// Wakes every task due by `now`; returns the next due time.
    fn fire(&mut self, now: Instant) -> Option<Instant> {
        while self.heap.peek().is_some_and(|Reverse(e)| e.due <= now) {
            let Reverse(e) = self.heap.pop().expect("peeked");
            let _ = e.wake.send(());
        }
        self.heap.peek().map(|Reverse(e)| e.due)
    }
}

struct Timer {
    state: Mutex<State>,
    changed: Condvar,
}

fn timer() -> &'static Arc<Timer> {
    static TIMER: OnceLock<Arc<Timer>> = OnceLock::new();
    TIMER.get_or_init(|| {
        let t = Arc::new(Timer {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        });
        let worker = t.clone();
        std::thread::Builder::new()
            .name("sloprobe-timer".into())
            .spawn(move || worker.run())
            .expect("spawn timer thread");
        t
    })
}

impl Timer {
    fn run(&self) {
        let mut st = self.state.lock().expect("timer lock");
        loop {
            let now = Instant::now();
            let wait = st
                .fire(now)
                .map_or(Duration::from_secs(3600), |due| due.saturating_duration_since(now));
            st = self.changed.wait_timeout(st, wait).expect("timer lock").0;
        }
    }
}

/// Completes at `due` (std clock), within tens of microseconds on an idle host.
pub async fn sleep_until(due: Instant) {
    let (tx, rx) = oneshot::channel();
    let Some(tx) = on_fd_timer(due, tx) else {
        let _ = rx.await;
        return;
    };
    {
        let t = timer();
        if t.state.lock().expect("timer lock").push(due, tx) {
            t.changed.notify_one();
        }
    }
    let _ = rx.await;
}

/// Whether sleeps go through the timerfd timer now (its runtime is up).
pub fn on_timerfd() -> bool {
    #[cfg(target_os = "linux")]
    return FD_TIMER
        .get()
        .is_some_and(|t| t.alive.load(std::sync::atomic::Ordering::Acquire));
    #[cfg(not(target_os = "linux"))]
    false
}

/// Queues the wake-up on the timerfd timer when it runs; gives `tx` back otherwise.
#[cfg(target_os = "linux")]
fn on_fd_timer(due: Instant, tx: oneshot::Sender<()>) -> Option<oneshot::Sender<()>> {
    let Some(t) = FD_TIMER
        .get()
        .filter(|t| t.alive.load(std::sync::atomic::Ordering::Acquire))
    else {
        return Some(tx);
    };
    if t.state.lock().expect("timer lock").push(due, tx) {
        t.arm(Some(due));
    }
    None
}

#[cfg(not(target_os = "linux"))]
fn on_fd_timer(_: Instant, tx: oneshot::Sender<()>) -> Option<oneshot::Sender<()>> {
    Some(tx)
}

#[cfg(target_os = "linux")]
static FD_TIMER: OnceLock<Arc<FdTimer>> = OnceLock::new();

#[cfg(target_os = "linux")]
struct FdTimer {
    state: Mutex<State>,
    fd: tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>,
    /// False once the driving task is gone (its runtime shut down): sleeps then go back
    /// to the timer thread.
    alive: std::sync::atomic::AtomicBool,
}

#[cfg(target_os = "linux")]
impl FdTimer {
    /// Sets the expiry to `due` (absolute, CLOCK_MONOTONIC, the clock of `Instant`), or
    /// disarms it.
    fn arm(&self, due: Option<Instant>) {
        use std::os::fd::AsRawFd as _;
        // SAFETY: all-zero is a valid itimerspec / timespec (and "disarmed").
        let mut spec: libc::itimerspec = unsafe { std::mem::zeroed() };
        if let Some(due) = due {
            let mut now: libc::timespec = unsafe { std::mem::zeroed() };
            // SAFETY: clock_gettime writes the timespec it is given.
            unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
            let left = due.saturating_duration_since(Instant::now());
            let nanos = now.tv_nsec as u64 + u64::from(left.subsec_nanos());
            spec.it_value.tv_sec = (now.tv_sec as u64 + left.as_secs() + nanos / 1_000_000_000) as libc::time_t;
            // A zero expiry would disarm: one nanosecond past the second is as good.
            spec.it_value.tv_nsec = (nanos % 1_000_000_000).max(1) as libc::c_long;
        }
        // SAFETY: the fd is a timerfd this struct owns; the spec lives across the call.
        unsafe {
            libc::timerfd_settime(
                self.fd.get_ref().as_raw_fd(),
                libc::TFD_TIMER_ABSTIME,
                &spec,
                std::ptr::null_mut(),
            )
        };
    }
}

/// Fires wake-ups from a timerfd on the current runtime until that runtime stops; the
/// daemon spawns it on its probe runtime. Sleeps begun before it runs use the thread.
#[cfg(target_os = "linux")]
pub async fn drive_here() {
    use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
    // SAFETY: timerfd_create returns a new fd or -1.
    let raw = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) };
    if raw < 0 {
        tracing::debug!("timerfd_create failed: wake-ups stay on the timer thread");
        return;
    }
    // SAFETY: `raw` is a new fd nothing else owns.
    let owned = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: the AsyncFd owns the fd and deregisters it before closing it.
    let registered = unsafe { tokio::io::unix::AsyncFd::register_with_interest(owned, tokio::io::Interest::READABLE) };
    let Ok(fd) = registered else {
        return;
    };
    let t = Arc::new(FdTimer {
        state: Mutex::new(State::default()),
        fd,
        alive: std::sync::atomic::AtomicBool::new(true),
    });
    if FD_TIMER.set(t.clone()).is_err() {
        return;
    }
    struct Gone(Arc<FdTimer>);
    impl Drop for Gone {
        fn drop(&mut self) {
            self.0.alive.store(false, std::sync::atomic::Ordering::Release);
            // Sleepers still queued wake now rather than never.
            self.0.state.lock().expect("timer lock").heap.clear();
        }
    }
    let gone = Gone(t);
    let t = &gone.0;
    loop {
        {
            let mut st = t.state.lock().expect("timer lock");
            t.arm(st.fire(Instant::now()));
        }
        let Ok(mut ready) = t.fd.readable().await else {
            return;
        };
        let mut expirations = [0u8; 8];
        // SAFETY: reads at most 8 bytes into the buffer; EAGAIN (not expired) is fine.
        unsafe {
            libc::read(
                t.fd.get_ref().as_raw_fd(),
                expirations.as_mut_ptr().cast(),
                expirations.len(),
            )
        };
        ready.clear_ready();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wakes_in_order_and_on_time() {
        let start = Instant::now();
        let a = tokio::spawn(sleep_until(start + Duration::from_millis(30)));
        let b = tokio::spawn(sleep_until(start + Duration::from_millis(10)));
        b.await.unwrap();
        let tb = start.elapsed();
        a.await.unwrap();
        let ta = start.elapsed();
        assert!(tb >= Duration::from_millis(10) && tb < ta);
        assert!(ta >= Duration::from_millis(30));
    }
}
