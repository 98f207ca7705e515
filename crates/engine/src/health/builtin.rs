//! Built-in health assessments, with Argo CD's rules and the messages its users know.
//!
//! Each function reads a live object (as JSON) and never fails: a field that is missing reads
//! as Kubernetes' zero value, which is how Argo CD's typed conversion behaves too.

use crate::json::{array_at, at, bool_at, int_at, name, opt_int_at, str_at};
use plumb_model::{HealthStatus, HealthStatusCode};
use serde_json::Value;

fn status(status: HealthStatusCode, message: impl Into<String>) -> HealthStatus {
    HealthStatus {
        status,
        message: message.into(),
    }
}

fn healthy() -> HealthStatus {
    status(HealthStatusCode::Healthy, "")
}

/// Whether plumb has a built-in assessment for this group and kind.
pub fn has_builtin(group: &str, kind: &str) -> bool {
    builtin_fn(group, kind).is_some()
}

type AssessFn = fn(&Value) -> HealthStatus;

fn builtin_fn(group: &str, kind: &str) -> Option<AssessFn> {
    let assess: AssessFn = match (group, kind) {
        ("apps", "Deployment") | ("extensions", "Deployment") => deployment,
        ("apps", "StatefulSet") => stateful_set,
        ("apps", "DaemonSet") | ("extensions", "DaemonSet") => daemon_set,
        ("apps", "ReplicaSet") | ("extensions", "ReplicaSet") => replica_set,
        ("", "Pod") => pod,
        ("batch", "Job") => job,
        ("batch", "CronJob") => cron_job,
        ("", "PersistentVolumeClaim") => persistent_volume_claim,
        ("", "Service") => service,
        ("networking.k8s.io", "Ingress") | ("extensions", "Ingress") => ingress,
        ("autoscaling", "HorizontalPodAutoscaler") => super::hpa::horizontal_pod_autoscaler,
        ("apiregistration.k8s.io", "APIService") => api_service,
        ("argoproj.io", "Application") => application,
        _ => return None,
    };
    Some(assess)
}

/// The built-in assessment of a live object, `None` when its kind has none.
pub fn builtin_health(object: &Value) -> Option<HealthStatus> {
    let assess = builtin_fn(crate::json::group(object), crate::json::kind(object))?;
    Some(assess(object))
}

fn generation(object: &Value) -> i64 {
    int_at(object, &["metadata", "generation"])
}

fn observed_generation(object: &Value) -> i64 {
    int_at(object, &["status", "observedGeneration"])
}

fn condition<'a>(object: &'a Value, condition_type: &str) -> Option<&'a Value> {
    array_at(object, &["status", "conditions"])
        .iter()
        .find(|c| str_at(c, &["type"]) == condition_type)
}

fn deployment(object: &Value) -> HealthStatus {
    if bool_at(object, &["spec", "paused"]) {
        return status(HealthStatusCode::Suspended, "Deployment is paused");
    }
    if generation(object) > observed_generation(object) {
        return status(
            HealthStatusCode::Progressing,
            "Waiting for rollout to finish: observed deployment generation less than desired generation",
        );
    }
    let progressing = condition(object, "Progressing");
    let updated = int_at(object, &["status", "updatedReplicas"]);
    let replicas = int_at(object, &["status", "replicas"]);
    let available = int_at(object, &["status", "availableReplicas"]);
    if progressing.is_some_and(|c| str_at(c, &["reason"]) == "ProgressDeadlineExceeded") {
        return status(
            HealthStatusCode::Degraded,
            format!(
                "Deployment {:?} exceeded its progress deadline",
                name(object)
            ),
        );
    }
    if let Some(desired) = opt_int_at(object, &["spec", "replicas"])
        && updated < desired
    {
        return status(
            HealthStatusCode::Progressing,
            format!(
                "Waiting for rollout to finish: {updated} out of {desired} new replicas have been updated..."
            ),
        );
    }
    if replicas > updated {
        return status(
            HealthStatusCode::Progressing,
            format!(
                "Waiting for rollout to finish: {} old replicas are pending termination...",
                replicas - updated
            ),
        );
    }
    if available < updated {
        return status(
            HealthStatusCode::Progressing,
            format!(
                "Waiting for rollout to finish: {available} of {updated} updated replicas are available..."
            ),
        );
    }
    healthy()
}

fn stateful_set(object: &Value) -> HealthStatus {
    let observed = observed_generation(object);
    if observed == 0 || generation(object) > observed {
        return status(
            HealthStatusCode::Progressing,
            "Waiting for statefulset spec update to be observed...",
        );
    }
    let desired = opt_int_at(object, &["spec", "replicas"]);
    let ready = int_at(object, &["status", "readyReplicas"]);
    let updated = int_at(object, &["status", "updatedReplicas"]);
    if let Some(desired) = desired
        && ready < desired
    {
        return status(
            HealthStatusCode::Progressing,
            format!("Waiting for {} pods to be ready...", desired - ready),
        );
    }
    let strategy = str_at(object, &["spec", "updateStrategy", "type"]);
    let rolling = at(object, &["spec", "updateStrategy", "rollingUpdate"]);
    if strategy == "RollingUpdate"
        && let Some(rolling) = rolling
    {
        if let (Some(desired), Some(partition)) = (desired, opt_int_at(rolling, &["partition"]))
            && updated < desired - partition
        {
            return status(
                HealthStatusCode::Progressing,
                format!(
                    "Waiting for partitioned roll out to finish: {updated} out of {} new pods have been updated...",
                    desired - partition
                ),
            );
        }
        return status(
            HealthStatusCode::Healthy,
            format!("partitioned roll out complete: {updated} new pods have been updated..."),
        );
    }
    if strategy == "OnDelete" {
        return status(
            HealthStatusCode::Healthy,
            format!("statefulset has {ready} ready pods"),
        );
    }
    let update_revision = str_at(object, &["status", "updateRevision"]);
    let current_revision = str_at(object, &["status", "currentRevision"]);
    if update_revision != current_revision {
        return status(
            HealthStatusCode::Progressing,
            format!(
                "waiting for statefulset rolling update to complete {updated} pods at revision {update_revision}..."
            ),
        );
    }
    status(
        HealthStatusCode::Healthy,
        format!(
            "statefulset rolling update complete {} pods at revision {current_revision}...",
            int_at(object, &["status", "currentReplicas"])
        ),
    )
}

fn daemon_set(object: &Value) -> HealthStatus {
    if generation(object) > observed_generation(object) {
        return status(
            HealthStatusCode::Progressing,
            "Waiting for rollout to finish: observed daemon set generation less than desired generation",
        );
    }
    let updated = int_at(object, &["status", "updatedNumberScheduled"]);
    let desired = int_at(object, &["status", "desiredNumberScheduled"]);
    let available = int_at(object, &["status", "numberAvailable"]);
    if str_at(object, &["spec", "updateStrategy", "type"]) == "OnDelete" {
        return status(
            HealthStatusCode::Healthy,
            format!("daemon set {updated} out of {desired} new pods have been updated"),
        );
    }
    if updated < desired {
        return status(
            HealthStatusCode::Progressing,
            format!(
                "Waiting for daemon set {:?} rollout to finish: {updated} out of {desired} new pods have been updated...",
                name(object)
            ),
        );
    }
    if available < desired {
        return status(
            HealthStatusCode::Progressing,
            format!(
                "Waiting for daemon set {:?} rollout to finish: {available} of {desired} updated pods are available...",
                name(object)
            ),
        );
    }
    healthy()
}

fn replica_set(object: &Value) -> HealthStatus {
    if generation(object) > observed_generation(object) {
        return status(
            HealthStatusCode::Progressing,
            "Waiting for rollout to finish: observed replica set generation less than desired generation",
        );
    }
    if let Some(failure) = condition(object, "ReplicaFailure")
        && str_at(failure, &["status"]) == "True"
    {
        return status(HealthStatusCode::Degraded, str_at(failure, &["message"]));
    }
    let available = int_at(object, &["status", "availableReplicas"]);
    if let Some(desired) = opt_int_at(object, &["spec", "replicas"])
        && available < desired
    {
        return status(
            HealthStatusCode::Progressing,
            format!(
                "Waiting for rollout to finish: {available} out of {desired} new replicas are available..."
            ),
        );
    }
    healthy()
}

/// A waiting reason that means the container cannot start (image pulls, crash loops).
fn is_failing_waiting_reason(reason: &str) -> bool {
    reason.starts_with("Err") || reason.ends_with("Error") || reason.ends_with("BackOff")
}

fn container_fail_message(container: &Value) -> Option<String> {
    let terminated = at(container, &["state", "terminated"])?;
    let message = str_at(terminated, &["message"]);
    if !message.is_empty() {
        return Some(message.to_string());
    }
    if str_at(terminated, &["reason"]) == "OOMKilled" {
        return Some("OOMKilled".to_string());
    }
    let exit_code = int_at(terminated, &["exitCode"]);
    (exit_code != 0).then(|| {
        format!(
            "container {:?} failed with exit code {exit_code}",
            str_at(container, &["name"])
        )
    })
}

fn pod(object: &Value) -> HealthStatus {
    // The API server defaults restartPolicy to Always; an object read from a file may omit it.
    let restart_policy = match str_at(object, &["spec", "restartPolicy"]) {
        "" => "Always",
        other => other,
    };
    let pod_message = str_at(object, &["status", "message"]);
    // Only long-running pods turn Degraded on a failing container: hook pods (OnFailure/Never)
    // must not fail a sync early while their image may still become available.
    if restart_policy == "Always" {
        let messages: Vec<&str> = array_at(object, &["status", "containerStatuses"])
            .iter()
            .filter_map(|c| at(c, &["state", "waiting"]))
            .filter(|waiting| is_failing_waiting_reason(str_at(waiting, &["reason"])))
            .map(|waiting| str_at(waiting, &["message"]))
            .collect();
        if !messages.is_empty() {
            return status(HealthStatusCode::Degraded, messages.join(", "));
        }
    }
    match str_at(object, &["status", "phase"]) {
        "Pending" => status(HealthStatusCode::Progressing, pod_message),
        "Succeeded" => status(HealthStatusCode::Healthy, pod_message),
        "Failed" => {
            if !pod_message.is_empty() {
                return status(HealthStatusCode::Degraded, pod_message);
            }
            let containers = array_at(object, &["status", "initContainerStatuses"])
                .iter()
                .chain(array_at(object, &["status", "containerStatuses"]));
            let message = containers
                .filter_map(container_fail_message)
                .next()
                .unwrap_or_default();
            status(HealthStatusCode::Degraded, message)
        }
        "Running" => match restart_policy {
            "Always" => {
                let ready =
                    condition(object, "Ready").is_some_and(|c| str_at(c, &["status"]) == "True");
                if ready {
                    return status(HealthStatusCode::Healthy, pod_message);
                }
                let restarted_after_termination =
                    array_at(object, &["status", "containerStatuses"])
                        .iter()
                        .any(|c| at(c, &["lastState", "terminated"]).is_some());
                if restarted_after_termination {
                    status(HealthStatusCode::Degraded, pod_message)
                } else {
                    status(HealthStatusCode::Progressing, pod_message)
                }
            }
            // Finite pods (typically hooks) are Progressing until they finish.
            _ => status(HealthStatusCode::Progressing, pod_message),
        },
        _ => status(HealthStatusCode::Unknown, pod_message),
    }
}

fn job(object: &Value) -> HealthStatus {
    let mut failed = false;
    let mut complete = false;
    let mut suspended = false;
    let mut message = "";
    let mut fail_message = "";
    for condition in array_at(object, &["status", "conditions"]) {
        match str_at(condition, &["type"]) {
            "Failed" => {
                failed = true;
                complete = true;
                fail_message = str_at(condition, &["message"]);
            }
            "Complete" => {
                complete = true;
                message = str_at(condition, &["message"]);
            }
            "Suspended" => {
                complete = true;
                message = str_at(condition, &["message"]);
                suspended = str_at(condition, &["status"]) == "True";
            }
            _ => {}
        }
    }
    if !complete {
        status(HealthStatusCode::Progressing, message)
    } else if failed {
        status(HealthStatusCode::Degraded, fail_message)
    } else if suspended {
        status(HealthStatusCode::Suspended, fail_message)
    } else {
        status(HealthStatusCode::Healthy, message)
    }
}

fn cron_job(object: &Value) -> HealthStatus {
    if bool_at(object, &["spec", "suspend"]) {
        return status(HealthStatusCode::Suspended, "CronJob is Suspended");
    }
    if !array_at(object, &["status", "active"]).is_empty() {
        return status(HealthStatusCode::Progressing, "CronJob has active jobs");
    }
    // RFC 3339 UTC timestamps in one format compare correctly as strings.
    let last_schedule = str_at(object, &["status", "lastScheduleTime"]);
    let last_success = str_at(object, &["status", "lastSuccessfulTime"]);
    if last_schedule.is_empty() {
        return status(HealthStatusCode::Healthy, "CronJob has never run");
    }
    if !last_success.is_empty() && last_schedule < last_success {
        return status(HealthStatusCode::Healthy, "CronJob has run successfully");
    }
    status(
        HealthStatusCode::Degraded,
        "CronJob has not run successfully",
    )
}

fn persistent_volume_claim(object: &Value) -> HealthStatus {
    match str_at(object, &["status", "phase"]) {
        "Lost" => status(HealthStatusCode::Degraded, ""),
        "Pending" => status(HealthStatusCode::Progressing, ""),
        "Bound" => healthy(),
        _ => status(HealthStatusCode::Unknown, ""),
    }
}

fn has_load_balancer_ingress(object: &Value) -> bool {
    !array_at(object, &["status", "loadBalancer", "ingress"]).is_empty()
}

fn service(object: &Value) -> HealthStatus {
    if str_at(object, &["spec", "type"]) == "LoadBalancer" && !has_load_balancer_ingress(object) {
        return status(HealthStatusCode::Progressing, "");
    }
    healthy()
}

fn ingress(object: &Value) -> HealthStatus {
    if has_load_balancer_ingress(object) {
        healthy()
    } else {
        status(HealthStatusCode::Progressing, "")
    }
}

fn api_service(object: &Value) -> HealthStatus {
    if let Some(available) = condition(object, "Available") {
        let message = format!(
            "{}: {}",
            str_at(available, &["reason"]),
            str_at(available, &["message"])
        );
        let code = if str_at(available, &["status"]) == "True" {
            HealthStatusCode::Healthy
        } else {
            HealthStatusCode::Progressing
        };
        return status(code, message);
    }
    status(HealthStatusCode::Progressing, "Waiting to be processed")
}

/// A child Application (app of apps) is as healthy as it reports itself.
fn application(object: &Value) -> HealthStatus {
    match at(object, &["status", "health"]) {
        Some(health) => {
            let code = parse_status_code(str_at(health, &["status"]))
                .unwrap_or(HealthStatusCode::Progressing);
            status(code, str_at(health, &["message"]))
        }
        None => status(HealthStatusCode::Progressing, ""),
    }
}

/// Parses a health status name exactly as Argo CD spells it.
pub fn parse_status_code(text: &str) -> Option<HealthStatusCode> {
    Some(match text {
        "Healthy" => HealthStatusCode::Healthy,
        "Progressing" => HealthStatusCode::Progressing,
        "Degraded" => HealthStatusCode::Degraded,
        "Suspended" => HealthStatusCode::Suspended,
        "Missing" => HealthStatusCode::Missing,
        "Unknown" => HealthStatusCode::Unknown,
        _ => return None,
    })
}
