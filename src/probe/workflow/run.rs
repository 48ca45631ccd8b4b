//! One workflow run: the steps in order under the run's time (less what the `always`
//! steps keep), each request on a fresh timed connection, then the always steps, then the
//! intervals between marks. Every text the run reports passes the secret scrub.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header;
use serde_json::Value;

use super::client::{Client, MAX_VALUE, Outgoing, Req, Response, RunState, render};
use super::plan::{Action, Extract, Interval, MAX_JSON_VALUES, MAX_PARTS, Mark, Poll, Step};
use super::template::Vars;
use super::upload;
use crate::net::http as nethttp;
use crate::outcome::{ErrorType, ProbeError, Recorder, StepReport};
use crate::probe::kind::{BoxFuture, Probe};

pub struct WorkflowProbe {
    pub(super) client: Client,
    pub(super) steps: Vec<Step>,
    pub(super) intervals: Vec<Interval>,
    pub(super) vars: Vars,
    /// Time kept for the always steps at the end of the run's timeout.
    pub(super) reserve: Duration,
    pub(super) timeout: Duration,
}

impl WorkflowProbe {
    async fn run_all(&self, rec: &mut Recorder) -> Result<(), ProbeError> {
        let mut st = RunState {
            vars: self.vars.clone(),
            jar: Mutex::new(cookie_store::CookieStore::default()),
            marks: Vec::new(),
        };
        st.vars.set("run", run_id(), false);
        // The main steps end a little before the run's own timeout, so a step cut short
        // is still reported as that step's.
        let margin = Duration::from_millis(50).min(self.timeout / 20);
        let main_end = rec.start() + self.timeout.saturating_sub(self.reserve).saturating_sub(margin);
        let mut error: Option<ProbeError> = None;
        for (i, step) in self.steps.iter().enumerate().filter(|(_, s)| !s.always) {
            let deadline = (Instant::now() + step.deadline).min(main_end);
            if let Err(e) = self.step(rec, &mut st, i, step, deadline).await {
                rec.detail("failed_step", step.name);
                error = Some(e);
                break;
            }
        }
        if error.is_none() {
            rec.set("journey", rec.offset(Instant::now()));
        }
        for (i, step) in self.steps.iter().enumerate().filter(|(_, s)| s.always) {
            if let Some(v) = step
                .url
                .vars()
                .chain(step.headers.iter().flat_map(|(_, t)| t.vars()))
                .find(|v| st.vars.get(v).is_none())
            {
                rec.step(StepReport {
                    name: step.name.to_string(),
                    start: rec.offset(Instant::now()),
                    duration: 0.0,
                    status: None,
                    error: None,
                    notes: vec![format!("not run: ${{{v}}} was never extracted")],
                });
                continue;
            }
            let deadline = Instant::now() + step.deadline;
            if let Err(e) = self.step(rec, &mut st, i, step, deadline).await {
                if error.is_none() {
                    rec.detail("failed_step", step.name);
                    error = Some(e);
                } else {
                    rec.detail("cleanup_error", st.vars.scrub(&e.to_string()));
                }
            }
        }
        for iv in &self.intervals {
            if let (Some(from), Some(to)) = (st.at(&iv.from), st.at(&iv.to))
                && to >= from
            {
                rec.set(iv.key, (to - from).as_secs_f64());
            }
        }
        for secret in st.vars.secrets() {
            rec.scrub(secret);
        }
        match error {
            None => Ok(()),
            Some(e) => Err(st.vars.secrets().iter().fold(e, |e, s| e.scrubbed(s))),
        }
    }

    /// One step under its deadline, reported whatever happens.
    async fn step(
        &self,
        rec: &mut Recorder,
        st: &mut RunState,
        i: usize,
        step: &Step,
        deadline: Instant,
    ) -> Result<(), ProbeError> {
        rec.enter(step.name);
        let start = Instant::now();
        st.mark(Mark::Start(i), start);
        let mut report = StepReport {
            name: step.name.to_string(),
            start: rec.offset(start),
            duration: 0.0,
            status: None,
            error: None,
            notes: Vec::new(),
        };
        let work = async {
            match &step.action {
                Action::Request => self.one(rec, st, step, deadline, &mut report).await,
                Action::Poll(p) => self.poll(rec, st, i, step, p, start, deadline, &mut report).await,
                Action::Upload(u) => upload::run(&self.client, rec, st, step, u, deadline, &mut report).await,
            }
        };
        let result = match tokio::time::timeout_at(deadline.into(), work).await {
            Ok(r) => r,
            Err(_) => Err(ProbeError::new(
                ErrorType::Timeout,
                format!(
                    "step {} did not end within its deadline ({})",
                    step.name,
                    crate::config::fmt_seconds(deadline.saturating_duration_since(start).as_secs_f64())
                ),
            )),
        };
        let end = Instant::now();
        report.duration = (end - start).as_secs_f64();
        match &result {
            Ok(()) => {
                st.mark(Mark::End(i), end);
                rec.set(step.keys.duration, report.duration);
            }
            Err(e) => report.error = Some(st.vars.scrub(&e.to_string())),
        }
        report.notes = report.notes.iter().map(|n| st.vars.scrub(n)).collect();
        rec.step(report);
        result
    }

    /// A plain step: one request, its status checked, its values extracted.
    async fn one(
        &self,
        rec: &mut Recorder,
        st: &mut RunState,
        step: &Step,
        deadline: Instant,
        report: &mut StepReport,
    ) -> Result<(), ProbeError> {
        let resp = self.send(rec, st, step, deadline, report).await?;
        if !accepted(step, resp.status) {
            return Err(step_status(rec, step, &resp));
        }
        self.extract(st, step, &resp).await
    }

    /// The step's request (its body rendered), timed into the run; cookies kept.
    async fn send(
        &self,
        rec: &mut Recorder,
        st: &RunState,
        step: &Step,
        deadline: Instant,
        report: &mut StepReport,
    ) -> Result<Response, ProbeError> {
        let (url, mut headers) = self
            .client
            .target(st, step, render(step, &step.url, &st.vars)?, &st.vars)?;
        super::client::with_trace(rec, &mut headers);
        let body = match &step.body {
            Some(t) => Outgoing::Text(Bytes::from(
                t.render(&st.vars)
                    .map_err(|e| ProbeError::new(ErrorType::ExtractionFailed, format!("step {}: {e}", step.name)))?
                    .text,
            )),
            None => Outgoing::Empty,
        };
        let timeout = step.timeout.min(deadline.saturating_duration_since(Instant::now()));
        let req = Req {
            url: &url,
            method: &step.method,
            headers,
            body,
            timeout,
            keep_body: true,
        };
        let (timing, result) = self.client.request(&req).await;
        timing.record(rec, step);
        let resp = result?;
        report.status = Some(resp.status);
        st.keep_cookies(&url, &resp.headers);
        Ok(resp)
    }

    async fn extract(&self, st: &mut RunState, step: &Step, resp: &Response) -> Result<(), ProbeError> {
        let fail = |msg: String| ProbeError::new(ErrorType::ExtractionFailed, format!("step {}: {msg}", step.name));
        let mut json: Option<Value> = None;
        for (var, how, secret) in &step.extract {
            let body = resp.body.as_deref().unwrap_or_default();
            let value: Result<String, ProbeError> = match how {
                Extract::Status => Ok(resp.status.to_string()),
                Extract::Header(h) => resp
                    .headers
                    .get(h)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
                    .ok_or_else(|| fail(format!("no {h} header to extract ${{{var}}} from"))),
                Extract::Regex(re) => {
                    let text = String::from_utf8_lossy(body);
                    re.captures(&text)
                        .and_then(|c| c.get(1).or_else(|| c.get(0)))
                        .map(|m| m.as_str().to_string())
                        .ok_or_else(|| fail(format!("/{}/ does not match the body (for ${{{var}}})", re.as_str())))
                }
                Extract::Pointer(p) => {
                    if json.is_none() {
                        let what = format!("step {}'s body", step.name);
                        json = Some(
                            crate::probe::json::parse_capped(
                                body.to_vec(),
                                MAX_JSON_VALUES,
                                &what,
                                ErrorType::ExtractionFailed,
                            )
                            .await?,
                        );
                    }
                    match json.as_ref().and_then(|j| j.pointer(p)) {
                        None | Some(Value::Null) => Err(fail(format!("{p} is not in the body (for ${{{var}}})"))),
                        Some(Value::Array(items)) => {
                            let list: Vec<String> = items.iter().map(crate::probe::json::text_of).collect();
                            if list.len() > MAX_PARTS as usize || list.iter().any(|s| s.len() > MAX_VALUE) {
                                return Err(fail(format!("{p} is too large a list for ${{{var}}}")));
                            }
                            st.vars.set_list(var, list);
                            continue;
                        }
                        Some(v) => Ok(crate::probe::json::text_of(v)),
                    }
                }
            };
            let value = value?;
            if value.len() > MAX_VALUE {
                return Err(fail(format!(
                    "${{{var}}} would be {} bytes; at most {MAX_VALUE}",
                    value.len()
                )));
            }
            st.vars.set(var, value, *secret);
        }
        Ok(())
    }

    /// Polls until the job is done, timing each state's first sighting.
    #[allow(clippy::too_many_arguments)]
    async fn poll(
        &self,
        rec: &mut Recorder,
        st: &mut RunState,
        i: usize,
        step: &Step,
        p: &Poll,
        start: Instant,
        deadline: Instant,
        report: &mut StepReport,
    ) -> Result<(), ProbeError> {
        let mut polls = 0u32;
        let mut next = start;
        let mut last_state: Option<String> = None;
        let mut seen: Vec<String> = Vec::new();
        loop {
            if next > deadline {
                return Err(ProbeError::new(
                    ErrorType::Timeout,
                    format!(
                        "step {}: the job was not done within its deadline ({} polls; last state: {})",
                        step.name,
                        polls,
                        last_state.as_deref().unwrap_or("none")
                    ),
                ));
            }
            tokio::time::sleep_until(next.into()).await;
            let t = Instant::now();
            let resp = self.send(rec, st, step, deadline, report).await?;
            polls += 1;
            rec.set(p.polls_key, f64::from(polls));
            report.notes = vec![format!("polls: {polls}"), format!("states: {}", seen.join(" → "))];
            // Ticks stay on a fixed timeline from the step's start.
            next = start + p.interval * polls;
            if matches!(resp.status, 429 | 503) {
                if let Some(d) = resp
                    .headers
                    .get(header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(nethttp::parse_retry_after)
                {
                    next = next.max(t + d);
                }
                continue;
            }
            if p.until_status.contains(&resp.status) {
                self.extract(st, step, &resp).await?;
                return Ok(());
            }
            if !accepted(step, resp.status) {
                return Err(step_status(rec, step, &resp));
            }
            let Some(pointer) = &p.pointer else {
                continue;
            };
            let what = format!("step {}'s status body", step.name);
            let body = resp.body.clone().unwrap_or_default();
            let json =
                crate::probe::json::parse_capped(body, MAX_JSON_VALUES, &what, ErrorType::ExtractionFailed).await?;
            let state = json.pointer(pointer).map(crate::probe::json::text_of).ok_or_else(|| {
                ProbeError::new(
                    ErrorType::ExtractionFailed,
                    format!("step {}: {pointer} is not in the status body", step.name),
                )
            })?;
            let state = crate::redact::printable(&state, 64);
            if !seen.contains(&state) {
                let at = rec.offset(resp.end) - rec.offset(start);
                if let Some((_, key)) = p.timed.iter().find(|(s, _)| *s == state) {
                    rec.set(key, at);
                    st.mark(Mark::State(i, state.clone()), resp.end);
                }
                seen.push(state.clone());
                report.notes = vec![format!("polls: {polls}"), format!("states: {}", seen.join(" → "))];
            }
            last_state = Some(state.clone());
            if p.fail_if.contains(&state) {
                return Err(ProbeError::new(
                    ErrorType::UpstreamError,
                    format!("step {}: the job failed ({pointer} = {state})", step.name),
                ));
            }
            if p.until.contains(&state) {
                self.extract(st, step, &resp).await?;
                return Ok(());
            }
        }
    }
}

impl Probe for WorkflowProbe {
    fn run<'a>(&'a self, rec: &'a mut Recorder) -> BoxFuture<'a, Result<(), ProbeError>> {
        Box::pin(self.run_all(rec))
    }
}

fn accepted(step: &Step, status: u16) -> bool {
    match &step.status {
        Some(list) => list.contains(&status),
        None => (200..300).contains(&status),
    }
}

fn step_status(rec: &mut Recorder, step: &Step, resp: &Response) -> ProbeError {
    let e = nethttp::status_error(rec, resp.status, &resp.headers);
    ProbeError::new(e.kind, format!("step {}: {}", step.name, e.message))
}

/// An id unique to the run, for `${run}` (idempotency keys, object names).
fn run_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{:016x}",
        (nanos ^ n.rotate_left(32)).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    )
}
