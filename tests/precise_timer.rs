//! The daemon's timerfd timer (`precise_timer::drive_here` on a runtime of its own, as the
//! daemon's probe runtime runs it): sleeps go through it, never end before their due time,
//! and fall back to the timer thread once that runtime is gone. Its own process: the timer
//! is process-wide.

use std::time::{Duration, Instant};

use sloprobe::precise_timer::{drive_here, on_timerfd, sleep_until};

#[test]
fn timerfd_wakes_never_early_and_falls_back_when_its_runtime_stops() {
    let probes = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    probes.spawn(drive_here());
    let woke = probes.block_on(async {
        // Let the driver register its timerfd.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(on_timerfd(), "the timerfd timer did not start");
        let start = Instant::now();
        let dues: Vec<Instant> = [40u64, 10, 30, 20, 10]
            .iter()
            .map(|ms| start + Duration::from_millis(*ms))
            .collect();
        let tasks: Vec<_> = dues
            .iter()
            .map(|due| {
                let due = *due;
                tokio::spawn(async move {
                    sleep_until(due).await;
                    Instant::now()
                })
            })
            .collect();
        let mut woke = Vec::new();
        for (t, due) in tasks.into_iter().zip(dues) {
            woke.push((due, t.await.unwrap()));
        }
        woke
    });
    for (due, at) in &woke {
        assert!(at >= due, "woke {:?} before its due time", due.duration_since(*at));
    }
    let mut by_due = woke.clone();
    by_due.sort_by_key(|(due, _)| *due);
    assert!(
        by_due.windows(2).all(|w| w[0].1 <= w[1].1 || w[0].0 == w[1].0),
        "out of order"
    );
    drop(probes);
    // The runtime is gone: sleeps go through the timer thread and still end.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let due = Instant::now() + Duration::from_millis(15);
    rt.block_on(sleep_until(due));
    assert!(Instant::now() >= due);
}
