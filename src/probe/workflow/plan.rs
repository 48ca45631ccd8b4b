//! A workflow as built from its config: steps, what each does, its measurement keys, and
//! the marks intervals are measured between. Config → plan is `mod.rs`; running it,
//! `run.rs`.

use std::path::PathBuf;
use std::time::Duration;

use http::Method;
use http::header::HeaderName;
use regex::Regex;

use super::template::Template;

/// JSON values a response may hold (an init answer with 10,000 part URLs fits).
pub const MAX_JSON_VALUES: usize = 65_536;
/// Parts of one upload step, and entries of an extracted list.
pub const MAX_PARTS: u32 = 10_000;

/// What one step does besides its request.
#[derive(Debug)]
pub enum Action {
    Request,
    Upload(Upload),
    Poll(Poll),
}

#[derive(Debug)]
pub struct Poll {
    pub interval: Duration,
    pub pointer: Option<String>,
    pub until: Vec<String>,
    pub until_status: Vec<u16>,
    pub fail_if: Vec<String>,
    /// Timed states and their measurement keys.
    pub timed: Vec<(String, &'static str)>,
    pub polls_key: &'static str,
}

#[derive(Debug)]
pub enum Extract {
    Pointer(String),
    Regex(Regex),
    Header(HeaderName),
    Status,
}

/// A step, checked, with its measurement keys.
#[derive(Debug)]
pub struct Step {
    pub name: &'static str,
    pub url: Template,
    pub method: Method,
    pub headers: Vec<(HeaderName, Template)>,
    pub body: Option<Template>,
    pub status: Option<Vec<u16>>,
    pub timeout: Duration,
    pub deadline: Duration,
    pub always: bool,
    pub extract: Vec<(String, Extract, bool)>,
    pub action: Action,
    pub keys: StepKeys,
}

/// A step's measurement keys (`init`, `init.ttfb`, `init.dns`, ...).
#[derive(Debug)]
pub struct StepKeys {
    pub duration: &'static str,
    pub ttfb: &'static str,
    /// dns, connect, tls, send, wait, transfer.
    pub phases: [&'static str; 6],
}

pub const PHASES: [&str; 6] = ["dns", "connect", "tls", "send", "wait", "transfer"];

/// An interval between two marks: (step index, what).
#[derive(Debug, Clone, PartialEq)]
pub enum Mark {
    Start(usize),
    End(usize),
    State(usize, String),
}

#[derive(Debug)]
pub struct Interval {
    pub key: &'static str,
    pub from: Mark,
    pub to: Mark,
}

/// An upload step's parts.
#[derive(Debug)]
pub struct Upload {
    /// Fixed by config, or (None) the length of the `urls` list.
    pub parts: Option<u32>,
    pub part_size: u64,
    /// The file and its size.
    pub file: Option<(PathBuf, u64)>,
    pub urls_var: Option<String>,
    pub concurrency: usize,
    pub max_attempts: u32,
    pub keys: PartKeys,
}

#[derive(Debug)]
pub struct PartKeys {
    pub ok: &'static str,
    pub retried: &'static str,
    pub failed: &'static str,
    pub throttled: &'static str,
    pub error: &'static str,
    pub part: &'static str,
    pub throughput: &'static str,
}
