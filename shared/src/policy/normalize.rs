//! Semantic normalization of IAM policy documents. IAM returns documents percent-encoded, with
//! scalars where a list was sent, keys and lists reordered; equal meaning must never look like
//! drift, or the reconciler would rewrite the same policy forever.

use percent_encoding::percent_decode_str;
use serde_json::{Map, Value};

/// Whether names IAM matches case-insensitively (actions, condition keys) are lower-cased.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Case {
    /// Lower-cased: for comparing documents.
    Fold,
    /// As written: for showing documents to people.
    Keep,
}

/// When a document has no `Version`, IAM applies the oldest policy language.
const DEFAULT_VERSION: &str = "2008-10-17";

/// The canonical form of a policy document: two documents mean the same thing exactly when
/// their canonical forms are equal.
///
/// - a string is percent-decoded (when it does not already look like JSON) and parsed;
/// - `Version` is defaulted, `Id` and every `Sid` dropped (they carry no meaning);
/// - `Statement`, `Action`, `NotAction`, `Resource`, `NotResource`, principal lists and
///   condition values become sorted, de-duplicated lists (a scalar is a one-element list);
/// - action names and condition keys are lower-cased (IAM matches them case-insensitively);
/// - condition values that are numbers or booleans become strings, as IAM compares them.
///
/// Text that is not JSON normalizes to itself as a string, which never equals a document.
pub fn normalize(document: &Value) -> Value {
    canonical(document, Case::Fold)
}

/// The same canonical form with names in the case they were written: for showing documents
/// and their differences to people.
pub fn display_form(document: &Value) -> Value {
    canonical(document, Case::Keep)
}

fn canonical(document: &Value, case: Case) -> Value {
    match document {
        Value::String(text) => match parse_text(text) {
            Some(Value::Object(map)) => normalize_document(&map, case),
            _ => Value::String(text.clone()),
        },
        Value::Object(map) => normalize_document(map, case),
        other => other.clone(),
    }
}

fn parse_text(text: &str) -> Option<Value> {
    let trimmed = text.trim();
    if trimmed.starts_with('{') {
        return serde_json::from_str(trimmed).ok();
    }
    let decoded = percent_decode_str(trimmed).decode_utf8().ok()?;
    serde_json::from_str(decoded.trim()).ok()
}

fn normalize_document(map: &Map<String, Value>, case: Case) -> Value {
    let mut out = Map::new();
    for (key, value) in map {
        match key.as_str() {
            "Id" => {}
            "Statement" => {
                let mut statements: Vec<Value> = as_list(value)
                    .into_iter()
                    .map(|statement| match statement {
                        Value::Object(s) => normalize_statement(s, case),
                        other => other.clone(),
                    })
                    .collect();
                sort_unique(&mut statements);
                out.insert(key.clone(), Value::Array(statements));
            }
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    out.entry("Version")
        .or_insert_with(|| Value::String(DEFAULT_VERSION.to_owned()));
    Value::Object(out)
}

fn normalize_statement(statement: &Map<String, Value>, case: Case) -> Value {
    let mut out = Map::new();
    for (key, value) in statement {
        let normalized = match key.as_str() {
            "Sid" => continue,
            "Action" | "NotAction" => string_set(value, case),
            "Resource" | "NotResource" => string_set(value, Case::Keep),
            "Principal" | "NotPrincipal" => normalize_principal(value),
            "Condition" => normalize_condition(value, case),
            _ => value.clone(),
        };
        out.insert(key.clone(), normalized);
    }
    Value::Object(out)
}

fn normalize_principal(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(kind, ids)| (kind.clone(), string_set(ids, Case::Keep)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn normalize_condition(value: &Value, case: Case) -> Value {
    let Value::Object(operators) = value else {
        return value.clone();
    };
    Value::Object(
        operators
            .iter()
            .map(|(operator, keys)| {
                let keys = match keys {
                    Value::Object(keys) => Value::Object(
                        keys.iter()
                            .map(|(key, values)| {
                                let key = if case == Case::Fold {
                                    key.to_ascii_lowercase()
                                } else {
                                    key.clone()
                                };
                                (key, string_set(values, Case::Keep))
                            })
                            .collect(),
                    ),
                    other => other.clone(),
                };
                (operator.clone(), keys)
            })
            .collect(),
    )
}

fn as_list(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    }
}

/// A scalar or list of scalars as a sorted, de-duplicated list of strings.
fn string_set(value: &Value, case: Case) -> Value {
    let mut items: Vec<Value> = as_list(value)
        .into_iter()
        .map(|item| match item {
            Value::String(s) if case == Case::Fold => Value::String(s.to_ascii_lowercase()),
            Value::Number(n) => Value::String(n.to_string()),
            Value::Bool(b) => Value::String(b.to_string()),
            other => other.clone(),
        })
        .collect();
    sort_unique(&mut items);
    Value::Array(items)
}

fn sort_unique(items: &mut Vec<Value>) {
    items.sort_by_cached_key(canonical_json);
    items.dedup();
}

/// Compact JSON with object keys in sorted order, whatever map type serde_json was built with.
pub fn canonical_json(value: &Value) -> String {
    let mut out = Vec::with_capacity(256);
    write_canonical(value, &mut out);
    // Only serde_json's output and ASCII punctuation were written: always UTF-8.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json(key.as_str(), out);
                out.push(b':');
                write_canonical(item, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => write_json(scalar, out),
    }
}

fn write_json<T: serde::Serialize + ?Sized>(item: &T, out: &mut Vec<u8>) {
    // Writing a string or scalar into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, item);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn encode(text: &str) -> String {
        percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
    }

    #[test]
    fn reordered_scalar_and_encoded_forms_are_equal() {
        let ours = json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": ["arn:aws:s3:::b/*"]},
            {"Effect": "Allow", "Action": ["ec2:DescribeVolumes"], "Resource": ["*"]},
        ]});
        let theirs = r#"{"Statement":[{"Resource":"*","Action":"EC2:DescribeVolumes","Effect":"Allow","Sid":"x"},
            {"Action":["s3:PutObject","s3:GetObject","s3:GetObject"],"Resource":"arn:aws:s3:::b/*","Effect":"Allow"}],
            "Version":"2012-10-17"}"#;
        assert_eq!(
            normalize(&ours),
            normalize(&Value::String(theirs.to_owned()))
        );
        assert_eq!(normalize(&ours), normalize(&Value::String(encode(theirs))));
    }

    #[test]
    fn condition_values_compare_as_sets_of_strings() {
        let a = json!({"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": "1", "AWS:RequestTag/x": ["b", "a"]},
                          "Bool": {"aws:SecureTransport": true}}}});
        let b = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["sts:AssumeRole"],
            "Condition": {"Bool": {"aws:securetransport": "true"},
                          "StringEquals": {"aws:RequestTag/x": ["a", "b"], "aws:SourceAccount": ["1"]}}}]});
        assert_eq!(normalize(&a), normalize(&b));
    }

    #[test]
    fn a_different_meaning_is_not_equal() {
        let base = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["*"]}]});
        for other in [
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": ["s3:GetObject"], "Resource": ["*"]}]}),
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:PutObject"], "Resource": ["*"]}]}),
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::B"]}]}),
            json!({"Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["*"]}]}),
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "NotAction": ["s3:GetObject"], "Resource": ["*"]}]}),
        ] {
            assert_ne!(normalize(&base), normalize(&other), "{other}");
        }
    }

    #[test]
    fn resources_stay_case_sensitive() {
        let a = json!({"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::Bucket"}]});
        let b = json!({"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::bucket"}]});
        assert_ne!(normalize(&a), normalize(&b));
    }

    #[test]
    fn garbage_text_is_never_equal_to_a_document() {
        let doc = json!({"Statement": []});
        assert_ne!(
            normalize(&Value::String("%7Bnot json".into())),
            normalize(&doc)
        );
        assert_eq!(
            normalize(&Value::String("%ZZ".into())),
            Value::String("%ZZ".into())
        );
    }

    #[test]
    fn canonical_json_sorts_keys() {
        assert_eq!(
            canonical_json(&json!({"b": [1, {"d": 1, "c": 2}], "a": "x"})),
            r#"{"a":"x","b":[1,{"c":2,"d":1}]}"#
        );
    }
}
