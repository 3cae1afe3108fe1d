//! Parsing and planning at fleet scale: 10,000 workloads across 100 bundles. Prints CPU time
//! and peak memory (Linux `/proc`); run with `cargo bench -p eks-intents --features test-util`.

use eks_intents::intent::{BundleInput, Limits, read_bundle};
use eks_intents::model::{
    DesiredState, Namespace, ObservedServiceAccount, ObservedWorkload, ServiceAccountName,
    Settings, WorkloadKind, WorkloadName,
};
use eks_intents::plan::{plan, simulate};
use eks_intents::process::{cpu_time, peak_rss_kib};
use eks_intents::testing;
use std::time::Instant;

const BUNDLES: usize = 100;
const WORKLOADS_PER_BUNDLE: usize = 100;

fn bundle(index: usize) -> String {
    let mut out = String::new();
    for w in 0..WORKLOADS_PER_BUNDLE {
        out.push_str(&format!(
            "apiVersion: k8s.otterize.com/v1alpha3\nkind: ClientIntents\nmetadata:\n  name: w{w}\nspec:\n  service:\n    name: worker-{w:03}\n  calls:\n    - name: arn:aws:dynamodb:$(AWS_REGION):$(AWS_ACCOUNT_ID):table/t-{index}-{w}\n      type: aws\n      awsActions: [dynamodb:GetItem, dynamodb:PutItem, dynamodb:Query]\n    - name: arn:aws:s3:::bucket-{index}/*\n      type: aws\n      awsActions: [s3:GetObject]\n---\n"
        ));
    }
    out
}

fn measure<T>(label: &str, f: impl FnOnce() -> T) -> T {
    let cpu = cpu_time();
    let wall = Instant::now();
    let out = f();
    let elapsed = wall.elapsed();
    let cpu = match (cpu, cpu_time()) {
        (Some(a), Some(b)) => format!("{:>6} ms CPU", (b - a).as_millis()),
        _ => "   n/a CPU".to_owned(),
    };
    println!(
        "{label:<44} {:>8.1} ms wall  {cpu}",
        elapsed.as_secs_f64() * 1000.0
    );
    out
}

fn main() {
    let bundles: Vec<(String, String)> = (0..BUNDLES)
        .map(|i| (format!("intents/demo/team-{i:03}/intents.yaml"), bundle(i)))
        .collect();
    let namespaces: Vec<Namespace> = (0..BUNDLES)
        .map(|i| Namespace::new(format!("team-{i:03}")))
        .collect();
    let total_bytes: usize = bundles.iter().map(|(_, b)| b.len()).sum();
    println!(
        "{BUNDLES} bundles, {} workloads, {:.1} MiB of YAML",
        BUNDLES * WORKLOADS_PER_BUNDLE,
        total_bytes as f64 / 1024.0 / 1024.0
    );

    let limits = Limits::default();
    let desired = measure("parse 100 bundles", || {
        let mut desired = DesiredState::default();
        for ((key, text), namespace) in bundles.iter().zip(&namespaces) {
            let report = read_bundle(
                &BundleInput {
                    key,
                    bytes: text.as_bytes(),
                    default_namespace: Some(namespace),
                    tenant_namespace: Some(namespace),
                },
                &limits,
            );
            assert!(report.is_valid(), "{:?}", report.errors.first());
            report.add_to(&mut desired);
        }
        desired
    });
    assert_eq!(desired.workloads.len(), BUNDLES * WORKLOADS_PER_BUNDLE);
    print_peak("peak memory after parse");

    let mut observed = testing::empty();
    let mut workloads = Vec::new();
    for namespace in &namespaces {
        for w in 0..WORKLOADS_PER_BUNDLE {
            let name = format!("worker-{w:03}");
            workloads.push(ObservedWorkload {
                namespace: namespace.clone(),
                name: WorkloadName::new(name.as_str()),
                kind: WorkloadKind::Deployment,
                service_account: name.clone(),
            });
            observed.service_accounts.push(ObservedServiceAccount {
                namespace: namespace.clone(),
                name: ServiceAccountName::new(name),
                annotations: Default::default(),
                annotation_owned: false,
                bound_label: false,
            });
        }
    }
    observed.workloads = Some(workloads);
    drop(bundles);
    let settings = Settings {
        permissions_boundary: Some("arn:aws:iam::123456789012:policy/eks-intents-boundary".into()),
        ..Settings::default()
    };
    let first = measure("plan against an empty account", || {
        plan(&desired, &observed, &settings)
    });
    println!("{:<44} {:>8}", "  actions", first.actions.len());
    print_peak("peak memory after parse + plan (a reconcile)");
    let converged = simulate(&observed, &first.actions);
    drop(first);
    drop(observed);
    let again = measure("plan again, nothing changed (no-op)", || {
        plan(&desired, &converged, &settings)
    });
    assert!(again.is_empty());
    print_peak("peak memory of the whole run");
}

fn print_peak(label: &str) {
    match peak_rss_kib().map(|kib| kib as f64 / 1024.0) {
        Some(mib) => println!("{label:<44} {mib:>8.1} MiB"),
        None => println!("{label}: n/a (no /proc)"),
    }
}
