//! Main-thread metrics from the page's long tasks and the run's network, computed as
//! Lighthouse 11 computes its observed (unthrottled-trace) metrics: total blocking time,
//! time to interactive and max potential FID. All times in milliseconds from navigation
//! start.
//!
//! The page reports long tasks (≥ 50 ms) only, where Lighthouse's trace has every task:
//! TBT and TTI only ever use tasks of 50 ms or more, so they match; max potential FID is the
//! longest task after FCP, and when no task reached 50 ms it is at most 50 ms, which is
//! what is reported then (an upper bound, never an understatement).

/// Lighthouse's quiet window for time to interactive.
const QUIET_WINDOW: f64 = 5_000.0;
/// Requests allowed in flight during a network-quiet period (Lighthouse's "2-quiet").
const ALLOWED_IN_FLIGHT: usize = 2;
const BLOCKING: f64 = 50.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Task {
    pub start: f64,
    pub end: f64,
}

/// A request for the quiet periods: a finished GET without an error status, or one still
/// in flight (`end` = None) at the end of the observation.
#[derive(Debug, Clone, Copy)]
pub struct Span {
    pub start: f64,
    pub end: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Period {
    start: f64,
    end: f64,
}

/// Total blocking time: every task's part past 50 ms, clipped to [FCP, end].
pub fn total_blocking_time(tasks: &[Task], fcp: f64, end: f64) -> f64 {
    if end <= fcp {
        return 0.0;
    }
    tasks
        .iter()
        .filter(|t| t.end - t.start >= BLOCKING && t.end >= fcp && t.start <= end)
        .map(|t| (t.end.min(end) - t.start.max(fcp) - BLOCKING).max(0.0))
        .sum()
}

/// The longest task that started after FCP; at most 50 ms when none reached the
/// long-task threshold (the page does not report shorter ones). Lighthouse's floor is 16 ms.
pub fn max_potential_fid(tasks: &[Task], fcp: f64) -> f64 {
    tasks
        .iter()
        .filter(|t| t.start >= fcp)
        .map(|t| t.end - t.start)
        .fold(BLOCKING, f64::max)
}

/// Time to interactive (Lighthouse 11's observed algorithm): the start of the first
/// 5 s window after FCP with no long task and at most two requests in flight, no earlier
/// than FCP and DOMContentLoaded. `None` when the observation (up to `end`) holds no such
/// window: unmeasured, as Lighthouse reports NO_TTI_*_IDLE_PERIOD.
pub fn time_to_interactive(tasks: &[Task], requests: &[Span], fcp: f64, dcl: f64, end: f64) -> Option<f64> {
    let long_enough = |p: &Period| p.end > fcp + QUIET_WINDOW && p.end - p.start >= QUIET_WINDOW;
    let cpu: Vec<Period> = cpu_quiet(tasks, end).into_iter().filter(long_enough).collect();
    let net: Vec<Period> = network_quiet(requests, end).into_iter().filter(long_enough).collect();
    let (mut c, mut n) = (cpu.iter().peekable(), net.iter().peekable());
    while let (Some(cp), Some(np)) = (c.peek(), n.peek()) {
        if cp.start >= np.start {
            if np.end >= cp.start + QUIET_WINDOW {
                return Some(cp.start.max(fcp).max(dcl));
            }
            n.next();
        } else {
            if cp.end >= np.start + QUIET_WINDOW {
                return Some(cp.start.max(fcp).max(dcl));
            }
            c.next();
        }
    }
    None
}

fn cpu_quiet(tasks: &[Task], end: f64) -> Vec<Period> {
    let mut long: Vec<&Task> = tasks.iter().filter(|t| t.end - t.start >= BLOCKING).collect();
    long.sort_by(|a, b| a.start.total_cmp(&b.start));
    let mut out = Vec::new();
    let mut from = 0.0;
    for t in long {
        out.push(Period {
            start: from,
            end: t.start,
        });
        from = t.end;
    }
    out.push(Period { start: from, end });
    out
}

fn network_quiet(requests: &[Span], end: f64) -> Vec<Period> {
    let mut edges: Vec<(f64, bool)> = Vec::with_capacity(requests.len() * 2);
    for r in requests {
        edges.push((r.start, true));
        if let Some(e) = r.end {
            edges.push((e, false));
        }
    }
    edges.retain(|(t, _)| *t <= end);
    edges.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut in_flight, mut quiet_from) = (0usize, 0.0);
    let mut out = Vec::new();
    for (t, starts) in edges {
        if starts {
            if in_flight == ALLOWED_IN_FLIGHT {
                out.push(Period {
                    start: quiet_from,
                    end: t,
                });
            }
            in_flight += 1;
        } else {
            in_flight = in_flight.saturating_sub(1);
            if in_flight == ALLOWED_IN_FLIGHT {
                quiet_from = t;
            }
        }
    }
    if in_flight <= ALLOWED_IN_FLIGHT {
        out.push(Period { start: quiet_from, end });
    }
    out.retain(|p| p.start != p.end);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(start: f64, dur: f64) -> Task {
        Task {
            start,
            end: start + dur,
        }
    }

    #[test]
    fn blocking_time_is_clipped_to_fcp_and_the_end() {
        let tasks = [task(0.0, 200.0), task(500.0, 120.0), task(1000.0, 40.0)];
        // The first task: [100, 200] after clipping at FCP = 100 → 50 ms; the second 70 ms.
        assert_eq!(total_blocking_time(&tasks, 100.0, 10_000.0), 120.0);
        assert_eq!(total_blocking_time(&tasks, 100.0, 560.0), 50.0 + 10.0);
        assert_eq!(max_potential_fid(&tasks, 100.0), 120.0);
        assert_eq!(max_potential_fid(&[], 100.0), 50.0);
    }

    #[test]
    fn interactive_waits_for_five_quiet_seconds() {
        // A long task ends at 1200 ms; three requests overlap until 2500 ms.
        let tasks = [task(1000.0, 200.0)];
        let reqs = [
            Span {
                start: 100.0,
                end: Some(2500.0),
            },
            Span {
                start: 150.0,
                end: Some(2400.0),
            },
            Span {
                start: 200.0,
                end: Some(2300.0),
            },
        ];
        // Network is 2-quiet from 2300, CPU quiet from 1200: once 2300 + 5000 has been
        // observed, TTI is the CPU window's start, as in Lighthouse.
        assert_eq!(time_to_interactive(&tasks, &reqs, 500.0, 600.0, 7_000.0), None);
        assert_eq!(time_to_interactive(&tasks, &reqs, 500.0, 600.0, 7_400.0), Some(1200.0));
        // No long task at all: FCP or DCL, whichever is later.
        assert_eq!(time_to_interactive(&[], &[], 500.0, 700.0, 6_000.0), Some(700.0));
        // A request still in flight keeps three in flight: no quiet window.
        let busy = [
            Span {
                start: 100.0,
                end: None,
            },
            Span {
                start: 100.0,
                end: None,
            },
            Span {
                start: 100.0,
                end: None,
            },
        ];
        assert_eq!(time_to_interactive(&[], &busy, 500.0, 700.0, 60_000.0), None);
    }
}
