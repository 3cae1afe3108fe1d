//! SQS: the FIFO queue of `ReconcileCluster` messages; the message group is the cluster, so
//! one cluster is reconciled by one run at a time and many clusters in parallel.

use super::port_error;
use crate::policy::short_hash;
use crate::ports::{
    DeduplicatedReconcile, ErrorKind, PortError, PortResult, ReconcileCluster, ReconcileQueue,
    ReconcileRetry,
};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
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

    async fn send_deduplicated(&self, messages: &[DeduplicatedReconcile]) -> PortResult<()> {
        // SendMessageBatch takes ten entries at most.
        for chunk in messages.chunks(10) {
            let mut request = self.client.send_message_batch().queue_url(&self.queue_url);
            for (i, queued) in chunk.iter().enumerate() {
                let body = serde_json::to_string(&queued.message).map_err(|e| {
                    PortError::new("sqs", "SendMessageBatch", ErrorKind::Other, e.to_string())
                })?;
                let entry = SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(body)
                    .message_group_id(&queued.message.cluster)
                    .message_deduplication_id(&queued.deduplication_id)
                    .build()
                    .map_err(|e| {
                        PortError::new("sqs", "SendMessageBatch", ErrorKind::Other, e.to_string())
                    })?;
                request = request.entries(entry);
            }
            let out = request
                .send()
                .await
                .map_err(|e| port_error("sqs", "SendMessageBatch", e))?;
            // A batch call succeeds even when some entries fail: each failure is an error here.
            if let Some(failed) = out.failed().first() {
                let kind = if failed.sender_fault() {
                    ErrorKind::Invalid
                } else {
                    ErrorKind::Transient
                };
                return Err(PortError::new(
                    "sqs",
                    "SendMessageBatch",
                    kind,
                    format!(
                        "{} of {} message(s) refused; first: {}: {}",
                        out.failed().len(),
                        chunk.len(),
                        failed.code(),
                        failed.message().unwrap_or_default()
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl ReconcileRetry for SqsAdapter {
    async fn retry_later(&self, receipt_handle: &str, seconds: u32) -> PortResult<()> {
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(seconds.min(43_200) as i32)
            .send()
            .await
            .map_err(|e| port_error("sqs", "ChangeMessageVisibility", e))?;
        Ok(())
    }
}
