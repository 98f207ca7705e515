//! The node, kube-scheduler and a kubelet that runs no containers: a Pod is bound to
//! `plumb-node`, shows ContainerCreating, and after the configured delay runs and is
//! Ready (or fails as its `testcluster.plumb.dev/failure` label asks); a Job's Pod then
//! completes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::queue::Key;
use super::util::{controller_of, is_deleting, meta, pod_phase, str_at};
use super::{Ctx, FAILURE_LABEL, NODE_NAME, Outcome, check, events, gone};
use crate::objects::now_rfc3339;

pub(crate) const NODE_IP: &str = "10.89.0.2";

/// When the kubelet last moved each Pod (by uid), so that delays below a second are kept
/// although status times have whole seconds. Entries go when a Pod needs no more timers.
static POD_CLOCK: LazyLock<Mutex<HashMap<String, Instant>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));
static NEXT_POD_IP: AtomicU32 = AtomicU32::new(1);

fn pod_ip() -> String {
    // 10.244.0.0/16, skipping .0 and .255 of each /24.
    let n = NEXT_POD_IP.fetch_add(1, Ordering::Relaxed) % (254 * 256);
    format!("10.244.{}.{}", n / 254, n % 254 + 1)
}

/// The counter's position of a Pod IP `pod_ip` gave out.
fn pod_ip_index(ip: &str) -> Option<u32> {
    let rest = ip.strip_prefix("10.244.")?;
    let (third, fourth) = rest.split_once('.')?;
    let (third, fourth): (u32, u32) = (third.parse().ok()?, fourth.parse().ok()?);
    (1..=254)
        .contains(&fourth)
        .then(|| third * 254 + fourth - 1)
}

/// Moves the IP counter past the addresses stored Pods hold, so that a restarted server
/// does not give a new Pod the address of one that kept running.
pub(crate) fn continue_pod_ips(ctx: &Ctx) {
    let (pods, _) = ctx.state.store().list("/pods", None, None);
    let highest = pods
        .iter()
        .filter_map(|p| p.value().ok())
        .filter_map(|p| pod_ip_index(super::util::str_at(&p, "/status/podIP")))
        .max();
    if let Some(highest) = highest {
        NEXT_POD_IP.fetch_max(highest + 1, Ordering::Relaxed);
    }
}

fn clock_since(uid: &str) -> Option<Duration> {
    POD_CLOCK.lock().ok()?.get(uid).map(|at| at.elapsed())
}

fn clock_set(uid: &str) {
    if let Ok(mut clock) = POD_CLOCK.lock() {
        if clock.len() > 100_000 {
            // Pods deleted before their timer: forget the oldest half rather than grow.
            let mut times: Vec<Instant> = clock.values().copied().collect();
            times.sort();
            let cut = times[times.len() / 2];
            clock.retain(|_, at| *at > cut);
        }
        clock.insert(uid.to_string(), Instant::now());
    }
}

fn clock_clear(uid: &str) {
    if let Ok(mut clock) = POD_CLOCK.lock() {
        clock.remove(uid);
    }
}

/// The node object as the kubelet registers it.
fn node_object() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": NODE_NAME,
            "labels": {
                "beta.kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/hostname": NODE_NAME,
                "kubernetes.io/os": "linux",
                "node-role.kubernetes.io/agent": "",
                "type": "plumb",
            },
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {},
    })
}

fn node_status(now: &str) -> Value {
    let condition = |type_: &str, status: &str, reason: &str, message: &str| {
        json!({"type": type_, "status": status, "reason": reason, "message": message,
            "lastHeartbeatTime": now, "lastTransitionTime": now})
    };
    json!({
        "conditions": [
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ],
        "addresses": [
            {"type": "InternalIP", "address": NODE_IP},
            {"type": "Hostname", "address": NODE_NAME},
        ],
        "capacity": {"cpu": "32", "memory": "256Gi", "pods": "10000", "ephemeral-storage": "100Gi"},
        "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "10000", "ephemeral-storage": "100Gi"},
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "architecture": "amd64", "operatingSystem": "linux",
            "kubeletVersion": "v1.37.2", "kubeProxyVersion": "",
            "containerRuntimeVersion": "plumb://simulated", "osImage": "plumb simulated node",
            "kernelVersion": "", "machineID": "", "systemUUID": "", "bootID": "",
        },
        "phase": "",
    })
}

/// Registers the node if it is missing (the kubelet's first act).
pub(crate) async fn ensure_node(ctx: Ctx) {
    for _ in 0..50 {
        if ctx.get("/nodes", "", NODE_NAME).is_some() {
            return;
        }
        let answer = ctx.kubelet.create("/api/v1/nodes", &node_object()).await;
        if answer.ok() || answer.code == 409 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The node is Ready, and the node lifecycle controller lifts the not-ready taint.
pub(crate) async fn reconcile_node(ctx: &Ctx, key: &Key) -> Outcome {
    if key.name != NODE_NAME {
        return Ok(None);
    }
    let Some(node) = ctx.get("/nodes", "", NODE_NAME) else {
        // Deleted by someone: the kubelet registers again.
        ensure_node(ctx.clone()).await;
        return Ok(None);
    };
    let ready = node
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some("Ready")
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        });
    let path = format!("/api/v1/nodes/{NODE_NAME}");
    if !ready {
        let answer = ctx
            .kubelet
            .merge_patch(
                &format!("{path}/status"),
                &json!({"status": node_status(&now_rfc3339())}),
            )
            .await;
        check(&answer, "node status")?;
        events::record(
            ctx,
            events::KUBELET,
            &node,
            "Normal",
            "NodeReady",
            &format!("Node {NODE_NAME} status is now: NodeReady"),
        )
        .await;
        return Ok(None);
    }
    let taints = node
        .pointer("/spec/taints")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let kept: Vec<Value> = taints
        .iter()
        .filter(|t| t.get("key").and_then(Value::as_str) != Some("node.kubernetes.io/not-ready"))
        .cloned()
        .collect();
    if kept.len() != taints.len() {
        let taints = if kept.is_empty() {
            Value::Null
        } else {
            Value::Array(kept)
        };
        let answer = ctx
            .kcm
            .merge_patch(&path, &json!({"spec": {"taints": taints}}))
            .await;
        check(&answer, "node taints")?;
    }
    Ok(None)
}

/// How the Pod's failure label says it should fail.
fn failure(pod: &Value) -> Option<&str> {
    super::util::label(pod, FAILURE_LABEL)
}

fn condition(
    type_: &str,
    status: &str,
    reason: Option<&str>,
    message: Option<&str>,
    now: &str,
) -> Value {
    let mut c =
        json!({"type": type_, "status": status, "lastProbeTime": null, "lastTransitionTime": now});
    if let Some(r) = reason {
        c["reason"] = json!(r);
    }
    if let Some(m) = message {
        c["message"] = json!(m);
    }
    c
}

fn container_names(pod: &Value, field: &str) -> Vec<(String, String)> {
    pod.pointer(&format!("/spec/{field}"))
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    (
                        str_at(c, "/name").to_string(),
                        str_at(c, "/image").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The image reference a runtime reports for `image`.
fn image_ref(image: &str) -> (String, String) {
    let full = if image.contains('/') {
        image.to_string()
    } else {
        format!("docker.io/library/{image}")
    };
    let full = if full
        .rsplit('/')
        .next()
        .is_some_and(|last| last.contains(':') || last.contains('@'))
    {
        full
    } else {
        format!("{full}:latest")
    };
    let digest = {
        use sha2::Digest as _;
        hex_digest(&sha2::Sha256::digest(full.as_bytes()))
    };
    let repo = full.split([':', '@']).next().unwrap_or(&full).to_string();
    // The image as the Pod names it (as kwok reports it; a real runtime may complete the
    // name), the ID in a runtime's `repository@sha256:` form.
    (image.to_string(), format!("{repo}@sha256:{digest}"))
}

fn hex_digest(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unready_message(names: &[(String, String)]) -> String {
    let list: Vec<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
    format!("containers with unready status: [{}]", list.join(" "))
}

/// The status of a Pod whose containers are being created (or cannot pull).
fn pending_status(pod: &Value, now: &str, image_pull_failure: bool) -> Value {
    let names = container_names(pod, "containers");
    let statuses: Vec<Value> = names
        .iter()
        .map(|(name, image)| {
            let waiting = if image_pull_failure {
                json!({"reason": "ImagePullBackOff", "message": format!("Back-off pulling image \"{image}\": simulated image pull failure (testcluster.plumb.dev/failure=image-pull)")})
            } else {
                json!({"reason": "ContainerCreating"})
            };
            json!({"name": name, "image": image, "imageID": "", "ready": false, "started": false,
                "restartCount": 0, "state": {"waiting": waiting}})
        })
        .collect();
    json!({
        "phase": "Pending",
        "conditions": [
            condition("PodReadyToStartContainers", if image_pull_failure { "True" } else { "False" }, None, None, now),
            condition("Initialized", "True", None, None, now),
            condition("Ready", "False", Some("ContainersNotReady"), Some(&unready_message(&names)), now),
            condition("ContainersReady", "False", Some("ContainersNotReady"), Some(&unready_message(&names)), now),
            condition("PodScheduled", "True", None, None, now),
        ],
        "hostIP": NODE_IP,
        "hostIPs": [{"ip": NODE_IP}],
        "startTime": now,
        "containerStatuses": statuses,
        "qosClass": qos_class(pod),
    })
}

fn qos_class(pod: &Value) -> &'static str {
    let containers = pod.pointer("/spec/containers").and_then(Value::as_array);
    let any_resources = containers.is_some_and(|cs| {
        cs.iter().any(|c| {
            c.pointer("/resources/requests")
                .and_then(Value::as_object)
                .is_some_and(|m| !m.is_empty())
                || c.pointer("/resources/limits")
                    .and_then(Value::as_object)
                    .is_some_and(|m| !m.is_empty())
        })
    });
    if any_resources {
        "Burstable"
    } else {
        "BestEffort"
    }
}

fn running_status(pod: &Value, now: &str, ip: &str, crash_loop: bool) -> Value {
    let names = container_names(pod, "containers");
    let statuses: Vec<Value> = names
        .iter()
        .map(|(name, image)| {
            let (image, image_id) = image_ref(image);
            if crash_loop {
                json!({"name": name, "image": image, "imageID": image_id, "ready": false, "started": false,
                    "restartCount": 5,
                    "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "startedAt": now, "finishedAt": now}},
                    "state": {"waiting": {"reason": "CrashLoopBackOff",
                        "message": format!("back-off 5m0s restarting failed container={name} pod={}_{}({})", meta(pod, "name"), meta(pod, "namespace"), meta(pod, "uid"))}},
                    "containerID": format!("plumb://{}", meta(pod, "uid"))})
            } else {
                json!({"name": name, "image": image, "imageID": image_id, "ready": true, "started": true,
                    "restartCount": 0, "state": {"running": {"startedAt": now}},
                    "containerID": format!("plumb://{}-{name}", meta(pod, "uid"))})
            }
        })
        .collect();
    let ready = if crash_loop { "False" } else { "True" };
    let (reason, message) = if crash_loop {
        (Some("ContainersNotReady"), Some(unready_message(&names)))
    } else {
        (None, None)
    };
    let mut conditions = vec![
        condition("PodReadyToStartContainers", "True", None, None, now),
        condition("Initialized", "True", None, None, now),
        condition("Ready", ready, reason, message.as_deref(), now),
        condition("ContainersReady", ready, reason, message.as_deref(), now),
        condition("PodScheduled", "True", None, None, now),
    ];
    // Readiness gates are someone else's to set; the simulation sets them so the Pod can
    // be Ready, as the real test cluster's kwok stages do.
    if let Some(gates) = pod
        .pointer("/spec/readinessGates")
        .and_then(Value::as_array)
    {
        for g in gates {
            conditions.push(condition(
                str_at(g, "/conditionType"),
                "True",
                None,
                None,
                now,
            ));
        }
    }
    let mut status = json!({
        "phase": "Running",
        "conditions": conditions,
        "hostIP": NODE_IP,
        "hostIPs": [{"ip": NODE_IP}],
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "containerStatuses": statuses,
        "qosClass": qos_class(pod),
    });
    let init = container_names(pod, "initContainers");
    if !init.is_empty() {
        status["initContainerStatuses"] = Value::Array(
            init.iter()
                .map(|(name, image)| {
                    let (image, image_id) = image_ref(image);
                    json!({"name": name, "image": image, "imageID": image_id, "ready": true, "started": false,
                        "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}}})
                })
                .collect(),
        );
    }
    status
}

/// A Pod whose containers ended: `Succeeded` with exit code 0, or `Failed` with 1.
fn terminated_status(pod: &Value, now: &str, succeeded: bool) -> Value {
    let (phase, reason, code) = if succeeded {
        ("Succeeded", "Completed", 0)
    } else {
        ("Failed", "Error", 1)
    };
    let ready_reason = if succeeded {
        "PodCompleted"
    } else {
        "PodFailed"
    };
    let names = container_names(pod, "containers");
    let started_at = pod
        .pointer("/status/containerStatuses/0/state/running/startedAt")
        .and_then(Value::as_str)
        .unwrap_or(now)
        .to_string();
    let statuses: Vec<Value> = names
        .iter()
        .map(|(name, image)| {
            let (image, image_id) = image_ref(image);
            let mut terminated = json!({"exitCode": code, "reason": reason, "startedAt": started_at, "finishedAt": now,
                "containerID": format!("plumb://{}-{name}", meta(pod, "uid"))});
            if !succeeded {
                terminated["message"] = json!("simulated failure (testcluster.plumb.dev/failure=fail)");
            }
            json!({"name": name, "image": image, "imageID": image_id, "ready": false, "started": false,
                "restartCount": 0, "state": {"terminated": terminated},
                "containerID": format!("plumb://{}-{name}", meta(pod, "uid"))})
        })
        .collect();
    let mut status = json!({
        "phase": phase,
        "conditions": [
            condition("PodReadyToStartContainers", "False", None, None, now),
            condition("Initialized", "True", None, None, now),
            condition("Ready", "False", Some(ready_reason), None, now),
            condition("ContainersReady", "False", Some(ready_reason), None, now),
            condition("PodScheduled", "True", None, None, now),
        ],
        "hostIP": NODE_IP,
        "hostIPs": [{"ip": NODE_IP}],
        "containerStatuses": statuses,
        "qosClass": qos_class(pod),
    });
    if let Some(ip) = pod.pointer("/status/podIP") {
        status["podIP"] = ip.clone();
        status["podIPs"] = json!([{"ip": ip}]);
    }
    if let Some(start) = pod.pointer("/status/startTime") {
        status["startTime"] = start.clone();
    }
    status
}

/// A Pod being deleted gracefully: its containers take `pod_start_delay` (at most the
/// grace period) to stop, then the kubelet removes it (grace period 0, this uid only), as a
/// kubelet confirms a graceful deletion. A Pod another finalizer holds, or one deleted
/// without grace, is not the kubelet's to remove.
async fn stop(ctx: &Ctx, pod: &Value, path: &str, uid: &str) -> Outcome {
    let grace = super::util::int_at(pod, "/metadata/deletionGracePeriodSeconds").unwrap_or(0);
    if grace <= 0 || str_at(pod, "/spec/nodeName") != NODE_NAME {
        clock_clear(uid);
        return Ok(None);
    }
    let stop_time = ctx
        .config
        .pod_start_delay
        .min(Duration::from_secs(grace.unsigned_abs()));
    match clock_since(uid) {
        Some(since) if since >= stop_time => {}
        Some(since) => return Ok(Some(stop_time - since)),
        None => {
            clock_set(uid);
            return Ok(Some(stop_time));
        }
    }
    clock_clear(uid);
    let options = json!({"gracePeriodSeconds": 0, "preconditions": {"uid": uid}});
    let answer = ctx.kubelet.delete(path, Some(&options)).await;
    if gone(&answer) || answer.code == 409 {
        // Gone already, or another Pod of that name by now.
        return Ok(None);
    }
    check(&answer, "removing a stopped pod").map(|()| None)
}

/// Writes a Pod's status as the kubelet; `false` when the Pod is gone.
async fn write_status(ctx: &Ctx, status_path: &str, status: Value) -> Result<bool, String> {
    let answer = ctx
        .kubelet
        .merge_patch(status_path, &json!({ "status": status }))
        .await;
    if gone(&answer) {
        return Ok(false);
    }
    check(&answer, "pod status").map(|()| true)
}

/// Moves one Pod a step through its life.
pub(crate) async fn reconcile(ctx: &Ctx, key: &Key) -> Outcome {
    let Some(pod) = ctx.get("/pods", &key.namespace, &key.name) else {
        return Ok(None);
    };
    let uid = meta(&pod, "uid").to_string();
    let path = format!("/api/v1/namespaces/{}/pods/{}", key.namespace, key.name);
    if is_deleting(&pod) {
        return stop(ctx, &pod, &path, &uid).await;
    }
    let node = str_at(&pod, "/spec/nodeName");
    if node.is_empty() {
        // kube-scheduler: one node, nothing to choose; bind, then record why.
        let answer = ctx
            .scheduler
            .merge_patch(&path, &json!({"spec": {"nodeName": NODE_NAME}}))
            .await;
        if gone(&answer) {
            return Ok(None);
        }
        check(&answer, "binding")?;
        let now = now_rfc3339();
        let answer = ctx
            .scheduler
            .merge_patch(
                &format!("{path}/status"),
                &json!({"status": {"conditions": [condition("PodScheduled", "True", None, None, &now)]}}),
            )
            .await;
        check(&answer, "scheduled condition")?;
        events::record(
            ctx,
            events::SCHEDULER,
            &pod,
            "Normal",
            "Scheduled",
            &format!(
                "Successfully assigned {}/{} to {NODE_NAME}",
                key.namespace, key.name
            ),
        )
        .await;
        return Ok(None);
    }
    if node != NODE_NAME {
        // Bound to a node nobody simulates: it stays Pending, as on a real cluster.
        return Ok(None);
    }
    let phase = pod_phase(&pod).to_string();
    let started = pod.pointer("/status/containerStatuses").is_some();
    let delay = ctx.config.pod_start_delay;
    let now = now_rfc3339();
    let status_path = format!("{path}/status");
    match (phase.as_str(), started, failure(&pod)) {
        ("Pending", false, Some("fail")) => {
            if !write_status(ctx, &status_path, terminated_status(&pod, &now, false)).await? {
                return Ok(None);
            }
            Ok(None)
        }
        ("Pending", false, fail) => {
            let image_pull = fail == Some("image-pull");
            if !write_status(ctx, &status_path, pending_status(&pod, &now, image_pull)).await? {
                return Ok(None);
            }
            if image_pull {
                for (name, image) in container_names(&pod, "containers") {
                    let _ = name;
                    events::record(
                        ctx,
                        events::KUBELET,
                        &pod,
                        "Normal",
                        "Pulling",
                        &format!("Pulling image \"{image}\""),
                    )
                    .await;
                    events::record(
                        ctx,
                        events::KUBELET,
                        &pod,
                        "Warning",
                        "Failed",
                        &format!("Failed to pull image \"{image}\": simulated image pull failure"),
                    )
                    .await;
                    events::record(
                        ctx,
                        events::KUBELET,
                        &pod,
                        "Normal",
                        "BackOff",
                        &format!("Back-off pulling image \"{image}\""),
                    )
                    .await;
                }
                return Ok(None);
            }
            clock_set(&uid);
            Ok(Some(delay))
        }
        ("Pending", true, None | Some("crash-loop")) => {
            if let Some(elapsed) = clock_since(&uid)
                && elapsed < delay
            {
                return Ok(Some(delay - elapsed));
            }
            let crash_loop = failure(&pod) == Some("crash-loop");
            if !write_status(
                ctx,
                &status_path,
                running_status(&pod, &now, &pod_ip(), crash_loop),
            )
            .await?
            {
                return Ok(None);
            }
            for (name, image) in container_names(&pod, "containers") {
                events::record(
                    ctx,
                    events::KUBELET,
                    &pod,
                    "Normal",
                    "Pulled",
                    &format!("Container image \"{image}\" already present on machine"),
                )
                .await;
                events::record(
                    ctx,
                    events::KUBELET,
                    &pod,
                    "Normal",
                    "Created",
                    &format!("Created container: {name}"),
                )
                .await;
                events::record(
                    ctx,
                    events::KUBELET,
                    &pod,
                    "Normal",
                    "Started",
                    &format!("Started container {name}"),
                )
                .await;
                if crash_loop {
                    events::record(
                        ctx,
                        events::KUBELET,
                        &pod,
                        "Warning",
                        "BackOff",
                        &format!(
                            "Back-off restarting failed container {name} in pod {}_{}({uid})",
                            key.name, key.namespace
                        ),
                    )
                    .await;
                }
            }
            let runs_to_completion = controller_of(&pod).is_some_and(|(kind, _, _)| kind == "Job")
                || str_at(&pod, "/spec/restartPolicy") == "Never" && controller_of(&pod).is_none();
            if runs_to_completion && !crash_loop {
                clock_set(&uid);
                return Ok(Some(ctx.config.job_run_time));
            }
            clock_clear(&uid);
            Ok(None)
        }
        ("Running", _, None) => {
            let runs_to_completion = controller_of(&pod).is_some_and(|(kind, _, _)| kind == "Job")
                || str_at(&pod, "/spec/restartPolicy") == "Never" && controller_of(&pod).is_none();
            if !runs_to_completion {
                clock_clear(&uid);
                return Ok(None);
            }
            let run_time = ctx.config.job_run_time;
            match clock_since(&uid) {
                Some(elapsed) if elapsed < run_time => return Ok(Some(run_time - elapsed)),
                None => {
                    // Restarted plumb: give the Pod its run time from now.
                    clock_set(&uid);
                    return Ok(Some(run_time));
                }
                Some(_) => {}
            }
            if !write_status(ctx, &status_path, terminated_status(&pod, &now, true)).await? {
                return Ok(None);
            }
            clock_clear(&uid);
            Ok(None)
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_are_completed_as_a_runtime_reports_them() {
        let (image, id) = image_ref("nginx");
        assert_eq!(image, "nginx");
        assert!(id.starts_with("docker.io/library/nginx@sha256:"), "{id}");
        let (image, _) = image_ref("registry.example/team/app:1.2");
        assert_eq!(image, "registry.example/team/app:1.2");
    }

    #[test]
    fn pod_ip_indexes_invert_the_counter() {
        assert_eq!(pod_ip_index("10.244.0.2"), Some(1));
        assert_eq!(pod_ip_index("10.244.1.1"), Some(254));
        assert_eq!(pod_ip_index("10.0.0.1"), None);
        assert_eq!(pod_ip_index("10.244.0.255"), None);
    }

    #[test]
    fn pod_ips_stay_in_the_pod_range() {
        for _ in 0..600 {
            let ip = pod_ip();
            let last: u32 = ip.rsplit('.').next().unwrap().parse().unwrap();
            assert!(
                ip.starts_with("10.244.") && (1..=254).contains(&last),
                "{ip}"
            );
        }
    }
}
