//! Kubernetes `Status` error bodies, so kubectl and kube-rs print their usual messages.

use serde_json::{Value, json};

/// One field problem of a `422 Invalid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// `FieldValueInvalid`, `FieldValueRequired`, ...
    pub reason: &'static str,
    /// The message, e.g. `Invalid value: "A": ...`.
    pub message: String,
    /// The JSON path, e.g. `metadata.name`.
    pub field: String,
}

impl Cause {
    pub fn invalid(field: impl Into<String>, value: &str, why: impl std::fmt::Display) -> Self {
        Cause {
            reason: "FieldValueInvalid",
            message: format!("Invalid value: {}: {why}", Value::String(value.to_string())),
            field: field.into(),
        }
    }
    pub fn required(field: impl Into<String>, why: impl std::fmt::Display) -> Self {
        Cause {
            reason: "FieldValueRequired",
            message: format!("Required value: {why}"),
            field: field.into(),
        }
    }
    pub fn forbidden(field: impl Into<String>, why: impl std::fmt::Display) -> Self {
        Cause {
            reason: "FieldValueForbidden",
            message: format!("Forbidden: {why}"),
            field: field.into(),
        }
    }
    pub fn too_long(field: impl Into<String>, why: impl std::fmt::Display) -> Self {
        Cause {
            reason: "FieldValueTooLong",
            message: format!("Too long: {why}"),
            field: field.into(),
        }
    }
}

/// An API error answered as a `kind: Status` body.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

/// `deployments.apps` or `configmaps`: how Kubernetes names a resource in messages.
pub fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

impl ApiError {
    /// `409 Conflict` of a server-side apply: one `FieldManagerConflict` cause per field.
    pub fn apply_conflict(conflicts: &crate::managed::Conflicts) -> Self {
        let causes: Vec<Value> = conflicts
            .items
            .iter()
            .map(|c| {
                json!({"reason": "FieldManagerConflict", "message": format!("conflict with {}", c.manager), "field": crate::managed::display_path(&c.path)})
            })
            .collect();
        let mut e = ApiError::new(409, "Conflict", conflicts.message());
        e.details = Some(json!({"causes": causes}));
        e
    }

    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }
    fn with_details(mut self, name: &str, group: &str, kind: &str) -> Self {
        let mut d = json!({"kind": kind});
        if !name.is_empty() {
            d["name"] = json!(name);
        }
        if !group.is_empty() {
            d["group"] = json!(group);
        }
        self.details = Some(d);
        self
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }
    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", qualified(group, resource)),
        )
        .with_details(name, group, resource)
    }
    /// 404 for a path that names no known resource.
    pub fn no_route() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
        .with_empty_details()
    }
    fn with_empty_details(mut self) -> Self {
        self.details = Some(json!({}));
        self
    }
    /// kube-apiserver's answer to a method a path does not serve (it does not name the
    /// method).
    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
        .with_empty_details()
    }
    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", qualified(group, resource)),
        )
        .with_details(name, group, resource)
    }
    pub fn conflict(group: &str, resource: &str, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                qualified(group, resource)
            ),
        )
        .with_details(name, group, resource)
    }
    pub fn stale(group: &str, resource: &str, name: &str) -> Self {
        Self::conflict(
            group,
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: limit is {limit}"),
        )
    }
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/merge-patch+json, application/json-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml (got {content_type:?})"
            ),
        )
    }
    pub fn invalid(kind: &str, group: &str, name: &str, causes: Vec<Cause>) -> Self {
        let summary: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        let message = if summary.len() == 1 {
            format!("{kind} \"{name}\" is invalid: {}", summary[0])
        } else {
            format!("{kind} \"{name}\" is invalid: [{}]", summary.join(", "))
        };
        let mut e = Self::new(422, "Invalid", message);
        let mut d = json!({"kind": kind, "causes": causes.iter().map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field})).collect::<Vec<_>>()});
        if !name.is_empty() {
            d["name"] = json!(name);
        }
        if !group.is_empty() {
            d["group"] = json!(group);
        }
        e.details = Some(d);
        e
    }
    /// 422 for a bad combination of query parameters (as Kubernetes' ListOptions validation).
    pub fn invalid_query(field: &str, why: &str) -> Self {
        let mut e = Self::new(
            422,
            "Invalid",
            format!("ListOptions.meta.k8s.io \"\" is invalid: {field}: Forbidden: {why}"),
        );
        e.details = Some(
            json!({"kind": "ListOptions", "group": "meta.k8s.io", "causes": [{"reason": "FieldValueForbidden", "message": format!("Forbidden: {why}"), "field": field}]}),
        );
        e
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }
    /// A `500` without a reason, as kube-apiserver answers errors it did not classify.
    pub fn unclassified(message: impl Into<String>) -> Self {
        Self::new(500, "", message)
    }
    /// `406 Not Acceptable` from kube-apiserver's negotiation or conversion of an answer.
    pub fn not_acceptable(message: impl Into<String>) -> Self {
        Self::new(406, "NotAcceptable", message)
    }
    /// `406 Not Acceptable` from kube-apiserver's router: no media type of the `Accept`
    /// header is one it produces.
    pub fn not_acceptable_media_type(produced: &[&str]) -> Self {
        Self::new(
            406,
            "NotAcceptable",
            format!(
                "406: Not Acceptable\n\nAvailable representations: {}",
                produced.join(", ")
            ),
        )
        .with_empty_details()
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if self.reason.is_empty()
            && let Some(fields) = s.as_object_mut()
        {
            fields.remove("reason");
        }
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}
