//! The two triggers beside S3 uploads, through the real handlers (`drift-sweep`, `eks-events`,
//! `reconciler`), the real FIFO queue of the local AWS emulator and the local Kubernetes API:
//! the scheduled sweep finds every cluster, each kind of hand drift is repaired by one pass (or
//! only reported), CloudTrail and audit-log events reconcile the cluster they concern (merged per
//! window, never the system's own), and a cluster still being created waits on the queue.

use eks_intents::model::BindingMode;
use eks_intents::reconcile::now;
use integration::scenario::*;
use integration::{ACCOUNT, KubeServer, REGION};
use k8s_openapi::api::core::v1::{Event, Namespace, ServiceAccount};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

const ROLE_ANNOTATION: &str = "eks.amazonaws.com/role-arn";
/// The reconciler's role, as the deployment lists it among the system's own roles.
const RECONCILER: &str = "arn:aws:iam::123456789012:role/eks-intents/eks-intents-reconciler";
/// A session of that role, as CloudTrail and EKS's audit log name the caller.
const RECONCILER_SESSION: &str =
    "arn:aws:sts::123456789012:assumed-role/eks-intents-reconciler/eks-intents-reconciler";
/// Someone else: a person through SSO.
const ALICE: &str = "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_PlatformAdmin_0123456789abcdef/alice@example.com";
/// 2026-11-26T12:00:00Z: the start of a minute that has long ended, so the windows of the
/// clocks below are closed and their `not_before` is in the past.
const PAST_MINUTE: u64 = 1_795_694_400;

fn past_minute() -> u64 {
    PAST_MINUTE
}
fn past_minute_15() -> u64 {
    PAST_MINUTE + 15
}
fn past_minute_30() -> u64 {
    PAST_MINUTE + 30
}
fn past_minute_59() -> u64 {
    PAST_MINUTE + 59
}

fn iam(w: &World<LocalCluster>) -> aws_sdk_iam::Client {
    aws_sdk_iam::Client::new(&w.emulator.sdk_config())
}

fn eks(w: &World<LocalCluster>) -> aws_sdk_eks::Client {
    aws_sdk_eks::Client::new(&w.emulator.sdk_config())
}

fn admin(w: &World<LocalCluster>) -> kube::Client {
    w.reconciler.kube.server.admin_client()
}

/// A sample of `events/`.
fn sample(name: &str) -> Value {
    let path = integration::repo_root().join("events").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    serde_json::from_str(&text).expect("sample is JSON")
}

/// The EventBridge schedule's event of the tick at `time`.
fn tick(time: &str) -> Value {
    let mut event = sample("schedule-eventbridge.json");
    event["time"] = json!(time);
    event
}

fn intents(workload: &str, table: &str) -> Vec<u8> {
    format!(
        "apiVersion: k8s.otterize.com/v2beta1\nkind: ClientIntents\nmetadata:\n  name: {workload}\nspec:\n  workload:\n    name: {workload}\n  targets:\n  - aws:\n      arn: \"arn:aws:dynamodb:*:*:table/{table}\"\n      actions: [\"dynamodb:GetItem\"]\n"
    )
    .into_bytes()
}

/// A Kubernetes audit event (`audit.k8s.io/v1`): `verb` on `resource` `namespace/name` by
/// `username`, completed.
fn audit(
    verb: &str,
    group: &str,
    resource: &str,
    namespace: &str,
    name: &str,
    username: &str,
) -> Value {
    let mut event = json!({
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": format!("{verb}-{resource}-{namespace}-{name}"),
        "stage": "ResponseComplete",
        "requestURI": format!("/api/v1/namespaces/{namespace}/{resource}"),
        "verb": verb,
        "user": { "username": username, "groups": ["system:authenticated"] },
        "objectRef": { "resource": resource, "namespace": namespace, "name": name, "apiVersion": "v1" },
        "responseStatus": { "metadata": {}, "code": if verb == "create" { 201 } else { 200 } },
    });
    if !group.is_empty() {
        event["objectRef"]["apiGroup"] = json!(group);
    }
    event
}

/// What a CloudWatch Logs subscription of `cluster`'s control-plane log group delivers: base64
/// of gzip of the JSON holding the audit events.
fn awslogs(cluster: &str, events: &[Value]) -> Value {
    let payload = json!({
        "messageType": "DATA_MESSAGE",
        "owner": ACCOUNT,
        "logGroup": format!("/aws/eks/{cluster}/cluster"),
        "logStream": "kube-apiserver-audit-8f3a1b2c4d5e6f708192a3b4c5d6e7f8",
        "subscriptionFilters": ["eks-intents-audit"],
        "logEvents": events.iter().enumerate().map(|(i, e)| json!({
            "id": i.to_string(),
            "timestamp": PAST_MINUTE * 1000 + i as u64,
            "message": e.to_string(),
        })).collect::<Vec<_>>(),
    });
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(payload.to_string().as_bytes()).expect("gzip");
    let compressed = gz.finish().expect("gzip");
    use base64::Engine;
    json!({ "awslogs": { "data": base64::engine::general_purpose::STANDARD.encode(compressed) } })
}

/// The seed scenario uploaded and reconciled: three roles, two annotations, the add-on's role.
async fn converged(mode: BindingMode) -> World<LocalCluster> {
    let w = world(mode, local_cluster(CLUSTER, true)).await;
    w.upload_seed().await;
    w.run_reconciler().await;
    w
}

/// Replaces a field of the emulator's override of `cluster` (the PUT replaces the whole
/// override, so the endpoint and CA registered earlier are sent again).
fn set_override(w: &World<LocalCluster>, cluster: &str, field: &str, value: &str) {
    let path = format!("/_harness/clusters/{cluster}");
    let mut current = w.emulator.control("GET", &path, None);
    if !current.is_object() {
        current = json!({});
    }
    current[field] = json!(value);
    w.emulator.control("PUT", &path, Some(&current));
}

async fn annotation(client: &kube::Client, ns: &str, name: &str) -> Option<String> {
    Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .expect("service account")
        .metadata
        .annotations
        .and_then(|a| a.get(ROLE_ANNOTATION).cloned())
}

/// What tells whether a run wrote to the cluster: the resourceVersion of every ServiceAccount of
/// the seed scenario and the number of Events.
async fn kube_marks(w: &World<LocalCluster>) -> (Vec<(String, Option<String>)>, usize) {
    let client = admin(w);
    let mut versions = Vec::new();
    let mut events = 0;
    for ns in ["ack-system", "jokes", "kube-system"] {
        for sa in Api::<ServiceAccount>::namespaced(client.clone(), ns)
            .list(&ListParams::default())
            .await
            .expect("service accounts")
            .items
        {
            versions.push((
                format!("{ns}/{}", sa.metadata.name.unwrap_or_default()),
                sa.metadata.resource_version,
            ));
        }
        events += Api::<Event>::namespaced(client.clone(), ns)
            .list(&ListParams::default())
            .await
            .expect("events")
            .items
            .len();
    }
    versions.sort();
    (versions, events)
}

fn workload_state<'a>(status: &'a Value, name: &str) -> &'a Value {
    &status["workloads"]
        .as_array()
        .and_then(|w| w.iter().find(|x| x["workload"] == name))
        .unwrap_or_else(|| panic!("no status for {name}: {status:#}"))["state"]
}

/// Runs the queue as Lambda does once a message is visible again (a message put back returns
/// after the visibility the reconciler set); gives up after `limit`.
async fn run_when_back(w: &World<LocalCluster>, limit: Duration) -> (usize, usize) {
    let started = Instant::now();
    loop {
        let (received, failed) = w.run_batch_as_lambda().await;
        if received > 0 {
            return (received, failed);
        }
        assert!(
            started.elapsed() < limit,
            "no message came back within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn metrics_count(w: &World<LocalCluster>) -> usize {
    w.metrics.lock().expect("metrics").len()
}

/// One drift sweep at the tick `time`, which must ask for exactly the clusters `expected`.
async fn sweep(w: &World<LocalCluster>, time: &str, expected: &[&str]) -> drift_sweep::Response {
    let response = drift_sweep::handle(&w.drift_sweep(), &tick(time))
        .await
        .expect("the drift sweep runs");
    let clusters: Vec<&str> = response
        .clusters
        .iter()
        .map(|c| c.cluster.as_str())
        .collect();
    assert_eq!(clusters, expected, "{response:?}");
    response
}

// -- drift-sweep --------------------------------------------------------------------------------

/// Clusters with bundles (`demo`, `b`) and a cluster named only by the tags of an owned role
/// (`c`, deleted) each get one message; the reconciler then handles all three.
#[tokio::test]
async fn the_sweep_asks_for_every_cluster_with_bundles_or_owned_roles_and_each_is_reconciled() {
    let w = world(BindingMode::Irsa, local_cluster(CLUSTER, true)).await;
    // Bundles of `demo`, put without a notification: only the sweep asks.
    for (key, file) in SEED_KEYS {
        w.put(key, seed(file)).await;
    }

    // Cluster `b`: its own EKS cluster, Kubernetes API (and OIDC issuer), workload and bundle.
    eks(&w)
        .create_cluster()
        .name("b")
        .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/eks-cluster"))
        .resources_vpc_config(
            aws_sdk_eks::types::VpcConfigRequest::builder()
                .subnet_ids("subnet-1")
                .build(),
        )
        .send()
        .await
        .expect("cluster b");
    let b = KubeServer::start("b", &w.emulator);
    b.register(&w.emulator, "b");
    set_override(
        &w,
        "b",
        "oidc_issuer",
        "https://oidc.eks.eu-west-2.amazonaws.com/id/B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0",
    );
    let b_admin = b.admin_client();
    Api::<Namespace>::all(b_admin.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "shop"}})).unwrap(),
        )
        .await
        .expect("namespace shop");
    create_service_account(&b_admin, "shop", "cart").await;
    create_deployment(&b_admin, "shop", "cart", "cart").await;
    w.put("intents/b/shop/cart.yaml", intents("cart", "carts"))
        .await;

    // Cluster `c` is gone; a role made for it remains.
    let tag = |k: &str, v: &str| {
        aws_sdk_iam::types::Tag::builder()
            .key(k)
            .value(v)
            .build()
            .expect("tag")
    };
    iam(&w)
        .create_role()
        .role_name("c.jokes.joke-worker")
        .path("/eks-intents/c/")
        .assume_role_policy_document(
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "Principal": {"Service": "pods.eks.amazonaws.com"},
                "Action": ["sts:AssumeRole", "sts:TagSession"]}]})
            .to_string(),
        )
        .permissions_boundary(&w.boundary)
        .tags(tag("eks-intents/managed-by", "eks-intents"))
        .tags(tag(
            "eks-intents/cluster",
            &format!("arn:aws:eks:{REGION}:{ACCOUNT}:cluster/c"),
        ))
        .send()
        .await
        .expect("role of cluster c");

    let response = sweep(&w, "2026-11-27T08:00:00Z", &["b", "c", "demo"]).await;
    let sources: BTreeMap<&str, Vec<drift_sweep::Source>> = response
        .clusters
        .iter()
        .map(|c| (c.cluster.as_str(), c.sources.clone()))
        .collect();
    assert_eq!(sources["b"], [drift_sweep::Source::Bundles]);
    assert_eq!(sources["c"], [drift_sweep::Source::RoleTags]);
    assert_eq!(sources["demo"], [drift_sweep::Source::Bundles]);
    // The schedule's retry of the same tick sends the same deduplication ids: still three.
    sweep(&w, "2026-11-27T08:00:00Z", &["b", "c", "demo"]).await;

    let queued = w.queued().await;
    assert_eq!(queued.len(), 3, "{queued:?}");
    let mut clusters: Vec<&str> = queued.iter().map(|m| m.cluster.as_str()).collect();
    clusters.sort();
    assert_eq!(clusters, ["b", "c", "demo"]);
    assert!(
        queued
            .iter()
            .all(|m| m.reason == "drift" && m.not_before.is_none()),
        "{queued:?}"
    );

    assert_eq!(w.run_batch_as_lambda().await, (3, 0));
    assert!(w.queued().await.is_empty(), "every message was consumed");
    assert_eq!(metrics_count(&w), 3, "one reconcile per cluster");

    let demo = w.status().await;
    for name in [
        "joke-worker",
        "ack-dynamodb-controller-dynamodb-chart",
        "ebs-csi-controller",
    ] {
        assert_eq!(workload_state(&demo, name), "Ready", "{demo:#}");
    }

    let b_status = w.status_of("b").await;
    assert_eq!(workload_state(&b_status, "cart"), "Ready", "{b_status:#}");
    let b_role = format!("arn:aws:iam::{ACCOUNT}:role/eks-intents/b/b.shop.cart");
    assert_eq!(annotation(&b_admin, "shop", "cart").await, Some(b_role));

    let c_status = w.status_of("c").await;
    assert_eq!(c_status["cleanup"]["marked"], 1, "{c_status:#}");
    assert_eq!(c_status["orphans"][0]["role"], "c.jokes.joke-worker");
    assert_eq!(c_status["orphans"][0]["state"], "Marked");
    assert!(
        c_status["warnings"].as_array().unwrap().iter().any(|w| w
            .as_str()
            .unwrap_or_default()
            .contains("cluster c does not exist")),
        "{:#}",
        c_status["warnings"]
    );

    let state = w.inspect();
    let roles = state["roles"].as_object().expect("roles");
    assert_eq!(roles["b.shop.cart"]["path"], "/eks-intents/b/");
    assert!(
        roles["c.jokes.joke-worker"]["tags"]["eks-intents/orphaned-since"].is_string(),
        "{:#}",
        roles["c.jokes.joke-worker"]
    );
    for role in [ACK_ROLE, WORKER_ROLE, EBS_ROLE] {
        assert!(roles.contains_key(role), "{role} missing: {roles:#?}");
    }
}

// -- drift, every kind ----------------------------------------------------------------------------

/// Every kind of hand change of an IRSA world, by the AWS SDK and the Kubernetes admin: the
/// joke-worker's role deleted (its annotation kept), the ACK controller's annotation removed,
/// policy rewritten and boundary removed, the EBS CSI role's trust changed, a policy attached,
/// a tag removed and the add-on's role cleared, and the OIDC provider deleted.
async fn drift_by_hand(w: &World<LocalCluster>) {
    let iam = iam(w);
    // role-missing
    iam.delete_role_policy()
        .role_name(WORKER_ROLE)
        .policy_name("eks-intents")
        .send()
        .await
        .expect("delete the worker's policy");
    iam.delete_role()
        .role_name(WORKER_ROLE)
        .send()
        .await
        .expect("delete the worker's role");
    // annotation (the label of the binding stays)
    Api::<ServiceAccount>::namespaced(admin(w), "ack-system")
        .patch(
            "ack-dynamodb-controller",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {ROLE_ANNOTATION: null}}})),
        )
        .await
        .expect("remove the annotation");
    // inline-policy
    iam.put_role_policy()
        .role_name(ACK_ROLE)
        .policy_name("eks-intents")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#)
        .send()
        .await
        .expect("rewrite the policy");
    // boundary
    iam.delete_role_permissions_boundary()
        .role_name(ACK_ROLE)
        .send()
        .await
        .expect("remove the boundary");
    // trust
    iam.update_assume_role_policy()
        .role_name(EBS_ROLE)
        .policy_document(
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:root")},
                "Action": "sts:AssumeRole"}]})
            .to_string(),
        )
        .send()
        .await
        .expect("change the trust");
    // managed-part
    let extra = iam
        .create_policy()
        .policy_name("hand-made")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:*","Resource":"*"}]}"#)
        .send()
        .await
        .expect("a policy of someone's")
        .policy()
        .and_then(|p| p.arn())
        .unwrap_or_default()
        .to_owned();
    iam.attach_role_policy()
        .role_name(EBS_ROLE)
        .policy_arn(&extra)
        .send()
        .await
        .expect("attach it");
    // tags
    iam.untag_role()
        .role_name(EBS_ROLE)
        .tag_keys("eks-intents/workloads")
        .send()
        .await
        .expect("remove a tag");
    // addon-role
    eks(w)
        .update_addon()
        .cluster_name(CLUSTER)
        .addon_name("aws-ebs-csi-driver")
        .service_account_role_arn("")
        .send()
        .await
        .expect("clear the add-on's role");
    // oidc-provider
    let providers = iam
        .list_open_id_connect_providers()
        .send()
        .await
        .expect("providers");
    let providers = providers.open_id_connect_provider_list();
    assert_eq!(providers.len(), 1, "{providers:?}");
    for provider in providers {
        iam.delete_open_id_connect_provider()
            .open_id_connect_provider_arn(provider.arn().unwrap_or_default())
            .send()
            .await
            .expect("delete the provider");
    }
}

/// Each kind once: the drift `drift_by_hand` makes, as the status report counts it.
fn every_irsa_kind() -> Value {
    json!({
        "inline-policy": 1,
        "managed-part": 1,
        "trust": 1,
        "boundary": 1,
        "tags": 1,
        "role-missing": 1,
        "annotation": 1,
        "addon-role": 1,
        "oidc-provider": 1,
    })
}

#[tokio::test]
async fn every_kind_of_hand_drift_is_repaired_by_one_sweep_and_the_pass_after_writes_nothing() {
    let w = converged(BindingMode::Irsa).await;
    let converged_state = w.inspect();
    drift_by_hand(&w).await;
    let drifted = w.inspect();
    assert_ne!(drifted, converged_state);
    assert!(drifted["roles"].get(WORKER_ROLE).is_none());
    assert_eq!(
        annotation(&admin(&w), "ack-system", "ack-dynamodb-controller").await,
        None
    );

    // One pass: the sweep, the queue, the reconciler.
    let drifted_marks = kube_marks(&w).await;
    w.emulator.clear_requests();
    sweep(&w, "2026-11-27T08:00:00Z", &[CLUSTER]).await;
    assert_eq!(w.run_batch_as_lambda().await, (1, 0));
    // The repairs are writes, as the checks of the quiet pass below count them.
    let writes = w.aws_writes();
    for op in [
        "iam:CreateRole",
        "iam:PutRolePolicy",
        "iam:PutRolePermissionsBoundary",
        "iam:UpdateAssumeRolePolicy",
        "iam:DetachRolePolicy",
        "iam:TagRole",
        "iam:CreateOpenIDConnectProvider",
        "eks:UpdateAddon",
    ] {
        assert!(writes.contains_key(op), "{op} not in {writes:?}");
    }
    assert_ne!(
        kube_marks(&w).await,
        drifted_marks,
        "the annotation is applied again"
    );
    let status = w.status().await;
    assert_eq!(status["dry_run"], false);
    assert_eq!(status["drift"]["found"], every_irsa_kind(), "{status:#}");
    assert_eq!(status["drift"]["repaired"], every_irsa_kind(), "{status:#}");
    for name in [
        "joke-worker",
        "ack-dynamodb-controller-dynamodb-chart",
        "ebs-csi-controller",
    ] {
        assert_eq!(workload_state(&status, name), "Ready", "{status:#}");
    }
    // Everything is back as it was, read back with boto3 and the admin client.
    assert_eq!(w.inspect(), converged_state);
    assert_eq!(
        annotation(&admin(&w), "ack-system", "ack-dynamodb-controller").await,
        Some(role_arn(ACK_ROLE))
    );
    assert_eq!(
        annotation(&admin(&w), "jokes", "joke-worker").await,
        Some(role_arn(WORKER_ROLE))
    );

    // The pass after (the next tick) finds nothing and writes nothing: IAM, EKS, Kubernetes.
    let marks = kube_marks(&w).await;
    w.emulator.clear_requests();
    sweep(&w, "2026-11-27T08:01:00Z", &[CLUSTER]).await;
    assert_eq!(w.run_batch_as_lambda().await, (1, 0));
    assert_eq!(w.aws_writes(), BTreeMap::new());
    assert_eq!(kube_marks(&w).await, marks);
    let status = w.status().await;
    assert_eq!(status["drift"]["found"], json!({}), "{status:#}");
    assert_eq!(status["drift"]["repaired"], json!({}), "{status:#}");
}

#[tokio::test]
async fn in_report_only_the_same_drift_is_reported_and_nothing_is_written() {
    let mut w = converged(BindingMode::Irsa).await;
    drift_by_hand(&w).await;
    let drifted = w.inspect();
    let marks = kube_marks(&w).await;

    w.reconciler.settings.report_only = true;
    w.emulator.clear_requests();
    sweep(&w, "2026-11-27T08:00:00Z", &[CLUSTER]).await;
    assert_eq!(w.run_batch_as_lambda().await, (1, 0));
    let status = w.status().await;
    assert_eq!(status["dry_run"], true);
    assert_eq!(status["drift"]["found"], every_irsa_kind(), "{status:#}");
    assert_eq!(status["drift"]["repaired"], json!({}), "{status:#}");
    assert_eq!(w.aws_writes(), BTreeMap::new());
    assert_eq!(kube_marks(&w).await, marks);
    assert_eq!(w.inspect(), drifted);
    // The metrics say the same: nine kinds found, none repaired.
    let metrics = w.metrics.lock().unwrap().last().cloned().expect("metrics");
    let value = |name: &str| metrics.values.get(name).map(|(v, _)| *v);
    assert_eq!(value("DriftFound"), Some(9.0), "{:?}", metrics.values);
    for kind in every_irsa_kind().as_object().unwrap().keys() {
        assert_eq!(value(&format!("DriftFound.{kind}")), Some(1.0), "{kind}");
        assert_eq!(value(&format!("DriftRepaired.{kind}")), Some(0.0), "{kind}");
    }

    // Report-only off again: the next pass repairs what was reported.
    w.reconciler.settings.report_only = false;
    sweep(&w, "2026-11-27T08:01:00Z", &[CLUSTER]).await;
    assert_eq!(w.run_batch_as_lambda().await, (1, 0));
    let status = w.status().await;
    assert_eq!(status["drift"]["repaired"], every_irsa_kind(), "{status:#}");
}

#[tokio::test]
async fn a_pod_identity_association_deleted_by_hand_is_found_and_recreated() {
    let w = converged(BindingMode::PodIdentity).await;
    let sorted = |state: Value| {
        let mut state = state;
        if let Some(list) = state["pod_identity_associations"].as_array_mut() {
            list.sort_by_key(|a| a.to_string());
        }
        state
    };
    let converged_state = sorted(w.inspect());
    let eks = eks(&w);
    let listed = eks
        .list_pod_identity_associations()
        .cluster_name(CLUSTER)
        .namespace("jokes")
        .service_account("joke-worker")
        .send()
        .await
        .expect("associations");
    let ids: Vec<String> = listed
        .associations()
        .iter()
        .filter_map(|a| a.association_id().map(str::to_owned))
        .collect();
    assert_eq!(ids.len(), 1, "{listed:?}");
    eks.delete_pod_identity_association()
        .cluster_name(CLUSTER)
        .association_id(&ids[0])
        .send()
        .await
        .expect("delete the association");
    assert_ne!(sorted(w.inspect()), converged_state);

    sweep(&w, "2026-11-27T08:00:00Z", &[CLUSTER]).await;
    assert_eq!(w.run_batch_as_lambda().await, (1, 0));
    let status = w.status().await;
    let expected = json!({"pod-identity-association": 1});
    assert_eq!(status["drift"]["found"], expected, "{status:#}");
    assert_eq!(status["drift"]["repaired"], expected, "{status:#}");
    assert_eq!(sorted(w.inspect()), converged_state);

    let marks = kube_marks(&w).await;
    w.emulator.clear_requests();
    sweep(&w, "2026-11-27T08:01:00Z", &[CLUSTER]).await;
    assert_eq!(w.run_batch_as_lambda().await, (1, 0));
    assert_eq!(w.aws_writes(), BTreeMap::new());
    assert_eq!(kube_marks(&w).await, marks);
}

// -- eks-events: CloudTrail -------------------------------------------------------------------

/// A policy rewritten by hand is announced by CloudTrail: one reconcile of its role's cluster
/// puts the declared policy back. The same call made by the system's own role asks for nothing.
#[tokio::test]
async fn a_cloudtrail_put_role_policy_by_someone_else_reconciles_the_role_s_cluster() {
    let w = converged(BindingMode::Irsa).await;
    let declared = w.inspect()["roles"][WORKER_ROLE]["inline"]["eks-intents"].clone();
    assert!(declared.is_object());
    let rewritten = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
    iam(&w)
        .put_role_policy()
        .role_name(WORKER_ROLE)
        .policy_name("eks-intents")
        .policy_document(rewritten)
        .send()
        .await
        .expect("rewrite the policy");
    assert_eq!(
        w.inspect()["roles"][WORKER_ROLE]["inline"]["eks-intents"],
        serde_json::from_str::<Value>(rewritten).unwrap()
    );

    // CloudTrail's record of that call (IAM's events come from us-east-1, forwarded).
    let mut event = sample("cloudtrail-iam-put-role-policy.json");
    event["detail"]["requestParameters"]["roleName"] = json!(WORKER_ROLE);
    event["detail"]["requestParameters"]["policyDocument"] = json!(rewritten);
    let ctx = w.eks_events(&[RECONCILER], 60, past_minute);

    let mut own = event.clone();
    own["detail"]["userIdentity"]["arn"] = json!(RECONCILER_SESSION);
    own["detail"]["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"] = json!(RECONCILER);
    let response = eks_events::handle(&ctx, &own).await.expect("handled");
    assert!(response.reconciles.is_empty(), "{response:?}");
    assert!(
        response.ignored[0].why.contains("system's own role"),
        "{response:?}"
    );
    assert!(w.queued().await.is_empty());

    let response = eks_events::handle(&ctx, &event).await.expect("handled");
    assert_eq!(response.reconciles.len(), 1, "{response:?}");
    let queued = w.queued().await;
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(queued[0].cluster, CLUSTER);
    assert!(
        queued[0].reason.contains("PutRolePolicy") && queued[0].reason.contains(WORKER_ROLE),
        "{}",
        queued[0].reason
    );
    assert!(queued[0].not_before.is_some_and(|t| t <= now()));

    let reconciles = metrics_count(&w);
    assert_eq!(w.run_batch_as_lambda().await, (1, 0));
    assert_eq!(metrics_count(&w), reconciles + 1);
    assert_eq!(
        w.inspect()["roles"][WORKER_ROLE]["inline"]["eks-intents"],
        declared
    );
    let status = w.status().await;
    assert_eq!(
        status["drift"]["repaired"],
        json!({"inline-policy": 1}),
        "{status:#}"
    );
    assert!(w.queued().await.is_empty());
}

// -- eks-events: the audit log ----------------------------------------------------------------

/// A new ServiceAccount and Deployment in `jokes`, with a bundle put beside the others (no
/// upload notification): the audit log announces them, one reconcile binds them.
async fn new_workload(w: &World<LocalCluster>) -> Value {
    let client = admin(w);
    create_service_account(&client, "jokes", "joke-reviewer").await;
    create_deployment(&client, "jokes", "joke-reviewer", "joke-reviewer").await;
    w.put(
        "intents/demo/jokes/joke-reviewer.yaml",
        intents("joke-reviewer", "reviews"),
    )
    .await;
    assert!(
        w.queued().await.is_empty(),
        "nothing asked for a reconcile yet"
    );
    awslogs(
        CLUSTER,
        &[
            audit(
                "create",
                "",
                "serviceaccounts",
                "jokes",
                "joke-reviewer",
                ALICE,
            ),
            audit(
                "create",
                "apps",
                "deployments",
                "jokes",
                "joke-reviewer",
                ALICE,
            ),
        ],
    )
}

const REVIEWER_ROLE: &str = "demo.jokes.joke-reviewer";

async fn assert_reviewer_bound(w: &World<LocalCluster>) {
    let state = w.inspect();
    let role = &state["roles"][REVIEWER_ROLE];
    assert!(role.is_object(), "{:#}", state["roles"]);
    assert!(
        role["inline"]["eks-intents"]
            .to_string()
            .contains("dynamodb:GetItem"),
        "{role:#}"
    );
    assert_eq!(role["boundary"], w.boundary.as_str());
    assert_eq!(
        annotation(&admin(w), "jokes", "joke-reviewer").await,
        Some(role_arn(REVIEWER_ROLE))
    );
    let status = w.status().await;
    assert_eq!(
        workload_state(&status, "joke-reviewer"),
        "Ready",
        "{status:#}"
    );
}

#[tokio::test]
async fn an_audit_log_of_a_new_workload_binds_it_in_one_reconcile() {
    let w = converged(BindingMode::Irsa).await;
    let payload = new_workload(&w).await;
    let response = eks_events::handle(&w.eks_events(&[RECONCILER], 60, past_minute), &payload)
        .await
        .expect("handled");
    assert_eq!(response.reconciles.len(), 1, "{response:?}");
    let queued = w.queued().await;
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(queued[0].cluster, CLUSTER);
    assert!(queued[0].reason.contains("joke-reviewer"), "{queued:?}");

    let reconciles = metrics_count(&w);
    assert_eq!(w.run_batch_as_lambda().await, (1, 0));
    assert_eq!(metrics_count(&w), reconciles + 1);
    assert_reviewer_bound(&w).await;
    assert!(w.queued().await.is_empty());
}

#[tokio::test]
async fn an_audit_log_of_the_system_s_own_writes_triggers_nothing() {
    let w = converged(BindingMode::Irsa).await;
    // The reconciler's own server-side apply of an annotation, as EKS logs it: by the session
    // ARN as username, or by a mapped username with the ARN in `extra`.
    let by_session = audit(
        "patch",
        "",
        "serviceaccounts",
        "jokes",
        "joke-worker",
        RECONCILER_SESSION,
    );
    let mut by_extra = audit(
        "patch",
        "",
        "serviceaccounts",
        "ack-system",
        "ack-dynamodb-controller",
        "eks-intents",
    );
    by_extra["user"]["extra"] = json!({ "arn": [RECONCILER_SESSION] });
    let payload = awslogs(CLUSTER, &[by_session, by_extra]);
    let response = eks_events::handle(&w.eks_events(&[RECONCILER], 60, past_minute), &payload)
        .await
        .expect("handled");
    assert!(response.reconciles.is_empty(), "{response:?}");
    assert_eq!(response.ignored.len(), 1, "{response:?}");
    assert_eq!(response.ignored[0].count, 2);
    assert!(response.ignored[0].why.contains("system's own role"));
    assert!(w.queued().await.is_empty());
    assert_eq!(w.run_batch_as_lambda().await, (0, 0));

    // The same change by someone else does ask.
    let by_alice = audit(
        "patch",
        "",
        "serviceaccounts",
        "jokes",
        "joke-worker",
        ALICE,
    );
    let response = eks_events::handle(
        &w.eks_events(&[RECONCILER], 60, past_minute),
        &awslogs(CLUSTER, &[by_alice]),
    )
    .await
    .expect("handled");
    assert_eq!(response.reconciles.len(), 1, "{response:?}");
    assert_eq!(w.queued().await.len(), 1);
}

#[tokio::test]
async fn a_hundred_audit_events_in_one_minute_make_one_reconcile() {
    let w = converged(BindingMode::Irsa).await;
    let kinds = [
        ("create", "", "serviceaccounts"),
        ("patch", "apps", "deployments"),
        ("update", "apps", "statefulsets"),
        ("delete", "batch", "jobs"),
        ("create", "batch", "cronjobs"),
    ];
    let events: Vec<Value> = (0..100)
        .map(|i| {
            let (verb, group, resource) = kinds[i % kinds.len()];
            audit(verb, group, resource, "jokes", &format!("w{i}"), ALICE)
        })
        .collect();
    // Four deliveries of the log group, at four moments of one minute.
    let clocks: [fn() -> u64; 4] = [past_minute, past_minute_15, past_minute_30, past_minute_59];
    let mut ids = Vec::new();
    for (chunk, clock) in events.chunks(25).zip(clocks) {
        let response = eks_events::handle(
            &w.eks_events(&[RECONCILER], 60, clock),
            &awslogs(CLUSTER, chunk),
        )
        .await
        .expect("handled");
        assert_eq!(response.reconciles.len(), 1, "{response:?}");
        assert!(response.ignored.is_empty(), "{response:?}");
        ids.push(response.reconciles[0].deduplication_id.clone());
    }
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");

    let queued = w.queued().await;
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(queued[0].not_before, Some(PAST_MINUTE + 60));
    let reconciles = metrics_count(&w);
    assert_eq!(w.run_batch_as_lambda().await, (1, 0));
    assert_eq!(w.run_batch_as_lambda().await, (0, 0));
    assert_eq!(metrics_count(&w), reconciles + 1, "one reconcile");
}

/// With the clock of now, the message waits on the queue until its window has closed (a batch
/// failure that comes back), then binds the workload.
#[tokio::test]
async fn an_event_of_an_open_window_waits_for_the_window_to_close() {
    const WINDOW: u64 = 2;
    let w = converged(BindingMode::Irsa).await;
    let payload = new_workload(&w).await;
    // Start at the beginning of a window, so that it is still open when the reconciler looks.
    let mut last = now();
    loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let t = now();
        if t != last && t.is_multiple_of(WINDOW) {
            break;
        }
        last = t;
    }
    let response = eks_events::handle(&w.eks_events(&[RECONCILER], WINDOW, now), &payload)
        .await
        .expect("handled");
    assert_eq!(response.reconciles.len(), 1, "{response:?}");
    let not_before = response.reconciles[0]
        .message
        .not_before
        .expect("not_before");
    assert!(not_before > now(), "{not_before}");

    let reconciles = metrics_count(&w);
    assert_eq!(
        w.run_batch_as_lambda().await,
        (1, 1),
        "put back, not processed early"
    );
    assert_eq!(metrics_count(&w), reconciles, "no reconcile ran");
    assert!(w.inspect()["roles"].get(REVIEWER_ROLE).is_none());

    assert_eq!(run_when_back(&w, Duration::from_secs(10)).await, (1, 0));
    assert!(now() >= not_before);
    assert_eq!(metrics_count(&w), reconciles + 1);
    assert_reviewer_bound(&w).await;
}

// -- eks-events: a cluster being created ------------------------------------------------------

#[tokio::test]
async fn a_create_cluster_event_waits_while_creating_and_binds_once_active() {
    let mut w = world(BindingMode::Irsa, local_cluster(CLUSTER, true)).await;
    w.reconciler.settings.not_ready_retry = Duration::from_secs(1);
    for (key, file) in SEED_KEYS {
        w.put(key, seed(file)).await;
    }
    set_override(&w, CLUSTER, "status", "CREATING");

    let event = sample("cloudtrail-eks-create-cluster.json");
    assert_eq!(event["detail"]["requestParameters"]["name"], CLUSTER);
    let response = eks_events::handle(&w.eks_events(&[RECONCILER], 60, past_minute), &event)
        .await
        .expect("handled");
    assert_eq!(response.reconciles.len(), 1, "{response:?}");
    assert_eq!(response.reconciles[0].message.cluster, CLUSTER);

    // Still creating: put back, twice, never failed for good; nothing is made.
    assert_eq!(w.run_batch_as_lambda().await, (1, 1));
    let status = w.status().await;
    assert!(
        status["error"]
            .as_str()
            .is_some_and(|e| e.contains("CREATING")),
        "{status:#}"
    );
    assert_eq!(run_when_back(&w, Duration::from_secs(10)).await, (1, 1));
    let state = w.inspect();
    assert_eq!(state["roles"], json!({}), "{state:#}");
    assert_eq!(state["oidc_providers"], json!({}), "{state:#}");

    set_override(&w, CLUSTER, "status", "ACTIVE");
    assert_eq!(run_when_back(&w, Duration::from_secs(15)).await, (1, 0));
    assert!(w.queued().await.is_empty());

    let issuer = eks(&w)
        .describe_cluster()
        .name(CLUSTER)
        .send()
        .await
        .expect("describe")
        .cluster()
        .and_then(|c| c.identity())
        .and_then(|i| i.oidc())
        .and_then(|o| o.issuer())
        .unwrap_or_default()
        .to_owned();
    let state = w.inspect();
    let provider = format!(
        "arn:aws:iam::{ACCOUNT}:oidc-provider/{}",
        issuer.trim_start_matches("https://")
    );
    assert!(
        state["oidc_providers"].get(&provider).is_some(),
        "{provider}: {:#}",
        state["oidc_providers"]
    );
    assert_eq!(state["roles"].as_object().map(|r| r.len()), Some(3));
    assert_eq!(
        state["addons"]["aws-ebs-csi-driver"]["service_account_role_arn"],
        role_arn(EBS_ROLE)
    );
    assert_eq!(
        annotation(&admin(&w), "jokes", "joke-worker").await,
        Some(role_arn(WORKER_ROLE))
    );
    assert_eq!(
        annotation(&admin(&w), "ack-system", "ack-dynamodb-controller").await,
        Some(role_arn(ACK_ROLE))
    );
    let status = w.status().await;
    assert!(status["error"].is_null(), "{status:#}");
    for name in [
        "joke-worker",
        "ack-dynamodb-controller-dynamodb-chart",
        "ebs-csi-controller",
    ] {
        assert_eq!(workload_state(&status, name), "Ready", "{status:#}");
    }
}
