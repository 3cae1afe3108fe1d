//! `eks-intents status` against the local AWS emulator, configured the standard way
//! (`AWS_ENDPOINT_URL`, region, credentials from the environment).

use eks_intents::model::{DesiredState, Settings};
use eks_intents::plan::plan;
use eks_intents::status::StatusReport;
use eks_intents::testing::{converge, declare, empty, run_workload};
use integration::scenario::create_bucket;
use integration::{Emulator, REGION};
use std::collections::BTreeMap;
use std::process::Command;

#[tokio::test]
async fn status_prints_the_clusters_report_as_a_table() {
    let emulator = Emulator::start();
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&emulator.sdk_config())
            .force_path_style(true)
            .build(),
    );
    create_bucket(&s3, "status-test").await;

    let mut desired = DesiredState::default();
    declare(
        &mut desired,
        "intents/demo/jokes/w.yaml",
        "jokes",
        "joke-worker",
        "*",
        &["dynamodb:GetItem"],
    );
    declare(
        &mut desired,
        "intents/demo/jokes/w.yaml",
        "jokes",
        "joke-server",
        "*",
        &["s3:GetObject"],
    );
    let mut observed = empty();
    run_workload(&mut observed, "jokes", "joke-worker", "joke-worker");
    let settings = Settings {
        permissions_boundary: Some("arn:aws:iam::123456789012:policy/boundary".into()),
        ..Settings::default()
    };
    let (_, state) = converge(&desired, &observed, &settings);
    let planned = plan(&desired, &state, &settings);
    let report = StatusReport::new(
        "demo",
        1_795_000_000,
        Settings::default().mode,
        false,
        Vec::new(),
        &planned,
        &|_| None,
        0,
        BTreeMap::new(),
    );
    s3.put_object()
        .bucket("status-test")
        .key("status/demo.json")
        .body(serde_json::to_vec(&report).unwrap().into())
        .send()
        .await
        .expect("put status");

    let out = Command::new(env!("CARGO_BIN_EXE_eks-intents"))
        .args(["status", "--cluster", "demo", "--bucket", "status-test"])
        .env("AWS_ENDPOINT_URL", &emulator.url)
        .env("AWS_REGION", REGION)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("EKS_INTENTS_S3_PATH_STYLE", "true")
        .env_remove("AWS_PROFILE")
        .output()
        .expect("eks-intents runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("cluster demo (irsa mode)"), "{stdout}");
    assert!(
        lines[1].starts_with("NAMESPACE  WORKLOAD     SERVICEACCOUNT  STATE"),
        "{stdout}"
    );
    let worker = lines
        .iter()
        .find(|l| l.contains("joke-worker"))
        .expect("a joke-worker row");
    assert!(
        worker.contains("Ready")
            && worker
                .contains("arn:aws:iam::123456789012:role/eks-intents/demo/demo.jokes.joke-worker"),
        "{worker}"
    );
    let server = lines
        .iter()
        .find(|l| l.contains("joke-server"))
        .expect("a joke-server row");
    assert!(
        server.contains("Pending") && server.contains("no workload named joke-server"),
        "{server}"
    );

    let missing = Command::new(env!("CARGO_BIN_EXE_eks-intents"))
        .args(["status", "--cluster", "other", "--bucket", "status-test"])
        .env("AWS_ENDPOINT_URL", &emulator.url)
        .env("AWS_REGION", REGION)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("EKS_INTENTS_S3_PATH_STYLE", "true")
        .output()
        .expect("eks-intents runs");
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&missing.stderr)
            .contains("no status report at s3://status-test/status/other.json")
    );
}
