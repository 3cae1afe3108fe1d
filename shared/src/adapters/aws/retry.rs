//! How AWS calls are retried: the SDK's standard retry mode (capped exponential backoff with
//! full jitter, the SDK's own classification of throttling and transient errors), steered by
//! an interceptor that keeps every wait inside the run's time budget. Throttling is retried for
//! as long as the budget lasts; other transient failures at most `max_attempts` times. Once the
//! budget is spent the call's error is returned (retryable), so the run fails and its message
//! goes back to the queue instead of sleeping past the function's timeout.

use super::counter::{ApiCalls, call_key};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
    FinalizerInterceptorContextRef, InterceptorContext,
};
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use aws_smithy_runtime_api::client::retries::classifiers::{
    ClassifyRetry, RetryAction, RetryReason,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use aws_smithy_types::retry::{ErrorKind, RetryConfig};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The longest budget taken: a day (a budget from a setting can be any number of seconds, and
/// an `Instant` that far ahead would overflow).
const LONGEST: Duration = Duration::from_secs(24 * 60 * 60);

/// How long the retries of the current run may go on. Cloning shares it: the function sets a
/// deadline per invocation from its remaining time, the CLI once per run; without one, each
/// call gets `per_call` on its own.
#[derive(Clone, Debug)]
pub struct RetryBudget {
    deadline: Arc<Mutex<Option<Instant>>>,
    per_call: Duration,
}

impl RetryBudget {
    pub fn new(per_call: Duration) -> Self {
        RetryBudget {
            deadline: Arc::default(),
            per_call,
        }
    }

    /// Retries stop at `deadline`.
    pub fn set_deadline(&self, deadline: Instant) {
        if let Ok(mut d) = self.deadline.lock() {
            *d = Some(deadline);
        }
    }

    /// Retries stop `budget` from now (a run of the CLI).
    pub fn start(&self, budget: Duration) {
        self.set_deadline(Instant::now() + budget.min(LONGEST));
    }

    /// Retries stop `reserve` before a deadline given in milliseconds since the Unix epoch (the
    /// Lambda context's `deadline`), leaving time to write the status and hand the message
    /// back. A deadline already past leaves no budget.
    pub fn until_epoch_millis(&self, deadline_ms: u64, reserve: Duration) {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or_default();
        let left =
            Duration::from_millis(deadline_ms.saturating_sub(now_ms)).saturating_sub(reserve);
        self.start(left);
    }

    /// The time left for a call that started at `call_started`.
    pub fn remaining(&self, call_started: Instant) -> Duration {
        let deadline = self
            .deadline
            .lock()
            .ok()
            .and_then(|d| *d)
            .unwrap_or(call_started + self.per_call.min(LONGEST));
        deadline.saturating_duration_since(Instant::now())
    }
}

/// Backoff and attempts of the retry policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Attempts per call for transient failures other than throttling (throttling is retried
    /// while the budget lasts).
    pub max_attempts: u32,
    /// The cap of the first wait; each retry doubles it, up to `max`. The wait is a random
    /// fraction of the cap (full jitter).
    pub initial: Duration,
    pub max: Duration,
}

/// The retry configuration every client starts from: standard mode (no adaptive rate
/// limiter, whose waits reach tens of seconds), the policy's backoff. The interceptor adjusts
/// the attempts and the cap after each failed attempt.
pub(super) fn base_config(backoff: &Backoff) -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(backoff.max_attempts.max(1))
        .with_initial_backoff(backoff.initial)
        .with_max_backoff(backoff.max)
}

/// When the call in progress started.
#[derive(Clone, Copy, Debug)]
struct CallStarted(Instant);

impl Storable for CallStarted {
    type Storer = StoreReplace<Self>;
}

/// When the last failed attempt of the call in progress ended: the next attempt measures the
/// wait from it.
#[derive(Clone, Copy, Debug)]
struct AttemptEnded(Instant);

impl Storable for AttemptEnded {
    type Storer = StoreReplace<Self>;
}

/// The interceptor that keeps retries inside the budget and records throttling and waits.
#[derive(Clone, Debug)]
pub(super) struct RetryPolicy {
    pub budget: RetryBudget,
    pub backoff: Backoff,
    pub calls: ApiCalls,
}

/// What the SDK's classifiers say of the attempt (the same ones its retry strategy runs).
fn classify(runtime_components: &RuntimeComponents, ctx: &InterceptorContext) -> RetryAction {
    let mut result = RetryAction::NoActionIndicated;
    for classifier in runtime_components.retry_classifiers() {
        let action = classifier.classify_retry(ctx);
        if action == RetryAction::NoActionIndicated {
            continue;
        }
        result = action;
        if result == RetryAction::RetryForbidden {
            break;
        }
    }
    result
}

fn is_throttling(action: &RetryAction) -> bool {
    matches!(
        action,
        RetryAction::RetryIndicated(RetryReason::RetryableError {
            kind: ErrorKind::ThrottlingError,
            ..
        })
    )
}

impl RetryPolicy {
    /// The attempts the call may make in all, after `attempts` of them failed as `action`
    /// says, with `remaining` left of the budget.
    fn allowed_attempts(&self, action: &RetryAction, attempts: u32, remaining: Duration) -> u32 {
        if !action.should_retry() || remaining < self.backoff.initial {
            attempts
        } else if is_throttling(action) {
            attempts.saturating_add(1)
        } else {
            self.backoff.max_attempts.max(1)
        }
    }
}

impl Intercept for RetryPolicy {
    fn name(&self) -> &'static str {
        "RetryPolicy"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        cfg.interceptor_state()
            .store_put(CallStarted(Instant::now()));
        Ok(())
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(AttemptEnded(ended)) = cfg.load::<AttemptEnded>().copied() {
            self.calls.record_wait(ended.elapsed());
        }
        Ok(())
    }

    // Runs after each attempt and before the SDK's retry strategy decides: the retry
    // configuration stored here is the one it reads.
    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let ctx = context.inner();
        if !ctx.is_failed() {
            return Ok(());
        }
        let action = classify(runtime_components, ctx);
        let key = call_key(cfg).unwrap_or_else(|| "unknown".to_owned());
        if is_throttling(&action) {
            self.calls.record_throttle(key.clone());
        }
        let attempts = cfg
            .load::<RequestAttempts>()
            .map_or(1, RequestAttempts::attempts);
        let started = cfg.load::<CallStarted>().map_or_else(Instant::now, |s| s.0);
        let remaining = self.budget.remaining(started);
        let allowed = self.allowed_attempts(&action, attempts, remaining);
        if action.should_retry() && remaining < self.backoff.initial {
            tracing::warn!(
                call = %key,
                attempts,
                "the retry budget is spent; the call fails and the run is tried again later"
            );
        }
        // Never wait past the budget: the SDK's wait is a random fraction of a cap of at most
        // `remaining`.
        let config = base_config(&self.backoff)
            .with_max_attempts(allowed.max(1))
            .with_max_backoff(self.backoff.max.min(remaining));
        let state = cfg.interceptor_state();
        state.store_put(config);
        state.store_put(AttemptEnded(Instant::now()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            budget: RetryBudget::new(Duration::from_secs(60)),
            backoff: Backoff {
                max_attempts: 3,
                initial: Duration::from_millis(100),
                max: Duration::from_secs(5),
            },
            calls: ApiCalls::default(),
        }
    }

    #[test]
    fn throttling_is_retried_while_the_budget_lasts_other_failures_a_few_times() {
        let p = policy();
        let plenty = Duration::from_secs(30);
        let throttled = RetryAction::throttling_error();
        assert_eq!(p.allowed_attempts(&throttled, 1, plenty), 2);
        assert_eq!(p.allowed_attempts(&throttled, 40, plenty), 41);
        let transient = RetryAction::transient_error();
        assert_eq!(p.allowed_attempts(&transient, 1, plenty), 3);
        assert_eq!(p.allowed_attempts(&transient, 3, plenty), 3);
        assert_eq!(
            p.allowed_attempts(&RetryAction::RetryForbidden, 1, plenty),
            1
        );
        // Less left than the smallest wait: no further attempt.
        assert_eq!(
            p.allowed_attempts(&throttled, 5, Duration::from_millis(10)),
            5
        );
    }

    #[test]
    fn the_budget_is_the_deadline_when_set_else_per_call() {
        let budget = RetryBudget::new(Duration::from_secs(60));
        let started = Instant::now();
        assert!(budget.remaining(started) > Duration::from_secs(59));
        budget.start(Duration::from_secs(2));
        assert!(budget.remaining(started) <= Duration::from_secs(2));
        // A Lambda deadline already past, or closer than the reserve, leaves nothing.
        budget.until_epoch_millis(0, Duration::from_secs(10));
        assert_eq!(budget.remaining(started), Duration::ZERO);
        // Any setting is taken without overflow.
        budget.start(Duration::MAX);
        assert!(budget.remaining(started) <= LONGEST);
        assert!(RetryBudget::new(Duration::MAX).remaining(started) <= LONGEST);
        let in_a_minute = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64 + 60_000)
            .unwrap_or_default();
        budget.until_epoch_millis(in_a_minute, Duration::from_secs(10));
        let left = budget.remaining(started);
        assert!(left > Duration::from_secs(45) && left <= Duration::from_secs(50));
    }
}
