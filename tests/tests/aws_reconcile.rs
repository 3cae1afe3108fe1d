//! The seed scenario through the real handlers (`bundle-upload`, `reconciler`) and the real AWS
//! SDK adapters, on the local AWS emulator. State is read back with boto3 (`read_back.py`), not
//! with the code under test. Kubernetes is the in-memory fake here; `kube_reconcile.rs` runs the
//! same handlers against the local Kubernetes API server.

use eks_intents::model::BindingMode;
use eks_intents::testing::{ISSUER, service_account_ref};
use integration::scenario::*;
use integration::{ACCOUNT, REGION};
use serde_json::{Value, json};
use std::collections::BTreeMap;

#[tokio::test]
async fn seed_scenario_irsa_end_to_end_then_a_quiet_second_run() {
    let w = world(BindingMode::Irsa, seed_fake_cluster).await;
    w.upload_seed().await;
    // Four uploads ask for four reconciles of one cluster: one run serves them all.
    assert_eq!(w.run_reconciler().await, 4);

    let state = w.inspect();
    let roles = state["roles"].as_object().expect("roles");
    assert_eq!(roles.len(), 3, "{roles:#?}");
    for (name, namespace, service_account, actions) in [
        (
            ACK_ROLE,
            "ack-system",
            "ack-dynamodb-controller",
            &["dynamodb:*"][..],
        ),
        (WORKER_ROLE, "jokes", "joke-worker", &["dynamodb:*"][..]),
        (
            EBS_ROLE,
            "kube-system",
            "ebs-csi-controller-sa",
            &EBS_ACTIONS[..],
        ),
    ] {
        let role = &roles[name];
        assert_eq!(role["arn"], role_arn(name));
        assert_eq!(role["path"], "/eks-intents/demo/");
        assert_eq!(
            role["trust"],
            irsa_trust(namespace, service_account),
            "{name}"
        );
        assert_eq!(role["inline"]["eks-intents"], allow(actions), "{name}");
        assert_eq!(role["attached"], json!({}));
        assert_eq!(role["boundary"], w.boundary.as_str());
        assert_eq!(role["tags"]["eks-intents/managed-by"], "eks-intents");
        assert_eq!(
            role["tags"]["eks-intents/cluster"],
            format!("arn:aws:eks:{REGION}:{ACCOUNT}:cluster/demo")
        );
        assert_eq!(role["tags"]["eks-intents/namespace"], namespace);
        assert_eq!(role["tags"]["eks-intents/service-account"], service_account);
    }
    assert_eq!(
        roles[WORKER_ROLE]["tags"]["eks-intents/bundle"],
        "intents/demo/jokes/joke-worker-ci.yaml"
    );
    let provider = format!(
        "arn:aws:iam::{ACCOUNT}:oidc-provider/{}",
        ISSUER.trim_start_matches("https://")
    );
    assert_eq!(
        state["oidc_providers"][&provider]["client_ids"],
        json!(["sts.amazonaws.com"])
    );
    // The add-on's ServiceAccount is bound through the add-on, not annotated.
    assert_eq!(
        state["addons"]["aws-ebs-csi-driver"]["service_account_role_arn"],
        role_arn(EBS_ROLE)
    );
    let kube = &w.reconciler.kube;
    assert_eq!(
        kube.annotation(&service_account_ref("jokes", "joke-worker")),
        Some(role_arn(WORKER_ROLE))
    );
    assert_eq!(
        kube.annotation(&service_account_ref(
            "ack-system",
            "ack-dynamodb-controller"
        )),
        Some(role_arn(ACK_ROLE))
    );
    assert_eq!(
        kube.annotation(&service_account_ref("kube-system", "ebs-csi-controller-sa")),
        None
    );
    assert_eq!(
        kube.annotation(&service_account_ref("jokes", "joke-server")),
        None
    );

    let status = w.status().await;
    let states: Vec<&str> = status["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["Ready", "Ready", "Ready"], "{status:#}");
    let bundles = status["bundles"].as_array().unwrap();
    assert_eq!(bundles.len(), 4);
    for bundle in bundles {
        assert!(
            bundle["etag"].as_str().is_some_and(|e| e.len() == 32),
            "{bundle}"
        );
        assert!(
            bundle["version"].as_str().is_some_and(|v| !v.is_empty()),
            "{bundle}"
        );
        assert_eq!(bundle["valid"], true);
    }
    assert!(
        status["api_calls"]["IAM:CreateRole"].as_u64() == Some(3),
        "{:#}",
        status["api_calls"]
    );

    // Nothing changed: the next run writes nothing to IAM, EKS or Kubernetes.
    w.emulator.clear_requests();
    let kube_writes = kube.writes();
    w.reconcile_again().await;
    assert_eq!(w.aws_writes(), BTreeMap::new());
    assert_eq!(kube.writes(), kube_writes);
    let status = w.status().await;
    let our_writes: Vec<&String> = status["api_calls"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|op| {
            !["Get", "List", "Describe"]
                .iter()
                .any(|r| op.split(':').nth(1).unwrap_or_default().starts_with(r))
        })
        .collect();
    assert!(our_writes.is_empty(), "{our_writes:?}");
    // One GetAccountAuthorizationDetails page reads every role.
    assert_eq!(status["api_calls"]["IAM:GetAccountAuthorizationDetails"], 1);
}

#[tokio::test]
async fn seed_scenario_pod_identity_uses_associations() {
    let w = world(BindingMode::PodIdentity, seed_fake_cluster).await;
    w.upload_seed().await;
    w.run_reconciler().await;
    let state = w.inspect();
    assert_eq!(state["oidc_providers"], json!({}));
    let trust = &state["roles"][WORKER_ROLE]["trust"]["Statement"][0];
    assert_eq!(trust["Principal"]["Service"], "pods.eks.amazonaws.com");
    assert_eq!(trust["Action"], json!(["sts:AssumeRole", "sts:TagSession"]));
    assert_eq!(
        trust["Condition"]["StringEquals"]["aws:RequestTag/kubernetes-service-account"],
        "joke-worker"
    );
    let mut associations: Vec<(String, String, String, bool)> = state["pod_identity_associations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["namespace"].as_str().unwrap().to_owned(),
                a["service_account"].as_str().unwrap().to_owned(),
                a["role_arn"].as_str().unwrap().to_owned(),
                a["owner_arn"].is_string(),
            )
        })
        .collect();
    associations.sort();
    assert_eq!(
        associations,
        [
            (
                "ack-system".into(),
                "ack-dynamodb-controller".into(),
                role_arn(ACK_ROLE),
                false
            ),
            (
                "jokes".into(),
                "joke-worker".into(),
                role_arn(WORKER_ROLE),
                false
            ),
            // The add-on's association is the add-on's own.
            (
                "kube-system".into(),
                "ebs-csi-controller-sa".into(),
                role_arn(EBS_ROLE),
                true
            ),
        ]
    );
    assert_eq!(
        w.reconciler.kube.writes(),
        0,
        "no annotations in Pod Identity mode"
    );
    w.emulator.clear_requests();
    w.reconcile_again().await;
    assert_eq!(w.aws_writes(), BTreeMap::new());
}

#[tokio::test]
async fn a_changed_bundle_makes_exactly_the_writes_it_needs() {
    let w = world(BindingMode::Irsa, seed_fake_cluster).await;
    w.upload_seed().await;
    w.run_reconciler().await;
    w.emulator.clear_requests();

    let worker = String::from_utf8(seed("joke-worker-ci.yaml"))
        .unwrap()
        .replace(
            "        - \"dynamodb:*\"",
            "        - \"dynamodb:*\"\n        - \"s3:GetObject\"",
        );
    w.put(
        "intents/demo/jokes/joke-worker-ci.yaml",
        worker.into_bytes(),
    )
    .await;
    w.notify("intents/demo/jokes/joke-worker-ci.yaml", false)
        .await;
    w.clients
        .s3
        .delete_object()
        .bucket(BUCKET)
        .key("intents/demo/ack-dynamodb-ci.yaml")
        .send()
        .await
        .unwrap();
    let response = w.notify("intents/demo/ack-dynamodb-ci.yaml", true).await;
    assert_eq!(response.reconciles.len(), 1);
    w.run_reconciler().await;

    // The added action: one policy write, and the role's digest of what is declared (one tag
    // write). The removed workload: its role is marked (one tag write) and kept through the
    // grace period.
    assert_eq!(
        w.aws_writes(),
        BTreeMap::from([
            ("iam:PutRolePolicy".to_owned(), 1),
            ("iam:TagRole".to_owned(), 2)
        ])
    );
    let state = w.inspect();
    assert_eq!(
        state["roles"][WORKER_ROLE]["inline"]["eks-intents"],
        allow(&["dynamodb:*", "s3:GetObject"])
    );
    assert!(state["roles"][ACK_ROLE]["tags"]["eks-intents/orphaned-since"].is_string());
    let status = w.status().await;
    assert_eq!(status["orphans"][0]["role"], ACK_ROLE);
    assert_eq!(status["orphans"][0]["state"], "Marked");
}

#[tokio::test]
async fn policies_rewritten_out_of_band_are_compared_by_meaning() {
    let w = world(BindingMode::Irsa, seed_fake_cluster).await;
    w.upload_seed().await;
    w.run_reconciler().await;
    let iam = aws_sdk_iam::Client::new(&w.emulator.sdk_config());

    // Same meaning, other spelling: scalars for lists, keys and actions reordered, a Sid.
    let same = r#"{"Statement":{"Sid":"Hand","Resource":"*","Effect":"Allow","Action":["ec2:ModifyVolume","ec2:DetachVolume","ec2:DescribeVolumesModifications","ec2:DescribeVolumes","ec2:DescribeTags","ec2:DescribeSnapshots","ec2:DescribeInstances","ec2:DescribeAvailabilityZones","ec2:DeleteVolume","ec2:DeleteTags","ec2:DeleteSnapshot","ec2:CreateVolume","ec2:CreateTags","ec2:CreateSnapshot","ec2:AttachVolume"]},"Version":"2012-10-17"}"#;
    iam.put_role_policy()
        .role_name(EBS_ROLE)
        .policy_name("eks-intents")
        .policy_document(same)
        .send()
        .await
        .unwrap();
    let worker_trust = r#"{"Version":"2012-10-17","Statement":[{"Condition":{"StringEquals":{"oidc.eks.eu-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE:aud":["sts.amazonaws.com"],"oidc.eks.eu-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE:sub":"system:serviceaccount:jokes:joke-worker"}},"Action":["sts:AssumeRoleWithWebIdentity"],"Principal":{"Federated":["arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"]},"Effect":"Allow"}]}"#;
    iam.update_assume_role_policy()
        .role_name(WORKER_ROLE)
        .policy_document(worker_trust)
        .send()
        .await
        .unwrap();
    w.emulator.clear_requests();
    w.reconcile_again().await;
    assert_eq!(w.aws_writes(), BTreeMap::new());

    // Another meaning: restored.
    iam.put_role_policy()
        .role_name(WORKER_ROLE)
        .policy_name("eks-intents")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#)
        .send()
        .await
        .unwrap();
    w.emulator.clear_requests();
    w.reconcile_again().await;
    assert_eq!(
        w.aws_writes(),
        BTreeMap::from([("iam:PutRolePolicy".to_owned(), 1)])
    );
    assert_eq!(
        w.inspect()["roles"][WORKER_ROLE]["inline"]["eks-intents"],
        allow(&["dynamodb:*"])
    );
}

#[tokio::test]
async fn an_invalid_upload_leaves_its_roles_as_they_were() {
    let w = world(BindingMode::Irsa, seed_fake_cluster).await;
    w.upload_seed().await;
    w.run_reconciler().await;
    let before = w.inspect();
    w.emulator.clear_requests();

    let broken = "apiVersion: k8s.otterize.com/v1alpha3\nkind: ClientIntents\nmetadata:\n  name: joke-worker\nspec:\n  service:\n    name: joke-worker\n  calls:\n  - name: \"*\"\n    type: aws\n    awsActions: 42\n";
    w.put(
        "intents/demo/jokes/joke-worker-ci.yaml",
        broken.as_bytes().to_vec(),
    )
    .await;
    let response = w
        .notify("intents/demo/jokes/joke-worker-ci.yaml", false)
        .await;
    assert_eq!(response.invalid, ["intents/demo/jokes/joke-worker-ci.yaml"]);
    // The uploader sees the errors at once, before any reconcile.
    let upload_status = w
        .clients
        .s3
        .get_object()
        .bucket(BUCKET)
        .key("status/demo/bundles/jokes/joke-worker-ci.yaml.json")
        .send()
        .await
        .expect("upload status");
    let upload_status: Value =
        serde_json::from_slice(&upload_status.body.collect().await.unwrap().into_bytes()).unwrap();
    assert_eq!(upload_status["valid"], false);
    let error = &upload_status["errors"][0];
    assert_eq!(error["file"], "intents/demo/jokes/joke-worker-ci.yaml");
    assert_eq!(error["document"], 1);
    assert_eq!(error["field"], "spec.calls[0].awsActions");
    assert_eq!(error["line"], 11);

    w.run_reconciler().await;
    assert_eq!(w.aws_writes(), BTreeMap::new());
    assert_eq!(w.inspect(), before);
    let status = w.status().await;
    let worker = status["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["workload"] == "joke-worker")
        .unwrap();
    assert_eq!(worker["state"], "Held", "{status:#}");
    let bundle = status["bundles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["key"] == "intents/demo/jokes/joke-worker-ci.yaml")
        .unwrap();
    assert_eq!(bundle["valid"], false);
    assert_eq!(bundle["errors"][0]["field"], "spec.calls[0].awsActions");
    assert!(
        bundle["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("list"),
        "{bundle:#}"
    );
}

#[tokio::test]
async fn throttling_on_iam_and_eks_still_converges() {
    let w = world(BindingMode::Irsa, seed_fake_cluster).await;
    w.upload_seed().await;
    w.emulator.control(
        "POST",
        "/_harness/faults",
        Some(&json!([
            {"service": "iam", "operation": "CreateRole", "code": "Throttling", "count": 2},
            {"service": "iam", "operation": "PutRolePolicy", "code": "Throttling", "count": 2},
            {"service": "eks", "operation": "UpdateAddon", "code": "Throttling", "count": 2},
        ])),
    );
    w.run_reconciler().await;
    let requests = w.emulator.requests();
    assert_eq!(requests["iam"]["CreateRole"], 5, "{requests:#}");
    assert_eq!(requests["eks"]["UpdateAddon"], 3, "{requests:#}");
    let state = w.inspect();
    assert_eq!(state["roles"].as_object().unwrap().len(), 3);
    assert_eq!(
        state["addons"]["aws-ebs-csi-driver"]["service_account_role_arn"],
        role_arn(EBS_ROLE)
    );
    let status = w.status().await;
    assert!(
        status["workloads"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["state"] == "Ready"),
        "{status:#}"
    );
}

/// Each bad bundle of `tests/fixtures/bad-bundles/`, uploaded over the valid joke-worker
/// bundle, changes nothing in IAM, EKS or the cluster, and the status says what is wrong.
#[tokio::test]
async fn bad_uploads_change_nothing_and_the_status_explains() {
    let w = world(BindingMode::Irsa, seed_fake_cluster).await;
    w.upload_seed().await;
    w.run_reconciler().await;
    let before = w.inspect();
    let dir = integration::repo_root().join("tests/fixtures/bad-bundles");
    let key = "intents/demo/jokes/joke-worker-ci.yaml";
    let archive = "intents/demo/jokes/joke-worker.tgz";
    let cases: Vec<(&str, &str, Vec<u8>, &str)> = vec![
        (
            "malformed-yaml.yaml",
            key,
            read(&dir, "malformed-yaml.yaml"),
            "invalid YAML: unclosed bracket '['",
        ),
        (
            "wrong-type.yaml",
            key,
            read(&dir, "wrong-type.yaml"),
            "expected a list of actions, found a number",
        ),
        (
            "missing-spec.yaml",
            key,
            read(&dir, "missing-spec.yaml"),
            "missing required field",
        ),
        (
            "unknown-api-version.yaml",
            key,
            read(&dir, "unknown-api-version.yaml"),
            "unsupported ClientIntents version \"k8s.otterize.com/v9\"; supported versions of k8s.otterize.com: v1alpha3, v1beta1, v2alpha1, v2beta1 (v1alpha2 is read but has no AWS calls)",
        ),
        (
            "action-typo.yaml",
            key,
            read(&dir, "action-typo.yaml"),
            "dynamodb:PutItm: unknown action; did you mean dynamodb:PutItem?",
        ),
        (
            "unknown-service.yaml",
            key,
            read(&dir, "unknown-service.yaml"),
            "dynamdb:GetItem: unknown service dynamdb; did you mean dynamodb?",
        ),
        (
            "other-namespace.yaml",
            key,
            read(&dir, "other-namespace.yaml"),
            "namespace \"ack-system\" is outside this bundle's namespace \"jokes\"",
        ),
        (
            "alias-bomb.yaml",
            key,
            read(&dir, "alias-bomb.yaml"),
            "YAML aliases expand to more than 10000 parser events (an alias bomb?); write the values out instead of repeating aliases",
        ),
        (
            "not-utf8.yaml",
            key,
            read(&dir, "not-utf8.yaml"),
            "file is not UTF-8 text",
        ),
        (
            "empty.yaml",
            key,
            read(&dir, "empty.yaml"),
            "bundle is empty",
        ),
        (
            "oversized.yaml",
            key,
            b"# padding\n".repeat(120_000),
            "bundle is 1200000 bytes, more than the limit of 1048576 bytes",
        ),
        (
            "dotdot-archive.tgz",
            archive,
            read(&dir, "dotdot-archive.tgz"),
            "member path contains '..'",
        ),
    ];
    for (name, key, body, expected) in cases {
        w.emulator.clear_requests();
        w.put(key, body).await;
        let response = w.notify(key, false).await;
        assert_eq!(response.invalid, [key], "{name}");
        w.run_reconciler().await;
        assert_eq!(w.aws_writes(), BTreeMap::new(), "{name}");
        assert_eq!(w.inspect(), before, "{name}");
        let status = w.status().await;
        let bundle = status["bundles"]
            .as_array()
            .and_then(|b| b.iter().find(|b| b["key"] == key))
            .unwrap_or_else(|| panic!("{name}: no bundle status"));
        assert_eq!(bundle["valid"], false, "{name}");
        let message = bundle["errors"][0]["message"].as_str().unwrap_or_default();
        assert_eq!(message, expected, "{name}");
        assert_eq!(bundle["errors"][0]["file"], key, "{name}");
    }
    w.clients
        .s3
        .delete_object()
        .bucket("eks-intents-test")
        .key(archive)
        .send()
        .await
        .expect("delete");
    // Dangerous actions parse, but the workload is refused: its role stays as it was.
    let refusal = "Such actions let a workload create or take over identities or read every secret; the platform team can allow one for this workload with an exception in the settings (EKS_INTENTS_DANGEROUS_EXCEPTIONS)";
    for (file, reason) in [
        (
            "dangerous-action.yaml",
            "refused: iam:PassRole on *: iam:PassRole creates, changes or passes identities or credentials. ",
        ),
        (
            "dangerous-wildcard.yaml",
            "refused: iam:Put* on *: iam:Put* includes iam:PutGroupPolicy, iam:PutRolePermissionsBoundary, iam:PutRolePolicy, iam:PutUserPermissionsBoundary, iam:PutUserPolicy (identities and credentials). ",
        ),
    ] {
        w.emulator.clear_requests();
        w.put(key, read(&dir, file)).await;
        w.notify(key, false).await;
        w.run_reconciler().await;
        assert_eq!(w.aws_writes(), BTreeMap::new(), "{file}");
        assert_eq!(w.inspect(), before, "{file}");
        let status = w.status().await;
        let worker = status["workloads"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["workload"] == "joke-worker")
            .unwrap();
        assert_eq!(worker["state"], "Error", "{file}");
        assert_eq!(worker["message"], format!("{reason}{refusal}"), "{file}");
    }
}

fn read(dir: &std::path::Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}
