//! Pod Identity session policies (issue 14, point 3), on the local AWS emulator: with the
//! setting on, each association carries its workload's declared policy as its session policy
//! with EKS's session tags off, and its role's trust names the account instead of session tags
//! (README, "Session policies"); a second run writes nothing; turning the setting off makes the
//! association again without one.

use eks_intents::model::BindingMode;
use integration::scenario::*;
use integration::{ACCOUNT, REGION};
use serde_json::{Value, json};

/// The joke-worker's association as EKS describes it.
async fn worker_association(w: &World<impl eks_intents::ports::KubernetesConnector>) -> Value {
    let eks = aws_sdk_eks::Client::new(&w.emulator.sdk_config());
    let listed = eks
        .list_pod_identity_associations()
        .cluster_name(CLUSTER)
        .namespace("jokes")
        .service_account("joke-worker")
        .send()
        .await
        .expect("list");
    let id = listed.associations()[0]
        .association_id()
        .unwrap_or_default();
    let described = eks
        .describe_pod_identity_association()
        .cluster_name(CLUSTER)
        .association_id(id)
        .send()
        .await
        .expect("describe");
    let a = described.association().expect("association");
    json!({
        "policy": a.policy().map(|p| serde_json::from_str::<Value>(p).expect("JSON policy")),
        "disableSessionTags": a.disable_session_tags(),
        "roleArn": a.role_arn(),
    })
}

#[tokio::test]
async fn associations_carry_the_declared_policy_and_the_trust_names_the_account() {
    let mut w = world(BindingMode::PodIdentity, seed_fake_cluster).await;
    w.reconciler.settings.plan.session_policies = true;
    w.upload_seed().await;
    w.run_reconciler().await;
    let state = w.inspect();
    let worker = &state["roles"][WORKER_ROLE];
    let association = worker_association(&w).await;
    assert_eq!(association["disableSessionTags"], true, "{association:#}");
    assert_eq!(
        association["policy"], worker["inline"]["eks-intents"],
        "the session policy is the role's declared policy: {association:#}"
    );
    assert_eq!(
        worker["trust"],
        json!({"Version": "2012-10-17", "Statement": [{
            "Action": ["sts:AssumeRole", "sts:TagSession"],
            "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}},
            "Effect": "Allow",
            "Principal": {"Service": "pods.eks.amazonaws.com"},
        }]})
    );
    // The add-on's role keeps the trust on session tags (its associations take no policy).
    let ebs = state["roles"][EBS_ROLE]["trust"].to_string();
    assert!(
        ebs.contains("aws:RequestTag/kubernetes-service-account"),
        "{ebs}"
    );
    w.emulator.clear_requests();
    w.reconcile_again().await;
    assert_eq!(w.aws_writes(), Default::default());

    // Off again: the association is made again without a session policy, the trust pins the
    // ServiceAccount through session tags, and the next run writes nothing.
    w.reconciler.settings.plan.session_policies = false;
    w.reconcile_again().await;
    let association = worker_association(&w).await;
    assert_eq!(association["policy"], Value::Null, "{association:#}");
    assert_eq!(association["disableSessionTags"], false, "{association:#}");
    let trust = w.inspect()["roles"][WORKER_ROLE]["trust"].to_string();
    assert!(
        trust.contains(&format!("arn:aws:eks:{REGION}:{ACCOUNT}:cluster/{CLUSTER}")),
        "{trust}"
    );
    w.emulator.clear_requests();
    w.reconcile_again().await;
    assert_eq!(w.aws_writes(), Default::default());
}
