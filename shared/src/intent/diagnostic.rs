//! Errors and notices of bundle reading, each placed by file, archive member, document, line
//! and field, so a user can go straight to the spot.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A problem that keeps a document (or the whole bundle) from being used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntentError {
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
    pub message: String,
}

/// Something read but deliberately not used (another kind of resource, a non-AWS call, ...):
/// worth telling, never a failure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub file: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for IntentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_located(
            f,
            &self.file,
            self.member.as_deref(),
            self.document,
            self.line,
            self.field.as_deref(),
            &self.message,
        )
    }
}

impl std::error::Error for IntentError {}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_located(
            f,
            &self.file,
            self.member.as_deref(),
            self.document,
            self.line,
            self.field.as_deref(),
            &self.message,
        )
    }
}

/// `file[!member][:line]: [document N: ][field: ]message`, the shape compilers use, so editors
/// and CI annotations can jump to the line.
fn write_located(
    f: &mut fmt::Formatter<'_>,
    file: &str,
    member: Option<&str>,
    document: Option<usize>,
    line: Option<u64>,
    field: Option<&str>,
    message: &str,
) -> fmt::Result {
    // Keys and member names come from uploads: never let them write control characters to
    // a terminal or split a log line.
    write_clean(f, file)?;
    if let Some(member) = member {
        f.write_str("!")?;
        write_clean(f, member)?;
    }
    if let Some(line) = line {
        write!(f, ":{line}")?;
    }
    f.write_str(": ")?;
    if let Some(document) = document {
        write!(f, "document {document}: ")?;
    }
    if let Some(field) = field {
        write!(f, "{field}: ")?;
    }
    write_clean(f, message)
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
    pub fn error(
        &self,
        line: Option<u64>,
        field: Option<&str>,
        message: impl Into<String>,
    ) -> IntentError {
        IntentError {
            file: self.file.clone(),
            member: self.member.clone(),
            document: self.document,
            line,
            field: field.filter(|f| !f.is_empty()).map(str::to_owned),
            message: message.into(),
        }
    }

    pub fn notice(
        &self,
        line: Option<u64>,
        field: Option<&str>,
        message: impl Into<String>,
    ) -> Notice {
        Notice {
            file: self.file.clone(),
            member: self.member.clone(),
            document: self.document,
            line,
            field: field.filter(|f| !f.is_empty()).map(str::to_owned),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(member: Option<&str>, document: Option<usize>, line: Option<u64>) -> IntentError {
        IntentError {
            file: "joke.yaml".into(),
            member: member.map(str::to_owned),
            document,
            line,
            field: Some("spec.calls[0].awsActions[1]".into()),
            message: "expected a string like \"service:Action\", found a number".into(),
        }
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
        let bare = IntentError {
            field: None,
            ..error(None, None, None)
        };
        assert_eq!(
            bare.to_string(),
            "joke.yaml: expected a string like \"service:Action\", found a number"
        );
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
        let notice = Notice {
            file: "evil\x1b[31m.yaml".into(),
            member: Some("a\nb.yaml".into()),
            document: None,
            line: None,
            field: None,
            message: "skipped".into(),
        };
        let shown = notice.to_string();
        assert_eq!(shown, "evil\\u{1b}[31m.yaml!a\\nb.yaml: skipped");
    }
}
