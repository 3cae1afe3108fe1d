//! The actions of a plan. Each is fully specified (names, ARNs, whole documents), so the
//! executor makes no choices.

use crate::model::{
    AddonName, AssociationId, Namespace, PolicyArn, RoleArn, RoleName, ServiceAccountRef, Takeover,
    WorkloadKind, WorkloadName,
};
use crate::policy::PolicyDocument;
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};
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

/// In JSON, an object tagged with its `action`. The fields of every variant are declared in
/// sorted order (and the tag sorts before each), so an action serializes with its keys sorted
/// at every depth, as a `serde_json::Value` of it would: the plan's JSON is written straight
/// from the actions, tens of thousands of them in a fleet's plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    CreateOidcProvider {
        client_ids: Vec<String>,
        tags: BTreeMap<String, String>,
        /// `https://...`, as IAM takes it.
        url: String,
    },
    AddOidcClientId {
        client_id: String,
        provider_arn: String,
    },
    CreateRole {
        arn: RoleArn,
        description: String,
        path: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        permissions_boundary: Option<PolicyArn>,
        role: RoleName,
        tags: BTreeMap<String, String>,
        trust_policy: PolicyDocument,
    },
    UpdateTrustPolicy {
        role: RoleName,
        trust_policy: PolicyDocument,
    },
    PutPermissionsBoundary {
        permissions_boundary: PolicyArn,
        role: RoleName,
    },
    TagRole {
        role: RoleName,
        tags: BTreeMap<String, String>,
    },
    UntagRole {
        keys: Vec<String>,
        role: RoleName,
    },
    PutInlinePolicy {
        document: PolicyDocument,
        policy_name: String,
        role: RoleName,
    },
    DeleteInlinePolicy {
        policy_name: String,
        role: RoleName,
    },
    CreateManagedPolicy {
        arn: PolicyArn,
        document: PolicyDocument,
        name: String,
        path: String,
        role: RoleName,
        tags: BTreeMap<String, String>,
    },
    /// A new default version; older versions are pruned by the executor.
    UpdateManagedPolicy {
        arn: PolicyArn,
        document: PolicyDocument,
        role: RoleName,
    },
    AttachManagedPolicy {
        policy_arn: PolicyArn,
        role: RoleName,
    },
    DetachManagedPolicy {
        policy_arn: PolicyArn,
        role: RoleName,
    },
    DeleteManagedPolicy {
        arn: PolicyArn,
        role: RoleName,
    },
    AnnotateServiceAccount {
        /// Take the annotation over from the manager that set it (settings allow forcing).
        #[serde(default, skip_serializing_if = "Takeover::is_never")]
        force: Takeover,
        role: RoleName,
        role_arn: RoleArn,
        #[serde(serialize_with = "name_first")]
        service_account: ServiceAccountRef,
    },
    RemoveServiceAccountAnnotation {
        role: RoleName,
        #[serde(serialize_with = "name_first")]
        service_account: ServiceAccountRef,
    },
    /// With a session policy, EKS's session tags are turned off (EKS requires it).
    CreatePodIdentityAssociation {
        role: RoleName,
        role_arn: RoleArn,
        #[serde(serialize_with = "name_first")]
        service_account: ServiceAccountRef,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_policy: Option<PolicyDocument>,
        tags: BTreeMap<String, String>,
        /// The role of another account the pods get credentials of (`targetRoleArn`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target_role_arn: Option<RoleArn>,
    },
    /// Points the association at the role and sets its session policy (session tags off). An
    /// association whose session policy is to go is deleted and created again instead.
    UpdatePodIdentityAssociation {
        association_id: AssociationId,
        role: RoleName,
        role_arn: RoleArn,
        #[serde(serialize_with = "name_first")]
        service_account: ServiceAccountRef,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_policy: Option<PolicyDocument>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target_role_arn: Option<RoleArn>,
    },
    DeletePodIdentityAssociation {
        association_id: AssociationId,
        role: RoleName,
        #[serde(serialize_with = "name_first")]
        service_account: ServiceAccountRef,
    },
    /// IRSA: the add-on's one `serviceAccountRoleArn` (`None` removes it). The role trusts
    /// every ServiceAccount of the add-on that has intents; `service_account` is the first.
    SetAddonRole {
        addon: AddonName,
        role: RoleName,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        role_arn: Option<RoleArn>,
        #[serde(serialize_with = "name_first")]
        service_account: ServiceAccountRef,
    },
    /// Pod Identity: the add-on's whole association map (ServiceAccount name -> role ARN), as
    /// EKS replaces it whole on every update. Planned once per add-on, so the executor reads
    /// nothing at apply time and two roles never race on the add-on. `role` is the first role
    /// the change concerns (the one a failure is reported on).
    SetAddonAssociations {
        addon: AddonName,
        associations: BTreeMap<String, RoleArn>,
        role: RoleName,
    },
    /// Rolls the workload's pods (pod template annotation `eks-intents/restarted-at`) so they
    /// start with the new binding's credentials.
    RestartWorkload {
        kind: WorkloadKind,
        name: WorkloadName,
        namespace: Namespace,
        restarted_at: u64,
        role: RoleName,
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
    /// `step` made in the account `target` (a workload's target role there, or the cluster's
    /// OIDC provider there), through the deployment's role in that account.
    InAccount {
        step: Box<Action>,
        target: String,
    },
}

/// A ServiceAccount in an action, its keys in sorted order (`name` before `namespace`, where
/// the type itself is declared namespace first, the order it sorts by).
pub(super) fn name_first<S: Serializer>(
    service_account: &ServiceAccountRef,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let mut fields = serializer.serialize_struct("ServiceAccountRef", 2)?;
    fields.serialize_field("name", &service_account.name)?;
    fields.serialize_field("namespace", &service_account.namespace)?;
    fields.end()
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
            Action::InAccount { step, .. } => step.role(),
        }
    }

    /// `step` made in the account `target`.
    pub fn in_account(target: &str, step: Action) -> Action {
        Action::InAccount {
            step: Box::new(step),
            target: target.to_owned(),
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
            Action::InAccount { step, .. } => step.sign(),
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
            Action::InAccount { step, target } => write!(f, "in account {target}: {step}"),
        }
    }
}

/// ` -> <target role>` after an association's role, when it chains into one.
fn fmt_target(f: &mut fmt::Formatter<'_>, target: Option<&RoleArn>) -> fmt::Result {
    match target {
        Some(target) => write!(f, " -> {target}"),
        None => Ok(()),
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
                target_role_arn,
                ..
            } => {
                write!(
                    f,
                    "create Pod Identity association {service_account} -> {role_arn}"
                )?;
                fmt_target(f, target_role_arn.as_ref())
            }
            Action::UpdatePodIdentityAssociation {
                association_id,
                service_account,
                role_arn,
                target_role_arn,
                ..
            } => {
                write!(
                    f,
                    "update Pod Identity association {association_id} ({service_account}) -> {role_arn}"
                )?;
                fmt_target(f, target_role_arn.as_ref())
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// What the actions of the test name.
    struct Fixture {
        role: RoleName,
        arn: RoleArn,
        policy: PolicyArn,
        sa: ServiceAccountRef,
        document: PolicyDocument,
        tags: BTreeMap<String, String>,
        id: AssociationId,
        addon: AddonName,
    }

    /// One action of every kind, with every optional field set and unset.
    fn every_action() -> Vec<Action> {
        let f = Fixture {
            role: RoleName::new("demo.team.worker"),
            arn: RoleArn::new("arn:aws:iam::1:role/eks-intents/demo/demo.team.worker"),
            policy: PolicyArn::new("arn:aws:iam::1:policy/eks-intents/demo/demo.team.worker.part1"),
            sa: ServiceAccountRef {
                namespace: "team".into(),
                name: "worker".into(),
            },
            document: PolicyDocument::from_value(&json!({
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["*"]}],
            })),
            tags: BTreeMap::from([
                (
                    "eks-intents/managed-by".to_owned(),
                    "eks-intents".to_owned(),
                ),
                ("a-tag".to_owned(), "a".to_owned()),
            ]),
            id: AssociationId::new("a-123"),
            addon: AddonName::new("aws-ebs-csi-driver"),
        };
        let mut all = oidc_and_role_actions(&f);
        all.extend(policy_actions(&f));
        all.extend(binding_actions(&f));
        all.extend(association_actions(&f));
        all
    }

    /// The OIDC provider's actions and the role's own.
    fn oidc_and_role_actions(f: &Fixture) -> Vec<Action> {
        vec![
            Action::CreateOidcProvider {
                client_ids: vec!["sts.amazonaws.com".into()],
                tags: f.tags.clone(),
                url: "https://oidc.example/id/1".into(),
            },
            Action::AddOidcClientId {
                client_id: "sts.amazonaws.com".into(),
                provider_arn: "arn:aws:iam::1:oidc-provider/oidc.example/id/1".into(),
            },
            Action::CreateRole {
                arn: f.arn.clone(),
                description: "a role".into(),
                path: "/eks-intents/demo/".into(),
                permissions_boundary: Some(f.policy.clone()),
                role: f.role.clone(),
                tags: f.tags.clone(),
                trust_policy: f.document.clone(),
            },
            Action::CreateRole {
                arn: f.arn.clone(),
                description: "a role".into(),
                path: "/".into(),
                permissions_boundary: None,
                role: f.role.clone(),
                tags: BTreeMap::new(),
                trust_policy: PolicyDocument::from_text("%7B%22b%22%3A1%2C%22a%22%3A2%7D"),
            },
            Action::UpdateTrustPolicy {
                role: f.role.clone(),
                trust_policy: f.document.clone(),
            },
            Action::PutPermissionsBoundary {
                permissions_boundary: f.policy.clone(),
                role: f.role.clone(),
            },
            Action::TagRole {
                role: f.role.clone(),
                tags: f.tags.clone(),
            },
            Action::UntagRole {
                keys: vec!["b".into(), "a".into()],
                role: f.role.clone(),
            },
        ]
    }

    /// The actions on the role's policies.
    fn policy_actions(f: &Fixture) -> Vec<Action> {
        vec![
            Action::PutInlinePolicy {
                document: f.document.clone(),
                policy_name: "eks-intents".into(),
                role: f.role.clone(),
            },
            Action::DeleteInlinePolicy {
                policy_name: "old".into(),
                role: f.role.clone(),
            },
            Action::CreateManagedPolicy {
                arn: f.policy.clone(),
                document: f.document.clone(),
                name: "demo.team.worker.part1".into(),
                path: "/eks-intents/demo/".into(),
                role: f.role.clone(),
                tags: f.tags.clone(),
            },
            Action::UpdateManagedPolicy {
                arn: f.policy.clone(),
                document: f.document.clone(),
                role: f.role.clone(),
            },
            Action::AttachManagedPolicy {
                policy_arn: f.policy.clone(),
                role: f.role.clone(),
            },
            Action::DetachManagedPolicy {
                policy_arn: f.policy.clone(),
                role: f.role.clone(),
            },
            Action::DeleteManagedPolicy {
                arn: f.policy.clone(),
                role: f.role.clone(),
            },
        ]
    }

    /// The Pod Identity associations made and changed, with and without a session policy.
    fn association_actions(f: &Fixture) -> Vec<Action> {
        vec![
            Action::CreatePodIdentityAssociation {
                role: f.role.clone(),
                role_arn: f.arn.clone(),
                service_account: f.sa.clone(),
                session_policy: None,
                tags: f.tags.clone(),
                target_role_arn: None,
            },
            Action::CreatePodIdentityAssociation {
                role: f.role.clone(),
                role_arn: f.arn.clone(),
                service_account: f.sa.clone(),
                session_policy: Some(f.document.clone()),
                tags: f.tags.clone(),
                target_role_arn: Some(f.arn.clone()),
            },
            Action::UpdatePodIdentityAssociation {
                association_id: f.id.clone(),
                role: f.role.clone(),
                role_arn: f.arn.clone(),
                service_account: f.sa.clone(),
                session_policy: None,
                target_role_arn: Some(f.arn.clone()),
            },
            Action::UpdatePodIdentityAssociation {
                association_id: f.id.clone(),
                role: f.role.clone(),
                role_arn: f.arn.clone(),
                service_account: f.sa.clone(),
                session_policy: Some(f.document.clone()),
                target_role_arn: None,
            },
            Action::in_account(
                "333333333333",
                Action::DeleteRole {
                    role: f.role.clone(),
                },
            ),
        ]
    }

    /// The actions on bindings and pods, and the role's end.
    fn binding_actions(f: &Fixture) -> Vec<Action> {
        vec![
            Action::AnnotateServiceAccount {
                force: Takeover::Force,
                role: f.role.clone(),
                role_arn: f.arn.clone(),
                service_account: f.sa.clone(),
            },
            Action::AnnotateServiceAccount {
                force: Takeover::Never,
                role: f.role.clone(),
                role_arn: f.arn.clone(),
                service_account: f.sa.clone(),
            },
            Action::RemoveServiceAccountAnnotation {
                role: f.role.clone(),
                service_account: f.sa.clone(),
            },
            Action::DeletePodIdentityAssociation {
                association_id: f.id.clone(),
                role: f.role.clone(),
                service_account: f.sa.clone(),
            },
            Action::SetAddonRole {
                addon: f.addon.clone(),
                role: f.role.clone(),
                role_arn: Some(f.arn.clone()),
                service_account: f.sa.clone(),
            },
            Action::SetAddonRole {
                addon: f.addon.clone(),
                role: f.role.clone(),
                role_arn: None,
                service_account: f.sa.clone(),
            },
            Action::SetAddonAssociations {
                addon: f.addon.clone(),
                associations: BTreeMap::from([("worker".to_owned(), f.arn.clone())]),
                role: f.role.clone(),
            },
            Action::RestartWorkload {
                kind: WorkloadKind::Deployment,
                name: "worker".into(),
                namespace: "team".into(),
                restarted_at: 1_795_000_000,
                role: f.role.clone(),
            },
            Action::MarkRoleForDeletion {
                role: f.role.clone(),
                since: 1_795_000_000,
            },
            Action::DeleteRole {
                role: f.role.clone(),
            },
        ]
    }

    /// The plan's JSON writes actions straight, trusting them to serialize with sorted keys:
    /// the same text as through a `Value`, which sorts them.
    #[test]
    fn every_action_serializes_as_its_value_does() {
        let actions = every_action();
        let kinds: std::collections::BTreeSet<String> = actions
            .iter()
            .map(|a| serde_json::to_value(a).unwrap()["action"].to_string())
            .collect();
        assert_eq!(kinds.len(), 25, "one of every kind: {kinds:?}");
        for action in &actions {
            let value = serde_json::to_value(action).unwrap();
            assert_eq!(
                serde_json::to_string_pretty(action).unwrap(),
                serde_json::to_string_pretty(&value).unwrap(),
            );
        }
    }
}
