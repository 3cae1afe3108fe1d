//! Otterize ClientIntents documents to intents: which versions are read, which calls grant
//! AWS access, and every field checked by hand so all of a document's errors are reported,
//! each with its path and line.

use super::diagnostic::{Origin, Severity, echo};
use super::names::{check_namespace, check_workload_name, is_iam_action, is_resource};
use super::yaml::{Item, Node};
use super::{BundleReport, Intent, Location};
use crate::model::{Namespace, Permission, SourceRef, WorkloadKind, WorkloadName, WorkloadRef};
use std::collections::BTreeSet;

const GROUP: &str = "k8s.otterize.com";
const KIND: &str = "ClientIntents";
/// What the API server returns for a LIST of ClientIntents.
const LIST_KIND: &str = "ClientIntentsList";
/// Versions whose calls are `spec.calls[]` with `type: aws`.
const CALL_VERSIONS: [&str; 2] = ["v1alpha3", "v1beta1"];
/// Versions whose calls are `spec.targets[]` with an `aws` key.
const TARGET_VERSIONS: [&str; 2] = ["v2alpha1", "v2beta1"];
/// Read but unused: it predates AWS calls.
const NO_AWS_VERSION: &str = "v1alpha2";

/// Fields of a ClientIntents document. Kubernetes prunes or refuses any other top-level
/// field, so one here is a mistake (`specs:`, `Spec:`), never data.
const DOCUMENT_FIELDS: &[&str] = &["apiVersion", "kind", "metadata", "spec", "status"];
/// `metadata` is Kubernetes' ObjectMeta, a closed schema too: what is free-form lives inside
/// `labels` and `annotations`, whose keys are never checked. An unknown field here cannot be
/// right, and the one that matters (`namespace`, misspelt, would move the workload to
/// another namespace) must not pass silently.
const METADATA_FIELDS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];
/// `spec.service` (v1) and `spec.workload` (v2).
const WORKLOAD_FIELDS: &[&str] = &["name", "kind"];
/// A v1 call: one flat structure for every call type (Otterize's CRDs, all v1 versions).
const CALL_FIELDS: &[&str] = &[
    "name",
    "type",
    "namespace",
    "kind",
    "HTTPResources",
    "kafkaTopics",
    "databaseResources",
    "awsActions",
    "gcpPermissions",
    "azureRoles",
    "azureKeyVaultPolicy",
    "azureActions",
    "azureDataActions",
    "internet",
];
/// The keys of a v2 target, one per target type.
const TARGET_FIELDS: &[&str] = &[
    "kubernetes",
    "service",
    "kafka",
    "database",
    "sql",
    "aws",
    "gcp",
    "azure",
    "internet",
];
/// `spec.targets[].aws`.
const AWS_TARGET_FIELDS: &[&str] = &["arn", "actions"];
/// Edits (case ignored) within which a kind or group reads as a typo of ours: covers a
/// singular, a missing or doubled letter, a swapped pair, and `.io` for `.com`.
const NEAR_MISS_EDITS: usize = 3;

/// A value that is there but unusable, its error already in the report: the caller only
/// skips what depends on it.
#[derive(Clone, Copy, Debug)]
struct Reported;

/// What a document is read against.
pub(super) struct Scope<'a> {
    pub origin: Origin,
    pub document: usize,
    pub default_namespace: &'a Namespace,
    pub tenant_namespace: Option<&'a Namespace>,
}

/// Reads one parsed document into the report: its intent, or its errors and what they hold.
pub(super) fn read_document(root: &Item, scope: &Scope<'_>, report: &mut BundleReport) {
    let mut doc = Doc {
        scope,
        report,
        errors: 0,
    };
    doc.resource(root, "");
}

struct Doc<'s, 'r> {
    scope: &'s Scope<'s>,
    report: &'r mut BundleReport,
    errors: usize,
}

/// `spec.calls` + `2` -> `spec.calls[2]`; `spec` + `service` -> `spec.service`.
fn field(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

impl Doc<'_, '_> {
    fn error(&mut self, line: Option<u64>, path: &str, message: impl Into<String>) {
        self.errors += 1;
        let error = self.scope.origin.error(line, Some(path), message);
        self.report.errors.push(error);
    }

    fn notice(&mut self, line: Option<u64>, path: &str, message: impl Into<String>) {
        let notice = self.scope.origin.notice(line, Some(path), message);
        self.report.notices.push(notice);
    }

    /// Kept with the notices: a warning fails nothing either.
    fn warning(&mut self, line: Option<u64>, path: &str, message: impl Into<String>) {
        let warning = self
            .scope
            .origin
            .diagnostic(Severity::Warning, line, Some(path), message);
        self.report.notices.push(warning);
    }

    fn hold_bundle(&mut self) {
        self.report.held_whole_bundle = true;
    }

    /// One Kubernetes resource: a whole document, or an item of a `List`.
    fn resource(&mut self, item: &Item, path: &str) {
        if !matches!(item.node, Node::Map(_)) {
            self.error(
                item.line,
                path,
                format!(
                    "expected a mapping (a Kubernetes resource), found {}",
                    item.node.describe()
                ),
            );
            self.hold_bundle();
            return;
        }
        let api_version = self.string(item, path, "apiVersion", true);
        let kind = self.string(item, path, "kind", true);
        let (Some(api_version), Some(kind)) = (api_version, kind) else {
            self.hold_bundle();
            return;
        };

        // `kubectl get clientintents -o yaml` writes a List, the API itself a
        // ClientIntentsList: read their items as resources.
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        if (api_version == "v1" && kind == "List") || (group == GROUP && kind == LIST_KIND) {
            self.list_items(item, path);
            return;
        }

        let is_otterize = group == GROUP || api_version == GROUP;
        if !(is_otterize && kind == KIND) {
            // A document that merely looks like ClientIntents is an error, never skipped: a
            // skipped one would read as "this workload's intents are gone", and its role would
            // be deleted after the grace period.
            if self.near_miss(
                item,
                path,
                if group.is_empty() { api_version } else { group },
                kind,
            ) {
                self.hold_bundle();
                return;
            }
            let name = metadata_name(item);
            self.notice(
                item.line,
                path,
                format!(
                    "skipped {} {} {name}: not a ClientIntents resource",
                    echo(api_version),
                    echo(kind)
                ),
            );
            return;
        }

        if CALL_VERSIONS.contains(&version) {
            self.client_intents(item, path, Shape::Calls);
        } else if TARGET_VERSIONS.contains(&version) {
            self.client_intents(item, path, Shape::Targets);
        } else if version == NO_AWS_VERSION {
            let name = metadata_name(item);
            self.notice(
                item.line,
                path,
                format!(
                    "skipped {api_version} {kind} {name}: this version has no AWS calls \
                     (use v1alpha3 or later)"
                ),
            );
        } else {
            let line = item.node.get("apiVersion").and_then(|e| e.value.line);
            self.error(
                line,
                &field(path, "apiVersion"),
                format!(
                    "unsupported ClientIntents version {:?}; supported versions of \
                     {GROUP}: {} ({NO_AWS_VERSION} is read but has no AWS calls)",
                    echo(api_version),
                    [CALL_VERSIONS, TARGET_VERSIONS].concat().join(", ")
                ),
            );
            self.hold_bundle();
        }
    }

    /// Reports a kind or API group that is close to ClientIntents / `k8s.otterize.com` but
    /// not it (a typo, another case, a singular). True when it did.
    fn near_miss(&mut self, item: &Item, path: &str, group: &str, kind: &str) -> bool {
        let group_close = group != GROUP && is_near(group, GROUP);
        let kind_close = kind != KIND && is_near(kind, KIND);
        let line_of = |key: &str| item.node.get(key).and_then(|e| e.value.line);
        const WHY: &str = "a document that looks like ClientIntents is refused rather than \
                           skipped, so that a typo cannot drop a workload's intents";
        if group_close {
            self.error(
                line_of("apiVersion"),
                &field(path, "apiVersion"),
                format!(
                    "unknown API group {:?}; did you mean {GROUP}? ({WHY})",
                    echo(group)
                ),
            );
        }
        if kind_close {
            self.error(
                line_of("kind"),
                &field(path, "kind"),
                format!(
                    "unknown kind {:?}; did you mean {KIND}? ({WHY})",
                    echo(kind)
                ),
            );
        }
        if kind == KIND && !group_close {
            self.error(
                line_of("apiVersion"),
                &field(path, "apiVersion"),
                format!(
                    "{KIND} is read in API group {GROUP} only (apiVersion {GROUP}/v1alpha3, \
                     ...), found {:?}",
                    echo(group)
                ),
            );
            return true;
        }
        group_close || kind_close
    }

    /// Reports each field of a mapping that is not one of `known`, with the closest known
    /// one: an unknown field is a typo whose value would otherwise be ignored in silence
    /// (`awsActionz` beside `awsActions`, `typ: aws`).
    fn unknown_fields(&mut self, item: &Item, path: &str, known: &[&str]) {
        let Node::Map(entries) = &item.node else {
            return;
        };
        for entry in entries {
            let Node::String(key) = &entry.key.node else {
                self.error(
                    entry.key.line,
                    path,
                    format!(
                        "field names are strings, found {}",
                        entry.key.node.describe()
                    ),
                );
                continue;
            };
            if known.contains(&key.as_str()) {
                continue;
            }
            let lowered: Vec<String> = known.iter().map(|k| k.to_ascii_lowercase()).collect();
            let suggestion = crate::policy::closest(
                lowered
                    .iter()
                    .map(String::as_str)
                    .zip(known.iter().copied()),
                &key.to_ascii_lowercase(),
            );
            let message = match suggestion.first() {
                Some(best) => format!("unknown field; did you mean {best}?"),
                None => format!("unknown field; expected one of {}", known.join(", ")),
            };
            self.error(
                entry.key.line,
                &field(path, &echo(key).to_string()),
                message,
            );
        }
    }

    fn list_items(&mut self, list: &Item, path: &str) {
        let items_path = field(path, "items");
        let Some(entry) = list.node.get("items") else {
            return;
        };
        match &entry.value.node {
            Node::List(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.resource(item, &index(&items_path, i));
                }
            }
            Node::Null => {}
            other => {
                self.error(
                    entry.value.line,
                    &items_path,
                    format!("expected a list of resources, found {}", other.describe()),
                );
                self.hold_bundle();
            }
        }
    }

    fn client_intents(&mut self, root: &Item, path: &str, shape: Shape) {
        let errors_before = self.errors;
        self.unknown_fields(root, path, DOCUMENT_FIELDS);
        let namespace = self.namespace(root, path);

        let spec_path = field(path, "spec");
        let spec = self.mapping(root, path, "spec", true);
        let (name, kind, permissions) = match spec {
            Some(spec) => {
                self.unknown_fields(spec, &spec_path, shape.spec_fields());
                let (name, kind) = self.workload(spec, &spec_path, shape.workload_key());
                let permissions = match shape {
                    Shape::Calls => self.calls(spec, &spec_path),
                    Shape::Targets => self.targets(spec, &spec_path),
                };
                (name, kind, permissions)
            }
            None => (None, None, Vec::new()),
        };

        let failed = self.errors > errors_before;
        match (namespace, name) {
            (Some(namespace), Some(name)) if failed => {
                self.report.held_workloads.push((namespace, name));
            }
            (Some(namespace), Some(name)) => {
                let workload = WorkloadRef {
                    namespace,
                    name,
                    kind,
                };
                if permissions.is_empty() {
                    self.notice(
                        root.line,
                        path,
                        format!("no AWS access declared for workload {workload}"),
                    );
                } else {
                    let source = SourceRef {
                        bundle: self.scope.origin.file.clone(),
                        member: self.scope.origin.member.clone(),
                        document: self.scope.document,
                    };
                    let (permissions, locations) = dedup_in_order(permissions).into_iter().unzip();
                    self.report.intents.push(Intent {
                        workload,
                        permissions,
                        source,
                        locations,
                    });
                }
            }
            // The workload cannot be told, or belongs to another tenant: only holding the
            // whole bundle keeps what it granted before.
            _ => self.hold_bundle(),
        }
    }

    /// `metadata.namespace`, else the bundle's default; `None` when it is invalid or outside
    /// the bundle's tenant namespace.
    fn namespace(&mut self, root: &Item, path: &str) -> Option<Namespace> {
        let metadata_path = field(path, "metadata");
        let namespace_path = field(&metadata_path, "namespace");
        let metadata = self.mapping(root, path, "metadata", false);
        if let Some(metadata) = metadata {
            self.unknown_fields(metadata, &metadata_path, METADATA_FIELDS);
        }
        let written = match metadata {
            Some(metadata) => self.string_entry(metadata, &namespace_path, "namespace", false),
            None if root
                .node
                .get("metadata")
                .is_some_and(|e| e.value.node != Node::Null) =>
            {
                return None;
            }
            None => Ok(None),
        };
        let (namespace, line) = match written {
            Err(Reported) => return None,
            Ok(Some((value, line))) => match check_namespace(value) {
                Ok(namespace) => (namespace, line),
                Err(problem) => {
                    self.error(line, &namespace_path, problem.to_string());
                    return None;
                }
            },
            Ok(None) => (self.scope.default_namespace.clone(), root.line),
        };
        if let Some(tenant) = self.scope.tenant_namespace
            && &namespace != tenant
        {
            self.error(
                line,
                &namespace_path,
                format!(
                    "namespace {:?} is outside this bundle's namespace {:?}",
                    namespace.as_str(),
                    tenant.as_str()
                ),
            );
            return None;
        }
        Some(namespace)
    }

    /// `spec.service` (v1) or `spec.workload` (v2): the name, and the kind when given and
    /// known. A bad kind still leaves the workload identified.
    fn workload(
        &mut self,
        spec: &Item,
        spec_path: &str,
        key: &str,
    ) -> (Option<WorkloadName>, Option<WorkloadKind>) {
        let path = field(spec_path, key);
        let Some(workload) = self.mapping(spec, spec_path, key, true) else {
            return (None, None);
        };
        self.unknown_fields(workload, &path, WORKLOAD_FIELDS);
        let name = match self.string_entry(workload, &field(&path, "name"), "name", true) {
            Ok(Some((value, line))) => match check_workload_name(value) {
                Ok(name) => Some(name),
                Err(problem) => {
                    self.error(line, &field(&path, "name"), problem.to_string());
                    None
                }
            },
            _ => None,
        };
        let kind = match self.string_entry(workload, &field(&path, "kind"), "kind", false) {
            Ok(Some((value, line))) => {
                let kind = WorkloadKind::parse(value);
                if kind.is_none() {
                    let valid: Vec<&str> = WorkloadKind::ALL.iter().map(|k| k.as_str()).collect();
                    self.error(
                        line,
                        &field(&path, "kind"),
                        format!(
                            "unknown workload kind {:?}; expected one of {}",
                            echo(value),
                            valid.join(", ")
                        ),
                    );
                }
                kind
            }
            _ => None,
        };
        (name, kind)
    }

    /// v1alpha3 / v1beta1: `spec.calls[]`, of which `type: aws` calls grant AWS access.
    fn calls(&mut self, spec: &Item, spec_path: &str) -> Vec<(Permission, Location)> {
        let mut permissions = Vec::new();
        let path = field(spec_path, "calls");
        for (i, call) in self.list(spec, &path, "calls").iter().enumerate() {
            let call_path = index(&path, i);
            if !matches!(call.node, Node::Map(_)) {
                self.error(
                    call.line,
                    &call_path,
                    format!("expected a mapping, found {}", call.node.describe()),
                );
                continue;
            }
            self.unknown_fields(call, &call_path, CALL_FIELDS);
            let call_type = match self.string_entry(call, &field(&call_path, "type"), "type", false)
            {
                Ok(found) => found.map(|(value, _)| value),
                Err(Reported) => continue,
            };
            match call_type {
                Some("aws") => {
                    let resource = self.resource_arn(call, &call_path, "name");
                    let actions = self.actions(call, &call_path, "awsActions");
                    let names: Vec<String> = actions.iter().map(|(a, _)| a.clone()).collect();
                    self.service_mismatch(call.line, &call_path, resource.as_deref(), &names);
                    add_permissions(&mut permissions, resource, actions);
                }
                Some(other) if other.eq_ignore_ascii_case("aws") => {
                    let line = call.node.get("type").and_then(|e| e.value.line);
                    self.error(
                        line,
                        &field(&call_path, "type"),
                        format!("call type {:?} must be written \"aws\"", echo(other)),
                    );
                }
                Some(other) => self.notice(
                    call.line,
                    &call_path,
                    format!(
                        "skipped call of type {:?}: only \"aws\" calls grant AWS access",
                        echo(other)
                    ),
                ),
                None => self.notice(
                    call.line,
                    &call_path,
                    "skipped call without a type (a call to a Kubernetes service): only \"aws\" \
                     calls grant AWS access",
                ),
            }
        }
        permissions
    }

    /// v2alpha1 / v2beta1: `spec.targets[]`, of which targets with an `aws` key grant AWS
    /// access.
    fn targets(&mut self, spec: &Item, spec_path: &str) -> Vec<(Permission, Location)> {
        let mut permissions = Vec::new();
        let path = field(spec_path, "targets");
        for (i, target) in self.list(spec, &path, "targets").iter().enumerate() {
            let target_path = index(&path, i);
            let Node::Map(entries) = &target.node else {
                self.error(
                    target.line,
                    &target_path,
                    format!("expected a mapping, found {}", target.node.describe()),
                );
                continue;
            };
            self.unknown_fields(target, &target_path, TARGET_FIELDS);
            if target.node.get("aws").is_some() {
                let aws_path = field(&target_path, "aws");
                if let Some(aws) = self.mapping(target, &target_path, "aws", true) {
                    self.unknown_fields(aws, &aws_path, AWS_TARGET_FIELDS);
                    let resource = self.resource_arn(aws, &aws_path, "arn");
                    let actions = self.actions(aws, &aws_path, "actions");
                    let names: Vec<String> = actions.iter().map(|(a, _)| a.clone()).collect();
                    self.service_mismatch(aws.line, &aws_path, resource.as_deref(), &names);
                    add_permissions(&mut permissions, resource, actions);
                }
                continue;
            }
            let message = match entries.first().map(|e| &e.key.node) {
                Some(Node::String(key)) => {
                    format!(
                        "skipped {:?} target: only \"aws\" targets grant AWS access",
                        echo(key)
                    )
                }
                _ => "skipped a target of no known type: only \"aws\" targets grant AWS access"
                    .to_owned(),
            };
            self.notice(target.line, &target_path, message);
        }
        permissions
    }

    /// A warning for actions of another service than the ARN's: IAM accepts the grant, but it
    /// can never match, which is almost always a mistake in the intents.
    fn service_mismatch(
        &mut self,
        line: Option<u64>,
        path: &str,
        resource: Option<&str>,
        actions: &[String],
    ) {
        let Some(service) = resource.and_then(crate::policy::arn_service) else {
            return;
        };
        for action in actions {
            let Some((action_service, _)) = action.split_once(':') else {
                continue;
            };
            if !action_service.contains('*') && !action_service.eq_ignore_ascii_case(service) {
                self.warning(
                    line,
                    path,
                    format!(
                        "{} is an action of {}, but the resource is a {} ARN: the grant can never match",
                        echo(action),
                        echo(action_service),
                        echo(service)
                    ),
                );
            }
        }
    }

    /// The resource of an AWS call: an ARN or `*`.
    fn resource_arn(&mut self, parent: &Item, parent_path: &str, key: &str) -> Option<String> {
        let path = field(parent_path, key);
        let (value, line) = self.string_entry(parent, &path, key, true).ok()??;
        if is_resource(value) {
            if value != "*"
                && let Err(why) = crate::policy::check_arn(value)
            {
                self.error(line, &path, why.to_string());
                return None;
            }
            Some(value.to_owned())
        } else {
            self.error(
                line,
                &path,
                format!(
                    "expected an ARN (\"arn:...\") or \"*\", found {:?}",
                    echo(value)
                ),
            );
            None
        }
    }

    /// The actions of an AWS call: a non-empty list of `service:Action` (or `*`). Only the
    /// valid ones are returned; the others are reported.
    /// The valid actions of a list, each with where it stands.
    fn actions(&mut self, parent: &Item, parent_path: &str, key: &str) -> Vec<(String, Location)> {
        let path = field(parent_path, key);
        let Some(entry) = parent.node.get(key) else {
            self.error(parent.line, &path, "missing required field");
            return Vec::new();
        };
        let items = match &entry.value.node {
            Node::List(items) => items,
            other => {
                self.error(
                    entry.value.line,
                    &path,
                    format!("expected a list of actions, found {}", other.describe()),
                );
                return Vec::new();
            }
        };
        if items.is_empty() {
            self.error(entry.value.line, &path, "must list at least one action");
        }
        let mut actions = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match &item.node {
                Node::String(action) if is_iam_action(action) => {
                    // Checked against the Service Authorization Reference, so a typo fails
                    // here with a suggestion instead of as a silently useless grant.
                    let check = crate::policy::check_action(action);
                    if check.is_valid() {
                        let location = Location {
                            line: item.line,
                            field: index(&path, i),
                        };
                        actions.push((action.clone(), location));
                    } else {
                        self.error(item.line, &index(&path, i), check.to_string());
                    }
                }
                Node::String(action) => {
                    let message = match with_lower_case_service(action) {
                        Some(fixed) => format!(
                            "{:?}: service names are lower case: {}",
                            echo(action),
                            echo(&fixed)
                        ),
                        None => format!(
                            "expected a string like \"service:Action\", found {:?}",
                            echo(action)
                        ),
                    };
                    self.error(item.line, &index(&path, i), message);
                }
                other => self.error(
                    item.line,
                    &index(&path, i),
                    format!(
                        "expected a string like \"service:Action\", found {}",
                        other.describe()
                    ),
                ),
            }
        }
        actions
    }

    /// A child that must be a mapping. Reports a wrong type, and a missing child when
    /// `required`; `None` unless a mapping is there.
    fn mapping<'i>(
        &mut self,
        parent: &'i Item,
        parent_path: &str,
        key: &str,
        required: bool,
    ) -> Option<&'i Item> {
        let path = field(parent_path, key);
        match parent.node.get(key) {
            Some(entry) if matches!(entry.value.node, Node::Map(_)) => Some(&entry.value),
            Some(entry) if entry.value.node == Node::Null && !required => None,
            Some(entry) => {
                self.error(
                    entry.value.line,
                    &path,
                    format!("expected a mapping, found {}", entry.value.node.describe()),
                );
                None
            }
            None => {
                if required {
                    self.error(parent.line, &path, "missing required field");
                }
                None
            }
        }
    }

    /// A child list; absent or null reads as empty.
    fn list<'i>(&mut self, parent: &'i Item, path: &str, key: &str) -> &'i [Item] {
        match parent.node.get(key) {
            Some(entry) => match &entry.value.node {
                Node::List(items) => items,
                Node::Null => &[],
                other => {
                    self.error(
                        entry.value.line,
                        path,
                        format!("expected a list, found {}", other.describe()),
                    );
                    &[]
                }
            },
            None => &[],
        }
    }

    /// A child string. `Ok(None)` when absent or null and not `required`; `Err` when it is
    /// missing but required, or there but not a string.
    fn string_entry<'i>(
        &mut self,
        parent: &'i Item,
        path: &str,
        key: &str,
        required: bool,
    ) -> Result<Option<(&'i str, Option<u64>)>, Reported> {
        match parent.node.get(key) {
            Some(entry) => match &entry.value.node {
                Node::String(value) => Ok(Some((value.as_str(), entry.value.line))),
                Node::Null if !required => Ok(None),
                other => {
                    self.error(
                        entry.value.line,
                        path,
                        format!("expected a string, found {}", other.describe()),
                    );
                    Err(Reported)
                }
            },
            None if required => {
                self.error(parent.line, path, "missing required field");
                Err(Reported)
            }
            None => Ok(None),
        }
    }

    /// A string child by key, relative to `parent_path`.
    fn string<'i>(
        &mut self,
        parent: &'i Item,
        parent_path: &str,
        key: &str,
        required: bool,
    ) -> Option<&'i str> {
        let path = field(parent_path, key);
        self.string_entry(parent, &path, key, required)
            .ok()
            .flatten()
            .map(|(value, _)| value)
    }
}

#[derive(Clone, Copy)]
enum Shape {
    Calls,
    Targets,
}

impl Shape {
    fn spec_fields(self) -> &'static [&'static str] {
        match self {
            Shape::Calls => &["service", "calls"],
            Shape::Targets => &["workload", "targets"],
        }
    }

    fn workload_key(self) -> &'static str {
        match self {
            Shape::Calls => "service",
            Shape::Targets => "workload",
        }
    }
}

/// Close to `ours` but maybe not it: equal but for case, or within [`NEAR_MISS_EDITS`] edits.
fn is_near(written: &str, ours: &str) -> bool {
    // Far longer or shorter cannot be near; skips the distance for hostile lengths.
    written.len().abs_diff(ours.len()) <= NEAR_MISS_EDITS
        && crate::policy::edit_distance(
            written.to_ascii_lowercase().as_bytes(),
            ours.to_ascii_lowercase().as_bytes(),
        ) <= NEAR_MISS_EDITS
}

/// `DynamoDB:GetItem` -> `dynamodb:GetItem`, when lower-casing the service is all it lacks.
fn with_lower_case_service(action: &str) -> Option<String> {
    let (service, name) = action.split_once(':')?;
    if !service.chars().any(|c| c.is_ascii_uppercase()) {
        return None;
    }
    let fixed = format!("{}:{name}", service.to_ascii_lowercase());
    is_iam_action(&fixed).then_some(fixed)
}

/// Each action on the resource; duplicates are dropped once the document is read.
fn add_permissions(
    permissions: &mut Vec<(Permission, Location)>,
    resource: Option<String>,
    actions: Vec<(String, Location)>,
) {
    let Some(resource) = resource else {
        return;
    };
    permissions.extend(actions.into_iter().map(|(action, location)| {
        let permission = Permission {
            action,
            resource: resource.clone(),
        };
        (permission, location)
    }));
}

/// Keeps the first of each (action, resource) pair, in the order written; a set, because a
/// hostile document may list hundreds of thousands.
fn dedup_in_order(permissions: Vec<(Permission, Location)>) -> Vec<(Permission, Location)> {
    let mut seen = BTreeSet::new();
    permissions
        .into_iter()
        .filter(|(permission, _)| seen.insert(permission.clone()))
        .collect()
}

/// `"name"` for messages, or `(no name)`.
fn metadata_name(root: &Item) -> String {
    match root
        .node
        .get("metadata")
        .and_then(|m| m.value.node.get("name"))
        .map(|e| &e.value.node)
    {
        Some(Node::String(name)) => format!("{:?}", echo(name)),
        _ => "(no name)".to_owned(),
    }
}
