//! A journey's run: each step of `journey.rs` against the page, timed; the pages steps
//! lead to read for their figures; the page's interactions read for INP.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use serde::Deserialize;
use serde_json::{Value, json};

use super::journey::{self, Action, Step};
use super::session::{error as browser_error, session_lost};
use super::{network, page, settle};
use crate::outcome::{ErrorType, ProbeError, Recorder, StepReport};

/// A journey under way: the page it drives, and what it carries from step to step.
pub struct Journey<'a> {
    steps: &'a [Step],
    first_party: &'a [String],
    /// The settle window and its ceiling (`settle`, `settle_max`) for the pages steps lead to.
    settle: (Duration, Duration),
    client: &'a Client,
    network: Option<&'a Mutex<network::Log>>,
    /// The run's deadline; a step's own timeout may come sooner.
    deadline: Instant,
    /// When each step started.
    starts: Vec<Option<Instant>>,
    /// The page's wall clock (ms) when each action step started: interactions are given to
    /// the action step whose window they began in.
    anchors: Vec<Option<f64>>,
    /// The time origin of the document the journey is on.
    origin: Option<f64>,
    /// A new document an action step led to, not read yet.
    led_to: Option<usize>,
    /// The last action step started.
    last_action: Option<usize>,
    /// When the last wait was met (the frame), for a mark after it.
    last_met: Option<Instant>,
    interactions: Interactions,
}

impl<'a> Journey<'a> {
    pub fn new(
        steps: &'a [Step],
        first_party: &'a [String],
        settle: (Duration, Duration),
        client: &'a Client,
        network: Option<&'a Mutex<network::Log>>,
        deadline: Instant,
    ) -> Journey<'a> {
        Journey {
            steps,
            first_party,
            settle,
            client,
            network,
            deadline,
            starts: vec![None; steps.len()],
            anchors: vec![None; steps.len()],
            origin: None,
            led_to: None,
            last_action: None,
            last_met: None,
            interactions: Interactions::default(),
        }
    }
}

impl Journey<'_> {
    /// A page an action step led to: its vitals and bytes as "<step>.lcp" and so on.
    /// At the journey's end (`last`), the page settles first, as the first page did.
    pub async fn read_led_to_page(&mut self, rec: &mut Recorder, last: bool) -> Result<(), ProbeError> {
        let (client, network) = (self.client, self.network);
        let Some(i) = self.led_to.take() else {
            return Ok(());
        };
        if last {
            rec.enter("settle");
            let (quiet, ceiling) = self.settle;
            if let Some(busy) = settle::settle(quiet, ceiling, client, network, self.deadline).await? {
                rec.detail("not_quiet", busy);
            }
        }
        let step = self.steps[i].name;
        rec.enter("collect");
        let page = page::read(client).await?;
        if let Some(e) = page::navigation_error(rec, &page) {
            return Err(ProbeError::new(e.kind, format!("step {step}: {}", e.message)));
        }
        let seen = network.map(|n| n.lock().expect("network log"));
        page::record(rec, &page, self.first_party, seen.as_deref(), &|f| {
            journey::navigation_key(step, f)
        });
        Ok(())
    }

    /// Lab INP over the journey's interactions, and each action step's longest one.
    pub async fn record_interactions(&mut self, rec: &mut Recorder) {
        let journey = self;
        read_interactions(journey.client, &mut journey.interactions, true).await;
        if let Some(inp) = journey.interactions.inp() {
            rec.set("inp", inp / 1000.0);
        }
        let acts: Vec<(usize, f64)> = (0..journey.steps.len())
            .filter_map(|i| Some((i, journey.anchors[i]?)))
            .filter(|(i, _)| !matches!(journey.steps[*i].action, Action::Goto(_)))
            .collect();
        for (n, &(i, from)) in acts.iter().enumerate() {
            let until = acts.get(n + 1).map_or(f64::INFINITY, |a| a.1);
            let longest = journey
                .interactions
                .all()
                .filter(|x| x.start >= from && x.start < until)
                .map(|x| x.duration)
                .reduce(f64::max);
            if let Some(d) = longest {
                rec.set(journey::interaction_key(journey.steps[i].name), d / 1000.0);
            }
        }
    }

    /// Runs step `i`: times it, reports it, and follows a new document it leads to.
    pub async fn run_step(&mut self, rec: &mut Recorder, i: usize) -> Result<(), ProbeError> {
        let (client, network, deadline) = (self.client, self.network, self.deadline);
        let step = &self.steps[i];
        if step.acts() {
            // What the last action led to is read before this one changes it.
            // A navigation the last action started late (after its step ended) is that
            // action's page: noticed here by the document's new time origin.
            let clock = page_clock(client).await;
            if let (Some((_, origin)), Some(known), Some(last)) = (clock, self.origin, self.last_action)
                && origin != known
                && self.led_to.is_none()
            {
                self.origin = Some(origin);
                self.led_to = Some(last);
            }
            self.read_led_to_page(rec, false).await?;
            // Without waiting for a frame: what is not delivered yet is read later on this
            // page, or, if this action leaves it, lost as web-vitals would lose it.
            read_interactions(client, &mut self.interactions, false).await;
            if let Some((now, origin)) = clock {
                self.anchors[i] = Some(now);
                self.origin.get_or_insert(origin);
            }
            self.last_action = Some(i);
            if let Some(n) = network {
                n.lock().expect("network log").reset();
            }
        }
        rec.enter(step.name);
        let start = Instant::now();
        self.starts[i] = Some(start);
        let step_deadline = step.timeout.map_or(deadline, |t| deadline.min(start + t));
        let done = self.act(step, start, step_deadline).await;
        let mut end = Instant::now();
        let mut notes = vec![step.describe()];
        let done = match done {
            Ok(met) => {
                if let Some(at) = met {
                    end = at.max(start);
                }
                if step.acts() {
                    self.follow_navigation(i, step_deadline, &mut end, &mut notes).await
                } else {
                    Ok(())
                }
            }
            Err(e) => Err(e),
        };
        let duration = end.saturating_duration_since(start).as_secs_f64();
        match &step.action {
            Action::Mark { measure, from } => {
                let from = from.and_then(|f| self.starts[f]);
                if let Some(from) = from {
                    let at = self.last_met.unwrap_or(start);
                    let v = at.saturating_duration_since(from).as_secs_f64();
                    rec.set(measure.key, v);
                    notes.push(format!("{}: {}", measure.key, crate::config::fmt_seconds(v)));
                }
            }
            Action::FirstFrame { from, .. } => {
                if let (Ok(()), Some(from)) = (&done, from.and_then(|f| self.starts[f])) {
                    let v = end.saturating_duration_since(from).as_secs_f64();
                    rec.set(step.name, v);
                    notes.push(format!("first frame {}", crate::config::fmt_seconds(v)));
                }
            }
            _ if done.is_ok() => rec.set(step.name, duration),
            _ => {}
        }
        if step.is_wait() && done.is_ok() {
            self.last_met = Some(end);
        }
        rec.step(StepReport {
            name: step.name.to_string(),
            start: rec.offset(start),
            duration,
            status: None,
            error: done.as_ref().err().map(|e| e.to_string()),
            notes,
        });
        done.map_err(|e| ProbeError::new(e.kind, format!("step {}: {}", step.name, e.message)))
    }

    /// The step's own work; a wait answers when the frame that met it was drawn.
    async fn act(&self, step: &Step, start: Instant, deadline: Instant) -> Result<Option<Instant>, ProbeError> {
        let client = self.client;
        let failed = |what: &'static str| move |e: fantoccini::error::CmdError| browser_error(what, e);
        match &step.action {
            Action::Cookie { .. } | Action::Mark { .. } => Ok(None),
            Action::Goto(u) => {
                client.goto(u.as_str()).await.map_err(failed("navigating"))?;
                Ok(None)
            }
            Action::Click(selector) => {
                let el = find_waiting(client, selector, deadline).await?;
                el.click().await.map_err(failed("clicking"))?;
                Ok(None)
            }
            Action::Type { selector, text } => {
                let el = find_waiting(client, selector, deadline).await?;
                // The text is never in the error: WebDriver errors can quote a request.
                el.send_keys(text.expose()).await.map_err(|_| {
                    ProbeError::new(ErrorType::BrowserError, format!("typing into {selector:?} failed"))
                })?;
                Ok(None)
            }
            Action::Press { key, shown } => {
                let el = client
                    .active_element()
                    .await
                    .map_err(failed("finding the focused element"))?;
                el.send_keys(key)
                    .await
                    .map_err(|e| browser_error(&format!("pressing {shown}"), e))?;
                Ok(None)
            }
            Action::Select { selector, value } => {
                let el = find_waiting(client, selector, deadline).await?;
                el.select_by_value(value).await.map_err(|e| {
                    ProbeError::new(
                        ErrorType::AssertionFailed,
                        format!("no option {value:?} in {selector:?}: {}", short(&e.to_string())),
                    )
                })?;
                Ok(None)
            }
            Action::WaitFor(s) => met(wait_in_page(client, "selector", s, deadline).await?, || {
                format!("no element matches {s:?}")
            }),
            Action::WaitForText(t) => met(wait_in_page(client, "text", t, deadline).await?, || {
                format!("the page never showed {t:?}")
            }),
            Action::WaitForUrl(u) => met(wait_in_page(client, "url", u, deadline).await?, || {
                format!("the URL never contained {u:?}")
            }),
            Action::FirstFrame { selector, .. } => {
                met(wait_in_page(client, "frame", selector, deadline).await?, || {
                    format!("no video frame from {selector:?}")
                })
            }
            Action::WaitForIdle(quiet) => self.wait_for_idle(*quiet, deadline).await.map(Some),
            Action::AssertText { text, within } => match page_text(client, within.as_deref()).await? {
                Some(t) if t.contains(text.as_str()) => Ok(None),
                Some(_) => Err(ProbeError::new(
                    ErrorType::AssertionFailed,
                    format!(
                        "the text of {} does not contain {text:?}",
                        within.as_deref().unwrap_or("the page")
                    ),
                )),
                None => Err(ProbeError::new(
                    ErrorType::AssertionFailed,
                    format!("no element matches {:?}", within.as_deref().unwrap_or("body")),
                )),
            },
            Action::AssertUrl(part) => {
                let u = client.current_url().await.map_err(failed("reading the URL"))?;
                if u.as_str().contains(part.as_str()) {
                    Ok(None)
                } else {
                    Err(ProbeError::new(
                        ErrorType::AssertionFailed,
                        format!("the URL {} does not contain {part:?}", crate::redact::url(u.as_str())),
                    ))
                }
            }
            Action::AssertAttribute { selector, name, value } => {
                let el = find(client, selector).await?;
                let got = el.attr(name).await.map_err(failed("reading an attribute"))?;
                match got {
                    Some(v) if v.contains(value.as_str()) => Ok(None),
                    Some(v) => Err(ProbeError::new(
                        ErrorType::AssertionFailed,
                        format!(
                            "{selector} [{name}] is {:?}, which does not contain {value:?}",
                            short(&v)
                        ),
                    )),
                    None => Err(ProbeError::new(
                        ErrorType::AssertionFailed,
                        format!("{selector} has no attribute {name:?}"),
                    )),
                }
            }
        }
        .map(|at| at.map(|t: Instant| t.max(start)))
    }

    /// After an action: when it left for a new document, waits for that document's load
    /// event (the step's end), then lets it settle like the first page (not timed).
    async fn follow_navigation(
        &mut self,
        i: usize,
        step_deadline: Instant,
        end: &mut Instant,
        notes: &mut Vec<String>,
    ) -> Result<(), ProbeError> {
        let client = self.client;
        const STATE: &str = "const n = performance.getEntriesByType('navigation')[0]; \
            const s = window.__sloprobe; \
            return [performance.timeOrigin, document.readyState, location.href, (n && n.responseStatus) || 0, !!(s && s.leaving), !!(s && s.expecting)]";
        // A navigation the page announced (a form submitted) that has not started by then
        // never will (the submit was handled in the page after all).
        let announced_by = (*end + EXPECTED_NAVIGATION_GRACE).min(step_deadline);
        loop {
            let read = client.execute(STATE, Vec::new()).await;
            let now = Instant::now();
            match read {
                Ok(Value::Array(a)) => {
                    let origin = a.first().and_then(Value::as_f64);
                    let state = a.get(1).and_then(Value::as_str).unwrap_or_default();
                    let new_document = origin.is_some() && origin != self.origin;
                    let leaving = a.get(4).and_then(Value::as_bool).unwrap_or(false);
                    let expecting = a.get(5).and_then(Value::as_bool).unwrap_or(false) && now < announced_by;
                    if !new_document && !leaving && !expecting && !matches!(self.steps[i].action, Action::Goto(_)) {
                        return Ok(());
                    }
                    // The old document, still there while it unloads or until an announced
                    // navigation starts, is not the page it led to.
                    if state == "complete" && (new_document || !(leaving || expecting)) {
                        *end = now;
                        self.origin = origin;
                        self.led_to = Some(i);
                        let href = a.get(2).and_then(Value::as_str).unwrap_or_default();
                        notes.push(format!("loaded {}", crate::redact::url(href)));
                        let status = a.get(3).and_then(Value::as_u64).unwrap_or(0);
                        if status >= 400 {
                            let kind = if status == 429 {
                                ErrorType::RateLimited
                            } else {
                                ErrorType::HttpStatus
                            };
                            return Err(ProbeError::new(
                                kind,
                                format!("the page it led to answered HTTP {status}"),
                            ));
                        }
                        // No settle here: the next step goes on as a user would (input ends
                        // the page's LCP anyway); the journey's last page settles at the end.
                        return Ok(());
                    }
                }
                Err(e) if session_lost(&e) => return Err(browser_error("following a navigation", e)),
                _ => {}
            }
            if now >= step_deadline {
                return Err(ProbeError::new(
                    ErrorType::Timeout,
                    "the page it led to did not finish loading in time",
                ));
            }
            tokio::time::sleep_until(step_deadline.min(now + Duration::from_millis(10)).into()).await;
        }
    }

    /// No request in flight for `quiet` (DevTools; without it, no new Resource Timing entry).
    async fn wait_for_idle(&self, quiet: Duration, deadline: Instant) -> Result<Instant, ProbeError> {
        let (client, network) = (self.client, self.network);
        let (mut entries, mut changed) = (u64::MAX, Instant::now());
        loop {
            let now = Instant::now();
            let from_log = network.and_then(|n| {
                let log = n.lock().expect("network log");
                log.broken
                    .is_none()
                    .then(|| (log.in_flight() == 0).then(|| now - log.quiet_for(now)))
            });
            let idle_since = match from_log {
                Some(since) => since,
                None => {
                    let count = client
                        .execute("return performance.getEntriesByType('resource').length", Vec::new())
                        .await
                        .ok()
                        .and_then(|v| v.as_u64())
                        .unwrap_or(entries);
                    if count != entries {
                        (entries, changed) = (count, now);
                    }
                    Some(changed)
                }
            };
            if let Some(since) = idle_since
                && now.saturating_duration_since(since) >= quiet
            {
                return Ok(since);
            }
            if now >= deadline {
                return Err(ProbeError::new(
                    ErrorType::AssertionFailed,
                    format!("the network was never idle for {}", humantime::format_duration(quiet)),
                ));
            }
            tokio::time::sleep_until(deadline.min(now + Duration::from_millis(25)).into()).await;
        }
    }
}

fn met(r: Result<Instant, String>, never: impl FnOnce() -> String) -> Result<Option<Instant>, ProbeError> {
    match r {
        Ok(at) => Ok(Some(at)),
        Err(why) if why == NOT_MET => Err(ProbeError::new(ErrorType::AssertionFailed, never())),
        Err(why) => Err(ProbeError::new(ErrorType::AssertionFailed, why)),
    }
}

fn short(s: &str) -> String {
    crate::redact::text(s).chars().take(200).collect()
}

/// The element `selector` matches, waited for until `deadline` if it is not there yet.
async fn find_waiting(
    client: &Client,
    selector: &str,
    deadline: Instant,
) -> Result<fantoccini::elements::Element, ProbeError> {
    match find(client, selector).await {
        Err(e) if e.message.starts_with("no element") => {
            match wait_in_page(client, "selector", selector, deadline).await? {
                Ok(_) => find(client, selector).await,
                Err(_) => Err(e),
            }
        }
        r => r,
    }
}

const NOT_MET: &str = "not met in time";
/// How long an announced navigation (a submitted form) has to start before the step is
/// taken to have stayed on its page.
const EXPECTED_NAVIGATION_GRACE: Duration = Duration::from_secs(2);

/// How long a wait script stays in the page before it reports back (a navigation under
/// way would otherwise end it with an error only after the whole wait).
const WAIT_SLICE: Duration = Duration::from_secs(2);
/// One interaction the page's Event Timing reported: when it began (the page's wall clock,
/// ms) and its latency (ms, the browser rounds to 8).
#[derive(Debug, Clone, Copy)]
pub struct Interaction {
    pub start: f64,
    pub duration: f64,
}

/// What the page says of its interactions (`READ_INTERACTIONS_JS`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InteractionsRead {
    origin: f64,
    count: f64,
    list: Vec<[f64; 3]>,
}

/// Interactions of every document of a run, once each.
#[derive(Default)]
pub struct Interactions {
    seen: HashMap<(u64, u64), Interaction>,
    /// performance.interactionCount of each document, as last read.
    counts: HashMap<u64, f64>,
}

impl Interactions {
    pub fn all(&self) -> impl Iterator<Item = &Interaction> {
        self.seen.values()
    }

    /// INP as web-vitals computes it: the longest interaction, except that one in every
    /// 50 interactions is left out as an outlier. `None` without an interaction.
    pub fn inp(&self) -> Option<f64> {
        let mut d: Vec<f64> = self.seen.values().map(|i| i.duration).collect();
        if d.is_empty() {
            return None;
        }
        d.sort_by(|a, b| b.total_cmp(a));
        let count: f64 = self.counts.values().sum::<f64>().max(d.len() as f64);
        let skip = ((count / 50.0).floor() as usize).min(d.len() - 1);
        Some(d[skip])
    }
}

/// Reads what the page has kept of its interactions; with `arguments[0]`, first lets
/// pending Event Timing entries arrive (they are delivered after the next paint).
const READ_INTERACTIONS_JS: &str = "const done = arguments[arguments.length - 1];
const read = () => {
  const s = window.__sloprobe;
  // The page can rewrite window.__sloprobe: only numbers, at most 1,000 of them, come back.
  let list = [];
  try {
    const all = s && s.interactions && typeof s.interactions === 'object' ? s.interactions : {};
    for (const id in all) {
      if (list.length >= 1000) break;
      const v = all[id];
      if (Array.isArray(v)) list.push([Number(id), Number(v[0]), Number(v[1])]);
    }
  } catch (e) { list = []; }
  done({ origin: performance.timeOrigin, count: Number(performance.interactionCount) || 0, list });
};
if (arguments[0]) {
  requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(read, 0)));
  setTimeout(() => done(null), 1000);
} else {
  read();
}";

pub async fn read_interactions(client: &Client, into: &mut Interactions, flush: bool) {
    let Ok(v) = client.execute_async(READ_INTERACTIONS_JS, vec![json!(flush)]).await else {
        return;
    };
    let Ok(read) = serde_json::from_value::<InteractionsRead>(v) else {
        return;
    };
    let origin = read.origin.to_bits();
    into.counts.insert(origin, read.count.max(0.0));
    for [id, start, duration] in read.list.into_iter().take(10_000) {
        if id.is_finite() && start.is_finite() && duration.is_finite() && duration >= 0.0 {
            into.seen.insert((origin, id as u64), Interaction { start, duration });
        }
    }
}

/// The page's wall clock (ms) and its document's time origin.
pub async fn page_clock(client: &Client) -> Option<(f64, f64)> {
    let v = client
        .execute(
            "return [performance.timeOrigin + performance.now(), performance.timeOrigin]",
            Vec::new(),
        )
        .await
        .ok()?;
    Some((v.get(0)?.as_f64()?, v.get(1)?.as_f64()?))
}

/// Waits in the page, a slice at a time, until a condition holds, checking once a frame;
/// answers how long ago the frame that met it was (ms), or why it could not wait.
const WAIT_JS: &str = "const [what, arg, budget] = arguments;
const done = arguments[arguments.length - 1];
let met;
if (what === 'selector') met = () => document.querySelector(arg) !== null;
else if (what === 'text') met = () => !!document.body && document.body.innerText.includes(arg);
else if (what === 'url') met = () => location.href.includes(arg);
try { if (met) met(); } catch (e) { done({ error: String((e && e.message) || e) }); return; }
let finished = false;
const finish = (v) => { if (!finished) { finished = true; done(v); } };
const t0 = performance.now();
if (what === 'frame') {
  const wait = () => {
    const v = document.querySelector(arg);
    if (v && v.requestVideoFrameCallback) {
      v.requestVideoFrameCallback((now) => { const at = performance.now(); setTimeout(() => finish({ ago: performance.now() - now }), 0); });
    } else if (v) {
      finish({ error: 'not a <video> element' });
    } else if (performance.now() - t0 < budget) {
      setTimeout(wait, 16);
    }
  };
  wait();
  setTimeout(() => finish({ timeout: true }), budget);
  return;
}
const tick = () => {
  if (finished) return;
  let ok = false;
  try { ok = met(); } catch (e) {}
  if (ok) { const at = performance.now(); setTimeout(() => finish({ ago: performance.now() - at }), 0); return; }
  if (performance.now() - t0 >= budget) { finish({ timeout: true }); return; }
  requestAnimationFrame(tick);
};
requestAnimationFrame(tick);
// Where frames are not drawn (a hidden tab), a timer still checks.
const poll = () => { if (finished) return; try { if (met()) { finish({ ago: 0 }); return; } } catch (e) {} if (performance.now() - t0 >= budget) { finish({ timeout: true }); return; } setTimeout(poll, 100); };
setTimeout(poll, 100);";

#[derive(Debug, Deserialize)]
struct WaitRead {
    ago: Option<f64>,
    #[serde(default)]
    timeout: bool,
    error: Option<String>,
}

/// Waits until `what` (`selector`, `text`, `url`, `frame`) holds for `arg`; returns when
/// the frame that met it was drawn. Navigations under way are waited through.
pub async fn wait_in_page(
    client: &Client,
    what: &str,
    arg: &str,
    deadline: Instant,
) -> Result<Result<Instant, String>, ProbeError> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(Err(NOT_MET.to_string()));
        }
        let slice = left.min(WAIT_SLICE);
        let r = client
            .execute_async(WAIT_JS, vec![json!(what), json!(arg), json!(slice.as_millis() as u64)])
            .await;
        let now = Instant::now();
        match r {
            Ok(v) => match serde_json::from_value::<WaitRead>(v) {
                Ok(WaitRead { error: Some(e), .. }) => {
                    return Ok(Err(e.chars().take(200).collect()));
                }
                Ok(WaitRead { ago: Some(ago), .. }) => {
                    let ago = Duration::from_secs_f64((ago / 1000.0).clamp(0.0, 60.0));
                    return Ok(Ok(now.checked_sub(ago).unwrap_or(now)));
                }
                Ok(WaitRead { timeout: true, .. }) | Ok(_) | Err(_) => {}
            },
            Err(e) if session_lost(&e) => return Err(browser_error("waiting", e)),
            // The document went away under the script (a navigation): wait on the next one.
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// The first element matching `selector`.
pub async fn find(client: &Client, selector: &str) -> Result<fantoccini::elements::Element, ProbeError> {
    client.find(Locator::Css(selector)).await.map_err(|e| {
        use fantoccini::error::{CmdError, ErrorStatus};
        match &e {
            CmdError::Standard(w) if w.error == ErrorStatus::NoSuchElement => {
                ProbeError::new(ErrorType::AssertionFailed, format!("no element matches {selector:?}"))
            }
            CmdError::Standard(w) if w.error == ErrorStatus::InvalidSelector => {
                ProbeError::new(ErrorType::AssertionFailed, format!("invalid selector {selector:?}"))
            }
            _ => browser_error(&format!("finding {selector:?}"), e),
        }
    })
}

/// The visible text of the page, or of the element `within` matches (`None`: no such element).
pub async fn page_text(client: &Client, within: Option<&str>) -> Result<Option<String>, ProbeError> {
    let v = client
        .execute(
            "const el = arguments[0] ? document.querySelector(arguments[0]) : document.body; return el ? el.innerText : null;",
            vec![within.map_or(Value::Null, |w| json!(w))],
        )
        .await
        .map_err(|e| browser_error("reading the page's text", e))?;
    Ok(v.as_str().map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(durations: &[f64], count: f64) -> Interactions {
        let mut i = Interactions::default();
        for (n, d) in durations.iter().enumerate() {
            i.seen.insert(
                (1, n as u64),
                Interaction {
                    start: 0.0,
                    duration: *d,
                },
            );
        }
        i.counts.insert(1, count);
        i
    }

    #[test]
    fn inp_is_the_longest_interaction_but_one_in_fifty() {
        assert_eq!(Interactions::default().inp(), None);
        assert_eq!(with(&[40.0, 160.0, 56.0], 3.0).inp(), Some(160.0));
        // 120 interactions: the two longest are outliers.
        let mut d: Vec<f64> = (0..120).map(|n| n as f64).collect();
        d.reverse();
        assert_eq!(with(&d, 120.0).inp(), Some(117.0));
        // Counted interactions beyond the observed ones (under 40 ms) still count.
        assert_eq!(with(&[300.0, 200.0], 60.0).inp(), Some(200.0));
    }
}
