//! The registry of probe kinds and the reading of one `[[probe]]` table by its kind.

use std::sync::Arc;

use crate::config::{self, ConfigError, ProbeTable, Source};
use crate::probe::{Kind, ProbeConfig, assistant, browser, dns, grpc, http, icmp, tcp, vector, websocket, workflow};

/// Every probe kind; the only list of them.
pub const KINDS: &[Kind] = &[
    http::KIND,
    assistant::KIND,
    websocket::KIND,
    browser::KIND,
    vector::KIND,
    workflow::KIND,
    tcp::KIND,
    dns::KIND,
    grpc::KIND,
    icmp::KIND,
];

pub fn kind(name: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.name == name)
}

/// One `[[probe]]` table: the shared keys, then the kind's own keys by its settings type.
pub fn read_probe(table: ProbeTable<'_>, source: &Arc<Source>) -> Result<ProbeConfig, ConfigError> {
    use serde::de::IntoDeserializer as _;
    let (common, own) = config::split_probe(table, source)?;
    let Some(kind) = kind(common.kind.get_ref()) else {
        let known: Vec<&str> = KINDS.iter().map(|k| k.name).collect();
        return Err(source.error_at(
            common.kind.span(),
            Some("probe.kind"),
            format!(
                "unknown probe kind {:?}; known kinds: {}",
                common.kind.get_ref(),
                known.join(", ")
            ),
        ));
    };
    let settings = (kind.settings)(own.into_deserializer())
        .map_err(|e| config::probe_key_error(source, &e, common.name.span().start, Some(kind.name)))?;
    ProbeConfig::new(common, kind, settings.into(), source.clone())
}
