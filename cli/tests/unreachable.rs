//! An AWS endpoint with nothing listening: the CLI says once, in words, which endpoint it could
//! not reach, why, and what to check; never the SDK's `Debug` structures.

use std::net::TcpListener;
use std::process::Command;

/// A local port nothing listens on: bound, then released.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = listener.local_addr().expect("its address").port();
    drop(listener);
    port
}

fn eks_intents(endpoint: &str, args: &[&str]) -> (Option<i32>, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_eks-intents"));
    for (name, _) in std::env::vars() {
        if name.starts_with("AWS_") || name.starts_with("EKS_INTENTS_") || name == "RUST_LOG" {
            command.env_remove(name);
        }
    }
    let out = command
        .args(args)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", "eu-west-2")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("EKS_INTENTS_BUCKET", "eks-intents-test")
        .env("EKS_INTENTS_S3_PATH_STYLE", "true")
        .output()
        .expect("the eks-intents binary runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn reconcile_against_an_endpoint_with_nothing_listening_says_so_once_in_words() {
    let endpoint = format!("http://127.0.0.1:{}", closed_port());
    let (code, stderr) = eks_intents(&endpoint, &["reconcile", "--cluster", "demo"]);
    assert_eq!(code, Some(2), "{stderr}");
    let expected = format!("cannot connect to the S3 endpoint {endpoint}: connection refused");
    assert_eq!(stderr.matches(&expected).count(), 1, "{stderr}");
    assert!(
        stderr.contains(
            "check AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_S3), AWS_REGION and the network"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("cannot read the bundles of cluster demo"),
        "{stderr}"
    );
    for debug in ["DispatchFailure", "ConnectorError", " { ", "os error"] {
        assert!(!stderr.contains(debug), "{debug:?} in {stderr}");
    }
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[test]
fn status_against_an_endpoint_with_nothing_listening_says_so_once_in_words() {
    let endpoint = format!("http://127.0.0.1:{}", closed_port());
    let (code, stderr) = eks_intents(&endpoint, &["status", "--cluster", "demo"]);
    assert_eq!(code, Some(2), "{stderr}");
    let expected = format!("cannot connect to the S3 endpoint {endpoint}: connection refused");
    assert_eq!(stderr.matches(&expected).count(), 1, "{stderr}");
    assert!(!stderr.contains("DispatchFailure"), "{stderr}");
}
