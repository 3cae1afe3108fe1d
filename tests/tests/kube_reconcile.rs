//! The seed scenario through the real handlers, the real AWS adapters on the local AWS emulator,
//! and the real Kubernetes client (EKS token, TLS with the cluster's CA from DescribeCluster)
//! against the local Kubernetes API server.

use eks_intents::adapters::kube::FIELD_MANAGER;
use eks_intents::model::BindingMode;
use integration::scenario::*;
use k8s_openapi::api::core::v1::{Event, ServiceAccount};
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::{Value, json};

const ROLE_ANNOTATION: &str = "eks.amazonaws.com/role-arn";

async fn service_account(w: &World<LocalCluster>, ns: &str, name: &str) -> ServiceAccount {
    let api: Api<ServiceAccount> = Api::namespaced(w.reconciler.kube.server.admin_client(), ns);
    api.get(name).await.expect("service account")
}

fn annotation(sa: &ServiceAccount) -> Option<String> {
    sa.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ROLE_ANNOTATION).cloned())
}

fn managers_of_annotation(sa: &ServiceAccount) -> Vec<String> {
    sa.metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| {
            m.fields_v1.as_ref().is_some_and(|f| {
                f.0["f:metadata"]["f:annotations"]
                    .get(format!("f:{ROLE_ANNOTATION}"))
                    .is_some()
            })
        })
        .filter_map(|m| m.manager.clone())
        .collect()
}

async fn events(w: &World<LocalCluster>, ns: &str) -> Vec<Event> {
    let api: Api<Event> = Api::namespaced(w.reconciler.kube.server.admin_client(), ns);
    api.list(&ListParams::default())
        .await
        .expect("events")
        .items
}

fn workload_status<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["workloads"]
        .as_array()
        .and_then(|w| w.iter().find(|x| x["workload"] == name))
        .unwrap_or_else(|| panic!("no status for {name}: {status:#}"))
}

#[tokio::test]
async fn seed_scenario_binds_service_accounts_by_server_side_apply() {
    let w = world(BindingMode::Irsa, local_cluster(CLUSTER, true)).await;
    w.upload_seed().await;
    w.run_reconciler().await;

    let worker = service_account(&w, "jokes", "joke-worker").await;
    assert_eq!(annotation(&worker), Some(role_arn(WORKER_ROLE)));
    assert_eq!(managers_of_annotation(&worker), [FIELD_MANAGER]);
    let ack = service_account(&w, "ack-system", "ack-dynamodb-controller").await;
    assert_eq!(annotation(&ack), Some(role_arn(ACK_ROLE)));
    assert_eq!(managers_of_annotation(&ack), [FIELD_MANAGER]);
    // The add-on's ServiceAccount is left alone: the add-on got the role.
    let ebs = service_account(&w, "kube-system", "ebs-csi-controller-sa").await;
    assert_eq!(annotation(&ebs), None);
    assert_eq!(
        w.inspect()["addons"]["aws-ebs-csi-driver"]["service_account_role_arn"],
        role_arn(EBS_ROLE)
    );

    for (ns, sa, role) in [
        ("jokes", "joke-worker", WORKER_ROLE),
        ("ack-system", "ack-dynamodb-controller", ACK_ROLE),
    ] {
        let recorded = events(&w, ns).await;
        let bound: Vec<&Event> = recorded
            .iter()
            .filter(|e| {
                e.reason.as_deref() == Some("RoleBound")
                    && e.involved_object.name.as_deref() == Some(sa)
            })
            .collect();
        assert_eq!(bound.len(), 1, "{ns}/{sa}: {recorded:#?}");
        assert!(
            bound[0]
                .message
                .as_deref()
                .unwrap_or_default()
                .contains(&role_arn(role))
        );
        assert_eq!(
            bound[0].involved_object.kind.as_deref(),
            Some("ServiceAccount")
        );
    }
    let status = w.status().await;
    for name in [
        "joke-worker",
        "ack-dynamodb-controller-dynamodb-chart",
        "ebs-csi-controller",
    ] {
        assert_eq!(
            workload_status(&status, name)["state"],
            "Ready",
            "{status:#}"
        );
    }

    // A second run writes nothing to the cluster: no object changes, no new event.
    let versions = |sas: &[ServiceAccount]| -> Vec<Option<String>> {
        sas.iter()
            .map(|s| s.metadata.resource_version.clone())
            .collect()
    };
    let before = versions(&[
        service_account(&w, "jokes", "joke-worker").await,
        service_account(&w, "ack-system", "ack-dynamodb-controller").await,
    ]);
    let events_before = events(&w, "jokes").await.len() + events(&w, "ack-system").await.len();
    w.reconcile_again().await;
    let after = versions(&[
        service_account(&w, "jokes", "joke-worker").await,
        service_account(&w, "ack-system", "ack-dynamodb-controller").await,
    ]);
    assert_eq!(before, after);
    assert_eq!(
        events(&w, "jokes").await.len() + events(&w, "ack-system").await.len(),
        events_before
    );
}

#[tokio::test]
async fn annotations_removed_are_restored_and_other_managers_are_not_overwritten() {
    let w = world(BindingMode::Irsa, local_cluster(CLUSTER, true)).await;
    w.upload_seed().await;
    w.run_reconciler().await;
    let admin = w.reconciler.kube.server.admin_client();

    // Someone removes the annotation with a plain edit (JSON merge patch).
    let jokes: Api<ServiceAccount> = Api::namespaced(admin.clone(), "jokes");
    jokes
        .patch(
            "joke-worker",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {ROLE_ANNOTATION: null}}})),
        )
        .await
        .expect("remove annotation");
    assert_eq!(
        annotation(&service_account(&w, "jokes", "joke-worker").await),
        None
    );
    w.reconcile_again().await;
    assert_eq!(
        annotation(&service_account(&w, "jokes", "joke-worker").await),
        Some(role_arn(WORKER_ROLE))
    );

    // Another manager takes the ACK controller's annotation for a role of its own.
    let other = "arn:aws:iam::123456789012:role/hand-made";
    let ack: Api<ServiceAccount> = Api::namespaced(admin, "ack-system");
    ack.patch(
        "ack-dynamodb-controller",
        &PatchParams::apply("platform-team").force(),
        &Patch::Apply(json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "ack-dynamodb-controller", "annotations": {ROLE_ANNOTATION: other}}})),
    )
    .await
    .expect("other manager applies");
    w.reconcile_again().await;
    let sa = service_account(&w, "ack-system", "ack-dynamodb-controller").await;
    assert_eq!(annotation(&sa), Some(other.to_owned()), "left as it is");
    let status = w.status().await;
    let ack_status = workload_status(&status, "ack-dynamodb-controller-dynamodb-chart");
    assert_eq!(ack_status["state"], "Error");
    let message = ack_status["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("hand-made") && message.contains("another manager"),
        "{message}"
    );
}

#[tokio::test]
async fn a_workload_that_appears_later_goes_from_pending_to_ready() {
    let w = world(BindingMode::Irsa, local_cluster(CLUSTER, false)).await;
    w.upload_seed().await;
    w.run_reconciler().await;
    let status = w.status().await;
    let worker = workload_status(&status, "joke-worker");
    assert_eq!(worker["state"], "Pending", "{status:#}");
    assert!(
        worker["message"]
            .as_str()
            .unwrap_or_default()
            .contains("no workload named joke-worker in namespace jokes")
    );
    assert_eq!(
        annotation(&service_account(&w, "jokes", "joke-worker").await),
        None
    );

    create_deployment(
        &w.reconciler.kube.server.admin_client(),
        "jokes",
        "joke-worker",
        "joke-worker",
    )
    .await;
    w.reconcile_again().await;
    let status = w.status().await;
    assert_eq!(
        workload_status(&status, "joke-worker")["state"],
        "Ready",
        "{status:#}"
    );
    assert_eq!(
        annotation(&service_account(&w, "jokes", "joke-worker").await),
        Some(role_arn(WORKER_ROLE))
    );
}

#[tokio::test]
async fn a_workload_on_the_default_service_account_gets_a_clear_error() {
    let w = world(BindingMode::Irsa, local_cluster(CLUSTER, true)).await;
    create_deployment(
        &w.reconciler.kube.server.admin_client(),
        "jokes",
        "redis",
        "",
    )
    .await;
    let bundle = "apiVersion: k8s.otterize.com/v1alpha3\nkind: ClientIntents\nmetadata:\n  name: redis\nspec:\n  service:\n    name: redis\n  calls:\n  - name: \"*\"\n    type: aws\n    awsActions: [\"ec2:DescribeVolumes\"]\n";
    w.put("intents/demo/jokes/redis.yaml", bundle.as_bytes().to_vec())
        .await;
    w.notify("intents/demo/jokes/redis.yaml", false).await;
    w.run_reconciler().await;
    let status = w.status().await;
    let redis = workload_status(&status, "redis");
    assert_eq!(redis["state"], "Error");
    let message = redis["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("default ServiceAccount of namespace jokes"),
        "{message}"
    );
    assert!(message.contains("serviceAccountName"), "{message}");
    assert!(w.inspect()["roles"].get("demo.jokes.default").is_none());
}

#[tokio::test]
async fn a_token_for_another_cluster_is_refused_and_the_status_says_so() {
    // The API server belongs to cluster "other": the token the reconciler makes for "demo"
    // must not open it.
    let w = world(BindingMode::Irsa, local_cluster("other", true)).await;
    w.upload_seed().await;
    let failures = w.run_reconciler_expecting_failure().await;
    assert_eq!(failures, 4, "every message of the cluster is retried");
    let status = w.status().await;
    let error = status["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("cannot reach the Kubernetes API of cluster demo"),
        "{error}"
    );
    assert!(error.contains("401"), "{error}");
    assert!(error.contains("not valid for cluster"), "{error}");
    assert!(
        w.inspect()["roles"]
            .as_object()
            .is_some_and(|r| r.is_empty()),
        "nothing changed"
    );
}

#[tokio::test]
async fn pods_are_rolled_only_when_rollout_restart_is_set() {
    let mut w = world(BindingMode::Irsa, local_cluster(CLUSTER, true)).await;
    w.reconciler.settings.plan.rollout_restart = true;
    w.upload_seed().await;
    w.run_reconciler().await;
    let admin = w.reconciler.kube.server.admin_client();
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(admin.clone(), "jokes");
    let worker = deployments.get("joke-worker").await.expect("deployment");
    let annotations = worker
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.annotations.clone())
        .unwrap_or_default();
    assert!(
        annotations.contains_key("eks-intents/restarted-at"),
        "{annotations:?}"
    );
    // joke-server has no intents: untouched.
    let server = deployments.get("joke-server").await.expect("deployment");
    assert!(
        server
            .spec
            .and_then(|s| s.template.metadata)
            .and_then(|m| m.annotations)
            .is_none_or(|a| a.is_empty())
    );
    let status = w.status().await;
    let message = workload_status(&status, "joke-worker")["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(message.contains("pods were restarted"), "{message}");
}

#[tokio::test]
async fn without_rollout_the_status_says_which_workloads_need_a_restart() {
    let w = world(BindingMode::Irsa, local_cluster(CLUSTER, true)).await;
    w.upload_seed().await;
    w.run_reconciler().await;
    let status = w.status().await;
    let message = workload_status(&status, "joke-worker")["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(message.contains("kubectl rollout restart"), "{message}");
    let admin = w.reconciler.kube.server.admin_client();
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(admin, "jokes");
    let worker = deployments.get("joke-worker").await.expect("deployment");
    assert!(
        worker
            .spec
            .and_then(|s| s.template.metadata)
            .and_then(|m| m.annotations)
            .is_none_or(|a| !a.contains_key("eks-intents/restarted-at"))
    );
}

#[tokio::test]
async fn with_forcing_allowed_another_managers_annotation_is_taken_over() {
    let mut w = world(BindingMode::Irsa, local_cluster(CLUSTER, true)).await;
    w.reconciler.settings.plan.force_annotations = true;
    let admin = w.reconciler.kube.server.admin_client();
    let jokes: Api<ServiceAccount> = Api::namespaced(admin, "jokes");
    jokes
        .patch(
            "joke-worker",
            &PatchParams::apply("platform-team"),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": "joke-worker", "annotations": {ROLE_ANNOTATION: "arn:aws:iam::123456789012:role/hand-made"}}})),
        )
        .await
        .expect("other manager applies");
    w.upload_seed().await;
    w.run_reconciler().await;
    let sa = service_account(&w, "jokes", "joke-worker").await;
    assert_eq!(annotation(&sa), Some(role_arn(WORKER_ROLE)));
    assert_eq!(managers_of_annotation(&sa), [FIELD_MANAGER]);
    let status = w.status().await;
    assert_eq!(
        workload_status(&status, "joke-worker")["state"],
        "Ready",
        "{status:#}"
    );
}

/// The annotation that rolls a Deployment's pods, if the reconciler set it.
async fn restarted_at(w: &World<LocalCluster>, namespace: &str, name: &str) -> Option<String> {
    let admin = w.reconciler.kube.server.admin_client();
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(admin, namespace);
    let deployment = deployments.get(name).await.expect("deployment");
    deployment
        .spec
        .and_then(|s| s.template.metadata)
        .and_then(|m| m.annotations)
        .and_then(|a| a.get("eks-intents/restarted-at").cloned())
}

/// Issue 14, point 6: the EKS Pod Identity agent caches credentials for hours, so a changed
/// association does not reach running pods. The status says so with the restart command; with
/// the rollout setting the reconciler rolls them, as for an IRSA annotation.
#[tokio::test]
async fn a_changed_association_restarts_the_pods_or_says_they_hold_old_credentials() {
    let mut w = world(BindingMode::PodIdentity, local_cluster(CLUSTER, true)).await;
    w.upload_seed().await;
    w.run_reconciler().await;
    // The association changes (it now carries a session policy); the pods are not rolled.
    w.reconciler.settings.plan.session_policies = true;
    w.reconcile_again().await;
    let status = w.status().await;
    let message = workload_status(&status, "joke-worker")["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        message.contains("caches them for hours")
            && message.contains("kubectl rollout restart deployment/joke-worker -n jokes"),
        "{message}"
    );
    assert_eq!(restarted_at(&w, "jokes", "joke-worker").await, None);
    // With the rollout setting, the next change of the association rolls the pods.
    w.reconciler.settings.plan.rollout_restart = true;
    w.reconciler.settings.plan.session_policies = false;
    w.reconcile_again().await;
    assert!(restarted_at(&w, "jokes", "joke-worker").await.is_some());
    let status = w.status().await;
    let message = workload_status(&status, "joke-worker")["message"].to_string();
    assert!(message.contains("pods were restarted"), "{message}");
}
