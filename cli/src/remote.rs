//! The commands that talk to AWS: `reconcile` (the reconciler's run, from this machine) and
//! `status` (the last report of a cluster).

use anyhow::{Context, Result, bail};
use eks_intents::adapters::aws::{AwsClients, S3Adapter};
use eks_intents::config::{self, Config};
use eks_intents::desired::Memory;
use eks_intents::ports::BundleStore;
use eks_intents::reconcile::{ReconcilePorts, Run, reconcile as run_reconcile};
use eks_intents::status::{StatusReport, status_key};
use std::process::ExitCode;

/// The deployment's configuration, with the bucket from the command line when given.
fn config(bucket: Option<String>) -> Result<Config> {
    let bucket = bucket.or_else(|| std::env::var(config::BUCKET).ok());
    Ok(Config::from_lookup(|name| {
        if name == config::BUCKET {
            bucket.clone()
        } else {
            std::env::var(name).ok()
        }
    })?)
}

pub async fn reconcile(cluster: &str, dry_run: bool, bucket: Option<String>) -> Result<ExitCode> {
    eks_intents::telemetry::init();
    let config = config(bucket)?;
    let clients = AwsClients::from_env(&config.aws).await;
    clients.retry.start(config.aws.retry_budget);
    let store = S3Adapter::new(clients.s3.clone(), config.bucket.clone());
    let ports = ReconcilePorts {
        iam: &clients.iam,
        eks: &clients.eks,
        kube: &clients.kubernetes,
        store: &store,
        memory: &Memory::default(),
        // The CLI acts in its own account only (as with clusters of other accounts).
        targets: &eks_intents::ports::NoTargets::<eks_intents::adapters::aws::IamAdapter>::NONE,
    };
    let calls = || clients.calls.counts();
    let run = if dry_run { Run::DryRun } else { Run::Apply };
    let outcome = run_reconcile(cluster, &ports, &config.reconcile, run, &calls).await?;
    print!("{}", outcome.report.table());
    Ok(if outcome.report.summary.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub async fn status(cluster: &str, bucket: Option<String>, json: bool) -> Result<ExitCode> {
    let config = config(bucket)?;
    let clients = AwsClients::from_env(&config.aws).await;
    let store = S3Adapter::new(clients.s3, config.bucket.clone());
    let key = status_key(cluster);
    let object = store
        .get(&key, 64 * 1024 * 1024)
        .await
        .with_context(|| format!("no status report at s3://{}/{key}", config.bucket))?;
    let report: StatusReport = serde_json::from_slice(&object.bytes)
        .with_context(|| format!("s3://{}/{key} is not a status report", config.bucket))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    if report.cluster != cluster {
        bail!("the report at {key} is about cluster {}", report.cluster);
    }
    Ok(ExitCode::SUCCESS)
}
