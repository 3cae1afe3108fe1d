//! Identifiers of the domain, as newtypes so that a namespace is never passed as a role name.
//! Each holds its text shared (`Arc<str>`): a plan copies the same names into many actions,
//! tags and workload entries, and a copy is then a count, not an allocation.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Arc<str>);

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_str(SharedStr).map(Self)
            }
        }

        impl $name {
            /// One allocation, whether the text comes owned or borrowed.
            pub fn new(value: impl AsRef<str>) -> Self {
                Self(Arc::from(value.as_ref()))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(Arc::from(value))
            }
        }
    };
}

/// Reads a string straight into its shared form: one allocation, whether the text is borrowed
/// from the input or not.
struct SharedStr;

impl serde::de::Visitor<'_> for SharedStr {
    type Value = Arc<str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Arc<str>, E> {
        Ok(Arc::from(value))
    }
}

string_id!(
    /// An EKS cluster name (unique per account and region).
    ClusterName
);
impl ClusterName {
    /// EKS's rule for cluster names: 1 to 100 characters of letters, digits, `-` and `_`,
    /// starting with a letter or digit. Anything else names no cluster (and can be neither
    /// reconciled nor an SQS message group).
    pub fn is_valid(name: &str) -> bool {
        name.len() <= 100
            && name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    }
}

string_id!(
    /// A Kubernetes namespace.
    Namespace
);
string_id!(
    /// A Kubernetes ServiceAccount name, without its namespace.
    ServiceAccountName
);
string_id!(
    /// The name of a workload (Deployment, StatefulSet, ...) as the intents give it.
    WorkloadName
);
string_id!(
    /// An IAM role name (not its ARN).
    RoleName
);
string_id!(
    /// A twelve-digit AWS account id.
    AccountId
);
string_id!(
    /// An AWS region such as `eu-west-2`.
    Region
);

string_id!(
    /// An IAM role's ARN, as IAM gives it or as the system will create it.
    RoleArn
);
string_id!(
    /// A managed IAM policy's ARN: a part of a split permission policy, or a permissions
    /// boundary.
    PolicyArn
);
string_id!(
    /// The id EKS gives a Pod Identity association (`a-...`).
    AssociationId
);
string_id!(
    /// The name of an EKS add-on, such as `aws-ebs-csi-driver`.
    AddonName
);

/// Compared with plain strings as what they hold, and looked up by `&str` in maps and sets.
macro_rules! str_like {
    ($($name:ident),*) => {$(
        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                *self.0 == *other
            }
        }
        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                *self.0 == **other
            }
        }
        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    )*};
}
str_like!(RoleArn, PolicyArn, AssociationId, AddonName);

impl RoleName {
    /// The key IAM tells roles apart by: role names are unique regardless of case.
    pub fn key(&self) -> RoleKey {
        RoleKey(self.0.to_ascii_lowercase())
    }
}

/// A role name as IAM compares it (case-insensitively): the key of every index of roles.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RoleKey(String);

/// The kinds of workload whose pods can run as a ServiceAccount.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
    Job,
    CronJob,
    Pod,
}

impl WorkloadKind {
    pub const ALL: [WorkloadKind; 6] = [
        WorkloadKind::Deployment,
        WorkloadKind::StatefulSet,
        WorkloadKind::DaemonSet,
        WorkloadKind::Job,
        WorkloadKind::CronJob,
        WorkloadKind::Pod,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
            WorkloadKind::Job => "Job",
            WorkloadKind::CronJob => "CronJob",
            WorkloadKind::Pod => "Pod",
        }
    }

    /// Parses a kind as Otterize writes it; matching ignores case, as Otterize does.
    pub fn parse(value: &str) -> Option<WorkloadKind> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(value))
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A workload as the intents name it. `kind` is absent when the intents leave it out; it then
/// matches a workload of that name of any kind.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WorkloadRef {
    pub namespace: Namespace,
    pub name: WorkloadName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<WorkloadKind>,
}

impl fmt::Display for WorkloadRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            Some(kind) => write!(f, "{}/{} ({kind})", self.namespace, self.name),
            None => write!(f, "{}/{}", self.namespace, self.name),
        }
    }
}

/// A ServiceAccount: the unit that AWS credentials attach to, hence the unit of one role.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ServiceAccountRef {
    pub namespace: Namespace,
    pub name: ServiceAccountName,
}

impl fmt::Display for ServiceAccountRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The cluster a reconcile is about: enough to build every ARN and trust condition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterRef {
    pub name: ClusterName,
    pub account: AccountId,
    pub region: Region,
    /// `aws`, `aws-cn` or `aws-us-gov`; derived from the region when not given.
    #[serde(default)]
    pub partition: String,
}

impl ClusterRef {
    pub fn new(name: ClusterName, account: AccountId, region: Region) -> Self {
        let partition = partition_of(region.as_str()).to_owned();
        Self {
            name,
            account,
            region,
            partition,
        }
    }

    pub fn partition(&self) -> &str {
        if self.partition.is_empty() {
            partition_of(self.region.as_str())
        } else {
            &self.partition
        }
    }

    /// Reads `arn:<partition>:eks:<region>:<account>:cluster/<name>`; `None` for anything else,
    /// a name EKS would refuse included.
    pub fn from_arn(arn: &str) -> Option<ClusterRef> {
        let [_, partition, service, region, account, resource] = arn_parts(arn)?;
        let name = resource.strip_prefix("cluster/")?;
        if service != "eks" || partition.is_empty() || region.is_empty() || account.is_empty() {
            return None;
        }
        if !ClusterName::is_valid(name) {
            return None;
        }
        Some(ClusterRef {
            name: ClusterName::new(name),
            account: AccountId::new(account),
            region: Region::new(region),
            partition: partition.to_owned(),
        })
    }

    /// `arn:<partition>:eks:<region>:<account>:cluster/<name>`
    pub fn arn(&self) -> String {
        [
            "arn:",
            self.partition(),
            ":eks:",
            self.region.as_str(),
            ":",
            self.account.as_str(),
            ":cluster/",
            self.name.as_str(),
        ]
        .concat()
    }
}

/// The six parts of `arn:<partition>:<service>:<region>:<account>:<resource>`, split at the
/// first five colons (a resource keeps its own); `None` for fewer parts. Nothing is checked.
pub fn arn_parts(arn: &str) -> Option<[&str; 6]> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    parts.try_into().ok()
}

/// The partition a region belongs to.
pub fn partition_of(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_arn_reads_back_as_the_cluster_it_names() {
        let cluster = ClusterRef::new(
            ClusterName::new("demo"),
            AccountId::new("123456789012"),
            Region::new("cn-north-1"),
        );
        assert_eq!(ClusterRef::from_arn(&cluster.arn()), Some(cluster));
        for bad in [
            "",
            "arn:aws:iam::123456789012:role/demo",
            "arn:aws:eks:eu-west-2::cluster/demo",
            "arn:aws:eks:eu-west-2:123456789012:cluster/",
            "arn:aws:eks:eu-west-2:123456789012:nodegroup/demo/ng/1",
            "arn:aws:eks:eu-west-2:123456789012:cluster/demo/extra",
            "arn:aws:eks:eu-west-2:123456789012:cluster/-demo",
        ] {
            assert_eq!(ClusterRef::from_arn(bad), None, "{bad}");
        }
    }

    #[test]
    fn cluster_names_follow_the_eks_rule() {
        assert!(ClusterName::is_valid("demo"));
        assert!(ClusterName::is_valid("prod_eu-1"));
        assert!(ClusterName::is_valid(&"a".repeat(100)));
        for bad in ["", "-demo", "de mo", "de.mo", "démo"] {
            assert!(!ClusterName::is_valid(bad), "{bad}");
        }
        assert!(!ClusterName::is_valid(&"a".repeat(101)));
    }
}
