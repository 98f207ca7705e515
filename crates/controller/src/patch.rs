//! The JSON merge patch (RFC 7386) that turns one document into another: what the
//! controller sends to change only what changed (Application has no status subresource, so
//! its status is written by patching the object, as Argo CD does).

use serde_json::{Map, Value};

/// The merge patch from `old` to `new`, `None` when they are equal. Objects are diffed key
/// by key (a removed key becomes `null`); anything else that differs is replaced whole.
pub fn merge_diff(old: &Value, new: &Value) -> Option<Value> {
    match (old, new) {
        (Value::Object(old), Value::Object(new)) => {
            let mut patch = Map::new();
            for (key, old_value) in old {
                match new.get(key) {
                    None => {
                        patch.insert(key.clone(), Value::Null);
                    }
                    Some(new_value) => {
                        if let Some(inner) = merge_diff(old_value, new_value) {
                            patch.insert(key.clone(), inner);
                        }
                    }
                }
            }
            for (key, new_value) in new {
                if !old.contains_key(key) {
                    patch.insert(key.clone(), new_value.clone());
                }
            }
            (!patch.is_empty()).then_some(Value::Object(patch))
        }
        _ if old == new => None,
        // A null in a merge patch means "delete": an explicit null value cannot be set,
        // which is never needed for the documents the controller writes.
        _ => Some(new.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plumb_model::merge_patch::merge_patch;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn only_changed_keys_are_sent() {
        let old = json!({"status": {"sync": {"status": "Synced"}, "health": {"status": "Healthy"}, "gone": 1}});
        let new =
            json!({"status": {"sync": {"status": "OutOfSync"}, "health": {"status": "Healthy"}}});
        assert_eq!(
            merge_diff(&old, &new),
            Some(json!({"status": {"sync": {"status": "OutOfSync"}, "gone": null}}))
        );
        assert_eq!(merge_diff(&old, &old), None);
    }

    fn document() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<bool>().prop_map(Value::Bool),
            any::<i32>().prop_map(|n| json!(n)),
            "[a-c]{0,2}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                prop::collection::btree_map("[a-d]", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Applying the diff to the old document gives the new one (for documents without
        /// nulls, which a merge patch cannot express as values).
        #[test]
        fn applying_the_diff_gives_the_new_document(
            old in prop::collection::btree_map("[a-d]", document(), 0..4),
            new in prop::collection::btree_map("[a-d]", document(), 0..4),
        ) {
            let old = Value::Object(old.into_iter().collect());
            let new = Value::Object(new.into_iter().collect());
            match merge_diff(&old, &new) {
                Some(patch) => prop_assert_eq!(merge_patch(&old, &patch), new),
                None => prop_assert_eq!(old, new),
            }
        }
    }
}
