//! API call accounting: an SDK interceptor that counts calls by service and operation, for the
//! logs, the status report and the tests that assert a no-op reconcile writes nothing.

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Calls made, keyed `service:Operation` (for example `IAM:CreateRole`). Cloning shares the
/// counts.
#[derive(Clone, Debug, Default)]
pub struct ApiCalls {
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl ApiCalls {
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.counts.lock().map(|c| c.clone()).unwrap_or_default()
    }

    pub fn reset(&self) {
        if let Ok(mut counts) = self.counts.lock() {
            counts.clear();
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

    fn record(&self, key: String) {
        if let Ok(mut counts) = self.counts.lock() {
            *counts.entry(key).or_default() += 1;
        }
    }
}

impl Intercept for ApiCalls {
    fn name(&self) -> &'static str {
        "ApiCalls"
    }

    // Once per call, retries not counted; the operation's metadata is in the bag by then
    // (it is not yet when client interceptors read before execution).
    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(metadata) = cfg.load::<Metadata>() {
            self.record(format!("{}:{}", metadata.service(), metadata.name()));
        }
        Ok(())
    }
}
