//! The render cache: (normalised repository URL, commit, path, source options, tool versions)
//! → rendered objects. A hit is a hash-map lookup: no process, no disk. Bounded by entries
//! and by an estimate of bytes; least recently used goes first. Only successful renders are
//! ever inserted.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use crate::render::{Manifest, SourceType};

/// A cache key: the SHA-256 of everything a render depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RenderKey([u8; 32]);

impl RenderKey {
    /// Builds a key from labelled parts; the labels and lengths are hashed too, so no two
    /// different part lists collide by concatenation.
    pub fn from_parts<'a>(parts: impl IntoIterator<Item = (&'a str, &'a str)>) -> RenderKey {
        let mut hasher = Sha256::new();
        for (label, value) in parts {
            hasher.update((label.len() as u64).to_le_bytes());
            hasher.update(label.as_bytes());
            hasher.update((value.len() as u64).to_le_bytes());
            hasher.update(value.as_bytes());
        }
        RenderKey(hasher.finalize().into())
    }

    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// One cached render: the manifests and how each source was rendered.
#[derive(Debug, Clone)]
pub struct CachedRender {
    pub manifests: Arc<Vec<Manifest>>,
    /// One per rendered source, in order.
    pub source_types: Vec<SourceType>,
}

struct Entry {
    render: CachedRender,
    bytes: usize,
    last_used: u64,
}

struct Inner {
    entries: HashMap<RenderKey, Entry>,
    bytes: usize,
    clock: u64,
}

/// Counters for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub entries: usize,
    pub bytes: usize,
    pub evictions: u64,
}

pub struct RenderCache {
    inner: Mutex<Inner>,
    max_entries: usize,
    max_bytes: usize,
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
}

impl RenderCache {
    pub fn new(max_entries: usize, max_bytes: usize) -> RenderCache {
        RenderCache {
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                bytes: 0,
                clock: 0,
            }),
            max_entries: max_entries.max(1),
            max_bytes,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        }
    }

    pub fn get(&self, key: &RenderKey) -> Option<CachedRender> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.clock += 1;
        let clock = inner.clock;
        match inner.entries.get_mut(key) {
            Some(entry) => {
                entry.last_used = clock;
                self.hits.fetch_add(1, Ordering::Relaxed);
                Some(entry.render.clone())
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Stores a successful render. An entry larger than the whole budget is not kept.
    pub fn insert(&self, key: RenderKey, render: CachedRender, bytes: usize) {
        if bytes > self.max_bytes {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.clock += 1;
        let clock = inner.clock;
        if let Some(old) = inner.entries.insert(
            key,
            Entry {
                render,
                bytes,
                last_used: clock,
            },
        ) {
            inner.bytes -= old.bytes;
        }
        inner.bytes += bytes;
        while inner.entries.len() > self.max_entries || inner.bytes > self.max_bytes {
            let Some(victim) = inner
                .entries
                .iter()
                .filter(|(k, _)| **k != key)
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| *k)
            else {
                break;
            };
            if let Some(old) = inner.entries.remove(&victim) {
                inner.bytes -= old.bytes;
                self.evictions.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn stats(&self) -> CacheStats {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: inner.entries.len(),
            bytes: inner.bytes,
            evictions: self.evictions.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifests(n: usize) -> CachedRender {
        CachedRender {
            manifests: Arc::new(
                (0..n)
                    .map(|i| Manifest {
                        object: serde_json::json!({"kind": "K", "i": i}),
                        file: "f".into(),
                        line: None,
                    })
                    .collect(),
            ),
            source_types: vec![SourceType::Directory],
        }
    }

    #[test]
    fn keys_separate_parts() {
        let a = RenderKey::from_parts([("a", "bc"), ("d", "")]);
        let b = RenderKey::from_parts([("a", "b"), ("cd", "")]);
        assert_ne!(a, b);
        assert_eq!(a, RenderKey::from_parts([("a", "bc"), ("d", "")]));
    }

    #[test]
    fn bounded_least_recently_used() {
        let cache = RenderCache::new(2, 1000);
        let k = |s: &str| RenderKey::from_parts([("k", s)]);
        cache.insert(k("a"), manifests(1), 10);
        cache.insert(k("b"), manifests(2), 10);
        assert!(cache.get(&k("a")).is_some());
        cache.insert(k("c"), manifests(3), 10);
        assert!(cache.get(&k("b")).is_none(), "b was least recently used");
        assert!(cache.get(&k("a")).is_some());
        assert!(cache.get(&k("c")).is_some());
        cache.insert(k("big"), manifests(1), 5000);
        assert!(
            cache.get(&k("big")).is_none(),
            "over the byte budget: not kept"
        );
        cache.insert(k("d"), manifests(1), 995);
        let stats = cache.stats();
        assert!(stats.bytes <= 1000 && stats.entries <= 2, "{stats:?}");
        assert_eq!(stats.hits, 3);
        assert_eq!(stats.misses, 2);
    }
}
