//! Policy documents as the system writes them: deterministic and minimal, so the same intents
//! always give the same bytes.

use super::normalize::{canonical_json, into_display_form, into_normalized};
use super::plain::PlainDocument;
use crate::model::Permission;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Value, json};
use std::borrow::Cow;
use std::ops::Range;

/// An IAM policy document, kept as JSON text: as the system wrote it (compact, keys sorted) or
/// as IAM returned it (possibly percent-encoded, in IAM's own order). Text is small and cheap to
/// compare; compare meaning with [`PolicyDocument::same_meaning`].
///
/// In JSON (plans, snapshots) a document is written as the object it holds; a snapshot may give
/// either an object or the text IAM returned.
#[derive(Clone, Debug)]
pub struct PolicyDocument {
    text: String,
    /// The text is the system's canonical form (compact, keys sorted at every depth, as
    /// `serde_json` writes strings), so its JSON value is written by re-indenting it.
    canonical: bool,
}

/// Two documents are equal when their text is: how the text came to be does not count.
impl PartialEq for PolicyDocument {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for PolicyDocument {}

thread_local! {
    /// Set while [`PolicyDocument::raw_within`] runs: canonical documents serialize as their
    /// text, for a formatter that re-indents it ([`Indented`]).
    static RAW: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl PolicyDocument {
    pub const VERSION: &'static str = "2012-10-17";

    /// A document with the current policy language version and these statements.
    pub fn from_statements(statements: Vec<Value>) -> Self {
        Self::from_value(&json!({ "Version": Self::VERSION, "Statement": statements }))
    }

    /// The permission policy holding these statements (Allow, and the Deny of the system's own
    /// resources). Written straight to canonical text: this runs for every workload of every
    /// reconcile.
    pub fn allowing(statements: &[Statement]) -> Self {
        Self::written(statements)
    }

    /// The document holding `statements`, each of which serializes with its keys (at every
    /// depth) in sorted order: the canonical text, written without a JSON value in between.
    pub(super) fn written<T: Serialize>(statements: &[T]) -> Self {
        #[derive(Serialize)]
        struct Canonical<'a, T> {
            #[serde(rename = "Statement")]
            statement: &'a [T],
            #[serde(rename = "Version")]
            version: &'static str,
        }
        thread_local! {
            /// The buffer every written document is serialized into before it is copied out
            /// at its exact size: one allocation a document, none grown.
            static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        let text = SCRATCH.with_borrow_mut(|scratch| {
            scratch.clear();
            let canonical = Canonical {
                statement: statements,
                version: Self::VERSION,
            };
            match serde_json::to_writer(&mut *scratch, &canonical) {
                // serde_json writes UTF-8 only: checked, never lost.
                Ok(()) => {
                    std::str::from_utf8(scratch).map_or_else(|_| String::new(), str::to_owned)
                }
                Err(_) => String::new(),
            }
        });
        PolicyDocument {
            text,
            canonical: true,
        }
    }

    /// A document from its JSON value, in canonical compact form.
    pub fn from_value(value: &Value) -> Self {
        PolicyDocument {
            text: canonical_json(value),
            canonical: true,
        }
    }

    /// A document as IAM returned it: JSON text, percent-encoded or not.
    pub fn from_text(text: impl Into<String>) -> Self {
        PolicyDocument {
            text: text.into(),
            canonical: false,
        }
    }

    /// Runs `write` with every canonical document serializing as its text (a `serde_json`
    /// raw value) instead of as the value read back from it: the same JSON, without parsing
    /// each document again, for a serializer whose formatter lays raw text out as it lays
    /// values out ([`Indented`]; `serde_json`'s `PrettyFormatter` would leave it compact). The
    /// JSON plan shows tens of thousands of documents.
    pub fn raw_within<T>(write: impl FnOnce() -> T) -> T {
        struct Reset(bool);
        impl Drop for Reset {
            fn drop(&mut self) {
                RAW.set(self.0);
            }
        }
        let _reset = Reset(RAW.replace(true));
        write()
    }

    /// The JSON text, percent-decoded when IAM had encoded it.
    pub fn to_json(&self) -> String {
        self.json().into_owned()
    }

    /// [`PolicyDocument::to_json`], borrowed when the text was not encoded.
    pub fn json(&self) -> Cow<'_, str> {
        decoded(&self.text)
    }

    /// The document as a JSON value; text that is not JSON becomes a JSON string.
    pub fn value(&self) -> Value {
        serde_json::from_str(&decoded(&self.text))
            .unwrap_or_else(|_| Value::String(self.text.clone()))
    }

    /// True when both documents grant the same thing, however IAM spelled them. Identical
    /// text (the usual case once converged) is decided without parsing.
    pub fn same_meaning(&self, other: &PolicyDocument) -> bool {
        if self.text == other.text {
            return true;
        }
        let (a, b) = (decoded(&self.text), decoded(&other.text));
        if a == b {
            return true;
        }
        if let (Some(x), Some(y)) = (PlainDocument::parse(&a), PlainDocument::parse(&b)) {
            return x.same_normalized(y);
        }
        into_normalized(Value::String(a.into_owned()))
            == into_normalized(Value::String(b.into_owned()))
    }

    /// The document in display form (`display_form`), pretty-printed into `out`: for people.
    /// Written straight, without a string between: a fleet's plan shows tens of thousands.
    pub fn write_pretty<W: std::io::Write>(&self, out: W) -> std::io::Result<()> {
        self.write_pretty_with(out, serde_json::ser::PrettyFormatter::new())
    }

    /// [`PolicyDocument::write_pretty`] with every line behind `prefix` and ended by a line
    /// break: how a plan's text shows a document, written without a buffer between.
    pub fn write_pretty_lines<W: std::io::Write>(
        &self,
        mut out: W,
        prefix: &str,
    ) -> std::io::Result<()> {
        out.write_all(prefix.as_bytes())?;
        self.write_pretty_with(&mut out, Indented::new(prefix.as_bytes()))?;
        out.write_all(b"\n")
    }

    fn write_pretty_with<W, F>(&self, out: W, formatter: F) -> std::io::Result<()>
    where
        W: std::io::Write,
        F: serde_json::ser::Formatter,
    {
        let mut serializer = serde_json::Serializer::with_formatter(out, formatter);
        let written = match PlainDocument::parse(&decoded(&self.text)) {
            Some(plain) => plain.display_form().serialize(&mut serializer),
            None => into_display_form(self.value()).serialize(&mut serializer),
        };
        written.map_err(std::io::Error::other)
    }

    /// Size as IAM counts it against its quotas: characters, whitespace not counted.
    pub fn iam_size(&self) -> usize {
        let text = decoded(&self.text);
        if text.is_ascii() {
            // The ASCII characters `char::is_whitespace` names (tab to carriage return, and the
            // space), counted without a branch, in byte-wide counters that cannot overflow
            // within a chunk: the loop runs on vectors, many bytes at a time.
            let spaces: usize = text
                .as_bytes()
                .chunks(u8::MAX.into())
                .map(|chunk| {
                    let n = chunk.iter().fold(0u8, |n, &b| {
                        n + u8::from(b == b' ') + u8::from(b.wrapping_sub(b'\t') < 5)
                    });
                    usize::from(n)
                })
                .sum();
            return text.len() - spaces;
        }
        text.chars().filter(|c| !c.is_whitespace()).count()
    }
}

/// `serde_json`'s pretty form (two spaces a level), every line behind a prefix: the same bytes
/// as pretty-printing first and putting the prefix before each line after. Each line break and
/// its indent is one write, where `serde_json::ser::PrettyFormatter` makes one per level: with
/// no prefix, the formatter of the JSON plan, tens of megabytes deep in nested objects.
pub struct Indented {
    /// A line break, the prefix, then the indent of the deepest level so far.
    line: Vec<u8>,
    /// The length of `line` up to the prefix's end.
    prefix_end: usize,
    level: usize,
    has_value: bool,
}

impl Indented {
    pub fn new(prefix: &[u8]) -> Self {
        let mut line = Vec::with_capacity(1 + prefix.len() + 16);
        line.push(b'\n');
        line.extend_from_slice(prefix);
        Indented {
            prefix_end: line.len(),
            line,
            level: 0,
            has_value: false,
        }
    }

    /// A line break, the prefix and the indent of the current level, in one write.
    fn new_line<W: ?Sized + std::io::Write>(&mut self, out: &mut W) -> std::io::Result<()> {
        let end = self.prefix_end + 2 * self.level;
        if self.line.len() < end {
            self.line.resize(end, b' ');
        }
        out.write_all(&self.line[..end])
    }

    fn open<W: ?Sized + std::io::Write>(
        &mut self,
        out: &mut W,
        bracket: &[u8],
    ) -> std::io::Result<()> {
        self.level += 1;
        self.has_value = false;
        out.write_all(bracket)
    }

    fn close<W: ?Sized + std::io::Write>(
        &mut self,
        out: &mut W,
        bracket: &[u8],
    ) -> std::io::Result<()> {
        self.level -= 1;
        if self.has_value {
            self.new_line(out)?;
        }
        out.write_all(bracket)
    }

    fn item<W: ?Sized + std::io::Write>(
        &mut self,
        out: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if !first {
            out.write_all(b",")?;
        }
        self.new_line(out)
    }
}

impl serde_json::ser::Formatter for Indented {
    fn begin_array<W: ?Sized + std::io::Write>(&mut self, out: &mut W) -> std::io::Result<()> {
        self.open(out, b"[")
    }

    fn end_array<W: ?Sized + std::io::Write>(&mut self, out: &mut W) -> std::io::Result<()> {
        self.close(out, b"]")
    }

    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        out: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.item(out, first)
    }

    fn end_array_value<W: ?Sized + std::io::Write>(&mut self, _: &mut W) -> std::io::Result<()> {
        self.has_value = true;
        Ok(())
    }

    fn begin_object<W: ?Sized + std::io::Write>(&mut self, out: &mut W) -> std::io::Result<()> {
        self.open(out, b"{")
    }

    fn end_object<W: ?Sized + std::io::Write>(&mut self, out: &mut W) -> std::io::Result<()> {
        self.close(out, b"}")
    }

    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        out: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.item(out, first)
    }

    fn begin_object_value<W: ?Sized + std::io::Write>(
        &mut self,
        out: &mut W,
    ) -> std::io::Result<()> {
        out.write_all(b": ")
    }

    fn end_object_value<W: ?Sized + std::io::Write>(&mut self, _: &mut W) -> std::io::Result<()> {
        self.has_value = true;
        Ok(())
    }

    /// Compact JSON (a raw value), laid out as its value would be: a line for each element
    /// and key, `{}` and `[]` for empty ones, strings and scalars copied as they are. Each run
    /// of text is written with the punctuation that ends it, a closing bracket with the run
    /// that follows it: about two writes a line.
    fn write_raw_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        out: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        let bytes = fragment.as_bytes();
        // Where the bytes not yet written start.
        let mut from = 0;
        let mut at = 0;
        while let Some(&byte) = bytes.get(at) {
            match byte {
                b'"' => {
                    // To the closing quote, over escaped characters.
                    at += 1;
                    while let Some(&inside) = bytes.get(at) {
                        match inside {
                            b'"' => break,
                            b'\\' => at += 2,
                            _ => at += 1,
                        }
                    }
                }
                b'{' | b'[' if matches!(bytes.get(at + 1), Some(b'}' | b']')) => at += 1,
                b'{' | b'[' => {
                    self.level += 1;
                    out.write_all(&bytes[from..=at])?;
                    self.new_line(out)?;
                    from = at + 1;
                }
                b',' => {
                    out.write_all(&bytes[from..=at])?;
                    self.new_line(out)?;
                    from = at + 1;
                }
                b'}' | b']' => {
                    self.level -= 1;
                    out.write_all(&bytes[from..at])?;
                    self.new_line(out)?;
                    // The bracket goes out with what follows it.
                    from = at;
                }
                b':' => {
                    out.write_all(&bytes[from..=at])?;
                    out.write_all(b" ")?;
                    from = at + 1;
                }
                _ => {}
            }
            at += 1;
        }
        out.write_all(bytes.get(from..).unwrap_or_default())
    }
}

/// IAM returns documents percent-encoded; text that already looks like JSON is taken as is.
fn decoded(text: &str) -> Cow<'_, str> {
    if text.trim_start().starts_with('{') {
        Cow::Borrowed(text)
    } else {
        percent_encoding::percent_decode_str(text).decode_utf8_lossy()
    }
}

/// As its JSON value; one of the plain shape is written straight from its text.
impl Serialize for PolicyDocument {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.canonical
            && RAW.get()
            && let Ok(raw) = serde_json::from_str::<&serde_json::value::RawValue>(&self.text)
        {
            return raw.serialize(serializer);
        }
        match PlainDocument::parse(&decoded(&self.text)) {
            Some(plain) => plain.serialize(serializer),
            None => self.value().serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for PolicyDocument {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match Value::deserialize(deserializer)? {
            Value::String(text) => PolicyDocument::from_text(text),
            other => PolicyDocument::from_value(&other),
        })
    }
}

/// Whether a statement grants or takes away.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum Effect {
    #[default]
    Allow,
    /// Only ever the system's own resources, which no workload may reach (see
    /// [`super::system_denial`]).
    Deny,
}

impl Effect {
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Allow => "Allow",
            Effect::Deny => "Deny",
        }
    }
}

/// One statement: these actions on these resources, allowed (or, for the system's own
/// resources, denied). Both lists are sorted and unique. Serializes as the IAM statement, keys
/// in sorted order. Lists stay lists even with one element (IAM would accept a scalar) so the
/// shape does not change when a second is added.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub struct Statement {
    pub actions: Vec<String>,
    pub resources: Vec<String>,
    #[serde(default)]
    pub effect: Effect,
}

impl Serialize for Statement {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut statement = serializer.serialize_struct("Statement", 3)?;
        statement.serialize_field("Action", &self.actions)?;
        statement.serialize_field("Effect", self.effect.as_str())?;
        statement.serialize_field("Resource", &self.resources)?;
        statement.end()
    }
}

impl Statement {
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// The fewest statements that grant exactly `permissions`: resources that need the same set of
/// actions share one statement. Deterministic: the order follows the sorted action sets. The
/// permissions' text moves into the statements, copied nowhere.
pub fn permission_statements(permissions: impl IntoIterator<Item = Permission>) -> Vec<Statement> {
    // (resource, action), sorted and unique: each resource's actions side by side, in order.
    let mut pairs: Vec<(String, String)> = permissions
        .into_iter()
        .map(|p| (p.resource, p.action))
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    // Each resource's run of pairs, ordered by its list of actions (as sets of them order),
    // then by resource: resources with the same actions side by side, make one statement.
    let mut runs: Vec<Range<usize>> = Vec::new();
    for run in pairs.chunk_by(|a, b| a.0 == b.0) {
        let start = runs.last().map_or(0, |r| r.end);
        runs.push(start..start + run.len());
    }
    let actions_of = |run: &Range<usize>| pairs[run.clone()].iter().map(|(_, action)| action);
    runs.sort_by(|a, b| {
        actions_of(a)
            .cmp(actions_of(b))
            .then_with(|| pairs[a.start].0.cmp(&pairs[b.start].0))
    });
    let groups: Vec<usize> = runs
        .chunk_by(|a, b| actions_of(a).eq(actions_of(b)))
        .map(<[_]>::len)
        .collect();
    let mut statements = Vec::with_capacity(groups.len());
    let mut rest = runs.as_slice();
    for len in groups {
        let (same, after) = rest.split_at(len);
        rest = after;
        statements.push(Statement {
            actions: pairs[same[0].clone()]
                .iter_mut()
                .map(|(_, action)| std::mem::take(action))
                .collect(),
            resources: same
                .iter()
                .map(|run| std::mem::take(&mut pairs[run.start].0))
                .collect(),
            effect: Effect::Allow,
        });
    }
    statements
}

#[cfg(test)]
mod tests {
    #[test]
    fn raw_documents_are_laid_out_as_their_values_are() {
        let documents = [
            PolicyDocument::allowing(&permission_statements(
                [
                    ("s3:GetObject", "arn:aws:s3:::b/*"),
                    ("sqs:SendMessage", "*"),
                ]
                .map(|(a, r)| Permission {
                    action: a.into(),
                    resource: r.into(),
                }),
            )),
            crate::policy::irsa_trust_for("arn:aws:iam::1:oidc-provider/o/id/A", "o/id/A", &[]),
            PolicyDocument::from_value(&json!({
                "Version": "1",
                "Statement": [{"Effect": "Allow", "Action": [], "Resource": {}, "Sid": "a\"b\\c\u{1}é"}],
                "Z": [[], {}, [[]], [{}], {"a": [1, 2.5, -3e-7, true, null]}],
            })),
            PolicyDocument::from_value(&json!({})),
            PolicyDocument::from_value(&json!([])),
            // Not the system's own text: read back and written as its value, as always.
            PolicyDocument::from_text(
                r#"{"Version":"1", "Statement":[{"Effect":"Allow","Action":"a"}]}"#,
            ),
            PolicyDocument::from_text("%7B%22Statement%22%3A%5B%5D%7D"),
        ];
        #[derive(Serialize)]
        struct Nested<'a> {
            deeper: Vec<&'a PolicyDocument>,
            document: &'a PolicyDocument,
        }
        for document in &documents {
            let nested = Nested {
                deeper: vec![document, document],
                document,
            };
            let written = |raw: bool| {
                let mut out = Vec::new();
                let mut serializer =
                    serde_json::Serializer::with_formatter(&mut out, Indented::new(b""));
                let result = if raw {
                    PolicyDocument::raw_within(|| nested.serialize(&mut serializer))
                } else {
                    nested.serialize(&mut serializer)
                };
                result.unwrap();
                String::from_utf8(out).unwrap()
            };
            assert_eq!(written(true), written(false), "{document:?}");
            assert_eq!(
                written(true),
                serde_json::to_string_pretty(&nested).unwrap()
            );
            // The raw path is taken for the system's own text: `serde_json`'s own pretty
            // formatter leaves a raw value as it is, compact.
            let pretty = || serde_json::to_string_pretty(document).unwrap();
            let raw = PolicyDocument::raw_within(pretty);
            assert_eq!(raw == document.text, document.canonical, "{raw}");
            assert_eq!(
                raw == pretty(),
                !document.canonical || raw.len() <= 2,
                "{raw}"
            );
        }
        assert!(!RAW.get(), "the mode ends with the call");
    }

    #[test]
    fn indented_is_pretty_json_with_the_prefix_before_each_line() {
        let values = [
            json!({}),
            json!([]),
            json!("a\nb \"c\""),
            json!([[], {}, [[]], [{}], {"a": []}, {"a": {}}, 1, null]),
            json!({"b": [1, [2, [3, {"c": {"d": [true, "e"]}}]], {}], "a": {"x": [], "y": "z"}}),
        ];
        for value in &values {
            for prefix in ["", "  > "] {
                let mut written = prefix.as_bytes().to_vec();
                let mut serializer = serde_json::Serializer::with_formatter(
                    &mut written,
                    Indented::new(prefix.as_bytes()),
                );
                value.serialize(&mut serializer).unwrap();
                let expected: Vec<String> = serde_json::to_string_pretty(value)
                    .unwrap()
                    .lines()
                    .map(|line| format!("{prefix}{line}"))
                    .collect();
                assert_eq!(
                    String::from_utf8(written).unwrap(),
                    expected.join("\n"),
                    "{value}"
                );
            }
        }
    }

    #[test]
    fn the_iam_size_skips_the_whitespace_char_names_ascii_or_not() {
        // Longer than one counting chunk (255 bytes), every kind of ASCII whitespace in it.
        let long = format!("{{\"a\": \"{}\"}}", "x \t\n\u{0b}\u{0c}\r".repeat(300));
        for text in [
            "{\"a\": [1, 2]}",
            "{\t\"a\":\u{0b}\"b c\"\r\n}",
            "{\"é\": \"\u{2003}x\"}",
            &long,
        ] {
            let expected = text.chars().filter(|c| !c.is_whitespace()).count();
            assert_eq!(
                PolicyDocument::from_text(text).iam_size(),
                expected,
                "{text:?}"
            );
        }
    }

    use super::*;

    fn perm(action: &str, resource: &str) -> Permission {
        Permission {
            action: action.into(),
            resource: resource.into(),
        }
    }

    /// Statements grouped through ordered maps and sets, as sets of actions order.
    fn grouped_through_sets(permissions: &[Permission]) -> Vec<Statement> {
        use std::collections::{BTreeMap, BTreeSet};
        let mut by_resource: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for p in permissions {
            by_resource
                .entry(&p.resource)
                .or_default()
                .insert(&p.action);
        }
        let mut by_actions: BTreeMap<BTreeSet<&str>, BTreeSet<&str>> = BTreeMap::new();
        for (resource, actions) in by_resource {
            by_actions.entry(actions).or_default().insert(resource);
        }
        by_actions
            .into_iter()
            .map(|(actions, resources)| Statement {
                actions: actions.into_iter().map(str::to_owned).collect(),
                resources: resources.into_iter().map(str::to_owned).collect(),
                effect: Effect::Allow,
            })
            .collect()
    }

    #[test]
    fn statements_are_grouped_as_sets_of_actions_order_for_every_small_grant() {
        // Every subset of these grants, twice over in reverse: lists of actions that are
        // prefixes of others, shared and unshared, repeated grants.
        let universe = [
            perm("a:x", "r1"),
            perm("a:x", "r2"),
            perm("a:y", "r1"),
            perm("a:y", "r3"),
            perm("b:z", "r2"),
            perm("a:x", "r3"),
            perm("b:z", "r1"),
        ];
        for bits in 0u32..(1 << universe.len()) {
            let mut chosen: Vec<Permission> = (0..universe.len())
                .filter(|i| bits >> i & 1 == 1)
                .map(|i| universe[i].clone())
                .collect();
            chosen.extend(chosen.clone().into_iter().rev());
            assert_eq!(
                permission_statements(chosen.iter().cloned()),
                grouped_through_sets(&chosen),
                "{chosen:?}"
            );
        }
    }

    #[test]
    fn resources_with_the_same_actions_share_a_statement() {
        let perms = [
            perm("s3:GetObject", "arn:aws:s3:::b/*"),
            perm("s3:GetObject", "arn:aws:s3:::a/*"),
            perm("dynamodb:GetItem", "arn:aws:dynamodb:eu-west-2:1:table/t"),
            perm("s3:GetObject", "arn:aws:s3:::a/*"),
        ];
        let statements = permission_statements(perms.iter().cloned());
        assert_eq!(
            statements,
            vec![
                Statement {
                    actions: vec!["dynamodb:GetItem".into()],
                    resources: vec!["arn:aws:dynamodb:eu-west-2:1:table/t".into()],
                    effect: Effect::Allow,
                },
                Statement {
                    actions: vec!["s3:GetObject".into()],
                    resources: vec!["arn:aws:s3:::a/*".into(), "arn:aws:s3:::b/*".into()],
                    effect: Effect::Allow,
                },
            ]
        );
    }

    #[test]
    fn same_intents_give_the_same_bytes_in_any_order() {
        let a = [
            perm("ec2:A", "*"),
            perm("ec2:B", "*"),
            perm("s3:C", "arn:aws:s3:::x"),
        ];
        let b = [
            perm("s3:C", "arn:aws:s3:::x"),
            perm("ec2:B", "*"),
            perm("ec2:A", "*"),
        ];
        let doc = |p: &[Permission]| {
            PolicyDocument::from_statements(
                permission_statements(p.iter().cloned())
                    .iter()
                    .map(Statement::to_value)
                    .collect(),
            )
            .to_json()
        };
        assert_eq!(doc(&a), doc(&b));
        assert_eq!(
            doc(&a),
            r#"{"Statement":[{"Action":["ec2:A","ec2:B"],"Effect":"Allow","Resource":["*"]},{"Action":["s3:C"],"Effect":"Allow","Resource":["arn:aws:s3:::x"]}],"Version":"2012-10-17"}"#
        );
    }

    #[test]
    fn size_ignores_whitespace() {
        let doc = PolicyDocument::from_value(
            &json!({"Version": "2012-10-17", "Statement": [{"Sid": "a b"}]}),
        );
        assert_eq!(doc.iam_size(), doc.to_json().len() - 1);
        let spaced = PolicyDocument::from_text(
            "{ \"Version\" : \"2012-10-17\" ,\n \"Statement\": [{\"Sid\": \"a b\"}] }",
        );
        assert_eq!(spaced.iam_size(), doc.iam_size());
    }

    #[test]
    fn encoded_text_decodes_and_compares_by_meaning() {
        let ours = PolicyDocument::from_value(
            &json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["*"]}]}),
        );
        let theirs = PolicyDocument::from_text(
            "%7B%22Statement%22%3A%7B%22Resource%22%3A%22%2A%22%2C%22Action%22%3A%22s3%3AGetObject%22%2C%22Effect%22%3A%22Allow%22%7D%2C%22Version%22%3A%222012-10-17%22%7D",
        );
        assert!(ours.same_meaning(&theirs));
        assert_eq!(theirs.value()["Statement"]["Action"], "s3:GetObject");
        assert_eq!(
            ours.iam_size(),
            PolicyDocument::from_text(ours.to_json()).iam_size()
        );
        let serialized = serde_json::to_value(&theirs).unwrap();
        assert_eq!(serialized["Statement"]["Resource"], "*");
        let back: PolicyDocument = serde_json::from_value(serialized).unwrap();
        assert!(back.same_meaning(&ours));
    }
}
