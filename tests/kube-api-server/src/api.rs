//! The Kubernetes API proper: reads go to the store as they come; writes are computed here
//! (merge and JSON patches, server-side apply with managed fields and conflicts) and stored
//! whole, because the fake merges apply bodies without ever removing a field.

use crate::fields::{self, FieldSet, ManagedEntry, Part};
use crate::lists;
use crate::resource::{ResourceType, Target};
use crate::status::{self, HttpResponse};
use crate::store::{ApiError, ApiResult, Store, details};
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, Uri};
use percent_encoding::percent_decode_str;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// Namespaces every cluster starts with.
const INITIAL_NAMESPACES: &[&str] = &["default", "kube-node-lease", "kube-public", "kube-system"];
/// The manager kube-apiserver's own controllers write as.
const SYSTEM_MANAGER: &str = "kube-controller-manager";

/// Query parameters, percent-decoded.
#[derive(Debug, Default)]
pub struct Query(BTreeMap<String, String>);

impl Query {
    /// Parses a query string. kube writes the spaces of set-based label selectors as `+`,
    /// which kube-apiserver (Go's form decoding) reads as spaces, so this does too.
    pub fn parse(raw: Option<&str>) -> Self {
        let mut params = BTreeMap::new();
        for pair in raw.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| {
                percent_decode_str(&s.replace('+', "%20"))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            params.insert(decode(key), decode(value));
        }
        Self(params)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn flag(&self, key: &str) -> bool {
        matches!(self.0.get(key).map(String::as_str), Some("" | "true" | "1"))
    }
}

/// The API behind authentication.
pub struct Api {
    store: Store,
    /// Writes read, compute and store in several steps; one at a time keeps each atomic.
    writes: tokio::sync::Mutex<()>,
}

impl Api {
    /// An empty cluster with the namespaces (and their `default` ServiceAccounts) that every
    /// cluster has.
    pub async fn new() -> anyhow::Result<Self> {
        let api = Self {
            store: Store::new().await?,
            writes: tokio::sync::Mutex::new(()),
        };
        for name in INITIAL_NAMESPACES {
            let namespace =
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
            api.create_as(&ResourceType::namespace(), None, namespace, SYSTEM_MANAGER)
                .await
                .map_err(|e| anyhow::anyhow!("cannot create namespace {name}: {}", e.message))?;
        }
        Ok(api)
    }

    /// Serves one authenticated request to a resource path.
    pub async fn handle(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: Bytes,
    ) -> HttpResponse {
        let Some(target) = Target::parse(uri.path()) else {
            return status::failure(
                StatusCode::NOT_FOUND,
                "the server could not find the requested resource",
            );
        };
        let query = Query::parse(uri.query());
        match self.dispatch(method, &target, &query, headers, body).await {
            Ok((code, value)) => status::json(code, &value),
            Err(error) => error.into_response(),
        }
    }

    async fn dispatch(
        &self,
        method: &Method,
        target: &Target,
        query: &Query,
        headers: &HeaderMap,
        body: Bytes,
    ) -> ApiResult<(StatusCode, Value)> {
        if query.flag("watch") {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "watch is not supported by this test server: list instead",
            ));
        }
        let content_type = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let is_apply = content_type.starts_with("application/apply-patch");
        let verb = match (method, target.name.is_some()) {
            (&Method::GET, false) => "list",
            (&Method::GET, true) => "get",
            (&Method::POST, false) => "create",
            (&Method::PUT, true) => "update",
            (&Method::PATCH, true) => "patch",
            (&Method::DELETE, true) => "delete",
            (&Method::DELETE, false) => "deletecollection",
            _ => {
                return Err(ApiError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    format!(
                        "the server does not allow this method on the requested resource ({method})"
                    ),
                ));
            }
        };
        // Across all namespaces a namespaced type can only be listed.
        let unscoped = target.rtype.namespaced && target.namespace.is_none() && verb != "list";
        if unscoped || !target.rtype.supports(verb) {
            return Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{} does not support {verb}", target.rtype.qualified()),
            ));
        }
        // Ignoring dryRun would turn a preview into a write; refuse what is not implemented.
        if query.get("dryRun").is_some() && !(verb == "patch" && is_apply) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "dryRun is supported only for server-side apply by this test server",
            ));
        }
        // kubectl sends protobuf first; a 415 makes client-go retry in JSON, all this serves.
        if matches!(verb, "create" | "update")
            && !content_type.is_empty()
            && !content_type.starts_with("application/json")
        {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "the body of the request was in an unknown format ({content_type}) - accepted media types include: application/json"
                ),
            ));
        }
        let manager = field_manager(query, headers);
        match verb {
            "list" => self.list(target, query).await,
            "get" => self.get(target).await,
            "create" => {
                let object = parse_object(&body)?;
                let _write = self.writes.lock().await;
                self.create_as(&target.rtype, target.namespace.as_deref(), object, &manager)
                    .await
                    .map(|created| (StatusCode::CREATED, created))
            }
            "update" => self.replace(target, &body, &manager).await,
            "patch" if is_apply => self.apply(target, query, &body).await,
            "patch" => self.patch(target, content_type, &body, &manager).await,
            "delete" => self.delete(target, query).await,
            _ => self.delete_collection(target, query).await,
        }
    }

    async fn get(&self, target: &Target) -> ApiResult<(StatusCode, Value)> {
        let name = target.name.as_deref().unwrap_or_default();
        self.store
            .get(&target.rtype, target.namespace.as_deref(), name)
            .await?
            .map(|object| (StatusCode::OK, object))
            .ok_or_else(|| ApiError::not_found(&target.rtype, name))
    }

    async fn list(&self, target: &Target, query: &Query) -> ApiResult<(StatusCode, Value)> {
        let items = self.select(target, query).await?;
        let limit = query.get("limit").and_then(|l| l.parse::<usize>().ok());
        let (items, metadata) = lists::paginate(items, limit, query.get("continue"))?;
        let rtype = &target.rtype;
        Ok((
            StatusCode::OK,
            json!({
                "kind": format!("{}List", rtype.kind),
                "apiVersion": rtype.api_version(),
                "metadata": metadata,
                "items": items,
            }),
        ))
    }

    /// The objects a list or delete-collection addresses, in kube-apiserver's order.
    async fn select(&self, target: &Target, query: &Query) -> ApiResult<Vec<Value>> {
        let label_selector = query.get("labelSelector");
        if let Some(selector) = label_selector {
            // The fake treats a selector it cannot parse as matching nothing; a real server
            // answers 400, which is what a client with a bad selector needs to see.
            kube_fake_client::label_selector::parse_label_selector(selector).map_err(|e| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("unable to parse requirement: {e}"),
                )
            })?;
        }
        let terms = match query.get("fieldSelector") {
            Some(selector) => lists::parse_field_selector(selector, &target.rtype.kind)?,
            None => Vec::new(),
        };
        let mut items = self
            .store
            .list(&target.rtype, target.namespace.as_deref(), label_selector)
            .await?;
        items.retain(|item| lists::matches_fields(item, &terms));
        items.sort_by_key(lists::sort_key);
        Ok(items)
    }

    /// Creates `object` in `namespace`, recording `manager` as the owner of every field, as
    /// kube-apiserver does for a create.
    async fn create_as(
        &self,
        rtype: &ResourceType,
        namespace: Option<&str>,
        mut object: Value,
        manager: &str,
    ) -> ApiResult<Value> {
        conform(rtype, namespace, None, &mut object)?;
        let unnamed = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .is_none();
        let prefix = object
            .pointer("/metadata/generateName")
            .and_then(Value::as_str)
            .map(str::to_string);
        if let (true, Some(prefix)) = (unnamed, prefix) {
            object["metadata"]["name"] = json!(format!("{prefix}{}", random_suffix()));
        }
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        validate_name(rtype, &name)?;
        if let Some(namespace) = namespace.filter(|_| rtype.namespaced) {
            self.require_namespace(namespace).await?;
        }
        strip_server_metadata(&mut object);
        if rtype.is_namespace() {
            namespace_defaults(&mut object);
        }
        let part = Part::Main {
            status_separate: rtype.has_status(),
        };
        let mut entry = ManagedEntry::new(manager, "Update", &rtype.api_version(), part);
        entry.fields = FieldSet::of(&object, part);
        ManagedEntry::write_all(&mut object, &[entry]);
        let created = self
            .store
            .create(rtype, namespace, object)
            .await
            .map_err(|e| with_details(e, rtype, &name))?;
        if rtype.is_namespace() {
            self.create_default_service_account(&name).await?;
        }
        Ok(created)
    }

    /// The `default` ServiceAccount that kube-controller-manager puts in every namespace.
    async fn create_default_service_account(&self, namespace: &str) -> ApiResult<()> {
        let account = json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "default", "namespace": namespace},
        });
        Box::pin(self.create_as(
            &ResourceType::service_account(),
            Some(namespace),
            account,
            SYSTEM_MANAGER,
        ))
        .await
        .map(|_| ())
    }

    async fn require_namespace(&self, namespace: &str) -> ApiResult<()> {
        let rtype = ResourceType::namespace();
        match self.store.get(&rtype, None, namespace).await? {
            Some(_) => Ok(()),
            None => Err(ApiError::not_found(&rtype, namespace)),
        }
    }

    async fn current(&self, target: &Target) -> ApiResult<(String, Value)> {
        let name = target.name.clone().unwrap_or_default();
        let object = self
            .store
            .get(&target.rtype, target.namespace.as_deref(), &name)
            .await?
            .ok_or_else(|| ApiError::not_found(&target.rtype, &name))?;
        Ok((name, object))
    }

    /// PUT: the body replaces the object.
    async fn replace(
        &self,
        target: &Target,
        body: &[u8],
        manager: &str,
    ) -> ApiResult<(StatusCode, Value)> {
        let mut object = parse_object(body)?;
        let _write = self.writes.lock().await;
        let (name, before) = self.current(target).await?;
        conform(
            &target.rtype,
            target.namespace.as_deref(),
            Some(&name),
            &mut object,
        )?;
        check_resource_version(&object, &before, &target.rtype, &name)?;
        self.write_update(target, &name, before, object, manager)
            .await
    }

    /// PATCH with a JSON patch or a merge patch. A strategic merge patch is applied as a
    /// merge patch: lists are replaced, not merged by key.
    async fn patch(
        &self,
        target: &Target,
        content_type: &str,
        body: &[u8],
        manager: &str,
    ) -> ApiResult<(StatusCode, Value)> {
        let patch: Value = serde_json::from_slice(body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("the patch is not JSON: {e}"),
            )
        })?;
        let _write = self.writes.lock().await;
        let (name, before) = self.current(target).await?;
        let mut after = before.clone();
        if content_type.starts_with("application/json-patch+json") {
            let operations: json_patch::Patch = serde_json::from_value(patch).map_err(|e| {
                ApiError::new(StatusCode::BAD_REQUEST, format!("invalid JSON patch: {e}"))
            })?;
            json_patch::patch(&mut after, &operations).map_err(|e| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("the JSON patch cannot be applied: {e}"),
                )
            })?;
        } else if content_type.starts_with("application/merge-patch+json")
            || content_type.starts_with("application/strategic-merge-patch+json")
        {
            json_patch::merge(&mut after, &patch);
        } else {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "the body of the request was in an unknown format ({content_type}) - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
                ),
            ));
        }
        check_resource_version(&after, &before, &target.rtype, &name)?;
        self.write_update(target, &name, before, after, manager)
            .await
    }

    /// Stores `after` as an `Update` by `manager`: it takes over the fields it changed, and
    /// every manager loses the fields that are gone.
    async fn write_update(
        &self,
        target: &Target,
        name: &str,
        before: Value,
        mut after: Value,
        manager: &str,
    ) -> ApiResult<(StatusCode, Value)> {
        let rtype = &target.rtype;
        let part = part_of(target);
        confine_to_part(&before, &mut after, part);
        keep_server_metadata(&before, &mut after);
        if after == before {
            // kube-apiserver does not write (nor bump resourceVersion) for a no-op.
            return Ok((StatusCode::OK, before));
        }
        let (changed, removed) = fields::changes(&before, &after, part);
        let mut entries = ManagedEntry::read_all(&before);
        for entry in entries
            .iter_mut()
            .filter(|e| e.subresource == part.subresource() && !e.is(manager, "Update", part))
        {
            for path in changed.paths().chain(removed.paths()) {
                entry.fields.remove_overlapping(path);
            }
        }
        let index = match entries.iter().position(|e| e.is(manager, "Update", part)) {
            Some(index) => index,
            None => {
                entries.push(ManagedEntry::new(
                    manager,
                    "Update",
                    &rtype.api_version(),
                    part,
                ));
                entries.len() - 1
            }
        };
        if let Some(mine) = entries.get_mut(index) {
            for path in removed.paths() {
                mine.fields.remove_overlapping(path);
            }
            for path in changed.paths() {
                mine.fields.remove_overlapping(path);
                mine.fields.insert(path.clone());
            }
            mine.time = fields::now();
            mine.api_version = rtype.api_version();
        }
        ManagedEntry::write_all(&mut after, &entries);
        let spec_changed = spec_changed(&before, &after);
        let written = self
            .store
            .replace(
                rtype,
                target.namespace.as_deref(),
                name,
                after,
                spec_changed,
            )
            .await
            .map_err(|e| with_details(e, rtype, name))?;
        Ok((StatusCode::OK, written))
    }

    /// Server-side apply: `fieldManager` owns exactly the fields of its configuration; fields
    /// it owned before and no longer sets are removed unless another manager owns them; a
    /// field another manager owns with a different value is a conflict unless `force`.
    async fn apply(
        &self,
        target: &Target,
        query: &Query,
        body: &[u8],
    ) -> ApiResult<(StatusCode, Value)> {
        let manager = query.get("fieldManager").ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
            )
        })?;
        let force = query.flag("force");
        let dry_run = query.get("dryRun").is_some();
        let mut config = parse_apply_configuration(body)?;
        let rtype = &target.rtype;
        let name = target.name.clone().unwrap_or_default();
        conform(rtype, target.namespace.as_deref(), Some(&name), &mut config)?;
        let part = part_of(target);
        let precondition = config.clone();
        strip_server_metadata(&mut config);
        confine_configuration(&mut config, part);
        let config_fields = FieldSet::of(&config, part);

        let _write = self.writes.lock().await;
        let current = self
            .store
            .get(rtype, target.namespace.as_deref(), &name)
            .await?;
        let Some(current) = current else {
            if target.status {
                return Err(ApiError::not_found(rtype, &name));
            }
            // A uid in the configuration is a precondition: nothing to create then.
            check_uid(&precondition, &Value::Null, rtype, &name)?;
            validate_name(rtype, &name)?;
            if let Some(namespace) = target.namespace.as_deref() {
                self.require_namespace(namespace).await?;
            }
            let mut object = config;
            if rtype.is_namespace() {
                namespace_defaults(&mut object);
            }
            let mut entry = ManagedEntry::new(manager, "Apply", &rtype.api_version(), part);
            entry.fields = config_fields;
            ManagedEntry::write_all(&mut object, &[entry]);
            if dry_run {
                return Ok((StatusCode::CREATED, object));
            }
            let created = self
                .store
                .create(rtype, target.namespace.as_deref(), object)
                .await
                .map_err(|e| with_details(e, rtype, &name))?;
            if rtype.is_namespace() {
                self.create_default_service_account(&name).await?;
            }
            return Ok((StatusCode::CREATED, created));
        };
        check_resource_version(&precondition, &current, rtype, &name)?;
        check_uid(&precondition, &current, rtype, &name)?;

        let mut entries = ManagedEntry::read_all(&current);
        let is_mine = |e: &ManagedEntry| e.is(manager, "Apply", part);
        let mut conflicts: Vec<(String, String, fields::FieldPath)> = Vec::new();
        for path in config_fields.paths() {
            // The same value is shared ownership, not a conflict.
            if fields::get_at(&current, path) == fields::get_at(&config, path) {
                continue;
            }
            for entry in &entries {
                if entry.subresource == part.subresource()
                    && !is_mine(entry)
                    && entry.fields.overlaps(path)
                {
                    conflicts.push((
                        entry.manager.clone(),
                        entry.api_version.clone(),
                        path.clone(),
                    ));
                }
            }
        }
        if !conflicts.is_empty() {
            if !force {
                return Err(conflict_error(rtype, &name, &conflicts));
            }
            for entry in entries.iter_mut().filter(|e| !is_mine(e)) {
                for (_, _, path) in &conflicts {
                    entry.fields.remove_overlapping(path);
                }
            }
        }

        let previous = entries
            .iter()
            .find(|e| is_mine(e))
            .map(|e| e.fields.clone())
            .unwrap_or_default();
        let mut object = current.clone();
        json_patch::merge(&mut object, &config);
        for path in previous.paths() {
            let still_wanted = config_fields.overlaps(path);
            let owned_elsewhere = entries
                .iter()
                .any(|e| !is_mine(e) && e.fields.overlaps(path));
            if !still_wanted && !owned_elsewhere {
                fields::remove_at(&mut object, path);
            }
        }
        match entries.iter_mut().find(|e| is_mine(e)) {
            Some(mine) => {
                mine.fields = config_fields;
                mine.time = fields::now();
                mine.api_version = rtype.api_version();
            }
            None => {
                let mut mine = ManagedEntry::new(manager, "Apply", &rtype.api_version(), part);
                mine.fields = config_fields;
                entries.push(mine);
            }
        }
        ManagedEntry::write_all(&mut object, &entries);
        if without_times(&object) == without_times(&current) {
            return Ok((StatusCode::OK, current));
        }
        if dry_run {
            return Ok((StatusCode::OK, object));
        }
        let spec_changed = spec_changed(&current, &object);
        let written = self
            .store
            .replace(
                rtype,
                target.namespace.as_deref(),
                &name,
                object,
                spec_changed,
            )
            .await
            .map_err(|e| with_details(e, rtype, &name))?;
        Ok((StatusCode::OK, written))
    }

    async fn delete(&self, target: &Target, query: &Query) -> ApiResult<(StatusCode, Value)> {
        let rtype = &target.rtype;
        let name = target.name.clone().unwrap_or_default();
        let _write = self.writes.lock().await;
        let deleted = self
            .delete_one(rtype, target.namespace.as_deref(), &name, query)
            .await?;
        if rtype.is_namespace() {
            // kube-apiserver answers with the Namespace, now terminating.
            let mut namespace = deleted;
            namespace["status"] = json!({"phase": "Terminating"});
            return Ok((StatusCode::OK, namespace));
        }
        let mut details = details(rtype, &name);
        if let Some(uid) = deleted.pointer("/metadata/uid") {
            details["uid"] = uid.clone();
        }
        Ok((
            StatusCode::OK,
            json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": details,
            }),
        ))
    }

    /// Deletes one object; a Namespace takes its contents with it.
    async fn delete_one(
        &self,
        rtype: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        query: &Query,
    ) -> ApiResult<Value> {
        if rtype.is_namespace() {
            for contained in ResourceType::all().filter(|t| t.namespaced && t.supports("delete")) {
                for item in self.store.list(&contained, Some(name), None).await? {
                    if let Some(item_name) = item.pointer("/metadata/name").and_then(Value::as_str)
                    {
                        self.store
                            .delete(&contained, Some(name), item_name, None)
                            .await?;
                    }
                }
            }
        }
        self.store
            .delete(rtype, namespace, name, query.get("propagationPolicy"))
            .await
            .map_err(|e| {
                if e.code == StatusCode::NOT_FOUND {
                    ApiError::not_found(rtype, name)
                } else {
                    e
                }
            })
    }

    async fn delete_collection(
        &self,
        target: &Target,
        query: &Query,
    ) -> ApiResult<(StatusCode, Value)> {
        let rtype = &target.rtype;
        let _write = self.writes.lock().await;
        let mut deleted = Vec::new();
        for item in self.select(target, query).await? {
            let name = item.pointer("/metadata/name").and_then(Value::as_str);
            let namespace = item.pointer("/metadata/namespace").and_then(Value::as_str);
            if let Some(name) = name {
                deleted.push(self.delete_one(rtype, namespace, name, query).await?);
            }
        }
        Ok((
            StatusCode::OK,
            json!({
                "kind": format!("{}List", rtype.kind),
                "apiVersion": rtype.api_version(),
                "metadata": {},
                "items": deleted,
            }),
        ))
    }
}

/// The manager a non-apply write is recorded under: `fieldManager`, else the user agent's
/// program name, as kube-apiserver derives it.
fn field_manager(query: &Query, headers: &HeaderMap) -> String {
    if let Some(manager) = query.get("fieldManager") {
        return manager.to_string();
    }
    headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|ua| ua.split('/').next())
        .map(str::trim)
        .filter(|ua| !ua.is_empty())
        .unwrap_or("unknown")
        .to_string()
}

fn part_of(target: &Target) -> Part {
    if target.status {
        Part::Status
    } else {
        Part::Main {
            status_separate: target.rtype.has_status(),
        }
    }
}

fn parse_object(body: &[u8]) -> ApiResult<Value> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the request body is not a JSON object: {e}"),
        )
    })?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "the request body is not a JSON object",
        ))
    }
}

/// An apply body: JSON, or YAML (its content type says YAML, and kubectl may send it).
fn parse_apply_configuration(body: &[u8]) -> ApiResult<Value> {
    let value = match serde_json::from_slice::<Value>(body) {
        Ok(value) => value,
        Err(json_error) => {
            let text = std::str::from_utf8(body).map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "the apply configuration is not UTF-8",
                )
            })?;
            serde_saphyr::from_str::<Value>(text).map_err(|yaml_error| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "the apply configuration is neither JSON ({json_error}) nor YAML ({yaml_error})"
                    ),
                )
            })?
        }
    };
    let has = |key: &str| {
        value
            .get(key)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
    };
    if !value.is_object() || !has("apiVersion") || !has("kind") {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "the apply configuration must be an object with apiVersion and kind",
        ));
    }
    Ok(value)
}

/// Makes a request body agree with its URL (type, namespace, name), refusing contradictions
/// with kube-apiserver's messages.
fn conform(
    rtype: &ResourceType,
    namespace: Option<&str>,
    url_name: Option<&str>,
    object: &mut Value,
) -> ApiResult<()> {
    let bad = |message: String| ApiError::new(StatusCode::BAD_REQUEST, message);
    let Some(map) = object.as_object_mut() else {
        return Err(bad("the request body is not a JSON object".to_string()));
    };
    let expected_version = rtype.api_version();
    match map.get("apiVersion").and_then(Value::as_str) {
        Some(v) if v != expected_version => {
            return Err(bad(format!(
                "the API version in the data ({v}) does not match the expected API version ({expected_version})"
            )));
        }
        _ => {}
    }
    match map.get("kind").and_then(Value::as_str) {
        Some(k) if k != rtype.kind => {
            return Err(bad(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                rtype.kind
            )));
        }
        _ => {}
    }
    map.insert("apiVersion".to_string(), json!(expected_version));
    map.insert("kind".to_string(), json!(rtype.kind));
    let metadata = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(metadata) = metadata.as_object_mut() else {
        return Err(bad("metadata is not an object".to_string()));
    };
    if rtype.namespaced {
        if let Some(namespace) = namespace {
            match metadata.get("namespace").and_then(Value::as_str) {
                Some(ns) if ns != namespace => {
                    return Err(bad(
                        "the namespace of the provided object does not match the namespace sent on the request"
                            .to_string(),
                    ));
                }
                _ => {
                    metadata.insert("namespace".to_string(), json!(namespace));
                }
            }
        }
    } else {
        metadata.remove("namespace");
    }
    if let Some(url_name) = url_name {
        match metadata.get("name").and_then(Value::as_str) {
            Some(n) if n != url_name => {
                return Err(bad(format!(
                    "the name of the object ({n}) does not match the name on the URL ({url_name})"
                )));
            }
            _ => {
                metadata.insert("name".to_string(), json!(url_name));
            }
        }
    }
    Ok(())
}

/// Names must be DNS subdomains (Namespaces: DNS labels), as kube-apiserver validates them.
fn validate_name(rtype: &ResourceType, name: &str) -> ApiResult<()> {
    let invalid = |why: &str| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{} \"{name}\" is invalid: metadata.name: {why}", rtype.kind),
        )
    };
    if name.is_empty() {
        return Err(invalid("Required value: name or generateName is required"));
    }
    // RBAC names may hold `:` and other characters; the project never writes them.
    if rtype.group == "rbac.authorization.k8s.io" {
        return Ok(());
    }
    let (limit, dots) = if rtype.is_namespace() {
        (63, false)
    } else {
        (253, true)
    };
    let valid_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || (dots && b == b'.'));
    let edges = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if name.len() > limit
        || !valid_chars
        || !edges(name.bytes().next())
        || !edges(name.bytes().last())
    {
        let what = if dots {
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
        } else {
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"
        };
        return Err(invalid(&format!("Invalid value: \"{name}\": {what}")));
    }
    Ok(())
}

/// Metadata only the server sets; a client's values are dropped.
fn strip_server_metadata(object: &mut Value) {
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "generation",
            "managedFields",
            "deletionTimestamp",
            "selfLink",
        ] {
            metadata.remove(key);
        }
    }
}

/// Carries the server-set metadata of `before` into `after`, whatever the client sent.
fn keep_server_metadata(before: &Value, after: &mut Value) {
    let Some(after_meta) = after.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    for key in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "generation",
        "managedFields",
        "deletionTimestamp",
        "name",
        "namespace",
    ] {
        match before.pointer(&format!("/metadata/{key}")) {
            Some(value) => {
                after_meta.insert(key.to_string(), value.clone());
            }
            None => {
                after_meta.remove(key);
            }
        }
    }
}

/// What an endpoint may change: `/status` only the status; the main resource everything but
/// the status when the type has a status subresource.
fn confine_to_part(before: &Value, after: &mut Value, part: Part) {
    let keep_status_from = match part {
        Part::Status => {
            let status = after.get("status").cloned();
            *after = before.clone();
            status
        }
        Part::Main {
            status_separate: true,
        } => before.get("status").cloned(),
        Part::Main {
            status_separate: false,
        } => return,
    };
    if let Some(map) = after.as_object_mut() {
        match keep_status_from {
            Some(status) => {
                map.insert("status".to_string(), status);
            }
            None => {
                map.remove("status");
            }
        }
    }
}

/// The part of an apply configuration its endpoint applies.
fn confine_configuration(config: &mut Value, part: Part) {
    let Some(map) = config.as_object_mut() else {
        return;
    };
    match part {
        Part::Status => {
            map.retain(|k, _| matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "status"))
        }
        Part::Main {
            status_separate: true,
        } => {
            map.remove("status");
        }
        Part::Main {
            status_separate: false,
        } => {}
    }
}

/// Whether anything besides metadata and status differs: what bumps `metadata.generation`.
fn spec_changed(before: &Value, after: &Value) -> bool {
    let body = |v: &Value| {
        v.as_object().map(|m| {
            m.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "metadata" | "status"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<BTreeMap<_, _>>()
        })
    };
    body(before) != body(after)
}

fn without_times(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(entries) = copy
        .pointer_mut("/metadata/managedFields")
        .and_then(Value::as_array_mut)
    {
        for entry in entries {
            if let Some(map) = entry.as_object_mut() {
                map.remove("time");
            }
        }
    }
    copy
}

fn check_resource_version(
    wanted: &Value,
    current: &Value,
    rtype: &ResourceType,
    name: &str,
) -> ApiResult<()> {
    let version = |v: &Value| {
        v.pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    match version(wanted) {
        Some(wanted) if Some(&wanted) != version(current).as_ref() => Err(ApiError {
            code: StatusCode::CONFLICT,
            message: format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                rtype.qualified()
            ),
            details: Some(details(rtype, name)),
        }),
        _ => Ok(()),
    }
}

/// `metadata.uid` in an apply configuration is a precondition, as in kube-apiserver: the
/// object must exist with that uid (so an apply cannot create what was deleted meanwhile, nor
/// write to an object of the same name made since).
fn check_uid(wanted: &Value, current: &Value, rtype: &ResourceType, name: &str) -> ApiResult<()> {
    let uid = |v: &Value| {
        v.pointer("/metadata/uid")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    match uid(wanted) {
        Some(wanted) if Some(&wanted) != uid(current).as_ref() => Err(ApiError {
            code: StatusCode::CONFLICT,
            message: format!(
                "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: UID in precondition: {wanted}, UID in object meta: {}",
                rtype.qualified(),
                uid(current).unwrap_or_default()
            ),
            details: Some(details(rtype, name)),
        }),
        _ => Ok(()),
    }
}

fn conflict_error(
    rtype: &ResourceType,
    name: &str,
    conflicts: &[(String, String, fields::FieldPath)],
) -> ApiError {
    let describe = |(manager, api_version, path): &(String, String, fields::FieldPath)| {
        format!(
            "conflict with \"{manager}\" using {api_version}: {}",
            fields::render(path)
        )
    };
    let message = match conflicts {
        [one] => format!("Apply failed with 1 conflict: {}", describe(one)),
        many => format!(
            "Apply failed with {} conflicts: {}",
            many.len(),
            many.iter().map(describe).collect::<Vec<_>>().join("; ")
        ),
    };
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|(manager, api_version, path)| {
            json!({
                "reason": "FieldManagerConflict",
                "message": format!("conflict with \"{manager}\" using {api_version}"),
                "field": fields::render(path),
            })
        })
        .collect();
    let mut details = details(rtype, name);
    details["causes"] = Value::Array(causes);
    ApiError {
        code: StatusCode::CONFLICT,
        message,
        details: Some(details),
    }
}

/// Adds the object's name and kind to a store error, as kube-apiserver reports them.
fn with_details(mut error: ApiError, rtype: &ResourceType, name: &str) -> ApiError {
    if error.code == StatusCode::CONFLICT && error.message.contains("already exists") {
        error.message = format!("{} \"{name}\" already exists", rtype.qualified());
    }
    if error.details.is_none() {
        error.details = Some(details(rtype, name));
    }
    error
}

/// What kube-apiserver fills in for a new Namespace.
fn namespace_defaults(object: &mut Value) {
    if object.pointer("/spec/finalizers").is_none() {
        object["spec"] = json!({"finalizers": ["kubernetes"]});
    }
    object["status"] = json!({"phase": "Active"});
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        let labels = metadata
            .entry("labels")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(labels) = labels.as_object_mut() {
            labels.insert("kubernetes.io/metadata.name".to_string(), json!(name));
        }
    }
}

/// Five characters from kube-apiserver's `generateName` alphabet.
fn random_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    let mut bits = hasher.finish();
    (0..5)
        .map(|_| {
            let index = (bits % ALPHABET.len() as u64) as usize;
            bits /= ALPHABET.len() as u64;
            char::from(ALPHABET[index])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_reads_plus_as_space() {
        let query = Query::parse(Some("labelSelector=app+in+(a,b)&limit=2&watch=false&force"));
        assert_eq!(query.get("labelSelector"), Some("app in (a,b)"));
        assert_eq!(query.get("limit"), Some("2"));
        assert!(!query.flag("watch"));
        assert!(query.flag("force"));
        let encoded = Query::parse(Some("labelSelector=app%20notin%20%28a%29"));
        assert_eq!(encoded.get("labelSelector"), Some("app notin (a)"));
    }

    #[test]
    fn names_are_validated_like_kube_apiserver() {
        let sa = ResourceType::service_account();
        assert!(validate_name(&sa, "app.v2-x").is_ok());
        assert!(validate_name(&sa, "App").is_err());
        assert!(validate_name(&sa, "-app").is_err());
        assert!(validate_name(&sa, "").is_err());
        assert!(validate_name(&ResourceType::namespace(), "a.b").is_err());
        assert_eq!(random_suffix().len(), 5);
    }

    #[test]
    fn body_must_agree_with_url() {
        let sa = ResourceType::service_account();
        let mut object = json!({"metadata": {"name": "a"}});
        conform(&sa, Some("ns"), Some("a"), &mut object).unwrap();
        assert_eq!(object["apiVersion"], "v1");
        assert_eq!(object["metadata"]["namespace"], "ns");
        let mut other = json!({"metadata": {"name": "b"}});
        assert!(conform(&sa, Some("ns"), Some("a"), &mut other).is_err());
        let mut kind = json!({"kind": "Pod"});
        assert!(conform(&sa, Some("ns"), None, &mut kind).is_err());
    }
}
