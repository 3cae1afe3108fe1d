//! Kubernetes requests at fleet scale, counted at the local API server: one LIST per kind
//! across the cluster once there are several namespaces (per namespace for one), and one
//! server-side apply plus one Event per binding, never a GET of a ServiceAccount.

use eks_intents::adapters::kube::ListStrategy;
use eks_intents::model::{BindingMode, Namespace, RoleArn, Takeover};
use eks_intents::ports::{EksPort, KubernetesConnector, KubernetesPort};
use integration::scenario::*;
use std::collections::{BTreeMap, BTreeSet};

const KINDS: [&str; 6] = [
    "serviceaccounts",
    "deployments",
    "statefulsets",
    "daemonsets",
    "jobs",
    "cronjobs",
];

/// Requests by `"{verb} {plural}"` since the last call, and clears them.
async fn take_requests(w: &World<LocalCluster>) -> BTreeMap<String, u64> {
    integration::fleet::take_kubernetes_requests(&w.reconciler.kube.server).await
}

fn intents(name: &str) -> Vec<u8> {
    format!(
        "apiVersion: k8s.otterize.com/v1alpha3\nkind: ClientIntents\nmetadata:\n  name: {name}\n\
         spec:\n  service:\n    name: {name}\n  calls:\n  - name: \"*\"\n    type: aws\n    \
         awsActions:\n        - \"dynamodb:GetItem\"\n"
    )
    .into_bytes()
}

/// `count` team namespaces, each with one Deployment on its own ServiceAccount and an intents
/// bundle for it, uploaded and queued.
async fn fleet(count: usize) -> World<LocalCluster> {
    let w = world(BindingMode::Irsa, local_cluster(CLUSTER, true)).await;
    let admin = w.reconciler.kube.server.admin_client();
    for i in 0..count {
        let ns = format!("team-{i:02}");
        let api: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(admin.clone());
        api.create(
            &kube::api::PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).unwrap(),
        )
        .await
        .expect("namespace");
        let app = format!("app-{i:02}");
        create_service_account(&admin, &ns, &app).await;
        create_deployment(&admin, &ns, &app, &app).await;
        let key = format!("intents/{CLUSTER}/{ns}/{app}.yaml");
        w.put(&key, intents(&app)).await;
        let response = w.notify(&key, false).await;
        assert!(response.invalid.is_empty(), "{key}: {response:?}");
    }
    w
}

fn count(requests: &BTreeMap<String, u64>, key: &str) -> u64 {
    requests.get(key).copied().unwrap_or_default()
}

#[tokio::test]
async fn ten_namespaces_are_listed_once_per_kind_and_bound_with_one_apply_and_one_event_each() {
    let w = fleet(10).await;
    take_requests(&w).await;
    w.run_reconciler().await;
    let requests = take_requests(&w).await;

    // Six LISTs across the cluster, none per namespace.
    for kind in KINDS {
        assert_eq!(
            count(&requests, &format!("list {kind} (all namespaces)")),
            1,
            "{requests:#?}"
        );
        assert_eq!(
            count(&requests, &format!("list {kind}")),
            0,
            "{requests:#?}"
        );
    }
    // One apply and one Event per ServiceAccount bound, and no GET of a ServiceAccount.
    assert_eq!(
        count(&requests, "apply serviceaccounts"),
        10,
        "{requests:#?}"
    );
    assert_eq!(count(&requests, "create events"), 10, "{requests:#?}");
    assert_eq!(count(&requests, "get serviceaccounts"), 0, "{requests:#?}");
    let lists: u64 = requests
        .iter()
        .filter(|(k, _)| k.starts_with("list "))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(lists, 6, "{requests:#?}");
    // The status's call counts say how the kinds were listed.
    let status = w.status().await;
    assert_eq!(
        status["api_calls"]["kubernetes:LIST (cluster-wide)"].as_u64(),
        Some(6),
        "{:#}",
        status["api_calls"]
    );

    // Every binding is there, and its Event names the ServiceAccount by uid.
    let admin = w.reconciler.kube.server.admin_client();
    for i in 0..10 {
        let ns = format!("team-{i:02}");
        let app = format!("app-{i:02}");
        let sa: k8s_openapi::api::core::v1::ServiceAccount =
            kube::Api::namespaced(admin.clone(), &ns)
                .get(&app)
                .await
                .expect("service account");
        assert!(
            sa.metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key("eks.amazonaws.com/role-arn")),
            "{ns}/{app}: {sa:?}"
        );
        let events: kube::api::ObjectList<k8s_openapi::api::core::v1::Event> =
            kube::Api::namespaced(admin.clone(), &ns)
                .list(&kube::api::ListParams::default())
                .await
                .expect("events");
        assert_eq!(events.items.len(), 1, "{ns}: {events:?}");
        assert_eq!(events.items[0].involved_object.uid, sa.metadata.uid);
    }
}

#[tokio::test]
async fn both_strategies_see_the_same_workloads_and_service_accounts() {
    let w = fleet(10).await;
    let cluster = w.reconciler.eks.describe_cluster(CLUSTER).await.unwrap();
    let port = w.reconciler.kube.connect(&cluster).await.unwrap();
    let namespaces: BTreeSet<Namespace> = (0..10)
        .map(|i| format!("team-{i:02}").as_str().into())
        .chain(["jokes".into()])
        .collect();
    let per_namespace = port
        .snapshot_with(ListStrategy::PerNamespace, &namespaces)
        .await
        .unwrap();
    let cluster_wide = port
        .snapshot_with(ListStrategy::ClusterWide, &namespaces)
        .await
        .unwrap();
    assert_eq!(per_namespace.workloads, cluster_wide.workloads);
    assert_eq!(
        per_namespace.service_accounts,
        cluster_wide.service_accounts
    );
    // Each says how it listed.
    assert_eq!(
        per_namespace.lists,
        BTreeMap::from([(
            "kubernetes:LIST (per-namespace)".to_owned(),
            (KINDS.len() * namespaces.len()) as u64
        )])
    );
    assert_eq!(
        cluster_wide.lists,
        BTreeMap::from([(
            "kubernetes:LIST (cluster-wide)".to_owned(),
            KINDS.len() as u64
        )])
    );
    // Nothing outside the wanted namespaces, everything inside them.
    assert_eq!(per_namespace.workloads.len(), 12, "{per_namespace:#?}");
    assert!(
        cluster_wide
            .service_accounts
            .iter()
            .all(|sa| namespaces.contains(&sa.namespace))
    );
    take_requests(&w).await;
    assert_eq!(port.snapshot(&namespaces).await.unwrap(), cluster_wide);
    assert_eq!(
        port.last_snapshot(),
        Some((ListStrategy::ClusterWide, KINDS.len()))
    );
}

#[tokio::test]
async fn one_namespace_keeps_per_namespace_lists() {
    let w = fleet(1).await;
    take_requests(&w).await;
    w.run_reconciler().await;
    let requests = take_requests(&w).await;
    for kind in KINDS {
        assert_eq!(
            count(&requests, &format!("list {kind}")),
            1,
            "{requests:#?}"
        );
        assert_eq!(
            count(&requests, &format!("list {kind} (all namespaces)")),
            0,
            "{requests:#?}"
        );
    }
    assert_eq!(
        count(&requests, "apply serviceaccounts"),
        1,
        "{requests:#?}"
    );
    assert_eq!(count(&requests, "create events"), 1, "{requests:#?}");
    assert_eq!(count(&requests, "get serviceaccounts"), 0, "{requests:#?}");
    let status = w.status().await;
    assert_eq!(
        status["api_calls"]["kubernetes:LIST (per-namespace)"].as_u64(),
        Some(6),
        "{:#}",
        status["api_calls"]
    );
}

#[tokio::test]
async fn a_service_account_deleted_since_the_snapshot_is_not_created_by_the_apply() {
    let w = fleet(2).await;
    let cluster = w.reconciler.eks.describe_cluster(CLUSTER).await.unwrap();
    let port = w.reconciler.kube.connect(&cluster).await.unwrap();
    let namespaces: BTreeSet<Namespace> = ["team-00".into(), "team-01".into()].into();
    port.snapshot(&namespaces).await.unwrap();
    let admin = w.reconciler.kube.server.admin_client();
    let accounts: kube::Api<k8s_openapi::api::core::v1::ServiceAccount> =
        kube::Api::namespaced(admin, "team-00");
    accounts
        .delete("app-00", &kube::api::DeleteParams::default())
        .await
        .expect("delete");
    take_requests(&w).await;

    let id = eks_intents::model::ServiceAccountRef {
        namespace: "team-00".into(),
        name: "app-00".into(),
    };
    let error = port
        .annotate_service_account(&id, &RoleArn::new(role_arn("app-00")), Takeover::Never)
        .await
        .expect_err("the ServiceAccount is gone");
    assert_eq!(
        error.kind,
        eks_intents::ports::ErrorKind::NotFound,
        "{error}"
    );
    assert!(accounts.get_opt("app-00").await.unwrap().is_none());
    // The next attempt knows it is gone: no request at all.
    take_requests(&w).await;
    port.annotate_service_account(&id, &RoleArn::new(role_arn("app-00")), Takeover::Never)
        .await
        .expect_err("still gone");
    assert_eq!(take_requests(&w).await, BTreeMap::new());
    // Absent from the snapshot: refused without a request.
    let missing = eks_intents::model::ServiceAccountRef {
        namespace: "team-01".into(),
        name: "nobody".into(),
    };
    port.annotate_service_account(&missing, &RoleArn::new(role_arn("nobody")), Takeover::Never)
        .await
        .expect_err("never existed");
    assert_eq!(take_requests(&w).await, BTreeMap::new());
}

#[tokio::test]
async fn a_list_across_the_cluster_follows_continue_past_1000_objects() {
    let w = fleet(2).await;
    let admin = w.reconciler.kube.server.admin_client();
    for i in 0..1000 {
        create_service_account(&admin, "team-01", &format!("extra-{i:04}")).await;
    }
    let cluster = w.reconciler.eks.describe_cluster(CLUSTER).await.unwrap();
    let port = w.reconciler.kube.connect(&cluster).await.unwrap();
    let namespaces: BTreeSet<Namespace> = ["team-00".into(), "team-01".into()].into();
    take_requests(&w).await;
    let cluster_wide = port.snapshot(&namespaces).await.unwrap();
    // ServiceAccounts take two pages (1,000 and the rest), every other kind one.
    assert_eq!(
        port.last_snapshot(),
        Some((ListStrategy::ClusterWide, KINDS.len() + 1))
    );
    let requests = take_requests(&w).await;
    assert_eq!(
        count(&requests, "list serviceaccounts (all namespaces)"),
        2,
        "{requests:#?}"
    );
    // team-00: default + app-00; team-01: default + app-01 + 1,000 more.
    assert_eq!(cluster_wide.service_accounts.len(), 1004);
    let per_namespace = port
        .snapshot_with(ListStrategy::PerNamespace, &namespaces)
        .await
        .unwrap();
    assert!(per_namespace.workloads == cluster_wide.workloads);
    assert!(per_namespace.service_accounts == cluster_wide.service_accounts);
    assert_eq!(
        cluster_wide.lists.get("kubernetes:LIST (cluster-wide)"),
        Some(&((KINDS.len() + 1) as u64))
    );
}
