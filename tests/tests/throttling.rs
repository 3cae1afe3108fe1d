//! Throttling storms on the local AWS emulator: a run rides out long runs of throttled requests
//! with short jittered waits and converges, the status counts the attempts and names the
//! throttled calls, and a run whose retry budget is spent fails as retryable, its message back
//! on the queue. How long the waits take is printed by `bench-throttling`, never asserted here.

use aws_sdk_sqs::types::QueueAttributeName;
use eks_intents::model::BindingMode;
use integration::scenario::*;
use serde_json::{Value, json};
use std::time::Duration;

/// The counts of `status[field]` whose key starts with `service:`, summed.
fn total(status: &Value, field: &str, service: &str) -> u64 {
    status[field]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(call, _)| call.starts_with(&format!("{service}:")))
        .filter_map(|(_, n)| n.as_u64())
        .sum()
}

/// Runs the seed scenario with `throttles` consecutive throttled requests of `service`, and
/// checks that it converged and that the status accounts for every throttled attempt.
async fn storm(service: &str, status_service: &str, throttles: u64) {
    let w = world(BindingMode::Irsa, seed_fake_cluster).await;
    w.upload_seed().await;
    w.emulator.control(
        "POST",
        "/_harness/faults",
        Some(&json!({"service": service, "operation": "*", "code": "Throttling", "count": throttles})),
    );
    assert_eq!(w.run_reconciler().await, 4);

    // Every fault was served, and the run still converged.
    assert_eq!(
        w.emulator.control("GET", "/_harness/faults", None)["faults"],
        json!([])
    );
    let state = w.inspect();
    assert_eq!(state["roles"].as_object().map(|r| r.len()), Some(3));
    let status = w.status().await;
    assert_eq!(status["error"], Value::Null, "{status:#}");
    let workloads = status["workloads"].as_array().cloned().unwrap_or_default();
    assert_eq!(workloads.len(), 3, "{status:#}");
    assert!(
        workloads.iter().all(|w| w["state"] == "Ready"),
        "{status:#}"
    );

    // The status names the throttled calls and counts the attempts they took: one per call,
    // and one more per throttled request.
    let throttled = total(&status, "throttled", status_service);
    assert_eq!(throttled, throttles, "{:#}", status["throttled"]);
    assert!(
        status["throttled"].as_object().is_some_and(|t| t
            .keys()
            .all(|k| k.starts_with(&format!("{status_service}:")))),
        "{:#}",
        status["throttled"]
    );
    assert_eq!(
        total(&status, "api_attempts", status_service),
        total(&status, "api_calls", status_service) + throttles,
        "{status:#}"
    );
    // Each throttled call appears in both counts.
    for (call, n) in status["throttled"].as_object().into_iter().flatten() {
        let attempts = status["api_attempts"][call].as_u64().unwrap_or_default();
        let calls = status["api_calls"][call].as_u64().unwrap_or_default();
        assert_eq!(attempts, calls + n.as_u64().unwrap_or_default(), "{call}");
    }
    // The emulator saw exactly those attempts.
    let requests = w.emulator.requests();
    let seen: u64 = requests[service]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(_, n)| n.as_u64())
        .sum();
    assert!(seen >= throttles + total(&status, "api_calls", status_service));
}

#[tokio::test]
async fn thirty_consecutive_iam_throttles_slow_the_run_but_it_converges() {
    storm("iam", "IAM", 30).await;
}

#[tokio::test]
async fn ten_consecutive_eks_throttles_slow_the_run_but_it_converges() {
    storm("eks", "EKS", 10).await;
}

#[tokio::test]
async fn a_spent_retry_budget_fails_the_run_as_retryable_and_the_message_returns() {
    let w = world(BindingMode::Irsa, seed_fake_cluster).await;
    w.upload_seed().await;
    // A failed message comes back after the queue's visibility timeout: one second here.
    w.clients
        .sqs
        .set_queue_attributes()
        .queue_url(&w.queue_url)
        .attributes(QueueAttributeName::VisibilityTimeout, "1")
        .send()
        .await
        .expect("visibility timeout");
    w.emulator.control(
        "POST",
        "/_harness/faults",
        Some(&json!({"service": "iam", "operation": "*", "code": "Throttling", "count": 100_000})),
    );
    // As the reconciler's `main` does from the invocation's deadline: here, little time left.
    w.clients.retry.start(Duration::from_millis(400));
    let (received, failed) = w.run_batch_as_lambda().await;
    assert_eq!((received, failed), (4, 4), "every message is handed back");
    w.emulator.control("DELETE", "/_harness/faults", None);

    let status = w.status().await;
    let error = status["error"].as_str().unwrap_or_default();
    assert!(error.contains("Throttling"), "{status:#}");
    // The failed run's status names the throttled call and counts its attempts.
    let throttled = status["throttled"]["IAM:GetAccountAuthorizationDetails"]
        .as_u64()
        .unwrap_or_default();
    assert!(throttled >= 1, "{status:#}");
    assert_eq!(
        status["api_attempts"]["IAM:GetAccountAuthorizationDetails"].as_u64(),
        Some(throttled),
        "every attempt was throttled: {status:#}"
    );
    // Nothing was created, and the messages come back once their visibility ends.
    assert_eq!(w.inspect()["roles"].as_object().map(|r| r.len()), Some(0));
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // With time again, the returned messages' runs converge.
    w.clients.retry.start(Duration::from_secs(120));
    let mut returned = 0;
    for _ in 0..10 {
        returned += w.run_reconciler().await;
        if returned >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(returned, 4, "every message came back");
    assert_eq!(w.inspect()["roles"].as_object().map(|r| r.len()), Some(3));
}

#[tokio::test]
async fn changes_throttled_past_the_budget_fail_their_workloads_and_the_messages_return() {
    let w = world(BindingMode::Irsa, seed_fake_cluster).await;
    w.upload_seed().await;
    w.emulator.control(
        "POST",
        "/_harness/faults",
        Some(&json!({"service": "iam", "operation": "CreateRole", "code": "Throttling", "count": 100_000})),
    );
    // Enough for the reads of the run; CreateRole is throttled until the budget is spent.
    w.clients.retry.start(Duration::from_secs(5));
    let (received, failed) = w.run_batch_as_lambda().await;
    w.emulator.control("DELETE", "/_harness/faults", None);
    assert_eq!((received, failed), (4, 4), "every message is handed back");

    let status = w.status().await;
    assert_eq!(status["error"], Value::Null, "{status:#}");
    let workloads = status["workloads"].as_array().cloned().unwrap_or_default();
    assert!(
        workloads.iter().all(|w| w["state"] == "Error"
            && w["message"]
                .as_str()
                .unwrap_or_default()
                .contains("Throttling")),
        "{status:#}"
    );
    let throttled: Vec<&String> = status["throttled"]
        .as_object()
        .map(|t| t.keys().collect())
        .unwrap_or_default();
    assert_eq!(throttled, ["IAM:CreateRole"], "{status:#}");
    assert!(
        status["api_attempts"]["IAM:CreateRole"].as_u64()
            > status["api_calls"]["IAM:CreateRole"].as_u64(),
        "{status:#}"
    );
}
