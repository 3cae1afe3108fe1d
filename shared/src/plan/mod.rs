//! The planner: `plan(&DesiredState, &ObservedState, &Settings) -> Plan`, pure and synchronous.
//! Every action in the plan is fully specified; planning again against the state the plan
//! produces yields no action.

mod action;
mod report;
mod simulate;

pub use action::{Action, Binding};
pub use report::{
    DeletionBreaker, Drift, DriftKind, OrphanPlan, OrphanState, Restart, WorkloadPlan,
    WorkloadState,
};
pub use simulate::simulate;

use crate::intent::resolve_placeholders;
use crate::model::{
    BindingMode, ClusterRef, DesiredState, DesiredWorkload, ObservedAddon, ObservedAssociation,
    ObservedManagedPolicy, ObservedRole, ObservedServiceAccount, ObservedState, ObservedWorkload,
    Permission, RoleName, ServiceAccountName, ServiceAccountRef, Settings, WorkloadKind,
    WorkloadRef,
};
use crate::policy::{
    self, DECLARED_TAG, INLINE_POLICY_NAME, IRSA_AUDIENCE, ORPHANED_TAG, OWNER_TAG, Ownership,
    PermissionLayout, PolicyDocument, TAG_PREFIX,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// An ordered list of fully specified actions, and per workload what they are for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub workloads: Vec<WorkloadPlan>,
    pub orphans: Vec<OrphanPlan>,
    pub warnings: Vec<String>,
    /// Hand changes this plan puts back, by role and kind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<Drift>,
    /// Set when the deletion breaker holds this run's deletions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaker: Option<DeletionBreaker>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }
}

pub fn plan(desired: &DesiredState, observed: &ObservedState, settings: &Settings) -> Plan {
    Planner::new(desired, observed, settings).run()
}

/// The workloads that run as one ServiceAccount: what its role is for. Their permissions are
/// merged only while that role is planned, so a large cluster never holds them all twice.
struct RoleIntent<'a> {
    workloads: Vec<&'a DesiredWorkload>,
    /// IRSA: the add-on's other ServiceAccounts that share this role (an add-on has one role
    /// setting), trusted beside the role's own.
    shared_with: Vec<ServiceAccountRef>,
}

impl RoleIntent<'_> {
    /// "ns/a is" or "ns/a and ns/b are": the subject of a warning about the role's grants.
    fn subject(&self) -> String {
        let names: Vec<String> = self
            .workloads
            .iter()
            .map(|w| w.workload.to_string())
            .collect();
        let verb = if names.len() > 1 { "are" } else { "is" };
        format!("{} {verb}", names.join(" and "))
    }
}

/// The outcome of planning one role, shared by the workloads that run as its ServiceAccount.
struct RoleOutcome {
    warnings: Vec<String>,
    role: RoleName,
    arn: String,
    binding: Option<Binding>,
    actions: Vec<Action>,
    /// An error (the role is not touched) or a reason to wait, with the state it leads to.
    problem: Option<(report::WorkloadState, String)>,
    /// Hand changes that `actions` put back.
    drift: BTreeSet<DriftKind>,
}

struct Planner<'a> {
    desired: &'a DesiredState,
    observed: &'a ObservedState,
    settings: &'a Settings,
    cluster: &'a ClusterRef,
    path: String,
    /// The system's own resources in this cluster's account (`policy::system_resources`).
    system: Vec<String>,
    roles: BTreeMap<String, &'a ObservedRole>,
    managed: BTreeMap<&'a str, &'a ObservedManagedPolicy>,
    service_accounts: BTreeMap<ServiceAccountRef, &'a ObservedServiceAccount>,
    associations: BTreeMap<ServiceAccountRef, Vec<&'a ObservedAssociation>>,
    addons: BTreeMap<ServiceAccountRef, &'a ObservedAddon>,
    workloads: Option<BTreeMap<(&'a str, &'a str), Vec<&'a ObservedWorkload>>>,
    held_bundle_tags: BTreeSet<String>,
    /// The role ARNs that some binding this system made still names (see `is_bound_anywhere`).
    bound_arns: BTreeSet<&'a str>,
}

impl<'a> Planner<'a> {
    fn new(desired: &'a DesiredState, observed: &'a ObservedState, settings: &'a Settings) -> Self {
        let cluster = &observed.cluster.cluster;
        let mut associations: BTreeMap<ServiceAccountRef, Vec<&ObservedAssociation>> =
            BTreeMap::new();
        for association in &observed.pod_identity_associations {
            associations
                .entry(ServiceAccountRef {
                    namespace: association.namespace.clone(),
                    name: association.service_account.clone(),
                })
                .or_default()
                .push(association);
        }
        for list in associations.values_mut() {
            list.sort_by(|a, b| a.association_id.cmp(&b.association_id));
        }
        let mut addons = BTreeMap::new();
        for addon in &observed.addons {
            for service_account in &addon.service_accounts {
                addons.insert(service_account.clone(), addon);
            }
        }
        let workloads = observed.workloads.as_ref().map(|list| {
            let mut index: BTreeMap<(&str, &str), Vec<&ObservedWorkload>> = BTreeMap::new();
            for workload in list {
                index
                    .entry((workload.namespace.as_str(), workload.name.as_str()))
                    .or_default()
                    .push(workload);
            }
            for found in index.values_mut() {
                found.sort_by_key(|w| w.kind);
            }
            index
        });
        let service_accounts: BTreeMap<ServiceAccountRef, &ObservedServiceAccount> = observed
            .service_accounts
            .iter()
            .map(|sa| (sa.id(), sa))
            .collect();
        let bound_arns = bound_arns(&service_accounts, &associations, &addons);
        Planner {
            desired,
            observed,
            settings,
            cluster,
            path: policy::cluster_path(&settings.iam_path, &cluster.name),
            system: policy::system_resources(
                settings,
                cluster.partition(),
                cluster.account.as_str(),
            ),
            roles: observed
                .roles
                .iter()
                .map(|role| (role.name.as_str().to_ascii_lowercase(), role))
                .collect(),
            managed: observed
                .managed_policies
                .iter()
                .map(|p| (p.arn.as_str(), p))
                .collect(),
            service_accounts,
            associations,
            addons,
            workloads,
            held_bundle_tags: desired
                .held
                .bundles
                .iter()
                .map(|b| policy::tag_value(b))
                .collect(),
            bound_arns,
        }
    }

    fn run(self) -> Plan {
        let mut plan = Plan::default();
        let mut intents: BTreeMap<ServiceAccountRef, RoleIntent<'a>> = BTreeMap::new();
        let mut pending: Vec<(&DesiredWorkload, String)> = Vec::new();

        for workload in self.desired.workloads.values() {
            match self.resolve_service_account(&workload.workload) {
                Ok(service_account) => {
                    intents
                        .entry(service_account)
                        .or_insert_with(|| RoleIntent {
                            workloads: Vec::new(),
                            shared_with: Vec::new(),
                        })
                        .workloads
                        .push(workload);
                }
                Err(reason) => pending.push((workload, reason)),
            }
        }

        if self.settings.mode == BindingMode::Irsa {
            self.share_addon_roles(&mut intents, &mut plan.warnings);
        }

        let mut claimed: BTreeSet<String> = BTreeSet::new();
        let mut role_actions: Vec<Action> = Vec::new();
        let mut needs_oidc_provider = false;
        for (service_account, intent) in &intents {
            if intent.workloads.len() > 1 {
                let names: Vec<String> = intent
                    .workloads
                    .iter()
                    .map(|w| w.workload.to_string())
                    .collect();
                plan.warnings.push(format!(
                    "workloads {} share the ServiceAccount {service_account}: they get one role with the union of their permissions",
                    names.join(" and ")
                ));
            }
            let outcome = self.plan_role(service_account, intent);
            plan.warnings.extend(outcome.warnings.iter().cloned());
            plan.drift.extend(outcome.drift.iter().map(|&kind| Drift {
                role: Some(outcome.role.clone()),
                kind,
            }));
            claimed.insert(outcome.role.as_str().to_ascii_lowercase());
            if self.settings.mode == BindingMode::Irsa
                && outcome
                    .problem
                    .as_ref()
                    .is_none_or(|(s, _)| *s != WorkloadState::Error)
            {
                needs_oidc_provider = true;
            }
            let (state, message) = match &outcome.problem {
                Some((state, message)) => (*state, message.clone()),
                None if outcome.actions.is_empty() => (
                    WorkloadState::Ready,
                    "role and binding are as declared".to_owned(),
                ),
                None => (
                    WorkloadState::Changing,
                    format!("{} change(s) planned", outcome.actions.len()),
                ),
            };
            let rebinds = outcome.actions.iter().any(|a| {
                matches!(
                    a,
                    Action::AnnotateServiceAccount { .. }
                        | Action::CreatePodIdentityAssociation { .. }
                        | Action::UpdatePodIdentityAssociation { .. }
                )
            });
            let mut outcome = outcome;
            let mut restarts = BTreeMap::new();
            for workload in &intent.workloads {
                let restart = match self.observed_kind(&workload.workload) {
                    Some(kind) if rebinds => {
                        let rollable = matches!(
                            kind,
                            WorkloadKind::Deployment
                                | WorkloadKind::StatefulSet
                                | WorkloadKind::DaemonSet
                        );
                        if rollable && self.settings.rollout_restart {
                            outcome.actions.push(Action::RestartWorkload {
                                role: outcome.role.clone(),
                                namespace: workload.workload.namespace.clone(),
                                kind,
                                name: workload.workload.name.clone(),
                                restarted_at: self.observed.now,
                            });
                            Restart::Planned
                        } else {
                            Restart::Needed
                        }
                    }
                    _ => Restart::NotNeeded,
                };
                restarts.insert(workload.workload.clone(), restart);
            }
            for workload in &intent.workloads {
                plan.workloads.push(WorkloadPlan {
                    namespace: workload.workload.namespace.clone(),
                    workload: workload.workload.name.clone(),
                    kind: workload
                        .workload
                        .kind
                        .or_else(|| self.observed_kind(&workload.workload)),
                    service_account: Some(service_account.clone()),
                    role: Some(outcome.role.clone()),
                    role_arn: Some(outcome.arn.clone()),
                    binding: outcome.binding.clone(),
                    state,
                    message: message.clone(),
                    actions: outcome.actions.len(),
                    restart: restarts
                        .get(&workload.workload)
                        .copied()
                        .unwrap_or_default(),
                });
            }
            role_actions.extend(outcome.actions);
        }

        let tagged = if pending.is_empty() {
            BTreeMap::new()
        } else {
            self.roles_by_tagged_workload()
        };
        for (workload, reason) in &pending {
            let held = self.workload_is_held(&workload.workload);
            let key = (
                workload.workload.namespace.as_str(),
                workload.workload.name.as_str(),
            );
            for role in tagged.get(&key).into_iter().flatten() {
                claimed.insert(role.name.as_str().to_ascii_lowercase());
            }
            plan.workloads.push(WorkloadPlan {
                namespace: workload.workload.namespace.clone(),
                workload: workload.workload.name.clone(),
                kind: workload.workload.kind,
                service_account: None,
                role: None,
                role_arn: None,
                binding: None,
                state: if held {
                    WorkloadState::Held
                } else {
                    WorkloadState::Pending
                },
                message: reason.clone(),
                actions: 0,
                restart: Restart::NotNeeded,
            });
        }

        self.report_held_roles(&claimed, &mut plan);
        self.report_held_workloads(&mut plan);
        if needs_oidc_provider {
            let provider = self.plan_oidc_provider();
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
        if self.settings.permissions_boundary.is_none()
            && !self.settings.require_boundary
            && role_actions
                .iter()
                .any(|a| matches!(a, Action::CreateRole { .. }))
        {
            plan.warnings.push(
                "roles are created without a permissions boundary: the requirement is turned off"
                    .to_owned(),
            );
        }
        plan.actions.extend(role_actions);
        self.plan_orphans(&claimed, &mut plan);
        self.one_action_per_addon(&mut plan.actions);
        plan
    }

    /// IRSA gives an add-on one role setting, so the ServiceAccounts of one add-on that have
    /// intents share one role: the first one's (by namespace and name), whose trust names each
    /// of them and whose permissions are the union of theirs.
    fn share_addon_roles(
        &self,
        intents: &mut BTreeMap<ServiceAccountRef, RoleIntent<'a>>,
        warnings: &mut Vec<String>,
    ) {
        let mut by_addon: BTreeMap<&str, Vec<ServiceAccountRef>> = BTreeMap::new();
        for service_account in intents.keys() {
            if let Some(addon) = self.addons.get(service_account) {
                by_addon
                    .entry(addon.name.as_str())
                    .or_default()
                    .push(service_account.clone());
            }
        }
        for (addon, service_accounts) in by_addon {
            let [first, rest @ ..] = service_accounts.as_slice() else {
                continue;
            };
            if rest.is_empty() {
                continue;
            }
            for other in rest {
                let Some(moved) = intents.remove(other) else {
                    continue;
                };
                if let Some(shared) = intents.get_mut(first) {
                    shared.workloads.extend(moved.workloads);
                    shared.shared_with.push(other.clone());
                }
            }
            let names: Vec<String> = service_accounts.iter().map(ToString::to_string).collect();
            warnings.push(format!(
                "add-on {addon} runs as ServiceAccounts {}, which all have intents: with IRSA an add-on has one role, so they share the role of {first}, trusted by each, with the union of their permissions",
                names.join(" and ")
            ));
        }
    }

    /// One change per add-on. Roles are planned one by one, but an add-on has one setting (IRSA)
    /// or one association map that EKS replaces whole (Pod Identity): the changes planned for
    /// one add-on are merged into one fully specified action, placed before any role it
    /// unbinds is deleted and after every role it binds is made.
    fn one_action_per_addon(&self, actions: &mut Vec<Action>) {
        let addons: BTreeSet<String> = actions
            .iter()
            .filter_map(|action| match action {
                Action::SetAddonRole { addon, .. } | Action::SetAddonAssociations { addon, .. } => {
                    Some(addon.clone())
                }
                _ => None,
            })
            .collect();
        for name in addons {
            let indices: Vec<usize> = actions
                .iter()
                .enumerate()
                .filter(|(_, action)| match action {
                    Action::SetAddonRole { addon, .. }
                    | Action::SetAddonAssociations { addon, .. } => *addon == name,
                    _ => false,
                })
                .map(|(i, _)| i)
                .collect();
            let (Some(&first), Some(&last)) = (indices.first(), indices.last()) else {
                continue;
            };
            if first == last {
                continue;
            }
            let observed: BTreeMap<String, String> = self
                .observed
                .addons
                .iter()
                .find(|a| a.name == name)
                .map(addon_associations)
                .unwrap_or_default();
            let unbinds = |action: &Action| match action {
                Action::SetAddonRole { role_arn, .. } => role_arn.is_none(),
                Action::SetAddonAssociations { associations, .. } => {
                    observed.keys().any(|k| !associations.contains_key(k))
                }
                _ => false,
            };
            let merged = match &actions[first] {
                // A role set by a claimed role wins over the unbinding of an orphan.
                Action::SetAddonRole { .. } => indices
                    .iter()
                    .rev()
                    .map(|&i| &actions[i])
                    .find(|a| {
                        matches!(
                            a,
                            Action::SetAddonRole {
                                role_arn: Some(_),
                                ..
                            }
                        )
                    })
                    .unwrap_or(&actions[first])
                    .clone(),
                Action::SetAddonAssociations { role, .. } => {
                    let mut merged = observed.clone();
                    for &i in &indices {
                        if let Action::SetAddonAssociations { associations, .. } = &actions[i] {
                            for (sa, arn) in associations {
                                if observed.get(sa) != Some(arn) {
                                    merged.insert(sa.clone(), arn.clone());
                                }
                            }
                            for sa in observed.keys() {
                                if !associations.contains_key(sa) {
                                    merged.remove(sa);
                                }
                            }
                        }
                    }
                    Action::SetAddonAssociations {
                        role: role.clone(),
                        addon: name.clone(),
                        associations: merged,
                    }
                }
                _ => continue,
            };
            let position = indices
                .iter()
                .copied()
                .find(|&i| unbinds(&actions[i]))
                .unwrap_or(last);
            // The executor runs each role's actions in order, roles side by side: the merged
            // change goes to the role it unbinds (before that role's deletion), else to the
            // last role it binds (after that role's creation).
            let mut merged = merged;
            if let (
                Action::SetAddonRole { role, .. } | Action::SetAddonAssociations { role, .. },
                Some(owner),
            ) = (&mut merged, actions[position].role())
            {
                *role = owner.clone();
            }
            actions[position] = merged;
            for &i in indices.iter().rev() {
                if i != position {
                    actions.remove(i);
                }
            }
        }
    }

    /// The ServiceAccount a workload runs as. Without an observation of the cluster's
    /// workloads (planning from files), a ServiceAccount named after the workload.
    fn resolve_service_account(&self, workload: &WorkloadRef) -> Result<ServiceAccountRef, String> {
        let Some(index) = &self.workloads else {
            return Ok(ServiceAccountRef {
                namespace: workload.namespace.clone(),
                name: ServiceAccountName::new(workload.name.as_str()),
            });
        };
        let found = index
            .get(&(workload.namespace.as_str(), workload.name.as_str()))
            .and_then(|candidates| {
                candidates
                    .iter()
                    .find(|w| workload.kind.is_none_or(|kind| kind == w.kind))
            });
        match found {
            Some(observed) => Ok(observed.service_account()),
            None => Err(format!(
                "no {} named {} in namespace {} yet; its role is created once it appears",
                workload.kind.map_or("workload", |k| k.as_str()),
                workload.name,
                workload.namespace
            )),
        }
    }

    /// The kind of the observed workload a desired one resolves to (none when the cluster's
    /// workloads were not observed).
    fn observed_kind(&self, workload: &WorkloadRef) -> Option<WorkloadKind> {
        self.workloads
            .as_ref()?
            .get(&(workload.namespace.as_str(), workload.name.as_str()))?
            .iter()
            .find(|w| workload.kind.is_none_or(|kind| kind == w.kind))
            .map(|w| w.kind)
    }

    fn issuer(&self) -> Option<&'a str> {
        self.observed.cluster.oidc_host_path()
    }

    fn provider_arn(&self, issuer: &str) -> String {
        policy::oidc_provider_arn(self.cluster, issuer)
    }

    fn plan_oidc_provider(&self) -> Vec<Action> {
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
                tags: BTreeMap::from([
                    (OWNER_TAG.to_owned(), policy::OWNER_VALUE.to_owned()),
                    (
                        policy::CLUSTER_TAG.to_owned(),
                        policy::tag_value(&self.cluster.arn()),
                    ),
                ]),
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

    fn workload_is_held(&self, workload: &WorkloadRef) -> bool {
        !self
            .desired
            .held
            .bundles_naming(workload.namespace.as_str(), workload.name.as_str())
            .is_empty()
    }

    /// The invalid bundles that hold a role or its workloads, for the status message.
    fn holding_bundles(&self, workloads: &[&WorkloadRef], role: Option<&ObservedRole>) -> String {
        let held = &self.desired.held;
        let mut bundles: BTreeSet<&str> = workloads
            .iter()
            .flat_map(|w| held.bundles_naming(w.namespace.as_str(), w.name.as_str()))
            .collect();
        if let Some(role) = role {
            let (tagged, _) = policy::tagged_bundles(&role.tags);
            bundles.extend(
                held.bundles
                    .iter()
                    .map(String::as_str)
                    .filter(|b| tagged.contains(&policy::tag_value(b).as_str())),
            );
        }
        held_message(&bundles)
    }

    fn role_is_held(&self, role: &ObservedRole) -> bool {
        let held = &self.desired.held;
        if held.is_empty() {
            return false;
        }
        let (bundles, overflow) = policy::tagged_bundles(&role.tags);
        if bundles.iter().any(|b| self.held_bundle_tags.contains(*b))
            || (overflow && !held.bundles.is_empty())
        {
            return true;
        }
        let namespace = role.tags.get(policy::NAMESPACE_TAG);
        let workloads = role.tags.get(policy::WORKLOADS_TAG);
        match (namespace, workloads) {
            (Some(namespace), Some(workloads)) => held.workloads.iter().any(|held| {
                held.namespace.as_str() == namespace
                    && workloads.split(' ').any(|w| w == held.name.as_str())
            }),
            _ => false,
        }
    }

    /// Owned roles by each (namespace, workload) their tags name: a pending workload keeps
    /// them. Made once per plan, not once per pending workload.
    fn roles_by_tagged_workload(&self) -> BTreeMap<(&'a str, &'a str), Vec<&'a ObservedRole>> {
        let mut index: BTreeMap<(&str, &str), Vec<&ObservedRole>> = BTreeMap::new();
        for &role in self.roles.values() {
            if policy::ownership(&role.tags, self.cluster) != Ownership::Ours {
                continue;
            }
            let (Some(namespace), Some(workloads)) = (
                role.tags.get(policy::NAMESPACE_TAG),
                role.tags.get(policy::WORKLOADS_TAG),
            ) else {
                continue;
            };
            for name in workloads.split(' ') {
                index.entry((namespace, name)).or_default().push(role);
            }
        }
        index
    }

    fn plan_role(&self, service_account: &ServiceAccountRef, intent: &RoleIntent) -> RoleOutcome {
        let role = policy::role_name(&self.cluster.name, service_account);
        let observed = self.roles.get(&role.as_str().to_ascii_lowercase()).copied();
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
        let mut outcome = RoleOutcome {
            warnings: Vec::new(),
            role: role.clone(),
            arn: arn.clone(),
            binding: Some(binding.clone()),
            actions: Vec::new(),
            problem: None,
            drift: BTreeSet::new(),
        };
        let fail = |mut outcome: RoleOutcome, message: String| {
            outcome.actions.clear();
            outcome.problem = Some((WorkloadState::Error, message));
            outcome
        };

        let held = intent
            .workloads
            .iter()
            .any(|w| self.workload_is_held(&w.workload))
            || observed.is_some_and(|r| self.role_is_held(r));
        if held {
            let workloads: Vec<&WorkloadRef> =
                intent.workloads.iter().map(|w| &w.workload).collect();
            outcome.problem = Some((
                WorkloadState::Held,
                self.holding_bundles(&workloads, observed),
            ));
            return outcome;
        }
        if service_account.name.as_str() == "default"
            && !self.settings.allow_default_service_account
        {
            return fail(
                outcome,
                format!(
                    "runs as the default ServiceAccount of namespace {ns}, which every pod of {ns} uses unless told otherwise: binding a role to it would give these permissions to all of them. Give the workload its own ServiceAccount (spec.template.spec.serviceAccountName), or allow this in the settings (allow_default_service_account)",
                    ns = service_account.namespace
                ),
            );
        }
        if let Some(role) = observed {
            match policy::ownership(&role.tags, self.cluster) {
                Ownership::Ours => {}
                Ownership::OtherCluster(other) => {
                    return fail(
                        outcome,
                        format!(
                            "IAM role {} already exists and belongs to the eks-intents of cluster {other}; it is left alone. Give one of the clusters another name",
                            role.name
                        ),
                    );
                }
                Ownership::Foreign => {
                    return fail(
                        outcome,
                        format!(
                            "IAM role {} already exists and is not managed by eks-intents (no {OWNER_TAG} tag); it is left alone. Rename or remove it, or tag it to hand it over",
                            role.name
                        ),
                    );
                }
            }
        }

        let trust = match self.settings.mode {
            BindingMode::Irsa => {
                let Some(issuer) = self.issuer() else {
                    return fail(
                        outcome,
                        format!(
                            "cluster {} has no OIDC issuer, which IRSA needs; use Pod Identity mode or enable the cluster's OIDC issuer",
                            self.cluster.name
                        ),
                    );
                };
                let trusted: Vec<&ServiceAccountRef> = std::iter::once(service_account)
                    .chain(&intent.shared_with)
                    .collect();
                policy::irsa_trust_for(&self.provider_arn(issuer), issuer, &trusted)
            }
            BindingMode::PodIdentity => policy::pod_identity_trust(self.cluster, service_account),
        };
        if trust.iam_size() > self.settings.quotas.trust_policy_chars {
            return fail(
                outcome,
                format!(
                    "the trust policy needs {} characters, more than the quota of {}",
                    trust.iam_size(),
                    self.settings.quotas.trust_policy_chars
                ),
            );
        }
        let permissions: BTreeSet<Permission> = intent
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
            .collect();
        // The reader cannot know the cluster's partition; a grant in another one never matches.
        let foreign: BTreeSet<String> = permissions
            .iter()
            .filter_map(|p| policy::check_partition(&p.resource, self.cluster.partition()).err())
            .collect();
        if !foreign.is_empty() {
            return fail(outcome, foreign.into_iter().collect::<Vec<_>>().join("; "));
        }
        let system = &self.system;
        let named: Vec<String> = permissions
            .iter()
            .filter_map(|p| {
                let within = policy::names_system_resource(&p.resource, system)?;
                Some(system_refusal(p, within))
            })
            .collect();
        if !named.is_empty() {
            return fail(outcome, format!("refused: {}", named.join("; ")));
        }
        // A wildcard reaching the system: granted, with the system's resources denied.
        let denial = policy::system_denial(&permissions, system);
        let bundles: BTreeSet<String> = intent
            .workloads
            .iter()
            .flat_map(|w| w.sources.iter().map(|s| s.bundle.clone()))
            .collect();
        if self.settings.permissions_boundary.is_none() && self.settings.require_boundary {
            return fail(
                outcome,
                "no permissions boundary is configured (EKS_INTENTS_PERMISSIONS_BOUNDARY): roles are neither created nor changed without one, since whoever uploads intents would otherwise get whatever they ask for. Configure the boundary, or turn the requirement off (EKS_INTENTS_REQUIRE_BOUNDARY=false)".to_owned(),
            );
        }
        if self.settings.refuse_dangerous {
            let refused: Vec<String> = permissions
                .iter()
                .filter_map(|p| policy::danger(p).map(|why| (p, why)))
                .filter(|(p, _)| !self.excepted(p, intent))
                .map(|(p, why)| {
                    format!(
                        "{} on {}: {why}",
                        p.action,
                        crate::intent::echo(&p.resource)
                    )
                })
                .collect();
            if !refused.is_empty() {
                return fail(
                    outcome,
                    format!(
                        "refused: {}. Such actions let a workload create or take over identities or read every secret; the platform team can allow one for this workload with an exception in the settings (EKS_INTENTS_DANGEROUS_EXCEPTIONS)",
                        refused.join("; ")
                    ),
                );
            }
        }
        let broad: Vec<&str> = permissions
            .iter()
            .filter(|p| policy::broad(p))
            .map(|p| p.action.as_str())
            .collect();
        if !broad.is_empty() {
            outcome.warnings.push(format!(
                "{} granted {}",
                intent.subject(),
                policy::broad_warning(&broad)
            ));
        }
        let mut statements = policy::permission_statements(&permissions);
        statements.extend(denial.as_ref().map(|(deny, _)| deny.clone()));
        let layout = match policy::layout_permissions(&statements, &self.settings.quotas) {
            Ok(layout) => layout,
            Err(error) => return fail(outcome, error.to_string()),
        };
        if let Some((deny, reaching)) = &denial {
            outcome.warnings.push(format!(
                "{} granted {} on resources that include eks-intents' own: its policy denies every action on {} explicitly",
                intent.subject(),
                reaching.join(", "),
                deny.resources.join(", ")
            ));
        }
        let mut tags = policy::role_tags(
            self.cluster,
            service_account,
            intent.workloads.iter().map(|w| &w.workload.name),
            &bundles,
        );
        let declared = declared_digest(
            &trust,
            &layout,
            self.settings.permissions_boundary.as_deref(),
            &tags,
        );
        // Only while the intents are what they were when the role was last written is a
        // difference on the role or its binding someone's hand edit.
        let intents_unchanged =
            observed.is_some_and(|r| r.tags.get(DECLARED_TAG) == Some(&declared));
        tags.insert(DECLARED_TAG.to_owned(), declared);

        let mut actions = Vec::new();
        match observed {
            None => actions.push(Action::CreateRole {
                role: role.clone(),
                path: self.path.clone(),
                arn: arn.clone(),
                description: format!(
                    "eks-intents: AWS access of ServiceAccount {service_account} in EKS cluster {}",
                    self.cluster.name
                ),
                trust_policy: trust,
                permissions_boundary: self.settings.permissions_boundary.clone(),
                tags,
            }),
            Some(current) => {
                if !current.trust_policy.same_meaning(&trust) {
                    actions.push(Action::UpdateTrustPolicy {
                        role: role.clone(),
                        trust_policy: trust,
                    });
                }
                if let Some(boundary) = &self.settings.permissions_boundary
                    && current.permissions_boundary.as_ref() != Some(boundary)
                {
                    actions.push(Action::PutPermissionsBoundary {
                        role: role.clone(),
                        permissions_boundary: boundary.clone(),
                    });
                }
                actions.extend(tag_changes(&role, &current.tags, &tags));
            }
        }
        actions.extend(self.policy_changes(&role, observed, &layout));

        match self.binding_changes(&role, &arn, service_account, &binding, addon) {
            Ok((binding_actions, waiting)) => {
                actions.extend(binding_actions);
                if let Some(reason) = waiting {
                    outcome.problem = Some((WorkloadState::Pending, reason));
                }
            }
            Err(conflict) => {
                // The role itself is still kept as declared; only the binding is refused.
                outcome.problem = Some((WorkloadState::Error, conflict));
            }
        }
        outcome.drift = match observed {
            Some(_) if intents_unchanged => self.drift_in(
                &actions,
                self.service_accounts.get(service_account).copied(),
            ),
            Some(_) => BTreeSet::new(),
            None if self.is_bound_anywhere(&arn) => BTreeSet::from([DriftKind::RoleMissing]),
            None => BTreeSet::new(),
        };
        outcome.actions = actions;
        outcome
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
                | Action::DeletePodIdentityAssociation { .. } => {
                    Some(DriftKind::PodIdentityAssociation)
                }
                Action::SetAddonRole { .. } => Some(DriftKind::AddonRole),
                _ => None,
            })
            .collect()
    }

    /// True when some binding this system made still names `arn`: the role existed.
    fn is_bound_anywhere(&self, arn: &str) -> bool {
        self.bound_arns.contains(arn)
    }

    fn policy_changes(
        &self,
        role: &RoleName,
        observed: Option<&ObservedRole>,
        layout: &PermissionLayout,
    ) -> Vec<Action> {
        let empty_inline = BTreeMap::new();
        let empty_attached = BTreeSet::new();
        let inline = observed.map_or(&empty_inline, |r| &r.inline_policies);
        let attached = observed.map_or(&empty_attached, |r| &r.attached_policies);

        let mut wanted_parts: Vec<(String, String, &PolicyDocument)> = Vec::new();
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
        let wanted_arns: BTreeSet<&str> = wanted_parts.iter().map(|(_, a, _)| a.as_str()).collect();

        let mut detach: Vec<Action> = attached
            .iter()
            .filter(|arn| !wanted_arns.contains(arn.as_str()))
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
        for (name, arn, document) in &wanted_parts {
            match self.managed.get(arn.as_str()) {
                None => actions.push(Action::CreateManagedPolicy {
                    role: role.clone(),
                    name: name.clone(),
                    path: self.path.clone(),
                    arn: arn.clone(),
                    document: (*document).clone(),
                    tags: BTreeMap::from([
                        (OWNER_TAG.to_owned(), policy::OWNER_VALUE.to_owned()),
                        (
                            policy::CLUSTER_TAG.to_owned(),
                            policy::tag_value(&self.cluster.arn()),
                        ),
                    ]),
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
        }
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
        // Parts of this role that are no longer wanted, attached or left over.
        let part_prefix = format!("{role}.part");
        for (arn, policy) in &self.managed {
            if policy.name.starts_with(&part_prefix)
                && !wanted_arns.contains(arn)
                && policy::ownership(&policy.tags, self.cluster) == Ownership::Ours
            {
                actions.push(Action::DeleteManagedPolicy {
                    role: role.clone(),
                    arn: (*arn).to_owned(),
                });
            }
        }
        actions
    }

    /// The binding's changes, and a reason to wait when the ServiceAccount is not there yet.
    /// An error when someone else's binding is in the way: it is reported, never forced.
    fn binding_changes(
        &self,
        role: &RoleName,
        arn: &str,
        service_account: &ServiceAccountRef,
        binding: &Binding,
        addon: Option<&ObservedAddon>,
    ) -> Result<(Vec<Action>, Option<String>), String> {
        let mut actions = Vec::new();
        let observed_sa = self.service_accounts.get(service_account).copied();
        let associations = self
            .associations
            .get(service_account)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let ours = |a: &ObservedAssociation| {
            a.owner_arn.is_none()
                && a.tags.get(OWNER_TAG).map(String::as_str) == Some(policy::OWNER_VALUE)
        };

        // Bindings of the other mode that this system made are removed: they no longer work
        // with the role's trust policy.
        if !matches!(binding, Binding::ServiceAccountAnnotation)
            && let Some(sa) = observed_sa
            && sa.annotation_owned
            && sa.role_annotation().is_some()
        {
            actions.push(Action::RemoveServiceAccountAnnotation {
                role: role.clone(),
                service_account: service_account.clone(),
            });
        }
        if !matches!(binding, Binding::PodIdentityAssociation) {
            for association in associations.iter().filter(|a| ours(a)) {
                actions.push(Action::DeletePodIdentityAssociation {
                    role: role.clone(),
                    association_id: association.association_id.clone(),
                    service_account: service_account.clone(),
                });
            }
        }

        match binding {
            Binding::ServiceAccountAnnotation => {
                let sa = match observed_sa {
                    Some(sa) => sa,
                    None if self.workloads.is_some() => {
                        return Ok((
                            actions,
                            Some(format!(
                                "ServiceAccount {service_account} does not exist yet; the role is kept ready and bound once it appears"
                            )),
                        ));
                    }
                    None => {
                        actions.push(Action::AnnotateServiceAccount {
                            role: role.clone(),
                            service_account: service_account.clone(),
                            role_arn: arn.to_owned(),
                            force: false,
                        });
                        return Ok((actions, None));
                    }
                };
                match sa.role_annotation() {
                    Some(current) if current == arn => {}
                    Some(current) if !sa.annotation_owned && !self.settings.force_annotations => {
                        return Err(format!(
                            "ServiceAccount {service_account} is already annotated with role {current} by another manager; not overwriting it. Remove that annotation, or allow forcing in the settings (EKS_INTENTS_FORCE_ANNOTATIONS)"
                        ));
                    }
                    current => actions.push(Action::AnnotateServiceAccount {
                        role: role.clone(),
                        service_account: service_account.clone(),
                        role_arn: arn.to_owned(),
                        force: current.is_some() && !sa.annotation_owned,
                    }),
                }
            }
            Binding::PodIdentityAssociation => {
                if let Some(owned) = associations.iter().find(|a| a.owner_arn.is_some()) {
                    return Err(format!(
                        "ServiceAccount {service_account} has a Pod Identity association owned by {}; it is never taken over",
                        owned.owner_arn.as_deref().unwrap_or_default()
                    ));
                }
                match associations.first() {
                    None => actions.push(Action::CreatePodIdentityAssociation {
                        role: role.clone(),
                        service_account: service_account.clone(),
                        role_arn: arn.to_owned(),
                        tags: BTreeMap::from([
                            (OWNER_TAG.to_owned(), policy::OWNER_VALUE.to_owned()),
                            (
                                policy::CLUSTER_TAG.to_owned(),
                                policy::tag_value(&self.cluster.arn()),
                            ),
                        ]),
                    }),
                    Some(current) if current.role_arn == arn => {}
                    Some(current) if ours(current) => {
                        actions.push(Action::UpdatePodIdentityAssociation {
                            role: role.clone(),
                            association_id: current.association_id.clone(),
                            service_account: service_account.clone(),
                            role_arn: arn.to_owned(),
                        })
                    }
                    Some(current) => {
                        return Err(format!(
                            "ServiceAccount {service_account} already has Pod Identity association {} to role {}, not made by eks-intents; not replacing it",
                            current.association_id, current.role_arn
                        ));
                    }
                }
            }
            Binding::Addon { addon: name } => {
                let Some(addon) = addon else {
                    return Ok((actions, None));
                };
                let pod_identity = self.settings.mode == BindingMode::PodIdentity;
                let current = if pod_identity {
                    addon.pod_identity_associations.get(&service_account.name)
                } else {
                    addon.service_account_role_arn.as_ref()
                };
                match current {
                    Some(current) if current == arn => {}
                    Some(current) if !self.is_our_role_arn(current) => {
                        return Err(format!(
                            "EKS add-on {name} already uses role {current}, which eks-intents does not manage; not replacing it. Clear the add-on's role to hand it over"
                        ));
                    }
                    _ if pod_identity => {
                        let mut associations = addon_associations(addon);
                        associations.insert(service_account.name.to_string(), arn.to_owned());
                        actions.push(Action::SetAddonAssociations {
                            role: role.clone(),
                            addon: name.clone(),
                            associations,
                        });
                    }
                    _ => actions.push(Action::SetAddonRole {
                        role: role.clone(),
                        addon: name.clone(),
                        service_account: service_account.clone(),
                        role_arn: Some(arn.to_owned()),
                    }),
                }
            }
        }
        Ok((actions, None))
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

    fn is_our_role_arn(&self, arn: &str) -> bool {
        self.roles.values().any(|role| {
            role.arn == arn && policy::ownership(&role.tags, self.cluster) == Ownership::Ours
        })
    }

    /// Owned roles that no valid intent claims any more but whose source fails to read: their
    /// workloads (from the role's tags) are reported as held, so the status says why nothing
    /// happens to them.
    fn report_held_roles(&self, claimed: &BTreeSet<String>, plan: &mut Plan) {
        for (key, role) in &self.roles {
            if claimed.contains(key)
                || policy::ownership(&role.tags, self.cluster) != Ownership::Ours
                || !self.role_is_held(role)
            {
                continue;
            }
            let namespace = role
                .tags
                .get(policy::NAMESPACE_TAG)
                .cloned()
                .unwrap_or_default();
            let service_account = role.tags.get(policy::SERVICE_ACCOUNT_TAG).cloned();
            let workloads = role
                .tags
                .get(policy::WORKLOADS_TAG)
                .cloned()
                .unwrap_or_default();
            for workload in workloads
                .split(' ')
                .filter(|w| !w.is_empty() && !w.starts_with('+'))
            {
                plan.workloads.push(WorkloadPlan {
                    namespace: namespace.as_str().into(),
                    workload: workload.into(),
                    kind: None,
                    service_account: service_account.as_ref().map(|sa| ServiceAccountRef {
                        namespace: namespace.as_str().into(),
                        name: sa.as_str().into(),
                    }),
                    role: Some(role.name.clone()),
                    role_arn: Some(role.arn.clone()),
                    binding: None,
                    state: WorkloadState::Held,
                    message: self.holding_bundles(&[], Some(role)),
                    actions: 0,
                    restart: Restart::NotNeeded,
                });
            }
        }
    }

    /// Workloads an invalid bundle names that no other step reported (they have no role yet,
    /// or none that tells): held, so the status names each with the bundle to fix.
    fn report_held_workloads(&self, plan: &mut Plan) {
        let reported: BTreeSet<(String, String)> = plan
            .workloads
            .iter()
            .map(|w| {
                (
                    w.namespace.as_str().to_owned(),
                    w.workload.as_str().to_owned(),
                )
            })
            .collect();
        let mut seen = BTreeSet::new();
        for held in &self.desired.held.workloads {
            let key = (
                held.namespace.as_str().to_owned(),
                held.name.as_str().to_owned(),
            );
            if reported.contains(&key) || !seen.insert(key) {
                continue;
            }
            let bundles = self
                .desired
                .held
                .bundles_naming(held.namespace.as_str(), held.name.as_str())
                .into_iter()
                .collect();
            plan.workloads.push(WorkloadPlan {
                namespace: held.namespace.clone(),
                workload: held.name.clone(),
                kind: None,
                service_account: None,
                role: None,
                role_arn: None,
                binding: None,
                state: WorkloadState::Held,
                message: held_message(&bundles),
                actions: 0,
                restart: Restart::NotNeeded,
            });
        }
    }

    /// Owned roles that no intent claims: marked, then deleted after the grace period. Held
    /// roles are never touched. When more roles are due than `max_deletions_per_run`, none is
    /// deleted (a breaker, not a rate): a prefix removed by mistake must not empty a cluster a
    /// few roles at a time. With `soft_delete`, a due role is only unbound.
    fn plan_orphans(&self, claimed: &BTreeSet<String>, plan: &mut Plan) {
        let now = self.observed.now;
        let grace = self.settings.deletion_grace_seconds;
        let mut due: Vec<&ObservedRole> = Vec::new();
        for (key, role) in &self.roles {
            if claimed.contains(key)
                || policy::ownership(&role.tags, self.cluster) != Ownership::Ours
                || self.role_is_held(role)
            {
                continue;
            }
            let since = role
                .tags
                .get(ORPHANED_TAG)
                .and_then(|value| value.parse::<u64>().ok());
            let (state, message) = match since {
                None => {
                    plan.actions.push(Action::MarkRoleForDeletion {
                        role: role.name.clone(),
                        since: now,
                    });
                    (
                        OrphanState::Marked,
                        format!(
                            "no intent declares it any more; deleted after the grace period of {grace} s unless its intents come back"
                        ),
                    )
                }
                Some(since) if now < since.saturating_add(grace) => (
                    OrphanState::Waiting,
                    format!(
                        "no intent declares it since {since}; deleted from {} on",
                        since.saturating_add(grace)
                    ),
                ),
                Some(_) => {
                    due.push(role);
                    continue;
                }
            };
            plan.orphans.push(OrphanPlan {
                role: role.name.clone(),
                arn: role.arn.clone(),
                state,
                message,
            });
        }
        let cap = self.settings.max_deletions_per_run;
        if due.len() > cap {
            let breaker = DeletionBreaker {
                due: due.len(),
                cap,
            };
            for role in due {
                plan.orphans.push(OrphanPlan {
                    role: role.name.clone(),
                    arn: role.arn.clone(),
                    state: OrphanState::HeldByBreaker,
                    message: breaker.message(),
                });
            }
            plan.breaker = Some(breaker);
            return;
        }
        for role in due {
            let (state, message) = if self.settings.soft_delete {
                plan.actions.extend(self.unbinding(role));
                (
                    OrphanState::Unbound,
                    "grace period over: unbound and kept (soft delete)".to_owned(),
                )
            } else {
                let unbinding = self.unbinding(role);
                // Exactly what goes: each binding, then the role with its policies. The
                // executor runs them in this order and stops at the first failure, so the role
                // is deleted only once every unbinding succeeded.
                let unbound: Vec<String> = unbinding.iter().map(ToString::to_string).collect();
                let message = if unbound.is_empty() {
                    "grace period over: bound nowhere; deleted with its policies".to_owned()
                } else {
                    format!(
                        "grace period over: unbound ({}), then deleted with its policies",
                        unbound.join("; ")
                    )
                };
                plan.actions.extend(unbinding);
                plan.actions.extend(self.deletion(role));
                (OrphanState::Deleting, message)
            };
            plan.orphans.push(OrphanPlan {
                role: role.name.clone(),
                arn: role.arn.clone(),
                state,
                message,
            });
        }
    }

    /// Every binding this system made to the role: annotations, associations, add-on settings.
    fn unbinding(&self, role: &ObservedRole) -> Vec<Action> {
        let name = &role.name;
        let mut actions = Vec::new();
        for (id, sa) in &self.service_accounts {
            if sa.annotation_owned && sa.role_annotation() == Some(role.arn.as_str()) {
                actions.push(Action::RemoveServiceAccountAnnotation {
                    role: name.clone(),
                    service_account: id.clone(),
                });
            }
        }
        for (id, list) in &self.associations {
            for association in list {
                if association.role_arn == role.arn && association.owner_arn.is_none() {
                    actions.push(Action::DeletePodIdentityAssociation {
                        role: name.clone(),
                        association_id: association.association_id.clone(),
                        service_account: id.clone(),
                    });
                }
            }
        }
        let mut seen_addons = BTreeSet::new();
        for (id, addon) in &self.addons {
            if addon.service_account_role_arn.as_deref() == Some(role.arn.as_str())
                && seen_addons.insert(addon.name.clone())
            {
                actions.push(Action::SetAddonRole {
                    role: name.clone(),
                    addon: addon.name.clone(),
                    service_account: id.clone(),
                    role_arn: None,
                });
            }
            if addon.pod_identity_associations.get(&id.name) == Some(&role.arn) {
                let mut associations = addon_associations(addon);
                associations.remove(id.name.as_str());
                actions.push(Action::SetAddonAssociations {
                    role: name.clone(),
                    addon: addon.name.clone(),
                    associations,
                });
            }
        }
        actions
    }

    /// Empties the role, then deletes it (after `unbinding`).
    fn deletion(&self, role: &ObservedRole) -> Vec<Action> {
        let name = &role.name;
        let mut actions = Vec::new();
        for policy_name in role.inline_policies.keys() {
            actions.push(Action::DeleteInlinePolicy {
                role: name.clone(),
                policy_name: policy_name.clone(),
            });
        }
        for arn in &role.attached_policies {
            actions.push(Action::DetachManagedPolicy {
                role: name.clone(),
                policy_arn: arn.clone(),
            });
        }
        let part_prefix = format!("{name}.part");
        for (arn, policy) in &self.managed {
            if policy.name.starts_with(&part_prefix)
                && policy::ownership(&policy.tags, self.cluster) == Ownership::Ours
            {
                actions.push(Action::DeleteManagedPolicy {
                    role: name.clone(),
                    arn: (*arn).to_owned(),
                });
            }
        }
        actions.push(Action::DeleteRole { role: name.clone() });
        actions
    }
}

/// The value of `DECLARED_TAG`: a digest of everything the intents and settings declare for a
/// role, so that the next run can tell a hand edit from a change of intents.
fn declared_digest(
    trust: &PolicyDocument,
    layout: &PermissionLayout,
    boundary: Option<&str>,
    tags: &BTreeMap<String, String>,
) -> String {
    let mut text = trust.to_json();
    text.push('\n');
    text.push_str(match layout {
        PermissionLayout::Empty => "empty",
        PermissionLayout::Inline(_) => "inline",
        PermissionLayout::Managed(_) => "managed",
    });
    for document in layout.documents() {
        text.push('\n');
        text.push_str(&document.to_json());
    }
    text.push('\n');
    text.push_str(boundary.unwrap_or_default());
    for (key, value) in tags {
        if key != ORPHANED_TAG && key != DECLARED_TAG {
            text.push('\n');
            text.push_str(key);
            text.push('=');
            text.push_str(value);
        }
    }
    policy::short_hash(&text, 16)
}

/// Tag changes limited to the system's own keys: tags anyone else set stay untouched.
fn tag_changes(
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

#[cfg(test)]
mod addon_tests;
#[cfg(test)]
mod held_tests;
#[cfg(test)]
mod protect_tests;
#[cfg(test)]
mod tests;

/// Why `permission` is refused: it names `system`, one of the system's own resources. Shared
/// with `eks-intents validate`, so the preview says what the reconciler says.
pub fn system_refusal(permission: &Permission, system: &str) -> String {
    format!(
        "{} on {}: a resource of eks-intents itself ({}); no workload may act on the system's bucket, queues, functions, roles or boundary, nor on the roles and policies under its IAM path",
        permission.action,
        crate::intent::echo(&permission.resource),
        crate::intent::echo(system)
    )
}

/// Why a workload is held, naming the bundles to fix.
fn held_message(bundles: &BTreeSet<&str>) -> String {
    if bundles.is_empty() {
        return "a bundle that declares this workload fails to read: its role and binding are left exactly as they are until it is fixed".to_owned();
    }
    let list: Vec<&str> = bundles.iter().copied().collect();
    format!(
        "bundle {} fails to read (see its errors): a bundle applies whole or not at all, so this workload's role and binding are left exactly as the last valid version made them until it is fixed",
        list.join(", ")
    )
}

/// An add-on's Pod Identity associations as EKS takes them: ServiceAccount name -> role ARN.
/// The role ARNs that a binding this system made names: an annotation it owns, an association
/// without an owner, an add-on's role setting or association. Gathered once per plan, as every
/// new role asks whether it existed before.
fn bound_arns<'a>(
    service_accounts: &BTreeMap<ServiceAccountRef, &'a ObservedServiceAccount>,
    associations: &BTreeMap<ServiceAccountRef, Vec<&'a ObservedAssociation>>,
    addons: &BTreeMap<ServiceAccountRef, &'a ObservedAddon>,
) -> BTreeSet<&'a str> {
    let annotations = service_accounts
        .values()
        .filter(|sa| sa.annotation_owned)
        .filter_map(|sa| sa.role_annotation());
    let associations = associations
        .values()
        .flatten()
        .filter(|a| a.owner_arn.is_none())
        .map(|a| a.role_arn.as_str());
    let addons = addons.values().flat_map(|addon| {
        let associations = addon.pod_identity_associations.values();
        addon
            .service_account_role_arn
            .as_deref()
            .into_iter()
            .chain(associations.map(String::as_str))
    });
    annotations.chain(associations).chain(addons).collect()
}

fn addon_associations(addon: &ObservedAddon) -> BTreeMap<String, String> {
    addon
        .pod_identity_associations
        .iter()
        .map(|(sa, arn)| (sa.to_string(), arn.clone()))
        .collect()
}
