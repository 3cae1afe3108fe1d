//! Policy documents as the system writes them: deterministic and minimal, so the same intents
//! always give the same bytes.

use super::normalize::{canonical_json, normalize};
use crate::model::Permission;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// An IAM policy document. Holds the JSON as written or as IAM returned it (an object, or a
/// string that may still be percent-encoded); compare with [`PolicyDocument::same_meaning`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PolicyDocument(pub Value);

impl PolicyDocument {
    pub const VERSION: &'static str = "2012-10-17";

    /// A document with the current policy language version and these statements.
    pub fn from_statements(statements: Vec<Value>) -> Self {
        PolicyDocument(json!({ "Version": Self::VERSION, "Statement": statements }))
    }

    /// True when both documents grant the same thing, however IAM spelled them.
    pub fn same_meaning(&self, other: &PolicyDocument) -> bool {
        normalize(&self.0) == normalize(&other.0)
    }

    /// The compact JSON text sent to IAM (keys in a fixed order).
    pub fn to_json(&self) -> String {
        canonical_json(&self.0)
    }

    /// Size as IAM counts it against its quotas: characters, whitespace not counted.
    pub fn iam_size(&self) -> usize {
        self.to_json()
            .chars()
            .filter(|c| !c.is_whitespace())
            .count()
    }
}

/// One Allow statement: these actions on these resources. Both lists are sorted and unique.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Statement {
    pub actions: Vec<String>,
    pub resources: Vec<String>,
}

impl Statement {
    pub fn to_value(&self) -> Value {
        json!({
            "Effect": "Allow",
            "Action": one_or_many(&self.actions),
            "Resource": one_or_many(&self.resources),
        })
    }
}

/// IAM accepts a scalar for a one-element list; lists are always written as lists so that the
/// shape of a document does not change when a second action is added.
fn one_or_many(items: &[String]) -> Value {
    Value::Array(items.iter().map(|s| Value::String(s.clone())).collect())
}

/// The fewest statements that grant exactly `permissions`: resources that need the same set of
/// actions share one statement. Deterministic: the order follows the sorted action sets.
pub fn permission_statements<'a>(
    permissions: impl IntoIterator<Item = &'a Permission>,
) -> Vec<Statement> {
    let mut actions_by_resource: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for permission in permissions {
        actions_by_resource
            .entry(permission.resource.as_str())
            .or_default()
            .insert(permission.action.as_str());
    }
    let mut resources_by_actions: BTreeMap<BTreeSet<&str>, BTreeSet<&str>> = BTreeMap::new();
    for (resource, actions) in actions_by_resource {
        resources_by_actions
            .entry(actions)
            .or_default()
            .insert(resource);
    }
    resources_by_actions
        .into_iter()
        .map(|(actions, resources)| Statement {
            actions: actions.into_iter().map(str::to_owned).collect(),
            resources: resources.into_iter().map(str::to_owned).collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm(action: &str, resource: &str) -> Permission {
        Permission {
            action: action.into(),
            resource: resource.into(),
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
        let statements = permission_statements(&perms);
        assert_eq!(
            statements,
            vec![
                Statement {
                    actions: vec!["dynamodb:GetItem".into()],
                    resources: vec!["arn:aws:dynamodb:eu-west-2:1:table/t".into()],
                },
                Statement {
                    actions: vec!["s3:GetObject".into()],
                    resources: vec!["arn:aws:s3:::a/*".into(), "arn:aws:s3:::b/*".into()],
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
                permission_statements(p)
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
        let doc = PolicyDocument(json!({"Version": "2012-10-17", "Statement": [{"Sid": "a b"}]}));
        assert_eq!(doc.iam_size(), doc.to_json().len() - 1);
    }
}
