//! Events as Kubernetes' components record them (core v1 `Event`, found by
//! `kubectl describe` through `involvedObject` and listed by `kubectl get events`).

use serde_json::{Value, json};

use super::Ctx;
use super::util::meta;
use crate::objects::now_rfc3339;

/// Who records an event: the component name and, for the kubelet, its node.
#[derive(Clone, Copy)]
pub(crate) struct Source {
    pub component: &'static str,
    pub host: Option<&'static str>,
}

pub(crate) const DEPLOYMENT: Source = Source {
    component: "deployment-controller",
    host: None,
};
pub(crate) const REPLICASET: Source = Source {
    component: "replicaset-controller",
    host: None,
};
pub(crate) const STATEFULSET: Source = Source {
    component: "statefulset-controller",
    host: None,
};
pub(crate) const DAEMONSET: Source = Source {
    component: "daemonset-controller",
    host: None,
};
pub(crate) const JOB: Source = Source {
    component: "job-controller",
    host: None,
};
pub(crate) const CRONJOB: Source = Source {
    component: "cronjob-controller",
    host: None,
};
pub(crate) const SCHEDULER: Source = Source {
    component: "default-scheduler",
    host: None,
};
pub(crate) const KUBELET: Source = Source {
    component: "kubelet",
    host: Some(super::NODE_NAME),
};

/// Records one event about `object`. Best effort, as in Kubernetes: a refused event is
/// logged and changes nothing else.
pub(crate) async fn record(
    ctx: &Ctx,
    source: Source,
    object: &Value,
    event_type: &str,
    reason: &str,
    message: &str,
) {
    let namespace = match meta(object, "namespace") {
        "" => "default",
        ns => ns,
    };
    let now = now_rfc3339();
    let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    let mut source_json = json!({"component": source.component});
    if let Some(host) = source.host {
        source_json["host"] = json!(host);
    }
    let mut involved = json!({
        "kind": object.get("kind").cloned().unwrap_or(Value::Null),
        "namespace": meta(object, "namespace"),
        "name": meta(object, "name"),
        "uid": meta(object, "uid"),
        "apiVersion": object.get("apiVersion").cloned().unwrap_or(Value::Null),
        "resourceVersion": meta(object, "resourceVersion"),
    });
    if meta(object, "namespace").is_empty()
        && let Some(o) = involved.as_object_mut()
    {
        o.remove("namespace");
    }
    let event = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": format!("{}.{:x}", meta(object, "name"), nanos),
            "namespace": namespace,
        },
        "involvedObject": involved,
        "reason": reason,
        "message": message,
        "source": source_json,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "type": event_type,
        "eventTime": null,
        "reportingComponent": source.component,
        "reportingInstance": source.host.unwrap_or(""),
    });
    let answer = ctx
        .kcm
        .create(&format!("/api/v1/namespaces/{namespace}/events"), &event)
        .await;
    if !answer.ok() {
        tracing::debug!(
            reason,
            message = answer.message(),
            "recording an event failed"
        );
    }
}
