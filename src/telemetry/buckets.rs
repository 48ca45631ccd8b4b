//! Histogram bucket edges: sensible defaults per unit, plus every configured budget
//! threshold, so `rate(x_bucket{le="T"}) / rate(x_count)` is an exact compliance ratio.

use crate::outcome::Unit;

/// Seconds, roughly ×2.5 steps. Kept short on purpose: 1,000 probes × 9 duration
/// histograms × every edge is what a scrape carries; SLO thresholds are added from config.
const SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

const BYTES: &[f64] = &[
    1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0, 67108864.0,
];

const COUNT: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
];

/// Scheduler lateness is small when healthy; resolve the first milliseconds finely.
pub const LATENESS: &[f64] = &[0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.25, 1.0];

const TOKENS: &[f64] = &[1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0];

pub fn defaults(unit: Unit) -> &'static [f64] {
    match unit {
        Unit::Tokens => TOKENS,
        Unit::Seconds => SECONDS,
        Unit::Bytes => BYTES,
        Unit::Count | Unit::UnixTime => COUNT,
    }
}

/// Sorted, de-duplicated union of defaults and thresholds.
pub fn with_thresholds(unit: Unit, thresholds: &[f64]) -> Vec<f64> {
    let mut edges: Vec<f64> = defaults(unit)
        .iter()
        .chain(thresholds)
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    edges.sort_by(f64::total_cmp);
    edges.dedup_by(|a, b| (*a - *b).abs() <= f64::EPSILON * a.abs().max(1.0));
    edges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_become_edges() {
        let e = with_thresholds(Unit::Seconds, &[0.123, 0.5, 0.123]);
        assert!(e.contains(&0.123));
        assert_eq!(e.iter().filter(|v| **v == 0.5).count(), 1);
        assert!(e.windows(2).all(|w| w[0] < w[1]));
    }
}
