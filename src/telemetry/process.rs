//! Process metrics, read from /proc when collected: on /metrics as the Prometheus client
//! libraries name them (`process_cpu_seconds_total`, `process_resident_memory_bytes`, ...),
//! over OTLP as the semantic conventions do (`process.cpu.time`, `process.memory.usage`,
//! ...). The OTLP instruments are left out of /metrics, which has its own names for them.

use opentelemetry::metrics::Meter;

/// OTel instruments registered here; the Prometheus encoders skip names with this prefix.
pub const OTEL_PREFIX: &str = "process.";

/// The process metrics as observable instruments, for OTLP.
pub fn register(meter: &Meter) {
    let reading = |name: &'static str| {
        recent()
            .into_iter()
            .find(|(n, _, _, _)| *n == name)
            .map(|(_, _, _, v)| v)
    };
    let _cpu = meter
        .f64_observable_counter("process.cpu.time")
        .with_unit("s")
        .with_description("Total user and system CPU time spent.")
        .with_callback(move |o| {
            if let Some(v) = reading("process_cpu_seconds_total") {
                o.observe(v, &[]);
            }
        })
        .build();
    let gauges: [(&'static str, &'static str, &'static str, &'static str); 4] = [
        (
            "process.memory.usage",
            "By",
            "Resident memory.",
            "process_resident_memory_bytes",
        ),
        (
            "process.memory.virtual",
            "By",
            "Virtual memory size.",
            "process_virtual_memory_bytes",
        ),
        (
            "process.thread.count",
            "{thread}",
            "OS threads in the process.",
            "process_threads",
        ),
        (
            "process.open_file_descriptor.count",
            "{file_descriptor}",
            "Open file descriptors.",
            "process_open_fds",
        ),
    ];
    for (name, unit, help, from) in gauges {
        let _g = meter
            .f64_observable_gauge(name)
            .with_unit(unit)
            .with_description(help)
            .with_callback(move |o| {
                if let Some(v) = reading(from) {
                    o.observe(v, &[]);
                }
            })
            .build();
    }
}

type Reading = (&'static str, &'static str, &'static str, f64);

/// One collection calls the five callbacks above in a row: they share one read of /proc.
fn recent() -> Vec<Reading> {
    use std::sync::Mutex;
    use std::time::{Duration, Instant};
    static LAST: Mutex<Option<(Instant, Vec<Reading>)>> = Mutex::new(None);
    let mut last = LAST.lock().expect("process readings lock");
    match &*last {
        Some((at, r)) if at.elapsed() < Duration::from_millis(500) => r.clone(),
        _ => {
            let r = metrics();
            *last = Some((Instant::now(), r.clone()));
            r
        }
    }
}

/// (name, type, help, value) for each process metric this platform can read.
pub fn metrics() -> Vec<Reading> {
    let mut out = Vec::new();
    #[cfg(target_os = "linux")]
    {
        // SAFETY: sysconf has no memory-safety preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        // SAFETY: as above.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as f64;
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            // Fields after the command name, which may contain spaces, ends in ')'.
            let f: Vec<&str> = stat
                .rsplit_once(')')
                .map(|(_, r)| r.split_whitespace().collect())
                .unwrap_or_default();
            let field = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
            if let (Some(utime), Some(stime)) = (field(11), field(12)) {
                out.push((
                    "process_cpu_seconds_total",
                    "counter",
                    "Total user and system CPU time spent in seconds.",
                    (utime + stime) / ticks,
                ));
            }
            if let Some(threads) = field(17) {
                out.push((
                    "process_threads",
                    "gauge",
                    "Number of OS threads in the process.",
                    threads,
                ));
            }
            if let (Some(start), Some(boot)) = (field(19), boot_time()) {
                out.push((
                    "process_start_time_seconds",
                    "gauge",
                    "Start time of the process since unix epoch in seconds.",
                    boot + start / ticks,
                ));
            }
            if let Some(vsize) = field(20) {
                out.push((
                    "process_virtual_memory_bytes",
                    "gauge",
                    "Virtual memory size in bytes.",
                    vsize,
                ));
            }
            if let Some(rss) = field(21) {
                out.push((
                    "process_resident_memory_bytes",
                    "gauge",
                    "Resident memory size in bytes.",
                    rss * page,
                ));
            }
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            out.push((
                "process_open_fds",
                "gauge",
                "Number of open file descriptors.",
                dir.count() as f64,
            ));
        }
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct we pass.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
            out.push((
                "process_max_fds",
                "gauge",
                "Maximum number of open file descriptors.",
                lim.rlim_cur as f64,
            ));
        }
    }
    out
}

#[cfg(target_os = "linux")]
fn boot_time() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// Fixes glibc's thresholds at their defaults (128 KiB): left dynamic, freeing one large
/// buffer (an OTLP request, a collection's point vector) raises the mmap threshold to
/// its size and the trim threshold to twice that, so later buffers of that size stay in
/// a thread's arena, whose top `malloc_trim` does not return (glibc trims only the main
/// arena's). With OTLP push at 1,000 probes that kept 3.3 MB more at rest than a scrape
/// alone; with the thresholds fixed, ~1 MB (bench/scale.py `--otlp`, docs/benchmarks.md).
pub fn fix_allocator_thresholds() {
    // An operator's own setting wins.
    if operator_set_thresholds(|name| std::env::var(name).ok()) {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters (under its own lock).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 * 1024);
    }
}

/// Whether the environment sets glibc's mmap or trim threshold (its tunables or the older
/// variables).
fn operator_set_thresholds(env: impl Fn(&str) -> Option<String>) -> bool {
    let tunables = env("GLIBC_TUNABLES").unwrap_or_default();
    tunables.contains("glibc.malloc.mmap_threshold")
        || tunables.contains("glibc.malloc.trim_threshold")
        || env("MALLOC_MMAP_THRESHOLD_").is_some()
        || env("MALLOC_TRIM_THRESHOLD_").is_some()
}

/// A collection copies every series (~60 MB at 10,000 probes) and frees it; glibc keeps
/// freed memory in its arenas, so without this RSS stays at the collection's peak
/// (bench/scale.py). Called after each scrape and each OTLP export.
pub fn give_back_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::operator_set_thresholds;

    #[test]
    fn an_operators_allocator_thresholds_are_left_alone() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
        };
        assert!(!operator_set_thresholds(env(&[])));
        assert!(!operator_set_thresholds(env(&[(
            "GLIBC_TUNABLES",
            "glibc.malloc.arena_max=2"
        )])));
        assert!(operator_set_thresholds(env(&[(
            "GLIBC_TUNABLES",
            "glibc.malloc.arena_max=2:glibc.malloc.trim_threshold=1048576"
        )])));
        assert!(operator_set_thresholds(env(&[(
            "GLIBC_TUNABLES",
            "glibc.malloc.mmap_threshold=65536"
        )])));
        assert!(operator_set_thresholds(env(&[("MALLOC_MMAP_THRESHOLD_", "65536")])));
        assert!(operator_set_thresholds(env(&[("MALLOC_TRIM_THRESHOLD_", "0")])));
    }
}
