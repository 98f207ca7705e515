//! The endpoint controllers (EndpointSlices and the older Endpoints of a Service with a
//! selector), and what a cloud's load balancer and an ingress controller would report:
//! `LoadBalancer` Services and Ingresses get the node's address as their ingress IP.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::queue::Key;
use super::util::{is_deleting, meta, pod_is_ready, str_at};
use super::{Ctx, Outcome, check, gone};
use crate::objects::now_rfc3339;

const SLICES: &str = "discovery.k8s.io/endpointslices";
const SLICE_MANAGER: &str = "endpointslice-controller.k8s.io";
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
const TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";

/// The address a load balancer or an ingress controller would publish: the node's.
pub(crate) const INGRESS_IP: &str = super::kubelet::NODE_IP;

/// Whether a Service's selector picks Pods with these labels. A Service without a
/// selector (or with an empty one) has its endpoints managed by someone else.
pub(crate) fn selects(service: &Value, labels: Option<&Value>) -> bool {
    let Some(selector) = service
        .pointer("/spec/selector")
        .and_then(Value::as_object)
        .filter(|s| !s.is_empty())
    else {
        return false;
    };
    selector
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// One endpoint port: its name (`""` when unnamed), number and protocol.
type Port = (String, i64, String);

/// The ports of `service` a Pod serves: a numeric `targetPort` as it is, a named one
/// resolved through the Pod's container ports (a Pod without that name leaves it out).
fn pod_ports(service: &Value, pod: &Value) -> Vec<Port> {
    let Some(ports) = service.pointer("/spec/ports").and_then(Value::as_array) else {
        return Vec::new();
    };
    let container_ports: Vec<&Value> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("ports").and_then(Value::as_array))
        .flatten()
        .collect();
    ports
        .iter()
        .filter_map(|p| {
            let name = p
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let protocol = p
                .get("protocol")
                .and_then(Value::as_str)
                .unwrap_or("TCP")
                .to_string();
            let number = match p.get("targetPort").or_else(|| p.get("port")) {
                Some(Value::Number(n)) => n.as_i64()?,
                Some(Value::String(target)) => match target.parse::<i64>() {
                    Ok(n) => n,
                    Err(_) => container_ports
                        .iter()
                        .find(|c| c.get("name").and_then(Value::as_str) == Some(target))
                        .and_then(|c| c.get("containerPort"))
                        .and_then(Value::as_i64)?,
                },
                _ => return None,
            };
            Some((name, number, protocol))
        })
        .collect()
}

/// One Pod as an endpoint.
struct Endpoint {
    ip: String,
    ready: bool,
    terminating: bool,
    target: Value,
    node: String,
}

/// The EndpointSlices and Endpoints subsets a Service's Pods give (pure): endpoints
/// grouped by the ports they serve, each group's addresses sorted.
fn endpoints_by_ports(service: &Value, pods: &[Value]) -> BTreeMap<Vec<Port>, Vec<Endpoint>> {
    let mut groups: BTreeMap<Vec<Port>, Vec<Endpoint>> = BTreeMap::new();
    for pod in pods {
        let ip = str_at(pod, "/status/podIP");
        let phase = str_at(pod, "/status/phase");
        if ip.is_empty() || matches!(phase, "Succeeded" | "Failed") {
            continue;
        }
        let terminating = is_deleting(pod);
        groups
            .entry(pod_ports(service, pod))
            .or_default()
            .push(Endpoint {
                ip: ip.to_string(),
                ready: pod_is_ready(pod) && !terminating,
                terminating,
                target: json!({
                    "kind": "Pod",
                    "name": meta(pod, "name"),
                    "namespace": meta(pod, "namespace"),
                    "uid": meta(pod, "uid"),
                }),
                node: str_at(pod, "/spec/nodeName").to_string(),
            });
    }
    for list in groups.values_mut() {
        list.sort_by(|a, b| a.ip.cmp(&b.ip));
    }
    groups
}

fn slice_body(ports: &[Port], endpoints: &[Endpoint]) -> (Value, Value) {
    let endpoints: Vec<Value> = endpoints
        .iter()
        .map(|e| {
            let mut v = json!({
                "addresses": [e.ip],
                "conditions": {"ready": e.ready, "serving": e.ready, "terminating": e.terminating},
                "targetRef": e.target,
            });
            if !e.node.is_empty() {
                v["nodeName"] = json!(e.node);
            }
            v
        })
        .collect();
    let ports: Vec<Value> = ports
        .iter()
        .map(|(name, port, protocol)| json!({"name": name, "port": port, "protocol": protocol}))
        .collect();
    let or_null = |list: Vec<Value>| {
        if list.is_empty() {
            Value::Null
        } else {
            Value::Array(list)
        }
    };
    (or_null(endpoints), or_null(ports))
}

fn subsets(groups: &BTreeMap<Vec<Port>, Vec<Endpoint>>) -> Value {
    let mut subsets = Vec::new();
    for (ports, endpoints) in groups {
        if endpoints.is_empty() {
            continue;
        }
        let address = |e: &Endpoint| {
            let mut a = json!({"ip": e.ip, "targetRef": e.target});
            if !e.node.is_empty() {
                a["nodeName"] = json!(e.node);
            }
            a
        };
        let ready: Vec<Value> = endpoints.iter().filter(|e| e.ready).map(address).collect();
        let not_ready: Vec<Value> = endpoints
            .iter()
            .filter(|e| !e.ready && !e.terminating)
            .map(address)
            .collect();
        if ready.is_empty() && not_ready.is_empty() {
            continue;
        }
        let mut subset = Map::new();
        if !ready.is_empty() {
            subset.insert("addresses".into(), json!(ready));
        }
        if !not_ready.is_empty() {
            subset.insert("notReadyAddresses".into(), json!(not_ready));
        }
        let ports: Vec<Value> = ports
            .iter()
            .map(|(name, port, protocol)| {
                let mut p = json!({"port": port, "protocol": protocol});
                if !name.is_empty() {
                    p["name"] = json!(name);
                }
                p
            })
            .collect();
        subset.insert("ports".into(), json!(ports));
        subsets.push(Value::Object(subset));
    }
    Value::Array(subsets)
}

/// Reconciles one Service: its endpoints and, for a `LoadBalancer`, its ingress.
pub(crate) async fn reconcile(ctx: &Ctx, key: &Key) -> Outcome {
    let ns = &key.namespace;
    let endpoints_path = format!("/api/v1/namespaces/{ns}/endpoints/{}", key.name);
    let Some(service) = ctx.get("/services", ns, &key.name) else {
        // The slices go with their owner; the Endpoints (not owned) go here.
        if let Some(old) = ctx.get("/endpoints", ns, &key.name)
            && old.pointer("/metadata/labels/endpoints.kubernetes.io~1managed-by")
                == Some(&json!("endpoint-controller"))
        {
            let answer = ctx.kcm.delete(&endpoints_path, None).await;
            if !gone(&answer) {
                check(&answer, "deleting Endpoints")?;
            }
        }
        return Ok(None);
    };
    if is_deleting(&service) {
        return Ok(None);
    }
    if str_at(&service, "/spec/type") == "LoadBalancer"
        && service.pointer("/status/loadBalancer/ingress").is_none()
    {
        let patch =
            json!({"status": {"loadBalancer": {"ingress": [{"ip": INGRESS_IP, "ipMode": "VIP"}]}}});
        let path = format!("/api/v1/namespaces/{ns}/services/{}/status", key.name);
        check(&ctx.kcm.merge_patch(&path, &patch).await, "Service status")?;
    }
    if service
        .pointer("/spec/selector")
        .and_then(Value::as_object)
        .is_none_or(|s| s.is_empty())
        || str_at(&service, "/spec/type") == "ExternalName"
    {
        return Ok(None);
    }
    let (pods, _) = ctx.state.store().list("/pods", Some(ns), None);
    let pods: Vec<Value> = pods
        .iter()
        .filter_map(|p| p.value().ok())
        .filter(|p| selects(&service, p.pointer("/metadata/labels")))
        .collect();
    let groups = endpoints_by_ports(&service, &pods);
    reconcile_slices(ctx, &service, &groups).await?;
    reconcile_endpoints(ctx, &service, &groups).await?;
    Ok(None)
}

async fn reconcile_slices(
    ctx: &Ctx,
    service: &Value,
    groups: &BTreeMap<Vec<Port>, Vec<Endpoint>>,
) -> Result<(), String> {
    let ns = meta(service, "namespace");
    let name = meta(service, "name");
    let collection = format!("/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices");
    let mut existing: Vec<Value> = ctx
        .owned(SLICES, meta(service, "uid"))
        .into_iter()
        .filter(|s| {
            s.pointer("/metadata/labels/endpointslice.kubernetes.io~1managed-by")
                == Some(&json!(SLICE_MANAGER))
        })
        .collect();
    existing.sort_by(|a, b| meta(a, "name").cmp(meta(b, "name")));
    let mut wanted: Vec<(Value, Value)> = groups
        .iter()
        .map(|(ports, endpoints)| slice_body(ports, endpoints))
        .collect();
    if wanted.is_empty() {
        wanted.push((Value::Null, Value::Null));
    }
    let now = now_rfc3339();
    for (index, (endpoints, ports)) in wanted.into_iter().enumerate() {
        match existing.get(index) {
            Some(slice) => {
                let same = slice.get("endpoints").unwrap_or(&Value::Null) == &endpoints
                    && slice.get("ports").unwrap_or(&Value::Null) == &ports;
                if same {
                    continue;
                }
                let mut updated = slice.clone();
                updated["endpoints"] = endpoints;
                updated["ports"] = ports;
                updated["metadata"]["annotations"][TRIGGER_TIME] = json!(now);
                let path = format!("{collection}/{}", meta(slice, "name"));
                check(
                    &ctx.kcm.update(&path, &updated).await,
                    "updating EndpointSlice",
                )?;
            }
            None => {
                let slice = json!({
                    "apiVersion": "discovery.k8s.io/v1",
                    "kind": "EndpointSlice",
                    "metadata": {
                        "generateName": format!("{name}-"),
                        "namespace": ns,
                        "labels": {
                            "endpointslice.kubernetes.io/managed-by": SLICE_MANAGER,
                            SERVICE_NAME_LABEL: name,
                        },
                        "annotations": {TRIGGER_TIME: now},
                        "ownerReferences": [super::util::controller_ref(service, "v1", "Service")],
                    },
                    "addressType": "IPv4",
                    "endpoints": endpoints,
                    "ports": ports,
                });
                check(
                    &ctx.kcm.create(&collection, &slice).await,
                    "creating EndpointSlice",
                )?;
            }
        }
    }
    let keep = groups.len().max(1);
    for extra in existing.iter().skip(keep) {
        let answer = ctx
            .kcm
            .delete(&format!("{collection}/{}", meta(extra, "name")), None)
            .await;
        if !gone(&answer) {
            check(&answer, "deleting EndpointSlice")?;
        }
    }
    Ok(())
}

async fn reconcile_endpoints(
    ctx: &Ctx,
    service: &Value,
    groups: &BTreeMap<Vec<Port>, Vec<Endpoint>>,
) -> Result<(), String> {
    let ns = meta(service, "namespace");
    let name = meta(service, "name");
    let subsets = subsets(groups);
    let now = now_rfc3339();
    let path = format!("/api/v1/namespaces/{ns}/endpoints/{name}");
    let subsets_or_none = |v: &Value| v.as_array().is_none_or(|a| a.is_empty());
    match ctx.get("/endpoints", ns, name) {
        Some(current) => {
            let old = current.get("subsets").cloned().unwrap_or(Value::Null);
            if old == subsets || (subsets_or_none(&old) && subsets_or_none(&subsets)) {
                return Ok(());
            }
            let mut updated = current.clone();
            match updated.as_object_mut() {
                Some(o) if subsets_or_none(&subsets) => {
                    o.remove("subsets");
                }
                Some(o) => {
                    o.insert("subsets".into(), subsets);
                }
                None => return Ok(()),
            }
            updated["metadata"]["annotations"][TRIGGER_TIME] = json!(now);
            check(&ctx.kcm.update(&path, &updated).await, "updating Endpoints")
        }
        None => {
            let mut endpoints = json!({
                "apiVersion": "v1",
                "kind": "Endpoints",
                "metadata": {
                    "name": name,
                    "namespace": ns,
                    "labels": {"endpoints.kubernetes.io/managed-by": "endpoint-controller"},
                    "annotations": {TRIGGER_TIME: now},
                },
            });
            if !subsets_or_none(&subsets) {
                endpoints["subsets"] = subsets;
            }
            let collection = format!("/api/v1/namespaces/{ns}/endpoints");
            check(
                &ctx.kcm.create(&collection, &endpoints).await,
                "creating Endpoints",
            )
        }
    }
}

/// An Ingress gets the address an ingress controller would publish.
pub(crate) async fn reconcile_ingress(ctx: &Ctx, key: &Key) -> Outcome {
    let Some(ingress) = ctx.get("networking.k8s.io/ingresses", &key.namespace, &key.name) else {
        return Ok(None);
    };
    if is_deleting(&ingress) || ingress.pointer("/status/loadBalancer/ingress").is_some() {
        return Ok(None);
    }
    let path = format!(
        "/apis/networking.k8s.io/v1/namespaces/{}/ingresses/{}/status",
        key.namespace, key.name
    );
    let patch = json!({"status": {"loadBalancer": {"ingress": [{"ip": INGRESS_IP}]}}});
    let answer = ctx.kcm.merge_patch(&path, &patch).await;
    if gone(&answer) {
        return Ok(None);
    }
    check(&answer, "Ingress status").map(|()| None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, ip: &str, ready: bool, ports: Value) -> Value {
        json!({
            "metadata": {"name": name, "namespace": "ns", "uid": format!("u-{name}"), "labels": {"app": "web"}},
            "spec": {"nodeName": "plumb-node", "containers": [{"name": "c", "ports": ports}]},
            "status": {"phase": "Running", "podIP": ip, "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]},
        })
    }

    #[test]
    fn named_target_ports_resolve_per_pod_and_group_the_endpoints() {
        let service = json!({"spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}});
        let pods = vec![
            pod(
                "b",
                "10.244.0.2",
                true,
                json!([{"name": "http", "containerPort": 8080}]),
            ),
            pod(
                "a",
                "10.244.0.1",
                false,
                json!([{"name": "http", "containerPort": 8080}]),
            ),
            pod(
                "c",
                "10.244.0.3",
                true,
                json!([{"name": "http", "containerPort": 9090}]),
            ),
        ];
        let groups = endpoints_by_ports(&service, &pods);
        assert_eq!(groups.len(), 2);
        let first = &groups[&vec![("http".to_string(), 8080, "TCP".to_string())]];
        assert_eq!(
            first.iter().map(|e| e.ip.as_str()).collect::<Vec<_>>(),
            ["10.244.0.1", "10.244.0.2"]
        );
        let subsets = subsets(&groups);
        assert_eq!(subsets[0]["addresses"][0]["ip"], "10.244.0.2");
        assert_eq!(subsets[0]["notReadyAddresses"][0]["ip"], "10.244.0.1");
        assert_eq!(
            subsets[0]["ports"],
            json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
        );
        let (endpoints, ports) = slice_body(&[("".into(), 80, "TCP".into())], first);
        assert_eq!(
            endpoints[0]["conditions"],
            json!({"ready": false, "serving": false, "terminating": false})
        );
        assert_eq!(ports, json!([{"name": "", "port": 80, "protocol": "TCP"}]));
    }

    #[test]
    fn services_without_a_selector_select_nothing() {
        let labels = json!({"app": "web"});
        assert!(!selects(&json!({"spec": {}}), Some(&labels)));
        assert!(!selects(&json!({"spec": {"selector": {}}}), Some(&labels)));
        assert!(selects(
            &json!({"spec": {"selector": {"app": "web"}}}),
            Some(&labels)
        ));
        assert!(!selects(
            &json!({"spec": {"selector": {"app": "db"}}}),
            Some(&labels)
        ));
    }
}
