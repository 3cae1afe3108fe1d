//! The bucket's key layout, in one place:
//! - `intents/<cluster>/<file>`: a bundle of the platform team; `intents/<cluster>/<namespace>/<path>`:
//!   a bundle of a team confined to one namespace (uploaded by people);
//! - `status/<cluster>.json`: the last reconcile's report, and `status/<cluster>/bundles/...`: the
//!   check of each upload (written by the functions, read by people);
//! - `state/<cluster>.json`: the cluster's compiled desired state, what the last run parsed
//!   (written and read by the reconciler alone).

use crate::model::Namespace;

const ROOT: &str = "intents";

/// What a bundle's key says about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleLocation {
    pub cluster: String,
    /// Set for a team bundle: the default namespace of its documents and the only one they
    /// may name. `None` for a platform bundle. Not validated here, so that a bad folder name
    /// surfaces as a bundle error instead of the bundle being silently ignored.
    pub namespace: Option<Namespace>,
}

/// Tells a bundle's cluster and namespace from its (already URL-decoded) S3 key; `None` for
/// anything that is not a bundle (another prefix, an empty part, a folder marker).
pub fn locate(key: &str) -> Option<BundleLocation> {
    if key.ends_with('/') {
        return None;
    }
    let mut parts = key.split('/');
    if parts.next() != Some(ROOT) {
        return None;
    }
    let rest: Vec<&str> = parts.collect();
    if rest.iter().any(|part| part.is_empty()) {
        return None;
    }
    match rest.as_slice() {
        [cluster, _file] => Some(BundleLocation {
            cluster: (*cluster).to_owned(),
            namespace: None,
        }),
        [cluster, namespace, _, ..] => Some(BundleLocation {
            cluster: (*cluster).to_owned(),
            namespace: Some(Namespace::new(*namespace)),
        }),
        _ => None,
    }
}

/// The prefix under which every bundle of one cluster lives.
pub fn cluster_prefix(cluster: &str) -> String {
    format!("{ROOT}/{cluster}/")
}

/// `status/<cluster>.json`
pub fn status_key(cluster: &str) -> String {
    format!("status/{cluster}.json")
}

/// `status/<cluster>/bundles/<rest of the bundle's key>.json`: the result of checking one
/// upload, written at once by `bundle-upload`.
pub fn upload_status_key(cluster: &str, bundle_key: &str) -> String {
    let rest = bundle_key
        .strip_prefix(&cluster_prefix(cluster))
        .unwrap_or(bundle_key);
    format!("status/{cluster}/bundles/{rest}.json")
}

/// `state/<cluster>.json`: the compiled desired state of a cluster.
pub fn state_key(cluster: &str) -> String {
    format!("state/{cluster}.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn team(cluster: &str, namespace: &str) -> Option<BundleLocation> {
        Some(BundleLocation {
            cluster: cluster.to_owned(),
            namespace: Some(Namespace::new(namespace)),
        })
    }

    #[test]
    fn platform_bundles_sit_directly_under_the_cluster() {
        assert_eq!(
            locate("intents/prod/ebs-ci.yaml"),
            Some(BundleLocation {
                cluster: "prod".to_owned(),
                namespace: None
            })
        );
    }

    #[test]
    fn team_bundles_sit_under_their_namespace_at_any_depth() {
        assert_eq!(
            locate("intents/prod/jokes/joke-worker.yaml"),
            team("prod", "jokes")
        );
        assert_eq!(
            locate("intents/prod/jokes/sub/dir/all.tgz"),
            team("prod", "jokes")
        );
    }

    #[test]
    fn anything_else_is_not_a_bundle() {
        for key in [
            "",
            "intents",
            "intents/",
            "intents/prod",
            "intents/prod/",
            "intents/prod/jokes/",
            "intents//x.yaml",
            "intents/prod//x.yaml",
            "intents/prod/jokes//x.yaml",
            "status/prod.json",
            "other/intents/prod/x.yaml",
            "/intents/prod/x.yaml",
            "Intents/prod/x.yaml",
        ] {
            assert_eq!(locate(key), None, "{key:?}");
        }
    }

    #[test]
    fn the_cluster_prefix_holds_exactly_the_cluster_bundles() {
        let prefix = cluster_prefix("prod");
        assert_eq!(prefix, "intents/prod/");
        let key = "intents/prod/jokes/a.yaml";
        assert!(key.starts_with(&prefix));
        assert_eq!(locate(key).map(|l| l.cluster), Some("prod".to_owned()));
        assert!(!"intents/prod-2/a.yaml".starts_with(&prefix));
    }
}
