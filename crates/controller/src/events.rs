//! Kubernetes Events on Applications (core v1, as `kubectl describe` and `kubectl get
//! events` show them): operations started and completed, sync and health transitions.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, PostParams};
use plumb_model::Application;
use std::sync::atomic::{AtomicU64, Ordering};

pub const COMPONENT: &str = "plumb-controller";

/// Writes Events; a failure to write one is logged, never fails the reconcile.
pub struct EventRecorder {
    client: kube::Client,
    sequence: AtomicU64,
}

impl EventRecorder {
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            sequence: AtomicU64::new(0),
        }
    }

    pub async fn record(&self, app: &Application, warning: bool, reason: &str, message: &str) {
        let name = app.metadata.name.clone().unwrap_or_default();
        let namespace = app.metadata.namespace.clone().unwrap_or_default();
        let now = time::OffsetDateTime::now_utc();
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
        let event = Event {
            metadata: ObjectMeta {
                name: Some(format!(
                    "{name}.{:x}{sequence:04x}",
                    now.unix_timestamp_nanos() as u64
                )),
                namespace: Some(namespace.clone()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                api_version: Some(plumb_model::API_VERSION.to_string()),
                kind: Some(plumb_model::APPLICATION_KIND.to_string()),
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                uid: app.metadata.uid.clone(),
                resource_version: app.metadata.resource_version.clone(),
                ..Default::default()
            },
            reason: Some(reason.to_string()),
            message: Some(message.to_string()),
            type_: Some(if warning { "Warning" } else { "Normal" }.to_string()),
            source: Some(EventSource {
                component: Some(COMPONENT.to_string()),
                host: None,
            }),
            reporting_component: Some(COMPONENT.to_string()),
            first_timestamp: Some(Time(now_jiff())),
            last_timestamp: Some(Time(now_jiff())),
            count: Some(1),
            ..Default::default()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        if let Err(error) = api.create(&PostParams::default(), &event).await {
            tracing::warn!(app = %name, %reason, %error, "could not record an event");
        }
    }
}

fn now_jiff() -> k8s_openapi::jiff::Timestamp {
    k8s_openapi::jiff::Timestamp::now()
}
