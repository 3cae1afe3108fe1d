//! The eks-events handler: turns what happens to a cluster outside the bucket into reconcile
//! requests, so a change is acted on within a minute instead of at the next drift sweep. It
//! receives three kinds of payload:
//!
//! - CloudTrail "AWS API Call via CloudTrail" events of EKS, through an EventBridge rule:
//!   `CreateCluster`, `DeleteCluster`, `UpdateClusterConfig`, `Create/Update/DeleteAddon` and
//!   `Create/Update/DeletePodIdentityAssociation` reconcile the cluster they name;
//! - CloudTrail events of IAM (which arrive in us-east-1; the deployment forwards them) that
//!   change a role or a managed policy: the cluster of a role that still exists is the one its
//!   ownership tags name (a role without them is not the system's and is ignored); for a deleted
//!   role it is the first part of the role name `<cluster>.<namespace>.<serviceaccount>`, and for
//!   a policy the path segment after the IAM path (`/eks-intents/<cluster>/`);
//! - EKS control-plane audit logs, through a CloudWatch Logs subscription (`awslogs.data`: base64
//!   of gzip of JSON): a completed create, update, patch or delete of a ServiceAccount,
//!   Deployment, StatefulSet, DaemonSet, Job or CronJob in a namespace that has intents (one
//!   listing of `intents/<cluster>/` per cluster per invocation, only when an event needs it).
//!
//! Calls made by the system's own roles are ignored, so its own writes never trigger it again.
//!
//! **Other accounts.** With `EKS_INTENTS_ACCOUNT_ROLES` ([`handle_in_accounts`]), an EKS event
//! of an account with an account-id entry (its EventBridge `account`, for events that the
//! account's rules forward to the deployment's bus) asks for a reconcile in that account: its
//! messages name the account. An IAM event of another account may be about a workload's target
//! role there, whose cluster is in yet another account: its messages name no account (the
//! reconciler finds the cluster), and the cluster of a role it changed is the first part of the
//! role's name, as for a deleted one (the role's tags are in that account, which the
//! deployment's own IAM cannot read). The roles of `EKS_INTENTS_ACCOUNT_ROLES` count as the
//! system's own, so its writes there never trigger it either.
//! A failed call (`errorCode`), any other event, and a malformed payload are ignored with one log
//! line and never an error: only a port that cannot be reached fails the invocation.
//!
//! **Windows.** Many events for one cluster in a short time become one reconcile. Each
//! invocation sends at most one message per cluster, with the deduplication id
//! `events:<cluster>:<bucket>`, where `bucket = now / window_seconds` is taken from the arrival
//! time (the clock, not the event's time, which may be late), and with
//! `not_before = (bucket + 1) * window_seconds`. The FIFO queue drops the later messages of the
//! same id (it remembers ids for five minutes, hence a window of at most 300 seconds), and the
//! reconciler puts the one kept back until the window has closed: every event of the window has
//! then happened before the reconcile reads the cluster, so none is lost to the merge. An event
//! that arrives after its window closed falls in the next bucket and gets its own reconcile.

use base64::Engine;
use eks_intents::config::AccountRoles;
use eks_intents::intent::cluster_prefix;
use eks_intents::lambda::Retryable;
use eks_intents::metrics::Metrics;
use eks_intents::model::{ClusterName, ClusterRef, RoleName, arn_parts};
use eks_intents::policy::{CLUSTER_TAG, OWNER_TAG, OWNER_VALUE};
use eks_intents::ports::{
    BundleStore, DeduplicatedReconcile, ErrorKind, IamPort, PortError, ReconcileCluster,
    ReconcileQueue, SendError, StoreLevel, send_requests,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Read;

/// More than any CloudWatch Logs delivery decompresses to; a payload beyond it is refused.
const MAX_LOG_PAYLOAD: u64 = 64 << 20;
/// The longest window: SQS remembers a deduplication id for five minutes.
pub const MAX_WINDOW_SECONDS: u64 = 300;

/// Built once at cold start and borrowed by every invocation.
pub struct Context<I, S, Q> {
    pub iam: I,
    pub store: S,
    pub queue: Q,
    /// The IAM path under which the system's roles and policies live (`/eks-intents/`).
    pub iam_path: String,
    /// The deployment's region: EKS calls of other regions are not its business.
    pub region: String,
    /// ARNs of the system's own roles (`arn:aws:iam::<account>:role/<path>/<name>`).
    pub system_roles: Vec<String>,
    /// Events of one cluster within one window of this many seconds make one reconcile.
    pub window_seconds: u64,
    /// Seconds since the epoch (injectable for tests).
    pub now: fn() -> u64,
}

impl<I, S, Q> Context<I, S, Q> {
    pub fn classifier(&self) -> Classifier<'_> {
        Classifier {
            iam_path: &self.iam_path,
            region: &self.region,
            system_roles: &self.system_roles,
        }
    }
}

/// What `classify` needs to know of the deployment.
#[derive(Clone, Copy, Debug)]
pub struct Classifier<'a> {
    pub iam_path: &'a str,
    pub region: &'a str,
    pub system_roles: &'a [String],
}

/// What one event asks for, before any port is asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// The event names its cluster.
    Cluster {
        cluster: String,
        reason: String,
    },
    /// A role changed: its cluster is the one its tags name, if it is the system's.
    Role {
        role: String,
        reason: String,
    },
    /// A ServiceAccount or workload changed: its cluster is reconciled if the namespace has
    /// intents.
    Workload {
        cluster: String,
        namespace: String,
        reason: String,
    },
    Ignored(Ignored),
}

/// An event that asks for nothing, and why. Repeats of one reason are counted, not listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ignored {
    /// The event (the first one, when counted).
    pub what: String,
    pub why: String,
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub count: usize,
}

fn one() -> usize {
    1
}

fn is_one(count: &usize) -> bool {
    *count == 1
}

fn ignored(what: impl Into<String>, why: impl Into<String>) -> Finding {
    Finding::Ignored(Ignored {
        what: what.into(),
        why: why.into(),
        count: 1,
    })
}

/// What the handler did, returned to the caller (and logged).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub reconciles: Vec<DeduplicatedReconcile>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored: Vec<Ignored>,
}

/// Why an invocation failed: a port that could not be reached. Each keeps the port's error,
/// which says whether delivering the events again can help.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error("reading the tags of role {role} failed: {source}")]
    RoleTags {
        role: String,
        #[source]
        source: PortError,
    },
    #[error("listing {prefix} in the bucket failed: {source}")]
    Bundles {
        prefix: String,
        #[source]
        source: PortError,
    },
    #[error(transparent)]
    Send(#[from] SendError),
}

impl Retryable for EventsError {
    /// True when the invocation may succeed if tried again (throttled, a service unavailable).
    fn is_retryable(&self) -> bool {
        match self {
            EventsError::RoleTags { source, .. }
            | EventsError::Bundles { source, .. }
            | EventsError::Send(SendError { source, .. }) => source.is_retryable(),
        }
    }
}

/// The handler of a deployment whose clusters may be in other accounts: the context of its own
/// account, and the roles of `EKS_INTENTS_ACCOUNT_ROLES`.
pub struct InAccounts<I, S, Q> {
    pub home: Context<I, S, Q>,
    pub accounts: AccountRoles,
}

/// Handles the events of a deployment whose clusters are all in its own account.
pub async fn handle<I, S, Q>(ctx: &Context<I, S, Q>, event: &Value) -> Result<Response, EventsError>
where
    I: IamPort,
    S: BundleStore,
    Q: ReconcileQueue,
{
    handle_events(ctx, None, event).await
}

/// Handles the events of a deployment whose clusters may be in other accounts.
pub async fn handle_in_accounts<I, S, Q>(
    ctx: &InAccounts<I, S, Q>,
    event: &Value,
) -> Result<Response, EventsError>
where
    I: IamPort,
    S: BundleStore,
    Q: ReconcileQueue,
{
    handle_events(&ctx.home, Some(&ctx.accounts), event).await
}

/// The account an EventBridge event happened in, when it is one of the account-id entries of
/// `accounts` (the deployment's own account and unknown accounts: `None`).
pub fn event_account(event: &Value, accounts: &AccountRoles) -> Option<String> {
    let account = event.get("account").and_then(Value::as_str)?;
    accounts
        .accounts()
        .any(|(id, _)| id == account)
        .then(|| account.to_owned())
}

async fn handle_events<I, S, Q>(
    ctx: &Context<I, S, Q>,
    accounts: Option<&AccountRoles>,
    event: &Value,
) -> Result<Response, EventsError>
where
    I: IamPort,
    S: BundleStore,
    Q: ReconcileQueue,
{
    let mut wanted: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut ignored: Vec<Ignored> = Vec::new();
    let mut roles: BTreeMap<String, RoleTags> = BTreeMap::new();
    let mut levels: BTreeMap<String, StoreLevel> = BTreeMap::new();
    // The system's roles in the other accounts are its own too.
    let system_roles: Vec<String> = match accounts {
        None => Vec::new(),
        Some(accounts) => ctx
            .system_roles
            .iter()
            .cloned()
            .chain(accounts.roles().map(|r| r.as_str().to_owned()))
            .collect(),
    };
    let classifier = match accounts {
        None => ctx.classifier(),
        Some(_) => Classifier {
            system_roles: &system_roles,
            ..ctx.classifier()
        },
    };
    let account = accounts.and_then(|accounts| event_account(event, accounts));
    // Only an EKS event is surely in its cluster's account (see the module's comment).
    let iam_event = event.get("source").and_then(Value::as_str) == Some("aws.iam");
    let request_account = account.clone().filter(|_| !iam_event);
    for finding in classify(event, &classifier) {
        match finding {
            Finding::Cluster { cluster, reason } => wanted.entry(cluster).or_default().push(reason),
            Finding::Role { role, reason } if account.is_some() => {
                match cluster_of_role_name(&role) {
                    Some(cluster) => wanted.entry(cluster.to_owned()).or_default().push(reason),
                    None => count(
                        &mut ignored,
                        Ignored {
                            what: reason,
                            why: "the role's name is not <cluster>.<namespace>.<serviceaccount>"
                                .to_owned(),
                            count: 1,
                        },
                    ),
                }
            }
            Finding::Role { role, reason } => {
                if !roles.contains_key(&role) {
                    let tags = match ctx.iam.role_tags(&RoleName::new(role.clone())).await {
                        Ok(tags) => RoleTags::Read(tags),
                        // The functions may read roles under the system's path only: a role
                        // they may not read is someone else's. (Expired or invalid credentials
                        // are another kind: they fail the invocation.)
                        Err(e) if e.kind == ErrorKind::Denied => RoleTags::Unreadable,
                        Err(source) => return Err(EventsError::RoleTags { role, source }),
                    };
                    roles.insert(role.clone(), tags);
                }
                let found = match roles.get(&role) {
                    Some(RoleTags::Read(tags)) => cluster_of_role_tags(tags.as_ref(), &ctx.region),
                    _ => Err(
                        "the role may not be read: it is outside the system's IAM path".to_owned(),
                    ),
                };
                match found {
                    Ok(cluster) => wanted.entry(cluster).or_default().push(reason),
                    Err(why) => count(
                        &mut ignored,
                        Ignored {
                            what: reason,
                            why,
                            count: 1,
                        },
                    ),
                }
            }
            Finding::Workload {
                cluster,
                namespace,
                reason,
            } => {
                if !levels.contains_key(&cluster) {
                    let prefix = cluster_prefix(&cluster);
                    let level = ctx.store.list_level(&prefix).await.map_err(|source| {
                        EventsError::Bundles {
                            prefix: prefix.clone(),
                            source,
                        }
                    })?;
                    levels.insert(cluster.clone(), level);
                }
                let level = &levels[&cluster];
                if has_intents(level, &cluster, &namespace) {
                    wanted.entry(cluster).or_default().push(reason);
                } else {
                    let why = format!("namespace {namespace} of cluster {cluster} has no intents");
                    count(
                        &mut ignored,
                        Ignored {
                            what: reason,
                            why,
                            count: 1,
                        },
                    );
                }
            }
            Finding::Ignored(one) => count(&mut ignored, one),
        }
    }

    let now = (ctx.now)();
    let reconciles: Vec<DeduplicatedReconcile> = wanted
        .into_iter()
        .map(|(cluster, reasons)| {
            let mut request = windowed(&cluster, &reasons, now, ctx.window_seconds);
            request.message.account = request_account.clone();
            request
        })
        .collect();
    send_requests(&ctx.queue, &reconciles).await?;
    for request in &reconciles {
        tracing::info!(
            cluster = %request.message.cluster,
            reason = %request.message.reason,
            deduplication_id = %request.deduplication_id,
            not_before = request.message.not_before,
            "reconcile requested"
        );
    }
    for one in &ignored {
        tracing::info!(what = %one.what, why = %one.why, count = one.count, "event ignored");
    }
    Ok(Response {
        reconciles,
        ignored,
    })
}

/// What reading a role's tags gave.
enum RoleTags {
    /// The tags, or `None` when the role does not exist.
    Read(Option<BTreeMap<String, String>>),
    /// Access denied.
    Unreadable,
}

/// Adds an ignored event, counting it with an earlier one of the same reason.
fn count(ignored: &mut Vec<Ignored>, one: Ignored) {
    match ignored.iter_mut().find(|i| i.why == one.why) {
        Some(earlier) => earlier.count += one.count,
        None => ignored.push(one),
    }
}

/// The one request of `cluster` for the window `now` falls in.
pub fn windowed(
    cluster: &str,
    reasons: &[String],
    now: u64,
    window_seconds: u64,
) -> DeduplicatedReconcile {
    let window = window_seconds.max(1);
    let bucket = now / window;
    let reason = match reasons {
        [] => "eks-events".to_owned(),
        [only] => only.clone(),
        [first, rest @ ..] => format!("{first} (and {} more)", rest.len()),
    };
    let mut message = ReconcileCluster::new(cluster, reason);
    message.not_before = Some((bucket + 1) * window);
    DeduplicatedReconcile {
        message,
        deduplication_id: deduplication_id(cluster, bucket),
    }
}

/// `events:<cluster>:<bucket>`, within SQS's 128 characters of printable ASCII; a cluster name
/// that would break either rule is replaced by a hash of it.
pub fn deduplication_id(cluster: &str, bucket: u64) -> String {
    DeduplicatedReconcile::id("events", cluster, bucket)
}

/// Whether `intents/<cluster>/` (as listed one level down) holds intents for `namespace`: a
/// prefix of that namespace, or any bundle at the cluster level (platform bundles can name any
/// namespace).
pub fn has_intents(level: &StoreLevel, cluster: &str, namespace: &str) -> bool {
    let prefix = format!("{}{namespace}/", cluster_prefix(cluster));
    !level.objects.is_empty() || level.prefixes.contains(&prefix)
}

/// The cluster of a role by its tags: owned, and tagged with a cluster of this region.
fn cluster_of_role_tags(
    tags: Option<&BTreeMap<String, String>>,
    region: &str,
) -> Result<String, String> {
    let Some(tags) = tags else {
        return Err("the role no longer exists (its DeleteRole event reconciles it)".into());
    };
    if tags.get(OWNER_TAG).map(String::as_str) != Some(OWNER_VALUE) {
        return Err(format!("the role is not the system's (no {OWNER_TAG} tag)"));
    }
    let Some(arn) = tags.get(CLUSTER_TAG) else {
        return Err(format!("the role has no {CLUSTER_TAG} tag"));
    };
    match ClusterRef::from_arn(arn) {
        Some(c) if c.region.as_str() == region => Ok(c.name.as_str().to_owned()),
        Some(c) => Err(format!(
            "the role belongs to {arn}, in region {}, not {region}",
            c.region
        )),
        None => Err(format!(
            "the role's {CLUSTER_TAG} tag {arn:?} is not an EKS cluster ARN"
        )),
    }
}

/// What each event of the payload asks for. Pure: no port is asked.
pub fn classify(event: &Value, c: &Classifier<'_>) -> Vec<Finding> {
    if let Some(awslogs) = event.get("awslogs") {
        return audit_findings(awslogs, c);
    }
    let source = event.get("source").and_then(Value::as_str);
    let kind = event.get("detail-type").and_then(Value::as_str);
    let detail = event.get("detail").unwrap_or(&Value::Null);
    match (source, kind) {
        (Some("aws.eks"), Some("AWS API Call via CloudTrail")) => vec![eks_call(detail, c)],
        (Some("aws.iam"), Some("AWS API Call via CloudTrail")) => vec![iam_call(detail, c)],
        (source, kind) => vec![ignored(
            format!(
                "event {} / {}",
                source.unwrap_or("(no source)"),
                kind.unwrap_or("(no detail-type)")
            ),
            "neither a CloudTrail call of EKS or IAM nor a CloudWatch Logs payload",
        )],
    }
}

/// The parts of a CloudTrail record every call needs.
struct Call<'a> {
    name: &'a str,
    source: &'a str,
    params: &'a Value,
    /// Who made the call, for the reason.
    caller: &'a str,
}

impl<'a> Call<'a> {
    fn read(detail: &'a Value) -> Self {
        let identity = detail.get("userIdentity").unwrap_or(&Value::Null);
        let caller = [
            identity.get("arn"),
            identity.pointer("/sessionContext/sessionIssuer/arn"),
            identity.get("invokedBy"),
            identity.get("principalId"),
        ]
        .into_iter()
        .flatten()
        .find_map(Value::as_str)
        .unwrap_or("an unknown caller");
        Call {
            name: str_at(detail, "/eventName").unwrap_or_default(),
            source: str_at(detail, "/eventSource").unwrap_or_default(),
            params: detail.get("requestParameters").unwrap_or(&Value::Null),
            caller,
        }
    }

    fn what(&self, service: &str) -> String {
        format!("{service} {} by {}", self.name, self.caller)
    }
}

/// Checks common to every CloudTrail call: the service, success, and a caller other than the
/// system itself.
fn screen(detail: &Value, call: &Call<'_>, service: &str, c: &Classifier<'_>) -> Option<Finding> {
    let expected = format!("{service}.amazonaws.com");
    if call.source != expected {
        return Some(ignored(
            call.what(service),
            format!("eventSource {:?} is not {expected}", call.source),
        ));
    }
    if let Some(code) = detail.get("errorCode").filter(|v| !v.is_null()) {
        return Some(ignored(
            call.what(service),
            format!(
                "the call failed ({}), so it changed nothing",
                code.as_str().unwrap_or("errorCode")
            ),
        ));
    }
    let identity = detail.get("userIdentity").unwrap_or(&Value::Null);
    let callers = [
        identity.pointer("/sessionContext/sessionIssuer/arn"),
        identity.get("arn"),
    ];
    if let Some(arn) = callers
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .find(|arn| is_system_caller(arn, c.system_roles))
    {
        return Some(ignored(
            call.what(service),
            format!("made by the system's own role ({arn})"),
        ));
    }
    None
}

fn eks_call(detail: &Value, c: &Classifier<'_>) -> Finding {
    let call = Call::read(detail);
    if let Some(screened) = screen(detail, &call, "eks", c) {
        return screened;
    }
    if let Some(region) = str_at(detail, "/awsRegion")
        && region != c.region
    {
        return ignored(
            call.what("eks"),
            format!("a call in region {region}, not {}", c.region),
        );
    }
    let field = match call.name {
        "CreateCluster" | "DeleteCluster" | "UpdateClusterConfig" => "name",
        "CreateAddon"
        | "UpdateAddon"
        | "DeleteAddon"
        | "CreatePodIdentityAssociation"
        | "UpdatePodIdentityAssociation"
        | "DeletePodIdentityAssociation" => "clusterName",
        other => {
            return ignored(
                call.what("eks"),
                format!("EKS call {other:?} changes nothing the system binds"),
            );
        }
    };
    match call.params.get(field).and_then(Value::as_str) {
        Some(cluster) if ClusterName::is_valid(cluster) => Finding::Cluster {
            cluster: cluster.to_owned(),
            reason: call.what("eks"),
        },
        Some(other) => ignored(
            call.what("eks"),
            format!("requestParameters.{field} {other:?} is not an EKS cluster name"),
        ),
        None => ignored(call.what("eks"), format!("no requestParameters.{field}")),
    }
}

fn iam_call(detail: &Value, c: &Classifier<'_>) -> Finding {
    let call = Call::read(detail);
    if let Some(screened) = screen(detail, &call, "iam", c) {
        return screened;
    }
    match call.name {
        "PutRolePolicy"
        | "DeleteRolePolicy"
        | "AttachRolePolicy"
        | "DetachRolePolicy"
        | "UpdateAssumeRolePolicy"
        | "PutRolePermissionsBoundary"
        | "DeleteRolePermissionsBoundary"
        | "TagRole"
        | "UntagRole"
        | "DeleteRole" => {
            let Some(role) = call.params.get("roleName").and_then(Value::as_str) else {
                return ignored(call.what("iam"), "no requestParameters.roleName");
            };
            let reason = format!("iam {} on {role} by {}", call.name, call.caller);
            if !is_role_name(role) {
                return ignored(reason, format!("{role:?} is not an IAM role name"));
            }
            if call.name != "DeleteRole" {
                return Finding::Role {
                    role: role.to_owned(),
                    reason,
                };
            }
            // The role and its tags are gone: its name is all that tells the cluster.
            match cluster_of_role_name(role) {
                Some(cluster) => Finding::Cluster {
                    cluster: cluster.to_owned(),
                    reason,
                },
                None => ignored(
                    reason,
                    "the role's name is not <cluster>.<namespace>.<serviceaccount>",
                ),
            }
        }
        "CreatePolicyVersion" | "SetDefaultPolicyVersion" | "DeletePolicy" => {
            let Some(arn) = call.params.get("policyArn").and_then(Value::as_str) else {
                return ignored(call.what("iam"), "no requestParameters.policyArn");
            };
            let reason = format!("iam {} on {arn} by {}", call.name, call.caller);
            match cluster_of_policy_arn(arn, c.iam_path) {
                Some(cluster) => Finding::Cluster {
                    cluster: cluster.to_owned(),
                    reason,
                },
                None => ignored(
                    reason,
                    format!("the policy is not under {}<cluster>/", c.iam_path),
                ),
            }
        }
        other => ignored(
            call.what("iam"),
            format!("IAM call {other:?} changes no role or policy the system owns"),
        ),
    }
}

/// The cluster part of a role name `<cluster>.<namespace>.<serviceaccount>`, or of one cut to
/// 64 characters with `@<hash>` (`None` when the cut reached into the cluster name).
pub fn cluster_of_role_name(role: &str) -> Option<&str> {
    let (cluster, rest) = role.split_once('.')?;
    let shaped = rest.contains('.') || rest.contains('@');
    (shaped && ClusterName::is_valid(cluster)).then_some(cluster)
}

/// The cluster of a managed policy `arn:<partition>:iam::<account>:policy<iam path><cluster>/<name>`.
pub fn cluster_of_policy_arn<'a>(arn: &'a str, iam_path: &str) -> Option<&'a str> {
    let [prefix, _partition, service, _region, _account, resource] = arn_parts(arn)?;
    if prefix != "arn" || service != "iam" {
        return None;
    }
    let path_and_name = resource.strip_prefix("policy")?;
    let base = format!("/{}/", iam_path.trim_matches('/'));
    let rest = path_and_name.strip_prefix(base.as_str())?;
    let (cluster, name) = rest.split_once('/')?;
    (ClusterName::is_valid(cluster) && !name.is_empty() && !name.contains('/')).then_some(cluster)
}

/// The account and role name of a role ARN (`arn:<p>:iam::<account>:role/<path>/<name>`) or of
/// an assumed-role session ARN (`arn:<p>:sts::<account>:assumed-role/<name>/<session>`, which
/// drops the path).
pub fn role_of_arn(arn: &str) -> Option<(&str, &str)> {
    let [prefix, _partition, service, _region, account, resource] = arn_parts(arn)?;
    if prefix != "arn" || account.is_empty() {
        return None;
    }
    let name = match service {
        "iam" => resource.strip_prefix("role/")?.rsplit('/').next()?,
        "sts" => resource.strip_prefix("assumed-role/")?.split('/').next()?,
        _ => return None,
    };
    (!name.is_empty()).then_some((account, name))
}

/// Whether `arn` (a role, or a session of a role) is one of the system's own roles.
pub fn is_system_caller(arn: &str, system_roles: &[String]) -> bool {
    let Some(caller) = role_of_arn(arn) else {
        return false;
    };
    system_roles
        .iter()
        .any(|system| role_of_arn(system) == Some(caller))
}

/// IAM's rule for role names: 1 to 64 characters of `[\w+=,.@-]`.
fn is_role_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c))
}

/// Reads the system's role ARNs from a comma-separated list; each must be a role ARN.
pub fn parse_system_roles(raw: &str) -> Result<Vec<String>, String> {
    let roles: Vec<String> = raw
        .split(',')
        .map(str::trim)
        .filter(|arn| !arn.is_empty())
        .map(str::to_owned)
        .collect();
    if roles.is_empty() {
        return Err("lists no role ARN".into());
    }
    for arn in &roles {
        if !arn.contains(":role/") || role_of_arn(arn).is_none() {
            return Err(format!(
                "{arn:?} is not a role ARN like arn:aws:iam::123456789012:role/eks-intents/reconciler"
            ));
        }
    }
    Ok(roles)
}

/// Reads the window length: 1 to 300 seconds.
pub fn parse_window(raw: &str) -> Result<u64, String> {
    match raw.trim().parse::<u64>() {
        Ok(seconds) if (1..=MAX_WINDOW_SECONDS).contains(&seconds) => Ok(seconds),
        _ => Err(format!(
            "{raw:?} is not a number of seconds from 1 to {MAX_WINDOW_SECONDS} (SQS remembers a deduplication id for five minutes)"
        )),
    }
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str)
}

/// The resources whose change can call for a new role or binding, with their API group.
const WATCHED: &[(&str, &str)] = &[
    ("serviceaccounts", ""),
    ("deployments", "apps"),
    ("statefulsets", "apps"),
    ("daemonsets", "apps"),
    ("jobs", "batch"),
    ("cronjobs", "batch"),
];
const CHANGING_VERBS: &[&str] = &["create", "update", "patch", "delete", "deletecollection"];

/// A CloudWatch Logs subscription payload: decoded, then each audit event screened.
fn audit_findings(awslogs: &Value, c: &Classifier<'_>) -> Vec<Finding> {
    const WHAT: &str = "CloudWatch Logs payload";
    let Some(data) = awslogs.get("data").and_then(Value::as_str) else {
        return vec![ignored(WHAT, "awslogs.data is not a string")];
    };
    let compressed = match base64::engine::general_purpose::STANDARD.decode(data.trim()) {
        Ok(bytes) => bytes,
        Err(e) => return vec![ignored(WHAT, format!("awslogs.data is not base64: {e}"))],
    };
    let mut json = Vec::new();
    let read = flate2::read::GzDecoder::new(compressed.as_slice())
        .take(MAX_LOG_PAYLOAD + 1)
        .read_to_end(&mut json);
    if let Err(e) = read {
        return vec![ignored(WHAT, format!("awslogs.data is not gzip: {e}"))];
    }
    if json.len() as u64 > MAX_LOG_PAYLOAD {
        return vec![ignored(
            WHAT,
            format!("awslogs.data decompresses to more than {MAX_LOG_PAYLOAD} bytes"),
        )];
    }
    let logs: Value = match serde_json::from_slice(&json) {
        Ok(logs) => logs,
        Err(e) => return vec![ignored(WHAT, format!("awslogs.data is not JSON: {e}"))],
    };
    let group = str_at(&logs, "/logGroup").unwrap_or_default();
    let what = format!("CloudWatch Logs payload of {group:?}");
    if str_at(&logs, "/messageType") == Some("CONTROL_MESSAGE") {
        return vec![ignored(what, "a control message of the subscription")];
    }
    let Some(cluster) = group
        .strip_prefix("/aws/eks/")
        .and_then(|rest| rest.strip_suffix("/cluster"))
        .filter(|cluster| ClusterName::is_valid(cluster))
    else {
        return vec![ignored(
            what,
            "not the control-plane log group /aws/eks/<cluster>/cluster of an EKS cluster",
        )];
    };
    if let Some(stream) = str_at(&logs, "/logStream")
        && !stream.starts_with("kube-apiserver-audit")
    {
        return vec![ignored(
            what,
            format!("log stream {stream:?} is not the audit log (kube-apiserver-audit-*)"),
        )];
    }
    let Some(events) = logs.get("logEvents").and_then(Value::as_array) else {
        return vec![ignored(what, "no logEvents")];
    };
    events
        .iter()
        .map(|event| match event.get("message").and_then(Value::as_str) {
            Some(message) => match serde_json::from_str::<Value>(message) {
                Ok(audit) => audit_event(cluster, &audit, c),
                Err(_) => ignored(
                    format!("a log event of cluster {cluster}"),
                    "its message is not a JSON audit event",
                ),
            },
            None => ignored(
                format!("a log event of cluster {cluster}"),
                "it has no message",
            ),
        })
        .collect()
}

/// One Kubernetes audit event (`audit.k8s.io/v1` `Event`) of `cluster`.
fn audit_event(cluster: &str, event: &Value, c: &Classifier<'_>) -> Finding {
    let verb = str_at(event, "/verb").unwrap_or_default();
    let resource = str_at(event, "/objectRef/resource").unwrap_or_default();
    let namespace = str_at(event, "/objectRef/namespace");
    let name = str_at(event, "/objectRef/name").unwrap_or("*");
    let user = str_at(event, "/user/username").unwrap_or("an unknown user");
    let what = format!(
        "audit {verb} {resource} {}/{name} by {user} in cluster {cluster}",
        namespace.unwrap_or("-")
    );
    if str_at(event, "/kind") != Some("Event")
        || !str_at(event, "/apiVersion").is_some_and(|v| v.starts_with("audit.k8s.io/"))
    {
        return ignored(
            format!("a log event of cluster {cluster}"),
            "not a Kubernetes audit event",
        );
    }
    let stage = str_at(event, "/stage").unwrap_or_default();
    if stage != "ResponseComplete" {
        return ignored(
            what,
            format!("stage {stage} (only ResponseComplete counts)"),
        );
    }
    if !CHANGING_VERBS.contains(&verb) {
        return ignored(what, format!("verb {verb:?} changes nothing"));
    }
    let group = str_at(event, "/objectRef/apiGroup").unwrap_or_default();
    let watched = WATCHED.iter().any(|(r, g)| *r == resource && *g == group);
    if !watched
        || event
            .pointer("/objectRef/subresource")
            .is_some_and(|s| !s.is_null())
    {
        return ignored(
            what,
            "not a ServiceAccount, Deployment, StatefulSet, DaemonSet, Job or CronJob",
        );
    }
    let Some(namespace) = namespace.filter(|n| !n.is_empty()) else {
        return ignored(what, "no namespace");
    };
    match event
        .pointer("/responseStatus/code")
        .and_then(Value::as_u64)
    {
        Some(code) if code < 400 => {}
        Some(code) => return ignored(what, format!("the request failed ({code})")),
        None => return ignored(what, "no response status"),
    }
    let mut callers = vec![str_at(event, "/user/username")];
    for key in ["arn", "canonicalArn"] {
        if let Some(values) = event.pointer(&format!("/user/extra/{key}")) {
            match values {
                Value::Array(values) => callers.extend(values.iter().map(Value::as_str)),
                other => callers.push(other.as_str()),
            }
        }
    }
    if let Some(arn) = callers
        .into_iter()
        .flatten()
        .find(|arn| is_system_caller(arn, c.system_roles))
    {
        return ignored(what, format!("made by the system's own role ({arn})"));
    }
    Finding::Workload {
        cluster: cluster.to_owned(),
        namespace: namespace.to_owned(),
        reason: format!("audit {verb} {resource} {namespace}/{name} by {user}"),
    }
}

/// The figures of one invocation: reconciles asked for, events ignored (counted), errors.
pub fn metrics(result: &Result<Response, EventsError>) -> Metrics {
    let mut metrics = Metrics::new("eks-events", None);
    match result {
        Ok(response) => metrics
            .count("ReconcilesRequested", response.reconciles.len())
            .count(
                "EventsIgnored",
                response.ignored.iter().map(|i| i.count).sum::<usize>(),
            )
            .count("Errors", 0),
        Err(_) => metrics.count("Errors", 1),
    };
    metrics
}

#[cfg(test)]
mod tests;
