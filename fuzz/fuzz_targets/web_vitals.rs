//! `POST /rum` bodies: any bytes give a parse result or a classified rejection, never a
//! panic, and every accepted metric is a vital within range.
#![no_main]

#[path = "../../src/rum/beacon.rs"]
#[allow(dead_code)]
mod beacon;

libfuzzer_sys::fuzz_target!(|body: &[u8]| {
    if let Ok(metrics) = beacon::parse_web_vitals(body, 64) {
        assert!(metrics.len() <= 64);
        for m in metrics.into_iter().flatten() {
            assert!(m.value.is_finite() && m.value >= 0.0);
            assert!(m.id.as_ref().is_none_or(|id| id.len() <= beacon::MAX_ID));
            assert!(m.url.as_ref().is_none_or(|u| u.len() <= beacon::MAX_URL));
        }
    }
});
