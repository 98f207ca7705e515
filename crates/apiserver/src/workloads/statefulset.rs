//! The StatefulSet controller: Pods `<name>-0 … <name>-N-1`, created in order and each only
//! once the ones before it run and are Ready (`OrderedReady`, or all at once with
//! `Parallel`), removed from the highest ordinal, a `ControllerRevision` per template, and
//! rolling updates that replace the highest out-of-date Pod first.

use serde_json::{Map, Value, json};

use super::queue::Key;
use super::util::{
    int_at, is_deleting, label, meta, pod_is_active, pod_is_available, pod_is_ready, str_at,
    template_hash,
};
use super::{Ctx, Outcome, check, events, gone};

const REVISION_LABEL: &str = "controller-revision-hash";

/// The revision name of the StatefulSet's current template.
fn revision_name(sts: &Value) -> String {
    let template = sts
        .pointer("/spec/template")
        .cloned()
        .unwrap_or(Value::Null);
    let collisions = int_at(sts, "/status/collisionCount").unwrap_or(0);
    format!(
        "{}-{}",
        meta(sts, "name"),
        template_hash(template.to_string().as_bytes(), collisions)
    )
}

/// Makes sure the ControllerRevision of the current template exists; answers its number.
pub(crate) async fn ensure_revision(
    ctx: &Ctx,
    owner: &Value,
    kind: &str,
    name: &str,
) -> Result<i64, String> {
    let ns = meta(owner, "namespace");
    let existing = ctx.owned("apps/controllerrevisions", meta(owner, "uid"));
    if let Some(r) = existing.iter().find(|r| meta(r, "name") == name) {
        return Ok(int_at(r, "/revision").unwrap_or(1));
    }
    let next = existing
        .iter()
        .filter_map(|r| int_at(r, "/revision"))
        .max()
        .unwrap_or(0)
        + 1;
    let mut template = owner
        .pointer("/spec/template")
        .cloned()
        .unwrap_or(Value::Null);
    if let Some(t) = template.as_object_mut() {
        t.insert("$patch".into(), json!("replace"));
    }
    let mut labels = owner
        .pointer("/spec/template/metadata/labels")
        .cloned()
        .unwrap_or_else(|| json!({}));
    labels[REVISION_LABEL] = json!(name.rsplit('-').next().unwrap_or(""));
    let revision = json!({
        "apiVersion": "apps/v1", "kind": "ControllerRevision",
        "metadata": {"name": name, "namespace": ns, "labels": labels,
            "ownerReferences": [super::util::controller_ref(owner, "apps/v1", kind)]},
        "data": {"spec": {"template": template}},
        "revision": next,
    });
    let answer = ctx
        .kcm
        .create(
            &format!("/apis/apps/v1/namespaces/{ns}/controllerrevisions"),
            &revision,
        )
        .await;
    if answer.code == 409 {
        return Ok(next);
    }
    check(&answer, "creating a controller revision")?;
    Ok(next)
}

fn ordinal(pod: &Value, set: &str) -> Option<i64> {
    meta(pod, "name")
        .strip_prefix(set)?
        .strip_prefix('-')?
        .parse()
        .ok()
}

pub(crate) async fn reconcile(ctx: &Ctx, key: &Key) -> Outcome {
    let Some(sts) = ctx.get("apps/statefulsets", &key.namespace, &key.name) else {
        return Ok(None);
    };
    if is_deleting(&sts) {
        return Ok(None);
    }
    let ns = &key.namespace;
    let name = &key.name;
    let path = format!("/apis/apps/v1/namespaces/{ns}/statefulsets/{name}");
    let pods_path = format!("/api/v1/namespaces/{ns}/pods");
    let update_revision = revision_name(&sts);
    ensure_revision(ctx, &sts, "StatefulSet", &update_revision).await?;
    let replicas = int_at(&sts, "/spec/replicas").unwrap_or(1);
    let parallel = str_at(&sts, "/spec/podManagementPolicy") == "Parallel";
    let on_delete = str_at(&sts, "/spec/updateStrategy/type") == "OnDelete";
    let min_ready = int_at(&sts, "/spec/minReadySeconds").unwrap_or(0);
    let now = time::OffsetDateTime::now_utc();

    let mut pods: Vec<Value> = ctx
        .owned("/pods", meta(&sts, "uid"))
        .into_iter()
        .filter(|p| ordinal(p, name).is_some())
        .collect();
    pods.sort_by_key(|p| ordinal(p, name).unwrap_or(0));
    let healthy = |p: &Value| pod_is_active(p) && pod_is_ready(p);
    let hash = update_revision.rsplit('-').next().unwrap_or("").to_string();

    // Create missing ordinals in order.
    let mut changed = false;
    for i in 0..replicas {
        let pod_name = format!("{name}-{i}");
        if pods.iter().any(|p| meta(p, "name") == pod_name) {
            continue;
        }
        if !parallel
            && !pods
                .iter()
                .filter(|p| ordinal(p, name).is_some_and(|o| o < i))
                .all(healthy)
        {
            break;
        }
        let index = i.to_string();
        let pod = super::replicaset::pod_from_template(
            &sts,
            "apps/v1",
            "StatefulSet",
            Some(&pod_name),
            &[
                (REVISION_LABEL, &update_revision),
                ("statefulset.kubernetes.io/pod-name", &pod_name),
                ("apps.kubernetes.io/pod-index", &index),
            ],
        );
        let mut pod = pod;
        if let Some(svc) = sts.pointer("/spec/serviceName").and_then(Value::as_str) {
            pod["spec"]["hostname"] = json!(pod_name);
            pod["spec"]["subdomain"] = json!(svc);
        }
        // Each claim template gives the Pod its own claim (`<template>-<pod>`), created first
        // and kept when the Pod goes (retention policy Retain, the default).
        for template in sts
            .pointer("/spec/volumeClaimTemplates")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let claim = claim_for(template, &sts, &pod_name);
            let claim_name = meta(&claim, "name").to_string();
            if ctx
                .get("/persistentvolumeclaims", ns, &claim_name)
                .is_none()
            {
                let collection = format!("/api/v1/namespaces/{ns}/persistentvolumeclaims");
                let answer = ctx.kcm.create(&collection, &claim).await;
                if answer.code != 409 {
                    check(&answer, "creating a stateful pod's claim")?;
                }
            }
            let volume = json!({"name": meta(template, "name"), "persistentVolumeClaim": {"claimName": claim_name}});
            let volumes = pod["spec"]
                .as_object_mut()
                .map(|spec| spec.entry("volumes").or_insert_with(|| json!([])));
            if let Some(Value::Array(list)) = volumes {
                list.retain(|v| v.get("name") != volume.get("name"));
                list.push(volume);
            }
        }
        let answer = ctx.kcm.create(&pods_path, &pod).await;
        if answer.code == 409 {
            continue;
        }
        check(&answer, "creating a stateful pod")?;
        events::record(
            ctx,
            events::STATEFULSET,
            &sts,
            "Normal",
            "SuccessfulCreate",
            &format!("create Pod {pod_name} in StatefulSet {name} successful"),
        )
        .await;
        changed = true;
        if !parallel {
            break;
        }
    }
    // Remove ordinals beyond replicas, highest first, one at a time unless Parallel.
    if !changed {
        let mut extra: Vec<&Value> = pods
            .iter()
            .filter(|p| ordinal(p, name).is_some_and(|o| o >= replicas) && !is_deleting(p))
            .collect();
        extra.reverse();
        for p in extra {
            delete_pod(ctx, &sts, &pods_path, p).await?;
            changed = true;
            if !parallel {
                break;
            }
        }
    }
    // Rolling update: once all are healthy, replace the highest out-of-date Pod.
    let in_range: Vec<&Value> = pods
        .iter()
        .filter(|p| ordinal(p, name).is_some_and(|o| o < replicas))
        .collect();
    if !changed
        && !on_delete
        && in_range.len() as i64 == replicas
        && in_range.iter().all(|p| healthy(p))
    {
        let partition = int_at(&sts, "/spec/updateStrategy/rollingUpdate/partition").unwrap_or(0);
        if let Some(p) = in_range.iter().rev().find(|p| {
            label(p, REVISION_LABEL) != Some(update_revision.as_str())
                && ordinal(p, name).is_some_and(|o| o >= partition)
        }) {
            delete_pod(ctx, &sts, &pods_path, p).await?;
        }
    }

    let active: Vec<&Value> = pods.iter().filter(|p| pod_is_active(p)).collect();
    let updated = active
        .iter()
        .filter(|p| label(p, REVISION_LABEL) == Some(update_revision.as_str()))
        .count() as i64;
    let current_revision = match str_at(&sts, "/status/currentRevision") {
        "" => update_revision.clone(),
        r if updated == replicas && active.len() as i64 == replicas => {
            let _ = r;
            update_revision.clone()
        }
        r => r.to_string(),
    };
    let current = active
        .iter()
        .filter(|p| label(p, REVISION_LABEL) == Some(current_revision.as_str()))
        .count() as i64;
    let ready = active.iter().filter(|p| pod_is_ready(p)).count() as i64;
    let available = active
        .iter()
        .filter(|p| pod_is_available(p, min_ready, now))
        .count() as i64;
    let mut status = Map::new();
    status.insert(
        "observedGeneration".into(),
        json!(int_at(&sts, "/metadata/generation").unwrap_or(1)),
    );
    status.insert("replicas".into(), json!(active.len()));
    if ready > 0 {
        status.insert("readyReplicas".into(), json!(ready));
    }
    if current > 0 {
        status.insert("currentReplicas".into(), json!(current));
    }
    if updated > 0 {
        status.insert("updatedReplicas".into(), json!(updated));
    }
    status.insert("currentRevision".into(), json!(current_revision));
    status.insert("updateRevision".into(), json!(update_revision));
    status.insert(
        "collisionCount".into(),
        json!(int_at(&sts, "/status/collisionCount").unwrap_or(0)),
    );
    status.insert("availableReplicas".into(), json!(available));
    let _ = hash;
    super::replicaset::write_status(ctx, &path, &sts, Value::Object(status)).await?;
    if min_ready > 0 && available < ready {
        return Ok(Some(std::time::Duration::from_secs(1)));
    }
    Ok(None)
}

/// Deletes one of the StatefulSet's Pods and records it as its controller does.
async fn delete_pod(ctx: &Ctx, sts: &Value, pods_path: &str, pod: &Value) -> Result<(), String> {
    let pod_name = meta(pod, "name");
    let answer = ctx
        .kcm
        .delete(&format!("{pods_path}/{pod_name}"), None)
        .await;
    if !answer.ok() && !gone(&answer) {
        return Err(format!(
            "deleting stateful pod {pod_name}: {}",
            answer.message()
        ));
    }
    events::record(
        ctx,
        events::STATEFULSET,
        sts,
        "Normal",
        "SuccessfulDelete",
        &format!(
            "delete Pod {pod_name} in StatefulSet {} successful",
            meta(sts, "name")
        ),
    )
    .await;
    Ok(())
}

/// The claim one of a StatefulSet's claim templates gives one of its Pods (pure): named
/// `<template>-<pod>`, labelled with the StatefulSet's selector labels.
pub(crate) fn claim_for(template: &Value, sts: &Value, pod_name: &str) -> Value {
    let mut claim = template.clone();
    let name = format!("{}-{pod_name}", meta(template, "name"));
    if let Some(o) = claim.as_object_mut() {
        o.insert("apiVersion".into(), json!("v1"));
        o.insert("kind".into(), json!("PersistentVolumeClaim"));
        o.remove("status");
    }
    let mut labels = template
        .pointer("/metadata/labels")
        .cloned()
        .unwrap_or_else(|| json!({}));
    if let (Some(labels), Some(selector)) = (
        labels.as_object_mut(),
        sts.pointer("/spec/selector/matchLabels")
            .and_then(Value::as_object),
    ) {
        for (k, v) in selector {
            labels.insert(k.clone(), v.clone());
        }
    }
    claim["metadata"] =
        json!({"name": name, "namespace": meta(sts, "namespace"), "labels": labels});
    claim
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_pod_gets_its_own_claim() {
        let sts = json!({"metadata": {"name": "db", "namespace": "ns"}, "spec": {"selector": {"matchLabels": {"app": "db"}}}});
        let template = json!({"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
        let claim = claim_for(&template, &sts, "db-1");
        assert_eq!(claim["metadata"]["name"], "data-db-1");
        assert_eq!(claim["metadata"]["namespace"], "ns");
        assert_eq!(claim["metadata"]["labels"]["app"], "db");
        assert_eq!(claim["kind"], "PersistentVolumeClaim");
        assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "1Gi");
    }
}
