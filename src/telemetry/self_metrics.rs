//! The daemon's metrics about itself: build info and the OTLP exporter's counters.

use opentelemetry::KeyValue;
use opentelemetry::metrics::Meter;

use super::otlp;

/// `sloprobe_build_info` and the OTLP exporter's own counters (observed at collection).
pub fn register(meter: &Meter) {
    meter
        .u64_gauge("sloprobe.build.info")
        .with_description("1, with the version and the git revision it was built from.")
        .build()
        .record(
            1,
            &[
                KeyValue::new("version", env!("CARGO_PKG_VERSION")),
                KeyValue::new("revision", crate::REVISION),
            ],
        );
    let _exports = meter
        .u64_observable_counter("sloprobe.otlp.exports")
        .with_unit("{export}")
        .with_description("OTLP exports by outcome (success, failure).")
        .with_callback(|o| {
            let (ok, failed, _) = otlp::stats();
            if ok + failed > 0 {
                o.observe(ok, &[KeyValue::new("outcome", "success")]);
                o.observe(failed, &[KeyValue::new("outcome", "failure")]);
            }
        })
        .build();
    let _time = meter
        .f64_observable_counter("sloprobe.otlp.export.time")
        .with_unit("s")
        .with_description("Time spent in OTLP exports; with sloprobe.otlp.exports, the mean export duration.")
        .with_callback(|o| {
            let (ok, failed, seconds) = otlp::stats();
            if ok + failed > 0 {
                o.observe(seconds, &[]);
            }
        })
        .build();
}
