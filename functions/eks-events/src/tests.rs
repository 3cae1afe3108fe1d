//! Every sample through `classify`, the filters one by one, and the handler end to end against
//! small in-memory ports.

use super::*;
use eks_intents::model::{AccountId, ClusterName, ClusterRef, Region, ServiceAccountRef};
use eks_intents::policy::{role_name, role_tags};
use eks_intents::ports::BundleObject;
use eks_intents::testing::{FakeIam, FakeQueue, FakeStore, service_account_ref};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::json;
use std::collections::BTreeSet;
use std::io::Write;

const REGION: &str = "eu-west-2";
const ACCOUNT: &str = "123456789012";
const HUMAN: &str = "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_PlatformAdmin_0123456789abcdef/alice@example.com";
const RECONCILER: &str = "arn:aws:iam::123456789012:role/eks-intents/eks-intents-reconciler";
const RECONCILER_SESSION: &str =
    "arn:aws:sts::123456789012:assumed-role/eks-intents-reconciler/eks-intents-reconciler";
/// 2026-11-26T12:00:42Z: bucket 29928240 of a 60-second window, which closes at 12:01:00.
const NOON: u64 = 1_795_694_442;

fn noon() -> u64 {
    NOON
}

fn sample(name: &str) -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/");
    let text = std::fs::read_to_string(format!("{path}{name}")).expect("sample exists");
    serde_json::from_str(&text).expect("sample is JSON")
}

fn system() -> Vec<String> {
    vec![
        RECONCILER.to_owned(),
        "arn:aws:iam::123456789012:role/eks-intents/eks-intents-events".to_owned(),
    ]
}

fn classifier(system_roles: &[String]) -> Classifier<'_> {
    Classifier {
        iam_path: "/eks-intents/",
        region: REGION,
        system_roles,
    }
}

fn findings(event: &Value) -> Vec<Finding> {
    let roles = system();
    classify(event, &classifier(&roles))
}

fn only(event: &Value) -> Finding {
    let mut all = findings(event);
    assert_eq!(all.len(), 1, "{all:?}");
    all.remove(0)
}

fn why(finding: &Finding) -> &str {
    match finding {
        Finding::Ignored(ignored) => &ignored.why,
        other => panic!("expected an ignored event, got {other:?}"),
    }
}

/// A CloudWatch Logs subscription payload of `group` holding `messages`.
fn awslogs(group: &str, messages: &[Value]) -> Value {
    let payload = json!({
        "messageType": "DATA_MESSAGE",
        "owner": ACCOUNT,
        "logGroup": group,
        "logStream": "kube-apiserver-audit-8f3a1b2c4d5e6f708192a3b4c5d6e7f8",
        "subscriptionFilters": ["eks-intents-audit"],
        "logEvents": messages.iter().enumerate().map(|(i, m)| json!({
            "id": i.to_string(),
            "timestamp": 1_795_694_440_000u64 + i as u64,
            "message": m.to_string(),
        })).collect::<Vec<_>>(),
    });
    json!({ "awslogs": { "data": encode(payload.to_string().as_bytes()) } })
}

fn encode(bytes: &[u8]) -> String {
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(bytes).unwrap();
    base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap())
}

/// An audit event: `verb` on `resource` (of `group`) `namespace/name` by `username`.
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
        "auditID": "5d1c2b3a-4e6f-4a8b-9c0d-1e2f3a4b5c6d",
        "stage": "ResponseComplete",
        "verb": verb,
        "user": { "username": username, "groups": ["system:authenticated"] },
        "objectRef": { "resource": resource, "namespace": namespace, "name": name, "apiVersion": "v1" },
        "responseStatus": { "metadata": {}, "code": 200 },
    });
    if !group.is_empty() {
        event["objectRef"]["apiGroup"] = json!(group);
    }
    event
}

#[test]
fn every_eks_sample_reconciles_the_cluster_it_names() {
    for (file, call) in [
        ("cloudtrail-eks-create-cluster.json", "CreateCluster"),
        ("cloudtrail-eks-delete-cluster.json", "DeleteCluster"),
        (
            "cloudtrail-eks-update-cluster-config.json",
            "UpdateClusterConfig",
        ),
        ("cloudtrail-eks-create-addon.json", "CreateAddon"),
        ("cloudtrail-eks-update-addon.json", "UpdateAddon"),
        ("cloudtrail-eks-delete-addon.json", "DeleteAddon"),
        (
            "cloudtrail-eks-create-pod-identity-association.json",
            "CreatePodIdentityAssociation",
        ),
        (
            "cloudtrail-eks-update-pod-identity-association.json",
            "UpdatePodIdentityAssociation",
        ),
        (
            "cloudtrail-eks-delete-pod-identity-association.json",
            "DeletePodIdentityAssociation",
        ),
    ] {
        let event = sample(file);
        assert_eq!(event["detail"]["eventName"], call, "{file}");
        assert_eq!(
            only(&event),
            Finding::Cluster {
                cluster: "demo".into(),
                reason: format!("eks {call} by {HUMAN}"),
            },
            "{file}"
        );
    }
}

#[test]
fn the_iam_samples_name_the_role_or_its_cluster() {
    assert_eq!(
        only(&sample("cloudtrail-iam-put-role-policy.json")),
        Finding::Role {
            role: "demo.jokes.joke-worker".into(),
            reason: format!("iam PutRolePolicy on demo.jokes.joke-worker by {HUMAN}"),
        }
    );
    assert_eq!(
        only(&sample("cloudtrail-iam-delete-role.json")),
        Finding::Cluster {
            cluster: "demo".into(),
            reason: format!("iam DeleteRole on demo.jokes.joke-worker by {HUMAN}"),
        }
    );
}

#[test]
fn the_audit_sample_announces_a_service_account_and_a_deployment() {
    let found = findings(&sample("cloudwatch-logs-audit.json"));
    assert_eq!(
        found,
        [
            Finding::Workload {
                cluster: "demo".into(),
                namespace: "jokes".into(),
                reason: format!("audit create serviceaccounts jokes/joke-worker by {HUMAN}"),
            },
            Finding::Workload {
                cluster: "demo".into(),
                namespace: "jokes".into(),
                reason: format!("audit create deployments jokes/joke-worker by {HUMAN}"),
            },
        ]
    );
}

#[test]
fn the_system_s_own_calls_give_nothing() {
    // An assumed role of the system, as CloudTrail shows it.
    for file in [
        "cloudtrail-eks-create-pod-identity-association.json",
        "cloudtrail-iam-put-role-policy.json",
        "cloudtrail-iam-delete-role.json",
    ] {
        let mut event = sample(file);
        event["detail"]["userIdentity"]["arn"] = json!(RECONCILER_SESSION);
        event["detail"]["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"] =
            json!(RECONCILER);
        assert!(why(&only(&event)).contains("system's own role"), "{file}");
        // The session ARN alone (no session context) is enough.
        event["detail"]["userIdentity"]
            .as_object_mut()
            .unwrap()
            .remove("sessionContext");
        assert!(why(&only(&event)).contains("system's own role"), "{file}");
    }
    // The audit log: EKS's username for an IAM role, or only the ARN in `extra`.
    let by_username = audit(
        "patch",
        "",
        "serviceaccounts",
        "jokes",
        "joke-worker",
        RECONCILER_SESSION,
    );
    let mut by_extra = audit(
        "patch",
        "apps",
        "deployments",
        "jokes",
        "joke-worker",
        "eks-intents",
    );
    by_extra["user"]["extra"] =
        json!({ "arn": [RECONCILER_SESSION], "sessionName": ["eks-intents-reconciler"] });
    let mut by_canonical = audit("create", "", "serviceaccounts", "jokes", "x", "mapped-name");
    by_canonical["user"]["extra"] =
        json!({ "canonicalArn": ["arn:aws:iam::123456789012:role/eks-intents-reconciler"] });
    let found = findings(&awslogs(
        "/aws/eks/demo/cluster",
        &[by_username, by_extra, by_canonical],
    ));
    assert_eq!(found.len(), 3);
    for finding in &found {
        assert!(why(finding).contains("system's own role"), "{finding:?}");
    }
    // The same role name in another account is someone else.
    let other_account = audit(
        "patch",
        "",
        "serviceaccounts",
        "jokes",
        "joke-worker",
        "arn:aws:sts::999999999999:assumed-role/eks-intents-reconciler/s",
    );
    assert!(matches!(
        only(&awslogs("/aws/eks/demo/cluster", &[other_account])),
        Finding::Workload { .. }
    ));
}

#[test]
fn failed_calls_give_nothing() {
    for file in [
        "cloudtrail-eks-create-cluster.json",
        "cloudtrail-iam-put-role-policy.json",
    ] {
        let mut event = sample(file);
        event["detail"]["errorCode"] = json!("AccessDenied");
        event["detail"]["errorMessage"] = json!("User is not authorized");
        event["detail"]["responseElements"] = Value::Null;
        assert!(
            why(&only(&event)).contains("the call failed (AccessDenied)"),
            "{file}"
        );
    }
    let mut refused = audit("create", "apps", "deployments", "jokes", "w", "alice");
    refused["responseStatus"]["code"] = json!(403);
    let mut started = audit("create", "apps", "deployments", "jokes", "w", "alice");
    started["stage"] = json!("ResponseStarted");
    let found = findings(&awslogs("/aws/eks/demo/cluster", &[refused, started]));
    assert_eq!(why(&found[0]), "the request failed (403)");
    assert!(why(&found[1]).starts_with("stage ResponseStarted"));
}

#[test]
fn only_changes_of_service_accounts_and_workloads_count() {
    let counted = [
        audit("update", "apps", "statefulsets", "jokes", "w", "alice"),
        audit("patch", "apps", "daemonsets", "jokes", "w", "alice"),
        audit("delete", "batch", "jobs", "jokes", "w", "alice"),
        audit("create", "batch", "cronjobs", "jokes", "w", "alice"),
        audit(
            "deletecollection",
            "apps",
            "deployments",
            "jokes",
            "",
            "alice",
        ),
    ];
    for finding in findings(&awslogs("/aws/eks/demo/cluster", &counted)) {
        assert!(matches!(finding, Finding::Workload { .. }), "{finding:?}");
    }
    let mut status = audit(
        "update",
        "apps",
        "deployments",
        "jokes",
        "w",
        "system:serviceaccount:kube-system:deployment-controller",
    );
    status["objectRef"]["subresource"] = json!("status");
    let not_counted = [
        audit("get", "apps", "deployments", "jokes", "w", "alice"),
        audit("watch", "", "serviceaccounts", "jokes", "", "alice"),
        audit("create", "", "pods", "jokes", "w", "alice"),
        audit("create", "", "configmaps", "jokes", "w", "alice"),
        // A CRD that happens to be called deployments.
        audit(
            "create",
            "example.com",
            "deployments",
            "jokes",
            "w",
            "alice",
        ),
        status,
        json!({ "kind": "Event", "apiVersion": "audit.k8s.io/v1", "stage": "ResponseComplete",
                "verb": "create", "objectRef": { "resource": "serviceaccounts", "name": "w" },
                "responseStatus": { "code": 201 } }),
    ];
    let found = findings(&awslogs("/aws/eks/demo/cluster", &not_counted));
    assert_eq!(found.len(), not_counted.len());
    assert!(why(&found[0]).contains("\"get\""));
    assert!(why(&found[1]).contains("\"watch\""));
    for finding in &found[2..6] {
        assert!(
            why(finding).starts_with("not a ServiceAccount"),
            "{finding:?}"
        );
    }
    assert_eq!(why(&found[6]), "no namespace");
}

#[test]
fn other_events_are_ignored_with_a_reason() {
    let other = [
        json!({"hello": "world"}),
        sample("eventbridge-object-created.json"),
        sample("schedule-eventbridge.json"),
    ];
    for event in &other {
        assert!(
            why(&only(event)).starts_with("neither a CloudTrail call"),
            "{event}"
        );
    }
    let mut describe = sample("cloudtrail-eks-create-cluster.json");
    describe["detail"]["eventName"] = json!("DescribeCluster");
    assert!(why(&only(&describe)).contains("\"DescribeCluster\""));
    let mut create_user = sample("cloudtrail-iam-put-role-policy.json");
    create_user["detail"]["eventName"] = json!("CreateUser");
    assert!(why(&only(&create_user)).contains("\"CreateUser\""));
    let mut elsewhere = sample("cloudtrail-eks-delete-cluster.json");
    elsewhere["detail"]["awsRegion"] = json!("us-west-2");
    assert!(why(&only(&elsewhere)).contains("us-west-2"));
    let mut wrong_source = sample("cloudtrail-eks-delete-cluster.json");
    wrong_source["detail"]["eventSource"] = json!("ecs.amazonaws.com");
    assert!(why(&only(&wrong_source)).contains("is not eks.amazonaws.com"));
    let mut no_name = sample("cloudtrail-eks-create-addon.json");
    no_name["detail"]["requestParameters"] = Value::Null;
    assert_eq!(why(&only(&no_name)), "no requestParameters.clusterName");
    // A policy outside the IAM path, and a deleted role of no cluster shape.
    let mut policy = sample("cloudtrail-iam-put-role-policy.json");
    policy["detail"]["eventName"] = json!("CreatePolicyVersion");
    policy["detail"]["requestParameters"] =
        json!({"policyArn": "arn:aws:iam::123456789012:policy/team/readers", "setAsDefault": true});
    assert!(why(&only(&policy)).contains("not under /eks-intents/<cluster>/"));
    policy["detail"]["requestParameters"]["policyArn"] =
        json!("arn:aws:iam::123456789012:policy/eks-intents/demo/demo.jokes.joke-worker.part1");
    assert_eq!(
        only(&policy),
        Finding::Cluster {
            cluster: "demo".into(),
            reason: format!(
                "iam CreatePolicyVersion on arn:aws:iam::123456789012:policy/eks-intents/demo/demo.jokes.joke-worker.part1 by {HUMAN}"
            ),
        }
    );
    let mut delete = sample("cloudtrail-iam-delete-role.json");
    delete["detail"]["requestParameters"]["roleName"] = json!("ci-deployer");
    assert!(why(&only(&delete)).contains("is not <cluster>.<namespace>.<serviceaccount>"));
}

#[test]
fn bad_payloads_are_ignored_and_say_what_was_wrong() {
    let group_only = |group: &str| {
        awslogs(
            group,
            &[audit(
                "create",
                "",
                "serviceaccounts",
                "jokes",
                "w",
                "alice",
            )],
        )
    };
    let cases = [
        (
            json!({"awslogs": {"data": 5}}),
            "awslogs.data is not a string",
        ),
        (
            json!({"awslogs": {"data": "not base64 !"}}),
            "awslogs.data is not base64",
        ),
        (
            json!({"awslogs": {"data": base64::engine::general_purpose::STANDARD.encode(b"plain text")}}),
            "awslogs.data is not gzip",
        ),
        (
            json!({"awslogs": {"data": encode(b"{not json")}}),
            "awslogs.data is not JSON",
        ),
        (
            json!({"awslogs": {"data": encode(br#"{"messageType":"CONTROL_MESSAGE","logGroup":"","logEvents":[]}"#)}}),
            "a control message",
        ),
        (
            group_only("/aws/lambda/eks-intents"),
            "not the control-plane log group",
        ),
        (
            group_only("/aws/eks/bad name/cluster"),
            "not the control-plane log group",
        ),
    ];
    for (event, expected) in cases {
        let finding = only(&event);
        assert!(why(&finding).starts_with(expected), "{finding:?}");
    }
    // A log stream other than the audit log, and messages that are not audit events.
    let mut other_stream: Value = json!({
        "messageType": "DATA_MESSAGE", "logGroup": "/aws/eks/demo/cluster",
        "logStream": "authenticator-8f3a1b2c", "logEvents": [{"id": "1", "timestamp": 1, "message": "time=\"...\" level=info"}]
    });
    let event = json!({"awslogs": {"data": encode(other_stream.to_string().as_bytes())}});
    assert!(why(&only(&event)).contains("is not the audit log"));
    other_stream["logStream"] = json!("kube-apiserver-audit-1");
    let event = json!({"awslogs": {"data": encode(other_stream.to_string().as_bytes())}});
    assert_eq!(why(&only(&event)), "its message is not a JSON audit event");
    let event = awslogs("/aws/eks/demo/cluster", &[json!({"kind": "Status"})]);
    assert_eq!(why(&only(&event)), "not a Kubernetes audit event");
}

#[test]
fn arns_names_and_paths_are_read_strictly() {
    assert_eq!(
        role_of_arn(RECONCILER),
        Some((ACCOUNT, "eks-intents-reconciler"))
    );
    assert_eq!(
        role_of_arn(RECONCILER_SESSION),
        Some((ACCOUNT, "eks-intents-reconciler"))
    );
    assert_eq!(
        role_of_arn("arn:aws:iam::123456789012:role/plain"),
        Some((ACCOUNT, "plain"))
    );
    assert_eq!(role_of_arn("arn:aws:iam::123456789012:user/alice"), None);
    assert_eq!(role_of_arn("eks-intents-reconciler"), None);
    assert_eq!(role_of_arn("system:serviceaccount:kube-system:x"), None);

    assert_eq!(cluster_of_role_name("demo.jokes.joke-worker"), Some("demo"));
    let cut = role_name(
        &ClusterName::new("demo"),
        &service_account_ref("jokes", &"w".repeat(80)),
    );
    assert_eq!(cluster_of_role_name(cut.as_str()), Some("demo"));
    let cut_in_cluster = role_name(
        &ClusterName::new("c".repeat(70)),
        &service_account_ref("jokes", "w"),
    );
    assert_eq!(cluster_of_role_name(cut_in_cluster.as_str()), None);
    assert_eq!(cluster_of_role_name("my.role"), None);

    let path = "/eks-intents/";
    assert_eq!(
        cluster_of_policy_arn(
            "arn:aws:iam::1:policy/eks-intents/demo/demo.a.b.part1",
            path
        ),
        Some("demo")
    );
    assert_eq!(
        cluster_of_policy_arn(
            "arn:aws:iam::1:policy/eks-intents/demo/demo.a.b.part1",
            "eks-intents"
        ),
        Some("demo")
    );
    assert_eq!(
        cluster_of_policy_arn("arn:aws:iam::1:policy/eks-intents/x.part1", path),
        None
    );
    assert_eq!(
        cluster_of_policy_arn("arn:aws:iam::1:policy/eks-intents/demo/a/b", path),
        None
    );
    assert_eq!(
        cluster_of_policy_arn("arn:aws:iam::1:policy/other/demo/x", path),
        None
    );
    assert_eq!(
        cluster_of_policy_arn("arn:aws:iam::1:role/eks-intents/demo/x", path),
        None
    );
}

#[test]
fn settings_are_read_with_clear_errors() {
    assert_eq!(
        parse_system_roles(&format!(" {RECONCILER} , arn:aws:iam::1:role/x ,")).unwrap(),
        [RECONCILER, "arn:aws:iam::1:role/x"]
    );
    assert!(
        parse_system_roles(" , ")
            .unwrap_err()
            .contains("no role ARN")
    );
    assert!(
        parse_system_roles(RECONCILER_SESSION)
            .unwrap_err()
            .contains("not a role ARN")
    );
    assert!(
        parse_system_roles("reconciler")
            .unwrap_err()
            .contains("not a role ARN")
    );
    assert_eq!(parse_window("60").unwrap(), 60);
    assert_eq!(parse_window(" 300 ").unwrap(), 300);
    for bad in ["0", "301", "-1", "a minute"] {
        assert!(parse_window(bad).unwrap_err().contains("1 to 300"), "{bad}");
    }
}

#[test]
fn a_window_names_the_bucket_and_waits_for_its_end() {
    let request = windowed("demo", &["eks CreateCluster by x".into()], NOON, 60);
    assert_eq!(request.deduplication_id, "events:demo:29928240");
    assert_eq!(request.message.not_before, Some(1_795_694_460));
    assert_eq!(request.message.reason, "eks CreateCluster by x");
    assert_eq!(request.message.cluster, "demo");
    // Every arrival of the window gives the same id and the same end.
    for now in [1_795_694_400, 1_795_694_459] {
        let same = windowed("demo", &["r".into()], now, 60);
        assert_eq!(same.deduplication_id, request.deduplication_id);
        assert_eq!(same.message.not_before, request.message.not_before);
    }
    let next = windowed("demo", &["r".into()], 1_795_694_460, 60);
    assert_eq!(next.deduplication_id, "events:demo:29928241");
    assert_eq!(next.message.not_before, Some(1_795_694_520));
    let merged = windowed("demo", &["a".into(), "b".into(), "c".into()], NOON, 60);
    assert_eq!(merged.message.reason, "a (and 2 more)");
    // A zero window would divide by zero: it counts as one second.
    assert_eq!(
        windowed("demo", &[], NOON, 0).message.not_before,
        Some(NOON + 1)
    );
}

#[test]
fn long_cluster_names_keep_ids_valid() {
    let longest = "c".repeat(100);
    let id = deduplication_id(&longest, NOON);
    assert_eq!(id, format!("events:{longest}:{NOON}"));
    assert!(id.len() <= 128);
    for odd in ["x".repeat(300), "team a".into(), "é".repeat(10)] {
        let id = deduplication_id(&odd, u64::MAX);
        assert!(id.len() <= 128, "{id}");
        assert!(id.chars().all(|c| c.is_ascii_graphic()), "{id}");
        assert!(id.starts_with("events:") && id.ends_with(&format!(":{}", u64::MAX)));
    }
    assert_ne!(
        deduplication_id(&"x".repeat(300), 1),
        deduplication_id(&"x".repeat(301), 1)
    );
}

// ---- The handler end to end, against in-memory ports. ----

fn tags_of(
    cluster: &str,
    region: &str,
    namespace: &str,
    name: &str,
) -> (String, BTreeMap<String, String>) {
    let cluster = ClusterRef::new(
        ClusterName::new(cluster),
        AccountId::new(ACCOUNT),
        Region::new(region),
    );
    let sa: ServiceAccountRef = service_account_ref(namespace, name);
    (
        role_name(&cluster.name, &sa).to_string(),
        role_tags(&cluster, &sa, [], &BTreeSet::new()),
    )
}

fn context(iam: FakeIam, store: FakeStore) -> Context<FakeIam, FakeStore, FakeQueue> {
    Context {
        iam,
        store,
        queue: FakeQueue::default(),
        iam_path: "/eks-intents/".into(),
        region: REGION.into(),
        system_roles: system(),
        window_seconds: 60,
        now: noon,
    }
}

/// `intents/demo/` with a `jokes/` folder.
fn demo_with_jokes() -> FakeStore {
    let mut store = FakeStore::default();
    store.levels.insert(
        "intents/demo/".into(),
        StoreLevel {
            prefixes: vec![
                "intents/demo/jokes/".into(),
                "intents/demo/kube-system/".into(),
            ],
            objects: vec![],
        },
    );
    store
}

#[tokio::test]
async fn a_hand_edit_of_an_owned_role_reconciles_its_cluster() {
    let mut iam = FakeIam::default();
    let (name, tags) = tags_of("demo", REGION, "jokes", "joke-worker");
    assert_eq!(name, "demo.jokes.joke-worker");
    iam.tags.insert(name, tags);
    let ctx = context(iam, FakeStore::default());
    let response = handle(&ctx, &sample("cloudtrail-iam-put-role-policy.json"))
        .await
        .unwrap();
    let sent = ctx.queue.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].message.cluster, "demo");
    assert_eq!(sent[0].deduplication_id, "events:demo:29928240");
    assert_eq!(sent[0].message.not_before, Some(1_795_694_460));
    assert_eq!(
        sent[0].message.reason,
        format!("iam PutRolePolicy on demo.jokes.joke-worker by {HUMAN}")
    );
    assert_eq!(response.reconciles, sent);
    assert!(response.ignored.is_empty());
    assert_eq!(*ctx.iam.asked.lock().unwrap(), ["demo.jokes.joke-worker"]);
    assert!(ctx.store.listed.lock().unwrap().is_empty());
}

#[tokio::test]
async fn roles_that_are_not_ours_or_not_here_reconcile_nothing() {
    let mut iam = FakeIam::default();
    // Someone else's role with the same shape of name.
    iam.tags.insert(
        "demo.jokes.joke-worker".into(),
        BTreeMap::from([("team".into(), "jokes".into())]),
    );
    let ctx = context(iam, FakeStore::default());
    let response = handle(&ctx, &sample("cloudtrail-iam-put-role-policy.json"))
        .await
        .unwrap();
    assert!(ctx.queue.batches.lock().unwrap().is_empty());
    assert!(
        response.ignored[0].why.contains("not the system's"),
        "{response:?}"
    );

    // Ours, but for a cluster of another region.
    let mut iam = FakeIam::default();
    let (_, tags) = tags_of("demo", "us-east-1", "jokes", "joke-worker");
    iam.tags.insert("demo.jokes.joke-worker".into(), tags);
    let ctx = context(iam, FakeStore::default());
    let response = handle(&ctx, &sample("cloudtrail-iam-put-role-policy.json"))
        .await
        .unwrap();
    assert!(ctx.queue.batches.lock().unwrap().is_empty());
    assert!(
        response.ignored[0].why.contains("region us-east-1"),
        "{response:?}"
    );

    // Gone since: the DeleteRole event speaks for it.
    let ctx = context(FakeIam::default(), FakeStore::default());
    let response = handle(&ctx, &sample("cloudtrail-iam-put-role-policy.json"))
        .await
        .unwrap();
    assert!(ctx.queue.batches.lock().unwrap().is_empty());
    assert!(
        response.ignored[0].why.contains("no longer exists"),
        "{response:?}"
    );
}

#[tokio::test]
async fn a_deleted_role_reconciles_the_cluster_its_name_gives() {
    let ctx = context(FakeIam::default(), FakeStore::default());
    handle(&ctx, &sample("cloudtrail-iam-delete-role.json"))
        .await
        .unwrap();
    let sent = ctx.queue.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].message.cluster, "demo");
    assert!(ctx.iam.asked.lock().unwrap().is_empty(), "no tags to read");
}

#[tokio::test]
async fn an_eks_call_reconciles_its_cluster_without_asking_anything() {
    let ctx = context(FakeIam::default(), FakeStore::default());
    let response = handle(&ctx, &sample("cloudtrail-eks-create-cluster.json"))
        .await
        .unwrap();
    assert_eq!(response.reconciles.len(), 1);
    assert_eq!(ctx.queue.sent(), response.reconciles);
    assert_eq!(
        response.reconciles[0].message.reason,
        format!("eks CreateCluster by {HUMAN}")
    );
    assert!(ctx.iam.asked.lock().unwrap().is_empty());
    assert!(ctx.store.listed.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_new_workload_in_a_namespace_with_intents_reconciles_once() {
    let ctx = context(FakeIam::default(), demo_with_jokes());
    let response = handle(&ctx, &sample("cloudwatch-logs-audit.json"))
        .await
        .unwrap();
    let sent = ctx.queue.sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].message.cluster, "demo");
    assert_eq!(sent[0].deduplication_id, "events:demo:29928240");
    assert_eq!(sent[0].message.not_before, Some(1_795_694_460));
    assert_eq!(
        sent[0].message.reason,
        format!("audit create serviceaccounts jokes/joke-worker by {HUMAN} (and 1 more)")
    );
    assert_eq!(*ctx.store.listed.lock().unwrap(), ["intents/demo/"]);
    assert!(response.ignored.is_empty());
}

#[tokio::test]
async fn a_hundred_events_of_one_cluster_make_one_request_and_one_listing() {
    let events: Vec<Value> = (0..100)
        .map(|i| {
            audit(
                "patch",
                "apps",
                "deployments",
                "jokes",
                &format!("w{i}"),
                "alice",
            )
        })
        .collect();
    let ctx = context(FakeIam::default(), demo_with_jokes());
    handle(&ctx, &awslogs("/aws/eks/demo/cluster", &events))
        .await
        .unwrap();
    assert_eq!(ctx.queue.sent().len(), 1);
    assert_eq!(
        ctx.queue.sent()[0].message.reason,
        "audit patch deployments jokes/w0 by alice (and 99 more)"
    );
    assert_eq!(ctx.store.listed.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn namespaces_without_intents_reconcile_nothing() {
    let ctx = context(FakeIam::default(), demo_with_jokes());
    let events: Vec<Value> = (0..3)
        .map(|i| {
            audit(
                "create",
                "apps",
                "deployments",
                "default",
                &format!("w{i}"),
                "alice",
            )
        })
        .collect();
    let response = handle(&ctx, &awslogs("/aws/eks/demo/cluster", &events))
        .await
        .unwrap();
    assert!(ctx.queue.batches.lock().unwrap().is_empty());
    assert_eq!(
        response.ignored.len(),
        1,
        "counted, not listed: {response:?}"
    );
    assert_eq!(response.ignored[0].count, 3);
    assert_eq!(
        response.ignored[0].why,
        "namespace default of cluster demo has no intents"
    );

    // A bundle at the cluster level can name any namespace.
    let mut store = demo_with_jokes();
    store
        .levels
        .get_mut("intents/demo/")
        .unwrap()
        .objects
        .push(BundleObject {
            key: "intents/demo/platform.yaml".into(),
            etag: None,
            version: None,
            size: 100,
        });
    let ctx = context(FakeIam::default(), store);
    handle(&ctx, &awslogs("/aws/eks/demo/cluster", &events))
        .await
        .unwrap();
    assert_eq!(ctx.queue.sent().len(), 1);
}

#[tokio::test]
async fn the_system_s_own_audit_events_list_and_send_nothing() {
    let events = [
        audit(
            "patch",
            "",
            "serviceaccounts",
            "jokes",
            "joke-worker",
            RECONCILER_SESSION,
        ),
        audit(
            "patch",
            "apps",
            "deployments",
            "jokes",
            "joke-worker",
            RECONCILER_SESSION,
        ),
    ];
    let ctx = context(FakeIam::default(), demo_with_jokes());
    let response = handle(&ctx, &awslogs("/aws/eks/demo/cluster", &events))
        .await
        .unwrap();
    assert!(ctx.queue.batches.lock().unwrap().is_empty());
    assert!(ctx.store.listed.lock().unwrap().is_empty());
    assert_eq!(response.ignored.len(), 1);
    assert_eq!(response.ignored[0].count, 2);
}

#[tokio::test]
async fn malformed_payloads_are_answered_not_failed() {
    let ctx = context(FakeIam::default(), demo_with_jokes());
    for event in [
        json!({"awslogs": {"data": "%%%"}}),
        json!({"awslogs": {"data": encode(b"[1, 2")}}),
        json!(null),
        json!([1, 2, 3]),
    ] {
        let response = handle(&ctx, &event).await.unwrap();
        assert!(response.reconciles.is_empty());
        assert_eq!(response.ignored.len(), 1, "{response:?}");
    }
    assert!(ctx.queue.batches.lock().unwrap().is_empty());
}

/// The functions may read roles under the system's path only: a hand edit of any other role
/// of the account is someone else's business, not an error.
#[tokio::test]
async fn a_role_the_function_may_not_read_is_not_ours() {
    let ctx = context(
        FakeIam {
            denied: vec!["demo.jokes.joke-worker".into()],
            ..FakeIam::default()
        },
        FakeStore::default(),
    );
    let response = handle(&ctx, &sample("cloudtrail-iam-put-role-policy.json"))
        .await
        .unwrap();
    assert!(response.reconciles.is_empty());
    assert!(ctx.queue.batches.lock().unwrap().is_empty());
    assert_eq!(response.ignored.len(), 1, "{response:?}");
    assert!(
        response.ignored[0]
            .why
            .contains("outside the system's IAM path"),
        "{response:?}"
    );
}

#[tokio::test]
async fn a_port_that_fails_fails_the_invocation() {
    let ctx = context(
        FakeIam {
            fail: true,
            ..FakeIam::default()
        },
        FakeStore::default(),
    );
    let error = handle(&ctx, &sample("cloudtrail-iam-put-role-policy.json"))
        .await
        .unwrap_err();
    assert!(error.is_retryable(), "{error}");
    let error = error.to_string();
    assert!(
        error.contains("demo.jokes.joke-worker") && error.contains("Throttling"),
        "{error}"
    );
    assert!(ctx.queue.batches.lock().unwrap().is_empty());
}

#[test]
fn metrics_count_requests_and_ignored_events() {
    let response = Response {
        reconciles: vec![windowed("demo", &["x".into()], 1_795_000_000, 60)],
        ignored: vec![Ignored {
            what: "e".into(),
            why: "not ours".into(),
            count: 7,
        }],
    };
    let values = metrics(&Ok(response)).values;
    assert_eq!(values["ReconcilesRequested"].0, 1.0);
    assert_eq!(values["EventsIgnored"].0, 7.0);
    let error = EventsError::Send(SendError {
        count: 1,
        source: PortError::new("sqs", "SendMessageBatch", ErrorKind::Transient, "sqs down"),
    });
    assert_eq!(metrics(&Err(error)).values["Errors"].0, 1.0);
}

/// `EKS_INTENTS_ACCOUNT_ROLES` with an entry for account 222222222222.
fn east_roles() -> AccountRoles {
    let vars = BTreeMap::from([
        ("EKS_INTENTS_BUCKET", "b".to_owned()),
        (
            eks_intents::config::ACCOUNT_ROLES,
            r#"{"222222222222": "arn:aws:iam::222222222222:role/eks-intents-account"}"#.to_owned(),
        ),
        (
            eks_intents::config::ACCOUNT_ROLE_EXTERNAL_ID,
            "eks-intents-7f3a".to_owned(),
        ),
    ]);
    eks_intents::config::Config::from_lookup(|name| vars.get(name).cloned())
        .expect("configuration")
        .accounts
}

/// The EKS sample, as it arrives from `account`, by `caller` (a session ARN).
fn eks_call_in(account: &str, caller: Option<&str>) -> Value {
    let mut event = sample("cloudtrail-eks-create-pod-identity-association.json");
    event["account"] = json!(account);
    if let Some(caller) = caller {
        event["detail"]["userIdentity"]["arn"] = json!(caller);
        event["detail"]["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"] = json!(
            caller
                .replace(":sts:", ":iam:")
                .replace("assumed-role/", "role/")
                .rsplit_once('/')
                .map(|(r, _)| r.to_owned())
                .unwrap_or_default()
        );
    }
    event
}

#[tokio::test]
async fn an_event_of_another_account_asks_for_a_reconcile_in_that_account() {
    let in_accounts = |ctx| InAccounts {
        home: ctx,
        accounts: east_roles(),
    };
    let ctx = in_accounts(context(FakeIam::default(), FakeStore::default()));
    handle_in_accounts(&ctx, &eks_call_in("222222222222", None))
        .await
        .unwrap();
    let sent = ctx.home.queue.sent();
    assert_eq!(sent[0].message.cluster, "demo");
    assert_eq!(sent[0].message.account.as_deref(), Some("222222222222"));
    // The group and the deduplication stay the cluster's.
    assert_eq!(sent[0].deduplication_id, "events:demo:29928240");

    // An event of the deployment's own account, or of an account without an entry, names none.
    for account in [ACCOUNT, "444444444444"] {
        let ctx = in_accounts(context(FakeIam::default(), FakeStore::default()));
        handle_in_accounts(&ctx, &eks_call_in(account, None))
            .await
            .unwrap();
        assert_eq!(ctx.home.queue.sent()[0].message.account, None, "{account}");
    }

    // The system's own writes there (through the account's role) trigger nothing.
    let ctx = in_accounts(context(FakeIam::default(), FakeStore::default()));
    let own = "arn:aws:sts::222222222222:assumed-role/eks-intents-account/eks-intents";
    let response = handle_in_accounts(&ctx, &eks_call_in("222222222222", Some(own)))
        .await
        .unwrap();
    assert!(ctx.home.queue.sent().is_empty());
    assert!(
        response.ignored[0].why.contains("the system's own role"),
        "{response:?}"
    );

    // Without account roles, the message is what it always was.
    let ctx = context(FakeIam::default(), FakeStore::default());
    handle(&ctx, &eks_call_in("222222222222", None))
        .await
        .unwrap();
    let body = serde_json::to_value(&ctx.queue.sent()[0].message).unwrap();
    assert_eq!(body.get("account"), None, "{body}");
}

/// An IAM event of another account may be about a workload's target role there, whose cluster
/// is in yet another account: it names no account, and the role's name tells the cluster (its
/// tags are in that account, out of the deployment's own IAM's reach).
#[tokio::test]
async fn an_iam_event_of_another_account_names_the_cluster_of_the_role_but_no_account() {
    let ctx = InAccounts {
        home: context(FakeIam::default(), FakeStore::default()),
        accounts: east_roles(),
    };
    let mut event = sample("cloudtrail-iam-put-role-policy.json");
    event["account"] = json!("222222222222");
    let role = event["detail"]["requestParameters"]["roleName"]
        .as_str()
        .expect("the sample names a role")
        .to_owned();
    handle_in_accounts(&ctx, &event).await.unwrap();
    let sent = ctx.home.queue.sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        Some(sent[0].message.cluster.as_str()),
        cluster_of_role_name(&role)
    );
    assert_eq!(sent[0].message.account, None);
    // The deployment's own IAM was not asked: the role is not there.
    assert!(ctx.home.iam.asked.lock().unwrap().is_empty());
}
