//! An in-process client: the controllers' writes go through the same request handling as
//! any HTTP client's (defaults, validation, managedFields, garbage collection, watch
//! events), without TLS or a socket. Reads come straight from the store's index.

use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::Value;

use crate::handlers::AppState;

/// What an in-process request answered: the status code and the JSON body.
#[derive(Debug)]
pub(crate) struct Answer {
    pub code: u16,
    pub body: Value,
}

impl Answer {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.code)
    }
    /// The `message` of a failure `Status`.
    pub fn message(&self) -> &str {
        self.body
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
}

/// A client acting as one Kubernetes component (its user agent names the field manager).
#[derive(Clone)]
pub(crate) struct Client {
    state: AppState,
    user_agent: &'static str,
}

impl Client {
    pub fn new(state: AppState, user_agent: &'static str) -> Self {
        Client { state, user_agent }
    }

    /// Sends one request; `body` is JSON, `content_type` says which kind of write it is.
    pub async fn send(
        &self,
        method: http::Method,
        path: &str,
        content_type: &str,
        body: Option<&Value>,
    ) -> Answer {
        let bytes = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let request = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::USER_AGENT, self.user_agent)
            .header(http::header::ACCEPT, "application/json")
            .header(http::header::CONTENT_TYPE, content_type)
            .body(());
        let Ok(request) = request else {
            return Answer {
                code: 400,
                body: serde_json::json!({"message": format!("bad request path {path}")}),
            };
        };
        let (parts, ()) = request.into_parts();
        let response = self.state.handle(parts, bytes).await;
        let code = response.status().as_u16();
        let body = match response.into_body().collect().await {
            Ok(collected) => serde_json::from_slice(&collected.to_bytes()).unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        Answer { code, body }
    }

    pub async fn create(&self, collection: &str, object: &Value) -> Answer {
        self.send(
            http::Method::POST,
            collection,
            "application/json",
            Some(object),
        )
        .await
    }

    /// A JSON merge patch of the object at `path` (`…/status` for its status).
    pub async fn merge_patch(&self, path: &str, patch: &Value) -> Answer {
        self.send(
            http::Method::PATCH,
            path,
            "application/merge-patch+json",
            Some(patch),
        )
        .await
    }

    /// A replace of the object at `path`, guarded by the resourceVersion it carries.
    pub async fn update(&self, path: &str, object: &Value) -> Answer {
        self.send(http::Method::PUT, path, "application/json", Some(object))
            .await
    }

    pub async fn delete(&self, path: &str, options: Option<&Value>) -> Answer {
        self.send(http::Method::DELETE, path, "application/json", options)
            .await
    }
}
