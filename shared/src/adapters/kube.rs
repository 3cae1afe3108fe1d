//! The Kubernetes side until the in-process EKS client exists: every call fails with a clear
//! error, so a reconcile that needs the cluster says why instead of guessing.

use crate::model::{Namespace, ServiceAccountRef};
use crate::ports::{ErrorKind, KubernetesPort, KubernetesSnapshot, PortError, PortResult};
use std::collections::BTreeSet;

const WHY: &str = "no Kubernetes API client is configured in this build: workloads, ServiceAccounts and annotations cannot be read or written";

#[derive(Clone, Copy, Debug, Default)]
pub struct Unavailable;

impl KubernetesPort for Unavailable {
    async fn snapshot(&self, _namespaces: &BTreeSet<Namespace>) -> PortResult<KubernetesSnapshot> {
        Err(PortError::new("kubernetes", "list", ErrorKind::Denied, WHY))
    }

    async fn annotate_service_account(
        &self,
        _sa: &ServiceAccountRef,
        _role_arn: &str,
    ) -> PortResult<()> {
        Err(PortError::new(
            "kubernetes",
            "apply",
            ErrorKind::Denied,
            WHY,
        ))
    }

    async fn remove_service_account_annotation(&self, _sa: &ServiceAccountRef) -> PortResult<()> {
        Err(PortError::new(
            "kubernetes",
            "apply",
            ErrorKind::Denied,
            WHY,
        ))
    }
}
