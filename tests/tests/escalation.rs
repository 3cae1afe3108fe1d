//! The escalation corpus (`tests/fixtures/escalation`): every known way to gain more than was
//! granted, one bundle each, is refused by the planner (the workload is `Error`, no action on
//! its role) and by the reconciler on the emulator (no role changes), and is allowed when an
//! exception names the workload. `cli/tests/cli.rs` runs the same corpus through `validate`.

use eks_intents::intent::{BundleInput, Limits, read_bundle};
use eks_intents::model::{BindingMode, DesiredState, Namespace, PolicyArn, Settings};
use eks_intents::plan::{Action, WorkloadState, plan};
use eks_intents::policy::DangerException;
use eks_intents::testing::{empty, run_workload};
use integration::escalation::{files, vectors};
use integration::scenario::*;
use std::collections::BTreeMap;

const NAMESPACE: &str = "attack";

fn desired(bundles: &[(String, String)]) -> DesiredState {
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
            &Limits::default(),
        );
        assert!(report.errors.is_empty(), "{key}: {:?}", report.errors);
        report.add_to(&mut desired);
    }
    desired
}

fn settings(exceptions: Vec<DangerException>) -> Settings {
    Settings {
        permissions_boundary: Some(PolicyArn::new(format!(
            "arn:aws:iam::{}:policy/b",
            integration::ACCOUNT
        ))),
        danger_exceptions: exceptions,
        ..Settings::default()
    }
}

#[test]
fn the_planner_refuses_every_vector_and_writes_no_role() {
    let corpus = vectors();
    let bundles: Vec<(String, String)> = corpus
        .iter()
        .map(|v| {
            (
                format!("intents/demo/{NAMESPACE}/{}.yaml", v.workload),
                v.text.clone(),
            )
        })
        .collect();
    let mut observed = empty();
    for v in &corpus {
        run_workload(&mut observed, NAMESPACE, &v.workload, &v.workload);
    }
    let planned = plan(&desired(&bundles), &observed, &settings(Vec::new()));
    for v in &corpus {
        let report = planned
            .workloads
            .iter()
            .find(|w| w.identity.workload.as_str() == v.workload)
            .unwrap_or_else(|| panic!("{}: not reported", v.workload));
        assert_eq!(report.state, WorkloadState::Error, "{}", v.workload);
        assert!(
            report
                .message()
                .starts_with(&format!("refused: {} on ", v.action))
                && report.message().contains(&v.reason),
            "{}: {}",
            v.workload,
            report.message()
        );
    }
    let role_actions: Vec<&Action> = planned
        .actions
        .iter()
        .filter(|a| a.role().is_some())
        .collect();
    assert!(role_actions.is_empty(), "{role_actions:#?}");

    // An exception naming each workload and its action lets every one through.
    let exceptions = corpus
        .iter()
        .map(|v| DangerException {
            namespace: Some(NAMESPACE.to_owned()),
            workload: Some(v.workload.clone()),
            action: v.action.clone(),
            ..DangerException::default()
        })
        .collect();
    let planned = plan(&desired(&bundles), &observed, &settings(exceptions));
    for report in &planned.workloads {
        assert_eq!(report.state, WorkloadState::Changing, "{report:?}");
    }
    let created = planned
        .actions
        .iter()
        .filter(|a| matches!(a, Action::CreateRole { .. }))
        .count();
    assert_eq!(created, corpus.len());
}

#[test]
fn the_planner_grants_the_same_services_on_named_team_resources() {
    let bundles: Vec<(String, String)> = files("passes")
        .iter()
        .map(|p| {
            (
                format!(
                    "intents/demo/{NAMESPACE}/{}",
                    p.file_name().expect("name").to_string_lossy()
                ),
                std::fs::read_to_string(p).expect("fixture"),
            )
        })
        .collect();
    let mut observed = empty();
    run_workload(&mut observed, NAMESPACE, "team-worker", "team-worker");
    let planned = plan(&desired(&bundles), &observed, &settings(Vec::new()));
    assert_eq!(planned.workloads.len(), 1);
    assert_eq!(
        planned.workloads[0].state,
        WorkloadState::Changing,
        "{:?}",
        planned.workloads[0]
    );
    assert!(planned.warnings.is_empty(), "{:?}", planned.warnings);
    assert!(
        planned
            .actions
            .iter()
            .any(|a| matches!(a, Action::CreateRole { .. }))
    );
}

/// Through the real handlers on the emulator: joke-worker's bundle asks for one vector on `*`;
/// its role stays exactly as it was and the status says why.
#[tokio::test]
async fn the_reconciler_leaves_the_role_as_it_was_for_a_vector() {
    let vector = vectors()
        .into_iter()
        .find(|v| v.workload == "lambda-update-function-code")
        .expect("the Lambda vector");
    let w = world(BindingMode::Irsa, seed_fake_cluster).await;
    w.upload_seed().await;
    w.run_reconciler().await;
    let before = w.inspect();
    // A grant on `*` that passes is in the status too, with what it reaches.
    let status = w.status().await;
    let warnings: Vec<&str> = status["warnings"]
        .as_array()
        .map(|all| all.iter().filter_map(|x| x.as_str()).collect())
        .unwrap_or_default();
    assert!(
        warnings.iter().any(|w| w.starts_with(
            "jokes/joke-worker is granted dynamodb:* on every resource (`*`, reaching dynamodb "
        )),
        "{warnings:#?}"
    );
    let key = "intents/demo/jokes/joke-worker-ci.yaml";
    w.emulator.clear_requests();
    w.put(
        key,
        vector
            .text
            .replace(&vector.workload, "joke-worker")
            .into_bytes(),
    )
    .await;
    w.notify(key, false).await;
    w.run_reconciler().await;
    assert_eq!(w.aws_writes(), BTreeMap::new());
    assert_eq!(w.inspect(), before);
    let status = w.status().await;
    let worker = status["workloads"]
        .as_array()
        .and_then(|all| all.iter().find(|x| x["workload"] == "joke-worker"))
        .expect("joke-worker in the status");
    assert_eq!(worker["state"], "Error", "{worker:#}");
    let message = worker["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with(
            "refused: lambda:UpdateFunctionCode on *: lets the workload run code as any function's role."
        ),
        "{message}"
    );
}
