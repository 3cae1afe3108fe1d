//! Step 2, roles: one IAM role per ServiceAccount, and the cluster's OIDC provider. It decides
//! each role's name, ARN and binding kind; whether the role may be touched at all (held by an
//! invalid bundle, the namespace's `default` ServiceAccount, a role of someone else or of
//! another cluster); its trust policy; whether it is created or its trust, boundary and tags
//! are updated; which of its changes put a hand edit back; and whether the OIDC provider that
//! IRSA needs is created or given its audience.

use super::problem::{Problem, Refusal};
use super::{Action, Binding, Drift, DriftKind, Plan, Planner, RoleIntent};
use crate::model::{
    BindingMode, ObservedAddon, ObservedRole, ObservedServiceAccount, PolicyArn, RoleArn, RoleName,
    ServiceAccountRef, WorkloadRef,
};
use crate::policy::{self, IRSA_AUDIENCE, ORPHANED_TAG, Ownership, PolicyDocument};
use std::collections::{BTreeMap, BTreeSet};

/// A role as `role_itself` makes or updates it.
pub(super) struct RoleItself<'r> {
    pub(super) role: &'r RoleName,
    pub(super) arn: &'r RoleArn,
    pub(super) observed: Option<&'r ObservedRole>,
    pub(super) boundary: Option<&'r PolicyArn>,
    pub(super) description: String,
}

/// Who a role is: what the later steps of one role build on.
pub(super) struct RoleIdentity<'a> {
    pub(super) service_account: &'a ServiceAccountRef,
    pub(super) role: RoleName,
    pub(super) arn: RoleArn,
    /// The role as it exists, if it does.
    pub(super) observed: Option<&'a ObservedRole>,
    /// The add-on that owns the ServiceAccount, if one does.
    pub(super) addon: Option<&'a ObservedAddon>,
    pub(super) binding: Binding,
}

impl<'a> Planner<'a> {
    /// The role of a ServiceAccount: its name, its ARN (as it exists, or as it will be), and
    /// what binds it (the add-on that owns the ServiceAccount, else the mode's binding).
    pub(super) fn identify(&self, service_account: &'a ServiceAccountRef) -> RoleIdentity<'a> {
        let role = policy::role_name(&self.cluster.name, service_account);
        // A plan against an account with no roles yet looks up none.
        let observed = if self.roles.is_empty() {
            None
        } else {
            self.roles.get(&role.key()).copied()
        };
        let arn = observed
            .map(|r| r.arn.clone())
            .unwrap_or_else(|| policy::role_arn(self.cluster, &self.path, &role));
        let addon = self.addons.get(service_account).copied();
        let binding = match (addon, self.settings.mode) {
            (Some(addon), _) => Binding::Addon {
                addon: addon.name.clone(),
            },
            (None, BindingMode::Irsa) => Binding::ServiceAccountAnnotation,
            (None, BindingMode::PodIdentity) => Binding::PodIdentityAssociation,
        };
        RoleIdentity {
            service_account,
            role,
            arn,
            observed,
            addon,
            binding,
        }
    }

    /// The role's trust policy, or why the role is not touched: held by an invalid bundle,
    /// or refused.
    pub(super) fn do_plan_trust(
        &self,
        identity: &RoleIdentity,
        intent: &RoleIntent,
    ) -> Result<PolicyDocument, Problem> {
        let service_account = identity.service_account;
        let held = intent
            .workloads
            .iter()
            .any(|w| self.workload_is_held(&w.workload))
            || identity.observed.is_some_and(|r| self.role_is_held(r));
        if held {
            let workloads: Vec<&WorkloadRef> =
                intent.workloads.iter().map(|w| &w.workload).collect();
            return Err(Problem::Held {
                bundles: self.holding_bundles(&workloads, identity.observed),
            });
        }
        if service_account.name.as_str() == "default"
            && !self.settings.allow_default_service_account
        {
            return Err(Refusal::DefaultServiceAccount {
                namespace: service_account.namespace.clone(),
            }
            .into());
        }
        if let Some(refusal) = identity.observed.and_then(|r| self.ownership_refusal(r)) {
            return Err(refusal.into());
        }
        let trust = match self.settings.mode {
            BindingMode::Irsa => {
                let Some(issuer) = self.issuer() else {
                    return Err(Refusal::NoOidcIssuer {
                        cluster: self.cluster.name.clone(),
                    }
                    .into());
                };
                let trusted: Vec<&ServiceAccountRef> = std::iter::once(service_account)
                    .chain(&intent.shared_with)
                    .collect();
                policy::irsa_trust_for(&self.provider_arn(issuer), issuer, &trusted)
            }
            // An add-on's associations carry no session policy: its sessions keep their tags.
            BindingMode::PodIdentity
                if self.settings.session_policies
                    && identity.binding == Binding::PodIdentityAssociation =>
            {
                policy::pod_identity_trust_untagged(self.cluster)
            }
            BindingMode::PodIdentity => policy::pod_identity_trust(self.cluster, service_account),
        };
        if trust.iam_size() > self.settings.quotas.trust_policy_chars {
            return Err(Refusal::TrustTooLarge {
                size: trust.iam_size(),
                quota: self.settings.quotas.trust_policy_chars,
            }
            .into());
        }
        Ok(trust)
    }

    /// Why an existing role of this name is left alone: it belongs to someone else.
    pub(super) fn ownership_refusal(&self, role: &ObservedRole) -> Option<Refusal> {
        match policy::ownership(&role.tags, self.cluster) {
            Ownership::Ours => None,
            Ownership::OtherCluster(other) => Some(Refusal::RoleOfOtherCluster {
                role: role.name.clone(),
                cluster: other,
            }),
            Ownership::Foreign => Some(Refusal::ForeignRole {
                role: role.name.clone(),
            }),
        }
    }

    /// The role itself: created with its trust, boundary and tags, or those updated.
    pub(super) fn role_changes(
        &self,
        identity: &RoleIdentity,
        trust: PolicyDocument,
        tags: BTreeMap<String, String>,
    ) -> Vec<Action> {
        let description = format!(
            "eks-intents: AWS access of ServiceAccount {} in EKS cluster {}",
            identity.service_account, self.cluster.name
        );
        self.role_itself(
            RoleItself {
                role: &identity.role,
                arn: &identity.arn,
                observed: identity.observed,
                boundary: self.settings.permissions_boundary.as_ref(),
                description,
            },
            trust,
            tags,
        )
    }

    /// A role (the workload's, or its target role) created with its trust, boundary and tags,
    /// or those updated.
    pub(super) fn role_itself(
        &self,
        it: RoleItself,
        trust: PolicyDocument,
        tags: BTreeMap<String, String>,
    ) -> Vec<Action> {
        let role = it.role;
        let Some(current) = it.observed else {
            return vec![Action::CreateRole {
                role: role.clone(),
                path: self.path.clone(),
                arn: it.arn.clone(),
                description: it.description,
                trust_policy: trust,
                permissions_boundary: it.boundary.cloned(),
                tags,
            }];
        };
        let mut actions = Vec::new();
        if !current.trust_policy.same_meaning(&trust) {
            actions.push(Action::UpdateTrustPolicy {
                role: role.clone(),
                trust_policy: trust,
            });
        }
        if let Some(boundary) = it.boundary
            && current.permissions_boundary.as_ref() != Some(boundary)
        {
            actions.push(Action::PutPermissionsBoundary {
                role: role.clone(),
                permissions_boundary: boundary.clone(),
            });
        }
        actions.extend(super::permissions::tag_changes(role, &current.tags, &tags));
        actions
    }

    /// The hand changes that a role's `actions` put back. Only while the intents are what
    /// they were when the role was last written is a difference someone's hand edit; a role
    /// that is gone while a binding of ours still names it was deleted by hand.
    pub(super) fn role_drift(
        &self,
        identity: &RoleIdentity,
        actions: &[Action],
        intents_unchanged: bool,
    ) -> BTreeSet<DriftKind> {
        match identity.observed {
            Some(_) if intents_unchanged => self.drift_in(
                actions,
                self.observed_service_account(identity.service_account),
            ),
            Some(_) => BTreeSet::new(),
            None if self.is_bound_anywhere(&identity.arn) => {
                BTreeSet::from([DriftKind::RoleMissing])
            }
            None => BTreeSet::new(),
        }
    }

    /// The kinds of hand change that `actions` put back, on a role whose intents did not change.
    fn drift_in(
        &self,
        actions: &[Action],
        service_account: Option<&ObservedServiceAccount>,
    ) -> BTreeSet<DriftKind> {
        actions
            .iter()
            .filter_map(|action| match action {
                // A target role made again was deleted by hand; its other changes are the same
                // kinds of hand change as the workload's own role's.
                Action::InAccount { step, .. } if matches!(**step, Action::CreateRole { .. }) => {
                    Some(DriftKind::RoleMissing)
                }
                Action::InAccount { step, .. } => drift_kind(step, service_account),
                action => drift_kind(action, service_account),
            })
            .collect()
    }
}

impl<'a> Planner<'a> {
    /// The OIDC provider IRSA trusts, planned when some role of this run uses it; a missing
    /// one while roles of this cluster exist was deleted by hand.
    pub(super) fn do_plan_oidc_provider(&self, plan: &mut Plan) {
        let provider = self.oidc_provider_changes();
        // Roles of this cluster exist, so its provider did too: someone deleted it.
        let existed = self
            .roles
            .values()
            .any(|role| policy::ownership(&role.tags, self.cluster) == Ownership::Ours);
        if existed
            && provider
                .iter()
                .any(|a| matches!(a, Action::CreateOidcProvider { .. }))
        {
            plan.drift.push(Drift {
                role: None,
                kind: DriftKind::OidcProvider,
            });
        }
        plan.actions.extend(provider);
    }

    fn oidc_provider_changes(&self) -> Vec<Action> {
        let Some(issuer) = self.issuer() else {
            return Vec::new();
        };
        let arn = self.provider_arn(issuer);
        match self
            .observed
            .oidc_providers
            .iter()
            .find(|p| p.arn == arn || p.url == issuer)
        {
            None => vec![Action::CreateOidcProvider {
                url: format!("https://{issuer}"),
                client_ids: vec![IRSA_AUDIENCE.to_owned()],
                tags: policy::ownership_tags(self.cluster),
            }],
            Some(provider) if !provider.client_ids.contains(IRSA_AUDIENCE) => {
                vec![Action::AddOidcClientId {
                    provider_arn: provider.arn.clone(),
                    client_id: IRSA_AUDIENCE.to_owned(),
                }]
            }
            Some(_) => Vec::new(),
        }
    }

    fn issuer(&self) -> Option<&'a str> {
        self.observed.cluster.oidc_host_path()
    }

    fn provider_arn(&self, issuer: &str) -> String {
        policy::oidc_provider_arn(self.cluster, issuer)
    }
}

/// The kind of hand change `action` puts back, on a role whose intents did not change.
fn drift_kind(
    action: &Action,
    service_account: Option<&ObservedServiceAccount>,
) -> Option<DriftKind> {
    match action {
        Action::UpdateTrustPolicy { .. } => Some(DriftKind::Trust),
        Action::PutPermissionsBoundary { .. } => Some(DriftKind::Boundary),
        Action::TagRole { .. } => Some(DriftKind::Tags),
        // Intents that come back clear the deletion mark: not a hand change.
        Action::UntagRole { keys, .. } if keys.iter().any(|k| k != ORPHANED_TAG) => {
            Some(DriftKind::Tags)
        }
        Action::PutInlinePolicy { .. } | Action::DeleteInlinePolicy { .. } => {
            Some(DriftKind::InlinePolicy)
        }
        Action::CreateManagedPolicy { .. }
        | Action::UpdateManagedPolicy { .. }
        | Action::AttachManagedPolicy { .. }
        | Action::DetachManagedPolicy { .. }
        | Action::DeleteManagedPolicy { .. } => Some(DriftKind::ManagedPart),
        // A ServiceAccount that appeared after its role was made is bound for the first
        // time; one that carries the label of an earlier binding lost its annotation.
        Action::AnnotateServiceAccount { .. }
            if service_account.is_some_and(|sa| {
                sa.bound_label || sa.annotation_owned && sa.role_annotation().is_some()
            }) =>
        {
            Some(DriftKind::Annotation)
        }
        Action::RemoveServiceAccountAnnotation { .. } => Some(DriftKind::Annotation),
        Action::CreatePodIdentityAssociation { .. }
        | Action::UpdatePodIdentityAssociation { .. }
        | Action::DeletePodIdentityAssociation { .. } => Some(DriftKind::PodIdentityAssociation),
        Action::SetAddonRole { .. } => Some(DriftKind::AddonRole),
        _ => None,
    }
}
