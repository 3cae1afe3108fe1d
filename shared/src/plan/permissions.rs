//! Step 3, permissions: what a role may do, and the tags that say what it is for. It decides
//! which declared permissions are refused (another partition, the system's own resources,
//! dangerous actions without an exception, no permissions boundary when one is required) and
//! which only warned about (grants on `*`, wildcards reaching the system, which get a Deny);
//! how the grants are laid out (inline, or split into managed parts), which policy changes
//! bring the role there, and the role's tags with the digest of everything declared for it.

use super::problem::Refusal;
use super::target::TargetRole;
use super::{Action, Planner, RoleIdentity, RoleIntent, Warning};
use crate::intent::resolve_placeholders;
use crate::model::{BindingMode, ObservedRole, Permission, PolicyArn, RoleName};
use crate::policy::{
    self, DECLARED_TAG, INLINE_POLICY_NAME, ORPHANED_TAG, Ownership, PermissionLayout,
    PolicyDocument, TAG_PREFIX, TARGET_ACCOUNT_TAG,
};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

/// The permissions step's outcome for one role.
pub(super) struct Grants<'a> {
    pub(super) layout: PermissionLayout,
    /// The role's target role in another account, when its intents name resources there.
    pub(super) target: Option<TargetRole<'a>>,
    /// The role's tags, with the digest of what is declared (`DECLARED_TAG`).
    pub(super) tags: BTreeMap<String, String>,
    /// The role exists and was last written for exactly these intents: a difference on it or
    /// its binding is a hand edit.
    pub(super) intents_unchanged: bool,
}

/// A managed part of a role's permissions: its name, its ARN and its document.
type Part<'d> = (String, PolicyArn, &'d PolicyDocument);

impl<'a> Planner<'a> {
    /// The role's grants laid out, and its tags; or why it is refused. Warnings about grants
    /// that stand go to `warnings`, also when the layout then fails.
    pub(super) fn do_plan_permissions(
        &self,
        identity: &RoleIdentity<'a>,
        trust: &PolicyDocument,
        intent: &RoleIntent,
        warnings: &mut Vec<Warning>,
    ) -> Result<Grants<'a>, Refusal> {
        let permissions = self.resolved_permissions(intent);
        self.refusal(&permissions, intent)?;
        let (permissions, target) = self.split_target(identity, intent, permissions)?;
        // A wildcard reaching the system: granted, with the system's resources denied.
        let denial = policy::system_denial(&permissions, &self.system);
        let broad: Vec<String> = permissions
            .iter()
            .filter(|p| policy::broad(p))
            .map(|p| p.action.clone())
            .collect();
        if !broad.is_empty() {
            warnings.push(Warning::BroadGrant {
                workloads: intent.workload_refs(),
                actions: broad,
            });
        }
        let mut statements = policy::permission_statements(permissions);
        // Pod Identity chains from the workload's role into its target role.
        if let Some(target) = &target
            && self.settings.mode == BindingMode::PodIdentity
        {
            statements.push(policy::assume_target_statement(&target.arn));
        }
        statements.extend(denial.as_ref().map(|(deny, _)| deny.clone()));
        let layout = match policy::layout_permissions(&statements, &self.settings.quotas) {
            Ok(layout) => layout,
            Err(error) => return Err(Refusal::TooLarge(error)),
        };
        if let Some((deny, reaching)) = denial {
            warnings.push(Warning::SystemDenied {
                workloads: intent.workload_refs(),
                reaching,
                denied: deny.resources,
            });
        }
        let (tags, intents_unchanged) =
            self.declared_tags(identity, trust, &layout, intent, target.as_ref());
        Ok(Grants {
            layout,
            target,
            tags,
            intents_unchanged,
        })
    }

    /// The permissions of every workload that runs as the role's ServiceAccount, with the
    /// cluster's region and account put in for their placeholders.
    fn resolved_permissions(&self, intent: &RoleIntent) -> BTreeSet<Permission> {
        intent
            .workloads
            .iter()
            .flat_map(|w| &w.permissions)
            .map(|p| Permission {
                action: p.action.clone(),
                resource: resolve_placeholders(
                    &p.resource,
                    self.cluster.region.as_str(),
                    self.cluster.account.as_str(),
                ),
            })
            .collect()
    }

    /// Why the role gets none of these permissions, in the order the checks are made.
    fn refusal(
        &self,
        permissions: &BTreeSet<Permission>,
        intent: &RoleIntent,
    ) -> Result<(), Refusal> {
        // The reader cannot know the cluster's partition; a grant in another one never matches.
        let foreign: BTreeSet<String> = permissions
            .iter()
            .filter_map(|p| policy::check_partition(&p.resource, self.cluster.partition()).err())
            .map(|e| e.to_string())
            .collect();
        if !foreign.is_empty() {
            return Err(Refusal::OtherPartition { problems: foreign });
        }
        let system = &self.system;
        let named: Vec<(Permission, String)> = permissions
            .iter()
            .filter_map(|p| {
                let within = policy::names_system_resource(&p.resource, system)?;
                Some((p.clone(), within.to_owned()))
            })
            .collect();
        if !named.is_empty() {
            return Err(Refusal::SystemResources { named });
        }
        if self.settings.permissions_boundary.is_none() && self.settings.require_boundary {
            return Err(Refusal::NoBoundary);
        }
        if self.settings.refuse_dangerous {
            self.dangerous_refusal(permissions, intent)?;
        }
        Ok(())
    }

    /// Dangerous actions that no exception of the settings allows for the role's workloads.
    fn dangerous_refusal(
        &self,
        permissions: &BTreeSet<Permission>,
        intent: &RoleIntent,
    ) -> Result<(), Refusal> {
        let refused: Vec<(Permission, String)> = permissions
            .iter()
            .filter_map(|p| policy::danger(p).map(|why| (p, why)))
            .filter(|(p, _)| !self.excepted(p, intent))
            .map(|(p, why)| (p.clone(), why))
            .collect();
        if refused.is_empty() {
            return Ok(());
        }
        Err(Refusal::Dangerous { refused })
    }

    /// True when an exception of the settings allows this dangerous permission for one of the
    /// role's workloads.
    fn excepted(&self, permission: &Permission, intent: &RoleIntent) -> bool {
        self.settings.danger_exceptions.iter().any(|e| {
            intent.workloads.iter().any(|w| {
                e.allows(
                    &permission.action,
                    Some(self.cluster.name.as_str()),
                    w.workload.namespace.as_str(),
                    w.workload.name.as_str(),
                )
            })
        })
    }

    /// The role's tags with the digest of what is declared for it, and whether the role as
    /// it exists carries that same digest.
    fn declared_tags(
        &self,
        identity: &RoleIdentity,
        trust: &PolicyDocument,
        layout: &PermissionLayout,
        intent: &RoleIntent,
        target: Option<&TargetRole>,
    ) -> (BTreeMap<String, String>, bool) {
        let mut tags = self.base_tags(identity, intent);
        if let Some(accounts) = self.target_accounts_tag(identity, target) {
            tags.insert(TARGET_ACCOUNT_TAG.to_owned(), accounts);
        }
        let declared = declared_digest(
            trust,
            layout,
            &intent.recommended,
            self.settings
                .permissions_boundary
                .as_ref()
                .map(PolicyArn::as_str),
            &tags,
            target.map(TargetRole::declared),
        );
        // Only while the intents are what they were when the role was last written is a
        // difference on the role or its binding someone's hand edit.
        let intents_unchanged = identity
            .observed
            .is_some_and(|r| r.tags.get(DECLARED_TAG) == Some(&declared));
        tags.insert(DECLARED_TAG.to_owned(), declared);
        (tags, intents_unchanged)
    }

    /// The tags that say what a role (or its target role) is for: owner, cluster,
    /// ServiceAccount, workloads and bundles.
    pub(super) fn base_tags(
        &self,
        identity: &RoleIdentity,
        intent: &RoleIntent,
    ) -> BTreeMap<String, String> {
        let bundles: BTreeSet<String> = intent
            .workloads
            .iter()
            .flat_map(|w| w.sources.iter().map(|s| s.bundle.clone()))
            .collect();
        policy::role_tags(
            self.cluster,
            identity.service_account,
            intent.workloads.iter().map(|w| &w.workload.name),
            &bundles,
        )
    }

    /// The policy changes that bring the role to `layout`: managed parts made, updated and
    /// attached, the inline policy put, and what is no longer wanted detached and deleted.
    pub(super) fn policy_changes(
        &self,
        role: &RoleName,
        observed: Option<&ObservedRole>,
        layout: &PermissionLayout,
        recommended: &[PolicyArn],
    ) -> Vec<Action> {
        let empty_inline = BTreeMap::new();
        let empty_attached = BTreeSet::new();
        let inline = observed.map_or(&empty_inline, |r| &r.inline_policies);
        let attached = observed.map_or(&empty_attached, |r| &r.attached_policies);

        let (wanted_inline, wanted_parts) = self.wanted_policies(role, layout);
        let mut wanted_arns: BTreeSet<&PolicyArn> =
            wanted_parts.iter().map(|(_, a, _)| a).collect();
        wanted_arns.extend(recommended);

        let mut detach: Vec<Action> = attached
            .iter()
            .filter(|arn| !wanted_arns.contains(arn))
            .map(|arn| Action::DetachManagedPolicy {
                role: role.clone(),
                policy_arn: arn.clone(),
            })
            .collect();
        let after_add = attached.len()
            + wanted_arns
                .iter()
                .filter(|a| !attached.contains(**a))
                .count();
        let mut actions = Vec::new();
        // Detaching what is no longer wanted first would open a gap in permissions; do it
        // first only when attaching first would exceed the attached-policies quota.
        if after_add > self.settings.quotas.attached_policies {
            actions.append(&mut detach);
        }
        for part in &wanted_parts {
            actions.extend(self.part_changes(role, part, attached));
        }
        // The managed policies EKS recommends for an add-on: AWS's own, attached as they are.
        actions.extend(
            recommended
                .iter()
                .filter(|arn| !attached.contains(*arn))
                .map(|arn| Action::AttachManagedPolicy {
                    role: role.clone(),
                    policy_arn: arn.clone(),
                }),
        );
        if let Some(document) = wanted_inline
            && !inline
                .get(INLINE_POLICY_NAME)
                .is_some_and(|current| current.same_meaning(document))
        {
            actions.push(Action::PutInlinePolicy {
                role: role.clone(),
                policy_name: INLINE_POLICY_NAME.to_owned(),
                document: document.clone(),
            });
        }
        actions.append(&mut detach);
        for name in inline.keys() {
            if wanted_inline.is_none() || name != INLINE_POLICY_NAME {
                actions.push(Action::DeleteInlinePolicy {
                    role: role.clone(),
                    policy_name: name.clone(),
                });
            }
        }
        actions.extend(self.leftover_parts(role, &wanted_arns));
        actions
    }

    /// The inline document `layout` wants, or the managed parts it wants.
    fn wanted_policies<'d>(
        &self,
        role: &RoleName,
        layout: &'d PermissionLayout,
    ) -> (Option<&'d PolicyDocument>, Vec<Part<'d>>) {
        let mut wanted_parts: Vec<Part<'d>> = Vec::new();
        let mut wanted_inline: Option<&PolicyDocument> = None;
        match layout {
            PermissionLayout::Empty => {}
            PermissionLayout::Inline(document) => wanted_inline = Some(document),
            PermissionLayout::Managed(parts) => {
                for (i, document) in parts.iter().enumerate() {
                    let name = policy::managed_policy_name(role, i + 1);
                    let arn = policy::managed_policy_arn(self.cluster, &self.path, &name);
                    wanted_parts.push((name, arn, document));
                }
            }
        }
        (wanted_inline, wanted_parts)
    }

    /// One managed part: made or updated as wanted, and attached.
    fn part_changes(
        &self,
        role: &RoleName,
        (name, arn, document): &Part,
        attached: &BTreeSet<PolicyArn>,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        match self.managed.get(arn) {
            None => actions.push(Action::CreateManagedPolicy {
                role: role.clone(),
                name: name.clone(),
                path: self.path.clone(),
                arn: arn.clone(),
                document: (*document).clone(),
                tags: policy::ownership_tags(self.cluster),
            }),
            Some(current) if !current.document.same_meaning(document) => {
                actions.push(Action::UpdateManagedPolicy {
                    role: role.clone(),
                    arn: arn.clone(),
                    document: (*document).clone(),
                })
            }
            Some(_) => {}
        }
        if !attached.contains(arn) {
            actions.push(Action::AttachManagedPolicy {
                role: role.clone(),
                policy_arn: arn.clone(),
            });
        }
        actions
    }

    /// Parts of this role that are no longer wanted, attached or left over.
    fn leftover_parts(&self, role: &RoleName, wanted_arns: &BTreeSet<&PolicyArn>) -> Vec<Action> {
        if self.managed.is_empty() {
            return Vec::new();
        }
        let part_prefix = format!("{role}.part");
        self.managed
            .iter()
            .filter(|(arn, policy)| {
                policy.name.starts_with(&part_prefix)
                    && !wanted_arns.contains(*arn)
                    && policy::ownership(&policy.tags, self.cluster) == Ownership::Ours
            })
            .map(|(arn, _)| Action::DeleteManagedPolicy {
                role: role.clone(),
                arn: (*arn).clone(),
            })
            .collect()
    }

    /// Roles created without a boundary are worth a warning when the requirement is off.
    pub(super) fn warn_unbounded_roles(
        &self,
        role_actions: &[Action],
        warnings: &mut Vec<Warning>,
    ) {
        if self.settings.permissions_boundary.is_none()
            && !self.settings.require_boundary
            && role_actions
                .iter()
                .any(|a| matches!(a, Action::CreateRole { .. }))
        {
            warnings.push(Warning::NoBoundary);
        }
    }
}

/// The value of `DECLARED_TAG`: a digest of everything the intents and settings declare for a
/// role, so that the next run can tell a hand edit from a change of intents. `target` is the
/// digest of the role's target role, which only roles with one have.
pub(super) fn declared_digest(
    trust: &PolicyDocument,
    layout: &PermissionLayout,
    recommended: &[PolicyArn],
    boundary: Option<&str>,
    tags: &BTreeMap<String, String>,
    target: Option<&str>,
) -> String {
    // The text hashed, in parts: the trust, the layout's kind and documents, the recommended
    // policies, the boundary, the tags, the target's digest, each behind a line break.
    let trust = trust.json();
    let documents: Vec<Cow<str>> = layout.documents().iter().map(|d| d.json()).collect();
    let mut parts: Vec<&str> = Vec::with_capacity(8 + 2 * documents.len() + 4 * tags.len());
    parts.extend([
        &*trust,
        "\n",
        match layout {
            PermissionLayout::Empty => "empty",
            PermissionLayout::Inline(_) => "inline",
            PermissionLayout::Managed(_) => "managed",
        },
    ]);
    for document in &documents {
        parts.extend(["\n", document]);
    }
    // Only roles with recommended policies have these lines: the digest of every other role is
    // what it was before they existed.
    for arn in recommended {
        parts.extend(["\nattached ", arn.as_str()]);
    }
    parts.extend(["\n", boundary.unwrap_or_default()]);
    for (key, value) in tags {
        if key != ORPHANED_TAG && key != DECLARED_TAG {
            parts.extend(["\n", key, "=", value]);
        }
    }
    if let Some(target) = target {
        parts.extend(["\ntarget ", target]);
    }
    policy::short_hash_of(&parts, 16)
}

/// Tag changes limited to the system's own keys: tags anyone else set stay untouched.
pub(super) fn tag_changes(
    role: &RoleName,
    current: &BTreeMap<String, String>,
    wanted: &BTreeMap<String, String>,
) -> Vec<Action> {
    let mut actions = Vec::new();
    let changed: BTreeMap<String, String> = wanted
        .iter()
        .filter(|(key, value)| current.get(*key) != Some(*value))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !changed.is_empty() {
        actions.push(Action::TagRole {
            role: role.clone(),
            tags: changed,
        });
    }
    let stale: Vec<String> = current
        .keys()
        .filter(|key| key.starts_with(TAG_PREFIX) && !wanted.contains_key(*key))
        .cloned()
        .collect();
    if !stale.is_empty() {
        actions.push(Action::UntagRole {
            role: role.clone(),
            keys: stale,
        });
    }
    actions
}
