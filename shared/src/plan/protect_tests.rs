//! The planner keeps every workload off the system's own resources: naming one is refused,
//! a wildcard reaching one is granted with a Deny of them.

use super::*;
use crate::policy::PolicyDocument;
use crate::testing::*;
use serde_json::Value;

const BUCKET: &str = "arn:aws:s3:::eks-intents-bucket";
const QUEUE: &str = "arn:aws:sqs:eu-west-2:123456789012:eks-intents-reconcile.fifo";
const RECONCILER: &str = "arn:aws:lambda:eu-west-2:123456789012:function:eks-intents-reconciler";

fn settings() -> Settings {
    Settings {
        permissions_boundary: Some("arn:aws:iam::123456789012:policy/eks-intents-boundary".into()),
        system_resources: vec![BUCKET.into(), QUEUE.into(), RECONCILER.into()],
        ..Settings::default()
    }
}

fn cluster_with_worker() -> ObservedState {
    let mut observed = empty();
    observed.now = 1_000_000;
    run_workload(&mut observed, "jokes", "joke-worker", "joke-worker");
    observed
}

fn wants(resource: &str, actions: &[&str]) -> DesiredState {
    let mut desired = DesiredState::default();
    declare(
        &mut desired,
        "intents/demo/jokes/w.yaml",
        "jokes",
        "joke-worker",
        resource,
        actions,
    );
    desired
}

fn report(plan: &Plan) -> &WorkloadPlan {
    plan.workloads
        .iter()
        .find(|w| w.identity.workload.as_str() == "joke-worker")
        .unwrap_or_else(|| panic!("no report: {:?}", plan.workloads))
}

/// The statements of the policy the plan writes, from its inline or managed documents.
fn written_statements(plan: &Plan) -> Vec<Value> {
    plan.actions
        .iter()
        .filter_map(|action| match action {
            Action::PutInlinePolicy { document, .. }
            | Action::CreateManagedPolicy { document, .. } => Some(document.value()),
            _ => None,
        })
        .flat_map(|doc| doc["Statement"].as_array().cloned().unwrap_or_default())
        .collect()
}

fn denials(plan: &Plan) -> Vec<Value> {
    written_statements(plan)
        .into_iter()
        .filter(|s| s["Effect"] == "Deny")
        .collect()
}

#[test]
fn naming_a_system_resource_is_refused_whatever_the_actions() {
    for (resource, action, named) in [
        (BUCKET, "s3:GetObject", BUCKET.to_owned()),
        (
            "arn:aws:s3:::eks-intents-bucket/intents/demo/*",
            "s3:PutObject",
            format!("{BUCKET}/*"),
        ),
        (QUEUE, "sqs:SendMessage", QUEUE.to_owned()),
        (RECONCILER, "lambda:GetFunction", RECONCILER.to_owned()),
        (
            "arn:aws:iam::123456789012:role/eks-intents/demo/other-workload",
            "iam:GetRole",
            "arn:aws:iam::123456789012:role/eks-intents/*".to_owned(),
        ),
        (
            "arn:aws:iam::123456789012:policy/eks-intents-boundary",
            "iam:GetPolicy",
            "arn:aws:iam::123456789012:policy/eks-intents-boundary".to_owned(),
        ),
        // An action of another service on the bucket is refused as well.
        (BUCKET, "dynamodb:GetItem", BUCKET.to_owned()),
    ] {
        let planned = plan(
            &wants(resource, &[action]),
            &cluster_with_worker(),
            &settings(),
        );
        let report = report(&planned);
        assert_eq!(report.state, WorkloadState::Error, "{resource}");
        assert!(
            report.message().contains(&format!(
                "{action} on {resource}: a resource of eks-intents itself ({named})"
            )),
            "{}",
            report.message()
        );
        assert!(planned.actions.is_empty(), "{:?}", planned.actions);
    }
}

#[test]
fn put_object_on_everything_is_granted_with_a_deny_of_the_bucket_and_its_keys() {
    let planned = plan(
        &wants("*", &["s3:PutObject"]),
        &cluster_with_worker(),
        &settings(),
    );
    assert_eq!(report(&planned).state, WorkloadState::Changing);
    let statements = written_statements(&planned);
    assert_eq!(statements.len(), 2, "{statements:?}");
    assert_eq!(statements[0]["Effect"], "Allow");
    assert_eq!(statements[0]["Resource"], serde_json::json!(["*"]));
    assert_eq!(
        statements[1],
        serde_json::json!({
            "Action": ["*"],
            "Effect": "Deny",
            "Resource": [BUCKET, format!("{BUCKET}/*")],
        })
    );
    assert!(
        planned.warnings.iter().any(|w| w.to_string().contains(
            "jokes/joke-worker is granted s3:PutObject on resources that include eks-intents' own"
        ) && w.to_string().contains(BUCKET)),
        "{:?}",
        planned.warnings
    );
}

#[test]
fn a_wildcard_over_functions_gets_a_deny_of_the_system_functions() {
    let planned = plan(
        &wants("arn:aws:lambda:*:*:function:*", &["lambda:InvokeFunction"]),
        &cluster_with_worker(),
        &settings(),
    );
    assert_eq!(report(&planned).state, WorkloadState::Changing);
    let deny = denials(&planned);
    assert_eq!(deny.len(), 1, "{deny:?}");
    assert_eq!(
        deny[0]["Resource"],
        serde_json::json!([RECONCILER, format!("{RECONCILER}:*")])
    );
    // The roles under the IAM path are the system's even when no list names them.
    let planned = plan(
        &wants("arn:aws:iam::*:role/*", &["sts:AssumeRole"]),
        &cluster_with_worker(),
        &Settings {
            system_resources: Vec::new(),
            ..settings()
        },
    );
    let deny = denials(&planned);
    assert!(
        deny[0]["Resource"]
            .as_array()
            .unwrap()
            .contains(&Value::from("arn:aws:iam::123456789012:role/eks-intents/*")),
        "{deny:?}"
    );
}

#[test]
fn grants_that_cannot_reach_the_system_carry_no_deny() {
    let planned = plan(
        &wants("*", &["dynamodb:GetItem", "ec2:CreateVolume"]),
        &cluster_with_worker(),
        &settings(),
    );
    assert_eq!(report(&planned).state, WorkloadState::Changing);
    assert!(denials(&planned).is_empty());
    assert!(
        !planned
            .warnings
            .iter()
            .any(|w| w.to_string().contains("eks-intents' own")),
        "{:?}",
        planned.warnings
    );
}

#[test]
fn a_converged_role_with_a_deny_plans_nothing() {
    let desired = wants("*", &["s3:PutObject", "sqs:SendMessage"]);
    let (first, state) = converge(&desired, &cluster_with_worker(), &settings());
    assert_eq!(denials(&first).len(), 1);
    let second = plan(&desired, &state, &settings());
    assert!(second.is_empty(), "{:?}", second.actions);
    assert_eq!(report(&second).state, WorkloadState::Ready);
}

#[test]
fn a_split_policy_keeps_the_deny_within_its_parts() {
    // Enough actions on `*` to need managed parts; the Deny goes with them.
    let many: Vec<String> = (0..1000).map(|i| format!("s3:Action{i:04}")).collect();
    let actions: Vec<&str> = many.iter().map(String::as_str).collect();
    let desired = wants("*", &actions);
    let settings = settings();
    let (first, state) = converge(&desired, &cluster_with_worker(), &settings);
    let parts: Vec<&PolicyDocument> = first
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::CreateManagedPolicy { document, .. } => Some(document),
            _ => None,
        })
        .collect();
    assert!(parts.len() > 1, "{:?}", first.actions);
    assert!(
        parts
            .iter()
            .all(|p| p.iam_size() <= settings.quotas.managed_policy_chars)
    );
    let allowed: usize = written_statements(&first)
        .iter()
        .filter(|s| s["Effect"] == "Allow")
        .map(|s| s["Action"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(allowed, 1000);
    assert_eq!(
        denials(&first),
        [
            serde_json::json!({"Action": ["*"], "Effect": "Deny", "Resource": [BUCKET, format!("{BUCKET}/*")]})
        ]
    );
    assert!(plan(&desired, &state, &settings).is_empty());
}

#[test]
fn a_refused_workload_gets_no_deny_notice() {
    let planned = plan(
        &wants("*", &["s3:PutObject", "iam:PassRole"]),
        &cluster_with_worker(),
        &settings(),
    );
    assert_eq!(report(&planned).state, WorkloadState::Error);
    assert!(planned.actions.is_empty(), "{:?}", planned.actions);
    assert!(
        !planned
            .warnings
            .iter()
            .any(|w| w.to_string().contains("eks-intents' own")),
        "{:?}",
        planned.warnings
    );
}
