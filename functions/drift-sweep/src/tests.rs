//! The sweep end to end against small in-memory ports: what it sends, and what it refuses.

use super::*;
use eks_intents::model::{ClusterName, ClusterRef, ObservedRole, Region, RoleName};
use eks_intents::policy::{PolicyDocument, role_name, role_tags};
use eks_intents::ports::{
    AddonDescription, BundleObject, ClusterDescription, ErrorKind, FetchedObject, IamSnapshot,
    NewRole, PortError, PortResult, StoreLevel,
};
use eks_intents::testing::service_account_ref;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

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

fn unexpected(service: &'static str, operation: &'static str) -> PortError {
    PortError::new(
        service,
        operation,
        ErrorKind::Other,
        "not expected from drift-sweep",
    )
}

#[derive(Default)]
struct Store {
    level: StoreLevel,
    fail: bool,
    listed: Mutex<Vec<String>>,
}

impl BundleStore for Store {
    async fn list(&self, _prefix: &str) -> PortResult<Vec<BundleObject>> {
        Err(unexpected("s3", "ListObjectsV2 (every object)"))
    }
    async fn list_level(&self, prefix: &str) -> PortResult<StoreLevel> {
        self.listed.lock().unwrap().push(prefix.to_owned());
        if self.fail {
            return Err(PortError::new(
                "s3",
                "ListObjectsV2",
                ErrorKind::Denied,
                "AccessDenied",
            ));
        }
        Ok(self.level.clone())
    }
    async fn get(&self, _key: &str, _max_bytes: u64) -> PortResult<FetchedObject> {
        Err(unexpected("s3", "GetObject"))
    }
    async fn put(&self, _key: &str, _body: Vec<u8>, _content_type: &str) -> PortResult<()> {
        Err(unexpected("s3", "PutObject"))
    }
}

#[derive(Default)]
struct Iam {
    roles: Vec<ObservedRole>,
    fail: bool,
    paths: Mutex<Vec<String>>,
}

impl IamPort for Iam {
    async fn snapshot(&self, path_prefix: &str) -> PortResult<IamSnapshot> {
        self.paths.lock().unwrap().push(path_prefix.to_owned());
        if self.fail {
            return Err(PortError::new(
                "iam",
                "GetAccountAuthorizationDetails",
                ErrorKind::Transient,
                "Throttling",
            ));
        }
        Ok(IamSnapshot {
            roles: self
                .roles
                .iter()
                .filter(|r| r.path.starts_with(path_prefix))
                .cloned()
                .collect(),
            ..IamSnapshot::default()
        })
    }
    async fn create_oidc_provider(
        &self,
        _url: &str,
        _client_ids: &[String],
        _tags: &BTreeMap<String, String>,
    ) -> PortResult<()> {
        Err(unexpected("iam", "CreateOpenIDConnectProvider"))
    }
    async fn add_oidc_client_id(&self, _provider_arn: &str, _client_id: &str) -> PortResult<()> {
        Err(unexpected("iam", "AddClientIDToOpenIDConnectProvider"))
    }
    async fn create_role(&self, _role: &NewRole<'_>) -> PortResult<()> {
        Err(unexpected("iam", "CreateRole"))
    }
    async fn role_tags(&self, _role: &RoleName) -> PortResult<Option<BTreeMap<String, String>>> {
        Err(unexpected("iam", "GetRole"))
    }
    async fn update_trust_policy(
        &self,
        _role: &RoleName,
        _document: &PolicyDocument,
    ) -> PortResult<()> {
        Err(unexpected("iam", "UpdateAssumeRolePolicy"))
    }
    async fn put_permissions_boundary(&self, _role: &RoleName, _arn: &str) -> PortResult<()> {
        Err(unexpected("iam", "PutRolePermissionsBoundary"))
    }
    async fn tag_role(&self, _role: &RoleName, _tags: &BTreeMap<String, String>) -> PortResult<()> {
        Err(unexpected("iam", "TagRole"))
    }
    async fn untag_role(&self, _role: &RoleName, _keys: &[String]) -> PortResult<()> {
        Err(unexpected("iam", "UntagRole"))
    }
    async fn put_role_policy(
        &self,
        _role: &RoleName,
        _name: &str,
        _document: &PolicyDocument,
    ) -> PortResult<()> {
        Err(unexpected("iam", "PutRolePolicy"))
    }
    async fn delete_role_policy(&self, _role: &RoleName, _name: &str) -> PortResult<()> {
        Err(unexpected("iam", "DeleteRolePolicy"))
    }
    async fn create_policy(
        &self,
        _name: &str,
        _path: &str,
        _document: &PolicyDocument,
        _tags: &BTreeMap<String, String>,
    ) -> PortResult<()> {
        Err(unexpected("iam", "CreatePolicy"))
    }
    async fn set_policy_document(&self, _arn: &str, _document: &PolicyDocument) -> PortResult<()> {
        Err(unexpected("iam", "CreatePolicyVersion"))
    }
    async fn attach_role_policy(&self, _role: &RoleName, _arn: &str) -> PortResult<()> {
        Err(unexpected("iam", "AttachRolePolicy"))
    }
    async fn detach_role_policy(&self, _role: &RoleName, _arn: &str) -> PortResult<()> {
        Err(unexpected("iam", "DetachRolePolicy"))
    }
    async fn delete_policy(&self, _arn: &str) -> PortResult<()> {
        Err(unexpected("iam", "DeletePolicy"))
    }
    async fn delete_role(&self, _role: &RoleName) -> PortResult<()> {
        Err(unexpected("iam", "DeleteRole"))
    }
}

#[derive(Default)]
struct Eks {
    clusters: Vec<String>,
    calls: Mutex<usize>,
}

impl EksPort for Eks {
    async fn list_clusters(&self) -> PortResult<Vec<String>> {
        *self.calls.lock().unwrap() += 1;
        Ok(self.clusters.clone())
    }
    async fn describe_cluster(&self, _name: &str) -> PortResult<ClusterDescription> {
        Err(unexpected("eks", "DescribeCluster"))
    }
    async fn addons(&self, _cluster: &str) -> PortResult<Vec<AddonDescription>> {
        Err(unexpected("eks", "ListAddons"))
    }
    async fn pod_identity_associations(
        &self,
        _cluster: &str,
    ) -> PortResult<Vec<eks_intents::model::ObservedAssociation>> {
        Err(unexpected("eks", "ListPodIdentityAssociations"))
    }
    async fn create_pod_identity_association(
        &self,
        _cluster: &str,
        _service_account: &eks_intents::model::ServiceAccountRef,
        _role_arn: &str,
        _tags: &BTreeMap<String, String>,
    ) -> PortResult<()> {
        Err(unexpected("eks", "CreatePodIdentityAssociation"))
    }
    async fn update_pod_identity_association(
        &self,
        _cluster: &str,
        _association_id: &str,
        _role_arn: &str,
    ) -> PortResult<()> {
        Err(unexpected("eks", "UpdatePodIdentityAssociation"))
    }
    async fn delete_pod_identity_association(
        &self,
        _cluster: &str,
        _association_id: &str,
    ) -> PortResult<()> {
        Err(unexpected("eks", "DeletePodIdentityAssociation"))
    }
    async fn set_addon_role(
        &self,
        _cluster: &str,
        _addon: &str,
        _role_arn: Option<&str>,
    ) -> PortResult<()> {
        Err(unexpected("eks", "UpdateAddon"))
    }
    async fn set_addon_pod_identity(
        &self,
        _cluster: &str,
        _addon: &str,
        _associations: &BTreeMap<String, String>,
    ) -> PortResult<()> {
        Err(unexpected("eks", "UpdateAddon"))
    }
}

#[derive(Default)]
struct Queue {
    batches: Mutex<Vec<Vec<DeduplicatedReconcile>>>,
}

impl ReconcileQueue for Queue {
    async fn send(&self, _message: &ReconcileCluster) -> PortResult<()> {
        Err(unexpected("sqs", "SendMessage (not deduplicated)"))
    }
    async fn send_deduplicated(&self, messages: &[DeduplicatedReconcile]) -> PortResult<()> {
        self.batches.lock().unwrap().push(messages.to_vec());
        Ok(())
    }
}

impl Queue {
    fn sent(&self) -> Vec<DeduplicatedReconcile> {
        self.batches.lock().unwrap().concat()
    }
}

fn level(prefixes: &[&str]) -> StoreLevel {
    StoreLevel {
        prefixes: prefixes.iter().map(|p| p.to_string()).collect(),
        objects: vec![BundleObject {
            key: "intents/README.md".into(),
            etag: None,
            version: None,
            size: 10,
        }],
    }
}

/// An owned role of `cluster` in `region`, as the reconciler tags it.
fn owned_role(cluster: &str, region: &str, namespace: &str, name: &str) -> ObservedRole {
    let cluster = ClusterRef::new(
        ClusterName::new(cluster),
        eks_intents::model::AccountId::new(ACCOUNT),
        Region::new(region),
    );
    let sa = service_account_ref(namespace, name);
    let role = role_name(&cluster.name, &sa);
    ObservedRole {
        arn: format!(
            "arn:aws:iam::{ACCOUNT}:role/eks-intents/{}/{role}",
            cluster.name
        ),
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
        arn: format!("arn:aws:iam::{ACCOUNT}:role/eks-intents/{name}"),
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
    store: Store,
    iam: Iam,
    eks: Eks,
    list_clusters: bool,
) -> Context<Store, Iam, Eks, Queue> {
    Context {
        store,
        iam,
        eks,
        queue: Queue::default(),
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
    let store = Store {
        level: level(&["intents/a/", "intents/b/"]),
        ..Store::default()
    };
    let iam = Iam {
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
        ..Iam::default()
    };
    let eks = Eks {
        clusters: vec!["a".into(), "f".into()],
        ..Eks::default()
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
    let store = Store {
        level: level(&["intents/a/"]),
        ..Store::default()
    };
    let eks = Eks {
        clusters: vec!["a".into(), "f".into()],
        ..Eks::default()
    };
    let ctx = context(store, Iam::default(), eks, true);
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
    let store = Store {
        level: level(&[
            "intents/ok/",
            "intents/team a/",
            &format!("intents/{long}/"),
        ]),
        ..Store::default()
    };
    let iam = Iam {
        roles: vec![foreign_role(
            "half-ours",
            &[(OWNER_TAG, OWNER_VALUE), (CLUSTER_TAG, "not-an-arn")],
        )],
        ..Iam::default()
    };
    let ctx = context(store, iam, Eks::default(), false);
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
    let ctx = context(Store::default(), Iam::default(), Eks::default(), false);
    let response = block_on(handle(&ctx, &serde_json::json!({}))).expect("sweep");
    assert!(response.clusters.is_empty());
    assert!(ctx.queue.batches.lock().unwrap().is_empty());
}

#[test]
fn a_source_that_fails_fails_the_sweep_and_is_named() {
    let ctx = context(
        Store {
            fail: true,
            ..Store::default()
        },
        Iam::default(),
        Eks::default(),
        false,
    );
    let error = block_on(handle(&ctx, &Value::Null)).unwrap_err();
    assert!(error.starts_with("source bundles"), "{error}");
    assert!(error.contains("AccessDenied"), "{error}");
    assert!(ctx.queue.batches.lock().unwrap().is_empty());

    let ctx = context(
        Store {
            level: level(&["intents/a/"]),
            ..Store::default()
        },
        Iam {
            fail: true,
            ..Iam::default()
        },
        Eks::default(),
        false,
    );
    let error = block_on(handle(&ctx, &Value::Null)).unwrap_err();
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
            },
            SweptCluster {
                cluster: "c".into(),
                sources: vec![Source::RoleTags],
                deduplication_id: "drift:c:2026-11-27T09:00".into(),
            },
        ],
        skipped: Vec::new(),
    };
    let values = metrics(&Ok(response)).values;
    assert_eq!(values["ClustersSwept"].0, 2.0);
    assert_eq!(values["ClustersFoundBy.Bundles"].0, 1.0);
    assert_eq!(values["ClustersFoundBy.RoleTags"].0, 2.0);
    assert_eq!(values["Errors"].0, 0.0);
    assert_eq!(metrics(&Err("s3 down".into())).values["Errors"].0, 1.0);
}
