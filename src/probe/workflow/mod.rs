//! `kind = "workflow"`: a journey of HTTP steps run in order, each over the shared timed
//! path (phases and TTFB per request), sharing cookies and variables within a run. A step
//! may extract values for later steps, upload a body in parts, or poll a status until a
//! long job is done; `always` steps (cleanup) run after success or failure. Runs may
//! outlast the interval (`max_in_flight`). Config in this file, the run in `run.rs`,
//! parts in `upload.rs`, `${name}` templates in `template.rs`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use http::Method;
use http::header::HeaderName;
use regex::Regex;
use schemars::JsonSchema;
use serde::Deserialize;

use super::http_config::{HttpVersion, Tls};
use super::kind::{BuildContext, Kind, Probe, ProbeConfig, Settings, made_measure as made};
use crate::config::{ConfigError, Dur, Secret, SecretText, Size, Spanned};
use crate::net::http::Version;
use crate::outcome::{Instrument, Measure, Unit};

mod client;
mod plan;
mod run;
pub mod template;
mod upload;

use plan::{Action, Extract, Interval, MAX_PARTS, Mark, PHASES, Poll, Step, StepKeys};
use template::Template;

pub const KIND: Kind = Kind {
    name: "workflow",
    measures: MEASURES,
    settings: super::kind::settings_of::<WorkflowSettings>,
    schema: <WorkflowSettings as JsonSchema>::json_schema,
    goodput: &[],
    headline: &["journey", "total"],
    median_gate: false,
    long_runs: true,
    target_key: None,
};

pub const MEASURES: &[Measure] = &[
    Measure {
        key: "journey",
        metric: "probe.workflow.duration",
        unit: Unit::Seconds,
        instrument: Instrument::LongHistogram,
        description: "A workflow end to end: run start to the end of its last step that is not `always` (cleanup), in successful runs.",
        fixed: &[],
        labels: &[],
    },
    super::kind::CERT_EXPIRY,
];

/// The keys of `kind = "workflow"` (besides the shared ones).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowSettings {
    /// Variables for `${name}` in steps: literal text, or a secret "env:NAME" / "file:PATH"
    /// (never printed, logged or exported).
    #[serde(default)]
    pub vars: BTreeMap<String, Spanned<SecretText>>,
    /// Runs in flight at once (default 1, at most 64); a due run past it is skipped and
    /// counted (`probe_runs_skipped_total{reason="overlap"}`).
    pub max_in_flight: Option<Spanned<u32>>,
    /// "auto" (ALPN h2 or http/1.1), "1.1" or "2".
    #[serde(default)]
    pub http_version: HttpVersion,
    /// TLS options for every step.
    #[serde(default)]
    pub tls: Tls,
    /// The most of a response body a step reads (default 1MiB, at most 8MiB); more is
    /// `body_too_large`. JSON bodies hold at most 65,536 values.
    pub max_body: Option<Spanned<Size>>,
    /// The steps, run in order.
    #[serde(rename = "step")]
    pub steps: Vec<Spanned<StepConfig>>,
    /// Named durations between two marks of the run, e.g. finalize's end → a poll state.
    #[serde(default, rename = "interval")]
    pub intervals: Vec<IntervalConfig>,
}

/// `[[probe.step]]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepConfig {
    /// 1-32 of a-z A-Z 0-9 _; names the step's measurements (`init`, `init.ttfb`).
    pub name: Spanned<String>,
    /// http:// or https:// URL; may use `${var}`.
    pub url: Spanned<String>,
    /// HTTP method; GET without a body, POST with one (PUT for an upload).
    pub method: Option<Spanned<String>>,
    /// Header name → value; values may use `${var}` (a header with a secret in it is
    /// never logged).
    #[serde(default)]
    pub headers: BTreeMap<String, Spanned<String>>,
    /// Request body; may use `${var}`.
    pub body: Option<Spanned<String>>,
    /// Accepted status codes (default any 2xx).
    pub status: Option<Spanned<Vec<u16>>>,
    /// Bounds each request of the step (default 10s, at most the step's deadline).
    pub timeout: Option<Spanned<Dur>>,
    /// Bounds the whole step with its retries or polls (default: `timeout`; for a poll
    /// or an upload, the probe's timeout).
    pub deadline: Option<Spanned<Dur>>,
    /// Run after the other steps whether they succeeded or not (cleanup); always steps
    /// come last.
    #[serde(default)]
    pub always: bool,
    /// Values taken from the response into variables for later steps.
    #[serde(default)]
    pub extract: BTreeMap<String, Spanned<ExtractConfig>>,
    /// Send a body in parts instead of one request.
    pub upload: Option<Spanned<UploadConfig>>,
    /// Repeat the request until the response says the job is done.
    pub poll: Option<Spanned<PollConfig>>,
}

/// One value to extract: exactly one of `pointer`, `regex`, `header`, `status`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtractConfig {
    /// JSON pointer into the body, e.g. "/id"; an array of strings becomes a list (for
    /// an upload's `urls`).
    pub pointer: Option<String>,
    /// A regex on the body; its first group (or whole match) is the value.
    pub regex: Option<String>,
    /// A response header's value.
    pub header: Option<String>,
    /// The status code.
    #[serde(default)]
    pub status: bool,
    /// The value is a credential: scrubbed from everything the run reports.
    #[serde(default)]
    pub secret: bool,
}

/// `[probe.step.upload]`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadConfig {
    /// Number of parts (default: the length of `urls`, or of `file` in parts).
    pub parts: Option<Spanned<u32>>,
    /// Bytes per part, e.g. "10MB" (at most 5GiB); streamed, never buffered whole.
    pub part_size: Spanned<Size>,
    /// Send consecutive slices of this file (relative to the config file) instead of
    /// generated bytes.
    pub file: Option<Spanned<String>>,
    /// A list variable extracted earlier (signed part URLs); without it the step's `url`
    /// is filled with `${part}` = 1, 2, ...
    pub urls: Option<Spanned<String>>,
    /// Parts in flight at once (default 4, at most 64).
    pub concurrency: Option<Spanned<u32>>,
    /// Tries per part (default 5): 429 and 503 wait for Retry-After (or back off),
    /// connection failures and 500/502/504 back off; other statuses fail the part.
    pub max_attempts: Option<Spanned<u32>>,
}

/// `[probe.step.poll]`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PollConfig {
    /// Time between poll starts (a fixed timeline; the report's granularity).
    pub interval: Spanned<Dur>,
    /// JSON pointer to the job's state, e.g. "/status".
    pub pointer: Option<Spanned<String>>,
    /// States at `pointer` that end the poll: the job is done.
    #[serde(default)]
    pub until: Vec<Spanned<String>>,
    /// Statuses that end the poll instead (e.g. [200] once a 202 turns into 200).
    pub until_status: Option<Spanned<Vec<u16>>>,
    /// States that end the run as failed (`upstream_error`): the job failed.
    #[serde(default)]
    pub fail_if: Vec<Spanned<String>>,
    /// More states whose first sighting is timed (`<step>.<state>`), besides `until`.
    #[serde(default)]
    pub states: Vec<Spanned<String>>,
}

/// `[[probe.interval]]`: a budgetable duration between two marks of a run.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IntervalConfig {
    /// 1-32 of a-z A-Z 0-9 _; the measurement's key.
    pub name: Spanned<String>,
    /// A mark: "<step>.start", "<step>.end" or "<poll step>.<state>" (first seen).
    pub from: Spanned<String>,
    /// A later mark, in the same forms.
    pub to: Spanned<String>,
}

const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_MAX_BODY: u64 = 1024 * 1024;
const MAX_MAX_BODY: u64 = 8 * 1024 * 1024;
const MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;
/// parts × part_size of one upload step.
const MAX_UPLOAD: u64 = 50 * 1024 * 1024 * 1024;
const MAX_STEPS: usize = 32;
const RESERVED: &[&str] = &["journey", "total", "goodput", "run", "part"];

const STEP_DESC: &str = "A workflow step: its start to its end, with its retries or polls.";
const TTFB_DESC: &str =
    "A workflow step's request: its start to the first response byte (each request, each poll, each part attempt).";
const PHASE_DESC: &str = "A workflow step's requests by phase (dns, connect, tls, send, wait, transfer); count and sum only: rate(sum)/rate(count) is the mean per request.";
const STATE_DESC: &str = "A poll step: its start until the job's state was first seen (poll interval granularity).";
const POLLS_DESC: &str = "Requests a poll step made in the last run.";
const PARTS_DESC: &str =
    "Upload parts by outcome: ok (first try), retried (ok after a retry), failed. Part success = (ok + retried) / all.";
const RETRIES_DESC: &str =
    "Upload part retries by reason: throttled (429/503), error (connection failure, 500/502/504, timeout).";
const PART_DESC: &str = "One upload part's successful attempt: request start to its response.";
const THROUGHPUT_DESC: &str = "An upload step's bytes sent in successful parts over the step's duration.";
const INTERVAL_DESC: &str =
    "A named interval of a workflow run between two marks (step start or end, poll state first seen).";

fn step_measures(s: &StepConfig) -> Vec<&'static Measure> {
    let name = s.name.get_ref();
    let step = || vec![("step", name.clone())];
    let mut out = vec![
        made(
            name.clone(),
            "probe.workflow.step.duration",
            Unit::Seconds,
            Instrument::LongHistogram,
            STEP_DESC,
            step(),
        ),
        made(
            format!("{name}.ttfb"),
            "probe.workflow.step.ttfb",
            Unit::Seconds,
            Instrument::Histogram,
            TTFB_DESC,
            step(),
        ),
    ];
    for phase in PHASES {
        out.push(made(
            format!("{name}.{phase}"),
            "probe.workflow.step.phase.duration",
            Unit::Seconds,
            Instrument::Mean,
            PHASE_DESC,
            vec![("step", name.clone()), ("phase", phase.to_string())],
        ));
    }
    if let Some(p) = &s.poll {
        let p = p.get_ref();
        out.push(made(
            format!("{name}.polls"),
            "probe.workflow.polls",
            Unit::Count,
            Instrument::Gauge,
            POLLS_DESC,
            step(),
        ));
        for state in timed_states(p) {
            out.push(made(
                format!("{name}.{state}"),
                "probe.workflow.state.time",
                Unit::Seconds,
                Instrument::LongHistogram,
                STATE_DESC,
                vec![("step", name.clone()), ("state", state.to_string())],
            ));
        }
    }
    if s.upload.is_some() {
        for outcome in ["ok", "retried", "failed"] {
            out.push(made(
                format!("{name}.parts_{outcome}"),
                "probe.workflow.parts",
                Unit::Count,
                Instrument::Counter,
                PARTS_DESC,
                vec![("step", name.clone()), ("outcome", outcome.to_string())],
            ));
        }
        for reason in ["throttled", "error"] {
            out.push(made(
                format!("{name}.retries_{reason}"),
                "probe.workflow.part.retries",
                Unit::Count,
                Instrument::Counter,
                RETRIES_DESC,
                vec![("step", name.clone()), ("reason", reason.to_string())],
            ));
        }
        out.push(made(
            format!("{name}.part"),
            "probe.workflow.part.duration",
            Unit::Seconds,
            Instrument::Histogram,
            PART_DESC,
            step(),
        ));
        out.push(made(
            format!("{name}.throughput"),
            "probe.workflow.upload.throughput",
            Unit::BytesPerSecond,
            Instrument::Gauge,
            THROUGHPUT_DESC,
            step(),
        ));
    }
    out
}

fn interval_measure(name: &str) -> &'static Measure {
    made(
        name.to_string(),
        "probe.workflow.interval.duration",
        Unit::Seconds,
        Instrument::LongHistogram,
        INTERVAL_DESC,
        vec![("interval", name.to_string())],
    )
}

/// The states a poll step times: `until`, then `states`, each once.
fn timed_states(p: &PollConfig) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for s in p.until.iter().chain(&p.states) {
        if !out.contains(&s.get_ref().as_str()) {
            out.push(s.get_ref());
        }
    }
    out
}

fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 32 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn valid_state(s: &str) -> bool {
    !s.is_empty() && s.len() <= 32 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl Settings for WorkflowSettings {
    fn plan(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for (name, v) in &self.vars {
            if Secret::is_reference(v.get_ref().as_str()) {
                lines.push(format!("var {name}: secret {} <redacted>", v.get_ref().as_str()));
            }
        }
        for s in &self.steps {
            let s = s.get_ref();
            let what = if s.upload.is_some() {
                " (upload)"
            } else if s.poll.is_some() {
                " (poll)"
            } else if s.always {
                " (always)"
            } else {
                ""
            };
            let method = s.method.as_ref().map_or("", |m| m.get_ref().as_str());
            // A template is shown as written, its query left out (it may hold a literal
            // credential); variables are names, never values.
            let url = s.url.get_ref();
            let shown = if url.contains("${") {
                match url.split_once('?') {
                    Some((base, _)) => format!("{base}?<query not shown>"),
                    None => url.clone(),
                }
            } else {
                crate::redact::url(url)
            };
            lines.push(format!("step {}{what}: {method} {shown}", s.name.get_ref()));
        }
        lines
    }

    fn measures(&self) -> Vec<&'static Measure> {
        let mut out: Vec<&'static Measure> = self.steps.iter().flat_map(|s| step_measures(s.get_ref())).collect();
        out.extend(self.intervals.iter().map(|i| interval_measure(i.name.get_ref())));
        out
    }

    fn max_in_flight(&self) -> usize {
        self.max_in_flight.as_ref().map_or(1, |n| *n.get_ref() as usize)
    }

    fn build(&self, cfg: &ProbeConfig, ctx: &BuildContext) -> Result<Box<dyn Probe>, ConfigError> {
        let raw = self;
        if let Some(n) = &raw.max_in_flight
            && !(1..=64).contains(n.get_ref())
        {
            return Err(cfg.error_at(n, "probe.max_in_flight", "max_in_flight must be between 1 and 64"));
        }
        if raw.steps.is_empty() || raw.steps.len() > MAX_STEPS {
            return Err(cfg.error_at(
                &cfg.common.name,
                "probe.step",
                format!("a workflow has 1 to {MAX_STEPS} [[probe.step]]"),
            ));
        }
        let max_body = cfg.size_within(raw.max_body.as_ref(), "probe.max_body", DEFAULT_MAX_BODY, MAX_MAX_BODY)?;

        // Variables known before the first step: config vars and built-ins.
        let mut vars = template::Vars::default();
        let mut known: HashMap<String, Option<usize>> = HashMap::new();
        known.insert("run".into(), None);
        for (name, value) in &raw.vars {
            let key = format!("probe.vars.{name}");
            if !template::valid_var(name) || RESERVED.contains(&name.as_str()) {
                return Err(cfg.error_at(
                    value,
                    &key,
                    format!("{name:?} cannot be a variable name (A-Z a-z 0-9 _, not run or part)"),
                ));
            }
            if Secret::is_reference(value.get_ref().as_str()) {
                vars.set(name, cfg.secret(value, &key)?.expose().to_string(), true);
            } else {
                vars.set(name, value.get_ref().0.clone(), false);
            }
            known.insert(name.clone(), None);
        }

        let version = Version::from(raw.http_version);
        let ca_file = raw.tls.ca_file.as_ref().map(|f| (cfg.path(f.get_ref()), f));
        let tls = ctx
            .tls_config(
                ca_file.as_ref().map(|(p, _)| p.as_path()),
                raw.tls.insecure_skip_verify,
                version.alpn(),
            )
            .map_err(|e| match &ca_file {
                Some((_, span)) => cfg.error_at(*span, "probe.tls.ca_file", e),
                None => cfg.source.error(e),
            })?;

        let mut names: HashSet<String> = HashSet::new();
        let mut steps = Vec::new();
        let mut seen_always = false;
        for i in 0..raw.steps.len() {
            steps.push(check_step(
                cfg,
                &raw.steps,
                i,
                &mut names,
                &mut known,
                &mut seen_always,
            )?);
        }
        // The run's time: cleanup keeps a reserve, the rest is the main steps'.
        let reserve: Duration = steps.iter().filter(|s| s.always).map(|s| s.deadline).sum();
        for (s, raw_step) in steps.iter_mut().zip(&raw.steps) {
            let limit = if s.always {
                cfg.timeout
            } else {
                cfg.timeout.saturating_sub(reserve)
            };
            // A poll's or upload's default deadline is what the run leaves it.
            if raw_step.get_ref().deadline.is_none() && !matches!(s.action, Action::Request) {
                s.deadline = limit.max(s.timeout);
            }
            if s.deadline > limit {
                let at = raw_step
                    .get_ref()
                    .deadline
                    .as_ref()
                    .map_or(raw_step.span(), |d| d.span());
                return Err(cfg.source.error_at(
                    at,
                    Some("probe.step.deadline"),
                    format!(
                        "step {:?} may take {} but the probe's timeout leaves it {}{}: raise `timeout`",
                        s.name,
                        humantime::format_duration(s.deadline),
                        humantime::format_duration(limit),
                        if reserve.is_zero() || s.always {
                            String::new()
                        } else {
                            format!(
                                " (after {} kept for the always steps)",
                                humantime::format_duration(reserve)
                            )
                        }
                    ),
                ));
            }
        }

        let mut intervals = Vec::new();
        for iv in &raw.intervals {
            let name = iv.name.get_ref();
            if !valid_name(name) || RESERVED.contains(&name.as_str()) || names.contains(name) {
                return Err(cfg.error_at(
                    &iv.name,
                    "probe.interval.name",
                    format!("interval name {name:?} must be 1-32 of a-z A-Z 0-9 _, and not a step's or journey/total"),
                ));
            }
            names.insert(name.clone());
            let from = mark(cfg, &raw.steps, &iv.from, "probe.interval.from")?;
            let to = mark(cfg, &raw.steps, &iv.to, "probe.interval.to")?;
            if from == to {
                return Err(cfg.error_at(&iv.to, "probe.interval.to", "`from` and `to` are the same mark"));
            }
            intervals.push(Interval {
                key: interval_measure(name).key,
                from,
                to,
            });
        }

        Ok(Box::new(run::WorkflowProbe {
            client: client::Client {
                tls,
                server_name: raw.tls.server_name.as_ref().map(|s| s.get_ref().clone()),
                version,
                resolver: ctx.resolver.clone(),
                max_body: max_body as usize,
            },
            steps,
            intervals,
            vars,
            reserve,
            timeout: cfg.timeout,
        }))
    }
}

fn mark(
    cfg: &ProbeConfig,
    steps: &[Spanned<StepConfig>],
    at: &Spanned<String>,
    key: &str,
) -> Result<Mark, ConfigError> {
    let text = at.get_ref();
    let bad = |msg: String| cfg.error_at(at, key, msg);
    let (step, what) = text.split_once('.').ok_or_else(|| {
        bad(format!(
            "{text:?} is not a mark: write \"<step>.start\", \"<step>.end\" or \"<poll step>.<state>\""
        ))
    })?;
    let i = steps
        .iter()
        .position(|s| s.get_ref().name.get_ref() == step)
        .ok_or_else(|| bad(format!("no step named {step:?}")))?;
    Ok(match what {
        "start" => Mark::Start(i),
        "end" => Mark::End(i),
        state => {
            let timed = steps[i]
                .get_ref()
                .poll
                .as_ref()
                .is_some_and(|p| timed_states(p.get_ref()).contains(&state));
            if !timed {
                return Err(bad(format!(
                    "{state:?} is not a timed state of step {step:?}: list it in its poll's `until` or `states`"
                )));
            }
            Mark::State(i, state.to_string())
        }
    })
}

fn check_step(
    cfg: &ProbeConfig,
    all: &[Spanned<StepConfig>],
    index: usize,
    names: &mut HashSet<String>,
    known: &mut HashMap<String, Option<usize>>,
    seen_always: &mut bool,
) -> Result<Step, ConfigError> {
    let s = all[index].get_ref();
    let name = s.name.get_ref();
    if !valid_name(name) || RESERVED.contains(&name.as_str()) {
        return Err(cfg.error_at(
            &s.name,
            "probe.step.name",
            format!("step name {name:?} must be 1-32 of a-z A-Z 0-9 _, and not journey, total, goodput, run or part"),
        ));
    }
    if !names.insert(name.clone()) {
        return Err(cfg.error_at(&s.name, "probe.step.name", format!("two steps are named {name:?}")));
    }
    if s.always {
        *seen_always = true;
    } else if *seen_always {
        return Err(cfg.error_at(
            &s.name,
            "probe.step.always",
            format!("step {name:?} comes after an `always` step: always steps (cleanup) come last"),
        ));
    }
    if s.upload.is_some() && s.poll.is_some() {
        return Err(cfg.error_at(&s.name, "probe.step.poll", "a step uploads or polls, not both"));
    }
    if s.always && (s.upload.is_some() || s.poll.is_some()) {
        return Err(cfg.error_at(&s.name, "probe.step.always", "an always step is one request"));
    }

    // Templates may use what is known before this step (and `part` in an upload).
    let template = |t: &Spanned<String>, key: &str| -> Result<Template, ConfigError> {
        let parsed = Template::parse(t.get_ref()).map_err(|e| cfg.error_at(t, key, e))?;
        for v in parsed.vars() {
            if v == "part" && s.upload.is_some() {
                continue;
            }
            match known.get(v) {
                Some(_) => {}
                None => {
                    return Err(cfg.error_at(
                        t,
                        key,
                        match later_extractor(all, v, index) {
                            Some(by) => format!(
                                "${{{v}}} is extracted by step {by:?}, which runs after step {name:?}: a step can only use values of earlier steps"
                            ),
                            None => format!(
                                "unknown variable ${{{v}}}: define it in [probe.vars] or extract it in an earlier step"
                            ),
                        },
                    ));
                }
            }
        }
        Ok(parsed)
    };
    let url = template(&s.url, "probe.step.url")?;
    let literal = s.url.get_ref();
    let scheme_ok = literal.starts_with("http://") || literal.starts_with("https://") || literal.starts_with("${");
    if !scheme_ok {
        return Err(cfg.error_at(&s.url, "probe.step.url", "a step URL is http:// or https://"));
    }
    let mut headers = Vec::new();
    for (h, v) in &s.headers {
        let key = format!("probe.step.headers.{h}");
        let hname = HeaderName::from_bytes(h.as_bytes())
            .map_err(|_| cfg.error_at(v, &key, format!("invalid header name {h:?}")))?;
        headers.push((hname, template(v, &key)?));
    }
    let body = s.body.as_ref().map(|b| template(b, "probe.step.body")).transpose()?;
    if body.is_some() && s.upload.is_some() {
        return Err(cfg.error_at(&s.name, "probe.step.body", "an upload step sends its parts, not `body`"));
    }
    let method = match &s.method {
        Some(m) => Method::from_bytes(m.get_ref().to_ascii_uppercase().as_bytes())
            .map_err(|_| cfg.error_at(m, "probe.step.method", format!("invalid method {:?}", m.get_ref())))?,
        None if s.upload.is_some() => Method::PUT,
        None if body.is_some() => Method::POST,
        None => Method::GET,
    };
    if let Some(st) = &s.status
        && (st.get_ref().is_empty() || st.get_ref().iter().any(|c| !(100..=599).contains(c)))
    {
        return Err(cfg.error_at(
            st,
            "probe.step.status",
            "list HTTP status codes (100-599), e.g. [200, 201]",
        ));
    }

    let timeout = s
        .timeout
        .as_ref()
        .map_or(DEFAULT_STEP_TIMEOUT.min(cfg.timeout), |t| t.get_ref().0);
    if timeout.is_zero() {
        return Err(cfg.error_at(
            s.timeout.as_ref().expect("set"),
            "probe.step.timeout",
            "timeout must be above zero",
        ));
    }
    let long = s.poll.is_some() || s.upload.is_some();
    let deadline = match &s.deadline {
        Some(d) => {
            if d.get_ref().0 < timeout {
                return Err(cfg.error_at(
                    d,
                    "probe.step.deadline",
                    format!(
                        "deadline {} is shorter than the step's request timeout {}",
                        humantime::format_duration(d.get_ref().0),
                        humantime::format_duration(timeout)
                    ),
                ));
            }
            d.get_ref().0
        }
        None if long => cfg.timeout,
        None => timeout,
    };

    let mut extract = Vec::new();
    for (var, e) in &s.extract {
        let key = format!("probe.step.extract.{var}");
        if !template::valid_var(var) || RESERVED.contains(&var.as_str()) {
            return Err(cfg.error_at(
                e,
                &key,
                format!("{var:?} cannot be a variable name (A-Z a-z 0-9 _, not run or part)"),
            ));
        }
        let raw = e.get_ref();
        let set = [
            raw.pointer.is_some(),
            raw.regex.is_some(),
            raw.header.is_some(),
            raw.status,
        ];
        if set.iter().filter(|x| **x).count() != 1 {
            return Err(cfg.error_at(e, &key, "give exactly one of `pointer`, `regex`, `header`, `status`"));
        }
        let how = if let Some(p) = &raw.pointer {
            if !(p.is_empty() || p.starts_with('/')) {
                return Err(cfg.error_at(e, &key, format!("JSON pointer {p:?} must start with '/'")));
            }
            Extract::Pointer(p.clone())
        } else if let Some(r) = &raw.regex {
            Extract::Regex(Regex::new(r).map_err(|err| cfg.error_at(e, &key, format!("invalid regex: {err}")))?)
        } else if let Some(h) = &raw.header {
            Extract::Header(
                HeaderName::from_bytes(h.as_bytes())
                    .map_err(|_| cfg.error_at(e, &key, format!("invalid header name {h:?}")))?,
            )
        } else {
            Extract::Status
        };
        known.insert(var.clone(), Some(index));
        extract.push((var.clone(), how, raw.secret));
    }

    let measures = step_measures(s);
    let key_of = |suffix: &str| -> &'static str {
        let want = if suffix.is_empty() {
            name.clone()
        } else {
            format!("{name}.{suffix}")
        };
        measures.iter().find(|m| m.key == want).expect("step measure").key
    };
    let keys = StepKeys {
        duration: key_of(""),
        ttfb: key_of("ttfb"),
        phases: PHASES.map(key_of),
    };

    let action = if let Some(p) = &s.poll {
        Action::Poll(check_poll(cfg, p, deadline, &key_of)?)
    } else if let Some(u) = &s.upload {
        let list_var = u.get_ref().urls.as_ref();
        if let Some(v) = list_var
            && known.get(v.get_ref()).is_none_or(|by| by.is_none())
        {
            return Err(cfg.error_at(
                v,
                "probe.step.upload.urls",
                format!(
                    "`urls` names a list extracted by an earlier step; {:?} is not one",
                    v.get_ref()
                ),
            ));
        }
        if list_var.is_none() && !url.vars().any(|v| v == "part") {
            return Err(cfg.error_at(
                &s.url,
                "probe.step.url",
                "an upload without `urls` puts ${part} (1, 2, ...) in the step's url",
            ));
        }
        Action::Upload(check_upload(cfg, u, &key_of, file_path(cfg, u.get_ref()))?)
    } else {
        Action::Request
    };

    Ok(Step {
        name: key_of(""),
        url,
        method,
        headers,
        body,
        status: s.status.as_ref().map(|s| s.get_ref().clone()),
        timeout,
        deadline,
        always: s.always,
        extract,
        action,
        keys,
    })
}

fn check_upload(
    cfg: &ProbeConfig,
    u: &Spanned<UploadConfig>,
    key_of: &dyn Fn(&str) -> &'static str,
    file: Option<PathBuf>,
) -> Result<plan::Upload, ConfigError> {
    let raw = u.get_ref();
    let part_size = raw.part_size.get_ref().0;
    if part_size == 0 || part_size > MAX_PART_SIZE {
        return Err(cfg.error_at(
            &raw.part_size,
            "probe.step.upload.part_size",
            "part_size must be between 1 byte and 5GiB",
        ));
    }
    let file = match (&raw.file, file) {
        (Some(at), Some(path)) => {
            let meta = std::fs::metadata(&path)
                .map_err(|e| cfg.error_at(at, "probe.step.upload.file", format!("{}: {e}", path.display())))?;
            if !meta.is_file() || meta.len() == 0 {
                return Err(cfg.error_at(at, "probe.step.upload.file", "not a regular, non-empty file"));
            }
            Some((path, meta.len()))
        }
        _ => None,
    };
    let parts = match (&raw.parts, &file) {
        (Some(n), _) => Some(*n.get_ref()),
        (None, Some((_, size))) => Some(size.div_ceil(part_size).min(u64::from(u32::MAX)) as u32),
        (None, None) if raw.urls.is_some() => None,
        (None, None) => {
            return Err(cfg.error_at(
                u,
                "probe.step.upload.parts",
                "say how many parts: `parts`, a `file`, or `urls`",
            ));
        }
    };
    if let Some(n) = parts {
        let at = raw.parts.as_ref().map_or(u.span(), |p| p.span());
        if n == 0 || n > MAX_PARTS {
            return Err(cfg.source.error_at(
                at,
                Some("probe.step.upload.parts"),
                format!("parts must be between 1 and {MAX_PARTS}"),
            ));
        }
        if u64::from(n).saturating_mul(part_size) > MAX_UPLOAD {
            return Err(cfg.source.error_at(
                at,
                Some("probe.step.upload.parts"),
                format!(
                    "parts × part_size is {}; at most {} an upload",
                    bytesize::ByteSize(u64::from(n).saturating_mul(part_size))
                        .display()
                        .iec(),
                    bytesize::ByteSize(MAX_UPLOAD).display().iec()
                ),
            ));
        }
        if let Some((_, size)) = &file
            && u64::from(n - 1) * part_size >= *size
        {
            return Err(cfg.source.error_at(
                at,
                Some("probe.step.upload.parts"),
                format!("the file holds {size} bytes: fewer than {n} parts of {part_size}"),
            ));
        }
    }
    let concurrency = raw.concurrency.as_ref().map_or(4, |c| *c.get_ref());
    if !(1..=64).contains(&concurrency) {
        let c = raw.concurrency.as_ref().expect("set");
        return Err(cfg.error_at(
            c,
            "probe.step.upload.concurrency",
            "concurrency must be between 1 and 64",
        ));
    }
    let max_attempts = raw.max_attempts.as_ref().map_or(5, |c| *c.get_ref());
    if !(1..=20).contains(&max_attempts) {
        let c = raw.max_attempts.as_ref().expect("set");
        return Err(cfg.error_at(
            c,
            "probe.step.upload.max_attempts",
            "max_attempts must be between 1 and 20",
        ));
    }
    Ok(plan::Upload {
        parts,
        part_size,
        file,
        urls_var: raw.urls.as_ref().map(|v| v.get_ref().clone()),
        concurrency: concurrency as usize,
        max_attempts,
        keys: plan::PartKeys {
            ok: key_of("parts_ok"),
            retried: key_of("parts_retried"),
            failed: key_of("parts_failed"),
            throttled: key_of("retries_throttled"),
            error: key_of("retries_error"),
            part: key_of("part"),
            throughput: key_of("throughput"),
        },
    })
}

fn file_path(cfg: &ProbeConfig, u: &UploadConfig) -> Option<PathBuf> {
    u.file.as_ref().map(|f| cfg.path(f.get_ref()))
}

/// The step from `index` on that extracts `var`, if any (for a clear ordering error).
fn later_extractor(all: &[Spanned<StepConfig>], var: &str, index: usize) -> Option<String> {
    all.iter()
        .skip(index)
        .find(|s| s.get_ref().extract.contains_key(var))
        .map(|s| s.get_ref().name.get_ref().clone())
}

fn check_poll(
    cfg: &ProbeConfig,
    p: &Spanned<PollConfig>,
    deadline: Duration,
    key_of: &dyn Fn(&str) -> &'static str,
) -> Result<Poll, ConfigError> {
    let raw = p.get_ref();
    let interval = raw.interval.get_ref().0;
    if interval < Duration::from_millis(10) || interval > deadline {
        return Err(cfg.error_at(
            &raw.interval,
            "probe.step.poll.interval",
            "the poll interval must be at least 10ms and at most the step's deadline",
        ));
    }
    let until_status = raw
        .until_status
        .as_ref()
        .map(|s| s.get_ref().clone())
        .unwrap_or_default();
    if raw.until.is_empty() && until_status.is_empty() {
        return Err(cfg.error_at(
            p,
            "probe.step.poll.until",
            "say when the job is done: `until` (states at `pointer`) or `until_status`",
        ));
    }
    let states: Vec<&Spanned<String>> = raw.until.iter().chain(&raw.fail_if).chain(&raw.states).collect();
    if raw.pointer.is_none() && !states.is_empty() {
        return Err(cfg.error_at(
            p,
            "probe.step.poll.pointer",
            "`until`, `fail_if` and `states` are values at `pointer`: set pointer = \"/status\"",
        ));
    }
    if let Some(ptr) = &raw.pointer
        && !(ptr.get_ref().is_empty() || ptr.get_ref().starts_with('/'))
    {
        return Err(cfg.error_at(ptr, "probe.step.poll.pointer", "a JSON pointer starts with '/'"));
    }
    for s in &states {
        if !valid_state(s.get_ref()) {
            return Err(cfg.error_at(*s, "probe.step.poll", "a state is 1-32 of a-z A-Z 0-9 _ -"));
        }
    }
    if let Some(clash) = raw
        .fail_if
        .iter()
        .find(|f| raw.until.iter().any(|u| u.get_ref() == f.get_ref()))
    {
        return Err(cfg.error_at(
            clash,
            "probe.step.poll.fail_if",
            "a state is in both `until` and `fail_if`",
        ));
    }
    Ok(Poll {
        interval,
        pointer: raw.pointer.as_ref().map(|p| p.get_ref().clone()),
        until: raw.until.iter().map(|s| s.get_ref().clone()).collect(),
        until_status,
        fail_if: raw.fail_if.iter().map(|s| s.get_ref().clone()).collect(),
        timed: timed_states(raw)
            .into_iter()
            .map(|s| (s.to_string(), key_of(s)))
            .collect(),
        polls_key: key_of("polls"),
    })
}
