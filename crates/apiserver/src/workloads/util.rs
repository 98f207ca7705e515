//! Small pure helpers the controllers share: reading objects, owner references, pod
//! readiness, Kubernetes' int-or-percent rounding and name hashes.

use serde_json::{Value, json};

/// The object's `metadata.<field>` string.
pub(crate) fn meta<'a>(object: &'a Value, field: &str) -> &'a str {
    object
        .get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

pub(crate) fn int_at(object: &Value, pointer: &str) -> Option<i64> {
    object.pointer(pointer).and_then(Value::as_i64)
}

pub(crate) fn str_at<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("")
}

pub(crate) fn annotation<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

pub(crate) fn label<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object
        .pointer("/metadata/labels")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

pub(crate) fn is_deleting(object: &Value) -> bool {
    object
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
}

/// The kind and name of the object's controlling owner reference.
pub(crate) fn controller_of(object: &Value) -> Option<(&str, &str, &str)> {
    object
        .pointer("/metadata/ownerReferences")?
        .as_array()?
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .map(|r| {
            (
                r.get("kind").and_then(Value::as_str).unwrap_or(""),
                r.get("name").and_then(Value::as_str).unwrap_or(""),
                r.get("uid").and_then(Value::as_str).unwrap_or(""),
            )
        })
}

/// The owner reference a controller puts on what it creates.
pub(crate) fn controller_ref(owner: &Value, api_version: &str, kind: &str) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "name": meta(owner, "name"),
        "uid": meta(owner, "uid"),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// The phase of a pod (`Pending` when it has none yet).
pub(crate) fn pod_phase(pod: &Value) -> &str {
    match str_at(pod, "/status/phase") {
        "" => "Pending",
        p => p,
    }
}

/// Counted by its controller: not being deleted, not finished.
pub(crate) fn pod_is_active(pod: &Value) -> bool {
    !is_deleting(pod) && !matches!(pod_phase(pod), "Succeeded" | "Failed")
}

/// The pod's `Ready` condition: whether it is True and since when.
pub(crate) fn pod_ready_since(pod: &Value) -> Option<time::OffsetDateTime> {
    let condition = pod
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))?;
    if condition.get("status").and_then(Value::as_str) != Some("True") {
        return None;
    }
    condition
        .get("lastTransitionTime")
        .and_then(Value::as_str)
        .and_then(crate::objects::parse_rfc3339)
        .or(Some(time::OffsetDateTime::UNIX_EPOCH))
}

pub(crate) fn pod_is_ready(pod: &Value) -> bool {
    pod_ready_since(pod).is_some()
}

/// Ready for at least `min_ready_seconds` at `now` (Kubernetes' "available").
pub(crate) fn pod_is_available(
    pod: &Value,
    min_ready_seconds: i64,
    now: time::OffsetDateTime,
) -> bool {
    match pod_ready_since(pod) {
        None => false,
        Some(_) if min_ready_seconds <= 0 => true,
        Some(since) => since + time::Duration::seconds(min_ready_seconds) <= now,
    }
}

/// An int-or-percent value against `total`, rounding a percentage up or down as Kubernetes'
/// `GetScaledValueFromIntOrPercent` does.
pub(crate) fn scaled_value(value: Option<&Value>, total: i64, round_up: bool, default: i64) -> i64 {
    match value {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(default),
        Some(Value::String(s)) => match s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) {
            Some(percent) => {
                let product = percent * total;
                if round_up {
                    (product + 99) / 100
                } else {
                    product / 100
                }
            }
            None => s.parse().unwrap_or(default),
        },
        _ => default,
    }
}

/// Kubernetes' `rand.SafeEncodeString` of a 32-bit FNV-1a hash of `data`: the decimal
/// digits mapped onto the alphabet without vowels, as `pod-template-hash` values look.
pub(crate) fn template_hash(data: &[u8], collision_count: i64) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u32::from(*b);
            hash = hash.wrapping_mul(0x0100_0193);
        }
    };
    feed(data);
    if collision_count > 0 {
        feed(collision_count.to_string().as_bytes());
    }
    safe_encode(&hash.to_string())
}

fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes()
        .map(|b| char::from(ALPHANUMS[usize::from(b) % ALPHANUMS.len()]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_as_kubernetes_does() {
        assert_eq!(scaled_value(Some(&json!("25%")), 3, true, 0), 1);
        assert_eq!(scaled_value(Some(&json!("25%")), 3, false, 0), 0);
        assert_eq!(scaled_value(Some(&json!("50%")), 10, false, 0), 5);
        assert_eq!(scaled_value(Some(&json!(2)), 10, false, 0), 2);
        assert_eq!(scaled_value(None, 10, false, 7), 7);
    }

    #[test]
    fn template_hashes_use_the_safe_alphabet_and_change_with_collisions() {
        let a = template_hash(b"{\"a\":1}", 0);
        assert!(
            a.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)),
            "{a}"
        );
        assert_ne!(a, template_hash(b"{\"a\":1}", 1));
        assert_eq!(a, template_hash(b"{\"a\":1}", 0));
    }
}
