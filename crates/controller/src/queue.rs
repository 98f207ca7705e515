//! The work queue of Application names: deduplicating, delayed adds, per-key failure
//! backoff, and a key never handed out twice at once (an add while it is being processed
//! hands it out again after `done`).

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

#[derive(Default)]
struct Inner {
    ready: VecDeque<String>,
    /// Keys in `ready`.
    queued: HashSet<String>,
    /// (due, sequence, key), earliest first; `due_of` holds each key's entry.
    delayed: BTreeSet<(Instant, u64, String)>,
    due_of: HashMap<String, (Instant, u64)>,
    sequence: u64,
    processing: HashSet<String>,
    /// Added while processing: ready again once done.
    dirty: HashSet<String>,
    failures: HashMap<String, u32>,
    shut_down: bool,
}

impl Inner {
    fn push_ready(&mut self, key: String) {
        if let Some((due, seq)) = self.due_of.remove(&key) {
            self.delayed.remove(&(due, seq, key.clone()));
        }
        if self.processing.contains(&key) {
            self.dirty.insert(key);
        } else if self.queued.insert(key.clone()) {
            self.ready.push_back(key);
        }
    }

    fn promote_due(&mut self, now: Instant) {
        while let Some((due, _, _)) = self.delayed.first() {
            if *due > now {
                break;
            }
            if let Some((_, _, key)) = self.delayed.pop_first() {
                self.due_of.remove(&key);
                self.push_ready(key);
            }
        }
    }
}

pub struct WorkQueue {
    inner: Mutex<Inner>,
    notify: Notify,
    base_backoff: Duration,
    max_backoff: Duration,
}

impl WorkQueue {
    pub fn new(base_backoff: Duration, max_backoff: Duration) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            notify: Notify::new(),
            base_backoff,
            max_backoff,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The queue's state stays consistent across a panic elsewhere: every change is
        // made under the lock in one step.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes `key` ready now (a no-op when it is already ready).
    pub fn add(&self, key: &str) {
        self.lock().push_ready(key.to_string());
        self.notify.notify_one();
    }

    /// Makes `key` ready after `delay`, unless it is ready or due sooner already.
    pub fn add_after(&self, key: &str, delay: Duration) {
        if delay.is_zero() {
            return self.add(key);
        }
        let due = Instant::now() + delay;
        let mut inner = self.lock();
        if inner.queued.contains(key) {
            return;
        }
        if let Some((current, seq)) = inner.due_of.get(key).copied() {
            if current <= due {
                return;
            }
            inner.delayed.remove(&(current, seq, key.to_string()));
        }
        inner.sequence += 1;
        let seq = inner.sequence;
        inner.delayed.insert((due, seq, key.to_string()));
        inner.due_of.insert(key.to_string(), (due, seq));
        drop(inner);
        self.notify.notify_one();
    }

    /// Re-adds `key` after its next failure backoff (doubling from the base, capped).
    pub fn add_rate_limited(&self, key: &str) -> Duration {
        let delay = {
            let mut inner = self.lock();
            let failures = inner.failures.entry(key.to_string()).or_insert(0);
            let delay = self
                .base_backoff
                .saturating_mul(2u32.saturating_pow(*failures))
                .min(self.max_backoff);
            *failures = failures.saturating_add(1);
            delay
        };
        self.add_after(key, delay);
        delay
    }

    /// Clears `key`'s failure count (it succeeded).
    pub fn forget(&self, key: &str) {
        self.lock().failures.remove(key);
    }

    /// The next ready key, waiting for one; `None` after [`WorkQueue::shut_down`].
    pub async fn next(&self) -> Option<String> {
        loop {
            let notified = self.notify.notified();
            let wait = {
                let mut inner = self.lock();
                if inner.shut_down {
                    return None;
                }
                inner.promote_due(Instant::now());
                if let Some(key) = inner.ready.pop_front() {
                    inner.queued.remove(&key);
                    inner.processing.insert(key.clone());
                    // Others may be ready too: let another worker look.
                    if !inner.ready.is_empty() {
                        self.notify.notify_one();
                    }
                    return Some(key);
                }
                inner.delayed.first().map(|(due, _, _)| *due)
            };
            match wait {
                Some(due) => {
                    tokio::select! {
                        _ = notified => {}
                        _ = tokio::time::sleep_until(due) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Marks `key` processed; it is ready again if it was added meanwhile.
    pub fn done(&self, key: &str) {
        let mut inner = self.lock();
        inner.processing.remove(key);
        if inner.dirty.remove(key) {
            inner.push_ready(key.to_string());
            drop(inner);
            self.notify.notify_one();
        }
    }

    /// Keys ready or waiting (for the queue-depth metric).
    pub fn len(&self) -> usize {
        let inner = self.lock();
        inner.ready.len() + inner.delayed.len() + inner.dirty.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn shut_down(&self) {
        self.lock().shut_down = true;
        self.notify.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue() -> WorkQueue {
        WorkQueue::new(Duration::from_millis(10), Duration::from_secs(1))
    }

    #[tokio::test(start_paused = true)]
    async fn adds_are_deduplicated_and_handed_out_in_order() {
        let q = queue();
        q.add("a");
        q.add("b");
        q.add("a");
        assert_eq!(q.len(), 2);
        assert_eq!(q.next().await.as_deref(), Some("a"));
        assert_eq!(q.next().await.as_deref(), Some("b"));
        assert!(q.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_being_processed_is_not_handed_out_again_until_done() {
        let q = queue();
        q.add("a");
        assert_eq!(q.next().await.as_deref(), Some("a"));
        q.add("a");
        q.add("b");
        assert_eq!(q.next().await.as_deref(), Some("b"));
        q.done("a");
        assert_eq!(q.next().await.as_deref(), Some("a"));
    }

    #[tokio::test(start_paused = true)]
    async fn delayed_adds_keep_the_earliest_due_time() {
        let q = queue();
        let start = Instant::now();
        q.add_after("a", Duration::from_secs(10));
        q.add_after("a", Duration::from_secs(2));
        q.add_after("a", Duration::from_secs(5));
        assert_eq!(q.len(), 1);
        assert_eq!(q.next().await.as_deref(), Some("a"));
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn an_immediate_add_overrides_a_delay() {
        let q = queue();
        let start = Instant::now();
        q.add_after("a", Duration::from_secs(10));
        q.add("a");
        assert_eq!(q.next().await.as_deref(), Some("a"));
        assert!(start.elapsed() < Duration::from_secs(1));
        assert!(q.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn failures_back_off_exponentially_up_to_the_cap_and_forget_resets() {
        let q = queue();
        let delays: Vec<u128> = (0..9)
            .map(|_| q.add_rate_limited("a").as_millis())
            .collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        q.forget("a");
        assert_eq!(q.add_rate_limited("a"), Duration::from_millis(10));
    }

    #[tokio::test(start_paused = true)]
    async fn shut_down_wakes_waiting_workers() {
        let q = std::sync::Arc::new(queue());
        let waiter = tokio::spawn({
            let q = q.clone();
            async move { q.next().await }
        });
        tokio::task::yield_now().await;
        q.shut_down();
        assert_eq!(waiter.await.expect("join"), None);
    }
}
