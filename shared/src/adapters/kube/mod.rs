//! Kubernetes through the EKS API: a client built from `DescribeCluster` (endpoint and CA) with
//! a short-lived EKS token of the caller's own IAM identity. No kubeconfig, no kubectl, no
//! credentials stored anywhere. Reads are one paginated LIST per kind, per namespace or across
//! the cluster, whichever takes fewer requests; the only writes are the role annotation by
//! server-side apply with one field manager (the snapshot's uids spare a GET), and Events.

mod token;

pub use token::{CLUSTER_HEADER, TOKEN_PREFIX, eks_token};

use crate::model::{
    Namespace, ObservedServiceAccount, ObservedWorkload, ROLE_ARN_ANNOTATION, RoleArn,
    ServiceAccountRef, Takeover, WorkloadKind, WorkloadName,
};
use crate::ports::{
    ClusterDescription, ErrorKind, EventType, KubernetesConnector, KubernetesPort,
    KubernetesSnapshot, PortError, PortResult,
};
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, PodSpec, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// The field manager of every write: server-side apply then owns exactly our fields.
pub const FIELD_MANAGER: &str = "eks-intents";
/// Marks a ServiceAccount whose role annotation this system manages.
pub const BOUND_LABEL: &str = "eks-intents/role-bound";
/// Tokens are good for 15 minutes; a client is rebuilt with a new one well before.
const TOKEN_REFRESH: Duration = Duration::from_secs(10 * 60);
/// Objects per LIST page: a fleet of 1,000 workloads lists each kind in one or two pages, and a
/// page stays within a few megabytes (a Deployment is a few kilobytes).
const PAGE: u32 = 1000;
/// The kinds a snapshot lists: ServiceAccounts and the five workload kinds.
const LISTED_KINDS: usize = 6;

/// How a snapshot reads the cluster. Per namespace it costs one LIST per kind per namespace
/// (`6 × namespaces`); across the cluster one per kind (`6`, plus one per further page of 1,000),
/// filtered to the wanted namespaces in memory. The fewer requests win: per namespace for a
/// single namespace, across the cluster from two on (a page holds 1,000 objects, so a kind must
/// have more than 1,000 objects per wanted namespace before the count turns).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListStrategy {
    PerNamespace,
    ClusterWide,
}

impl ListStrategy {
    pub fn for_namespaces(namespaces: usize) -> Self {
        if LISTED_KINDS * namespaces > LISTED_KINDS {
            ListStrategy::ClusterWide
        } else {
            ListStrategy::PerNamespace
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ListStrategy::PerNamespace => "per-namespace",
            ListStrategy::ClusterWide => "cluster-wide",
        }
    }
}

/// What this run's snapshot saw, so binding needs no further read: the namespaces it covered
/// and the uid of every ServiceAccount in them.
#[derive(Default)]
struct Known {
    namespaces: BTreeSet<Namespace>,
    uids: BTreeMap<ServiceAccountRef, Option<String>>,
    /// The last snapshot's strategy and its LIST requests.
    strategy: Option<(ListStrategy, usize)>,
}

/// Whether a ServiceAccount exists, from the snapshot alone.
enum Existence {
    /// With its uid.
    Exists(Option<String>),
    Absent,
    /// Its namespace was not in the snapshot.
    Unknown,
}

fn kube_error(operation: &'static str, error: kube::Error) -> PortError {
    let (kind, message) = match &error {
        kube::Error::Api(status) => {
            let kind = match status.code {
                401 => ErrorKind::Credentials,
                403 => ErrorKind::Denied,
                404 => ErrorKind::NotFound,
                409 => ErrorKind::Conflict,
                422 | 400 => ErrorKind::Invalid,
                429 | 500..=599 => ErrorKind::Transient,
                _ => ErrorKind::Other,
            };
            (
                kind,
                format!("{} {}: {}", status.code, status.reason, status.message),
            )
        }
        kube::Error::HyperError(_) | kube::Error::Service(_) => {
            (ErrorKind::Transient, error.to_string())
        }
        _ => (ErrorKind::Other, error.to_string()),
    };
    PortError::new("kubernetes", operation, kind, message).with_source(error)
}

/// Attempts of a read the API server refuses as throttled or unavailable (429, 5xx, a broken
/// connection). kube's own retry is off (it can sleep for minutes), so reads retry here with
/// jittered waits below 0.2, 0.4 and 0.8 s; writes are retried by the executor.
const READ_ATTEMPTS: u32 = 4;

async fn read_retrying<T, F, Fut>(operation: &'static str, call: F) -> PortResult<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let mut attempt = 1;
    loop {
        match call().await {
            Ok(value) => return Ok(value),
            Err(error) => {
                let error = kube_error(operation, error);
                if !error.is_retryable() || attempt >= READ_ATTEMPTS {
                    return Err(error);
                }
                let wait = jitter(Duration::from_millis(100 << attempt.min(4)));
                tracing::info!(%error, wait_ms = wait.as_millis() as u64, "Kubernetes read refused; retrying");
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
        }
    }
}

/// A random fraction of `cap` (full jitter), from the clock's nanoseconds.
fn jitter(cap: Duration) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    cap.mul_f64(f64::from(nanos % 1_000_000) / 1_000_000.0)
}

/// Connects to clusters with EKS tokens of the configured AWS identity.
#[derive(Clone, Debug)]
pub struct EksKubernetes {
    credentials: Option<SharedCredentialsProvider>,
    region: String,
    sts_endpoint: String,
}

impl EksKubernetes {
    /// `sts_endpoint` is where the API server will send the token: the STS endpoint of the
    /// configuration (`https://sts.<region>.amazonaws.com` unless overridden).
    pub fn new(
        credentials: Option<SharedCredentialsProvider>,
        region: impl Into<String>,
        sts_endpoint: impl Into<String>,
    ) -> Self {
        Self {
            credentials,
            region: region.into(),
            sts_endpoint: sts_endpoint.into(),
        }
    }

    /// A fresh EKS token for `cluster`, signed with this connector's credentials (in another
    /// account, those of the role assumed there: EKS maps that role to the cluster's RBAC).
    pub async fn token(&self, cluster: &str) -> PortResult<String> {
        let provider = self.credentials.as_ref().ok_or_else(|| {
            PortError::new(
                "kubernetes",
                "token",
                ErrorKind::Credentials,
                "no AWS credentials are configured to make an EKS token",
            )
        })?;
        let credentials = provider.provide_credentials().await.map_err(|e| {
            PortError::new(
                "kubernetes",
                "token",
                ErrorKind::Credentials,
                format!("no AWS credentials to make an EKS token: {e}"),
            )
        })?;
        eks_token(
            cluster,
            &self.sts_endpoint,
            &self.region,
            &credentials,
            SystemTime::now(),
        )
    }

    async fn client(&self, cluster: &ClusterDescription) -> PortResult<Client> {
        let name = cluster.info.cluster.name.as_str();
        let fail =
            |message: String| PortError::new("kubernetes", "connect", ErrorKind::Other, message);
        let endpoint = cluster.endpoint.as_deref().ok_or_else(|| {
            fail(format!(
                "cluster {name} has no API endpoint yet (status {})",
                cluster.status
            ))
        })?;
        let uri: http::Uri = endpoint.parse().map_err(|e| {
            fail(format!(
                "cluster {name} has an endpoint that is not a URL: {endpoint:?}: {e}"
            ))
        })?;
        let mut config = kube::Config::new(uri);
        if let Some(ca) = &cluster.certificate_authority {
            config.root_cert = Some(
                pem_certificates(ca)
                    .map_err(|e| fail(format!("cluster {name}: certificate authority: {e}")))?,
            );
        }
        let token = self.token(name).await?;
        let mut value = http::HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|e| fail(format!("token is not a header value: {e}")))?;
        value.set_sensitive(true);
        config.headers.push((http::header::AUTHORIZATION, value));
        config.connect_timeout = Some(Duration::from_secs(10));
        config.read_timeout = Some(Duration::from_secs(60));
        // kube's default retry of 429/503/504 backs off up to 1,000 s per wait over 15 retries
        // and follows any Retry-After: minutes of sleep in a throttling storm. A refused
        // request fails the call instead (transient): the run fails and its message returns to
        // the queue.
        config.default_retry = false;
        Client::try_from(config)
            .map_err(|e| fail(format!("cannot build a client for cluster {name}: {e}")))
    }
}

/// The DER certificates of base64 PEM data, as `DescribeCluster` gives the CA.
pub fn pem_certificates(data: &str) -> Result<Vec<Vec<u8>>, String> {
    let pem = STANDARD
        .decode(data.trim())
        .map_err(|e| format!("not base64: {e}"))?;
    let pem = String::from_utf8(pem).map_err(|_| "not PEM text".to_owned())?;
    let mut certificates = Vec::new();
    let mut current: Option<String> = None;
    for line in pem.lines().map(str::trim) {
        if line == "-----BEGIN CERTIFICATE-----" {
            current = Some(String::new());
        } else if line == "-----END CERTIFICATE-----" {
            let body = current.take().ok_or("END without BEGIN")?;
            certificates.push(
                STANDARD
                    .decode(body)
                    .map_err(|e| format!("bad certificate: {e}"))?,
            );
        } else if let Some(body) = current.as_mut() {
            body.push_str(line);
        }
    }
    if certificates.is_empty() {
        return Err("no certificate in it".into());
    }
    Ok(certificates)
}

impl KubernetesConnector for EksKubernetes {
    type Port<'a> = EksCluster<'a>;

    async fn connect<'a>(&'a self, cluster: &ClusterDescription) -> PortResult<EksCluster<'a>> {
        let client = self.client(cluster).await?;
        Ok(EksCluster {
            connector: self,
            cluster: cluster.clone(),
            client: Mutex::new((client, Instant::now())),
            known: Mutex::new(Known::default()),
        })
    }
}

/// One cluster's API, through a client whose token is renewed before it expires.
pub struct EksCluster<'a> {
    connector: &'a EksKubernetes,
    cluster: ClusterDescription,
    client: Mutex<(Client, Instant)>,
    known: Mutex<Known>,
}

impl EksCluster<'_> {
    async fn client(&self) -> PortResult<Client> {
        let current = self
            .client
            .lock()
            .map(|c| (c.0.clone(), c.1))
            .map_err(|_| {
                PortError::new(
                    "kubernetes",
                    "connect",
                    ErrorKind::Other,
                    "client lock poisoned",
                )
            })?;
        if current.1.elapsed() < TOKEN_REFRESH {
            return Ok(current.0);
        }
        let fresh = self.connector.client(&self.cluster).await?;
        if let Ok(mut slot) = self.client.lock() {
            *slot = (fresh.clone(), Instant::now());
        }
        Ok(fresh)
    }

    /// Every object of kind `K` in `namespaces`, read with `strategy`; `pages` counts the LISTs.
    async fn list_kind<K>(
        &self,
        strategy: ListStrategy,
        namespaces: &BTreeSet<Namespace>,
        operation: &'static str,
        pages: &mut usize,
    ) -> PortResult<Vec<K>>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
        <K as Resource>::DynamicType: Default,
    {
        match strategy {
            ListStrategy::PerNamespace => {
                let mut items = Vec::new();
                for namespace in namespaces {
                    let api = Api::namespaced(self.client().await?, namespace.as_str());
                    items.extend(list_pages(&api, operation, pages).await?);
                }
                Ok(items)
            }
            ListStrategy::ClusterWide => {
                let api = Api::all(self.client().await?);
                let mut items = list_pages::<K>(&api, operation, pages).await?;
                items.retain(|item| {
                    item.meta()
                        .namespace
                        .as_deref()
                        .is_some_and(|ns| namespaces.iter().any(|n| n.as_str() == ns))
                });
                Ok(items)
            }
        }
    }

    /// The snapshot of `namespaces` read with `strategy` (the port's `snapshot` chooses it by
    /// count; tests compare both).
    pub async fn snapshot_with(
        &self,
        strategy: ListStrategy,
        namespaces: &BTreeSet<Namespace>,
    ) -> PortResult<KubernetesSnapshot> {
        let mut pages = 0;
        let mut snapshot = KubernetesSnapshot::default();
        let mut uids = BTreeMap::new();
        for account in self
            .list_kind::<ServiceAccount>(strategy, namespaces, "list serviceaccounts", &mut pages)
            .await?
        {
            let (Some(name), Some(ns)) = (&account.metadata.name, &account.metadata.namespace)
            else {
                continue;
            };
            let id = ServiceAccountRef {
                namespace: ns.as_str().into(),
                name: name.as_str().into(),
            };
            uids.insert(id.clone(), account.metadata.uid.clone());
            snapshot.service_accounts.push(ObservedServiceAccount {
                namespace: id.namespace,
                name: id.name,
                annotations: account.metadata.annotations.clone().unwrap_or_default(),
                annotation_owned: annotation_owned(&account),
                bound_label: account
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|labels| labels.get(BOUND_LABEL))
                    .is_some_and(|v| v == "true"),
            });
        }
        let workloads = &mut snapshot.workloads;
        for d in self
            .list_kind::<Deployment>(strategy, namespaces, "list deployments", &mut pages)
            .await?
        {
            let spec = d.spec.as_ref().and_then(|s| s.template.spec.as_ref());
            workloads.extend(observed_workload(
                &d.metadata,
                WorkloadKind::Deployment,
                spec,
            ));
        }
        for s in self
            .list_kind::<StatefulSet>(strategy, namespaces, "list statefulsets", &mut pages)
            .await?
        {
            let spec = s.spec.as_ref().and_then(|s| s.template.spec.as_ref());
            workloads.extend(observed_workload(
                &s.metadata,
                WorkloadKind::StatefulSet,
                spec,
            ));
        }
        for d in self
            .list_kind::<DaemonSet>(strategy, namespaces, "list daemonsets", &mut pages)
            .await?
        {
            let spec = d.spec.as_ref().and_then(|s| s.template.spec.as_ref());
            workloads.extend(observed_workload(
                &d.metadata,
                WorkloadKind::DaemonSet,
                spec,
            ));
        }
        for j in self
            .list_kind::<Job>(strategy, namespaces, "list jobs", &mut pages)
            .await?
        {
            let spec = j.spec.as_ref().and_then(|s| s.template.spec.as_ref());
            workloads.extend(observed_workload(&j.metadata, WorkloadKind::Job, spec));
        }
        for c in self
            .list_kind::<CronJob>(strategy, namespaces, "list cronjobs", &mut pages)
            .await?
        {
            let spec = c
                .spec
                .as_ref()
                .and_then(|s| s.job_template.spec.as_ref())
                .and_then(|s| s.template.spec.as_ref());
            workloads.extend(observed_workload(&c.metadata, WorkloadKind::CronJob, spec));
        }
        // The same order as one namespace after the other, whichever way it was read.
        snapshot
            .service_accounts
            .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        workloads
            .sort_by(|a, b| (&a.namespace, a.kind, &a.name).cmp(&(&b.namespace, b.kind, &b.name)));
        tracing::info!(
            strategy = strategy.as_str(),
            namespaces = namespaces.len(),
            list_requests = pages,
            "Kubernetes snapshot"
        );
        if let Ok(mut known) = self.known.lock() {
            // What an earlier snapshot saw in these namespaces gives way to what this one sees.
            known
                .uids
                .retain(|id, _| !namespaces.contains(&id.namespace));
            known.namespaces.extend(namespaces.iter().cloned());
            known.uids.extend(uids);
            known.strategy = Some((strategy, pages));
        }
        snapshot.lists.insert(
            format!("kubernetes:LIST ({})", strategy.as_str()),
            pages as u64,
        );
        Ok(snapshot)
    }

    /// The strategy and LIST requests of this connection's last snapshot.
    pub fn last_snapshot(&self) -> Option<(ListStrategy, usize)> {
        self.known.lock().ok().and_then(|k| k.strategy)
    }

    fn existence(&self, id: &ServiceAccountRef) -> Existence {
        let Ok(known) = self.known.lock() else {
            return Existence::Unknown;
        };
        match known.uids.get(id) {
            Some(uid) => Existence::Exists(uid.clone()),
            None if known.namespaces.contains(&id.namespace) => Existence::Absent,
            None => Existence::Unknown,
        }
    }

    fn remember(&self, id: &ServiceAccountRef, uid: Option<String>) {
        if let Ok(mut known) = self.known.lock() {
            known.uids.insert(id.clone(), uid);
        }
    }

    /// Known to be gone (when its namespace was in the snapshot).
    fn forget(&self, id: &ServiceAccountRef) {
        if let Ok(mut known) = self.known.lock() {
            known.uids.remove(id);
        }
    }

    async fn service_account(&self, id: &ServiceAccountRef) -> PortResult<Option<ServiceAccount>> {
        let api: Api<ServiceAccount> = Api::namespaced(self.client().await?, id.namespace.as_str());
        read_retrying("get serviceaccount", || api.get_opt(id.name.as_str())).await
    }

    async fn apply_service_account(
        &self,
        id: &ServiceAccountRef,
        role_arn: Option<&RoleArn>,
        force: Takeover,
    ) -> PortResult<()> {
        // Applying creates what does not exist: never create a ServiceAccount, only annotate.
        // The snapshot of this run tells whether it exists; only outside it is there a GET.
        let not_found = || {
            PortError::new(
                "kubernetes",
                "apply serviceaccount",
                ErrorKind::NotFound,
                format!("ServiceAccount {id} does not exist"),
            )
        };
        let expected_uid = match self.existence(id) {
            Existence::Exists(uid) => uid,
            Existence::Absent => return Err(not_found()),
            Existence::Unknown => match self.service_account(id).await? {
                Some(account) => account.metadata.uid,
                None => return Err(not_found()),
            },
        };
        let mut metadata = json!({ "name": id.name.as_str(), "namespace": id.namespace.as_str() });
        // A precondition, not a field: kube-apiserver refuses the apply unless the object exists
        // with this uid, so it never creates a ServiceAccount deleted since the snapshot.
        if let Some(uid) = &expected_uid {
            metadata["uid"] = json!(uid);
        }
        if let Some(arn) = role_arn {
            metadata["annotations"] = json!({ ROLE_ARN_ANNOTATION: arn });
            metadata["labels"] = json!({ BOUND_LABEL: "true" });
        }
        let patch = json!({ "apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata });
        let api: Api<ServiceAccount> = Api::namespaced(self.client().await?, id.namespace.as_str());
        let params = if force == Takeover::Force {
            PatchParams::apply(FIELD_MANAGER).force()
        } else {
            PatchParams::apply(FIELD_MANAGER)
        };
        let applied = match api
            .patch(id.name.as_str(), &params, &Patch::Apply(&patch))
            .await
        {
            Ok(applied) => applied,
            // The uid precondition: deleted (or deleted and made anew) since the snapshot.
            Err(kube::Error::Api(status))
                if status.code == 409 && status.message.contains("Precondition failed: UID") =>
            {
                self.forget(id);
                return Err(not_found());
            }
            Err(e) => return Err(kube_error("apply serviceaccount", e)),
        };
        let uid = applied.metadata.uid.clone();
        self.remember(id, uid);
        Ok(())
    }
}

/// Every object of a LIST, page by page (`limit=1000`, following `continue`).
async fn list_pages<K>(
    api: &Api<K>,
    operation: &'static str,
    pages: &mut usize,
) -> PortResult<Vec<K>>
where
    K: Clone + DeserializeOwned + Debug,
{
    let mut items = Vec::new();
    let mut params = ListParams::default().limit(PAGE);
    loop {
        let page = read_retrying(operation, || api.list(&params)).await?;
        *pages += 1;
        items.extend(page.items);
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(items),
        }
    }
}

/// True when our field manager owns the role annotation, from the object's managed fields.
fn annotation_owned(account: &ServiceAccount) -> bool {
    account
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|entry| entry.manager.as_deref() == Some(FIELD_MANAGER))
        .filter_map(|entry| entry.fields_v1.as_ref())
        .any(|fields| {
            fields.0["f:metadata"]["f:annotations"]
                .get(format!("f:{ROLE_ARN_ANNOTATION}"))
                .is_some()
        })
}

fn observed_workload(
    metadata: &ObjectMeta,
    kind: WorkloadKind,
    spec: Option<&PodSpec>,
) -> Option<ObservedWorkload> {
    Some(ObservedWorkload {
        namespace: metadata.namespace.as_deref()?.into(),
        name: metadata.name.as_deref()?.into(),
        kind,
        service_account: spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
    })
}

/// The pod template annotation that rolls a workload's pods.
pub const RESTARTED_AT_ANNOTATION: &str = "eks-intents/restarted-at";

impl KubernetesPort for EksCluster<'_> {
    async fn restart_workload(
        &self,
        namespace: &Namespace,
        kind: WorkloadKind,
        name: &WorkloadName,
        restarted_at: u64,
    ) -> PortResult<()> {
        let patch = json!({
            "apiVersion": "apps/v1",
            "kind": kind.as_str(),
            "metadata": { "name": name.as_str(), "namespace": namespace.as_str() },
            "spec": { "template": { "metadata": { "annotations": {
                RESTARTED_AT_ANNOTATION: restarted_at.to_string()
            } } } }
        });
        let client = self.client().await?;
        let params = PatchParams::apply(FIELD_MANAGER);
        let ns = namespace.as_str();
        let result = match kind {
            WorkloadKind::Deployment => Api::<Deployment>::namespaced(client, ns)
                .patch(name.as_str(), &params, &Patch::Apply(&patch))
                .await
                .map(drop),
            WorkloadKind::StatefulSet => Api::<StatefulSet>::namespaced(client, ns)
                .patch(name.as_str(), &params, &Patch::Apply(&patch))
                .await
                .map(drop),
            WorkloadKind::DaemonSet => Api::<DaemonSet>::namespaced(client, ns)
                .patch(name.as_str(), &params, &Patch::Apply(&patch))
                .await
                .map(drop),
            other => {
                return Err(PortError::new(
                    "kubernetes",
                    "restart workload",
                    ErrorKind::Invalid,
                    format!("a {other} is not rolled; its next pods start with the binding"),
                ));
            }
        };
        result.map_err(|e| kube_error("restart workload", e))
    }

    async fn snapshot(&self, namespaces: &BTreeSet<Namespace>) -> PortResult<KubernetesSnapshot> {
        self.snapshot_with(ListStrategy::for_namespaces(namespaces.len()), namespaces)
            .await
    }

    async fn annotate_service_account(
        &self,
        service_account: &ServiceAccountRef,
        role_arn: &RoleArn,
        force: Takeover,
    ) -> PortResult<()> {
        self.apply_service_account(service_account, Some(role_arn), force)
            .await
    }

    async fn remove_service_account_annotation(
        &self,
        service_account: &ServiceAccountRef,
    ) -> PortResult<()> {
        self.apply_service_account(service_account, None, Takeover::Never)
            .await
    }

    async fn record_event(
        &self,
        service_account: &ServiceAccountRef,
        reason: &str,
        message: &str,
        kind: EventType,
    ) -> PortResult<()> {
        // The uid from this run's snapshot or apply; a GET only outside the snapshot.
        let uid = match self.existence(service_account) {
            Existence::Exists(uid) => uid,
            Existence::Absent => None,
            Existence::Unknown => self
                .service_account(service_account)
                .await?
                .and_then(|sa| sa.metadata.uid),
        };
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let event = Event {
            metadata: ObjectMeta {
                generate_name: Some(format!("{}.", service_account.name)),
                namespace: Some(service_account.namespace.to_string()),
                ..ObjectMeta::default()
            },
            involved_object: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("ServiceAccount".into()),
                name: Some(service_account.name.to_string()),
                namespace: Some(service_account.namespace.to_string()),
                uid,
                ..ObjectReference::default()
            },
            reason: Some(reason.to_owned()),
            message: Some(message.to_owned()),
            type_: Some(kind.as_str().to_owned()),
            source: Some(EventSource {
                component: Some(FIELD_MANAGER.to_owned()),
                host: None,
            }),
            reporting_component: Some(FIELD_MANAGER.to_owned()),
            reporting_instance: Some(FIELD_MANAGER.to_owned()),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            count: Some(1),
            ..Event::default()
        };
        let api: Api<Event> =
            Api::namespaced(self.client().await?, service_account.namespace.as_str());
        api.create(&PostParams::default(), &event)
            .await
            .map_err(|e| kube_error("create event", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn refused(code: u16) -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure("refused", "TooManyRequests")
                .with_code(code)
                .boxed(),
        )
    }

    #[tokio::test]
    async fn reads_refused_as_throttled_are_retried_a_few_times_then_fail() {
        let calls = AtomicU32::new(0);
        let twice = read_retrying("list", || async {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            if n < 2 { Err(refused(429)) } else { Ok(n) }
        })
        .await;
        assert_eq!(twice.ok(), Some(2));

        let calls = AtomicU32::new(0);
        let always = read_retrying::<(), _, _>("list", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(refused(503))
        })
        .await;
        assert_eq!(calls.load(Ordering::SeqCst), READ_ATTEMPTS);
        assert!(always.is_err_and(|e| e.is_retryable()));

        let calls = AtomicU32::new(0);
        let denied = read_retrying::<(), _, _>("list", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(refused(403))
        })
        .await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(denied.is_err_and(|e| e.kind == ErrorKind::Denied));
    }

    #[test]
    fn jitter_stays_below_its_cap() {
        for _ in 0..100 {
            assert!(jitter(Duration::from_millis(800)) < Duration::from_millis(800));
        }
    }

    #[test]
    fn pem_data_gives_der_certificates() {
        let pem = "-----BEGIN CERTIFICATE-----\nAAEC\nAwQ=\n-----END CERTIFICATE-----\n";
        let data = STANDARD.encode(pem);
        assert_eq!(pem_certificates(&data).unwrap(), vec![vec![0, 1, 2, 3, 4]]);
        assert!(pem_certificates("!!").unwrap_err().contains("not base64"));
        assert!(
            pem_certificates(&STANDARD.encode("hello"))
                .unwrap_err()
                .contains("no certificate")
        );
    }
}
