//! PATCH semantics: JSON merge patch (RFC 7386), JSON patch (RFC 6902), strategic merge
//! patch (the built-in kinds' patch strategies and merge keys, and the `$patch`,
//! `$setElementOrder`, `$retainKeys`, `$deleteFromPrimitiveList` directives).
//! Server-side apply lives in [`crate::managed`]. Pure.

use plumb_model::patch_meta::{Cursor, ListStrategy};
use serde_json::{Map, Value};

/// Why a patch could not be applied (answered as 422 or 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The JSON patch document is malformed.
    #[error("invalid JSON patch: {0}")]
    Malformed(String),
    /// A JSON patch operation failed (missing path, failed test).
    #[error("the JSON patch operation {index} ({op} {path}) failed: {why}")]
    OperationFailed {
        index: usize,
        op: String,
        path: String,
        why: String,
    },
}

/// RFC 7386 merge patch, shared with the engine's tests through plumb-model.
pub use plumb_model::merge_patch::merge_patch;

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn split_pointer(path: &str) -> Result<Vec<String>, String> {
    if path.is_empty() {
        return Ok(vec![]);
    }
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| format!("path {path:?} must start with '/'"))?;
    Ok(rest.split('/').map(unescape).collect())
}

fn parent_mut<'a>(doc: &'a mut Value, tokens: &[String]) -> Result<&'a mut Value, String> {
    let mut cur = doc;
    for t in tokens {
        cur = match cur {
            Value::Object(m) => m.get_mut(t).ok_or_else(|| format!("missing key {t:?}"))?,
            Value::Array(a) => {
                let i: usize = t
                    .parse()
                    .map_err(|_| format!("{t:?} is not an array index"))?;
                a.get_mut(i)
                    .ok_or_else(|| format!("index {i} out of range"))?
            }
            _ => {
                return Err(format!(
                    "{t:?} is below a value that is neither object nor array"
                ));
            }
        };
    }
    Ok(cur)
}

fn get_at<'a>(doc: &'a Value, tokens: &[String]) -> Result<&'a Value, String> {
    let mut cur = doc;
    for t in tokens {
        cur = match cur {
            Value::Object(m) => m.get(t).ok_or_else(|| format!("missing key {t:?}"))?,
            Value::Array(a) => {
                let i: usize = t
                    .parse()
                    .map_err(|_| format!("{t:?} is not an array index"))?;
                a.get(i).ok_or_else(|| format!("index {i} out of range"))?
            }
            _ => return Err("path goes below a scalar".into()),
        };
    }
    Ok(cur)
}

fn add_at(doc: &mut Value, tokens: &[String], value: Value) -> Result<(), String> {
    let Some((last, parents)) = tokens.split_last() else {
        *doc = value;
        return Ok(());
    };
    match parent_mut(doc, parents)? {
        Value::Object(m) => {
            m.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(a) => {
            if last == "-" {
                a.push(value);
                return Ok(());
            }
            let i: usize = last
                .parse()
                .map_err(|_| format!("{last:?} is not an array index"))?;
            if i > a.len() {
                return Err(format!("index {i} out of range"));
            }
            a.insert(i, value);
            Ok(())
        }
        _ => Err("cannot add below a scalar".into()),
    }
}

fn remove_at(doc: &mut Value, tokens: &[String]) -> Result<Value, String> {
    let (last, parents) = tokens
        .split_last()
        .ok_or("cannot remove the whole document")?;
    match parent_mut(doc, parents)? {
        Value::Object(m) => m
            .remove(last)
            .ok_or_else(|| format!("missing key {last:?}")),
        Value::Array(a) => {
            let i: usize = last
                .parse()
                .map_err(|_| format!("{last:?} is not an array index"))?;
            if i >= a.len() {
                return Err(format!("index {i} out of range"));
            }
            Ok(a.remove(i))
        }
        _ => Err("cannot remove below a scalar".into()),
    }
}

/// RFC 6902 JSON patch. All operations apply or none (the input is not modified).
pub fn json_patch(target: &Value, patch: &Value) -> Result<Value, PatchError> {
    let ops = patch.as_array().ok_or_else(|| {
        PatchError::Malformed("the patch must be a JSON array of operations".into())
    })?;
    let mut doc = target.clone();
    for (index, op) in ops.iter().enumerate() {
        let name = op
            .get("op")
            .and_then(Value::as_str)
            .ok_or_else(|| PatchError::Malformed(format!("operation {index} has no \"op\"")))?;
        let path = op
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| PatchError::Malformed(format!("operation {index} has no \"path\"")))?;
        let fail = |why: String| PatchError::OperationFailed {
            index,
            op: name.to_string(),
            path: path.to_string(),
            why,
        };
        let tokens = split_pointer(path).map_err(fail)?;
        let value = || {
            op.get("value").cloned().ok_or_else(|| {
                PatchError::Malformed(format!("operation {index} ({name}) has no \"value\""))
            })
        };
        let from = || -> Result<Vec<String>, PatchError> {
            let f = op.get("from").and_then(Value::as_str).ok_or_else(|| {
                PatchError::Malformed(format!("operation {index} ({name}) has no \"from\""))
            })?;
            split_pointer(f).map_err(|why| PatchError::OperationFailed {
                index,
                op: name.to_string(),
                path: f.to_string(),
                why,
            })
        };
        match name {
            "add" => add_at(&mut doc, &tokens, value()?).map_err(fail)?,
            "remove" => {
                remove_at(&mut doc, &tokens).map_err(fail)?;
            }
            "replace" => {
                let v = value()?;
                let slot = parent_mut(&mut doc, &tokens).map_err(fail)?;
                *slot = v;
            }
            "move" => {
                let src = from()?;
                let moved = remove_at(&mut doc, &src).map_err(fail)?;
                add_at(&mut doc, &tokens, moved).map_err(fail)?;
            }
            "copy" => {
                let src = from()?;
                let copied = get_at(&doc, &src).map_err(fail)?.clone();
                add_at(&mut doc, &tokens, copied).map_err(fail)?;
            }
            "test" => {
                let want = value()?;
                let got = get_at(&doc, &tokens).map_err(fail)?;
                if *got != want {
                    return Err(fail(format!("value is {got}, not {want}")));
                }
            }
            other => {
                return Err(PatchError::Malformed(format!(
                    "unknown operation {other:?} at {index}"
                )));
            }
        }
    }
    Ok(doc)
}

/// Strategic merge patch of an object of the built-in `kind`, with Kubernetes' patch
/// strategies and merge keys per field ([`plumb_model::patch_meta`], the table the engine
/// builds its patches with): lists with a merge key are merged element by element, sets of
/// scalars as sets, other lists replaced; `replace` maps are replaced whole; `$retainKeys`
/// clears the keys it does not list.
pub fn strategic_merge_patch(kind: &str, target: &Value, patch: &Value) -> Value {
    smp_value(Cursor::root(kind), target, patch)
}

fn smp_value(at: Cursor, target: &Value, patch: &Value) -> Value {
    let Value::Object(p) = patch else {
        return strip_directives(patch);
    };
    let empty = Map::new();
    let t = match target {
        Value::Object(t) => t,
        _ => &empty,
    };
    if p.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut replaced = p.clone();
        replaced.remove("$patch");
        return strip_directives(&Value::Object(replaced));
    }
    let mut out = t.clone();
    // `$retainKeys: [names]` first, as Kubernetes does: what it does not name is cleared,
    // whether or not the patch sets it (a Deployment's strategy changed to Recreate loses
    // its rollingUpdate).
    if let Some(keep) = p.get("$retainKeys").and_then(Value::as_array) {
        out.retain(|k, _| keep.iter().any(|name| name.as_str() == Some(k)));
    }
    for (k, v) in p {
        if k.starts_with('$') {
            continue;
        }
        if v.is_null() {
            out.remove(k);
            continue;
        }
        if v.get("$patch").and_then(Value::as_str) == Some("delete") {
            out.remove(k);
            continue;
        }
        let field = at.field(k);
        let merged = match (out.get(k), v) {
            (Some(Value::Array(live)), Value::Array(items)) => {
                let order = p
                    .get(&format!("$setElementOrder/{k}"))
                    .and_then(Value::as_array)
                    .map(Vec::as_slice);
                Value::Array(smp_list(field, live, items, order))
            }
            (_, Value::Object(_)) if field.tags().replaces() => strip_directives(v),
            (existing, Value::Object(_)) => smp_value(field, existing.unwrap_or(&Value::Null), v),
            _ => strip_directives(v),
        };
        out.insert(k.clone(), merged);
    }
    // `$deleteFromPrimitiveList/<field>: [values]`.
    for (k, v) in p {
        if let (Some(field), Some(values)) =
            (k.strip_prefix("$deleteFromPrimitiveList/"), v.as_array())
            && let Some(Value::Array(list)) = out.get_mut(field)
        {
            list.retain(|item| !values.contains(item));
        }
    }
    Value::Object(out)
}

/// `at`: the list field. Its items are walked below it (list indices are not path elements).
fn smp_list(at: Cursor, live: &[Value], items: &[Value], order: Option<&[Value]>) -> Vec<Value> {
    let identity = match at.tags().list_strategy() {
        ListStrategy::MergePrimitives => Identity::Itself,
        ListStrategy::MergeByKey(key) => Identity::Key(key),
        ListStrategy::Atomic => return items.iter().map(strip_directives).collect(),
    };
    if items
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        return items
            .iter()
            .filter(|i| i.get("$patch").is_none())
            .map(strip_directives)
            .collect();
    }
    strategic_list_order(at, identity, live, items, order)
}

/// What identifies an element of a merged list.
#[derive(Debug, Clone, Copy)]
enum Identity<'a> {
    /// The value of its merge key (a list of maps).
    Key(&'a str),
    /// The element itself (a set of scalars).
    Itself,
}

impl Identity<'_> {
    fn of(self, v: &Value) -> Option<Value> {
        match self {
            Identity::Key(key) => v.get(key).cloned(),
            Identity::Itself => Some(v.clone()),
        }
    }
}

/// Kubernetes' strategic merge of a list, including its element order: the patch's entries
/// (merged with their live counterparts, ordered by `$setElementOrder` or the patch itself)
/// are interleaved with the live-only entries (in live order), taking a patch entry first
/// unless both are known to the "server order" and the live-only one comes earlier there.
///
/// The server order is the live list, except for a list of maps with `$setElementOrder`:
/// there kube-apiserver reads the live list after it deleted entries from it in place and
/// appended the new ones (its Go slices share storage), so the order it compares by is the
/// surviving live entries, then the new ones, cut to the live list's length. That is why
/// kubectl apply puts a live-only entry before a new one there, while a plain strategic
/// patch puts the new one first.
fn strategic_list_order(
    at: Cursor,
    identity: Identity<'_>,
    live: &[Value],
    items: &[Value],
    order: Option<&[Value]>,
) -> Vec<Value> {
    let id_of = |v: &Value| identity.of(v);
    let is_delete = |v: &Value| {
        matches!(identity, Identity::Key(_))
            && v.get("$patch").and_then(Value::as_str) == Some("delete")
    };
    let mentioned: Vec<Value> = items.iter().filter_map(id_of).collect();
    let deleted: Vec<Value> = items
        .iter()
        .filter(|i| is_delete(i))
        .filter_map(id_of)
        .collect();
    let mut patched: Vec<Value> = Vec::new();
    let mut added: Vec<Value> = Vec::new();
    for item in items.iter().filter(|i| !is_delete(i)) {
        let id = id_of(item);
        if id.is_some() && patched.iter().any(|p| id_of(p) == id) {
            // A scalar given twice is one element of the set.
            continue;
        }
        let counterpart = live.iter().find(|l| id.is_some() && id_of(l) == id);
        patched.push(match (identity, counterpart) {
            (Identity::Key(_), Some(l)) => smp_value(at, l, item),
            (_, Some(l)) => l.clone(),
            (_, None) => {
                added.push(item.clone());
                strip_directives(item)
            }
        });
    }
    let mut live_only: Vec<Value> = Vec::new();
    for l in live {
        let id = id_of(l);
        let keep = id
            .as_ref()
            .is_none_or(|id| !mentioned.contains(id) && !deleted.contains(id));
        // Kubernetes merges a set of scalars without duplicates.
        let repeated = matches!(identity, Identity::Itself) && live_only.contains(l);
        if keep && !repeated {
            live_only.push(l.clone());
        }
    }
    // With `$setElementOrder`, kube-apiserver splits the merged list by that directive, not
    // by the patch: a live entry it names is ordered as it says.
    if let Some(order) = order {
        let named = |v: &Value| {
            id_of(v).is_some_and(|id| order.iter().any(|o| id_of(o) == Some(id.clone())))
        };
        let (moved, kept): (Vec<Value>, Vec<Value>) = live_only.into_iter().partition(named);
        patched.extend(moved);
        live_only = kept;
    }
    let server_order: Vec<Value> = match (identity, order) {
        (Identity::Key(_), Some(_)) => live
            .iter()
            .filter(|l| id_of(l).is_none_or(|id| !deleted.contains(&id)))
            .chain(added.iter())
            .take(live.len())
            .cloned()
            .collect(),
        _ => live.to_vec(),
    };
    let position = |list: &[Value], v: &Value| -> Option<usize> {
        let id = id_of(v)?;
        list.iter().position(|x| id_of(x).as_ref() == Some(&id))
    };
    let patch_order: Vec<Value> = order
        .map(<[Value]>::to_vec)
        .unwrap_or_else(|| items.to_vec());
    patched.sort_by(
        |a, b| match (position(&patch_order, a), position(&patch_order, b)) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => std::cmp::Ordering::Equal,
        },
    );
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(live_only.len() + patched.len());
    while i < live_only.len() || j < patched.len() {
        let take_live = if i >= live_only.len() {
            false
        } else if j >= patched.len() {
            true
        } else {
            matches!(
                (
                    position(&server_order, &live_only[i]),
                    position(&server_order, &patched[j])
                ),
                (Some(x), Some(y)) if x < y
            )
        };
        if take_live {
            out.push(live_only[i].clone());
            i += 1;
        } else {
            out.push(patched[j].clone());
            j += 1;
        }
    }
    out
}

fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn rfc7386_examples() {
        // The examples table of RFC 7386, section 3.
        let cases = [
            (json!({"a":"b"}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"b"}), json!({"b":"c"}), json!({"a":"b","b":"c"})),
            (json!({"a":"b"}), json!({"a":null}), json!({})),
            (
                json!({"a":"b","b":"c"}),
                json!({"a":null}),
                json!({"b":"c"}),
            ),
            (json!({"a":["b"]}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"c"}), json!({"a":["b"]}), json!({"a":["b"]})),
            (
                json!({"a":{"b":"c"}}),
                json!({"a":{"b":"d","c":null}}),
                json!({"a":{"b":"d"}}),
            ),
            (json!({"a":[{"b":"c"}]}), json!({"a":[1]}), json!({"a":[1]})),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a":"b"}), json!(["c"]), json!(["c"])),
            (json!({"a":"foo"}), json!(null), json!(null)),
            (json!({"e":null}), json!({"a":1}), json!({"e":null,"a":1})),
            (json!([1, 2]), json!({"a":"b","c":null}), json!({"a":"b"})),
            (
                json!({}),
                json!({"a":{"bb":{"ccc":null}}}),
                json!({"a":{"bb":{}}}),
            ),
        ];
        for (target, patch, want) in cases {
            assert_eq!(merge_patch(&target, &patch), want, "{target} + {patch}");
        }
    }

    #[test]
    fn rfc6902_operations() {
        let doc = json!({"a": {"b": [1, 2]}, "c": "x"});
        let out = json_patch(
            &doc,
            &json!([
                {"op": "add", "path": "/a/b/1", "value": 9},
                {"op": "add", "path": "/a/b/-", "value": 3},
                {"op": "replace", "path": "/c", "value": "y"},
                {"op": "copy", "from": "/c", "path": "/d"},
                {"op": "move", "from": "/d", "path": "/e~1f"},
                {"op": "test", "path": "/e~1f", "value": "y"},
                {"op": "remove", "path": "/a/b/0"}
            ]),
        )
        .unwrap();
        assert_eq!(out, json!({"a": {"b": [9, 2, 3]}, "c": "y", "e/f": "y"}));
        assert!(matches!(
            json_patch(&doc, &json!([{"op": "test", "path": "/c", "value": "z"}])),
            Err(PatchError::OperationFailed { index: 0, .. })
        ));
        assert!(matches!(
            json_patch(&doc, &json!([{"op": "remove", "path": "/nope"}])),
            Err(PatchError::OperationFailed { .. })
        ));
        assert!(matches!(
            json_patch(&doc, &json!({"op": "add"})),
            Err(PatchError::Malformed(_))
        ));
        assert!(matches!(
            json_patch(&doc, &json!([{"op": "frob", "path": "/c"}])),
            Err(PatchError::Malformed(_))
        ));
    }

    #[test]
    fn strategic_merge_by_name_and_directives() {
        let live = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
            {"name": "b", "image": "b:1"}
        ]}}}, "metadata": {"finalizers": ["f1"]}});
        // A new finalizer goes first too, as kube-apiserver puts it.
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
            "containers": [
                {"name": "a", "image": "a:2", "env": [{"name": "Y", "value": "2"}]},
                {"name": "b", "$patch": "delete"},
                {"name": "c", "image": "c:1"}
            ]}}}, "metadata": {"finalizers": ["f2"]}});
        let out = strategic_merge_patch("Deployment", &live, &patch);
        assert_eq!(
            out,
            json!({"spec": {"template": {"spec": {"containers": [
                // A new entry goes before the live-only ones, as in Kubernetes.
                {"name": "a", "image": "a:2", "env": [{"name": "Y", "value": "2"}, {"name": "X", "value": "1"}]},
                {"name": "c", "image": "c:1"}
            ]}}}, "metadata": {"finalizers": ["f2", "f1"]}})
        );
        let replaced = strategic_merge_patch(
            "ConfigMap",
            &json!({"data": {"a": "1"}}),
            &json!({"data": {"$patch": "replace", "b": "2"}}),
        );
        assert_eq!(replaced, json!({"data": {"b": "2"}}));
        let removed = strategic_merge_patch(
            "ConfigMap",
            &json!({"metadata": {"finalizers": ["a", "b"]}}),
            &json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
        );
        assert_eq!(removed, json!({"metadata": {"finalizers": ["b"]}}));
    }

    #[test]
    fn strategic_list_order_follows_kubernetes() {
        // Delete B and add C to [A, B]: Kubernetes answers [C, A]. (A ServiceAccount's
        // `secrets` merge by name.)
        let live = json!({"secrets": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]});
        let patch =
            json!({"secrets": [{"name": "B", "$patch": "delete"}, {"name": "C", "value": "3"}]});
        assert_eq!(
            strategic_merge_patch("ServiceAccount", &live, &patch),
            json!({"secrets": [{"name": "C", "value": "3"}, {"name": "A", "value": "1"}]})
        );
        // With kubectl's $setElementOrder the order is the one asked for.
        let patch = json!({"$setElementOrder/secrets": [{"name": "A"}, {"name": "C"}], "secrets": [{"name": "B", "$patch": "delete"}, {"name": "C", "value": "3"}]});
        let out = strategic_merge_patch("ServiceAccount", &live, &patch);
        assert_eq!(out["secrets"].as_array().unwrap().len(), 2);
        // Changing an existing entry keeps everything in live order.
        let live3 = json!({"secrets": [{"name": "A"}, {"name": "B"}, {"name": "C"}]});
        let out = strategic_merge_patch(
            "ServiceAccount",
            &live3,
            &json!({"secrets": [{"name": "B", "value": "x"}]}),
        );
        assert_eq!(
            out,
            json!({"secrets": [{"name": "A"}, {"name": "B", "value": "x"}, {"name": "C"}]})
        );
    }

    #[test]
    fn kubectl_apply_order_puts_live_only_entries_before_new_ones() {
        // What kubectl apply sends when the manifest dropped B, added C and changed A while
        // another writer had added X: kube-apiserver answers [X, C, A] (and [C, X, A]
        // without `$setElementOrder`).
        let live = json!({"secrets": [{"name": "X"}, {"name": "A"}, {"name": "B"}]});
        let patch = json!({"$setElementOrder/secrets": [{"name": "C"}, {"name": "A"}],
            "secrets": [{"name": "C", "v": 3}, {"name": "A", "v": 10},
                {"name": "B", "$patch": "delete"}]});
        let ids = |v: &Value| -> Vec<String> {
            v["secrets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["name"].as_str().unwrap().to_string())
                .collect()
        };
        let out = strategic_merge_patch("ServiceAccount", &live, &patch);
        assert_eq!(ids(&out), ["X", "C", "A"]);
        assert_eq!(out["secrets"][2], json!({"name": "A", "v": 10}));
        let mut plain = patch.clone();
        plain
            .as_object_mut()
            .unwrap()
            .remove("$setElementOrder/secrets");
        let out = strategic_merge_patch("ServiceAccount", &live, &plain);
        assert_eq!(ids(&out), ["C", "X", "A"]);
        // Sets of scalars: the live list is the order, with or without the directive.
        let live = json!({"metadata": {"finalizers": ["c", "a", "b"]}});
        let patch = json!({"metadata": {"$setElementOrder/finalizers": ["b", "a"],
            "finalizers": ["b"]}});
        assert_eq!(
            strategic_merge_patch("ConfigMap", &live, &patch),
            json!({"metadata": {"finalizers": ["c", "b", "a"]}})
        );
    }

    #[test]
    fn each_field_merges_by_its_own_key() {
        // Container ports merge by containerPort; a NetworkPolicy rule's ports carry no
        // strategy and are replaced, though their items look alike.
        let pod = json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80}],
            "volumeDevices": [{"devicePath": "/d", "name": "v"}]}]}});
        let out = strategic_merge_patch(
            "Pod",
            &pod,
            &json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 81}],
                "volumeDevices": [{"devicePath": "/e", "name": "v"}]}]}}),
        );
        assert_eq!(
            out["spec"]["containers"][0]["ports"],
            json!([{"containerPort": 81}, {"containerPort": 80}])
        );
        assert_eq!(
            out["spec"]["containers"][0]["volumeDevices"],
            json!([{"devicePath": "/e", "name": "v"}, {"devicePath": "/d", "name": "v"}])
        );
        let policy = json!({"spec": {"ingress": [{"ports": [{"port": 80}]}]}});
        let out = strategic_merge_patch(
            "NetworkPolicy",
            &policy,
            &json!({"spec": {"ingress": [{"ports": [{"port": 81}]}]}}),
        );
        assert_eq!(
            out,
            json!({"spec": {"ingress": [{"ports": [{"port": 81}]}]}})
        );
        // Conditions merge by type only where they are tagged so.
        let crd = json!({"status": {"conditions": [{"type": "A"}]}});
        let out = strategic_merge_patch(
            "CustomResourceDefinition",
            &crd,
            &json!({"status": {"conditions": [{"type": "B"}]}}),
        );
        assert_eq!(out["status"]["conditions"], json!([{"type": "B"}]));
    }

    #[test]
    fn retain_keys_and_replaced_maps() {
        let deployment = json!({"spec": {"strategy": {"type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": "25%"}}}});
        let out = strategic_merge_patch(
            "Deployment",
            &deployment,
            &json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
        );
        assert_eq!(out, json!({"spec": {"strategy": {"type": "Recreate"}}}));
        // A PodDisruptionBudget's selector is replaced, not merged.
        let pdb = json!({"spec": {"selector": {"matchLabels": {"a": "1"}}}});
        let out = strategic_merge_patch(
            "PodDisruptionBudget",
            &pdb,
            &json!({"spec": {"selector": {"matchExpressions": []}}}),
        );
        assert_eq!(out, json!({"spec": {"selector": {"matchExpressions": []}}}));
    }

    fn json_tree() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<i64>().prop_map(Value::from),
            "[a-z]{0,4}".prop_map(Value::from),
            Just(Value::Bool(true))
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop::collection::btree_map("[a-d]", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect()))
        })
    }

    proptest! {
        #[test]
        fn merge_patch_is_idempotent(target in json_tree(), patch in json_tree()) {
            let once = merge_patch(&target, &patch);
            prop_assert_eq!(merge_patch(&once, &patch), once);
        }
        #[test]
        fn merging_with_empty_patch_changes_nothing(target in json_tree()) {
            if target.is_object() {
                prop_assert_eq!(merge_patch(&target, &json!({})), target.clone());
                prop_assert_eq!(strategic_merge_patch("ConfigMap", &target, &json!({})), target);
            }
        }
        #[test]
        fn strategic_equals_merge_patch_without_lists(target in json_tree(), patch in json_tree()) {
            if target.is_object() && patch.is_object() {
                prop_assert_eq!(strategic_merge_patch("ConfigMap", &target, &patch), merge_patch(&target, &patch));
            }
        }
    }
}
