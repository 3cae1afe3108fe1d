//! Session policies (Pod Identity, setting `session_policies`): a role's association carries
//! the role's declared permissions as its session policy, so the pods get no more than their
//! intents even from a role widened by hand. EKS takes a session policy only with its session
//! tags off, so such a role's trust names the account, not the ServiceAccount
//! (`policy::pod_identity_trust_untagged`). An add-on's associations carry none (the add-on
//! API has no such field): their roles keep the tagged trust.
//!
//! A declared policy too large for a session policy (STS takes 2,048 characters) is reported
//! for that workload and its binding left as it is: never cut short, never dropped silently.

use super::problem::Refusal;
use super::target::TargetRole;
use super::{Binding, Planner, RoleIdentity};
use crate::model::ObservedAssociation;
use crate::policy::{PermissionLayout, PolicyDocument};
use serde_json::{Value, json};

/// The most characters of a session policy STS takes.
pub const SESSION_POLICY_CHARS: usize = 2_048;

impl Planner<'_> {
    /// The session policy of the role's association: `None` unless the setting is on and the
    /// role is bound by an association of its own.
    ///
    /// With a target role, the policy also holds the target role's grants beside the chaining
    /// grant of the workload's role: it lets the pods' sessions do no more than their intents
    /// whichever session of the chain EKS applies it to.
    pub(super) fn session_policy(
        &self,
        identity: &RoleIdentity,
        layout: &PermissionLayout,
        target: Option<&TargetRole>,
    ) -> Result<Option<PolicyDocument>, Refusal> {
        if !self.settings.session_policies || identity.binding != Binding::PodIdentityAssociation {
            return Ok(None);
        }
        let documents: Vec<&PolicyDocument> = layout
            .documents()
            .iter()
            .chain(target.map(|t| t.layout.documents()).unwrap_or_default())
            .collect();
        let document = match documents.as_slice() {
            // Nothing declared: the sessions may do nothing, whatever the role holds.
            [] => PolicyDocument::from_statements(vec![
                json!({"Effect": "Deny", "Action": "*", "Resource": "*"}),
            ]),
            [one] => (*one).clone(),
            parts => PolicyDocument::from_statements(
                parts
                    .iter()
                    .flat_map(
                        |part| match part.value().get_mut("Statement").map(Value::take) {
                            Some(Value::Array(statements)) => statements,
                            _ => Vec::new(),
                        },
                    )
                    .collect(),
            ),
        };
        let size = document.iam_size();
        if size > SESSION_POLICY_CHARS {
            return Err(Refusal::SessionPolicyTooLarge {
                size,
                quota: SESSION_POLICY_CHARS,
            });
        }
        Ok(Some(document))
    }
}

/// The association gives its sessions the declared session policy: the same meaning, with
/// EKS's session tags off; or none at all, with the tags on.
pub(super) fn session_as_declared(
    current: &ObservedAssociation,
    declared: Option<&PolicyDocument>,
) -> bool {
    match (declared, &current.session_policy) {
        (None, None) => !current.session_tags_disabled,
        (Some(declared), Some(current_policy)) => {
            current.session_tags_disabled && declared.same_meaning(current_policy)
        }
        _ => false,
    }
}
