//! Every sample in `events/` (what users feed to `cargo lambda invoke --data-file`) reads, in
//! the function it is for, as the trigger it stands for: none is left without a function, and
//! none is taken for noise.

use aws_lambda_events::event::sqs::SqsEvent;
use eks_intents::ports::ReconcileCluster;
use integration::repo_root;
use serde_json::Value;

/// The function each sample is for, by the start of its file name.
const FUNCTIONS: &[(&str, &str)] = &[
    ("s3-", "bundle-upload"),
    ("eventbridge-object-", "bundle-upload"),
    ("sqs-", "reconciler"),
    ("schedule-", "drift-sweep"),
    ("cloudtrail-", "eks-events"),
    ("cloudwatch-logs-", "eks-events"),
];

fn function_of(file: &str) -> Option<&'static str> {
    FUNCTIONS
        .iter()
        .find(|(prefix, _)| file.starts_with(prefix))
        .map(|(_, function)| *function)
}

#[test]
fn every_sample_reads_as_a_trigger_of_its_function() {
    let system_roles =
        vec!["arn:aws:iam::123456789012:role/eks-intents/eks-intents-reconciler".to_owned()];
    let classifier = eks_events::Classifier {
        iam_path: "/eks-intents/",
        region: "eu-west-2",
        system_roles: &system_roles,
    };
    let mut seen = 0;
    let dir = repo_root().join("events");
    for entry in std::fs::read_dir(&dir).expect("events/") {
        let path = entry.expect("entry").path();
        let file = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        if !file.ends_with(".json") {
            continue;
        }
        seen += 1;
        let text = std::fs::read_to_string(&path).expect("sample reads");
        let event: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: not JSON: {e}"));
        match function_of(&file) {
            Some("bundle-upload") => {
                let changes = bundle_upload::changes(&event)
                    .unwrap_or_else(|e| panic!("{file}: bundle-upload refuses it: {e}"));
                assert!(!changes.is_empty(), "{file}: no object change");
            }
            Some("reconciler") => {
                let event: SqsEvent =
                    serde_json::from_value(event).unwrap_or_else(|e| panic!("{file}: {e}"));
                assert!(!event.records.is_empty(), "{file}: no message");
                for record in &event.records {
                    let body = record.body.as_deref().unwrap_or_default();
                    serde_json::from_str::<ReconcileCluster>(body)
                        .unwrap_or_else(|e| panic!("{file}: not a ReconcileCluster: {e}"));
                }
            }
            Some("drift-sweep") => {
                let tick = drift_sweep::tick(&event, 1_795_000_000);
                assert_eq!(tick.len(), "2026-11-27T09:00".len(), "{file}: {tick}");
            }
            Some("eks-events") => {
                let findings = eks_events::classify(&event, &classifier);
                assert!(!findings.is_empty(), "{file}: nothing found");
                for finding in &findings {
                    assert!(
                        !matches!(finding, eks_events::Finding::Ignored(_)),
                        "{file}: {finding:?}"
                    );
                }
            }
            _ => {
                panic!("{file}: no function takes this sample; name it after one of {FUNCTIONS:?}")
            }
        }
    }
    assert!(seen >= 19, "only {seen} samples in {}", dir.display());
}
