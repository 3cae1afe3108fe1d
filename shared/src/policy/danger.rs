//! Actions that create, change or pass identities or credentials: whoever can upload a bundle
//! must not get more than the platform team allows, so intents asking for them are refused
//! unless an exception names the workload. Wildcards are caught by matching the requested
//! pattern against this list (`iam:Put*` matches `iam:PutRolePolicy`).

use crate::model::Permission;
use serde::{Deserialize, Serialize};

/// Actions refused on any resource.
pub const DANGEROUS_ACTIONS: &[&str] = &[
    "iam:AddRoleToInstanceProfile",
    "iam:AddUserToGroup",
    "iam:AttachGroupPolicy",
    "iam:AttachRolePolicy",
    "iam:AttachUserPolicy",
    "iam:CreateAccessKey",
    "iam:CreateLoginProfile",
    "iam:CreatePolicy",
    "iam:CreatePolicyVersion",
    "iam:CreateRole",
    "iam:CreateServiceSpecificCredential",
    "iam:CreateUser",
    "iam:DeleteRolePermissionsBoundary",
    "iam:DeleteUserPermissionsBoundary",
    "iam:PassRole",
    "iam:PutGroupPolicy",
    "iam:PutRolePermissionsBoundary",
    "iam:PutRolePolicy",
    "iam:PutUserPermissionsBoundary",
    "iam:PutUserPolicy",
    "iam:SetDefaultPolicyVersion",
    "iam:UpdateAccessKey",
    "iam:UpdateAssumeRolePolicy",
    "iam:UpdateLoginProfile",
    "iam:UploadSSHPublicKey",
    "organizations:CreateAccount",
    "organizations:AttachPolicy",
    "organizations:LeaveOrganization",
    "sts:GetFederationToken",
];

/// Actions refused on the resource `*` only (on a named role they are a legitimate grant).
pub const DANGEROUS_ON_ANY_RESOURCE: &[&str] = &[
    "sts:AssumeRole",
    "sts:AssumeRoleWithSAML",
    "sts:AssumeRoleWithWebIdentity",
];

/// Services whose every action is too broad to grant to a workload as a whole (`iam:*`).
pub const DANGEROUS_SERVICES: &[&str] = &["iam", "sts", "organizations"];

/// An allowed exception: a workload that may hold a dangerous action. Empty fields match any.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DangerException {
    pub cluster: Option<String>,
    pub namespace: Option<String>,
    pub workload: Option<String>,
    /// The action as the intent writes it (`iam:PassRole`, `iam:*`), matched without case.
    pub action: String,
}

impl DangerException {
    /// True when this exception lets `workload` of `namespace` hold `action`. An exception
    /// scoped to a cluster applies only where the cluster is known and is that one.
    pub fn allows(
        &self,
        action: &str,
        cluster: Option<&str>,
        namespace: &str,
        workload: &str,
    ) -> bool {
        self.action.eq_ignore_ascii_case(action)
            && self.cluster.as_deref().is_none_or(|c| cluster == Some(c))
            && self.namespace.as_deref().is_none_or(|n| n == namespace)
            && self.workload.as_deref().is_none_or(|w| w == workload)
    }
}

/// IAM's wildcard match (`*` any run, `?` one character), without case, as IAM matches actions.
pub fn action_matches(pattern: &str, action: &str) -> bool {
    fn go(p: &[u8], a: &[u8]) -> bool {
        match (p.first(), a.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], a) || (!a.is_empty() && go(p, &a[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &a[1..]),
            (Some(x), Some(y)) if x.eq_ignore_ascii_case(y) => go(&p[1..], &a[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), action.as_bytes())
}

/// Why a requested permission is dangerous, or `None`.
pub fn danger(permission: &Permission) -> Option<String> {
    let action = permission.action.as_str();
    if action == "*" {
        return Some("`*` grants every action of every service".to_owned());
    }
    let (service, name) = action.split_once(':').unwrap_or((action, ""));
    if DANGEROUS_SERVICES
        .iter()
        .any(|s| s.eq_ignore_ascii_case(service))
        && name == "*"
    {
        return Some(format!("{action} grants every action of {service}"));
    }
    let hidden: Vec<&str> = DANGEROUS_ACTIONS
        .iter()
        .copied()
        .filter(|d| action_matches(action, d))
        .collect();
    if let Some(first) = hidden.first() {
        return Some(if hidden.len() == 1 && first.eq_ignore_ascii_case(action) {
            format!("{action} creates, changes or passes identities or credentials")
        } else {
            format!(
                "{action} includes {} (identities and credentials)",
                hidden.join(", ")
            )
        });
    }
    if permission.resource == "*"
        && let Some(d) = DANGEROUS_ON_ANY_RESOURCE
            .iter()
            .find(|d| action_matches(action, d))
    {
        return Some(format!(
            "{d} on every role (`*`); name the roles it may assume"
        ));
    }
    None
}

/// Broad but legitimate: every action of a service on every resource (`dynamodb:*` on `*`).
pub fn broad(permission: &Permission) -> bool {
    permission.resource == "*" && permission.action.ends_with(":*")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(action: &str, resource: &str) -> Permission {
        Permission {
            action: action.into(),
            resource: resource.into(),
        }
    }

    #[test]
    fn wildcards_match_as_iam_matches() {
        assert!(action_matches("iam:Put*", "iam:PutRolePolicy"));
        assert!(action_matches("IAM:put*", "iam:PutRolePolicy"));
        assert!(action_matches("iam:?assRole", "iam:PassRole"));
        assert!(!action_matches("iam:Get*", "iam:PutRolePolicy"));
        assert!(action_matches("*", "iam:PassRole"));
    }

    #[test]
    fn dangerous_requests_are_named_with_the_reason() {
        assert!(danger(&p("*", "*")).unwrap().contains("every action"));
        assert!(
            danger(&p("iam:*", "*"))
                .unwrap()
                .contains("every action of iam")
        );
        assert!(danger(&p("sts:*", "arn:aws:iam::1:role/x")).is_some());
        assert!(
            danger(&p("iam:PassRole", "arn:aws:iam::1:role/x"))
                .unwrap()
                .contains("identities")
        );
        let hidden = danger(&p("iam:Put*", "*")).unwrap();
        assert!(
            hidden.contains("iam:PutRolePolicy") && hidden.contains("iam:PutUserPolicy"),
            "{hidden}"
        );
        assert!(
            danger(&p("iam:Create*", "*"))
                .unwrap()
                .contains("iam:CreateAccessKey")
        );
        assert!(
            danger(&p("sts:AssumeRole", "*"))
                .unwrap()
                .contains("every role")
        );
        assert!(danger(&p("organizations:*", "*")).is_some());
    }

    #[test]
    fn ordinary_and_broad_grants_pass() {
        for ok in [
            p("dynamodb:*", "*"),
            p("ec2:CreateVolume", "*"),
            p("iam:GetRole", "*"),
            p("sts:AssumeRole", "arn:aws:iam::1:role/reader"),
            p("s3:Get*", "*"),
        ] {
            assert_eq!(danger(&ok), None, "{ok:?}");
        }
        assert!(broad(&p("dynamodb:*", "*")));
        assert!(!broad(&p("dynamodb:GetItem", "*")));
    }
}
