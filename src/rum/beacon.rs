//! The two beacon formats, parsed and validated: web-vitals `Metric` objects (`POST /rum`)
//! and Grafana Faro payloads (`POST /collect`). Pure functions over bytes, with no other
//! crate-internal dependency, so the fuzz targets (`fuzz/`) compile this file alone.
//!
//! A body that is not JSON, or too big a batch, rejects the whole beacon; otherwise each
//! metric is accepted or rejected on its own, with a reason.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::{self, IgnoredAny, SeqAccess, Visitor};
use serde_json::Value;

/// The vitals the collector takes. FID only from old emitters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Vital {
    Ttfb,
    Fcp,
    Lcp,
    Cls,
    Inp,
    Fid,
}

impl Vital {
    pub const ALL: [Vital; 6] = [Vital::Ttfb, Vital::Fcp, Vital::Lcp, Vital::Cls, Vital::Inp, Vital::Fid];

    /// The lower-case key: budgets, `measurement` labels, metric names.
    pub fn key(self) -> &'static str {
        match self {
            Vital::Ttfb => "ttfb",
            Vital::Fcp => "fcp",
            Vital::Lcp => "lcp",
            Vital::Cls => "cls",
            Vital::Inp => "inp",
            Vital::Fid => "fid",
        }
    }

    /// Case-insensitive: web-vitals sends "LCP", Faro "lcp".
    pub fn parse(name: &str) -> Option<Vital> {
        Vital::ALL.into_iter().find(|v| v.key().eq_ignore_ascii_case(name))
    }

    /// A bit per vital, for page-view coverage.
    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// web-vitals' rating thresholds (good ≤ first, poor > second), in its units.
    fn thresholds(self) -> (f64, f64) {
        match self {
            Vital::Ttfb => (800.0, 1800.0),
            Vital::Fcp => (1800.0, 3000.0),
            Vital::Lcp => (2500.0, 4000.0),
            Vital::Cls => (0.1, 0.25),
            Vital::Inp => (200.0, 500.0),
            Vital::Fid => (100.0, 300.0),
        }
    }

    /// The rating web-vitals would give this value. Computed here, never taken from the
    /// client: a label must be one of three words whatever a beacon says.
    pub fn rating(self, value: f64) -> Rating {
        let (good, poor) = self.thresholds();
        if value <= good {
            Rating::Good
        } else if value <= poor {
            Rating::NeedsImprovement
        } else {
            Rating::Poor
        }
    }

    /// The largest value a real page reports: CLS above 10 or a duration over 10 minutes
    /// is an artefact (a tab left in the background), not a user's experience.
    fn max(self) -> f64 {
        match self {
            Vital::Cls => MAX_CLS,
            _ => MAX_DURATION_MS,
        }
    }
}

pub const MAX_CLS: f64 = 10.0;
pub const MAX_DURATION_MS: f64 = 600_000.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rating {
    Good,
    NeedsImprovement,
    Poor,
}

impl Rating {
    pub fn as_str(self) -> &'static str {
        match self {
            Rating::Good => "good",
            Rating::NeedsImprovement => "needs-improvement",
            Rating::Poor => "poor",
        }
    }
}

/// web-vitals' `navigationType`, as a bounded label; anything else is `other`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Navigation {
    Navigate,
    Reload,
    BackForward,
    BackForwardCache,
    Prerender,
    Restore,
    Other,
}

impl Navigation {
    pub fn parse(s: &str) -> Navigation {
        // Faro writes it with underscores.
        match s.replace('_', "-").as_str() {
            "navigate" => Navigation::Navigate,
            "reload" => Navigation::Reload,
            "back-forward" => Navigation::BackForward,
            "back-forward-cache" => Navigation::BackForwardCache,
            "prerender" => Navigation::Prerender,
            "restore" => Navigation::Restore,
            _ => Navigation::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Navigation::Navigate => "navigate",
            Navigation::Reload => "reload",
            Navigation::BackForward => "back-forward",
            Navigation::BackForwardCache => "back-forward-cache",
            Navigation::Prerender => "prerender",
            Navigation::Restore => "restore",
            Navigation::Other => "other",
        }
    }
}

/// Why a beacon or one of its metrics was refused: the `reason` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reject {
    /// Not JSON, or not the shape of the format.
    BadJson,
    /// More metrics in one beacon than `max_batch`.
    TooManyMetrics,
    /// A field of the wrong JSON type (e.g. `"value": "12"`).
    WrongType,
    /// A required field is missing.
    MissingField,
    /// A name that is not a vital we take.
    UnknownName,
    /// Negative, NaN, infinite, CLS > 10, or a duration over 10 minutes.
    OutOfRange,
    /// An id, URL or page id past its length limit.
    TooLong,
}

impl Reject {
    pub fn as_str(self) -> &'static str {
        match self {
            Reject::BadJson => "bad_json",
            Reject::TooManyMetrics => "too_many_metrics",
            Reject::WrongType => "wrong_type",
            Reject::MissingField => "missing_field",
            Reject::UnknownName => "unknown_name",
            Reject::OutOfRange => "out_of_range",
            Reject::TooLong => "too_long",
        }
    }
}

pub const MAX_ID: usize = 128;
/// Measurements of any type one Faro payload may carry.
pub const MAX_FARO_MEASUREMENTS: usize = 1000;
/// Keys one Faro measurement's `values` may have.
pub const MAX_FARO_VALUES: usize = 64;
pub const MAX_URL: usize = 4096;

/// One vital of one page view, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct Report<'a> {
    pub vital: Vital,
    /// As web-vitals reports it: milliseconds, CLS unitless.
    pub value: f64,
    /// web-vitals' metric id: a later report with the same id replaces this one.
    pub id: Option<Cow<'a, str>>,
    pub navigation: Navigation,
    /// The page's URL (or path), if the beacon says.
    pub url: Option<Cow<'a, str>>,
    /// The page view this metric belongs to (the snippet's `pageId`, Faro's page id).
    pub page_id: Option<Cow<'a, str>>,
    /// The snippet sent this metric id in an earlier beacon of the page view too.
    pub resent: bool,
}

/// Borrowed from the body where the JSON string had no escapes: no copy per field.
pub type Parsed<'a> = Vec<Result<Report<'a>, Reject>>;

/// `POST /rum`: one web-vitals Metric object or an array of them, whatever the content
/// type said (sendBeacon sends `text/plain`). Read straight into borrowed fields, not a
/// `serde_json::Value` tree: a third of the collector's CPU went to building and dropping
/// those trees (docs/benchmarks.md).
pub fn parse_web_vitals(body: &[u8], max_batch: usize) -> Result<Parsed<'_>, Reject> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let items = de::Deserializer::deserialize_any(&mut de, Batch(max_batch)).map_err(|e| {
        if e.to_string().starts_with(TOO_MANY) {
            Reject::TooManyMetrics
        } else {
            Reject::BadJson
        }
    })?;
    de.end().map_err(|_| Reject::BadJson)?;
    Ok(items.into_iter().map(web_vitals_metric).collect())
}

/// A JSON value as far as a field check needs it, without building it.
enum Loose<'a> {
    Null,
    Num(f64),
    Str(Cow<'a, str>),
    Bool(bool),
    Other,
}

impl<'de> Deserialize<'de> for Loose<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Loose<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_unit<E>(self) -> Result<Loose<'de>, E> {
                Ok(Loose::Null)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Loose<'de>, E> {
                Ok(Loose::Bool(v))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Loose<'de>, E> {
                Ok(Loose::Num(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Loose<'de>, E> {
                Ok(Loose::Num(v as f64))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Loose<'de>, E> {
                Ok(Loose::Num(v as f64))
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Loose<'de>, E> {
                Ok(Loose::Str(v.into()))
            }
            fn visit_str<E>(self, v: &str) -> Result<Loose<'de>, E> {
                Ok(Loose::Str(v.to_string().into()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Loose<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Loose::Other)
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Loose<'de>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Loose::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// One array element: a Metric object's fields, or not an object at all.
#[derive(Default)]
struct Wire<'a> {
    object: bool,
    name: Option<Loose<'a>>,
    value: Option<Loose<'a>>,
    delta: Option<Loose<'a>>,
    id: Option<Loose<'a>>,
    navigation: Option<Loose<'a>>,
    url: Option<Loose<'a>>,
    page_id: Option<Loose<'a>>,
    resent: Option<Loose<'a>>,
}

impl<'de> Deserialize<'de> for Wire<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Wire<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a web-vitals Metric object")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Wire<'de>, A::Error> {
                let mut w = Wire {
                    object: true,
                    ..Wire::default()
                };
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    let slot = match key.as_ref() {
                        "name" => &mut w.name,
                        "value" => &mut w.value,
                        "delta" => &mut w.delta,
                        "id" => &mut w.id,
                        "navigationType" => &mut w.navigation,
                        "url" => &mut w.url,
                        "pageId" => &mut w.page_id,
                        "resent" => &mut w.resent,
                        // rating (recomputed here), attribution, entries: skipped unread.
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    };
                    *slot = Some(map.next_value()?);
                }
                Ok(w)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Wire<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Wire::default())
            }
            fn visit_unit<E>(self) -> Result<Wire<'de>, E> {
                Ok(Wire::default())
            }
            fn visit_bool<E>(self, _: bool) -> Result<Wire<'de>, E> {
                Ok(Wire::default())
            }
            fn visit_f64<E>(self, _: f64) -> Result<Wire<'de>, E> {
                Ok(Wire::default())
            }
            fn visit_i64<E>(self, _: i64) -> Result<Wire<'de>, E> {
                Ok(Wire::default())
            }
            fn visit_u64<E>(self, _: u64) -> Result<Wire<'de>, E> {
                Ok(Wire::default())
            }
            fn visit_str<E>(self, _: &str) -> Result<Wire<'de>, E> {
                Ok(Wire::default())
            }
        }
        d.deserialize_any(V)
    }
}

/// The body: one object, or an array of at most `max_batch` elements.
struct Batch(usize);

impl<'de> Visitor<'de> for Batch {
    type Value = Vec<Wire<'de>>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a Metric object or an array of them")
    }
    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        Ok(vec![Wire::deserialize(de::value::MapAccessDeserializer::new(map))?])
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(w) = seq.next_element::<Wire<'de>>()? {
            if out.len() == self.0 {
                return Err(de::Error::custom(TOO_MANY));
            }
            out.push(w);
        }
        Ok(out)
    }
}

fn web_vitals_metric(w: Wire<'_>) -> Result<Report<'_>, Reject> {
    if !w.object {
        return Err(Reject::WrongType);
    }
    let name = match &w.name {
        None | Some(Loose::Null) => return Err(Reject::MissingField),
        Some(Loose::Str(s)) => s,
        Some(_) => return Err(Reject::WrongType),
    };
    let vital = Vital::parse(name).ok_or(Reject::UnknownName)?;
    let value = loose_number(&w.value)?.ok_or(Reject::MissingField)?;
    // delta must be sane when present, though only the final value is kept.
    if let Some(d) = loose_number(&w.delta)?
        && !d.is_finite()
    {
        return Err(Reject::OutOfRange);
    }
    Ok(Report {
        vital,
        value: in_range(vital, value)?,
        navigation: loose_text(w.navigation, 64)?.map_or(Navigation::Navigate, |s| Navigation::parse(&s)),
        id: loose_text(w.id, MAX_ID)?,
        url: loose_text(w.url, MAX_URL)?,
        page_id: loose_text(w.page_id, MAX_ID)?,
        resent: match w.resent {
            None | Some(Loose::Null) => false,
            Some(Loose::Bool(b)) => b,
            Some(_) => return Err(Reject::WrongType),
        },
    })
}

fn loose_number(v: &Option<Loose<'_>>) -> Result<Option<f64>, Reject> {
    match v {
        None | Some(Loose::Null) => Ok(None),
        Some(Loose::Num(n)) => Ok(Some(*n)),
        Some(_) => Err(Reject::WrongType),
    }
}

fn loose_text(v: Option<Loose<'_>>, max: usize) -> Result<Option<Cow<'_, str>>, Reject> {
    match v {
        None | Some(Loose::Null) => Ok(None),
        Some(Loose::Str(s)) if s.len() > max => Err(Reject::TooLong),
        Some(Loose::Str(s)) => Ok(Some(s)),
        Some(_) => Err(Reject::WrongType),
    }
}

/// A page-view id made from its parts (session, view, URL, NUL-separated): "faro-" and
/// their 64-bit FNV-1a hash, so the id has a fixed length whatever the URL's, and is the
/// same in every process (a dedup window holds few enough page views that 64 bits do not
/// collide in practice).
fn derived_page_id(parts: &[&str]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, part) in parts.iter().enumerate() {
        let sep: &[u8] = if i == 0 { b"" } else { b"\0" };
        for byte in sep.iter().chain(part.as_bytes()) {
            h = (h ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("faro-{h:016x}")
}

/// `POST /collect`: a Faro payload. Only `measurements` of type `web-vitals` are read;
/// logs, events, exceptions and traces are skipped without being kept in memory.
pub fn parse_faro(body: &[u8], max_batch: usize) -> Result<Parsed<'static>, Reject> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let payload = FaroPayload::deserialize(FaroSeed(max_batch), &mut de).map_err(|e| {
        if e.to_string().starts_with(TOO_MANY) {
            Reject::TooManyMetrics
        } else {
            Reject::BadJson
        }
    })?;
    de.end().map_err(|_| Reject::BadJson)?;
    let meta = payload.meta.unwrap_or_default();
    let page = meta.page.unwrap_or_default();
    let url = page.url.filter(|u| u.len() <= MAX_URL);
    // Faro sends a page id only with `pageTracking.generatePageId`; by default a page view
    // is its session, view and URL (reloads of one URL in one session within the window
    // are one page view: docs/rum.md).
    let session = meta.session.and_then(|s| s.id).filter(|s| s.len() <= MAX_ID);
    let view = meta.view.and_then(|v| v.name).filter(|v| v.len() <= MAX_ID);
    let page_id = match (page.id.filter(|p| p.len() <= MAX_ID), session, &url) {
        (Some(id), _, _) => Some(id),
        // Hashed to a fixed length: the URL alone may be MAX_URL long, and ids are held
        // per page view (the fuzzer found a 2 KiB one).
        (None, Some(session), Some(url)) => {
            Some(derived_page_id(&[&session, view.as_deref().unwrap_or_default(), url]))
        }
        _ => None,
    };
    let mut out = Vec::new();
    for m in &payload.measurements {
        if m.get("type").and_then(Value::as_str) != Some("web-vitals") {
            continue;
        }
        out.extend(faro_measurement(m, url.as_deref(), page_id.as_deref()));
    }
    Ok(out)
}

/// One Faro web-vitals measurement: `values` holds the vital under its lower-case name
/// (plus `delta` and attribution numbers); `context` may hold id, rating and
/// navigation type.
fn faro_measurement(m: &Value, url: Option<&str>, page_id: Option<&str>) -> Parsed<'static> {
    let Some(values) = m.get("values").and_then(Value::as_object) else {
        return vec![Err(Reject::MissingField)];
    };
    // A vital, its delta and attribution numbers: a few dozen keys at most.
    if values.len() > MAX_FARO_VALUES {
        return vec![Err(Reject::TooManyMetrics)];
    }
    let context = m.get("context").and_then(Value::as_object);
    let field =
        |k: &str, max: usize| loose_text(loose(context.and_then(|c| c.get(k))), max).map(|t| t.map(|t| t.into_owned()));
    let mut out = Vec::new();
    for (name, raw) in values {
        let Some(vital) = Vital::parse(name) else {
            continue; // delta, attribution timings: not vitals
        };
        out.push((|| {
            let value = loose_number(&loose(Some(raw)))?.ok_or(Reject::MissingField)?;
            Ok(Report {
                vital,
                value: in_range(vital, value)?,
                id: field("id", MAX_ID)?.map(Cow::Owned),
                navigation: field("navigation_type", 64)?.map_or(Navigation::Navigate, |s| Navigation::parse(&s)),
                url: url.map(|u| Cow::Owned(u.to_string())),
                page_id: page_id.map(|p| Cow::Owned(p.to_string())),
                resent: false,
            })
        })());
    }
    if out.is_empty() {
        out.push(Err(Reject::UnknownName));
    }
    out
}

/// A field of a parsed Faro measurement, checked like a web-vitals field.
fn loose(v: Option<&Value>) -> Option<Loose<'_>> {
    v.map(|v| match v {
        Value::Null => Loose::Null,
        Value::Number(n) => n.as_f64().map_or(Loose::Other, Loose::Num),
        Value::String(s) => Loose::Str(Cow::Borrowed(s)),
        _ => Loose::Other,
    })
}

fn in_range(vital: Vital, value: f64) -> Result<f64, Reject> {
    if value.is_finite() && value >= 0.0 && value <= vital.max() {
        Ok(value)
    } else {
        Err(Reject::OutOfRange)
    }
}

const TOO_MANY: &str = "too many measurements";

#[derive(Default)]
struct FaroPayload {
    meta: Option<FaroMeta>,
    measurements: Vec<Value>,
}

#[derive(Default, Deserialize)]
struct FaroMeta {
    page: Option<FaroPage>,
    session: Option<FaroId>,
    view: Option<FaroView>,
}

#[derive(Default, Deserialize)]
struct FaroId {
    id: Option<String>,
}

#[derive(Default, Deserialize)]
struct FaroView {
    name: Option<String>,
}

#[derive(Default, Deserialize)]
struct FaroPage {
    url: Option<String>,
    id: Option<String>,
}

/// Deserializes a Faro payload, stopping at `max_batch` measurements instead of reading a
/// 5 MiB array into memory first.
struct FaroSeed(usize);

impl FaroPayload {
    fn deserialize<'de, D: de::Deserializer<'de>>(seed: FaroSeed, d: D) -> Result<Self, D::Error> {
        struct Top(usize);
        impl<'de> Visitor<'de> for Top {
            type Value = FaroPayload;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a Faro payload object")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<FaroPayload, A::Error> {
                let mut out = FaroPayload::default();
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    match key.as_ref() {
                        "meta" => out.meta = Some(map.next_value()?),
                        "measurements" => out.measurements = map.next_value_seed(Capped(self.0))?,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_map(Top(seed.0))
    }
}

struct Capped(usize);

impl<'de> de::DeserializeSeed<'de> for Capped {
    type Value = Vec<Value>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Vec<Value>, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Capped {
    type Value = Vec<Value>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of measurements")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Value>, A::Error> {
        // `max_batch` counts the web vitals; Faro's other measurements are dropped as they
        // are read, up to a hard cap on the whole array.
        let (mut seen, mut out) = (0, Vec::new());
        while let Some(v) = seq.next_element::<Value>()? {
            seen += 1;
            if seen > MAX_FARO_MEASUREMENTS {
                return Err(de::Error::custom(TOO_MANY));
            }
            if v.get("type").and_then(Value::as_str) != Some("web-vitals") {
                continue;
            }
            if out.len() == self.0 {
                return Err(de::Error::custom(TOO_MANY));
            }
            out.push(v);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faro_max_batch_counts_the_vitals_only() {
        let other = r#"{"type":"custom","values":{"x":1}}"#;
        let vital = r#"{"type":"web-vitals","values":{"lcp":900}}"#;
        let mut list = vec![other; 30];
        list.extend([vital, vital]);
        let body = format!(
            r#"{{"meta":{{"page":{{"url":"/a"}}}},"measurements":[{}]}}"#,
            list.join(",")
        );
        let parsed = parse_faro(body.as_bytes(), 5).expect("30 other measurements are not vitals");
        assert_eq!(parsed.iter().filter(|r| r.is_ok()).count(), 2);
        let body = format!(r#"{{"measurements":[{}]}}"#, [vital; 6].join(","));
        assert_eq!(parse_faro(body.as_bytes(), 5).unwrap_err(), Reject::TooManyMetrics);
        let body = format!(
            r#"{{"measurements":[{}]}}"#,
            vec![other; MAX_FARO_MEASUREMENTS + 1].join(",")
        );
        assert_eq!(parse_faro(body.as_bytes(), 5).unwrap_err(), Reject::TooManyMetrics);
    }

    #[test]
    fn web_vitals_object_array_and_reasons() {
        let one = br#"{"name":"LCP","value":1234.5,"rating":"good","delta":1234.5,"id":"v5-1-2","navigationType":"reload","url":"https://a.example/x?q=1"}"#;
        let r = parse_web_vitals(one, 10).unwrap();
        assert_eq!(r.len(), 1);
        let m = r[0].as_ref().unwrap();
        assert_eq!(
            (m.vital, m.value, m.navigation),
            (Vital::Lcp, 1234.5, Navigation::Reload)
        );
        assert_eq!(m.id.as_deref(), Some("v5-1-2"));

        let batch = br#"[{"name":"CLS","value":0.05,"id":"a"},{"name":"XYZ","value":1},{"name":"INP","value":"12"},
            {"name":"LCP","value":-1},{"name":"LCP","value":700000},{"name":"CLS","value":11},{"value":3},{"name":"FID","value":12}]"#;
        let r = parse_web_vitals(batch, 10).unwrap();
        let got: Vec<_> = r.iter().map(|x| x.as_ref().map(|m| m.vital).map_err(|e| *e)).collect();
        assert_eq!(
            got,
            vec![
                Ok(Vital::Cls),
                Err(Reject::UnknownName),
                Err(Reject::WrongType),
                Err(Reject::OutOfRange),
                Err(Reject::OutOfRange),
                Err(Reject::OutOfRange),
                Err(Reject::MissingField),
                Ok(Vital::Fid),
            ]
        );
        assert_eq!(parse_web_vitals(b"{not json", 10), Err(Reject::BadJson));
        assert_eq!(parse_web_vitals(b"12", 10), Err(Reject::BadJson));
        assert_eq!(
            parse_web_vitals(br#"[{"name":"LCP","value":1},{"name":"LCP","value":1}]"#, 1),
            Err(Reject::TooManyMetrics)
        );
        // JSON has no NaN; a number too big for f64 is not finite to serde_json either.
        assert_eq!(
            parse_web_vitals(br#"{"name":"LCP","value":NaN}"#, 10),
            Err(Reject::BadJson)
        );
        let huge = parse_web_vitals(br#"{"name":"LCP","value":1e400}"#, 10);
        assert!(matches!(huge, Err(Reject::BadJson)) || matches!(huge.as_deref(), Ok([Err(Reject::OutOfRange)])));
    }

    /// The fuzzers' corpus (scripts/fuzz.sh) replayed as a regression test.
    #[test]
    fn fuzz_corpus_replays_without_panics() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
        let mut n = 0;
        for (dir, parse) in [
            (
                "web_vitals",
                parse_web_vitals as fn(&[u8], usize) -> Result<Parsed<'_>, Reject>,
            ),
            ("faro", parse_faro),
        ] {
            for entry in std::fs::read_dir(root.join(dir)).unwrap() {
                let body = std::fs::read(entry.unwrap().path()).unwrap();
                if let Ok(metrics) = parse(&body, 64) {
                    assert!(metrics.iter().flatten().all(|m| m.value.is_finite() && m.value >= 0.0));
                }
                n += 1;
            }
        }
        assert!(n > 100, "only {n} corpus files");
    }

    #[test]
    fn ratings_follow_web_vitals_thresholds() {
        assert_eq!(Vital::Lcp.rating(2500.0), Rating::Good);
        assert_eq!(Vital::Lcp.rating(2500.1), Rating::NeedsImprovement);
        assert_eq!(Vital::Lcp.rating(4000.1), Rating::Poor);
        assert_eq!(Vital::Cls.rating(0.1), Rating::Good);
        assert_eq!(Vital::Inp.rating(201.0), Rating::NeedsImprovement);
    }

    #[test]
    fn faro_payload() {
        let body = br#"{"meta":{"page":{"url":"https://a.example/orders/42","id":"p1"},"session":{"id":"s"}},
            "logs":[{"message":"hi"}],
            "measurements":[
              {"type":"web-vitals","values":{"lcp":2100,"delta":2100},"context":{"id":"v4-1","rating":"good","navigation_type":"back_forward"}},
              {"type":"custom","values":{"x":1}},
              {"type":"web-vitals","values":{"cls":-2}}]}"#;
        let r = parse_faro(body, 10).unwrap();
        assert_eq!(r.len(), 2);
        let m = r[0].as_ref().unwrap();
        assert_eq!(
            (m.vital, m.value, m.navigation),
            (Vital::Lcp, 2100.0, Navigation::BackForward)
        );
        assert_eq!(m.url.as_deref(), Some("https://a.example/orders/42"));
        assert_eq!(m.page_id.as_deref(), Some("p1"));
        assert_eq!(r[1], Err(Reject::OutOfRange));
        let many = format!(
            "{{\"measurements\":[{}]}}",
            [r#"{"type":"web-vitals","values":{"lcp":1}}"#; 5].join(",")
        );
        assert_eq!(parse_faro(many.as_bytes(), 4).err(), Some(Reject::TooManyMetrics));
        assert_eq!(parse_faro(b"[]", 4).err(), Some(Reject::BadJson));
        assert_eq!(parse_faro(b"{} trailing", 4).err(), Some(Reject::BadJson));
    }

    /// Without a page id, one is derived from session, view and URL: of a fixed length
    /// however long the URL (the fuzzer found a 2 KiB one), the same for every beacon of a
    /// page view, another for another URL.
    #[test]
    fn faro_derived_page_ids_are_short_and_stable() {
        let beacon = |url: &str| {
            format!(
                r#"{{"meta":{{"page":{{"url":"{url}"}},"session":{{"id":"s1"}}}},"measurements":[{{"type":"web-vitals","values":{{"lcp":2100}}}}]}}"#
            )
        };
        let id = |url: &str| {
            let r = parse_faro(beacon(url).as_bytes(), 10).unwrap();
            r[0].as_ref().unwrap().page_id.as_deref().unwrap().to_string()
        };
        let long = format!("https://a.example/{}", "v".repeat(1900));
        assert!(id(&long).len() <= MAX_ID, "{}", id(&long));
        assert_eq!(id(&long), id(&long));
        assert_ne!(id(&long), id("https://a.example/other"));
    }
}
