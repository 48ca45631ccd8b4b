//! The burn-rate alert windows and factors of one SLO.
//!
//! The four conditions are the SRE workbook's: 2 % of the period's budget spent in 1h
//! (confirmed over 5m) or 5 % in 6h (30m) pages; 10 % in 1d (2h) or 10 % in 3d (6h)
//! opens a ticket. A condition's factor is the burn rate that spends that share in the
//! long window: share × period / long window (14.4 at 30d, 13.44 at 28d, as Sloth).
//!
//! - Periods of 28d and more keep the windows; the factors scale with the period and never
//!   drop below 1 (a burn under 1 cannot spend the budget within the period).
//! - Shorter periods scale the windows instead (as Pyrra does) and keep the 28d factors:
//!   a 7d SLO pages on 13.44× over 15m/1m15s. A period whose shortest window would scale
//!   under 1m is refused: Prometheus cannot confirm a burn in less.
//! - A window must hold at least two runs of the SLO's slowest probe (or two slices), or
//!   it reads no evidence most of the time and the alert could not fire: such windows are
//!   widened, and `check` says so.

use std::time::Duration;

/// Which alert a condition belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tier {
    Page,
    Ticket,
}

/// A burn-rate condition: fires when the error ratio exceeds `factor` × budget over both
/// the long and the short window.
#[derive(Clone, Debug, PartialEq)]
pub struct Burn {
    pub tier: Tier,
    /// The share of the period's budget this condition stands for.
    pub share: f64,
    pub factor: f64,
    pub long: Duration,
    pub short: Duration,
}

const HOUR: u64 = 3600;
const DAY: u64 = 86400;
/// The period the factors are fixed at when shorter periods scale the windows.
const REFERENCE: Duration = Duration::from_secs(28 * DAY);
/// The shortest window a burn can be confirmed over.
pub const SHORTEST_WINDOW: Duration = Duration::from_secs(60);

/// (tier, share of the budget, long window, short window) at periods of 28d and more.
const CONDITIONS: [(Tier, f64, u64, u64); 4] = [
    (Tier::Page, 0.02, HOUR, 300),
    (Tier::Page, 0.05, 6 * HOUR, 1800),
    (Tier::Ticket, 0.10, DAY, 2 * HOUR),
    (Tier::Ticket, 0.10, 3 * DAY, 6 * HOUR),
];

/// The factor that spends `share` of the budget within `long` of `period`.
pub fn factor(share: f64, period: Duration, long: Duration) -> f64 {
    share * period.as_secs_f64() / long.as_secs_f64()
}

/// The four conditions of an SLO with this period, every window at least `min_window`
/// (two runs of its slowest probe, or two slices; zero for none).
pub fn burns(period: Duration, min_window: Duration) -> Result<Vec<Burn>, String> {
    let scale = if period < REFERENCE {
        period.as_secs_f64() / REFERENCE.as_secs_f64()
    } else {
        1.0
    };
    let shortest = Duration::from_secs_f64(CONDITIONS[0].3 as f64 * scale);
    if shortest < SHORTEST_WINDOW {
        return Err(format!(
            "a {} period scales the 5m page confirmation window to {:.0}s: under 1m no burn can be confirmed; use a period of at least 6d",
            humantime::format_duration(period),
            shortest.as_secs_f64()
        ));
    }
    Ok(CONDITIONS
        .iter()
        .map(|&(tier, share, long, short)| {
            let long_base = Duration::from_secs(long);
            let at = if period < REFERENCE { REFERENCE } else { period };
            let whole = |secs: u64| Duration::from_secs((secs as f64 * scale).round() as u64);
            let short = whole(short).max(min_window);
            let long = whole(long).max(min_window).max(short);
            Burn {
                tier,
                share,
                factor: factor(share, at, long_base).max(1.0),
                long,
                short,
            }
        })
        .collect())
}

/// Every distinct window the conditions read, shortest first.
pub fn windows(burns: &[Burn]) -> Vec<Duration> {
    let mut w: Vec<Duration> = burns.iter().flat_map(|b| [b.long, b.short]).collect();
    w.sort();
    w.dedup();
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    fn days(d: u64) -> Duration {
        Duration::from_secs(d * DAY)
    }

    /// Factors to two decimals.
    fn factors(b: &[Burn]) -> Vec<f64> {
        b.iter().map(|b| (b.factor * 100.0).round() / 100.0).collect()
    }

    #[test]
    fn factors_scale_with_long_periods_and_never_drop_below_one() {
        let b30 = burns(days(30), Duration::ZERO).unwrap();
        assert_eq!(factors(&b30), [14.4, 6.0, 3.0, 1.0]);
        let b28 = burns(days(28), Duration::ZERO).unwrap();
        // Sloth's 0.933 for 10 % in 3d at 28d would alert on a burn that cannot spend
        // the budget: 1 instead.
        assert_eq!(factors(&b28), [13.44, 5.6, 2.8, 1.0]);
        assert_eq!(b28[0].long, Duration::from_secs(HOUR));
        assert_eq!(
            factors(&burns(days(90), Duration::ZERO).unwrap()),
            [43.2, 18.0, 9.0, 3.0]
        );
    }

    #[test]
    fn short_periods_scale_the_windows() {
        let b7 = burns(days(7), Duration::ZERO).unwrap();
        assert_eq!(factors(&b7), [13.44, 5.6, 2.8, 1.0]);
        assert_eq!(
            (b7[0].long, b7[0].short),
            (Duration::from_secs(900), Duration::from_secs(75))
        );
        assert_eq!(b7[3].long, Duration::from_secs(18 * HOUR));
        assert!(b7.iter().all(|b| b.factor >= 1.0));
        assert!(burns(days(5), Duration::ZERO).unwrap_err().contains("at least 6d"));
        assert!(burns(days(6), Duration::ZERO).is_ok());
    }

    #[test]
    fn windows_hold_two_runs_of_the_slowest_probe() {
        let b = burns(days(30), Duration::from_secs(1200)).unwrap();
        assert_eq!(
            (b[0].long, b[0].short),
            (Duration::from_secs(HOUR), Duration::from_secs(1200))
        );
        assert_eq!(b[1].short, Duration::from_secs(1800));
        let hourly = burns(days(30), Duration::from_secs(2 * HOUR)).unwrap();
        assert_eq!(
            (hourly[0].long, hourly[0].short),
            (Duration::from_secs(2 * HOUR), Duration::from_secs(2 * HOUR))
        );
    }
}
