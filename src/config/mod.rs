//! The foundation every component's config stands on: source spans, value types
//! (durations, sizes, secrets), errors with file:line:key, capped file reads, include
//! globs, and the keys every probe shares. It imports nothing above it: each component
//! owns its own section type (`[rum]` in `rum/`, `[[slo]]` in `slo/`, a kind's keys in its
//! file), and `assembly` composes them into the daemon file.

mod error;
mod file;
mod probe_keys;
mod values;

pub use error::{ConfigError, Source, line_col};
pub use file::{
    ConfigHash, MAX_BODY_FILE, MAX_CONFIG_FILE, ProbeTable, SplitFile, expand_include, read_source, split_file,
};
pub use probe_keys::{
    COMMON_KEYS, MAX_PROBE_LABELS, ProbeCommon, check_labels, check_name, probe_key_error, split_probe,
    valid_label_name,
};
pub use values::{
    Dur, Secret, SecretText, Size, Spanned, ThresholdSchema, as_written, fmt_seconds, parse_duration, parse_size,
    read_capped,
};
