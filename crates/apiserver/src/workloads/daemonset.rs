//! The DaemonSet controller: one Pod on every node (here the one simulated node), with the
//! node affinity and tolerations the DaemonSet controller adds, replaced when the template
//! changes (`RollingUpdate`, one at a time) and the status counts it writes.

use serde_json::{Map, Value, json};

use super::queue::Key;
use super::util::{
    int_at, is_deleting, label, meta, pod_is_active, pod_is_available, pod_is_ready, str_at,
};
use super::{Ctx, NODE_NAME, Outcome, check, events, gone};

const GENERATION_LABEL: &str = "pod-template-generation";

fn daemon_tolerations() -> Vec<Value> {
    [
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ]
    .iter()
    .map(|(key, effect)| json!({"key": key, "operator": "Exists", "effect": effect}))
    .collect()
}

pub(crate) async fn reconcile(ctx: &Ctx, key: &Key) -> Outcome {
    let Some(ds) = ctx.get("apps/daemonsets", &key.namespace, &key.name) else {
        return Ok(None);
    };
    if is_deleting(&ds) {
        return Ok(None);
    }
    let ns = &key.namespace;
    let path = format!("/apis/apps/v1/namespaces/{ns}/daemonsets/{}", key.name);
    let pods_path = format!("/api/v1/namespaces/{ns}/pods");
    let generation = int_at(&ds, "/metadata/generation").unwrap_or(1).to_string();
    let revision = format!(
        "{}-{}",
        key.name,
        super::util::template_hash(
            ds.pointer("/spec/template")
                .map(Value::to_string)
                .unwrap_or_default()
                .as_bytes(),
            0
        )
    );
    super::statefulset::ensure_revision(ctx, &ds, "DaemonSet", &revision).await?;
    let hash = revision.rsplit('-').next().unwrap_or("").to_string();
    let node_exists = ctx.get("/nodes", "", NODE_NAME).is_some();
    let desired = i64::from(node_exists);
    let min_ready = int_at(&ds, "/spec/minReadySeconds").unwrap_or(0);
    let now = time::OffsetDateTime::now_utc();

    let pods: Vec<Value> = ctx
        .owned("/pods", meta(&ds, "uid"))
        .into_iter()
        .filter(pod_is_active)
        .collect();
    if pods.is_empty() && node_exists {
        let mut pod = super::replicaset::pod_from_template(
            &ds,
            "apps/v1",
            "DaemonSet",
            None,
            &[
                ("controller-revision-hash", &hash),
                (GENERATION_LABEL, &generation),
            ],
        );
        pod["spec"]["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [NODE_NAME]}]}]}}});
        let mut tolerations = pod
            .pointer("/spec/tolerations")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        tolerations.extend(daemon_tolerations());
        pod["spec"]["tolerations"] = Value::Array(tolerations);
        let answer = ctx.kcm.create(&pods_path, &pod).await;
        check(&answer, "creating a daemon pod")?;
        events::record(
            ctx,
            events::DAEMONSET,
            &ds,
            "Normal",
            "SuccessfulCreate",
            &format!("Created pod: {}", meta(&answer.body, "name")),
        )
        .await;
    } else if str_at(&ds, "/spec/updateStrategy/type") != "OnDelete" {
        // A Pod of an older template generation is replaced.
        for p in pods
            .iter()
            .filter(|p| label(p, GENERATION_LABEL) != Some(generation.as_str()))
            .take(1)
        {
            let answer = ctx
                .kcm
                .delete(&format!("{pods_path}/{}", meta(p, "name")), None)
                .await;
            if !answer.ok() && !gone(&answer) {
                return Err(format!("replacing a daemon pod: {}", answer.message()));
            }
            events::record(
                ctx,
                events::DAEMONSET,
                &ds,
                "Normal",
                "SuccessfulDelete",
                &format!("Deleted pod: {}", meta(p, "name")),
            )
            .await;
        }
    }
    let scheduled = pods.len() as i64;
    let ready = pods.iter().filter(|p| pod_is_ready(p)).count() as i64;
    let available = pods
        .iter()
        .filter(|p| pod_is_available(p, min_ready, now))
        .count() as i64;
    let updated = pods
        .iter()
        .filter(|p| label(p, GENERATION_LABEL) == Some(generation.as_str()))
        .count() as i64;
    let mut status = Map::new();
    status.insert("currentNumberScheduled".into(), json!(scheduled));
    status.insert("desiredNumberScheduled".into(), json!(desired));
    if available > 0 {
        status.insert("numberAvailable".into(), json!(available));
    }
    status.insert("numberMisscheduled".into(), json!(0));
    status.insert("numberReady".into(), json!(ready));
    if desired - available > 0 {
        status.insert("numberUnavailable".into(), json!(desired - available));
    }
    status.insert(
        "observedGeneration".into(),
        json!(int_at(&ds, "/metadata/generation").unwrap_or(1)),
    );
    if updated > 0 {
        status.insert("updatedNumberScheduled".into(), json!(updated));
    }
    super::replicaset::write_status(ctx, &path, &ds, Value::Object(status)).await?;
    Ok(None)
}
