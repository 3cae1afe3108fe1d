//! The reconciler's handler: a batch of `ReconcileCluster` messages from the FIFO queue. Each
//! distinct cluster is reconciled once (level-triggered: the latest state is read whatever the
//! messages say); a cluster that fails reports its messages as batch item failures, so only
//! they are retried.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use eks_intents::ports::{BundleStore, EksPort, IamPort, KubernetesConnector, ReconcileCluster};
use eks_intents::reconcile::{ReconcilePorts, ReconcileSettings, reconcile};
use std::collections::BTreeMap;

/// Built once at cold start and borrowed by every invocation.
pub struct Context<I, E, K, S> {
    pub iam: I,
    pub eks: E,
    pub kube: K,
    pub store: S,
    pub settings: ReconcileSettings,
    /// Reads and resets the API call counts around each cluster's run.
    pub calls: Box<dyn Fn(bool) -> BTreeMap<String, u64> + Send + Sync>,
}

pub async fn handle<I, E, K, S>(ctx: &Context<I, E, K, S>, event: SqsEvent) -> SqsBatchResponse
where
    I: IamPort,
    E: EksPort,
    K: KubernetesConnector,
    S: BundleStore,
{
    // Messages by cluster, in arrival order; a message that is not a ReconcileCluster fails
    // alone (it reaches the dead-letter queue after its retries).
    let mut clusters: Vec<(String, Vec<String>)> = Vec::new();
    let mut failures = Vec::new();
    for record in &event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let message = record
            .body
            .as_deref()
            .map(serde_json::from_str::<ReconcileCluster>);
        match message {
            Some(Ok(message)) => {
                tracing::info!(cluster = %message.cluster, reason = %message.reason, "reconcile requested");
                match clusters.iter_mut().find(|(c, _)| *c == message.cluster) {
                    Some((_, ids)) => ids.push(id),
                    None => clusters.push((message.cluster, vec![id])),
                }
            }
            other => {
                tracing::error!(message_id = %id, body = ?record.body, error = ?other.and_then(Result::err).map(|e| e.to_string()), "not a ReconcileCluster message");
                failures.push(id);
            }
        }
    }
    for (cluster, ids) in clusters {
        (ctx.calls)(true);
        let ports = ReconcilePorts {
            iam: &ctx.iam,
            eks: &ctx.eks,
            kube: &ctx.kube,
            store: &ctx.store,
        };
        let calls = || (ctx.calls)(false);
        match reconcile(&cluster, &ports, &ctx.settings, false, &calls).await {
            Ok(outcome) => tracing::info!(
                cluster,
                actions = outcome.plan.actions.len(),
                applied = outcome.applied.done,
                failed = outcome.applied.failures.len(),
                api_calls = ?outcome.report.api_calls,
                "reconciled"
            ),
            Err(error) => {
                tracing::error!(cluster, %error, retryable = error.is_retryable(), "reconcile failed");
                failures.extend(ids);
            }
        }
    }
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures
        .into_iter()
        .map(|id| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            failure
        })
        .collect();
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sqs_sample_holds_reconcile_messages() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../events/sqs-reconcile-cluster.json"
        );
        let text = std::fs::read_to_string(path).expect("sample exists");
        let event: SqsEvent = serde_json::from_str(&text).expect("an SQS event");
        let clusters: Vec<String> = event
            .records
            .iter()
            .map(|r| {
                serde_json::from_str::<ReconcileCluster>(r.body.as_deref().unwrap_or_default())
                    .expect("a ReconcileCluster body")
                    .cluster
            })
            .collect();
        assert_eq!(clusters, ["demo", "demo"]);
    }
}
