//! The text form of a plan, in the manner of `terraform plan`: `+` create, `~` update with a
//! document diff, `-` delete, grouped by workload.

use eks_intents::model::{ObservedState, RoleName};
use eks_intents::plan::{Action, Plan, WorkloadState};
use eks_intents::policy::{PolicyDocument, display_form};
use std::fmt::Write;

pub fn text(plan: &Plan, observed: &ObservedState) -> String {
    let mut out = String::new();
    let cluster = &observed.cluster.cluster;
    let _ = writeln!(
        out,
        "Cluster {} (account {}, region {})\n",
        cluster.name, cluster.account, cluster.region
    );

    let cluster_wide: Vec<&Action> = plan.actions.iter().filter(|a| a.role().is_none()).collect();
    for action in cluster_wide {
        write_action(&mut out, action, observed, "  ");
    }

    let mut shown_roles: Vec<&RoleName> = Vec::new();
    for workload in &plan.workloads {
        let _ = write!(out, "\n{}/{}", workload.namespace, workload.workload);
        if let Some(sa) = &workload.service_account {
            let _ = write!(out, " runs as ServiceAccount {sa}");
        }
        let _ = writeln!(out, ": {:?}", workload.state);
        if let (Some(role), Some(arn)) = (&workload.role, &workload.role_arn) {
            let binding = workload
                .binding
                .as_ref()
                .map(|b| format!(", bound by {b}"))
                .unwrap_or_default();
            let _ = writeln!(out, "  role {arn}{binding}");
            if shown_roles.contains(&role) {
                let _ = writeln!(
                    out,
                    "  (changes shown above, with the role's other workload)"
                );
                continue;
            }
            shown_roles.push(role);
            if workload.state != WorkloadState::Changing && workload.state != WorkloadState::Ready {
                let _ = writeln!(out, "  {}", workload.message);
            }
            for action in plan.actions.iter().filter(|a| a.role() == Some(role)) {
                write_action(&mut out, action, observed, "  ");
            }
        } else {
            let _ = writeln!(out, "  {}", workload.message);
        }
    }

    for orphan in &plan.orphans {
        let _ = writeln!(
            out,
            "\nrole {} ({:?}): {}",
            orphan.arn, orphan.state, orphan.message
        );
        for action in plan
            .actions
            .iter()
            .filter(|a| a.role() == Some(&orphan.role))
        {
            write_action(&mut out, action, observed, "  ");
        }
    }
    for warning in &plan.warnings {
        let _ = writeln!(out, "\nwarning: {warning}");
    }

    let count = |sign| plan.actions.iter().filter(|a| a.sign() == sign).count();
    let _ = writeln!(out);
    let waiting: Vec<String> = [
        WorkloadState::Error,
        WorkloadState::Held,
        WorkloadState::Pending,
    ]
    .into_iter()
    .filter_map(|state| {
        let n = plan.workloads.iter().filter(|w| w.state == state).count();
        (n > 0).then(|| format!("{n} {state:?}"))
    })
    .collect();
    if plan.is_empty() && waiting.is_empty() {
        let _ = writeln!(
            out,
            "No changes. IAM, EKS and the cluster match the intents."
        );
    } else if plan.is_empty() {
        // Nothing to do is not the same as everything granted: say which workloads are not.
        let _ = writeln!(
            out,
            "No changes, but not every workload is Ready ({}): see above.",
            waiting.join(", ")
        );
    } else {
        let _ = writeln!(
            out,
            "Plan: {} to add, {} to change, {} to remove.",
            count('+'),
            count('~'),
            count('-')
        );
    }
    out
}

fn write_action(out: &mut String, action: &Action, observed: &ObservedState, indent: &str) {
    let _ = writeln!(out, "{indent}{} {action}", action.sign());
    let deeper = format!("{indent}    ");
    match action {
        Action::CreateRole {
            trust_policy,
            permissions_boundary,
            tags,
            ..
        } => {
            let _ = writeln!(out, "{deeper}trust policy:");
            write_document(out, trust_policy, &deeper);
            if let Some(boundary) = permissions_boundary {
                let _ = writeln!(out, "{deeper}permissions boundary: {boundary}");
            }
            let tags: Vec<String> = tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = writeln!(out, "{deeper}tags: {}", tags.join(", "));
        }
        Action::PutInlinePolicy {
            role,
            policy_name,
            document,
        } => {
            let current =
                find_role(observed, role).and_then(|r| r.inline_policies.get(policy_name));
            write_change(out, current, document, &deeper);
        }
        Action::UpdateTrustPolicy { role, trust_policy } => {
            let current = find_role(observed, role).map(|r| &r.trust_policy);
            write_change(out, current, trust_policy, &deeper);
        }
        Action::CreateManagedPolicy { document, .. } => write_document(out, document, &deeper),
        Action::UpdateManagedPolicy { arn, document, .. } => {
            let current = observed
                .managed_policies
                .iter()
                .find(|p| p.arn == *arn)
                .map(|p| &p.document);
            write_change(out, current, document, &deeper);
        }
        _ => {}
    }
}

fn find_role<'a>(
    observed: &'a ObservedState,
    role: &RoleName,
) -> Option<&'a eks_intents::model::ObservedRole> {
    observed
        .roles
        .iter()
        .find(|r| r.name.as_str().eq_ignore_ascii_case(role.as_str()))
}

fn pretty(document: &PolicyDocument) -> Vec<String> {
    serde_json::to_string_pretty(&display_form(&document.value()))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_document(out: &mut String, document: &PolicyDocument, indent: &str) {
    for line in pretty(document) {
        let _ = writeln!(out, "{indent}  {line}");
    }
}

/// The new document, or a line diff against the current one (both in canonical form, so
/// the diff shows meaning, not IAM's spelling).
fn write_change(
    out: &mut String,
    current: Option<&PolicyDocument>,
    new: &PolicyDocument,
    indent: &str,
) {
    let Some(current) = current else {
        write_document(out, new, indent);
        return;
    };
    for (sign, line) in diff(&pretty(current), &pretty(new)) {
        let _ = writeln!(out, "{indent}{sign} {line}");
    }
}

/// A longest-common-subsequence line diff; documents are small.
fn diff<'a>(old: &'a [String], new: &'a [String]) -> Vec<(char, &'a str)> {
    let (n, m) = (old.len(), new.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if old[i] == new[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < n || j < m {
        if i < n && j < m && old[i] == new[j] {
            out.push((' ', old[i].as_str()));
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push(('+', new[j].as_str()));
            j += 1;
        } else {
            out.push(('-', old[i].as_str()));
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_marks_added_and_removed_lines() {
        let old: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let new: Vec<String> = ["a", "x", "c", "d"].map(String::from).to_vec();
        assert_eq!(
            diff(&old, &new),
            vec![(' ', "a"), ('+', "x"), ('-', "b"), (' ', "c"), ('+', "d")]
        );
    }
}
