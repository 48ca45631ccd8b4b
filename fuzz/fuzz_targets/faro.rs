//! `POST /collect` (Faro) bodies: as web_vitals, through the streaming, capped reader.
#![no_main]

#[path = "../../src/rum/beacon.rs"]
#[allow(dead_code)]
mod beacon;

libfuzzer_sys::fuzz_target!(|body: &[u8]| {
    if let Ok(metrics) = beacon::parse_faro(body, 64) {
        for m in metrics.into_iter().flatten() {
            assert!(m.value.is_finite() && m.value >= 0.0);
            assert!(m.id.as_ref().is_none_or(|id| id.len() <= beacon::MAX_ID));
            assert!(m.page_id.as_ref().is_none_or(|p| p.len() <= beacon::MAX_ID));
        }
    }
});
