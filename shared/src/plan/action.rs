//! The actions of a plan. Each is fully specified (names, ARNs, whole documents), so the
//! executor makes no choices.

use crate::model::{
    AddonName, AssociationId, Namespace, PolicyArn, RoleArn, RoleName, ServiceAccountRef, Takeover,
    WorkloadKind, WorkloadName,
};
use crate::policy::PolicyDocument;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// How a role reaches its workload's pods.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Binding {
    /// `eks.amazonaws.com/role-arn` on the ServiceAccount (IRSA).
    ServiceAccountAnnotation,
    /// An EKS Pod Identity association.
    PodIdentityAssociation,
    /// The role setting of the EKS add-on that owns the ServiceAccount.
    Addon { addon: AddonName },
}

impl fmt::Display for Binding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Binding::ServiceAccountAnnotation => f.write_str("annotation"),
            Binding::PodIdentityAssociation => f.write_str("pod-identity"),
            Binding::Addon { addon } => write!(f, "add-on {addon}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    CreateOidcProvider {
        /// `https://...`, as IAM takes it.
        url: String,
        client_ids: Vec<String>,
        tags: BTreeMap<String, String>,
    },
    AddOidcClientId {
        provider_arn: String,
        client_id: String,
    },
    CreateRole {
        role: RoleName,
        path: String,
        arn: RoleArn,
        description: String,
        trust_policy: PolicyDocument,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        permissions_boundary: Option<PolicyArn>,
        tags: BTreeMap<String, String>,
    },
    UpdateTrustPolicy {
        role: RoleName,
        trust_policy: PolicyDocument,
    },
    PutPermissionsBoundary {
        role: RoleName,
        permissions_boundary: PolicyArn,
    },
    TagRole {
        role: RoleName,
        tags: BTreeMap<String, String>,
    },
    UntagRole {
        role: RoleName,
        keys: Vec<String>,
    },
    PutInlinePolicy {
        role: RoleName,
        policy_name: String,
        document: PolicyDocument,
    },
    DeleteInlinePolicy {
        role: RoleName,
        policy_name: String,
    },
    CreateManagedPolicy {
        role: RoleName,
        name: String,
        path: String,
        arn: PolicyArn,
        document: PolicyDocument,
        tags: BTreeMap<String, String>,
    },
    /// A new default version; older versions are pruned by the executor.
    UpdateManagedPolicy {
        role: RoleName,
        arn: PolicyArn,
        document: PolicyDocument,
    },
    AttachManagedPolicy {
        role: RoleName,
        policy_arn: PolicyArn,
    },
    DetachManagedPolicy {
        role: RoleName,
        policy_arn: PolicyArn,
    },
    DeleteManagedPolicy {
        role: RoleName,
        arn: PolicyArn,
    },
    AnnotateServiceAccount {
        role: RoleName,
        service_account: ServiceAccountRef,
        role_arn: RoleArn,
        /// Take the annotation over from the manager that set it (settings allow forcing).
        #[serde(default, skip_serializing_if = "Takeover::is_never")]
        force: Takeover,
    },
    RemoveServiceAccountAnnotation {
        role: RoleName,
        service_account: ServiceAccountRef,
    },
    /// With a session policy, EKS's session tags are turned off (EKS requires it).
    CreatePodIdentityAssociation {
        role: RoleName,
        service_account: ServiceAccountRef,
        role_arn: RoleArn,
        tags: BTreeMap<String, String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_policy: Option<PolicyDocument>,
    },
    /// Points the association at the role and sets its session policy (session tags off). An
    /// association whose session policy is to go is deleted and created again instead.
    UpdatePodIdentityAssociation {
        role: RoleName,
        association_id: AssociationId,
        service_account: ServiceAccountRef,
        role_arn: RoleArn,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_policy: Option<PolicyDocument>,
    },
    DeletePodIdentityAssociation {
        role: RoleName,
        association_id: AssociationId,
        service_account: ServiceAccountRef,
    },
    /// IRSA: the add-on's one `serviceAccountRoleArn` (`None` removes it). The role trusts
    /// every ServiceAccount of the add-on that has intents; `service_account` is the first.
    SetAddonRole {
        role: RoleName,
        addon: AddonName,
        service_account: ServiceAccountRef,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        role_arn: Option<RoleArn>,
    },
    /// Pod Identity: the add-on's whole association map (ServiceAccount name -> role ARN), as
    /// EKS replaces it whole on every update. Planned once per add-on, so the executor reads
    /// nothing at apply time and two roles never race on the add-on. `role` is the first role
    /// the change concerns (the one a failure is reported on).
    SetAddonAssociations {
        role: RoleName,
        addon: AddonName,
        associations: BTreeMap<String, RoleArn>,
    },
    /// Rolls the workload's pods (pod template annotation `eks-intents/restarted-at`) so they
    /// start with the new binding's credentials.
    RestartWorkload {
        role: RoleName,
        namespace: Namespace,
        kind: WorkloadKind,
        name: WorkloadName,
        restarted_at: u64,
    },
    /// Tags the role with the time its intents were found gone; deleted after the grace period.
    MarkRoleForDeletion {
        role: RoleName,
        since: u64,
    },
    /// Deletes the role itself; its policies and bindings were removed by the steps before.
    DeleteRole {
        role: RoleName,
    },
}

impl Action {
    /// The role this action belongs to: actions of one role run in order, roles in parallel.
    /// `None` for cluster-wide actions, which run before all others.
    pub fn role(&self) -> Option<&RoleName> {
        match self {
            Action::CreateOidcProvider { .. } | Action::AddOidcClientId { .. } => None,
            Action::CreateRole { role, .. }
            | Action::UpdateTrustPolicy { role, .. }
            | Action::PutPermissionsBoundary { role, .. }
            | Action::TagRole { role, .. }
            | Action::UntagRole { role, .. }
            | Action::PutInlinePolicy { role, .. }
            | Action::DeleteInlinePolicy { role, .. }
            | Action::CreateManagedPolicy { role, .. }
            | Action::UpdateManagedPolicy { role, .. }
            | Action::AttachManagedPolicy { role, .. }
            | Action::DetachManagedPolicy { role, .. }
            | Action::DeleteManagedPolicy { role, .. }
            | Action::AnnotateServiceAccount { role, .. }
            | Action::RemoveServiceAccountAnnotation { role, .. }
            | Action::CreatePodIdentityAssociation { role, .. }
            | Action::UpdatePodIdentityAssociation { role, .. }
            | Action::DeletePodIdentityAssociation { role, .. }
            | Action::SetAddonRole { role, .. }
            | Action::SetAddonAssociations { role, .. }
            | Action::RestartWorkload { role, .. }
            | Action::MarkRoleForDeletion { role, .. }
            | Action::DeleteRole { role } => Some(role),
        }
    }

    /// `+` creates, `~` changes, `-` removes: the sign shown in the text plan.
    pub fn sign(&self) -> char {
        match self {
            Action::CreateOidcProvider { .. }
            | Action::CreateRole { .. }
            | Action::PutInlinePolicy { .. }
            | Action::CreateManagedPolicy { .. }
            | Action::AttachManagedPolicy { .. }
            | Action::AnnotateServiceAccount { .. }
            | Action::CreatePodIdentityAssociation { .. } => '+',
            Action::DeleteInlinePolicy { .. }
            | Action::DetachManagedPolicy { .. }
            | Action::DeleteManagedPolicy { .. }
            | Action::RemoveServiceAccountAnnotation { .. }
            | Action::DeletePodIdentityAssociation { .. }
            | Action::DeleteRole { .. } => '-',
            Action::SetAddonRole { role_arn: None, .. } => '-',
            _ => '~',
        }
    }

    /// True for writes to the Kubernetes API (the rest go to IAM or EKS).
    pub fn is_kubernetes(&self) -> bool {
        matches!(
            self,
            Action::AnnotateServiceAccount { .. }
                | Action::RemoveServiceAccountAnnotation { .. }
                | Action::RestartWorkload { .. }
        )
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::CreateOidcProvider { url, .. } => write!(f, "create OIDC provider {url}"),
            Action::AddOidcClientId {
                provider_arn,
                client_id,
            } => write!(f, "add client id {client_id} to {provider_arn}"),
            Action::CreateRole { arn, .. } => write!(f, "create role {arn}"),
            Action::UpdateTrustPolicy { role, .. } => write!(f, "update trust policy of {role}"),
            Action::PutPermissionsBoundary {
                role,
                permissions_boundary,
            } => write!(
                f,
                "set permissions boundary of {role} to {permissions_boundary}"
            ),
            Action::TagRole { role, tags } => {
                let keys: Vec<&str> = tags.keys().map(String::as_str).collect();
                write!(f, "tag role {role}: {}", keys.join(", "))
            }
            Action::UntagRole { role, keys } => {
                write!(f, "untag role {role}: {}", keys.join(", "))
            }
            Action::PutInlinePolicy {
                role, policy_name, ..
            } => write!(f, "put inline policy {policy_name} on {role}"),
            Action::DeleteInlinePolicy { role, policy_name } => {
                write!(f, "delete inline policy {policy_name} of {role}")
            }
            Action::CreateManagedPolicy { arn, .. } => write!(f, "create managed policy {arn}"),
            Action::UpdateManagedPolicy { arn, .. } => write!(f, "update managed policy {arn}"),
            Action::AttachManagedPolicy { role, policy_arn } => {
                write!(f, "attach {policy_arn} to {role}")
            }
            Action::DetachManagedPolicy { role, policy_arn } => {
                write!(f, "detach {policy_arn} from {role}")
            }
            Action::DeleteManagedPolicy { arn, .. } => write!(f, "delete managed policy {arn}"),
            Action::AnnotateServiceAccount { .. }
            | Action::RemoveServiceAccountAnnotation { .. }
            | Action::CreatePodIdentityAssociation { .. }
            | Action::UpdatePodIdentityAssociation { .. }
            | Action::DeletePodIdentityAssociation { .. }
            | Action::SetAddonRole { .. }
            | Action::SetAddonAssociations { .. }
            | Action::RestartWorkload { .. } => self.fmt_binding(f),
            Action::MarkRoleForDeletion { role, since } => {
                write!(
                    f,
                    "mark role {role} for deletion (intents gone since {since})"
                )
            }
            Action::DeleteRole { role } => write!(f, "delete role {role}"),
        }
    }
}

impl Action {
    /// The words for the actions on bindings and pods.
    fn fmt_binding(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::AnnotateServiceAccount {
                service_account,
                role_arn,
                ..
            } => write!(
                f,
                "annotate ServiceAccount {service_account} with {role_arn}"
            ),
            Action::RemoveServiceAccountAnnotation {
                service_account, ..
            } => write!(
                f,
                "remove role annotation from ServiceAccount {service_account}"
            ),
            Action::CreatePodIdentityAssociation {
                service_account,
                role_arn,
                ..
            } => write!(
                f,
                "create Pod Identity association {service_account} -> {role_arn}"
            ),
            Action::UpdatePodIdentityAssociation {
                association_id,
                service_account,
                role_arn,
                ..
            } => write!(
                f,
                "update Pod Identity association {association_id} ({service_account}) -> {role_arn}"
            ),
            Action::DeletePodIdentityAssociation {
                association_id,
                service_account,
                ..
            } => write!(
                f,
                "delete Pod Identity association {association_id} ({service_account})"
            ),
            Action::SetAddonRole { .. } | Action::SetAddonAssociations { .. } => self.fmt_addon(f),
            Action::RestartWorkload {
                namespace,
                kind,
                name,
                ..
            } => write!(
                f,
                "restart the pods of {kind} {namespace}/{name} so they get the new binding"
            ),
            _ => Ok(()),
        }
    }

    /// The words for the actions on an add-on.
    fn fmt_addon(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::SetAddonRole {
                addon,
                service_account,
                role_arn: Some(arn),
                ..
            } => write!(f, "set role of add-on {addon} ({service_account}) to {arn}"),
            Action::SetAddonRole {
                addon,
                service_account,
                role_arn: None,
                ..
            } => write!(f, "remove role of add-on {addon} ({service_account})"),
            Action::SetAddonAssociations {
                addon,
                associations,
                ..
            } if associations.is_empty() => {
                write!(f, "remove every Pod Identity association of add-on {addon}")
            }
            Action::SetAddonAssociations {
                addon,
                associations,
                ..
            } => {
                let list: Vec<String> = associations
                    .iter()
                    .map(|(sa, arn)| format!("{sa} -> {arn}"))
                    .collect();
                write!(
                    f,
                    "set the Pod Identity associations of add-on {addon} to {}",
                    list.join(", ")
                )
            }
            _ => Ok(()),
        }
    }
}
