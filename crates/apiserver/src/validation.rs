//! Name, label and annotation validation with Kubernetes' messages. Pure.

use crate::api_error::Cause;
use crate::registry::NameRule;
use serde_json::Value;

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

/// Total size limit of all annotations of an object.
pub const ANNOTATIONS_MAX_BYTES: usize = 256 * 1024;

fn is_alnum_lower(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// Is `s` an RFC 1123 label (namespaces, services)?
pub fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| is_alnum_lower(c) || c == '-')
        && s.starts_with(is_alnum_lower)
        && s.ends_with(is_alnum_lower)
}

/// Is `s` an RFC 1123 subdomain (most object names)?
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

/// Errors of a name for the given rule (empty when valid).
pub fn name_errors(name: &str, rule: NameRule) -> Vec<String> {
    match rule {
        NameRule::Label if !is_dns1123_label(name) => {
            if name.len() > 63 {
                vec!["must be no more than 63 characters".into()]
            } else {
                vec![DNS1123_LABEL_MSG.into()]
            }
        }
        NameRule::Subdomain if !is_dns1123_subdomain(name) => {
            if name.len() > 253 {
                vec!["must be no more than 253 characters".into()]
            } else {
                vec![DNS1123_SUBDOMAIN_MSG.into()]
            }
        }
        NameRule::PathSegment if name == "." || name == ".." => {
            vec![format!("may not be '{name}'")]
        }
        NameRule::PathSegment if name.contains('/') || name.contains('%') => {
            vec![format!(
                "may not contain '{}'",
                if name.contains('/') { "/" } else { "%" }
            )]
        }
        _ => vec![],
    }
}

fn is_qualified_name_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// Errors of a label or annotation key (`prefix/name`).
pub fn label_key_errors(key: &str) -> Vec<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let mut errors = Vec::new();
    if let Some(p) = prefix
        && !is_dns1123_subdomain(p)
    {
        errors.push(format!("prefix part {DNS1123_SUBDOMAIN_MSG}"));
    }
    if name.is_empty() {
        errors.push("name part must be non-empty".into());
    } else if name.len() > 63 {
        errors.push("name part must be no more than 63 characters".into());
    } else if !is_qualified_name_part(name) {
        errors.push(QUALIFIED_NAME_MSG.into());
    }
    errors
}

/// Errors of a label value.
pub fn label_value_errors(value: &str) -> Vec<String> {
    if value.is_empty() {
        return vec![];
    }
    let mut errors = Vec::new();
    if value.len() > 63 {
        errors.push("must be no more than 63 characters".into());
    }
    if !is_qualified_name_part(&value[..value.len().min(63)]) && value.len() <= 63 {
        errors.push(LABEL_VALUE_MSG.into());
    }
    errors
}

/// Validates the metadata every object shares: name (for `rule`), labels, annotations,
/// finalizers. `name` is the final name (after generateName).
pub fn metadata_causes(object: &Value, rule: NameRule) -> Vec<Cause> {
    let mut causes = Vec::new();
    let meta = object.get("metadata");
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if name.is_empty() {
        causes.push(Cause::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else {
        for e in name_errors(name, rule) {
            causes.push(Cause::invalid("metadata.name", name, e));
        }
    }
    match meta.and_then(|m| m.get("labels")) {
        None | Some(Value::Null) => {}
        Some(Value::Object(labels)) => {
            for (k, v) in labels {
                for e in label_key_errors(k) {
                    causes.push(Cause::invalid("metadata.labels", k, e));
                }
                match v.as_str() {
                    Some(s) => {
                        for e in label_value_errors(s) {
                            causes.push(Cause::invalid(format!("metadata.labels.{k}"), s, e));
                        }
                    }
                    None => causes.push(Cause::invalid(
                        format!("metadata.labels.{k}"),
                        &v.to_string(),
                        "must be a string",
                    )),
                }
            }
        }
        Some(other) => causes.push(Cause::invalid(
            "metadata.labels",
            &other.to_string(),
            "must be a map of strings",
        )),
    }
    match meta.and_then(|m| m.get("annotations")) {
        None | Some(Value::Null) => {}
        Some(Value::Object(annotations)) => {
            let mut total = 0;
            for (k, v) in annotations {
                for e in label_key_errors(k) {
                    causes.push(Cause::invalid("metadata.annotations", k, e));
                }
                match v.as_str() {
                    Some(s) => total += k.len() + s.len(),
                    None => causes.push(Cause::invalid(
                        format!("metadata.annotations.{k}"),
                        &v.to_string(),
                        "must be a string",
                    )),
                }
            }
            if total > ANNOTATIONS_MAX_BYTES {
                causes.push(Cause::too_long(
                    "metadata.annotations",
                    format!("may not be more than {ANNOTATIONS_MAX_BYTES} bytes"),
                ));
            }
        }
        Some(other) => causes.push(Cause::invalid(
            "metadata.annotations",
            &other.to_string(),
            "must be a map of strings",
        )),
    }
    if let Some(finalizers) = meta.and_then(|m| m.get("finalizers")) {
        match finalizers.as_array() {
            Some(list) => {
                for f in list {
                    let s = f.as_str().unwrap_or("");
                    if s.is_empty() || !label_key_errors(s).is_empty() {
                        causes.push(Cause::invalid(
                            "metadata.finalizers",
                            s,
                            "name is neither a standard finalizer name nor is it fully qualified",
                        ));
                    }
                }
            }
            None => causes.push(Cause::invalid(
                "metadata.finalizers",
                &finalizers.to_string(),
                "must be a list of strings",
            )),
        }
    }
    causes
}

/// Errors of ConfigMap / Secret data keys (`[-._a-zA-Z0-9]+`, at most 253 characters), and
/// a ConfigMap key in both `data` and `binaryData` (only ConfigMaps have `binaryData`).
/// kube-apiserver checks each `data` key for both before it looks at `binaryData`, so its
/// causes come in that order.
pub fn data_key_causes(object: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let binary = object.get("binaryData").and_then(Value::as_object);
    for field in ["data", "binaryData", "stringData"] {
        let Some(map) = object.get(field).and_then(Value::as_object) else {
            continue;
        };
        for key in map.keys() {
            let ok = !key.is_empty()
                && key.len() <= 253
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
            if !ok {
                causes.push(Cause::invalid(
                    format!("{field}[{key}]"),
                    key,
                    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
                ));
            }
            if field == "data" && binary.is_some_and(|b| b.contains_key(key)) {
                causes.push(Cause::invalid(
                    format!("data[{key}]"),
                    key,
                    "duplicate of key present in binaryData",
                ));
            }
        }
    }
    causes
}

/// The most data a ConfigMap (`data` + `binaryData`) or a Secret (`data`) may hold, in
/// bytes (decoded for the base64 fields): Kubernetes' `MaxSecretSize`, 1 MiB.
pub const MAX_DATA_BYTES: usize = 1024 * 1024;

/// The largest write request etcd takes by default (`--max-request-bytes`, 1.5 MiB);
/// kube-apiserver answers a bigger one with etcd's 500 `etcdserver: request is too large`.
pub const ETCD_MAX_REQUEST_BYTES: usize = 1536 * 1024;

/// How many bytes a base64 value stands for (line breaks skipped, as Go's decoder does);
/// only for values [`go_base64_error`] accepts.
fn decoded_len(s: &str) -> usize {
    let symbols = s.bytes().filter(|c| *c != b'\n' && *c != b'\r').count();
    let padding = s
        .bytes()
        .rev()
        .filter(|c| *c != b'\n' && *c != b'\r')
        .take_while(|c| *c == b'=')
        .count();
    (symbols / 4 * 3).saturating_sub(padding)
}

/// The size limit of a ConfigMap's `data` + `binaryData` or a Secret's `data` (422 `Too
/// long: may not be more than 1048576 bytes`; kube-apiserver names the ConfigMap's field
/// `[]`, the whole object, and the Secret's `data`). Runs after the base64 check.
pub fn data_size_cause(object: &Value, secret: bool) -> Option<Cause> {
    let data = object.get("data").and_then(Value::as_object);
    let binary = object.get("binaryData").and_then(Value::as_object);
    let mut total = 0usize;
    for value in data.into_iter().flat_map(|d| d.values()) {
        let s = value.as_str().unwrap_or("");
        total += if secret { decoded_len(s) } else { s.len() };
    }
    if !secret {
        for value in binary.into_iter().flat_map(|b| b.values()) {
            total += decoded_len(value.as_str().unwrap_or(""));
        }
    }
    (total > MAX_DATA_BYTES).then(|| {
        Cause::too_long(
            if secret { "data" } else { "[]" },
            format!("may not be more than {MAX_DATA_BYTES} bytes"),
        )
    })
}

/// At least how many bytes kube-apiserver would send etcd for `object`: the bytes of every
/// string and map key (Secret `data` and ConfigMap `binaryData` decoded, as its protobuf
/// stores them). Any encoding of the object holds at least these, so an object above
/// [`ETCD_MAX_REQUEST_BYTES`] by this count is one etcd refuses; field names, numbers and
/// JSON punctuation are left out, so an object just below may still be one it refuses.
pub fn stored_size_lower_bound(object: &Value) -> usize {
    fn walk(v: &Value) -> usize {
        match v {
            Value::String(s) => s.len(),
            Value::Array(a) => a.iter().map(walk).sum(),
            Value::Object(m) => m.iter().map(|(k, v)| k.len() + walk(v)).sum(),
            _ => 0,
        }
    }
    let Value::Object(m) = object else {
        return walk(object);
    };
    let base64_field = match (
        m.get("apiVersion").and_then(Value::as_str),
        m.get("kind").and_then(Value::as_str),
    ) {
        (Some("v1"), Some("Secret")) => Some("data"),
        (Some("v1"), Some("ConfigMap")) => Some("binaryData"),
        _ => None,
    };
    m.iter()
        .map(|(field, value)| match (value, base64_field) {
            (Value::Object(data), Some(f)) if f == field => data
                .iter()
                .map(|(k, v)| k.len() + decoded_len(v.as_str().unwrap_or("")))
                .sum::<usize>(),
            _ => walk(value),
        })
        .sum()
}

/// The keys a typed Secret must have (kube-apiserver's `ValidateSecret`): `tls.crt` and
/// `tls.key` for `kubernetes.io/tls`, `ssh-privatekey` for `kubernetes.io/ssh-auth`, the
/// config for the two docker types, `username` or `password` for `kubernetes.io/basic-auth`,
/// the ServiceAccount annotation for `kubernetes.io/service-account-token`.
pub fn secret_type_causes(secret: &Value) -> Vec<Cause> {
    let has = |key: &str| secret.get("data").and_then(|d| d.get(key)).is_some();
    let required = |field: String| Cause {
        reason: "FieldValueRequired",
        message: "Required value".into(),
        field,
    };
    let data_keys: &[&str] = match secret.get("type").and_then(Value::as_str) {
        Some("kubernetes.io/tls") => &["tls.crt", "tls.key"],
        Some("kubernetes.io/ssh-auth") => &["ssh-privatekey"],
        Some("kubernetes.io/dockerconfigjson") => &[".dockerconfigjson"],
        Some("kubernetes.io/dockercfg") => &[".dockercfg"],
        Some("kubernetes.io/basic-auth") if has("username") || has("password") => &[],
        Some("kubernetes.io/basic-auth") => &["username", "password"],
        Some("kubernetes.io/service-account-token") => {
            let named = secret
                .pointer("/metadata/annotations")
                .and_then(|a| a.get("kubernetes.io/service-account.name"))
                .is_some();
            return if named {
                Vec::new()
            } else {
                vec![required(
                    "metadata.annotations[kubernetes.io/service-account.name]".into(),
                )]
            };
        }
        _ => &[],
    };
    data_keys
        .iter()
        .filter(|key| !has(key))
        .map(|key| required(format!("data[{key}]")))
        .collect()
}

/// Why a `data` (Secrets) / `binaryData` (ConfigMaps) value cannot be decoded, as Go's
/// JSON decoder says it (kube-apiserver decodes these `[]byte` fields with it): `illegal
/// base64 data at input byte N`. `None` when every value decodes.
pub fn undecodable_base64(object: &Value, secret: bool) -> Option<String> {
    let field = if secret { "data" } else { "binaryData" };
    let map = object.get(field).and_then(Value::as_object)?;
    for (key, value) in map {
        match value {
            Value::String(s) => {
                if let Some(offset) = go_base64_error(s.as_bytes()) {
                    return Some(format!("illegal base64 data at input byte {offset}"));
                }
            }
            Value::Null => {}
            other => {
                let kind = match other {
                    Value::Bool(_) => "bool",
                    Value::Number(_) => "number",
                    Value::Array(_) => "array",
                    _ => "object",
                };
                return Some(format!(
                    "json: cannot unmarshal {kind} into Go struct field {}.{field} of type []uint8 (key {key:?})",
                    if secret { "Secret" } else { "ConfigMap" }
                ));
            }
        }
    }
    None
}

/// The offset Go's `base64.StdEncoding.Decode` reports for a corrupt input (`None` if the
/// input decodes). Line breaks are skipped, padding is required, trailing data after
/// padding is an error at its position.
pub fn go_base64_error(src: &[u8]) -> Option<usize> {
    let valid = |c: u8| c.is_ascii_alphanumeric() || c == b'+' || c == b'/';
    let newline = |c: u8| c == b'\n' || c == b'\r';
    let mut si = 0;
    loop {
        // One quantum of up to four symbols.
        let mut j = 0;
        while j < 4 {
            if si == src.len() {
                return match j {
                    0 => None,
                    // Padding is required: a short final quantum is corrupt.
                    _ => Some(si - j),
                };
            }
            let c = src[si];
            si += 1;
            if valid(c) {
                j += 1;
                continue;
            }
            if newline(c) {
                continue;
            }
            if c != b'=' {
                return Some(si - 1);
            }
            // Padding ends the input.
            match j {
                0 | 1 => return Some(si - 1),
                2 => {
                    while si < src.len() && newline(src[si]) {
                        si += 1;
                    }
                    if si == src.len() {
                        return Some(src.len());
                    }
                    if src[si] != b'=' {
                        return Some(si - 1);
                    }
                    si += 1;
                }
                _ => {}
            }
            while si < src.len() && newline(src[si]) {
                si += 1;
            }
            return (si < src.len()).then_some(si);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn golden_names() {
        for ok in ["a", "a-b", "a.b", "0", "abc-123.example.com"] {
            assert!(is_dns1123_subdomain(ok), "{ok}");
        }
        for bad in ["", "A", "a_b", "-a", "a-", "a..b", ".a", &"a".repeat(254)] {
            assert!(!is_dns1123_subdomain(bad), "{bad}");
        }
        assert!(is_dns1123_label("kube-system"));
        assert!(!is_dns1123_label("a.b"));
        assert!(!is_dns1123_label(&"a".repeat(64)));
        assert!(name_errors("system:controller:x", NameRule::PathSegment).is_empty());
        assert!(!name_errors("a/b", NameRule::PathSegment).is_empty());
    }

    #[test]
    fn golden_labels() {
        assert!(label_key_errors("app").is_empty());
        assert!(label_key_errors("app.kubernetes.io/name").is_empty());
        assert!(!label_key_errors("Bad Key").is_empty());
        assert!(!label_key_errors("a/b/c").is_empty());
        assert!(!label_key_errors("example.com/").is_empty());
        assert!(label_value_errors("").is_empty());
        assert!(label_value_errors("v1.2_3-x").is_empty());
        assert!(!label_value_errors("has space").is_empty());
        assert!(!label_value_errors(&"v".repeat(64)).is_empty());
    }

    #[test]
    fn metadata_causes_name_fields() {
        let causes = metadata_causes(
            &serde_json::json!({"metadata": {"name": "Bad_Name", "labels": {"ok": "no way"}}}),
            NameRule::Subdomain,
        );
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, vec!["metadata.name", "metadata.labels.ok"]);
        let missing = metadata_causes(&serde_json::json!({"metadata": {}}), NameRule::Subdomain);
        assert_eq!(missing[0].reason, "FieldValueRequired");
    }

    #[test]
    fn data_keys_and_base64() {
        let cm = serde_json::json!({"data": {"ok.key_1-x": "v", "bad key": "v"}});
        let causes = data_key_causes(&cm);
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "data[bad key]");
        let secret = serde_json::json!({"data": {"a": "aGk=", "b": "not base64!"}});
        assert_eq!(
            undecodable_base64(&secret, true),
            Some("illegal base64 data at input byte 3".to_string())
        );
        assert_eq!(
            undecodable_base64(&serde_json::json!({"data": {"a": "aGk="}}), true),
            None
        );
    }

    #[test]
    fn typed_secrets_need_their_keys() {
        let fields = |v: serde_json::Value| -> Vec<String> {
            secret_type_causes(&v)
                .into_iter()
                .map(|c| c.field)
                .collect()
        };
        assert_eq!(
            fields(serde_json::json!({"type": "kubernetes.io/tls", "data": {"tls.crt": ""}})),
            ["data[tls.key]"]
        );
        assert_eq!(
            fields(serde_json::json!({"type": "kubernetes.io/basic-auth"})),
            ["data[username]", "data[password]"]
        );
        assert!(fields(serde_json::json!({"type": "kubernetes.io/basic-auth", "data": {"password": "cA=="}})).is_empty());
        assert!(fields(serde_json::json!({"type": "Opaque"})).is_empty());
    }

    #[test]
    fn base64_errors_name_the_byte_as_go_does() {
        // Offsets as Go's encoding/base64 (StdEncoding) reports them.
        for (input, want) in [
            ("", None),
            ("aGk=", None),
            ("aGVsbG8=", None),
            ("aGk=\n", None),
            ("aG\nk=", None),
            ("not base64!", Some(3)),
            ("abc", Some(0)),
            ("abcde", Some(4)),
            ("a===", Some(1)),
            ("ab=", Some(3)),
            ("ab=x", Some(2)),
            ("aGk=aGk=", Some(4)),
            ("aGk*", Some(3)),
        ] {
            assert_eq!(go_base64_error(input.as_bytes()), want, "{input:?}");
        }
    }

    proptest! {
        #[test]
        fn encoded_bytes_always_decode(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            use base64::Engine as _;
            let encoded = base64::engine::general_purpose::STANDARD.encode(&bytes);
            prop_assert_eq!(go_base64_error(encoded.as_bytes()), None);
        }
        #[test]
        fn subdomain_accepts_generated_valid_names(s in "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?){0,3}") {
            prop_assert!(is_dns1123_subdomain(&s));
        }
        #[test]
        fn uppercase_is_never_a_subdomain(s in "[a-z]{0,5}[A-Z][a-z]{0,5}") {
            prop_assert!(!is_dns1123_subdomain(&s));
        }
    }
}
