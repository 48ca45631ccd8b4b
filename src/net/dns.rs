//! Timed name resolution with hickory, so the DNS phase is measured, not hidden in connect.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::config::{LookupIpStrategy, ResolverConfig, ResolverOpts};
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::{TokioResolver, net::runtime::TokioRuntimeProvider};

use crate::outcome::{ErrorType, ProbeError};

pub type Resolver = Arc<TokioResolver>;

/// One resolver for the daemon. Its cache is off so every run pays (and measures) a
/// real lookup, as a cold client would.
pub fn system_resolver() -> Resolver {
    let builder = TokioResolver::builder(TokioRuntimeProvider::default()).unwrap_or_else(|_| {
        // No usable /etc/resolv.conf: names still resolve from /etc/hosts and
        // special-use names (localhost, .invalid) are answered locally.
        TokioResolver::builder_with_config(ResolverConfig::default(), TokioRuntimeProvider::default())
    });
    let mut opts = ResolverOpts::default();
    opts.cache_size = 0;
    opts.ip_strategy = LookupIpStrategy::Ipv4thenIpv6;
    opts.timeout = Duration::from_secs(5);
    opts.attempts = 2;
    let resolver = builder.with_options(opts).build().expect("resolver builds");
    Arc::new(resolver)
}

pub async fn resolve(resolver: &TokioResolver, host: &str) -> Result<Vec<IpAddr>, ProbeError> {
    match resolver.lookup_ip(host).await {
        Ok(lookup) => {
            let addrs: Vec<IpAddr> = lookup.iter().collect();
            if addrs.is_empty() {
                Err(ProbeError::new(
                    ErrorType::DnsNoRecords,
                    format!("{host}: no A/AAAA records"),
                ))
            } else {
                Ok(addrs)
            }
        }
        Err(e) => Err(classify(host, &e)),
    }
}

/// hickory's Display prints internal structs (`Query { name: .., query_type: AAAA }`);
/// the message says what happened instead.
fn classify(host: &str, e: &NetError) -> ProbeError {
    let (kind, what) = match e {
        NetError::Dns(DnsError::NoRecordsFound(nr)) if nr.response_code == ResponseCode::NXDomain => {
            (ErrorType::DnsNxdomain, "no such domain (NXDOMAIN)".to_string())
        }
        NetError::Dns(DnsError::NoRecordsFound(nr)) => (
            ErrorType::DnsNoRecords,
            format!("the name has no A/AAAA records (response {})", nr.response_code),
        ),
        NetError::Dns(DnsError::ResponseCode(ResponseCode::NXDomain)) => {
            (ErrorType::DnsNxdomain, "no such domain (NXDOMAIN)".to_string())
        }
        NetError::Dns(DnsError::ResponseCode(code)) => (ErrorType::DnsError, format!("DNS server answered {code}")),
        NetError::Timeout => (
            ErrorType::DnsTimeout,
            "no answer from the DNS server in time".to_string(),
        ),
        other => (ErrorType::DnsError, format!("lookup failed: {other}")),
    };
    ProbeError::new(kind, format!("resolving {host}: {what}"))
}
