//! Field ownership (`metadata.managedFields`) and server-side apply, with the semantics of
//! Kubernetes' structured-merge-diff: field sets in the `FieldsV1` format, the Update
//! operation (a manager owns what its request changed), and Apply (merge by list type,
//! removal of what the same manager stopped applying, conflicts with other managers).
//!
//! Pure: no I/O, no clock (the caller passes the time).
//!
//! Field sets are trees keyed by the `FieldsV1` path-element strings themselves (`f:name`,
//! `k:{"name":"x"}`, `v:"value"`, `i:0`), so that serialising one is a walk and the
//! children come out in the order Kubernetes writes them.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// How a list merges and how its items are named in a field path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListType {
    /// Replaced whole; owned as one field.
    Atomic,
    /// A set of scalars (`v:` path elements).
    Set,
    /// An associative list keyed by these fields (`k:` path elements).
    Map(&'static [&'static str]),
}

/// The server-side-apply list type of a list field of the built-in kinds, by field name
/// (and, for `ports`, by the shape of an item: container ports are keyed by
/// `containerPort`, Service ports by `port`, both with `protocol`). Lists not named here
/// are atomic, as in Kubernetes' OpenAPI (`x-kubernetes-list-type`).
///
/// Strategic merge patch uses the `patchMergeKey`s of [`plumb_model::patch_meta`], found by
/// the path from the root and naming a single field; this table, by field name, has the
/// full `x-kubernetes-list-map-keys`.
pub fn builtin_list_type(field: &str, sample: Option<&Value>) -> ListType {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "resourceClaims"
        | "versions"
        | "readinessGates"
        | "schedulingGates" => ListType::Map(&["name"]),
        "volumeMounts" => ListType::Map(&["mountPath"]),
        "volumeDevices" => ListType::Map(&["devicePath"]),
        "hostAliases" => ListType::Map(&["ip"]),
        "topologySpreadConstraints" => ListType::Map(&["topologyKey", "whenUnsatisfiable"]),
        "ports" => match sample {
            Some(item) if item.get("containerPort").is_some() => {
                ListType::Map(&["containerPort", "protocol"])
            }
            Some(item) if item.get("port").is_some() => ListType::Map(&["port", "protocol"]),
            _ => ListType::Atomic,
        },
        "conditions" => ListType::Map(&["type"]),
        "ownerReferences" => ListType::Map(&["uid"]),
        "finalizers" => ListType::Set,
        _ => ListType::Atomic,
    }
}

/// Defaults of list-map key fields (Kubernetes' schemas default `protocol` to TCP, and
/// structured-merge-diff uses the default when an item leaves a key out).
fn key_default(key: &str) -> Option<Value> {
    (key == "protocol").then(|| Value::String("TCP".into()))
}

/// Maps (and structs) that are owned and replaced whole (`x-kubernetes-map-type: atomic`,
/// `structType=atomic`) in the built-in kinds.
fn builtin_atomic_map(field: &str) -> bool {
    matches!(
        field,
        "selector"
            | "podSelector"
            | "namespaceSelector"
            | "labelSelector"
            | "nodeSelector"
            | "roleRef"
            | "objectSelector"
            | "metricSelector"
    )
}

/// Where list and map types come from: the built-in table, or a CRD's structural schema
/// (the node for the current value; `None` below what the schema declares).
#[derive(Debug, Clone, Copy)]
pub enum Types<'a> {
    /// The built-in kinds: [`builtin_list_type`].
    BuiltIn,
    /// A custom resource: `x-kubernetes-list-type`, `x-kubernetes-list-map-keys` and
    /// `x-kubernetes-map-type` of its CRD's schema; lists without them are atomic.
    Custom(Option<&'a Value>),
}

impl<'a> Types<'a> {
    fn child(self, field: &str) -> Types<'a> {
        match self {
            Types::BuiltIn => Types::BuiltIn,
            Types::Custom(node) => Types::Custom(node.and_then(|n| {
                n.get("properties")
                    .and_then(|p| p.get(field))
                    .or_else(|| n.get("additionalProperties").filter(|a| a.is_object()))
            })),
        }
    }

    fn item(self) -> Types<'a> {
        match self {
            Types::BuiltIn => Types::BuiltIn,
            Types::Custom(node) => Types::Custom(node.and_then(|n| n.get("items"))),
        }
    }

    /// The list type of `field` (self is the parent's types).
    fn list_type(self, field: &str, sample: Option<&Value>) -> CustomOr {
        match self {
            Types::BuiltIn => CustomOr::Static(builtin_list_type(field, sample)),
            Types::Custom(_) => {
                let node = match self.child(field) {
                    Types::Custom(n) => n,
                    Types::BuiltIn => None,
                };
                match node
                    .and_then(|n| n.get("x-kubernetes-list-type"))
                    .and_then(Value::as_str)
                {
                    Some("set") => CustomOr::Static(ListType::Set),
                    Some("map") => CustomOr::Keys(crate::objects::string_items(
                        node.and_then(|n| n.get("x-kubernetes-list-map-keys")),
                    )),
                    _ => CustomOr::Static(ListType::Atomic),
                }
            }
        }
    }

    /// Whether the object under `field` is owned whole (self is the parent's types).
    fn atomic_map(self, field: &str) -> bool {
        match self {
            Types::BuiltIn => builtin_atomic_map(field),
            Types::Custom(_) => match self.child(field) {
                Types::Custom(Some(n)) => {
                    n.get("x-kubernetes-map-type").and_then(Value::as_str) == Some("atomic")
                }
                _ => false,
            },
        }
    }
}

/// A list type whose keys may come from a CRD (owned strings) or the built-in table.
enum CustomOr {
    Static(ListType),
    Keys(Vec<String>),
}

impl CustomOr {
    fn keys(&self) -> Option<Vec<&str>> {
        match self {
            CustomOr::Static(ListType::Map(keys)) => Some(keys.to_vec()),
            CustomOr::Keys(keys) if !keys.is_empty() => {
                Some(keys.iter().map(String::as_str).collect())
            }
            _ => None,
        }
    }
    fn is_set(&self) -> bool {
        matches!(self, CustomOr::Static(ListType::Set))
    }
}

/// The path element naming one list item: `k:{...}` for associative lists (keys sorted,
/// Go's compact JSON), `v:<json>` for sets. `None` when an item lacks a key field.
fn item_element(list: &CustomOr, item: &Value) -> Option<String> {
    if list.is_set() {
        return Some(format!("v:{item}"));
    }
    let mut keys = list.keys()?;
    keys.sort_unstable();
    let mut map = Map::new();
    for key in keys {
        let value = item
            .get(key)
            .filter(|v| !v.is_null())
            .cloned()
            .or_else(|| key_default(key))?;
        map.insert(key.to_string(), value);
    }
    Some(format!("k:{}", Value::Object(map)))
}

/// How server-side apply names an item of a built-in kind's list field in an error path:
/// `[name="c"]`, `[containerPort=80,protocol="TCP"]` (keys sorted, defaults filled in), or
/// `[3]` for an atomic list or an item lacking a key.
pub(crate) fn builtin_item_display(field: &str, item: &Value, index: usize) -> String {
    let list = CustomOr::Static(builtin_list_type(field, Some(item)));
    match item_element(&list, item) {
        Some(element) if !matches!(list, CustomOr::Static(ListType::Atomic)) => {
            display_path(&[element])
        }
        _ => format!("[{index}]"),
    }
}

/// The path elements of every item of a keyed list, or `None` when one cannot be named
/// (the list is then handled as atomic).
fn item_elements(list: &CustomOr, items: &[Value]) -> Option<Vec<String>> {
    items.iter().map(|i| item_element(list, i)).collect()
}

// ----- field sets -----

/// A set of field paths, as a tree. `member` says the path to this node is in the set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    member: bool,
    children: BTreeMap<String, FieldSet>,
}

/// A `FieldsV1` document that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid fieldsV1 at {at}: {why}")]
pub struct FieldsError {
    /// The path-element keys leading there.
    pub at: String,
    /// What is wrong.
    pub why: String,
}

impl FieldSet {
    /// Whether no path is in the set.
    pub fn is_empty(&self) -> bool {
        !self.member && self.children.values().all(FieldSet::is_empty)
    }

    /// Parses the `fieldsV1` JSON (`f:`/`k:`/`v:`/`i:` keys, `.` for the node itself).
    pub fn from_fields_v1(value: &Value) -> Result<FieldSet, FieldsError> {
        fn parse(value: &Value, at: &str) -> Result<FieldSet, FieldsError> {
            let map = value.as_object().ok_or_else(|| FieldsError {
                at: at.to_string(),
                why: "not an object".into(),
            })?;
            let mut set = FieldSet::default();
            for (key, child) in map {
                if key == "." {
                    set.member = true;
                    continue;
                }
                let valid = match key.split_at_checked(2) {
                    Some(("f:", _)) => true,
                    Some(("k:", rest)) => {
                        serde_json::from_str::<Value>(rest).is_ok_and(|v| v.is_object())
                    }
                    Some(("v:", rest)) => serde_json::from_str::<Value>(rest).is_ok(),
                    Some(("i:", rest)) => rest.parse::<usize>().is_ok(),
                    _ => false,
                };
                if !valid {
                    return Err(FieldsError {
                        at: at.to_string(),
                        why: format!("unknown path element {key:?}"),
                    });
                }
                let mut node = parse(child, &format!("{at}/{key}"))?;
                if node.children.is_empty() {
                    node.member = true;
                }
                set.children.insert(key.clone(), node);
            }
            Ok(set)
        }
        parse(value, "")
    }

    /// The `fieldsV1` JSON of the set.
    pub fn to_fields_v1(&self) -> Value {
        let mut map = Map::new();
        let has_children = self.children.values().any(|c| !c.is_empty());
        if self.member && has_children {
            map.insert(".".into(), Value::Object(Map::new()));
        }
        for (key, child) in &self.children {
            if !child.is_empty() {
                map.insert(key.clone(), child.to_fields_v1());
            }
        }
        Value::Object(map)
    }

    fn node_mut(&mut self, path: &[String]) -> &mut FieldSet {
        let mut node = self;
        for element in path {
            node = node.children.entry(element.clone()).or_default();
        }
        node
    }

    fn insert(&mut self, path: &[String]) {
        self.node_mut(path).member = true;
    }

    /// Paths in either set.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.union_in(other);
        out
    }

    fn union_in(&mut self, other: &FieldSet) {
        self.member |= other.member;
        for (key, child) in &other.children {
            self.children
                .entry(key.clone())
                .or_default()
                .union_in(child);
        }
    }

    /// Paths of `self` that are not in `other` (exact paths: members below a removed one
    /// stay unless `other` names them too).
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.difference_in(other);
        out
    }

    fn difference_in(&mut self, other: &FieldSet) {
        if other.member {
            self.member = false;
        }
        for (key, child) in &other.children {
            if let Some(mine) = self.children.get_mut(key) {
                mine.difference_in(child);
                if mine.is_empty() {
                    self.children.remove(key);
                }
            }
        }
    }

    /// Paths in both sets.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && other.member,
            children: BTreeMap::new(),
        };
        for (key, child) in &self.children {
            if let Some(theirs) = other.children.get(key) {
                let both = child.intersection(theirs);
                if !both.is_empty() {
                    out.children.insert(key.clone(), both);
                }
            }
        }
        out
    }

    /// The node at `path`, if the set has one.
    fn node_at(&self, path: &[String]) -> Option<&FieldSet> {
        let mut node = self;
        for element in path {
            node = node.children.get(element)?;
        }
        Some(node)
    }

    /// Whether `path` itself is a member.
    fn covers_exactly(&self, path: &[String]) -> bool {
        self.node_at(path).is_some_and(|node| node.member)
    }

    /// Whether the set has the node at `path` or anything below it.
    fn covers(&self, path: &[String]) -> bool {
        self.node_at(path).is_some_and(|node| !node.is_empty())
    }

    /// Every member path, parents before children.
    pub fn paths(&self) -> Vec<Vec<String>> {
        fn walk(set: &FieldSet, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
            if set.member {
                out.push(prefix.clone());
            }
            for (key, child) in &set.children {
                prefix.push(key.clone());
                walk(child, prefix, out);
                prefix.pop();
            }
        }
        let mut out = Vec::new();
        walk(self, &mut Vec::new(), &mut out);
        out
    }
}

/// A path as Kubernetes prints it in conflicts: `.spec.containers[name="main"].image`,
/// `.metadata.finalizers[="x"]`, `[3]`.
pub fn display_path(path: &[String]) -> String {
    let mut out = String::new();
    for element in path {
        if let Some(field) = element.strip_prefix("f:") {
            out.push('.');
            out.push_str(field);
        } else if let Some(keys) = element.strip_prefix("k:") {
            let parsed: Value = serde_json::from_str(keys).unwrap_or(Value::Null);
            let parts: Vec<String> = parsed
                .as_object()
                .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect())
                .unwrap_or_default();
            out.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(value) = element.strip_prefix("v:") {
            out.push_str(&format!("[={value}]"));
        } else if let Some(index) = element.strip_prefix("i:") {
            out.push_str(&format!("[{index}]"));
        }
    }
    out
}

/// Metadata fields no manager owns (the server sets them), as Kubernetes strips them.
const SERVER_METADATA: [&str; 9] = [
    "name",
    "namespace",
    "creationTimestamp",
    "selfLink",
    "uid",
    "clusterName",
    "generation",
    "managedFields",
    "resourceVersion",
];

/// Which parts of an object a request's managers may own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Everything but `status` (the main resource of a kind with a status subresource).
    WithoutStatus,
    /// Only `status` (the status subresource).
    OnlyStatus,
    /// Everything.
    All,
}

impl Scope {
    fn keep_root(self, key: &str) -> bool {
        match self {
            Scope::WithoutStatus => key != "status",
            Scope::OnlyStatus => key == "status",
            Scope::All => true,
        }
    }
}

/// Whether a root-level field, or a `metadata` field, takes part in ownership.
fn owned_root_field(scope: Scope, key: &str) -> bool {
    key != "apiVersion" && key != "kind" && scope.keep_root(key)
}

/// The fields a value sets (structured-merge-diff's `ToFieldSet`): scalars, list items,
/// atomic lists and maps, empty or null objects, never the server's metadata.
pub fn field_set(object: &Value, types: Types, scope: Scope) -> FieldSet {
    let mut set = FieldSet::default();
    let Some(map) = object.as_object() else {
        return set;
    };
    for (key, value) in map {
        if !owned_root_field(scope, key) {
            continue;
        }
        let mut path = vec![format!("f:{key}")];
        if key == "metadata"
            && let Some(meta) = value.as_object()
        {
            for (mkey, mvalue) in meta {
                if SERVER_METADATA.contains(&mkey.as_str()) {
                    continue;
                }
                path.push(format!("f:{mkey}"));
                field_walk(mvalue, types.child(key), mkey, &mut path, &mut set);
                path.pop();
            }
            continue;
        }
        field_walk(value, types, key, &mut path, &mut set);
    }
    set
}

/// Adds the fields of `value` (the value of `field` under a parent with `parent` types).
fn field_walk(
    value: &Value,
    parent: Types,
    field: &str,
    path: &mut Vec<String>,
    set: &mut FieldSet,
) {
    let types = parent.child(field);
    match value {
        Value::Object(map) => {
            if map.is_empty() || parent.atomic_map(field) {
                set.insert(path);
                return;
            }
            for (key, child) in map {
                path.push(format!("f:{key}"));
                field_walk(child, types, key, path, set);
                path.pop();
            }
        }
        Value::Array(items) => {
            let list = parent.list_type(field, items.first());
            let elements = match list {
                CustomOr::Static(ListType::Atomic) => None,
                _ => item_elements(&list, items),
            };
            let Some(elements) = elements else {
                set.insert(path);
                return;
            };
            for (element, item) in elements.into_iter().zip(items) {
                path.push(element);
                set.insert(path);
                if let Value::Object(fields) = item {
                    for (key, child) in fields {
                        path.push(format!("f:{key}"));
                        field_walk(child, types.item(), key, path, set);
                        path.pop();
                    }
                }
                path.pop();
            }
        }
        _ => set.insert(path),
    }
}

/// What changed between two versions of an object (structured-merge-diff's `Compare`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Paths only the new object has (including new maps, lists and list items).
    pub added: FieldSet,
    /// Leaves with another value.
    pub modified: FieldSet,
    /// Paths only the old object has.
    pub removed: FieldSet,
}

impl Comparison {
    /// Added or modified paths.
    pub fn changed(&self) -> FieldSet {
        self.added.union(&self.modified)
    }
    fn is_empty(&self) -> bool {
        self.added.is_empty() && self.modified.is_empty() && self.removed.is_empty()
    }
}

/// Compares two objects, ignoring the server's metadata and what `scope` leaves out.
pub fn compare(old: &Value, new: &Value, types: Types, scope: Scope) -> Comparison {
    let mut out = Comparison::default();
    let empty = Map::new();
    let old_map = old.as_object().unwrap_or(&empty);
    let new_map = new.as_object().unwrap_or(&empty);
    let mut path = Vec::new();
    for key in union_keys(old_map, new_map) {
        if !owned_root_field(scope, key) {
            continue;
        }
        path.push(format!("f:{key}"));
        let (l, r) = (old_map.get(key), new_map.get(key));
        if key == "metadata" {
            let lm = l.and_then(Value::as_object).unwrap_or(&empty);
            let rm = r.and_then(Value::as_object).unwrap_or(&empty);
            for mkey in union_keys(lm, rm) {
                if SERVER_METADATA.contains(&mkey) {
                    continue;
                }
                path.push(format!("f:{mkey}"));
                compare_walk(
                    lm.get(mkey),
                    rm.get(mkey),
                    types.child(key),
                    mkey,
                    &mut path,
                    &mut out,
                );
                path.pop();
            }
        } else {
            compare_walk(l, r, types, key, &mut path, &mut out);
        }
        path.pop();
    }
    out
}

fn union_keys<'a>(a: &'a Map<String, Value>, b: &'a Map<String, Value>) -> Vec<&'a str> {
    let mut keys: Vec<&str> = a.keys().map(String::as_str).collect();
    keys.extend(b.keys().map(String::as_str).filter(|k| !a.contains_key(*k)));
    keys
}

fn compare_leaf(l: Option<&Value>, r: Option<&Value>, path: &[String], out: &mut Comparison) {
    match (l, r) {
        (None, Some(_)) => out.added.insert(path),
        (Some(_), None) => out.removed.insert(path),
        (Some(a), Some(b)) if a != b => out.modified.insert(path),
        _ => {}
    }
}

fn compare_walk(
    l: Option<&Value>,
    r: Option<&Value>,
    parent: Types,
    field: &str,
    path: &mut Vec<String>,
    out: &mut Comparison,
) {
    let types = parent.child(field);
    let is_object = |v: Option<&Value>| v.is_none_or(|v| v.is_object() || v.is_null());
    let is_array = |v: Option<&Value>| v.is_none_or(|v| v.is_array() || v.is_null());
    let empty_object = |v: Option<&Value>| {
        v.is_none_or(|v| v.is_null() || v.as_object().is_some_and(Map::is_empty))
    };
    let empty_array = |v: Option<&Value>| {
        v.is_none_or(|v| v.is_null() || v.as_array().is_some_and(Vec::is_empty))
    };
    // A null is "present but empty" of whatever kind the other side has.
    let scalar =
        |v: Option<&Value>| v.is_some_and(|v| !v.is_object() && !v.is_array() && !v.is_null());
    if scalar(l) || scalar(r) {
        compare_leaf(l, r, path, out);
        return;
    }
    if l.is_some_and(Value::is_object) || r.is_some_and(Value::is_object) {
        if !(is_object(l) && is_object(r))
            || parent.atomic_map(field)
            || (empty_object(l) && empty_object(r))
        {
            compare_leaf(l, r, path, out);
            return;
        }
        let empty = Map::new();
        let lm = l.and_then(Value::as_object).unwrap_or(&empty);
        let rm = r.and_then(Value::as_object).unwrap_or(&empty);
        for key in union_keys(lm, rm) {
            path.push(format!("f:{key}"));
            compare_walk(lm.get(key), rm.get(key), types, key, path, out);
            path.pop();
        }
    } else if l.is_some_and(Value::is_array) || r.is_some_and(Value::is_array) {
        if !(is_array(l) && is_array(r)) || (empty_array(l) && empty_array(r)) {
            compare_leaf(l, r, path, out);
            return;
        }
        let none: Vec<Value> = Vec::new();
        let li = l.and_then(Value::as_array).unwrap_or(&none);
        let ri = r.and_then(Value::as_array).unwrap_or(&none);
        let list = parent.list_type(field, li.first().or(ri.first()));
        let named = match list {
            CustomOr::Static(ListType::Atomic) => None,
            _ => item_elements(&list, li).zip(item_elements(&list, ri)),
        };
        let Some((le, re)) = named else {
            compare_leaf(l, r, path, out);
            return;
        };
        let mut seen: Vec<&String> = Vec::new();
        for element in le.iter().chain(re.iter()) {
            if seen.contains(&element) {
                continue;
            }
            seen.push(element);
            let lv = le.iter().position(|e| e == element).map(|i| &li[i]);
            let rv = re.iter().position(|e| e == element).map(|i| &ri[i]);
            path.push(element.clone());
            compare_item(lv, rv, &list, types.item(), path, out);
            path.pop();
        }
    } else {
        // Both null.
        compare_leaf(l, r, path, out);
        return;
    }
    // The node itself, unless it was handled as a leaf.
    match (l, r) {
        (None, Some(_)) => out.added.insert(path),
        (Some(_), None) => out.removed.insert(path),
        _ => {}
    }
}

fn compare_item(
    l: Option<&Value>,
    r: Option<&Value>,
    list: &CustomOr,
    types: Types,
    path: &mut Vec<String>,
    out: &mut Comparison,
) {
    let both_objects = l.is_none_or(Value::is_object) && r.is_none_or(Value::is_object);
    if list.is_set() || !both_objects {
        compare_leaf(l, r, path, out);
        return;
    }
    let empty = Map::new();
    let lm = l.and_then(Value::as_object).unwrap_or(&empty);
    let rm = r.and_then(Value::as_object).unwrap_or(&empty);
    if lm.is_empty() && rm.is_empty() {
        compare_leaf(l, r, path, out);
        return;
    }
    for key in union_keys(lm, rm) {
        path.push(format!("f:{key}"));
        compare_walk(lm.get(key), rm.get(key), types, key, path, out);
        path.pop();
    }
    match (l, r) {
        (None, Some(_)) => out.added.insert(path),
        (Some(_), None) => out.removed.insert(path),
        _ => {}
    }
}

// ----- merging an applied configuration -----

/// Merges an applied configuration into the live object (structured-merge-diff's merge):
/// objects field by field, associative lists and sets item by item in Kubernetes' order,
/// atomic lists and maps replaced; `null` removes a field.
pub fn merge(live: &Value, config: &Value, types: Types) -> Value {
    let (Value::Object(l), Value::Object(c)) = (live, config) else {
        return config.clone();
    };
    let mut out = l.clone();
    for (key, value) in c {
        if value.is_null() {
            out.remove(key);
            continue;
        }
        let merged = merge_field(out.get(key), value, types, key);
        out.insert(key.clone(), merged);
    }
    Value::Object(out)
}

fn merge_field(live: Option<&Value>, config: &Value, parent: Types, field: &str) -> Value {
    let types = parent.child(field);
    match (live, config) {
        (Some(Value::Object(_)), Value::Object(_)) if !parent.atomic_map(field) => {
            merge(live.unwrap_or(&Value::Null), config, types)
        }
        (Some(Value::Array(l)), Value::Array(c)) => {
            let list = parent.list_type(field, c.first().or(l.first()));
            if matches!(list, CustomOr::Static(ListType::Atomic)) {
                return config.clone();
            }
            match merge_list(l, c, &list, types.item()) {
                Some(items) => Value::Array(items),
                None => config.clone(),
            }
        }
        _ => config.clone(),
    }
}

/// Merges two keyed lists in structured-merge-diff's order: live items stay where they
/// are, items of both follow the configuration's order, new items go in where the
/// configuration has them. `None` when an item cannot be named (replace instead).
fn merge_list(
    live: &[Value],
    config: &[Value],
    list: &CustomOr,
    types: Types,
) -> Option<Vec<Value>> {
    let lpe = item_elements(list, live)?;
    let rpe = item_elements(list, config)?;
    let in_live = |pe: &String| lpe.iter().position(|e| e == pe);
    let in_config = |pe: &String| rpe.iter().position(|e| e == pe);
    let merge_item = |l: Option<&Value>, r: Option<&Value>| -> Value {
        match (l, r) {
            (Some(l), Some(r)) if !list.is_set() && l.is_object() && r.is_object() => {
                merge(l, r, types)
            }
            (_, Some(r)) => r.clone(),
            (Some(l), None) => l.clone(),
            (None, None) => Value::Null,
        }
    };
    let mut shared: std::collections::VecDeque<&String> =
        rpe.iter().filter(|pe| in_live(pe).is_some()).collect();
    let mut next_shared = shared.pop_front();
    let mut merged_config: Vec<&String> = Vec::new();
    let mut out = Vec::with_capacity(live.len().max(config.len()));
    let (mut li, mut ri) = (0, 0);
    while li < lpe.len() || ri < rpe.len() {
        if li < lpe.len() && ri < rpe.len() {
            let pe = &lpe[li];
            if *pe == rpe[ri] {
                merged_config.push(pe);
                out.push(merge_item(
                    in_live(pe).map(|i| &live[i]),
                    in_config(pe).map(|i| &config[i]),
                ));
                li += 1;
                ri += 1;
                next_shared = shared.pop_front();
                continue;
            }
            if in_config(pe).is_some() && next_shared.is_some_and(|n| n != pe) {
                li += 1;
                continue;
            }
        }
        if li < lpe.len() {
            let pe = &lpe[li];
            if in_config(pe).is_none() {
                out.push(live[li].clone());
                li += 1;
                continue;
            } else if merged_config.contains(&pe) {
                li += 1;
                continue;
            }
        }
        if ri < rpe.len() {
            let pe = &rpe[ri];
            merged_config.push(pe);
            out.push(merge_item(in_live(pe).map(|i| &live[i]), Some(&config[ri])));
            ri += 1;
            if next_shared.is_some_and(|n| n == pe) {
                next_shared = shared.pop_front();
            }
        }
    }
    Some(out)
}

// ----- managedFields entries -----

/// The operation of a managedFields entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Server-side apply.
    Apply,
    /// Create, update or patch.
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// One `metadata.managedFields` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The field manager.
    pub manager: String,
    /// Apply or Update.
    pub operation: Operation,
    /// The API version the fields are named in.
    pub api_version: String,
    /// When the manager last changed the object (RFC 3339, seconds).
    pub time: Option<String>,
    /// `status`, `scale` or empty.
    pub subresource: String,
    /// What it owns.
    pub fields: FieldSet,
}

impl Entry {
    /// Kubernetes' identity of a manager: appliers are one manager across API versions.
    fn same_manager(&self, other: &Entry) -> bool {
        self.manager == other.manager
            && self.operation == other.operation
            && self.subresource == other.subresource
            && (self.operation == Operation::Apply || self.api_version == other.api_version)
    }

    /// How Kubernetes names the manager in conflict messages.
    fn describe(&self) -> String {
        let mut out = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            out.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        if self.operation == Operation::Update {
            out.push_str(&format!(" using {}", self.api_version));
        }
        out
    }

    /// The sort key of the identity string Kubernetes orders conflicting managers by.
    fn identity(&self) -> String {
        let mut map = Map::new();
        map.insert("manager".into(), Value::String(self.manager.clone()));
        map.insert(
            "operation".into(),
            Value::String(self.operation.as_str().into()),
        );
        if self.operation == Operation::Update {
            map.insert("apiVersion".into(), Value::String(self.api_version.clone()));
        }
        if !self.subresource.is_empty() {
            map.insert(
                "subresource".into(),
                Value::String(self.subresource.clone()),
            );
        }
        Value::Object(map).to_string()
    }

    fn to_json(&self) -> Value {
        let mut map = Map::new();
        map.insert("manager".into(), Value::String(self.manager.clone()));
        map.insert(
            "operation".into(),
            Value::String(self.operation.as_str().into()),
        );
        map.insert("apiVersion".into(), Value::String(self.api_version.clone()));
        if let Some(time) = &self.time {
            map.insert("time".into(), Value::String(time.clone()));
        }
        map.insert("fieldsType".into(), Value::String("FieldsV1".into()));
        map.insert("fieldsV1".into(), self.fields.to_fields_v1());
        if !self.subresource.is_empty() {
            map.insert(
                "subresource".into(),
                Value::String(self.subresource.clone()),
            );
        }
        Value::Object(map)
    }

    fn from_json(value: &Value) -> Result<Entry, FieldsError> {
        let bad = |why: &str| FieldsError {
            at: String::new(),
            why: why.to_string(),
        };
        let text = |key: &str| value.get(key).and_then(Value::as_str).unwrap_or("");
        let operation = match text("operation") {
            "Apply" => Operation::Apply,
            "Update" => Operation::Update,
            other => return Err(bad(&format!("unknown operation {other:?}"))),
        };
        if !matches!(text("fieldsType"), "FieldsV1" | "") {
            return Err(bad(&format!("unknown fieldsType {:?}", text("fieldsType"))));
        }
        let fields = match value.get("fieldsV1") {
            Some(v) => FieldSet::from_fields_v1(v)?,
            None => FieldSet::default(),
        };
        Ok(Entry {
            manager: text("manager").to_string(),
            operation,
            api_version: text("apiVersion").to_string(),
            time: value
                .get("time")
                .and_then(Value::as_str)
                .map(str::to_string),
            subresource: text("subresource").to_string(),
            fields,
        })
    }
}

/// The managedFields of an object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Managers(pub Vec<Entry>);

/// What the `metadata.managedFields` of a request body asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requested {
    /// Absent, empty or undecodable: keep the live object's.
    Keep,
    /// `[]` or `[{}]`: start from nothing.
    Reset,
    /// These entries.
    Set(Managers),
}

impl Managers {
    /// Reads `metadata.managedFields`; an undecodable list counts as none (as Kubernetes).
    pub fn of(object: &Value) -> Managers {
        match Managers::requested(object) {
            Requested::Set(m) => m,
            Requested::Keep | Requested::Reset => Managers::default(),
        }
    }

    /// What a request body's `metadata.managedFields` asks for.
    pub fn requested(object: &Value) -> Requested {
        let Some(list) = object.pointer("/metadata/managedFields") else {
            return Requested::Keep;
        };
        let Some(items) = list.as_array() else {
            return Requested::Keep;
        };
        if items.is_empty() || (items.len() == 1 && items[0].as_object().is_some_and(Map::is_empty))
        {
            return Requested::Reset;
        }
        match items
            .iter()
            .map(Entry::from_json)
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(entries) => Requested::Set(Managers(entries)),
            Err(_) => Requested::Keep,
        }
    }

    /// Writes them into `metadata.managedFields` in Kubernetes' order (Apply before
    /// Update, then by time, manager, API version, subresource); none removes the field.
    pub fn store(mut self, object: &mut Value) {
        self.0.retain(|e| !e.fields.is_empty());
        self.0.sort_by(|a, b| {
            (a.operation.as_str(), a.time.as_deref().unwrap_or(""))
                .cmp(&(b.operation.as_str(), b.time.as_deref().unwrap_or("")))
                .then_with(|| a.manager.cmp(&b.manager))
                .then_with(|| a.api_version.cmp(&b.api_version))
                .then_with(|| a.subresource.cmp(&b.subresource))
        });
        let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
            return;
        };
        if self.0.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert(
                "managedFields".into(),
                Value::Array(self.0.iter().map(Entry::to_json).collect()),
            );
        }
    }

    fn position(&self, id: &Entry) -> Option<usize> {
        self.0.iter().position(|e| e.same_manager(id))
    }
}

/// Who is writing: the manager's identity for a request.
#[derive(Debug, Clone)]
pub struct Writer<'a> {
    /// The field manager (query `fieldManager` or from the user agent).
    pub manager: &'a str,
    /// The request's API version (`apps/v1`).
    pub api_version: &'a str,
    /// `status`, `scale` or empty.
    pub subresource: &'a str,
    /// Now, RFC 3339 in seconds.
    pub time: &'a str,
}

impl Writer<'_> {
    fn entry(&self, operation: Operation, fields: FieldSet, time: Option<String>) -> Entry {
        Entry {
            manager: self.manager.to_string(),
            operation,
            api_version: self.api_version.to_string(),
            time,
            subresource: self.subresource.to_string(),
            fields,
        }
    }

    /// Kubernetes does not stamp the time on entries written through `/scale`.
    fn stamp(&self) -> Option<String> {
        (self.subresource != "scale").then(|| self.time.to_string())
    }
}

/// The Update operation: the writer gains every field its request added or changed;
/// fields the request removed leave every manager; other managers lose what it changed.
/// `old` is the stored object (or, for a create, the kind's empty object).
pub fn update(
    managers: &mut Managers,
    old: &Value,
    new: &Value,
    writer: &Writer,
    types: Types,
    scope: Scope,
) {
    let comparison = compare(old, new, types, scope);
    if comparison.is_empty() {
        return;
    }
    let changed = comparison.changed();
    for entry in &mut managers.0 {
        entry.fields = entry
            .fields
            .difference(&changed)
            .difference(&comparison.removed);
    }
    if !changed.is_empty() {
        let id = writer.entry(Operation::Update, FieldSet::default(), None);
        match managers.position(&id) {
            Some(i) => {
                managers.0[i].fields.union_in(&changed);
                managers.0[i].time = writer.stamp();
            }
            None => managers
                .0
                .push(writer.entry(Operation::Update, changed, writer.stamp())),
        }
    }
    managers.0.retain(|e| !e.fields.is_empty());
}

/// One field another manager owns with a different value than the applier wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The manager as Kubernetes names it (`"m"`, `"m" using v1`, `... with subresource`).
    pub manager: String,
    /// Kubernetes' identity of the manager (the order conflicts are listed in).
    identity: String,
    /// The field's path elements.
    pub path: Vec<String>,
}

/// The conflicts of a failed apply, in message order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflicts {
    /// One per field and manager.
    pub items: Vec<Conflict>,
}

impl Conflicts {
    /// Kubernetes' message: `Apply failed with 1 conflict: conflict with "m": .a`, or for
    /// several, one `conflicts with "m":` block per manager listing `- path` lines.
    pub fn message(&self) -> String {
        if let [only] = self.items.as_slice() {
            return format!(
                "Apply failed with 1 conflict: conflict with {}: {}",
                only.manager,
                display_path(&only.path)
            );
        }
        let mut blocks: Vec<String> = Vec::new();
        let mut last: Option<&str> = None;
        for conflict in &self.items {
            if last != Some(conflict.manager.as_str()) {
                blocks.push(format!("conflicts with {}:", conflict.manager));
                last = Some(&conflict.manager);
            }
            blocks.push(format!("- {}", display_path(&conflict.path)));
        }
        format!(
            "Apply failed with {} conflicts: {}",
            self.items.len(),
            blocks.join("\n")
        )
    }
}

/// The result of an apply.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// The merged object (not yet defaulted or validated).
    pub object: Value,
    /// Whether the object changed.
    pub changed: bool,
}

/// How an object's fields are typed and which of them a request may own.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    /// List and map types.
    pub types: Types<'a>,
    /// The part of the object the request writes.
    pub scope: Scope,
}

/// Server-side apply of `config` onto `live` by `writer` (operation Apply).
///
/// `live` is `None` for a create. Without `force`, fields another manager owns that the
/// configuration would change are conflicts; with it, the applier takes them over.
/// Fields this manager applied before and no longer applies are removed unless another
/// manager owns them too. An object without any managedFields first gets them all
/// attributed to `before-first-apply` (as Kubernetes does), so adopting an object that was
/// never tracked conflicts instead of silently taking it over.
pub fn apply(
    managers: &mut Managers,
    live: Option<&Value>,
    empty: &Value,
    config: &Value,
    writer: &Writer,
    force: bool,
    rules: Rules,
) -> Result<Applied, Conflicts> {
    let Rules { types, scope } = rules;
    let live_value = live.unwrap_or(empty);
    if live.is_some() && managers.0.is_empty() {
        let adopted = Writer {
            manager: "before-first-apply",
            ..writer.clone()
        };
        update(managers, empty, live_value, &adopted, types, scope);
    }
    let mut merged = merge(live_value, config, types);
    let id = writer.entry(Operation::Apply, FieldSet::default(), None);
    let applied_set = field_set(config, types, scope);
    let last = managers.position(&id).map(|i| managers.0[i].fields.clone());
    let index = match managers.position(&id) {
        Some(i) => {
            managers.0[i].fields = applied_set.clone();
            i
        }
        None => {
            managers
                .0
                .push(writer.entry(Operation::Apply, applied_set.clone(), None));
            managers.0.len() - 1
        }
    };
    if let Some(last) = &last {
        prune(&mut merged, last, managers, types);
    }
    let comparison = compare(live_value, &merged, types, scope);
    let changed = comparison.changed();
    let mut conflicts: Vec<Conflict> = Vec::new();
    for (i, entry) in managers.0.iter().enumerate() {
        if i == index {
            continue;
        }
        let clash = entry.fields.intersection(&changed);
        for path in clash.paths() {
            conflicts.push(Conflict {
                manager: entry.describe(),
                identity: entry.identity(),
                path,
            });
        }
    }
    if !conflicts.is_empty() && !force {
        // Kubernetes lists them by manager identity, paths in order within a manager.
        conflicts.sort_by(|a, b| a.identity.cmp(&b.identity));
        return Err(Conflicts { items: conflicts });
    }
    for (i, entry) in managers.0.iter_mut().enumerate() {
        if i != index {
            entry.fields = entry
                .fields
                .difference(&changed)
                .difference(&comparison.removed);
        }
    }
    let object_changed = live.is_none() || !comparison.is_empty();
    if object_changed {
        managers.0[index].time = Some(writer.time.to_string());
    }
    managers.0.retain(|e| !e.fields.is_empty());
    Ok(Applied {
        object: merged,
        changed: object_changed,
    })
}

/// The conflicts kubectl's server-side apply may override when it takes over an object
/// that `kubectl apply` (client-side) managed: fields of the last-applied configuration
/// whose live values are still the ones it applied (kube-apiserver's rule for the manager
/// `kubectl`). Returns the conflicts that remain.
pub fn unresolved_after_client_side_apply(
    conflicts: &Conflicts,
    last_applied: &Value,
    live: &Value,
    types: Types,
) -> Vec<Conflict> {
    let applied = field_set(last_applied, types, Scope::All);
    let comparison = compare(last_applied, live, types, Scope::All);
    let allowed = applied.difference(&comparison.modified);
    conflicts
        .items
        .iter()
        .filter(|c| !allowed.covers_exactly(&c.path))
        .cloned()
        .collect()
}

/// The `kubectl.kubernetes.io/last-applied-configuration` value for an applied
/// configuration, as kube-apiserver writes it when kubectl's server-side apply takes over
/// from client-side apply: Go's JSON of the configuration without that annotation
/// (sorted keys, `<`, `>`, `&` escaped), with a line break.
pub fn last_applied_annotation(config: &Value) -> String {
    let mut config = config.clone();
    if let Some(annotations) = config
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        annotations.remove(LAST_APPLIED);
    }
    let mut out = String::new();
    plumb_model::go_json::write_go_json(&config, &mut out);
    out.push('\n');
    out
}

/// The annotation kubectl's client-side apply keeps its configuration in.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Removes from `merged` what `last` (the applier's previous set) has and no manager owns
/// any more, with everything below it. In built-in kinds a map or list left empty by that
/// goes too (Go's `omitempty`).
fn prune(merged: &mut Value, last: &FieldSet, managers: &Managers, types: Types) {
    let builtin = matches!(types, Types::BuiltIn);
    let owned = managers
        .0
        .iter()
        .fold(FieldSet::default(), |acc, e| acc.union(&e.fields));
    let mut doomed: Vec<Vec<String>> = Vec::new();
    for path in last.paths() {
        if owned.covers(&path) || doomed.iter().any(|d| path.starts_with(d)) {
            continue;
        }
        doomed.push(path);
    }
    // Deepest first, so removing list items does not shift the positions of others.
    doomed.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for path in doomed {
        remove_path(merged, &path, types, builtin);
    }
}

fn remove_path(value: &mut Value, path: &[String], types: Types, builtin: bool) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    let Some(field) = first.strip_prefix("f:") else {
        return;
    };
    let Some(map) = value.as_object_mut() else {
        return;
    };
    if rest.is_empty() {
        map.remove(field);
        return;
    }
    let child_types = types.child(field);
    let list = match map.get(field) {
        Some(Value::Array(items)) => Some(types.list_type(field, items.first())),
        _ => None,
    };
    let Some(child) = map.get_mut(field) else {
        return;
    };
    match (child, list) {
        (Value::Array(items), Some(list)) => {
            let (element, below) = (&rest[0], &rest[1..]);
            if let Some(i) = items
                .iter()
                .position(|item| item_element(&list, item).as_deref() == Some(element.as_str()))
            {
                if below.is_empty() {
                    items.remove(i);
                } else {
                    remove_path(&mut items[i], below, child_types.item(), builtin);
                }
            }
        }
        (child @ Value::Object(_), _) => remove_path(child, rest, child_types, builtin),
        _ => {}
    }
    let emptied = match map.get(field) {
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        _ => false,
    };
    if builtin && emptied {
        map.remove(field);
    }
}

/// The value Kubernetes compares a create with: the JSON of the kind's empty Go struct
/// (structs always present, lists without `omitempty` as null), so that fields a create
/// sets inside those structs carry no `.` of their own, as in kube-apiserver.
pub fn empty_object(group: &str, kind: &str, custom: bool) -> Value {
    use serde_json::json;
    if custom {
        return json!({});
    }
    let pod_template = json!({"metadata": {}, "spec": {"containers": null}});
    let spec = match (group, kind) {
        ("apps", "Deployment") => {
            json!({"selector": null, "template": pod_template, "strategy": {}})
        }
        ("apps", "StatefulSet") => {
            json!({"selector": null, "template": pod_template, "updateStrategy": {}})
        }
        ("apps", "DaemonSet") => {
            json!({"selector": null, "template": pod_template, "updateStrategy": {}})
        }
        ("apps", "ReplicaSet") => json!({"selector": null, "template": pod_template}),
        ("batch", "Job") => json!({"template": pod_template}),
        ("batch", "CronJob") => {
            json!({"schedule": "", "jobTemplate": {"metadata": {}, "spec": {"template": pod_template}}})
        }
        ("", "Pod") => json!({"containers": null}),
        ("", "PodTemplate") => return json!({"metadata": {}, "template": pod_template}),
        ("", "PersistentVolumeClaim") => json!({"resources": {}}),
        ("networking.k8s.io", "NetworkPolicy") => json!({"podSelector": {}}),
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            return json!({"metadata": {}, "subjects": null, "roleRef": {"apiGroup": "", "kind": "", "name": ""}});
        }
        ("rbac.authorization.k8s.io", "Role" | "ClusterRole") => {
            return json!({"metadata": {}, "rules": null});
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            return json!({
                "metadata": {},
                "spec": {"group": "", "names": {"plural": "", "kind": ""}, "scope": "", "versions": null},
                "status": {"conditions": null, "acceptedNames": {"plural": "", "kind": ""}, "storedVersions": null}
            });
        }
        ("", "ConfigMap" | "Secret" | "ServiceAccount" | "Endpoints" | "Event") => {
            return json!({"metadata": {}});
        }
        _ => json!({}),
    };
    let status = match kind {
        "Service" | "Ingress" => json!({"loadBalancer": {}}),
        _ => json!({}),
    };
    json!({"metadata": {}, "spec": spec, "status": status})
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const WRITER: Writer = Writer {
        manager: "m",
        api_version: "v1",
        subresource: "",
        time: "2026-11-23T00:00:00Z",
    };

    const RULES: Rules = Rules {
        types: Types::BuiltIn,
        scope: Scope::All,
    };

    const BUILTIN_WITHOUT_STATUS: Rules = Rules {
        types: Types::BuiltIn,
        scope: Scope::WithoutStatus,
    };

    fn writer(manager: &str) -> Writer<'_> {
        Writer { manager, ..WRITER }
    }

    #[test]
    fn update_on_create_matches_kube_apiserver() {
        // Recorded from kube-apiserver 1.37.2: `kubectl create deployment web --image=nginx
        // --port=80` (defaults applied before the managed fields are computed).
        let created = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
              "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                {"name": "nginx", "image": "nginx", "ports": [{"containerPort": 80, "protocol": "TCP"}],
                 "resources": {}, "terminationMessagePath": "/dev/termination-log",
                 "terminationMessagePolicy": "File", "imagePullPolicy": "Always"}],
               "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
               "securityContext": {}, "schedulerName": "default-scheduler"}},
              "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
              "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600},
            "status": {}});
        let mut managers = Managers::default();
        update(
            &mut managers,
            &empty_object("apps", "Deployment", false),
            &created,
            &writer("kubectl-create"),
            Types::BuiltIn,
            Scope::WithoutStatus,
        );
        let want = json!({"f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {"f:progressDeadlineSeconds": {}, "f:replicas": {}, "f:revisionHistoryLimit": {},
              "f:selector": {}, "f:strategy": {"f:rollingUpdate": {".": {}, "f:maxSurge": {}, "f:maxUnavailable": {}}, "f:type": {}},
              "f:template": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}, "f:spec": {
                "f:containers": {"k:{\"name\":\"nginx\"}": {".": {}, "f:image": {}, "f:imagePullPolicy": {}, "f:name": {},
                  "f:ports": {".": {}, "k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}, "f:protocol": {}}},
                  "f:resources": {}, "f:terminationMessagePath": {}, "f:terminationMessagePolicy": {}}},
                "f:dnsPolicy": {}, "f:restartPolicy": {}, "f:schedulerName": {}, "f:securityContext": {},
                "f:terminationGracePeriodSeconds": {}}}}});
        assert_eq!(managers.0.len(), 1);
        assert_eq!(managers.0[0].fields.to_fields_v1(), want);
        // And the format reads back to the same set.
        assert_eq!(
            FieldSet::from_fields_v1(&want).unwrap(),
            managers.0[0].fields
        );
    }

    #[test]
    fn apply_set_matches_kube_apiserver() {
        // Recorded: the Apply entry of a Deployment applied with --server-side.
        let config = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "ssa"},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "ssa"}},
              "template": {"metadata": {"labels": {"app": "ssa"}}, "spec": {"containers": [
                {"name": "main", "image": "m:1", "ports": [{"containerPort": 80}], "env": [{"name": "A", "value": "1"}], "args": ["x"]}],
                "volumes": [{"name": "v", "emptyDir": {}}]}}}});
        let want = json!({"f:spec": {"f:replicas": {}, "f:selector": {}, "f:template": {"f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {"f:containers": {"k:{\"name\":\"main\"}": {".": {}, "f:args": {}, "f:env": {"k:{\"name\":\"A\"}": {".": {}, "f:name": {}, "f:value": {}}},
              "f:image": {}, "f:name": {}, "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}}},
              "f:volumes": {"k:{\"name\":\"v\"}": {".": {}, "f:emptyDir": {}, "f:name": {}}}}}}});
        assert_eq!(
            field_set(&config, Types::BuiltIn, Scope::WithoutStatus).to_fields_v1(),
            want
        );
    }

    #[test]
    fn apply_removes_what_the_manager_dropped_and_keeps_shared_fields() {
        let mut managers = Managers::default();
        let empty = json!({"metadata": {}});
        let first = json!({"metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}});
        let applied = apply(
            &mut managers,
            None,
            &empty,
            &first,
            &writer("plumb"),
            false,
            RULES,
        )
        .unwrap();
        assert_eq!(applied.object["data"], json!({"a": "1", "b": "2"}));
        // Someone else co-owns b by updating it to the same value... and adds c.
        let live = json!({"metadata": {"name": "c"}, "data": {"a": "1", "b": "2", "c": "3"}});
        update(
            &mut managers,
            &applied.object,
            &live,
            &writer("editor"),
            Types::BuiltIn,
            Scope::All,
        );
        let second = json!({"metadata": {"name": "c"}, "data": {"a": "1"}});
        let again = apply(
            &mut managers,
            Some(&live),
            &empty,
            &second,
            &writer("plumb"),
            false,
            RULES,
        )
        .unwrap();
        // b was only plumb's: gone; c is editor's: kept.
        assert_eq!(again.object["data"], json!({"a": "1", "c": "3"}));
        // A third manager changing a conflicts, unless forced.
        let intruder = json!({"metadata": {"name": "c"}, "data": {"a": "changed"}});
        let err = apply(
            &mut managers.clone(),
            Some(&again.object),
            &empty,
            &intruder,
            &writer("intruder"),
            false,
            RULES,
        )
        .unwrap_err();
        assert_eq!(
            err.message(),
            "Apply failed with 1 conflict: conflict with \"plumb\": .data.a"
        );
        let forced = apply(
            &mut managers,
            Some(&again.object),
            &empty,
            &intruder,
            &writer("intruder"),
            true,
            RULES,
        )
        .unwrap();
        assert_eq!(forced.object["data"]["a"], "changed");
        let plumb = managers.0.iter().find(|e| e.manager == "plumb");
        assert!(plumb.is_none(), "plumb lost its only field: {managers:?}");
    }

    #[test]
    fn apply_removes_dropped_list_items_by_key() {
        let mut managers = Managers::default();
        let empty = empty_object("apps", "Deployment", false);
        let containers = |names: &[&str]| {
            json!({"spec": {"template": {"spec": {"containers":
                names.iter().map(|n| json!({"name": n, "image": format!("{n}:1")})).collect::<Vec<_>>()}}}})
        };
        let one = apply(
            &mut managers,
            None,
            &empty,
            &containers(&["main", "sidecar"]),
            &writer("plumb"),
            false,
            BUILTIN_WITHOUT_STATUS,
        )
        .unwrap();
        let two = apply(
            &mut managers,
            Some(&one.object),
            &empty,
            &containers(&["main"]),
            &writer("plumb"),
            false,
            BUILTIN_WITHOUT_STATUS,
        )
        .unwrap();
        assert_eq!(
            two.object
                .pointer("/spec/template/spec/containers")
                .unwrap(),
            &json!([{"name": "main", "image": "main:1"}])
        );
    }

    #[test]
    fn merge_orders_list_items_like_kubernetes() {
        let live = json!({"env": [{"name": "A"}, {"name": "B"}, {"name": "C"}]});
        let config = json!({"env": [{"name": "C", "value": "3"}, {"name": "D"}]});
        let out = merge(&live, &config, Types::BuiltIn);
        let names: Vec<&str> = out["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["A", "B", "C", "D"]);
        // Atomic lists are replaced.
        let out = merge(
            &json!({"args": ["a"]}),
            &json!({"args": ["b"]}),
            Types::BuiltIn,
        );
        assert_eq!(out, json!({"args": ["b"]}));
    }

    #[test]
    fn custom_resources_follow_their_schema() {
        let schema = json!({"properties": {"spec": {"properties": {
            "items": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["id"],
                      "items": {"type": "object"}},
            "tags": {"type": "array", "x-kubernetes-list-type": "set"},
            "plain": {"type": "array"}}}}});
        let object = json!({"spec": {"items": [{"id": 1, "v": "a"}], "tags": ["x"], "plain": [1]}});
        let set = field_set(&object, Types::Custom(Some(&schema)), Scope::All);
        assert_eq!(
            set.to_fields_v1(),
            json!({"f:spec": {
            "f:items": {"k:{\"id\":1}": {".": {}, "f:id": {}, "f:v": {}}},
            "f:plain": {}, "f:tags": {"v:\"x\"": {}}}})
        );
    }

    #[test]
    fn kubectl_takes_over_from_client_side_apply() {
        // Client-side apply set a and b; someone else then set c.
        let last = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "m"}, "data": {"a": "1", "b": "2"}});
        let live = json!({"metadata": {"name": "m"}, "data": {"a": "1", "b": "2", "c": "3"}});
        let conflict = |manager: &str, field: &str| Conflict {
            manager: format!("{manager:?}"),
            identity: manager.to_string(),
            path: vec!["f:data".into(), format!("f:{field}")],
        };
        let conflicts = Conflicts {
            items: vec![
                conflict("kubectl-client-side-apply", "b"),
                conflict("editor", "c"),
            ],
        };
        let left = unresolved_after_client_side_apply(&conflicts, &last, &live, Types::BuiltIn);
        assert_eq!(left, vec![conflict("editor", "c")]);
        // A field changed since client-side apply set it is no longer its to give away.
        let edited = json!({"metadata": {"name": "m"}, "data": {"a": "1", "b": "edited"}});
        let left = unresolved_after_client_side_apply(&conflicts, &last, &edited, Types::BuiltIn);
        assert_eq!(left.len(), 2);
    }

    #[test]
    fn last_applied_is_gos_json() {
        let config = json!({"kind": "ConfigMap", "apiVersion": "v1",
            "metadata": {"name": "m", "annotations": {LAST_APPLIED: "old", "x": "<&>"}}, "data": {"b": "1", "a": "2"}});
        assert_eq!(
            last_applied_annotation(&config),
            "{\"apiVersion\":\"v1\",\"data\":{\"a\":\"2\",\"b\":\"1\"},\"kind\":\"ConfigMap\",\"metadata\":{\"annotations\":{\"x\":\"\\u003c\\u0026\\u003e\"},\"name\":\"m\"}}\n"
        );
    }

    #[test]
    fn conflict_paths_print_like_kubernetes() {
        assert_eq!(
            display_path(&[
                "f:spec".into(),
                "f:containers".into(),
                "k:{\"name\":\"main\"}".into(),
                "f:image".into()
            ]),
            ".spec.containers[name=\"main\"].image"
        );
        assert_eq!(
            display_path(&["f:metadata".into(), "f:finalizers".into(), "v:\"a\"".into()]),
            ".metadata.finalizers[=\"a\"]"
        );
    }

    #[test]
    fn bad_fields_v1_is_an_error() {
        assert!(FieldSet::from_fields_v1(&json!({"x:y": {}})).is_err());
        assert!(FieldSet::from_fields_v1(&json!({"k:notjson": {}})).is_err());
        assert!(FieldSet::from_fields_v1(&json!([])).is_err());
        assert_eq!(
            Managers::requested(&json!({"metadata": {"managedFields": [{}]}})),
            Requested::Reset
        );
        assert_eq!(
            Managers::requested(&json!({"metadata": {"managedFields": [{"operation": "Bogus"}]}})),
            Requested::Keep
        );
    }

    fn json_tree() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<i8>().prop_map(Value::from),
            "[a-c]{0,2}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 16, 3, |inner| {
            prop_oneof![
                prop::collection::btree_map("[a-d]", inner.clone(), 0..3)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
                prop::collection::btree_map("[a-c]", inner, 1..3)
                    .prop_map(|m| {
                        // An `env` list keyed by distinct names.
                        Value::Array(
                            m.into_iter()
                                .map(|(k, v)| json!({"name": k, "value": v}))
                                .collect(),
                        )
                    })
                    .prop_map(|env| json!({"env": env})),
            ]
        })
    }

    proptest! {
        #[test]
        fn fields_v1_round_trips(object in json_tree()) {
            let set = field_set(&json!({"spec": object}), Types::BuiltIn, Scope::All);
            prop_assert_eq!(FieldSet::from_fields_v1(&set.to_fields_v1()).unwrap(), set);
        }
        #[test]
        fn comparing_an_object_with_itself_finds_nothing(object in json_tree()) {
            let o = json!({"spec": object});
            prop_assert!(compare(&o, &o, Types::BuiltIn, Scope::All).is_empty());
        }
        #[test]
        fn applying_twice_changes_nothing_the_second_time(live in json_tree(), config in json_tree()) {
            let empty = json!({});
            let live = json!({"spec": live});
            let config = json!({"spec": config});
            let mut managers = Managers::default();
            let once = apply(&mut managers, Some(&live), &empty, &config, &WRITER, true,
                RULES).unwrap();
            let twice = apply(&mut managers, Some(&once.object), &empty, &config, &WRITER, true,
                RULES).unwrap();
            prop_assert_eq!(&twice.object, &once.object);
            prop_assert!(!twice.changed);
        }
    }
}
