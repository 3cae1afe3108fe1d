//! Live quotas (issue 14, point 4): the reconciler plans against the quotas IAM's
//! `GetAccountSummary` reports for the account, set at the local AWS emulator, instead of the
//! fixed defaults; it creates no role past the account's roles quota and no association past
//! the cluster's 5,000; and a warm function reads the summary again only when it is old or a
//! plan would create roles.

use eks_intents::model::BindingMode;
use integration::scenario::*;
use integration::{ACCOUNT, REGION};
use serde_json::{Value, json};

fn summary_reads(w: &World<impl eks_intents::ports::KubernetesConnector>) -> u64 {
    w.emulator.requests()["iam"]["GetAccountSummary"]
        .as_u64()
        .unwrap_or_default()
}

fn set_quotas(w: &World<impl eks_intents::ports::KubernetesConnector>, quotas: Value) {
    w.emulator.control(
        "POST",
        "/_harness/iam-quotas",
        Some(&json!({ "quotas": quotas })),
    );
}

async fn roles_in_account(w: &World<impl eks_intents::ports::KubernetesConnector>) -> i32 {
    let iam = aws_sdk_iam::Client::new(&w.emulator.sdk_config());
    let summary = iam.get_account_summary().send().await.expect("summary");
    summary
        .summary_map()
        .and_then(|m| m.get(&aws_sdk_iam::types::SummaryKeyType::Roles).copied())
        .unwrap_or_default()
}

fn message_of<'a>(status: &'a Value, workload: &str) -> &'a str {
    status["workloads"]
        .as_array()
        .and_then(|w| w.iter().find(|w| w["workload"] == workload))
        .and_then(|w| w["message"].as_str())
        .unwrap_or_else(|| panic!("no workload {workload}: {status:#}"))
}

#[tokio::test]
async fn the_accounts_inline_policy_quota_changes_the_split() {
    let w = world(BindingMode::Irsa, seed_fake_cluster).await;
    // The worker's inline policy (about 100 characters) no longer fits: managed parts instead.
    set_quotas(&w, json!({"RolePolicySizeQuota": 60}));
    w.upload_seed().await;
    w.run_reconciler().await;
    let worker = &w.inspect()["roles"][WORKER_ROLE];
    assert_eq!(worker["inline"], json!({}), "{worker:#}");
    let attached = worker["attached"].as_object().expect("attached policies");
    assert_eq!(attached.len(), 1, "{worker:#}");
    assert!(
        attached
            .values()
            .any(|d| d.to_string().contains("dynamodb:*")),
        "{worker:#}"
    );
    assert_eq!(summary_reads(&w), 1);
    // A second run makes no write and, warm, does not read the quotas again.
    w.emulator.clear_requests();
    w.reconcile_again().await;
    assert_eq!(w.aws_writes(), Default::default());
    assert_eq!(summary_reads(&w), 0);
}

#[tokio::test]
async fn no_role_is_created_past_the_roles_quota_until_there_is_room() {
    let w = world(BindingMode::Irsa, seed_fake_cluster).await;
    let before = roles_in_account(&w).await;
    set_quotas(&w, json!({"RolesQuota": before + 1}));
    w.upload_seed().await;
    w.run_reconciler().await;
    let roles = w.inspect()["roles"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        roles.keys().collect::<Vec<_>>(),
        [ACK_ROLE],
        "one role, the first by ServiceAccount"
    );
    let status = w.status().await;
    for workload in ["joke-worker", "ebs-csi-controller"] {
        let message = message_of(&status, workload);
        assert!(
            message.contains(&format!("quota of {} IAM roles", before + 1)),
            "{workload}: {message}"
        );
    }
    // Still full: a run from the remembered quotas plans a role, reads them again, creates none.
    w.emulator.clear_requests();
    w.reconcile_again().await;
    assert_eq!(summary_reads(&w), 1);
    assert_eq!(w.aws_writes().get("iam:CreateRole"), None);
    // The quota raised: the next run sees it (the plan creates roles) and creates the rest.
    set_quotas(&w, json!({"RolesQuota": before + 10}));
    w.reconcile_again().await;
    let roles = w.inspect()["roles"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    assert_eq!(roles.len(), 3, "{:?}", roles.keys());
}

#[tokio::test]
async fn a_cluster_at_five_thousand_associations_gets_no_new_one() {
    let w = world(BindingMode::PodIdentity, seed_fake_cluster).await;
    let filled = w.emulator.control(
        "POST",
        &format!("/_harness/clusters/{CLUSTER}/associations"),
        Some(&json!({
            "count": 5000,
            "namespace": "other-team",
            "roleArn": role_arn("other-team"),
            "account": ACCOUNT,
            "region": REGION,
        })),
    );
    assert_eq!(filled["associations"], 5000, "{filled}");
    w.upload_seed().await;
    w.emulator.clear_requests();
    w.run_reconciler().await;
    let writes = w.aws_writes();
    assert_eq!(
        writes.get("eks:CreatePodIdentityAssociation"),
        None,
        "{writes:?}"
    );
    assert_eq!(writes.get("iam:CreateRole"), None, "{writes:?}");
    let status = w.status().await;
    let message = message_of(&status, "joke-worker");
    assert!(
        message.contains("has the 5000 Pod Identity associations EKS allows"),
        "{message}"
    );
    // None of the 5,000 is described: they are in no namespace of the intents.
    assert_eq!(
        w.emulator.requests()["eks"]["DescribePodIdentityAssociation"].as_u64(),
        None
    );
}

#[tokio::test]
async fn quotas_that_cannot_be_read_fall_back_to_the_defaults_and_say_so() {
    let w = world(BindingMode::Irsa, seed_fake_cluster).await;
    w.emulator.control(
        "POST",
        "/_harness/faults",
        Some(&json!({"service": "iam", "operation": "GetAccountSummary", "code": "AccessDenied", "status": 403})),
    );
    w.upload_seed().await;
    w.run_reconciler().await;
    // The worker's policy fits the default inline quota.
    let worker = &w.inspect()["roles"][WORKER_ROLE];
    assert_eq!(
        worker["inline"].as_object().map(|m| m.len()),
        Some(1),
        "{worker:#}"
    );
    let status = w.status().await;
    let warnings = status["warnings"].to_string();
    assert!(
        warnings.contains("IAM quotas could not be read")
            && warnings.contains("iam:GetAccountSummary"),
        "{warnings}"
    );
}
