//! Cross-account targets in a run: which other accounts a cluster's run reads, and what the
//! system holds under the cluster's path there (`ObservedState::targets`), through the
//! deployment's role in each (`TargetAccounts`).
//!
//! An account is read when the intents name resources there (and the deployment has a role
//! there: the planner refuses the others, with what is missing), or when a role of the cluster
//! says a target role of it is there (`policy::TARGET_ACCOUNT_TAG`), so that target roles no
//! longer wanted are found and deleted. A cluster without cross-account intents reads nothing.

use crate::intent::resolve_placeholders;
use crate::model::{
    BindingMode, ClusterInfo, DesiredState, ObservedRole, ObservedTarget, Settings,
};
use crate::policy::{self, Ownership, TARGET_ACCOUNT_TAG};
use crate::ports::{IamPort, TargetAccounts};
use std::collections::{BTreeMap, BTreeSet};

/// The other accounts this run reads: named by the intents or by the cluster's roles, and
/// where the deployment has a role.
pub fn accounts_to_read(
    desired: &DesiredState,
    roles: &[ObservedRole],
    cluster: &ClusterInfo,
    settings: &Settings,
) -> BTreeSet<String> {
    if settings.target_accounts.is_empty() {
        return BTreeSet::new();
    }
    let cluster = &cluster.cluster;
    let home = cluster.account.as_str();
    let mut accounts = BTreeSet::new();
    for workload in desired.workloads.values() {
        for permission in &workload.permissions {
            let resource =
                resolve_placeholders(&permission.resource, cluster.region.as_str(), home);
            if let Some(account) = policy::resource_account(&resource, &settings.bucket_accounts)
                && account != home
            {
                accounts.insert(account.to_owned());
            }
        }
    }
    for role in roles {
        if policy::ownership(&role.tags, cluster) == Ownership::Ours
            && let Some(named) = role.tags.get(TARGET_ACCOUNT_TAG)
        {
            accounts.extend(named.split(' ').map(str::to_owned));
        }
    }
    accounts.retain(|a| settings.target_accounts.contains(a));
    accounts
}

/// Reads each account: the roles under `path` and, for IRSA, the cluster's OIDC provider
/// there. An account that cannot be read says why; its workloads are left as they are.
pub async fn read<T: TargetAccounts>(
    targets: &T,
    accounts: &BTreeSet<String>,
    path: &str,
    cluster: &ClusterInfo,
    mode: BindingMode,
) -> BTreeMap<String, ObservedTarget> {
    let mut read = BTreeMap::new();
    for account in accounts {
        let provider = cluster
            .oidc_host_path()
            .filter(|_| mode == BindingMode::Irsa)
            .map(|issuer| {
                format!(
                    "arn:{}:iam::{account}:oidc-provider/{issuer}",
                    cluster.cluster.partition()
                )
            });
        let snapshot = match targets.iam_in(account).await {
            Ok(iam) => iam.snapshot(path, provider.as_deref()).await,
            Err(error) => Err(error),
        };
        let observed = match snapshot {
            Ok(snapshot) => ObservedTarget {
                roles: snapshot.roles,
                oidc_providers: snapshot.oidc_providers,
                error: None,
            },
            Err(error) => {
                tracing::warn!(account, %error, "cannot read the target account");
                ObservedTarget {
                    error: Some(error.to_string()),
                    ..ObservedTarget::default()
                }
            }
        };
        read.insert(account.clone(), observed);
    }
    read
}
