//! Who is reporting: the OpenTelemetry resource and a `service.instance.id` that survives
//! reloads and restarts.

use opentelemetry::KeyValue;
use opentelemetry_sdk::Resource;

pub const SERVICE_NAME: &str = "sloprobe";

/// Resource attributes. `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_SERVICE_NAME` are read by the
/// SDK, and they win over the defaults computed here (service name, version, instance id,
/// host name), as the SDK specification has environment values win over SDK defaults; an
/// operator can so pin `service.instance.id` or `host.name`. What the config states
/// (`probe.location`) and the synthetic marker stay sloprobe's.
pub fn resource(location: &str, instance_id: &str, field_data: bool) -> Resource {
    let from_env = env_resource_keys();
    let env_names_service =
        std::env::var("OTEL_SERVICE_NAME").is_ok_and(|v| !v.is_empty()) || from_env.iter().any(|k| k == "service.name");
    let mut b = Resource::builder();
    if !env_names_service {
        b = b.with_service_name(SERVICE_NAME);
    }
    let defaults = [
        KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
        KeyValue::new("service.instance.id", instance_id.to_string()),
        KeyValue::new("host.name", host_name()),
    ];
    let mut attrs: Vec<KeyValue> = defaults
        .into_iter()
        .filter(|kv| !from_env.iter().any(|k| k == kv.key.as_str()))
        .collect();
    attrs.push(KeyValue::new("probe.location", location.to_string()));
    if !field_data {
        // Everything this process measures is synthetic traffic. With the RUM collector
        // on it is not: then only the browser probe's vitals carry the attribute.
        attrs.push(KeyValue::new("user_agent.synthetic.type", "test"));
    }
    b.with_attributes(attrs).build()
}

/// Keys `OTEL_RESOURCE_ATTRIBUTES` sets (`key1=value1,key2=value2`).
fn env_resource_keys() -> Vec<String> {
    std::env::var("OTEL_RESOURCE_ATTRIBUTES")
        .unwrap_or_default()
        .split(',')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (!k.trim().is_empty() && !v.trim().is_empty()).then(|| k.trim().to_string())
        })
        .collect()
}

pub fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

/// The semantic conventions' namespace for `service.instance.id` UUIDv5s.
const INSTANCE_ID_NAMESPACE: uuid::Uuid = uuid::uuid!("4d63009a-8d0f-11ee-aad7-4c796ed8e320");

/// `service.instance.id` that survives reloads and restarts: a UUIDv5 in the semantic
/// conventions' namespace, named by the host name, the absolute config path and the listen
/// address. Two daemons on one host differ by config or listener; one daemon keeps its id,
/// so OTLP backends see one target across restarts (docs/metrics.md).
pub fn stable_instance_id(config_path: &std::path::Path, listen: &str) -> String {
    let path = std::fs::canonicalize(config_path).unwrap_or_else(|_| config_path.to_path_buf());
    let key = format!("{}\n{}\n{listen}", host_name(), path.display());
    uuid::Uuid::new_v5(&INSTANCE_ID_NAMESPACE, key.as_bytes()).to_string()
}

/// A random UUIDv4 (tests and `once`, which have no stable identity to keep).
pub fn random_instance_id() -> String {
    uuid::Uuid::new_v4().to_string()
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
        assert_eq!(&a[14..15], "5");
        // RFC 9562 variant bits.
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "{a}");
    }
}
