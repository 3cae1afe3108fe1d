//! The forms of a plan: text in the manner of `terraform plan` (`+` create, `~` update with a
//! document diff, `-` delete, grouped by workload) and JSON. Both are written as they are made,
//! in one pass over the plan with its actions and the observed documents indexed by name, so a
//! fleet's plan takes time in proportion to its size and memory for one entry at a time.

use eks_intents::intent::Diagnostic;
use eks_intents::model::{BindingMode, ObservedRole, ObservedState, RoleKey, RoleName};
use eks_intents::plan::{Action, Plan, WorkloadState};
use eks_intents::policy::{Indented, PolicyDocument};
use serde::ser::{Error as _, SerializeSeq};
use serde::{Serialize, Serializer};
use std::collections::{HashMap, HashSet};
use std::io::{self, Write};

/// The observed documents that changes are shown against, by name.
struct Current<'a> {
    /// By key, as IAM role names are case-insensitive; the first of a name.
    roles: HashMap<RoleKey, &'a ObservedRole>,
    /// Managed policies by ARN; the first of an ARN.
    managed: HashMap<&'a str, &'a PolicyDocument>,
}

impl<'a> Current<'a> {
    fn of(observed: &'a ObservedState) -> Self {
        let mut roles = HashMap::with_capacity(observed.roles.len());
        for role in &observed.roles {
            roles.entry(role.name.key()).or_insert(role);
        }
        let mut managed = HashMap::with_capacity(observed.managed_policies.len());
        for policy in &observed.managed_policies {
            managed
                .entry(policy.arn.as_str())
                .or_insert(&policy.document);
        }
        Current { roles, managed }
    }

    fn role(&self, role: &RoleName) -> Option<&'a ObservedRole> {
        // No key made where there is nothing to find (an account without roles yet).
        if self.roles.is_empty() {
            return None;
        }
        self.roles.get(&role.key()).copied()
    }
}

pub fn text(plan: &Plan, observed: &ObservedState, out: &mut impl Write) -> io::Result<()> {
    let cluster = &observed.cluster.cluster;
    writeln!(
        out,
        "Cluster {} (account {}, region {})\n",
        cluster.name, cluster.account, cluster.region
    )?;

    let current = Current::of(observed);
    // Cluster-wide actions come first, in plan order; the others are shown with their role.
    let mut by_role: HashMap<&RoleName, Vec<&Action>> =
        HashMap::with_capacity(plan.workloads.len());
    for action in &plan.actions {
        match action.role() {
            None => write_action(out, action, &current)?,
            Some(role) => by_role.entry(role).or_default().push(action),
        }
    }
    let actions_of = |role: &RoleName| by_role.get(role).into_iter().flatten().copied();

    let mut shown_roles: HashSet<&RoleName> = HashSet::with_capacity(plan.workloads.len());
    for workload in &plan.workloads {
        // Written in parts, not formatted: a fleet's plan has tens of thousands of these lines.
        let identity = &workload.identity;
        put(
            out,
            &[
                "\n",
                identity.namespace.as_str(),
                "/",
                identity.workload.as_str(),
            ],
        )?;
        if let Some(sa) = &identity.service_account {
            put(
                out,
                &[
                    " runs as ServiceAccount ",
                    sa.namespace.as_str(),
                    "/",
                    sa.name.as_str(),
                ],
            )?;
        }
        writeln!(out, ": {:?}", workload.state)?;
        if let (Some(role), Some(arn)) = (&workload.role, &identity.role_arn) {
            put(out, &["  role ", arn.as_str()])?;
            if let Some(binding) = &workload.identity.binding {
                write!(out, ", bound by {binding}")?;
            }
            writeln!(out)?;
            if !shown_roles.insert(role) {
                writeln!(
                    out,
                    "  (changes shown above, with the role's other workload)"
                )?;
                continue;
            }
            if workload.state != WorkloadState::Changing && workload.state != WorkloadState::Ready {
                writeln!(out, "  {}", workload.outcome)?;
            }
            for action in actions_of(role) {
                write_action(out, action, &current)?;
            }
        } else {
            writeln!(out, "  {}", workload.outcome)?;
        }
    }

    for orphan in &plan.orphans {
        writeln!(
            out,
            "\nrole {} ({:?}): {}",
            orphan.arn, orphan.state, orphan.message
        )?;
        for action in actions_of(&orphan.role) {
            write_action(out, action, &current)?;
        }
    }
    for warning in &plan.warnings {
        writeln!(out, "\nwarning: {warning}")?;
    }

    writeln!(out)?;
    let mut counts = HashMap::new();
    for action in &plan.actions {
        *counts.entry(action.sign()).or_insert(0usize) += 1;
    }
    let count = |sign| counts.get(&sign).copied().unwrap_or(0);
    let mut by_state = HashMap::new();
    for workload in &plan.workloads {
        *by_state.entry(workload.state).or_insert(0usize) += 1;
    }
    let waiting: Vec<String> = [
        WorkloadState::Error,
        WorkloadState::Held,
        WorkloadState::Pending,
    ]
    .into_iter()
    .filter_map(|state| {
        let n = by_state.get(&state).copied().unwrap_or(0);
        (n > 0).then(|| format!("{n} {state:?}"))
    })
    .collect();
    if plan.is_empty() && waiting.is_empty() {
        writeln!(
            out,
            "No changes. IAM, EKS and the cluster match the intents."
        )
    } else if plan.is_empty() {
        // Nothing to do is not the same as everything granted: say which workloads are not.
        writeln!(
            out,
            "No changes, but not every workload is Ready ({}): see above.",
            waiting.join(", ")
        )
    } else {
        writeln!(
            out,
            "Plan: {} to add, {} to change, {} to remove.",
            count('+'),
            count('~'),
            count('-')
        )
    }
}

fn write_action(out: &mut impl Write, action: &Action, current: &Current) -> io::Result<()> {
    // An action is shown two spaces in, what it writes four more.
    writeln!(out, "  {} {action}", action.sign())?;
    let deeper = DEEPER;
    match action {
        Action::CreateRole {
            trust_policy,
            permissions_boundary,
            tags,
            ..
        } => {
            put(out, &[deeper, "trust policy:\n"])?;
            write_document(out, trust_policy)?;
            if let Some(boundary) = permissions_boundary {
                put(
                    out,
                    &[deeper, "permissions boundary: ", boundary.as_str(), "\n"],
                )?;
            }
            put(out, &[deeper, "tags: "])?;
            for (i, (key, value)) in tags.iter().enumerate() {
                let separator = if i == 0 { "" } else { ", " };
                put(out, &[separator, key, "=", value])?;
            }
            put(out, &["\n"])
        }
        Action::PutInlinePolicy {
            role,
            policy_name,
            document,
        } => {
            let current = current
                .role(role)
                .and_then(|r| r.inline_policies.get(policy_name));
            write_change(out, current, document, deeper)
        }
        Action::UpdateTrustPolicy { role, trust_policy } => {
            let current = current.role(role).map(|r| &r.trust_policy);
            write_change(out, current, trust_policy, deeper)
        }
        Action::CreateManagedPolicy { document, .. } => write_document(out, document),
        Action::UpdateManagedPolicy { arn, document, .. } => {
            let current = current.managed.get(arn.as_str()).copied();
            write_change(out, current, document, deeper)
        }
        _ => Ok(()),
    }
}

/// `parts` one after the other.
fn put(out: &mut impl Write, parts: &[&str]) -> io::Result<()> {
    parts
        .iter()
        .try_for_each(|part| out.write_all(part.as_bytes()))
}

/// How far in what an action writes is shown.
const DEEPER: &str = "      ";

/// The document in display form, pretty-printed into `out`, each line behind `DEEPER` and two
/// spaces.
fn write_document(out: &mut impl Write, document: &PolicyDocument) -> io::Result<()> {
    document.write_pretty_lines(out, "        ")
}

thread_local! {
    /// The two documents of a change, pretty-printed before they are compared line by line,
    /// and the diff shown.
    static CHANGE: std::cell::RefCell<(Vec<u8>, Vec<u8>, Vec<u8>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new(), Vec::new())) };
}

/// The new document, or a line diff against the current one (both in canonical form, so
/// the diff shows meaning, not IAM's spelling).
fn write_change(
    out: &mut impl Write,
    current: Option<&PolicyDocument>,
    new: &PolicyDocument,
    indent: &str,
) -> io::Result<()> {
    let Some(current) = current else {
        return write_document(out, new);
    };
    // Both written into buffers kept for every change of a plan, and the diff into a third,
    // written out at once.
    CHANGE.with_borrow_mut(|(old_text, new_text, shown)| {
        old_text.clear();
        new_text.clear();
        shown.clear();
        current.write_pretty(&mut *old_text)?;
        new.write_pretty(&mut *new_text)?;
        // Pretty JSON has a line break only between tokens (one inside a string is `\n`).
        let (old, new) = (lines(old_text), lines(new_text));
        for (sign, line) in diff(&old, &new) {
            shown.extend_from_slice(indent.as_bytes());
            shown.extend_from_slice(sign.as_bytes());
            shown.push(b' ');
            shown.extend_from_slice(line);
            shown.push(b'\n');
        }
        out.write_all(shown)
    })
}

/// The lines of `text`, in a list made at its size.
fn lines(text: &[u8]) -> Vec<&[u8]> {
    let mut lines = Vec::with_capacity(1 + text.iter().filter(|&&b| b == b'\n').count());
    lines.extend(text.split(|&b| b == b'\n'));
    lines
}

/// A longest-common-subsequence line diff; documents are small.
fn diff<'a, T: ?Sized + PartialEq>(old: &[&'a T], new: &[&'a T]) -> Vec<(&'static str, &'a T)> {
    let mut out = Vec::with_capacity(old.len() + new.len());
    // Equal lines at the start are matched first, as the walk below would match them: the
    // table is needed only for the rest.
    let same = old.iter().zip(new).take_while(|(a, b)| a == b).count();
    out.extend(old[..same].iter().map(|line| (" ", *line)));
    let (old, new) = (&old[same..], &new[same..]);
    let (n, m) = (old.len(), new.len());
    // The table in one allocation: `lcs(i, j)` is at `i * (m + 1) + j`.
    let width = m + 1;
    let mut table = vec![0usize; (n + 1) * width];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            table[i * width + j] = if old[i] == new[j] {
                table[(i + 1) * width + j + 1] + 1
            } else {
                table[(i + 1) * width + j].max(table[i * width + j + 1])
            };
        }
    }
    let lcs = |i: usize, j: usize| table[i * width + j];
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && old[i] == new[j] {
            out.push((" ", old[i]));
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs(i, j + 1) >= lcs(i + 1, j)) {
            out.push(("+", new[j]));
            j += 1;
        } else {
            out.push(("-", old[i]));
            i += 1;
        }
    }
    out
}

/// The JSON form of `plan --output json`, for [`json`].
pub struct JsonPlan<'a> {
    pub observed: &'a ObservedState,
    pub mode: BindingMode,
    pub plan: &'a Plan,
    pub errors: Vec<&'a Diagnostic>,
    pub notices: Vec<&'a Diagnostic>,
}

/// Writes the plan as pretty JSON and a newline. Every object keeps its keys in sorted order,
/// the order of a `serde_json::Value`: actions and workloads serialize in that order of their
/// own (tens of thousands of them in a fleet's plan, written straight); each other entry is
/// made a `Value` of its own and written before the next is made, never the whole plan at once.
pub fn json(plan: &JsonPlan, out: &mut impl Write) -> io::Result<()> {
    #[derive(Serialize)]
    struct Sorted<'a> {
        actions: &'a [Action],
        cluster: Entries<'a, eks_intents::model::ClusterInfo>,
        errors: Entries<'a, &'a Diagnostic>,
        mode: BindingMode,
        notices: Entries<'a, &'a Diagnostic>,
        orphans: Entries<'a, eks_intents::plan::OrphanPlan>,
        warnings: Vec<String>,
        workloads: &'a [eks_intents::plan::WorkloadPlan],
    }
    // `serde_json`'s pretty form, each line's indent written at once, and the system's own
    // documents re-indented from their text rather than read back first.
    let mut pretty = serde_json::Serializer::with_formatter(&mut *out, Indented::new(b""));
    PolicyDocument::raw_within(|| {
        Serialize::serialize(
            &Sorted {
                actions: &plan.plan.actions,
                cluster: Entries::One(&plan.observed.cluster),
                errors: Entries::Seq(&plan.errors),
                mode: plan.mode,
                notices: Entries::Seq(&plan.notices),
                orphans: Entries::Seq(&plan.plan.orphans),
                warnings: plan.plan.warnings.iter().map(ToString::to_string).collect(),
                workloads: &plan.plan.workloads,
            },
            &mut pretty,
        )
    })?;
    writeln!(out)
}

/// One value or a list of them, each serialized through a `serde_json::Value` of its own.
enum Entries<'a, T> {
    One(&'a T),
    Seq(&'a [T]),
}

impl<T: Serialize> Serialize for Entries<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let sorted = |entry: &T| serde_json::to_value(entry).map_err(S::Error::custom);
        match self {
            Entries::One(entry) => sorted(entry)?.serialize(serializer),
            Entries::Seq(entries) => {
                let mut seq = serializer.serialize_seq(Some(entries.len()))?;
                for entry in *entries {
                    seq.serialize_element(&sorted(entry)?)?;
                }
                seq.end()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_marks_added_and_removed_lines() {
        assert_eq!(
            diff(&["a", "b", "c"], &["a", "x", "c", "d"]),
            vec![(" ", "a"), ("+", "x"), ("-", "b"), (" ", "c"), ("+", "d")]
        );
    }

    /// The walk over the whole table, without matching equal first lines ahead of it.
    fn whole_table_diff<'a>(old: &[&'a str], new: &[&'a str]) -> Vec<(&'static str, &'a str)> {
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
        let (mut i, mut j, mut out) = (0, 0, Vec::new());
        while i < n || j < m {
            if i < n && j < m && old[i] == new[j] {
                out.push((" ", old[i]));
                (i, j) = (i + 1, j + 1);
            } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
                out.push(("+", new[j]));
                j += 1;
            } else {
                out.push(("-", old[i]));
                i += 1;
            }
        }
        out
    }

    #[test]
    fn diff_is_the_whole_table_walk_for_every_pair_of_short_documents() {
        // Every list of up to four lines of "a" and "b": ties, repeats and equal starts.
        let mut lists: Vec<Vec<&str>> = vec![Vec::new()];
        for len in 1..=4 {
            for bits in 0..(1 << len) {
                lists.push(
                    (0..len)
                        .map(|k| if bits >> k & 1 == 1 { "a" } else { "b" })
                        .collect(),
                );
            }
        }
        for old in &lists {
            for new in &lists {
                assert_eq!(
                    diff(old, new),
                    whole_table_diff(old, new),
                    "{old:?} -> {new:?}"
                );
            }
        }
    }
}
