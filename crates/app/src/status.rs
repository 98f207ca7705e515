//! From a comparison to the status Argo CD writes: resources, sync, health, summary and
//! conditions. Pure: the comparison and the health assessments are its inputs.

use crate::desired::Desired;
use plumb_engine::compare::Compared;
use plumb_engine::diff::ConditionKind;
use plumb_engine::health::{self, HealthAssessor, ResourceHealthInput};
use plumb_engine::hooks;
use plumb_model::{
    AppHealthStatus, Application, ApplicationCondition, ApplicationSummary, ComparedTo,
    HealthStatus, HealthStatusCode, ResourceHealth, ResourceKey, ResourceStatus, SyncStatus,
    SyncStatusCode, condition_type,
};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// An Application compared with its destination: the status parts, and the engine's
/// comparison (diffs, live and predicted objects) for callers that show or sync it.
pub struct Comparison {
    pub compared: Compared,
    pub sync: SyncStatus,
    pub health: AppHealthStatus,
    pub resources: Vec<ResourceStatus>,
    pub summary: ApplicationSummary,
    pub conditions: Vec<ApplicationCondition>,
}

impl Comparison {
    /// Whether anything could not be compared (the sync status is then Unknown).
    pub fn has_errors(&self) -> bool {
        self.compared.comparison.failed_objects > 0 || !self.compared.dry_run_errors.is_empty()
    }
}

/// The health of each assessed live object the app declares or tracks.
pub fn assess_all(
    compared: &Compared,
    assessor: &HealthAssessor,
) -> BTreeMap<ResourceKey, HealthStatus> {
    compared
        .live
        .iter()
        .filter_map(|(key, live)| assessor.assess(live).map(|h| (key.clone(), h)))
        .collect()
}

/// The app's health: its worst resource's, hooks and ignored resources left out.
pub fn app_health(
    compared: &Compared,
    assessed: &BTreeMap<ResourceKey, HealthStatus>,
    assessor: &HealthAssessor,
) -> HealthStatus {
    health::aggregate(
        compared
            .prepared
            .objects
            .iter()
            .map(|(key, target)| ResourceHealthInput {
                group: &key.group,
                kind: &key.kind,
                live: compared.live.get(key),
                target: Some(target),
                health: assessed.get(key),
                has_assessment: assessor.has_assessment(&key.group, &key.kind),
            }),
    )
}

fn condition_name(kind: ConditionKind) -> &'static str {
    match kind {
        ConditionKind::InvalidSpecError => condition_type::INVALID_SPEC_ERROR,
        ConditionKind::ComparisonError => condition_type::COMPARISON_ERROR,
        ConditionKind::SharedResourceWarning => condition_type::SHARED_RESOURCE_WARNING,
        ConditionKind::RepeatedResourceWarning => condition_type::REPEATED_RESOURCE_WARNING,
        ConditionKind::SyncError => condition_type::SYNC_ERROR,
    }
}

/// Builds the status parts of a comparison.
pub fn build(
    app: &Application,
    desired: &Desired,
    compared: Compared,
    assessor: &HealthAssessor,
) -> Comparison {
    let assessed = assess_all(&compared, assessor);
    let app_health = app_health(&compared, &assessed, assessor);
    let resources = compared
        .comparison
        .resources
        .iter()
        .map(|resource| {
            let key = &resource.key;
            let target = compared.prepared.objects.get(key);
            let live = compared.live.get(key);
            let version = target
                .or(live)
                .and_then(|o| o.get("apiVersion"))
                .and_then(Value::as_str)
                .map(|v| v.rsplit('/').next().unwrap_or(v).to_string())
                .unwrap_or_default();
            let health = match (live, assessed.get(key)) {
                (_, Some(h)) => Some(ResourceHealth {
                    status: h.status,
                    message: h.message.clone(),
                }),
                (None, None) if assessor.has_assessment(&key.group, &key.kind) => {
                    Some(ResourceHealth {
                        status: HealthStatusCode::Missing,
                        message: String::new(),
                    })
                }
                _ => None,
            };
            ResourceStatus {
                group: key.group.clone(),
                version,
                kind: key.kind.clone(),
                namespace: key.namespace.clone(),
                name: key.name.clone(),
                status: resource.status,
                health: if resource.hook { None } else { health },
                hook: resource.hook,
                requires_pruning: resource.requires_pruning,
                sync_wave: target.map(hooks::wave).unwrap_or(0),
                requires_deletion_confirmation: false,
            }
        })
        .collect();
    let mut conditions: Vec<ApplicationCondition> = compared
        .comparison
        .conditions
        .iter()
        .map(|c| ApplicationCondition::new(condition_name(c.kind), c.message.clone()))
        .collect();
    for (key, message) in &compared.dry_run_errors {
        conditions.push(ApplicationCondition::new(
            condition_type::COMPARISON_ERROR,
            format!("{key}: {message}"),
        ));
    }
    let mut seen = BTreeSet::new();
    conditions.retain(|c| seen.insert((c.kind.clone(), c.message.clone())));
    let status = if compared.comparison.failed_objects > 0 || !compared.dry_run_errors.is_empty() {
        SyncStatusCode::Unknown
    } else {
        compared.comparison.sync_status()
    };
    let multi = !app.spec.sources.is_empty();
    let sync = SyncStatus {
        status,
        compared_to: Some(compared_to(app)),
        revision: if multi {
            String::new()
        } else {
            desired.revision().to_string()
        },
        revisions: if multi {
            desired.revisions.clone()
        } else {
            Vec::new()
        },
    };
    let summary = summarize(compared.live.values());
    Comparison {
        compared,
        sync,
        health: AppHealthStatus {
            status: app_health.status,
            message: app_health.message,
            last_transition_time: None,
        },
        resources,
        summary,
        conditions,
    }
}

/// The parts of the spec a comparison was made against.
pub fn compared_to(app: &Application) -> ComparedTo {
    ComparedTo {
        source: app
            .spec
            .source
            .clone()
            .filter(|_| app.spec.sources.is_empty()),
        sources: app.spec.sources.clone(),
        destination: app.spec.destination.clone(),
        ignore_differences: app.spec.ignore_differences.clone(),
    }
}

/// The annotation Argo CD reads extra external links from (comma-separated URLs).
const EXTERNAL_LINK_PREFIX: &str = "link.argocd.argoproj.io/";

/// Images run and URLs exposed by the live objects (sorted, without duplicates).
pub fn summarize<'a>(live: impl IntoIterator<Item = &'a Value>) -> ApplicationSummary {
    let mut images = BTreeSet::new();
    let mut urls = BTreeSet::new();
    for object in live {
        collect_images(object, &mut images);
        if let Some(annotations) = object
            .pointer("/metadata/annotations")
            .and_then(Value::as_object)
        {
            for (key, value) in annotations {
                if key.starts_with(EXTERNAL_LINK_PREFIX)
                    && let Some(text) = value.as_str()
                {
                    for url in text.split(',').map(str::trim).filter(|u| !u.is_empty()) {
                        urls.insert(url.to_string());
                    }
                }
            }
        }
        if object.get("kind").and_then(Value::as_str) == Some("Ingress") {
            collect_ingress_urls(object, &mut urls);
        }
    }
    ApplicationSummary {
        external_urls: urls.into_iter().collect(),
        images: images.into_iter().collect(),
    }
}

fn collect_images(object: &Value, images: &mut BTreeSet<String>) {
    let pod_spec = match object.get("kind").and_then(Value::as_str) {
        Some("Pod") => object.get("spec"),
        Some("CronJob") => object.pointer("/spec/jobTemplate/spec/template/spec"),
        _ => object.pointer("/spec/template/spec"),
    };
    let Some(pod_spec) = pod_spec else {
        return;
    };
    for list in ["containers", "initContainers"] {
        for container in pod_spec
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(image) = container.get("image").and_then(Value::as_str) {
                images.insert(image.to_string());
            }
        }
    }
}

fn collect_ingress_urls(object: &Value, urls: &mut BTreeSet<String>) {
    let tls_hosts: BTreeSet<&str> = object
        .pointer("/spec/tls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|tls| tls.get("hosts").and_then(Value::as_array))
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    for rule in object
        .pointer("/spec/rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(host) = rule.get("host").and_then(Value::as_str) else {
            continue;
        };
        let scheme = if tls_hosts.contains(host) {
            "https"
        } else {
            "http"
        };
        let paths: Vec<&str> = rule
            .pointer("/http/paths")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| p.get("path").and_then(Value::as_str))
            .collect();
        if paths.is_empty() {
            urls.insert(format!("{scheme}://{host}/"));
        }
        for path in paths {
            let path = path.trim_end_matches(['*', '(', ')', '.']);
            let path = if path.starts_with('/') {
                path.to_string()
            } else {
                format!("/{path}")
            };
            urls.insert(format!("{scheme}://{host}{path}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn summary_lists_images_and_urls_once_sorted() {
        let deployment = json!({"kind": "Deployment", "metadata": {"annotations": {
            "link.argocd.argoproj.io/external-link": "https://dash.example/x, https://b.example"}},
            "spec": {"template": {"spec": {"containers": [{"image": "web:2"}],
              "initContainers": [{"image": "init:1"}]}}}});
        let ingress = json!({"kind": "Ingress", "metadata": {}, "spec": {
            "tls": [{"hosts": ["secure.example"]}],
            "rules": [{"host": "secure.example", "http": {"paths": [{"path": "/api"}]}},
                      {"host": "plain.example"}]}});
        let pod =
            json!({"kind": "Pod", "metadata": {}, "spec": {"containers": [{"image": "web:2"}]}});
        let summary = summarize([&deployment, &ingress, &pod]);
        assert_eq!(summary.images, ["init:1", "web:2"]);
        assert_eq!(
            summary.external_urls,
            [
                "http://plain.example/",
                "https://b.example",
                "https://dash.example/x",
                "https://secure.example/api"
            ]
        );
    }
}
