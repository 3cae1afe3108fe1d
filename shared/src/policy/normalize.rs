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
    into_canonical(document.clone(), Case::Fold)
}

/// The same canonical form with names in the case they were written: for showing documents
/// and their differences to people.
pub fn display_form(document: &Value) -> Value {
    into_canonical(document.clone(), Case::Keep)
}

/// [`normalize`], taking the document: its parts are moved into the canonical form, not
/// copied (documents are compared for every role of every reconcile).
pub fn into_normalized(document: Value) -> Value {
    into_canonical(document, Case::Fold)
}

/// [`display_form`], taking the document.
pub fn into_display_form(document: Value) -> Value {
    into_canonical(document, Case::Keep)
}

fn into_canonical(document: Value, case: Case) -> Value {
    match document {
        Value::String(text) => match parse_text(&text) {
            Some(Value::Object(map)) => normalize_document(map, case),
            _ => Value::String(text),
        },
        Value::Object(map) => normalize_document(map, case),
        other => other,
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

fn normalize_document(map: Map<String, Value>, case: Case) -> Value {
    let mut out = Map::new();
    for (key, value) in map {
        match key.as_str() {
            "Id" => {}
            "Statement" => {
                let mut statements: Vec<Value> = into_list(value)
                    .into_iter()
                    .map(|statement| match statement {
                        Value::Object(s) => normalize_statement(s, case),
                        other => other,
                    })
                    .collect();
                sort_unique(&mut statements);
                out.insert(key, Value::Array(statements));
            }
            _ => {
                out.insert(key, value);
            }
        }
    }
    out.entry("Version")
        .or_insert_with(|| Value::String(DEFAULT_VERSION.to_owned()));
    Value::Object(out)
}

fn normalize_statement(statement: Map<String, Value>, case: Case) -> Value {
    let mut out = Map::new();
    for (key, value) in statement {
        let normalized = match key.as_str() {
            "Sid" => continue,
            "Action" | "NotAction" => string_set(value, case),
            "Resource" | "NotResource" => string_set(value, Case::Keep),
            "Principal" | "NotPrincipal" => normalize_principal(value),
            "Condition" => normalize_condition(value, case),
            _ => value,
        };
        out.insert(key, normalized);
    }
    Value::Object(out)
}

fn normalize_principal(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(kind, ids)| (kind, string_set(ids, Case::Keep)))
                .collect(),
        ),
        other => other,
    }
}

fn normalize_condition(value: Value, case: Case) -> Value {
    let Value::Object(operators) = value else {
        return value;
    };
    Value::Object(
        operators
            .into_iter()
            .map(|(operator, keys)| {
                let keys = match keys {
                    Value::Object(keys) => Value::Object(
                        keys.into_iter()
                            .map(|(mut key, values)| {
                                if case == Case::Fold {
                                    key.make_ascii_lowercase();
                                }
                                (key, string_set(values, Case::Keep))
                            })
                            .collect(),
                    ),
                    other => other,
                };
                (operator, keys)
            })
            .collect(),
    )
}

fn into_list(value: Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items,
        other => vec![other],
    }
}

/// A scalar or list of scalars as a sorted, de-duplicated list of strings.
fn string_set(value: Value, case: Case) -> Value {
    let mut items: Vec<Value> = into_list(value)
        .into_iter()
        .map(|item| match item {
            Value::String(mut s) => {
                if case == Case::Fold {
                    s.make_ascii_lowercase();
                }
                Value::String(s)
            }
            Value::Number(n) => Value::String(n.to_string()),
            Value::Bool(b) => Value::String(b.to_string()),
            other => other,
        })
        .collect();
    sort_unique(&mut items);
    Value::Array(items)
}

/// Sorted by canonical text, duplicates dropped.
fn sort_unique(items: &mut Vec<Value>) {
    if items.iter().all(is_plain_string) {
        // Plain strings sort by their text as by their canonical JSON (see `is_plain_string`),
        // without writing it out.
        items.sort_unstable_by(|a, b| a.as_str().cmp(&b.as_str()));
    } else {
        items.sort_by_cached_key(canonical_json);
    }
    items.dedup();
}

fn is_plain_string(value: &Value) -> bool {
    value.as_str().is_some_and(is_plain_text)
}

/// Text whose canonical JSON is itself in quotes, and whose characters all sort after the
/// closing quote: such strings sort by text as their JSON does. (A space or `!` sorts before
/// `"`, so `"a"` comes after `"a!"` as JSON, while `a` comes before `a!` as text.)
pub(super) fn is_plain_text(text: &str) -> bool {
    text.bytes().all(|b| b > b'"' && b != b'\\')
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

    /// Plain strings are sorted by their text, others by their JSON: both give the order of
    /// the JSON, and the same form as from the borrowed document.
    #[test]
    fn lists_sort_as_their_json_does() {
        let items = [
            "a", "a!", "a b", "a\"", "ab", "a\\", "é", "A", "a", "*", "a\n",
        ];
        for case in [Case::Fold, Case::Keep] {
            for n in 0..=items.len() {
                let list = json!(items[..n]);
                let Value::Array(sorted) = string_set(list.clone(), case) else {
                    panic!("a list");
                };
                let mut expected: Vec<String> = items[..n]
                    .iter()
                    .map(|s| match case {
                        Case::Fold => s.to_ascii_lowercase(),
                        Case::Keep => (*s).to_owned(),
                    })
                    .collect();
                expected.sort_by_cached_key(|s| canonical_json(&json!(s)));
                expected.dedup();
                assert_eq!(sorted, expected, "{n} {:?}", items[..n].to_vec());
            }
        }
        let document = json!({"Statement": [{"Action": ["b", "a!", "a"], "Effect": "Allow"}]});
        assert_eq!(into_display_form(document.clone()), display_form(&document));
        assert_eq!(
            display_form(&document)["Statement"][0]["Action"],
            json!(["a!", "a", "b"])
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
