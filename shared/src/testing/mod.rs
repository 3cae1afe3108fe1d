//! Fixture builders for tests of the core and of everything built on it (feature `test-util`).
//! The in-memory model of IAM, EKS and Kubernetes itself is `plan::simulate`, which the CLI
//! uses as well.

mod kubernetes;
mod ports;
pub use kubernetes::FakeKubernetes;
pub use ports::{FakeEks, FakeIam, FakeQueue, FakeStore};

use crate::model::{
    AccountId, ClusterInfo, ClusterName, ClusterRef, DesiredState, Namespace, ObservedAddon,
    ObservedServiceAccount, ObservedState, ObservedWorkload, Permission, Region,
    ServiceAccountName, ServiceAccountRef, Settings, SourceRef, WorkloadKind, WorkloadName,
    WorkloadRef,
};
use crate::plan::{Plan, plan, simulate};
use std::collections::BTreeMap;

pub const ACCOUNT: &str = "123456789012";
pub const REGION: &str = "eu-west-2";
pub const ISSUER: &str =
    "https://oidc.eks.eu-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";

/// The actions the EBS CSI driver's intents ask for in the reference scenario (its
/// `ebs-ci.yaml`), in the bundle's order.
pub const EBS_ACTIONS: [&str; 15] = [
    "ec2:AttachVolume",
    "ec2:CreateSnapshot",
    "ec2:CreateTags",
    "ec2:CreateVolume",
    "ec2:DeleteSnapshot",
    "ec2:DeleteTags",
    "ec2:DeleteVolume",
    "ec2:DescribeAvailabilityZones",
    "ec2:DescribeInstances",
    "ec2:DescribeSnapshots",
    "ec2:DescribeTags",
    "ec2:DescribeVolumes",
    "ec2:DescribeVolumesModifications",
    "ec2:DetachVolume",
    "ec2:ModifyVolume",
];

/// The cluster `demo` of the reference scenario, with an OIDC issuer.
pub fn cluster() -> ClusterInfo {
    ClusterInfo {
        cluster: ClusterRef::new(
            ClusterName::new("demo"),
            AccountId::new(ACCOUNT),
            Region::new(REGION),
        ),
        oidc_issuer: Some(ISSUER.to_owned()),
    }
}

/// An empty account for `cluster()`, with the cluster's workloads not observed.
pub fn empty() -> ObservedState {
    ObservedState::empty(cluster())
}

pub fn workload_ref(namespace: &str, name: &str) -> WorkloadRef {
    WorkloadRef {
        namespace: Namespace::new(namespace),
        name: WorkloadName::new(name),
        kind: None,
    }
}

pub fn service_account_ref(namespace: &str, name: &str) -> ServiceAccountRef {
    ServiceAccountRef {
        namespace: Namespace::new(namespace),
        name: ServiceAccountName::new(name),
    }
}

/// Adds an intent from `bundle` granting `actions` on `resource` to a workload.
pub fn declare(
    desired: &mut DesiredState,
    bundle: &str,
    namespace: &str,
    workload: &str,
    resource: &str,
    actions: &[&str],
) {
    desired.add(
        workload_ref(namespace, workload),
        actions.iter().map(|action| Permission {
            action: (*action).to_owned(),
            resource: resource.to_owned(),
        }),
        SourceRef {
            bundle: bundle.to_owned(),
            member: None,
            document: 1,
        },
    );
}

/// Records a Deployment running as `service_account`, and that ServiceAccount.
pub fn run_workload(
    observed: &mut ObservedState,
    namespace: &str,
    name: &str,
    service_account: &str,
) {
    observed
        .workloads
        .get_or_insert_with(Vec::new)
        .push(ObservedWorkload {
            namespace: Namespace::new(namespace),
            name: WorkloadName::new(name),
            kind: WorkloadKind::Deployment,
            service_account: service_account.to_owned(),
        });
    let id = service_account_ref(
        namespace,
        if service_account.is_empty() {
            "default"
        } else {
            service_account
        },
    );
    if !observed.service_accounts.iter().any(|sa| sa.id() == id) {
        observed.service_accounts.push(ObservedServiceAccount {
            namespace: id.namespace,
            name: id.name,
            annotations: BTreeMap::new(),
            annotation_owned: false,
            bound_label: false,
        });
    }
}

/// Records an EKS add-on that runs as the given ServiceAccounts.
pub fn install_addon(observed: &mut ObservedState, name: &str, service_accounts: &[(&str, &str)]) {
    observed.addons.push(ObservedAddon {
        name: name.into(),
        service_accounts: service_accounts
            .iter()
            .map(|(ns, sa)| service_account_ref(ns, sa))
            .collect(),
        service_account_role_arn: None,
        pod_identity_associations: BTreeMap::new(),
        recommended_policies: BTreeMap::new(),
    });
}

/// Plans, applies the plan in the in-memory model, and returns the plan and the new state.
pub fn converge(
    desired: &DesiredState,
    observed: &ObservedState,
    settings: &Settings,
) -> (Plan, ObservedState) {
    let planned = plan(desired, observed, settings);
    let next = simulate(observed, &planned.actions);
    (planned, next)
}
