//! JSON answers from targets, parsed within a cap: a tree of values costs ~32–64 bytes a
//! value, so 16 MiB of `0,` would be ~1 GB. The values are counted first (a byte scan,
//! no allocation) and a large parse leaves the async runtime.

use serde_json::Value;

use crate::outcome::{ErrorType, ProbeError};

/// Parses `bytes` as JSON when it holds at most `max_values` values; `what` names it in
/// errors ("the answer", "the status body"). Not JSON, or too many values: `error`.
pub async fn parse_capped<B: AsRef<[u8]> + Send + 'static>(
    bytes: B,
    max_values: usize,
    what: &str,
    error: ErrorType,
) -> Result<Value, ProbeError> {
    let values = json_values(bytes.as_ref());
    if values > max_values {
        return Err(ProbeError::new(
            error,
            format!("{what} holds {values} JSON values; at most {max_values} are read"),
        ));
    }
    let what_owned = what.to_string();
    let parse = move || {
        serde_json::from_slice(bytes.as_ref())
            .map_err(|e| ProbeError::new(error, format!("{what_owned} is not JSON: {e}")))
    };
    if values < 4096 {
        return parse();
    }
    tokio::task::spawn_blocking(parse)
        .await
        .map_err(|e| ProbeError::new(ErrorType::Internal, format!("parsing {what}: {e}")))?
}

/// How many JSON values `bytes` holds, at least: one, plus one per `,` outside strings and
/// one per opened array or object. Linear, no allocation.
pub fn json_values(bytes: &[u8]) -> usize {
    let (mut n, mut in_string, mut escaped) = (1usize, false, false);
    for &b in bytes {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b',' | b'[' | b'{' => n += 1,
            _ => {}
        }
    }
    n
}

/// A JSON value as the text a condition or variable compares: a string's contents, any
/// other scalar as written (`3`, `true`), arrays and objects as compact JSON.
pub fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn json_values_are_counted_outside_strings() {
        assert_eq!(super::json_values(br#"{"a":[1,2,3],"b":"x,[{\",y"}"#), 6);
        assert_eq!(super::json_values(&b"0,".repeat(1000)), 1001);
    }
}
