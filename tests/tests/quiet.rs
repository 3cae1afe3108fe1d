//! A reconcile reads only what changed and writes nothing when nothing changed, counted at the
//! local AWS emulator by S3 operation and object key: the bundles are read again only when
//! their ETag changed, the compiled desired state (`state/<cluster>.json`) stands in for them
//! on a cold start, and a status report that would say the same is not written again.

use eks_intents::desired::Memory;
use eks_intents::model::BindingMode;
use integration::scenario::*;
use serde_json::Value;
use std::collections::BTreeMap;

const STATE: &str = "state/demo.json";
const STATUS: &str = "status/demo.json";
const WORKER: &str = "intents/demo/jokes/joke-worker-ci.yaml";

/// The S3 objects `operation` touched since the counts were cleared, with how often.
fn touched(
    w: &World<impl eks_intents::ports::KubernetesConnector>,
    operation: &str,
) -> BTreeMap<String, u64> {
    serde_json::from_value(w.emulator.objects()[operation].clone()).unwrap_or_default()
}

/// The bundles read since the counts were cleared.
fn bundles_read(w: &World<impl eks_intents::ports::KubernetesConnector>) -> Vec<String> {
    touched(w, "GetObject")
        .into_keys()
        .filter(|key| key.starts_with("intents/"))
        .collect()
}

/// The joke-worker's intents, narrowed from `dynamodb:*` to two actions.
fn narrowed_worker() -> Vec<u8> {
    let seed = String::from_utf8(seed("joke-worker-ci.yaml")).expect("UTF-8");
    assert!(seed.contains("\"dynamodb:*\""), "{seed}");
    seed.replace(
        "\"dynamodb:*\"",
        "\"dynamodb:GetItem\"\n        - \"dynamodb:Query\"",
    )
    .into_bytes()
}

/// The seed scenario, reconciled until its report says every workload is ready.
async fn settled(mode: BindingMode) -> World<eks_intents::testing::FakeKubernetes> {
    let w = world(mode, seed_fake_cluster).await;
    w.upload_seed().await;
    w.run_reconciler().await;
    // The second run reports the roles made by the first as ready: a new report.
    w.reconcile_again().await;
    w
}

#[tokio::test]
async fn a_quiet_run_reads_no_bundle_and_writes_nothing() {
    for mode in [BindingMode::Irsa, BindingMode::PodIdentity] {
        let w = settled(mode).await;
        let before = w.status().await;
        w.emulator.clear_requests();
        w.reconcile_again().await;
        assert_eq!(touched(&w, "PutObject"), BTreeMap::new(), "{mode:?}");
        assert_eq!(w.aws_writes(), BTreeMap::new(), "{mode:?}");
        // The compiled state, asked for only if it changed: nothing else of the bucket.
        assert_eq!(
            touched(&w, "GetObject"),
            BTreeMap::from([(STATE.to_owned(), 1)]),
            "{mode:?}"
        );
        assert_eq!(
            w.emulator.requests()["s3"]["ListObjectsV2"].as_u64(),
            Some(1),
            "{mode:?}"
        );
        // The stored report is the one the last change wrote.
        assert_eq!(w.status().await, before, "{mode:?}");
    }
}

#[tokio::test]
async fn a_changed_bundle_alone_is_read_again() {
    let w = settled(BindingMode::Irsa).await;
    w.put(WORKER, narrowed_worker()).await;
    w.notify(WORKER, false).await;
    w.emulator.clear_requests();
    w.run_reconciler().await;
    assert_eq!(bundles_read(&w), [WORKER]);
    // The new permission is granted, the report and the compiled state written once each.
    assert_eq!(
        w.aws_writes().get("iam:PutRolePolicy").copied(),
        Some(1),
        "{:?}",
        w.aws_writes()
    );
    let written = touched(&w, "PutObject");
    assert_eq!(written.get(STATUS), Some(&1), "{written:?}");
    assert_eq!(written.get(STATE), Some(&1), "{written:?}");
    let status = w.status().await;
    let worker = status["bundles"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["key"] == WORKER))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(worker["valid"], true, "{status:#}");
}

#[tokio::test]
async fn a_cold_start_reads_the_compiled_state_instead_of_the_bundles() {
    let mut w = settled(BindingMode::Irsa).await;
    let warm = w.status().await;
    // A new function instance: nothing in memory.
    w.reconciler.memory = Memory::default();
    w.emulator.clear_requests();
    w.reconcile_again().await;
    assert_eq!(bundles_read(&w), Vec::<String>::new());
    assert_eq!(
        touched(&w, "GetObject"),
        BTreeMap::from([(STATE.to_owned(), 1)])
    );
    // It found the same desired state: nothing to change, nothing written.
    assert_eq!(w.aws_writes(), BTreeMap::new());
    assert_eq!(touched(&w, "PutObject"), BTreeMap::new());
    assert_eq!(w.status().await, warm);

    // Without the compiled state (deleted, or never written), a cold start reads every bundle
    // and still finds the same desired state.
    w.clients
        .s3
        .delete_object()
        .bucket(BUCKET)
        .key(STATE)
        .send()
        .await
        .expect("delete the compiled state");
    w.reconciler.memory = Memory::default();
    w.emulator.clear_requests();
    w.reconcile_again().await;
    let mut expected: Vec<String> = SEED_KEYS.iter().map(|(k, _)| (*k).to_owned()).collect();
    expected.sort();
    assert_eq!(bundles_read(&w), expected);
    assert_eq!(w.aws_writes(), BTreeMap::new());
    // Nothing says what the stored report holds any more: it is written once, with the state.
    assert_eq!(touched(&w, "PutObject").get(STATE), Some(&1));
    assert_eq!(touched(&w, "PutObject").get(STATUS), Some(&1));
}

#[tokio::test]
async fn the_next_report_written_tells_the_last_quiet_run() {
    let w = settled(BindingMode::Irsa).await;
    assert_eq!(w.status().await.get("last_quiet_run_at"), None);
    w.reconcile_again().await;
    // A change of intents: the report is written, and says when the cluster was last found
    // unchanged.
    w.put(WORKER, narrowed_worker()).await;
    w.notify(WORKER, false).await;
    w.run_reconciler().await;
    let status = w.status().await;
    let quiet = status["last_quiet_run_at"]
        .as_u64()
        .expect("last quiet run");
    assert!(quiet <= status["generated_at"].as_u64().unwrap_or_default());
}

/// Bundles that must be fetched (here: all of them, on a first run) are fetched 16 at a time,
/// not one after another.
#[tokio::test]
async fn bundles_to_read_are_fetched_sixteen_at_a_time() {
    let w = world(BindingMode::Irsa, seed_fake_cluster).await;
    for i in 0..40 {
        let name = format!("worker-{i:02}");
        let key = format!("intents/demo/jokes/{name}.yaml");
        let body = format!(
            "apiVersion: k8s.otterize.com/v1alpha3\nkind: ClientIntents\nmetadata:\n  name: {name}\n\
             spec:\n  service:\n    name: {name}\n  calls:\n  - name: \"*\"\n    type: aws\n    \
             awsActions:\n        - \"dynamodb:GetItem\"\n"
        );
        w.put(&key, body.into_bytes()).await;
    }
    w.emulator.control(
        "POST",
        "/_harness/delays",
        Some(&serde_json::json!({"service": "s3", "operation": "GetObject", "seconds": 0.2})),
    );
    w.emulator.clear_requests();
    w.reconcile_again().await;
    assert_eq!(bundles_read(&w).len(), 40);
    let delays = w.emulator.control("GET", "/_harness/delays", None);
    let peak = delays["peaks"]["s3"]["GetObject"]
        .as_u64()
        .unwrap_or_default();
    assert_eq!(peak, 16, "bundles fetched at once: {delays:#}");
    let status = w.status().await;
    assert_eq!(status["bundles"].as_array().map(Vec::len), Some(40));
}
