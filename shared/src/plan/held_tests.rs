//! A bundle applies whole or not at all: tests from bundle bytes through the reader, the
//! desired state, the planner and the in-memory model.

use super::*;
use crate::intent::{BundleInput, Limits, read_bundle};
use crate::model::Namespace;
use crate::policy::ORPHANED_TAG;
use crate::testing::*;
use proptest::prelude::*;

const NAMESPACE: &str = "jokes";

fn settings() -> Settings {
    Settings {
        permissions_boundary: Some("arn:aws:iam::123456789012:policy/eks-intents-boundary".into()),
        ..Settings::default()
    }
}

fn document(workload: &str, actions: &[&str]) -> String {
    let mut text = format!(
        "apiVersion: k8s.otterize.com/v1alpha3\nkind: ClientIntents\nmetadata:\n  name: {workload}\nspec:\n  service:\n    name: {workload}\n  calls:\n  - name: \"*\"\n    type: aws\n    awsActions:\n"
    );
    for action in actions {
        text.push_str(&format!("    - \"{action}\"\n"));
    }
    text
}

/// A document the reader refuses although its workload can be told.
fn broken_document(workload: &str) -> String {
    format!(
        "apiVersion: k8s.otterize.com/v1alpha3\nkind: ClientIntents\nmetadata:\n  name: {workload}\nspec:\n  service:\n    name: {workload}\n  calls:\n  - name: \"table/no-arn\"\n    type: aws\n    awsActions: [\"dynamodb:GetItem\"]\n"
    )
}

fn desired_of(bundles: &[(&str, String)], limits: &Limits) -> DesiredState {
    let namespace = Namespace::new(NAMESPACE);
    let mut desired = DesiredState::default();
    for (key, text) in bundles {
        let report = read_bundle(
            &BundleInput {
                key,
                bytes: text.as_bytes(),
                default_namespace: Some(&namespace),
                tenant_namespace: Some(&namespace),
            },
            limits,
        );
        report.add_to(&mut desired);
    }
    desired
}

fn cluster_with(workloads: &[&str]) -> ObservedState {
    let mut observed = empty();
    observed.now = 1_000_000;
    for workload in workloads {
        run_workload(&mut observed, NAMESPACE, workload, workload);
    }
    observed
}

/// The permission documents of every role not marked for deletion, by role name.
fn live_permissions(state: &ObservedState) -> BTreeMap<String, Vec<String>> {
    state
        .roles
        .iter()
        .filter(|role| !role.tags.contains_key(ORPHANED_TAG))
        .map(|role| {
            let mut documents: Vec<String> = role
                .inline_policies
                .values()
                .map(|d| serde_json::to_string(d).unwrap_or_default())
                .collect();
            documents.extend(
                state
                    .managed_policies
                    .iter()
                    .filter(|p| role.attached_policies.contains(&p.arn))
                    .map(|p| serde_json::to_string(&p.document).unwrap_or_default()),
            );
            (role.name.as_str().to_owned(), documents)
        })
        .collect()
}

const KEY: &str = "intents/demo/jokes/joke-worker-ci.yaml";

#[test]
fn a_bundle_with_a_broken_second_document_grants_nothing_of_its_first() {
    let (_, state) = converge(
        &desired_of(
            &[(KEY, document("joke-worker", &["dynamodb:GetItem"]))],
            &Limits::default(),
        ),
        &cluster_with(&["joke-worker"]),
        &settings(),
    );
    let before = live_permissions(&state);
    // The first document widens the role; the second is broken.
    let text = format!(
        "{}---\n{}",
        document("joke-worker", &["dynamodb:GetItem", "s3:GetObject"]),
        broken_document("other-worker")
    );
    let desired = desired_of(&[(KEY, text)], &Limits::default());
    assert!(desired.workloads.is_empty(), "{:?}", desired.workloads);
    let planned = plan(&desired, &state, &settings());
    assert!(
        planned.actions.is_empty(),
        "{:?}",
        planned
            .actions
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    );
    assert!(planned.orphans.is_empty());
    let (_, after) = converge(&desired, &state, &settings());
    assert_eq!(live_permissions(&after), before);
    // The status names both workloads as held, with the bundle to fix.
    for name in ["joke-worker", "other-worker"] {
        let report = planned
            .workloads
            .iter()
            .find(|w| w.identity.workload.as_str() == name)
            .unwrap_or_else(|| panic!("no report for {name}: {:?}", planned.workloads));
        assert_eq!(report.state, WorkloadState::Held, "{report:?}");
        assert!(report.message().contains(KEY), "{}", report.message());
    }
}

#[test]
fn a_bundle_over_the_document_cap_grants_nothing_of_its_first_documents() {
    let (_, state) = converge(
        &desired_of(
            &[(KEY, document("joke-worker", &["dynamodb:GetItem"]))],
            &Limits::default(),
        ),
        &cluster_with(&["joke-worker"]),
        &settings(),
    );
    let limits = Limits {
        max_documents: 3,
        ..Limits::default()
    };
    let mut text = document("joke-worker", &["dynamodb:GetItem", "s3:GetObject"]);
    for i in 0..3 {
        text.push_str("---\n");
        text.push_str(&document(&format!("filler-{i}"), &["sqs:SendMessage"]));
    }
    let desired = desired_of(&[(KEY, text)], &limits);
    assert!(desired.workloads.is_empty());
    assert!(desired.held.bundles.contains(KEY));
    let planned = plan(&desired, &state, &settings());
    assert!(planned.actions.is_empty());
    let report = planned
        .workloads
        .iter()
        .find(|w| w.identity.workload.as_str() == "joke-worker")
        .expect("joke-worker reported");
    assert_eq!(report.state, WorkloadState::Held);
}

/// One version of a bundle: per workload, the actions it declares, or broken.
#[derive(Clone, Debug)]
enum Version {
    Valid(BTreeMap<&'static str, Vec<&'static str>>),
    /// A valid document for the first workload (new actions), then a broken one.
    Invalid(Vec<&'static str>),
    /// Not YAML at all.
    Garbage,
}

const BUNDLES: [(&str, [&str; 2]); 2] = [
    ("intents/demo/jokes/a.yaml", ["w1", "w2"]),
    ("intents/demo/jokes/b.yaml", ["w3", "w4"]),
];
const ACTIONS: [&str; 4] = [
    "dynamodb:GetItem",
    "s3:GetObject",
    "sqs:SendMessage",
    "sns:Publish",
];

fn text_of(version: &Version, workloads: [&str; 2]) -> String {
    match version {
        Version::Valid(declared) if declared.is_empty() => "# nothing declared\n".to_owned(),
        Version::Valid(declared) => declared
            .iter()
            .map(|(workload, actions)| document(workload, actions))
            .collect::<Vec<_>>()
            .join("---\n"),
        Version::Invalid(actions) => format!(
            "{}---\n{}",
            document(workloads[0], actions),
            broken_document(workloads[1])
        ),
        Version::Garbage => "spec: [unclosed\n".to_owned(),
    }
}

fn arb_version(workloads: [&'static str; 2]) -> impl Strategy<Value = Version> {
    let actions = proptest::sample::subsequence(ACTIONS.to_vec(), 1..=ACTIONS.len());
    prop_oneof![
        3 => proptest::collection::btree_map(
            proptest::sample::select(workloads.to_vec()),
            actions.clone(),
            1..=2,
        )
        .prop_map(Version::Valid),
        2 => actions.prop_map(Version::Invalid),
        1 => Just(Version::Garbage),
    ]
}

fn arb_history() -> impl Strategy<Value = Vec<(usize, Version)>> {
    proptest::collection::vec(
        (0..BUNDLES.len()).prop_flat_map(|i| arb_version(BUNDLES[i].1).prop_map(move |v| (i, v))),
        1..8,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]

    /// For any sequence of bundle versions, some invalid, each reconciled as it arrives: the
    /// live roles are exactly those the last valid version of every bundle gives.
    #[test]
    fn roles_follow_the_last_valid_version_of_each_bundle(history in arb_history()) {
        let observed = cluster_with(&["w1", "w2", "w3", "w4"]);
        let settings = settings();
        let mut current: Vec<Option<String>> = vec![None; BUNDLES.len()];
        let mut last_valid: Vec<Option<String>> = vec![None; BUNDLES.len()];
        let mut state = observed.clone();
        for (i, version) in &history {
            let (key, workloads) = BUNDLES[*i];
            let text = text_of(version, workloads);
            if matches!(version, Version::Valid(_)) {
                last_valid[*i] = Some(text.clone());
            }
            current[*i] = Some(text);
            let bundles: Vec<(&str, String)> = current
                .iter()
                .enumerate()
                .filter_map(|(j, t)| t.clone().map(|t| (BUNDLES[j].0, t)))
                .collect();
            let (_, next) = converge(&desired_of(&bundles, &Limits::default()), &state, &settings);
            state = next;
            let _ = key;
        }
        let valid: Vec<(&str, String)> = last_valid
            .iter()
            .enumerate()
            .filter_map(|(j, t)| t.clone().map(|t| (BUNDLES[j].0, t)))
            .collect();
        let (_, expected) = converge(&desired_of(&valid, &Limits::default()), &observed, &settings);
        prop_assert_eq!(live_permissions(&state), live_permissions(&expected));
    }
}
