//! The Lambda runtime loop the four functions share (feature `lambda`): each invocation gets
//! the retry budget up to its deadline, the trigger functions count their calls from zero and
//! write one metrics line per invocation, and a failure reaches Lambda as a `Diagnostic` whose
//! type says whether delivering the same event again can help.

use crate::adapters::aws::{ApiCalls, AwsClients, DEADLINE_RESERVE, RetryBudget};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::ports::retry_class;
use lambda_runtime::{Diagnostic, Error, LambdaEvent, run, service_fn};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::time::Instant;

/// An invocation's failure: its words, and whether the same event may succeed if delivered
/// again (throttled, a service unavailable) or never will.
pub trait Retryable: std::fmt::Display {
    fn is_retryable(&self) -> bool;
}

/// The error as Lambda reports it: its type says whether a retry can help.
pub fn diagnostic(error: &impl Retryable) -> Diagnostic {
    Diagnostic {
        error_type: retry_class(error.is_retryable()).to_owned(),
        error_message: error.to_string(),
    }
}

/// What every function reads first at cold start: logs set up, the deployment's settings, and
/// the queue that carries reconcile requests (a clear error when either is missing).
pub fn settings() -> Result<(Config, String), Error> {
    crate::telemetry::init();
    let config = Config::from_env()?;
    let queue_url = config.require_queue()?.to_owned();
    Ok((config, queue_url))
}

/// The AWS clients, built once at cold start, and what each invocation starts from.
pub async fn clients(config: &Config) -> (AwsClients, Invocations) {
    let clients = AwsClients::from_env(&config.aws).await;
    let invocations = Invocations {
        calls: clients.calls.clone(),
        budget: clients.retry.clone(),
    };
    (clients, invocations)
}

/// What each invocation starts from: the clients' retry budget and call counts, shared with
/// the clients the handler's context holds.
#[derive(Clone, Debug)]
pub struct Invocations {
    calls: ApiCalls,
    budget: RetryBudget,
}

impl Invocations {
    /// The runtime loop of a handler that counts its own calls and writes its own metrics (the
    /// reconciler, per cluster), `handler` with `ctx` per event: throttled calls are retried
    /// until shortly before the invocation's deadline; past it the run fails and its messages
    /// return to the queue.
    pub async fn run_until_deadline<C, A, R, F>(&self, ctx: &C, handler: F) -> Result<(), Error>
    where
        A: DeserializeOwned,
        R: Serialize,
        F: AsyncFn(&C, A) -> R,
    {
        let handler = &handler;
        run(service_fn(move |event: LambdaEvent<A>| async move {
            self.budget
                .until_epoch_millis(event.context.deadline, DEADLINE_RESERVE);
            Ok::<_, Error>(handler(ctx, event.payload).await)
        }))
        .await
    }

    /// The runtime loop of a trigger function, `handler` with `ctx` per event: the retry budget
    /// up to the deadline, the calls counted from zero, one metrics line (`metrics` of the
    /// outcome, with the calls, throttled calls and duration), and a failure logged as `failed`
    /// and reported with whether a retry can help.
    pub async fn serve<C, R, E, F>(
        &self,
        failed: &'static str,
        metrics: fn(&Result<R, E>) -> Metrics,
        ctx: &C,
        handler: F,
    ) -> Result<(), Error>
    where
        R: Serialize,
        E: Retryable,
        F: AsyncFn(&C, &Value) -> Result<R, E>,
    {
        let handler = &handler;
        run(service_fn(move |event: LambdaEvent<Value>| async move {
            let started = Instant::now();
            // Retries of throttled calls stop in time to answer before the function times out.
            self.budget
                .until_epoch_millis(event.context.deadline, DEADLINE_RESERVE);
            self.calls.reset();
            let result = handler(ctx, &event.payload).await;
            let counts = self.calls.counts();
            metrics(&result)
                .api_calls(&counts.calls)
                .throttled(&counts.throttled)
                .milliseconds("Duration", started.elapsed().as_millis())
                .emit();
            let response = result.map_err(|error| {
                tracing::error!(%error, retryable = error.is_retryable(), "{failed}");
                diagnostic(&error)
            })?;
            serde_json::to_value(response).map_err(|e| Diagnostic::from(e.to_string()))
        }))
        .await
    }
}
