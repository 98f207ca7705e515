//! A map with a capacity that forgets its least recently used entries: the caches a
//! long-running process keeps per object (compare results, dry-run predictions, resolved
//! kinds) would otherwise grow with every object it ever saw.

use std::collections::HashMap;
use std::hash::Hash;

/// A map of at most `capacity` entries. Inserting a new key into a full map first forgets
/// the least recently used eighth of it (at least one entry); reading or writing an entry
/// counts as using it. Forgetting in batches keeps a full map's inserts cheap: finding the
/// oldest entries is a pass over the whole map, paid once per batch rather than per insert.
///
/// So the `capacity - batch` most recently used keys (`batch` = `capacity / 8`, at least 1)
/// are always present, unless removed since.
#[derive(Debug)]
pub(crate) struct BoundedMap<K, V> {
    entries: HashMap<K, Slot<V>>,
    capacity: usize,
    /// Ticks on every use, so each entry's `last_used` is distinct and orders them.
    clock: u64,
}

#[derive(Debug)]
struct Slot<V> {
    value: V,
    last_used: u64,
}

impl<K: Eq + Hash, V> BoundedMap<K, V> {
    /// A map holding at most `capacity` entries; with 0 it holds nothing.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            capacity,
            clock: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// The value at `key`, which counts as a use of it.
    pub(crate) fn get(&mut self, key: &K) -> Option<&V> {
        let now = self.tick();
        let slot = self.entries.get_mut(key)?;
        slot.last_used = now;
        Some(&slot.value)
    }

    /// Sets `key` to `value` (a use of it), forgetting the least recently used entries
    /// first when `key` is new and the map is full.
    pub(crate) fn insert(&mut self, key: K, value: V) {
        if self.capacity == 0 {
            return;
        }
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            self.forget_least_recently_used();
        }
        let last_used = self.tick();
        self.entries.insert(key, Slot { value, last_used });
    }

    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        self.entries.remove(key).map(|slot| slot.value)
    }

    /// Keeps only the entries `keep` accepts (not a use of them).
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&K, &V) -> bool) {
        self.entries.retain(|key, slot| keep(key, &slot.value));
    }

    /// How many entries one eviction forgets.
    fn batch(&self) -> usize {
        (self.capacity / 8).max(1)
    }

    fn forget_least_recently_used(&mut self) {
        let batch = self.batch().min(self.entries.len());
        if batch == 0 {
            return;
        }
        let mut ages: Vec<u64> = self.entries.values().map(|slot| slot.last_used).collect();
        let (_, &mut newest_forgotten, _) = ages.select_nth_unstable(batch - 1);
        self.entries
            .retain(|_, slot| slot.last_used > newest_forgotten);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    #[test]
    fn a_full_map_forgets_the_least_recently_used() {
        let mut map = BoundedMap::new(4);
        for key in ["a", "b", "c", "d"] {
            map.insert(key, key.to_uppercase());
        }
        // Reading "a" makes "b" the least recently used.
        assert_eq!(map.get(&"a").map(String::as_str), Some("A"));
        map.insert("e", "E".to_string());
        assert_eq!(map.len(), 4);
        assert!(map.get(&"b").is_none());
        for key in ["a", "c", "d", "e"] {
            assert!(map.get(&key).is_some(), "{key}");
        }
        // Overwriting a present key evicts nothing.
        map.insert("c", "C2".to_string());
        assert_eq!(map.len(), 4);
        assert_eq!(map.get(&"c").map(String::as_str), Some("C2"));
    }

    #[test]
    fn a_large_map_forgets_an_eighth_at_once() {
        let mut map = BoundedMap::new(80);
        for key in 0..80 {
            map.insert(key, ());
        }
        map.insert(80, ());
        assert_eq!(map.len(), 71);
        assert!((0..10).all(|key| map.get(&key).is_none()));
        assert!((10..=80).all(|key| map.get(&key).is_some()));
    }

    #[test]
    fn capacity_zero_holds_nothing() {
        let mut map = BoundedMap::new(0);
        map.insert(1, 1);
        assert_eq!(map.len(), 0);
        assert!(map.get(&1).is_none());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u8, u32),
        Get(u8),
        Remove(u8),
        RetainEven,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..48, any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
            4 => (0u8..48).prop_map(Op::Get),
            1 => (0u8..48).prop_map(Op::Remove),
            1 => Just(Op::RetainEven),
        ]
    }

    proptest! {
        /// Against a model that remembers everything: the map never exceeds its capacity,
        /// never answers with a value that was not the key's last one, and always holds the
        /// `capacity - batch` most recently used keys that were not removed since.
        #[test]
        fn bound_holds_and_recently_used_entries_survive(
            capacity in 1usize..40,
            ops in proptest::collection::vec(op(), 0..400),
        ) {
            let mut map = BoundedMap::new(capacity);
            let guaranteed = capacity - map.batch();
            let mut last_value: HashMap<u8, u32> = HashMap::new();
            // Keys by their last use, most recent last; a removed key stays in it (it still
            // used up a place in the recency order) but is marked gone.
            let mut recency: Vec<u8> = Vec::new();
            let mut gone: HashSet<u8> = HashSet::new();
            let used = |recency: &mut Vec<u8>, key: u8| {
                recency.retain(|k| *k != key);
                recency.push(key);
            };
            for op in ops {
                match op {
                    Op::Insert(key, value) => {
                        map.insert(key, value);
                        last_value.insert(key, value);
                        gone.remove(&key);
                        used(&mut recency, key);
                    }
                    Op::Get(key) => {
                        if let Some(value) = map.get(&key).copied() {
                            prop_assert_eq!(Some(&value), last_value.get(&key));
                            prop_assert!(!gone.contains(&key));
                            used(&mut recency, key);
                        }
                    }
                    Op::Remove(key) => {
                        map.remove(&key);
                        gone.insert(key);
                    }
                    Op::RetainEven => {
                        map.retain(|key, _| key % 2 == 0);
                        gone.extend(recency.iter().copied().filter(|key| key % 2 == 1));
                    }
                }
                prop_assert!(map.len() <= capacity);
                for key in recency.iter().rev().take(guaranteed) {
                    prop_assert!(
                        gone.contains(key) || map.entries.contains_key(key),
                        "recently used key {} was forgotten", key
                    );
                }
            }
        }
    }
}
