//! The Deployment controller: a ReplicaSet per template (named by `pod-template-hash`,
//! numbered by `deployment.kubernetes.io/revision`), rolled out by `RollingUpdate`
//! (`maxSurge` / `maxUnavailable`) or `Recreate`, scaled, paused, rolled back (a template
//! equal to an older ReplicaSet's makes that one new again), old ReplicaSets beyond
//! `revisionHistoryLimit` removed, and the status and conditions kube-controller-manager
//! writes (`Available`, `Progressing` with `ProgressDeadlineExceeded`).

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::queue::Key;
use super::util::{
    annotation, int_at, is_deleting, meta, pod_is_active, scaled_value, str_at, template_hash,
};
use super::{Ctx, Outcome, check, events, gone};
use crate::objects::now_rfc3339;

const REVISION: &str = "deployment.kubernetes.io/revision";
const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
const DESIRED: &str = "deployment.kubernetes.io/desired-replicas";
const MAX: &str = "deployment.kubernetes.io/max-replicas";
const HASH_LABEL: &str = "pod-template-hash";

/// Annotations of a Deployment that are not copied to its ReplicaSets.
fn skip_annotation(key: &str) -> bool {
    matches!(
        key,
        "kubectl.kubernetes.io/last-applied-configuration"
            | REVISION
            | REVISION_HISTORY
            | DESIRED
            | MAX
    ) || key == "deprecated.deployment.rollback.to"
}

/// A ReplicaSet's template without the hash label (what a Deployment's template equals).
fn template_without_hash(rs: &Value) -> Value {
    let mut t = rs.pointer("/spec/template").cloned().unwrap_or(Value::Null);
    if let Some(labels) = t
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(HASH_LABEL);
    }
    comparable_template(t)
}

/// A pod template as kube-controller-manager compares it (`EqualIgnoreHash` on typed
/// templates): `metadata.creationTimestamp: null`, which kubectl writes back with
/// `rollout undo`, is the same as no timestamp, so a rollback finds the old ReplicaSet.
fn comparable_template(mut t: Value) -> Value {
    if let Some(m) = t.get_mut("metadata").and_then(Value::as_object_mut)
        && m.get("creationTimestamp").is_some_and(Value::is_null)
    {
        m.remove("creationTimestamp");
    }
    t
}

fn revision(rs: &Value) -> i64 {
    annotation(rs, REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn spec_replicas(rs: &Value) -> i64 {
    int_at(rs, "/spec/replicas").unwrap_or(0)
}

fn status_count(rs: &Value, field: &str) -> i64 {
    int_at(rs, &format!("/status/{field}")).unwrap_or(0)
}

/// `maxSurge` and `maxUnavailable` resolved against `replicas` (never both zero).
pub(crate) fn surge_and_unavailable(d: &Value, replicas: i64) -> (i64, i64) {
    if str_at(d, "/spec/strategy/type") == "Recreate" {
        return (0, 0);
    }
    let ru = d.pointer("/spec/strategy/rollingUpdate");
    let surge = scaled_value(ru.and_then(|r| r.get("maxSurge")), replicas, true, 0);
    let unavailable = scaled_value(ru.and_then(|r| r.get("maxUnavailable")), replicas, false, 0);
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

/// The new ReplicaSet's replica count under a rolling update (Kubernetes'
/// `NewRSNewReplicas`).
pub(crate) fn new_rs_replicas(replicas: i64, surge: i64, all_spec: i64, new_spec: i64) -> i64 {
    let max_total = replicas + surge;
    if all_spec >= max_total {
        return new_spec;
    }
    new_spec + (max_total - all_spec).min(replicas - new_spec).max(0)
}

/// How far the old ReplicaSets scale down under a rolling update: first their unhealthy
/// replicas, then as many available ones as the availability floor allows (Kubernetes'
/// `reconcileOldReplicaSets`). `old` is (spec, available) oldest first; returns new specs.
pub(crate) fn scale_down_old(
    old: &[(i64, i64)],
    replicas: i64,
    unavailable: i64,
    all_spec: i64,
    all_available: i64,
    new_spec: i64,
    new_available: i64,
) -> Vec<i64> {
    let mut specs: Vec<i64> = old.iter().map(|(s, _)| *s).collect();
    if specs.iter().sum::<i64>() == 0 {
        return specs;
    }
    let min_available = replicas - unavailable;
    let new_unavailable = new_spec - new_available;
    let max_scaled_down = all_spec - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return specs;
    }
    let mut cleaned = 0;
    for (i, (spec, available)) in old.iter().enumerate() {
        if cleaned >= max_scaled_down {
            break;
        }
        if spec == available {
            continue;
        }
        let n = (max_scaled_down - cleaned).min(spec - available);
        specs[i] -= n;
        cleaned += n;
    }
    let available_after = all_available;
    if available_after <= min_available {
        return specs;
    }
    let mut total = available_after - min_available;
    for spec in specs.iter_mut() {
        if total <= 0 {
            break;
        }
        if *spec == 0 {
            continue;
        }
        let n = (*spec).min(total);
        *spec -= n;
        total -= n;
    }
    specs
}

fn condition(type_: &str, status: &str, reason: &str, message: &str, now: &str) -> Value {
    json!({"type": type_, "status": status, "lastUpdateTime": now, "lastTransitionTime": now,
        "reason": reason, "message": message})
}

fn find_condition<'a>(conditions: &'a [Value], type_: &str) -> Option<&'a Value> {
    conditions.iter().find(|c| str_at(c, "/type") == type_)
}

/// Kubernetes' `SetDeploymentCondition`: an equal status and reason keeps the old entry;
/// the same status keeps its transition time; the entry moves to the end.
fn set_condition(conditions: &mut Vec<Value>, new: Value) {
    let type_ = str_at(&new, "/type").to_string();
    let mut new = new;
    if let Some(old) = find_condition(conditions, &type_) {
        if str_at(old, "/status") == str_at(&new, "/status")
            && str_at(old, "/reason") == str_at(&new, "/reason")
        {
            return;
        }
        if str_at(old, "/status") == str_at(&new, "/status") {
            new["lastTransitionTime"] = old
                .get("lastTransitionTime")
                .cloned()
                .unwrap_or(Value::Null);
        }
    }
    conditions.retain(|c| str_at(c, "/type") != type_);
    conditions.push(new);
}

pub(crate) async fn reconcile(ctx: &Ctx, key: &Key) -> Outcome {
    let Some(d) = ctx.get("apps/deployments", &key.namespace, &key.name) else {
        return Ok(None);
    };
    if is_deleting(&d) {
        return Ok(None);
    }
    let ns = &key.namespace;
    let path = format!("/apis/apps/v1/namespaces/{ns}/deployments/{}", key.name);
    let rs_collection = format!("/apis/apps/v1/namespaces/{ns}/replicasets");
    let now = now_rfc3339();
    let replicas = int_at(&d, "/spec/replicas").unwrap_or(1);
    let paused = d.pointer("/spec/paused").and_then(Value::as_bool) == Some(true);
    let recreate = str_at(&d, "/spec/strategy/type") == "Recreate";
    let template = d.pointer("/spec/template").cloned().unwrap_or(Value::Null);
    let collision_count = int_at(&d, "/status/collisionCount").unwrap_or(0);

    let mut all: Vec<Value> = ctx.owned("apps/replicasets", meta(&d, "uid"));
    all.retain(|rs| super::util::controller_of(rs).is_some_and(|(k, _, _)| k == "Deployment"));
    all.sort_by(|a, b| {
        meta(a, "creationTimestamp")
            .cmp(meta(b, "creationTimestamp"))
            .then(meta(a, "name").cmp(meta(b, "name")))
    });
    let max_revision = all.iter().map(revision).max().unwrap_or(0);
    let new_index = all
        .iter()
        .position(|rs| template_without_hash(rs) == comparable_template(template.clone()));
    let (surge, unavailable) = surge_and_unavailable(&d, replicas);
    let mut conditions: Vec<Value> = d
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut progress_note = None;

    // The new ReplicaSet: found, made current again (rollback), or created. A paused
    // Deployment starts no new rollout.
    let mut new_rs = match new_index {
        Some(i) => {
            let rs = all.remove(i);
            let rs = if revision(&rs) < max_revision && !paused {
                // An older template again: it becomes the newest revision.
                let old = revision(&rs);
                let mut history: Vec<String> = annotation(&rs, REVISION_HISTORY)
                    .map(|h| h.split(',').map(str::to_string).collect())
                    .unwrap_or_default();
                history.push(old.to_string());
                let answer = ctx
                    .kcm
                    .merge_patch(
                        &format!("{rs_collection}/{}", meta(&rs, "name")),
                        &json!({"metadata": {"annotations": {REVISION: (max_revision + 1).to_string(), REVISION_HISTORY: history.join(",")}}}),
                    )
                    .await;
                check(&answer, "replica set revision")?;
                answer.body
            } else {
                rs
            };
            if find_condition(&conditions, "Progressing").is_none() && !paused {
                let msg = format!("Found new replica set \"{}\"", meta(&rs, "name"));
                set_condition(
                    &mut conditions,
                    condition("Progressing", "True", "FoundNewReplicaSet", &msg, &now),
                );
            }
            Some(rs)
        }
        None if paused => None,
        None => {
            let mut t = template.clone();
            let hash = template_hash(t.to_string().as_bytes(), collision_count);
            if let Some(m) = t.as_object_mut() {
                let meta_obj = m.entry("metadata").or_insert_with(|| json!({}));
                if let Some(mo) = meta_obj.as_object_mut() {
                    let labels = mo.entry("labels").or_insert_with(|| json!({}));
                    labels[HASH_LABEL] = json!(hash);
                }
            }
            let mut selector = d
                .pointer("/spec/selector")
                .cloned()
                .unwrap_or_else(|| json!({}));
            if let Some(sel) = selector.as_object_mut() {
                let ml = sel.entry("matchLabels").or_insert_with(|| json!({}));
                ml[HASH_LABEL] = json!(hash);
            }
            let mut labels = d
                .pointer("/spec/template/metadata/labels")
                .cloned()
                .unwrap_or_else(|| json!({}));
            labels[HASH_LABEL] = json!(hash);
            let mut annotations: Map<String, Value> = d
                .pointer("/metadata/annotations")
                .and_then(Value::as_object)
                .map(|a| {
                    a.iter()
                        .filter(|(k, _)| !skip_annotation(k))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
                .unwrap_or_default();
            annotations.insert(DESIRED.into(), json!(replicas.to_string()));
            annotations.insert(MAX.into(), json!((replicas + surge).to_string()));
            annotations.insert(REVISION.into(), json!((max_revision + 1).to_string()));
            let name = format!("{}-{hash}", key.name);
            // As kube-controller-manager's getNewReplicaSet: the new ReplicaSet is created
            // with its first size (NewRSNewReplicas), not at zero and scaled afterwards, so
            // it starts at generation 1 as on a real cluster.
            let initial = if recreate {
                let old_active = all.iter().any(|o| {
                    spec_replicas(o) > 0
                        || ctx.owned("/pods", meta(o, "uid")).iter().any(pod_is_active)
                });
                if old_active { 0 } else { replicas }
            } else {
                new_rs_replicas(replicas, surge, all.iter().map(spec_replicas).sum(), 0)
            };
            let mut spec = json!({"replicas": initial, "selector": selector, "template": t});
            if let Some(m) = d.pointer("/spec/minReadySeconds") {
                spec["minReadySeconds"] = m.clone();
            }
            let rs = json!({
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": name, "namespace": ns, "labels": labels, "annotations": annotations,
                    "ownerReferences": [super::util::controller_ref(&d, "apps/v1", "Deployment")]},
                "spec": spec,
            });
            let answer = ctx.kcm.create(&rs_collection, &rs).await;
            if answer.code == 409 {
                // A ReplicaSet of that name that is not ours (or not yet seen): a hash
                // collision, as Kubernetes counts it.
                let mut status = d.get("status").cloned().unwrap_or_else(|| json!({}));
                status["collisionCount"] = json!(collision_count + 1);
                let _ = ctx
                    .kcm
                    .merge_patch(&format!("{path}/status"), &json!({"status": status}))
                    .await;
                return Err("replica set name taken; collision count raised".into());
            }
            check(&answer, "creating the replica set")?;
            if initial > 0 {
                events::record(
                    ctx,
                    events::DEPLOYMENT,
                    &d,
                    "Normal",
                    "ScalingReplicaSet",
                    &format!("Scaled up replica set {name} from 0 to {initial}"),
                )
                .await;
            }
            let msg = format!("Created new replica set \"{name}\"");
            set_condition(
                &mut conditions,
                condition("Progressing", "True", "NewReplicaSetCreated", &msg, &now),
            );
            progress_note = Some(());
            Some(answer.body)
        }
    };

    // Scale.
    let old: Vec<Value> = all;
    let all_spec: i64 = old.iter().map(spec_replicas).sum::<i64>()
        + new_rs.as_ref().map(spec_replicas).unwrap_or(0);
    let mut targets: Vec<(String, i64, i64)> = Vec::new(); // (name, from, to)
    let mut new_target = new_rs.as_ref().map(spec_replicas).unwrap_or(0);
    if paused {
        // Only scaling while paused: the newest ReplicaSet follows spec.replicas.
        if let Some(rs) = &new_rs
            && old.iter().all(|o| spec_replicas(o) == 0)
        {
            new_target = replicas;
            let _ = rs;
        }
    } else if recreate {
        for o in &old {
            if spec_replicas(o) > 0 {
                targets.push((meta(o, "name").to_string(), spec_replicas(o), 0));
            }
        }
        // As kube-controller-manager: a Pod still Terminating counts as running, so the new
        // Pods start only once every old one is gone.
        let old_pods_running = old.iter().any(|o| {
            ctx.owned("/pods", meta(o, "uid"))
                .iter()
                .any(|p| !matches!(super::util::pod_phase(p), "Succeeded" | "Failed"))
        });
        if targets.is_empty() && !old_pods_running {
            new_target = replicas;
        }
    } else if let Some(rs) = &new_rs {
        let new_spec = spec_replicas(rs);
        if new_spec > replicas {
            new_target = replicas;
        } else {
            new_target = new_rs_replicas(replicas, surge, all_spec, new_spec);
        }
        if new_target == new_spec {
            let olds: Vec<(i64, i64)> = old
                .iter()
                .map(|o| (spec_replicas(o), status_count(o, "availableReplicas")))
                .collect();
            let all_available =
                olds.iter().map(|(_, a)| a).sum::<i64>() + status_count(rs, "availableReplicas");
            let specs = scale_down_old(
                &olds,
                replicas,
                unavailable,
                all_spec,
                all_available,
                new_spec,
                status_count(rs, "availableReplicas"),
            );
            for (o, to) in old.iter().zip(specs) {
                if to != spec_replicas(o) {
                    targets.push((meta(o, "name").to_string(), spec_replicas(o), to));
                }
            }
        }
    }
    if let Some(rs) = &new_rs {
        let from = spec_replicas(rs);
        let desired_ok = annotation(rs, DESIRED) == Some(replicas.to_string().as_str())
            && annotation(rs, MAX) == Some((replicas + surge).to_string().as_str());
        if from != new_target || !desired_ok {
            targets.insert(0, (meta(rs, "name").to_string(), from, new_target));
        }
    }
    for (name, from, to) in &targets {
        let body = json!({"metadata": {"annotations": {DESIRED: replicas.to_string(), MAX: (replicas + surge).to_string()}},
            "spec": {"replicas": to}});
        let answer = ctx
            .kcm
            .merge_patch(&format!("{rs_collection}/{name}"), &body)
            .await;
        if gone(&answer) {
            continue;
        }
        check(&answer, "scaling a replica set")?;
        if from != to {
            let verb = if to > from { "up" } else { "down" };
            events::record(
                ctx,
                events::DEPLOYMENT,
                &d,
                "Normal",
                "ScalingReplicaSet",
                &format!("Scaled {verb} replica set {name} from {from} to {to}"),
            )
            .await;
        }
        if new_rs.as_ref().is_some_and(|rs| meta(rs, "name") == name) {
            new_rs = Some(answer.body);
        }
    }

    // The revision of the Deployment is its new ReplicaSet's.
    if let Some(rs) = &new_rs
        && annotation(&d, REVISION) != annotation(rs, REVISION)
        && let Some(rev) = annotation(rs, REVISION)
    {
        let answer = ctx
            .kcm
            .merge_patch(
                &path,
                &json!({"metadata": {"annotations": {REVISION: rev}}}),
            )
            .await;
        if gone(&answer) {
            return Ok(None);
        }
        check(&answer, "deployment revision")?;
    }

    // Cleanup of old ReplicaSets beyond the history limit, once nothing runs on them.
    let limit = int_at(&d, "/spec/revisionHistoryLimit").unwrap_or(10);
    let mut idle: Vec<&Value> = old
        .iter()
        .filter(|o| {
            spec_replicas(o) == 0
                && status_count(o, "replicas") == 0
                && !targets.iter().any(|(n, _, _)| n == meta(o, "name"))
        })
        .collect();
    if idle.len() as i64 > limit {
        idle.sort_by_key(|o| revision(o));
        let extra = idle.len() - limit.max(0) as usize;
        for o in idle.into_iter().take(extra) {
            let answer = ctx
                .kcm
                .delete(&format!("{rs_collection}/{}", meta(o, "name")), None)
                .await;
            if !answer.ok() && !gone(&answer) {
                return Err(format!("removing an old replica set: {}", answer.message()));
            }
        }
    }

    // Status, from the ReplicaSets as they are now.
    let fresh_old: Vec<Value> = old
        .iter()
        .map(|o| {
            ctx.get("apps/replicasets", ns, meta(o, "name"))
                .unwrap_or_else(|| o.clone())
        })
        .collect();
    let spec_of = |rs: &Value| {
        targets
            .iter()
            .find(|(n, _, _)| n == meta(rs, "name"))
            .map(|(_, _, to)| *to)
            .unwrap_or_else(|| spec_replicas(rs))
    };
    let everything: Vec<&Value> = fresh_old.iter().chain(new_rs.iter()).collect();
    let available: i64 = everything
        .iter()
        .map(|rs| status_count(rs, "availableReplicas"))
        .sum();
    let total_spec: i64 = everything.iter().map(|rs| spec_of(rs)).sum();
    let actual: i64 = everything
        .iter()
        .map(|rs| status_count(rs, "replicas"))
        .sum();
    let ready: i64 = everything
        .iter()
        .map(|rs| status_count(rs, "readyReplicas"))
        .sum();
    let updated = new_rs
        .as_ref()
        .map(|rs| status_count(rs, "replicas"))
        .unwrap_or(0);
    let unavailable_now = (total_spec - available).max(0);
    // GetTerminatingReplicaCountForReplicaSets: the sum, or nothing while any ReplicaSet
    // has not reported it yet (a ReplicaSet just created).
    let terminating: Option<i64> = everything
        .iter()
        .map(|rs| int_at(rs, "/status/terminatingReplicas"))
        .sum();
    let old_status = d.get("status").cloned().unwrap_or_else(|| json!({}));

    if available >= replicas - unavailable {
        set_condition(
            &mut conditions,
            condition(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
                &now,
            ),
        );
    } else {
        set_condition(
            &mut conditions,
            condition(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
                &now,
            ),
        );
    }
    let generation = int_at(&d, "/metadata/generation").unwrap_or(1);
    let complete = updated == replicas && available == replicas && actual == replicas;
    let deadline = int_at(&d, "/spec/progressDeadlineSeconds");
    let mut requeue = None;
    if paused {
        set_condition(
            &mut conditions,
            condition(
                "Progressing",
                "Unknown",
                "DeploymentPaused",
                "Deployment is paused",
                &now,
            ),
        );
    } else {
        if find_condition(&conditions, "Progressing")
            .is_some_and(|c| str_at(c, "/reason") == "DeploymentPaused")
        {
            set_condition(
                &mut conditions,
                condition(
                    "Progressing",
                    "Unknown",
                    "DeploymentResumed",
                    "Deployment is resumed",
                    &now,
                ),
            );
        }
        let rs_name = new_rs
            .as_ref()
            .map(|rs| meta(rs, "name").to_string())
            .unwrap_or_default();
        let old_old = int_at(&old_status, "/replicas").unwrap_or(0)
            - int_at(&old_status, "/updatedReplicas").unwrap_or(0);
        let progressing = updated > int_at(&old_status, "/updatedReplicas").unwrap_or(0)
            || actual - updated < old_old
            || ready > int_at(&old_status, "/readyReplicas").unwrap_or(0)
            || available > int_at(&old_status, "/availableReplicas").unwrap_or(0);
        let current = find_condition(&conditions, "Progressing").cloned();
        if complete {
            set_condition(
                &mut conditions,
                condition(
                    "Progressing",
                    "True",
                    "NewReplicaSetAvailable",
                    &format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
                    &now,
                ),
            );
        } else if progressing || progress_note.is_some() {
            let mut c = condition(
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                &format!("ReplicaSet \"{rs_name}\" is progressing."),
                &now,
            );
            if let Some(cur) = &current
                && str_at(cur, "/status") == "True"
            {
                c["lastTransitionTime"] = cur
                    .get("lastTransitionTime")
                    .cloned()
                    .unwrap_or(Value::Null);
            }
            conditions.retain(|x| str_at(x, "/type") != "Progressing");
            conditions.push(c);
        } else if let (Some(deadline), Some(cur)) = (deadline, &current) {
            let reason = str_at(cur, "/reason");
            if reason != "ProgressDeadlineExceeded" && reason != "NewReplicaSetAvailable" {
                let since = crate::objects::parse_rfc3339(str_at(cur, "/lastUpdateTime"));
                let nowt = time::OffsetDateTime::now_utc();
                match since {
                    Some(since) if since + time::Duration::seconds(deadline) <= nowt => {
                        set_condition(
                            &mut conditions,
                            condition(
                                "Progressing",
                                "False",
                                "ProgressDeadlineExceeded",
                                &format!("ReplicaSet \"{rs_name}\" has timed out progressing."),
                                &now,
                            ),
                        );
                    }
                    Some(since) => {
                        let left = (since + time::Duration::seconds(deadline) - nowt)
                            .whole_milliseconds()
                            .max(0);
                        requeue = Some(Duration::from_millis(
                            u64::try_from(left).unwrap_or(0) + 1000,
                        ));
                    }
                    None => {}
                }
            }
        }
        if !complete && requeue.is_none() && deadline.is_some() {
            let reason = find_condition(&conditions, "Progressing")
                .map(|c| str_at(c, "/reason").to_string());
            if reason.as_deref() != Some("ProgressDeadlineExceeded")
                && let Some(deadline) = deadline
            {
                requeue = Some(Duration::from_secs(
                    u64::try_from(deadline).unwrap_or(600) + 1,
                ));
            }
        }
    }
    let mut status = Map::new();
    status.insert("observedGeneration".into(), json!(generation));
    for (field, n) in [
        ("replicas", actual),
        ("updatedReplicas", updated),
        ("readyReplicas", ready),
        ("availableReplicas", available),
        ("unavailableReplicas", unavailable_now),
    ] {
        if n > 0 {
            status.insert(field.into(), json!(n));
        }
    }
    if let Some(terminating) = terminating {
        status.insert("terminatingReplicas".into(), json!(terminating));
    }
    status.insert("conditions".into(), Value::Array(conditions));
    if collision_count > 0 {
        status.insert("collisionCount".into(), json!(collision_count));
    }
    let Some(d) = ctx.get("apps/deployments", ns, &key.name) else {
        return Ok(None);
    };
    super::replicaset::write_status(ctx, &path, &d, Value::Object(status)).await?;
    Ok(requeue)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_resolve_as_kubernetes_rounds_them() {
        let d = json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}}});
        assert_eq!(surge_and_unavailable(&d, 3), (1, 0));
        assert_eq!(surge_and_unavailable(&d, 10), (3, 2));
        let zero =
            json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}}});
        assert_eq!(surge_and_unavailable(&zero, 3), (0, 1));
    }

    #[test]
    fn the_new_replica_set_grows_within_the_surge() {
        // 3 replicas, surge 1: the first step adds one while the old set still has 3.
        assert_eq!(new_rs_replicas(3, 1, 3, 0), 1);
        // Already at the ceiling: no growth.
        assert_eq!(new_rs_replicas(3, 1, 4, 1), 1);
        // Fresh Deployment: all at once.
        assert_eq!(new_rs_replicas(3, 1, 0, 0), 3);
    }

    #[test]
    fn old_replica_sets_shrink_only_as_far_as_availability_allows() {
        // 3 replicas, maxUnavailable 0: old set 3 available, new set 1 not yet available.
        assert_eq!(scale_down_old(&[(3, 3)], 3, 0, 4, 3, 1, 0), vec![3]);
        // The new pod is available: one old one may go.
        assert_eq!(scale_down_old(&[(3, 3)], 3, 0, 4, 4, 1, 1), vec![2]);
        // Unhealthy old replicas go first, whatever the floor.
        assert_eq!(scale_down_old(&[(3, 1)], 3, 1, 4, 2, 1, 1), vec![1]);
    }

    #[test]
    fn conditions_keep_their_transition_time_while_status_holds() {
        let mut cs = vec![condition(
            "Progressing",
            "True",
            "NewReplicaSetCreated",
            "m",
            "t1",
        )];
        set_condition(
            &mut cs,
            condition("Progressing", "True", "NewReplicaSetAvailable", "m2", "t2"),
        );
        assert_eq!(cs[0]["lastTransitionTime"], "t1");
        assert_eq!(cs[0]["lastUpdateTime"], "t2");
        set_condition(
            &mut cs,
            condition(
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                "m3",
                "t3",
            ),
        );
        assert_eq!(cs[0]["lastTransitionTime"], "t3");
    }
}
