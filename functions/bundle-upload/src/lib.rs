//! The bundle-upload handler: S3 notifications, in the direct form (`Records[].s3`) and in
//! EventBridge's `Object Created` / `Object Deleted` form. For a key under `intents/<cluster>/`
//! it checks the object at once, writes the result to
//! `status/<cluster>/bundles/<rest of key>.json` (so the uploader sees errors in seconds), and
//! asks for a reconcile of the cluster. Other keys are ignored with a log line. A failure says
//! whether delivering the event again can help (a throttled S3 or SQS) or not (an event of
//! another shape).
//!
//! Samples of both forms are in `events/` (for `cargo lambda invoke --data-file`).

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::s3::{S3Event, S3EventRecord};
use eks_intents::desired::read_object;
use eks_intents::intent::{self, Limits};
use eks_intents::lambda::Retryable;
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

/// Why an invocation failed, and whether trying it again can help.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// A `Records` event that is not an S3 notification: the field it lacks is named.
    #[error("not an S3 notification (Records[].s3): {0}")]
    NotAnS3Notification(#[source] serde_json::Error),
    #[error("neither an S3 notification (Records[].s3) nor an EventBridge S3 event: {0}")]
    UnknownEvent(#[source] serde_json::Error),
    #[error(
        "neither an S3 notification (Records[].s3) nor an EventBridge S3 event: source is {0:?}"
    )]
    OtherSource(String),
    #[error("EventBridge S3 event of type {0:?} is not handled")]
    UnhandledDetailType(String),
    #[error("cannot write the check of {key}: {source}")]
    WriteStatus {
        key: String,
        #[source]
        source: PortError,
    },
    #[error("cannot ask for a reconcile of cluster {cluster}: {source}")]
    Enqueue {
        cluster: String,
        #[source]
        source: PortError,
    },
}

impl Retryable for UploadError {
    /// True when the same event may succeed if delivered again: a throttled or unavailable
    /// S3 or SQS. An event of the wrong shape never will.
    fn is_retryable(&self) -> bool {
        match self {
            UploadError::WriteStatus { source, .. } | UploadError::Enqueue { source, .. } => {
                source.is_retryable()
            }
            UploadError::NotAnS3Notification(_)
            | UploadError::UnknownEvent(_)
            | UploadError::OtherSource(_)
            | UploadError::UnhandledDetailType(_) => false,
        }
    }
}

/// The `detail` of EventBridge's S3 `Object Created` and `Object Deleted` events, as far as
/// it is read.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ObjectEventDetail {
    pub bucket: DetailBucket,
    pub object: DetailObject,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DetailBucket {
    pub name: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DetailObject {
    /// As it is: EventBridge does not URL-encode keys.
    pub key: String,
    /// Absent on deletions.
    #[serde(default)]
    pub size: Option<u64>,
}

/// The figures of one invocation: uploads and deletions seen, invalid bundles, reconciles
/// asked for, other keys ignored, errors.
pub fn metrics(result: &Result<Response, UploadError>) -> Metrics {
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
pub fn changes(event: &Value) -> Result<Vec<ObjectChange>, UploadError> {
    // The direct form is the one with `Records`; anything else must be EventBridge's.
    if event.get("Records").is_some() {
        let event = S3Event::deserialize(event).map_err(UploadError::NotAnS3Notification)?;
        return Ok(event.records.iter().filter_map(direct_change).collect());
    }
    let event = EventBridgeEvent::<ObjectEventDetail>::deserialize(event)
        .map_err(UploadError::UnknownEvent)?;
    if event.source != "aws.s3" {
        return Err(UploadError::OtherSource(event.source));
    }
    let deleted = match event.detail_type.as_str() {
        "Object Created" => false,
        "Object Deleted" => true,
        _ => return Err(UploadError::UnhandledDetailType(event.detail_type)),
    };
    let detail = event.detail;
    Ok(vec![ObjectChange {
        bucket: detail.bucket.name,
        key: detail.object.key,
        size: detail.object.size.unwrap_or_default(),
        deleted,
    }])
}

/// A record without a bucket or key names no object: skipped.
fn direct_change(record: &S3EventRecord) -> Option<ObjectChange> {
    let object = &record.s3.object;
    Some(ObjectChange {
        bucket: record.s3.bucket.name.clone()?,
        key: decode_key(object.key.as_deref()?),
        size: object
            .size
            .and_then(|size| u64::try_from(size).ok())
            .unwrap_or_default(),
        deleted: record
            .event_name
            .as_deref()
            .is_some_and(|name| name.starts_with("ObjectRemoved")),
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
) -> Result<Response, UploadError> {
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
                .map_err(|source| UploadError::WriteStatus {
                    key: change.key.clone(),
                    source,
                })?;
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
            ctx.queue
                .send(&message)
                .await
                .map_err(|source| UploadError::Enqueue {
                    cluster: message.cluster.clone(),
                    source,
                })?;
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
        let error = UploadError::UnhandledDetailType("boom".into());
        assert_eq!(metrics(&Err(error)).values["Errors"].0, 1.0);
    }

    #[test]
    fn other_events_are_errors_that_say_what_was_expected() {
        let err = changes(&serde_json::json!({"hello": "world"}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("neither an S3 notification"), "{err}");
        let err = changes(
            &serde_json::json!({"source": "aws.s3", "detail-type": "Object Restore Completed",
            "detail": {"bucket": {"name": "b"}, "object": {"key": "k"}}}),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("Object Restore Completed"), "{err}");
    }

    #[test]
    fn a_broken_event_names_what_it_lacks_and_is_not_retried() {
        let err = changes(
            &serde_json::json!({"source": "aws.s3", "detail-type": "Object Created",
            "detail": {"bucket": {"name": "b"}, "object": {}}}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("missing field `key`"), "{err}");
        assert!(!err.is_retryable());
        let err = changes(
            &serde_json::json!({"source": "aws.ec2", "detail-type": "Object Created",
            "detail": {"bucket": {"name": "b"}, "object": {"key": "k"}}}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("\"aws.ec2\""), "{err}");
        let err = changes(&serde_json::json!({"Records": [{"eventName": "ObjectCreated:Put"}]}))
            .unwrap_err();
        assert!(
            err.to_string().starts_with("not an S3 notification"),
            "{err}"
        );
        let diagnostic = eks_intents::lambda::diagnostic(&err);
        assert_eq!(diagnostic.error_type, "NotRetryable");
    }

    #[test]
    fn failed_writes_are_retried_when_the_service_may_recover() {
        use eks_intents::ports::ErrorKind;
        let throttled = UploadError::Enqueue {
            cluster: "demo".into(),
            source: PortError::new("sqs", "SendMessage", ErrorKind::Transient, "Throttling"),
        };
        assert!(throttled.is_retryable());
        assert_eq!(
            eks_intents::lambda::diagnostic(&throttled).error_type,
            "Retryable"
        );
        let denied = UploadError::WriteStatus {
            key: "intents/demo/a.yaml".into(),
            source: PortError::new("s3", "PutObject", ErrorKind::Denied, "AccessDenied"),
        };
        assert!(!denied.is_retryable());
    }
}
