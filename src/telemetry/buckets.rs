//! Histogram bucket edges: one fixed, documented set per unit, the same for every probe,
//! so a probe's series never depend on another probe's budgets. Thresholds are judged
//! exactly by counters instead (`probe.threshold.runs`), not by bucket edges.

use crate::outcome::Unit;

/// Seconds: the Prometheus client libraries' default buckets (5 ms … 10 s).
pub const SECONDS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Seconds from 10 ms to 6 h, for `Instrument::LongHistogram` (workflow steps, a poll
/// waiting on a job): the spec's lines (2, 6, 10 min) are edges.
pub const LONG_SECONDS: &[f64] = &[
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 360.0, 600.0, 1200.0, 1800.0, 3600.0,
    7200.0, 21600.0,
];

pub const BYTES: &[f64] = &[1024.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0];

/// Throughput: 1 MB/s to 1 GB/s.
pub const BYTES_PER_SECOND: &[f64] = &[1e6, 5e6, 1e7, 5e7, 1e8, 5e8, 1e9];

pub const COUNT: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 64.0, 256.0, 1024.0];

/// Scores such as CLS: fine around web-vitals' 0.1 (good) and 0.25 (poor) lines.
pub const SCORE: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0];

/// Ratios such as recall: fine near 1, where the targets are.
pub const RATIO: &[f64] = &[0.5, 0.8, 0.9, 0.95, 0.96, 0.98, 0.99, 1.0];

/// Tokens: a subset of the GenAI semantic conventions' advice (×4 steps).
pub const TOKENS: &[f64] = &[16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0];

/// Scheduler lateness is small when healthy; resolve the first milliseconds finely.
pub const LATENESS: &[f64] = &[0.0005, 0.001, 0.005, 0.025, 0.1, 1.0];

pub fn defaults(unit: Unit) -> &'static [f64] {
    match unit {
        Unit::Tokens => TOKENS,
        Unit::Seconds => SECONDS,
        Unit::Bytes => BYTES,
        Unit::BytesPerSecond => BYTES_PER_SECOND,
        Unit::Score => SCORE,
        Unit::Ratio => RATIO,
        Unit::Count | Unit::UnixTime | Unit::Runs => COUNT,
    }
}
