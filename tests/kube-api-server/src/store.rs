//! The object store: kube-fake-client behind kube 4's `Client::send`, reached with plain
//! Kubernetes HTTP requests, with Namespaces kept under an internal alias the fake can route.

use crate::resource::ResourceType;
use crate::status;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt as _;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Value, json};
use std::borrow::Cow;

/// The fake cannot route `/api/v1/namespaces[/{name}]` (it reads `namespaces` as a namespace
/// segment), so Namespaces are stored as a namespaced type of this group, inside one fixed
/// namespace. Clients never see either name.
const NAMESPACE_ALIAS_GROUP: &str = "namespaces.kube-api-server.internal";
const NAMESPACE_ALIAS_HOME: &str = "cluster";

/// A refusal: an HTTP status with a Kubernetes `Status` body.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: StatusCode,
    pub message: String,
    pub details: Option<Value>,
}

impl ApiError {
    pub fn new(code: StatusCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: None,
        }
    }

    pub fn not_found(rtype: &ResourceType, name: &str) -> Self {
        Self {
            code: StatusCode::NOT_FOUND,
            message: format!("{} \"{name}\" not found", rtype.qualified()),
            details: Some(details(rtype, name)),
        }
    }

    pub fn into_response(self) -> status::HttpResponse {
        match self.details {
            Some(details) => status::failure_with_details(self.code, self.message, details),
            None => status::failure(self.code, self.message),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The `details` kube-apiserver attaches to errors about one object.
pub fn details(rtype: &ResourceType, name: &str) -> Value {
    let mut details = json!({ "name": name, "kind": rtype.plural });
    if !rtype.group.is_empty() {
        details["group"] = json!(rtype.group);
    }
    details
}

/// The registration that lets the fake route the Namespace alias.
struct NamespaceAlias {
    metadata: ObjectMeta,
}

impl kube::Resource for NamespaceAlias {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "Namespace".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        NAMESPACE_ALIAS_GROUP.into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "namespaces".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// Objects by type, namespace and name.
#[derive(Clone)]
pub struct Store {
    fake: kube::Client,
}

impl Store {
    /// An empty store. Built-in types need no registration: kube-fake-client knows every
    /// type of Kubernetes 1.32-1.36 from its discovery data.
    pub async fn new() -> anyhow::Result<Self> {
        let fake = kube_fake_client::ClientBuilder::new()
            .with_resource::<NamespaceAlias>()
            .with_return_managed_fields()
            .build()
            .await?;
        Ok(Self { fake })
    }

    pub async fn get(
        &self,
        rtype: &ResourceType,
        namespace: Option<&str>,
        name: &str,
    ) -> ApiResult<Option<Value>> {
        let path = format!("{}/{name}", self.collection(rtype, namespace));
        match self.send(Method::GET, &path, None).await {
            Ok(object) => Ok(Some(from_store(rtype, object))),
            Err(e) if e.code == StatusCode::NOT_FOUND => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Objects of `rtype` in `namespace` (all namespaces for `None`), filtered by the fake's
    /// label-selector support.
    pub async fn list(
        &self,
        rtype: &ResourceType,
        namespace: Option<&str>,
        label_selector: Option<&str>,
    ) -> ApiResult<Vec<Value>> {
        let mut path = self.collection(rtype, namespace);
        if let Some(selector) = label_selector {
            path.push_str("?labelSelector=");
            path.push_str(
                &percent_encoding::utf8_percent_encode(
                    selector,
                    percent_encoding::NON_ALPHANUMERIC,
                )
                .to_string(),
            );
        }
        let list = self.send(Method::GET, &path, None).await?;
        Ok(list
            .get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|item| from_store(rtype, item))
            .collect())
    }

    pub async fn create(
        &self,
        rtype: &ResourceType,
        namespace: Option<&str>,
        object: Value,
    ) -> ApiResult<Value> {
        let path = self.collection(rtype, namespace);
        let object = to_store(rtype, object);
        self.send(Method::POST, &path, Some(object))
            .await
            .map(|o| from_store(rtype, o))
    }

    /// Replaces the stored object. Through `/status` the fake keeps `metadata.generation`, so
    /// writes that leave `spec` alone go that way, as kube-apiserver bumps the generation only
    /// for spec changes.
    pub async fn replace(
        &self,
        rtype: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        object: Value,
        spec_changed: bool,
    ) -> ApiResult<Value> {
        let mut path = format!("{}/{name}", self.collection(rtype, namespace));
        if !spec_changed {
            path.push_str("/status");
        }
        let object = to_store(rtype, object);
        self.send(Method::PUT, &path, Some(object))
            .await
            .map(|o| from_store(rtype, o))
    }

    pub async fn delete(
        &self,
        rtype: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        propagation: Option<&str>,
    ) -> ApiResult<Value> {
        let mut path = format!("{}/{name}", self.collection(rtype, namespace));
        if let Some(policy) = propagation {
            path.push_str("?propagationPolicy=");
            path.push_str(policy);
        }
        self.send(Method::DELETE, &path, None)
            .await
            .map(|o| from_store(rtype, o))
    }

    fn collection(&self, rtype: &ResourceType, namespace: Option<&str>) -> String {
        if rtype.is_namespace() {
            format!("/apis/{NAMESPACE_ALIAS_GROUP}/v1/namespaces/{NAMESPACE_ALIAS_HOME}/namespaces")
        } else {
            rtype.collection_path(namespace)
        }
    }

    /// One request to the fake; its failures come back as `ApiError`s in kube-apiserver's
    /// shape (it omits `metadata` and `details`, and reports some as plain service errors).
    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> ApiResult<Value> {
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(kube::client::Body::from(bytes))
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("bad request: {e}")))?;
        let response = self
            .fake
            .send(request)
            .await
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, fake_error_text(&e)))?;
        let code = response.status();
        let body: Bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
            .to_bytes();
        let value: Value = serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the store answered something that is not JSON: {e}"),
            )
        })?;
        if code.is_success() {
            Ok(value)
        } else {
            let message = value
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("the store refused the request")
                .to_string();
            Err(ApiError::new(code, message))
        }
    }
}

fn fake_error_text(error: &kube::Error) -> String {
    match error {
        kube::Error::Service(inner) => inner.to_string(),
        other => other.to_string(),
    }
}

/// The stored form: Namespaces carry the alias apiVersion, which the fake routes by.
fn to_store(rtype: &ResourceType, mut object: Value) -> Value {
    if rtype.is_namespace() {
        object["apiVersion"] = json!(format!("{NAMESPACE_ALIAS_GROUP}/v1"));
        object["kind"] = json!("Namespace");
        if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("namespace");
        }
    }
    object
}

/// The served form: Namespaces back to core/v1, cluster-scoped.
fn from_store(rtype: &ResourceType, mut object: Value) -> Value {
    if rtype.is_namespace() && object.is_object() {
        object["apiVersion"] = json!("v1");
        if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("namespace");
        }
    }
    object
}
