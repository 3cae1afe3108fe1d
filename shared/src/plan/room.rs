//! Room for new roles and Pod Identity associations. A role whose plan would create a role
//! past the account's roles quota, or an association past the cluster's association quota, is
//! planned with no action at all, and its workloads say why: the run creates nothing more than
//! there is room for. Roles are taken in the planner's order (by ServiceAccount), so the same
//! ones get the room on every run, and a role once made keeps its place.
//!
//! The room is what is left before this run: roles and associations this run deletes make room
//! for the next. A new role bound through its add-on's associations takes room for one; an
//! add-on association that goes missing for a role that exists is put back without a check
//! (EKS refuses the add-on update when the cluster is full, and the run says so).

use super::{Action, Refusal, RoleOutcome};
use crate::model::{IamQuotas, Usage};

/// What is left of each quota; `None` sets no limit (the usage was not read).
pub(super) struct Room {
    roles: Option<Left>,
    associations: Option<Left>,
}

struct Left {
    left: usize,
    quota: usize,
}

impl Left {
    fn of(used: Option<usize>, quota: usize) -> Option<Self> {
        used.map(|used| Left {
            left: quota.saturating_sub(used),
            quota,
        })
    }

    fn fits(this: &Option<Self>, wanted: usize) -> bool {
        this.as_ref().is_none_or(|room| wanted <= room.left)
    }

    fn take(this: &mut Option<Self>, wanted: usize) {
        if let Some(room) = this {
            room.left -= wanted;
        }
    }
}

impl Room {
    pub(super) fn new(usage: &Usage, quotas: &IamQuotas) -> Self {
        Room {
            roles: Left::of(usage.roles_in_account, quotas.roles),
            associations: Left::of(
                usage.associations_in_cluster,
                quotas.pod_identity_associations,
            ),
        }
    }

    /// Takes the room `actions` need, or, when there is not enough left, takes nothing and
    /// says which quota is full.
    pub(super) fn take(&mut self, actions: &[Action]) -> Result<(), Refusal> {
        let roles = count(actions, |a| matches!(a, Action::CreateRole { .. }));
        // An association made again (deleted, then created) takes no more room.
        let associations = count(actions, |a| match a {
            Action::CreatePodIdentityAssociation { .. } => true,
            Action::SetAddonAssociations { .. } => roles > 0,
            _ => false,
        })
        .saturating_sub(count(actions, |a| {
            matches!(a, Action::DeletePodIdentityAssociation { .. })
        }));
        if !Left::fits(&self.roles, roles) {
            let quota = self.roles.as_ref().map_or(0, |r| r.quota);
            return Err(Refusal::RolesQuotaReached { quota });
        }
        if !Left::fits(&self.associations, associations) {
            let quota = self.associations.as_ref().map_or(0, |r| r.quota);
            return Err(Refusal::AssociationsQuotaReached { quota });
        }
        Left::take(&mut self.roles, roles);
        Left::take(&mut self.associations, associations);
        Ok(())
    }
}

fn count(actions: &[Action], creates: impl Fn(&Action) -> bool) -> usize {
    actions.iter().filter(|a| creates(a)).count()
}

impl RoleOutcome {
    /// The outcome of a role with no room for what it would create: a new role is not created
    /// at all; a role that exists keeps its own changes and goes without the association.
    pub(super) fn without_room(mut self, full: Refusal) -> Self {
        if self
            .actions
            .iter()
            .any(|a| matches!(a, Action::CreateRole { .. }))
        {
            return self.stopped(full.into());
        }
        self.actions
            .retain(|a| !matches!(a, Action::CreatePodIdentityAssociation { .. }));
        self.problem = Some(full.into());
        self
    }
}
