//! HorizontalPodAutoscaler health, as Argo CD assesses it.
//!
//! The conditions are read in order and the first that decides wins: one whose type and
//! reason say the autoscaler cannot reach its target or read its metrics (whatever its
//! status) is Degraded; an `AbleToScale` or `ScalingLimited` condition that is `True` is
//! Healthy; each with the condition's message. When none decides the HPA is Progressing,
//! "Waiting to Autoscale". Because the order decides, an HPA that can scale but cannot read
//! its metrics is Healthy (the HPA controller writes `AbleToScale` first), as in Argo CD.
//!
//! autoscaling/v1 has no conditions field: the controller keeps them as a JSON list in an
//! annotation, which Argo CD parses with Go's `encoding/json` and shows Go's error when it
//! cannot. v2, v2beta2 and v2beta1 keep them in `status.conditions`. Any other version is
//! Unknown with Argo CD's "unsupported HPA GVK" error.

use super::go_json::{Cursor, GoJsonError, Kind, key_matches_field};
use crate::json::{array_at, str_at};
use plumb_model::{HealthStatus, HealthStatusCode};
use serde_json::Value;

/// Where autoscaling/v1 keeps the conditions.
pub const CONDITIONS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/conditions";

const WAITING: &str = "Waiting to Autoscale";

/// (type, reason) pairs that mean the autoscaler is broken — exactly Argo CD's list, so other
/// failures (an object or external metric that cannot be read) do not make it Degraded.
const DEGRADED: [(&str, &str); 4] = [
    ("AbleToScale", "FailedGetScale"),
    ("AbleToScale", "FailedUpdateScale"),
    ("ScalingActive", "FailedGetResourceMetric"),
    ("ScalingActive", "InvalidSelector"),
];

/// One condition as the assessment reads it; absent fields are empty, as in Go.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Condition {
    kind: String,
    status: String,
    reason: String,
    message: String,
}

fn status(code: HealthStatusCode, message: impl Into<String>) -> HealthStatus {
    HealthStatus {
        status: code,
        message: message.into(),
    }
}

pub(super) fn horizontal_pod_autoscaler(object: &Value) -> HealthStatus {
    let api_version = crate::json::api_version(object);
    let conditions = match api_version {
        "autoscaling/v1" => {
            let Some(text) = crate::json::annotation(object, CONDITIONS_ANNOTATION) else {
                return status(HealthStatusCode::Progressing, WAITING);
            };
            match annotation_conditions(text) {
                Ok(conditions) => conditions,
                Err(error) => {
                    return status(
                        HealthStatusCode::Unknown,
                        format!("failed to convert conditions annotation to typed: {error}"),
                    );
                }
            }
        }
        "autoscaling/v2" | "autoscaling/v2beta2" | "autoscaling/v2beta1" => {
            array_at(object, &["status", "conditions"])
                .iter()
                .map(|condition| Condition {
                    kind: str_at(condition, &["type"]).to_string(),
                    status: str_at(condition, &["status"]).to_string(),
                    reason: str_at(condition, &["reason"]).to_string(),
                    message: str_at(condition, &["message"]).to_string(),
                })
                .collect()
        }
        // Go prints a GroupVersionKind as "group/version, Kind=kind".
        other => {
            return status(
                HealthStatusCode::Unknown,
                format!("unsupported HPA GVK: {other}, Kind=HorizontalPodAutoscaler"),
            );
        }
    };
    for condition in &conditions {
        if DEGRADED.contains(&(condition.kind.as_str(), condition.reason.as_str())) {
            return status(HealthStatusCode::Degraded, condition.message.as_str());
        }
        if matches!(condition.kind.as_str(), "AbleToScale" | "ScalingLimited")
            && condition.status == "True"
        {
            return status(HealthStatusCode::Healthy, condition.message.as_str());
        }
    }
    status(HealthStatusCode::Progressing, WAITING)
}

/// The Go type names Argo CD's errors mention.
const LIST_TYPE: &str = "[]health.hpaCondition";
const CONDITION_TYPE: &str = "health.hpaCondition";
const CONDITION_STRUCT: &str = "hpaCondition";

/// The annotation read as Go's `encoding/json` reads it into Argo CD's list of conditions:
/// Go's syntax errors first; `null` is no conditions (and a `null` item an empty one); keys
/// match the fields `Type`, `Status`, `Reason`, `Message` in any case, a later duplicate
/// replacing an earlier one; other keys are ignored; a `null` field keeps what it had; the
/// first value of the wrong kind is the error.
fn annotation_conditions(text: &str) -> Result<Vec<Condition>, GoJsonError> {
    let mut cursor = Cursor::new(text)?;
    match cursor.peek_kind() {
        Kind::Null => return Ok(Vec::new()),
        Kind::Array => {}
        other => {
            return Err(GoJsonError::CannotUnmarshal {
                value: other.go_word(),
                go_type: LIST_TYPE,
            });
        }
    }
    let mut conditions = Vec::new();
    if !cursor.enter() {
        return Ok(conditions);
    }
    loop {
        match cursor.peek_kind() {
            Kind::Object => conditions.push(condition(&mut cursor)?),
            Kind::Null => {
                cursor.skip_value();
                conditions.push(Condition::default());
            }
            other => {
                return Err(GoJsonError::CannotUnmarshal {
                    value: other.go_word(),
                    go_type: CONDITION_TYPE,
                });
            }
        }
        if !cursor.next_member() {
            return Ok(conditions);
        }
    }
}

fn condition(cursor: &mut Cursor<'_>) -> Result<Condition, GoJsonError> {
    let mut condition = Condition::default();
    if !cursor.enter() {
        cursor.leave_empty();
        return Ok(condition);
    }
    loop {
        let key = cursor.key();
        let field = [
            ("Type", &mut condition.kind),
            ("Status", &mut condition.status),
            ("Reason", &mut condition.reason),
            ("Message", &mut condition.message),
        ]
        .into_iter()
        .find(|(name, _)| key_matches_field(&key, name));
        match (field, cursor.peek_kind()) {
            (Some((_, slot)), Kind::String) => *slot = cursor.string(),
            (Some(_), Kind::Null) | (None, _) => cursor.skip_value(),
            (Some((name, _)), other) => {
                return Err(GoJsonError::CannotUnmarshalField {
                    value: other.go_word(),
                    go_struct: CONDITION_STRUCT,
                    field: name,
                    go_type: "string",
                });
            }
        }
        if !cursor.next_member() {
            return Ok(condition);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Vec<Condition>, String> {
        annotation_conditions(text).map_err(|e| e.to_string())
    }

    fn one(kind: &str, status: &str, reason: &str, message: &str) -> Condition {
        Condition {
            kind: kind.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
        }
    }

    #[test]
    fn annotation_reads_as_go_reads_it() {
        assert_eq!(read("null"), Ok(vec![]));
        assert_eq!(read(" [ ] "), Ok(vec![]));
        assert_eq!(
            read(
                r#"[null, {}, {"TYPE": "A", "sTaTuS": "True", "reason": null, "extra": {"x": [1]}, "Message": "m"}]"#
            ),
            Ok(vec![
                Condition::default(),
                Condition::default(),
                one("A", "True", "", "m"),
            ])
        );
        // A later duplicate wins, and null keeps the earlier value.
        assert_eq!(
            read(r#"[{"type": "A", "Type": "B", "reason": "R", "reason": null}]"#),
            Ok(vec![one("B", "", "R", "")])
        );
        assert_eq!(
            read(r#"[{"typ\u0065": "A\u00e9"}]"#),
            Ok(vec![one("Aé", "", "", "")])
        );
    }

    #[test]
    fn wrong_kinds_are_go_type_errors() {
        for (text, expected) in [
            (
                r#"{"type": "AbleToScale"}"#,
                "json: cannot unmarshal object into Go value of type []health.hpaCondition",
            ),
            (
                r#""[]""#,
                "json: cannot unmarshal string into Go value of type []health.hpaCondition",
            ),
            (
                "1",
                "json: cannot unmarshal number into Go value of type []health.hpaCondition",
            ),
            (
                "[true]",
                "json: cannot unmarshal bool into Go value of type health.hpaCondition",
            ),
            (
                "[{}, []]",
                "json: cannot unmarshal array into Go value of type health.hpaCondition",
            ),
            (
                r#"[{"type": 1}]"#,
                "json: cannot unmarshal number into Go struct field hpaCondition.Type of type string",
            ),
            (
                r#"[{"message": {"a": 1}, "status": true}]"#,
                "json: cannot unmarshal object into Go struct field hpaCondition.Message of type string",
            ),
            // Syntax errors anywhere come before type errors.
            (
                r#"[{"type": 1}, x]"#,
                "invalid character 'x' looking for beginning of value",
            ),
        ] {
            assert_eq!(read(text), Err(expected.to_string()), "{text}");
        }
    }
}
