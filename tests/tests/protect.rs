//! The system protects itself, through the real reconciler on the local AWS emulator: an
//! intent naming the intents bucket creates and changes no role, and `s3:PutObject` on `*`
//! reaches IAM with a Deny of the bucket and its keys in the same policy.

use eks_intents::model::BindingMode;
use integration::scenario::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;

const KEY: &str = "intents/demo/jokes/writer.yaml";

fn bucket_arn() -> String {
    format!("arn:aws:s3:::{BUCKET}")
}

/// joke-worker's intents: `actions` on `resource`.
fn bundle(resource: &str, actions: &[&str]) -> Vec<u8> {
    let actions: Vec<String> = actions.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "apiVersion: k8s.otterize.com/v1alpha3\nkind: ClientIntents\nmetadata:\n  name: writer\n  namespace: jokes\nspec:\n  service:\n    name: joke-worker\n  calls:\n    - type: aws\n      name: \"{resource}\"\n      awsActions: [{}]\n",
        actions.join(", ")
    )
    .into_bytes()
}

fn worker(status: &Value) -> Value {
    status["workloads"]
        .as_array()
        .expect("workloads")
        .iter()
        .find(|w| w["workload"] == "joke-worker")
        .cloned()
        .unwrap_or_else(|| panic!("no joke-worker: {status:#}"))
}

fn iam_writes(w: &World<eks_intents::testing::FakeKubernetes>) -> BTreeMap<String, u64> {
    w.aws_writes()
        .into_iter()
        .filter(|(op, _)| op.starts_with("iam:"))
        .collect()
}

#[tokio::test]
async fn the_intents_bucket_is_out_of_every_workloads_reach() {
    let mut w = world(BindingMode::Irsa, seed_fake_cluster).await;
    w.reconciler.settings.plan.system_resources = vec![bucket_arn()];

    // Naming the bucket's keys: refused, no role made.
    w.put(
        KEY,
        bundle(&format!("{}/intents/*", bucket_arn()), &["s3:PutObject"]),
    )
    .await;
    w.emulator.clear_requests();
    w.reconcile_again().await;
    let writes = iam_writes(&w);
    assert!(!writes.contains_key("iam:CreateRole"), "{writes:?}");
    assert!(!writes.contains_key("iam:PutRolePolicy"), "{writes:?}");
    assert!(w.inspect()["roles"].get(WORKER_ROLE).is_none());
    let refused = worker(&w.status().await);
    assert_eq!(refused["state"], "Error", "{refused:#}");
    let message = refused["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!(
            "s3:PutObject on {}/intents/*: a resource of eks-intents itself ({}/*)",
            bucket_arn(),
            bucket_arn()
        )),
        "{message}"
    );

    // `s3:PutObject` on `*`: granted, with the bucket and its keys denied in the same policy.
    w.put(KEY, bundle("*", &["s3:PutObject"])).await;
    w.reconcile_again().await;
    let state = w.inspect();
    let role = &state["roles"][WORKER_ROLE];
    let statements = role["inline"]
        .as_object()
        .and_then(|policies| policies.values().next())
        .map(|document| document["Statement"].clone())
        .unwrap_or_else(|| panic!("no inline policy: {role:#}"));
    let statements: Vec<Value> = match statements {
        Value::Array(list) => list,
        one => vec![one],
    };
    let list = |v: &Value| match v {
        Value::Array(items) => items.clone(),
        one => vec![one.clone()],
    };
    let deny = statements
        .iter()
        .find(|s| s["Effect"] == "Deny")
        .unwrap_or_else(|| panic!("no Deny: {statements:#?}"));
    assert_eq!(list(&deny["Action"]), vec![json!("*")]);
    assert_eq!(
        list(&deny["Resource"]),
        vec![json!(bucket_arn()), json!(format!("{}/*", bucket_arn()))]
    );
    let allow = statements
        .iter()
        .find(|s| s["Effect"] == "Allow")
        .unwrap_or_else(|| panic!("no Allow: {statements:#?}"));
    assert_eq!(list(&allow["Action"]), vec![json!("s3:PutObject")]);
    assert_eq!(list(&allow["Resource"]), vec![json!("*")]);
    let status = w.status().await;
    assert_eq!(worker(&status)["state"], "Ready", "{status:#}");
    assert!(
        status
            .to_string()
            .contains("its policy denies every action on"),
        "{status:#}"
    );

    // The Deny is part of the policy like any statement: the run after is quiet.
    w.emulator.clear_requests();
    w.reconcile_again().await;
    assert_eq!(w.aws_writes(), BTreeMap::new());

    // Naming the bucket again: the existing role is left exactly as it is.
    w.put(KEY, bundle(&bucket_arn(), &["s3:GetObject"])).await;
    w.emulator.clear_requests();
    w.reconcile_again().await;
    assert_eq!(iam_writes(&w), BTreeMap::new());
    assert_eq!(
        w.inspect()["roles"][WORKER_ROLE],
        state["roles"][WORKER_ROLE]
    );
    assert_eq!(worker(&w.status().await)["state"], "Error");
}
