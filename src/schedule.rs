//! When probes run: fixed intervals or cron, a stable per-probe splay, and a timeline
//! that never drifts (run k is due at anchor + k·interval, however long runs take).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Local};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use tokio::time::Instant;

use crate::config::{ConfigError, ProbeCommon, Source};

#[derive(Clone, Debug)]
pub enum Schedule {
    Every {
        interval: Duration,
        /// Phase within the interval, derived from the probe name.
        offset: Duration,
    },
    Cron {
        expr: String,
        cron: Box<Cron>,
        offset: Duration,
    },
}

/// Stable across restarts and builds (unlike `DefaultHasher`): FNV-1a of the name.
fn name_fraction(name: &str) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h >> 11) as f64 / (1u64 << 53) as f64
}

fn splay(name: &str, max: Duration) -> Duration {
    // Millisecond steps keep plans readable; fraction < 1 keeps offset < max.
    let ms = (max.as_millis() as f64 * name_fraction(name)).floor() as u64;
    Duration::from_millis(ms)
}

impl Schedule {
    pub fn every(interval: Duration, name: &str, max_splay: Duration) -> Schedule {
        Schedule::Every {
            interval,
            offset: splay(name, max_splay.min(interval)),
        }
    }

    pub fn cron(expr: &str, name: &str, max_splay: Duration) -> Result<Schedule, String> {
        let fields = expr.split_whitespace().count();
        if !expr.trim_start().starts_with('@') && !(5..=6).contains(&fields) {
            return Err(format!(
                "cron expression {expr:?} has {fields} fields; write 5 (minute hour day month weekday) or 6 (with seconds first)"
            ));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build()
            .parse(expr)
            .map_err(|e| format!("invalid cron expression {expr:?}: {e}"))?;
        let s = Schedule::Cron {
            expr: expr.to_string(),
            cron: Box::new(cron),
            offset: Duration::ZERO,
        };
        // Splay may not push a run past the next occurrence.
        let bound = max_splay.min(s.shortest_period() / 2);
        Ok(match s {
            Schedule::Cron { expr, cron, .. } => Schedule::Cron {
                expr,
                cron,
                offset: splay(name, bound),
            },
            other => other,
        })
    }

    pub fn offset(&self) -> Duration {
        match self {
            Schedule::Every { offset, .. } | Schedule::Cron { offset, .. } => *offset,
        }
    }

    /// The interval, or for cron the shortest gap among the next occurrences.
    pub fn shortest_period(&self) -> Duration {
        match self {
            Schedule::Every { interval, .. } => *interval,
            Schedule::Cron { cron, .. } => {
                let mut t = Local::now();
                let mut shortest = Duration::MAX;
                let mut prev: Option<DateTime<Local>> = None;
                for _ in 0..64 {
                    let Ok(next) = cron.find_next_occurrence(&t, false) else {
                        break;
                    };
                    if let Some(p) = prev {
                        let gap = (next - p).to_std().unwrap_or(Duration::ZERO);
                        shortest = shortest.min(gap);
                    }
                    prev = Some(next);
                    t = next;
                }
                if shortest == Duration::MAX {
                    Duration::from_secs(60)
                } else {
                    shortest
                }
            }
        }
    }

    /// The first due time strictly after `t` (wall clock).
    pub fn next_after(&self, t: SystemTime) -> SystemTime {
        match self {
            Schedule::Every { interval, offset } => {
                let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
                let base = since.saturating_sub(*offset).as_nanos();
                let step = interval.as_nanos().max(1);
                let k = base / step + 1;
                let due = Duration::from_nanos((k * step) as u64) + *offset;
                UNIX_EPOCH + due
            }
            Schedule::Cron { cron, offset, .. } => {
                // Occurrences are for the unsplayed time; shift back to find the next one.
                let from: DateTime<Local> = (t - *offset).into();
                match cron.find_next_occurrence(&from, false) {
                    Ok(next) => SystemTime::from(next) + *offset,
                    Err(_) => t + Duration::from_secs(365 * 24 * 3600),
                }
            }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Schedule::Every { interval, offset } => format!(
                "every {} (offset {})",
                humantime::format_duration(*interval),
                humantime::format_duration(*offset)
            ),
            Schedule::Cron { expr, offset, .. } => {
                format!("cron {expr:?} (offset {})", humantime::format_duration(*offset))
            }
        }
    }
}

/// One firing of a schedule.
#[derive(Debug, Clone, Copy)]
pub struct Tick {
    pub due: Instant,
    /// How late the timer woke after the due time.
    pub lateness: Duration,
    /// Due times that passed entirely while we were behind (host stalled, suspended).
    pub missed: u64,
}

/// Walks a schedule on the monotonic clock.
pub struct Ticker {
    schedule: Schedule,
    next: Instant,
    next_wall: SystemTime,
    /// Wake through `precise_timer` (production) or Tokio's timer (tests with paused time).
    precise: bool,
}

impl Ticker {
    /// A ticker that wakes through the precise timer thread.
    pub fn new(schedule: Schedule) -> Ticker {
        Ticker {
            precise: true,
            ..Ticker::coarse(schedule)
        }
    }

    /// A ticker on Tokio's millisecond timer (works with paused test time).
    pub fn coarse(schedule: Schedule) -> Ticker {
        let now_wall = SystemTime::now();
        let now = Instant::now();
        let next_wall = schedule.next_after(now_wall);
        let next = now + next_wall.duration_since(now_wall).unwrap_or_default();
        Ticker {
            schedule,
            next,
            next_wall,
            precise: false,
        }
    }

    pub fn next_due(&self) -> Instant {
        self.next
    }

    /// Sleeps until the next due time and advances the timeline.
    pub async fn tick(&mut self) -> Tick {
        if self.precise {
            crate::precise_timer::sleep_until(self.next.into_std()).await;
        } else {
            tokio::time::sleep_until(self.next).await;
        }
        let now = Instant::now();
        let due = self.next;
        let mut missed = 0;
        match &self.schedule {
            Schedule::Every { interval, .. } => {
                // Instant arithmetic from the previous due time: no drift.
                let mut next = due + *interval;
                while next <= now {
                    missed += 1;
                    next += *interval;
                }
                self.next = next;
            }
            Schedule::Cron { .. } => {
                let now_wall = SystemTime::now();
                let mut next_wall = self.schedule.next_after(self.next_wall);
                while next_wall <= now_wall {
                    missed += 1;
                    next_wall = self.schedule.next_after(next_wall);
                }
                // Cron follows the wall clock, so re-anchor each step.
                self.next = now + next_wall.duration_since(now_wall).unwrap_or_default();
                self.next_wall = next_wall;
            }
        }
        Tick {
            due,
            lateness: now.saturating_duration_since(due),
            missed,
        }
    }
}

/// Default timeout ceiling: min(this, 0.9 × interval).
const MAX_DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest run a long-running kind (a workflow) may have.
pub const MAX_LONG_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// A probe's `every`/`cron`, `splay` and `timeout` keys, checked: the schedule and the
/// run timeout (shorter than the interval, so runs of one probe never overlap, unless
/// the kind has `long_runs`: then up to [`MAX_LONG_TIMEOUT`], overlap bounded by
/// `max_in_flight`).
pub fn from_keys(
    raw: &ProbeCommon,
    name: &str,
    source: &Source,
    long_runs: bool,
) -> Result<(Schedule, Duration), ConfigError> {
    let err = |span: std::ops::Range<usize>, key: &str, msg: String| source.error_at(span, Some(key), msg);
    let schedule = match (&raw.every, &raw.cron) {
        (Some(_), Some(c)) => {
            return Err(err(
                c.span(),
                "probe.cron",
                "set either `every` or `cron`, not both".into(),
            ));
        }
        (None, None) => {
            return Err(err(
                raw.name.span(),
                "probe.every",
                format!("probe {name:?} has no schedule: set `every = \"30s\"` or `cron = \"*/5 * * * *\"`"),
            ));
        }
        (Some(every), None) => {
            let interval = every.get_ref().0;
            // The upper bound keeps timeline arithmetic far from overflow.
            if interval < Duration::from_millis(100) || interval > Duration::from_secs(366 * 86400) {
                return Err(err(
                    every.span(),
                    "probe.every",
                    "interval must be between 100ms and 366d".into(),
                ));
            }
            if let Some(s) = &raw.splay
                && s.get_ref().0 > interval
            {
                return Err(err(
                    s.span(),
                    "probe.splay",
                    format!(
                        "splay {} is longer than the interval {}: the start offset is always within one interval",
                        humantime::format_duration(s.get_ref().0),
                        humantime::format_duration(interval)
                    ),
                ));
            }
            let max_splay = raw.splay.as_ref().map_or(interval, |s| s.get_ref().0);
            Schedule::every(interval, name, max_splay)
        }
        (None, Some(cron)) => {
            let max_splay = raw.splay.as_ref().map_or(Duration::ZERO, |s| s.get_ref().0);
            let schedule =
                Schedule::cron(cron.get_ref(), name, max_splay).map_err(|e| err(cron.span(), "probe.cron", e))?;
            if let Some(s) = &raw.splay
                && s.get_ref().0 > schedule.shortest_period()
            {
                return Err(err(
                    s.span(),
                    "probe.splay",
                    format!(
                        "splay {} is longer than the cron period {}",
                        humantime::format_duration(s.get_ref().0),
                        humantime::format_duration(schedule.shortest_period())
                    ),
                ));
            }
            schedule
        }
    };
    let period = schedule.shortest_period();
    let timeout = match &raw.timeout {
        Some(t) => {
            let t_val = t.get_ref().0;
            if t_val.is_zero() {
                return Err(err(t.span(), "probe.timeout", "timeout must be above zero".into()));
            }
            if long_runs && t_val > MAX_LONG_TIMEOUT {
                return Err(err(t.span(), "probe.timeout", "timeout must be at most 24h".into()));
            }
            if t_val >= period && !long_runs {
                return Err(err(
                    t.span(),
                    "probe.timeout",
                    format!(
                        "timeout {} must be shorter than the interval {} (runs of one probe never overlap)",
                        humantime::format_duration(t_val),
                        humantime::format_duration(period)
                    ),
                ));
            }
            t_val
        }
        None => MAX_DEFAULT_TIMEOUT.min(period.mul_f64(0.9)),
    };
    Ok((schedule, timeout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splay_is_stable_and_bounded() {
        let a = splay("app-shell", Duration::from_secs(30));
        assert_eq!(a, splay("app-shell", Duration::from_secs(30)));
        assert!(a < Duration::from_secs(30));
        assert_ne!(a, splay("app-shell-2", Duration::from_secs(30)));
    }

    #[test]
    fn every_timeline_is_aligned_to_offset() {
        let s = Schedule::every(Duration::from_secs(10), "x", Duration::from_secs(10));
        let off = s.offset();
        let t = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let n1 = s.next_after(t);
        let n2 = s.next_after(n1);
        assert_eq!(n2.duration_since(n1).unwrap(), Duration::from_secs(10));
        let rem = n1.duration_since(UNIX_EPOCH).unwrap().as_nanos() % 10_000_000_000;
        assert_eq!(rem, off.as_nanos());
        assert!(n1 > t && n1.duration_since(t).unwrap() <= Duration::from_secs(10));
    }

    #[test]
    fn cron_fields_and_period() {
        assert!(Schedule::cron("*/5 * * * *", "x", Duration::ZERO).is_ok());
        assert!(Schedule::cron("*/10 * * * * *", "x", Duration::ZERO).is_ok());
        assert!(Schedule::cron("* * *", "x", Duration::ZERO).is_err());
        assert!(Schedule::cron("61 * * * *", "x", Duration::ZERO).is_err());
        let s = Schedule::cron("*/10 * * * * *", "x", Duration::ZERO).unwrap();
        assert_eq!(s.shortest_period(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn ticker_does_not_drift_and_counts_missed() {
        let s = Schedule::every(Duration::from_millis(100), "t", Duration::ZERO);
        let mut t = Ticker::coarse(s);
        let first = t.tick().await;
        let second = t.tick().await;
        assert_eq!(second.due - first.due, Duration::from_millis(100));
        // Stall for 350ms: the next due run is served 250ms late, the two after it
        // are missed, and the timeline continues on the original grid.
        tokio::time::advance(Duration::from_millis(350)).await;
        let late = t.tick().await;
        assert_eq!(late.due - second.due, Duration::from_millis(100));
        assert!(late.lateness >= Duration::from_millis(250) && late.lateness < Duration::from_millis(252));
        assert_eq!(late.missed, 2);
        let next = t.tick().await;
        assert_eq!(next.due - late.due, Duration::from_millis(300));
    }
}
