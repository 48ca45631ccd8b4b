//! Who is reporting: the OpenTelemetry resource and a `service.instance.id` that survives
//! reloads and restarts.

use opentelemetry::KeyValue;
use opentelemetry_sdk::Resource;

pub const SERVICE_NAME: &str = "sloprobe";

/// Resource attributes. `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_SERVICE_NAME` are read by the
/// SDK; the attributes set here win over them, except `service.name`, which the
/// environment may set (the config has no key for it).
pub fn resource(location: &str, instance_id: &str, field_data: bool) -> Resource {
    let env_names_service = std::env::var("OTEL_SERVICE_NAME").is_ok_and(|v| !v.is_empty())
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|v| v.contains("service.name="));
    let mut b = Resource::builder();
    if !env_names_service {
        b = b.with_service_name(SERVICE_NAME);
    }
    let mut attrs = vec![
        KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
        KeyValue::new("service.instance.id", instance_id.to_string()),
        KeyValue::new("host.name", host_name()),
        KeyValue::new("probe.location", location.to_string()),
    ];
    if !field_data {
        // Everything this process measures is synthetic traffic. With the RUM collector
        // on it is not: then only the browser probe's vitals carry the attribute.
        attrs.push(KeyValue::new("user_agent.synthetic.type", "test"));
    }
    b.with_attributes(attrs).build()
}

pub fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

/// `service.instance.id` that survives reloads and restarts: a UUID (version 8, the
/// custom layout) from FNV-1a hashes of the host name, the absolute config path and the
/// listen address. Two daemons on one host differ by config or listener; one daemon keeps
/// its id, so OTLP backends see one target across restarts (docs/metrics.md).
pub fn stable_instance_id(config_path: &std::path::Path, listen: &str) -> String {
    let path = std::fs::canonicalize(config_path).unwrap_or_else(|_| config_path.to_path_buf());
    let key = format!("{}\n{}\n{listen}", host_name(), path.display());
    let a = fnv1a(key.as_bytes(), 0xcbf2_9ce4_8422_2325);
    let b = fnv1a(key.as_bytes(), 0x8422_2325_cbf2_9ce4);
    uuid_text(((u128::from(a)) << 64 | u128::from(b)).to_be_bytes(), 8)
}

fn fnv1a(bytes: &[u8], seed: u64) -> u64 {
    bytes
        .iter()
        .fold(seed, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
}

fn uuid_text(mut b: [u8; 16], version: u8) -> String {
    b[6] = (b[6] & 0x0f) | (version << 4);
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A random UUIDv4 (tests and `once`, which have no stable identity to keep).
pub fn random_instance_id() -> String {
    let mut b = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut b);
    } else {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        b = (nanos ^ u128::from(std::process::id()) << 64).to_le_bytes();
    }
    uuid_text(b, 4)
}

#[cfg(test)]
mod tests {
    #[test]
    fn instance_id_is_stable_and_a_uuid() {
        let a = super::stable_instance_id(std::path::Path::new("/etc/sloprobe/sloprobe.toml"), "127.0.0.1:9464");
        assert_eq!(
            a,
            super::stable_instance_id(std::path::Path::new("/etc/sloprobe/sloprobe.toml"), "127.0.0.1:9464")
        );
        assert_ne!(
            a,
            super::stable_instance_id(std::path::Path::new("/etc/sloprobe/sloprobe.toml"), "127.0.0.1:9465")
        );
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "8");
    }
}
