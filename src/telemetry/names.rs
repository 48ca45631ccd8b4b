//! Naming shared by the two Prometheus expositions (text and protobuf), following the
//! OpenTelemetry → Prometheus compatibility spec: dots become `_`, the unit becomes a
//! suffix (`s` → `_seconds`, `By` → `_bytes`), monotonic sums get `_total`.

use opentelemetry::KeyValue;

/// Whether a probe's series are served: given its name and, when the series has one, its
/// kind (a probe whose kind changed on reload leaves its old kind's series behind).
pub type Live<'a> = dyn Fn(&str, Option<&str>) -> bool + 'a;

/// True when the point belongs to a live probe (or to no probe).
pub fn is_live(attrs: &[&KeyValue], live: &Live<'_>) -> bool {
    let attr = |key: &str| {
        attrs
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.as_str())
    };
    match attr("probe.name") {
        None => true,
        Some(name) => live(name.as_ref(), attr("probe.kind").as_deref()),
    }
}

/// `otel_scope_name` / `otel_scope_version`, as the OTel → Prometheus compatibility spec asks.
pub fn scope_labels(scope: &opentelemetry::InstrumentationScope) -> Vec<(&'static str, String)> {
    let mut out = vec![("otel_scope_name", scope.name().to_string())];
    if let Some(v) = scope.version() {
        out.push(("otel_scope_version", v.to_string()));
    }
    out
}

pub trait Num: Copy {
    fn text(self) -> String;
    fn as_f64(self) -> f64;
}

impl Num for f64 {
    fn text(self) -> String {
        float_text(self)
    }
    fn as_f64(self) -> f64 {
        self
    }
}

impl Num for u64 {
    fn text(self) -> String {
        self.to_string()
    }
    fn as_f64(self) -> f64 {
        self as f64
    }
}

impl Num for i64 {
    fn text(self) -> String {
        self.to_string()
    }
    fn as_f64(self) -> f64 {
        self as f64
    }
}

/// A histogram without bucket edges (a "mean" instrument): Prometheus gets it as a
/// summary without quantiles, `_sum` and `_count`, which is what it is; an explicit `+Inf`
/// bucket would only repeat `_count` on every series.
pub fn is_mean<T>(h: &opentelemetry_sdk::metrics::data::Histogram<T>) -> bool {
    h.data_points().next().is_some_and(|p| p.bounds().next().is_none())
}

/// `probe.http.ttfb` + `s` → `probe_http_ttfb_seconds`; counters get `_total`.
pub fn metric_name(name: &str, unit: &str, counter: bool) -> String {
    let mut out = sanitize(name, true);
    if let Some(suffix) = unit_suffix(unit)
        && !out.ends_with(suffix)
    {
        out.push('_');
        out.push_str(suffix);
    }
    if counter && !out.ends_with("_total") {
        out.push_str("_total");
    }
    out
}

fn unit_suffix(unit: &str) -> Option<&'static str> {
    Some(match unit {
        "s" => "seconds",
        "ms" => "milliseconds",
        "By" => "bytes",
        "By/s" => "bytes_per_second",
        "1" => "ratio",
        _ => return None,
    })
}

pub fn label_name(name: &str) -> String {
    sanitize(name, false)
}

/// `label_name`, borrowed when the name is valid as it is.
pub fn label_name_cow(name: &str) -> std::borrow::Cow<'_, str> {
    let valid =
        !name.starts_with(|c: char| c.is_ascii_digit()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if valid {
        std::borrow::Cow::Borrowed(name)
    } else {
        std::borrow::Cow::Owned(sanitize(name, false))
    }
}

fn sanitize(name: &str, allow_colon: bool) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || (allow_colon && c == ':') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// How a number is written in the exposition (and so in `le` labels PromQL must match).
pub fn float_text(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}
