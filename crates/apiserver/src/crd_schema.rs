//! Validation of custom resources against their CRD's structural `openAPIV3Schema`, with
//! kube-apiserver's wording (kube-openapi's messages, turned into field errors as the
//! apiextensions server does). Pure: a value and a schema in, the causes of a 422 out.
//!
//! Runs after pruning, so fields the schema does not declare are already gone (or refused
//! under `fieldValidation=Strict`). CEL rules (`x-kubernetes-validations`) are not evaluated.

use serde_json::{Map, Value};

use crate::api_error::Cause;

/// The causes of a whole custom resource against its version's root schema.
/// `apiVersion`, `kind` and `metadata` are the API server's own business (checked elsewhere).
/// `old` is the stored object of an update: as kube-apiserver's validation ratcheting,
/// a field equal to its old value (same path; list items are not correlated) is not
/// refused, so objects stored before their CRD tightened can still be updated elsewhere.
pub(crate) fn validate_object(object: &Value, old: Option<&Value>, schema: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let Some(map) = object.as_object() else {
        return causes;
    };
    validate_properties(map, old.and_then(Value::as_object), schema, "", &mut causes);
    causes
}

/// Removes object fields whose value is null where their schema is not `nullable`, as
/// kube-apiserver does before validating (`{"flag": null}` is stored as `{}`).
pub(crate) fn drop_disallowed_nulls(value: &mut Value, schema: &Value) {
    match value {
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            map.retain(|key, child| {
                let Some(sub) = properties.and_then(|p| p.get(key)).or(additional) else {
                    return true;
                };
                if child.is_null() {
                    return flag(sub, "nullable");
                }
                drop_disallowed_nulls(child, sub);
                true
            });
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items {
                    drop_disallowed_nulls(item, item_schema);
                }
            }
        }
        _ => {}
    }
}

/// `parent.child`, or `child` at the root.
fn child_path(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_string()
    } else {
        format!("{parent}.{child}")
    }
}

/// `parent[index]`, as Kubernetes' field paths name list items.
fn index_path(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

fn flag(schema: &Value, key: &str) -> bool {
    schema.get(key).and_then(Value::as_bool) == Some(true)
}

/// The JSON type name kube-openapi reports for a value.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_integer(value: &Value) -> bool {
    match value {
        Value::Number(n) if n.is_f64() => n.as_f64().is_some_and(|f| f.fract() == 0.0),
        Value::Number(_) => true,
        _ => false,
    }
}

/// Go's `%v` of a float64: shortest digits, exponent form below 1e-4 or from 1e+06 on.
pub(crate) fn go_float(f: f64) -> String {
    if f == 0.0 {
        return "0".into();
    }
    if !f.is_finite() {
        return if f.is_nan() {
            "NaN".into()
        } else if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let exponent = f.abs().log10().floor() as i32;
    // log10 can be off by one at exact powers; Rust's `{:e}` gives the true exponent.
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(exponent);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        format!("{f}")
    }
}

/// A value as Go's field errors print it (`Invalid value: X`): numbers and booleans bare,
/// strings quoted, null as `"null"`, objects and lists as Go's `%#v` of them.
fn go_value(value: &Value) -> String {
    match value {
        Value::Null => "\"null\"".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) if !n.is_f64() => i.to_string(),
            (_, Some(f)) => go_float(f),
            _ => n.to_string(),
        },
        Value::String(s) => go_quote(s),
        Value::Array(items) => format!(
            "[]interface {{}}{{{}}}",
            items.iter().map(go_sharp).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => go_map(map),
    }
}

/// Go's `%#v` of a decoded JSON value inside a composite.
fn go_sharp(value: &Value) -> String {
    match value {
        Value::Null => "interface {}(nil)".into(),
        Value::Number(n) if !n.is_f64() => n.to_string(),
        Value::Number(n) => n.as_f64().map(go_float).unwrap_or_default(),
        other => go_value(other),
    }
}

fn go_map(map: &Map<String, Value>) -> String {
    // Go prints map keys sorted.
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    let inner: Vec<String> = keys
        .into_iter()
        .map(|k| format!("{}:{}", go_quote(k), go_sharp(&map[k])))
        .collect();
    format!("map[string]interface {{}}{{{}}}", inner.join(", "))
}

/// Go's `%q`.
fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn invalid(path: &str, value: &Value, detail: String) -> Cause {
    Cause {
        reason: "FieldValueInvalid",
        message: format!("Invalid value: {}: {detail}", go_value(value)),
        field: path.to_string(),
    }
}

fn type_invalid(path: &str, value: &Value, expected: &str) -> Cause {
    Cause {
        reason: "FieldValueTypeInvalid",
        message: format!(
            "Invalid value: \"{actual}\": {path} in body must be of type {expected}: \"{actual}\"",
            actual = type_name(value)
        ),
        field: path.to_string(),
    }
}

fn number(value: &Value) -> Option<f64> {
    value.as_f64()
}

/// Checks one value against its schema, adding what is wrong to `causes`.
fn validate_value(
    value: &Value,
    old: Option<&Value>,
    schema: &Value,
    path: &str,
    causes: &mut Vec<Cause>,
) {
    if old == Some(value) {
        return;
    }
    if value.is_null() {
        if !flag(schema, "nullable") {
            let expected = schema.get("type").and_then(Value::as_str).unwrap_or("");
            if flag(schema, "x-kubernetes-int-or-string") {
                causes.push(type_invalid(path, value, "integer,string"));
            } else if !expected.is_empty() {
                causes.push(type_invalid(path, value, expected));
            }
        }
        return;
    }
    if flag(schema, "x-kubernetes-int-or-string") {
        if !(is_integer(value) || value.is_string()) {
            causes.push(type_invalid(path, value, "integer,string"));
            return;
        }
    } else if let Some(expected) = schema.get("type").and_then(Value::as_str) {
        let fits = match expected {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => is_integer(value),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            _ => true,
        };
        if !fits {
            causes.push(type_invalid(path, value, expected));
            if expected == "integer" && value.is_number() {
                // kube-openapi's format check reports a fractional number a second time,
                // under the field `<nil>`; kube-apiserver passes that on verbatim.
                causes.push(integer_format_cause(schema, path));
            }
            return;
        }
        if expected == "integer"
            && schema.get("format").and_then(Value::as_str) == Some("int32")
            && value.as_i64().is_none_or(|i| i32::try_from(i).is_err())
        {
            causes.push(integer_format_cause(schema, path));
        }
    }
    match value {
        Value::String(s) => validate_string(s, value, schema, path, causes),
        Value::Number(_) => validate_number(value, schema, path, causes),
        Value::Array(items) => validate_array(items, schema, path, causes),
        Value::Object(map) => {
            validate_map(map, old.and_then(Value::as_object), schema, path, causes)
        }
        _ => {}
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.iter().any(|a| json_equal(a, value))
    {
        let values: Vec<String> = allowed
            .iter()
            .map(|a| match a {
                Value::String(s) => go_quote(s),
                other => go_quote(&other.to_string()),
            })
            .collect();
        causes.push(Cause {
            reason: "FieldValueNotSupported",
            message: format!(
                "Unsupported value: {}: supported values: {}",
                go_value(value),
                values.join(", ")
            ),
            field: path.to_string(),
        });
    }
}

/// kube-openapi's complaint about a number its integer format cannot hold, passed on by
/// kube-apiserver verbatim under the field `<nil>`.
fn integer_format_cause(schema: &Value, path: &str) -> Cause {
    let format = match schema.get("format").and_then(Value::as_str) {
        Some(format) => format!("with format {format}"),
        None => "(default format)".into(),
    };
    Cause {
        reason: "FieldValueInvalid",
        message: format!(
            "Invalid value: \"\": Checked value must be of type integer {format} in {path}"
        ),
        field: "<nil>".into(),
    }
}

/// Equality as JSON numbers compare (1 and 1.0 are the same value).
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn validate_string(s: &str, value: &Value, schema: &Value, path: &str, causes: &mut Vec<Cause>) {
    // kube-openapi reports only the first of maxLength, minLength and pattern that fails.
    let length = s.chars().count() as u64;
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && length > max
    {
        causes.push(Cause {
            reason: "FieldValueTooLong",
            message: format!("Too long: may not be more than {max} bytes"),
            field: path.to_string(),
        });
    } else if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && length < min
    {
        causes.push(invalid(
            path,
            value,
            format!("{path} in body should be at least {min} chars long"),
        ));
    } else if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
        && matches_pattern(pattern, s) == Some(false)
    {
        causes.push(invalid(
            path,
            value,
            format!("{path} in body should match '{pattern}'"),
        ));
    }
    if let Some(format) = schema.get("format").and_then(Value::as_str)
        && !format_holds(format, s)
    {
        causes.push(type_invalid_format(path, value, format));
    }
}

/// Whether `s` matches `pattern` (`None` when the pattern does not compile). Compiled
/// patterns are kept, since every item of a long list is checked against the same one.
fn matches_pattern(pattern: &str, s: &str) -> Option<bool> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static COMPILED: OnceLock<Mutex<HashMap<String, Option<regex::Regex>>>> = OnceLock::new();
    let cache = COMPILED.get_or_init(|| Mutex::new(HashMap::new()));
    let mut compiled = cache
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if compiled.len() > 1024 {
        // Bounded: schemas come and go with their CRDs.
        compiled.clear();
    }
    compiled
        .entry(pattern.to_string())
        .or_insert_with(|| regex::Regex::new(pattern).ok())
        .as_ref()
        .map(|re| re.is_match(s))
}

fn type_invalid_format(path: &str, value: &Value, format: &str) -> Cause {
    Cause {
        reason: "FieldValueTypeInvalid",
        message: format!(
            "Invalid value: {}: {path} in body must be of type {format}: {}",
            go_value(value),
            go_value(value)
        ),
        field: path.to_string(),
    }
}

/// The string formats kube-apiserver checks that are cheap to check; others pass.
fn format_holds(format: &str, s: &str) -> bool {
    let hex = |part: &str, n: usize| part.len() == n && part.chars().all(|c| c.is_ascii_hexdigit());
    match format {
        "uuid" => {
            let parts: Vec<&str> = s.split('-').collect();
            parts.len() == 5
                && hex(parts[0], 8)
                && hex(parts[1], 4)
                && hex(parts[2], 4)
                && hex(parts[3], 4)
                && hex(parts[4], 12)
        }
        "byte" => {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.decode(s).is_ok()
        }
        "ipv4" => s.parse::<std::net::Ipv4Addr>().is_ok(),
        "ipv6" => s.parse::<std::net::Ipv6Addr>().is_ok(),
        "date-time" | "datetime" => {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok()
        }
        "date" => {
            time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")).is_ok()
        }
        "hostname" => is_hostname(s),
        "email" => is_email(s),
        _ => true,
    }
}

/// A bound as kube-openapi prints it: an integer bound of an integer value as an integer
/// (`1000000`), otherwise Go's `%v` of the float (`1e+06`).
fn bound_text(bound: f64, value: &Value) -> String {
    let integral_value = value.as_i64().is_some() || value.as_u64().is_some();
    if integral_value && bound.fract() == 0.0 && bound.abs() < 9.2e18 {
        format!("{}", bound as i64)
    } else {
        go_float(bound)
    }
}

/// Dot-separated labels of letters, digits and inner hyphens, 1 to 63 characters each,
/// at most 255 in all (RFC 1123; internationalised names are not special-cased).
fn is_hostname(s: &str) -> bool {
    s.len() <= 255
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
}

/// `local@domain` with both parts present and a hostname-like domain (Go's
/// `mail.ParseAddress` also accepts display names and quoted local parts; those are not).
fn is_email(s: &str) -> bool {
    match s.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !local
                    .chars()
                    .any(|c| c.is_whitespace() || c == '<' || c == '>')
                && is_hostname(domain)
        }
        None => false,
    }
}

fn validate_number(value: &Value, schema: &Value, path: &str, causes: &mut Vec<Cause>) {
    let Some(n) = number(value) else {
        return;
    };
    if let Some(divisor) = schema.get("multipleOf").and_then(Value::as_f64)
        && divisor > 0.0
    {
        let quotient = n / divisor;
        if quotient.fract() != 0.0 {
            causes.push(invalid(
                path,
                value,
                format!(
                    "{path} in body should be a multiple of {}",
                    bound_text(divisor, value)
                ),
            ));
        }
    }
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
        let exclusive = flag(schema, "exclusiveMaximum");
        if (exclusive && n >= max) || (!exclusive && n > max) {
            let relation = if exclusive {
                "less than"
            } else {
                "less than or equal to"
            };
            causes.push(invalid(
                path,
                value,
                format!(
                    "{path} in body should be {relation} {}",
                    bound_text(max, value)
                ),
            ));
        }
    }
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
        let exclusive = flag(schema, "exclusiveMinimum");
        if (exclusive && n <= min) || (!exclusive && n < min) {
            let relation = if exclusive {
                "greater than"
            } else {
                "greater than or equal to"
            };
            causes.push(invalid(
                path,
                value,
                format!(
                    "{path} in body should be {relation} {}",
                    bound_text(min, value)
                ),
            ));
        }
    }
}

fn validate_array(items: &[Value], schema: &Value, path: &str, causes: &mut Vec<Cause>) {
    let count = items.len() as u64;
    if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
        && count < min
    {
        // kube-openapi reports the count, not the list, as the value.
        causes.push(invalid(
            path,
            &Value::from(count),
            format!("{path} in body should have at least {min} items"),
        ));
    }
    if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
        && count > max
    {
        causes.push(Cause {
            reason: "FieldValueTooMany",
            message: format!("Too many: {count}: must have at most {max} items"),
            field: path.to_string(),
        });
    }
    if let Some(item_schema) = schema.get("items") {
        for (i, item) in items.iter().enumerate() {
            validate_value(item, None, item_schema, &index_path(path, i), causes);
        }
    }
    duplicate_causes(items, schema, path, causes);
}

/// Items of a `set` list equal to an earlier one, and items of a `map` list whose keys an
/// earlier item already has: `Duplicate value` at the later index (for maps, of the keys).
fn duplicate_causes(items: &[Value], schema: &Value, path: &str, causes: &mut Vec<Cause>) {
    let identities: Vec<Value> = match schema.get("x-kubernetes-list-type").and_then(Value::as_str)
    {
        Some("set") => items.to_vec(),
        Some("map") => {
            let keys: Vec<&str> = schema
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|keys| keys.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            items
                .iter()
                .map(|item| {
                    let mut identity = Map::new();
                    for key in &keys {
                        if let Some(v) = item.get(*key) {
                            identity.insert((*key).to_string(), v.clone());
                        }
                    }
                    Value::Object(identity)
                })
                .collect()
        }
        _ => return,
    };
    for (i, identity) in identities.iter().enumerate() {
        if identities[..i]
            .iter()
            .any(|earlier| json_equal_deep(earlier, identity))
        {
            // A set item prints as Go prints the value; a map item's keys as their JSON
            // (keys sorted, as Go's encoder writes a map).
            let shown = match identity {
                Value::Object(keys) => {
                    let sorted: std::collections::BTreeMap<&String, &Value> = keys.iter().collect();
                    serde_json::to_string(&sorted).unwrap_or_default()
                }
                other => go_value(other),
            };
            causes.push(Cause {
                reason: "FieldValueDuplicate",
                message: format!("Duplicate value: {shown}"),
                field: index_path(path, i),
            });
        }
    }
}

/// Deep JSON equality with numbers compared by value.
fn json_equal_deep(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_equal_deep(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal_deep(v, w)))
        }
        _ => json_equal(a, b),
    }
}

fn validate_map(
    map: &Map<String, Value>,
    old: Option<&Map<String, Value>>,
    schema: &Value,
    path: &str,
    causes: &mut Vec<Cause>,
) {
    let count = map.len() as u64;
    if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64)
        && count > max
    {
        causes.push(Cause {
            reason: "FieldValueTooMany",
            message: format!("Too many: {count}: must have at most {max} items"),
            field: path.to_string(),
        });
    }
    if let Some(min) = schema.get("minProperties").and_then(Value::as_u64)
        && count < min
    {
        causes.push(invalid(
            path,
            &Value::from(count),
            format!("{path} in body should have at least {min} properties"),
        ));
    }
    if flag(schema, "x-kubernetes-embedded-resource") {
        for key in ["apiVersion", "kind"] {
            if map
                .get(key)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                causes.push(Cause {
                    reason: "FieldValueRequired",
                    message: "Required value".into(),
                    field: child_path(path, key),
                });
            }
        }
    }
    validate_properties(map, old, schema, path, causes);
}

/// `required`, then each present field against its property schema or
/// `additionalProperties`.
fn validate_properties(
    map: &Map<String, Value>,
    old: Option<&Map<String, Value>>,
    schema: &Value,
    path: &str,
    causes: &mut Vec<Cause>,
) {
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for name in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(name) {
                causes.push(Cause {
                    reason: "FieldValueRequired",
                    message: "Required value".into(),
                    field: child_path(path, name),
                });
            }
        }
    }
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    for key in keys {
        if path.is_empty() && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        let sub = properties.and_then(|p| p.get(key)).or(additional);
        if let Some(sub) = sub {
            let old_value = old.and_then(|o| o.get(key));
            validate_value(&map[key], old_value, sub, &child_path(path, key), causes);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn messages(object: Value, schema: Value) -> Vec<(String, String, String)> {
        validate_object(&object, None, &schema)
            .into_iter()
            .map(|c| (c.reason.to_string(), c.field, c.message))
            .collect()
    }

    fn spec_schema(properties: Value) -> Value {
        json!({"type": "object", "properties": {"spec": {"type": "object", "properties": properties}}})
    }

    fn one(properties: Value, spec: Value) -> (String, String, String) {
        let found = messages(
            json!({"apiVersion": "a/v1", "kind": "K", "metadata": {"name": "n"}, "spec": spec}),
            spec_schema(properties),
        );
        assert_eq!(found.len(), 1, "{found:?}");
        found.into_iter().next().unwrap()
    }

    fn cause(reason: &str, field: &str, message: &str) -> (String, String, String) {
        (reason.into(), field.into(), message.into())
    }

    #[test]
    fn numeric_bounds_are_worded_as_kube_apiserver_words_them() {
        let props = json!({"size": {"type": "integer", "minimum": 1, "maximum": 10},
            "ratio": {"type": "number", "minimum": 0, "exclusiveMinimum": true, "maximum": 1, "exclusiveMaximum": true},
            "step": {"type": "integer", "multipleOf": 5}});
        assert_eq!(
            one(props.clone(), json!({"size": 0})),
            cause(
                "FieldValueInvalid",
                "spec.size",
                "Invalid value: 0: spec.size in body should be greater than or equal to 1"
            )
        );
        assert_eq!(
            one(props.clone(), json!({"size": 11})),
            cause(
                "FieldValueInvalid",
                "spec.size",
                "Invalid value: 11: spec.size in body should be less than or equal to 10"
            )
        );
        assert_eq!(
            one(props.clone(), json!({"ratio": 0})),
            cause(
                "FieldValueInvalid",
                "spec.ratio",
                "Invalid value: 0: spec.ratio in body should be greater than 0"
            )
        );
        assert_eq!(
            one(props.clone(), json!({"ratio": 1})),
            cause(
                "FieldValueInvalid",
                "spec.ratio",
                "Invalid value: 1: spec.ratio in body should be less than 1"
            )
        );
        assert_eq!(
            one(props, json!({"step": 7})),
            cause(
                "FieldValueInvalid",
                "spec.step",
                "Invalid value: 7: spec.step in body should be a multiple of 5"
            )
        );
    }

    #[test]
    fn large_bounds_print_as_integers_for_integers_and_as_go_floats_for_numbers() {
        let props = json!({"big": {"type": "integer", "maximum": 1000000},
            "ratio": {"type": "number", "maximum": 1000000}});
        assert_eq!(
            one(props.clone(), json!({"big": 2000000})).2,
            "Invalid value: 2000000: spec.big in body should be less than or equal to 1000000"
        );
        assert_eq!(
            one(props, json!({"ratio": 2000000.5})).2,
            "Invalid value: 2.0000005e+06: spec.ratio in body should be less than or equal to 1e+06"
        );
    }

    #[test]
    fn unchanged_fields_ratchet_on_updates() {
        let schema = spec_schema(json!({"size": {"type": "integer", "minimum": 1},
            "name": {"type": "string", "minLength": 2},
            "tags": {"type": "array", "items": {"type": "string", "minLength": 2}}}));
        let old =
            json!({"metadata": {"labels": {}}, "spec": {"size": 0, "name": "x", "tags": ["a"]}});
        // Only metadata changed: nothing is refused.
        let relabelled = json!({"metadata": {"labels": {"a": "b"}}, "spec": {"size": 0, "name": "x", "tags": ["a"]}});
        assert!(validate_object(&relabelled, Some(&old), &schema).is_empty());
        // A changed field is validated; unchanged siblings stay ratcheted.
        let renamed = json!({"spec": {"size": 0, "name": "y", "tags": ["a"]}});
        let fields: Vec<String> = validate_object(&renamed, Some(&old), &schema)
            .into_iter()
            .map(|c| c.field)
            .collect();
        assert_eq!(fields, vec!["spec.name"]);
        // List items are not correlated: a changed list is validated whole.
        let retagged = json!({"spec": {"size": 0, "name": "x", "tags": ["a", "bb"]}});
        let fields: Vec<String> = validate_object(&retagged, Some(&old), &schema)
            .into_iter()
            .map(|c| c.field)
            .collect();
        assert_eq!(fields, vec!["spec.tags[0]"]);
        // Without an old object (a create) everything is checked.
        assert_eq!(validate_object(&old, None, &schema).len(), 3);
    }

    #[test]
    fn set_and_map_lists_refuse_duplicates() {
        let props = json!({
            "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
            "parts": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name", "slot"],
                "items": {"type": "object", "properties": {"name": {"type": "string"}, "slot": {"type": "integer"}, "color": {"type": "string"}}}},
            "plain": {"type": "array", "items": {"type": "string"}}
        });
        assert_eq!(
            one(props.clone(), json!({"tags": ["a", "b", "a"]})),
            cause(
                "FieldValueDuplicate",
                "spec.tags[2]",
                "Duplicate value: \"a\""
            )
        );
        assert_eq!(
            one(
                props.clone(),
                json!({"parts": [{"name": "x", "slot": 1, "color": "red"}, {"name": "x", "slot": 2}, {"name": "x", "slot": 1}]})
            ),
            cause(
                "FieldValueDuplicate",
                "spec.parts[2]",
                "Duplicate value: {\"name\":\"x\",\"slot\":1}"
            )
        );
        assert!(messages(json!({"spec": {"plain": ["a", "a"]}}), spec_schema(props)).is_empty());
    }

    #[test]
    fn int32_values_must_fit() {
        let props = json!({"small": {"type": "integer", "format": "int32"}});
        assert_eq!(
            one(props.clone(), json!({"small": 1099511627776u64})),
            cause(
                "FieldValueInvalid",
                "<nil>",
                "Invalid value: \"\": Checked value must be of type integer with format int32 in spec.small"
            )
        );
        assert!(
            messages(
                json!({"spec": {"small": -2147483648i64}}),
                spec_schema(props)
            )
            .is_empty()
        );
    }

    #[test]
    fn types_nulls_and_int_or_string() {
        let props = json!({"size": {"type": "integer"}, "note": {"type": "string", "nullable": true},
            "flag": {"type": "boolean"}, "port": {"x-kubernetes-int-or-string": true}});
        assert_eq!(
            one(props.clone(), json!({"size": "three"})),
            cause(
                "FieldValueTypeInvalid",
                "spec.size",
                "Invalid value: \"string\": spec.size in body must be of type integer: \"string\""
            )
        );
        assert_eq!(
            messages(json!({"spec": {"size": 1.5}}), spec_schema(props.clone())),
            vec![
                cause(
                    "FieldValueTypeInvalid",
                    "spec.size",
                    "Invalid value: \"number\": spec.size in body must be of type integer: \"number\""
                ),
                cause(
                    "FieldValueInvalid",
                    "<nil>",
                    "Invalid value: \"\": Checked value must be of type integer (default format) in spec.size"
                )
            ]
        );
        assert_eq!(
            one(props.clone(), json!({"flag": null})),
            cause(
                "FieldValueTypeInvalid",
                "spec.flag",
                "Invalid value: \"null\": spec.flag in body must be of type boolean: \"null\""
            )
        );
        assert!(
            messages(
                json!({"spec": {"note": null, "port": "http", "size": 2.0}}),
                spec_schema(props.clone())
            )
            .is_empty()
        );
        assert!(messages(json!({"spec": {"port": 8080}}), spec_schema(props.clone())).is_empty());
        assert_eq!(one(props, json!({"port": true})).0, "FieldValueTypeInvalid");
    }

    #[test]
    fn strings_enums_lists_and_maps() {
        let props = json!({
            "name": {"type": "string", "minLength": 2, "maxLength": 5, "pattern": "^[a-z]+$"},
            "mode": {"type": "string", "enum": ["fast", "slow"]},
            "tags": {"type": "array", "minItems": 1, "maxItems": 2, "items": {"type": "string"}},
            "labels": {"type": "object", "minProperties": 1, "maxProperties": 2, "additionalProperties": {"type": "string"}},
            "uid": {"type": "string", "format": "uuid"}
        });
        assert_eq!(
            one(props.clone(), json!({"name": "a"})),
            cause(
                "FieldValueInvalid",
                "spec.name",
                "Invalid value: \"a\": spec.name in body should be at least 2 chars long"
            )
        );
        assert_eq!(
            one(props.clone(), json!({"name": "abcdefg"})),
            cause(
                "FieldValueTooLong",
                "spec.name",
                "Too long: may not be more than 5 bytes"
            )
        );
        assert_eq!(
            one(props.clone(), json!({"name": "AB"})),
            cause(
                "FieldValueInvalid",
                "spec.name",
                "Invalid value: \"AB\": spec.name in body should match '^[a-z]+$'"
            )
        );
        // Only the first failing string check is reported (here minLength, not pattern).
        assert_eq!(
            one(props.clone(), json!({"name": "A"})),
            cause(
                "FieldValueInvalid",
                "spec.name",
                "Invalid value: \"A\": spec.name in body should be at least 2 chars long"
            )
        );
        assert_eq!(
            one(props.clone(), json!({"mode": "medium"})),
            cause(
                "FieldValueNotSupported",
                "spec.mode",
                "Unsupported value: \"medium\": supported values: \"fast\", \"slow\""
            )
        );
        assert_eq!(
            one(props.clone(), json!({"tags": ["a", "b", "c"]})),
            cause(
                "FieldValueTooMany",
                "spec.tags",
                "Too many: 3: must have at most 2 items"
            )
        );
        assert_eq!(one(props.clone(), json!({"tags": []})).1, "spec.tags");
        assert_eq!(one(props.clone(), json!({"tags": [1]})).1, "spec.tags[0]");
        assert_eq!(one(props.clone(), json!({"labels": {}})).1, "spec.labels");
        assert_eq!(
            one(props.clone(), json!({"labels": {"a": 1}})).1,
            "spec.labels.a"
        );
        assert_eq!(one(props, json!({"uid": "nope"})).1, "spec.uid");
    }

    #[test]
    fn cheap_formats_are_checked_and_others_pass() {
        for (format, good, bad) in [
            ("uuid", "4b6e4f56-2f0e-4a4c-9a69-1f0e8d7f2b3a", "nope"),
            ("byte", "aGVsbG8=", "!!!"),
            ("ipv4", "10.0.0.1", "300.1.1.1"),
            ("ipv6", "::1", "1::2::3"),
            ("date-time", "2026-11-23T23:59:00Z", "nope"),
            ("date", "2026-11-23", "23/11/2026"),
            ("hostname", "a.example.com", "-bad-"),
            ("email", "a@example.com", "nope"),
        ] {
            let props = json!({"v": {"type": "string", "format": format}});
            assert!(
                messages(json!({"spec": {"v": good}}), spec_schema(props.clone())).is_empty(),
                "{format} {good}"
            );
            assert_eq!(
                one(props, json!({"v": bad})).2,
                format!(
                    "Invalid value: \"{bad}\": spec.v in body must be of type {format}: \"{bad}\""
                )
            );
        }
        let props = json!({"v": {"type": "string", "format": "isbn"}});
        assert!(messages(json!({"spec": {"v": "anything"}}), spec_schema(props)).is_empty());
    }

    #[test]
    fn required_fields_and_embedded_resources() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "required": ["size"],
            "properties": {"size": {"type": "integer"},
                "template": {"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true}}}}});
        assert_eq!(
            messages(json!({"spec": {"template": {"spec": {}}}}), schema.clone()),
            vec![
                cause("FieldValueRequired", "spec.size", "Required value"),
                cause(
                    "FieldValueRequired",
                    "spec.template.apiVersion",
                    "Required value"
                ),
                cause("FieldValueRequired", "spec.template.kind", "Required value"),
            ]
        );
        assert!(
            messages(
                json!({"spec": {"size": 1, "template": {"apiVersion": "v1", "kind": "ConfigMap"}}}),
                schema
            )
            .is_empty()
        );
        // Argo CD's CRDs require `metadata` at the root; it is there, and never validated here.
        let root = json!({"type": "object", "required": ["metadata", "spec"],
            "properties": {"metadata": {"type": "object"}, "spec": {"type": "object"}}});
        assert!(messages(json!({"metadata": {"name": "n"}, "spec": {}}), root.clone()).is_empty());
        assert_eq!(
            messages(json!({"metadata": {"name": "n"}}), root),
            vec![cause("FieldValueRequired", "spec", "Required value")]
        );
    }

    #[test]
    fn go_prints_floats_and_composites_as_kube_apiserver_shows_them() {
        assert_eq!(go_float(1.0), "1");
        assert_eq!(go_float(0.5), "0.5");
        assert_eq!(go_float(100000.0), "100000");
        assert_eq!(go_float(1e6), "1e+06");
        assert_eq!(go_float(0.00001), "1e-05");
        assert_eq!(
            go_value(&json!({"b": [1, "x"], "a": null})),
            "map[string]interface {}{\"a\":interface {}(nil), \"b\":[]interface {}{1, \"x\"}}"
        );
    }

    /// A schema with a value that satisfies it, built together.
    fn schema_and_value() -> impl Strategy<Value = (Value, Value)> {
        let leaf = prop_oneof![
            (-1000i64..1000, 0i64..100, 0i64..100).prop_map(|(low, span, offset)| {
                let high = low + span;
                let value = low + offset.min(span);
                (json!({"type": "integer", "minimum": low, "maximum": high}), json!(value))
            }),
            (0usize..4, 0usize..6).prop_flat_map(|(min, extra)| {
                let max = min + extra;
                proptest::string::string_regex(&format!("[a-z]{{{min},{max}}}"))
                    .unwrap()
                    .prop_map(move |s| {
                        (
                            json!({"type": "string", "minLength": min, "maxLength": max, "pattern": "^[a-z]*$"}),
                            json!(s),
                        )
                    })
            }),
            (1i64..10, -20i64..20).prop_map(|(step, k)| (
                json!({"type": "integer", "multipleOf": step}),
                json!(step * k)
            )),
            any::<bool>().prop_map(|b| (json!({"type": "boolean"}), json!(b))),
            (0.0f64..1.0).prop_map(|f| (
                json!({"type": "number", "minimum": -1, "exclusiveMinimum": true, "maximum": 1, "exclusiveMaximum": true}),
                json!(f)
            )),
            proptest::sample::select(vec!["a", "b", "c"]).prop_map(|s| (
                json!({"type": "string", "enum": ["a", "b", "c"]}),
                json!(s)
            )),
            prop_oneof![
                (0i64..100).prop_map(|i| json!(i)),
                "[a-z]{1,4}".prop_map(|s| json!(s))
            ]
            .prop_map(|v| (json!({"x-kubernetes-int-or-string": true}), v)),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(|pairs| {
                    let mut properties = Map::new();
                    let mut object = Map::new();
                    let mut required = Vec::new();
                    for (i, (schema, value)) in pairs.into_iter().enumerate() {
                        let name = format!("f{i}");
                        properties.insert(name.clone(), schema);
                        object.insert(name.clone(), value);
                        if i % 2 == 0 {
                            required.push(json!(name));
                        }
                    }
                    let count = object.len();
                    (
                        json!({"type": "object", "properties": properties, "required": required,
                            "minProperties": count, "maxProperties": count}),
                        Value::Object(object),
                    )
                }),
                (inner, 0usize..4).prop_map(|((schema, value), n)| (
                    json!({"type": "array", "items": schema, "minItems": n, "maxItems": n}),
                    Value::Array(vec![value; n])
                )),
            ]
        })
    }

    proptest! {
        #[test]
        fn a_value_built_to_satisfy_its_schema_validates((schema, value) in schema_and_value()) {
            let root = json!({"type": "object", "properties": {"spec": schema}});
            let object = json!({"apiVersion": "a/v1", "kind": "K", "metadata": {"name": "n"}, "spec": value});
            let causes = validate_object(&object, None, &root);
            prop_assert!(causes.is_empty(), "{causes:?}");
        }

        #[test]
        fn a_value_below_its_minimum_never_validates(low in -1000i64..1000, below in 1i64..100) {
            let root = spec_schema(json!({"n": {"type": "integer", "minimum": low}}));
            let causes = validate_object(&json!({"spec": {"n": low - below}}), None, &root);
            prop_assert_eq!(causes.len(), 1);
            prop_assert_eq!(&causes[0].field, "spec.n");
        }
    }
}
