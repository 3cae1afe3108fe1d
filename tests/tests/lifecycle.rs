//! The end of a role's life, through the real reconciler handler, the real queue, the local AWS
//! emulator and the local Kubernetes API: the deletion breaker, and the clean-up after it.

use eks_intents::model::BindingMode;
use integration::scenario::*;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

const TEAM: &str = "team";
const EXTRA: usize = 47;

fn team_bundle(i: usize) -> Vec<u8> {
    format!(
        "apiVersion: k8s.otterize.com/v2beta1\nkind: ClientIntents\nmetadata:\n  name: w{i}\nspec:\n  workload:\n    name: w{i}\n  targets:\n  - aws:\n      arn: \"arn:aws:dynamodb:*:*:table/t{i}\"\n      actions: [\"dynamodb:GetItem\"]\n"
    )
    .into_bytes()
}

fn metric(w: &World<LocalCluster>, name: &str) -> f64 {
    w.metrics
        .lock()
        .unwrap()
        .last()
        .and_then(|m| m.values.get(name).map(|(v, _)| *v))
        .unwrap_or_default()
}

/// 50 workloads (the seed scenario's three, one of them an add-on's, and 47 more) lose their
/// bundles at once. With the default cap nothing is deleted and the report, the log and the
/// metric say why; with the cap raised, all go, bindings first.
#[tokio::test]
async fn a_mass_deletion_is_held_by_the_breaker_until_the_cap_is_raised() {
    let mut w = world(BindingMode::Irsa, local_cluster(CLUSTER, true)).await;
    w.reconciler.settings.plan.deletion_grace_seconds = 0;
    let admin = w.reconciler.kube.server.admin_client();
    Api::<Namespace>::all(admin.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": TEAM}})).unwrap(),
        )
        .await
        .expect("namespace");
    for i in 0..EXTRA {
        let name = format!("w{i}");
        create_service_account(&admin, TEAM, &name).await;
        create_deployment(&admin, TEAM, &name, &name).await;
        w.put(&format!("intents/demo/{TEAM}/w{i}.yaml"), team_bundle(i))
            .await;
    }
    w.upload_seed().await;
    w.run_reconciler().await;
    let state = w.inspect();
    assert_eq!(state["roles"].as_object().unwrap().len(), EXTRA + 3);
    assert_eq!(
        state["addons"]["aws-ebs-csi-driver"]["service_account_role_arn"],
        role_arn(EBS_ROLE)
    );

    // Every bundle goes at once, as an `aws s3 rm --recursive` would do it.
    let keys: Vec<String> = w
        .clients
        .s3
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix("intents/")
        .send()
        .await
        .unwrap()
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect();
    assert_eq!(keys.len(), EXTRA + SEED_KEYS.len());
    for key in &keys {
        w.clients
            .s3
            .delete_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .unwrap();
    }
    w.reconcile_again().await;
    let status = w.status().await;
    assert_eq!(
        status["cleanup"]["marked"],
        EXTRA + 3,
        "{:#}",
        status["cleanup"]
    );

    // The grace period (zero here) is over: 50 due, the cap is 5. Nothing is deleted.
    w.emulator.clear_requests();
    w.reconcile_again().await;
    assert!(
        !w.aws_writes().keys().any(|k| k.contains("Delete")),
        "{:?}",
        w.aws_writes()
    );
    let status = w.status().await;
    assert_eq!(status["cleanup"]["held_by_breaker"], EXTRA + 3);
    let breaker = status["cleanup"]["breaker"].as_str().unwrap_or_default();
    assert!(
        breaker.contains("50 roles are due for deletion, more than the 5"),
        "{breaker}"
    );
    assert!(
        breaker.contains("EKS_INTENTS_MAX_DELETIONS_PER_RUN=50"),
        "{breaker}"
    );
    assert!(
        status["orphans"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["state"] == "HeldByBreaker")
    );
    assert_eq!(metric(&w, "DeletionsHeldByBreaker"), 50.0);
    assert_eq!(metric(&w, "RolesDeleted"), 0.0);
    assert_eq!(w.inspect()["roles"].as_object().unwrap().len(), EXTRA + 3);

    // Raised for one run: every role goes, with its binding, its policy and the add-on's role.
    w.reconciler.settings.plan.max_deletions_per_run = 50;
    w.reconcile_again().await;
    assert_eq!(metric(&w, "RolesDeleted"), 50.0);
    let state = w.inspect();
    assert_eq!(state["roles"].as_object().unwrap().len(), 0, "{state:#}");
    assert!(
        state["addons"]["aws-ebs-csi-driver"]["service_account_role_arn"].is_null(),
        "{:#}",
        state["addons"]
    );
    for ns in [TEAM, "jokes", "ack-system"] {
        let accounts = Api::<ServiceAccount>::namespaced(admin.clone(), ns)
            .list(&ListParams::default())
            .await
            .unwrap();
        for sa in accounts.items {
            let annotations = sa.metadata.annotations.unwrap_or_default();
            assert!(
                !annotations.contains_key("eks.amazonaws.com/role-arn"),
                "{ns}/{:?} still annotated",
                sa.metadata.name
            );
        }
    }
    let status = w.status().await;
    assert_eq!(status["cleanup"]["deleted"], EXTRA + 3);
    // And the run after is quiet.
    w.emulator.clear_requests();
    w.reconcile_again().await;
    assert!(w.aws_writes().is_empty(), "{:?}", w.aws_writes());
}

/// A namespace's only bundle is deleted: after the grace period nothing of its workload is
/// left (role, policy, annotation, label, association) and the status says exactly what went.
async fn a_namespaces_last_bundle_leaves_nothing_behind(mode: BindingMode) {
    let mut w = world(mode, local_cluster(CLUSTER, true)).await;
    w.reconciler.settings.plan.deletion_grace_seconds = 0;
    w.upload_seed().await;
    w.run_reconciler().await;
    assert!(w.inspect()["roles"][WORKER_ROLE].is_object());
    w.clients
        .s3
        .delete_object()
        .bucket(BUCKET)
        .key("intents/demo/jokes/joke-worker-ci.yaml")
        .send()
        .await
        .unwrap();
    w.reconcile_again().await;
    let status = w.status().await;
    assert_eq!(status["cleanup"]["marked"], 1, "{:#}", status["cleanup"]);
    w.reconcile_again().await;

    let state = w.inspect();
    assert!(state["roles"][WORKER_ROLE].is_null(), "{state:#}");
    assert_eq!(state["roles"].as_object().unwrap().len(), 2, "{state:#}");
    let leftovers: Vec<&serde_json::Value> = state["pod_identity_associations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["namespace"] == "jokes")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let admin = w.reconciler.kube.server.admin_client();
    let sa = Api::<ServiceAccount>::namespaced(admin, "jokes")
        .get("joke-worker")
        .await
        .unwrap();
    let annotations = sa.metadata.annotations.unwrap_or_default();
    let labels = sa.metadata.labels.unwrap_or_default();
    assert!(
        !annotations.contains_key("eks.amazonaws.com/role-arn"),
        "{annotations:?}"
    );
    assert!(!labels.contains_key("eks-intents/role-bound"), "{labels:?}");
    let status = w.status().await;
    assert_eq!(status["cleanup"]["deleted"], 1, "{:#}", status["cleanup"]);
    let orphan = status["orphans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["role"] == WORKER_ROLE)
        .cloned()
        .unwrap_or_default();
    let message = orphan["message"].as_str().unwrap_or_default();
    let expected = match mode {
        BindingMode::Irsa => "remove role annotation from ServiceAccount jokes/joke-worker",
        BindingMode::PodIdentity => "delete Pod Identity association",
    };
    assert!(
        message.contains(expected) && message.contains("then deleted with its policies"),
        "{message}"
    );
    w.emulator.clear_requests();
    w.reconcile_again().await;
    assert!(w.aws_writes().is_empty(), "{:?}", w.aws_writes());
}

#[tokio::test]
async fn irsa_a_namespaces_last_bundle_leaves_nothing_behind() {
    a_namespaces_last_bundle_leaves_nothing_behind(BindingMode::Irsa).await;
}

#[tokio::test]
async fn pod_identity_a_namespaces_last_bundle_leaves_nothing_behind() {
    a_namespaces_last_bundle_leaves_nothing_behind(BindingMode::PodIdentity).await;
}
