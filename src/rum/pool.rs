//! Where beacons are parsed and recorded: a few low-priority threads of their own with a
//! bounded queue, off the runtime the probes and listeners run on. A flood of expensive
//! beacons then costs the probes CPU time at a lower priority, never a stalled worker; a
//! full queue is a counted 503, never an unbounded backlog (each queued job holds its
//! body, itself reserved against `max_inflight_bytes`).

use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

type Job = Box<dyn FnOnce() + Send>;

pub struct Pool {
    tx: SyncSender<Job>,
}

/// Why a job gave no result.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The queue was full: the job never ran.
    Busy,
    /// The job panicked.
    Failed,
}

impl Pool {
    /// `threads` workers, at most `queue` jobs waiting. The threads end with the pool.
    pub fn new(threads: usize, queue: usize) -> Pool {
        let (tx, rx) = sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            let _ = std::thread::Builder::new()
                .name(format!("rum-beacons-{i}"))
                .spawn(move || work(&rx));
        }
        Pool { tx }
    }

    /// Runs `f` on the pool and waits for its result.
    pub async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, Refused> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(f());
        });
        match self.tx.try_send(job) {
            Ok(()) => result.await.map_err(|_| Refused::Failed),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => Err(Refused::Busy),
        }
    }
}

fn work(rx: &Mutex<Receiver<Job>>) {
    crate::server::lower_thread_priority();
    loop {
        // The lock is held only while waiting for the next job, not while running it.
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        match job {
            // A panicking job loses its answer (its request gets a 500), not the worker.
            Ok(job) => {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            }
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_refuses_instead_of_growing() {
        let pool = Arc::new(Pool::new(1, 1));
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let hold = Mutex::new(hold);
        // Occupies the one worker until released.
        let busy = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(move || hold.lock().unwrap().recv().is_ok()).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        // One job fits in the queue; the next is refused at once.
        let queued = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(|| 2).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert_eq!(pool.run(|| 3).await, Err(Refused::Busy));
        release.send(()).unwrap();
        assert_eq!(busy.await.unwrap(), Ok(true));
        assert_eq!(queued.await.unwrap(), Ok(2));
        // A panicking job does not take the worker with it.
        assert_eq!(pool.run(|| -> u8 { panic!("boom") }).await, Err(Refused::Failed));
        assert_eq!(pool.run(|| 4).await, Ok(4));
    }
}
