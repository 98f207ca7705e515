//! The controllers' work queue: deduplicating (a key waits at most once), one worker per
//! key at a time (a key changed while it is reconciled is reconciled again afterwards),
//! and delayed additions for timers.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;

/// Which controller a key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Pod,
    Node,
    ReplicaSet,
    Deployment,
    StatefulSet,
    DaemonSet,
    Job,
    CronJob,
    Service,
    Ingress,
    Claim,
    Volume,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

#[derive(Default)]
struct Inner {
    waiting: VecDeque<Key>,
    queued: HashSet<Key>,
    running: HashSet<Key>,
    /// Keys added while they were running: queued again when they finish.
    again: HashSet<Key>,
    closed: bool,
}

#[derive(Default)]
pub(crate) struct Queue {
    inner: Mutex<Inner>,
    ready: Notify,
}

impl Queue {
    pub fn add(&self, key: Key) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        if inner.running.contains(&key) {
            inner.again.insert(key);
            return;
        }
        if inner.queued.insert(key.clone()) {
            inner.waiting.push_back(key);
            drop(inner);
            self.ready.notify_one();
        }
    }

    /// Adds `key` once `after` has passed.
    pub fn add_after(self: &std::sync::Arc<Self>, key: Key, after: Duration) {
        let queue = std::sync::Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            queue.add(key);
        });
    }

    /// The next key to reconcile; `None` once closed.
    pub async fn next(&self) -> Option<Key> {
        loop {
            let notified = self.ready.notified();
            {
                let Ok(mut inner) = self.inner.lock() else {
                    return None;
                };
                if inner.closed {
                    return None;
                }
                if let Some(key) = inner.waiting.pop_front() {
                    inner.queued.remove(&key);
                    inner.running.insert(key.clone());
                    if !inner.waiting.is_empty() {
                        // Let another worker take the next one.
                        self.ready.notify_one();
                    }
                    return Some(key);
                }
            }
            notified.await;
        }
    }

    /// The worker has finished `key`.
    pub fn done(&self, key: &Key) {
        let again = {
            let Ok(mut inner) = self.inner.lock() else {
                return;
            };
            inner.running.remove(key);
            inner.again.remove(key)
        };
        if again {
            self.add(key.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Key {
        Key {
            kind: Kind::Pod,
            namespace: "ns".into(),
            name: name.into(),
        }
    }

    #[tokio::test]
    async fn keys_wait_once_and_run_again_when_changed_while_running() {
        let q = Queue::default();
        q.add(key("a"));
        q.add(key("a"));
        q.add(key("b"));
        let first = q.next().await.unwrap();
        assert_eq!(first, key("a"));
        // Changed while running: not handed out twice at once, but again after done.
        q.add(key("a"));
        assert_eq!(q.next().await.unwrap(), key("b"));
        q.done(&key("b"));
        q.done(&first);
        assert_eq!(q.next().await.unwrap(), key("a"));
    }
}
