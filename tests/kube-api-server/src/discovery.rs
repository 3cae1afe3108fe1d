//! Discovery documents (`/version`, `/api`, `/apis`, `/api/v1`, `/apis/{group}/{version}`),
//! which kubectl reads before anything else. The fake has the data but serves none of it.

use crate::resource::{ResourceType, VERBS};
use crate::status::{self, HttpResponse};
use http::StatusCode;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The Kubernetes version reported by `/version`: the newest the fake's data describes.
const GIT_VERSION: &str = "v1.36.0";

/// The discovery document at `path`, or `None` if `path` is not a discovery path.
pub fn serve(path: &str) -> Option<HttpResponse> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let body = match segments.as_slice() {
        ["version"] => json!({
            "major": "1",
            "minor": "36",
            "gitVersion": GIT_VERSION,
            "platform": "linux/amd64",
        }),
        ["api"] => json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
        }),
        ["apis"] => group_list(),
        ["apis", group] => group_list()["groups"]
            .as_array()?
            .iter()
            .find(|g| g["name"] == *group)
            .map(|g| {
                let mut document = g.clone();
                document["kind"] = json!("APIGroup");
                document["apiVersion"] = json!("v1");
                document
            })?,
        ["api", version] => resource_list("", version)?,
        ["apis", group, version] => resource_list(group, version)?,
        // Answered so that kubectl's OpenAPI look-ups fail fast instead of hanging.
        ["openapi", ..] | ["swagger.json"] => {
            return Some(status::failure(
                StatusCode::NOT_FOUND,
                "this test server has no OpenAPI document",
            ));
        }
        _ => return None,
    };
    Some(status::json(StatusCode::OK, &body))
}

/// Versions of each named group, preferring `v1`.
fn groups() -> BTreeMap<String, Vec<String>> {
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for rtype in ResourceType::all().filter(|t| !t.group.is_empty()) {
        let versions = groups.entry(rtype.group.clone()).or_default();
        if !versions.contains(&rtype.version) {
            versions.push(rtype.version.clone());
        }
    }
    for versions in groups.values_mut() {
        versions.sort_by_key(|v| {
            (
                v != "v1",
                v.contains("alpha"),
                v.contains("beta"),
                v.clone(),
            )
        });
    }
    groups
}

fn group_list() -> Value {
    let groups: Vec<Value> = groups()
        .into_iter()
        .filter_map(|(group, versions)| {
            let entry = |v: &String| json!({"groupVersion": format!("{group}/{v}"), "version": v});
            let preferred = entry(versions.first()?);
            Some(json!({
                "name": group,
                "versions": versions.iter().map(entry).collect::<Vec<_>>(),
                "preferredVersion": preferred,
            }))
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn resource_list(group: &str, version: &str) -> Option<Value> {
    let resources: Vec<Value> = ResourceType::all()
        .filter(|t| t.group == group && t.version == version)
        .flat_map(|t| {
            let verbs: Vec<&str> = VERBS.iter().copied().filter(|v| t.supports(v)).collect();
            let mut entries = vec![json!({
                "name": t.plural,
                "singularName": t.singular(),
                "namespaced": t.namespaced,
                "kind": t.kind,
                "verbs": verbs,
                "shortNames": t.short_names(),
            })];
            if t.has_status() {
                entries.push(json!({
                    "name": format!("{}/status", t.plural),
                    "singularName": "",
                    "namespaced": t.namespaced,
                    "kind": t.kind,
                    "verbs": ["get", "patch", "update"],
                }));
            }
            entries
        })
        .collect();
    if resources.is_empty() {
        return None;
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_and_apps_are_discoverable() {
        let core = resource_list("", "v1").unwrap();
        let names: Vec<&str> = core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["name"].as_str())
            .collect();
        assert!(names.contains(&"serviceaccounts"));
        assert!(names.contains(&"namespaces"));
        let groups = group_list();
        let apps = groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == "apps")
            .unwrap();
        assert_eq!(apps["preferredVersion"]["version"], "v1");
        assert!(serve("/apis/nothing/v1").is_none());
        assert!(serve("/apis/apps").is_some());
        assert!(serve("/apis/nothing").is_none());
        assert!(serve("/api/v1/serviceaccounts").is_none());
    }
}
