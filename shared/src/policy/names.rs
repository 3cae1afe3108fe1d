//! Names, paths and tags of what the system owns in IAM, within IAM's rules: role names of at
//! most 64 characters of `[\w+=,.@-]`, tag values of at most 256 characters.

use crate::model::{
    ClusterName, ClusterRef, PolicyArn, RoleArn, RoleName, ServiceAccountRef, WorkloadName,
};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

pub const ROLE_NAME_MAX: usize = 64;
pub const TAG_VALUE_MAX: usize = 256;
/// Every tag key the system writes starts with this; tags without it belong to someone else
/// and are never touched.
pub const TAG_PREFIX: &str = "eks-intents/";
pub const OWNER_TAG: &str = "eks-intents/managed-by";
pub const OWNER_VALUE: &str = "eks-intents";
pub const CLUSTER_TAG: &str = "eks-intents/cluster";
pub const NAMESPACE_TAG: &str = "eks-intents/namespace";
pub const SERVICE_ACCOUNT_TAG: &str = "eks-intents/service-account";
pub const WORKLOADS_TAG: &str = "eks-intents/workloads";
/// `eks-intents/bundle`, then `eks-intents/bundle-2` ... for a role fed by several bundles.
pub const BUNDLE_TAG: &str = "eks-intents/bundle";
/// Set when more bundles feed a role than there are bundle tags.
pub const BUNDLES_OVERFLOW_TAG: &str = "eks-intents/bundles-overflow";
/// Seconds since the epoch when the role's intents were found gone.
pub const ORPHANED_TAG: &str = "eks-intents/orphaned-since";
pub const MAX_BUNDLE_TAGS: usize = 5;
/// A digest of everything declared for the role (trust, permissions, boundary, the other
/// tags), written with them. While it matches what the intents give now, any difference found
/// on the role or its binding was made by hand: drift, not a change of intents.
pub const DECLARED_TAG: &str = "eks-intents/declared";
/// The one inline policy the system writes on each role.
pub const INLINE_POLICY_NAME: &str = "eks-intents";

/// The role of one ServiceAccount: `<cluster>.<namespace>.<serviceaccount>`. Neither cluster
/// names nor namespaces contain dots, so the name is unambiguous. When it does not fit in 64
/// characters (or holds a character IAM refuses), it is cut and ends in `@` and a hash of the
/// whole: `@` appears in no Kubernetes or cluster name, so a cut name never equals a whole one.
pub fn role_name(cluster: &ClusterName, service_account: &ServiceAccountRef) -> RoleName {
    let readable = [
        cluster.as_str(),
        ".",
        service_account.namespace.as_str(),
        ".",
        service_account.name.as_str(),
    ]
    .concat();
    if readable.len() <= ROLE_NAME_MAX && readable.chars().all(is_iam_name_char) {
        return RoleName::new(readable);
    }
    let hash = short_hash(&readable, 10);
    let keep = ROLE_NAME_MAX - hash.len() - 1;
    let prefix: String = readable
        .chars()
        .map(|c| if is_iam_name_char(c) { c } else { '_' })
        .take(keep)
        .collect();
    RoleName::new(format!("{prefix}@{hash}"))
}

fn is_iam_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '=' | ',' | '.' | '@' | '-')
}

/// The IAM path of everything the system owns for one cluster: `<base><cluster>/`.
pub fn cluster_path(base: &str, cluster: &ClusterName) -> String {
    let base = base.trim_end_matches('/');
    let base = if base.starts_with('/') {
        base.to_owned()
    } else {
        format!("/{base}")
    };
    format!("{base}/{cluster}/")
}

pub fn role_arn(cluster: &ClusterRef, path: &str, name: &RoleName) -> RoleArn {
    RoleArn::new(
        [
            "arn:",
            cluster.partition(),
            ":iam::",
            cluster.account.as_str(),
            ":role",
            path,
            name.as_str(),
        ]
        .concat(),
    )
}

/// The managed policy holding part `part` (1-based) of a split permission policy.
pub fn managed_policy_name(role: &RoleName, part: usize) -> String {
    format!("{role}.part{part}")
}

pub fn managed_policy_arn(cluster: &ClusterRef, path: &str, name: &str) -> PolicyArn {
    PolicyArn::new(format!(
        "arn:{}:iam::{}:policy{}{}",
        cluster.partition(),
        cluster.account,
        path,
        name
    ))
}

/// The hex of the first `len / 2` bytes of SHA-256.
pub fn short_hash(text: &str, len: usize) -> String {
    short_hash_of(&[text], len)
}

/// [`short_hash`] of the parts written one after another, without joining them first.
pub fn short_hash_of(parts: &[&str], len: usize) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    let mut out = String::with_capacity(len + 1);
    for byte in digest.iter() {
        if out.len() >= len {
            break;
        }
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    out.truncate(len);
    out
}

/// A tag value within IAM's rules: letters, digits, spaces and `_.:/=+-@`, at most 256
/// characters. Other characters become `_`; a value too long is cut and ends in a hash.
pub fn tag_value(raw: &str) -> String {
    // Most values (names of namespaces, ServiceAccounts, bundles) are already clean.
    if is_clean_tag_value(raw) {
        return raw.to_owned();
    }
    let clean: String = raw
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == ' ' || "_.:/=+-@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.chars().count() <= TAG_VALUE_MAX {
        return clean;
    }
    let hash = short_hash(raw, 12);
    let keep = TAG_VALUE_MAX - hash.len() - 1;
    let prefix: String = clean.chars().take(keep).collect();
    format!("{prefix}+{hash}")
}

/// A value [`tag_value`] keeps as it is: short enough, and only ASCII of the allowed kinds.
fn is_clean_tag_value(raw: &str) -> bool {
    raw.len() <= TAG_VALUE_MAX
        && raw.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b' ' | b'_' | b'.' | b':' | b'/' | b'=' | b'+' | b'-' | b'@'
                )
        })
}

/// The tags that make anything the system creates its own, for this cluster (`ownership`
/// reads them back): every role, managed policy, association and OIDC provider carries them.
pub fn ownership_tags(cluster: &ClusterRef) -> BTreeMap<String, String> {
    BTreeMap::from([
        (OWNER_TAG.to_owned(), OWNER_VALUE.to_owned()),
        (CLUSTER_TAG.to_owned(), cluster_tag_value(cluster)),
    ])
}

/// The value of `CLUSTER_TAG`: the cluster's ARN as a tag value (made once, not copied).
fn cluster_tag_value(cluster: &ClusterRef) -> String {
    let arn = cluster.arn();
    if is_clean_tag_value(&arn) {
        arn
    } else {
        tag_value(&arn)
    }
}

/// The ownership and identity tags of a workload's role.
pub fn role_tags<'a>(
    cluster: &ClusterRef,
    service_account: &ServiceAccountRef,
    workloads: impl IntoIterator<Item = &'a WorkloadName>,
    bundles: &BTreeSet<String>,
) -> BTreeMap<String, String> {
    let mut tags = ownership_tags(cluster);
    tags.insert(
        NAMESPACE_TAG.to_owned(),
        tag_value(service_account.namespace.as_str()),
    );
    tags.insert(
        SERVICE_ACCOUNT_TAG.to_owned(),
        tag_value(service_account.name.as_str()),
    );
    tags.insert(WORKLOADS_TAG.to_owned(), joined_within_limit(workloads));
    for (i, bundle) in bundles.iter().take(MAX_BUNDLE_TAGS).enumerate() {
        tags.insert(bundle_tag_key(i), tag_value(bundle));
    }
    if bundles.len() > MAX_BUNDLE_TAGS {
        tags.insert(BUNDLES_OVERFLOW_TAG.to_owned(), bundles.len().to_string());
    }
    tags
}

fn bundle_tag_key(index: usize) -> String {
    if index == 0 {
        BUNDLE_TAG.to_owned()
    } else {
        format!("{BUNDLE_TAG}-{}", index + 1)
    }
}

/// Space-separated names, as many as fit, then `+N` for the rest.
fn joined_within_limit<'a>(names: impl IntoIterator<Item = &'a WorkloadName>) -> String {
    let names: Vec<&str> = names.into_iter().map(WorkloadName::as_str).collect();
    let mut out = String::new();
    for (i, name) in names.iter().enumerate() {
        let rest = names.len() - i;
        let separator = usize::from(!out.is_empty());
        let room_for_more = if rest > 1 { 8 } else { 0 };
        if out.len() + separator + name.len() + room_for_more > TAG_VALUE_MAX {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(&format!("+{rest}"));
            return out;
        }
        if separator == 1 {
            out.push(' ');
        }
        out.push_str(&tag_value(name));
    }
    out
}

/// Who a role belongs to, by its tags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ownership {
    /// Ours, for this cluster.
    Ours,
    /// Ours, but for another cluster (same name in another region or account).
    OtherCluster(String),
    /// Not created by this system: never modified, never deleted.
    Foreign,
}

pub fn ownership(tags: &BTreeMap<String, String>, cluster: &ClusterRef) -> Ownership {
    if tags.get(OWNER_TAG).map(String::as_str) != Some(OWNER_VALUE) {
        return Ownership::Foreign;
    }
    match tags.get(CLUSTER_TAG) {
        Some(arn) if *arn == cluster_tag_value(cluster) => Ownership::Ours,
        Some(other) => Ownership::OtherCluster(other.clone()),
        None => Ownership::Foreign,
    }
}

/// The bundles a role's tags say it was fed by (tag-safe forms), and whether there were more
/// than the tags hold.
pub fn tagged_bundles(tags: &BTreeMap<String, String>) -> (Vec<&str>, bool) {
    let bundles = (0..MAX_BUNDLE_TAGS)
        .filter_map(|i| tags.get(&bundle_tag_key(i)).map(String::as_str))
        .collect();
    (bundles, tags.contains_key(BUNDLES_OVERFLOW_TAG))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AccountId, Region};

    #[test]
    fn a_hash_of_parts_is_the_hash_of_their_text_and_clean_tag_values_stay_as_they_are() {
        assert_eq!(
            short_hash_of(&["ab", "", "c\nd"], 16),
            short_hash("abc\nd", 16)
        );
        for clean in ["team-a", "intents/demo/jokes.yaml", "a b_c.d:e/f=g+h-i@j"] {
            assert_eq!(tag_value(clean), clean);
        }
        assert_eq!(tag_value("a,b;c"), "a_b_c");
        assert_eq!(tag_value("café"), "café");
        let long = "x".repeat(300);
        assert_eq!(tag_value(&long).chars().count(), TAG_VALUE_MAX);
    }

    /// The hash in long role names and tag values is the hex of SHA-256, cut: names made
    /// before stay the same names.
    #[test]
    fn short_hash_is_the_start_of_the_sha256_hex() {
        // SHA-256("abc") = ba7816bf 8f01cfea ...
        assert_eq!(short_hash("abc", 10), "ba7816bf8f");
        assert_eq!(short_hash("abc", 3), "ba7");
        assert_eq!(short_hash("abc", 0), "");
    }

    fn sa(ns: &str, name: &str) -> ServiceAccountRef {
        ServiceAccountRef {
            namespace: ns.into(),
            name: name.into(),
        }
    }

    #[test]
    fn short_names_are_readable() {
        assert_eq!(
            role_name(&"demo".into(), &sa("ack-system", "ack-dynamodb")).as_str(),
            "demo.ack-system.ack-dynamodb"
        );
    }

    #[test]
    fn long_names_are_cut_with_a_hash_and_stay_distinct() {
        let long = "a".repeat(80);
        let a = role_name(&"demo".into(), &sa("team", &format!("{long}-x")));
        let b = role_name(&"demo".into(), &sa("team", &format!("{long}-y")));
        assert_eq!(a.as_str().len(), ROLE_NAME_MAX);
        assert!(a.as_str().starts_with("demo.team.aaaa"));
        assert!(a.as_str().contains('@'));
        assert_ne!(a, b);
        assert_eq!(
            a,
            role_name(&"demo".into(), &sa("team", &format!("{long}-x")))
        );
    }

    #[test]
    fn dots_make_the_split_unambiguous() {
        let a = role_name(&"c".into(), &sa("a-b", "c"));
        let b = role_name(&"c".into(), &sa("a", "b-c"));
        assert_ne!(a, b);
    }

    #[test]
    fn tag_values_fit_iam_rules() {
        assert_eq!(
            tag_value("intents/demo/team a/x,y~z.yaml"),
            "intents/demo/team a/x_y_z.yaml"
        );
        let long = tag_value(&"k".repeat(300));
        assert_eq!(long.chars().count(), TAG_VALUE_MAX);
        assert_ne!(long, tag_value(&"k".repeat(301)));
    }

    #[test]
    fn workloads_tag_stays_within_limit() {
        let names: Vec<WorkloadName> = (0..40)
            .map(|i| WorkloadName::new(format!("worker-{i:03}-abcdef")))
            .collect();
        let value = joined_within_limit(&names);
        assert!(value.len() <= TAG_VALUE_MAX, "{}", value.len());
        assert!(value.starts_with("worker-000-abcdef worker-001-abcdef"));
        assert!(value.ends_with(&format!("+{}", 40 - value.split(' ').count() + 1)));
    }

    #[test]
    fn ownership_needs_owner_and_cluster_tags() {
        let cluster = ClusterRef::new("demo".into(), AccountId::new("1"), Region::new("eu-west-2"));
        let other = ClusterRef::new("demo".into(), AccountId::new("1"), Region::new("us-east-1"));
        let tags = role_tags(
            &cluster,
            &sa("n", "s"),
            [&WorkloadName::new("w")],
            &BTreeSet::new(),
        );
        assert_eq!(ownership(&tags, &cluster), Ownership::Ours);
        assert!(matches!(
            ownership(&tags, &other),
            Ownership::OtherCluster(_)
        ));
        assert_eq!(ownership(&BTreeMap::new(), &cluster), Ownership::Foreign);
    }

    #[test]
    fn bundles_beyond_the_tag_budget_are_flagged() {
        let cluster = ClusterRef::new("demo".into(), AccountId::new("1"), Region::new("eu-west-2"));
        let bundles: BTreeSet<String> = (0..7).map(|i| format!("intents/demo/b{i}.yaml")).collect();
        let tags = role_tags(&cluster, &sa("n", "s"), [], &bundles);
        let (tagged, overflow) = tagged_bundles(&tags);
        assert_eq!(tagged.len(), MAX_BUNDLE_TAGS);
        assert!(overflow);
        assert!(tags.len() <= 50);
    }
}
