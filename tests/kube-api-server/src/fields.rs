//! Field sets and `metadata.managedFields`: which manager owns which leaf of an object, the
//! bookkeeping behind server-side apply's conflicts and removals.

use serde_json::{Map, Value, json};
use std::collections::BTreeSet;

/// A path from the object's root to a leaf, by map keys (lists are leaves, owned whole).
pub type FieldPath = Vec<String>;

/// Metadata that the server sets, which nobody owns.
const SERVER_METADATA: &[&str] = &[
    "managedFields",
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "selfLink",
    "name",
    "namespace",
    "generateName",
];

/// Which part of an object an operation may own: the main resource, or its `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Everything but `status` when the type has a status subresource (status then belongs to
    /// the `/status` endpoint), else everything.
    Main { status_separate: bool },
    /// Only `status`, written through `/status`.
    Status,
}

impl Part {
    /// The `subresource` recorded in managed-fields entries.
    pub fn subresource(self) -> &'static str {
        match self {
            Part::Main { .. } => "",
            Part::Status => "status",
        }
    }
}

/// A set of leaf paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet(BTreeSet<FieldPath>);

impl FieldSet {
    /// Every leaf of `object` in `part`: what an operation that wrote `object` would own.
    pub fn of(object: &Value, part: Part) -> Self {
        let mut set = BTreeSet::new();
        if let Some(map) = object.as_object() {
            for (key, value) in map {
                let owned = match (part, key.as_str()) {
                    (_, "apiVersion" | "kind") => false,
                    (Part::Status, other) => other == "status",
                    (Part::Main { status_separate }, "status") => !status_separate,
                    _ => true,
                };
                if owned {
                    collect(value, &mut vec![key.clone()], &mut set);
                }
            }
        }
        FieldSet(set)
    }

    /// Reads a `fieldsV1` trie. Keys other than `f:` ones (list keys `k:`, values `v:`, the
    /// `.` marker) mean the whole list or map at that point is owned.
    pub fn from_fields_v1(trie: &Value) -> Self {
        fn walk(node: &Value, path: &mut FieldPath, set: &mut BTreeSet<FieldPath>) {
            let children: Vec<(&String, &Value)> = node
                .as_object()
                .map(|m| m.iter().filter(|(k, _)| k.as_str() != ".").collect())
                .unwrap_or_default();
            if children.is_empty() {
                if !path.is_empty() {
                    set.insert(path.clone());
                }
                return;
            }
            if children.iter().any(|(k, _)| !k.starts_with("f:")) {
                set.insert(path.clone());
                return;
            }
            for (key, child) in children {
                path.push(key.trim_start_matches("f:").to_string());
                walk(child, path, set);
                path.pop();
            }
        }
        let mut set = BTreeSet::new();
        walk(trie, &mut Vec::new(), &mut set);
        set.remove(&Vec::new());
        FieldSet(set)
    }

    /// The set as a `fieldsV1` trie (`{"f:metadata":{"f:annotations":{"f:a":{}}}}`).
    pub fn to_fields_v1(&self) -> Value {
        let mut root = Map::new();
        for path in &self.0 {
            let mut node = &mut root;
            for key in path {
                let entry = node
                    .entry(format!("f:{key}"))
                    .or_insert_with(|| Value::Object(Map::new()));
                if !entry.is_object() {
                    *entry = Value::Object(Map::new());
                }
                match entry.as_object_mut() {
                    Some(next) => node = next,
                    None => break,
                }
            }
        }
        Value::Object(root)
    }

    pub fn paths(&self) -> impl Iterator<Item = &FieldPath> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn insert(&mut self, path: FieldPath) {
        self.0.insert(path);
    }

    /// Whether some owned path is `path`, lies above it or below it.
    pub fn overlaps(&self, path: &[String]) -> bool {
        self.0.iter().any(|owned| related(owned, path))
    }

    /// Drops every owned path that is `path`, lies above it or below it.
    pub fn remove_overlapping(&mut self, path: &[String]) {
        self.0.retain(|owned| !related(owned, path));
    }
}

fn collect(value: &Value, path: &mut FieldPath, set: &mut BTreeSet<FieldPath>) {
    match value.as_object() {
        Some(map) => {
            let in_metadata = path.len() == 1 && path[0] == "metadata";
            for (key, child) in map {
                if in_metadata && SERVER_METADATA.contains(&key.as_str()) {
                    continue;
                }
                path.push(key.clone());
                collect(child, path, set);
                path.pop();
            }
        }
        None => {
            set.insert(path.clone());
        }
    }
}

/// One path is a prefix of the other.
fn related(a: &[String], b: &[String]) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

/// The value at `path`, if there is one.
pub fn get_at<'a>(object: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(object, |node, key| node.get(key))
}

/// Removes the value at `path`, then maps that this leaves empty (the way kube-apiserver drops
/// `annotations: {}` when the last annotation goes).
pub fn remove_at(object: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = &mut *object;
    for key in parents {
        match node.get_mut(key) {
            Some(next) => node = next,
            None => return,
        }
    }
    let Some(map) = node.as_object_mut() else {
        return;
    };
    map.remove(last);
    if map.is_empty() && !parents.is_empty() {
        remove_at(object, parents);
    }
}

/// Leaves whose value differs between `before` and `after`, and leaves `after` no longer has.
pub fn changes(before: &Value, after: &Value, part: Part) -> (FieldSet, FieldSet) {
    let new = FieldSet::of(after, part);
    let old = FieldSet::of(before, part);
    let changed = new
        .paths()
        .filter(|p| get_at(before, p) != get_at(after, p))
        .cloned()
        .collect();
    let removed = old
        .paths()
        .filter(|p| get_at(after, p).is_none())
        .cloned()
        .collect();
    (FieldSet(changed), FieldSet(removed))
}

/// One `metadata.managedFields` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedEntry {
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    pub api_version: String,
    pub subresource: String,
    pub time: String,
    pub fields: FieldSet,
}

impl ManagedEntry {
    pub fn new(manager: &str, operation: &str, api_version: &str, part: Part) -> Self {
        Self {
            manager: manager.to_string(),
            operation: operation.to_string(),
            api_version: api_version.to_string(),
            subresource: part.subresource().to_string(),
            time: now(),
            fields: FieldSet::default(),
        }
    }

    /// The entries stored on `object`; malformed ones are dropped rather than trusted.
    pub fn read_all(object: &Value) -> Vec<Self> {
        let entries = object
            .pointer("/metadata/managedFields")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        entries
            .iter()
            .filter_map(|entry| {
                let text = |key: &str| entry.get(key).and_then(Value::as_str).map(str::to_string);
                Some(Self {
                    manager: text("manager")?,
                    operation: text("operation")?,
                    api_version: text("apiVersion").unwrap_or_default(),
                    subresource: text("subresource").unwrap_or_default(),
                    time: text("time").unwrap_or_default(),
                    fields: entry
                        .get("fieldsV1")
                        .map(FieldSet::from_fields_v1)
                        .unwrap_or_default(),
                })
            })
            .collect()
    }

    /// Stores `entries` on `object`, dropping those that own nothing (as kube-apiserver does).
    pub fn write_all(object: &mut Value, entries: &[Self]) {
        let list: Vec<Value> = entries
            .iter()
            .filter(|e| !e.fields.is_empty())
            .map(|e| {
                let mut entry = json!({
                    "manager": e.manager,
                    "operation": e.operation,
                    "apiVersion": e.api_version,
                    "time": e.time,
                    "fieldsType": "FieldsV1",
                    "fieldsV1": e.fields.to_fields_v1(),
                });
                if !e.subresource.is_empty() {
                    entry["subresource"] = json!(e.subresource);
                }
                entry
            })
            .collect();
        if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            if list.is_empty() {
                metadata.remove("managedFields");
            } else {
                metadata.insert("managedFields".to_string(), Value::Array(list));
            }
        }
    }

    pub fn is(&self, manager: &str, operation: &str, part: Part) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource == part.subresource()
    }
}

/// The time format of `managedFields[].time`.
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// `.metadata.annotations.a`, as kube-apiserver names a field in conflict messages.
pub fn render(path: &[String]) -> String {
    path.iter().map(|key| format!(".{key}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(path: &str) -> FieldPath {
        path.split('.').map(str::to_string).collect()
    }

    #[test]
    fn leaves_skip_server_metadata_and_separate_status() {
        let obj = json!({
            "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "a", "resourceVersion": "3", "annotations": {"x": "1"}, "labels": {}},
            "spec": {"replicas": 2, "list": [1, 2]},
            "status": {"ready": true}
        });
        let main = FieldSet::of(
            &obj,
            Part::Main {
                status_separate: true,
            },
        );
        let paths: Vec<_> = main.paths().cloned().collect();
        assert_eq!(
            paths,
            vec![
                p("metadata.annotations.x"),
                p("spec.list"),
                p("spec.replicas")
            ]
        );
        let status = FieldSet::of(&obj, Part::Status);
        assert_eq!(
            status.paths().cloned().collect::<Vec<_>>(),
            vec![p("status.ready")]
        );
    }

    #[test]
    fn fields_v1_round_trips_and_reads_list_keys_as_whole() {
        let set = FieldSet::of(
            &json!({"metadata": {"annotations": {"a": "1", "b": "2"}}}),
            Part::Main {
                status_separate: false,
            },
        );
        let trie = set.to_fields_v1();
        assert_eq!(
            trie,
            json!({"f:metadata": {"f:annotations": {"f:a": {}, "f:b": {}}}})
        );
        assert_eq!(FieldSet::from_fields_v1(&trie), set);
        let real = json!({"f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {".": {}}}}, "f:metadata": {"f:labels": {".": {}, "f:app": {}}}});
        let read: Vec<_> = FieldSet::from_fields_v1(&real).paths().cloned().collect();
        assert_eq!(read, vec![p("metadata.labels.app"), p("spec.containers")]);
    }

    #[test]
    fn removal_prunes_maps_left_empty() {
        let mut obj = json!({"metadata": {"name": "a", "annotations": {"x": "1"}}});
        remove_at(&mut obj, &p("metadata.annotations.x"));
        assert_eq!(obj, json!({"metadata": {"name": "a"}}));
        remove_at(&mut obj, &p("spec.missing.path"));
        assert_eq!(obj, json!({"metadata": {"name": "a"}}));
    }

    #[test]
    fn overlap_is_prefix_either_way() {
        let mut set = FieldSet::default();
        set.insert(p("metadata.annotations.x"));
        assert!(set.overlaps(&p("metadata.annotations")));
        assert!(set.overlaps(&p("metadata.annotations.x")));
        assert!(!set.overlaps(&p("metadata.annotations.y")));
        set.remove_overlapping(&p("metadata"));
        assert!(set.is_empty());
    }
}
