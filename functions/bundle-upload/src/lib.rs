//! The bundle-upload handler: S3 notifications, in the direct form (`Records[].s3`) and in
//! EventBridge's `Object Created` / `Object Deleted` form. For a key under `intents/<cluster>/`
//! it checks the object at once, writes the result to
//! `status/<cluster>/bundles/<rest of key>.json` (so the uploader sees errors in seconds), and
//! asks for a reconcile of the cluster. Other keys are ignored with a log line.
//!
//! Samples of both forms are in `events/` (for `cargo lambda invoke --data-file`).

use eks_intents::desired::read_object;
use eks_intents::intent::{self, Limits};
use eks_intents::metrics::Metrics;
use eks_intents::ports::{BundleStore, PortError, ReconcileCluster, ReconcileQueue};
use eks_intents::reconcile::now;
use eks_intents::status::{BundleStatus, upload_status_key};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub struct Context<S, Q> {
    pub store: S,
    pub queue: Q,
    pub bucket: String,
    pub limits: Limits,
}

/// One object change, whichever notification form carried it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectChange {
    pub bucket: String,
    /// The key, URL-decoded.
    pub key: String,
    pub size: u64,
    pub deleted: bool,
}

/// The result of checking one upload, as written next to the status report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadStatus {
    pub checked_at: u64,
    #[serde(flatten)]
    pub bundle: BundleStatus,
}

/// What the handler did with each change, returned to the caller (and logged).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub reconciles: Vec<ReconcileCluster>,
    pub ignored: Vec<String>,
    pub invalid: Vec<String>,
}

/// The figures of one invocation: uploads and deletions seen, invalid bundles, reconciles
/// asked for, other keys ignored, errors.
pub fn metrics(result: &Result<Response, String>) -> Metrics {
    let mut metrics = Metrics::new("bundle-upload", None);
    match result {
        Ok(response) => metrics
            .count("ReconcilesRequested", response.reconciles.len())
            .count("InvalidBundles", response.invalid.len())
            .count("KeysIgnored", response.ignored.len())
            .count("Errors", 0),
        Err(_) => metrics.count("Errors", 1),
    };
    metrics
}

/// Reads the changes out of either notification form. An event of neither form is an error.
pub fn changes(event: &Value) -> Result<Vec<ObjectChange>, String> {
    if let Some(records) = event.get("Records").and_then(Value::as_array) {
        return Ok(records.iter().filter_map(direct_change).collect());
    }
    if event.get("source").and_then(Value::as_str) == Some("aws.s3") {
        let kind = event
            .get("detail-type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let detail = event.get("detail").unwrap_or(&Value::Null);
        let bucket = detail.pointer("/bucket/name").and_then(Value::as_str);
        let key = detail.pointer("/object/key").and_then(Value::as_str);
        let (Some(bucket), Some(key)) = (bucket, key) else {
            return Err(
                "EventBridge S3 event without detail.bucket.name and detail.object.key".into(),
            );
        };
        let deleted = match kind {
            "Object Created" => false,
            "Object Deleted" => true,
            other => {
                return Err(format!(
                    "EventBridge S3 event of type {other:?} is not handled"
                ));
            }
        };
        // Unlike direct notifications, EventBridge carries the key as it is, not URL-encoded.
        return Ok(vec![ObjectChange {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            size: detail
                .pointer("/object/size")
                .and_then(Value::as_u64)
                .unwrap_or_default(),
            deleted,
        }]);
    }
    Err("neither an S3 notification (Records[].s3) nor an EventBridge S3 event".into())
}

fn direct_change(record: &Value) -> Option<ObjectChange> {
    let name = record
        .get("eventName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let bucket = record.pointer("/s3/bucket/name").and_then(Value::as_str)?;
    let key = record.pointer("/s3/object/key").and_then(Value::as_str)?;
    Some(ObjectChange {
        bucket: bucket.to_owned(),
        key: decode_key(key),
        size: record
            .pointer("/s3/object/size")
            .and_then(Value::as_u64)
            .unwrap_or_default(),
        deleted: name.starts_with("ObjectRemoved"),
    })
}

/// S3 notifications carry keys URL-encoded, with `+` for spaces.
fn decode_key(key: &str) -> String {
    let spaced = key.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

pub async fn handle<S: BundleStore, Q: ReconcileQueue>(
    ctx: &Context<S, Q>,
    event: &Value,
) -> Result<Response, String> {
    let mut response = Response::default();
    for change in changes(event)? {
        let located = intent::locate(&change.key);
        let (Some(location), true) = (located, change.bucket == ctx.bucket) else {
            tracing::info!(bucket = %change.bucket, key = %change.key, "not an intent bundle of this deployment; ignored");
            response.ignored.push(change.key);
            continue;
        };
        if !change.deleted {
            let (report, read) =
                read_object(&ctx.store, &change.key, change.size, &ctx.limits).await;
            let read = read.unwrap_or_default();
            let status = UploadStatus {
                checked_at: now(),
                bundle: BundleStatus::of(&change.key, read.etag, read.version, &report),
            };
            for error in &report.errors {
                tracing::warn!(key = %change.key, %error, "invalid bundle");
            }
            if !report.is_valid() {
                response.invalid.push(change.key.clone());
            }
            let body = serde_json::to_vec_pretty(&status).unwrap_or_default();
            ctx.store
                .put(
                    &upload_status_key(&location.cluster, &change.key),
                    body,
                    "application/json",
                )
                .await
                .map_err(|e: PortError| e.to_string())?;
        }
        let message = ReconcileCluster::new(
            location.cluster,
            format!(
                "{} {}",
                if change.deleted {
                    "deleted"
                } else {
                    "uploaded"
                },
                change.key
            ),
        );
        if !response
            .reconciles
            .iter()
            .any(|m| m.cluster == message.cluster)
        {
            ctx.queue.send(&message).await.map_err(|e| e.to_string())?;
            response.reconciles.push(message);
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str) -> Value {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/");
        let text = std::fs::read_to_string(format!("{path}{name}")).expect("sample exists");
        serde_json::from_str(&text).expect("sample is JSON")
    }

    #[test]
    fn every_s3_sample_reads_as_the_change_it_describes() {
        let cases = [
            (
                "s3-object-created.json",
                "intents/demo/jokes/joke worker+ci.yaml",
                false,
            ),
            (
                "s3-object-removed.json",
                "intents/demo/kube-system/ebs-ci.yaml",
                true,
            ),
            (
                "eventbridge-object-created.json",
                "intents/demo/jokes/joke-worker-ci.yaml",
                false,
            ),
            (
                "eventbridge-object-deleted.json",
                "intents/demo/ack-dynamodb-ci.yaml",
                true,
            ),
        ];
        for (file, key, deleted) in cases {
            let changes = changes(&sample(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(changes.len(), 1, "{file}");
            assert_eq!(changes[0].bucket, "eks-intents-bundles", "{file}");
            assert_eq!(changes[0].key, key, "{file}");
            assert_eq!(changes[0].deleted, deleted, "{file}");
        }
    }

    #[test]
    fn metrics_count_what_the_invocation_did() {
        let response = Response {
            reconciles: vec![ReconcileCluster::new("demo", "uploaded")],
            ignored: vec!["x".into(), "y".into()],
            invalid: vec!["intents/demo/bad.yaml".into()],
        };
        let ok = metrics(&Ok(response)).values;
        assert_eq!(ok["ReconcilesRequested"].0, 1.0);
        assert_eq!(ok["KeysIgnored"].0, 2.0);
        assert_eq!(ok["InvalidBundles"].0, 1.0);
        assert_eq!(ok["Errors"].0, 0.0);
        assert_eq!(metrics(&Err("boom".into())).values["Errors"].0, 1.0);
    }

    #[test]
    fn other_events_are_errors_that_say_what_was_expected() {
        let err = changes(&serde_json::json!({"hello": "world"})).unwrap_err();
        assert!(err.contains("neither an S3 notification"), "{err}");
        let err = changes(
            &serde_json::json!({"source": "aws.s3", "detail-type": "Object Restore Completed",
            "detail": {"bucket": {"name": "b"}, "object": {"key": "k"}}}),
        )
        .unwrap_err();
        assert!(err.contains("Object Restore Completed"), "{err}");
    }
}
