//! The plain shape of policy documents, the one the system writes its permission and trust
//! policies in: a `Version` and statements of `Action`, `Effect`, and `Resource`, `Principal`
//! or `Condition` holding strings only (no `Sid`, no `Not...`), each key once. Read without a
//! JSON value in between: a fleet's plan compares and shows a few of them per role. A
//! document of any other shape is left to the general forms of `normalize`; for one of this
//! shape, the forms made here are the same (tested).

use super::normalize::is_plain_text;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

/// A policy document of the plain shape, its strings borrowed from the text where they hold
/// no escape. Serializes as its JSON value does: keys in sorted order, lists and scalars as
/// they were.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PlainDocument<'a> {
    #[serde(rename = "Statement", borrow)]
    statement: Vec<PlainStatement<'a>>,
    #[serde(rename = "Version", borrow)]
    version: Cow<'a, str>,
}

/// Values by key (principal kinds, condition keys), sorted as a JSON value's keys are.
type Keyed<'a, T> = BTreeMap<Key<'a>, T>;

/// A key of a JSON object, borrowed from the text when it holds no escape.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key<'a>(Cow<'a, str>);

impl Serialize for Key<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Text::deserialize(deserializer).map(|text| Key(text.0))
    }
}

#[derive(Debug, PartialEq, Eq, Serialize)]
struct PlainStatement<'a> {
    #[serde(rename = "Action")]
    action: Strings<'a>,
    #[serde(rename = "Condition", skip_serializing_if = "Option::is_none")]
    condition: Option<Keyed<'a, Keyed<'a, Strings<'a>>>>,
    #[serde(rename = "Effect")]
    effect: Cow<'a, str>,
    #[serde(rename = "Principal", skip_serializing_if = "Option::is_none")]
    principal: Option<Keyed<'a, Strings<'a>>>,
    #[serde(rename = "Resource", skip_serializing_if = "Option::is_none")]
    resource: Option<Strings<'a>>,
}

/// A string or a list of strings, as written.
#[derive(Debug, PartialEq, Eq)]
enum Strings<'a> {
    One(Cow<'a, str>),
    List(Vec<Cow<'a, str>>),
}

impl<'a> PlainDocument<'a> {
    /// The document in `text`, when it is a JSON object of the plain shape.
    pub(super) fn parse(text: &'a str) -> Option<Self> {
        if !text.trim_start().starts_with('{') {
            return None;
        }
        serde_json::from_str(text).ok()
    }

    /// `normalize`'s form: actions and condition keys lower-cased, every scalar a list, every
    /// list sorted as its JSON and without duplicates, statements too.
    #[cfg(test)]
    pub(super) fn normalized(self) -> Self {
        self.canonical(true)
    }

    /// `display_form`'s form: as `normalized`, names in the case they were written.
    pub(super) fn display_form(self) -> Self {
        self.canonical(false)
    }

    /// `self.normalized() == other.normalized()`, without sorting the statements as JSON: the
    /// same version and the same statements, their order and repeats aside. A fleet's plan
    /// compares one inline policy per role.
    pub(super) fn same_normalized(mut self, mut other: Self) -> bool {
        self.statements_canonical(true);
        other.statements_canonical(true);
        self.version == other.version
            && self.statement.iter().all(|s| other.statement.contains(s))
            && other.statement.iter().all(|s| self.statement.contains(s))
    }

    fn canonical(mut self, fold_case: bool) -> Self {
        self.statements_canonical(fold_case);
        // Statements the system wrote are mostly in order already: checked without a string
        // kept for each.
        if !sorted_as_json(&self.statement) {
            self.statement
                .sort_by_cached_key(|s| serde_json::to_string(s).unwrap_or_default());
        }
        self.statement.dedup();
        self
    }

    /// Each statement in its canonical form; their order is left as it is.
    fn statements_canonical(&mut self, fold_case: bool) {
        for statement in &mut self.statement {
            statement.action.make_set(fold_case);
            if let Some(resource) = &mut statement.resource {
                resource.make_set(false);
            }
            for ids in statement.principal.iter_mut().flat_map(|p| p.values_mut()) {
                ids.make_set(false);
            }
            for keys in statement.condition.iter_mut().flat_map(|c| c.values_mut()) {
                keys.values_mut().for_each(|values| values.make_set(false));
                // Lower-cased keys may sort otherwise, or meet: the map is made again.
                if fold_case
                    && keys
                        .keys()
                        .any(|k| k.0.bytes().any(|b| b.is_ascii_uppercase()))
                {
                    *keys = std::mem::take(keys)
                        .into_iter()
                        .map(|(mut key, values)| {
                            key.0.to_mut().make_ascii_lowercase();
                            (key, values)
                        })
                        .collect();
                }
            }
        }
    }
}

/// Whether `statements` are in the order of their JSON text, each no greater than the next.
fn sorted_as_json(statements: &[PlainStatement]) -> bool {
    thread_local! {
        /// The JSON of two neighbouring statements.
        static PAIR: std::cell::RefCell<(Vec<u8>, Vec<u8>)> =
            const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
    }
    if statements.len() < 2 {
        return true;
    }
    PAIR.with_borrow_mut(|(previous, next)| {
        previous.clear();
        if serde_json::to_writer(&mut *previous, &statements[0]).is_err() {
            return false;
        }
        for statement in &statements[1..] {
            next.clear();
            if serde_json::to_writer(&mut *next, statement).is_err() || *previous > *next {
                return false;
            }
            std::mem::swap(previous, next);
        }
        true
    })
}

impl Strings<'_> {
    /// A sorted list without duplicates, as `normalize` makes one (lower-cased if `fold_case`).
    fn make_set(&mut self, fold_case: bool) {
        let mut items = match std::mem::replace(self, Strings::List(Vec::new())) {
            Strings::One(one) => vec![one],
            Strings::List(list) => list,
        };
        if fold_case {
            for item in &mut items {
                if item.bytes().any(|b| b.is_ascii_uppercase()) {
                    item.to_mut().make_ascii_lowercase();
                }
            }
        }
        if items.iter().all(|s| is_plain_text(s)) {
            items.sort_unstable();
        } else {
            items.sort_by_cached_key(|s| serde_json::to_string(s).unwrap_or_default());
        }
        items.dedup();
        *self = Strings::List(items);
    }
}

impl Serialize for Strings<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Strings::One(one) => serializer.serialize_str(one),
            Strings::List(list) => serializer.collect_seq(list),
        }
    }
}

/// A statement is read from a JSON object only (a derived `Deserialize` would also take a
/// list of its fields, which `normalize` keeps as it is), each key once.
impl<'de: 'a, 'a> Deserialize<'de> for PlainStatement<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(StatementVisitor)
    }
}

struct StatementVisitor;

impl<'de> Visitor<'de> for StatementVisitor {
    type Value = PlainStatement<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a statement of the plain shape")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
        let (mut action, mut condition, mut effect, mut principal, mut resource) =
            (None, None, None, None, None);
        while let Some(key) = map.next_key::<Text<'de>>()? {
            let twice = match key.0.as_ref() {
                "Action" => action.replace(map.next_value()?).is_some(),
                "Condition" => condition.replace(map.next_value()?).is_some(),
                "Effect" => effect.replace(map.next_value::<Text<'de>>()?.0).is_some(),
                "Principal" => principal.replace(map.next_value()?).is_some(),
                "Resource" => resource.replace(map.next_value()?).is_some(),
                other => return Err(de::Error::unknown_field(other, &[])),
            };
            if twice {
                return Err(de::Error::custom("a key twice"));
            }
        }
        let (Some(action), Some(effect)) = (action, effect) else {
            return Err(de::Error::custom("no Action or no Effect"));
        };
        Ok(PlainStatement {
            action,
            condition,
            effect,
            principal,
            resource,
        })
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

impl<'de: 'a, 'a> Deserialize<'de> for Strings<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StringsVisitor)
    }
}

struct StringsVisitor;

impl<'de> Visitor<'de> for StringsVisitor {
    type Value = Strings<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or a list of strings")
    }

    fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Self::Value, E> {
        Ok(Strings::One(Cow::Borrowed(text)))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        Ok(Strings::One(Cow::Owned(text.to_owned())))
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<Self::Value, E> {
        Ok(Strings::One(Cow::Owned(text)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut list = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element::<Text<'de>>()? {
            list.push(item.0);
        }
        Ok(Strings::List(list))
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
        r#"{"Statement":[{"Action":"s3:GetObject","Effect":"Allow","Resource":"*"}],"Version":"2012-10-17"}"#,
        r#"{"Statement":[{"Action":["s3:GetObject"],"Effect":"Allow"}],"Version":"1"}"#,
        // Not of the shape: extra or missing keys, keys twice, lists for objects.
        r#"{"Statement":[{"Action":["s3:GetObject"],"Effect":"Allow","Resource":["*"],"Sid":"x"}],"Version":"2012-10-17"}"#,
        r#"{"Statement":[{"Action":["s3:GetObject"],"Effect":"Allow","Resource":["*"]}]}"#,
        r#"{"Statement":[{"Action":["a"],"Action":["b"],"Effect":"Allow","Resource":["*"]}],"Version":"1"}"#,
        r#"{"Statement":[],"Version":"1","Version":"2"}"#,
        r#"{"Statement":[[["s3:GetObject"],"Allow",["*"]]],"Version":"2012-10-17"}"#,
        r#"[[],"2012-10-17"]"#,
        r#"{"Statement":{"Action":["a"],"Effect":"Allow","Resource":["*"]},"Version":"1"}"#,
        r#"{"Statement":[{"Action":[1],"Effect":"Allow","Resource":["*"]}],"Version":"1"}"#,
        "not json",
        // Trust policies, as written and as IAM may spell them.
        r#"{"Statement":[{"Action":"sts:AssumeRoleWithWebIdentity","Condition":{"StringEquals":{"oidc.example/id/A:aud":"sts.amazonaws.com","oidc.example/id/A:sub":"system:serviceaccount:team:worker"}},"Effect":"Allow","Principal":{"Federated":"arn:aws:iam::1:oidc-provider/oidc.example/id/A"}}],"Version":"2012-10-17"}"#,
        r#"{"Statement":[{"Action":["sts:TagSession","STS:AssumeRole"],"Condition":{"StringEquals":{"AWS:SourceAccount":"1","aws:RequestTag/kubernetes-namespace":["b","a","b"]},"StringLike":{"x":[]}},"Effect":"Allow","Principal":{"Service":["pods.eks.amazonaws.com"],"AWS":"*"}}],"Version":"2012-10-17"}"#,
        r#"{"Statement":[{"Action":"a","Condition":{"StringEquals":{"k":"1","K":"2"}},"Effect":"Allow"},{"Action":"a","Condition":{"StringEquals":{"k":"1","K":"2"}},"Effect":"Allow"}],"Version":"1"}"#,
        r#"{"Statement":[{"Action":"a","Condition":{"StringEquals":{"k":"1","k":"2"}},"Effect":"Allow","Principal":{"AWS":"x","AWS":"y"}}],"Version":"1"}"#,
        // Not of the shape: numbers, a principal that is no object, a missing effect.
        r#"{"Statement":[{"Action":"a","Condition":{"NumericLessThan":{"k":1}},"Effect":"Allow"}],"Version":"1"}"#,
        r#"{"Statement":[{"Action":"a","Condition":{"Bool":{"k":true}},"Effect":"Allow"}],"Version":"1"}"#,
        r#"{"Statement":[{"Action":"a","Effect":"Allow","Principal":"*"}],"Version":"1"}"#,
        r#"{"Statement":[{"Action":"a","Condition":{"StringEquals":"k"},"Effect":"Allow"}],"Version":"1"}"#,
        r#"{"Statement":[{"Action":"a","Resource":"*"}],"Version":"1"}"#,
        r#"{"Statement":[{"NotAction":"a","Effect":"Allow","Resource":"*"}],"Version":"1"}"#,
    ];

    #[test]
    fn plain_forms_are_the_general_forms() {
        let mut plain = 0;
        for text in DOCUMENTS {
            let Some(document) = PlainDocument::parse(text) else {
                continue;
            };
            plain += 1;
            let as_value: Value = serde_json::from_str(text).unwrap();
            assert_eq!(
                serde_json::to_string_pretty(&document).unwrap(),
                serde_json::to_string_pretty(&as_value).unwrap(),
                "{text}"
            );
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
        assert_eq!(plain, 11, "the documents of the plain shape");
    }

    #[test]
    fn same_normalized_is_equal_normalized_forms_for_every_pair() {
        let mut equal = 0;
        for a in DOCUMENTS {
            for b in DOCUMENTS {
                let (Some(x), Some(y)) = (PlainDocument::parse(a), PlainDocument::parse(b)) else {
                    continue;
                };
                let expected = x.normalized() == y.normalized();
                equal += usize::from(expected);
                let (x, y) = (
                    PlainDocument::parse(a).unwrap(),
                    PlainDocument::parse(b).unwrap(),
                );
                assert_eq!(x.same_normalized(y), expected, "{a}\n{b}");
            }
        }
        // Each document with itself, and the two spellings of the same grants.
        assert!(equal > 11, "{equal}");
    }
}
