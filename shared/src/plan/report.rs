//! What a plan says per workload and per orphaned role: what it will do and why. The status
//! report and the CLI's text output are built from this.

use super::action::Binding;
use super::problem::Problem;
use crate::model::{
    Namespace, RoleArn, RoleName, ServiceAccountRef, WorkloadKind, WorkloadName, WorkloadRef,
};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use std::fmt::Display;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum WorkloadState {
    /// Role and binding are as declared; nothing to do.
    Ready,
    /// The plan holds changes for this workload's role or binding.
    Changing,
    /// Waiting on the cluster: the workload or its ServiceAccount does not exist yet.
    Pending,
    /// Its source fails to read: the role is left exactly as it is.
    Held,
    /// This workload cannot be reconciled; the message says why and what to do.
    Error,
}

/// Which workload, the ServiceAccount it runs as, and the role it gets and how: what a
/// workload's entry in the plan and in the status report (`status::WorkloadStatus`) share.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadIdentity {
    pub namespace: Namespace,
    pub workload: WorkloadName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<WorkloadKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<ServiceAccountRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<RoleArn>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding: Option<Binding>,
    /// The role of another account the workload's grants there are on (cross-account access).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_role_arn: Option<RoleArn>,
}

/// A workload's entry in the plan. Written, never read back: the plan's outputs are made
/// from it, and a plan is always made anew. In JSON, one object: the identity's fields beside
/// the others, every key in sorted order (see the `Serialize` impl).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadPlan {
    pub identity: WorkloadIdentity,
    pub role: Option<RoleName>,
    pub state: WorkloadState,
    /// Why the workload stands where it does; written as its `message`, in words.
    pub outcome: WorkloadOutcome,
    /// How many actions of the plan belong to this workload's role.
    pub actions: usize,
    /// Whether its running pods lack the credentials of a binding this plan makes.
    pub restart: Restart,
}

/// Every key in sorted order, at every depth, as a `serde_json::Value` of the entry would
/// have them: the plan's JSON is written straight from its entries, one per workload of a
/// fleet. Absent options are left out.
impl Serialize for WorkloadPlan {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let WorkloadPlan {
            identity:
                WorkloadIdentity {
                    namespace,
                    workload,
                    kind,
                    service_account,
                    role_arn,
                    binding,
                    target_role_arn,
                },
            role,
            state,
            outcome,
            actions,
            restart,
        } = self;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("actions", actions)?;
        if let Some(binding) = binding {
            map.serialize_entry("binding", &SortedBinding(binding))?;
        }
        if let Some(kind) = kind {
            map.serialize_entry("kind", kind)?;
        }
        map.serialize_entry("message", &InWords(outcome))?;
        map.serialize_entry("namespace", namespace)?;
        map.serialize_entry("restart", restart)?;
        if let Some(role) = role {
            map.serialize_entry("role", role)?;
        }
        if let Some(role_arn) = role_arn {
            map.serialize_entry("role_arn", role_arn)?;
        }
        if let Some(service_account) = service_account {
            map.serialize_entry("service_account", &SortedServiceAccount(service_account))?;
        }
        map.serialize_entry("state", state)?;
        if let Some(target_role_arn) = target_role_arn {
            map.serialize_entry("target_role_arn", target_role_arn)?;
        }
        map.serialize_entry("workload", workload)?;
        map.end()
    }
}

/// A value written as a string, in words.
struct InWords<'a, T>(&'a T);

impl<T: Display> Serialize for InWords<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self.0)
    }
}

/// A binding with its keys sorted: `addon` before the tag, `kind`.
struct SortedBinding<'a>(&'a Binding);

impl Serialize for SortedBinding<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        let kind = match self.0 {
            Binding::ServiceAccountAnnotation => "service-account-annotation",
            Binding::PodIdentityAssociation => "pod-identity-association",
            Binding::Addon { addon } => {
                map.serialize_entry("addon", addon)?;
                "addon"
            }
        };
        map.serialize_entry("kind", kind)?;
        map.end()
    }
}

/// A ServiceAccount with its keys sorted: `name` before `namespace`.
struct SortedServiceAccount<'a>(&'a ServiceAccountRef);

impl Serialize for SortedServiceAccount<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        super::action::name_first(self.0, serializer)
    }
}

impl WorkloadPlan {
    /// Its outcome in words, as the plan's outputs and the status report show it.
    pub fn message(&self) -> String {
        self.outcome.to_string()
    }
}

/// Why a workload stands where it does, as data; `crate::words` words it (`Display`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorkloadOutcome {
    /// Role and binding are as declared.
    AsDeclared,
    /// This many changes are planned for the workload's role and binding.
    Changes(usize),
    /// The cluster does not run the workload (yet), so its ServiceAccount is unknown.
    NotObservedYet(WorkloadRef),
    /// What stops or delays the workload's role.
    Problem(Problem),
}

/// Pods get the credentials of a binding only when they start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Restart {
    /// The binding does not change.
    #[default]
    NotNeeded,
    /// The binding changes; pods started before must be restarted by someone.
    Needed,
    /// The binding changes and the plan rolls the pods.
    Planned,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum OrphanState {
    /// Found without intents: marked now, deleted after the grace period.
    Marked,
    /// Marked earlier; the grace period has not passed.
    Waiting,
    /// Grace period over: unbound and deleted by this plan.
    Deleting,
    /// Grace period over, but more roles are due than the deletion cap allows in one run: the
    /// breaker holds every one of them, marked, until the cap is raised or the intents return.
    HeldByBreaker,
    /// Grace period over with soft delete on: unbound, and the role kept.
    Unbound,
    /// Grace period over, but an account that may hold its target roles cannot be read: kept,
    /// marked, until it can.
    TargetsUnread,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrphanPlan {
    pub role: RoleName,
    pub arn: RoleArn,
    pub state: OrphanState,
    pub message: String,
}

/// The deletion breaker, tripped: more roles were due for deletion in one run than the cap.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletionBreaker {
    /// Roles whose grace period is over.
    pub due: usize,
    /// The most roles one run may delete (or, with soft delete, unbind).
    pub cap: usize,
}

/// What a hand change can alter, as the plan finds and repairs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DriftKind {
    InlinePolicy,
    ManagedPart,
    Trust,
    Boundary,
    Tags,
    RoleMissing,
    Annotation,
    PodIdentityAssociation,
    AddonRole,
    OidcProvider,
}

impl DriftKind {
    pub const ALL: [DriftKind; 10] = [
        DriftKind::InlinePolicy,
        DriftKind::ManagedPart,
        DriftKind::Trust,
        DriftKind::Boundary,
        DriftKind::Tags,
        DriftKind::RoleMissing,
        DriftKind::Annotation,
        DriftKind::PodIdentityAssociation,
        DriftKind::AddonRole,
        DriftKind::OidcProvider,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DriftKind::InlinePolicy => "inline-policy",
            DriftKind::ManagedPart => "managed-part",
            DriftKind::Trust => "trust",
            DriftKind::Boundary => "boundary",
            DriftKind::Tags => "tags",
            DriftKind::RoleMissing => "role-missing",
            DriftKind::Annotation => "annotation",
            DriftKind::PodIdentityAssociation => "pod-identity-association",
            DriftKind::AddonRole => "addon-role",
            DriftKind::OidcProvider => "oidc-provider",
        }
    }
}

/// One kind of drift found on one role (or, for the OIDC provider, on the cluster).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<RoleName>,
    pub kind: DriftKind,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AddonName;
    use serde_json::json;

    fn entry(identity: WorkloadIdentity, role: Option<RoleName>) -> WorkloadPlan {
        WorkloadPlan {
            identity,
            role,
            state: WorkloadState::Changing,
            outcome: WorkloadOutcome::Changes(3),
            actions: 3,
            restart: Restart::Needed,
        }
    }

    /// Written straight, an entry has the fields and the key order of its `Value`.
    #[test]
    fn entries_serialize_with_sorted_keys() {
        let bare = WorkloadIdentity {
            namespace: "team".into(),
            workload: "worker".into(),
            kind: None,
            service_account: None,
            role_arn: None,
            binding: None,
            target_role_arn: None,
        };
        let full = |binding| WorkloadIdentity {
            kind: Some(WorkloadKind::Deployment),
            service_account: Some(ServiceAccountRef {
                namespace: "team".into(),
                name: "worker".into(),
            }),
            role_arn: Some(RoleArn::new("arn:aws:iam::1:role/r")),
            binding: Some(binding),
            target_role_arn: None,
            ..bare.clone()
        };
        let entries = [
            entry(bare.clone(), None),
            entry(full(Binding::ServiceAccountAnnotation), Some("r".into())),
            entry(full(Binding::PodIdentityAssociation), None),
            entry(
                full(Binding::Addon {
                    addon: AddonName::new("aws-ebs-csi-driver"),
                }),
                Some("r".into()),
            ),
        ];
        for entry in &entries {
            let value = serde_json::to_value(entry).unwrap();
            assert_eq!(
                serde_json::to_string_pretty(entry).unwrap(),
                serde_json::to_string_pretty(&value).unwrap()
            );
        }
        let message = entries[3].outcome.to_string();
        assert_eq!(
            serde_json::to_value(&entries[3]).unwrap(),
            json!({
                "namespace": "team",
                "workload": "worker",
                "kind": "Deployment",
                "service_account": {"namespace": "team", "name": "worker"},
                "role_arn": "arn:aws:iam::1:role/r",
                "binding": {"kind": "addon", "addon": "aws-ebs-csi-driver"},
                "role": "r",
                "state": "Changing",
                "message": message,
                "actions": 3,
                "restart": "Needed",
            })
        );
        assert_eq!(
            serde_json::to_value(&entries[0]).unwrap(),
            json!({
                "namespace": "team",
                "workload": "worker",
                "state": "Changing",
                "message": message,
                "actions": 3,
                "restart": "Needed",
            })
        );
    }
}
