//! Object helpers shared by the handlers: timestamps, generated names, per-kind defaults
//! and the generation rule. Pure except for the clock and the random name suffix.

use serde_json::{Map, Value, json};

use crate::api_error::Cause;
use crate::registry::ResourceInfo;

/// Now, as Kubernetes writes timestamps (RFC 3339, seconds, UTC).
pub(crate) fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    format_rfc3339(now)
}

pub(crate) fn format_rfc3339(t: time::OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

pub(crate) fn parse_rfc3339(s: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

/// `generateName` + 5 characters from Kubernetes' alphabet (no vowels, no look-alikes).
pub(crate) fn generated_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    let suffix: String = (0..5)
        .map(|_| ALPHABET[rand::Rng::random_range(&mut rng, 0..ALPHABET.len())] as char)
        .collect();
    // Kubernetes truncates the prefix so the result stays a valid name length.
    let keep = prefix.len().min(58);
    format!("{}{suffix}", &prefix[..keep])
}

/// The object's metadata map, created when missing (None only for non-object values).
pub(crate) fn meta_mut(object: &mut Value) -> Option<&mut Map<String, Value>> {
    let m = object
        .as_object_mut()?
        .entry("metadata")
        .or_insert_with(|| json!({}));
    if !m.is_object() {
        *m = json!({});
    }
    m.as_object_mut()
}

pub(crate) fn meta_str<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object.get("metadata")?.get(field)?.as_str()
}

/// The strings of a JSON array (its other items skipped); empty when `value` is missing or
/// not an array.
pub(crate) fn string_items(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Defaults applied on every create and update (the part of Kubernetes' defaulting the
/// embedded server does).
pub(crate) fn apply_defaults(info: &ResourceInfo, object: &mut Value, is_create: bool) {
    use base64::Engine as _;
    match (info.group.as_str(), info.resource.as_str()) {
        ("", "namespaces") => {
            let name = meta_str(object, "name").unwrap_or_default().to_string();
            if let Some(meta) = meta_mut(object) {
                let labels = meta.entry("labels").or_insert_with(|| json!({}));
                if let Some(l) = labels.as_object_mut() {
                    l.insert("kubernetes.io/metadata.name".into(), Value::String(name));
                }
            }
            if is_create {
                object["spec"] = json!({"finalizers": ["kubernetes"]});
                object["status"] = json!({"phase": "Active"});
            }
        }
        ("", "secrets") => {
            if object
                .get("type")
                .is_none_or(|t| t.is_null() || t.as_str() == Some(""))
            {
                object["type"] = json!("Opaque");
            }
            if let Some(Value::Object(string_data)) =
                object.as_object_mut().and_then(|o| o.remove("stringData"))
            {
                let mut data = object
                    .get("data")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                for (k, v) in string_data {
                    let s = v.as_str().unwrap_or_default();
                    data.insert(
                        k,
                        Value::String(base64::engine::general_purpose::STANDARD.encode(s)),
                    );
                }
                object["data"] = Value::Object(data);
            }
        }
        ("", "services") => {
            if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
                spec.entry("type").or_insert_with(|| json!("ClusterIP"));
                spec.entry("sessionAffinity")
                    .or_insert_with(|| json!("None"));
                spec.entry("internalTrafficPolicy")
                    .or_insert_with(|| json!("Cluster"));
                let service_type = spec
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                if matches!(service_type.as_str(), "NodePort" | "LoadBalancer") {
                    spec.entry("externalTrafficPolicy")
                        .or_insert_with(|| json!("Cluster"));
                }
                if service_type == "LoadBalancer" {
                    spec.entry("allocateLoadBalancerNodePorts")
                        .or_insert_with(|| json!(true));
                }
                // A given clusterIP (no allocation here) also fills the dual-stack fields.
                if let Some(ip) = spec
                    .get("clusterIP")
                    .and_then(Value::as_str)
                    .filter(|ip| !ip.is_empty())
                    .map(str::to_string)
                {
                    spec.entry("clusterIPs").or_insert_with(|| json!([ip]));
                    if ip != "None" {
                        let family = if ip.contains(':') { "IPv6" } else { "IPv4" };
                        spec.entry("ipFamilies").or_insert_with(|| json!([family]));
                        spec.entry("ipFamilyPolicy")
                            .or_insert_with(|| json!("SingleStack"));
                    }
                }
                if let Some(Value::Array(ports)) = spec.get_mut("ports") {
                    for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                        p.entry("protocol").or_insert_with(|| json!("TCP"));
                        if let Some(port) = p.get("port").cloned() {
                            p.entry("targetPort").or_insert(port);
                        }
                    }
                }
            }
        }
        ("apps", "deployments") => {
            if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
                spec.entry("replicas").or_insert_with(|| json!(1));
                spec.entry("revisionHistoryLimit")
                    .or_insert_with(|| json!(10));
                spec.entry("progressDeadlineSeconds")
                    .or_insert_with(|| json!(600));
                let strategy = spec.entry("strategy").or_insert_with(|| json!({}));
                if let Some(st) = strategy.as_object_mut() {
                    st.entry("type").or_insert_with(|| json!("RollingUpdate"));
                    if st.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
                        let ru = st.entry("rollingUpdate").or_insert_with(|| json!({}));
                        if let Some(ru) = ru.as_object_mut() {
                            ru.entry("maxUnavailable").or_insert_with(|| json!("25%"));
                            ru.entry("maxSurge").or_insert_with(|| json!("25%"));
                        }
                    }
                }
                default_pod_template(spec, Some("Always"));
            }
        }
        ("apps", "statefulsets")
        | ("apps", "replicasets")
        | ("apps", "daemonsets")
        | ("batch", "jobs") => {
            if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
                if info.resource != "daemonsets" && info.resource != "jobs" {
                    spec.entry("replicas").or_insert_with(|| json!(1));
                }
                if info.resource != "replicasets" && info.resource != "jobs" {
                    spec.entry("revisionHistoryLimit")
                        .or_insert_with(|| json!(10));
                }
                let restart = if info.resource == "jobs" {
                    None
                } else {
                    Some("Always")
                };
                default_pod_template(spec, restart);
                match info.resource.as_str() {
                    "statefulsets" => {
                        spec.entry("podManagementPolicy")
                            .or_insert_with(|| json!("OrderedReady"));
                        let strategy = spec
                            .entry("updateStrategy")
                            .or_insert_with(|| json!({"type": "RollingUpdate"}));
                        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate")
                            && let Some(st) = strategy.as_object_mut()
                        {
                            let ru = st.entry("rollingUpdate").or_insert_with(|| json!({}));
                            if let Some(ru) = ru.as_object_mut() {
                                ru.entry("partition").or_insert_with(|| json!(0));
                            }
                        }
                        let retention = spec
                            .entry("persistentVolumeClaimRetentionPolicy")
                            .or_insert_with(|| json!({}));
                        if let Some(r) = retention.as_object_mut() {
                            r.entry("whenDeleted").or_insert_with(|| json!("Retain"));
                            r.entry("whenScaled").or_insert_with(|| json!("Retain"));
                        }
                    }
                    "daemonsets" => {
                        let strategy = spec
                            .entry("updateStrategy")
                            .or_insert_with(|| json!({"type": "RollingUpdate"}));
                        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate")
                            && let Some(st) = strategy.as_object_mut()
                        {
                            let ru = st.entry("rollingUpdate").or_insert_with(|| json!({}));
                            if let Some(ru) = ru.as_object_mut() {
                                ru.entry("maxUnavailable").or_insert_with(|| json!(1));
                                ru.entry("maxSurge").or_insert_with(|| json!(0));
                            }
                        }
                    }
                    "jobs" => default_job_spec(spec),
                    _ => {}
                }
            }
            if info.resource == "jobs" && is_create {
                job_selector_and_labels(object);
            }
        }
        ("", "pods") => {
            if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
                default_pod_spec(spec, Some("Always"));
            }
        }
        ("", "podtemplates") => {
            if let Some(template) = object.as_object_mut() {
                default_pod_template(template, Some("Always"));
            }
        }
        ("", "replicationcontrollers") => {
            // Kubernetes: the selector and the labels default to the template's labels.
            let template_labels = object
                .pointer("/spec/template/metadata/labels")
                .filter(|l| l.as_object().is_some_and(|m| !m.is_empty()))
                .cloned();
            if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
                spec.entry("replicas").or_insert_with(|| json!(1));
                if let Some(labels) = &template_labels
                    && spec
                        .get("selector")
                        .and_then(Value::as_object)
                        .is_none_or(|m| m.is_empty())
                {
                    spec.insert("selector".into(), labels.clone());
                }
                default_pod_template(spec, Some("Always"));
            }
            if let (Some(labels), Some(meta)) = (template_labels, meta_mut(object))
                && meta
                    .get("labels")
                    .and_then(Value::as_object)
                    .is_none_or(|m| m.is_empty())
            {
                meta.insert("labels".into(), labels);
            }
            // A new controller has seen no pods yet (its status is a subresource).
            if is_create && object.get("status").is_none_or(Value::is_null) {
                object["status"] = json!({"replicas": 0});
            }
        }
        ("", "nodes") => {
            // The fields of NodeStatus that Kubernetes always writes (Go zero values).
            if object.get("status").is_none_or(|s| !s.is_object()) {
                object["status"] = json!({});
            }
            if let Some(status) = object.get_mut("status").and_then(Value::as_object_mut) {
                status
                    .entry("daemonEndpoints")
                    .or_insert_with(|| json!({"kubeletEndpoint": {"Port": 0}}));
                let info = status.entry("nodeInfo").or_insert_with(|| json!({}));
                if let Some(info) = info.as_object_mut() {
                    for field in [
                        "machineID",
                        "systemUUID",
                        "bootID",
                        "kernelVersion",
                        "osImage",
                        "containerRuntimeVersion",
                        "kubeletVersion",
                        "kubeProxyVersion",
                        "operatingSystem",
                        "architecture",
                    ] {
                        info.entry(field).or_insert_with(|| json!(""));
                    }
                }
            }
            // kube-apiserver's node taint admission: a new node is not ready until a
            // kubelet says so.
            if is_create && let Some(node) = object.as_object_mut() {
                let spec = node.entry("spec").or_insert_with(|| json!({}));
                if let Some(spec) = spec.as_object_mut() {
                    let taints = spec.entry("taints").or_insert_with(|| json!([]));
                    if let Some(taints) = taints.as_array_mut()
                        && !taints.iter().any(|t| {
                            t.get("key").and_then(Value::as_str)
                                == Some("node.kubernetes.io/not-ready")
                        })
                    {
                        taints.push(
                            json!({"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}),
                        );
                    }
                }
            }
        }
        ("apiextensions.k8s.io", "customresourcedefinitions") => crate::crd::default_crd(object),
        _ => {}
    }
}

/// Defaults of `spec.template.spec` (Kubernetes' pod defaulting).
fn default_pod_template(spec: &mut Map<String, Value>, restart_policy: Option<&str>) {
    if let Some(pod) = spec
        .get_mut("template")
        .and_then(|t| t.get_mut("spec"))
        .and_then(Value::as_object_mut)
    {
        default_pod_spec(pod, restart_policy);
    }
}

/// `restart_policy` None: no default (Jobs must choose Never or OnFailure themselves).
fn default_pod_spec(pod: &mut Map<String, Value>, restart_policy: Option<&str>) {
    if let Some(policy) = restart_policy {
        pod.entry("restartPolicy").or_insert_with(|| json!(policy));
    }
    pod.entry("terminationGracePeriodSeconds")
        .or_insert_with(|| json!(30));
    pod.entry("dnsPolicy")
        .or_insert_with(|| json!("ClusterFirst"));
    pod.entry("securityContext").or_insert_with(|| json!({}));
    pod.entry("schedulerName")
        .or_insert_with(|| json!("default-scheduler"));
    for list in ["containers", "initContainers"] {
        let Some(Value::Array(containers)) = pod.get_mut(list) else {
            continue;
        };
        for c in containers.iter_mut().filter_map(Value::as_object_mut) {
            let image = c.get("image").and_then(Value::as_str).unwrap_or("");
            // `:latest` (or no tag) pulls always; anything else only when missing.
            let last = image.rsplit('/').next().unwrap_or(image);
            let latest = !last.contains(':') && !image.contains('@') || last.ends_with(":latest");
            c.entry("imagePullPolicy")
                .or_insert_with(|| json!(if latest { "Always" } else { "IfNotPresent" }));
            c.entry("terminationMessagePath")
                .or_insert_with(|| json!("/dev/termination-log"));
            c.entry("terminationMessagePolicy")
                .or_insert_with(|| json!("File"));
            c.entry("resources").or_insert_with(|| json!({}));
            if let Some(Value::Array(ports)) = c.get_mut("ports") {
                for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                    p.entry("protocol").or_insert_with(|| json!("TCP"));
                }
            }
        }
    }
}

/// Everything `generation` watches: the object minus metadata (and minus status when
/// status is a subresource).
fn generation_view(info: &ResourceInfo, object: &Value) -> Value {
    let mut v = object.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("metadata");
        o.remove("apiVersion");
        o.remove("kind");
        if info.status_subresource || !info.custom {
            o.remove("status");
        }
    }
    v
}

/// A Job's spec defaults (Kubernetes' `SetDefaults_Job`).
fn default_job_spec(spec: &mut Map<String, Value>) {
    let completions = spec.get("completions").filter(|v| !v.is_null()).cloned();
    let parallelism = spec.get("parallelism").filter(|v| !v.is_null()).cloned();
    if completions.is_none() && parallelism.is_none() {
        spec.insert("completions".into(), json!(1));
        spec.insert("parallelism".into(), json!(1));
    } else if parallelism.is_none() {
        spec.insert("parallelism".into(), json!(1));
    }
    spec.entry("backoffLimit").or_insert_with(|| json!(6));
    spec.entry("completionMode")
        .or_insert_with(|| json!("NonIndexed"));
    spec.entry("suspend").or_insert_with(|| json!(false));
    spec.entry("podReplacementPolicy")
        .or_insert_with(|| json!("TerminatingOrFailed"));
}

/// What kube-apiserver generates for a new Job without `manualSelector`: a selector on its
/// uid and the matching template labels; the Job's own labels default to them.
fn job_selector_and_labels(object: &mut Value) {
    if object
        .pointer("/spec/manualSelector")
        .and_then(Value::as_bool)
        == Some(true)
    {
        return;
    }
    let uid = meta_str(object, "uid").unwrap_or("").to_string();
    let name = meta_str(object, "name").unwrap_or("").to_string();
    let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if spec.get("selector").is_none_or(Value::is_null) {
        spec.insert(
            "selector".into(),
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}),
        );
    }
    let template = spec.entry("template").or_insert_with(|| json!({}));
    if !template.get("metadata").is_some_and(Value::is_object) {
        template["metadata"] = json!({});
    }
    let labels = &mut template["metadata"]["labels"];
    if !labels.is_object() {
        *labels = json!({});
    }
    for (k, v) in [
        ("batch.kubernetes.io/controller-uid", &uid),
        ("batch.kubernetes.io/job-name", &name),
        ("controller-uid", &uid),
        ("job-name", &name),
    ] {
        labels[k] = json!(v);
    }
    let template_labels = labels.clone();
    if let Some(meta) = meta_mut(object)
        && meta
            .get("labels")
            .and_then(Value::as_object)
            .is_none_or(|m| m.is_empty())
    {
        meta.insert("labels".into(), template_labels);
    }
}

/// A Service update, as kube-apiserver treats its cluster IPs: an update that leaves them
/// out keeps the stored ones (with their IP families), a changed `clusterIP` carries
/// `clusterIPs[0]` along, and the primary IP may not change once set (422 on
/// `spec.clusterIPs[0]`). ExternalName Services, before or after, have none to keep.
pub(crate) fn service_cluster_ip_update(old: &Value, new: &mut Value) -> Option<Cause> {
    let old_spec = old.get("spec")?;
    let old_ip = old_spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .filter(|ip| !ip.is_empty())?;
    let is_external = |spec: Option<&Value>| {
        spec.and_then(|s| s.get("type")).and_then(Value::as_str) == Some("ExternalName")
    };
    if is_external(Some(old_spec)) || is_external(new.get("spec")) {
        return None;
    }
    let mut old_ips = string_items(old_spec.get("clusterIPs"));
    if old_ips.is_empty() {
        old_ips.push(old_ip.to_string());
    }
    let spec = new.get_mut("spec")?.as_object_mut()?;
    let new_ip = spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut new_ips = string_items(spec.get("clusterIPs"));
    if new_ip.is_empty() && new_ips.is_empty() {
        for field in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
            if let Some(v) = old_spec.get(field)
                && spec.get(field).is_none_or(Value::is_null)
            {
                spec.insert(field.into(), v.clone());
            }
        }
        return None;
    }
    if !new_ip.is_empty() && new_ip != old_ip && (new_ips.is_empty() || new_ips == old_ips) {
        if new_ips.is_empty() {
            new_ips = vec![new_ip.clone()];
        } else {
            new_ips[0] = new_ip.clone();
        }
        spec.insert("clusterIPs".into(), json!(new_ips));
    }
    if new_ips.first() == old_ips.first() {
        return None;
    }
    Some(Cause {
        reason: "FieldValueInvalid",
        message: format!("Invalid value: {}: may not change once set", json!(new_ips)),
        field: "spec.clusterIPs[0]".into(),
    })
}

/// Whether an update changes what `metadata.generation` counts.
pub(crate) fn spec_changed(info: &ResourceInfo, old: &Value, new: &Value) -> bool {
    generation_view(info, old) != generation_view(info, new)
}

/// Humanised age as `kubectl get` prints it.
pub(crate) fn human_age(seconds: i64) -> String {
    let s = seconds.max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86400);
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        let rem = s % 60;
        if rem == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{rem}s")
        }
    } else if h < 3 {
        format!("{m}m")
    } else if h < 8 {
        let rem = m % 60;
        if rem == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{rem}m")
        }
    } else if h < 48 {
        format!("{h}h")
    } else if d < 8 {
        let rem = h % 24;
        if rem == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{rem}h")
        }
    } else if d < 365 * 2 {
        format!("{d}d")
    } else {
        format!("{}y{}d", d / 365, d % 365)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn service_cluster_ips_are_kept_and_immutable() {
        let old = json!({"spec": {"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"], "ipFamilies": ["IPv4"]}});
        let mut left_out = json!({"spec": {"ports": []}});
        assert_eq!(service_cluster_ip_update(&old, &mut left_out), None);
        assert_eq!(left_out["spec"]["clusterIPs"], json!(["10.0.0.1"]));
        assert_eq!(left_out["spec"]["ipFamilies"], json!(["IPv4"]));
        let mut changed = json!({"spec": {"clusterIP": "10.0.0.2", "clusterIPs": ["10.0.0.1"]}});
        let cause = service_cluster_ip_update(&old, &mut changed).unwrap();
        assert_eq!(cause.field, "spec.clusterIPs[0]");
        assert_eq!(
            cause.message,
            "Invalid value: [\"10.0.0.2\"]: may not change once set"
        );
        let mut to_external =
            json!({"spec": {"type": "ExternalName", "externalName": "x.example"}});
        assert_eq!(service_cluster_ip_update(&old, &mut to_external), None);
        let mut unallocated = json!({"spec": {"clusterIP": "10.0.0.5"}});
        assert_eq!(
            service_cluster_ip_update(&json!({"spec": {}}), &mut unallocated),
            None
        );
    }

    #[test]
    fn ages() {
        assert_eq!(human_age(5), "5s");
        assert_eq!(human_age(130), "2m10s");
        assert_eq!(human_age(3600 * 5 + 60), "5h1m");
        assert_eq!(human_age(86400 * 3), "3d");
    }

    #[test]
    fn generated_names_are_valid() {
        let n = generated_name("web-");
        assert!(n.starts_with("web-") && n.len() == 9);
        assert!(crate::validation::is_dns1123_subdomain(&n));
    }

    #[test]
    fn secret_string_data_is_encoded() {
        let info = crate::registry::builtins()
            .into_iter()
            .find(|r| r.resource == "secrets")
            .unwrap();
        let mut s = json!({"metadata": {"name": "s"}, "stringData": {"a": "hi"}});
        apply_defaults(&info, &mut s, true);
        assert_eq!(
            s,
            json!({"metadata": {"name": "s"}, "type": "Opaque", "data": {"a": "aGk="}})
        );
    }

    #[test]
    fn generation_ignores_metadata_and_status() {
        let info = crate::registry::builtins()
            .into_iter()
            .find(|r| r.resource == "deployments")
            .unwrap();
        let a = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"replicas": 1}, "status": {"x": 1}});
        let b = json!({"metadata": {"labels": {"a": "2"}}, "spec": {"replicas": 1}, "status": {"x": 2}});
        let c = json!({"metadata": {}, "spec": {"replicas": 2}});
        assert!(!spec_changed(&info, &a, &b));
        assert!(spec_changed(&info, &a, &c));
    }
}
