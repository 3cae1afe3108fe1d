//! YAML text to trees that remember their lines. Files are split into documents by hand, so a
//! syntax error in one document does not hide the others; each document is then parsed by
//! serde-saphyr under a budget that stops resource-amplifying input.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::budget::BudgetBreach;
use serde_saphyr::{Error as SaphyrError, MessageFormatter, Spanned};
use std::fmt;

/// One document's text and where it starts in its file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Chunk<'t> {
    pub text: &'t str,
    /// 1-based line of the file on which `text` starts.
    pub first_line: u64,
}

/// Splits a YAML stream into its non-empty documents. A line that is `---` (alone or followed
/// by a space or tab) at column 0 starts a document, a `...` line ends one; YAML forbids both
/// inside any scalar, so the split agrees with the parser. Directives (`%YAML`) stay with the
/// document they precede.
pub(super) fn split_documents(text: &str) -> Vec<Chunk<'_>> {
    let mut chunks = Vec::new();
    let mut start = 0usize;
    let mut first_line = 1u64;
    let mut has_content = false;
    let mut has_directive = false;
    let mut has_marker = false;
    let mut offset = 0usize;
    let mut line_no = 0u64;

    for raw in text.split_inclusive('\n') {
        line_no += 1;
        let line_start = offset;
        offset += raw.len();
        let line = raw.trim_end_matches(['\n', '\r']);

        if let Some(rest) = marker_rest(line, "---") {
            if has_content {
                chunks.push(chunk(text, start, line_start, first_line));
            }
            if has_content || !has_directive {
                start = line_start;
                first_line = line_no;
            }
            has_content = !is_blank_or_comment(rest);
            has_directive = false;
            has_marker = true;
        } else if marker_rest(line, "...").is_some() {
            if has_content || has_directive {
                chunks.push(chunk(text, start, line_start, first_line));
            }
            start = offset;
            first_line = line_no + 1;
            has_content = false;
            has_directive = false;
            has_marker = false;
        } else if !has_content && !has_marker && line.starts_with('%') {
            has_directive = true;
        } else if !is_blank_or_comment(line) {
            has_content = true;
        }
    }
    // A directive with no document after it is broken YAML: let the parser say so.
    if has_content || has_directive {
        chunks.push(chunk(text, start, text.len(), first_line));
    }
    chunks
}

fn chunk(text: &str, start: usize, end: usize, first_line: u64) -> Chunk<'_> {
    Chunk {
        text: text.get(start..end).unwrap_or_default(),
        first_line,
    }
}

/// What follows a document marker on its line, if the line is that marker.
fn marker_rest<'l>(line: &'l str, marker: &str) -> Option<&'l str> {
    let rest = line.strip_prefix(marker)?;
    (rest.is_empty() || rest.starts_with([' ', '\t'])).then_some(rest)
}

fn is_blank_or_comment(line: &str) -> bool {
    let trimmed = line.trim_start_matches([' ', '\t']);
    trimmed.is_empty() || trimmed.starts_with('#')
}

/// A YAML value and the file line it was written on (for an alias: where the alias stands).
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Item {
    pub line: Option<u64>,
    pub node: Node,
}

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Node {
    Null,
    Bool(bool),
    /// Kept as text: no number is ever used, only reported as misplaced.
    Number(String),
    String(String),
    List(Vec<Item>),
    Map(Vec<Entry>),
}

#[derive(Clone, Debug, PartialEq)]
pub(super) struct Entry {
    pub key: Item,
    pub value: Item,
}

impl Node {
    /// How messages name what was found instead of what was expected.
    pub fn describe(&self) -> &'static str {
        match self {
            Node::Null => "null",
            Node::Bool(_) => "a boolean",
            Node::Number(_) => "a number",
            Node::String(_) => "a string",
            Node::List(_) => "a list",
            Node::Map(_) => "a mapping",
        }
    }

    /// The entry under a string key of a mapping.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        match self {
            Node::Map(entries) => entries
                .iter()
                .find(|entry| matches!(&entry.key.node, Node::String(k) if k == key)),
            _ => None,
        }
    }
}

impl Item {
    fn shift_lines(&mut self, by: u64) {
        self.line = self.line.map(|line| line.saturating_add(by));
        match &mut self.node {
            Node::List(items) => items.iter_mut().for_each(|item| item.shift_lines(by)),
            Node::Map(entries) => entries.iter_mut().for_each(|entry| {
                entry.key.shift_lines(by);
                entry.value.shift_lines(by);
            }),
            _ => {}
        }
    }

    fn count_nodes(&self) -> usize {
        match &self.node {
            Node::List(items) => items.iter().map(Item::count_nodes).sum::<usize>() + 1,
            Node::Map(entries) => {
                entries
                    .iter()
                    .map(|entry| entry.key.count_nodes() + entry.value.count_nodes())
                    .sum::<usize>()
                    + 1
            }
            _ => 1,
        }
    }
}

impl From<Spanned<Node>> for Item {
    fn from(spanned: Spanned<Node>) -> Self {
        let line = spanned.referenced.line();
        Item {
            line: (line > 0).then_some(line),
            node: spanned.value,
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Number(v.to_string()))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Node, E> {
        Ok(Node::Number(v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Number(v.to_string()))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Node, E> {
        Ok(Node::Number(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Number(v.to_string()))
    }
    fn visit_char<E: de::Error>(self, v: char) -> Result<Node, E> {
        Ok(Node::String(v.to_string()))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        Ok(Node::String(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
        Ok(Node::String(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Node, E> {
        Ok(Node::String(String::from_utf8_lossy(v).into_owned()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        Node::deserialize(deserializer)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        Node::deserialize(deserializer)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Node>>()? {
            items.push(Item::from(item));
        }
        Ok(Node::List(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<Node>>()? {
            let value = map.next_value::<Spanned<Node>>()?;
            entries.push(Entry {
                key: Item::from(key),
                value: Item::from(value),
            });
        }
        Ok(Node::Map(entries))
    }
}

/// The budget one document is parsed under.
#[derive(Clone, Copy, Debug)]
pub(super) struct Budget {
    /// Nodes left for the whole bundle.
    pub nodes_left: usize,
    /// The bundle's node limit, to name it in messages.
    pub max_nodes: usize,
    pub max_depth: usize,
    pub max_alias_replay: usize,
}

/// Anchors and aliases are rare in intents; a few hundred is generous and keeps the alias
/// checks cheap.
const MAX_ANCHORS: usize = 1_000;
const MAX_ALIASES: usize = 1_000;
const MAX_ALIAS_NESTING: usize = 32;

/// Why a document could not be parsed, with the file line when the parser knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct SyntaxError {
    pub line: Option<u64>,
    pub message: String,
    /// The bundle's node budget is spent: later documents cannot be read either.
    pub exhausted: bool,
}

/// Parses one document; lines of the result are file lines. Also returns how many nodes it
/// used, aliases expanded.
pub(super) fn parse_document(
    chunk: &Chunk<'_>,
    budget: &Budget,
) -> Result<(Item, usize), SyntaxError> {
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_nodes: budget.nodes_left,
            max_depth: budget.max_depth,
            max_anchors: MAX_ANCHORS,
            max_aliases: MAX_ALIASES,
            max_documents: 1,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: budget.max_alias_replay,
            max_replay_stack_depth: MAX_ALIAS_NESTING,
        },
        // A value like `.nan` in an unrelated document must not fail the bundle.
        non_finite_float_policy: serde_saphyr::NonFiniteFloatPolicy::AsString,
        with_snippet: false,
    };
    let offset = chunk.first_line.saturating_sub(1);
    match serde_saphyr::from_str_with_options::<Spanned<Node>>(chunk.text, options) {
        Ok(root) => {
            let mut item = Item::from(root);
            item.shift_lines(offset);
            let nodes = item.count_nodes();
            Ok((item, nodes))
        }
        Err(err) => Err(SyntaxError {
            exhausted: matches!(
                innermost(&err),
                SaphyrError::Budget {
                    breach: BudgetBreach::Nodes { .. },
                    ..
                }
            ),
            line: err
                .location()
                .map(|location| location.line())
                .filter(|line| *line > 0)
                .map(|line| line.saturating_add(offset)),
            message: describe(&err, budget),
        }),
    }
}

/// Says what went wrong in the user's terms: resource limits by what to change, syntax by
/// the parser's own words (without its chunk-relative position, which the caller replaces).
fn describe(err: &SaphyrError, budget: &Budget) -> String {
    match innermost(err) {
        SaphyrError::AliasReplayLimitExceeded { .. }
        | SaphyrError::AliasExpansionLimitExceeded { .. }
        | SaphyrError::AliasReplayStackDepthExceeded { .. }
        | SaphyrError::AliasReplayCounterOverflow { .. } => format!(
            "YAML aliases expand to more than {} parser events (an alias bomb?); write the \
             values out instead of repeating aliases",
            budget.max_alias_replay
        ),
        SaphyrError::Budget { breach, .. } => match breach {
            BudgetBreach::Nodes { .. } => format!(
                "the bundle holds more than {} YAML nodes (aliases counted as expanded); \
                 split it into several bundles",
                budget.max_nodes
            ),
            BudgetBreach::Depth { .. } => {
                format!("YAML is nested deeper than {} levels", budget.max_depth)
            }
            BudgetBreach::Aliases { .. }
            | BudgetBreach::Anchors { .. }
            | BudgetBreach::AliasAnchorRatio { .. } => format!(
                "too many YAML anchors or aliases (at most {MAX_ANCHORS} anchors and \
                 {MAX_ALIASES} aliases, and not many more aliases than anchors)"
            ),
            other => format!("YAML document is too large or too complex ({other:?})"),
        },
        // The parser's own words advise changing its options, which is no help to a user.
        SaphyrError::DuplicateMappingKey { key: Some(key), .. } => format!(
            "invalid YAML: key {:?} appears twice in this mapping",
            super::diagnostic::echo(key)
        ),
        SaphyrError::DuplicateMappingKey { key: None, .. } => {
            "invalid YAML: a key appears twice in this mapping".to_owned()
        }
        other => {
            let message = serde_saphyr::DefaultMessageFormatter.format_message(other);
            format!("invalid YAML: {message}")
        }
    }
}

/// The error itself, out of the wrappers that only add snippets or alias locations.
fn innermost(mut err: &SaphyrError) -> &SaphyrError {
    while let SaphyrError::WithSnippet { error, .. } | SaphyrError::AliasError { error, .. } = err {
        err = error;
    }
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget() -> Budget {
        Budget {
            nodes_left: 10_000,
            max_nodes: 10_000,
            max_depth: 32,
            max_alias_replay: 10_000,
        }
    }

    /// Parses `text` as a document of its own, from line 1.
    fn parse_text(text: &str, budget: &Budget) -> Result<(Item, usize), SyntaxError> {
        parse_document(
            &Chunk {
                text,
                first_line: 1,
            },
            budget,
        )
    }

    fn texts(input: &str) -> Vec<(u64, &str)> {
        split_documents(input)
            .into_iter()
            .map(|c| (c.first_line, c.text))
            .collect()
    }

    #[test]
    fn splits_on_markers_and_keeps_file_lines() {
        let input = "a: 1\n---\nb: 2\n--- # third\nc: 3\n";
        assert_eq!(
            texts(input),
            vec![
                (1, "a: 1\n"),
                (2, "---\nb: 2\n"),
                (4, "--- # third\nc: 3\n")
            ]
        );
    }

    #[test]
    fn skips_empty_and_comment_only_documents() {
        let input = "# header\n---\n\n---\n# nothing\n  # still nothing\n---\nx: 1\n---\n";
        assert_eq!(texts(input), vec![(7, "---\nx: 1\n")]);
        assert!(split_documents("").is_empty());
        assert!(split_documents("\n\n# c\n---\n...\n").is_empty());
    }

    #[test]
    fn inline_content_after_the_marker_counts() {
        assert_eq!(texts("--- {a: 1}\n---\n"), vec![(1, "--- {a: 1}\n")]);
        assert_eq!(texts("--- |\n text\n"), vec![(1, "--- |\n text\n")]);
    }

    #[test]
    fn only_column_zero_markers_split() {
        let input = "a: |\n  ---\n  text\nb: '---'\n----\n";
        assert_eq!(split_documents(input).len(), 1);
        assert_eq!(texts("a: 1\n---x\n").len(), 1);
    }

    #[test]
    fn end_markers_end_documents() {
        let input = "a: 1\n...\n# trailing\n---\nb: 2\n...\nc: 3\n";
        assert_eq!(
            texts(input),
            vec![(1, "a: 1\n"), (4, "---\nb: 2\n"), (7, "c: 3\n")]
        );
    }

    #[test]
    fn directives_stay_with_their_document() {
        let input = "a: 1\n...\n%YAML 1.2\n---\nb: 2\n";
        assert_eq!(
            texts(input),
            vec![(1, "a: 1\n"), (3, "%YAML 1.2\n---\nb: 2\n")]
        );
        assert_eq!(
            texts("%YAML 1.2\n---\nc: 3\n"),
            vec![(1, "%YAML 1.2\n---\nc: 3\n")]
        );
        let chunks = split_documents(input);
        let (item, _) = parse_document(&chunks[1], &budget()).unwrap();
        assert_eq!(item.node.get("b").and_then(|e| e.value.line), Some(5));
    }

    #[test]
    fn crlf_markers_split() {
        assert_eq!(
            texts("a: 1\r\n---\r\nb: 2\r\n"),
            vec![(1, "a: 1\r\n"), (2, "---\r\nb: 2\r\n")]
        );
    }

    #[test]
    fn parsed_lines_are_file_lines() {
        let input =
            "x: 0\n---\nspec:\n  calls:\n    - name: '*'\n      awsActions: [1, \"s3:Get\"]\n";
        let chunks = split_documents(input);
        let (item, nodes) = parse_document(&chunks[1], &budget()).unwrap();
        let spec = item.node.get("spec").unwrap();
        assert_eq!(spec.key.line, Some(3));
        let calls = spec.value.node.get("calls").unwrap();
        let Node::List(calls) = &calls.value.node else {
            panic!("calls")
        };
        assert_eq!(calls[0].line, Some(5));
        let actions = calls[0].node.get("awsActions").unwrap();
        let Node::List(actions) = &actions.value.node else {
            panic!("actions")
        };
        assert_eq!(
            actions[0],
            Item {
                line: Some(6),
                node: Node::Number("1".into())
            }
        );
        assert_eq!(actions[1].node, Node::String("s3:Get".into()));
        // root map, spec map, calls list, call map, 2 scalars, actions list, 2 items, 3 keys
        assert_eq!(nodes, 12);
    }

    #[test]
    fn syntax_errors_carry_file_lines() {
        let input = "a: 1\n---\nb: [1,\nc: d\n";
        let chunks = split_documents(input);
        let err = parse_document(&chunks[1], &budget()).unwrap_err();
        assert!(err.message.starts_with("invalid YAML: "), "{}", err.message);
        assert!(!err.message.contains("at line"), "{}", err.message);
        assert!(matches!(err.line, Some(3..=4)), "{err:?}");
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let chunk = Chunk {
            text: "a: 1\na: 2\n",
            first_line: 10,
        };
        let err = parse_document(&chunk, &budget()).unwrap_err();
        assert_eq!(
            err.message,
            "invalid YAML: key \"a\" appears twice in this mapping"
        );
        assert_eq!(err.line, Some(11));
    }

    #[test]
    fn alias_bombs_fail_fast_with_a_clear_message() {
        let mut bomb = String::from("a: &a [x,x,x,x,x,x,x,x,x,x]\n");
        for (name, prev) in [
            ("b", "a"),
            ("c", "b"),
            ("d", "c"),
            ("e", "d"),
            ("f", "e"),
            ("g", "f"),
            ("h", "g"),
            ("i", "h"),
        ] {
            let refs = vec![format!("*{prev}"); 10].join(",");
            bomb.push_str(&format!("{name}: &{name} [{refs}]\n"));
        }
        let generous = Budget {
            nodes_left: usize::MAX,
            max_nodes: usize::MAX,
            ..budget()
        };
        let err = parse_text(&bomb, &generous).unwrap_err();
        assert!(err.message.contains("alias bomb"), "{}", err.message);
        assert!(err.message.contains("10000"), "{}", err.message);
    }

    #[test]
    fn the_node_budget_covers_alias_expansion() {
        let text = "a: &a [x,x,x,x,x,x,x,x,x,x]\nb: [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n";
        let tight = Budget {
            nodes_left: 50,
            max_nodes: 500,
            ..budget()
        };
        let err = parse_text(text, &tight).unwrap_err();
        assert_eq!(
            err.message,
            "the bundle holds more than 500 YAML nodes (aliases counted as expanded); split it \
             into several bundles"
        );
        let (_, nodes) = parse_text(text, &budget()).unwrap();
        assert!(nodes > 110, "{nodes}");
    }

    #[test]
    fn deep_nesting_is_refused_without_overflowing_the_stack() {
        let budget = Budget {
            max_depth: 32,
            ..budget()
        };
        let deep = [
            format!("{}1", "- ".repeat(10_000)),
            format!("{}1{}", "[".repeat(33), "]".repeat(33)),
            format!("{}1{}", "{a: ".repeat(33), "}".repeat(33)),
            (0..40).map(|i| format!("{}a:\n", " ".repeat(i))).collect(),
        ];
        for text in deep {
            let err = parse_text(&text, &budget).unwrap_err();
            assert_eq!(err.message, "YAML is nested deeper than 32 levels");
        }
        // Unclosed or absurdly deep flow collections are refused by the parser itself.
        for text in ["[".repeat(100_000), "{a: ".repeat(50_000)] {
            let err = parse_text(&text, &budget).unwrap_err();
            assert!(err.message.starts_with("invalid YAML: "), "{}", err.message);
        }
        let fine = format!("{}1{}", "[".repeat(31), "]".repeat(31));
        assert!(parse_text(&fine, &budget).is_ok());
    }

    #[test]
    fn json_parses_as_yaml_with_lines() {
        let text = "{\n\t\"apiVersion\": \"v1\",\n\t\"items\": [\n\t\t{\"a\": 1.5}\n\t]\n}\n";
        let (item, _) = parse_text(text, &budget()).unwrap();
        let items = item.node.get("items").unwrap();
        assert_eq!(items.key.line, Some(3));
        let Node::List(list) = &items.value.node else {
            panic!("list")
        };
        assert_eq!(list[0].line, Some(4));
    }

    #[test]
    fn scalars_keep_their_yaml_types() {
        let text = "a: yes\nb: 0x10\nc: ~\nd: '12'\ne: .nan\nf:\n";
        let (item, _) = parse_text(text, &budget()).unwrap();
        let get = |k: &str| item.node.get(k).map(|e| e.value.node.clone());
        assert_eq!(get("a"), Some(Node::Bool(true)));
        assert_eq!(get("b"), Some(Node::Number("16".into())));
        assert_eq!(get("c"), Some(Node::Null));
        assert_eq!(get("d"), Some(Node::String("12".into())));
        assert_eq!(get("e"), Some(Node::String(".nan".into())));
        assert_eq!(get("f"), Some(Node::Null));
    }
}
