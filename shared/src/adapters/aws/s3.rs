//! S3: the bundle store. Lists and reads every bundle under a cluster's prefix, writes status.

use super::port_error;
use crate::ports::{
    BundleObject, BundleStore, ErrorKind, FetchedObject, PortError, PortResult, StoreLevel,
    WriteCondition,
};
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;

#[derive(Clone, Debug)]
pub struct S3Adapter {
    client: Client,
    bucket: String,
}

impl S3Adapter {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }
}

impl S3Adapter {
    /// The object, unless it still has the ETag `unchanged` (`None` then).
    async fn get_unless(
        &self,
        key: &str,
        unchanged: Option<&str>,
        max_bytes: u64,
    ) -> PortResult<Option<FetchedObject>> {
        // One byte past the cap tells the reader the object is too large, without fetching it.
        let result = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .range(format!("bytes=0-{max_bytes}"))
            .set_if_none_match(unchanged.map(|etag| format!("\"{etag}\"")))
            .send()
            .await;
        let out = match result {
            Ok(out) => out,
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 304) => {
                return Ok(None);
            }
            // A range of an empty object is not satisfiable: the object is empty.
            Err(e)
                if e.as_service_error().and_then(|s| s.meta().code()) == Some("InvalidRange") =>
            {
                return Ok(Some(FetchedObject::default()));
            }
            Err(e) => return Err(port_error("s3", "GetObject", e)),
        };
        let version = out.version_id().map(str::to_owned);
        let etag = out.e_tag().map(unquote);
        let body =
            out.body.collect().await.map_err(|e| {
                PortError::new("s3", "GetObject", ErrorKind::Transient, e.to_string())
            })?;
        Ok(Some(FetchedObject {
            bytes: body.into_bytes().to_vec(),
            version,
            etag,
        }))
    }
}

impl BundleStore for S3Adapter {
    async fn list(&self, prefix: &str) -> PortResult<Vec<BundleObject>> {
        let mut objects = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| port_error("s3", "ListObjectsV2", e))?;
            for object in page.contents() {
                let Some(key) = object.key() else { continue };
                objects.push(BundleObject {
                    key: key.to_owned(),
                    etag: object.e_tag().map(unquote),
                    version: None,
                    size: object.size().unwrap_or_default().max(0) as u64,
                });
            }
        }
        Ok(objects)
    }

    async fn list_level(&self, prefix: &str) -> PortResult<StoreLevel> {
        let mut level = StoreLevel::default();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .delimiter("/")
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| port_error("s3", "ListObjectsV2", e))?;
            level.prefixes.extend(
                page.common_prefixes()
                    .iter()
                    .filter_map(|p| p.prefix().map(str::to_owned)),
            );
            for object in page.contents() {
                let Some(key) = object.key() else { continue };
                level.objects.push(BundleObject {
                    key: key.to_owned(),
                    etag: object.e_tag().map(unquote),
                    version: None,
                    size: object.size().unwrap_or_default().max(0) as u64,
                });
            }
        }
        Ok(level)
    }

    async fn get(&self, key: &str, max_bytes: u64) -> PortResult<FetchedObject> {
        self.get_unless(key, None, max_bytes).await?.ok_or_else(|| {
            PortError::new(
                "s3",
                "GetObject",
                ErrorKind::Transient,
                "304 Not Modified without a condition",
            )
        })
    }

    async fn get_if_changed(
        &self,
        key: &str,
        etag: &str,
        max_bytes: u64,
    ) -> PortResult<Option<FetchedObject>> {
        self.get_unless(key, Some(etag), max_bytes).await
    }

    async fn put(&self, key: &str, body: Vec<u8>, content_type: &str) -> PortResult<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| port_error("s3", "PutObject", e))?;
        Ok(())
    }

    async fn put_if(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
        condition: &WriteCondition,
    ) -> PortResult<Option<String>> {
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body));
        let request = match condition {
            WriteCondition::Absent => request.if_none_match("*"),
            WriteCondition::Unchanged(etag) => request.if_match(format!("\"{etag}\"")),
        };
        match request.send().await {
            Ok(out) => Ok(out.e_tag().map(unquote)),
            Err(e) => {
                // 412 when the condition does not hold; 409 when another conditional write to
                // the key is in flight. Either way someone else wrote: look again.
                let code = e.as_service_error().and_then(|s| s.meta().code());
                let lost = matches!(
                    code,
                    Some("PreconditionFailed" | "ConditionalRequestConflict")
                ) || e
                    .raw_response()
                    .is_some_and(|r| matches!(r.status().as_u16(), 409 | 412));
                let mut error = port_error("s3", "PutObject", e);
                if lost {
                    error.kind = ErrorKind::Conflict;
                }
                Err(error)
            }
        }
    }
}

/// S3 quotes ETags (`"9b2cf535f27731c974343645a3985328"`); the system keeps them bare.
fn unquote(etag: &str) -> String {
    etag.trim_matches('"').to_owned()
}
