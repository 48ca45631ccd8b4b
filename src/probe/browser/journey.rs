//! Browser journeys: the `[[probe.step]]` actions, waits, assertions and marks, run in
//! order after the probe's page has loaded and settled. Every step is timed; a new document
//! a step leads to gets its own TTFB, FCP, LCP, CLS and bytes ("<step>.lcp"); clicks and
//! keys are real input events through WebDriver, so the page's Event Timing entries give a
//! lab INP computed as web-vitals' `onINP` does. Config → steps here; the run in
//! `BrowserProbe::journey`.

use std::collections::HashMap;
use std::time::Duration;

use super::settings::StepConfig;
use crate::config::{ConfigError, Secret};
use crate::outcome::{Instrument, Measure, Unit};
use crate::probe::kind::{ProbeConfig, made_measure};

/// A step's action. Texts are CSS selectors unless said otherwise.
pub enum Action {
    Cookie {
        name: String,
        value: Secret,
    },
    Goto(url::Url),
    Click(String),
    Type {
        selector: String,
        text: Text,
    },
    Press {
        key: String,
        shown: String,
    },
    Select {
        selector: String,
        value: String,
    },
    WaitFor(String),
    WaitForText(String),
    WaitForUrl(String),
    WaitForIdle(Duration),
    AssertText {
        text: String,
        within: Option<String>,
    },
    AssertUrl(String),
    AssertAttribute {
        selector: String,
        name: String,
        value: String,
    },
    /// A timing from the start of step `from` (an index into the steps) to the end of the
    /// wait before this step.
    Mark {
        measure: &'static Measure,
        from: Option<usize>,
    },
    FirstFrame {
        selector: String,
        from: Option<usize>,
    },
}

/// What `type` types: literal text, or a secret that never leaves the browser.
pub enum Text {
    Literal(String),
    Secret(Secret),
}

impl Text {
    pub fn expose(&self) -> &str {
        match self {
            Text::Literal(s) => s,
            Text::Secret(s) => s.expose(),
        }
    }
}

pub struct Step {
    /// The step's name and the key of its timing.
    pub name: &'static str,
    pub action: Action,
    pub timeout: Option<Duration>,
}

impl Step {
    /// The secret the step hands the page, to be scrubbed from whatever comes back.
    pub fn secret(&self) -> Option<&str> {
        match &self.action {
            Action::Cookie { value, .. } => Some(value.expose()),
            Action::Type {
                text: Text::Secret(s), ..
            } => Some(s.expose()),
            _ => None,
        }
    }

    /// Input or navigation: what may leave the page (the first page is read before it).
    pub fn acts(&self) -> bool {
        matches!(
            self.action,
            Action::Goto(_) | Action::Click(_) | Action::Type { .. } | Action::Press { .. } | Action::Select { .. }
        )
    }

    pub fn is_wait(&self) -> bool {
        matches!(
            self.action,
            Action::WaitFor(_) | Action::WaitForText(_) | Action::WaitForUrl(_) | Action::WaitForIdle(_)
        )
    }

    /// What a report line says the step did (secrets never).
    pub fn describe(&self) -> String {
        match &self.action {
            Action::Cookie { name, value } => format!("set cookie {name}: secret {} <redacted>", value.reference()),
            Action::Goto(u) => format!("goto {}", crate::redact::url(u.as_str())),
            Action::Click(s) => format!("click {s}"),
            Action::Type { selector, text } => match text {
                Text::Literal(_) => format!("type into {selector}"),
                Text::Secret(s) => format!("type secret {} <redacted> into {selector}", s.reference()),
            },
            Action::Press { shown, .. } => format!("press {shown}"),
            Action::Select { selector, value } => format!("select {value:?} in {selector}"),
            Action::WaitFor(s) => format!("wait for {s}"),
            Action::WaitForText(t) => format!("wait for text {t:?}"),
            Action::WaitForUrl(u) => format!("wait for URL containing {u:?}"),
            Action::WaitForIdle(d) => format!("wait for {} of network idle", humantime::format_duration(*d)),
            Action::AssertText { text, within } => {
                format!(
                    "assert text {text:?}{}",
                    within.as_ref().map(|w| format!(" in {w}")).unwrap_or_default()
                )
            }
            Action::AssertUrl(u) => format!("assert URL contains {u:?}"),
            Action::AssertAttribute { selector, name, value } => {
                format!("assert {selector} [{name}] contains {value:?}")
            }
            Action::Mark { measure, .. } => format!("mark {}", measure.key),
            Action::FirstFrame { selector, .. } => format!("first frame of {selector}"),
        }
    }
}

/// The figures of a new document a step led to, recorded as "<step>.<figure>".
const NAVIGATION_FIGURES: &[&str] = &["ttfb", "fcp", "lcp", "cls", "total_bytes", "total_transfer", "requests"];

const STEP_DESC: &str = "A browser journey step: its start to its end (an action until the page it led to has loaded; a wait until the frame where it was met).";
const INTERACTION_DESC: &str = "A journey step's longest interaction: the Event Timing duration of its click or key events (input to the next paint), as INP counts one interaction.";
const MARK_DESC: &str = "A named timing of a browser journey: from the start of an action step to the frame where the wait before the mark was met.";
const FIRST_FRAME_DESC: &str = "A browser journey's video start: from the start of an action step (the click on play) to the first video frame presented.";
const NAV_VITAL_DESC: &str = "A web vital of a page a browser journey step led to (lab); label step names the step.";
const NAV_SIZE_DESC: &str = "Bytes or requests of a page a browser journey step led to; label step names the step.";

const MAX_STEPS: usize = 32;

fn name_ok(n: &str) -> bool {
    !n.is_empty() && n.len() <= 32 && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn action_word(s: &StepConfig) -> &'static str {
    let pairs: [(&'static str, bool); 16] = [
        ("set_cookie", s.set_cookie.is_some()),
        ("goto", s.goto.is_some()),
        ("click", s.click.is_some()),
        ("type", s.type_into.is_some()),
        ("press", s.press.is_some()),
        ("select", s.select.is_some()),
        ("wait_for", s.wait_for.is_some()),
        ("wait_for_text", s.wait_for_text.is_some()),
        ("wait_for_url", s.wait_for_url.is_some()),
        ("wait_for_idle", s.wait_for_idle.is_some()),
        ("assert_text", s.assert_text.is_some()),
        ("assert_url", s.assert_url.is_some()),
        ("assert_attribute", s.assert_attribute.is_some()),
        ("mark", s.mark.is_some()),
        ("first_frame", s.first_frame.is_some()),
        ("", false),
    ];
    pairs.iter().find(|(_, on)| *on).map_or("", |(w, _)| w)
}

/// Where each action key of a step was written, in the order they appear in the file.
fn action_spans(s: &StepConfig) -> Vec<std::ops::Range<usize>> {
    let mut spans: Vec<std::ops::Range<usize>> = [
        s.goto.as_ref().map(|v| v.span()),
        s.click.as_ref().map(|v| v.span()),
        s.type_into.as_ref().map(|v| v.span()),
        s.press.as_ref().map(|v| v.span()),
        s.select.as_ref().map(|v| v.span()),
        s.wait_for.as_ref().map(|v| v.span()),
        s.wait_for_text.as_ref().map(|v| v.span()),
        s.wait_for_url.as_ref().map(|v| v.span()),
        s.wait_for_idle.as_ref().map(|v| v.span()),
        s.assert_text.as_ref().map(|v| v.span()),
        s.assert_url.as_ref().map(|v| v.span()),
        s.assert_attribute.as_ref().map(|v| v.span()),
        s.mark.as_ref().map(|v| v.span()),
        s.first_frame.as_ref().map(|v| v.span()),
        s.set_cookie.as_ref().map(|v| v.span()),
    ]
    .into_iter()
    .flatten()
    .collect();
    spans.sort_by_key(|r| r.start);
    spans
}

/// The step's name: its own, or "<action>_<n>" (n from 1, over all steps).
pub fn step_name(s: &StepConfig, index: usize) -> String {
    match &s.name {
        Some(n) => n.get_ref().clone(),
        None => format!("{}_{}", action_word(s), index + 1),
    }
}

/// The catalog entries the steps add: step timings, marks, first frames, and for action
/// steps their interaction and the figures of a page they lead to.
pub fn measures(steps: &[StepConfig]) -> Vec<&'static Measure> {
    let mut out = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        if s.set_cookie.is_some() {
            continue;
        }
        let name = step_name(s, i);
        if let Some(m) = &s.mark {
            out.push(mark_measure(m.get_ref()));
            continue;
        }
        let step = || vec![("step", name.clone())];
        if s.first_frame.is_some() {
            out.push(made_measure(
                name.clone(),
                "probe.browser.first_frame.duration",
                Unit::Seconds,
                Instrument::Histogram,
                FIRST_FRAME_DESC,
                step(),
            ));
            continue;
        }
        out.push(made_measure(
            name.clone(),
            "probe.browser.step.duration",
            Unit::Seconds,
            Instrument::Histogram,
            STEP_DESC,
            step(),
        ));
        let acts =
            s.goto.is_some() || s.click.is_some() || s.type_into.is_some() || s.press.is_some() || s.select.is_some();
        if !acts {
            continue;
        }
        if s.goto.is_none() {
            out.push(made_measure(
                format!("{name}.interaction"),
                "probe.browser.interaction.duration",
                Unit::Seconds,
                Instrument::Histogram,
                INTERACTION_DESC,
                step(),
            ));
        }
        for figure in NAVIGATION_FIGURES {
            out.push(navigation_measure(&name, figure));
        }
    }
    out
}

fn mark_measure(name: &str) -> &'static Measure {
    made_measure(
        name.to_string(),
        "probe.browser.mark.duration",
        Unit::Seconds,
        Instrument::Histogram,
        MARK_DESC,
        vec![("mark", name.to_string())],
    )
}

fn navigation_measure(step: &str, figure: &str) -> &'static Measure {
    let synthetic = ("user_agent.synthetic.type", "test".to_string());
    let with_step = ("step", step.to_string());
    let key = format!("{step}.{figure}");
    match figure {
        "cls" => made_measure(
            key,
            "browser.web_vital.cls",
            Unit::Score,
            Instrument::Histogram,
            NAV_VITAL_DESC,
            vec![synthetic, with_step],
        ),
        "total_bytes" => made_measure(
            key,
            "probe.browser.page.size",
            Unit::Bytes,
            Instrument::Gauge,
            NAV_SIZE_DESC,
            vec![("type", "total".into()), with_step],
        ),
        "total_transfer" => made_measure(
            key,
            "probe.browser.page.transfer_size",
            Unit::Bytes,
            Instrument::Gauge,
            NAV_SIZE_DESC,
            vec![("type", "total".into()), with_step],
        ),
        "requests" => made_measure(
            key,
            "probe.browser.page.requests",
            Unit::Count,
            Instrument::Gauge,
            NAV_SIZE_DESC,
            vec![("type", "total".into()), with_step],
        ),
        vital => made_measure(
            key,
            match vital {
                "ttfb" => "browser.web_vital.ttfb",
                "fcp" => "browser.web_vital.fcp",
                _ => "browser.web_vital.lcp",
            },
            Unit::Seconds,
            Instrument::Histogram,
            NAV_VITAL_DESC,
            vec![synthetic, with_step],
        ),
    }
}

/// The key of an action step's longest interaction.
pub fn interaction_key(step: &str) -> &'static str {
    made_measure(
        format!("{step}.interaction"),
        "probe.browser.interaction.duration",
        Unit::Seconds,
        Instrument::Histogram,
        INTERACTION_DESC,
        vec![("step", step.to_string())],
    )
    .key
}

/// One line of `check`'s plan for a step (a typed secret shows its reference only).
pub fn plan_line(s: &StepConfig, i: usize) -> String {
    let name = step_name(s, i);
    let word = action_word(s);
    let arg = |v: &Option<crate::config::Spanned<String>>| {
        v.as_ref().map(|v| format!(" {}", v.get_ref())).unwrap_or_default()
    };
    let detail = if let Some(c) = &s.set_cookie {
        let c = c.get_ref();
        if Secret::is_reference(c.value.as_str()) {
            format!(" {}: secret {} <redacted>", c.name, c.value.as_str())
        } else {
            format!(" {}: literal <not shown>", c.name)
        }
    } else if let Some(g) = &s.goto {
        format!(" {}", crate::redact::url(g.get_ref()))
    } else if let Some(t) = &s.type_into {
        let v = s.value.as_ref().map(|v| v.get_ref().as_str()).unwrap_or_default();
        if Secret::is_reference(v) {
            format!(" into {}: secret {v} <redacted>", t.get_ref())
        } else {
            format!(" into {}: literal <not shown>", t.get_ref())
        }
    } else if let Some(d) = &s.wait_for_idle {
        format!(" {}", humantime::format_duration(d.get_ref().0))
    } else {
        [
            &s.click,
            &s.press,
            &s.select,
            &s.wait_for,
            &s.wait_for_text,
            &s.wait_for_url,
            &s.assert_text,
            &s.assert_url,
            &s.assert_attribute,
            &s.mark,
            &s.first_frame,
        ]
        .into_iter()
        .map(arg)
        .find(|a| !a.is_empty())
        .unwrap_or_default()
    };
    format!("{name}: {word}{detail}")
}

/// The key a figure of a page that step `step` led to is recorded under.
pub fn navigation_key(step: &str, figure: &str) -> Option<&'static str> {
    NAVIGATION_FIGURES
        .contains(&figure)
        .then(|| navigation_measure(step, figure).key)
}

/// WebDriver's code points for the named keys `press` accepts.
fn key_code(name: &str) -> Option<char> {
    Some(match name {
        "Enter" => '\u{E007}',
        "Tab" => '\u{E004}',
        "Escape" => '\u{E00C}',
        "Backspace" => '\u{E003}',
        "Delete" => '\u{E017}',
        "Space" => ' ',
        "ArrowLeft" => '\u{E012}',
        "ArrowUp" => '\u{E013}',
        "ArrowRight" => '\u{E014}',
        "ArrowDown" => '\u{E015}',
        "Home" => '\u{E011}',
        "End" => '\u{E010}',
        "PageUp" => '\u{E00E}',
        "PageDown" => '\u{E00F}',
        other => {
            let mut chars = other.chars();
            let c = chars.next()?;
            return chars.next().is_none().then_some(c);
        }
    })
}

/// Checks the steps and turns them into [`Step`]s; `base` resolves relative `goto`s.
pub fn build(cfg: &ProbeConfig, configs: &[StepConfig], base: &url::Url) -> Result<Vec<Step>, ConfigError> {
    let dir = cfg.source.path.parent().unwrap_or(std::path::Path::new("."));
    let at_step = |msg: String| cfg.source.error_at(cfg.common.name.span(), Some("probe.step"), msg);
    if configs.len() > MAX_STEPS {
        return Err(at_step(format!("at most {MAX_STEPS} steps a probe")));
    }
    // The catalog entries hold the names for the life of the process.
    let catalog = measures(configs);
    let mut steps: Vec<Step> = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut last_action: Option<usize> = None;
    for (i, s) in configs.iter().enumerate() {
        let spans = action_spans(s);
        match spans.len() {
            1 => {}
            n if n > 1 => {
                return Err(cfg.source.error_at(
                    spans[1].clone(),
                    Some("probe.step"),
                    format!(
                        "step {} has more than one action; give each its own [[probe.step]]",
                        i + 1
                    ),
                ));
            }
            _ => {
                return Err(at_step(format!(
                    "step {} has no action (goto, click, type, press, select, wait_for…, assert…, mark, first_frame or set_cookie)",
                    i + 1
                )));
            }
        }
        let name = step_name(s, i);
        if let Some(n) = &s.name {
            if !name_ok(n.get_ref()) {
                return Err(cfg.error_at(n, "probe.step.name", "a step name is 1-32 of a-z A-Z 0-9 _"));
            }
            if super::catalog::key(n.get_ref()).is_some() || n.get_ref() == "inp" || n.get_ref() == "total" {
                return Err(cfg.error_at(
                    n,
                    "probe.step.name",
                    format!("{:?} is a built-in measurement of kind \"browser\"", n.get_ref()),
                ));
            }
        }
        let timeout = s.timeout.as_ref().map(|t| t.get_ref().0);
        if let (Some(t), Some(d)) = (&s.timeout, timeout)
            && (d.is_zero() || d >= cfg.timeout)
        {
            return Err(cfg.error_at(
                t,
                "probe.step.timeout",
                "a step's timeout is above 0 and below the probe's `timeout`",
            ));
        }
        let needs_value = s.type_into.is_some() || s.select.is_some() || s.assert_attribute.is_some();
        if let Some(v) = &s.value
            && !needs_value
        {
            return Err(cfg.error_at(
                v,
                "probe.step.value",
                "`value` belongs to a `type`, `select` or `assert_attribute` step",
            ));
        }
        if let Some(sel) = &s.selector
            && s.assert_text.is_none()
            && s.assert_attribute.is_none()
        {
            return Err(cfg.error_at(
                sel,
                "probe.step.selector",
                "`selector` belongs to an `assert_text` or `assert_attribute` step",
            ));
        }
        let from = match &s.from {
            None => last_action,
            Some(f) => {
                if s.mark.is_none() && s.first_frame.is_none() {
                    return Err(cfg.error_at(f, "probe.step.from", "`from` belongs to a `mark` or `first_frame` step"));
                }
                match names.get(f.get_ref()) {
                    Some(&j) => Some(j),
                    None => {
                        return Err(cfg.error_at(
                            f,
                            "probe.step.from",
                            format!("no earlier step is named {:?}", f.get_ref()),
                        ));
                    }
                }
            }
        };
        let value = |what: &str| -> Result<String, ConfigError> {
            match &s.value {
                Some(v) => Ok(v.get_ref().as_str().to_string()),
                None => Err(at_step(format!("step {} ({what}) needs `value`", i + 1))),
            }
        };
        let action = if let Some(c) = &s.set_cookie {
            let raw = c.get_ref();
            if raw.name.is_empty() || raw.name.contains([';', '=', ' ', ',']) {
                return Err(cfg.error_at(c, "probe.step.set_cookie", "invalid cookie name"));
            }
            let value = Secret::resolve(raw.value.as_str(), dir)
                .map_err(|e| cfg.error_at(c, "probe.step.set_cookie.value", e))?;
            Action::Cookie {
                name: raw.name.clone(),
                value,
            }
        } else if let Some(g) = &s.goto {
            let u = base
                .join(g.get_ref())
                .map_err(|e| cfg.error_at(g, "probe.step.goto", format!("invalid URL: {e}")))?;
            if !matches!(u.scheme(), "http" | "https") {
                return Err(cfg.error_at(g, "probe.step.goto", "goto loads an http:// or https:// page"));
            }
            Action::Goto(u)
        } else if let Some(c) = &s.click {
            Action::Click(c.get_ref().clone())
        } else if let Some(t) = &s.type_into {
            let raw = value("type")?;
            let text = if Secret::is_reference(&raw) {
                let v = s.value.as_ref().expect("value checked");
                Text::Secret(Secret::resolve(&raw, dir).map_err(|e| cfg.error_at(v, "probe.step.value", e))?)
            } else {
                Text::Literal(raw)
            };
            Action::Type {
                selector: t.get_ref().clone(),
                text,
            }
        } else if let Some(p) = &s.press {
            let Some(c) = key_code(p.get_ref()) else {
                return Err(cfg.error_at(p, "probe.step.press", "press names one key: Enter, Tab, Escape, Backspace, Delete, Space, ArrowUp/Down/Left/Right, Home, End, PageUp, PageDown, or one character"));
            };
            Action::Press {
                key: c.to_string(),
                shown: p.get_ref().clone(),
            }
        } else if let Some(sel) = &s.select {
            Action::Select {
                selector: sel.get_ref().clone(),
                value: value("select")?,
            }
        } else if let Some(w) = &s.wait_for {
            Action::WaitFor(w.get_ref().clone())
        } else if let Some(w) = &s.wait_for_text {
            Action::WaitForText(w.get_ref().clone())
        } else if let Some(w) = &s.wait_for_url {
            Action::WaitForUrl(w.get_ref().clone())
        } else if let Some(w) = &s.wait_for_idle {
            Action::WaitForIdle(w.get_ref().0)
        } else if let Some(a) = &s.assert_text {
            Action::AssertText {
                text: a.get_ref().clone(),
                within: s.selector.as_ref().map(|x| x.get_ref().clone()),
            }
        } else if let Some(a) = &s.assert_url {
            Action::AssertUrl(a.get_ref().clone())
        } else if let Some(a) = &s.assert_attribute {
            let Some(sel) = &s.selector else {
                return Err(cfg.error_at(a, "probe.step.assert_attribute", "assert_attribute needs `selector`"));
            };
            let Some(v) = &s.value_text() else {
                return Err(cfg.error_at(
                    a,
                    "probe.step.assert_attribute",
                    "assert_attribute needs `value`, the text the attribute must contain",
                ));
            };
            Action::AssertAttribute {
                selector: sel.get_ref().clone(),
                name: a.get_ref().clone(),
                value: v.clone(),
            }
        } else if let Some(m) = &s.mark {
            if !name_ok(m.get_ref()) {
                return Err(cfg.error_at(m, "probe.step.mark", "a mark's name is 1-32 of a-z A-Z 0-9 _"));
            }
            if from.is_none() {
                return Err(cfg.error_at(m, "probe.step.mark", "a mark times from an earlier action step (goto, click, type, press, select) or `from`; there is none"));
            }
            Action::Mark {
                measure: mark_measure(m.get_ref()),
                from,
            }
        } else if let Some(f) = &s.first_frame {
            if from.is_none() {
                return Err(cfg.error_at(
                    f,
                    "probe.step.first_frame",
                    "first_frame times from an earlier action step (the click on play) or `from`; there is none",
                ));
            }
            Action::FirstFrame {
                selector: f.get_ref().clone(),
                from,
            }
        } else {
            unreachable!("one action, counted above")
        };
        let key_name = match &action {
            Action::Mark { measure, .. } => measure.key.to_string(),
            _ => name.clone(),
        };
        if names.insert(key_name.clone(), i).is_some() {
            return Err(at_step(format!("two steps or marks are named {key_name:?}")));
        }
        let step = Step {
            name: catalog.iter().find(|m| m.key == key_name).map_or("step", |m| m.key),
            action,
            timeout,
        };
        if step.acts() {
            last_action = Some(i);
        }
        steps.push(step);
    }
    Ok(steps)
}

impl StepConfig {
    fn value_text(&self) -> Option<String> {
        self.value.as_ref().map(|v| v.get_ref().as_str().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_keys() {
        assert_eq!(key_code("Enter"), Some('\u{E007}'));
        assert_eq!(key_code("a"), Some('a'));
        assert_eq!(key_code("Nope"), None);
    }
}
