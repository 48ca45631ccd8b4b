//! `kind = "dns"`: one query to a chosen server over UDP, TCP or TLS (DoT), judged like
//! blackbox_exporter's dns prober: accepted response codes, then regexes over the
//! answer, authority and additional records. Messages are hickory's; the transport is
//! ours (UDP here, TCP/TLS over the shared timed connection) so every phase is timed.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use hickory_resolver::proto::op::{Edns, Message, Query};
use hickory_resolver::proto::rr::{DNSClass, Name, Record, RecordType};
use regex::Regex;
use rustls::ClientConfig;
use schemars::JsonSchema;
use serde::Deserialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::UdpSocket;

use super::http_config::Tls;
use super::kind::{BoxFuture, BuildContext, CERT_EXPIRY, Kind, Probe, ProbeConfig, Settings};
use crate::config::{ConfigError, Spanned};
use crate::net::{self, Endpoint, Resolver, Stream};
use crate::outcome::{ErrorType, Instrument, Measure, ProbeError, Recorder, Unit};

pub const KIND: Kind = Kind {
    name: "dns",
    measures: MEASURES,
    settings: super::kind::settings_of::<DnsSettings>,
    schema: <DnsSettings as JsonSchema>::json_schema,
    goodput: &[],
    headline: &["lookup", "total"],
    median_gate: false,
    long_runs: false,
    target_key: Some(("server", "127.0.0.1")),
};

/// The keys of `kind = "dns"` (besides the shared ones).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DnsSettings {
    /// The DNS server: "host", "host:port" or "[v6]:port" (port 53, or 853 over TLS).
    pub server: Spanned<String>,
    /// The name asked for.
    pub query_name: Spanned<String>,
    /// Record type, e.g. "A", "AAAA", "MX", "SOA", "TXT" (default "A").
    pub query_type: Option<Spanned<String>>,
    /// Record class (default "IN").
    pub query_class: Option<Spanned<String>>,
    /// "udp" (default), "tcp" or "tls" (DNS over TLS).
    #[serde(default)]
    pub transport: Transport,
    /// Set the RD bit (default true).
    pub recursion_desired: Option<bool>,
    /// A truncated UDP answer is asked again over TCP, as resolvers do (default true);
    /// false judges the truncated answer as it came.
    pub retry_tcp: Option<bool>,
    /// Response codes that pass (default ["NOERROR"]).
    pub valid_rcodes: Option<Spanned<Vec<String>>>,
    /// Checks on the answer section.
    #[serde(default)]
    pub validate_answer: RecordChecks,
    /// Checks on the authority section.
    #[serde(default)]
    pub validate_authority: RecordChecks,
    /// Checks on the additional section.
    #[serde(default)]
    pub validate_additional: RecordChecks,
    /// TLS options for `transport = "tls"`.
    #[serde(default)]
    pub tls_config: Tls,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    #[default]
    Udp,
    Tcp,
    Tls,
}

/// Regexes over one section's records, each written as "name\tttl\tclass\ttype\tdata"
/// (the zone-file form blackbox_exporter matches against).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordChecks {
    /// Fail if any record matches any of these.
    #[serde(default)]
    pub fail_if_matches_regexp: Vec<Spanned<String>>,
    /// Fail if every record matches one of these (also when there are none).
    #[serde(default)]
    pub fail_if_all_match_regexp: Vec<Spanned<String>>,
    /// Fail if some record does not match one of these (also when there are none).
    #[serde(default)]
    pub fail_if_not_matches_regexp: Vec<Spanned<String>>,
    /// Fail if no record matches one of these.
    #[serde(default)]
    pub fail_if_none_matches_regexp: Vec<Spanned<String>>,
}

macro_rules! dns_phase {
    ($key:literal) => {
        Measure {
            key: $key,
            metric: "probe.dns.phase.duration",
            unit: Unit::Seconds,
            instrument: Instrument::Mean,
            description: "DNS probe time by phase (dns: resolving the server's own name; connect and tls over TCP/TLS; lookup: query sent to answer read). Count and sum only.",
            fixed: &[("phase", $key)],
            labels: &[],
        }
    };
}

macro_rules! rr_count {
    ($key:literal, $section:literal) => {
        Measure {
            key: $key,
            metric: "probe.dns.records",
            unit: Unit::Count,
            instrument: Instrument::Gauge,
            description: "Records in a section of the last answer (blackbox_exporter's probe_dns_*_rrs).",
            fixed: &[("dns.section", $section)],
            labels: &[],
        }
    };
}

pub const MEASURES: &[Measure] = &[
    dns_phase!("dns"),
    dns_phase!("connect"),
    dns_phase!("tls"),
    Measure {
        key: "lookup",
        metric: "dns.lookup.duration",
        unit: Unit::Seconds,
        instrument: Instrument::Histogram,
        description: "Query sent to response read (OTel semantic conventions' DNS lookup), over the transport the probe names; a TCP retry after truncation is included.",
        fixed: &[],
        labels: &[],
    },
    rr_count!("answer_rrs", "answer"),
    rr_count!("authority_rrs", "authority"),
    rr_count!("additional_rrs", "additional"),
    Measure {
        key: "serial",
        metric: "probe.dns.serial",
        unit: Unit::Count,
        instrument: Instrument::Gauge,
        description: "The zone's serial from an SOA answer (query_type = \"SOA\").",
        fixed: &[],
        labels: &[],
    },
    Measure {
        key: "truncated",
        metric: "probe.dns.truncated",
        unit: Unit::Count,
        instrument: Instrument::Gauge,
        description: "1 when the last UDP answer had the TC bit set.",
        fixed: &[],
        labels: &[],
    },
    CERT_EXPIRY,
];

/// UDP datagrams from someone else (wrong id or question) ignored per run before failing.
const MAX_STRAY: usize = 64;

struct Checks {
    fail_if_matches: Vec<Regex>,
    fail_if_all_match: Vec<Regex>,
    fail_if_not_matches: Vec<Regex>,
    fail_if_none_matches: Vec<Regex>,
}

pub struct DnsProbe {
    host: String,
    port: u16,
    transport: Transport,
    tls: Option<Arc<ClientConfig>>,
    server_name: Option<String>,
    name: Name,
    rtype: RecordType,
    class: DNSClass,
    recursion_desired: bool,
    retry_tcp: bool,
    valid_rcodes: Vec<u16>,
    sections: [(&'static str, Checks); 3],
    resolver: Resolver,
}

/// The standard mnemonics (RFC 1035, 2136, 6895); others by number.
const RCODES: &[(&str, u16)] = &[
    ("NOERROR", 0),
    ("FORMERR", 1),
    ("SERVFAIL", 2),
    ("NXDOMAIN", 3),
    ("NOTIMP", 4),
    ("REFUSED", 5),
    ("YXDOMAIN", 6),
    ("YXRRSET", 7),
    ("NXRRSET", 8),
    ("NOTAUTH", 9),
    ("NOTZONE", 10),
];

fn rcode_name(code: u16) -> String {
    RCODES
        .iter()
        .find(|(_, c)| *c == code)
        .map_or_else(|| format!("RCODE{code}"), |(n, _)| n.to_string())
}

/// Splits "host", "host:port", "[v6]:port", "v6".
fn server_host_port(server: &str, default_port: u16) -> Result<(String, u16), String> {
    if server.parse::<IpAddr>().is_ok() {
        return Ok((server.to_string(), default_port));
    }
    if !server.contains(':') {
        if server.is_empty() {
            return Err("the server is empty".into());
        }
        return Ok((server.to_string(), default_port));
    }
    if server.starts_with('[') && server.ends_with(']') {
        return Ok((server.to_string(), default_port));
    }
    super::tcp::host_port(server)
}

fn regexes(cfg: &ProbeConfig, list: &[Spanned<String>], key: &str) -> Result<Vec<Regex>, ConfigError> {
    list.iter()
        .map(|r| Regex::new(r.get_ref()).map_err(|e| cfg.error_at(r, key, format!("invalid regex: {e}"))))
        .collect()
}

impl RecordChecks {
    fn build(&self, cfg: &ProbeConfig, section: &str) -> Result<Checks, ConfigError> {
        let key = |k: &str| format!("probe.validate_{section}.{k}");
        Ok(Checks {
            fail_if_matches: regexes(cfg, &self.fail_if_matches_regexp, &key("fail_if_matches_regexp"))?,
            fail_if_all_match: regexes(cfg, &self.fail_if_all_match_regexp, &key("fail_if_all_match_regexp"))?,
            fail_if_not_matches: regexes(
                cfg,
                &self.fail_if_not_matches_regexp,
                &key("fail_if_not_matches_regexp"),
            )?,
            fail_if_none_matches: regexes(
                cfg,
                &self.fail_if_none_matches_regexp,
                &key("fail_if_none_matches_regexp"),
            )?,
        })
    }
}

impl Settings for DnsSettings {
    fn build(&self, cfg: &ProbeConfig, ctx: &BuildContext) -> Result<Box<dyn Probe>, ConfigError> {
        let default_port = if self.transport == Transport::Tls { 853 } else { 53 };
        let (host, port) = server_host_port(self.server.get_ref(), default_port)
            .map_err(|e| cfg.error_at(&self.server, "probe.server", e))?;
        let name = Name::from_utf8(self.query_name.get_ref())
            .map_err(|e| cfg.error_at(&self.query_name, "probe.query_name", format!("not a domain name: {e}")))?;
        let rtype =
            match &self.query_type {
                None => RecordType::A,
                Some(t) => t.get_ref().to_ascii_uppercase().parse::<RecordType>().map_err(|_| {
                    cfg.error_at(t, "probe.query_type", format!("unknown record type {:?}", t.get_ref()))
                })?,
            };
        let class = match &self.query_class {
            None => DNSClass::IN,
            Some(c) => c
                .get_ref()
                .to_ascii_uppercase()
                .parse::<DNSClass>()
                .map_err(|_| cfg.error_at(c, "probe.query_class", format!("unknown class {:?}", c.get_ref())))?,
        };
        let valid_rcodes = match &self.valid_rcodes {
            None => vec![0],
            Some(list) => list
                .get_ref()
                .iter()
                .map(|n| {
                    let up = n.to_ascii_uppercase();
                    RCODES
                        .iter()
                        .find(|(name, _)| *name == up)
                        .map(|(_, c)| *c)
                        .ok_or_else(|| {
                            let known: Vec<&str> = RCODES.iter().map(|(n, _)| *n).collect();
                            cfg.error_at(
                                list,
                                "probe.valid_rcodes",
                                format!("unknown response code {n:?}; known: {}", known.join(", ")),
                            )
                        })
                })
                .collect::<Result<_, _>>()?,
        };
        let tls = (self.transport == Transport::Tls)
            .then(|| self.tls_config.client(cfg, ctx, &[b"dot"], "probe.tls_config"))
            .transpose()?;
        Ok(Box::new(DnsProbe {
            host,
            port,
            transport: self.transport,
            tls,
            server_name: self.tls_config.server_name(),
            name,
            rtype,
            class,
            recursion_desired: self.recursion_desired.unwrap_or(true),
            retry_tcp: self.retry_tcp.unwrap_or(true),
            valid_rcodes,
            sections: [
                ("answer", self.validate_answer.build(cfg, "answer")?),
                ("authority", self.validate_authority.build(cfg, "authority")?),
                ("additional", self.validate_additional.build(cfg, "additional")?),
            ],
            resolver: ctx.resolver.clone(),
        }))
    }

    fn plan(&self) -> Vec<String> {
        vec![format!(
            "dns {} {} @{} over {:?}",
            self.query_type.as_ref().map_or("A", |t| t.get_ref().as_str()),
            self.query_name.get_ref(),
            self.server.get_ref(),
            self.transport
        )]
    }
}

impl Probe for DnsProbe {
    fn run<'a>(&'a self, rec: &'a mut Recorder) -> BoxFuture<'a, Result<(), ProbeError>> {
        Box::pin(async move {
            let mut query = Query::query(self.name.clone(), self.rtype);
            query.query_class = self.class;
            let mut msg = Message::query();
            msg.metadata.recursion_desired = self.recursion_desired;
            msg.add_query(query);
            let mut edns = Edns::new();
            edns.set_max_payload(1232);
            msg.set_edns(edns);
            let wire = msg
                .to_vec()
                .map_err(|e| ProbeError::new(ErrorType::Internal, format!("encoding the query: {e}")))?;
            let id = msg.metadata.id;

            let mut reply = match self.transport {
                Transport::Udp => {
                    let reply = self.over_udp(rec, &wire, id).await?;
                    let truncated = reply.metadata.truncation;
                    rec.set("truncated", if truncated { 1.0 } else { 0.0 });
                    if truncated && self.retry_tcp {
                        rec.detail("truncated", "answer truncated over UDP; asked again over TCP");
                        self.over_stream(rec, &wire, id).await?
                    } else {
                        reply
                    }
                }
                Transport::Tcp | Transport::Tls => self.over_stream(rec, &wire, id).await?,
            };
            self.judge(rec, &mut reply)
        })
    }
}

impl DnsProbe {
    async fn server_addr(&self, rec: &mut Recorder) -> Result<SocketAddr, ProbeError> {
        let ips = net::resolve(&self.resolver, rec, &self.host).await?;
        Ok(SocketAddr::new(ips[0], self.port))
    }

    async fn over_udp(&self, rec: &mut Recorder, wire: &[u8], id: u16) -> Result<Message, ProbeError> {
        let server = self.server_addr(rec).await?;
        let local: SocketAddr = if server.is_ipv4() {
            "0.0.0.0:0".parse().expect("addr")
        } else {
            "[::]:0".parse().expect("addr")
        };
        let sock = UdpSocket::bind(local)
            .await
            .map_err(|e| ProbeError::new(ErrorType::ConnectError, format!("UDP socket: {e}")))?;
        sock.connect(server)
            .await
            .map_err(|e| ProbeError::new(ErrorType::ConnectError, format!("UDP to {server}: {e}")))?;
        rec.enter("lookup");
        let t = Instant::now();
        let sent = sock.send(wire).await;
        let result = async {
            sent.map_err(|e| ProbeError::new(ErrorType::ConnectError, format!("sending to {server}: {e}")))?;
            // A datagram is at most 64 KiB: the buffer is that, not what the peer claims.
            let mut buf = vec![0u8; 65_535];
            for _ in 0..MAX_STRAY {
                let n = sock.recv(&mut buf).await.map_err(|e| {
                    let kind = if e.kind() == std::io::ErrorKind::ConnectionRefused {
                        ErrorType::ConnectRefused
                    } else {
                        ErrorType::ConnectError
                    };
                    ProbeError::new(kind, format!("no answer from {server}: {e}"))
                })?;
                match Message::from_vec(&buf[..n]) {
                    Ok(m) if m.metadata.id == id => return Ok(m),
                    // Another query's answer or noise: a spoofer must also guess the id.
                    _ => continue,
                }
            }
            Err(ProbeError::new(
                ErrorType::ProtocolError,
                format!("{MAX_STRAY} datagrams from {server}, none answering the query"),
            ))
        }
        .await;
        rec.add("lookup", t.elapsed().as_secs_f64());
        result
    }

    async fn over_stream(&self, rec: &mut Recorder, wire: &[u8], id: u16) -> Result<Message, ProbeError> {
        let ep = Endpoint {
            host: &self.host,
            port: self.port,
            tls: self.tls.as_ref(),
            server_name: self.server_name.as_deref(),
        };
        let conn = net::connect(&self.resolver, rec, &ep).await?;
        let mut stream: Stream = conn.io.into_inner();
        rec.enter("lookup");
        let t = Instant::now();
        let result = async {
            let mut framed = Vec::with_capacity(wire.len() + 2);
            framed.extend_from_slice(&(wire.len() as u16).to_be_bytes());
            framed.extend_from_slice(wire);
            stream
                .write_all(&framed)
                .await
                .map_err(|e| ProbeError::new(ErrorType::ConnectionClosed, format!("sending the query: {e}")))?;
            let mut len = [0u8; 2];
            stream
                .read_exact(&mut len)
                .await
                .map_err(|e| ProbeError::new(ErrorType::ConnectionClosed, format!("reading the answer: {e}")))?;
            // The length prefix is 16 bits: at most 64 KiB, whatever the peer sends.
            let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
            stream
                .read_exact(&mut buf)
                .await
                .map_err(|e| ProbeError::new(ErrorType::ConnectionClosed, format!("reading the answer: {e}")))?;
            let m = Message::from_vec(&buf)
                .map_err(|e| ProbeError::new(ErrorType::ProtocolError, format!("not a DNS message: {e}")))?;
            if m.metadata.id != id {
                return Err(ProbeError::new(
                    ErrorType::ProtocolError,
                    "the answer's id is not the query's",
                ));
            }
            Ok(m)
        }
        .await;
        rec.add("lookup", t.elapsed().as_secs_f64());
        result
    }

    fn judge(&self, rec: &mut Recorder, reply: &mut Message) -> Result<(), ProbeError> {
        let code = u16::from(reply.metadata.response_code);
        let name = rcode_name(code);
        rec.detail("rcode", name.clone());
        let sections = [
            ("answer_rrs", &reply.answers),
            ("authority_rrs", &reply.authorities),
            ("additional_rrs", &reply.additionals),
        ];
        for (key, records) in sections {
            rec.set(key, records.len() as f64);
        }
        if let Some(serial) = reply.answers.iter().find_map(|r| match &r.data {
            hickory_resolver::proto::rr::RData::SOA(soa) => Some(soa.serial),
            _ => None,
        }) {
            rec.set("serial", f64::from(serial));
        }
        if !self.valid_rcodes.contains(&code) {
            let kind = match code {
                3 => ErrorType::DnsNxdomain,
                _ => ErrorType::DnsError,
            };
            return Err(ProbeError::new(kind, format!("response code {name} is not accepted")));
        }
        let records = [&reply.answers, &reply.authorities, &reply.additionals];
        for ((section, checks), records) in self.sections.iter().zip(records) {
            let lines: Vec<String> = records.iter().map(zone_line).collect();
            check_section(section, checks, &lines)?;
        }
        Ok(())
    }
}

/// A record as "name\tttl\tclass\ttype\tdata", the form blackbox_exporter's regexes see.
fn zone_line(r: &Record) -> String {
    format!(
        "{}\t{}\t{}\t{}\t{}",
        r.name,
        r.ttl,
        r.dns_class,
        r.record_type(),
        r.data
    )
}

fn check_section(section: &str, c: &Checks, lines: &[String]) -> Result<(), ProbeError> {
    let fail = |what: String| {
        Err(ProbeError::new(
            ErrorType::AssertionFailed,
            format!("{section}: {what}"),
        ))
    };
    for re in &c.fail_if_matches {
        if let Some(l) = lines.iter().find(|l| re.is_match(l)) {
            return fail(format!("{l:?} matches fail_if_matches_regexp /{re}/"));
        }
    }
    // As blackbox_exporter: with no records, "all match" holds and "some match" does not.
    for re in &c.fail_if_all_match {
        if lines.iter().all(|l| re.is_match(l)) {
            return fail(format!("every record matches fail_if_all_match_regexp /{re}/"));
        }
    }
    for re in &c.fail_if_not_matches {
        if lines.is_empty() {
            return fail(format!("no records, and fail_if_not_matches_regexp /{re}/ needs them"));
        }
        if let Some(l) = lines.iter().find(|l| !re.is_match(l)) {
            return fail(format!("{l:?} does not match fail_if_not_matches_regexp /{re}/"));
        }
    }
    for re in &c.fail_if_none_matches {
        if !lines.iter().any(|l| re.is_match(l)) {
            return fail(format!("no record matches fail_if_none_matches_regexp /{re}/"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_parse_with_default_ports() {
        assert_eq!(server_host_port("127.0.0.1", 53), Ok(("127.0.0.1".into(), 53)));
        assert_eq!(server_host_port("::1", 53), Ok(("::1".into(), 53)));
        assert_eq!(server_host_port("[::1]:5353", 53), Ok(("[::1]".into(), 5353)));
        assert_eq!(server_host_port("ns.example:853", 53), Ok(("ns.example".into(), 853)));
        assert!(server_host_port("ns.example:0", 53).is_err());
    }

    #[test]
    fn section_checks_follow_blackbox_semantics() {
        let re = |s: &str| vec![Regex::new(s).unwrap()];
        let none = Checks {
            fail_if_matches: vec![],
            fail_if_all_match: vec![],
            fail_if_not_matches: vec![],
            fail_if_none_matches: vec![],
        };
        let lines = vec![
            "a.\t60\tIN\tA\t127.0.0.1".to_string(),
            "a.\t60\tIN\tA\t10.0.0.1".to_string(),
        ];
        let c = Checks {
            fail_if_none_matches: re(r"127\.0\.0\.1"),
            ..none
        };
        assert!(check_section("answer", &c, &lines).is_ok());
        assert!(check_section("answer", &c, &[]).is_err());
        let c = Checks {
            fail_if_not_matches: re(r"127\.0\.0\.1"),
            fail_if_matches: vec![],
            fail_if_all_match: vec![],
            fail_if_none_matches: vec![],
        };
        assert!(check_section("answer", &c, &lines).is_err());
        let c = Checks {
            fail_if_all_match: re(r"\tA\t"),
            fail_if_matches: vec![],
            fail_if_not_matches: vec![],
            fail_if_none_matches: vec![],
        };
        assert!(check_section("answer", &c, &lines).is_err());
        assert!(check_section("answer", &c, &[]).is_err());
    }
}
