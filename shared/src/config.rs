//! Deployment-wide configuration from environment variables, read once at cold start. A bad or
//! missing value is a clear error naming the variable, before any event is handled.

use crate::adapters::aws::AwsSettings;
use crate::apply::ApplySettings;
use crate::model::{BindingMode, ClusterName, PolicyArn, RoleArn, Settings, arn_parts};
use crate::reconcile::ReconcileSettings;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
#[error("configuration: {variable}: {message}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub message: String,
}

/// Everything a function or the CLI needs to know about its deployment.
#[derive(Clone, Debug)]
pub struct Config {
    /// The bucket holding `intents/` and `status/`.
    pub bucket: String,
    /// The FIFO queue of reconcile requests (needed by the functions that send them).
    pub queue_url: Option<String>,
    pub reconcile: ReconcileSettings,
    pub aws: AwsSettings,
    /// The roles the deployment acts through in the accounts of its clusters (none: every
    /// cluster is in the deployment's own account).
    pub accounts: AccountRoles,
}

pub const BUCKET: &str = "EKS_INTENTS_BUCKET";
pub const QUEUE_URL: &str = "EKS_INTENTS_QUEUE_URL";
pub const MODE: &str = "EKS_INTENTS_MODE";
pub const PERMISSIONS_BOUNDARY: &str = "EKS_INTENTS_PERMISSIONS_BOUNDARY";
pub const IAM_PATH: &str = "EKS_INTENTS_IAM_PATH";
/// The system's own resources, as ARNs separated by commas or whitespace.
pub const SYSTEM_RESOURCES: &str = "EKS_INTENTS_SYSTEM_RESOURCES";
pub const ALLOW_DEFAULT_SA: &str = "EKS_INTENTS_ALLOW_DEFAULT_SERVICE_ACCOUNT";
pub const DELETION_GRACE: &str = "EKS_INTENTS_DELETION_GRACE_SECONDS";
pub const MAX_DELETIONS: &str = "EKS_INTENTS_MAX_DELETIONS_PER_RUN";
pub const MAX_ATTEMPTS: &str = "EKS_INTENTS_MAX_ATTEMPTS";
pub const RETRY_BUDGET: &str = "EKS_INTENTS_RETRY_BUDGET_SECONDS";
pub const CONCURRENCY: &str = "EKS_INTENTS_CONCURRENCY";
pub const PROPAGATION_TIMEOUT: &str = "EKS_INTENTS_IAM_PROPAGATION_SECONDS";
pub const S3_PATH_STYLE: &str = "EKS_INTENTS_S3_PATH_STYLE";
pub const ROLLOUT: &str = "EKS_INTENTS_ROLLOUT";
pub const REQUIRE_BOUNDARY: &str = "EKS_INTENTS_REQUIRE_BOUNDARY";
pub const FORCE_ANNOTATIONS: &str = "EKS_INTENTS_FORCE_ANNOTATIONS";
pub const REFUSE_DANGEROUS: &str = "EKS_INTENTS_REFUSE_DANGEROUS";
pub const DANGEROUS_EXCEPTIONS: &str = "EKS_INTENTS_DANGEROUS_EXCEPTIONS";
pub const SOFT_DELETE: &str = "EKS_INTENTS_SOFT_DELETE";
/// Pod Identity: each association carries its workload's declared policy as session policy.
pub const SESSION_POLICIES: &str = "EKS_INTENTS_SESSION_POLICIES";
/// An add-on's ServiceAccount without intents gets a role with the policies EKS recommends.
pub const ADDON_RECOMMENDED_POLICIES: &str = "EKS_INTENTS_ADDON_RECOMMENDED_POLICIES";
pub const REPORT_ONLY: &str = "EKS_INTENTS_REPORT_ONLY";
pub const NOT_READY_RETRY: &str = "EKS_INTENTS_NOT_READY_RETRY_SECONDS";
/// A status report that would not change is written anyway once it is this old (seconds).
pub const STATUS_REFRESH: &str = "EKS_INTENTS_STATUS_REFRESH_SECONDS";
/// How long a warm reconciler plans against an account's IAM quotas before reading them again
/// (seconds).
pub const QUOTA_REFRESH: &str = "EKS_INTENTS_QUOTA_REFRESH_SECONDS";
/// The region Lambda runs in (set by the runtime; the CLI takes it from its AWS configuration).
pub const REGION: &str = "AWS_REGION";

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &'static str| lookup(name).filter(|v| !v.trim().is_empty());
        let bucket = get(BUCKET).ok_or(ConfigError {
            variable: BUCKET,
            message: "not set; it names the S3 bucket that holds intents/ and status/".into(),
        })?;
        let plan = plan_settings(&lookup)?;
        let accounts = account_roles(&get)?;
        let apply_defaults = ApplySettings::default();
        let apply = ApplySettings {
            concurrency: parse(&get, CONCURRENCY, apply_defaults.concurrency)?.max(1),
            propagation_timeout: Duration::from_secs(parse(
                &get,
                PROPAGATION_TIMEOUT,
                apply_defaults.propagation_timeout.as_secs(),
            )?),
            propagation_backoff: apply_defaults.propagation_backoff,
        };
        let aws_defaults = AwsSettings::default();
        Ok(Config {
            bucket,
            queue_url: get(QUEUE_URL),
            reconcile: ReconcileSettings {
                plan,
                apply,
                report_only: parse(&get, REPORT_ONLY, false)?,
                region: get(REGION),
                not_ready_retry: Duration::from_secs(parse(
                    &get,
                    NOT_READY_RETRY,
                    ReconcileSettings::default().not_ready_retry.as_secs(),
                )?),
                status_refresh: Duration::from_secs(parse(
                    &get,
                    STATUS_REFRESH,
                    ReconcileSettings::default().status_refresh.as_secs(),
                )?),
                quota_refresh: Duration::from_secs(parse(
                    &get,
                    QUOTA_REFRESH,
                    ReconcileSettings::default().quota_refresh.as_secs(),
                )?),
                ..ReconcileSettings::default()
            },
            aws: AwsSettings {
                max_attempts: parse(&get, MAX_ATTEMPTS, aws_defaults.max_attempts)?.max(1),
                retry_budget: Duration::from_secs(parse(
                    &get,
                    RETRY_BUDGET,
                    aws_defaults.retry_budget.as_secs(),
                )?),
                s3_path_style: parse(&get, S3_PATH_STYLE, aws_defaults.s3_path_style)?,
                ..aws_defaults
            },
            accounts,
        })
    }

    pub fn require_queue(&self) -> Result<&str, ConfigError> {
        self.queue_url.as_deref().ok_or(ConfigError {
            variable: QUEUE_URL,
            message: "not set; it names the SQS FIFO queue of reconcile requests".into(),
        })
    }

    /// The region, for a function that works in one; `names` says what it is for.
    pub fn require_region(&self, names: &str) -> Result<String, ConfigError> {
        self.reconcile.region.clone().ok_or_else(|| ConfigError {
            variable: REGION,
            message: format!("not set; it names {names}"),
        })
    }
}

/// A variable of one function's own (the rest are read by `Config`); `None` when unset or
/// blank.
pub fn variable(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn parse<T: std::str::FromStr>(
    get: &impl Fn(&'static str) -> Option<String>,
    name: &'static str,
    default: T,
) -> Result<T, ConfigError> {
    match get(name) {
        None => Ok(default),
        Some(raw) => raw.trim().parse().map_err(|_| ConfigError {
            variable: name,
            message: format!("{raw:?} is not a valid value"),
        }),
    }
}

/// The planner's settings alone, from the same variables as the deployment: what `eks-intents
/// validate --settings` reads, so a preview refuses exactly what the reconciler would.
pub fn plan_settings(lookup: impl Fn(&str) -> Option<String>) -> Result<Settings, ConfigError> {
    let get = |name: &'static str| lookup(name).filter(|v| !v.trim().is_empty());
    let defaults = Settings::default();
    let mode = match get(MODE).as_deref() {
        None | Some("irsa") => BindingMode::Irsa,
        Some("pod-identity") => BindingMode::PodIdentity,
        Some(other) => {
            return Err(ConfigError {
                variable: MODE,
                message: format!("{other:?} is not a mode; use irsa or pod-identity"),
            });
        }
    };
    let iam_path = get(IAM_PATH).unwrap_or(defaults.iam_path);
    if !(iam_path.starts_with('/') && iam_path.ends_with('/')) || iam_path.len() > 400 {
        return Err(ConfigError {
            variable: IAM_PATH,
            message: format!("{iam_path:?} must start and end with / (for example /eks-intents/)"),
        });
    }
    let permissions_boundary = get(PERMISSIONS_BOUNDARY);
    if let Some(arn) = &permissions_boundary
        && !(arn.starts_with("arn:") && arn.contains(":policy/"))
    {
        return Err(ConfigError {
            variable: PERMISSIONS_BOUNDARY,
            message: format!("{arn:?} is not the ARN of a managed policy"),
        });
    }
    let system_resources: Vec<String> = get(SYSTEM_RESOURCES)
        .unwrap_or_default()
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|arn| !arn.is_empty())
        .map(str::to_owned)
        .collect();
    if let Some(bad) = system_resources
        .iter()
        .find(|arn| !arn.starts_with("arn:") || arn.split(':').count() < 6)
    {
        return Err(ConfigError {
            variable: SYSTEM_RESOURCES,
            message: format!(
                "{bad:?} is not an ARN; list the ARNs of the system's bucket, queues, functions and their roles, separated by commas"
            ),
        });
    }
    let danger_exceptions = match get(DANGEROUS_EXCEPTIONS) {
            None => Vec::new(),
            Some(json) => serde_json::from_str(&json).map_err(|e| ConfigError {
                variable: DANGEROUS_EXCEPTIONS,
                message: format!(
                    "not a JSON list of exceptions like [{{\"namespace\": \"platform\", \"workload\": \"crossplane\", \"action\": \"iam:PassRole\"}}]: {e}"
                ),
            })?,
        };
    Ok(Settings {
        mode,
        iam_path,
        permissions_boundary: permissions_boundary.map(PolicyArn::new),
        system_resources,
        require_boundary: parse(&get, REQUIRE_BOUNDARY, true)?,
        force_annotations: parse(&get, FORCE_ANNOTATIONS, false)?,
        refuse_dangerous: parse(&get, REFUSE_DANGEROUS, true)?,
        danger_exceptions,
        allow_default_service_account: parse(&get, ALLOW_DEFAULT_SA, false)?,
        deletion_grace_seconds: parse(&get, DELETION_GRACE, defaults.deletion_grace_seconds)?,
        max_deletions_per_run: parse(&get, MAX_DELETIONS, defaults.max_deletions_per_run)?,
        soft_delete: parse(&get, SOFT_DELETE, false)?,
        session_policies: parse(&get, SESSION_POLICIES, false)?,
        addon_recommended_policies: parse(&get, ADDON_RECOMMENDED_POLICIES, false)?,
        // Every account the deployment has a role in may hold workloads' target roles.
        target_accounts: account_roles(&get)?
            .roles()
            .filter_map(|role| role_account(role.as_str()).ok())
            .map(str::to_owned)
            .collect::<BTreeSet<_>>(),
        bucket_accounts: bucket_accounts(&get)?,
        quotas: defaults.quotas,
        rollout_restart: match get(ROLLOUT).as_deref() {
            None | Some("none") => false,
            Some("restart") => true,
            Some(other) => {
                return Err(ConfigError {
                    variable: ROLLOUT,
                    message: format!("{other:?} is not a rollout setting; use none or restart"),
                });
            }
        },
    })
}

/// The accounts of S3 buckets of other accounts, whose ARNs name none: a JSON object from a
/// bucket name (or a prefix ending in `*`) to a 12-digit account id, for example
/// `{"reports-archive": "333333333333", "data-lake-*": "444444444444"}`. Grants on a bucket named
/// here go to the workload's target role in that account.
pub const BUCKET_ACCOUNTS: &str = "EKS_INTENTS_BUCKET_ACCOUNTS";

fn bucket_accounts(
    get: &impl Fn(&'static str) -> Option<String>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let Some(json) = get(BUCKET_ACCOUNTS) else {
        return Ok(BTreeMap::new());
    };
    let error = |message: String| ConfigError {
        variable: BUCKET_ACCOUNTS,
        message,
    };
    let entries: BTreeMap<String, serde_json::Value> = serde_json::from_str(&json).map_err(|e| {
        error(format!(
            "not a JSON object from bucket names to account ids, like {{\"reports-archive\": \"333333333333\"}}: {e}"
        ))
    })?;
    let mut buckets = BTreeMap::new();
    for (bucket, value) in entries {
        let name = bucket.strip_suffix('*').unwrap_or(&bucket);
        // S3's rule for a bucket name: 3 to 63 of [a-z0-9.-]; a prefix may be shorter.
        if name.is_empty()
            || name.len() > 63
            || name.contains('*')
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        {
            return Err(error(format!(
                "entry {bucket:?} is not a bucket name (lowercase letters, digits, . and -) or a prefix of one ending in *"
            )));
        }
        let account = value.as_str().filter(|a| is_account_id(a)).ok_or_else(|| {
            error(format!(
                "entry {bucket:?}: {value} is not a 12-digit account id (a JSON string)"
            ))
        })?;
        buckets.insert(bucket.clone(), account.to_owned());
    }
    Ok(buckets)
}

// ---- Clusters in many accounts (issue 14) ----------------------------------------------------

/// Which role the deployment assumes for a cluster in another account: a JSON object from a
/// cluster name or a 12-digit account id to the ARN of a role in that account, for example
/// `{"prod-eu": "arn:aws:iam::222222222222:role/eks-intents/eks-intents-account",
/// "333333333333": "arn:aws:iam::333333333333:role/eks-intents/eks-intents-account"}`.
pub const ACCOUNT_ROLES: &str = "EKS_INTENTS_ACCOUNT_ROLES";
/// The external id every role of `EKS_INTENTS_ACCOUNT_ROLES` is assumed with (required with it).
pub const ACCOUNT_ROLE_EXTERNAL_ID: &str = "EKS_INTENTS_ACCOUNT_ROLE_EXTERNAL_ID";

/// The roles of `EKS_INTENTS_ACCOUNT_ROLES`, and the external id they are assumed with.
///
/// A cluster resolves to its own entry; else to the entry of the account its reconcile request
/// names (the drift sweep and the EKS events know it); else to the deployment's own account and
/// credentials. Cluster names must be unique across the deployment: bundles, state and status
/// are keyed by cluster name alone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountRoles {
    by_cluster: BTreeMap<String, RoleArn>,
    by_account: BTreeMap<String, RoleArn>,
    external_id: String,
}

impl AccountRoles {
    /// No roles: every cluster is in the deployment's own account.
    pub fn is_empty(&self) -> bool {
        self.by_cluster.is_empty() && self.by_account.is_empty()
    }

    /// The role to act through for `cluster`, whose request named `account` (if any); `None`
    /// for the deployment's own account and credentials.
    pub fn role_for(&self, cluster: &str, account: Option<&str>) -> Option<&RoleArn> {
        self.by_cluster
            .get(cluster)
            .or_else(|| account.and_then(|account| self.by_account.get(account)))
    }

    /// The entries by account id, in order: the accounts whose clusters the drift sweep lists.
    pub fn accounts(&self) -> impl Iterator<Item = (&str, &RoleArn)> {
        self.by_account.iter().map(|(a, r)| (a.as_str(), r))
    }

    /// Every role, by cluster and by account: the system's own roles in those accounts.
    pub fn roles(&self) -> impl Iterator<Item = &RoleArn> {
        self.by_cluster.values().chain(self.by_account.values())
    }

    /// The role the deployment acts through in `account`: its entry by account id, else the
    /// role of a cluster entry that is in that account.
    pub fn role_in(&self, account: &str) -> Option<&RoleArn> {
        self.by_account.get(account).or_else(|| {
            self.by_cluster
                .values()
                .find(|role| role_account(role.as_str()) == Ok(account))
        })
    }

    /// The external id the roles are assumed with.
    pub fn external_id(&self) -> &str {
        &self.external_id
    }
}

/// The account id of a role ARN (`arn:<partition>:iam::<account>:role/<path/name>`), or why
/// it is not one.
pub fn role_account(arn: &str) -> Result<&str, String> {
    let shape = "not the ARN of an IAM role (arn:aws:iam::<account id>:role/<name>)";
    let [prefix, partition, service, region, account, resource] =
        arn_parts(arn).ok_or_else(|| shape.to_owned())?;
    let name = resource.strip_prefix("role/").unwrap_or_default();
    if prefix != "arn"
        || partition.is_empty()
        || service != "iam"
        || !region.is_empty()
        || !is_account_id(account)
        || name.is_empty()
        || name.ends_with('/')
        || arn.len() > 2048
        || arn.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(shape.to_owned());
    }
    Ok(account)
}

fn is_account_id(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit())
}

fn account_roles(
    get: &impl Fn(&'static str) -> Option<String>,
) -> Result<AccountRoles, ConfigError> {
    let Some(json) = get(ACCOUNT_ROLES) else {
        return Ok(AccountRoles::default());
    };
    let error = |message: String| ConfigError {
        variable: ACCOUNT_ROLES,
        message,
    };
    let entries: BTreeMap<String, serde_json::Value> =
        serde_json::from_str(&json).map_err(|e| {
            error(format!(
                "not a JSON object from cluster names or account ids to role ARNs, like {{\"prod-eu\": \"arn:aws:iam::222222222222:role/eks-intents/eks-intents-account\"}}: {e}"
            ))
        })?;
    let mut roles = AccountRoles::default();
    for (key, value) in entries {
        let arn = value.as_str().ok_or_else(|| {
            error(format!(
                "entry {key:?}: {value} is not a role ARN (a JSON string)"
            ))
        })?;
        let account =
            role_account(arn).map_err(|why| error(format!("entry {key:?}: {arn:?} is {why}")))?;
        if is_account_id(&key) {
            if account != key {
                return Err(error(format!(
                    "entry {key:?}: the role {arn} is in account {account}; the role for the clusters of account {key} must be in that account"
                )));
            }
            roles.by_account.insert(key, RoleArn::new(arn));
        } else if ClusterName::is_valid(&key) {
            roles.by_cluster.insert(key, RoleArn::new(arn));
        } else {
            return Err(error(format!(
                "entry {key:?} is neither an EKS cluster name nor a 12-digit account id"
            )));
        }
    }
    if roles.is_empty() {
        return Ok(roles);
    }
    roles.external_id = get(ACCOUNT_ROLE_EXTERNAL_ID).ok_or_else(|| ConfigError {
        variable: ACCOUNT_ROLE_EXTERNAL_ID,
        message: format!(
            "not set; {ACCOUNT_ROLES} names roles in other accounts, which are assumed with this external id (the one their trust policy requires)"
        ),
    })?;
    let id = &roles.external_id;
    // STS's rule for an external id: 2 to 1,224 characters of [\w+=,.@:/-].
    if !(2..=1224).contains(&id.len())
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@:/-".contains(c))
    {
        return Err(ConfigError {
            variable: ACCOUNT_ROLE_EXTERNAL_ID,
            message: "must be 2 to 1,224 characters of letters, digits and _+=,.@:/- (STS's rule for an external id)".into(),
        });
    }
    Ok(roles)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn the_bucket_is_required() {
        let err = config(&[]).unwrap_err();
        assert_eq!(err.variable, BUCKET);
        assert!(
            err.to_string()
                .starts_with("configuration: EKS_INTENTS_BUCKET: not set")
        );
    }

    #[test]
    fn values_are_read_and_checked() {
        let c = config(&[
            (BUCKET, "b"),
            (MODE, "pod-identity"),
            (MAX_DELETIONS, "3"),
            (S3_PATH_STYLE, "true"),
            (SOFT_DELETE, "true"),
            (SESSION_POLICIES, "true"),
            (ADDON_RECOMMENDED_POLICIES, "true"),
            (REPORT_ONLY, "true"),
            (NOT_READY_RETRY, "30"),
            (STATUS_REFRESH, "3600"),
            (QUOTA_REFRESH, "600"),
            (REGION, "eu-west-2"),
            (RETRY_BUDGET, "45"),
        ])
        .unwrap();
        assert_eq!(c.aws.retry_budget, Duration::from_secs(45));
        assert_eq!(
            config(&[(BUCKET, "b"), (RETRY_BUDGET, "-1")])
                .unwrap_err()
                .variable,
            RETRY_BUDGET
        );
        assert!(c.reconcile.plan.soft_delete);
        assert!(c.reconcile.plan.session_policies);
        assert!(c.reconcile.plan.addon_recommended_policies);
        assert!(c.reconcile.report_only);
        assert_eq!(c.reconcile.not_ready_retry, Duration::from_secs(30));
        assert_eq!(c.reconcile.status_refresh, Duration::from_secs(3600));
        assert_eq!(c.reconcile.quota_refresh, Duration::from_secs(600));
        assert_eq!(c.reconcile.region.as_deref(), Some("eu-west-2"));
        let defaults = config(&[(BUCKET, "b")]).unwrap();
        assert!(!defaults.reconcile.plan.soft_delete);
        assert!(!defaults.reconcile.plan.session_policies);
        assert!(!defaults.reconcile.plan.addon_recommended_policies);
        assert!(!defaults.reconcile.report_only);
        assert_eq!(
            config(&[(BUCKET, "b"), (REPORT_ONLY, "maybe")])
                .unwrap_err()
                .variable,
            REPORT_ONLY
        );
        assert_eq!(c.reconcile.plan.mode, BindingMode::PodIdentity);
        assert_eq!(c.reconcile.plan.max_deletions_per_run, 3);
        assert!(c.aws.s3_path_style);
        assert!(c.require_queue().is_err());
        assert_eq!(
            config(&[(BUCKET, "b"), (MODE, "kiam")])
                .unwrap_err()
                .variable,
            MODE
        );
        assert_eq!(
            config(&[(BUCKET, "b"), (MAX_DELETIONS, "many")])
                .unwrap_err()
                .variable,
            MAX_DELETIONS
        );
        assert_eq!(
            config(&[(BUCKET, "b"), (IAM_PATH, "eks")])
                .unwrap_err()
                .variable,
            IAM_PATH
        );
        let listed = config(&[
            (BUCKET, "b"),
            (
                SYSTEM_RESOURCES,
                "arn:aws:s3:::b, arn:aws:sqs:eu-west-2:1:q.fifo\n arn:aws:lambda:*:1:function:eks-*,",
            ),
        ])
        .unwrap();
        assert_eq!(
            listed.reconcile.plan.system_resources,
            [
                "arn:aws:s3:::b",
                "arn:aws:sqs:eu-west-2:1:q.fifo",
                "arn:aws:lambda:*:1:function:eks-*"
            ]
        );
        assert!(defaults.reconcile.plan.system_resources.is_empty());
        assert_eq!(
            config(&[(BUCKET, "b"), (SYSTEM_RESOURCES, "my-bucket")])
                .unwrap_err()
                .variable,
            SYSTEM_RESOURCES
        );
        assert_eq!(
            config(&[(BUCKET, "b"), (PERMISSIONS_BOUNDARY, "x")])
                .unwrap_err()
                .variable,
            PERMISSIONS_BOUNDARY
        );
    }

    const ROLE_B: &str = "arn:aws:iam::222222222222:role/eks-intents/eks-intents-account";
    const ROLE_C: &str = "arn:aws:iam::333333333333:role/eks-intents-account";

    fn roles(json: &str, external_id: Option<&str>) -> Result<AccountRoles, ConfigError> {
        let mut vars = vec![(BUCKET, "b"), (ACCOUNT_ROLES, json)];
        if let Some(id) = external_id {
            vars.push((ACCOUNT_ROLE_EXTERNAL_ID, id));
        }
        config(&vars).map(|c| c.accounts)
    }

    #[test]
    fn account_roles_resolve_by_cluster_then_by_the_requests_account_then_home() {
        let accounts = roles(
            &format!(r#"{{"prod-eu": "{ROLE_C}", "222222222222": "{ROLE_B}"}}"#),
            Some("eks-intents-7f3a"),
        )
        .unwrap();
        assert_eq!(accounts.external_id(), "eks-intents-7f3a");
        // Its own entry wins, whatever account the request names.
        assert_eq!(accounts.role_for("prod-eu", None).unwrap(), ROLE_C);
        assert_eq!(
            accounts.role_for("prod-eu", Some("222222222222")).unwrap(),
            ROLE_C
        );
        // Else the entry of the account the request names.
        assert_eq!(
            accounts.role_for("staging", Some("222222222222")).unwrap(),
            ROLE_B
        );
        // Else the deployment's own account.
        assert_eq!(accounts.role_for("staging", None), None);
        assert_eq!(accounts.role_for("staging", Some("444444444444")), None);
        assert_eq!(
            accounts.accounts().collect::<Vec<_>>(),
            [("222222222222", &RoleArn::new(ROLE_B))]
        );
        // Unset, blank or empty: every cluster is at home.
        let none = config(&[(BUCKET, "b")]).unwrap().accounts;
        assert!(none.is_empty());
        assert_eq!(none.role_for("prod-eu", Some("222222222222")), None);
        assert!(roles(" ", None).unwrap().is_empty());
        assert!(roles("{}", None).unwrap().is_empty());
    }

    #[test]
    fn bad_account_roles_are_refused_naming_the_setting_and_the_entry() {
        let refused = |json: &str, id: Option<&str>| roles(json, id).unwrap_err();
        let id = Some("eks-intents-7f3a");
        for (json, words) in [
            ("[1]", "not a JSON object"),
            (
                r#"{"prod-eu": 7}"#,
                r#"entry "prod-eu": 7 is not a role ARN"#,
            ),
            (
                r#"{"prod-eu": "arn:aws:iam::222222222222:user/bob"}"#,
                r#"entry "prod-eu": "arn:aws:iam::222222222222:user/bob" is not the ARN of an IAM role"#,
            ),
            (
                r#"{"prod-eu": "arn:aws:iam::2222:role/x"}"#,
                "is not the ARN of an IAM role",
            ),
            (
                r#"{"prod eu!": "arn:aws:iam::222222222222:role/x"}"#,
                r#"entry "prod eu!" is neither an EKS cluster name nor a 12-digit account id"#,
            ),
            (
                &format!(r#"{{"333333333333": "{ROLE_B}"}}"#),
                "entry \"333333333333\": the role arn:aws:iam::222222222222:role/eks-intents/eks-intents-account is in account 222222222222",
            ),
        ] {
            let err = refused(json, id);
            assert_eq!(err.variable, ACCOUNT_ROLES, "{json}");
            assert!(err.to_string().contains(words), "{json}: {err}");
        }
        let missing = refused(&format!(r#"{{"prod-eu": "{ROLE_B}"}}"#), None);
        assert_eq!(missing.variable, ACCOUNT_ROLE_EXTERNAL_ID);
        assert!(missing.to_string().contains("not set"), "{missing}");
        let bad = refused(&format!(r#"{{"prod-eu": "{ROLE_B}"}}"#), Some("has spaces"));
        assert_eq!(bad.variable, ACCOUNT_ROLE_EXTERNAL_ID);
    }

    #[test]
    fn every_account_with_a_role_may_hold_target_roles_and_buckets_name_their_account() {
        let vars = [
            (BUCKET, "b"),
            (
                ACCOUNT_ROLES,
                r#"{"prod-eu": "arn:aws:iam::222222222222:role/x", "333333333333": "arn:aws:iam::333333333333:role/y"}"#,
            ),
            (ACCOUNT_ROLE_EXTERNAL_ID, "eks-intents-7f3a"),
            (
                BUCKET_ACCOUNTS,
                r#"{"reports-archive": "333333333333", "lake-*": "444444444444"}"#,
            ),
        ];
        let c = config(&vars).unwrap();
        let plan = &c.reconcile.plan;
        assert_eq!(
            plan.target_accounts
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            ["222222222222", "333333333333"]
        );
        assert_eq!(plan.bucket_accounts["lake-*"], "444444444444");
        assert_eq!(
            c.accounts.role_in("222222222222").map(|r| r.as_str()),
            Some("arn:aws:iam::222222222222:role/x")
        );
        assert_eq!(c.accounts.role_in("444444444444"), None);
        for (json, words) in [
            ("[]", "not a JSON object from bucket names"),
            (
                r#"{"Reports": "333333333333"}"#,
                r#"entry "Reports" is not a bucket name"#,
            ),
            (
                r#"{"a*b": "333333333333"}"#,
                r#"entry "a*b" is not a bucket name"#,
            ),
            (
                r#"{"reports": "3333"}"#,
                r#"entry "reports": "3333" is not a 12-digit account id"#,
            ),
        ] {
            let err = config(&[(BUCKET, "b"), (BUCKET_ACCOUNTS, json)]).unwrap_err();
            assert_eq!(err.variable, BUCKET_ACCOUNTS, "{json}");
            assert!(err.to_string().contains(words), "{json}: {err}");
        }
    }
}
