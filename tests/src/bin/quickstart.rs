//! The reference scenario end to end on this machine, with no AWS account: the local AWS
//! emulator and the local Kubernetes API, the demo cluster and its workloads, the seed bundles
//! uploaded to S3, the real `bundle-upload` and `reconciler` handlers; then what resulted.
//! Run it with `scripts/quickstart`.

use eks_intents::model::BindingMode;
use eks_intents::plan::DriftKind;
use eks_intents::status::StatusReport;
use integration::scenario::*;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, Patch, PatchParams};
use serde_json::Value;
use std::process::ExitCode;

fn step(text: &str) {
    println!("==> {text}");
}

#[tokio::main]
async fn main() -> ExitCode {
    step(
        "starting the local AWS emulator (IAM, EKS, S3, SQS, STS) and the local Kubernetes API of cluster demo",
    );
    let w = world(BindingMode::Irsa, local_cluster(CLUSTER, true)).await;
    println!("    AWS emulator at {}", w.emulator.url);
    println!(
        "    Kubernetes API of demo at {}",
        w.reconciler.kube.server.endpoint
    );
    println!(
        "    workloads: ack-system/ack-dynamodb-controller-dynamodb-chart, jokes/joke-worker, jokes/joke-server, kube-system/ebs-csi-controller (add-on aws-ebs-csi-driver)"
    );

    step(
        "uploading the seed bundles to s3://eks-intents-test/intents/demo/ (bundle-upload checks each one)",
    );
    for (key, _) in SEED_KEYS {
        println!("    {key}");
    }
    w.upload_seed().await;

    step("running the reconciler on the queued ReconcileCluster messages");
    w.run_reconciler().await;

    step("roles in IAM (read back with boto3)");
    let state = w.inspect();
    if let Some(roles) = state["roles"].as_object() {
        for (name, role) in roles {
            println!("  role {name}");
            println!(
                "    arn:       {}",
                role["arn"].as_str().unwrap_or_default()
            );
            let condition = &role["trust"]["Statement"][0]["Condition"]["StringEquals"];
            if let Some(conditions) = condition.as_object() {
                for (key, value) in conditions {
                    println!("    trust:     {key} = {value}");
                }
            }
            println!(
                "    boundary:  {}",
                role["boundary"].as_str().unwrap_or("none")
            );
            for (policy, document) in role["inline"].as_object().into_iter().flatten() {
                for statement in document["Statement"].as_array().into_iter().flatten() {
                    let actions: Vec<&str> = statement["Action"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    println!(
                        "    {policy}:  {} on {}",
                        actions.join(", "),
                        statement["Resource"]
                    );
                }
            }
        }
    }

    step("bindings");
    let admin = w.reconciler.kube.server.admin_client();
    for (ns, sa) in [
        ("ack-system", "ack-dynamodb-controller"),
        ("jokes", "joke-worker"),
        ("kube-system", "ebs-csi-controller-sa"),
    ] {
        let api: Api<ServiceAccount> = Api::namespaced(admin.clone(), ns);
        let annotation = api
            .get(sa)
            .await
            .ok()
            .and_then(|s| s.metadata.annotations)
            .and_then(|a| a.get("eks.amazonaws.com/role-arn").cloned());
        println!(
            "    ServiceAccount {ns}/{sa}: eks.amazonaws.com/role-arn = {}",
            annotation.as_deref().unwrap_or("(none)")
        );
    }
    println!(
        "    add-on aws-ebs-csi-driver: serviceAccountRoleArn = {}",
        state["addons"]["aws-ebs-csi-driver"]["service_account_role_arn"]
            .as_str()
            .unwrap_or("(none)")
    );

    step("status report s3://eks-intents-test/status/demo.json");
    let status = w.status().await;
    let Ok(report) = serde_json::from_value::<StatusReport>(status) else {
        println!("the status report could not be read");
        return ExitCode::FAILURE;
    };
    print!("{}", report.table());
    let bound: Vec<String> = report
        .workloads
        .iter()
        .filter(|w| w.state == eks_intents::status::State::Ready && w.identity.role_arn.is_some())
        .map(|w| format!("{}/{}", w.identity.namespace, w.identity.workload))
        .collect();
    if bound.len() != 3 {
        println!(
            "\nNot done: {} of 3 workloads bound ({}).",
            bound.len(),
            bound.join(", ")
        );
        return ExitCode::FAILURE;
    }

    step(
        "drift by hand: the joke-worker's policy rewritten in IAM, its ServiceAccount's annotation removed",
    );
    let rewritten = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
    let edit = aws_sdk_iam::Client::new(&w.emulator.sdk_config())
        .put_role_policy()
        .role_name(WORKER_ROLE)
        .policy_name("eks-intents")
        .policy_document(rewritten)
        .send()
        .await;
    if let Err(error) = edit {
        println!("could not edit the policy: {error}");
        return ExitCode::FAILURE;
    }
    println!(
        "    aws iam put-role-policy --role-name {WORKER_ROLE} --policy-name eks-intents: s3:* on *"
    );
    let api: Api<ServiceAccount> = Api::namespaced(admin.clone(), "jokes");
    let patch =
        serde_json::json!({"metadata": {"annotations": {"eks.amazonaws.com/role-arn": null}}});
    if let Err(error) = api
        .patch(
            "joke-worker",
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        println!("could not remove the annotation: {error}");
        return ExitCode::FAILURE;
    }
    println!("    kubectl annotate sa joke-worker -n jokes eks.amazonaws.com/role-arn-");

    step(
        "the drift sweep (the schedule's function) asks for a reconcile of every cluster; the reconciler repairs",
    );
    match drift_sweep::handle(&w.drift_sweep(), &serde_json::json!({})).await {
        Ok(response) => {
            for swept in &response.clusters {
                println!(
                    "    drift-sweep: ReconcileCluster {{cluster: {}, reason: drift}} ({:?})",
                    swept.cluster, swept.sources
                );
            }
        }
        Err(error) => {
            println!("the drift sweep failed: {error}");
            return ExitCode::FAILURE;
        }
    }
    w.run_reconciler().await;
    let status = w.status().await;
    let Ok(report) = serde_json::from_value::<StatusReport>(status) else {
        println!("the status report could not be read");
        return ExitCode::FAILURE;
    };
    for (kind, found) in &report.drift.found {
        let repaired = report.drift.repaired.get(kind).copied().unwrap_or_default();
        println!(
            "    drift {}: {found} found, {repaired} repaired",
            kind.as_str()
        );
    }
    let state = w.inspect();
    let policy = &state["roles"][WORKER_ROLE]["inline"]["eks-intents"]["Statement"][0]["Action"];
    println!("    {WORKER_ROLE} eks-intents policy: {policy}");
    let annotation = api
        .get("joke-worker")
        .await
        .ok()
        .and_then(|s| s.metadata.annotations)
        .and_then(|a| a.get("eks.amazonaws.com/role-arn").cloned());
    println!(
        "    ServiceAccount jokes/joke-worker: eks.amazonaws.com/role-arn = {}",
        annotation.as_deref().unwrap_or("(none)")
    );
    let repaired = |kind| {
        report
            .drift
            .repaired
            .get(&kind)
            .copied()
            .unwrap_or_default()
            > 0
    };
    println!();
    if repaired(DriftKind::InlinePolicy) && repaired(DriftKind::Annotation) && annotation.is_some()
    {
        println!(
            "Done: the three workloads are bound ({}), and the drift sweep put back what was changed by hand.",
            bound.join(", ")
        );
        ExitCode::SUCCESS
    } else {
        println!("Not done: the drift was not repaired as expected.");
        ExitCode::FAILURE
    }
}
