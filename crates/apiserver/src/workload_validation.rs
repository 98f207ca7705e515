//! Kind-specific validation of the workload kinds, as kube-apiserver's apps and batch
//! validation refuses them (422 with the field path): a controller's selector must exist
//! and pick its own template, and may not change; a Job's template may not change; a
//! CronJob's schedule must parse. Pure: the object (and the stored one, on update) in,
//! causes out.

use serde_json::Value;

use crate::api_error::Cause;

/// Whether `labels` satisfy a `LabelSelector` object (matchLabels and matchExpressions).
pub(crate) fn selector_matches(selector: &Value, labels: &Value) -> bool {
    let get = |k: &str| labels.get(k).and_then(Value::as_str);
    if let Some(m) = selector.get("matchLabels").and_then(Value::as_object)
        && !m.iter().all(|(k, v)| get(k) == v.as_str())
    {
        return false;
    }
    let Some(exprs) = selector.get("matchExpressions").and_then(Value::as_array) else {
        return true;
    };
    exprs.iter().all(|e| {
        let key = e.get("key").and_then(Value::as_str).unwrap_or("");
        let values: Vec<&str> = e
            .get("values")
            .and_then(Value::as_array)
            .map(|v| v.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        match e.get("operator").and_then(Value::as_str).unwrap_or("") {
            "In" => get(key).is_some_and(|v| values.contains(&v)),
            "NotIn" => get(key).is_none_or(|v| !values.contains(&v)),
            "Exists" => get(key).is_some(),
            "DoesNotExist" => get(key).is_none(),
            _ => false,
        }
    })
}

fn invalid_json(field: &str, value: &Value, why: &str) -> Cause {
    Cause {
        reason: "FieldValueInvalid",
        message: format!("Invalid value: {value}: {why}"),
        field: field.to_string(),
    }
}

/// kube-apiserver's `Required value` without a detail.
fn required(field: &str) -> Cause {
    Cause {
        reason: "FieldValueRequired",
        message: "Required value".into(),
        field: field.to_string(),
    }
}

/// The causes for a workload of `group`/`resource` (nothing for other kinds).
pub(crate) fn workload_causes(
    group: &str,
    resource: &str,
    object: &Value,
    old: Option<&Value>,
) -> Vec<Cause> {
    let mut causes = Vec::new();
    let spec = object.get("spec").unwrap_or(&Value::Null);
    match (group, resource) {
        ("apps", "deployments" | "replicasets" | "statefulsets" | "daemonsets") => {
            let selector = spec.get("selector").filter(|s| !s.is_null());
            if selector.is_none() {
                causes.push(required("spec.selector"));
            }
            let labels = spec
                .pointer("/template/metadata/labels")
                .cloned()
                .unwrap_or_else(|| Value::Object(Default::default()));
            // A missing or empty selector matches nothing (kube-apiserver says so too).
            let empty = selector.is_none_or(|s| {
                s.get("matchLabels")
                    .and_then(Value::as_object)
                    .is_none_or(|m| m.is_empty())
                    && s.get("matchExpressions")
                        .and_then(Value::as_array)
                        .is_none_or(|e| e.is_empty())
            });
            if empty && selector.is_some() {
                causes.push(invalid_json(
                    "spec.selector",
                    selector.unwrap_or(&Value::Null),
                    &format!(
                        "empty selector is invalid for {}",
                        &resource[..resource.len() - 1]
                    ),
                ));
            } else if empty || !selector.is_some_and(|s| selector_matches(s, &labels)) {
                causes.push(invalid_json(
                    "spec.template.metadata.labels",
                    &labels,
                    "`selector` does not match template `labels`",
                ));
            }
            if let Some(old_selector) = old.and_then(|o| o.pointer("/spec/selector"))
                && let Some(new_selector) = selector
                && old_selector != new_selector
            {
                causes.push(invalid_json(
                    "spec.selector",
                    new_selector,
                    "field is immutable",
                ));
            }
        }
        ("batch", "jobs") => {
            if let Some(old) = old {
                let old_spec = old.get("spec").unwrap_or(&Value::Null);
                if old_spec.get("selector") != spec.get("selector") {
                    causes.push(invalid_json(
                        "spec.selector",
                        spec.get("selector").unwrap_or(&Value::Null),
                        "field is immutable",
                    ));
                }
                if old_spec.get("template") != spec.get("template") {
                    causes.push(invalid_json(
                        "spec.template",
                        spec.get("template").unwrap_or(&Value::Null),
                        "field is immutable",
                    ));
                }
            }
        }
        ("batch", "cronjobs") => {
            let schedule = spec.get("schedule").and_then(Value::as_str).unwrap_or("");
            if schedule.is_empty() {
                causes.push(required("spec.schedule"));
            } else if let Err(why) = crate::workloads::parse_schedule(schedule) {
                causes.push(Cause::invalid("spec.schedule", schedule, why));
            }
        }
        _ => {}
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(selector: Value, labels: Value) -> Value {
        json!({"spec": {"selector": selector, "template": {"metadata": {"labels": labels}}}})
    }

    #[test]
    fn selectors_match_labels_and_expressions() {
        let labels = json!({"app": "web", "tier": "front"});
        assert!(selector_matches(
            &json!({"matchLabels": {"app": "web"}}),
            &labels
        ));
        assert!(!selector_matches(
            &json!({"matchLabels": {"app": "db"}}),
            &labels
        ));
        assert!(selector_matches(
            &json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["front"]}]}),
            &labels
        ));
        assert!(!selector_matches(
            &json!({"matchExpressions": [{"key": "x", "operator": "Exists"}]}),
            &labels
        ));
    }

    #[test]
    fn a_selector_must_pick_its_template_as_kube_apiserver_says() {
        let bad = deployment(json!({"matchLabels": {"app": "a"}}), json!({"app": "b"}));
        let causes = workload_causes("apps", "deployments", &bad, None);
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "spec.template.metadata.labels");
        assert_eq!(
            causes[0].message,
            r#"Invalid value: {"app":"b"}: `selector` does not match template `labels`"#
        );
        let missing = json!({"spec": {"template": {"metadata": {"labels": {"app": "nosel"}}}}});
        let causes = workload_causes("apps", "deployments", &missing, None);
        assert_eq!(causes[0].field, "spec.selector");
        assert_eq!(causes[0].message, "Required value");
        assert_eq!(causes[1].field, "spec.template.metadata.labels");
        let good = deployment(
            json!({"matchLabels": {"app": "a"}}),
            json!({"app": "a", "x": "y"}),
        );
        assert!(workload_causes("apps", "deployments", &good, None).is_empty());
    }

    #[test]
    fn selectors_and_job_templates_are_immutable() {
        let old = deployment(
            json!({"matchLabels": {"app": "web"}}),
            json!({"app": "web"}),
        );
        let new = deployment(
            json!({"matchLabels": {"app": "web", "x": "y"}}),
            json!({"app": "web", "x": "y"}),
        );
        let causes = workload_causes("apps", "deployments", &new, Some(&old));
        assert_eq!(causes[0].field, "spec.selector");
        assert_eq!(
            causes[0].message,
            r#"Invalid value: {"matchLabels":{"app":"web","x":"y"}}: field is immutable"#
        );
        let old_job = json!({"spec": {"template": {"spec": {"containers": [{"image": "a"}]}}}});
        let new_job = json!({"spec": {"template": {"spec": {"containers": [{"image": "b"}]}}}});
        let causes = workload_causes("batch", "jobs", &new_job, Some(&old_job));
        assert_eq!(causes[0].field, "spec.template");
        assert!(causes[0].message.ends_with("field is immutable"));
        assert!(workload_causes("batch", "jobs", &old_job, Some(&old_job)).is_empty());
    }

    #[test]
    fn cron_schedules_must_parse() {
        let cj = json!({"spec": {"schedule": "bad cron"}});
        let causes = workload_causes("batch", "cronjobs", &cj, None);
        assert_eq!(causes[0].field, "spec.schedule");
        assert_eq!(
            causes[0].message,
            r#"Invalid value: "bad cron": expected exactly 5 fields, found 2: [bad cron]"#
        );
    }
}
