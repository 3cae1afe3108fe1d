//! The narrow async traits through which the core reaches the world: IAM, EKS, the bundle
//! store (S3), the reconcile queue (SQS) and the Kubernetes API. Adapters implement them over
//! the real services; `testing` has in-memory fakes. Every method maps one service call (or one
//! paginated read) and returns domain types; a "not found" on delete is success.

use crate::model::{
    AccountSummary, AddonName, AssociationId, PolicyArn, RoleArn, Takeover, WorkloadKind,
    WorkloadName,
};
use crate::model::{
    ClusterInfo, Namespace, ObservedAddon, ObservedAssociation, ObservedManagedPolicy,
    ObservedRole, ObservedServiceAccount, ObservedWorkload, OidcProvider, RoleName,
    ServiceAccountName, ServiceAccountRef,
};
use crate::policy::{PolicyDocument, short_hash};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

/// What went wrong in a call to the outside, and whether trying again can help.
#[derive(Debug, thiserror::Error)]
#[error("{service} {operation}: {message}")]
pub struct PortError {
    pub service: &'static str,
    pub operation: &'static str,
    pub kind: ErrorKind,
    pub message: String,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    NotFound,
    AlreadyExists,
    /// Someone else's object or a concurrent change is in the way.
    Conflict,
    /// Throttled or the service is unavailable: retry later.
    Transient,
    /// The request was refused as invalid. EKS says this of a role IAM has not made visible
    /// to it yet, which passes after a few seconds.
    Invalid,
    /// The caller may not make this call (access denied): nothing a retry fixes.
    Denied,
    /// The caller's credentials are missing, invalid or expired, so no call can say what it
    /// may do: nothing a retry fixes.
    Credentials,
    Other,
}

impl PortError {
    pub fn new(
        service: &'static str,
        operation: &'static str,
        kind: ErrorKind,
        message: impl Into<String>,
    ) -> Self {
        PortError {
            service,
            operation,
            kind,
            message: message.into(),
            source: None,
        }
    }

    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// True when the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        self.kind == ErrorKind::Transient
    }
}

/// The error type a Lambda function reports for a failed invocation: whether delivering the
/// same event again can help, so a retry policy or an alarm can tell the two apart.
pub fn retry_class(retryable: bool) -> &'static str {
    if retryable {
        "Retryable"
    } else {
        "NotRetryable"
    }
}

pub type PortResult<T> = Result<T, PortError>;

/// Everything IAM holds that the system owns or must know about.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IamSnapshot {
    pub roles: Vec<ObservedRole>,
    pub managed_policies: Vec<ObservedManagedPolicy>,
    pub oidc_providers: Vec<OidcProvider>,
}

/// A new role, created with its trust, boundary, tags and description in one call.
#[derive(Clone, Debug)]
pub struct NewRole<'a> {
    pub name: &'a RoleName,
    pub path: &'a str,
    pub description: &'a str,
    pub trust_policy: &'a PolicyDocument,
    pub permissions_boundary: Option<&'a PolicyArn>,
    pub tags: &'a BTreeMap<String, String>,
}

pub trait IamPort: Send + Sync {
    /// Roles and managed policies under `path_prefix` (with documents, tags and boundary),
    /// and the cluster's own OIDC provider, read by its ARN (`oidc_provider_arn`, which follows
    /// from the issuer: one call whatever other providers the account holds; absent if IAM
    /// does not know it). `None` reads no provider (a cluster without an issuer, or gone).
    fn snapshot(
        &self,
        path_prefix: &str,
        oidc_provider_arn: Option<&str>,
    ) -> impl Future<Output = PortResult<IamSnapshot>> + Send;
    fn create_oidc_provider(
        &self,
        url: &str,
        client_ids: &[String],
        tags: &BTreeMap<String, String>,
    ) -> impl Future<Output = PortResult<()>> + Send;
    fn add_oidc_client_id(
        &self,
        provider_arn: &str,
        client_id: &str,
    ) -> impl Future<Output = PortResult<()>> + Send;
    /// The account's IAM quotas and how many roles it holds (`GetAccountSummary`).
    fn account_summary(&self) -> impl Future<Output = PortResult<AccountSummary>> + Send;
    fn create_role(&self, role: &NewRole<'_>) -> impl Future<Output = PortResult<()>> + Send;
    /// The tags of a role wherever its path (`None` when there is no such role): tells whether
    /// a name that already exists is the system's own.
    fn role_tags(
        &self,
        role: &RoleName,
    ) -> impl Future<Output = PortResult<Option<BTreeMap<String, String>>>> + Send;
    fn update_trust_policy(
        &self,
        role: &RoleName,
        document: &PolicyDocument,
    ) -> impl Future<Output = PortResult<()>> + Send;
    fn put_permissions_boundary(
        &self,
        role: &RoleName,
        boundary_arn: &PolicyArn,
    ) -> impl Future<Output = PortResult<()>> + Send;
    fn tag_role(
        &self,
        role: &RoleName,
        tags: &BTreeMap<String, String>,
    ) -> impl Future<Output = PortResult<()>> + Send;
    fn untag_role(
        &self,
        role: &RoleName,
        keys: &[String],
    ) -> impl Future<Output = PortResult<()>> + Send;
    fn put_role_policy(
        &self,
        role: &RoleName,
        name: &str,
        document: &PolicyDocument,
    ) -> impl Future<Output = PortResult<()>> + Send;
    fn delete_role_policy(
        &self,
        role: &RoleName,
        name: &str,
    ) -> impl Future<Output = PortResult<()>> + Send;
    fn create_policy(
        &self,
        name: &str,
        path: &str,
        document: &PolicyDocument,
        tags: &BTreeMap<String, String>,
    ) -> impl Future<Output = PortResult<()>> + Send;
    /// A new default version with this document; versions beyond the newest few are pruned
    /// so the five-version quota is never hit.
    fn set_policy_document(
        &self,
        arn: &PolicyArn,
        document: &PolicyDocument,
    ) -> impl Future<Output = PortResult<()>> + Send;
    fn attach_role_policy(
        &self,
        role: &RoleName,
        arn: &PolicyArn,
    ) -> impl Future<Output = PortResult<()>> + Send;
    fn detach_role_policy(
        &self,
        role: &RoleName,
        arn: &PolicyArn,
    ) -> impl Future<Output = PortResult<()>> + Send;
    /// Deletes the policy and its non-default versions.
    fn delete_policy(&self, arn: &PolicyArn) -> impl Future<Output = PortResult<()>> + Send;
    fn delete_role(&self, role: &RoleName) -> impl Future<Output = PortResult<()>> + Send;
}

/// IAM in the accounts that hold workloads' target roles (cross-account access): each reached
/// through the deployment's role there.
pub trait TargetAccounts: Send + Sync {
    type Iam: IamPort;
    /// IAM acting in `account`; an error when the deployment has no role there or cannot
    /// assume it.
    fn iam_in(&self, account: &str) -> impl Future<Output = PortResult<Self::Iam>> + Send;
}

/// No account but the cluster's: every target account is refused (`I` is the type IAM would
/// have there, never made).
pub struct NoTargets<I>(std::marker::PhantomData<fn() -> I>);

impl<I> NoTargets<I> {
    pub const NONE: Self = NoTargets(std::marker::PhantomData);
}

impl<I: IamPort> TargetAccounts for NoTargets<I> {
    type Iam = I;
    async fn iam_in(&self, account: &str) -> PortResult<I> {
        Err(PortError::new(
            "sts",
            "AssumeRole",
            ErrorKind::Denied,
            format!("the deployment has no role in account {account}"),
        ))
    }
}

/// The Pod Identity associations of concern (see `EksPort::pod_identity_associations`), and
/// how many the cluster has in all (the list that finds them counts them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Associations {
    pub described: Vec<ObservedAssociation>,
    pub in_cluster: usize,
}

pub trait EksPort: Send + Sync {
    /// Names of the clusters of the region, paginated to the end.
    fn list_clusters(&self) -> impl Future<Output = PortResult<Vec<String>>> + Send;
    fn describe_cluster(
        &self,
        name: &str,
    ) -> impl Future<Output = PortResult<ClusterDescription>> + Send;
    /// The cluster's add-ons with their IRSA role setting (their Pod Identity associations
    /// are among `pod_identity_associations`, owned by the add-on's ARN).
    fn addons(
        &self,
        cluster: &str,
    ) -> impl Future<Output = PortResult<Vec<AddonDescription>>> + Send;
    /// The cluster's Pod Identity associations that concern the system, with their role ARN
    /// and tags (which only a describe gives, one call per association).
    ///
    /// Which associations concern it is decided from what the list returns (namespace,
    /// service account, association id, owner ARN), so that the associations of a fleet the
    /// system has nothing to do with cost no describe:
    /// - every association in one of `namespaces`: the caller passes the namespaces of the
    ///   desired workloads (held ones included) and those named by the roles the system owns
    ///   for the cluster. That covers each association that collides with a desired one (its
    ///   ServiceAccount is in a desired workload's namespace) and each one the system made
    ///   (made only for a role it owns, in that role's namespace, which the role's tag names
    ///   until the role is deleted), so drift, orphans and collisions are all seen;
    /// - every association an add-on owns (an owner ARN in the list): they are few, and the
    ///   add-ons' observed state needs their roles.
    ///
    /// Associations left out are not returned at all: the planner neither binds, updates nor
    /// deletes in a namespace outside `namespaces`, so it never mistakes them for drift or
    /// orphans. The describes run concurrently (the adapter's `DESCRIBE_CONCURRENCY`, 16).
    fn pod_identity_associations(
        &self,
        cluster: &str,
        namespaces: &BTreeSet<Namespace>,
    ) -> impl Future<Output = PortResult<Associations>> + Send;
    /// Creates the association with a client request token derived from the request, so that
    /// a repeated request (an SDK retry, or another run asking the same at the same time) is
    /// answered with the association it created. A ServiceAccount that already has one is
    /// `AlreadyExists`.
    fn create_pod_identity_association(
        &self,
        cluster: &str,
        service_account: &ServiceAccountRef,
        role_arn: &RoleArn,
        tags: &BTreeMap<String, String>,
        session_policy: Option<&PolicyDocument>,
        target_role_arn: Option<&RoleArn>,
    ) -> impl Future<Output = PortResult<()>> + Send;
    /// The association of one ServiceAccount, if it has one.
    fn pod_identity_association_of(
        &self,
        cluster: &str,
        service_account: &ServiceAccountRef,
    ) -> impl Future<Output = PortResult<Option<ObservedAssociation>>> + Send;
    /// Sets the association's role, session policy (with EKS's session tags off) and target
    /// role; `None` leaves the association's policy or target role as it is.
    fn update_pod_identity_association(
        &self,
        cluster: &str,
        association_id: &AssociationId,
        role_arn: &RoleArn,
        session_policy: Option<&PolicyDocument>,
        target_role_arn: Option<&RoleArn>,
    ) -> impl Future<Output = PortResult<()>> + Send;
    fn delete_pod_identity_association(
        &self,
        cluster: &str,
        association_id: &AssociationId,
    ) -> impl Future<Output = PortResult<()>> + Send;
    /// IRSA: sets (or with `None` clears) the add-on's `serviceAccountRoleArn`.
    /// The managed policies EKS recommends for each ServiceAccount of an add-on version
    /// (`DescribeAddonConfiguration`'s `podIdentityConfiguration`).
    fn addon_recommended_policies(
        &self,
        addon: &AddonName,
        version: &str,
    ) -> impl Future<Output = PortResult<BTreeMap<ServiceAccountName, Vec<PolicyArn>>>> + Send;
    fn set_addon_role(
        &self,
        cluster: &str,
        addon: &AddonName,
        role_arn: Option<&RoleArn>,
    ) -> impl Future<Output = PortResult<()>> + Send;
    /// Pod Identity: the add-on's associations, ServiceAccount name -> role ARN, replaced whole.
    fn set_addon_pod_identity(
        &self,
        cluster: &str,
        addon: &AddonName,
        associations: &BTreeMap<String, RoleArn>,
    ) -> impl Future<Output = PortResult<()>> + Send;
}

/// `DescribeCluster`, as far as the system needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterDescription {
    pub info: ClusterInfo,
    pub endpoint: Option<String>,
    /// Base64 PEM of the cluster's certificate authority.
    pub certificate_authority: Option<String>,
    pub status: String,
}

/// An add-on with its IRSA role setting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddonDescription {
    pub name: AddonName,
    pub arn: String,
    pub version: String,
    pub service_account_role_arn: Option<RoleArn>,
}

impl AddonDescription {
    /// The add-on as the planner sees it: the ServiceAccounts it runs as, and its own Pod
    /// Identity associations among `associations`.
    pub fn into_observed(
        self,
        service_accounts: BTreeSet<ServiceAccountRef>,
        associations: &[ObservedAssociation],
    ) -> ObservedAddon {
        ObservedAddon {
            pod_identity_associations: associations
                .iter()
                .filter(|a| a.owner_arn.as_deref() == Some(self.arn.as_str()))
                .map(|a| (a.service_account.clone(), a.role_arn.clone()))
                .collect(),
            name: self.name,
            service_accounts,
            service_account_role_arn: self.service_account_role_arn,
            recommended_policies: BTreeMap::new(),
        }
    }
}

/// One object of the bundle store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleObject {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub size: u64,
}

/// An object's bytes and the version they were read at: the version id and ETag come from
/// the read itself, never from an earlier listing (the object may have changed in between).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FetchedObject {
    pub bytes: Vec<u8>,
    pub version: Option<String>,
    /// Without the quotes S3 puts around it.
    pub etag: Option<String>,
}

/// When a conditional write may replace what is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteCondition {
    /// Only if there is no object at the key (`If-None-Match: *`).
    Absent,
    /// Only if the object still has this ETag (`If-Match`).
    Unchanged(String),
}

/// One level of the bundle store under a prefix, as a listing with the delimiter `/` gives it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreLevel {
    /// The next level's prefixes, each ending in `/` (`intents/demo/`, ...).
    pub prefixes: Vec<String>,
    /// The objects directly at this level.
    pub objects: Vec<BundleObject>,
}

pub trait BundleStore: Send + Sync {
    /// Every object under `prefix`, paginated to the end.
    fn list(&self, prefix: &str) -> impl Future<Output = PortResult<Vec<BundleObject>>> + Send;
    /// One level under `prefix` (delimiter `/`), paginated to the end: finds the clusters under
    /// `intents/` or the namespaces of a cluster without listing every bundle.
    fn list_level(&self, prefix: &str) -> impl Future<Output = PortResult<StoreLevel>> + Send;
    /// The object, at most `max_bytes + 1` of its bytes (one more than the cap tells it is too
    /// large without fetching it all).
    fn get(
        &self,
        key: &str,
        max_bytes: u64,
    ) -> impl Future<Output = PortResult<FetchedObject>> + Send;
    /// The object unless it still has the ETag `etag` (`If-None-Match`): `None` when it has
    /// not changed, so what was read before is used without fetching it again.
    fn get_if_changed(
        &self,
        key: &str,
        etag: &str,
        max_bytes: u64,
    ) -> impl Future<Output = PortResult<Option<FetchedObject>>> + Send;
    fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> impl Future<Output = PortResult<()>> + Send;
    /// Writes only if `condition` holds; `Conflict` when it does not (someone wrote first).
    /// Gives the ETag of what was written, when the store tells it.
    fn put_if(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
        condition: &WriteCondition,
    ) -> impl Future<Output = PortResult<Option<String>>> + Send;
}

/// The message that asks for one cluster to be reconciled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconcileCluster {
    pub cluster: String,
    /// Why, for the logs: the S3 key, the EKS event, `drift`.
    pub reason: String,
    /// Seconds since the epoch before which the reconcile must not start: a request that merges
    /// the events of a time window waits for the window to close, so that no event of the
    /// window happens after the reconcile has read the cluster (the consumer puts it back until
    /// then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<u64>,
    /// The account the cluster is in, when the sender knows it (the drift sweep, EKS events):
    /// the reconciler acts there through the role `EKS_INTENTS_ACCOUNT_ROLES` gives that
    /// account. Absent in requests of the deployment's own account, and in older messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

impl ReconcileCluster {
    pub fn new(cluster: impl Into<String>, reason: impl Into<String>) -> Self {
        ReconcileCluster {
            cluster: cluster.into(),
            reason: reason.into(),
            not_before: None,
            account: None,
        }
    }
}

/// A reconcile request that merges with its repeats: the FIFO queue drops a message whose
/// deduplication id it has seen in the last five minutes, so every request of one cluster in
/// one time bucket (or one schedule tick) becomes one reconcile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeduplicatedReconcile {
    pub message: ReconcileCluster,
    /// At most 128 characters of `[A-Za-z0-9!-/:-@[-`{-~]`.
    pub deduplication_id: String,
}

/// SQS's limit on a deduplication id.
const DEDUPLICATION_ID_MAX: usize = 128;

impl DeduplicatedReconcile {
    /// `<origin>:<cluster>:<window>`, within SQS's 128 characters of printable ASCII; a cluster
    /// name that would break either rule is replaced by a hash of it.
    pub fn id(origin: &str, cluster: &str, window: impl std::fmt::Display) -> String {
        let id = format!("{origin}:{cluster}:{window}");
        if id.len() <= DEDUPLICATION_ID_MAX && id.chars().all(|c| c.is_ascii_graphic()) {
            return id;
        }
        format!("{origin}:{}:{window}", short_hash(cluster, 40))
    }
}

/// Sending reconcile requests failed; the port's error says whether a retry can help.
#[derive(Debug, thiserror::Error)]
#[error("sending {count} reconcile request(s) failed: {source}")]
pub struct SendError {
    pub count: usize,
    #[source]
    pub source: PortError,
}

/// Sends `requests` through `queue` (none: no call at all).
pub async fn send_requests(
    queue: &impl ReconcileQueue,
    requests: &[DeduplicatedReconcile],
) -> Result<(), SendError> {
    if requests.is_empty() {
        return Ok(());
    }
    queue
        .send_deduplicated(requests)
        .await
        .map_err(|source| SendError {
            count: requests.len(),
            source,
        })
}

pub trait ReconcileQueue: Send + Sync {
    /// Sends one request that is never merged with another (an upload must not be dropped as
    /// the repeat of an earlier, already consumed one).
    fn send(&self, message: &ReconcileCluster) -> impl Future<Output = PortResult<()>> + Send;
    /// Sends requests in batches (ten per call); repeats of one deduplication id merge.
    fn send_deduplicated(
        &self,
        messages: &[DeduplicatedReconcile],
    ) -> impl Future<Output = PortResult<()>> + Send;
}

/// The queue as its consumer sees it: a message can be put back for later.
pub trait ReconcileRetry: Send + Sync {
    /// Makes a received message visible again after `seconds` (the message returns with one
    /// more receive count), for a cluster that is not ready yet.
    fn retry_later(
        &self,
        receipt_handle: &str,
        seconds: u32,
    ) -> impl Future<Output = PortResult<()>> + Send;
}

/// What the Kubernetes API tells about the namespaces the intents name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KubernetesSnapshot {
    pub workloads: Vec<ObservedWorkload>,
    pub service_accounts: Vec<ObservedServiceAccount>,
    /// The LIST requests made, by how the kinds were listed (`kubernetes:LIST (per-namespace)`
    /// or `kubernetes:LIST (cluster-wide)`), for the status report's call counts.
    pub lists: BTreeMap<String, u64>,
}

/// The type of a Kubernetes Event, as `kubectl describe` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Normal,
    /// Something went wrong: what was asked for did not happen.
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

pub trait KubernetesPort: Send + Sync {
    fn snapshot(
        &self,
        namespaces: &BTreeSet<Namespace>,
    ) -> impl Future<Output = PortResult<KubernetesSnapshot>> + Send;
    /// Sets the role annotation, as this system's field manager; `Takeover::Force` takes it
    /// over from another manager.
    fn annotate_service_account(
        &self,
        service_account: &ServiceAccountRef,
        role_arn: &RoleArn,
        force: Takeover,
    ) -> impl Future<Output = PortResult<()>> + Send;
    /// Gives up this system's role annotation.
    fn remove_service_account_annotation(
        &self,
        service_account: &ServiceAccountRef,
    ) -> impl Future<Output = PortResult<()>> + Send;
    /// A Kubernetes Event on the ServiceAccount, so `kubectl describe sa` tells what happened.
    fn record_event(
        &self,
        service_account: &ServiceAccountRef,
        reason: &str,
        message: &str,
        kind: EventType,
    ) -> impl Future<Output = PortResult<()>> + Send;
    /// Rolls a Deployment, StatefulSet or DaemonSet by setting its pod template annotation
    /// `eks-intents/restarted-at`, as this system's field manager.
    fn restart_workload(
        &self,
        namespace: &Namespace,
        kind: WorkloadKind,
        name: &WorkloadName,
        restarted_at: u64,
    ) -> impl Future<Output = PortResult<()>> + Send;
}

impl<T: KubernetesPort> KubernetesPort for &T {
    fn snapshot(
        &self,
        namespaces: &BTreeSet<Namespace>,
    ) -> impl Future<Output = PortResult<KubernetesSnapshot>> + Send {
        (**self).snapshot(namespaces)
    }
    fn annotate_service_account(
        &self,
        service_account: &ServiceAccountRef,
        role_arn: &RoleArn,
        force: Takeover,
    ) -> impl Future<Output = PortResult<()>> + Send {
        (**self).annotate_service_account(service_account, role_arn, force)
    }
    fn remove_service_account_annotation(
        &self,
        service_account: &ServiceAccountRef,
    ) -> impl Future<Output = PortResult<()>> + Send {
        (**self).remove_service_account_annotation(service_account)
    }
    fn record_event(
        &self,
        service_account: &ServiceAccountRef,
        reason: &str,
        message: &str,
        kind: EventType,
    ) -> impl Future<Output = PortResult<()>> + Send {
        (**self).record_event(service_account, reason, message, kind)
    }
    fn restart_workload(
        &self,
        namespace: &Namespace,
        kind: WorkloadKind,
        name: &WorkloadName,
        restarted_at: u64,
    ) -> impl Future<Output = PortResult<()>> + Send {
        (**self).restart_workload(namespace, kind, name, restarted_at)
    }
}

/// Opens the Kubernetes API of one cluster, from what `DescribeCluster` said of it.
pub trait KubernetesConnector: Send + Sync {
    type Port<'a>: KubernetesPort
    where
        Self: 'a;
    fn connect<'a>(
        &'a self,
        cluster: &ClusterDescription,
    ) -> impl Future<Output = PortResult<Self::Port<'a>>> + Send;
}
