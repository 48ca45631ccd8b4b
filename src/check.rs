//! `sloprobe check`: validate the config (including secrets and every probe's keys) and
//! print the plan. Secret values are never printed, only their references.

use std::io::Write;
use std::time::SystemTime;

use crate::assembly::Config;
use crate::probe::BuiltProbe;

pub fn print_plan(
    out: &mut dyn Write,
    config: &Config,
    probes: &[BuiltProbe],
    slos: &[crate::slo::Slo],
    budgets: &[crate::slo::ErrorBudget],
) -> std::io::Result<()> {
    writeln!(out, "config: {} (valid)", config.path.display())?;
    writeln!(out, "location: {}", config.location)?;
    writeln!(out, "listen: {} (/metrics /healthz /readyz)", config.server.listen)?;
    if let Some(d) = &config.demo {
        writeln!(out, "demo target: {}", d.listen)?;
    }
    if let Some(o) = &config.otlp {
        let endpoint = o.endpoint.as_deref().map_or(
            "(OTEL_EXPORTER_OTLP_ENDPOINT or default)".to_string(),
            crate::redact::url,
        );
        let headers: Vec<&str> = o.headers.iter().map(|(k, _)| k.as_str()).collect();
        writeln!(
            out,
            "otlp: {:?} to {endpoint} every {}, {} temporality, headers: [{}] (values not shown)",
            o.protocol,
            humantime::format_duration(o.interval),
            if o.delta { "delta" } else { "cumulative" },
            headers.join(", ")
        )?;
    }
    if let Some(rum) = &config.rum {
        let budgets: Vec<String> = rum
            .budgets
            .iter()
            .map(|(v, x)| format!("{} ≤ {}", v.key(), crate::rum::measure(*v).unit.format(*x)))
            .collect();
        writeln!(
            out,
            "rum: listen {} origins [{}] api_key {} routes {} (max {}) budgets [{}]",
            rum.listen,
            rum.allowed_origins.join(", "),
            rum.api_key.as_ref().map_or("none".to_string(), |k| k.to_string()),
            rum.routes.len(),
            rum.max_routes,
            budgets.join(", ")
        )?;
    }
    writeln!(out, "probes: {}", probes.len())?;
    for m in &config.modules {
        writeln!(
            out,
            "module {} kind={} file={}: /probe?module={}&target=… for targets matching {}",
            m.name,
            m.kind.name,
            m.sample.source.path.display(),
            m.name,
            m.allow_patterns().join(" | ")
        )?;
        for line in m.sample.settings.plan().iter().skip(1) {
            writeln!(out, "  {line}")?;
        }
    }
    let browser_runs: Vec<_> = probes
        .iter()
        .filter(|p| p.kind == "browser")
        .map(|p| (p.timeout, p.schedule.shortest_period()))
        .collect();
    for note in config.browser.capacity_warnings(&browser_runs) {
        writeln!(out, "warning: {note}")?;
    }
    let now = SystemTime::now();
    for (cfg, p) in config.probes.iter().zip(probes) {
        writeln!(out, "\n[{}] kind={} file={}", p.name, p.kind, cfg.source.path.display())?;
        writeln!(out, "  schedule: {}", p.schedule.describe())?;
        writeln!(out, "  timeout: {}", humantime::format_duration(p.timeout))?;
        let mut t = now;
        let mut next = Vec::new();
        for _ in 0..3 {
            t = p.schedule.next_after(t);
            next.push(
                chrono::DateTime::<chrono::Local>::from(t)
                    .format("%Y-%m-%dT%H:%M:%S%.3f%:z")
                    .to_string(),
            );
        }
        writeln!(out, "  next runs: {}", next.join(", "))?;
        for line in cfg.settings.plan() {
            writeln!(out, "  {line}")?;
        }
        for t in &p.budgets.per_run {
            writeln!(
                out,
                "  budget: {} {} {} per run",
                t.key,
                t.unit.bound(),
                t.unit.format(t.value)
            )?;
        }
        for pt in &p.budgets.percentiles {
            let t = &pt.threshold;
            writeln!(
                out,
                "  budget: p{} {} {} {}",
                pt.q,
                t.key,
                t.unit.bound(),
                t.unit.format(t.value)
            )?;
        }
    }
    for slo in slos {
        let sli = match &slo.sli {
            crate::slo::Sli::Success => "success".to_string(),
            crate::slo::Sli::Parts => "upload parts arrive".to_string(),
            crate::slo::Sli::Below {
                key, threshold, unit, ..
            }
            | crate::slo::Sli::Field {
                key, threshold, unit, ..
            } => format!("{key} {} {}", unit.bound(), unit.format(*threshold)),
        };
        let of = if slo.probes.is_empty() {
            format!("real page views on {}", slo.routes.join(", "))
        } else {
            format!("runs of {}", slo.probes.join(", "))
        };
        let counted = match slo.budgeting {
            crate::slo::Budgeting::Occurrences => String::new(),
            crate::slo::Budgeting::Timeslices { slice, target } => format!(
                ", counted in {} slices (a slice is good when {} of its events are)",
                humantime::format_duration(slice),
                target
            ),
        };
        writeln!(
            out,
            "\nslo [{}]: {sli} for {} of {of} over {}{counted}",
            slo.name,
            slo.objective,
            crate::slo::prom_duration(slo.window)
        )?;
        let alerts: Vec<String> = slo
            .burns
            .iter()
            .map(|b| {
                format!(
                    "{}× over {}/{}",
                    crate::slo::num(b.factor),
                    crate::slo::prom_duration(b.long),
                    crate::slo::prom_duration(b.short)
                )
            })
            .collect();
        writeln!(
            out,
            "  alerts: page on {} (at least {} bad), ticket on {}",
            alerts[..2].join(" or "),
            slo.min_bad_events,
            alerts[2..].join(" or ")
        )?;
        for note in &slo.notes {
            writeln!(out, "  warning: {note}")?;
        }
    }
    for b in budgets {
        writeln!(
            out,
            "\nerror budget [{}]: {} of breach per {}, spent by any minute one of {} is bad in ({} slices)",
            b.name,
            humantime::format_duration(b.budget),
            humantime::format_duration(b.period),
            b.slos.join(", "),
            humantime::format_duration(b.slice)
        )?;
    }
    Ok(())
}
