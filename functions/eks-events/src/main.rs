//! Lambda entry point of eks-events: clients and settings once, then the runtime loop.

use eks_events::{
    Context, InAccounts, handle_in_accounts, metrics, parse_system_roles, parse_window,
};
use eks_intents::adapters::aws::{S3Adapter, SqsAdapter};
use eks_intents::config::{ConfigError, variable};
use eks_intents::lambda::{clients, settings};
use eks_intents::reconcile::now;
use lambda_runtime::Error;

/// Comma-separated ARNs of the system's own roles, whose calls never trigger a reconcile.
const SYSTEM_ROLE_ARNS: &str = "EKS_INTENTS_SYSTEM_ROLE_ARNS";
/// Seconds of one window of merged events (1 to 300).
const EVENT_WINDOW: &str = "EKS_INTENTS_EVENT_WINDOW_SECONDS";
const DEFAULT_WINDOW_SECONDS: u64 = 60;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (config, queue_url) = settings()?;
    let region = config.require_region("the region whose EKS calls are handled")?;
    let system_roles = match variable(SYSTEM_ROLE_ARNS) {
        None => Err("not set; it lists the ARNs of the system's own roles (reconciler, eks-events, ...), whose calls must not trigger reconciles".to_owned()),
        Some(raw) => parse_system_roles(&raw),
    }
    .map_err(|message| ConfigError {
        variable: SYSTEM_ROLE_ARNS,
        message,
    })?;
    let window_seconds = match variable(EVENT_WINDOW) {
        None => DEFAULT_WINDOW_SECONDS,
        Some(raw) => parse_window(&raw).map_err(|message| ConfigError {
            variable: EVENT_WINDOW,
            message,
        })?,
    };
    let (clients, invocations) = clients(&config).await;
    // Without EKS_INTENTS_ACCOUNT_ROLES no event names another account: the messages are the
    // deployment's own, as before.
    let ctx = InAccounts {
        home: Context {
            iam: clients.iam,
            store: S3Adapter::new(clients.s3, config.bucket),
            queue: SqsAdapter::new(clients.sqs, queue_url),
            iam_path: config.reconcile.plan.iam_path,
            region,
            system_roles,
            window_seconds,
            now,
        },
        accounts: config.accounts,
    };
    invocations
        .serve("eks-events failed", metrics, &ctx, handle_in_accounts)
        .await
}
