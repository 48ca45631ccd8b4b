//! Rate limits: one global token bucket and one per client IP, and which IP a request
//! is from. Hand-written rather than `governor`: its keyed limiter grows by one entry per
//! new IP until swept, and here the per-client table must stay bounded under a flood of
//! addresses (docs/benchmarks.md measures the cost per request).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Clients tracked at most. Past it, idle entries are dropped; if none is idle, a new
/// client shares one overflow bucket.
pub const MAX_CLIENTS: usize = 65_536;

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(burst: f64, now: Instant) -> Bucket {
        Bucket { tokens: burst, at: now }
    }

    /// Takes a token; on refusal, how long until one is there.
    fn take(&mut self, rate: f64, burst: f64, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / rate))
        }
    }

    fn idle(&self, rate: f64, burst: f64, now: Instant) -> bool {
        self.tokens + now.saturating_duration_since(self.at).as_secs_f64() * rate >= burst
    }
}

pub struct Limiter {
    rate: f64,
    burst: f64,
    per_client: f64,
    client_burst: f64,
    global: Mutex<Bucket>,
    clients: Mutex<HashMap<IpAddr, Bucket>>,
}

impl Limiter {
    /// `rate`/`burst` for all requests; `per_client` per second per IP, with a burst of
    /// twice that (at least 1).
    pub fn new(rate: f64, burst: f64, per_client: f64) -> Limiter {
        let now = Instant::now();
        let client_burst = (per_client * 2.0).max(1.0);
        Limiter {
            rate,
            burst,
            per_client,
            client_burst,
            global: Mutex::new(Bucket::full(burst, now)),
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Admits one request from `client`, or says how long to wait.
    pub fn admit(&self, client: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        {
            let mut clients = self.clients.lock().expect("limiter lock");
            if clients.len() >= MAX_CLIENTS && !clients.contains_key(&client) {
                clients.retain(|_, b| !b.idle(self.per_client, self.client_burst, now));
            }
            let key = if clients.len() >= MAX_CLIENTS && !clients.contains_key(&client) {
                IpAddr::from([0u8; 16])
            } else {
                client
            };
            let bucket = clients
                .entry(key)
                .or_insert_with(|| Bucket::full(self.client_burst, now));
            bucket.take(self.per_client, self.client_burst, now)?;
        }
        self.global
            .lock()
            .expect("limiter lock")
            .take(self.rate, self.burst, now)
    }

    pub fn clients(&self) -> usize {
        self.clients.lock().expect("limiter lock").len()
    }
}

/// The client's IP: the TCP peer, or, when the peer is a trusted proxy, the right-most
/// `X-Forwarded-For` entry that is not itself a trusted proxy.
pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let Some(xff) = forwarded_for else {
        return peer;
    };
    let mut client = peer;
    for hop in xff.rsplit(',') {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !is_trusted(&ip) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_refill_and_say_when() {
        let l = Limiter::new(0.001, 3.0, 1.0);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(l.admit(ip).is_ok());
        assert!(l.admit(ip).is_ok());
        let wait = l.admit(ip).unwrap_err();
        assert!(
            wait > Duration::from_millis(500) && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        // Another client has its own bucket; the global one (burst 3) is now spent.
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(l.admit(other).is_ok());
        assert!(l.admit("10.0.0.3".parse().unwrap()).is_err());
    }

    #[test]
    fn client_table_stays_bounded() {
        let l = Limiter::new(1e9, 1e9, 1e9);
        for i in 0..(MAX_CLIENTS as u32 + 5000) {
            let _ = l.admit(IpAddr::from(i.to_be_bytes()));
        }
        assert!(l.clients() <= MAX_CLIENTS + 1, "{}", l.clients());
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let trusted: Vec<ipnet::IpNet> = vec!["127.0.0.1/32".parse().unwrap(), "10.1.0.0/16".parse().unwrap()];
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let outside: IpAddr = "192.0.2.9".parse().unwrap();
        assert_eq!(client_ip(outside, Some("1.2.3.4"), &trusted), outside);
        assert_eq!(
            client_ip(lo, Some("1.2.3.4"), &trusted),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            client_ip(lo, Some("6.6.6.6, 1.2.3.4, 10.1.2.3"), &trusted),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_ip(lo, Some("garbage"), &trusted), lo);
        assert_eq!(client_ip(lo, None, &trusted), lo);
    }
}
