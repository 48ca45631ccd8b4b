//! `sloprobe import blackbox`: blackbox_exporter's `blackbox.yml` (and optionally the
//! Prometheus config that scrapes it) as a sloprobe probe file. Each module becomes a
//! `[[module]]` for `/probe` (so relabelling configs keep working); each static target a
//! Prometheus job sends to a module becomes a scheduled `[[probe]]`. Whatever has no
//! equivalent is listed, never dropped silently. The option mapping is
//! docs/migrate-from-blackbox.md.

use std::collections::BTreeMap;
use std::path::Path;

use serde_yaml_ng::{Mapping, Value as Yaml};
use toml::{Table, Value};

/// The probe file and what could not be carried over.
pub struct Imported {
    pub toml: String,
    pub unmapped: Vec<String>,
    pub modules: usize,
    pub probes: usize,
}

/// Largest input read: configs are small, and the reader is bounded like every other.
const MAX_INPUT: u64 = 16 * 1024 * 1024;

pub fn blackbox(config: &Path, prometheus: Option<&Path>) -> Result<Imported, String> {
    let text = read(config)?;
    let doc: Yaml = serde_yaml_ng::from_str(&text).map_err(|e| format!("{}: {e}", config.display()))?;
    let modules = doc
        .get("modules")
        .and_then(Yaml::as_mapping)
        .ok_or_else(|| format!("{}: no `modules:` mapping", config.display()))?;
    let mut notes = Vec::new();
    let mut converted: BTreeMap<String, Converted> = BTreeMap::new();
    for (name, module) in modules {
        let Some(name) = name.as_str() else { continue };
        match convert_module(name, module, &mut notes) {
            Some(c) => {
                converted.insert(name.to_string(), c);
            }
            None => continue,
        }
    }
    let mut targets: BTreeMap<String, Vec<Job>> = BTreeMap::new();
    if let Some(path) = prometheus {
        let text = read(path)?;
        let doc: Yaml = serde_yaml_ng::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        for job in jobs(&doc, &mut notes) {
            targets.entry(job.module.clone()).or_default().push(job);
        }
    }

    let mut module_tables = Vec::new();
    let mut probe_tables = Vec::new();
    let mut used_names = std::collections::HashSet::new();
    let mut loopback_only = Vec::new();
    for (name, c) in &converted {
        let jobs = targets.get(name).map(Vec::as_slice).unwrap_or(&[]);
        let mut m = Table::new();
        m.insert("name".into(), Value::String(safe_name(name)));
        m.insert("kind".into(), Value::String(c.kind.into()));
        let known: Vec<String> = jobs
            .iter()
            .flat_map(|j| j.targets.iter())
            .map(|t| regex::escape(&target_for(c.kind, t)))
            .collect();
        let allow = if known.is_empty() {
            loopback_only.push(name.as_str());
            loopback_allow(c.kind)
        } else {
            known
        };
        m.insert(
            "allow".into(),
            Value::Array(allow.into_iter().map(Value::String).collect()),
        );
        if let Some(t) = &c.timeout {
            m.insert("timeout".into(), Value::String(t.clone()));
        }
        for (k, v) in &c.settings {
            m.insert(k.clone(), v.clone());
        }
        module_tables.push(Value::Table(m));

        for job in jobs {
            for target in &job.targets {
                let mut p = Table::new();
                let base = safe_name(&format!("{}-{}", job.name, target));
                let mut probe_name = base.clone();
                let mut n = 2;
                while !used_names.insert(probe_name.clone()) {
                    probe_name = format!("{}-{n}", &base[..base.len().min(60)]);
                    n += 1;
                }
                p.insert("name".into(), Value::String(probe_name));
                p.insert("kind".into(), Value::String(c.kind.into()));
                p.insert(target_key(c.kind).into(), Value::String(target_for(c.kind, target)));
                p.insert("every".into(), Value::String(job.interval.clone()));
                if let Some(t) = &c.timeout {
                    p.insert("timeout".into(), Value::String(t.clone()));
                }
                for (k, v) in &c.settings {
                    p.insert(k.clone(), v.clone());
                }
                if !job.name.is_empty() {
                    // `job` is reserved (Prometheus sets it); the blackbox job becomes `blackbox_job`.
                    let mut labels = Table::new();
                    labels.insert("blackbox_job".into(), Value::String(safe_label(&job.name)));
                    p.insert("labels".into(), Value::Table(labels));
                }
                probe_tables.push(Value::Table(p));
            }
        }
    }
    if !loopback_only.is_empty() {
        notes.push(format!(
            "modules with no static targets in a Prometheus job: {}; their `allow` admits loopback only, widen it to the targets you scrape",
            loopback_only.join(", ")
        ));
    }
    for module in targets.keys().filter(|m| !converted.contains_key(*m)) {
        notes.push(format!(
            "Prometheus jobs use module {module:?}, which blackbox.yml does not define (or which could not be converted)"
        ));
    }

    let (modules_n, probes_n) = (module_tables.len(), probe_tables.len());
    let mut body = String::new();
    for (key, tables) in [("module", module_tables), ("probe", probe_tables)] {
        for table in tables {
            body.push_str(&table_text(key, table)?);
            body.push('\n');
        }
    }
    let mut out = format!(
        "# Imported by `sloprobe import blackbox` from {}{}.\n# Not carried over (see docs/migrate-from-blackbox.md):\n",
        config.display(),
        prometheus.map(|p| format!(" and {}", p.display())).unwrap_or_default()
    );
    if notes.is_empty() {
        out.push_str("#   nothing\n");
    }
    for n in &notes {
        out.push_str(&format!("#   {}\n", n.replace('\n', " ")));
    }
    out.push('\n');
    out.push_str(&body);
    Ok(Imported {
        toml: out,
        unmapped: notes,
        modules: modules_n,
        probes: probes_n,
    })
}

/// One `[[key]]` table as TOML, its identifying keys (name, kind, target) first: toml
/// writes a table's keys in sorted order, which buries `name` among the settings.
fn table_text(key: &str, table: Value) -> Result<String, String> {
    let mut doc = Table::new();
    doc.insert(key.into(), Value::Array(vec![table]));
    let text = toml::to_string(&doc).map_err(|e| format!("writing TOML: {e}"))?;
    let mut lines: Vec<&str> = text.lines().collect();
    // The table's own keys run from after its header to the first blank line or sub-table.
    let end = lines
        .iter()
        .skip(1)
        .position(|l| l.is_empty() || l.starts_with('['))
        .map_or(lines.len(), |i| i + 1);
    let rank = |l: &str| {
        ["name ", "kind ", "url ", "target ", "server ", "every "]
            .iter()
            .position(|k| l.starts_with(k))
            .unwrap_or(usize::MAX)
    };
    lines[1..end].sort_by_key(|l| rank(l));
    Ok(lines.join("\n") + "\n")
}

fn read(path: &Path) -> Result<String, String> {
    let bytes = crate::config::read_capped(path, MAX_INPUT).map_err(|e| format!("{}: {e}", path.display()))?;
    String::from_utf8(bytes).map_err(|_| format!("{}: not UTF-8", path.display()))
}

/// Header names whose values are credentials: the import never writes those values out.
const CREDENTIAL_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
    "api-key",
    "x-auth-token",
];

struct Converted {
    kind: &'static str,
    timeout: Option<String>,
    settings: Table,
}

fn target_key(kind: &str) -> &'static str {
    crate::assembly::kind(kind)
        .and_then(|k| k.target_key)
        .map_or("target", |(key, _)| key)
}

/// blackbox_exporter probes `http://host` for a bare http target; so do we.
fn target_for(kind: &str, target: &str) -> String {
    if kind == "http" && !target.contains("://") {
        format!("http://{target}")
    } else {
        target.to_string()
    }
}

fn loopback_allow(kind: &str) -> Vec<String> {
    match kind {
        "http" => vec![r"https?://(localhost|127\.0\.0\.1|\[::1\])(:\d+)?(/.*)?".into()],
        "icmp" | "dns" => vec![
            r"localhost|127\.0\.0\.1|::1".into(),
            r"(localhost|127\.0\.0\.1|\[::1\]):\d+".into(),
        ],
        _ => vec![r"(localhost|127\.0\.0\.1|\[::1\]):\d+".into()],
    }
}

/// Probe and module names: 1-64 of A-Z a-z 0-9 - _ .
fn safe_name(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = cleaned.trim_matches('-');
    let mut name: String = trimmed.chars().take(64).collect();
    if name.is_empty() {
        name = "imported".into();
    }
    name
}

fn safe_label(s: &str) -> String {
    s.chars().take(128).collect()
}

fn s(v: &Yaml) -> Option<String> {
    match v {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn strings(v: Option<&Yaml>) -> Vec<String> {
    v.and_then(Yaml::as_sequence)
        .map(|seq| seq.iter().filter_map(s).collect())
        .unwrap_or_default()
}

/// Keys of a mapping that the converter did not take, as notes (a `false` flag is
/// blackbox_exporter's default, so nothing is lost).
fn leftover(module: &str, section: &str, map: &Mapping, taken: &[&str], notes: &mut Vec<String>) {
    for (key, value) in map.iter().filter_map(|(k, v)| Some((k.as_str()?, v))) {
        if !taken.contains(&key) && value.as_bool() != Some(false) {
            notes.push(format!("module {module}: {section}.{key} has no equivalent"));
        }
    }
}

fn tls_table(module: &str, section: &str, v: Option<&Yaml>, notes: &mut Vec<String>) -> Option<Table> {
    let map = v?.as_mapping()?;
    let mut t = Table::new();
    if let Some(b) = map.get("insecure_skip_verify").and_then(Yaml::as_bool) {
        t.insert("insecure_skip_verify".into(), Value::Boolean(b));
    }
    if let Some(ca) = map.get("ca_file").and_then(s) {
        t.insert("ca_file".into(), Value::String(ca));
    }
    if let Some(n) = map.get("server_name").and_then(s) {
        t.insert("server_name".into(), Value::String(n));
    }
    leftover(
        module,
        &format!("{section}.tls_config"),
        map,
        &["insecure_skip_verify", "ca_file", "server_name"],
        notes,
    );
    Some(t)
}

fn convert_module(name: &str, module: &Yaml, notes: &mut Vec<String>) -> Option<Converted> {
    let Some(prober) = module.get("prober").and_then(Yaml::as_str) else {
        notes.push(format!("module {name}: no prober"));
        return None;
    };
    let timeout = module.get("timeout").and_then(s);
    let empty = Mapping::new();
    let section = |key: &str| module.get(key).and_then(Yaml::as_mapping).unwrap_or(&empty);
    let mut t = Table::new();
    let kind = match prober {
        "http" => {
            let h = section("http");
            let mut request = Table::new();
            let mut expect = Table::new();
            if let Some(m) = h.get("method").and_then(s) {
                request.insert("method".into(), Value::String(m));
            }
            if let Some(headers) = h.get("headers").and_then(Yaml::as_mapping) {
                let mut ht = Table::new();
                for (k, v) in headers {
                    if let (Some(k), Some(v)) = (k.as_str(), s(v)) {
                        if CREDENTIAL_HEADERS.contains(&k.to_ascii_lowercase().as_str()) {
                            notes.push(format!(
                                "module {name}: header {k} is a credential and is not copied; set it as \"env:NAME\" or \"file:PATH\""
                            ));
                            continue;
                        }
                        ht.insert(k.to_string(), Value::String(v));
                    }
                }
                request.insert("headers".into(), Value::Table(ht));
            }
            if let Some(b) = h.get("body").and_then(s) {
                request.insert("body".into(), Value::String(b));
            }
            if let Some(b) = h.get("body_file").and_then(s) {
                request.insert("body_file".into(), Value::String(b));
            }
            // An empty list is blackbox_exporter's default, 2xx, which is ours too.
            if let Some(codes) = h.get("valid_status_codes").and_then(Yaml::as_sequence)
                && !codes.is_empty()
            {
                let codes: Vec<Value> = codes.iter().filter_map(Yaml::as_i64).map(Value::Integer).collect();
                expect.insert("status".into(), Value::Array(codes));
            }
            let follow = !h.get("no_follow_redirects").and_then(Yaml::as_bool).unwrap_or(false)
                && h.get("follow_redirects").and_then(Yaml::as_bool).unwrap_or(true);
            if follow {
                // blackbox_exporter follows up to 10 redirects (Go's default).
                t.insert("follow_redirects".into(), Value::Integer(10));
            }
            let not_match = strings(h.get("fail_if_body_matches_regexp"));
            if !not_match.is_empty() {
                expect.insert(
                    "body_not_regex".into(),
                    Value::String(
                        not_match
                            .iter()
                            .map(|r| format!("(?:{r})"))
                            .collect::<Vec<_>>()
                            .join("|"),
                    ),
                );
            }
            let must = strings(h.get("fail_if_body_not_matches_regexp"));
            match must.as_slice() {
                [] => {}
                [one] => {
                    expect.insert("body_regex".into(), Value::String(one.clone()));
                }
                [first, rest @ ..] => {
                    expect.insert("body_regex".into(), Value::String(first.clone()));
                    notes.push(format!(
                        "module {name}: http.fail_if_body_not_matches_regexp has {} regexes; only the first is kept ({} dropped)",
                        rest.len() + 1,
                        rest.len()
                    ));
                }
            }
            if let Some(tls) = tls_table(name, "http", h.get("tls_config"), notes) {
                t.insert("tls".into(), Value::Table(tls));
            }
            if h.get("bearer_token").or_else(|| h.get("authorization")).is_some() {
                notes.push(format!(
                    "module {name}: credentials are not copied; set request.bearer = \"env:NAME\" (or a header from env:/file:)"
                ));
            }
            if !request.is_empty() {
                t.insert("request".into(), Value::Table(request));
            }
            if !expect.is_empty() {
                t.insert("expect".into(), Value::Table(expect));
            }
            leftover(
                name,
                "http",
                h,
                &[
                    "method",
                    "headers",
                    "body",
                    "body_file",
                    "valid_status_codes",
                    "no_follow_redirects",
                    "follow_redirects",
                    "fail_if_body_matches_regexp",
                    "fail_if_body_not_matches_regexp",
                    "tls_config",
                    "bearer_token",
                    "authorization",
                    "preferred_ip_protocol",
                    "ip_protocol_fallback",
                ],
                notes,
            );
            "http"
        }
        "tcp" => {
            let c = section("tcp");
            if let Some(b) = c.get("tls").and_then(Yaml::as_bool) {
                t.insert("tls".into(), Value::Boolean(b));
            }
            if let Some(tls) = tls_table(name, "tcp", c.get("tls_config"), notes) {
                t.insert("tls_config".into(), Value::Table(tls));
            }
            if let Some(steps) = c.get("query_response").and_then(Yaml::as_sequence) {
                let mut out = Vec::new();
                for step in steps {
                    let Some(step) = step.as_mapping() else { continue };
                    let mut q = Table::new();
                    for key in ["expect", "send"] {
                        if let Some(v) = step.get(key).and_then(s) {
                            q.insert(key.into(), Value::String(v));
                        }
                    }
                    if let Some(b) = step.get("starttls").and_then(Yaml::as_bool) {
                        q.insert("starttls".into(), Value::Boolean(b));
                    }
                    leftover(
                        name,
                        "tcp.query_response[]",
                        step,
                        &["expect", "send", "starttls"],
                        notes,
                    );
                    out.push(Value::Table(q));
                }
                t.insert("query".into(), Value::Array(out));
            }
            leftover(
                name,
                "tcp",
                c,
                &[
                    "tls",
                    "tls_config",
                    "query_response",
                    "preferred_ip_protocol",
                    "ip_protocol_fallback",
                ],
                notes,
            );
            "tcp"
        }
        "dns" => {
            let d = section("dns");
            let Some(query_name) = d.get("query_name").and_then(s) else {
                notes.push(format!("module {name}: dns without query_name"));
                return None;
            };
            t.insert("query_name".into(), Value::String(query_name));
            // blackbox_exporter's default type is ANY; sloprobe's is A: written out.
            let qtype = d.get("query_type").and_then(s).unwrap_or_else(|| "ANY".into());
            t.insert("query_type".into(), Value::String(qtype));
            if let Some(c) = d.get("query_class").and_then(s) {
                t.insert("query_class".into(), Value::String(c));
            }
            let dot = d.get("dns_over_tls").and_then(Yaml::as_bool).unwrap_or(false);
            let transport = if dot {
                "tls".to_string()
            } else {
                d.get("transport_protocol").and_then(s).unwrap_or_else(|| "udp".into())
            };
            // blackbox_exporter judges a truncated UDP answer as it came; so does the import.
            if transport == "udp" {
                t.insert("retry_tcp".into(), Value::Boolean(false));
            }
            t.insert("transport".into(), Value::String(transport));
            if let Some(rd) = d.get("recursion_desired").and_then(Yaml::as_bool) {
                t.insert("recursion_desired".into(), Value::Boolean(rd));
            }
            let rcodes = strings(d.get("valid_rcodes"));
            if !rcodes.is_empty() {
                t.insert(
                    "valid_rcodes".into(),
                    Value::Array(rcodes.into_iter().map(Value::String).collect()),
                );
            }
            for (from, to) in [
                ("validate_answer_rrs", "validate_answer"),
                ("validate_authority_rrs", "validate_authority"),
                ("validate_additional_rrs", "validate_additional"),
            ] {
                let Some(v) = d.get(from).and_then(Yaml::as_mapping) else {
                    continue;
                };
                let mut checks = Table::new();
                for key in [
                    "fail_if_matches_regexp",
                    "fail_if_all_match_regexp",
                    "fail_if_not_matches_regexp",
                    "fail_if_none_matches_regexp",
                ] {
                    let list = strings(v.get(key));
                    if !list.is_empty() {
                        checks.insert(key.into(), Value::Array(list.into_iter().map(Value::String).collect()));
                    }
                }
                leftover(
                    name,
                    &format!("dns.{from}"),
                    v,
                    &[
                        "fail_if_matches_regexp",
                        "fail_if_all_match_regexp",
                        "fail_if_not_matches_regexp",
                        "fail_if_none_matches_regexp",
                    ],
                    notes,
                );
                t.insert(to.into(), Value::Table(checks));
            }
            if let Some(tls) = tls_table(name, "dns", d.get("tls_config"), notes) {
                t.insert("tls_config".into(), Value::Table(tls));
            }
            leftover(
                name,
                "dns",
                d,
                &[
                    "query_name",
                    "query_type",
                    "query_class",
                    "transport_protocol",
                    "dns_over_tls",
                    "recursion_desired",
                    "valid_rcodes",
                    "validate_answer_rrs",
                    "validate_authority_rrs",
                    "validate_additional_rrs",
                    "tls_config",
                    "preferred_ip_protocol",
                    "ip_protocol_fallback",
                ],
                notes,
            );
            "dns"
        }
        "icmp" => {
            let i = section("icmp");
            match i.get("preferred_ip_protocol").and_then(Yaml::as_str) {
                Some("ip4") => {
                    t.insert("ip_protocol".into(), Value::String("ip4".into()));
                }
                Some("ip6") | None => {
                    // blackbox_exporter prefers IPv6 by default, falling back to IPv4.
                }
                Some(other) => notes.push(format!("module {name}: icmp.preferred_ip_protocol {other:?} unknown")),
            }
            if let Some(n) = i.get("payload_size").and_then(Yaml::as_i64) {
                t.insert("payload_size".into(), Value::Integer(n));
            }
            if let Some(n) = i.get("ttl").and_then(Yaml::as_i64) {
                t.insert("ttl".into(), Value::Integer(n));
            }
            leftover(
                name,
                "icmp",
                i,
                &["preferred_ip_protocol", "ip_protocol_fallback", "payload_size", "ttl"],
                notes,
            );
            "icmp"
        }
        "grpc" => {
            let g = section("grpc");
            if let Some(svc) = g.get("service").and_then(s) {
                t.insert("service".into(), Value::String(svc));
            }
            if let Some(b) = g.get("tls").and_then(Yaml::as_bool) {
                t.insert("tls".into(), Value::Boolean(b));
            }
            if let Some(tls) = tls_table(name, "grpc", g.get("tls_config"), notes) {
                t.insert("tls_config".into(), Value::Table(tls));
            }
            leftover(
                name,
                "grpc",
                g,
                &[
                    "service",
                    "tls",
                    "tls_config",
                    "preferred_ip_protocol",
                    "ip_protocol_fallback",
                ],
                notes,
            );
            "grpc"
        }
        other => {
            notes.push(format!("module {name}: prober {other:?} has no sloprobe kind"));
            return None;
        }
    };
    Some(Converted {
        kind,
        timeout,
        settings: t,
    })
}

struct Job {
    name: String,
    module: String,
    interval: String,
    targets: Vec<String>,
}

/// Scrape jobs that send static targets to blackbox_exporter's `/probe`.
fn jobs(doc: &Yaml, notes: &mut Vec<String>) -> Vec<Job> {
    let global_interval = doc
        .get("global")
        .and_then(|g| g.get("scrape_interval"))
        .and_then(s)
        .unwrap_or_else(|| "1m".into());
    let mut out = Vec::new();
    for job in doc
        .get("scrape_configs")
        .and_then(Yaml::as_sequence)
        .into_iter()
        .flatten()
    {
        let name = job.get("job_name").and_then(s).unwrap_or_default();
        if job.get("metrics_path").and_then(Yaml::as_str) != Some("/probe") {
            continue;
        }
        let modules = strings(job.get("params").and_then(|p| p.get("module")));
        let Some(module) = modules.first().cloned() else {
            notes.push(format!("job {name}: /probe without params.module"));
            continue;
        };
        let interval = job
            .get("scrape_interval")
            .and_then(s)
            .unwrap_or_else(|| global_interval.clone());
        let mut targets = Vec::new();
        for sc in job
            .get("static_configs")
            .and_then(Yaml::as_sequence)
            .into_iter()
            .flatten()
        {
            targets.extend(strings(sc.get("targets")));
        }
        if let Some(map) = job.as_mapping() {
            for key in map
                .keys()
                .filter_map(Yaml::as_str)
                .filter(|k| k.ends_with("_sd_configs"))
            {
                notes.push(format!(
                    "job {name}: {key} targets are found at scrape time; keep the job and point it at sloprobe's /probe (module {module})"
                ));
            }
        }
        out.push(Job {
            name,
            module,
            interval,
            targets,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_made_safe() {
        assert_eq!(
            super::safe_name("blackbox-https://example.com/x?y"),
            "blackbox-https---example.com-x-y"
        );
        assert_eq!(super::safe_name("///"), "imported");
    }
}
