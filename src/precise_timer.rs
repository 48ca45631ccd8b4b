//! Wake-ups to within tens of microseconds. Tokio's timer wheel ticks in whole
//! milliseconds and an idle runtime sleeps in `epoll_wait`, whose millisecond timeout rounds
//! up again, so a scheduled run starts 1–2 ms late at best. Here one thread per process
//! keeps the due times in a heap and sleeps on a condition variable (a nanosecond futex
//! timeout); at each due time it wakes the waiting task directly.

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
            while st.heap.peek().is_some_and(|Reverse(e)| e.due <= now) {
                let Reverse(e) = st.heap.pop().expect("peeked");
                let _ = e.wake.send(());
            }
            let wait = st
                .heap
                .peek()
                .map_or(Duration::from_secs(3600), |Reverse(e)| e.due - now);
            st = self.changed.wait_timeout(st, wait).expect("timer lock").0;
        }
    }
}

/// Completes at `due` (std clock), within tens of microseconds on an idle host.
pub async fn sleep_until(due: Instant) {
    let (tx, rx) = oneshot::channel();
    {
        let t = timer();
        let mut st = t.state.lock().expect("timer lock");
        st.seq += 1;
        let seq = st.seq;
        let earliest = st.heap.peek().is_none_or(|Reverse(e)| due < e.due);
        st.heap.push(Reverse(Entry { due, seq, wake: tx }));
        if earliest {
            t.changed.notify_one();
        }
    }
    let _ = rx.await;
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
