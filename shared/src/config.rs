//! Deployment-wide configuration from environment variables, read once at cold start. A bad or
//! missing value is a clear error naming the variable, before any event is handled.

use crate::adapters::aws::AwsSettings;
use crate::apply::ApplySettings;
use crate::model::{BindingMode, PolicyArn, Settings};
use crate::reconcile::ReconcileSettings;
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
        assert!(c.reconcile.report_only);
        assert_eq!(c.reconcile.not_ready_retry, Duration::from_secs(30));
        assert_eq!(c.reconcile.status_refresh, Duration::from_secs(3600));
        assert_eq!(c.reconcile.quota_refresh, Duration::from_secs(600));
        assert_eq!(c.reconcile.region.as_deref(), Some("eu-west-2"));
        let defaults = config(&[(BUCKET, "b")]).unwrap();
        assert!(!defaults.reconcile.plan.soft_delete);
        assert!(!defaults.reconcile.plan.session_policies);
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
}
