//! Actions that create, change or pass identities or credentials, take over an identity that
//! another resource holds, or read every secret: whoever can upload a bundle must not get more
//! than the platform team allows, so intents asking for them are refused unless an exception
//! names the workload. Wildcards are caught by matching the requested pattern against these
//! lists (`iam:Put*` matches `iam:PutRolePolicy`, `lambda:Update*` matches
//! `lambda:UpdateFunctionCode`).

use crate::model::Permission;
use crate::policy::catalogue;
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
    // Root sessions on the organization's member accounts (centralized root access).
    "sts:AssumeRoot",
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

/// A way to act as an identity that another resource holds (a function's role, a node's
/// instance profile, a stack's service role) or to mint one, without any IAM action.
#[derive(Clone, Copy, Debug)]
pub struct Escalation {
    pub actions: &'static [&'static str],
    /// What a grant on every such resource lets the workload do, as a verb phrase.
    pub gives: &'static str,
    /// The resource kinds holding the identities, as ARNs write them (`service:kind`): the grant
    /// is refused on `*` and on ARNs of these kinds, and passes on a resource of any other kind.
    pub kinds: &'static [&'static str],
}

/// The known paths beyond IAM. Left out on purpose (all are on policy_sentry's privilege
/// escalation list, see [`NOT_DANGEROUS_ALONE`]): creating a function, an instance, a notebook,
/// a dev endpoint or a pipeline *with a role* needs `iam:PassRole`, which is refused above;
/// invoking a function runs the code its owner wrote, as it was meant to be used.
pub const ESCALATIONS: &[Escalation] = &[
    Escalation {
        actions: &[
            "lambda:UpdateFunctionCode",
            "lambda:UpdateFunctionConfiguration",
        ],
        gives: "run code as any function's role",
        kinds: &["lambda:function"],
    },
    Escalation {
        actions: &[
            "eks:AssociateAccessPolicy",
            "eks:CreateAccessEntry",
            "eks:UpdateAccessEntry",
        ],
        gives: "become cluster-admin on any cluster",
        kinds: &["eks:cluster", "eks:access-entry"],
    },
    Escalation {
        actions: &[
            "ec2-instance-connect:SendSSHPublicKey",
            "ec2-instance-connect:SendSerialConsoleSSHPublicKey",
            "ec2:ModifyInstanceAttribute",
            "ssm:SendCommand",
            "ssm:StartSession",
        ],
        gives: "open a shell on nodes and take their role's credentials",
        kinds: &["ec2:instance", "ssm:managed-instance"],
    },
    Escalation {
        actions: &[
            "ec2:CreateLaunchTemplateVersion",
            "ec2:ModifyLaunchTemplate",
        ],
        gives: "start nodes with any launch template's role and boot script",
        kinds: &["ec2:launch-template"],
    },
    Escalation {
        actions: &["glue:UpdateDevEndpoint"],
        gives: "log in to any Glue dev endpoint as its role",
        kinds: &["glue:devEndpoint"],
    },
    Escalation {
        // StartBuild takes a buildspec override: any command, as the project's role.
        actions: &[
            "codebuild:StartBuild",
            "codebuild:StartBuildBatch",
            "codebuild:UpdateProject",
        ],
        gives: "run any command as a build project's role",
        kinds: &["codebuild:project"],
    },
    Escalation {
        // A stack keeps its service role: updating it needs no iam:PassRole.
        actions: &[
            "cloudformation:CreateChangeSet",
            "cloudformation:CreateStack",
            "cloudformation:CreateStackInstances",
            "cloudformation:CreateStackSet",
            "cloudformation:ExecuteChangeSet",
            "cloudformation:UpdateStack",
            "cloudformation:UpdateStackInstances",
            "cloudformation:UpdateStackSet",
        ],
        gives: "create or change any resource as a stack's role",
        kinds: &[
            "cloudformation:stack",
            "cloudformation:stackset",
            "cloudformation:changeSet",
        ],
    },
    Escalation {
        actions: &[
            "sso:AttachCustomerManagedPolicyReferenceToPermissionSet",
            "sso:AttachManagedPolicyToPermissionSet",
            "sso:CreateAccountAssignment",
            "sso:CreatePermissionSet",
            "sso:DeletePermissionsBoundaryFromPermissionSet",
            "sso:ProvisionPermissionSet",
            "sso:PutInlinePolicyToPermissionSet",
            "sso:PutPermissionsBoundaryToPermissionSet",
            "sso:UpdatePermissionSet",
        ],
        gives: "mint or widen single sign-on identities in any account",
        kinds: &["sso:permissionSet", "sso:instance", "sso:account"],
    },
    Escalation {
        actions: &["sagemaker:CreatePresignedNotebookInstanceUrl"],
        gives: "open any notebook as its role",
        kinds: &["sagemaker:notebook-instance"],
    },
];

/// Reads that, on every secret, parameter or key, give every secret of the account; on named
/// ones (`secret:team/*`, `parameter/team/*`) they are an ordinary grant.
pub const SECRET_READS: &[&str] = &[
    "kms:Decrypt",
    "secretsmanager:GetSecretValue",
    "ssm:GetParameter",
    "ssm:GetParameters",
    "ssm:GetParametersByPath",
];

/// The kinds [`SECRET_READS`] read, as ARNs write them.
const SECRET_KINDS: &[&str] = &["kms:key", "secretsmanager:secret", "ssm:parameter"];

/// The actions of policy_sentry's privilege escalation list (`shared/data/audit/
/// privilege-escalation.txt`, the package `scripts/generate-iam-actions` reads) that are not
/// refused by themselves, and why.
pub const NOT_DANGEROUS_ALONE: &[(&str, &str)] = &[
    (
        "codestar:AssociateTeamMember",
        "CodeStar is retired: not in the catalogue",
    ),
    (
        "codestar:CreateProject",
        "CodeStar is retired: not in the catalogue",
    ),
    (
        "codestar:CreateProjectFromTemplate",
        "CodeStar is retired: not in the catalogue",
    ),
    (
        "datapipeline:CreatePipeline",
        "needs iam:PassRole to run as a role",
    ),
    (
        "datapipeline:PutPipelineDefinition",
        "needs iam:PassRole to run as a role",
    ),
    (
        "ec2:RunInstances",
        "needs iam:PassRole to start an instance with a role",
    ),
    (
        "glue:CreateDevEndpoint",
        "needs iam:PassRole to create it with a role",
    ),
    (
        "glue:GetDevEndpoint",
        "reads the address of an endpoint, no more",
    ),
    (
        "lambda:AddPermission",
        "lets others invoke the code as written",
    ),
    (
        "lambda:CreateEventSourceMapping",
        "triggers the code as written",
    ),
    (
        "lambda:CreateFunction",
        "needs iam:PassRole to create it with a role",
    ),
    (
        "lambda:InvokeFunction",
        "ordinary use: runs the code as written",
    ),
    (
        "rds:AddRoleToDBInstance",
        "needs iam:PassRole to attach a role",
    ),
    (
        "sagemaker:CreateNotebookInstance",
        "needs iam:PassRole to create it with a role",
    ),
];

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
    // An action of a service no list names matches none of them (its service has no wildcard
    // to reach one): most grants stop here.
    if !service.contains(['*', '?'])
        && !LISTED_SERVICES
            .iter()
            .any(|s| s.eq_ignore_ascii_case(service))
    {
        return None;
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
    let resource = permission.resource.as_str();
    // Every path a wildcard opens is named (`ec2:*` is both a shell and a launch template).
    // The action is matched first: it rules out almost every path at its first letters,
    // while the resource's kind takes parsing its ARN once per kind.
    let mut reasons: Vec<String> = ESCALATIONS
        .iter()
        .filter_map(|e| {
            let hidden = matching(action, e.actions);
            (!hidden.is_empty() && e.kinds.iter().any(|k| of_kind(resource, k)))
                .then(|| lets(action, &hidden, e.gives))
        })
        .collect();
    let hidden = matching(action, SECRET_READS);
    if !hidden.is_empty() && SECRET_KINDS.iter().any(|k| every_of_kind(resource, k)) {
        reasons.push(format!(
            "{}; name the secrets, parameters or keys",
            lets(action, &hidden, "read every secret of the account")
        ));
    }
    (!reasons.is_empty()).then(|| reasons.join("; "))
}

/// The services of every action the lists above name.
static LISTED_SERVICES: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(|| {
    let mut services: Vec<&'static str> = DANGEROUS_ACTIONS
        .iter()
        .chain(DANGEROUS_ON_ANY_RESOURCE)
        .chain(SECRET_READS)
        .chain(ESCALATIONS.iter().flat_map(|e| e.actions))
        .filter_map(|action| action.split_once(':').map(|(service, _)| service))
        .collect();
    services.sort_unstable();
    services.dedup();
    services
});

fn matching(pattern: &str, actions: &[&'static str]) -> Vec<&'static str> {
    actions
        .iter()
        .copied()
        .filter(|a| action_matches(pattern, a))
        .collect()
}

/// `ssm:SendCommand lets the workload ...`, or `ssm:* includes ssm:SendCommand, ...: lets ...`.
fn lets(action: &str, hidden: &[&str], gives: &str) -> String {
    match hidden {
        [one] if one.eq_ignore_ascii_case(action) => format!("lets the workload {gives}"),
        _ => format!(
            "{action} includes {}, which let the workload {gives}",
            hidden.join(", ")
        ),
    }
}

/// The parts of an ARN that say what it names: (service, resource), wildcards kept.
fn arn_parts(resource: &str) -> Option<(&str, &str)> {
    let mut parts = resource.splitn(6, ':');
    if parts.next()? != "arn" {
        return None;
    }
    let service = parts.nth(1)?;
    Some((service, parts.nth(2)?))
}

/// The resource's kind, as its ARN writes it (`function` in `function:f`, `cluster` in
/// `cluster/c`), and what follows it.
fn kind_and_rest(resource: &str) -> (&str, Option<&str>) {
    match resource.find(['/', ':']) {
        Some(i) => (&resource[..i], Some(&resource[i + 1..])),
        None => (resource, None),
    }
}

/// True when `resource` (`*` or an ARN, wildcards allowed) may name something of `kind`
/// (`service:kind`).
fn of_kind(resource: &str, kind: &str) -> bool {
    if resource == "*" {
        return true;
    }
    let (Some((service, name)), Some((want_service, want_kind))) =
        (arn_parts(resource), kind.split_once(':'))
    else {
        return false;
    };
    let (written, _) = kind_and_rest(name);
    action_matches(service, want_service) && action_matches(written, want_kind)
}

/// True when `resource` names every resource of `kind` (`*`, `secret:*`, `parameter/*`,
/// `parameter*`), whatever the region and account.
fn every_of_kind(resource: &str, kind: &str) -> bool {
    if resource == "*" {
        return true;
    }
    if !of_kind(resource, kind) {
        return false;
    }
    let (written, rest) = arn_parts(resource).map_or(("", None), |(_, name)| kind_and_rest(name));
    match rest {
        Some(rest) => !rest.is_empty() && rest.bytes().all(|b| b == b'*'),
        None => written.contains('*'),
    }
}

/// Broad but legitimate: any action on every resource (`dynamodb:*` or `s3:GetObject` on `*`).
/// A grant on `*` is easy to miss in review, so the planner and `validate` say it out loud.
pub fn broad(permission: &Permission) -> bool {
    permission.resource == "*"
}

/// What grants on `*` reach, for the warning: `s3 accesspointobject, object` or, when the
/// catalogue knows no kind for the actions (they take only `*`), `any resource`. The kinds most
/// of the actions reach come first (`ec2 volume, snapshot, ...` for a storage driver, not the
/// hundred kinds `ec2:CreateTags` also reaches), then by name; past eight, a count.
pub fn reach(actions: &[&str]) -> String {
    const SHOWN: usize = 8;
    let mut counted: std::collections::BTreeMap<(&str, &str), usize> = Default::default();
    for kind in actions.iter().flat_map(|a| catalogue::resource_kinds(a)) {
        *counted.entry(kind).or_default() += 1;
    }
    if counted.is_empty() {
        return "any resource".to_owned();
    }
    let mut kinds: Vec<((&str, &str), usize)> = counted.into_iter().collect();
    kinds.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut shown: Vec<(&str, &str)> = kinds.iter().take(SHOWN).map(|(k, _)| *k).collect();
    shown.sort_by_key(|(service, _)| *service);
    let mut by_service: Vec<(&str, Vec<&str>)> = Vec::new();
    for (service, kind) in shown {
        match by_service.last_mut() {
            Some((s, list)) if *s == service => list.push(kind),
            _ => by_service.push((service, vec![kind])),
        }
    }
    let mut out = by_service
        .iter()
        .map(|(service, list)| format!("{service} {}", list.join(", ")))
        .collect::<Vec<_>>()
        .join("; ");
    match kinds.len().saturating_sub(SHOWN) {
        0 => {}
        1 => out.push_str(" and 1 more kind"),
        more => out.push_str(&format!(" and {more} more kinds")),
    }
    out
}

/// The warning for grants on `*`, after "<workload> is granted ": `s3:GetObject on every
/// resource (`*`, reaching s3 accesspointobject, object); consider naming the resources`.
/// Several actions of one role make one warning, so a driver with fifteen actions on `*` does
/// not bury the rest of the status.
pub fn broad_warning(actions: &[&str]) -> String {
    format!(
        "{} on every resource (`*`, reaching {}); consider naming the resources",
        actions.join(", "),
        reach(actions)
    )
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
        // Root sessions on member accounts, on any resource, by name or by a pattern.
        assert!(danger(&p("sts:AssumeRoot", "arn:aws:iam::2:root")).is_some());
        assert!(
            danger(&p("sts:AssumeRo*", "arn:aws:iam::1:role/reader"))
                .unwrap()
                .contains("sts:AssumeRoot")
        );
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
        assert!(broad(&p("dynamodb:GetItem", "*")));
        assert!(!broad(&p(
            "dynamodb:GetItem",
            "arn:aws:dynamodb:*:*:table/t"
        )));
    }

    #[test]
    fn escalations_beyond_iam_are_refused_on_every_resource() {
        // Each action with what it gives, in the words of the refusal.
        let actions = [
            ("lambda:UpdateFunctionCode", "any function's role"),
            ("lambda:UpdateFunctionConfiguration", "any function's role"),
            ("eks:CreateAccessEntry", "cluster-admin"),
            ("eks:AssociateAccessPolicy", "cluster-admin"),
            ("eks:UpdateAccessEntry", "cluster-admin"),
            ("ssm:SendCommand", "a shell on nodes"),
            ("ssm:StartSession", "a shell on nodes"),
            ("ec2-instance-connect:SendSSHPublicKey", "a shell on nodes"),
            ("glue:UpdateDevEndpoint", "dev endpoint"),
            ("codebuild:StartBuild", "build project's role"),
            ("cloudformation:CreateStack", "a stack's role"),
            ("cloudformation:ExecuteChangeSet", "a stack's role"),
            ("ec2:CreateLaunchTemplateVersion", "launch template"),
            ("sso:CreatePermissionSet", "single sign-on"),
            ("secretsmanager:GetSecretValue", "every secret"),
            ("kms:Decrypt", "every secret"),
            ("ssm:GetParameter", "every secret"),
            ("ssm:GetParametersByPath", "every secret"),
        ];
        // Wildcards reaching them, with what they hide named.
        let wildcards = [
            ("lambda:Update*", "lambda:UpdateFunctionCode"),
            ("ssm:*", "ssm:SendCommand"),
            ("eks:*", "eks:CreateAccessEntry"),
            ("ec2:*", "ec2:CreateLaunchTemplateVersion"),
            ("ssm:GetParameter*", "ssm:GetParametersByPath"),
            ("kms:*", "kms:Decrypt"),
            ("secretsmanager:Get*", "secretsmanager:GetSecretValue"),
            ("cloudformation:*Stack", "cloudformation:UpdateStack"),
        ];
        for (action, named) in actions.into_iter().chain(wildcards) {
            let why = danger(&p(action, "*")).unwrap_or_default();
            assert!(why.contains(named), "{action}: {why:?}");
        }
    }

    #[test]
    fn escalations_are_refused_on_the_resources_that_hold_identities() {
        for (action, resource) in [
            (
                "lambda:UpdateFunctionCode",
                "arn:aws:lambda:eu-west-1:1:function:reconciler",
            ),
            ("lambda:Update*", "arn:aws:lambda:*:*:function:*"),
            (
                "eks:CreateAccessEntry",
                "arn:aws:eks:eu-west-1:1:cluster/prod",
            ),
            ("eks:*", "arn:aws:eks:*:*:*"),
            ("ssm:SendCommand", "arn:aws:ec2:eu-west-1:1:instance/*"),
            (
                "ssm:StartSession",
                "arn:aws:ssm:eu-west-1:1:managed-instance/mi-1",
            ),
            (
                "codebuild:StartBuild",
                "arn:aws:codebuild:eu-west-1:1:project/deploy",
            ),
            (
                "cloudformation:UpdateStack",
                "arn:aws:cloudformation:*:1:stack/*",
            ),
            (
                "glue:UpdateDevEndpoint",
                "arn:aws:glue:eu-west-1:1:devEndpoint/e",
            ),
            (
                "ec2:CreateLaunchTemplateVersion",
                "arn:aws:ec2:*:1:launch-template/*",
            ),
            ("sso:CreatePermissionSet", "arn:aws:sso:::instance/ssoins-1"),
            (
                "secretsmanager:GetSecretValue",
                "arn:aws:secretsmanager:*:*:secret:*",
            ),
            ("ssm:GetParameters", "arn:aws:ssm:eu-west-1:1:parameter/*"),
            ("ssm:GetParameter*", "arn:aws:ssm:eu-west-1:1:parameter*"),
            ("kms:Decrypt", "arn:aws:kms:eu-west-1:1:key/*"),
            ("kms:Decrypt", "arn:aws:*:*:*:*"),
        ] {
            assert!(
                danger(&p(action, resource)).is_some(),
                "{action} on {resource}"
            );
        }
    }

    #[test]
    fn the_same_actions_pass_on_named_resources_of_ordinary_kinds() {
        for (action, resource) in [
            ("ssm:*", "arn:aws:ssm:eu-west-1:1:parameter/team/*"),
            (
                "ssm:SendCommand",
                "arn:aws:ssm:eu-west-1::document/AWS-RunShellScript",
            ),
            ("lambda:*", "arn:aws:lambda:eu-west-1:1:layer:shared"),
            ("ec2:*", "arn:aws:ec2:eu-west-1:1:volume/*"),
            (
                "cloudformation:CreateStack",
                "arn:aws:dynamodb:eu-west-1:1:table/t",
            ),
            (
                "secretsmanager:GetSecretValue",
                "arn:aws:secretsmanager:*:1:secret:team/*",
            ),
            ("kms:Decrypt", "arn:aws:kms:eu-west-1:1:key/1234abcd"),
            (
                "ssm:GetParameter",
                "arn:aws:ssm:eu-west-1:1:parameter/team/db-password",
            ),
            ("lambda:InvokeFunction", "*"),
            ("lambda:CreateFunction", "*"),
            ("s3:GetObject", "*"),
            ("ec2:DescribeInstances", "*"),
        ] {
            assert_eq!(danger(&p(action, resource)), None, "{action} on {resource}");
        }
    }

    #[test]
    fn every_listed_action_is_in_the_catalogue() {
        let listed = ESCALATIONS
            .iter()
            .flat_map(|e| e.actions.iter())
            .chain(SECRET_READS)
            .chain(DANGEROUS_ACTIONS)
            .chain(DANGEROUS_ON_ANY_RESOURCE);
        for action in listed {
            assert_eq!(
                crate::policy::check_action(action),
                crate::policy::ActionCheck::Known,
                "{action}"
            );
        }
    }

    /// policy_sentry 0.15.2, `shared/data/audit/privilege-escalation.txt`: each is refused, or
    /// [`NOT_DANGEROUS_ALONE`] says why not.
    #[test]
    fn policy_sentry_escalation_list_is_covered() {
        const POLICY_SENTRY: &[&str] = &[
            "cloudformation:CreateStack",
            "codestar:AssociateTeamMember",
            "codestar:CreateProject",
            "codestar:CreateProjectFromTemplate",
            "datapipeline:CreatePipeline",
            "datapipeline:PutPipelineDefinition",
            "ec2:RunInstances",
            "ec2-instance-connect:SendSSHPublicKey",
            "glue:CreateDevEndpoint",
            "glue:GetDevEndpoint",
            "glue:UpdateDevEndpoint",
            "iam:AddUserToGroup",
            "iam:AttachGroupPolicy",
            "iam:AttachRolePolicy",
            "iam:AttachUserPolicy",
            "iam:CreateAccessKey",
            "iam:CreateLoginProfile",
            "iam:CreatePolicyVersion",
            "iam:PassRole",
            "iam:PutGroupPolicy",
            "iam:PutRolePolicy",
            "iam:PutUserPolicy",
            "iam:SetDefaultPolicyVersion",
            "iam:UpdateAssumeRolePolicy",
            "iam:UpdateLoginProfile",
            "lambda:AddPermission",
            "lambda:CreateEventSourceMapping",
            "lambda:CreateFunction",
            "lambda:InvokeFunction",
            "lambda:UpdateFunctionCode",
            "lambda:UpdateFunctionConfiguration",
            "sagemaker:CreatePresignedNotebookInstanceUrl",
            "sagemaker:CreateNotebookInstance",
            "sts:AssumeRole",
            "rds:AddRoleToDBInstance",
        ];
        for action in POLICY_SENTRY {
            let refused = danger(&p(action, "*")).is_some();
            let explained = NOT_DANGEROUS_ALONE.iter().any(|(a, _)| a == action);
            assert!(
                refused != explained,
                "{action}: refused {refused}, explained {explained}"
            );
        }
    }

    #[test]
    fn a_grant_on_every_resource_says_what_it_reaches() {
        let w = broad_warning(&["s3:GetObject"]);
        assert_eq!(
            w,
            "s3:GetObject on every resource (`*`, reaching s3 accesspointobject, object); consider naming the resources"
        );
        let dynamodb = reach(&["dynamodb:*"]);
        assert!(dynamodb.starts_with("dynamodb "), "{dynamodb}");
        assert!(dynamodb.ends_with("stream, table"), "{dynamodb}");
        let ec2 = reach(&["ec2:*"]);
        assert!(ec2.contains(" more kinds"), "{ec2}");
        assert_eq!(reach(&["s3:ListAllMyBuckets"]), "any resource");
        assert_eq!(
            broad_warning(&["lambda:InvokeFunction", "sqs:SendMessage"]),
            "lambda:InvokeFunction, sqs:SendMessage on every resource (`*`, reaching lambda function; sqs queue); consider naming the resources"
        );
    }
}
