//! Bundles end to end: the reference scenario, every ClientIntents form, error reporting and
//! hostile input, through the public `read_bundle`.

use super::archive::build::{Kind, gzip, tar, tgz};
use super::*;
use crate::model::{WorkloadKind, WorkloadRef};
use crate::testing::EBS_ACTIONS;
use proptest::prelude::*;

macro_rules! seed {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/fixtures/seed-scenario/",
            $name
        ))
    };
}

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/bundles/",
            $name
        ))
    };
}

fn read_with(
    key: &str,
    bytes: &[u8],
    default: Option<&str>,
    tenant: Option<&str>,
    limits: &Limits,
) -> BundleReport {
    let default = default.map(Namespace::new);
    let tenant = tenant.map(Namespace::new);
    read_bundle(
        &BundleInput {
            key,
            bytes,
            default_namespace: default.as_ref(),
            tenant_namespace: tenant.as_ref(),
        },
        limits,
    )
}

fn read(key: &str, text: &str) -> BundleReport {
    read_with(key, text.as_bytes(), None, None, &Limits::default())
}

fn workload(namespace: &str, name: &str, kind: Option<WorkloadKind>) -> WorkloadRef {
    WorkloadRef {
        namespace: Namespace::new(namespace),
        name: WorkloadName::new(name),
        kind,
    }
}

fn allow(action: &str, resource: &str) -> Permission {
    Permission {
        action: action.to_owned(),
        resource: resource.to_owned(),
    }
}

fn shown<T: ToString>(items: &[T]) -> Vec<String> {
    items.iter().map(ToString::to_string).collect()
}

// --- the reference scenario -------------------------------------------------------------

#[test]
fn seed_scenario_yields_three_workloads_and_skips_the_table() {
    let limits = Limits::default();
    let reports = [
        read_with(
            "intents/prod/ack-dynamodb-ci.yaml",
            seed!("ack-dynamodb-ci.yaml").as_bytes(),
            None,
            None,
            &limits,
        ),
        read_with(
            "intents/prod/jokes/joke-worker-ci.yaml",
            seed!("joke-worker-ci.yaml").as_bytes(),
            Some("jokes"),
            Some("jokes"),
            &limits,
        ),
        read_with(
            "intents/prod/ebs-ci.yaml",
            seed!("ebs-ci.yaml").as_bytes(),
            Some("kube-system"),
            None,
            &limits,
        ),
        read_with(
            "intents/prod/jokes/dynamodb-table.yaml",
            seed!("dynamodb-table.yaml").as_bytes(),
            Some("jokes"),
            Some("jokes"),
            &limits,
        ),
    ];
    for report in &reports {
        assert!(report.is_valid(), "{:?}", report.errors);
        assert!(!report.held_whole_bundle && report.held_workloads.is_empty());
    }

    let [ack, joke, ebs, table] = &reports;
    assert_eq!(ack.intents.len(), 1);
    assert_eq!(
        ack.intents[0].workload,
        workload("ack-system", "ack-dynamodb-controller-dynamodb-chart", None)
    );
    assert_eq!(ack.intents[0].permissions, vec![allow("dynamodb:*", "*")]);
    assert_eq!(
        ack.intents[0].source,
        SourceRef {
            bundle: "intents/prod/ack-dynamodb-ci.yaml".into(),
            member: None,
            document: 1
        }
    );

    assert_eq!(joke.intents.len(), 1);
    assert_eq!(
        joke.intents[0].workload,
        workload("jokes", "joke-worker", None)
    );
    assert_eq!(joke.intents[0].permissions, vec![allow("dynamodb:*", "*")]);

    assert_eq!(ebs.intents.len(), 1);
    assert_eq!(
        ebs.intents[0].workload,
        workload("kube-system", "ebs-csi-controller", None)
    );
    let ebs_actions: Vec<&str> = ebs.intents[0]
        .permissions
        .iter()
        .map(|p| p.action.as_str())
        .collect();
    assert_eq!(ebs_actions, EBS_ACTIONS);
    assert!(ebs.intents[0].permissions.iter().all(|p| p.resource == "*"));

    assert!(table.intents.is_empty());
    assert_eq!(
        shown(&table.notices),
        vec![
            "intents/prod/jokes/dynamodb-table.yaml:1: document 1: skipped \
             dynamodb.services.k8s.aws/v1alpha1 Table \"jokestable\": not a ClientIntents resource"
        ]
    );

    let mut desired = DesiredState::default();
    for report in &reports {
        report.add_to(&mut desired);
    }
    assert_eq!(desired.workloads.len(), 3);
    assert!(desired.held.is_empty());
    let ebs_workload = &desired.workloads[&workload("kube-system", "ebs-csi-controller", None)];
    assert_eq!(ebs_workload.permissions.len(), 15);
}

#[test]
fn moving_intents_into_the_desired_state_gives_what_copying_gives() {
    let reports = [
        read("ack.yaml", seed!("ack-dynamodb-ci.yaml")),
        read("worker.yaml", seed!("joke-worker-ci.yaml")),
        read("syntax.yaml", fixture!("syntax-error-in-document-3.yaml")),
        read("five-errors.yaml", fixture!("five-errors.yaml")),
    ];
    assert_eq!(
        reports.iter().filter(|r| r.is_valid()).count(),
        2,
        "two valid bundles, two invalid ones"
    );
    let mut copied = DesiredState::default();
    for report in &reports {
        report.add_to(&mut copied);
    }
    let mut moved = DesiredState::default();
    let mut taken = reports.clone();
    for report in &mut taken {
        report.move_into(&mut moved);
    }
    assert_eq!(moved, copied);
    assert!(!moved.workloads.is_empty() && !moved.held.is_empty());
    for (report, before) in taken.iter().zip(&reports) {
        // A valid bundle's intents now live in the desired state only; an invalid one's stay.
        let kept = if before.is_valid() {
            0
        } else {
            before.intents.len()
        };
        assert_eq!(report.intents.len(), kept, "{}", report.key);
        assert_eq!(report.errors, before.errors);
        assert_eq!(report.notices, before.notices);
    }
}

#[test]
fn seed_scenario_as_one_archive() {
    let bytes = tgz(&[
        (
            "ack-dynamodb-ci.yaml",
            Kind::File,
            seed!("ack-dynamodb-ci.yaml").as_bytes(),
        ),
        (
            "joke-worker-ci.yaml",
            Kind::File,
            seed!("joke-worker-ci.yaml").as_bytes(),
        ),
        (
            "dynamodb-table.yaml",
            Kind::File,
            seed!("dynamodb-table.yaml").as_bytes(),
        ),
        ("README.md", Kind::File, seed!("README.md").as_bytes()),
    ]);
    let report = read_with(
        "intents/prod/app.tgz",
        &bytes,
        Some("jokes"),
        None,
        &Limits::default(),
    );
    assert!(report.is_valid(), "{:?}", report.errors);
    let workloads: Vec<String> = report
        .intents
        .iter()
        .map(|i| i.workload.to_string())
        .collect();
    assert_eq!(
        workloads,
        vec![
            "ack-system/ack-dynamodb-controller-dynamodb-chart",
            "jokes/joke-worker"
        ]
    );
    assert_eq!(
        report.intents[1].source.member.as_deref(),
        Some("joke-worker-ci.yaml")
    );
    assert_eq!(
        shown(&report.notices),
        vec![
            "intents/prod/app.tgz!dynamodb-table.yaml:1: document 1: skipped \
             dynamodb.services.k8s.aws/v1alpha1 Table \"jokestable\": not a ClientIntents resource",
            "intents/prod/app.tgz!README.md: skipped: not a .yaml, .yml or .json file",
        ]
    );
}

// --- the ClientIntents forms ---------------------------------------------------------------

#[test]
fn v2_targets_grant_aws_and_skip_the_rest() {
    for version in ["v2alpha1", "v2beta1"] {
        let text = fixture!("v2-targets.yaml").replace("v2beta1", version);
        let report = read("v2.yaml", &text);
        assert!(report.is_valid(), "{:?}", report.errors);
        assert_eq!(report.intents.len(), 1);
        let intent = &report.intents[0];
        assert_eq!(
            intent.workload,
            workload("jokes", "joke-worker", Some(WorkloadKind::Deployment))
        );
        let table = "arn:aws:dynamodb:$(AWS_REGION):$(AWS_ACCOUNT_ID):table/JokesTable";
        assert_eq!(
            intent.permissions,
            vec![
                allow("dynamodb:GetItem", table),
                allow("dynamodb:PutItem", table)
            ]
        );
        assert_eq!(
            shown(&report.notices),
            vec![
                "v2.yaml:11: document 1: spec.targets[0]: skipped \"kubernetes\" target: only \"aws\" targets grant AWS access",
                "v2.yaml:18: document 1: spec.targets[2]: skipped \"service\" target: only \"aws\" targets grant AWS access",
                "v2.yaml:20: document 1: spec.targets[3]: skipped \"internet\" target: only \"aws\" targets grant AWS access",
            ]
        );
    }
}

#[test]
fn v1beta1_reads_like_v1alpha3_with_a_kind() {
    let text = "\
apiVersion: k8s.otterize.com/v1beta1
kind: ClientIntents
metadata: {name: w, namespace: team-a}
spec:
  service: {name: worker, kind: statefulset}
  calls:
    - {type: aws, name: 'arn:aws:sqs:*:*:jobs', awsActions: ['sqs:SendMessage', 'sqs:Receive*']}
";
    let report = read("w.yaml", text);
    assert!(report.is_valid(), "{:?}", report.errors);
    assert_eq!(
        report.intents[0].workload,
        workload("team-a", "worker", Some(WorkloadKind::StatefulSet))
    );
    assert_eq!(
        report.intents[0].permissions,
        vec![
            allow("sqs:SendMessage", "arn:aws:sqs:*:*:jobs"),
            allow("sqs:Receive*", "arn:aws:sqs:*:*:jobs")
        ]
    );
}

#[test]
fn v1alpha2_is_read_and_skipped() {
    let text = "\
apiVersion: k8s.otterize.com/v1alpha2
kind: ClientIntents
metadata: {name: old}
spec:
  service: {name: old}
  calls: [{name: server}]
";
    let report = read("old.yaml", text);
    assert!(report.is_valid(), "{:?}", report.errors);
    assert!(report.intents.is_empty() && !report.held_whole_bundle);
    assert_eq!(
        shown(&report.notices),
        vec![
            "old.yaml:1: document 1: skipped k8s.otterize.com/v1alpha2 ClientIntents \"old\": \
             this version has no AWS calls (use v1alpha3 or later)"
        ]
    );
}

#[test]
fn calls_of_other_types_are_skipped_with_notices() {
    let text = "\
apiVersion: k8s.otterize.com/v1alpha3
kind: ClientIntents
metadata: {name: mixed}
spec:
  service: {name: mixed}
  calls:
    - name: joke-server
    - {type: http, name: joke-server}
    - {type: kafka, name: kafka.kafka}
    - {type: database, name: pg}
    - {type: aws, name: '*', awsActions: ['s3:ListAllMyBuckets']}
    - {type: gcp, name: x}
    - {type: azure, name: x}
    - {type: internet, name: x}
";
    let report = read("mixed.yaml", text);
    assert!(report.is_valid(), "{:?}", report.errors);
    assert_eq!(
        report.intents[0].permissions,
        vec![allow("s3:ListAllMyBuckets", "*")]
    );
    let notices: Vec<(Option<u64>, Option<String>)> = report
        .notices
        .iter()
        .map(|n| (n.place.line, n.place.field.clone()))
        .collect();
    let expected: Vec<(Option<u64>, Option<String>)> =
        [(7, 0), (8, 1), (9, 2), (10, 3), (12, 5), (13, 6), (14, 7)]
            .into_iter()
            .map(|(line, i)| (Some(line), Some(format!("spec.calls[{i}]"))))
            .collect();
    assert_eq!(notices, expected);
    assert_eq!(
        report.notices[1].message,
        "skipped call of type \"http\": only \"aws\" calls grant AWS access"
    );
    assert!(
        report.notices[0]
            .message
            .starts_with("skipped call without a type")
    );
}

#[test]
fn a_miscased_aws_type_is_an_error_not_a_skip() {
    let text = "\
apiVersion: k8s.otterize.com/v1alpha3
kind: ClientIntents
metadata: {name: x}
spec:
  service: {name: x}
  calls:
    - {type: AWS, name: '*', awsActions: ['s3:ListAllMyBuckets']}
";
    let report = read("x.yaml", text);
    assert_eq!(
        shown(&report.errors),
        vec!["x.yaml:7: document 1: spec.calls[0].type: call type \"AWS\" must be written \"aws\""]
    );
}

#[test]
fn a_clientintents_without_aws_calls_gives_no_intent() {
    let text = "\
apiVersion: k8s.otterize.com/v1alpha3
kind: ClientIntents
metadata: {name: web}
spec:
  service: {name: web}
  calls: [{type: http, name: api}]
";
    let report = read("web.yaml", text);
    assert!(report.is_valid());
    assert!(report.intents.is_empty());
    assert_eq!(
        report.notices.last().map(ToString::to_string).as_deref(),
        Some("web.yaml:1: document 1: no AWS access declared for workload default/web")
    );
}

#[test]
fn kubectl_lists_are_read_item_by_item() {
    let text = "\
apiVersion: v1
kind: List
items:
  - apiVersion: k8s.otterize.com/v1alpha3
    kind: ClientIntents
    metadata: {name: a, namespace: team-a}
    spec:
      service: {name: a}
      calls: [{type: aws, name: '*', awsActions: ['s3:ListAllMyBuckets']}]
  - apiVersion: k8s.otterize.com/v1alpha3
    kind: ClientIntents
    metadata: {name: b, namespace: team-a}
    spec:
      service: {name: b}
      calls: [{type: aws, name: '*', awsActions: [7]}]
";
    let report = read("list.yaml", text);
    assert_eq!(report.intents.len(), 1);
    assert_eq!(report.intents[0].workload, workload("team-a", "a", None));
    assert_eq!(
        shown(&report.errors),
        vec![
            "list.yaml:15: document 1: items[1].spec.calls[0].awsActions[0]: expected a string \
             like \"service:Action\", found a number"
        ]
    );
    assert_eq!(
        report.held_workloads,
        vec![(Namespace::new("team-a"), WorkloadName::new("b"))]
    );
    assert!(!report.held_whole_bundle);
    // The API server's own list kind: read, not skipped (nor taken for a typo).
    let api_list = text.replacen(
        "apiVersion: v1\nkind: List",
        "apiVersion: k8s.otterize.com/v1alpha3\nkind: ClientIntentsList",
        1,
    );
    let report = read("list.yaml", &api_list);
    assert_eq!(report.intents.len(), 1);
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
}

#[test]
fn json_bundles_are_read_with_lines() {
    let text = r#"{
  "apiVersion": "k8s.otterize.com/v1alpha3",
  "kind": "ClientIntents",
  "metadata": {"name": "j"},
  "spec": {
    "service": {"name": "j"},
    "calls": [{"type": "aws", "name": "*", "awsActions": ["s3:GetObject", false]}]
  }
}
"#;
    let report = read("j.json", text);
    assert_eq!(
        shown(&report.errors),
        vec![
            "j.json:7: document 1: spec.calls[0].awsActions[1]: expected a string like \
             \"service:Action\", found a boolean"
        ]
    );
    let fixed = text.replace(", false", "");
    let report = read("j.json", &fixed);
    assert!(report.is_valid(), "{:?}", report.errors);
    assert_eq!(
        report.intents[0].permissions,
        vec![allow("s3:GetObject", "*")]
    );
}

// --- merging ---------------------------------------------------------------------------

#[test]
fn intents_for_one_workload_merge_and_repeats_are_kept_once() {
    let text = "\
apiVersion: k8s.otterize.com/v1alpha3
kind: ClientIntents
metadata: {name: part-1}
spec:
  service: {name: worker}
  calls:
    - {type: aws, name: '*', awsActions: ['s3:GetObject', 's3:GetObject']}
    - {type: aws, name: '*', awsActions: ['s3:GetObject', 's3:PutObject']}
---
apiVersion: k8s.otterize.com/v2alpha1
kind: ClientIntents
metadata: {name: part-2}
spec:
  workload: {name: worker}
  targets:
    - aws: {arn: '*', actions: ['s3:PutObject', 'sqs:SendMessage']}
";
    let report = read("merge.yaml", text);
    assert!(report.is_valid(), "{:?}", report.errors);
    assert_eq!(report.intents.len(), 2);
    assert_eq!(
        report.intents[0].permissions,
        vec![allow("s3:GetObject", "*"), allow("s3:PutObject", "*")]
    );
    let mut desired = DesiredState::default();
    report.add_to(&mut desired);
    assert_eq!(desired.workloads.len(), 1);
    let merged = &desired.workloads[&workload("default", "worker", None)];
    let actions: Vec<&str> = merged
        .permissions
        .iter()
        .map(|p| p.action.as_str())
        .collect();
    assert_eq!(actions, ["s3:GetObject", "s3:PutObject", "sqs:SendMessage"]);
    let documents: Vec<usize> = merged.sources.iter().map(|s| s.document).collect();
    assert_eq!(documents, [1, 2]);
}

// --- errors ----------------------------------------------------------------------------

#[test]
fn five_errors_are_reported_as_five_with_paths_and_lines() {
    let report = read("five-errors.yaml", fixture!("five-errors.yaml"));
    assert_eq!(
        shown(&report.errors),
        vec![
            "five-errors.yaml:14: document 2: spec.service.kind: unknown workload kind \
             \"Deploymnet\"; expected one of Deployment, StatefulSet, DaemonSet, Job, CronJob, Pod",
            "five-errors.yaml:17: document 2: spec.calls[0].name: expected an ARN (\"arn:...\") \
             or \"*\", found \"table/JokesTable\"",
            "five-errors.yaml:20: document 2: spec.calls[0].awsActions[1]: expected a string \
             like \"service:Action\", found a number",
            "five-errors.yaml:23: document 2: spec.calls[2].awsActions: missing required field",
            "five-errors.yaml:27: document 2: spec.calls[3].awsActions[0]: expected a string \
             like \"service:Action\", found \"s3 GetObject\"",
        ]
    );
    assert!(!report.is_valid());
    assert!(
        report.intents.is_empty(),
        "a failed document yields no intent"
    );
    assert_eq!(
        report.held_workloads,
        vec![(Namespace::new("default"), WorkloadName::new("joke-worker"))]
    );
    assert!(!report.held_whole_bundle);
    let mut desired = DesiredState::default();
    report.add_to(&mut desired);
    assert!(
        desired
            .held
            .workloads
            .contains(&crate::model::HeldWorkload {
                namespace: Namespace::new("default"),
                name: WorkloadName::new("joke-worker"),
                bundle: "five-errors.yaml".into(),
            })
    );
    assert!(
        desired.held.bundles.contains("five-errors.yaml"),
        "an invalid bundle is held whole"
    );
}

#[test]
fn a_syntax_error_in_document_3_keeps_documents_1_2_and_4() {
    let report = read("b.yaml", fixture!("syntax-error-in-document-3.yaml"));
    let names: Vec<&str> = report
        .intents
        .iter()
        .map(|i| i.workload.name.as_str())
        .collect();
    assert_eq!(names, ["one", "two", "four"]);
    let documents: Vec<usize> = report.intents.iter().map(|i| i.source.document).collect();
    assert_eq!(documents, [1, 2, 4]);
    assert_eq!(report.errors.len(), 1);
    let error = &report.errors[0];
    assert_eq!(error.place.document, Some(3));
    assert!(matches!(error.place.line, Some(28..=29)), "{error}");
    assert!(error.message.starts_with("invalid YAML: "), "{error}");
    assert!(
        report.held_whole_bundle,
        "the broken document's workload cannot be told"
    );
    let mut desired = DesiredState::default();
    report.add_to(&mut desired);
    assert!(
        desired.workloads.is_empty(),
        "a bundle applies whole or not at all"
    );
    let held: Vec<&str> = desired
        .held
        .workloads
        .iter()
        .map(|w| w.name.as_str())
        .collect();
    assert_eq!(held, ["four", "one", "two"]);
    assert!(desired.held.bundles.contains("b.yaml"));
}

#[test]
fn documents_of_the_wrong_shape_are_errors() {
    let text = "\
- just a list
---
kind: ClientIntents
metadata: {name: no-version}
---
apiVersion: k8s.otterize.com/v1alpha3
kind: [ClientIntents]
";
    let report = read("shape.yaml", text);
    assert_eq!(
        shown(&report.errors),
        vec![
            "shape.yaml:1: document 1: expected a mapping (a Kubernetes resource), found a list",
            "shape.yaml:3: document 2: apiVersion: missing required field",
            "shape.yaml:7: document 3: kind: expected a string, found a list",
        ]
    );
    assert!(report.held_whole_bundle);
}

#[test]
fn an_unknown_clientintents_version_names_the_supported_ones() {
    let text = "\
apiVersion: k8s.otterize.com/v3
kind: ClientIntents
metadata: {name: x}
spec: {service: {name: x}}
";
    let report = read("v3.yaml", text);
    assert_eq!(
        shown(&report.errors),
        vec![
            "v3.yaml:1: document 1: apiVersion: unsupported ClientIntents version \
             \"k8s.otterize.com/v3\"; supported versions of k8s.otterize.com: v1alpha3, v1beta1, \
             v2alpha1, v2beta1 (v1alpha2 is read but has no AWS calls)"
        ]
    );
    assert!(report.held_whole_bundle);
}

#[test]
fn other_resources_are_skipped_never_errors() {
    let text = "\
apiVersion: apps/v1
kind: Deployment
metadata: {name: joke-server}
---
apiVersion: v1
kind: ConfigMap
---
apiVersion: k8s.otterize.com/v1alpha3
kind: ProtectedService
metadata: {name: p}
";
    let report = read("other.yaml", text);
    assert!(report.is_valid(), "{:?}", report.errors);
    assert_eq!(
        shown(&report.notices),
        vec![
            "other.yaml:1: document 1: skipped apps/v1 Deployment \"joke-server\": not a ClientIntents resource",
            "other.yaml:5: document 2: skipped v1 ConfigMap (no name): not a ClientIntents resource",
            "other.yaml:8: document 3: skipped k8s.otterize.com/v1alpha3 ProtectedService \"p\": not a ClientIntents resource",
        ]
    );
}

#[test]
fn names_and_namespaces_must_be_kubernetes_names() {
    let text = "\
apiVersion: k8s.otterize.com/v1alpha3
kind: ClientIntents
metadata: {name: x, namespace: Team_A}
spec:
  service: {name: worker}
  calls: [{type: aws, name: '*', awsActions: ['s3:GetObject']}]
---
apiVersion: k8s.otterize.com/v1alpha3
kind: ClientIntents
metadata: {name: y}
spec:
  service: {name: Worker.A}
  calls: [{type: aws, name: '*', awsActions: ['s3:GetObject']}]
---
apiVersion: k8s.otterize.com/v1alpha3
kind: ClientIntents
metadata: {name: z}
spec:
  service: {kind: Deployment}
";
    let report = read("names.yaml", text);
    assert_eq!(
        shown(&report.errors),
        vec![
            "names.yaml:3: document 1: metadata.namespace: \"Team_A\" is not a valid namespace: \
             use only lowercase letters, digits and '-'",
            "names.yaml:12: document 2: spec.service.name: \"Worker.A\" is not a valid workload \
             name: use only lowercase letters, digits and '-'",
            "names.yaml:19: document 3: spec.service.name: missing required field",
        ]
    );
    assert!(report.intents.is_empty());
    assert!(
        report.held_whole_bundle,
        "none of the three workloads can be told"
    );
}

#[test]
fn the_default_namespace_is_the_callers_then_default() {
    let text = seed!("joke-worker-ci.yaml");
    let plain = read("a.yaml", text);
    assert_eq!(plain.intents[0].workload.namespace.as_str(), "default");
    let given = read_with(
        "a.yaml",
        text.as_bytes(),
        Some("jokes"),
        None,
        &Limits::default(),
    );
    assert_eq!(given.intents[0].workload.namespace.as_str(), "jokes");
    let tenant_only = read_with(
        "a.yaml",
        text.as_bytes(),
        None,
        Some("team-a"),
        &Limits::default(),
    );
    assert_eq!(tenant_only.intents[0].workload.namespace.as_str(), "team-a");
}

#[test]
fn a_team_bundle_cannot_name_another_namespace() {
    let text = seed!("ack-dynamodb-ci.yaml");
    let report = read_with(
        "intents/prod/team-a/x.yaml",
        text.as_bytes(),
        Some("team-a"),
        Some("team-a"),
        &Limits::default(),
    );
    assert_eq!(
        shown(&report.errors),
        vec![
            "intents/prod/team-a/x.yaml:5: document 1: metadata.namespace: namespace \
             \"ack-system\" is outside this bundle's namespace \"team-a\""
        ]
    );
    assert!(report.intents.is_empty());
    assert!(
        report.held_workloads.is_empty(),
        "another team's workload is never held"
    );
    assert!(report.held_whole_bundle);
    let own = text.replace("ack-system", "team-a");
    let report = read_with(
        "k.yaml",
        own.as_bytes(),
        Some("team-a"),
        Some("team-a"),
        &Limits::default(),
    );
    assert!(report.is_valid(), "{:?}", report.errors);
}

#[test]
fn a_bad_namespace_from_the_caller_fails_the_bundle() {
    let report = read_with(
        "intents/prod/Team_A/x.yaml",
        seed!("joke-worker-ci.yaml").as_bytes(),
        Some("Team_A"),
        Some("Team_A"),
        &Limits::default(),
    );
    assert_eq!(
        shown(&report.errors),
        vec![
            "intents/prod/Team_A/x.yaml: bundle location: \"Team_A\" is not a valid namespace: \
             use only lowercase letters, digits and '-'"
        ]
    );
    assert!(report.intents.is_empty() && report.held_whole_bundle);
}

#[test]
fn placeholders_are_kept_then_resolved() {
    let report = read("v2.yaml", fixture!("v2-targets.yaml"));
    let resource = &report.intents[0].permissions[0].resource;
    assert_eq!(
        resource,
        "arn:aws:dynamodb:$(AWS_REGION):$(AWS_ACCOUNT_ID):table/JokesTable"
    );
    assert_eq!(
        resolve_placeholders(resource, "eu-west-2", "123456789012"),
        "arn:aws:dynamodb:eu-west-2:123456789012:table/JokesTable"
    );
    assert_eq!(resolve_placeholders("*", "eu-west-2", "123456789012"), "*");
    assert_eq!(
        resolve_placeholders("arn:aws:s3:::$(AWS_REGION)-$(AWS_REGION)", "us-east-1", "1"),
        "arn:aws:s3:::us-east-1-us-east-1"
    );
}

#[test]
fn placeholders_resolve_in_one_pass_as_replacing_each_in_turn_would() {
    // Unknown and broken placeholders stay as written; a `$(` before a real one does not hide it.
    for arn in [
        "arn:aws:sqs:$(AWS_REGION):$(AWS_ACCOUNT_ID):queue",
        "$(AWS_ACCOUNT_ID)$(AWS_REGION)",
        "arn:$(AWS_PARTITION):s3:::b/$(",
        "$($(AWS_REGION))",
        "$(AWS_ACCOUNT_$(AWS_REGION)ID)",
        "x$(AWS_REGION",
        "ü$(AWS_REGION)ü",
        "a$b$$(AWS_REGION)$",
        "$",
    ] {
        let in_turn = arn
            .replace("$(AWS_REGION)", "eu-west-2")
            .replace("$(AWS_ACCOUNT_ID)", "123456789012");
        assert_eq!(
            resolve_placeholders(arn, "eu-west-2", "123456789012"),
            in_turn,
            "{arn}"
        );
    }
}

// --- hostile input ---------------------------------------------------------------------

fn only_error(report: &BundleReport) -> String {
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    assert!(report.held_whole_bundle);
    report.errors[0].to_string()
}

#[test]
fn an_alias_bomb_fails_fast() {
    let report = read("bomb.yaml", fixture!("alias-bomb.yaml"));
    let error = only_error(&report);
    assert!(error.starts_with("bomb.yaml:"), "{error}");
    assert!(
        error.contains(
            "document 1: YAML aliases expand to more than 10000 parser events (an alias bomb?)"
        ),
        "{error}"
    );
    assert!(report.intents.is_empty());
}

#[test]
fn an_oversized_bundle_is_refused_before_parsing() {
    let mut text = String::from(seed!("joke-worker-ci.yaml"));
    text.push_str(&"#".repeat(1024 * 1024));
    let report = read("big.yaml", &text);
    assert_eq!(
        only_error(&report),
        format!(
            "big.yaml: bundle is {} bytes, more than the limit of 1048576 bytes",
            text.len()
        )
    );
    let archive = read_with(
        "big.tgz",
        &vec![0x1f; 1024 * 1024 + 1],
        None,
        None,
        &Limits::default(),
    );
    assert!(only_error(&archive).contains("more than the limit of 1048576 bytes"));
}

#[test]
fn too_many_documents_stop_the_bundle() {
    let one = seed!("joke-worker-ci.yaml");
    let text = vec![one; 501].join("---\n");
    let report = read("many.yaml", &text);
    assert_eq!(
        only_error(&report),
        "many.yaml: bundle holds more than 500 documents; split it into several bundles"
    );
    assert_eq!(
        report.intents.len(),
        500,
        "documents before the cap are still read"
    );
    let text = vec![one; 500].join("---\n");
    assert!(read("ok.yaml", &text).is_valid());
}

#[test]
fn the_document_cap_spans_archive_members() {
    let one = seed!("joke-worker-ci.yaml").as_bytes();
    let bytes = tgz(&[
        ("a.yaml", Kind::File, one),
        ("b.yaml", Kind::File, one),
        ("c.yaml", Kind::File, one),
    ]);
    let limits = Limits {
        max_documents: 2,
        ..Limits::default()
    };
    let report = read_with("x.tgz", &bytes, None, None, &limits);
    assert_eq!(
        only_error(&report),
        "x.tgz!c.yaml: bundle holds more than 2 documents; split it into several bundles"
    );
}

#[test]
fn the_node_cap_spans_documents() {
    let one = seed!("ebs-ci.yaml");
    let text = [one; 4].join("---\n");
    let limits = Limits {
        max_yaml_nodes: 100,
        ..Limits::default()
    };
    let report = read_with(
        "nodes.yaml",
        text.as_bytes(),
        Some("kube-system"),
        None,
        &limits,
    );
    let error = only_error(&report);
    assert!(
        error.contains("the bundle holds more than 100 YAML nodes (aliases counted as expanded)"),
        "{error}"
    );
    assert_eq!(report.intents.len(), 2, "two documents of ~45 nodes fit");
}

#[test]
fn hostile_archive_members_are_named() {
    let good = seed!("joke-worker-ci.yaml").as_bytes();
    let cases: [(&str, Kind, &str); 5] = [
        (
            "../escape.yaml",
            Kind::File,
            "x.tgz!../escape.yaml: member path contains '..'",
        ),
        (
            "/etc/cron.d/x.yaml",
            Kind::File,
            "x.tgz!/etc/cron.d/x.yaml: member path is absolute",
        ),
        (
            "link.yaml",
            Kind::Symlink("/etc/passwd"),
            "x.tgz!link.yaml: member is a symbolic link; only regular files are allowed",
        ),
        (
            "hard.yaml",
            Kind::HardLink("ok.yaml"),
            "x.tgz!hard.yaml: member is a hard link; only regular files are allowed",
        ),
        (
            "dev.yaml",
            Kind::CharDevice,
            "x.tgz!dev.yaml: member is a device; only regular files are allowed",
        ),
    ];
    for (path, kind, expected) in cases {
        let bytes = tgz(&[("ok.yaml", Kind::File, good), (path, kind, good)]);
        let report = read_with("x.tgz", &bytes, None, None, &Limits::default());
        assert_eq!(only_error(&report), expected);
        assert_eq!(report.intents.len(), 1, "the good member is still read");
    }
}

#[test]
fn an_archive_bomb_is_capped_while_decompressing() {
    let filler = vec![b' '; 9 * 1024 * 1024];
    let bytes = tgz(&[("a.yaml", Kind::File, &filler)]);
    assert!(bytes.len() < 1024 * 1024);
    let limits = Limits {
        max_member_bytes: 16 * 1024 * 1024,
        ..Limits::default()
    };
    let report = read_with("bomb.tgz", &bytes, None, None, &limits);
    assert_eq!(
        only_error(&report),
        "bomb.tgz: archive expands to more than 8388608 bytes; split it into several bundles"
    );
}

#[test]
fn oversized_and_excess_members_are_refused() {
    let big = vec![b'#'; 1024 * 1024 + 1];
    let bytes = tgz(&[("big.yaml", Kind::File, &big)]);
    let report = read_with("m.tgz", &bytes, None, None, &Limits::default());
    assert_eq!(
        only_error(&report),
        "m.tgz!big.yaml: member is 1048577 bytes, more than the limit of 1048576 bytes"
    );

    let names: Vec<String> = (0..201).map(|i| format!("d{i}/")).collect();
    let dirs: Vec<(&str, Kind, &[u8])> = names
        .iter()
        .map(|n| (n.as_str(), Kind::Dir, &b""[..]))
        .collect();
    let report = read_with("many.tgz", &tgz(&dirs), None, None, &Limits::default());
    assert_eq!(
        only_error(&report),
        "many.tgz: archive holds more than 200 members"
    );
}

#[test]
fn non_utf8_input_is_refused_clearly() {
    let mut bytes = b"apiVersion: v1\nkind: List\nmetadata: {name: caf".to_vec();
    bytes.push(0xE9);
    bytes.extend_from_slice(b"}\n");
    let report = read_with("latin1.yaml", &bytes, None, None, &Limits::default());
    assert_eq!(only_error(&report), "latin1.yaml:3: file is not UTF-8 text");

    let utf16 = [0xFF, 0xFE, b'a', 0, b':', 0];
    let report = read_with("u16.yaml", &utf16, None, None, &Limits::default());
    assert_eq!(
        only_error(&report),
        "u16.yaml: file is UTF-16 text; save it as UTF-8"
    );

    let gz = gzip(seed!("joke-worker-ci.yaml").as_bytes());
    let report = read_with("x.yaml", &gz, None, None, &Limits::default());
    assert_eq!(
        only_error(&report),
        "x.yaml: file is gzip-compressed; name a compressed bundle .tar.gz or .tgz"
    );

    let bytes = tgz(&[("bin.yaml", Kind::File, &[b'a', b'\n', 0xFF])]);
    let report = read_with("x.tgz", &bytes, None, None, &Limits::default());
    assert_eq!(
        only_error(&report),
        "x.tgz!bin.yaml:2: file is not UTF-8 text"
    );
}

#[test]
fn a_utf8_byte_order_mark_is_accepted() {
    let text = format!("\u{FEFF}{}", seed!("joke-worker-ci.yaml"));
    let report = read("bom.yaml", &text);
    assert!(report.is_valid(), "{:?}", report.errors);
    assert_eq!(report.intents.len(), 1);
}

#[test]
fn empty_bundles_are_errors() {
    for (key, bytes) in [
        ("e.yaml", b"".to_vec()),
        ("c.yaml", b"# nothing here\n---\n\n---\n".to_vec()),
        ("n.yaml", b"~\n".to_vec()),
        ("e.json", b"  \n".to_vec()),
        ("e.tgz", tgz(&[])),
        ("r.tgz", tgz(&[("README.md", Kind::File, b"hi")])),
    ] {
        let report = read_with(key, &bytes, None, None, &Limits::default());
        assert_eq!(only_error(&report), format!("{key}: bundle is empty"));
    }
}

#[test]
fn uncompressed_tar_is_refused_with_a_hint() {
    let bytes = tar(&[("a.yaml", Kind::File, b"a: 1\n")]);
    let report = read_with("x.tar", &bytes, None, None, &Limits::default());
    assert_eq!(
        only_error(&report),
        "x.tar: uncompressed tar archives are not read; compress it (.tar.gz or .tgz)"
    );
}

#[test]
fn an_unnamed_gzip_bundle_is_sniffed_as_an_archive() {
    let bytes = tgz(&[(
        "a.yaml",
        Kind::File,
        seed!("joke-worker-ci.yaml").as_bytes(),
    )]);
    let report = read_with(
        "intents/prod/bundle",
        &bytes,
        None,
        None,
        &Limits::default(),
    );
    assert!(report.is_valid(), "{:?}", report.errors);
    assert_eq!(report.intents[0].source.member.as_deref(), Some("a.yaml"));
}

#[test]
fn reports_round_trip_through_json() {
    let report = read("five-errors.yaml", fixture!("five-errors.yaml"));
    let json = serde_json::to_string(&report).unwrap();
    let back: BundleReport = serde_json::from_str(&json).unwrap();
    assert_eq!(back, report);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512), key in "[a-z]{1,4}\\.(yaml|json|tgz|bin)") {
        let report = read_with(&key, &bytes, None, None, &Limits::default());
        // Every failure holds something: a broken upload never shrinks what was granted.
        prop_assert!(report.is_valid() || report.held_whole_bundle || !report.held_workloads.is_empty());
    }

    #[test]
    fn mangled_intents_never_panic(cut in 0usize..600, insert in "[-:\\[\\]{}&*!|>'\"#% \n\t a-z0-9]{0,12}") {
        let text = fixture!("five-errors.yaml");
        let at = text.char_indices().map(|(i, _)| i).nth(cut).unwrap_or(text.len());
        let mangled = format!("{}{}{}", &text[..at], insert, &text[at..]);
        let report = read("m.yaml", &mangled);
        // One edit can turn the document into something skipped, never into a grant.
        prop_assert!(report.intents.is_empty(), "one edit cannot mend five errors");
        prop_assert!(report.is_valid() || report.held_whole_bundle || !report.held_workloads.is_empty());
    }

    #[test]
    fn mangled_archives_never_panic(flip in 0usize..2048, byte in any::<u8>()) {
        let mut bytes = tgz(&[("a.yaml", Kind::File, seed!("ebs-ci.yaml").as_bytes())]);
        let len = bytes.len();
        bytes[flip % len] = byte;
        let report = read_with("a.tgz", &bytes, Some("kube-system"), None, &Limits::default());
        prop_assert!(report.is_valid() || report.held_whole_bundle || !report.held_workloads.is_empty());
    }
}

#[test]
fn actions_are_checked_against_the_service_authorization_reference() {
    let text = "apiVersion: k8s.otterize.com/v1alpha3
kind: ClientIntents
metadata:
  name: w
  namespace: jokes
spec:
  service:
    name: joke-worker
  calls:
    - name: '*'
      type: aws
      awsActions:
        - dynamodb:PutItm
        - dynamdb:GetItem
        - s3:Nothing*
        - ec2:Describe*
        - dynamodb:GetItem
";
    let report = read("typos.yaml", text);
    assert_eq!(
        shown(&report.errors),
        [
            "typos.yaml:13: document 1: spec.calls[0].awsActions[0]: dynamodb:PutItm: unknown action; did you mean dynamodb:PutItem?",
            "typos.yaml:14: document 1: spec.calls[0].awsActions[1]: dynamdb:GetItem: unknown service dynamdb; did you mean dynamodb?",
            "typos.yaml:15: document 1: spec.calls[0].awsActions[2]: s3:Nothing*: the wildcard matches no action",
        ]
    );
    // The document fails as a whole: its workload is held, not granted the valid rest.
    assert!(report.intents.is_empty());
    assert_eq!(
        report.held_workloads,
        [(Namespace::new("jokes"), WorkloadName::new("joke-worker"))]
    );
}

#[test]
fn resource_arns_are_checked_and_service_mismatches_warned() {
    let text = "apiVersion: k8s.otterize.com/v2alpha1
kind: ClientIntents
metadata:
  name: w
  namespace: jokes
spec:
  workload:
    name: joke-worker
  targets:
    - aws:
        arn: arn:aws:dynamodb:euwest2:123456789012:table/t
        actions: [dynamodb:GetItem]
";
    let report = read("arns.yaml", text);
    assert_eq!(
        shown(&report.errors),
        [
            "arns.yaml:11: document 1: spec.targets[0].aws.arn: \"arn:aws:dynamodb:euwest2:123456789012:table/t\": region \"euwest2\" is not an AWS region (an area, a direction and a number, like eu-west-2 or us-gov-west-1), $(AWS_REGION), empty, or *"
        ]
    );
    let mismatch = text.replace(
        "arn:aws:dynamodb:euwest2:123456789012:table/t",
        "arn:aws:s3:::jokes/*",
    );
    let report = read("arns.yaml", &mismatch);
    assert!(report.is_valid(), "{:?}", report.errors);
    assert!(
        shown(&report.notices).iter().any(|n| n.contains(
            "warning: dynamodb:GetItem is an action of dynamodb, but the resource is a s3 ARN"
        )),
        "{:?}",
        shown(&report.notices)
    );
    assert!(
        report
            .notices
            .iter()
            .any(|n| n.severity == crate::intent::Severity::Warning
                && n.message
                    .starts_with("dynamodb:GetItem is an action of dynamodb")),
        "{:?}",
        report.notices
    );
}

#[test]
fn an_archive_over_the_member_cap_adds_nothing_of_its_first_members() {
    let first = seed!("joke-worker-ci.yaml");
    let names: Vec<String> = (0..201).map(|i| format!("d{i}/")).collect();
    let mut members: Vec<(&str, Kind, &[u8])> =
        vec![("joke-worker.yaml", Kind::File, first.as_bytes())];
    members.extend(names.iter().map(|n| (n.as_str(), Kind::Dir, &b""[..])));
    let report = read_with("many.tgz", &tgz(&members), None, None, &Limits::default());
    assert!(!report.is_valid());
    let mut desired = DesiredState::default();
    report.add_to(&mut desired);
    assert!(
        desired.workloads.is_empty(),
        "a bundle over a cap grants nothing, not even its first members"
    );
    assert!(desired.held.bundles.contains("many.tgz"));
}

// --- near misses and unknown fields (a typo must never drop intents) ---------------------

const JOKE_WORKER: &str = "\
apiVersion: k8s.otterize.com/v1alpha3
kind: ClientIntents
metadata:
  name: joke-worker
  namespace: jokes
spec:
  service:
    name: joke-worker
  calls:
    - name: arn:aws:dynamodb:eu-west-2:123456789012:table/JokesTable
      type: aws
      awsActions: [dynamodb:GetItem]
";

#[test]
fn a_kind_or_group_close_to_clientintents_is_an_error_not_a_skip() {
    let cases = [
        (
            JOKE_WORKER.replace("kind: ClientIntents", "kind: ClientIntent"),
            "typo.yaml:2: document 1: kind: unknown kind \"ClientIntent\"; did you mean \
             ClientIntents?",
        ),
        (
            JOKE_WORKER.replace("kind: ClientIntents", "kind: clientintents"),
            "typo.yaml:2: document 1: kind: unknown kind \"clientintents\"; did you mean \
             ClientIntents?",
        ),
        (
            JOKE_WORKER.replace("k8s.otterize.com", "k8s.oterize.com"),
            "typo.yaml:1: document 1: apiVersion: unknown API group \"k8s.oterize.com\"; did \
             you mean k8s.otterize.com?",
        ),
        (
            JOKE_WORKER.replace("k8s.otterize.com", "K8s.Otterize.io"),
            "typo.yaml:1: document 1: apiVersion: unknown API group \"K8s.Otterize.io\"; did \
             you mean k8s.otterize.com?",
        ),
        (
            JOKE_WORKER.replace("k8s.otterize.com/v1alpha3", "v1"),
            "typo.yaml:1: document 1: apiVersion: ClientIntents is read in API group \
             k8s.otterize.com only",
        ),
    ];
    for (text, expected) in cases {
        let report = read("typo.yaml", &text);
        let errors = shown(&report.errors);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].starts_with(expected), "{errors:?}");
        assert!(report.notices.is_empty(), "{:?}", report.notices);
        assert!(report.intents.is_empty() && report.held_whole_bundle);
    }
    // A kind close to ours in another group is a typo too; the reference scenario's ACK
    // Table, a ConfigMap and Otterize's other kinds stay skipped (see
    // other_resources_are_skipped_never_errors).
    let report = read(
        "typo.yaml",
        "apiVersion: apps/v1\nkind: ClientIntens\nmetadata: {name: x}\n",
    );
    assert!(
        shown(&report.errors)[0].contains("kind: unknown kind \"ClientIntens\"; did you mean"),
        "{:?}",
        report.errors
    );
}

#[test]
fn unknown_fields_are_errors_with_the_closest_field() {
    let text = JOKE_WORKER.replace("awsActions:", "awsActionz:");
    let report = read("fields.yaml", &text);
    assert_eq!(
        shown(&report.errors),
        vec![
            "fields.yaml:12: document 1: spec.calls[0].awsActionz: unknown field; did you mean \
             awsActions?",
            "fields.yaml:10: document 1: spec.calls[0].awsActions: missing required field",
        ]
    );
    assert_eq!(
        report.held_workloads,
        vec![(Namespace::new("jokes"), WorkloadName::new("joke-worker"))]
    );

    let typ = JOKE_WORKER.replace("type: aws", "typ: aws");
    let errors = shown(&read("fields.yaml", &typ).errors);
    assert_eq!(
        errors[0],
        "fields.yaml:11: document 1: spec.calls[0].typ: unknown field; did you mean type?"
    );

    let cases = [
        (
            "  service:\n",
            "  servise:\n",
            "spec.servise: unknown field; did you mean service?",
        ),
        (
            "spec:\n",
            "specs: {}\nspec:\n",
            "specs: unknown field; did you mean spec?",
        ),
        (
            "  namespace: jokes",
            "  namespce: jokes",
            "metadata.namespce: unknown field; did you mean namespace?",
        ),
        (
            "    name: joke-worker\n  calls",
            "    name: joke-worker\n    knd: Deployment\n  calls",
            "spec.service.knd: unknown field; did you mean kind?",
        ),
        (
            "  calls:",
            "  targets: []\n  calls:",
            "spec.targets: unknown field; expected one of service, calls",
        ),
    ];
    for (from, to, expected) in cases {
        let text = JOKE_WORKER.replace(from, to);
        assert_ne!(text, JOKE_WORKER);
        let errors = shown(&read("fields.yaml", &text).errors);
        assert!(
            errors.iter().any(|e| e.contains(expected)),
            "{expected}: {errors:?}"
        );
    }

    // Labels and annotations hold anything.
    let labelled = JOKE_WORKER.replace(
        "  namespace: jokes\n",
        "  namespace: jokes\n  labels: {anyKey: x}\n  annotations: {a.b/c: d}\n",
    );
    assert!(read("fields.yaml", &labelled).is_valid());
}

#[test]
fn unknown_fields_of_v2_targets_are_errors() {
    let text = fixture!("v2-targets.yaml");
    assert!(read("v2.yaml", text).is_valid());
    let typo = text.replacen("actions:", "actionz:", 1);
    let errors = shown(&read("v2.yaml", &typo).errors);
    assert!(
        errors[0].contains(".aws.actionz: unknown field; did you mean actions?"),
        "{errors:?}"
    );
    let upper = text.replacen("- aws:", "- AWS:", 1);
    let report = read("v2.yaml", &upper);
    let errors = shown(&report.errors);
    assert!(
        errors[0].contains("].AWS: unknown field; did you mean aws?"),
        "{errors:?}"
    );
}

#[test]
fn json_with_a_trailing_comma_is_an_error() {
    let text = r#"{
  "apiVersion": "k8s.otterize.com/v1alpha3",
  "kind": "ClientIntents",
  "metadata": {"name": "j"},
  "spec": {
    "service": {"name": "j"},
    "calls": [{"type": "aws", "name": "*", "awsActions": ["s3:GetObject",]}]
  }
}
"#;
    let report = read("j.json", text);
    let errors = shown(&report.errors);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("j.json:7: document 1: invalid JSON: trailing comma"),
        "{errors:?}"
    );
    assert!(report.intents.is_empty() && report.held_whole_bundle);
    let object = text.replace(r#""j"},"#, r#""j",},"#);
    let object = object.replace(r#""s3:GetObject","#, r#""s3:GetObject""#);
    let errors = shown(&read("j.json", &object).errors);
    assert!(
        errors[0].starts_with("j.json:4: document 1: invalid JSON: trailing comma"),
        "{errors:?}"
    );
    // The same text as YAML is fine: YAML allows it in flow collections.
    assert!(read("j.yaml", text).is_valid());
}

// --- templates and ARNs ------------------------------------------------------------------

#[test]
fn unknown_templates_in_arns_are_errors_naming_them() {
    let resource = JOKE_WORKER.replace("table/JokesTable", "table/$(AWS_FOO)");
    let errors = shown(&read("t.yaml", &resource).errors);
    assert_eq!(
        errors,
        vec![
            "t.yaml:10: document 1: spec.calls[0].name: \"arn:aws:dynamodb:eu-west-2:123456789012:\
             table/$(AWS_FOO)\": unknown template $(AWS_FOO); the known ones are $(AWS_REGION) \
             and $(AWS_ACCOUNT_ID)"
        ]
    );
    let region = JOKE_WORKER.replace("eu-west-2", "$(AWS_ZONE)");
    let errors = shown(&read("t.yaml", &region).errors);
    assert!(
        errors[0].contains("unknown template $(AWS_ZONE)"),
        "{errors:?}"
    );
    assert!(!errors[0].contains("region"), "{errors:?}");
    let mars = JOKE_WORKER.replace("eu-west-2", "mars-1");
    let errors = shown(&read("t.yaml", &mars).errors);
    assert!(
        errors[0].contains("region \"mars-1\" is not an AWS region"),
        "{errors:?}"
    );
}

// --- messages ----------------------------------------------------------------------------

#[test]
fn an_upper_case_service_is_told_to_be_lower_case() {
    let text = JOKE_WORKER.replace("dynamodb:GetItem", "DynamoDB:GetItem");
    assert_eq!(
        shown(&read("u.yaml", &text).errors),
        vec![
            "u.yaml:12: document 1: spec.calls[0].awsActions[0]: \"DynamoDB:GetItem\": service \
             names are lower case: dynamodb:GetItem"
        ]
    );
}

#[test]
fn duplicate_keys_are_named_without_parser_advice() {
    let text = JOKE_WORKER.replace(
        "    name: joke-worker\n",
        "    name: joke-worker\n    name: other\n",
    );
    let errors = shown(&read("d.yaml", &text).errors);
    assert_eq!(
        errors,
        vec!["d.yaml:9: document 1: invalid YAML: key \"name\" appears twice in this mapping"]
    );
}

#[test]
fn long_values_are_cut_in_messages() {
    let long = format!(
        "arn:aws:dynamodb:eu-west-2:1234:table/{}",
        "t".repeat(20_000)
    );
    let text = JOKE_WORKER.replace(
        "arn:aws:dynamodb:eu-west-2:123456789012:table/JokesTable",
        &long,
    );
    let errors = shown(&read("long.yaml", &text).errors);
    assert_eq!(errors.len(), 1);
    assert!(errors[0].len() < 500, "{}", errors[0].len());
    assert!(errors[0].contains("… (20038 characters)"), "{}", errors[0]);
    let action = format!("s3:{}", "G".repeat(20_000));
    let text = JOKE_WORKER.replace("dynamodb:GetItem", &action);
    let errors = shown(&read("long.yaml", &text).errors);
    assert!(errors[0].len() < 500, "{}", errors[0].len());
}

#[test]
fn the_error_list_of_a_bundle_is_capped_and_says_how_many_more() {
    let broken = JOKE_WORKER.replace("[dynamodb:GetItem]", "[42]");
    let text = vec![broken.as_str(); 300].join("---\n");
    let report = read("many.yaml", &text);
    assert!(!report.is_valid() && report.intents.is_empty());
    let errors = shown(&report.errors);
    assert_eq!(errors.len(), 101);
    assert!(errors[99].contains("document 100:"), "{}", errors[99]);
    assert_eq!(errors[100], "many.yaml: ... and 200 more errors");
    // The same 300 documents fixed read whole.
    let fixed = vec![JOKE_WORKER; 300].join("---\n");
    assert!(read("many.yaml", &fixed).is_valid());
}
