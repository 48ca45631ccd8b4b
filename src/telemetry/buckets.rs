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

/// Loss shares: fine near 0, where healthy runs are.
pub const LOSS: &[f64] = &[0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0];

/// Tokens: a subset of the GenAI semantic conventions' advice (×4 steps).
pub const TOKENS: &[f64] = &[16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0];

/// Scheduler lateness is small when healthy; resolve the first milliseconds finely.
pub const LATENESS: &[f64] = &[0.0005, 0.001, 0.005, 0.025, 0.1, 1.0];

/// `http.client.request.duration`: the semantic conventions advise 14 edges (5 ms … 10 s);
/// 5 of them are kept, as each costs a series per probe and the probe's own distribution
/// is `ttfb`'s (docs/benchmarks.md has the scrape-size cost).
pub const HTTP_REQUEST: &[f64] = &[0.025, 0.1, 0.5, 2.5, 10.0];

/// GenAI operation and first-chunk durations: every other edge of the semantic conventions'
/// advice (their ×2 steps from 10 ms to 82 s, here ×4 from 20 ms), so a stream longer than
/// 10 s still lands in a bucket at half the series (exponential mode resolves finer).
pub const GENAI_SECONDS: &[f64] = &[0.02, 0.08, 0.32, 1.28, 5.12, 20.48, 81.92];

/// Time per output chunk: 8 of the semantic conventions' 13 advised edges (10 ms … 2.5 s).
pub const GENAI_CHUNK_SECONDS: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5];

/// Token usage: every other edge of the semantic conventions' advice (×16 steps, 4 … 67 M).
pub const GENAI_TOKENS: &[f64] = &[4.0, 64.0, 1024.0, 16384.0, 262144.0, 4194304.0, 67108864.0];

/// `db.client.operation.duration`: the semantic conventions' advice (1 ms … 10 s): a vector
/// query under 5 ms is resolved, not lumped into the first bucket.
pub const DB_SECONDS: &[f64] = &[0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0];

/// The edges for a metric: the semantic conventions' advice where they give one for it,
/// else the unit's defaults.
pub fn for_metric(metric: &str, unit: Unit) -> &'static [f64] {
    match metric {
        "http.client.request.duration" => HTTP_REQUEST,
        "gen_ai.client.operation.duration"
        | "gen_ai.client.operation.time_to_first_chunk"
        | "probe.assistant.ttft"
        | "probe.assistant.ttft_reasoning" => GENAI_SECONDS,
        "gen_ai.client.operation.time_per_output_chunk" | "probe.assistant.tpot" => GENAI_CHUNK_SECONDS,
        "gen_ai.client.token.usage" => GENAI_TOKENS,
        "db.client.operation.duration" => DB_SECONDS,
        _ => defaults(unit),
    }
}

pub fn defaults(unit: Unit) -> &'static [f64] {
    match unit {
        Unit::Tokens => TOKENS,
        Unit::Seconds => SECONDS,
        Unit::Bytes => BYTES,
        Unit::BytesPerSecond => BYTES_PER_SECOND,
        Unit::Score => SCORE,
        Unit::Ratio => RATIO,
        Unit::Loss => LOSS,
        Unit::Count | Unit::UnixTime | Unit::Runs => COUNT,
    }
}
