use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use sloprobe::assembly::DEFAULT_CONFIG;
use sloprobe::once::{self, Format};

#[derive(Parser)]
#[command(
    name = "sloprobe",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("SLOPROBE_REVISION"), ", built ", env!("SLOPROBE_BUILD_DATE"), ")"),
    about = "Synthetic probes and RUM, judged against budgets, exported as OpenTelemetry metrics",
    after_help = "Exit codes: 0 ok / passed, 1 a run or budget failed, 2 config or input error, 64 usage error.\nLogs go to stderr."
)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value = "text", env = "SLOPROBE_LOG_FORMAT")]
    log_format: LogFormat,
    /// Log filter: a level (error, warn, info, debug, trace) or an EnvFilter directive such
    /// as "info,sloprobe=debug". `SLOPROBE_LOG` is read when this is not given.
    #[arg(long, global = true, env = "SLOPROBE_LOG")]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: every probe on its schedule, metrics on /metrics.
    Run {
        /// Run only this shard's probes: "i/n" (rendezvous hashing on probe names);
        /// overrides [fleet] shard.
        #[arg(long, env = "SLOPROBE_SHARD", conflicts_with_all = ["shard_index", "shard_count"])]
        shard: Option<String>,
        /// This daemon's shard, 0-based (with --shard-count): what a StatefulSet's pod index
        /// (the `apps.kubernetes.io/pod-index` label) feeds through the downward API.
        #[arg(long, env = "SLOPROBE_SHARD_INDEX", requires = "shard_count")]
        shard_index: Option<u32>,
        /// How many shards there are (with --shard-index).
        #[arg(long, env = "SLOPROBE_SHARD_COUNT", requires = "shard_index")]
        shard_count: Option<u32>,
        /// Address for /metrics, /healthz, /readyz and /probe; overrides [server] listen
        /// (blackbox_exporter's and node_exporter's flag name).
        #[arg(long = "web.listen-address", env = "SLOPROBE_LISTEN")]
        web_listen_address: Option<std::net::SocketAddr>,
        /// An exporter-toolkit web config file (tls_server_config, basic_auth_users) for the
        /// /metrics listener, as Prometheus exporters take; wins over [server.tls] and
        /// [server.basic_auth_users].
        #[arg(long = "web.config.file", env = "SLOPROBE_WEB_CONFIG")]
        web_config_file: Option<PathBuf>,
        /// Config file; default: $SLOPROBE_CONFIG, then ./config/sloprobe.toml, then /etc/sloprobe/sloprobe.toml.
        #[arg(short, long, env = "SLOPROBE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Run probes now (the CI gate). Exit 0 = all passed, 1 = a run or budget failed, 2 = bad config.
    Once {
        /// Config file; default: $SLOPROBE_CONFIG, then ./config/sloprobe.toml, then /etc/sloprobe/sloprobe.toml.
        #[arg(short, long, env = "SLOPROBE_CONFIG")]
        config: Option<PathBuf>,
        /// Only these probes (repeatable). Default: all.
        #[arg(long = "probe")]
        probes: Vec<String>,
        /// Runs per probe (at least 1).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        runs: u32,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        /// Also write a self-contained HTML report (verdicts, budgets, distributions, the
        /// median run of each probe; browser runs take a screenshot for it).
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
        /// Also write JUnit XML (a test case per probe's runs and per budget) for CI.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Also keep failed runs' evidence here (a folder per run: run.json, a browser's
        /// screenshot, console and failed requests, an HTTP response's head and first KiB),
        /// for CI to upload.
        #[arg(long, value_name = "DIR")]
        artifacts: Option<PathBuf>,
    },
    /// Validate the config and print the plan (secrets redacted).
    Check {
        /// Show which probes shard "i/n" runs.
        #[arg(long, env = "SLOPROBE_SHARD")]
        shard: Option<String>,
        /// Config file; default: $SLOPROBE_CONFIG, then ./config/sloprobe.toml, then /etc/sloprobe/sloprobe.toml.
        #[arg(short, long, env = "SLOPROBE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Generate Prometheus rules or a Grafana dashboard from the `[[slo]]` entries.
    Slo {
        #[command(subcommand)]
        what: SloCommand,
    },
    /// The RUM collector's client side.
    Rum {
        #[command(subcommand)]
        what: RumCommand,
    },
    /// Print the JSON Schema of the config (daemon and probe files), for editors.
    Schema,
    /// Check a running daemon's health endpoint (a container HEALTHCHECK: no curl needed).
    /// Exit 0 when it answers 200 within 3 s, else 1.
    Health {
        #[arg(long, default_value = "http://127.0.0.1:9464/readyz", env = "SLOPROBE_HEALTH_URL")]
        url: String,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff).
    Man,
    /// Judge the build output's route JS/CSS against `[[bundle]]` budgets (CI, before
    /// deploying). Exit 0 within budget, 1 over budget or grown too much, 2 bad input.
    Bundle {
        /// Config file; default: $SLOPROBE_CONFIG, then ./config/sloprobe.toml, then /etc/sloprobe/sloprobe.toml.
        #[arg(short, long, env = "SLOPROBE_CONFIG")]
        config: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        /// A previous `--format json` report: show per-route growth, and fail on growth over
        /// `max_growth`.
        #[arg(long)]
        baseline: Option<PathBuf>,
    },
    /// Reload the running daemon's config and wait until it has (what the systemd unit's
    /// ExecReload runs). Exit 0 reloaded, 1 the new config was refused (the running one
    /// stays; the reason is printed), 2 no daemon answered.
    Reload {
        /// Config file, read only for its [server] listen; default: $SLOPROBE_CONFIG, then ./config/sloprobe.toml, then /etc/sloprobe/sloprobe.toml.
        #[arg(short, long, env = "SLOPROBE_CONFIG")]
        config: Option<PathBuf>,
        /// The daemon's reload URL, e.g. http://127.0.0.1:9464/-/reload?wait=1.
        #[arg(long)]
        url: Option<String>,
    },
    /// Convert another tool's config into sloprobe probe files.
    Import {
        #[command(subcommand)]
        from: ImportCommand,
    },
    /// Serve the demo target (injectable delays) on its own, e.g. for benchmarks.
    Target {
        #[arg(long, default_value = "127.0.0.1:9465")]
        listen: std::net::SocketAddr,
    },
}

#[derive(Subcommand)]
enum ImportCommand {
    /// blackbox_exporter: modules become `[[module]]`s for /probe; static targets of the
    /// Prometheus jobs that scrape it become `[[probe]]`s. Prints what it could not map.
    Blackbox {
        /// blackbox.yml.
        #[arg(long)]
        config: PathBuf,
        /// prometheus.yml, for the targets its /probe jobs send.
        #[arg(long)]
        prometheus: Option<PathBuf>,
        /// Write the probe file here (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum RumCommand {
    /// Print a client snippet for the configured collector: web-vitals → sendBeacon, with
    /// a fetch(keepalive) fallback (docs/rum.md shows how to wire it).
    Snippet {
        /// Config file; default: $SLOPROBE_CONFIG, then ./config/sloprobe.toml, then /etc/sloprobe/sloprobe.toml.
        #[arg(short, long, env = "SLOPROBE_CONFIG")]
        config: Option<PathBuf>,
        /// Where the snippet imports web-vitals from: "web-vitals" for a bundler (default),
        /// or a URL of its ES module build for a page without one.
        #[arg(long, default_value = "web-vitals")]
        import_from: String,
    },
}

#[derive(Subcommand)]
enum SloCommand {
    /// Recording rules and multi-window burn-rate alerts (Prometheus rule file, YAML).
    Rules {
        /// Config file; default: $SLOPROBE_CONFIG, then ./config/sloprobe.toml, then /etc/sloprobe/sloprobe.toml.
        #[arg(short, long, env = "SLOPROBE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// A Grafana dashboard (JSON).
    Dashboard {
        /// Config file; default: $SLOPROBE_CONFIG, then ./config/sloprobe.toml, then /etc/sloprobe/sloprobe.toml.
        #[arg(short, long, env = "SLOPROBE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// The freeze gate: every SLO's and error budget's spend, read from Prometheus.
    /// Exit 0 within budget, 1 when a budget is spent, 2 when it cannot be judged
    /// (Prometheus unreachable, rules not loaded, no data yet).
    Status {
        /// Config file; default: $SLOPROBE_CONFIG, then ./config/sloprobe.toml, then /etc/sloprobe/sloprobe.toml.
        #[arg(short, long, env = "SLOPROBE_CONFIG")]
        config: Option<PathBuf>,
        /// Prometheus base URL (http:// or https://), e.g. http://prometheus:9090.
        #[arg(long, env = "SLOPROBE_PROMETHEUS_URL")]
        prometheus: String,
        /// Bearer token for Prometheus, as env:NAME or file:PATH.
        #[arg(long, env = "SLOPROBE_PROMETHEUS_BEARER")]
        bearer: Option<String>,
        /// Basic auth user; the password comes from --password.
        #[arg(long, requires = "password")]
        user: Option<String>,
        /// Basic auth password, as env:NAME or file:PATH.
        #[arg(long, requires = "user")]
        password: Option<String>,
        /// CA certificates (PEM) for an https Prometheus with a private CA.
        #[arg(long)]
        ca_file: Option<PathBuf>,
        /// Per query.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
        /// Output: a table, or one JSON line per SLO and budget and a summary.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
}

/// Loads the config, builds every probe and checks the SLOs: what `check`, `run` and
/// `slo` all need before doing anything.
fn load_checked(path: &std::path::Path) -> Result<sloprobe::daemon::Loaded, ExitCode> {
    if !path.exists() {
        eprintln!(
            "config error: no config file at {}; give one with -c FILE or SLOPROBE_CONFIG=FILE (the defaults are {DEFAULT_CONFIG} and /etc/sloprobe/sloprobe.toml; `sloprobe once -c probes/demo.toml` tries the shipped demo)",
            path.display()
        );
        return Err(ExitCode::from(once::EXIT_CONFIG as u8));
    }
    sloprobe::daemon::load(path).map_err(|e| {
        eprintln!("config error: {e}");
        ExitCode::from(once::EXIT_CONFIG as u8)
    })
}

/// Writes command output to stdout. A reader that stopped reading (`| head`) ends the
/// command quietly with success: what it wanted, it got.
fn emit(text: &[u8]) -> ExitCode {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: writing the output: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Logs always go to stderr: stdout is for command output (`once`, `check`, `slo`).
fn init_logging(format: LogFormat, level: Option<&str>) {
    // The OTel SDK's own logs repeat every failed export; telemetry/otlp.rs reports those
    // at a bounded rate instead.
    const QUIET_SDK: &str = "opentelemetry=off,opentelemetry_sdk=off,opentelemetry_otlp=off";
    let directive = match level {
        Some(l) if !l.trim().is_empty() => format!("{QUIET_SDK},{l}"),
        _ => format!("info,{QUIET_SDK}"),
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&directive)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("info,{QUIET_SDK}")));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// GET `url` (plain http on loopback or a pod IP) and expect 200 within 3 s.
/// The config file: `-c` / `$SLOPROBE_CONFIG` (clap reads both), else the first of
/// ./config/sloprobe.toml and /etc/sloprobe/sloprobe.toml that exists.
fn config_path(given: Option<PathBuf>) -> PathBuf {
    given.unwrap_or_else(|| {
        [DEFAULT_CONFIG, "/etc/sloprobe/sloprobe.toml"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG))
    })
}

/// Where `slo status` reads from, with its credentials resolved (never printed).
fn status_target(
    url: &str,
    bearer: Option<String>,
    basic: Option<(String, String)>,
    ca_file: Option<PathBuf>,
    timeout: std::time::Duration,
) -> Result<sloprobe::slo::status::Target, String> {
    use base64::Engine as _;
    use sloprobe::config::Secret;
    let parsed = url::Url::parse(url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .ok_or_else(|| format!("--prometheus {:?} is not an http(s) URL", sloprobe::redact::url(url)))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("put Prometheus credentials in --bearer or --user/--password, not in the URL".into());
    }
    let here = std::path::Path::new(".");
    let authorization = match (bearer, basic) {
        (Some(_), Some(_)) => return Err("--bearer and --user/--password exclude each other".into()),
        (Some(b), None) => Some(Secret::resolve(&b, here)?.map(|t| format!("Bearer {t}"))),
        (None, Some((user, password))) => Some(Secret::resolve(&password, here)?.map(|p| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{p}"))
            )
        })),
        (None, None) => None,
    };
    Ok(sloprobe::slo::status::Target {
        url: parsed,
        authorization,
        timeout,
        ca_file,
    })
}

/// Keeps only this shard's probes (`--shard`, else `[fleet] shard`). SLOs were checked
/// against all probes first: they span the fleet.
/// Returns the `--shard` given, if any (it also wins on reloads).
fn apply_shard(
    loaded: &mut sloprobe::daemon::Loaded,
    flag: Option<&str>,
) -> Result<Option<sloprobe::fleet::Shard>, ExitCode> {
    let flag = flag
        .map(|text| {
            sloprobe::fleet::Shard::parse(text).map_err(|e| {
                eprintln!("error: shard {text:?} (--shard, or --shard-index and --shard-count): {e}");
                ExitCode::from(once::EXIT_USAGE as u8)
            })
        })
        .transpose()?;
    if let Some(shard) = flag.or(loaded.config.shard) {
        loaded.probes.retain(|p| shard.owns(&p.name));
        loaded.config.probes.retain(|p| shard.owns(&p.name));
    }
    Ok(flag)
}

/// Panics go to the log, not raw to stderr, and each place that panics is logged at most
/// once a minute: a probe that panics on every run is counted (`error.type="internal"`)
/// by the runner, which must not flood the log with a backtrace per run.
fn install_panic_hook() {
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::time::{Duration, Instant};
    static LAST: Mutex<Option<HashMap<String, Instant>>> = Mutex::new(None);
    std::panic::set_hook(Box::new(|info| {
        let place = info
            .location()
            .map_or_else(|| "unknown".to_string(), |l| format!("{}:{}", l.file(), l.line()));
        let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
        let seen = last.get_or_insert_with(HashMap::new);
        let due = seen.get(&place).is_none_or(|t| t.elapsed() >= Duration::from_secs(60));
        if due {
            seen.insert(place.clone(), Instant::now());
            let msg = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(at = %place, panic = %msg, "panic (repeats from the same place are logged once a minute)");
        }
    }));
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            let code = match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => 0,
                ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => once::EXIT_USAGE,
                _ => once::EXIT_USAGE,
            };
            let _ = e.print();
            return ExitCode::from(code as u8);
        }
    };
    init_logging(cli.log_format, cli.log_level.as_deref());
    install_panic_hook();
    match cli.command {
        Command::Run {
            config,
            shard,
            shard_index,
            shard_count,
            web_listen_address,
            web_config_file,
        } => {
            let config = config_path(config);
            let mut loaded = match load_checked(&config) {
                Ok(l) => l,
                Err(code) => return code,
            };
            let shard = match (shard_index, shard_count) {
                (Some(i), Some(n)) => Some(format!("{i}/{n}")),
                _ => shard,
            };
            let flag = match apply_shard(&mut loaded, shard.as_deref()) {
                Ok(flag) => flag,
                Err(code) => return code,
            };
            if let Some(addr) = web_listen_address {
                loaded.config.server.listen = addr;
            }
            if let Some(p) = &web_config_file
                && let Err(e) = sloprobe::web_security::from_web_config_file(p)
            {
                eprintln!("config error: --web.config.file {e}");
                return ExitCode::from(once::EXIT_CONFIG as u8);
            }
            let flags = sloprobe::daemon::RunFlags {
                shard: flag,
                listen: web_listen_address,
                web_config: web_config_file,
            };
            match sloprobe::daemon::run(config, loaded, flags).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    if let Some(ce) = e.downcast_ref::<sloprobe::config::ConfigError>() {
                        eprintln!("config error: {ce}");
                        return ExitCode::from(once::EXIT_CONFIG as u8);
                    }
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Once {
            config,
            probes: only,
            runs,
            format,
            report,
            junit,
            artifacts,
        } => {
            let config = config_path(config);
            // The gate checks the whole config, [[slo]] included, like `check` and `run`.
            let sloprobe::daemon::Loaded {
                config: cfg,
                probes: mut built,
                ..
            } = match load_checked(&config) {
                Ok(l) => l,
                Err(code) => return code,
            };
            if !only.is_empty() {
                if let Some(missing) = only.iter().find(|n| !built.iter().any(|p| &p.name == *n)) {
                    eprintln!("config error: no probe named {missing:?} in {}", config.display());
                    return ExitCode::from(once::EXIT_CONFIG as u8);
                }
                built.retain(|p| only.contains(&p.name));
            }
            // The demo target serves the shipped config's probes; start it for `once` too.
            let demo = match &cfg.demo {
                Some(d) => match sloprobe::demo::bind(d.listen).await {
                    Ok(l) => Some(tokio::spawn(sloprobe::demo::serve(l))),
                    Err(e) => {
                        eprintln!("error: binding demo target on {}: {e}", d.listen);
                        return ExitCode::FAILURE;
                    }
                },
                None => None,
            };
            let files = once::Files {
                report,
                junit,
                artifacts,
            };
            let code = once::run(built, runs, format, &files, &mut std::io::stdout()).await;
            if let Some(d) = demo {
                d.abort();
            }
            ExitCode::from(code as u8)
        }
        Command::Check { config, shard } => match load_checked(&config_path(config)) {
            Ok(mut l) => {
                let all = l.probes.len();
                if let Err(code) = apply_shard(&mut l, shard.as_deref()) {
                    return code;
                }
                let mut out = Vec::new();
                let _ = sloprobe::check::print_plan(&mut out, &l.config, &l.probes, &l.slos, &l.error_budgets);
                if l.probes.len() != all {
                    out.extend_from_slice(format!("\nshard: {} of {all} probes\n", l.probes.len()).as_bytes());
                }
                emit(&out)
            }
            Err(code) => code,
        },
        Command::Slo {
            what:
                SloCommand::Status {
                    config,
                    prometheus,
                    bearer,
                    user,
                    password,
                    ca_file,
                    timeout,
                    format,
                },
        } => {
            let l = match load_checked(&config_path(config)) {
                Ok(l) => l,
                Err(code) => return code,
            };
            let target = match status_target(&prometheus, bearer, user.zip(password), ca_file, timeout) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(once::EXIT_USAGE as u8);
                }
            };
            let mut out = String::new();
            let code = sloprobe::slo::status::run(
                &l.slos,
                &l.error_budgets,
                target,
                matches!(format, Format::Json),
                &mut out,
            )
            .await;
            emit(out.as_bytes());
            ExitCode::from(code as u8)
        }
        Command::Slo { what } => {
            let (path, rules) = match what {
                SloCommand::Rules { config } => (config_path(config), true),
                SloCommand::Dashboard { config } => (config_path(config), false),
                SloCommand::Status { .. } => unreachable!("handled above"),
            };
            match load_checked(&path) {
                Ok(l) => {
                    if rules {
                        emit(
                            sloprobe::slo::rules::render(&l.slos, &l.error_budgets, &path.display().to_string())
                                .as_bytes(),
                        )
                    } else {
                        // Panels for the kinds this config runs, not for every kind there is.
                        let kinds: Vec<&sloprobe::probe::Kind> = sloprobe::assembly::KINDS
                            .iter()
                            .filter(|k| l.probes.iter().any(|p| p.kind == k.name))
                            .collect();
                        let d = sloprobe::slo::dashboard::render(
                            &kinds,
                            &l.slos,
                            &l.error_budgets,
                            l.config.rum.is_some(),
                            l.config.histograms,
                        );
                        emit(format!("{}\n", serde_json::to_string_pretty(&d).expect("json")).as_bytes())
                    }
                }
                Err(code) => code,
            }
        }
        Command::Rum {
            what: RumCommand::Snippet { config, import_from },
        } => match load_checked(&config_path(config)) {
            Ok(l) => match &l.config.rum {
                Some(rum) => emit(sloprobe::rum::snippet(rum, &import_from).as_bytes()),
                None => {
                    eprintln!("config error: the config has no [rum] section: nothing to send beacons to");
                    ExitCode::from(once::EXIT_CONFIG as u8)
                }
            },
            Err(code) => code,
        },
        Command::Bundle {
            config,
            format,
            baseline,
        } => {
            let code = sloprobe::bundle::cli(
                &config_path(config),
                format == Format::Json,
                baseline.as_deref(),
                &mut std::io::stdout(),
            );
            ExitCode::from(code as u8)
        }
        Command::Reload { config, url } => match sloprobe::control::reload(&config_path(config), url.as_deref()) {
            Ok(done) => {
                println!("{done}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}", e.message);
                ExitCode::from(e.code)
            }
        },
        Command::Health { url } => match sloprobe::control::health(&url) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("unhealthy: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut cmd, "sloprobe", &mut out);
            emit(&out)
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            let mut out = Vec::new();
            match clap_mangen::Man::new(cmd).render(&mut out) {
                Ok(()) => emit(&out),
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Schema => {
            let schema = sloprobe::assembly::schema::config_schema();
            emit(format!("{}\n", serde_json::to_string_pretty(&schema).expect("json")).as_bytes())
        }
        Command::Import {
            from:
                ImportCommand::Blackbox {
                    config,
                    prometheus,
                    out,
                },
        } => match sloprobe::import::blackbox(&config, prometheus.as_deref()) {
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(once::EXIT_CONFIG as u8)
            }
            Ok(imported) => {
                let written = match &out {
                    Some(path) => std::fs::write(path, &imported.toml).map_err(|e| format!("{}: {e}", path.display())),
                    None => {
                        emit(imported.toml.as_bytes());
                        Ok(())
                    }
                };
                if let Err(e) = written {
                    eprintln!("error: {e}");
                    return ExitCode::from(once::EXIT_CONFIG as u8);
                }
                eprintln!(
                    "imported {} module(s) and {} probe(s); {} item(s) not carried over{}",
                    imported.modules,
                    imported.probes,
                    imported.unmapped.len(),
                    if imported.unmapped.is_empty() { "" } else { ":" }
                );
                for n in &imported.unmapped {
                    eprintln!("  {n}");
                }
                ExitCode::SUCCESS
            }
        },
        Command::Target { listen } => {
            let listener = match sloprobe::demo::bind(listen).await {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("error: binding {listen}: {e}");
                    return ExitCode::FAILURE;
                }
            };
            tracing::info!(%listen, "demo target serving");
            // SIGTERM (a service manager, `kill`) ends it as cleanly as Ctrl-C.
            let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("error: installing the SIGTERM handler: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let why = tokio::select! {
                () = sloprobe::demo::serve(listener) => "the listener closed",
                _ = tokio::signal::ctrl_c() => "interrupted",
                _ = term.recv() => "terminated",
            };
            tracing::info!(%listen, why, "demo target stopped");
            ExitCode::SUCCESS
        }
    }
}
