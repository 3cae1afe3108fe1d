//! Benchmark: the seed scenario's first reconcile on the local AWS emulator under a throttling
//! storm (30 IAM or 10 EKS throttled requests in a row), through the real reconciler handler.
//! Prints, per round, the seconds spent waiting between attempts, the attempts and calls, and
//! the run's wall time. Measures only; the tests assert behaviour.
//!
//! `cargo run -p integration --bin bench-throttling [ROUNDS]` (default 3; the waits do not
//! depend on the build profile)

use eks_intents::model::BindingMode;
use eks_intents::testing::FakeKubernetes;
use integration::scenario::{World, seed_fake_cluster, world};
use serde_json::{Value, json};
use std::time::Instant;

fn sum(map: &Value) -> u64 {
    map.as_object()
        .into_iter()
        .flatten()
        .filter_map(|(_, n)| n.as_u64())
        .sum()
}

/// One round: a fresh emulator and world, the storm, one reconcile; the status's figures.
async fn round(service: &str, throttles: u64) -> (f64, u64, u64, u64, f64, bool) {
    let w: World<FakeKubernetes> = world(BindingMode::Irsa, seed_fake_cluster).await;
    w.upload_seed().await;
    if throttles > 0 {
        w.emulator.control(
            "POST",
            "/_harness/faults",
            Some(&json!({"service": service, "operation": "*", "code": "Throttling", "count": throttles})),
        );
    }
    let started = Instant::now();
    w.run_reconciler().await;
    let wall = started.elapsed().as_secs_f64();
    let status = w.status().await;
    let ready = status["workloads"]
        .as_array()
        .is_some_and(|ws| ws.iter().all(|w| w["state"] == "Ready"));
    (
        status["retry_wait_ms"].as_u64().unwrap_or_default() as f64 / 1000.0,
        sum(&status["api_attempts"]),
        sum(&status["api_calls"]),
        sum(&status["throttled"]),
        wall,
        ready,
    )
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(3);
    println!("storm               round  waiting_s  attempts  calls  throttled  run_s  converged");
    for (label, service, throttles) in [
        ("none", "iam", 0),
        ("30 IAM throttles", "iam", 30),
        ("10 EKS throttles", "eks", 10),
    ] {
        let mut waits = Vec::new();
        for n in 1..=rounds {
            let (waiting, attempts, calls, throttled, wall, ready) =
                round(service, throttles).await;
            waits.push(waiting);
            println!(
                "{label:<18}  {n:>5}  {waiting:>9.2}  {attempts:>8}  {calls:>5}  {throttled:>9}  {wall:>5.2}  {ready}"
            );
        }
        let mean = waits.iter().sum::<f64>() / waits.len().max(1) as f64;
        let max = waits.iter().copied().fold(0.0, f64::max);
        println!("{label:<18}  mean waiting {mean:.2} s, max {max:.2} s over {rounds} round(s)");
    }
}
