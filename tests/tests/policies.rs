//! A permission policy too large for an inline policy, split into managed policies, through its
//! whole life on the local AWS emulator and the local Kubernetes API: created, left alone by
//! the runs after (no IAM write at all), changed, and deleted without leaving a part behind.

use eks_intents::model::BindingMode;
use integration::scenario::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

const KEY: &str = "intents/demo/jokes/big.yaml";
const TARGETS: usize = 500;

fn table(i: usize) -> String {
    format!("arn:aws:dynamodb:eu-west-2:123456789012:table/jokes-archive-of-the-year-{i:04}")
}

/// The joke-worker's intents: `TARGETS` tables, each with its own actions so that no two
/// share a statement; the first `changed` tables also get `dynamodb:PutItem`.
fn big_bundle(changed: usize) -> Vec<u8> {
    let mut text = String::from(
        "apiVersion: k8s.otterize.com/v2beta1\nkind: ClientIntents\nmetadata:\n  name: joke-worker\nspec:\n  workload:\n    name: joke-worker\n  targets:\n",
    );
    for i in 0..TARGETS {
        let actions = match (i % 3, i < changed) {
            (0, false) => "\"dynamodb:GetItem\"",
            (1, false) => "\"dynamodb:GetItem\", \"dynamodb:Query\"",
            (_, false) => "\"dynamodb:Query\"",
            (_, true) => "\"dynamodb:GetItem\", \"dynamodb:PutItem\"",
        };
        text.push_str(&format!(
            "  - aws:\n      arn: \"{}\"\n      actions: [{actions}]\n",
            table(i)
        ));
    }
    text.into_bytes()
}

/// Action -> resources granted by a role's attached policies, as IAM holds them.
fn grants(role: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let mut grants: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let list = |v: &Value| -> Vec<String> {
        match v {
            Value::String(s) => vec![s.clone()],
            Value::Array(items) => items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    };
    for document in role["attached"].as_object().expect("attached").values() {
        for statement in document["Statement"].as_array().expect("statements") {
            assert_eq!(statement["Effect"], "Allow");
            for action in list(&statement["Action"]) {
                grants
                    .entry(action)
                    .or_default()
                    .extend(list(&statement["Resource"]));
            }
        }
    }
    grants
}

fn expected_grants(changed: usize) -> BTreeMap<String, BTreeSet<String>> {
    let mut grants: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for i in 0..TARGETS {
        let actions: &[&str] = match (i % 3, i < changed) {
            (0, false) => &["dynamodb:GetItem"],
            (1, false) => &["dynamodb:GetItem", "dynamodb:Query"],
            (_, false) => &["dynamodb:Query"],
            (_, true) => &["dynamodb:GetItem", "dynamodb:PutItem"],
        };
        for action in actions {
            grants
                .entry((*action).to_owned())
                .or_default()
                .insert(table(i));
        }
    }
    grants
}

/// Every managed policy under the system's path, name -> ARN, read with the plain SDK client.
async fn managed_policies(w: &World<LocalCluster>) -> BTreeMap<String, String> {
    let iam = aws_sdk_iam::Client::new(&w.emulator.sdk_config());
    let out = iam
        .list_policies()
        .scope(aws_sdk_iam::types::PolicyScopeType::Local)
        .path_prefix(PATH)
        .send()
        .await
        .expect("list policies");
    out.policies()
        .iter()
        .map(|p| {
            (
                p.policy_name().unwrap_or_default().to_owned(),
                p.arn().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn split_policies_settle_change_and_leave_nothing_behind() {
    let mut w = world(BindingMode::Irsa, local_cluster(CLUSTER, true)).await;
    w.reconciler.settings.plan.deletion_grace_seconds = 0;

    // Created: the role with every part attached, no inline policy.
    w.put(KEY, big_bundle(0)).await;
    w.reconcile_again().await;
    let state = w.inspect();
    let role = &state["roles"][WORKER_ROLE];
    assert_eq!(role["inline"], serde_json::json!({}), "{role:#}");
    let parts = managed_policies(&w).await;
    let attached: BTreeSet<String> = role["attached"]
        .as_object()
        .expect("attached")
        .keys()
        .cloned()
        .collect();
    assert!((2..=10).contains(&parts.len()), "{parts:#?}");
    assert_eq!(attached, parts.values().cloned().collect());
    for (i, name) in parts.keys().enumerate() {
        assert!(name.starts_with(&format!("{WORKER_ROLE}.part")), "{name}");
        assert!(parts.contains_key(&format!("{WORKER_ROLE}.part{}", i + 1)));
    }
    assert_eq!(grants(role), expected_grants(0));
    let status = w.status().await;
    assert_eq!(status["summary"]["failed"], 0, "{status:#}");

    // A run with nothing to do writes nothing to IAM or EKS.
    w.emulator.clear_requests();
    w.reconcile_again().await;
    assert_eq!(w.aws_writes(), BTreeMap::new());
    let summary = &w.status().await["summary"];
    for count in ["create", "change", "remove", "applied", "failed"] {
        assert_eq!(summary[count], 0, "{summary:#}");
    }

    // Changed: the parts take the new permissions, and the run after is quiet again.
    w.put(KEY, big_bundle(120)).await;
    w.emulator.clear_requests();
    w.reconcile_again().await;
    let writes = w.aws_writes();
    assert!(writes.contains_key("iam:CreatePolicyVersion"), "{writes:?}");
    assert!(!writes.contains_key("iam:CreateRole"), "{writes:?}");
    let state = w.inspect();
    assert_eq!(grants(&state["roles"][WORKER_ROLE]), expected_grants(120));
    w.emulator.clear_requests();
    w.reconcile_again().await;
    assert_eq!(w.aws_writes(), BTreeMap::new());

    // Deleted: the intents go, the grace period passes, and nothing is left.
    w.clients
        .s3
        .delete_object()
        .bucket(BUCKET)
        .key(KEY)
        .send()
        .await
        .expect("delete bundle");
    w.reconcile_again().await;
    assert_eq!(w.status().await["cleanup"]["marked"], 1);
    w.reconcile_again().await;
    let status = w.status().await;
    assert_eq!(status["cleanup"]["deleted"], 1, "{:#}", status["cleanup"]);
    let state = w.inspect();
    assert_eq!(state["roles"], serde_json::json!({}), "{state:#}");
    assert_eq!(managed_policies(&w).await, BTreeMap::new());

    // And the run after is quiet.
    w.emulator.clear_requests();
    w.reconcile_again().await;
    assert_eq!(w.aws_writes(), BTreeMap::new());
}
