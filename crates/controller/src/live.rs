//! Watches of the live objects apps manage: one metadata-only watch per destination and
//! kind (not per app), so a `kubectl delete` or `kubectl edit` of a managed object queues
//! its app at once. Only object metadata travels and nothing is kept: the engine reads
//! what it compares, and its caches are keyed by resourceVersion.

use crate::destinations::Destination;
use crate::queue::WorkQueue;
use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::core::PartialObjectMeta;
use kube::runtime::watcher;
use plumb_engine::settings::TrackingMethod;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// (destination server, group, version, kind)
type WatchKey = (String, String, String, String);

/// The live watches running, by destination and kind.
pub struct LiveWatches {
    started: Mutex<HashSet<WatchKey>>,
    cancel: CancellationToken,
}

impl Default for LiveWatches {
    fn default() -> Self {
        Self {
            started: Mutex::new(HashSet::new()),
            cancel: CancellationToken::new(),
        }
    }
}

impl LiveWatches {
    /// Makes sure each of `kinds` is watched on `destination`; events queue the owning app.
    pub fn watch(
        &self,
        queue: &Arc<WorkQueue>,
        destination: &Destination,
        kinds: impl Iterator<Item = (String, String, String)>,
        method: TrackingMethod,
    ) {
        for (group, version, kind) in kinds {
            if version.is_empty() || kind.is_empty() {
                continue;
            }
            let key = (
                destination.server.clone(),
                group.clone(),
                version.clone(),
                kind.clone(),
            );
            if !self
                .started
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key)
            {
                continue;
            }
            let api_version = if group.is_empty() {
                version
            } else {
                format!("{group}/{version}")
            };
            tokio::spawn(watch_kind(
                destination.clone(),
                api_version,
                kind,
                queue.clone(),
                method,
                self.cancel.clone(),
            ));
        }
    }

    /// How many (destination, kind) watches run.
    pub fn len(&self) -> usize {
        self.started.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn shut_down(&self) {
        self.cancel.cancel();
    }
}

async fn watch_kind(
    destination: Destination,
    api_version: String,
    kind: String,
    queue: Arc<WorkQueue>,
    method: TrackingMethod,
    cancel: CancellationToken,
) {
    // The kind may not be served yet (a CRD the app itself creates): look again later.
    let resource = loop {
        match destination.cluster.resolve(&api_version, &kind).await {
            Ok(Some(resolved)) => break resolved.resource,
            Ok(None) | Err(_) => {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
                destination.cluster.forget_unknown_kinds();
            }
        }
    };
    let api: Api<PartialObjectMeta<DynamicObject>> =
        Api::all_with(destination.cluster.client().clone(), &resource);
    let stream = watcher(api, watcher::Config::default());
    let mut stream = std::pin::pin!(stream);
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => return,
            event = stream.next() => event,
        };
        let Some(event) = event else { return };
        let meta = match event {
            // The initial list is what the last comparison saw: nothing to queue.
            Ok(watcher::Event::Apply(meta)) | Ok(watcher::Event::Delete(meta)) => meta,
            Ok(_) => continue,
            Err(error) => {
                tracing::debug!(server = %destination.server, %kind, %error, "live watch; retrying");
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                continue;
            }
        };
        let object = serde_json::json!({
            "apiVersion": api_version,
            "kind": kind,
            "metadata": meta.metadata,
        });
        if let Some(app) = plumb_engine::tracking::owner(&object, method) {
            queue.add(&app);
        }
    }
}
