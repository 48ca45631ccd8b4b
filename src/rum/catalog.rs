//! What the collector records: the field measurement catalog and the fixed words its
//! labels take.

use super::beacon::Vital;
use crate::outcome::{Measure, Unit};

const LABELS: &[&str] = &[
    "http.route",
    "browser.web_vital.rating",
    "browser.web_vital.navigation_type",
    "rum.device.class",
    "budget.verdict",
];

macro_rules! field_vital {
    ($key:literal, $unit:expr) => {
        crate::outcome::web_vital($key, concat!("browser.web_vital.", $key), $unit, &[], LABELS)
    };
}

/// What the collector records: the browser probe's vital histograms (field data has no
/// `user_agent.synthetic.type`), plus INP and FID, which only real users produce.
pub const MEASURES: &[Measure] = &[
    field_vital!("ttfb", Unit::Seconds),
    field_vital!("fcp", Unit::Seconds),
    field_vital!("lcp", Unit::Seconds),
    field_vital!("cls", Unit::Score),
    field_vital!("inp", Unit::Seconds),
    field_vital!("fid", Unit::Seconds),
];

pub fn measure(v: Vital) -> &'static Measure {
    MEASURES
        .iter()
        .find(|m| m.key == v.key())
        .expect("every vital has a measure")
}

/// web-vitals reports milliseconds; the instruments take seconds (CLS stays a score).
pub fn to_unit(v: Vital, value: f64) -> f64 {
    match v {
        Vital::Cls => value,
        _ => value / 1000.0,
    }
}

/// mobile / tablet / desktop from a User-Agent header, by the tokens MDN recommends
/// ("Mobi", plus the tablets that lack it). iPadOS Safari says it is a Mac: desktop.
pub fn device_class(ua: &str) -> &'static str {
    let has = |s: &str| ua.contains(s);
    if has("iPad") || has("Tablet") || has("Kindle") || has("Silk/") || (has("Android") && !has("Mobi")) {
        "tablet"
    } else if has("Mobi") || has("iPhone") || has("iPod") {
        "mobile"
    } else {
        "desktop"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_classes() {
        let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";
        let android_phone = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36";
        let android_tab = "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36";
        let ipad = "Mozilla/5.0 (iPad; CPU OS 16_0 like Mac OS X) AppleWebKit/605.1.15";
        let desktop =
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0 Safari/537.36";
        assert_eq!(device_class(iphone), "mobile");
        assert_eq!(device_class(android_phone), "mobile");
        assert_eq!(device_class(android_tab), "tablet");
        assert_eq!(device_class(ipad), "tablet");
        assert_eq!(device_class(desktop), "desktop");
        assert_eq!(device_class(""), "desktop");
    }
}
