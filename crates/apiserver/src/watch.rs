//! Watch streams: chunked JSON lines of ADDED / MODIFIED / DELETED / BOOKMARK / ERROR
//! events, resumable from a resourceVersion while history holds it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::Response;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::api_error::ApiError;
use crate::http::Body;
use crate::negotiation::Representation;
use crate::registry::ResourceInfo;
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{Event, EventType, Obj, Store};

/// Per-watcher limits from the server's configuration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WatchLimits {
    /// Undelivered events a watcher may have queued before it is dropped.
    pub queue: usize,
    /// How often a watch that allows bookmarks gets one.
    pub bookmark_every: Duration,
}
/// Default watch lifetime (Kubernetes picks 30-60 minutes).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

struct Filter {
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    fn matches_obj(&self, obj: &crate::store::Obj) -> bool {
        self.labels.matches(&*obj.labels) && obj.matches_fields(&self.fields)
    }

    /// The event type this watcher sees, if any: objects moving into or out of the
    /// selector appear as ADDED or DELETED, as in Kubernetes.
    /// The event this watcher sees, if any: objects moving into or out of the selector
    /// appear as ADDED or DELETED, as in Kubernetes; an object leaving is sent in its last
    /// matching state (with the event's resourceVersion).
    fn translate(&self, e: &Event) -> Option<(EventType, Arc<Obj>)> {
        let now = self.matches_obj(&e.object);
        match e.type_ {
            EventType::Added => now.then(|| (EventType::Added, Arc::clone(&e.object))),
            EventType::Deleted => now.then(|| (EventType::Deleted, Arc::clone(&e.object))),
            EventType::Modified => {
                let before = e.previous.as_ref().filter(|p| self.matches_obj(p));
                match (before, now) {
                    (Some(_), true) => Some((EventType::Modified, Arc::clone(&e.object))),
                    (None, true) => Some((EventType::Added, Arc::clone(&e.object))),
                    (Some(prev), false) => Some((EventType::Deleted, last_state(prev, e.rv()))),
                    (None, false) => None,
                }
            }
        }
    }
}

/// `prev` as of resourceVersion `rv`.
fn last_state(prev: &Arc<Obj>, rv: u64) -> Arc<Obj> {
    let Ok(mut value) = prev.value() else {
        return Arc::clone(prev);
    };
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
    }
    match serde_json::to_vec(&value) {
        Ok(bytes) => Arc::new(Obj {
            metadata: crate::store::metadata_span(&bytes),
            bytes: Bytes::from(bytes),
            namespace: prev.namespace.clone(),
            name: prev.name.clone(),
            labels: prev.labels.clone(),
            owners: prev.owners.clone(),
            rv,
        }),
        Err(_) => Arc::clone(prev),
    }
}

/// How a watch runs (from the query).
struct Options {
    timeout: Duration,
    bookmark_every: Duration,
    bookmarks: bool,
    initial_events: bool,
}

struct Encoder {
    info: Arc<ResourceInfo>,
    version: String,
    representation: Representation,
}

impl Encoder {
    fn line(&self, type_: &str, object: &[u8]) -> Bytes {
        let mut out = Vec::with_capacity(object.len() + 32);
        out.extend_from_slice(b"{\"type\":\"");
        out.extend_from_slice(type_.as_bytes());
        out.extend_from_slice(b"\",\"object\":");
        out.extend_from_slice(object);
        out.extend_from_slice(b"}\n");
        Bytes::from(out)
    }

    fn event(&self, type_: EventType, obj: &crate::store::Obj) -> Bytes {
        match self.representation {
            Representation::Table(version) => {
                let value = obj.value().unwrap_or(Value::Null);
                let t = crate::table::table(
                    &self.info,
                    &[value],
                    &obj.rv.to_string(),
                    None,
                    version,
                    crate::table::IncludeObject::Metadata,
                );
                self.line(type_.as_str(), t.to_string().as_bytes())
            }
            Representation::Partial(version) | Representation::PartialList(version) => {
                let metadata = obj.metadata_bytes();
                let mut partial = Vec::with_capacity(metadata.map_or(0, <[u8]>::len) + 80);
                crate::partial::push_partial(&mut partial, version, metadata);
                self.line(type_.as_str(), &partial)
            }
            Representation::Object => self.line(
                type_.as_str(),
                &crate::handlers::render(&self.info, &self.version, obj),
            ),
        }
    }

    fn bookmark(&self, rv: u64, initial_events_end: bool) -> Bytes {
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if initial_events_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj = match self.representation {
            Representation::Partial(version) | Representation::PartialList(version) => {
                crate::partial::bookmark(version, metadata)
            }
            Representation::Object | Representation::Table(_) => {
                json!({"kind": self.info.kind, "apiVersion": self.info.api_version(&self.version), "metadata": metadata})
            }
        };
        self.line("BOOKMARK", obj.to_string().as_bytes())
    }
}

fn stream_response(rx: mpsc::Receiver<Bytes>) -> Response<Body> {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| {
            (
                Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(b)),
                rx,
            )
        })
    });
    let body = http_body_util::StreamBody::new(stream).boxed();
    let mut r = Response::new(body);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-cache, private"),
    );
    r
}

/// Starts a watch and answers its streaming response.
pub(crate) fn serve(
    store: Arc<Store>,
    info: &Arc<ResourceInfo>,
    version: &str,
    namespace: Option<&str>,
    query: &std::collections::HashMap<String, String>,
    representation: Representation,
    limits: WatchLimits,
) -> Result<Response<Body>, ApiError> {
    let labels = LabelSelector::parse(query.get("labelSelector").map(String::as_str).unwrap_or(""))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let fields = FieldSelector::parse_with(
        query.get("fieldSelector").map(String::as_str).unwrap_or(""),
        crate::registry::extra_field_selectors(&info.group, &info.resource),
    )
    .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let from = match query.get("resourceVersion").map(String::as_str) {
        None | Some("") | Some("0") => None,
        Some(rv) => Some(
            rv.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?,
        ),
    };
    let timeout = match query.get("timeoutSeconds").map(String::as_str) {
        None | Some("") => DEFAULT_TIMEOUT,
        Some(t) => Duration::from_secs(
            t.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds {t:?}")))?,
        ),
    };
    let bookmarks = matches!(
        query.get("allowWatchBookmarks").map(String::as_str),
        Some("true" | "1")
    );
    // Streaming lists ("watch-list"): the current state as ADDED events, then a bookmark
    // marking the end of the initial events. Kubernetes requires bookmarks and
    // resourceVersionMatch=NotOlderThan for it.
    let initial_events = matches!(
        query.get("sendInitialEvents").map(String::as_str),
        Some("true" | "1")
    );
    if initial_events {
        if !bookmarks {
            return Err(ApiError::invalid_query(
                "sendInitialEvents",
                "sendInitialEvents requires allowWatchBookmarks=true",
            ));
        }
        if query.get("resourceVersionMatch").map(String::as_str) != Some("NotOlderThan") {
            return Err(ApiError::invalid_query(
                "resourceVersionMatch",
                "sendInitialEvents requires resourceVersionMatch=NotOlderThan",
            ));
        }
    }
    // With initial events the watch starts from the current state whatever the version.
    let from = if initial_events { None } else { from };
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    if let Representation::PartialList(_) = representation {
        // kube-apiserver cannot convert single events to lists: it answers 200 and ends
        // the stream at once, without an event.
        return Ok(stream_response(rx));
    }
    let encoder = Encoder {
        info: Arc::clone(info),
        version: version.to_string(),
        representation,
    };
    let filter = Filter { labels, fields };
    match store.subscribe(&info.store_key(), namespace, from, limits.queue) {
        Err(expired) => {
            let status = ApiError::gone(format!(
                "too old resource version: {} ({})",
                expired.requested, expired.oldest
            ))
            .to_status();
            let line = encoder.line("ERROR", status.to_string().as_bytes());
            tokio::spawn(async move {
                let _ = tx.send(line).await;
            });
        }
        Ok(sub) => {
            tokio::spawn(run(
                store,
                sub,
                encoder,
                filter,
                tx,
                Options {
                    timeout,
                    bookmark_every: limits.bookmark_every,
                    bookmarks,
                    initial_events,
                },
            ));
        }
    }
    Ok(stream_response(rx))
}

async fn run(
    store: Arc<Store>,
    mut sub: crate::store::Subscription,
    encoder: Encoder,
    filter: Filter,
    tx: mpsc::Sender<Bytes>,
    options: Options,
) {
    let Options {
        timeout,
        bookmark_every,
        bookmarks,
        initial_events,
    } = options;
    let mut last_sent = 0u64;
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    for e in std::mem::take(&mut sub.backlog) {
        last_sent = last_sent.max(e.rv());
        if let Some((t, obj)) = filter.translate(&e)
            && tx.send(encoder.event(t, &obj)).await.is_err()
        {
            return;
        }
    }
    if initial_events {
        last_sent = last_sent.max(sub.snapshot_rv);
        if tx
            .send(encoder.bookmark(sub.snapshot_rv, true))
            .await
            .is_err()
        {
            return;
        }
    }
    let mut ticker = tokio::time::interval(bookmark_every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = &mut deadline => return,
            _ = tx.closed() => return,
            next = sub.rx.recv() => {
                // None: the store dropped this watcher (queue overflow or shutdown); the
                // stream ends and the client re-lists or resumes, as with Kubernetes.
                let Some(e) = next else { return };
                last_sent = last_sent.max(e.rv());
                if let Some((t, obj)) = filter.translate(&e)
                    && tx.send(encoder.event(t, &obj)).await.is_err()
                {
                    return;
                }
            }
            _ = ticker.tick(), if bookmarks => {
                // Every event up to `rv` is already queued for us: send those, then the mark.
                let rv = store.current_rv();
                while let Ok(e) = sub.rx.try_recv() {
                    last_sent = last_sent.max(e.rv());
                    if let Some((t, obj)) = filter.translate(&e)
                        && tx.send(encoder.event(t, &obj)).await.is_err()
                    {
                        return;
                    }
                }
                if tx.send(encoder.bookmark(rv.max(last_sent), false)).await.is_err() {
                    return;
                }
            }
        }
    }
}
