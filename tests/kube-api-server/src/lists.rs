//! LIST semantics the fake lacks: field selectors with `!=`, a stable order, and `limit` /
//! `continue` pagination (the fake truncates to `limit` and never says more items exist).

use crate::fields::get_at;
use crate::store::{ApiError, ApiResult};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::StatusCode;
use serde_json::{Value, json};

/// One `field=value` or `field!=value` term of a field selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldTerm {
    path: Vec<String>,
    value: String,
    equal: bool,
}

/// Parses a field selector for `kind`, refusing fields kube-apiserver does not index, with
/// its message.
pub fn parse_field_selector(selector: &str, kind: &str) -> ApiResult<Vec<FieldTerm>> {
    let mut terms = Vec::new();
    for term in selector.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let (field, value, equal) = if let Some((f, v)) = term.split_once("!=") {
            (f, v, false)
        } else if let Some((f, v)) = term.split_once("==") {
            (f, v, true)
        } else if let Some((f, v)) = term.split_once('=') {
            (f, v, true)
        } else {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("invalid field selector: {term}: expected field=value or field!=value"),
            ));
        };
        let field = field.trim();
        if !field_supported(field, kind) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("field label not supported: {field}"),
            ));
        }
        terms.push(FieldTerm {
            path: field.split('.').map(str::to_string).collect(),
            value: value.trim().to_string(),
            equal,
        });
    }
    Ok(terms)
}

/// The fields kube-apiserver can select on for the kinds this project touches.
fn field_supported(field: &str, kind: &str) -> bool {
    matches!(field, "metadata.name" | "metadata.namespace")
        || match kind {
            "Pod" => matches!(
                field,
                "spec.nodeName"
                    | "spec.restartPolicy"
                    | "spec.schedulerName"
                    | "spec.serviceAccountName"
                    | "spec.hostNetwork"
                    | "status.phase"
                    | "status.podIP"
                    | "status.nominatedNodeName"
            ),
            "Event" => {
                field.starts_with("involvedObject.")
                    || field.starts_with("regarding.")
                    || matches!(
                        field,
                        "reason" | "reportingComponent" | "reportingController" | "source" | "type"
                    )
            }
            "Secret" => field == "type",
            "Namespace" => field == "status.phase",
            "Job" => field == "status.successful",
            "Node" => field == "spec.unschedulable",
            _ => false,
        }
}

pub fn matches_fields(object: &Value, terms: &[FieldTerm]) -> bool {
    terms.iter().all(|term| {
        let found = match get_at(object, &term.path) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        (found == term.value) == term.equal
    })
}

/// The order kube-apiserver lists in (its storage keys): namespace, then name.
pub fn sort_key(object: &Value) -> String {
    let text = |key: &str| {
        object
            .pointer(&format!("/metadata/{key}"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    format!("{}/{}", text("namespace"), text("name"))
}

/// One page of `items` (already sorted) with the list metadata kube-apiserver sends:
/// `continue` and `remainingItemCount` while more items follow.
pub fn paginate(
    items: Vec<Value>,
    limit: Option<usize>,
    continue_token: Option<&str>,
) -> ApiResult<(Vec<Value>, Value)> {
    let resource_version = items
        .iter()
        .filter_map(|i| {
            i.pointer("/metadata/resourceVersion")?
                .as_str()?
                .parse::<u64>()
                .ok()
        })
        .max()
        .unwrap_or(1);
    let mut items = items;
    if let Some(token) = continue_token.filter(|t| !t.is_empty()) {
        let after = URL_SAFE_NO_PAD
            .decode(token)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "continue key is not valid: it was not made by this server",
                )
            })?;
        items.retain(|item| sort_key(item) > after);
    }
    let mut metadata = json!({ "resourceVersion": resource_version.to_string() });
    if let Some(limit) = limit.filter(|l| *l > 0 && *l < items.len()) {
        let rest = items.split_off(limit);
        if let Some(last) = items.last() {
            metadata["continue"] = json!(URL_SAFE_NO_PAD.encode(sort_key(last)));
            metadata["remainingItemCount"] = json!(rest.len());
        }
    }
    Ok((items, metadata))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(ns: &str, name: &str) -> Value {
        json!({"metadata": {"namespace": ns, "name": name, "resourceVersion": "7"}})
    }

    #[test]
    fn pages_through_everything_once() {
        let items = vec![obj("a", "1"), obj("a", "2"), obj("b", "1")];
        let (page, meta) = paginate(items.clone(), Some(2), None).unwrap();
        assert_eq!(page.len(), 2);
        assert_eq!(meta["remainingItemCount"], 1);
        let token = meta["continue"].as_str().unwrap();
        let (page, meta) = paginate(items, Some(2), Some(token)).unwrap();
        assert_eq!(page, vec![obj("b", "1")]);
        assert!(meta.get("continue").is_none());
        assert!(paginate(vec![], Some(1), Some("!!")).is_err());
    }

    #[test]
    fn field_selectors_with_inequality() {
        let terms = parse_field_selector("metadata.name!=1,metadata.namespace=a", "ServiceAccount")
            .unwrap();
        assert!(!matches_fields(&obj("a", "1"), &terms));
        assert!(matches_fields(&obj("a", "2"), &terms));
        assert!(!matches_fields(&obj("b", "2"), &terms));
        let err = parse_field_selector("spec.foo=x", "ServiceAccount").unwrap_err();
        assert_eq!(err.message, "field label not supported: spec.foo");
    }
}
