//! Resource tracking, exactly as Argo CD marks what an Application owns: the annotation
//! `argocd.argoproj.io/tracking-id: <app>:<group>/<kind>:<namespace>/<name>`, the label
//! `app.kubernetes.io/instance: <app>`, or both. Marking objects the same way means a
//! controller adopts what `plumb sync` deployed without churn.

use crate::json::{self, annotation, label, metadata_map_mut};
use crate::settings::TrackingMethod;
use plumb_model::ResourceKey;
use serde_json::Value;

pub const TRACKING_ANNOTATION: &str = "argocd.argoproj.io/tracking-id";
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";

/// A parsed tracking id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackingId {
    pub app: String,
    pub key: ResourceKey,
}

/// `<app>:<group>/<kind>:<namespace>/<name>`.
pub fn tracking_id(app: &str, key: &ResourceKey) -> String {
    format!(
        "{app}:{}/{}:{}/{}",
        key.group, key.kind, key.namespace, key.name
    )
}

pub fn parse_tracking_id(text: &str) -> Option<TrackingId> {
    let (app, rest) = text.split_once(':')?;
    let (group_kind, namespace_name) = rest.split_once(':')?;
    let (group, kind) = group_kind.split_once('/')?;
    let (namespace, name) = namespace_name.split_once('/')?;
    if app.is_empty() || kind.is_empty() || name.is_empty() {
        return None;
    }
    Some(TrackingId {
        app: app.to_string(),
        key: ResourceKey::new(group, kind, namespace, name),
    })
}

/// Marks a desired object as owned by `app`.
pub fn set_tracking(object: &mut Value, app: &str, method: TrackingMethod) {
    let Some(key) = ResourceKey::from_object(object) else {
        return;
    };
    if matches!(
        method,
        TrackingMethod::Annotation | TrackingMethod::AnnotationAndLabel
    ) && let Some(annotations) = metadata_map_mut(object, "annotations")
    {
        annotations.insert(
            TRACKING_ANNOTATION.to_string(),
            Value::String(tracking_id(app, &key)),
        );
    }
    if matches!(
        method,
        TrackingMethod::Label | TrackingMethod::AnnotationAndLabel
    ) && let Some(labels) = metadata_map_mut(object, "labels")
    {
        labels.insert(INSTANCE_LABEL.to_string(), Value::String(app.to_string()));
    }
}

/// The Application that owns a live object, if any. With annotation tracking, an id whose
/// key does not match the object (it was copied from another object) owns nothing.
pub fn owner(object: &Value, method: TrackingMethod) -> Option<String> {
    let from_annotation = || {
        let id = parse_tracking_id(annotation(object, TRACKING_ANNOTATION)?)?;
        let key = ResourceKey::from_object(object)?;
        let same_object = id.key.group == key.group
            && id.key.kind == key.kind
            && id.key.name == key.name
            && (id.key.namespace == key.namespace || key.namespace.is_empty());
        same_object.then_some(id.app)
    };
    let from_label = || label(object, INSTANCE_LABEL).map(str::to_string);
    match method {
        TrackingMethod::Annotation | TrackingMethod::AnnotationAndLabel => from_annotation(),
        TrackingMethod::Label => from_label(),
    }
}

/// The label selector that lists an app's objects when tracking by label (annotation
/// tracking lists everything and filters by [`owner`]).
pub fn label_selector(app: &str) -> String {
    format!("{INSTANCE_LABEL}={app}")
}

/// Whether `object` belongs to `app`.
pub fn is_owned_by(object: &Value, app: &str, method: TrackingMethod) -> bool {
    owner(object, method).as_deref() == Some(app) && !json::name(object).is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn tracking_id_golden() {
        let key = ResourceKey::new("apps", "Deployment", "shop", "web");
        assert_eq!(
            tracking_id("guestbook", &key),
            "guestbook:apps/Deployment:shop/web"
        );
        let cluster = ResourceKey::new("", "Namespace", "", "shop");
        assert_eq!(
            tracking_id("guestbook", &cluster),
            "guestbook:/Namespace:/shop"
        );
    }

    #[test]
    fn copied_annotation_owns_nothing() {
        let mut object = json!({"apiVersion": "v1", "kind": "ConfigMap",
                                "metadata": {"name": "a", "namespace": "n"}});
        set_tracking(&mut object, "app", TrackingMethod::AnnotationAndLabel);
        assert_eq!(
            owner(&object, TrackingMethod::Annotation).as_deref(),
            Some("app")
        );
        assert_eq!(
            owner(&object, TrackingMethod::Label).as_deref(),
            Some("app")
        );
        object["metadata"]["name"] = json!("copy");
        assert_eq!(owner(&object, TrackingMethod::Annotation), None);
        assert!(!is_owned_by(&object, "app", TrackingMethod::Annotation));
    }

    proptest! {
        #[test]
        fn tracking_id_round_trips(
            app in "[a-z][a-z0-9-]{0,20}",
            group in "([a-z]{1,8}(\\.[a-z]{1,8}){0,2})?",
            kind in "[A-Z][a-zA-Z]{0,15}",
            namespace in "([a-z][a-z0-9-]{0,10})?",
            name in "[a-z][a-z0-9.-]{0,20}",
        ) {
            let key = ResourceKey::new(group, kind, namespace, name);
            let parsed = parse_tracking_id(&tracking_id(&app, &key));
            prop_assert_eq!(parsed, Some(TrackingId { app, key }));
        }
    }
}
