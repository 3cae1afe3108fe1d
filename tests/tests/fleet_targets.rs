//! The request targets of a fleet (issue 13), at 1,000 workloads in 50 namespaces on the local
//! services, in both binding modes and both bundle layouts (one bundle per namespace, one per
//! workload). AWS calls are counted by the SDK's interceptor (the reconciler's own calls, S3
//! included), Kubernetes requests at the local API server.
//!
//! - A quiet run (nothing changed since the last) makes at most `FIXED` AWS calls, besides, in
//!   Pod Identity mode, one `DescribePodIdentityAssociation` per association the system owns
//!   and the `ListPodIdentityAssociations` pages past the first (EKS returns at most 100
//!   associations a page, so listing them is, like describing them, a cost per association);
//!   at most `FIXED` Kubernetes requests; no write of any kind (an S3 `PutObject` is one); and
//!   costs the same whether the fleet's intents come in 50 bundles or in 1,000.
//! - A first run (IRSA) writes 2 IAM calls, 1 server-side apply and 1 Event per workload, with
//!   reads bounded by a fixed number (besides one read of each bundle).
//!
//! Each test finds every target it misses before it fails, and names them all.

use eks_intents::model::BindingMode;
use integration::fleet::{self, Cost, Fleet, Layout};
use integration::scenario::{LocalCluster, World, world};
use std::collections::BTreeMap;

const WORKLOADS: usize = 1000;
const NAMESPACES: usize = 50;
/// The most requests a quiet run may make on each side, whatever the fleet's size.
const FIXED: u64 = 8;
/// The AWS reads of a first run besides one `GetObject` per bundle: the S3 listing, the
/// compiled state (absent) and the status report before it is written, `DescribeCluster`,
/// `GetAccountAuthorizationDetails`, the OIDC provider, `ListAddons`, `DescribeAddon`,
/// `ListPodIdentityAssociations` and the account's quotas (`GetAccountSummary`).
const FIRST_RUN_READS: u64 = 10;

/// The targets a run misses.
#[derive(Default)]
struct Misses(Vec<String>);

impl Misses {
    fn check(&mut self, met: bool, target: impl FnOnce() -> String) {
        if !met {
            self.0.push(target());
        }
    }

    fn assert_none(self) {
        assert!(
            self.0.is_empty(),
            "{} target(s) missed:\n- {}",
            self.0.len(),
            self.0.join("\n- ")
        );
    }
}

fn show(counts: &BTreeMap<String, u64>) -> String {
    let parts: Vec<String> = counts.iter().map(|(k, n)| format!("{k} {n}")).collect();
    format!("{{{}}}", parts.join(", "))
}

/// A world on a fleet of `WORKLOADS`, with its bundles uploaded in `layout`.
async fn fleet_world(mode: BindingMode, layout: Layout) -> (Fleet, World<LocalCluster>) {
    let fleet = Fleet::new(WORKLOADS, NAMESPACES);
    let w = world(mode, fleet::cluster(fleet)).await;
    fleet::upload(&w.clients.s3, fleet.bundles(layout, None)).await;
    (fleet, w)
}

/// Replaces every bundle with the same intents cut in `layout`.
async fn relayout(fleet: &Fleet, w: &World<LocalCluster>, layout: Layout) {
    fleet::delete_bundles(&w.clients.s3).await;
    fleet::upload(&w.clients.s3, fleet.bundles(layout, None)).await;
}

/// The run after one that changed something: it changes nothing, but its report says the
/// workloads are as declared where the last one said they were just updated, so it writes the
/// report (and the compiled state that records it) once more.
async fn settle(w: &World<LocalCluster>) {
    let cost = w.reconcile_counted().await;
    assert_eq!(cost.aws("PutObject"), 2, "{}", show(&cost.aws));
    assert_eq!(cost.writes(), 2, "{}", show(&cost.aws));
}

/// The quiet-run targets; `owned_associations` is how many Pod Identity associations the
/// system owns (0 in IRSA mode), each of which may be described once.
fn check_quiet(misses: &mut Misses, label: &str, cost: &Cost, owned_associations: u64) {
    let describes = cost.aws("DescribePodIdentityAssociation");
    misses.check(describes <= owned_associations, || {
        format!(
            "{label}: {describes} DescribePodIdentityAssociation for {owned_associations} owned associations"
        )
    });
    // EKS lists at most 100 associations a page: the pages past the first grow with them.
    let more_pages = cost
        .aws("ListPodIdentityAssociations")
        .saturating_sub(1)
        .min(owned_associations.div_ceil(100));
    let aws = cost.aws_total() - describes.min(owned_associations) - more_pages;
    misses.check(aws <= FIXED, || {
        format!(
            "{label}: {aws} AWS calls (target <= {FIXED}{}): {}",
            if owned_associations > 0 {
                ", besides one describe and a hundredth of a list page per owned association"
            } else {
                ""
            },
            show(&cost.aws)
        )
    });
    let kubernetes = cost.kubernetes_total();
    misses.check(kubernetes <= FIXED, || {
        format!(
            "{label}: {kubernetes} Kubernetes requests (target <= {FIXED}): {}",
            show(&cost.kubernetes)
        )
    });
    misses.check(cost.writes() == 0, || {
        format!(
            "{label}: {} write(s) (target 0): AWS {}, Kubernetes {}",
            cost.writes(),
            show(&cost.aws_writes()),
            show(&cost.kubernetes_writes())
        )
    });
}

/// The 1,000-bundle layout's quiet run costs what the 50-bundle layout's does.
fn check_same_cost(misses: &mut Misses, mode: &str, per_namespace: &Cost, per_workload: &Cost) {
    misses.check(per_workload.aws == per_namespace.aws, || {
        format!(
            "{mode}: a quiet run costs {} AWS calls with 1,000 bundles, {} with 50 (target: the same): {} against {}",
            per_workload.aws_total(),
            per_namespace.aws_total(),
            show(&per_workload.aws),
            show(&per_namespace.aws)
        )
    });
    misses.check(per_workload.kubernetes == per_namespace.kubernetes, || {
        format!(
            "{mode}: a quiet run costs {} Kubernetes requests with 1,000 bundles, {} with 50 (target: the same)",
            per_workload.kubernetes_total(),
            per_namespace.kubernetes_total()
        )
    });
}

/// The first run's targets in IRSA mode, for a fleet whose intents come in `bundles` bundles.
fn check_first_irsa(misses: &mut Misses, cost: &Cost, bundles: u64) {
    let n = WORKLOADS as u64;
    for operation in ["CreateRole", "PutRolePolicy"] {
        let calls = cost.aws(operation);
        misses.check(calls == n, || {
            format!("first run: {calls} {operation} for {n} workloads (target: one each)")
        });
    }
    // Beside the two per workload, the cluster's OIDC provider is the only IAM object made.
    let others: BTreeMap<String, u64> = cost
        .aws_writes()
        .into_iter()
        .filter(|(k, _)| {
            let op = k.split_once(':').map_or(k.as_str(), |(_, op)| op);
            !["CreateRole", "PutRolePolicy", "CreateOpenIDConnectProvider"].contains(&op)
                && !k.starts_with("S3:")
        })
        .collect();
    misses.check(others.is_empty(), || {
        format!(
            "first run: AWS writes besides 2 per workload: {}",
            show(&others)
        )
    });
    let providers = cost.aws("CreateOpenIDConnectProvider");
    misses.check(providers <= 1, || {
        format!("first run: {providers} CreateOpenIDConnectProvider (at most the cluster's one)")
    });
    let s3_writes = cost.aws("PutObject");
    misses.check(s3_writes <= 2, || {
        format!("first run: {s3_writes} S3 PutObject (target: the status and state objects)")
    });
    for (key, what) in [
        ("apply serviceaccounts", "server-side apply"),
        ("create events", "Event"),
    ] {
        let requests = cost.kubernetes(key);
        misses.check(requests == n, || {
            format!("first run: {requests} `{key}` for {n} workloads (target: one {what} each)")
        });
    }
    let other_kubernetes_writes: BTreeMap<String, u64> = cost
        .kubernetes_writes()
        .into_iter()
        .filter(|(k, _)| k != "apply serviceaccounts" && k != "create events")
        .collect();
    misses.check(other_kubernetes_writes.is_empty(), || {
        format!(
            "first run: other Kubernetes writes: {}",
            show(&other_kubernetes_writes)
        )
    });
    // Reads: a fixed number, besides the one read of each bundle a first run needs.
    let gets = cost.aws("GetObject").min(bundles);
    let aws_reads = cost.aws_reads() - gets;
    misses.check(aws_reads <= FIRST_RUN_READS, || {
        format!(
            "first run: {aws_reads} AWS reads besides one GetObject per bundle (target <= {FIRST_RUN_READS}): {}",
            show(&cost.aws)
        )
    });
    let kubernetes_reads = cost.kubernetes_reads();
    misses.check(kubernetes_reads <= FIXED, || {
        format!(
            "first run: {kubernetes_reads} Kubernetes reads (target <= {FIXED}): {}",
            show(&cost.kubernetes)
        )
    });
}

/// IRSA: the first run of the fleet (50 bundles), its quiet run, the same intents cut into
/// 1,000 bundles, and the quiet run of that layout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn irsa_fleet_first_and_quiet_runs_in_both_layouts() {
    let (fleet, w) = fleet_world(BindingMode::Irsa, Layout::PerNamespace).await;
    let mut misses = Misses::default();

    let first = w.reconcile_counted().await;
    check_first_irsa(&mut misses, &first, NAMESPACES as u64);
    settle(&w).await;

    let quiet_50 = w.reconcile_counted().await;
    check_quiet(&mut misses, "IRSA, quiet, 50 bundles", &quiet_50, 0);

    relayout(&fleet, &w, Layout::PerWorkload).await;
    // The roles' bundle tags follow the new keys: that run writes, the one after is quiet.
    w.reconcile_counted().await;
    settle(&w).await;
    let quiet_1000 = w.reconcile_counted().await;
    check_quiet(&mut misses, "IRSA, quiet, 1,000 bundles", &quiet_1000, 0);
    check_same_cost(&mut misses, "IRSA", &quiet_50, &quiet_1000);
    misses.assert_none();
}

/// Pod Identity: the quiet runs in both layouts, each describing at most the associations the
/// system owns (one per workload).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_identity_fleet_quiet_runs_in_both_layouts() {
    let (fleet, w) = fleet_world(BindingMode::PodIdentity, Layout::PerNamespace).await;
    let mut misses = Misses::default();
    let first = w.reconcile_counted().await;
    let created = first.aws("CreatePodIdentityAssociation");
    assert_eq!(created, WORKLOADS as u64, "first run: {}", show(&first.aws));
    let owned = WORKLOADS as u64;
    settle(&w).await;

    let quiet_50 = w.reconcile_counted().await;
    check_quiet(
        &mut misses,
        "Pod Identity, quiet, 50 bundles",
        &quiet_50,
        owned,
    );

    relayout(&fleet, &w, Layout::PerWorkload).await;
    // The roles' bundle tags follow the new keys: that run writes, the one after is quiet.
    w.reconcile_counted().await;
    settle(&w).await;
    let quiet_1000 = w.reconcile_counted().await;
    check_quiet(
        &mut misses,
        "Pod Identity, quiet, 1,000 bundles",
        &quiet_1000,
        owned,
    );
    check_same_cost(&mut misses, "Pod Identity", &quiet_50, &quiet_1000);
    misses.assert_none();
}
