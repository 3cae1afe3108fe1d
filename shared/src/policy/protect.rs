//! The system's own resources (its bucket and keys, queues, functions, their roles, the
//! boundary, and every role and policy under its IAM path) are out of every workload's reach:
//! an intent naming one is refused, and a wildcard reaching one is granted with an explicit
//! Deny of them, so that uploading intents can never be a way to rewrite the system.

use super::arn::arn_service;
use super::document::{Effect, Statement};
use crate::model::{Permission, PolicyArn, Settings};
use std::borrow::Cow;
use std::collections::BTreeSet;

/// The ARN patterns of the system's own resources in one account: the deployment's list
/// (`Settings::system_resources`), each with what lies inside it (the keys of a bucket, the
/// versions and aliases of a function), the permissions boundary, and every role and policy
/// under the IAM path. `partition` and `account` are the cluster's; `*` when unknown (a
/// preview).
pub fn system_resources(settings: &Settings, partition: &str, account: &str) -> Vec<String> {
    let mut patterns = BTreeSet::new();
    for arn in settings.system_resources.iter().map(String::as_str).chain(
        settings
            .permissions_boundary
            .as_ref()
            .map(PolicyArn::as_str),
    ) {
        patterns.insert(arn.to_owned());
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        match parts.as_slice() {
            // A bucket: its keys are `<bucket ARN>/<key>`.
            ["arn", _, "s3", "", "", bucket] if !bucket.contains('/') => {
                patterns.insert(format!("{arn}/*"));
            }
            // A function: its versions and aliases are `<function ARN>:<qualifier>`.
            ["arn", _, "lambda", _, _, resource]
                if resource.starts_with("function:") && resource.matches(':').count() == 1 =>
            {
                patterns.insert(format!("{arn}:*"));
            }
            _ => {}
        }
    }
    for kind in ["role", "policy"] {
        patterns.insert(format!(
            "arn:{partition}:iam::{account}:{kind}{}*",
            settings.iam_path
        ));
    }
    patterns.into_iter().collect()
}

/// The system resource that `resource` lies within (every ARN it can match is one of the
/// system's), if any: such an intent names the system itself.
pub fn names_system_resource<'a>(resource: &str, system: &'a [String]) -> Option<&'a str> {
    system
        .iter()
        .find(|pattern| within(pattern, resource))
        .map(String::as_str)
}

/// The Deny statement that keeps `permissions` off the system's resources: every action (`*`)
/// denied on the system resources that some permission's resource pattern reaches (a
/// wildcard), with the actions that reach them. Denying `*` keeps the statement small and the
/// same whatever the intents add. `None` when no permission reaches the system. Permissions
/// naming the system directly are refused before this (see [`names_system_resource`]).
pub fn system_denial<'a>(
    permissions: impl IntoIterator<Item = &'a Permission>,
    system: &[String],
) -> Option<(Statement, Vec<String>)> {
    let mut actions = BTreeSet::new();
    let mut resources = BTreeSet::new();
    // Each pattern's service read once, not once a permission.
    let patterns: Vec<(&String, Option<&str>)> =
        system.iter().map(|p| (p, arn_service(p))).collect();
    for permission in permissions {
        for &(pattern, service) in &patterns {
            if action_reaches(&permission.action, service) && overlap(&permission.resource, pattern)
            {
                actions.insert(permission.action.clone());
                resources.insert(pattern.clone());
            }
        }
    }
    (!actions.is_empty()).then(|| {
        let deny = Statement {
            actions: vec!["*".to_owned()],
            resources: resources.into_iter().collect(),
            effect: Effect::Deny,
        };
        (deny, actions.into_iter().collect())
    })
}

/// Whether `action` can apply to a resource of `resource_service` (`arn_service` of its
/// pattern): actions act on their own service's resources, and `sts` on IAM roles. Unknown
/// services count as reaching.
fn action_reaches(action: &str, resource_service: Option<&str>) -> bool {
    let action_service = action.split_once(':').map_or(action, |(s, _)| s);
    let Some(resource_service) = resource_service else {
        return true;
    };
    let services: &[&str] = match resource_service {
        "iam" => &["iam", "sts"],
        other => &[other],
    };
    // Lower-cased once, and only when it is not already (it is for every planned permission).
    let action_service: Cow<'_, str> = if action_service.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(action_service.to_ascii_lowercase())
    } else {
        Cow::Borrowed(action_service)
    };
    services.iter().any(|s| overlap(&action_service, s))
}

/// Whether some string matches both IAM wildcard patterns (`*` any run, `?` one character).
pub fn overlap(a: &str, b: &str) -> bool {
    match_rests(a.as_bytes(), b.as_bytes(), |x, y, rests| match (x, y) {
        (None, None) => true,
        (Some(b'*'), _) => rests.after_first() || rests.after_second(),
        (_, Some(b'*')) => rests.after_second() || rests.after_first(),
        (Some(x), Some(y)) => (x == b'?' || y == b'?' || x == y) && rests.after_both(),
        _ => false,
    })
}

/// Whether every ARN `resource` can match also matches `pattern`. `pattern`'s `*` takes any run
/// of `resource`, wildcards included; its `?` one character that is no `*`.
pub fn within(pattern: &str, resource: &str) -> bool {
    match_rests(
        pattern.as_bytes(),
        resource.as_bytes(),
        |x, y, rests| match (x, y) {
            (None, None) => true,
            (Some(b'*'), _) => rests.after_first() || rests.after_second(),
            (Some(b'?'), Some(y)) => y != b'*' && rests.after_both(),
            (Some(x), Some(y)) => x == y && y != b'*' && y != b'?' && rests.after_both(),
            _ => false,
        },
    )
}

/// Whether the patterns `a` and `b` stand in `rule`'s relation. A table holds the answer for
/// every pair of rests `a[i..]` and `b[j..]`, filled from the ends: `rule` decides a pair from
/// the rests' first bytes (`None` for an empty rest) and the answers for the pairs after it.
fn match_rests(
    a: &[u8],
    b: &[u8],
    rule: impl Fn(Option<u8>, Option<u8>, &Rests<'_>) -> bool,
) -> bool {
    if literal_prefixes_differ(a, b) {
        return false;
    }
    let width = b.len() + 1;
    let mut table = vec![false; (a.len() + 1) * width];
    for i in (0..=a.len()).rev() {
        for j in (0..=b.len()).rev() {
            let rests = Rests {
                table: &table,
                width,
                lens: (a.len(), b.len()),
                at: (i, j),
            };
            let holds = rule(a.get(i).copied(), b.get(j).copied(), &rests);
            table[i * width + j] = holds;
        }
    }
    table[0]
}

/// The answers `match_rests` has for the pairs of rests after the one it decides; a step past
/// either end has none (false).
struct Rests<'t> {
    table: &'t [bool],
    width: usize,
    lens: (usize, usize),
    at: (usize, usize),
}

impl Rests<'_> {
    fn get(&self, i: usize, j: usize) -> bool {
        i <= self.lens.0 && j <= self.lens.1 && self.table[i * self.width + j]
    }

    /// One byte of the first pattern taken.
    fn after_first(&self) -> bool {
        self.get(self.at.0 + 1, self.at.1)
    }

    /// One byte of the second pattern taken.
    fn after_second(&self) -> bool {
        self.get(self.at.0, self.at.1 + 1)
    }

    /// One byte of each taken.
    fn after_both(&self) -> bool {
        self.get(self.at.0 + 1, self.at.1 + 1)
    }
}

/// True when the two patterns differ before either has a wildcard: nothing matches both. Most
/// pairs (a table and a bucket) are told apart here, without the quadratic walk: the planner
/// asks for every permission of every workload.
fn literal_prefixes_differ(a: &[u8], b: &[u8]) -> bool {
    for (x, y) in a.iter().zip(b) {
        if matches!(x, b'*' | b'?') || matches!(y, b'*' | b'?') {
            return false;
        }
        if x != y {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUCKET: &str = "arn:aws:s3:::intents-bucket";
    const FUNCTION: &str = "arn:aws:lambda:eu-west-2:123456789012:function:eks-intents-reconciler";
    const QUEUE: &str = "arn:aws:sqs:eu-west-2:123456789012:eks-intents-reconcile.fifo";

    fn system() -> Vec<String> {
        let settings = Settings {
            system_resources: vec![BUCKET.into(), FUNCTION.into(), QUEUE.into()],
            permissions_boundary: Some("arn:aws:iam::123456789012:policy/boundary".into()),
            ..Settings::default()
        };
        system_resources(&settings, "aws", "123456789012")
    }

    fn p(action: &str, resource: &str) -> Permission {
        Permission {
            action: action.into(),
            resource: resource.into(),
        }
    }

    #[test]
    fn the_list_holds_what_lies_inside_each_resource_and_the_iam_path() {
        let system = system();
        for expected in [
            BUCKET.to_owned(),
            format!("{BUCKET}/*"),
            format!("{FUNCTION}:*"),
            QUEUE.to_owned(),
            "arn:aws:iam::123456789012:policy/boundary".to_owned(),
            "arn:aws:iam::123456789012:role/eks-intents/*".to_owned(),
            "arn:aws:iam::123456789012:policy/eks-intents/*".to_owned(),
        ] {
            assert!(system.contains(&expected), "{expected} in {system:?}");
        }
    }

    #[test]
    fn direct_names_are_found_with_the_resource() {
        let system = system();
        assert_eq!(names_system_resource(BUCKET, &system), Some(BUCKET));
        assert_eq!(
            names_system_resource("arn:aws:s3:::intents-bucket/intents/demo/*", &system),
            Some("arn:aws:s3:::intents-bucket/*")
        );
        assert!(names_system_resource(&format!("{FUNCTION}:live"), &system).is_some());
        assert!(
            names_system_resource("arn:aws:iam::123456789012:role/eks-intents/demo/x", &system)
                .is_some()
        );
        for elsewhere in [
            "*",
            "arn:aws:s3:::*",
            "arn:aws:s3:::intents-bucket-other/*",
            "arn:aws:s3:::intents-bucke?",
            "arn:aws:iam::123456789012:role/team/x",
            "arn:aws:lambda:eu-west-2:123456789012:function:eks-intents-reconciler2",
        ] {
            assert_eq!(
                names_system_resource(elsewhere, &system),
                None,
                "{elsewhere}"
            );
        }
    }

    #[test]
    fn wildcards_that_reach_the_system_get_a_deny_of_what_they_reach() {
        let system = system();
        let (deny, reaching) = system_denial(
            &[
                p("s3:PutObject", "*"),
                p("s3:GetObject", "arn:aws:s3:::intents-*"),
            ],
            &system,
        )
        .unwrap();
        assert_eq!(deny.effect, Effect::Deny);
        assert_eq!(deny.actions, vec!["*"]);
        assert_eq!(reaching, vec!["s3:GetObject", "s3:PutObject"]);
        assert_eq!(
            deny.resources,
            vec![BUCKET.to_owned(), format!("{BUCKET}/*")]
        );
        let (deny, _) = system_denial(
            &[p("lambda:InvokeFunction", "arn:aws:lambda:*:*:function:*")],
            &system,
        )
        .unwrap();
        assert_eq!(
            deny.resources,
            vec![FUNCTION.to_owned(), format!("{FUNCTION}:*")]
        );
        let (deny, _) =
            system_denial(&[p("sts:AssumeRole", "arn:aws:iam::*:role/*")], &system).unwrap();
        // IAM's `*` may run across the colons: the policy path is reached as well.
        assert!(
            deny.resources
                .contains(&"arn:aws:iam::123456789012:role/eks-intents/*".to_owned()),
            "{deny:?}"
        );
        // Other services' actions and other resources never touch the system.
        assert_eq!(
            system_denial(
                &[
                    p("dynamodb:*", "*"),
                    p("s3:GetObject", "arn:aws:s3:::team-*/*"),
                    p("sqs:SendMessage", "arn:aws:sqs:*:*:team-*"),
                ],
                &system
            ),
            None
        );
    }

    #[test]
    fn patterns_overlap_and_contain_as_iam_matches() {
        assert!(overlap("*", "arn:aws:s3:::b"));
        assert!(overlap("arn:aws:s3:::*/x/*", "arn:aws:s3:::b/*"));
        assert!(overlap("a?c", "a*"));
        assert!(!overlap("arn:aws:s3:::a*", "arn:aws:s3:::b*"));
        assert!(!overlap("abc", "abd"));
        assert!(within("a*", "ab*"));
        assert!(within("*", "*"));
        assert!(!within("a?c", "a*c"));
        assert!(!within("ab*", "a*"));
        assert!(!within("abc", "ab"));
    }
}
