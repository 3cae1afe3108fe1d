//! Benchmark: a fleet on the local services (the AWS emulator and the local Kubernetes API
//! server), reconciled through the real reconciler handler in both binding modes and both
//! bundle layouts: the first run, a quiet run, a run after one workload was added and one after
//! one workload's intents changed. Prints, per case, the AWS calls by service and operation (as
//! the SDK's interceptor counts them), the Kubernetes requests by verb (as the API server
//! counts them), the writes, the handler's wall time and the process's peak resident memory,
//! beside two reference columns: the Otterize operators' pattern and the physical minimum.
//! Measures only; the tests (`tests/fleet_targets.rs`) assert the targets.
//!
//! `cargo run --release -p integration --bin bench-fleet -- [--workloads N] [--namespaces M]
//! [--mode irsa|pod-identity|both] [--layout namespace|workload|both]`
//! (defaults: 1,000 workloads in 50 namespaces, both modes, both layouts)

use eks_intents::model::BindingMode;
use eks_intents::process::peak_rss_kib;
use integration::fleet::{self, Cost, Fleet, Layout};
use integration::scenario::{LocalCluster, World, world};
use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

const USAGE: &str = "usage: bench-fleet [--workloads N] [--namespaces M] \
                     [--mode irsa|pod-identity|both] [--layout namespace|workload|both]";

struct Options {
    fleet: Fleet,
    modes: Vec<BindingMode>,
    layouts: Vec<Layout>,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut workloads = 1000;
    let mut namespaces = 50;
    let mut modes = vec![BindingMode::Irsa, BindingMode::PodIdentity];
    let mut layouts = vec![Layout::PerNamespace, Layout::PerWorkload];
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{flag}: {value:?} is not a positive number"))
        };
        match flag.as_str() {
            "--workloads" => workloads = number()?,
            "--namespaces" => namespaces = number()?,
            "--mode" => {
                modes = match value.as_str() {
                    "irsa" => vec![BindingMode::Irsa],
                    "pod-identity" => vec![BindingMode::PodIdentity],
                    "both" => modes,
                    other => return Err(format!("--mode: unknown mode {other:?}")),
                }
            }
            "--layout" => {
                layouts = match value.as_str() {
                    "namespace" => vec![Layout::PerNamespace],
                    "workload" => vec![Layout::PerWorkload],
                    "both" => layouts,
                    other => return Err(format!("--layout: unknown layout {other:?}")),
                }
            }
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    Ok(Options {
        fleet: Fleet::new(workloads, namespaces),
        modes,
        layouts,
    })
}

/// Starts the peak over from the current resident memory (Linux: `5` to `clear_refs`); false
/// where that is not possible, so the peak is then the process's since it started.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Case {
    First,
    /// The run after the first: nothing to change, but the report now says the workloads are
    /// as declared instead of just updated, so it is written once more.
    Settle,
    Quiet,
    Added,
    Changed,
}

impl Case {
    const ALL: [Case; 5] = [
        Case::First,
        Case::Settle,
        Case::Quiet,
        Case::Added,
        Case::Changed,
    ];

    fn name(self) -> &'static str {
        match self {
            Case::First => "first",
            Case::Settle => "settle (report rewritten)",
            Case::Quiet => "quiet",
            Case::Added => "one added",
            Case::Changed => "one changed",
        }
    }
}

/// What the fleet holds when a case runs: for the reference columns.
struct Shape {
    mode: BindingMode,
    workloads: u64,
    /// Bundle objects under the cluster's prefix.
    bundles: u64,
    /// Roles (and, in Pod Identity mode, associations) made by the runs before.
    roles_before: u64,
}

/// The Otterize operators' pattern: each pass over the fleet reads each ServiceAccount's role
/// (1 `GetRole`) and makes 3 IAM calls per ClientIntents; a first or quiet run is such a pass
/// over every workload (their periodic resync), an added or changed workload is one pass over
/// its own objects.
fn otterize(case: Case, shape: &Shape) -> u64 {
    match case {
        Case::First | Case::Settle | Case::Quiet => shape.workloads + 3 * shape.workloads,
        Case::Added | Case::Changed => 1 + 3,
    }
}

/// The physical minimum of a level-triggered run, as (AWS calls, Kubernetes requests):
/// - reads: one S3 LIST page per 1,000 keys to see which bundles changed and one GET of each
///   bundle new or changed since the last run; `DescribeCluster`; one
///   `GetAccountAuthorizationDetails` page per 1,000 roles; the cluster's OIDC provider (IRSA);
///   `ListAddons` and one `DescribeAddon` per add-on (the fleet's cluster has one); in Pod
///   Identity mode one list page per 100 associations and one describe per association owned
///   (the list does not give its role); on Kubernetes, one LIST per kind read (ServiceAccounts
///   and the five workload kinds), unpaged;
/// - writes: per new workload `CreateRole` and `PutRolePolicy`, and either one server-side
///   apply and one Event (IRSA) or `CreatePodIdentityAssociation`; the cluster's OIDC provider
///   on the first IRSA run; one `PutRolePolicy` per changed workload; the status report, only
///   when something changed.
fn minimum(case: Case, shape: &Shape) -> (u64, u64) {
    let irsa = shape.mode == BindingMode::Irsa;
    let pages = |n: u64, per: u64| n.div_ceil(per).max(1);
    let bundles_read = match case {
        Case::First => shape.bundles,
        Case::Settle | Case::Quiet => 0,
        Case::Added | Case::Changed => 1,
    };
    let mut aws = pages(shape.bundles, 1000) + bundles_read + 1 + pages(shape.roles_before, 1000);
    aws += 2; // ListAddons, DescribeAddon
    if irsa {
        aws += 1;
    } else {
        aws += pages(shape.roles_before, 100) + shape.roles_before;
    }
    let new = match case {
        Case::First => shape.workloads,
        Case::Added => 1,
        Case::Settle | Case::Quiet | Case::Changed => 0,
    };
    aws += new * if irsa { 2 } else { 3 };
    if irsa && case == Case::First {
        aws += 1;
    }
    if case == Case::Changed {
        aws += 1;
    }
    if case != Case::Quiet {
        aws += 1;
    }
    let kubernetes = 6 + if irsa { 2 * new } else { 0 };
    (aws, kubernetes)
}

struct Measured {
    case: Case,
    cost: Cost,
    peak_kib: Option<u64>,
    otterize: u64,
    minimum: (u64, u64),
}

/// The four cases on a fresh world of `fleet` in `mode`, with its bundles in `layout`.
async fn run(fleet: Fleet, mode: BindingMode, layout: Layout) -> Vec<Measured> {
    let w: World<LocalCluster> = world(mode, fleet::cluster(fleet)).await;
    // An account that runs a fleet this large has its roles quota raised (IAM's default is
    // 1,000 roles, which the fleet fills): room for the workload the "one added" case adds.
    let roles_quota = 2 * fleet.workloads + 1_000;
    w.emulator.control(
        "POST",
        "/_harness/iam-quotas",
        Some(&serde_json::json!({ "quotas": { "RolesQuota": roles_quota } })),
    );
    let bundles = fleet.bundles(layout, None);
    let mut shape = Shape {
        mode,
        workloads: fleet.workloads as u64,
        bundles: bundles.len() as u64,
        roles_before: 0,
    };
    fleet::upload(&w.clients.s3, bundles).await;
    let admin = w.reconciler.kube.server.admin_client();
    let mut measured = Vec::new();
    for case in Case::ALL {
        let added = fleet.workloads;
        match case {
            Case::First | Case::Settle | Case::Quiet => {}
            Case::Added => {
                fleet::create_workload(&admin, fleet.workload(added)).await;
                let bundle = fleet.bundle_of(added, added + 1, layout, None);
                fleet::upload(&w.clients.s3, vec![bundle]).await;
                if layout == Layout::PerWorkload {
                    shape.bundles += 1;
                }
            }
            Case::Changed => {
                let bundle = fleet.bundle_of(0, added + 1, layout, Some(0));
                fleet::upload(&w.clients.s3, vec![bundle]).await;
            }
        }
        if case != Case::First {
            shape.roles_before = shape.workloads;
        }
        if case == Case::Added {
            shape.workloads += 1;
        }
        let reset = reset_peak();
        let cost = w.reconcile_counted().await;
        let peak_kib = peak_rss_kib().filter(|_| reset);
        measured.push(Measured {
            case,
            otterize: otterize(case, &shape),
            minimum: minimum(case, &shape),
            cost,
            peak_kib,
        });
    }
    measured
}

fn print(title: &str, measured: &[Measured]) {
    println!("\n## {title}\n");
    println!(
        "| case | AWS calls | Kubernetes requests | writes | wall (s) | peak RSS (MiB) | Otterize pattern (AWS) | physical minimum (AWS + Kubernetes) |"
    );
    println!("|---|--:|--:|--:|--:|--:|--:|--:|");
    for m in measured {
        let peak = m
            .peak_kib
            .map(|k| format!("{:.1}", k as f64 / 1024.0))
            .unwrap_or_else(|| "?".to_owned());
        println!(
            "| {} | {} | {} | {} | {:.2} | {} | {} | {} + {} |",
            m.case.name(),
            m.cost.aws_total(),
            m.cost.kubernetes_total(),
            m.cost.writes(),
            m.cost.wall.as_secs_f64(),
            peak,
            m.otterize,
            m.minimum.0,
            m.minimum.1
        );
    }
    println!();
    let header: Vec<&str> = measured.iter().map(|m| m.case.name()).collect();
    println!("| calls and requests | {} |", header.join(" | "));
    println!("|---|{}", "--:|".repeat(measured.len()));
    let rows = |side: &str, keys: BTreeSet<&String>, get: &dyn Fn(&Cost, &str) -> u64| {
        for key in keys {
            let counts: Vec<String> = measured
                .iter()
                .map(|m| get(&m.cost, key).to_string())
                .collect();
            println!("| {side} {key} | {} |", counts.join(" | "));
        }
    };
    let get = |counts: &BTreeMap<String, u64>, key: &str| counts.get(key).copied().unwrap_or(0);
    rows(
        "AWS",
        measured.iter().flat_map(|m| m.cost.aws.keys()).collect(),
        &|c, k| get(&c.aws, k),
    );
    rows(
        "Kubernetes",
        measured
            .iter()
            .flat_map(|m| m.cost.kubernetes.keys())
            .collect(),
        &|c, k| get(&c.kubernetes, k),
    );
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let options = match parse(&args) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("bench-fleet: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let fleet = options.fleet;
    println!(
        "# {} workloads in {} namespaces, {} core(s); AWS calls as the SDK counts them, Kubernetes requests as the API server counts them; writes of both (S3 included)",
        fleet.workloads,
        fleet.namespaces,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for &mode in &options.modes {
        for &layout in &options.layouts {
            let bundles = fleet.bundles(layout, None).len();
            let title = format!(
                "{}, {} ({bundles} bundles)",
                match mode {
                    BindingMode::Irsa => "IRSA",
                    BindingMode::PodIdentity => "Pod Identity",
                },
                layout.describe()
            );
            let measured = run(fleet, mode, layout).await;
            print(&title, &measured);
        }
    }
    ExitCode::SUCCESS
}
