//! The ReplicaSet controller: keeps `spec.replicas` Pods of the template, and reports how
//! many exist, are Ready and are available.

use serde_json::{Map, Value, json};

use super::queue::Key;
use super::util::{
    int_at, is_deleting, meta, pod_is_active, pod_is_available, pod_is_ready, pod_ready_since,
};
use super::{Ctx, Outcome, check, events, gone};

/// A Pod of `owner`'s template, owned by it; `name` is a fixed name, else the owner's
/// name is the `generateName` prefix.
pub(crate) fn pod_from_template(
    owner: &Value,
    owner_api_version: &str,
    owner_kind: &str,
    name: Option<&str>,
    extra_labels: &[(&str, &str)],
) -> Value {
    let template = owner
        .pointer("/spec/template")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let mut metadata = template
        .get("metadata")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for field in [
        "name",
        "generateName",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        metadata.remove(field);
    }
    let labels = metadata
        .entry("labels")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(labels) = labels.as_object_mut() {
        for (k, v) in extra_labels {
            labels.insert((*k).to_string(), json!(v));
        }
    }
    match name {
        Some(n) => metadata.insert("name".into(), json!(n)),
        None => metadata.insert(
            "generateName".into(),
            json!(format!("{}-", meta(owner, "name"))),
        ),
    };
    metadata.insert("namespace".into(), json!(meta(owner, "namespace")));
    metadata.insert(
        "ownerReferences".into(),
        json!([super::util::controller_ref(
            owner,
            owner_api_version,
            owner_kind
        )]),
    );
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": template.get("spec").cloned().unwrap_or_else(|| json!({})),
    })
}

/// The Pods that must go first when scaling down: Kubernetes' order (unscheduled before
/// scheduled, Pending before Running, not Ready before Ready, Ready for less time first,
/// newer first).
pub(crate) fn deletion_order(pods: &mut [Value]) {
    pods.sort_by_key(|p| {
        let scheduled = !super::util::str_at(p, "/spec/nodeName").is_empty();
        let running = super::util::pod_phase(p) == "Running";
        let ready = pod_is_ready(p);
        let since = pod_ready_since(p).map(|t| -t.unix_timestamp()).unwrap_or(0);
        let created = super::util::meta(p, "creationTimestamp").to_string();
        (scheduled, running, ready, since, std::cmp::Reverse(created))
    });
}

/// What the controller computes from the ReplicaSet and its Pods (pure).
pub(crate) struct Counts {
    pub replicas: i64,
    pub fully_labeled: i64,
    pub ready: i64,
    pub available: i64,
    /// Pods being deleted that have not ended (set by the caller, which sees them).
    pub terminating: i64,
}

pub(crate) fn counts(rs: &Value, active: &[Value], now: time::OffsetDateTime) -> Counts {
    let min_ready = int_at(rs, "/spec/minReadySeconds").unwrap_or(0);
    let template_labels = rs
        .pointer("/spec/template/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let fully_labeled = active
        .iter()
        .filter(|p| {
            template_labels
                .iter()
                .all(|(k, v)| p.pointer("/metadata/labels").and_then(|l| l.get(k)) == Some(v))
        })
        .count();
    Counts {
        replicas: active.len() as i64,
        fully_labeled: fully_labeled as i64,
        ready: active.iter().filter(|p| pod_is_ready(p)).count() as i64,
        available: active
            .iter()
            .filter(|p| pod_is_available(p, min_ready, now))
            .count() as i64,
        terminating: 0,
    }
}

/// The status kube-controller-manager writes (zero counts left out; `replicas` always, and
/// `terminatingReplicas` always, as 1.37 writes it with DeploymentReplicaSetTerminatingReplicas
/// on by default).
pub(crate) fn status(rs: &Value, c: &Counts) -> Value {
    let mut status = Map::new();
    status.insert("replicas".into(), json!(c.replicas));
    status.insert("terminatingReplicas".into(), json!(c.terminating));
    for (field, n) in [
        ("fullyLabeledReplicas", c.fully_labeled),
        ("readyReplicas", c.ready),
        ("availableReplicas", c.available),
    ] {
        if n > 0 {
            status.insert(field.into(), json!(n));
        }
    }
    status.insert(
        "observedGeneration".into(),
        json!(int_at(rs, "/metadata/generation").unwrap_or(1)),
    );
    Value::Object(status)
}

/// Writes `status` as the controller's view unless it says the same already.
pub(crate) async fn write_status(
    ctx: &Ctx,
    path: &str,
    object: &Value,
    status: Value,
) -> Result<(), String> {
    let current = object.get("status").cloned().unwrap_or(Value::Null);
    if same_status(&current, &status) {
        return Ok(());
    }
    let mut body = object.clone();
    body["status"] = status;
    let answer = ctx.kcm.update(&format!("{path}/status"), &body).await;
    if gone(&answer) {
        return Ok(());
    }
    check(&answer, "status")
}

/// Equal when every field of `new` has the same value in `old` and `old` has no others.
fn same_status(old: &Value, new: &Value) -> bool {
    old == new
}

pub(crate) async fn reconcile(ctx: &Ctx, key: &Key) -> Outcome {
    let Some(rs) = ctx.get("apps/replicasets", &key.namespace, &key.name) else {
        return Ok(None);
    };
    let path = format!(
        "/apis/apps/v1/namespaces/{}/replicasets/{}",
        key.namespace, key.name
    );
    let owned = ctx.owned("/pods", meta(&rs, "uid"));
    // As the controller's FilterTerminatingPods: deleting, and not Succeeded or Failed.
    let terminating = owned
        .iter()
        .filter(|p| is_deleting(p) && !matches!(super::util::pod_phase(p), "Succeeded" | "Failed"))
        .count() as i64;
    let mut active: Vec<Value> = owned.into_iter().filter(pod_is_active).collect();
    let now = time::OffsetDateTime::now_utc();
    if is_deleting(&rs) {
        return Ok(None);
    }
    let want = int_at(&rs, "/spec/replicas").unwrap_or(1);
    let have = active.len() as i64;
    let pods_path = format!("/api/v1/namespaces/{}/pods", key.namespace);
    if want > have {
        // Kubernetes creates in slow-start batches; 500 at a time keeps one huge
        // ReplicaSet from starving everyone else while still converging quickly.
        let batch = (want - have).min(500);
        let mut created = 0;
        let mut first_error = None;
        let creates = (0..batch).map(|_| {
            let pod = pod_from_template(&rs, "apps/v1", "ReplicaSet", None, &[]);
            let ctx = ctx.clone();
            let pods_path = pods_path.clone();
            async move { ctx.kcm.create(&pods_path, &pod).await }
        });
        for answer in futures::future::join_all(creates).await {
            if answer.ok() {
                created += 1;
                events::record(
                    ctx,
                    events::REPLICASET,
                    &rs,
                    "Normal",
                    "SuccessfulCreate",
                    &format!("Created pod: {}", meta(&answer.body, "name")),
                )
                .await;
                active.push(answer.body);
            } else if first_error.is_none() {
                events::record(
                    ctx,
                    events::REPLICASET,
                    &rs,
                    "Warning",
                    "FailedCreate",
                    &format!("Error creating: {}", answer.message()),
                )
                .await;
                first_error = Some(format!("creating pods: {}", answer.message()));
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        if created < want - have {
            ctx.queue.add(key.clone());
        }
    } else if want < have {
        deletion_order(&mut active);
        let extra: Vec<Value> = active.drain(..(have - want) as usize).collect();
        for pod in extra {
            let answer = ctx
                .kcm
                .delete(&format!("{pods_path}/{}", meta(&pod, "name")), None)
                .await;
            if answer.ok() {
                events::record(
                    ctx,
                    events::REPLICASET,
                    &rs,
                    "Normal",
                    "SuccessfulDelete",
                    &format!("Deleted pod: {}", meta(&pod, "name")),
                )
                .await;
            } else if !gone(&answer) {
                return Err(format!("deleting a pod: {}", answer.message()));
            }
        }
    }
    let c = Counts {
        terminating,
        ..counts(&rs, &active, now)
    };
    write_status(ctx, &path, &rs, status(&rs, &c)).await?;
    // Pods Ready but not yet available for minReadySeconds: look again when they are.
    let min_ready = int_at(&rs, "/spec/minReadySeconds").unwrap_or(0);
    if min_ready > 0 && c.available < c.ready {
        return Ok(Some(std::time::Duration::from_secs(1)));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, node: &str, phase: &str, ready: bool) -> Value {
        let mut p = json!({"metadata": {"name": name, "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"nodeName": node}, "status": {"phase": phase}});
        if ready {
            p["status"]["conditions"] = json!([{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]);
        }
        p
    }

    #[test]
    fn unscheduled_and_unready_pods_are_deleted_first() {
        let mut pods = vec![
            pod("ready", "n", "Running", true),
            pod("unscheduled", "", "Pending", false),
            pod("starting", "n", "Pending", false),
        ];
        deletion_order(&mut pods);
        let names: Vec<&str> = pods.iter().map(|p| meta(p, "name")).collect();
        assert_eq!(names, ["unscheduled", "starting", "ready"]);
    }

    #[test]
    fn status_leaves_out_zero_counts_but_not_replicas_or_terminating() {
        let rs = json!({"metadata": {"generation": 3}, "spec": {"template": {"metadata": {"labels": {"a": "b"}}}}});
        let c = counts(&rs, &[], time::OffsetDateTime::now_utc());
        assert_eq!(
            status(&rs, &c),
            json!({"replicas": 0, "terminatingReplicas": 0, "observedGeneration": 3})
        );
    }
}
