//! An in-memory Kubernetes API behind the Kubernetes port: workloads, ServiceAccounts and the
//! role annotation with its field manager, counting writes.

use crate::model::{
    Namespace, ObservedServiceAccount, ObservedWorkload, ROLE_ARN_ANNOTATION, RoleArn,
    ServiceAccountRef, Takeover, WorkloadKind, WorkloadName,
};
use crate::ports::{
    ClusterDescription, ErrorKind, EventType, KubernetesConnector, KubernetesPort,
    KubernetesSnapshot, PortError, PortResult,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct FakeKubernetes {
    state: Mutex<KubernetesSnapshot>,
    writes: Mutex<usize>,
    events: Mutex<Vec<(ServiceAccountRef, String, String)>>,
    restarts: Mutex<Vec<String>>,
}

impl FakeKubernetes {
    /// A Deployment running as `service_account`, which exists too.
    pub fn add_workload(&self, namespace: &str, name: &str, service_account: &str) {
        if let Ok(mut state) = self.state.lock() {
            state.workloads.push(ObservedWorkload {
                namespace: namespace.into(),
                name: name.into(),
                kind: WorkloadKind::Deployment,
                service_account: service_account.to_owned(),
            });
            let id = ServiceAccountRef {
                namespace: namespace.into(),
                name: if service_account.is_empty() {
                    "default"
                } else {
                    service_account
                }
                .into(),
            };
            if !state.service_accounts.iter().any(|sa| sa.id() == id) {
                state.service_accounts.push(ObservedServiceAccount {
                    namespace: id.namespace,
                    name: id.name,
                    annotations: BTreeMap::new(),
                    annotation_owned: false,
                    bound_label: false,
                });
            }
        }
    }

    /// Sets an annotation as another field manager would.
    pub fn annotate_as_other_manager(&self, service_account: &ServiceAccountRef, role_arn: &str) {
        if let Ok(mut state) = self.state.lock()
            && let Some(sa) = state
                .service_accounts
                .iter_mut()
                .find(|sa| sa.id() == *service_account)
        {
            sa.annotations
                .insert(ROLE_ARN_ANNOTATION.to_owned(), role_arn.to_owned());
            sa.annotation_owned = false;
        }
    }

    /// Removes the annotation, as someone editing by hand.
    pub fn remove_annotation_by_hand(&self, service_account: &ServiceAccountRef) {
        if let Ok(mut state) = self.state.lock()
            && let Some(sa) = state
                .service_accounts
                .iter_mut()
                .find(|sa| sa.id() == *service_account)
        {
            sa.annotations.remove(ROLE_ARN_ANNOTATION);
            sa.annotation_owned = false;
        }
    }

    pub fn annotation(&self, service_account: &ServiceAccountRef) -> Option<String> {
        let state = self.state.lock().ok()?;
        state
            .service_accounts
            .iter()
            .find(|sa| sa.id() == *service_account)
            .and_then(|sa| sa.role_annotation().map(str::to_owned))
    }

    /// Events recorded: (ServiceAccount, reason, message).
    pub fn events(&self) -> Vec<(ServiceAccountRef, String, String)> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// Workloads rolled, as `Kind namespace/name`.
    pub fn restarts(&self) -> Vec<String> {
        self.restarts.lock().map(|r| r.clone()).unwrap_or_default()
    }

    pub fn writes(&self) -> usize {
        self.writes.lock().map(|w| *w).unwrap_or_default()
    }

    fn write(&self, service_account: &ServiceAccountRef, role_arn: Option<&str>) -> PortResult<()> {
        let mut state = self.state.lock().map_err(|_| {
            PortError::new(
                "kubernetes",
                "apply",
                ErrorKind::Other,
                "state lock poisoned",
            )
        })?;
        let Some(sa) = state
            .service_accounts
            .iter_mut()
            .find(|sa| sa.id() == *service_account)
        else {
            return Err(PortError::new(
                "kubernetes",
                "apply",
                ErrorKind::NotFound,
                format!("serviceaccounts \"{}\" not found", service_account.name),
            ));
        };
        if let Ok(mut writes) = self.writes.lock() {
            *writes += 1;
        }
        match role_arn {
            Some(arn) => {
                sa.annotations
                    .insert(ROLE_ARN_ANNOTATION.to_owned(), arn.to_owned());
                sa.annotation_owned = true;
                sa.bound_label = true;
            }
            None => {
                sa.annotations.remove(ROLE_ARN_ANNOTATION);
                sa.annotation_owned = false;
                sa.bound_label = false;
            }
        }
        Ok(())
    }
}

impl KubernetesPort for FakeKubernetes {
    async fn snapshot(&self, namespaces: &BTreeSet<Namespace>) -> PortResult<KubernetesSnapshot> {
        let state = self.state.lock().map_err(|_| {
            PortError::new(
                "kubernetes",
                "list",
                ErrorKind::Other,
                "state lock poisoned",
            )
        })?;
        Ok(KubernetesSnapshot {
            workloads: state
                .workloads
                .iter()
                .filter(|w| namespaces.contains(&w.namespace))
                .cloned()
                .collect(),
            service_accounts: state
                .service_accounts
                .iter()
                .filter(|sa| namespaces.contains(&sa.namespace))
                .cloned()
                .collect(),
            ..KubernetesSnapshot::default()
        })
    }

    async fn annotate_service_account(
        &self,
        service_account: &ServiceAccountRef,
        role_arn: &RoleArn,
        _force: Takeover,
    ) -> PortResult<()> {
        self.write(service_account, Some(role_arn.as_str()))
    }

    async fn remove_service_account_annotation(
        &self,
        service_account: &ServiceAccountRef,
    ) -> PortResult<()> {
        self.write(service_account, None)
    }

    async fn record_event(
        &self,
        service_account: &ServiceAccountRef,
        reason: &str,
        message: &str,
        _kind: EventType,
    ) -> PortResult<()> {
        if let Ok(mut events) = self.events.lock() {
            events.push((
                service_account.clone(),
                reason.to_owned(),
                message.to_owned(),
            ));
        }
        if let Ok(mut writes) = self.writes.lock() {
            *writes += 1;
        }
        Ok(())
    }

    async fn restart_workload(
        &self,
        namespace: &Namespace,
        kind: WorkloadKind,
        name: &WorkloadName,
        _restarted_at: u64,
    ) -> PortResult<()> {
        self.record_restart(kind, namespace, name);
        Ok(())
    }
}

impl FakeKubernetes {
    fn record_restart(&self, kind: WorkloadKind, namespace: &Namespace, name: &WorkloadName) {
        if let Ok(mut restarts) = self.restarts.lock() {
            restarts.push(format!("{kind} {namespace}/{name}"));
        }
        if let Ok(mut writes) = self.writes.lock() {
            *writes += 1;
        }
    }
}

impl KubernetesConnector for FakeKubernetes {
    type Port<'a> = &'a FakeKubernetes;

    async fn connect<'a>(
        &'a self,
        _cluster: &ClusterDescription,
    ) -> PortResult<&'a FakeKubernetes> {
        Ok(self)
    }
}
