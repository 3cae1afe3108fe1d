//! The shapes names and values must have before they reach IAM or Kubernetes: namespaces and
//! workload names as the API server checks them, IAM actions and resource ARNs.

use super::diagnostic::echo;
use crate::model::{Namespace, WorkloadName};

/// A name Kubernetes would refuse, and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{:?} is not a valid namespace: {problem}", echo(.value))]
    Namespace { value: String, problem: NameProblem },
    #[error("{:?} is not a valid workload name: {problem}", echo(.value))]
    WorkloadName { value: String, problem: NameProblem },
}

/// What breaks the DNS-1123 rules the API server checks names against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameProblem {
    #[error("it is empty")]
    Empty,
    #[error("it is longer than {0} characters")]
    TooLong(usize),
    #[error("it has an empty part between dots")]
    EmptyPart,
    #[error("use only lowercase letters, digits and '-'")]
    Characters,
    #[error("it must start and end with a letter or digit")]
    Ends,
}

/// A namespace as Kubernetes accepts it: a DNS-1123 label.
pub fn check_namespace(value: &str) -> Result<Namespace, NameError> {
    match dns1123_label_problem(value) {
        None => Ok(Namespace::new(value)),
        Some(problem) => Err(NameError::Namespace {
            value: value.to_owned(),
            problem,
        }),
    }
}

/// A workload name as Kubernetes accepts it for Deployments, StatefulSets, ...: a DNS-1123
/// subdomain.
pub fn check_workload_name(value: &str) -> Result<WorkloadName, NameError> {
    match dns1123_subdomain_problem(value) {
        None => Ok(WorkloadName::new(value)),
        Some(problem) => Err(NameError::WorkloadName {
            value: value.to_owned(),
            problem,
        }),
    }
}

const LABEL_MAX: usize = 63;
const SUBDOMAIN_MAX: usize = 253;

fn dns1123_label_problem(value: &str) -> Option<NameProblem> {
    if value.is_empty() {
        return Some(NameProblem::Empty);
    }
    if value.len() > LABEL_MAX {
        return Some(NameProblem::TooLong(LABEL_MAX));
    }
    label_shape_problem(value)
}

fn dns1123_subdomain_problem(value: &str) -> Option<NameProblem> {
    if value.is_empty() {
        return Some(NameProblem::Empty);
    }
    if value.len() > SUBDOMAIN_MAX {
        return Some(NameProblem::TooLong(SUBDOMAIN_MAX));
    }
    value.split('.').find_map(|part| {
        if part.is_empty() {
            Some(NameProblem::EmptyPart)
        } else {
            label_shape_problem(part)
        }
    })
}

fn label_shape_problem(value: &str) -> Option<NameProblem> {
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    if !value.chars().all(allowed) {
        return Some(NameProblem::Characters);
    }
    if value.starts_with('-') || value.ends_with('-') {
        return Some(NameProblem::Ends);
    }
    None
}

/// `service:Action` (the action part may hold `*` and `?`), or `*` alone.
pub(super) fn is_iam_action(value: &str) -> bool {
    if value == "*" {
        return true;
    }
    let Some((service, action)) = value.split_once(':') else {
        return false;
    };
    !service.is_empty()
        && service
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !action.is_empty()
        && action
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '*' || c == '?')
}

/// `*`, or an ARN (wildcards and `$(AWS_REGION)`-style placeholders allowed).
pub(super) fn is_resource(value: &str) -> bool {
    value == "*"
        || (value.starts_with("arn:")
            && !value.chars().any(|c| c.is_whitespace() || c.is_control()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn namespaces_are_dns_labels() {
        assert!(check_namespace("team-a").is_ok());
        assert!(check_namespace("a").is_ok());
        assert!(check_namespace(&"a".repeat(63)).is_ok());
        let long = check_namespace(&"a".repeat(64)).unwrap_err().to_string();
        assert!(long.contains("longer than 63"), "{long}");
        let upper = check_namespace("Team_A").unwrap_err().to_string();
        assert_eq!(
            upper,
            "\"Team_A\" is not a valid namespace: use only lowercase letters, digits and '-'"
        );
        assert!(check_namespace("a.b").is_err());
        assert!(check_namespace("-a").is_err());
        assert!(check_namespace("a-").is_err());
        assert!(
            check_namespace("")
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
    }

    #[test]
    fn workload_names_are_dns_subdomains() {
        assert!(check_workload_name("joke-worker").is_ok());
        assert!(check_workload_name("a.b-c.d").is_ok());
        assert!(check_workload_name(&"a".repeat(253)).is_ok());
        assert!(check_workload_name(&"a".repeat(254)).is_err());
        assert!(
            check_workload_name("a..b")
                .unwrap_err()
                .to_string()
                .contains("empty part")
        );
        assert!(check_workload_name("a.-b").is_err());
        assert!(check_workload_name("Joke").is_err());
        assert!(check_workload_name("joke worker").is_err());
    }

    #[test]
    fn actions_look_like_iam_actions() {
        for ok in [
            "*",
            "dynamodb:*",
            "ec2:CreateVolume",
            "s3:Get*",
            "s3:?etObject",
            "aws-marketplace:ViewSubscriptions",
        ] {
            assert!(is_iam_action(ok), "{ok}");
        }
        for bad in [
            "",
            "dynamodb",
            "dynamodb:",
            ":Get",
            "S3:GetObject",
            "s3:Get Object",
            "*:*",
            "s3:Get:Object",
            "s3 :x",
        ] {
            assert!(!is_iam_action(bad), "{bad}");
        }
    }

    #[test]
    fn resources_are_arns_or_star() {
        for ok in [
            "*",
            "arn:aws:s3:::bucket/*",
            "arn:aws:dynamodb:$(AWS_REGION):$(AWS_ACCOUNT_ID):table/JokesTable",
        ] {
            assert!(is_resource(ok), "{ok}");
        }
        for bad in [
            "",
            "**",
            "table/JokesTable",
            "ARN:aws:s3:::b",
            "arn:aws:s3:::a b",
            "arn:aws:s3:::a\nb",
        ] {
            assert!(!is_resource(bad), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn accepted_namespaces_are_what_the_api_server_accepts(value in "\\PC{0,70}") {
            let expected = !value.is_empty()
                && value.len() <= 63
                && value.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !value.starts_with('-')
                && !value.ends_with('-');
            prop_assert_eq!(check_namespace(&value).is_ok(), expected);
        }

        #[test]
        fn generated_labels_are_accepted(value in "[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?") {
            prop_assert!(check_namespace(&value).is_ok());
            let subdomain = format!("{value}.{value}");
            prop_assert!(check_workload_name(&subdomain).is_ok());
        }
    }
}
