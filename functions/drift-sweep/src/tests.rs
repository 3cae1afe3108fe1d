//! The sweep end to end against small in-memory ports: what it sends, and what it refuses.

use super::*;
use eks_intents::model::{ClusterName, ClusterRef, ObservedRole, Region, RoleArn, RoleName};
use eks_intents::policy::{PolicyDocument, role_name, role_tags};
use eks_intents::ports::{BundleObject, ErrorKind, StoreLevel};
use eks_intents::testing::{FakeEks, FakeIam, FakeQueue, FakeStore, service_account_ref};
use std::collections::{BTreeMap, BTreeSet};

const REGION: &str = "eu-west-2";
const ACCOUNT: &str = "123456789012";
/// 2026-11-26T12:00:42Z
const NOON: u64 = 1_795_694_442;

fn noon() -> u64 {
    NOON
}

fn sample(name: &str) -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/");
    let text = std::fs::read_to_string(format!("{path}{name}")).expect("sample exists");
    serde_json::from_str(&text).expect("sample is JSON")
}

/// A bucket whose top level `intents/` holds these folders (and a README).
fn bundles(prefixes: &[&str]) -> FakeStore {
    let level = StoreLevel {
        prefixes: prefixes.iter().map(|p| p.to_string()).collect(),
        objects: vec![BundleObject {
            key: "intents/README.md".into(),
            etag: None,
            version: None,
            size: 10,
        }],
    };
    FakeStore {
        levels: BTreeMap::from([("intents/".to_owned(), level)]),
        ..FakeStore::default()
    }
}

/// An owned role of `cluster` in `region`, as the reconciler tags it.
fn owned_role(cluster: &str, region: &str, namespace: &str, name: &str) -> ObservedRole {
    owned_role_in(ACCOUNT, cluster, region, namespace, name)
}

/// An owned role of `cluster` of `account`.
fn owned_role_in(
    account: &str,
    cluster: &str,
    region: &str,
    namespace: &str,
    name: &str,
) -> ObservedRole {
    let cluster = ClusterRef::new(
        ClusterName::new(cluster),
        eks_intents::model::AccountId::new(account),
        Region::new(region),
    );
    let sa = service_account_ref(namespace, name);
    let role = role_name(&cluster.name, &sa);
    ObservedRole {
        arn: RoleArn::new(format!(
            "arn:aws:iam::{}:role/eks-intents/{}/{role}",
            cluster.account, cluster.name
        )),
        path: format!("/eks-intents/{}/", cluster.name),
        name: role,
        trust_policy: PolicyDocument::from_text("{}"),
        inline_policies: BTreeMap::new(),
        attached_policies: BTreeSet::new(),
        permissions_boundary: None,
        tags: role_tags(&cluster, &sa, [], &BTreeSet::new()),
    }
}

fn foreign_role(name: &str, tags: &[(&str, &str)]) -> ObservedRole {
    ObservedRole {
        name: RoleName::new(name),
        arn: RoleArn::new(format!("arn:aws:iam::{ACCOUNT}:role/eks-intents/{name}")),
        path: "/eks-intents/".into(),
        trust_policy: PolicyDocument::from_text("{}"),
        inline_policies: BTreeMap::new(),
        attached_policies: BTreeSet::new(),
        permissions_boundary: None,
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn context(
    store: FakeStore,
    iam: FakeIam,
    eks: FakeEks,
    list_clusters: bool,
) -> Context<FakeStore, FakeIam, FakeEks, FakeQueue> {
    Context {
        store,
        iam,
        eks,
        queue: FakeQueue::default(),
        iam_path: "/eks-intents/".into(),
        region: REGION.into(),
        list_clusters,
        now: noon,
    }
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(future)
}

#[test]
fn the_schedule_samples_name_their_tick() {
    let scheduled = sample("schedule-eventbridge.json");
    assert_eq!(scheduled["detail-type"], "Scheduled Event");
    assert_eq!(tick(&scheduled, 0), "2026-11-26T12:00");
    let scheduler = sample("schedule-scheduler.json");
    assert_eq!(scheduler, serde_json::json!({}));
    assert_eq!(tick(&scheduler, NOON), "2026-11-26T12:00");
}

#[test]
fn the_tick_is_the_minute_of_the_event_or_of_the_clock() {
    let at = |time: &str| tick(&serde_json::json!({ "time": time }), NOON);
    assert_eq!(at("2026-11-26T12:05:59Z"), "2026-11-26T12:05");
    assert_eq!(at("2026-11-26T12:05:00.123+00:00"), "2026-11-26T12:05");
    // Not a time: the clock decides.
    assert_eq!(at("yesterday"), "2026-11-26T12:00");
    assert_eq!(at("2026-11-26 12:05"), "2026-11-26T12:00");
    assert_eq!(
        tick(&serde_json::json!({ "time": 5 }), NOON),
        "2026-11-26T12:00"
    );
    assert_eq!(tick(&Value::Null, 0), "1970-01-01T00:00");
    // Leap days and the turn of a century.
    assert_eq!(minute_string(951_782_400), "2000-02-29T00:00");
    assert_eq!(minute_string(4_107_542_399), "2100-02-28T23:59");
    assert_eq!(minute_string(4_107_542_400), "2100-03-01T00:00");
}

#[test]
fn deduplication_ids_stay_within_sqs_rules() {
    assert_eq!(
        deduplication_id("demo", "2026-11-26T12:00"),
        "drift:demo:2026-11-26T12:00"
    );
    let longest = "c".repeat(100);
    let id = deduplication_id(&longest, "2026-11-26T12:00");
    assert_eq!(id, format!("drift:{longest}:2026-11-26T12:00"));
    assert!(id.len() <= 128);
    for odd in ["x".repeat(300), "team a".into(), "é".repeat(10)] {
        let id = deduplication_id(&odd, "2026-11-26T12:00");
        assert!(id.len() <= 128, "{id}");
        assert!(id.chars().all(|c| c.is_ascii_graphic()), "{id}");
        assert!(id.starts_with("drift:") && id.ends_with(":2026-11-26T12:00"));
        assert_eq!(id, deduplication_id(&odd, "2026-11-26T12:00"));
    }
    assert_ne!(
        deduplication_id(&"x".repeat(300), "t"),
        deduplication_id(&"x".repeat(301), "t")
    );
}

#[test]
fn every_source_is_swept_once_per_cluster() {
    let store = bundles(&["intents/a/", "intents/b/"]);
    let iam = FakeIam {
        roles: vec![
            owned_role("b", REGION, "jokes", "worker"),
            // Cluster c was deleted; its roles remain.
            owned_role("c", REGION, "jokes", "worker"),
            owned_role("c", REGION, "jokes", "reader"),
            // Another region's cluster: that region's deployment sweeps it.
            owned_role("d", "us-east-1", "jokes", "worker"),
            // Not ours, whatever its tags say about a cluster.
            foreign_role(
                "someone-else",
                &[(CLUSTER_TAG, "arn:aws:eks:eu-west-2:123456789012:cluster/e")],
            ),
        ],
        ..FakeIam::default()
    };
    let eks = FakeEks {
        clusters: vec!["a".into(), "f".into()],
        ..FakeEks::default()
    };
    let ctx = context(store, iam, eks, false);
    let event = sample("schedule-eventbridge.json");
    let response = block_on(handle(&ctx, &event)).expect("sweep");

    let sent = ctx.queue.sent();
    assert_eq!(ctx.queue.batches.lock().unwrap().len(), 1, "one batch call");
    let ids: Vec<&str> = sent.iter().map(|m| m.deduplication_id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "drift:a:2026-11-26T12:00",
            "drift:b:2026-11-26T12:00",
            "drift:c:2026-11-26T12:00"
        ]
    );
    for message in &sent {
        assert_eq!(message.message.reason, "drift");
        assert_eq!(message.message.not_before, None);
    }
    assert_eq!(
        sent.iter()
            .map(|m| m.message.cluster.as_str())
            .collect::<Vec<_>>(),
        ["a", "b", "c"]
    );
    assert_eq!(*ctx.store.listed.lock().unwrap(), ["intents/"]);
    assert_eq!(*ctx.iam.paths.lock().unwrap(), ["/eks-intents/"]);
    assert_eq!(*ctx.eks.calls.lock().unwrap(), 0, "ListClusters is off");

    let sources: Vec<(&str, &[Source])> = response
        .clusters
        .iter()
        .map(|c| (c.cluster.as_str(), c.sources.as_slice()))
        .collect();
    assert_eq!(
        sources,
        [
            ("a", &[Source::Bundles][..]),
            ("b", &[Source::Bundles, Source::RoleTags][..]),
            ("c", &[Source::RoleTags][..]),
        ]
    );
    assert_eq!(response.tick, "2026-11-26T12:00");
    assert_eq!(response.skipped.len(), 1, "{:?}", response.skipped);
    assert!(response.skipped[0].what.contains("cluster/d"));
    assert!(response.skipped[0].why.contains("us-east-1"));
}

#[test]
fn the_region_s_clusters_are_swept_when_asked() {
    let store = bundles(&["intents/a/"]);
    let eks = FakeEks {
        clusters: vec!["a".into(), "f".into()],
        ..FakeEks::default()
    };
    let ctx = context(store, FakeIam::default(), eks, true);
    // EventBridge Scheduler's `{}`: the clock names the tick.
    let response = block_on(handle(&ctx, &sample("schedule-scheduler.json"))).expect("sweep");
    assert_eq!(*ctx.eks.calls.lock().unwrap(), 1);
    let sent: Vec<(String, String)> = ctx
        .queue
        .sent()
        .into_iter()
        .map(|m| (m.message.cluster, m.deduplication_id))
        .collect();
    assert_eq!(
        sent,
        [
            ("a".into(), "drift:a:2026-11-26T12:00".into()),
            ("f".into(), "drift:f:2026-11-26T12:00".into())
        ]
    );
    assert_eq!(
        response.clusters[0].sources,
        [Source::Bundles, Source::EksClusters]
    );
    assert_eq!(response.clusters[1].sources, [Source::EksClusters]);
}

#[test]
fn names_no_queue_can_carry_are_skipped_not_sent() {
    let long = "x".repeat(101);
    let store = bundles(&[
        "intents/ok/",
        "intents/team a/",
        &format!("intents/{long}/"),
    ]);
    let iam = FakeIam {
        roles: vec![foreign_role(
            "half-ours",
            &[(OWNER_TAG, OWNER_VALUE), (CLUSTER_TAG, "not-an-arn")],
        )],
        ..FakeIam::default()
    };
    let ctx = context(store, iam, FakeEks::default(), false);
    let response = block_on(handle(&ctx, &Value::Null)).expect("sweep");
    let sent = ctx.queue.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].message.cluster, "ok");
    let skipped: Vec<&str> = response.skipped.iter().map(|s| s.what.as_str()).collect();
    assert!(skipped.contains(&"role half-ours"), "{skipped:?}");
    assert!(skipped.contains(&"cluster \"team a\""), "{skipped:?}");
    assert!(skipped.iter().any(|s| s.contains(&long)), "{skipped:?}");
}

#[test]
fn nothing_to_sweep_sends_nothing() {
    let ctx = context(
        FakeStore::default(),
        FakeIam::default(),
        FakeEks::default(),
        false,
    );
    let response = block_on(handle(&ctx, &serde_json::json!({}))).expect("sweep");
    assert!(response.clusters.is_empty());
    assert!(ctx.queue.batches.lock().unwrap().is_empty());
}

#[test]
fn a_source_that_fails_fails_the_sweep_and_is_named() {
    let ctx = context(
        FakeStore {
            fail: true,
            ..FakeStore::default()
        },
        FakeIam::default(),
        FakeEks::default(),
        false,
    );
    let error = block_on(handle(&ctx, &Value::Null))
        .unwrap_err()
        .to_string();
    assert!(error.starts_with("source bundles"), "{error}");
    assert!(error.contains("AccessDenied"), "{error}");
    assert!(ctx.queue.batches.lock().unwrap().is_empty());

    let ctx = context(
        bundles(&["intents/a/"]),
        FakeIam {
            fail: true,
            ..FakeIam::default()
        },
        FakeEks::default(),
        false,
    );
    let error = block_on(handle(&ctx, &Value::Null))
        .unwrap_err()
        .to_string();
    assert!(error.starts_with("source role tags"), "{error}");
    assert!(error.contains("/eks-intents/"), "{error}");
    assert!(
        ctx.queue.batches.lock().unwrap().is_empty(),
        "a partial sweep sends nothing"
    );
}

#[test]
fn the_response_says_where_each_cluster_came_from() {
    let response = Response {
        tick: "2026-11-26T12:00".into(),
        clusters: vec![SweptCluster {
            cluster: "c".into(),
            sources: vec![Source::RoleTags, Source::EksClusters],
            deduplication_id: "drift:c:2026-11-26T12:00".into(),
            account: None,
        }],
        skipped: vec![],
    };
    assert_eq!(
        serde_json::to_value(&response).unwrap(),
        serde_json::json!({
            "tick": "2026-11-26T12:00",
            "clusters": [{"cluster": "c", "sources": ["role-tags", "eks-clusters"],
                          "deduplication_id": "drift:c:2026-11-26T12:00"}]
        })
    );
}

#[test]
fn prefixes_give_cluster_names() {
    assert_eq!(cluster_of_prefix("intents/demo/"), Some("demo"));
    assert_eq!(cluster_of_prefix("intents//"), None);
    assert_eq!(cluster_of_prefix("intents/demo"), None);
    assert_eq!(cluster_of_prefix("status/demo/"), None);
}

#[test]
fn metrics_count_the_clusters_by_source() {
    let response = Response {
        tick: "2026-11-27T09:00".into(),
        clusters: vec![
            SweptCluster {
                cluster: "a".into(),
                sources: vec![Source::Bundles, Source::RoleTags],
                deduplication_id: "drift:a:2026-11-27T09:00".into(),
                account: None,
            },
            SweptCluster {
                cluster: "c".into(),
                sources: vec![Source::RoleTags],
                deduplication_id: "drift:c:2026-11-27T09:00".into(),
                account: None,
            },
        ],
        skipped: Vec::new(),
    };
    let values = metrics(&Ok(response)).values;
    assert_eq!(values["ClustersSwept"].0, 2.0);
    assert_eq!(values["ClustersFoundBy.Bundles"].0, 1.0);
    assert_eq!(values["ClustersFoundBy.RoleTags"].0, 2.0);
    assert_eq!(values["Errors"].0, 0.0);
    let error = SweepError::Bundles(PortError::new(
        "s3",
        "ListObjectsV2",
        ErrorKind::Transient,
        "s3 down",
    ));
    assert!(error.is_retryable());
    assert_eq!(metrics(&Err(error)).values["Errors"].0, 1.0);
}

/// Other accounts as the sweep reads them: by role, what it sees there (or why it cannot).
struct FakeAccounts(Vec<(String, RoleArn, Result<AccountView, String>)>);

impl SweepAccounts for FakeAccounts {
    fn accounts(&self) -> Vec<(String, RoleArn)> {
        self.0
            .iter()
            .map(|(a, r, _)| (a.clone(), r.clone()))
            .collect()
    }

    async fn read(&self, role: &RoleArn, iam_path: &str) -> PortResult<AccountView> {
        assert_eq!(iam_path, "/eks-intents/");
        match self.0.iter().find(|(_, r, _)| r == role).map(|(_, _, v)| v) {
            Some(Ok(view)) => Ok(view.clone()),
            Some(Err(why)) => Err(PortError::new("sts", "AssumeRole", ErrorKind::Denied, why)),
            None => panic!("unknown role {role}"),
        }
    }
}

#[test]
fn other_accounts_are_swept_through_their_roles_and_their_clusters_name_the_account() {
    let east = RoleArn::new("arn:aws:iam::222222222222:role/eks-intents-account");
    let west = RoleArn::new("arn:aws:iam::333333333333:role/eks-intents-account");
    let accounts = FakeAccounts(vec![
        (
            "222222222222".into(),
            east.clone(),
            Ok(AccountView {
                // A deleted cluster of that account, whose roles remain there.
                roles: vec![owned_role_in("222222222222", "gone", REGION, "jokes", "worker")],
                clusters: vec!["east-1".into(), "unmanaged".into(), "a".into()],
            }),
        ),
        (
            "333333333333".into(),
            west,
            Err("cannot assume the role arn:aws:iam::333333333333:role/eks-intents-account: AccessDenied".into()),
        ),
    ]);
    let sweep = |list_clusters: bool| {
        let ctx = InAccounts {
            home: context(
                bundles(&["intents/a/", "intents/east-1/", "intents/west-1/"]),
                FakeIam {
                    roles: vec![owned_role("a", REGION, "jokes", "worker")],
                    ..FakeIam::default()
                },
                FakeEks {
                    clusters: vec!["a".into()],
                    ..FakeEks::default()
                },
                list_clusters,
            ),
            accounts: FakeAccounts(accounts.0.clone()),
        };
        let response = block_on(handle_in_accounts(
            &ctx,
            &sample("schedule-eventbridge.json"),
        ))
        .expect("sweep");
        let sent: Vec<(String, Option<String>)> = ctx
            .home
            .queue
            .sent()
            .into_iter()
            .map(|m| (m.message.cluster, m.message.account))
            .collect();
        (response, sent)
    };
    let east_account = Some("222222222222".to_owned());
    let (response, sent) = sweep(false);
    assert_eq!(
        sent,
        [
            // Cluster a is at home (its roles are) and in account 222222222222 too: home wins
            // and the other is reported.
            ("a".into(), None),
            ("east-1".into(), east_account.clone()),
            ("gone".into(), east_account.clone()),
            ("west-1".into(), None),
        ]
    );
    let skipped: Vec<(&str, &str)> = response
        .skipped
        .iter()
        .map(|s| (s.what.as_str(), s.why.as_str()))
        .collect();
    assert!(
        skipped
            .iter()
            .any(|(what, why)| *what == "account 333333333333"
                && why.contains("cannot assume the role arn:aws:iam::333333333333")),
        "{skipped:?}"
    );
    assert!(
        skipped.iter().any(
            |(what, why)| what.contains("cluster a of account 222222222222")
                && why.contains("unique")
        ),
        "{skipped:?}"
    );
    let east_1 = &response.clusters[1];
    assert_eq!(east_1.account, east_account);
    assert_eq!(east_1.sources, [Source::Bundles]);
    // Asked to, the sweep also reconciles the account's clusters without bundles or roles.
    let (_, sent) = sweep(true);
    assert!(
        sent.contains(&("unmanaged".into(), east_account)),
        "{sent:?}"
    );
}

#[test]
fn without_account_roles_the_messages_name_no_account() {
    let ctx = context(
        bundles(&["intents/a/"]),
        FakeIam::default(),
        FakeEks::default(),
        false,
    );
    block_on(handle(&ctx, &sample("schedule-eventbridge.json"))).expect("sweep");
    let body = serde_json::to_string(&ctx.queue.sent()[0].message).unwrap();
    assert_eq!(body, r#"{"cluster":"a","reason":"drift"}"#);
}

#[test]
fn a_target_role_of_another_accounts_cluster_sweeps_no_cluster_here() {
    // The target role (cross-account access) of cluster g's workload lives in this account; g
    // is in account 222222222222 and is swept through it.
    let mut target = owned_role_in("222222222222", "g", REGION, "jokes", "worker");
    target.arn = RoleArn::new(format!(
        "arn:aws:iam::{ACCOUNT}:role/eks-intents/g/{}",
        target.name
    ));
    let iam = FakeIam {
        roles: vec![target],
        ..FakeIam::default()
    };
    let ctx = context(bundles(&[]), iam, FakeEks::default(), false);
    let response = block_on(handle(&ctx, &sample("schedule-eventbridge.json"))).expect("sweep");
    assert!(ctx.queue.sent().is_empty(), "{:?}", ctx.queue.sent());
    assert!(response.clusters.is_empty());
    assert!(response.skipped.is_empty(), "{:?}", response.skipped);
}
