//! The observed state of one cluster and its account, as the adapters read it. It is also the
//! documented JSON snapshot that `eks-intents plan --observed` reads (every list may be left out).

use super::ids::{
    AddonName, AssociationId, ClusterRef, Namespace, PolicyArn, RoleArn, RoleName,
    ServiceAccountName, ServiceAccountRef, WorkloadKind, WorkloadName,
};
use crate::policy::PolicyDocument;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The cluster as `DescribeCluster` gives it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterInfo {
    #[serde(flatten)]
    pub cluster: ClusterRef,
    /// The OIDC issuer URL (`https://oidc.eks.<region>.amazonaws.com/id/<ID>`), needed for IRSA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc_issuer: Option<String>,
}

impl ClusterInfo {
    /// The issuer without its scheme, as IAM names OIDC providers and condition keys.
    pub fn oidc_host_path(&self) -> Option<&str> {
        self.oidc_issuer.as_deref().map(strip_scheme)
    }
}

/// `https://host/path` -> `host/path`, and no trailing slash.
pub fn strip_scheme(url: &str) -> &str {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .unwrap_or(url);
    rest.trim_end_matches('/')
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OidcProvider {
    pub arn: String,
    /// Without scheme: `oidc.eks.<region>.amazonaws.com/id/<ID>`.
    pub url: String,
    #[serde(default)]
    pub client_ids: BTreeSet<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedRole {
    pub name: RoleName,
    pub arn: RoleArn,
    pub path: String,
    pub trust_policy: PolicyDocument,
    #[serde(default)]
    pub inline_policies: BTreeMap<String, PolicyDocument>,
    /// ARNs of the managed policies attached to the role.
    #[serde(default)]
    pub attached_policies: BTreeSet<PolicyArn>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions_boundary: Option<PolicyArn>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// A customer-managed policy under the system's path (the parts of a split permission policy).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedManagedPolicy {
    pub arn: PolicyArn,
    pub name: String,
    pub path: String,
    /// The default version's document.
    pub document: PolicyDocument,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedWorkload {
    pub namespace: Namespace,
    pub name: WorkloadName,
    pub kind: WorkloadKind,
    /// The pod template's `serviceAccountName`; empty means `default`.
    #[serde(default)]
    pub service_account: String,
}

impl ObservedWorkload {
    pub fn service_account(&self) -> ServiceAccountRef {
        let name = if self.service_account.is_empty() {
            "default"
        } else {
            &self.service_account
        };
        ServiceAccountRef {
            namespace: self.namespace.clone(),
            name: ServiceAccountName::new(name),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedServiceAccount {
    pub namespace: Namespace,
    pub name: ServiceAccountName,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// True when the role annotation was written by this system's field manager, so that it
    /// may be changed or removed; an annotation of anyone else's is never overwritten.
    #[serde(default)]
    pub annotation_owned: bool,
    /// True when it carries this system's `eks-intents/role-bound` label: the system bound a
    /// role to it once, so a role annotation missing now was removed by hand (drift), not yet
    /// to be made.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bound_label: bool,
}

/// The annotation IRSA reads on a ServiceAccount.
pub const ROLE_ARN_ANNOTATION: &str = "eks.amazonaws.com/role-arn";

/// Whether writing the role annotation takes it over from the field manager that set it. A
/// plan's JSON writes it as `force: true`, or leaves it out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "bool", into = "bool")]
pub enum Takeover {
    /// Another manager's value makes the write fail (a conflict, reported): never overwritten.
    #[default]
    Never,
    /// The settings allow forcing: the annotation is taken over.
    Force,
}

impl Takeover {
    pub fn is_never(&self) -> bool {
        *self == Takeover::Never
    }
}

impl From<bool> for Takeover {
    fn from(force: bool) -> Self {
        if force {
            Takeover::Force
        } else {
            Takeover::Never
        }
    }
}

impl From<Takeover> for bool {
    fn from(takeover: Takeover) -> bool {
        takeover == Takeover::Force
    }
}

impl ObservedServiceAccount {
    pub fn role_annotation(&self) -> Option<&str> {
        self.annotations
            .get(ROLE_ARN_ANNOTATION)
            .map(String::as_str)
    }

    pub fn id(&self) -> ServiceAccountRef {
        ServiceAccountRef {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedAssociation {
    pub association_id: AssociationId,
    pub namespace: Namespace,
    pub service_account: ServiceAccountName,
    pub role_arn: RoleArn,
    /// Set when an EKS add-on owns the association: never taken over by a direct one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_arn: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// The session policy the association gives its sessions (`policy`), which EKS allows only
    /// with its session tags off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_policy: Option<PolicyDocument>,
    /// EKS sets no session tags on the association's sessions (`disableSessionTags`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub session_tags_disabled: bool,
    /// The role of another account that the association's role assumes for the pods
    /// (`targetRoleArn`): the pods get that role's credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_role_arn: Option<RoleArn>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedAddon {
    pub name: AddonName,
    /// The ServiceAccounts the add-on runs its workloads as.
    #[serde(default)]
    pub service_accounts: BTreeSet<ServiceAccountRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_role_arn: Option<RoleArn>,
    /// Pod Identity associations the add-on owns: ServiceAccount name -> role ARN.
    #[serde(default)]
    pub pod_identity_associations: BTreeMap<ServiceAccountName, RoleArn>,
    /// The managed policies EKS recommends for its ServiceAccounts, read only when the
    /// setting `addon_recommended_policies` is on: ServiceAccount name -> policy ARNs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub recommended_policies: BTreeMap<ServiceAccountName, Vec<PolicyArn>>,
}

/// Everything the planner compares the desired state with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedState {
    pub cluster: ClusterInfo,
    /// When the observation was made, in seconds since the Unix epoch: the clock of the
    /// deletion grace period (the planner reads no clock of its own).
    #[serde(default)]
    pub now: u64,
    #[serde(default)]
    pub oidc_providers: Vec<OidcProvider>,
    /// Roles under the system's path (owned or not: ownership is decided by tags).
    #[serde(default)]
    pub roles: Vec<ObservedRole>,
    #[serde(default)]
    pub managed_policies: Vec<ObservedManagedPolicy>,
    /// `None` when the cluster's workloads were not observed (plan from files alone): each
    /// workload is then taken to run as a ServiceAccount named after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workloads: Option<Vec<ObservedWorkload>>,
    #[serde(default)]
    pub service_accounts: Vec<ObservedServiceAccount>,
    #[serde(default)]
    pub pod_identity_associations: Vec<ObservedAssociation>,
    #[serde(default)]
    pub addons: Vec<ObservedAddon>,
    /// How much of the account's and the cluster's room for new roles and associations is
    /// used; unknown parts set no limit.
    #[serde(default, skip_serializing_if = "Usage::is_unknown")]
    pub usage: Usage,
    /// The accounts other than the cluster's that hold (or are to hold) the target roles of
    /// its workloads, by account id (`crate::targets`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub targets: BTreeMap<String, ObservedTarget>,
}

/// What the system holds under its path in an account other than the cluster's: the target
/// roles of the cluster's workloads there and, for IRSA, the cluster's OIDC provider there.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedTarget {
    #[serde(default)]
    pub roles: Vec<ObservedRole>,
    #[serde(default)]
    pub oidc_providers: Vec<OidcProvider>,
    /// Why the account could not be read (its role cannot be assumed, IAM refused): the
    /// workloads with target roles there are left as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// How many roles the account holds and how many Pod Identity associations the cluster has,
/// when they were read (`None`: not read, for a plan made from files alone).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles_in_account: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub associations_in_cluster: Option<usize>,
}

impl Usage {
    pub fn is_unknown(&self) -> bool {
        self.roles_in_account.is_none() && self.associations_in_cluster.is_none()
    }
}

impl ObservedState {
    /// An account and cluster with nothing in them yet.
    pub fn empty(cluster: ClusterInfo) -> Self {
        Self {
            cluster,
            now: 0,
            oidc_providers: Vec::new(),
            roles: Vec::new(),
            managed_policies: Vec::new(),
            workloads: None,
            service_accounts: Vec::new(),
            pod_identity_associations: Vec::new(),
            addons: Vec::new(),
            usage: Usage::default(),
            targets: BTreeMap::new(),
        }
    }
}
