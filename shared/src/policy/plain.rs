//! The shape the system writes permission policies in (a `Version` and statements of
//! `Action`, `Effect` and `Resource` lists, nothing else), read without a JSON value in
//! between: a fleet's plan compares and shows two of them per role. A document of any other
//! shape is left to the general forms of `normalize`; for one of this shape, the forms made
//! here are the same (tested).

use super::normalize::is_plain_text;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;

/// A permission policy of the plain shape, its strings borrowed from the text where they
/// hold no escape. Serializes with its keys in sorted order.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PlainDocument<'a> {
    #[serde(rename = "Statement", borrow)]
    statement: Vec<PlainStatement<'a>>,
    #[serde(rename = "Version", borrow)]
    version: Cow<'a, str>,
}

#[derive(Debug, PartialEq, Eq, Serialize)]
struct PlainStatement<'a> {
    #[serde(rename = "Action")]
    action: Vec<Cow<'a, str>>,
    #[serde(rename = "Effect")]
    effect: Cow<'a, str>,
    #[serde(rename = "Resource")]
    resource: Vec<Cow<'a, str>>,
}

impl<'a> PlainDocument<'a> {
    /// The document in `text`, when it is a JSON object of the plain shape (no key twice).
    pub(super) fn parse(text: &'a str) -> Option<Self> {
        if !text.trim_start().starts_with('{') {
            return None;
        }
        serde_json::from_str(text).ok()
    }

    /// `normalize`'s form: actions lower-cased, every list sorted as its JSON and without
    /// duplicates.
    pub(super) fn normalized(self) -> Self {
        self.canonical(true)
    }

    /// `display_form`'s form: as `normalized`, names in the case they were written.
    pub(super) fn display_form(self) -> Self {
        self.canonical(false)
    }

    fn canonical(mut self, fold_case: bool) -> Self {
        for statement in &mut self.statement {
            if fold_case {
                for action in &mut statement.action {
                    if action.bytes().any(|b| b.is_ascii_uppercase()) {
                        action.to_mut().make_ascii_lowercase();
                    }
                }
            }
            sort_unique(&mut statement.action);
            sort_unique(&mut statement.resource);
        }
        self.statement
            .sort_by_cached_key(|s| serde_json::to_string(s).unwrap_or_default());
        self.statement.dedup();
        self
    }
}

/// Sorted as their JSON sorts (as `normalize` sorts lists), duplicates dropped.
fn sort_unique(items: &mut Vec<Cow<'_, str>>) {
    if items.iter().all(|s| is_plain_text(s)) {
        items.sort_unstable();
    } else {
        items.sort_by_cached_key(|s| serde_json::to_string(s).unwrap_or_default());
    }
    items.dedup();
}

/// A statement is read from a JSON object only (a derived `Deserialize` would also take a
/// list of its fields, which `normalize` keeps as it is): exactly the three keys, once each.
impl<'de: 'a, 'a> Deserialize<'de> for PlainStatement<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(StatementVisitor)
    }
}

struct StatementVisitor;

impl<'de> Visitor<'de> for StatementVisitor {
    type Value = PlainStatement<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a statement of Action, Effect and Resource")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
        let (mut action, mut effect, mut resource) = (None, None, None);
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            let taken = match key.as_ref() {
                "Action" => action
                    .replace(map.next_value::<Strings<'de>>()?.0)
                    .is_some(),
                "Effect" => effect.replace(map.next_value::<Text<'de>>()?.0).is_some(),
                "Resource" => resource
                    .replace(map.next_value::<Strings<'de>>()?.0)
                    .is_some(),
                other => return Err(de::Error::unknown_field(other, &[])),
            };
            if taken {
                return Err(de::Error::custom("a key twice"));
            }
        }
        match (action, effect, resource) {
            (Some(action), Some(effect), Some(resource)) => Ok(PlainStatement {
                action,
                effect,
                resource,
            }),
            _ => Err(de::Error::custom("a key missing")),
        }
    }
}

/// A string, borrowed when it holds no escape.
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Borrowed<'a>(#[serde(borrow)] Cow<'a, str>);
        Borrowed::deserialize(deserializer).map(|b| Text(b.0))
    }
}

/// A list of strings, each borrowed when it holds no escape.
struct Strings<'a>(Vec<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for Strings<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<Text<'a>>::deserialize(deserializer)
            .map(|list| Strings(list.into_iter().map(|t| t.0).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::normalize::{display_form, normalize};
    use super::*;
    use serde_json::Value;

    /// Documents of the plain shape, and some of other shapes that must be left to the
    /// general forms.
    const DOCUMENTS: &[&str] = &[
        r#"{"Statement":[{"Action":["s3:GetObject"],"Effect":"Allow","Resource":["*"]}],"Version":"2012-10-17"}"#,
        r#" {"Version":"2012-10-17","Statement":[{"Resource":["b","a","b"],"Effect":"Allow","Action":["S3:Put","s3:put","a!","a","a b"]},{"Action":["*"],"Effect":"Deny","Resource":["x"]},{"Effect":"Allow","Action":["s3:put","S3:Put","a","a!","a b"],"Resource":["a","b"]}]} "#,
        r#"{"Statement":[{"Action":["a\"b","a\\b","\u00e9","a\nb"],"Effect":"Allow","Resource":["a\/b"]}],"Version":"2012-10-17"}"#,
        r#"{"Statement":[],"Version":"2012-10-17"}"#,
        r#"{"Statement":[{"Action":[],"Effect":"Allow","Resource":[]}],"Version":"2008-10-17"}"#,
        // Not of the shape: scalars, extra or missing keys, keys twice, lists for objects.
        r#"{"Statement":[{"Action":"s3:GetObject","Effect":"Allow","Resource":["*"]}],"Version":"2012-10-17"}"#,
        r#"{"Statement":[{"Action":["s3:GetObject"],"Effect":"Allow","Resource":["*"],"Sid":"x"}],"Version":"2012-10-17"}"#,
        r#"{"Statement":[{"Action":["s3:GetObject"],"Effect":"Allow","Resource":["*"]}]}"#,
        r#"{"Statement":[{"Action":["s3:GetObject"],"Effect":"Allow"}],"Version":"1"}"#,
        r#"{"Statement":[{"Action":["a"],"Action":["b"],"Effect":"Allow","Resource":["*"]}],"Version":"1"}"#,
        r#"{"Statement":[],"Version":"1","Version":"2"}"#,
        r#"{"Statement":[[["s3:GetObject"],"Allow",["*"]]],"Version":"2012-10-17"}"#,
        r#"[[],"2012-10-17"]"#,
        r#"{"Statement":{"Action":["a"],"Effect":"Allow","Resource":["*"]},"Version":"1"}"#,
        r#"{"Statement":[{"Action":[1],"Effect":"Allow","Resource":["*"]}],"Version":"1"}"#,
        "not json",
    ];

    #[test]
    fn plain_forms_are_the_general_forms() {
        let mut plain = 0;
        for text in DOCUMENTS {
            let Some(document) = PlainDocument::parse(text) else {
                continue;
            };
            plain += 1;
            let general = Value::String((*text).to_owned());
            let to_value = |d: PlainDocument| serde_json::to_value(d).unwrap();
            assert_eq!(
                to_value(document.normalized()),
                normalize(&general),
                "{text}"
            );
            let shown = PlainDocument::parse(text).unwrap().display_form();
            assert_eq!(
                serde_json::to_string_pretty(&shown).unwrap(),
                serde_json::to_string_pretty(&display_form(&general)).unwrap(),
                "{text}"
            );
        }
        assert_eq!(plain, 5, "the documents of the plain shape");
    }
}
