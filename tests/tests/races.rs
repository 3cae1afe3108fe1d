//! Runs that overlap, on the local AWS emulator and the local Kubernetes API: two reconciles of
//! one cluster at once (Pod Identity mode) both end well and leave the newer run's report, and
//! an association that appeared since the plan is adopted when it is what was wanted.

use eks_intents::apply::{ApplySettings, Ports, apply};
use eks_intents::model::{BindingMode, ClusterRef, RoleArn, RoleName};
use eks_intents::plan::{Action, Plan};
use eks_intents::reconcile::{Run, reconcile};
use eks_intents::testing::service_account_ref;
use integration::scenario::*;
use integration::{ACCOUNT, REGION};
use serde_json::Value;
use std::collections::BTreeMap;

/// Namespace, ServiceAccount, role ARN and whether an add-on owns it, sorted.
fn associations(state: &Value) -> Vec<(String, String, String, bool)> {
    let mut list: Vec<(String, String, String, bool)> = state["pod_identity_associations"]
        .as_array()
        .expect("associations")
        .iter()
        .map(|a| {
            (
                a["namespace"].as_str().unwrap_or_default().to_owned(),
                a["service_account"].as_str().unwrap_or_default().to_owned(),
                a["role_arn"].as_str().unwrap_or_default().to_owned(),
                a["owner_arn"].is_string(),
            )
        })
        .collect();
    list.sort();
    list
}

fn seed_associations() -> Vec<(String, String, String, bool)> {
    vec![
        (
            "ack-system".into(),
            "ack-dynamodb-controller".into(),
            role_arn(ACK_ROLE),
            false,
        ),
        (
            "jokes".into(),
            "joke-worker".into(),
            role_arn(WORKER_ROLE),
            false,
        ),
        (
            "kube-system".into(),
            "ebs-csi-controller-sa".into(),
            role_arn(EBS_ROLE),
            true,
        ),
    ]
}

#[tokio::test]
async fn two_reconciles_at_once_both_succeed_and_the_newer_report_stays() {
    let w = world(BindingMode::PodIdentity, local_cluster(CLUSTER, true)).await;
    for (key, file) in SEED_KEYS {
        w.put(key, seed(file)).await;
    }
    let ctx = &w.reconciler;
    let ports = ctx.ports();
    let calls = eks_intents::status::ApiCallCounts::default;
    let (first, second) = tokio::join!(
        reconcile(CLUSTER, &ports, &ctx.settings, Run::Apply, &calls),
        reconcile(CLUSTER, &ports, &ctx.settings, Run::Apply, &calls),
    );
    let first = first.expect("the first run succeeds");
    let second = second.expect("the second run succeeds");
    for outcome in [&first, &second] {
        assert_eq!(
            outcome.applied.failures,
            [],
            "{:#?}",
            outcome.applied.failures
        );
        assert_eq!(outcome.report.summary.failed, 0);
        assert!(outcome.report.error.is_none());
    }
    assert_eq!(associations(&w.inspect()), seed_associations());

    let status = w.status().await;
    let newer = first.report.started_at_ms.max(second.report.started_at_ms);
    assert!(newer > 0);
    assert_eq!(status["started_at_ms"], newer, "{status:#}");
    assert!(status["error"].is_null(), "{status:#}");
    assert_eq!(status["summary"]["failed"], 0, "{status:#}");

    // And both left the cluster settled: the next run writes nothing.
    w.emulator.clear_requests();
    w.reconcile_again().await;
    assert_eq!(w.aws_writes(), BTreeMap::new());
}

#[tokio::test]
async fn an_association_made_since_the_plan_is_adopted_or_reported() {
    let w = world(BindingMode::PodIdentity, local_cluster(CLUSTER, true)).await;
    for (key, file) in SEED_KEYS {
        w.put(key, seed(file)).await;
    }
    w.reconcile_again().await;
    let cluster = ClusterRef::from_arn(&format!("arn:aws:eks:{REGION}:{ACCOUNT}:cluster/demo"))
        .expect("cluster ARN");
    let create = |role: &str| Plan {
        actions: vec![Action::CreatePodIdentityAssociation {
            role: RoleName::new(WORKER_ROLE),
            service_account: service_account_ref("jokes", "joke-worker"),
            role_arn: RoleArn::new(role_arn(role)),
            tags: BTreeMap::new(),
            session_policy: None,
            target_role_arn: None,
        }],
        ..Plan::default()
    };
    let ports = Ports {
        iam: &w.reconciler.iam,
        eks: &w.reconciler.eks,
        kube: &eks_intents::testing::FakeKubernetes::default(),
        targets: &eks_intents::ports::NoTargets::<eks_intents::adapters::aws::IamAdapter>::NONE,
    };
    let settings = ApplySettings::default();

    // The association is there with the desired role (another run made it): success.
    w.emulator.clear_requests();
    let report = apply(&create(WORKER_ROLE), &cluster, &ports, &settings).await;
    assert_eq!(report.failures, [], "{report:#?}");
    assert_eq!(report.done, 1);
    let requests = w.emulator.requests();
    assert_eq!(requests["eks"]["CreatePodIdentityAssociation"], 1);
    assert_eq!(associations(&w.inspect()), seed_associations());

    // With another role: a conflict, named, and nothing changed.
    let report = apply(&create(ACK_ROLE), &cluster, &ports, &settings).await;
    assert_eq!(report.failures.len(), 1, "{report:#?}");
    let failure = &report.failures[0];
    assert!(
        failure
            .error
            .contains("already has Pod Identity association")
            && failure.error.contains(&role_arn(WORKER_ROLE)),
        "{}",
        failure.error
    );
    assert_eq!(associations(&w.inspect()), seed_associations());
}

#[tokio::test]
async fn a_report_of_a_later_run_is_not_replaced_and_writes_are_conditional_on_s3() {
    use eks_intents::ports::{BundleStore, ErrorKind, WriteCondition};
    let w = world(BindingMode::PodIdentity, local_cluster(CLUSTER, true)).await;
    let store = &w.reconciler.store;
    let key = "status/demo.json";

    // The S3 adapter's conditional writes, as S3 (and the emulator) check them.
    store
        .put_if(
            key,
            b"{}".to_vec(),
            "application/json",
            &WriteCondition::Absent,
        )
        .await
        .expect("written where there was nothing");
    let taken = store
        .put_if(
            key,
            b"{}".to_vec(),
            "application/json",
            &WriteCondition::Absent,
        )
        .await
        .expect_err("something is there now");
    assert_eq!(taken.kind, ErrorKind::Conflict, "{taken}");
    let read = store.get(key, 1024).await.expect("read back");
    let etag = read.etag.expect("the read gives the ETag");
    let stale = store
        .put_if(
            key,
            b"{}".to_vec(),
            "application/json",
            &WriteCondition::Unchanged("0123456789abcdef0123456789abcdef".into()),
        )
        .await
        .expect_err("not the ETag stored");
    assert_eq!(stale.kind, ErrorKind::Conflict, "{stale}");
    store
        .put_if(
            key,
            b"{}".to_vec(),
            "application/json",
            &WriteCondition::Unchanged(etag),
        )
        .await
        .expect("the ETag read");

    // A report left by a run that started after this one (its clock ahead) stays.
    let later = serde_json::json!({"cluster": CLUSTER, "started_at_ms": u64::MAX / 2});
    w.put(key, later.to_string().into_bytes()).await;
    for (key, file) in SEED_KEYS {
        w.put(key, seed(file)).await;
    }
    w.reconcile_again().await;
    assert_eq!(w.status().await, later);
    assert_eq!(associations(&w.inspect()), seed_associations());
}
