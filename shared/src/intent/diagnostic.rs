//! What reading a bundle found worth telling, as one `Diagnostic`: its severity (an error that
//! keeps a document or the bundle from being used, a warning, a notice) and its place by file,
//! archive member, document, line and field, so a user can go straight to the spot.

use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

/// How much a diagnostic matters. Only an error fails a bundle.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Keeps a document (or the whole bundle) from being used.
    #[default]
    Error,
    /// Accepted, but almost certainly not what was meant (a grant that can never match, one
    /// on every resource).
    Warning,
    /// Read but deliberately not used (another kind of resource, a non-AWS call, ...).
    Notice,
}

impl Severity {
    /// The lists diagnostics are kept in (a report's errors, its notices) say the severity of
    /// their entries; only a warning, kept among the notices, writes its own.
    fn goes_without_saying(&self) -> bool {
        *self != Severity::Warning
    }
}

/// Where in a bundle a diagnostic points: as precise as what was read allows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Place {
    /// The S3 key or file path of the bundle.
    pub file: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// 1-based, counting the non-empty documents of the file or member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// A path like `spec.calls[2].awsActions[0]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl Place {
    /// The bundle as a whole.
    pub fn bundle(file: impl Into<String>) -> Self {
        Place {
            file: file.into(),
            ..Place::default()
        }
    }
}

/// One thing reading a bundle found. Serialized as its place and message, with the severity
/// only when its list does not say it (see [`Severity`]): the shape the status report and
/// `plan --output json` have always had.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    #[serde(default, skip_serializing_if = "Severity::goes_without_saying")]
    pub severity: Severity,
    #[serde(flatten)]
    pub place: Place,
    pub message: String,
}

impl Diagnostic {
    pub fn new(severity: Severity, place: Place, message: impl Into<String>) -> Self {
        Diagnostic {
            severity,
            place,
            message: message.into(),
        }
    }
}

/// `file[!member][:line]: [document N: ][field: ][warning: ]message`: a warning says so, an
/// error or a notice is told by where it is printed.
impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_located(f, &self.place)?;
        if self.severity == Severity::Warning {
            f.write_str("warning: ")?;
        }
        write_clean(f, &self.message)
    }
}

impl std::error::Error for Diagnostic {}

/// Reads a list of notices: an entry that names no severity is a notice, the list's own, not
/// the default error (only a warning writes its severity).
pub(super) fn notices<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<Diagnostic>, D::Error> {
    let mut list = Vec::<Diagnostic>::deserialize(deserializer)?;
    for diagnostic in &mut list {
        if diagnostic.severity == Severity::Error {
            diagnostic.severity = Severity::Notice;
        }
    }
    Ok(list)
}

/// `file[!member][:line]: [document N: ][field: ]`, the shape compilers use, so editors and
/// CI annotations can jump to the line.
fn write_located(f: &mut fmt::Formatter<'_>, place: &Place) -> fmt::Result {
    // Keys and member names come from uploads: never let them write control characters to
    // a terminal or split a log line.
    write_clean(f, &place.file)?;
    if let Some(member) = &place.member {
        f.write_str("!")?;
        write_clean(f, member)?;
    }
    if let Some(line) = place.line {
        write!(f, ":{line}")?;
    }
    f.write_str(": ")?;
    if let Some(document) = place.document {
        write!(f, "document {document}: ")?;
    }
    if let Some(field) = &place.field {
        write!(f, "{field}: ")?;
    }
    Ok(())
}

fn write_clean(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    for c in text.chars() {
        if c.is_control() {
            write!(f, "{}", c.escape_default())?;
        } else {
            write!(f, "{c}")?;
        }
    }
    Ok(())
}

/// How many characters of a user's value a message repeats: enough to recognise it.
const ECHO_MAX: usize = 120;

/// A value from an upload, as messages repeat it: whole when short, else its first
/// [`ECHO_MAX`] characters and how long it was, so a 20,000-character ARN cannot flood a
/// terminal, a log line or the status report. `{}` writes it as is, `{:?}` quoted. Every
/// message that repeats a user's value goes through this.
#[derive(Clone, Copy)]
pub struct Echo<'a>(&'a str);

pub fn echo(value: &str) -> Echo<'_> {
    Echo(value)
}

impl Echo<'_> {
    /// The part shown, and the whole length in characters when it is cut.
    fn cut(&self) -> (&str, Option<usize>) {
        match self.0.char_indices().nth(ECHO_MAX) {
            Some((end, _)) => (&self.0[..end], Some(self.0.chars().count())),
            None => (self.0, None),
        }
    }
}

impl fmt::Display for Echo<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.cut() {
            (shown, Some(total)) => write!(f, "{shown}… ({total} characters)"),
            (shown, None) => f.write_str(shown),
        }
    }
}

impl fmt::Debug for Echo<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.cut() {
            (shown, Some(total)) => write!(f, "{shown:?}… ({total} characters)"),
            (shown, None) => write!(f, "{shown:?}"),
        }
    }
}

/// Where in a bundle something was found, down to the document; line and field are added per
/// message.
#[derive(Clone, Debug)]
pub(super) struct Origin {
    pub file: String,
    pub member: Option<String>,
    pub document: Option<usize>,
}

impl Origin {
    /// A diagnostic at `line` and `field` of this origin (an empty field names none).
    pub fn diagnostic(
        &self,
        severity: Severity,
        line: Option<u64>,
        field: Option<&str>,
        message: impl Into<String>,
    ) -> Diagnostic {
        let place = Place {
            file: self.file.clone(),
            member: self.member.clone(),
            document: self.document,
            line,
            field: field.filter(|f| !f.is_empty()).map(str::to_owned),
        };
        Diagnostic::new(severity, place, message)
    }

    pub fn error(
        &self,
        line: Option<u64>,
        field: Option<&str>,
        message: impl Into<String>,
    ) -> Diagnostic {
        self.diagnostic(Severity::Error, line, field, message)
    }

    pub fn notice(
        &self,
        line: Option<u64>,
        field: Option<&str>,
        message: impl Into<String>,
    ) -> Diagnostic {
        self.diagnostic(Severity::Notice, line, field, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(member: Option<&str>, document: Option<usize>, line: Option<u64>) -> Diagnostic {
        Diagnostic::new(
            Severity::Error,
            Place {
                file: "joke.yaml".into(),
                member: member.map(str::to_owned),
                document,
                line,
                field: Some("spec.calls[0].awsActions[1]".into()),
            },
            "expected a string like \"service:Action\", found a number",
        )
    }

    #[test]
    fn display_places_the_error_like_a_compiler() {
        assert_eq!(
            error(None, Some(2), Some(12)).to_string(),
            "joke.yaml:12: document 2: spec.calls[0].awsActions[1]: expected a string like \
             \"service:Action\", found a number"
        );
        assert_eq!(
            error(Some("team/a.yaml"), Some(1), Some(3)).to_string(),
            "joke.yaml!team/a.yaml:3: document 1: spec.calls[0].awsActions[1]: expected a \
             string like \"service:Action\", found a number"
        );
        let mut bare = error(None, None, None);
        bare.place.field = None;
        assert_eq!(
            bare.to_string(),
            "joke.yaml: expected a string like \"service:Action\", found a number"
        );
    }

    #[test]
    fn a_warning_says_so_after_its_place() {
        let mut warning = error(None, Some(1), Some(11));
        warning.severity = Severity::Warning;
        warning.message = "jokes/w is granted s3:GetObject on every resource".into();
        assert_eq!(
            warning.to_string(),
            "joke.yaml:11: document 1: spec.calls[0].awsActions[1]: warning: jokes/w is granted \
             s3:GetObject on every resource"
        );
        let mut notice = warning.clone();
        notice.severity = Severity::Notice;
        assert!(!notice.to_string().contains("warning"), "{notice}");
    }

    #[test]
    fn only_a_warning_writes_its_severity() {
        let shown = serde_json::to_value(error(None, Some(2), Some(12))).unwrap();
        assert_eq!(
            shown,
            serde_json::json!({
                "file": "joke.yaml",
                "document": 2,
                "line": 12,
                "field": "spec.calls[0].awsActions[1]",
                "message": "expected a string like \"service:Action\", found a number",
            })
        );
        let mut warning = error(None, None, None);
        warning.severity = Severity::Warning;
        let written = serde_json::to_value(&warning).unwrap();
        assert_eq!(written["severity"], "warning");
        let read: Diagnostic = serde_json::from_value(written).unwrap();
        assert_eq!(read, warning);
    }

    #[test]
    fn a_list_of_notices_reads_its_entries_as_notices() {
        #[derive(Deserialize)]
        struct List {
            #[serde(deserialize_with = "notices")]
            notices: Vec<Diagnostic>,
        }
        let list: List = serde_json::from_value(serde_json::json!({"notices": [
            {"file": "a.yaml", "message": "skipped"},
            {"file": "a.yaml", "message": "odd", "severity": "warning"},
        ]}))
        .unwrap();
        let severities: Vec<Severity> = list.notices.iter().map(|n| n.severity).collect();
        assert_eq!(severities, [Severity::Notice, Severity::Warning]);
    }

    #[test]
    fn long_values_are_cut_when_echoed() {
        assert_eq!(
            format!("{:?}", echo("arn:aws:s3:::b")),
            "\"arn:aws:s3:::b\""
        );
        assert_eq!(echo("short").to_string(), "short");
        let exact = "é".repeat(ECHO_MAX);
        assert_eq!(echo(&exact).to_string(), exact);
        let long = format!("arn:aws:s3:::{}", "é".repeat(20_000));
        let shown = format!("{:?}", echo(&long));
        assert!(shown.ends_with("\"… (20013 characters)"), "{shown}");
        assert_eq!(
            shown.chars().count(),
            ECHO_MAX + 2 + "… (20013 characters)".chars().count()
        );
        assert!(echo(&long).to_string().starts_with("arn:aws:s3:::éé"));
    }

    #[test]
    fn display_escapes_control_characters_from_uploads() {
        let notice = Diagnostic::new(
            Severity::Notice,
            Place {
                member: Some("a\nb.yaml".into()),
                ..Place::bundle("evil\x1b[31m.yaml")
            },
            "skipped",
        );
        let shown = notice.to_string();
        assert_eq!(shown, "evil\\u{1b}[31m.yaml!a\\nb.yaml: skipped");
    }
}
