//! The AWS adapters, their shared configuration, retry policy (`retry`), error mapping and API
//! call accounting.
//! Endpoints, region and credentials come from the standard configuration chain
//! (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_<SERVICE>`, `AWS_REGION`, ...); nothing here knows
//! whether it talks to AWS or to a local emulator.

mod accounts;
mod counter;
mod eks;
mod iam;
mod retry;
mod s3;
mod sqs;
mod sts;
mod unreachable;

pub use accounts::{AccountClients, AccountSessions, AssumedRole};
pub use counter::ApiCalls;
pub use eks::EksAdapter;
pub use iam::IamAdapter;
pub use retry::{Backoff, RetryBudget};
pub use s3::S3Adapter;
pub use sqs::SqsAdapter;
pub use sts::account_id;

use crate::model::RoleArn;
use crate::ports::{ErrorKind, PortError};
use aws_config::BehaviorVersion;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_iam::config::retry::{RetryPartition, TokenBucket};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use retry::RetryPolicy;
use std::time::Duration;

/// Settings of the AWS clients, built once at cold start.
#[derive(Clone, Debug)]
pub struct AwsSettings {
    /// Attempts per call, retries included, for transient failures other than throttling
    /// (throttling is retried while the time budget lasts).
    pub max_attempts: u32,
    /// How long retries may go on without a deadline of their own: a run of the CLI, or one
    /// call. The functions take their budget from the invocation's remaining time instead.
    pub retry_budget: Duration,
    /// The first and the largest cap of the wait between attempts (full jitter below it).
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Path-style S3 addresses (`endpoint/bucket/key`), for S3-compatible endpoints without
    /// virtual-host names.
    pub s3_path_style: bool,
}

impl Default for AwsSettings {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            retry_budget: Duration::from_secs(120),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            s3_path_style: false,
        }
    }
}

/// What the functions keep back from their remaining time when they set the retry budget:
/// time, once the budget is spent, for the executor's own bounded retries of a failed action
/// (about 7 s of waits), the status report and handing the messages back.
pub const DEADLINE_RESERVE: Duration = Duration::from_secs(15);

/// All AWS clients, sharing one configuration and one call counter.
#[derive(Clone, Debug)]
pub struct AwsClients {
    pub iam: IamAdapter,
    pub eks: EksAdapter,
    pub s3: aws_sdk_s3::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub sts: aws_sdk_sts::Client,
    /// Kubernetes APIs of EKS clusters, through EKS tokens of the same identity.
    pub kubernetes: crate::adapters::kube::EksKubernetes,
    pub calls: ApiCalls,
    /// When retries must stop; shared by every client.
    pub retry: RetryBudget,
    /// What clients in other accounts are built from.
    base: ClientBase,
}

impl AwsClients {
    /// Loads the standard AWS configuration chain (environment, profile, container or instance
    /// credentials) and builds every client from it.
    pub async fn from_env(settings: &AwsSettings) -> Self {
        let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
        Self::from_config(&config, settings)
    }

    /// Builds every client from a loaded configuration, with the retry policy (standard
    /// retries, jittered backoff, the time budget) and the call counter.
    pub fn from_config(config: &aws_config::SdkConfig, settings: &AwsSettings) -> Self {
        let calls = ApiCalls::default();
        let backoff = Backoff {
            max_attempts: settings.max_attempts,
            initial: settings.initial_backoff,
            max: settings.max_backoff,
        };
        let budget = RetryBudget::new(settings.retry_budget);
        let config = config
            .to_builder()
            .retry_config(retry::base_config(&backoff))
            .build();
        let region = config
            .region()
            .map(|r| r.as_ref().to_owned())
            .unwrap_or_else(|| "us-east-1".to_owned());
        let base = ClientBase {
            policy: RetryPolicy {
                budget: budget.clone(),
                backoff,
                calls: calls.clone(),
            },
            calls: calls.clone(),
            // The time budget bounds the retries, not the SDK's retry quota (a process-wide
            // bucket per service that a long storm drains, after which nothing is retried at
            // all).
            partition: RetryPartition::custom("eks-intents")
                .token_bucket(TokenBucket::unlimited())
                .build(),
            sts_endpoint: sts_endpoint(&config, &region),
            region,
            config,
        };
        let s3 = aws_sdk_s3::Client::from_conf(
            base.instrument(aws_sdk_s3::config::Builder::from(&base.config))
                .force_path_style(settings.s3_path_style)
                .build(),
        );
        let sqs = aws_sdk_sqs::Client::from_conf(
            base.instrument(aws_sdk_sqs::config::Builder::from(&base.config))
                .build(),
        );
        let sts = aws_sdk_sts::Client::from_conf(
            base.instrument(aws_sdk_sts::config::Builder::from(&base.config))
                .build(),
        );
        let (iam, eks, kubernetes) = base.in_account(&base.config);
        AwsClients {
            iam,
            eks,
            s3,
            sqs,
            sts,
            kubernetes,
            calls,
            retry: budget,
            base,
        }
    }

    /// The IAM, EKS and Kubernetes clients of the account of `role`, acting through that role
    /// (assumed with `external_id` by this deployment's STS client, credentials kept for their
    /// lifetime), with the same retry policy, call counter and retry budget as these clients.
    pub fn in_account(&self, role: &RoleArn, external_id: &str) -> AccountClients {
        let credentials = AssumedRole::new(self.sts.clone(), role.clone(), external_id);
        let config = self
            .base
            .config
            .to_builder()
            .credentials_provider(SharedCredentialsProvider::new(credentials.clone()))
            .build();
        let (iam, eks, kubernetes) = self.base.in_account(&config);
        AccountClients {
            role: role.clone(),
            iam,
            eks,
            kubernetes,
            credentials,
        }
    }
}

/// What every client is built from: the configuration with the retry settings, and the
/// interceptors that count calls and keep retries inside the budget.
#[derive(Clone, Debug)]
struct ClientBase {
    config: aws_config::SdkConfig,
    calls: ApiCalls,
    policy: RetryPolicy,
    partition: RetryPartition,
    region: String,
    sts_endpoint: String,
}

/// The parts of a service's configuration builder that `ClientBase::instrument` sets.
trait Instrumented: Sized {
    fn interceptor(self, interceptor: impl Intercept + 'static) -> Self;
    fn retry_partition(self, partition: RetryPartition) -> Self;
}

macro_rules! instrumented {
    ($($service:ident),*) => {$(
        impl Instrumented for $service::config::Builder {
            fn interceptor(self, interceptor: impl Intercept + 'static) -> Self {
                self.interceptor(interceptor)
            }
            fn retry_partition(self, partition: RetryPartition) -> Self {
                self.retry_partition(partition)
            }
        }
    )*};
}

instrumented!(
    aws_sdk_iam,
    aws_sdk_eks,
    aws_sdk_s3,
    aws_sdk_sqs,
    aws_sdk_sts
);

impl ClientBase {
    /// A client configuration with the call counter, the retry policy, the naming of an
    /// unreachable endpoint and the unlimited retry partition.
    fn instrument<B: Instrumented>(&self, builder: B) -> B {
        builder
            .interceptor(self.calls.clone())
            .interceptor(self.policy.clone())
            .interceptor(unreachable::NameUnreachableEndpoint)
            .retry_partition(self.partition.clone())
    }

    /// The clients that act in one account: IAM, EKS, and Kubernetes through EKS tokens signed
    /// with the same credentials as the other two.
    fn in_account(
        &self,
        config: &aws_config::SdkConfig,
    ) -> (IamAdapter, EksAdapter, crate::adapters::kube::EksKubernetes) {
        let iam = aws_sdk_iam::Client::from_conf(
            self.instrument(aws_sdk_iam::config::Builder::from(config))
                .build(),
        );
        let eks = aws_sdk_eks::Client::from_conf(
            self.instrument(aws_sdk_eks::config::Builder::from(config))
                .build(),
        );
        let kubernetes = crate::adapters::kube::EksKubernetes::new(
            config.credentials_provider(),
            self.region.clone(),
            self.sts_endpoint.clone(),
        );
        (IamAdapter::new(iam), EksAdapter::new(eks), kubernetes)
    }
}

/// Where EKS tokens send the API server: the configured STS endpoint (`AWS_ENDPOINT_URL_STS`,
/// else the configuration's endpoint URL), else the regional STS endpoint.
fn sts_endpoint(config: &aws_config::SdkConfig, region: &str) -> String {
    if let Ok(url) = std::env::var("AWS_ENDPOINT_URL_STS")
        && !url.is_empty()
    {
        return url;
    }
    if let Some(url) = config.endpoint_url() {
        return url.to_owned();
    }
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("https://sts.{region}.{suffix}")
}

/// Maps an SDK error to a `PortError`, keeping the source and saying whether a retry helps.
/// The SDK has already retried throttling and transient failures by then. The message says the
/// cause once, in words (never the SDK's `Debug` structures), and for an endpoint that cannot
/// be reached, which one and what to check.
pub(crate) fn port_error<E, R>(
    service: &'static str,
    operation: &'static str,
    error: SdkError<E, R>,
) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let kind = match &error {
        SdkError::ServiceError(service_error) => kind_of(service_error.err().code()),
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            ErrorKind::Transient
        }
        _ => ErrorKind::Other,
    };
    let message = match &error {
        SdkError::ServiceError(service_error) => {
            let e = service_error.err();
            format!(
                "{}: {}",
                e.code().unwrap_or("error"),
                e.message()
                    .map(str::to_owned)
                    .unwrap_or_else(|| unreachable::root_cause(e))
            )
        }
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
            connection_message(service, &error)
        }
        _ => {
            let (text, root) = (error.to_string(), unreachable::root_cause(&error));
            if root == text {
                text
            } else {
                format!("{text}: {root}")
            }
        }
    };
    PortError::new(service, operation, kind, message).with_source(error)
}

/// What a request that never got an answer says: the endpoint (named by the
/// `NameUnreachableEndpoint` interceptor) and the root cause, with what to check.
fn connection_message(service: &str, error: &(dyn std::error::Error + 'static)) -> String {
    let name = service.to_ascii_uppercase();
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(unreachable) = e.downcast_ref::<unreachable::Unreachable>() {
            return format!(
                "cannot connect to the {name} endpoint {}: {}; check AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_{name}), AWS_REGION and the network",
                unreachable.endpoint, unreachable.cause
            );
        }
        cause = e.source();
    }
    format!(
        "cannot reach the {name} endpoint: {}; check AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_{name}), AWS_REGION and the network",
        unreachable::root_cause(error)
    )
}

fn kind_of(code: Option<&str>) -> ErrorKind {
    match code.unwrap_or_default() {
        "NoSuchEntity"
        | "ResourceNotFoundException"
        | "NoSuchKey"
        | "NotFound"
        | "NoSuchBucket"
        | "AWS.SimpleQueueService.NonExistentQueue" => ErrorKind::NotFound,
        "EntityAlreadyExists" | "ResourceInUseException" => ErrorKind::AlreadyExists,
        "DeleteConflict" => ErrorKind::Conflict,
        "Throttling"
        | "ThrottlingException"
        | "RequestLimitExceeded"
        | "ServiceFailure"
        | "ServiceUnavailable"
        | "ServiceUnavailableException"
        | "ServerException"
        | "ConcurrentModification"
        | "ConcurrentModificationException"
        | "SlowDown"
        | "InternalError" => ErrorKind::Transient,
        "InvalidParameterException"
        | "InvalidRequestException"
        | "InvalidInput"
        | "MalformedPolicyDocument"
        | "LimitExceeded"
        | "ValidationError" => ErrorKind::Invalid,
        code if code.starts_with("AccessDenied") => ErrorKind::Denied,
        "UnrecognizedClientException" | "InvalidClientTokenId" | "ExpiredToken" => {
            ErrorKind::Credentials
        }
        _ => ErrorKind::Other,
    }
}
