//! `kind = "icmp"`: echo requests to a host, IPv4 or IPv6, over an unprivileged ICMP
//! socket where the host allows it (`net.ipv4.ping_group_range`) and a raw socket
//! otherwise (root or CAP_NET_RAW); the sockets and packets are surge-ping's. Each reply's
//! round trip is a sample; loss is the share of requests without a reply.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::Deserialize;
use surge_ping::{Client, Config, ICMP, PingIdentifier, PingSequence, SurgeError};

use super::kind::{BoxFuture, BuildContext, Kind, Probe, ProbeConfig, Settings};
use crate::config::{ConfigError, Dur, Spanned};
use crate::net::{self, Resolver};
use crate::outcome::{ErrorType, Instrument, Measure, ProbeError, Recorder, Unit};

pub const KIND: Kind = Kind {
    name: "icmp",
    measures: MEASURES,
    settings: super::kind::settings_of::<IcmpSettings>,
    schema: <IcmpSettings as JsonSchema>::json_schema,
    goodput: &[],
    headline: &["rtt", "loss"],
    median_gate: false,
    long_runs: false,
    target_key: Some(("target", "127.0.0.1")),
};

/// The keys of `kind = "icmp"` (besides the shared ones).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IcmpSettings {
    /// Host name or IP address ("::1", "127.0.0.1", "db.internal").
    pub target: Spanned<String>,
    /// "auto" (default: IPv4 first, as the system resolver orders), "ip4" or "ip6".
    #[serde(default)]
    pub ip_protocol: IpProtocol,
    /// Echo requests per run (default 1, at most 100).
    pub count: Option<Spanned<u32>>,
    /// Time between requests (default 200ms, at least 10ms).
    pub interval: Option<Spanned<Dur>>,
    /// How long a reply may take before its request counts as lost (default 1s).
    pub reply_timeout: Option<Spanned<Dur>>,
    /// Payload bytes per request (default 56, at most 1452).
    pub payload_size: Option<Spanned<u32>>,
    /// Outgoing hop limit (IPv4 TTL), default the system's.
    pub ttl: Option<Spanned<u32>>,
    /// Replies needed for the run to pass (default 1).
    pub min_replies: Option<Spanned<u32>>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum IpProtocol {
    #[default]
    Auto,
    Ip4,
    Ip6,
}

pub const MEASURES: &[Measure] = &[
    Measure {
        key: "dns",
        metric: "probe.icmp.phase.duration",
        unit: Unit::Seconds,
        instrument: Instrument::Mean,
        description: "ICMP probe time resolving the target's name. Count and sum only.",
        fixed: &[("phase", "dns")],
        labels: &[],
    },
    Measure {
        key: "rtt",
        metric: "probe.icmp.rtt",
        unit: Unit::Seconds,
        instrument: Instrument::Histogram,
        description: "Round trip of each echo request that got its reply.",
        fixed: &[],
        labels: &[],
    },
    Measure {
        key: "loss",
        metric: "probe.icmp.loss",
        unit: Unit::Loss,
        instrument: Instrument::Gauge,
        description: "Share of the last run's echo requests without a reply within reply_timeout (0 to 1).",
        fixed: &[],
        labels: &[],
    },
    Measure {
        key: "replies",
        metric: "probe.icmp.replies",
        unit: Unit::Count,
        instrument: Instrument::Gauge,
        description: "Echo replies in the last run.",
        fixed: &[],
        labels: &[],
    },
    Measure {
        key: "reply_hop_limit",
        metric: "probe.icmp.reply.hop_limit",
        unit: Unit::Count,
        instrument: Instrument::Gauge,
        description: "TTL of the last IPv4 reply (raw sockets only; blackbox_exporter's probe_icmp_reply_hop_limit).",
        fixed: &[],
        labels: &[],
    },
];

const MAX_COUNT: u32 = 100;
/// 1500-byte MTU less the IPv6 and ICMP headers: larger would fragment.
const MAX_PAYLOAD: u32 = 1452;

pub struct IcmpProbe {
    host: String,
    protocol: IpProtocol,
    count: u32,
    interval: Duration,
    reply_timeout: Duration,
    payload: Vec<u8>,
    ttl: Option<u32>,
    min_replies: u32,
    resolver: Resolver,
}

fn within(
    cfg: &ProbeConfig,
    at: Option<&Spanned<u32>>,
    key: &str,
    default: u32,
    lo: u32,
    hi: u32,
) -> Result<u32, ConfigError> {
    match at {
        None => Ok(default),
        Some(v) if (lo..=hi).contains(v.get_ref()) => Ok(*v.get_ref()),
        Some(v) => Err(cfg.error_at(v, key, format!("must be between {lo} and {hi}"))),
    }
}

impl Settings for IcmpSettings {
    fn build(&self, cfg: &ProbeConfig, ctx: &BuildContext) -> Result<Box<dyn Probe>, ConfigError> {
        let host = self
            .target
            .get_ref()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        if host.is_empty() || host.contains('/') || (host.contains(':') && host.parse::<IpAddr>().is_err()) {
            return Err(cfg.error_at(
                &self.target,
                "probe.target",
                "write a host name or an IP address (no port)",
            ));
        }
        let count = within(cfg, self.count.as_ref(), "probe.count", 1, 1, MAX_COUNT)?;
        let min_replies = within(cfg, self.min_replies.as_ref(), "probe.min_replies", 1, 0, count)?;
        let size = within(
            cfg,
            self.payload_size.as_ref(),
            "probe.payload_size",
            56,
            0,
            MAX_PAYLOAD,
        )?;
        let ttl = self
            .ttl
            .as_ref()
            .map(|t| within(cfg, Some(t), "probe.ttl", 64, 1, 255))
            .transpose()?;
        let interval = self
            .interval
            .as_ref()
            .map_or(Duration::from_millis(200), |d| d.get_ref().0);
        if interval < Duration::from_millis(10) {
            let at = self.interval.as_ref().expect("set when below the default");
            return Err(cfg.error_at(at, "probe.interval", "interval must be at least 10ms"));
        }
        let reply_timeout = self
            .reply_timeout
            .as_ref()
            .map_or(Duration::from_secs(1), |d| d.get_ref().0);
        let needed = interval * (count - 1) + reply_timeout;
        if needed > cfg.timeout {
            let at = self.reply_timeout.as_ref().or(self.interval.as_ref());
            let msg = format!(
                "{count} request(s) {} apart plus reply_timeout {} take {}, longer than the probe's timeout {}",
                humantime::format_duration(interval),
                humantime::format_duration(reply_timeout),
                humantime::format_duration(needed),
                humantime::format_duration(cfg.timeout)
            );
            return Err(match at {
                Some(at) => cfg.error_at(at, "probe.reply_timeout", msg),
                None => cfg.error_at(&self.target, "probe.timeout", msg),
            });
        }
        Ok(Box::new(IcmpProbe {
            host,
            protocol: self.ip_protocol,
            count,
            interval,
            reply_timeout,
            // A recognisable pattern: a reply echoing something else is not ours.
            payload: (0..size).map(|i| (i % 251) as u8).collect(),
            ttl,
            min_replies,
            resolver: ctx.resolver.clone(),
        }))
    }

    fn plan(&self) -> Vec<String> {
        vec![format!(
            "icmp echo {} x{}",
            self.target.get_ref(),
            self.count.as_ref().map_or(1, |c| *c.get_ref())
        )]
    }
}

impl Probe for IcmpProbe {
    fn run<'a>(&'a self, rec: &'a mut Recorder) -> BoxFuture<'a, Result<(), ProbeError>> {
        Box::pin(async move {
            let ip = self.address(rec).await?;
            rec.detail("peer", ip.to_string());
            let mut config = Config::builder().kind(if ip.is_ipv4() { ICMP::V4 } else { ICMP::V6 });
            if let Some(ttl) = self.ttl {
                config = config.ttl(ttl);
            }
            rec.enter("echo");
            let client = Client::new(&config.build()).map_err(|e| {
                ProbeError::new(
                    ErrorType::ConnectError,
                    format!(
                        "cannot open an ICMP socket ({e}): allow unprivileged ping (sysctl net.ipv4.ping_group_range) or grant CAP_NET_RAW"
                    ),
                )
            })?;
            let mut pinger = client.pinger(ip, PingIdentifier(rand_ident())).await;
            pinger.timeout(self.reply_timeout);
            let start = Instant::now();
            let mut replies = 0u32;
            let mut last_error = None;
            for seq in 0..self.count {
                // A fixed timeline: request n leaves at n × interval, however long replies take.
                let due = start + self.interval * seq;
                tokio::time::sleep_until(due.into()).await;
                match pinger.ping(PingSequence(seq as u16), &self.payload).await {
                    Ok((packet, rtt)) => {
                        replies += 1;
                        rec.sample("rtt", rtt.as_secs_f64());
                        if let surge_ping::IcmpPacket::V4(p) = &packet
                            && let Some(ttl) = p.get_ttl()
                        {
                            rec.set("reply_hop_limit", f64::from(ttl));
                        }
                    }
                    Err(SurgeError::Timeout { .. }) => {}
                    Err(e) => last_error = Some(e),
                }
            }
            rec.set("replies", f64::from(replies));
            rec.set("loss", f64::from(self.count - replies) / f64::from(self.count));
            if replies < self.min_replies {
                let why = match last_error {
                    Some(e) => format!("; last error: {e}"),
                    None => String::new(),
                };
                return Err(ProbeError::new(
                    ErrorType::Timeout,
                    format!(
                        "{replies} of {} echo request(s) to {ip} answered within {} (needed {}){why}",
                        self.count,
                        humantime::format_duration(self.reply_timeout),
                        self.min_replies
                    ),
                ));
            }
            Ok(())
        })
    }
}

impl IcmpProbe {
    async fn address(&self, rec: &mut Recorder) -> Result<IpAddr, ProbeError> {
        let ips = net::resolve(&self.resolver, rec, &self.host).await?;
        let pick = match self.protocol {
            IpProtocol::Auto => ips.first(),
            IpProtocol::Ip4 => ips.iter().find(|ip| ip.is_ipv4()),
            IpProtocol::Ip6 => ips.iter().find(|ip| ip.is_ipv6()),
        };
        pick.copied().ok_or_else(|| {
            ProbeError::new(
                ErrorType::DnsNoRecords,
                format!("{}: no {:?} address", self.host, self.protocol),
            )
        })
    }
}

/// Identifiers tell concurrent probes' replies apart on a raw socket (unprivileged
/// sockets get theirs from the kernel).
fn rand_ident() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let seed = std::process::id() as u16;
    seed.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed))
}
