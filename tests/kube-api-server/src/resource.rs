//! Resource types and request paths: which kind a URL names, whether it is namespaced, and
//! what verbs it has, from the built-in discovery data of kube-fake-client.

use kube_fake_client::discovery::Discovery;
use kube_fake_client::r#gen::discovery::{get_short_names, get_singular, list_resources};
use percent_encoding::percent_decode_str;

/// A kind of object the server stores, e.g. apps/v1 Deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub namespaced: bool,
}

/// The verbs a stored type can have; `watch` is left out because this server cannot stream.
pub const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
];

impl ResourceType {
    /// The type served at `/api[s]/{group}/{version}/{plural}`, if it is one.
    pub fn lookup(group: &str, version: &str, plural: &str) -> Option<Self> {
        let kind = Discovery::plural_to_kind(group, version, plural)?;
        let namespaced = kube_fake_client::r#gen::discovery::is_namespaced(group, version, kind)?;
        Some(Self {
            group: group.to_string(),
            version: version.to_string(),
            kind: kind.to_string(),
            plural: plural.to_string(),
            namespaced,
        })
    }

    /// core/v1 Namespace.
    pub fn namespace() -> Self {
        Self {
            group: String::new(),
            version: "v1".to_string(),
            kind: "Namespace".to_string(),
            plural: "namespaces".to_string(),
            namespaced: false,
        }
    }

    /// core/v1 ServiceAccount.
    pub fn service_account() -> Self {
        Self {
            group: String::new(),
            version: "v1".to_string(),
            kind: "ServiceAccount".to_string(),
            plural: "serviceaccounts".to_string(),
            namespaced: true,
        }
    }

    /// Every type the server stores, in discovery order.
    pub fn all() -> impl Iterator<Item = Self> {
        list_resources()
            .iter()
            .filter_map(|(group, version, _, plural)| Self::lookup(group, version, plural))
    }

    pub fn is_namespace(&self) -> bool {
        self.group.is_empty() && self.kind == "Namespace"
    }

    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `deployments.apps`, or `serviceaccounts` for the core group: the name kube-apiserver
    /// uses in messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    pub fn supports(&self, verb: &str) -> bool {
        VERBS.contains(&verb)
            && kube_fake_client::r#gen::discovery::supports_verb(
                &self.group,
                &self.version,
                &self.kind,
                verb,
            )
    }

    pub fn has_status(&self) -> bool {
        kube_fake_client::r#gen::discovery::has_subresource(
            &self.group,
            &self.version,
            &self.kind,
            "status",
        )
    }

    pub fn singular(&self) -> String {
        get_singular(&self.group, &self.version, &self.kind)
            .map_or_else(|| self.kind.to_ascii_lowercase(), str::to_string)
    }

    pub fn short_names(&self) -> &'static [&'static str] {
        get_short_names(&self.group, &self.version, &self.kind)
    }

    /// The URL of the collection, e.g. `/apis/apps/v1/namespaces/ns/deployments`.
    pub fn collection_path(&self, namespace: Option<&str>) -> String {
        let root = if self.group.is_empty() {
            "/api".to_string()
        } else {
            format!("/apis/{}", self.group)
        };
        match namespace {
            Some(ns) if self.namespaced => {
                format!("{root}/{}/namespaces/{ns}/{}", self.version, self.plural)
            }
            _ => format!("{root}/{}/{}", self.version, self.plural),
        }
    }
}

/// What a resource URL addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub rtype: ResourceType,
    /// Set for namespaced types, except for a list across all namespaces.
    pub namespace: Option<String>,
    pub name: Option<String>,
    /// Only `status` is served.
    pub status: bool,
}

impl Target {
    /// Parses `/api/v1/...` and `/apis/{group}/{version}/...`; `None` for anything that is not
    /// a stored type in the right scope (the caller answers 404).
    pub fn parse(path: &str) -> Option<Self> {
        let segments: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
            .collect();
        let (group, version, rest) = match segments.as_slice() {
            [api, version, rest @ ..] if api == "api" => ("", version.as_str(), rest),
            [apis, group, version, rest @ ..] if apis == "apis" => {
                (group.as_str(), version.as_str(), rest)
            }
            _ => return None,
        };
        let (namespace, rest) = match rest {
            // /api/v1/namespaces/{name}/status addresses the Namespace itself.
            [ns, _, sub] if ns == "namespaces" && group.is_empty() && sub == "status" => {
                (None, rest)
            }
            [ns, name, rest @ ..] if ns == "namespaces" && !rest.is_empty() => {
                (Some(name.clone()), rest)
            }
            _ => (None, rest),
        };
        let (plural, name, status) = match rest {
            [plural] => (plural, None, false),
            [plural, name] => (plural, Some(name.clone()), false),
            [plural, name, sub] if sub == "status" => (plural, Some(name.clone()), true),
            _ => return None,
        };
        let rtype = ResourceType::lookup(group, version, plural)?;
        if namespace.is_some() && !rtype.namespaced {
            return None;
        }
        // A namespaced object is only reachable inside its namespace; without one, only the
        // list across all namespaces exists.
        if rtype.namespaced && namespace.is_none() && name.is_some() {
            return None;
        }
        if name.as_deref() == Some("") {
            return None;
        }
        Some(Self {
            rtype,
            namespace,
            name,
            status,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_paths_clients_use() {
        let sa = Target::parse("/api/v1/namespaces/team/serviceaccounts/app").unwrap();
        assert_eq!(sa.rtype.kind, "ServiceAccount");
        assert_eq!(sa.namespace.as_deref(), Some("team"));
        assert_eq!(sa.name.as_deref(), Some("app"));

        let all = Target::parse("/api/v1/serviceaccounts").unwrap();
        assert_eq!((all.namespace, all.name), (None, None));

        let ns = Target::parse("/api/v1/namespaces/team").unwrap();
        assert!(ns.rtype.is_namespace());
        assert_eq!(ns.name.as_deref(), Some("team"));
        assert!(
            Target::parse("/api/v1/namespaces/team/status")
                .unwrap()
                .status
        );
        assert!(Target::parse("/api/v1/namespaces").unwrap().name.is_none());

        let deploy = Target::parse("/apis/apps/v1/namespaces/team/deployments/web/status").unwrap();
        assert_eq!(deploy.rtype.kind, "Deployment");
        assert!(deploy.status);

        let event = Target::parse("/apis/events.k8s.io/v1/namespaces/team/events").unwrap();
        assert_eq!(event.rtype.kind, "Event");
    }

    #[test]
    fn refuses_what_is_not_a_stored_type_in_scope() {
        for path in [
            "/",
            "/api",
            "/api/v1",
            "/api/v1/widgets",
            "/api/v1/serviceaccounts/app",
            "/api/v1/namespaces/team/namespaces/x",
            "/api/v1/namespaces/team/serviceaccounts/app/token",
            "/apis/apps/v1/namespaces/team/deployments/web/scale",
        ] {
            assert_eq!(Target::parse(path), None, "{path}");
        }
    }
}
