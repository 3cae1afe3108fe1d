//! SQS: the FIFO queue of `ReconcileCluster` messages; the message group is the cluster, so
//! one cluster is reconciled by one run at a time and many clusters in parallel.

use super::port_error;
use crate::policy::short_hash;
use crate::ports::{ErrorKind, PortError, PortResult, ReconcileCluster, ReconcileQueue};
use aws_sdk_sqs::Client;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Clone, Debug)]
pub struct SqsAdapter {
    client: Client,
    queue_url: String,
}

impl SqsAdapter {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }
}

impl ReconcileQueue for SqsAdapter {
    async fn send(&self, message: &ReconcileCluster) -> PortResult<()> {
        let body = serde_json::to_string(message)
            .map_err(|e| PortError::new("sqs", "SendMessage", ErrorKind::Other, e.to_string()))?;
        // Every request is its own message: deduplicating on the content would drop an
        // upload that arrives within five minutes of an identical one already consumed.
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_group_id(&message.cluster)
            .message_deduplication_id(short_hash(&format!("{body}{nanos}"), 64))
            .message_body(body)
            .send()
            .await
            .map_err(|e| port_error("sqs", "SendMessage", e))?;
        Ok(())
    }
}
