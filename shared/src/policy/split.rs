//! Fitting a permission policy into IAM's quotas: one inline policy when it fits (two writes
//! for a new workload), otherwise managed-policy parts, each within the managed quota.

use super::document::{PolicyDocument, Statement};
use crate::model::IamQuotas;
use serde_json::Value;

/// Where a role's permissions go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PermissionLayout {
    /// No permissions: no policy at all.
    Empty,
    /// One inline policy.
    Inline(PolicyDocument),
    /// Managed policies attached to the role, in part order (part 1 first).
    Managed(Vec<PolicyDocument>),
}

impl PermissionLayout {
    /// The documents, in part order.
    pub fn documents(&self) -> &[PolicyDocument] {
        match self {
            PermissionLayout::Empty => &[],
            PermissionLayout::Inline(document) => std::slice::from_ref(document),
            PermissionLayout::Managed(parts) => parts,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error(
        "one action on one resource ({} on {}) does not fit in a managed policy of {limit} characters",
        crate::intent::echo(.action),
        crate::intent::echo(.resource)
    )]
    StatementTooLarge {
        action: String,
        resource: String,
        limit: usize,
    },
    #[error(
        "the permission policy needs {needed} managed policies of at most {limit} characters, more than the {allowed} that can be attached to a role; declare fewer actions or resources, use wildcards, or raise the quotas in the settings"
    )]
    TooManyParts {
        needed: usize,
        allowed: usize,
        limit: usize,
    },
}

/// Lays statements out within the quotas.
pub fn layout_permissions(
    statements: &[Statement],
    quotas: &IamQuotas,
) -> Result<PermissionLayout, SizeError> {
    if statements.is_empty() {
        return Ok(PermissionLayout::Empty);
    }
    let inline = PolicyDocument::allowing(statements);
    if inline.iam_size() <= quotas.inline_policy_chars {
        return Ok(PermissionLayout::Inline(inline));
    }
    let budget = quotas
        .managed_policy_chars
        .saturating_sub(PolicyDocument::allowing(&[]).iam_size());
    let mut pieces: Vec<(Statement, usize)> = Vec::new();
    for statement in statements {
        split_statement(statement, budget, quotas.managed_policy_chars, &mut pieces)?;
    }
    let mut parts: Vec<Vec<Statement>> = Vec::new();
    let mut used = 0;
    for (piece, size) in pieces {
        // A comma separates statements inside the list.
        match parts.last_mut() {
            Some(part) if used + 1 + size <= budget => {
                part.push(piece);
                used += 1 + size;
            }
            _ => {
                parts.push(vec![piece]);
                used = size;
            }
        }
    }
    if parts.len() > quotas.attached_policies {
        return Err(SizeError::TooManyParts {
            needed: parts.len(),
            allowed: quotas.attached_policies,
            limit: quotas.managed_policy_chars,
        });
    }
    Ok(PermissionLayout::Managed(
        parts.iter().map(|p| PolicyDocument::allowing(p)).collect(),
    ))
}

fn element_size(item: &str) -> usize {
    Value::String(item.to_owned())
        .to_string()
        .chars()
        .filter(|c| !c.is_whitespace())
        .count()
}

fn list_size(items: &[String]) -> usize {
    items.iter().map(|i| element_size(i) + 1).sum::<usize>() - usize::from(!items.is_empty())
}

/// Characters of `{"Action":[],"Effect":"","Resource":[]}`, without the effect's name.
const EMPTY_STATEMENT_SIZE: usize = 39;

fn statement_size(statement: &Statement) -> usize {
    EMPTY_STATEMENT_SIZE
        + statement.effect.as_str().len()
        + list_size(&statement.actions)
        + list_size(&statement.resources)
}

/// Cuts a statement that is too large for one managed policy into pieces that each fit, first
/// across its actions, then across its resources. Pushes each piece with its size.
fn split_statement(
    statement: &Statement,
    budget: usize,
    limit: usize,
    pieces: &mut Vec<(Statement, usize)>,
) -> Result<(), SizeError> {
    let size = statement_size(statement);
    if size <= budget {
        pieces.push((statement.clone(), size));
        return Ok(());
    }
    let widest_resource = statement
        .resources
        .iter()
        .max_by_key(|r| element_size(r))
        .cloned()
        .unwrap_or_default();
    let action_chunks = chunk(&statement.actions, budget, |actions| Statement {
        actions: actions.to_vec(),
        resources: vec![widest_resource.clone()],
        effect: statement.effect,
    });
    for actions in action_chunks {
        let resource_chunks = chunk(&statement.resources, budget, |resources| Statement {
            actions: actions.clone(),
            resources: resources.to_vec(),
            effect: statement.effect,
        });
        for resources in resource_chunks {
            let piece = Statement {
                actions: actions.clone(),
                resources,
                effect: statement.effect,
            };
            let size = statement_size(&piece);
            if size > budget {
                return Err(SizeError::StatementTooLarge {
                    action: piece.actions.first().cloned().unwrap_or_default(),
                    resource: piece.resources.first().cloned().unwrap_or_default(),
                    limit,
                });
            }
            pieces.push((piece, size));
        }
    }
    Ok(())
}

/// Greedy chunks of `items` such that `make(chunk)` fits in `budget`; a lone item that does not
/// fit still forms a chunk (the caller reports it).
fn chunk(
    items: &[String],
    budget: usize,
    make: impl Fn(&[String]) -> Statement,
) -> Vec<Vec<String>> {
    let mut chunks: Vec<Vec<String>> = Vec::new();
    let mut current: Vec<String> = Vec::new();
    for item in items {
        current.push(item.clone());
        if current.len() > 1 && statement_size(&make(&current)) > budget {
            current.pop();
            chunks.push(std::mem::take(&mut current));
            current.push(item.clone());
        }
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::super::document::Effect;
    use super::*;

    fn statement(actions: &[String], resources: &[String]) -> Statement {
        Statement {
            actions: actions.to_vec(),
            resources: resources.to_vec(),
            effect: Effect::Allow,
        }
    }

    fn actions(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("dynamodb:Action{i:04}")).collect()
    }

    #[test]
    fn empty_statement_size_is_right() {
        for effect in [Effect::Allow, Effect::Deny] {
            let empty = Statement {
                effect,
                ..statement(&[], &[])
            };
            assert_eq!(
                PolicyDocument::from_value(&empty.to_value()).iam_size(),
                statement_size(&empty)
            );
        }
    }

    #[test]
    fn statement_size_matches_the_serialized_size() {
        let s = statement(&actions(3), &["*".into(), "arn:aws:s3:::a\"b".into()]);
        assert_eq!(
            statement_size(&s),
            PolicyDocument::from_value(&s.to_value()).iam_size()
        );
    }

    #[test]
    fn small_policies_stay_inline() {
        let layout = layout_permissions(
            &[statement(&actions(5), &["*".into()])],
            &IamQuotas::default(),
        )
        .unwrap();
        assert!(matches!(layout, PermissionLayout::Inline(_)));
    }

    #[test]
    fn large_policies_split_into_parts_within_quota_holding_every_action() {
        let quotas = IamQuotas::default();
        let all = actions(600);
        let layout = layout_permissions(&[statement(&all, &["*".into()])], &quotas).unwrap();
        let PermissionLayout::Managed(parts) = layout else {
            panic!("expected managed parts, got {layout:?}");
        };
        assert!(parts.len() > 1);
        let mut seen = Vec::new();
        for part in &parts {
            assert!(
                part.iam_size() <= quotas.managed_policy_chars,
                "{}",
                part.iam_size()
            );
            for s in part.value()["Statement"].as_array().unwrap() {
                for a in s["Action"].as_array().unwrap() {
                    seen.push(a.as_str().unwrap().to_owned());
                }
            }
        }
        assert_eq!(seen, all);
    }

    #[test]
    fn too_many_parts_is_an_error() {
        let quotas = IamQuotas {
            attached_policies: 2,
            ..IamQuotas::default()
        };
        let err =
            layout_permissions(&[statement(&actions(2000), &["*".into()])], &quotas).unwrap_err();
        assert!(
            matches!(err, SizeError::TooManyParts { allowed: 2, .. }),
            "{err}"
        );
    }

    #[test]
    fn an_unsplittable_statement_is_an_error() {
        let quotas = IamQuotas {
            inline_policy_chars: 100,
            managed_policy_chars: 100,
            ..IamQuotas::default()
        };
        let err = layout_permissions(
            &[statement(
                &actions(1),
                &[format!("arn:aws:s3:::{}", "x".repeat(200))],
            )],
            &quotas,
        )
        .unwrap_err();
        assert!(matches!(err, SizeError::StatementTooLarge { .. }), "{err}");
    }

    #[test]
    fn many_resources_split_across_parts() {
        let quotas = IamQuotas::default();
        let resources: Vec<String> = (0..400)
            .map(|i| format!("arn:aws:s3:::bucket-{i:04}/*"))
            .collect();
        let layout =
            layout_permissions(&[statement(&["s3:GetObject".into()], &resources)], &quotas)
                .unwrap();
        let PermissionLayout::Managed(parts) = layout else {
            panic!("expected managed parts");
        };
        let total: usize = parts
            .iter()
            .flat_map(|p| p.value()["Statement"].as_array().unwrap().clone())
            .map(|s| s["Resource"].as_array().unwrap().len())
            .sum();
        assert_eq!(total, 400);
        assert!(
            parts
                .iter()
                .all(|p| p.iam_size() <= quotas.managed_policy_chars)
        );
    }
}
