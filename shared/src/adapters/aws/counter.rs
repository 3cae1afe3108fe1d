//! API call accounting: an SDK interceptor that counts calls and attempts by service and
//! operation (and, through the retry policy, throttled attempts and the time spent waiting),
//! for the logs, the status report and the tests that assert a no-op reconcile writes nothing.

use crate::status::ApiCallCounts;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Calls made, keyed `service:Operation` (for example `IAM:CreateRole`). Cloning shares the
/// counts.
#[derive(Clone, Debug, Default)]
pub struct ApiCalls {
    counts: Arc<Mutex<ApiCallCounts>>,
}

impl ApiCalls {
    /// Operations called (each once, however many attempts it took).
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.counts().calls
    }

    /// Operations, attempts, throttled attempts and time spent waiting between attempts.
    pub fn counts(&self) -> ApiCallCounts {
        self.counts.lock().map(|c| c.clone()).unwrap_or_default()
    }

    pub fn reset(&self) {
        if let Ok(mut counts) = self.counts.lock() {
            *counts = ApiCallCounts::default();
        }
    }

    /// Calls that change something: every operation but reads (`Get`, `List`, `Describe`,
    /// `Head`) and the read-only `ReceiveMessage`.
    pub fn writes(&self) -> BTreeMap<String, u64> {
        self.snapshot()
            .into_iter()
            .filter(|(key, _)| {
                let operation = key.split_once(':').map_or(key.as_str(), |(_, op)| op);
                !["Get", "List", "Describe", "Head"]
                    .iter()
                    .any(|read| operation.starts_with(read))
            })
            .collect()
    }

    fn update(&self, change: impl FnOnce(&mut ApiCallCounts)) {
        if let Ok(mut counts) = self.counts.lock() {
            change(&mut counts);
        }
    }

    pub(super) fn record_throttle(&self, key: String) {
        self.update(|c| *c.throttled.entry(key).or_default() += 1);
    }

    pub(super) fn record_wait(&self, waited: Duration) {
        self.update(|c| {
            c.retry_wait_ms = c
                .retry_wait_ms
                .saturating_add(u64::try_from(waited.as_millis()).unwrap_or(u64::MAX));
        });
    }
}

/// `service:Operation` of the call in progress, once the operation's metadata is in the bag.
pub(super) fn call_key(cfg: &ConfigBag) -> Option<String> {
    cfg.load::<Metadata>()
        .map(|metadata| format!("{}:{}", metadata.service(), metadata.name()))
}

impl Intercept for ApiCalls {
    fn name(&self) -> &'static str {
        "ApiCalls"
    }

    // Once per call; the operation's metadata is in the bag by then (it is not yet when client
    // interceptors read before execution).
    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(key) = call_key(cfg) {
            self.update(|c| *c.calls.entry(key).or_default() += 1);
        }
        Ok(())
    }

    // Once per attempt, retries included.
    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(key) = call_key(cfg) {
            self.update(|c| *c.attempts.entry(key).or_default() += 1);
        }
        Ok(())
    }
}
