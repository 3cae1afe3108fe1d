//! Step 1, index: the lookup tables every later step reads, and which ServiceAccount each
//! declared workload runs as. It decides which workloads share a role (those that run as one
//! ServiceAccount), which wait for the cluster (their workload is not observed yet), and
//! which are held because a bundle that names them fails to read.

use super::{
    Plan, Planner, RoleIntent, Warning, WorkloadIdentity, WorkloadOutcome, WorkloadPlan,
    WorkloadState,
};
use crate::model::{
    DesiredState, DesiredWorkload, ObservedAddon, ObservedAssociation, ObservedRole,
    ObservedServiceAccount, ObservedState, ObservedWorkload, RoleArn, RoleKey, ServiceAccountName,
    ServiceAccountRef, Settings, WorkloadKind, WorkloadRef,
};
use crate::plan::report::Restart;
use crate::policy::{self, Ownership};
use std::collections::{BTreeMap, BTreeSet};

/// The index step's outcome: the workloads grouped by the ServiceAccount (so the role) they
/// run as, and those whose ServiceAccount is not known yet, with the reason.
pub(super) struct IndexReport<'a> {
    pub(super) intents: BTreeMap<ServiceAccountRef, RoleIntent<'a>>,
    pub(super) pending: Vec<(&'a DesiredWorkload, NotObservedYet)>,
}

/// A declared workload with the kind of the observed workload it resolved to (none when the
/// cluster's workloads were not observed): looked up once, when the workloads are grouped.
pub(super) struct Declared<'a> {
    pub(super) desired: &'a DesiredWorkload,
    pub(super) observed_kind: Option<WorkloadKind>,
}

impl std::ops::Deref for Declared<'_> {
    type Target = DesiredWorkload;

    fn deref(&self) -> &DesiredWorkload {
        self.desired
    }
}

/// A declared workload the cluster does not run (yet), so its ServiceAccount is unknown.
#[derive(Debug)]
pub(super) struct NotObservedYet(WorkloadRef);

/// Observed workloads by (namespace, name), each list sorted by kind.
/// Sorted by (namespace, name, kind), in the observed order within each: one list for the
/// whole cluster, looked up by halving (`workloads_named`).
type WorkloadIndex<'a> = Vec<&'a ObservedWorkload>;

impl<'a> Planner<'a> {
    pub(super) fn new(
        desired: &'a DesiredState,
        observed: &'a ObservedState,
        settings: &'a Settings,
    ) -> Self {
        let cluster = &observed.cluster.cluster;
        let service_accounts: BTreeMap<(&str, &str), &ObservedServiceAccount> = observed
            .service_accounts
            .iter()
            .map(|sa| ((sa.namespace.as_str(), sa.name.as_str()), sa))
            .collect();
        let associations = index_associations(observed);
        let addons = index_addons(observed);
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
                .map(|role| (role.name.key(), role))
                .collect(),
            targets: observed
                .targets
                .iter()
                .map(|(account, target)| {
                    let roles = target.roles.iter().map(|r| (r.name.key(), r)).collect();
                    (account.as_str(), roles)
                })
                .collect(),
            managed: observed
                .managed_policies
                .iter()
                .map(|p| (&p.arn, p))
                .collect(),
            service_accounts,
            associations,
            addons,
            workloads: observed
                .workloads
                .as_ref()
                .map(|list| index_workloads(list)),
            held_bundle_tags: desired
                .held
                .bundles
                .iter()
                .map(|b| policy::tag_value(b))
                .collect(),
            bound_arns,
        }
    }

    /// Groups the declared workloads by the ServiceAccount they run as; with IRSA, the
    /// ServiceAccounts of one add-on then share one role.
    pub(super) fn do_plan_index(&self, warnings: &mut Vec<Warning>) -> IndexReport<'a> {
        let mut intents: BTreeMap<ServiceAccountRef, RoleIntent<'a>> = BTreeMap::new();
        let mut pending: Vec<(&DesiredWorkload, NotObservedYet)> = Vec::new();
        for workload in self.desired.workloads.values() {
            match self.resolve_service_account(&workload.workload) {
                Ok((service_account, observed_kind)) => {
                    intents
                        .entry(service_account)
                        .or_insert_with(|| RoleIntent {
                            workloads: Vec::new(),
                            shared_with: Vec::new(),
                            recommended: Vec::new(),
                        })
                        .workloads
                        .push(Declared {
                            desired: workload,
                            observed_kind,
                        });
                }
                Err(reason) => pending.push((workload, reason)),
            }
        }
        if self.settings.addon_recommended_policies {
            self.recommended_roles(&mut intents);
        }
        if self.settings.mode == crate::model::BindingMode::Irsa {
            self.share_addon_roles(&mut intents, warnings);
        }
        IndexReport { intents, pending }
    }

    /// A role for each add-on ServiceAccount that has no intents and for which EKS recommends
    /// managed policies: those policies, attached. A ServiceAccount with intents gets exactly
    /// what they declare instead.
    fn recommended_roles(&self, intents: &mut BTreeMap<ServiceAccountRef, RoleIntent<'a>>) {
        for (service_account, addon) in &self.addons {
            let Some(recommended) = addon.recommended_policies.get(&service_account.name) else {
                continue;
            };
            if intents.contains_key(service_account) {
                continue;
            }
            let mut recommended = recommended.clone();
            recommended.sort();
            recommended.dedup();
            intents.insert(
                service_account.clone(),
                RoleIntent {
                    workloads: Vec::new(),
                    shared_with: Vec::new(),
                    recommended,
                },
            );
        }
    }

    /// Reports the workloads whose ServiceAccount is not known yet (pending, or held), and
    /// claims the roles their tags name, so that no later step treats those as orphans.
    pub(super) fn report_pending(
        &self,
        pending: &[(&DesiredWorkload, NotObservedYet)],
        claimed: &mut BTreeSet<RoleKey>,
        plan: &mut Plan,
    ) {
        let tagged = if pending.is_empty() {
            BTreeMap::new()
        } else {
            self.roles_by_tagged_workload()
        };
        for (workload, reason) in pending {
            let held = self.workload_is_held(&workload.workload);
            let key = (
                workload.workload.namespace.as_str(),
                workload.workload.name.as_str(),
            );
            for role in tagged.get(&key).into_iter().flatten() {
                claimed.insert(role.name.key());
            }
            plan.workloads.push(WorkloadPlan {
                identity: WorkloadIdentity {
                    namespace: workload.workload.namespace.clone(),
                    workload: workload.workload.name.clone(),
                    kind: workload.workload.kind,
                    service_account: None,
                    role_arn: None,
                    binding: None,
                    target_role_arn: None,
                },
                role: None,
                state: if held {
                    WorkloadState::Held
                } else {
                    WorkloadState::Pending
                },
                outcome: WorkloadOutcome::NotObservedYet(reason.0.clone()),
                actions: 0,
                restart: Restart::NotNeeded,
            });
        }
    }

    /// The ServiceAccount a workload runs as, and the kind of the observed workload it
    /// resolves to. Without an observation of the cluster's workloads (planning from files),
    /// a ServiceAccount named after the workload, and no kind.
    fn resolve_service_account(
        &self,
        workload: &WorkloadRef,
    ) -> Result<(ServiceAccountRef, Option<WorkloadKind>), NotObservedYet> {
        let Some(index) = &self.workloads else {
            let service_account = ServiceAccountRef {
                namespace: workload.namespace.clone(),
                name: ServiceAccountName::new(workload.name.as_str()),
            };
            return Ok((service_account, None));
        };
        let found = workloads_named(index, workload)
            .iter()
            .find(|w| workload.kind.is_none_or(|kind| kind == w.kind));
        match found {
            Some(observed) => Ok((observed.service_account(), Some(observed.kind))),
            None => Err(NotObservedYet(workload.clone())),
        }
    }

    /// The ServiceAccount as the cluster has it, if it does.
    pub(super) fn observed_service_account(
        &self,
        service_account: &ServiceAccountRef,
    ) -> Option<&'a ObservedServiceAccount> {
        let key = (
            service_account.namespace.as_str(),
            service_account.name.as_str(),
        );
        self.service_accounts.get(&key).copied()
    }

    pub(super) fn workload_is_held(&self, workload: &WorkloadRef) -> bool {
        !self
            .desired
            .held
            .bundles_naming(workload.namespace.as_str(), workload.name.as_str())
            .is_empty()
    }

    /// The invalid bundles that hold a role or its workloads, for the status message.
    pub(super) fn holding_bundles(
        &self,
        workloads: &[&WorkloadRef],
        role: Option<&ObservedRole>,
    ) -> BTreeSet<String> {
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
        bundles.into_iter().map(str::to_owned).collect()
    }

    pub(super) fn role_is_held(&self, role: &ObservedRole) -> bool {
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

    pub(super) fn is_our_role_arn(&self, arn: &RoleArn) -> bool {
        self.roles.values().any(|role| {
            role.arn == *arn && policy::ownership(&role.tags, self.cluster) == Ownership::Ours
        })
    }

    /// True when some binding this system made still names `arn`: the role existed.
    pub(super) fn is_bound_anywhere(&self, arn: &RoleArn) -> bool {
        self.bound_arns.contains(arn.as_str())
    }
}

/// The role ARNs that a binding this system made names: an annotation it owns, an association
/// without an owner, an add-on's role setting or association. Gathered once per plan, as every
/// new role asks whether it existed before.
fn bound_arns<'a>(
    service_accounts: &BTreeMap<(&'a str, &'a str), &'a ObservedServiceAccount>,
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
    let addon_roles = addons.values().flat_map(|addon| {
        addon
            .service_account_role_arn
            .iter()
            .chain(addon.pod_identity_associations.values())
            .map(RoleArn::as_str)
    });
    annotations.chain(associations).chain(addon_roles).collect()
}

/// Pod Identity associations by the ServiceAccount they bind, each list sorted by id.
fn index_associations(
    observed: &ObservedState,
) -> BTreeMap<ServiceAccountRef, Vec<&ObservedAssociation>> {
    let mut associations: BTreeMap<ServiceAccountRef, Vec<&ObservedAssociation>> = BTreeMap::new();
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
    associations
}

/// The add-on that owns each ServiceAccount.
fn index_addons(observed: &ObservedState) -> BTreeMap<ServiceAccountRef, &ObservedAddon> {
    let mut addons = BTreeMap::new();
    for addon in &observed.addons {
        for service_account in &addon.service_accounts {
            addons.insert(service_account.clone(), addon);
        }
    }
    addons
}

fn index_workloads(list: &[ObservedWorkload]) -> WorkloadIndex<'_> {
    let mut index: WorkloadIndex<'_> = list.iter().collect();
    // Stable: workloads of one name and kind keep their observed order.
    index.sort_by(|a, b| {
        (a.namespace.as_str(), a.name.as_str(), a.kind).cmp(&(
            b.namespace.as_str(),
            b.name.as_str(),
            b.kind,
        ))
    });
    index
}

/// The observed workloads of the declared workload's namespace and name, sorted by kind.
fn workloads_named<'i, 'a>(
    index: &'i WorkloadIndex<'a>,
    workload: &WorkloadRef,
) -> &'i [&'a ObservedWorkload] {
    let key = (workload.namespace.as_str(), workload.name.as_str());
    let start = index.partition_point(|w| (w.namespace.as_str(), w.name.as_str()) < key);
    // Mostly one workload of a name, rarely a few of different kinds: counted, not halved.
    let found = index[start..]
        .iter()
        .take_while(|w| (w.namespace.as_str(), w.name.as_str()) == key)
        .count();
    &index[start..start + found]
}

impl RoleIntent<'_> {
    /// The workloads the role is for, as the intents name them: what its warnings are about.
    pub(super) fn workload_refs(&self) -> Vec<WorkloadRef> {
        self.workloads.iter().map(|w| w.workload.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Namespace, WorkloadKind, WorkloadName};

    fn observed(namespace: &str, name: &str, kind: WorkloadKind, sa: &str) -> ObservedWorkload {
        ObservedWorkload {
            namespace: Namespace::new(namespace),
            name: WorkloadName::new(name),
            kind,
            service_account: sa.to_owned(),
        }
    }

    fn declared(namespace: &str, name: &str) -> WorkloadRef {
        WorkloadRef {
            namespace: Namespace::new(namespace),
            name: WorkloadName::new(name),
            kind: None,
        }
    }

    #[test]
    fn workloads_are_found_by_namespace_and_name_sorted_by_kind_in_observed_order() {
        let list = [
            observed("shop", "api", WorkloadKind::StatefulSet, "db"),
            observed("shop-2", "api", WorkloadKind::Deployment, "other-namespace"),
            observed("shop", "api", WorkloadKind::Deployment, "first"),
            observed("shop", "ap", WorkloadKind::Deployment, "shorter-name"),
            observed("shop", "api", WorkloadKind::Deployment, "second"),
            observed("shop", "apis", WorkloadKind::Job, "longer-name"),
        ];
        let index = index_workloads(&list);
        let found = |namespace, name| -> Vec<&str> {
            workloads_named(&index, &declared(namespace, name))
                .iter()
                .map(|w| w.service_account.as_str())
                .collect()
        };
        assert_eq!(found("shop", "api"), ["first", "second", "db"]);
        assert_eq!(found("shop", "ap"), ["shorter-name"]);
        assert_eq!(found("shop", "apis"), ["longer-name"]);
        assert_eq!(found("shop-2", "api"), ["other-namespace"]);
        assert!(found("shop", "web").is_empty());
        assert!(found("a", "api").is_empty());
        assert!(found("zzz", "api").is_empty());
    }
}
