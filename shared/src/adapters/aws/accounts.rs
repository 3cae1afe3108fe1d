//! Clusters in other accounts: the clients that act there through a role of that account
//! (`EKS_INTENTS_ACCOUNT_ROLES`), assumed with the deployment's external id.
//!
//! The credentials come from STS `AssumeRole`, called by the deployment's own STS client (so
//! the call is counted and retried within the run's budget like any other), and are kept for
//! their lifetime: one `AssumeRole` per role and per hour serves the IAM and EKS clients and
//! the EKS tokens of every cluster of that account. The SDK's `AssumeRoleProvider` keeps
//! nothing (each client's identity cache would assume the role again, and the EKS token signer
//! on every token). Credentials are renewed once less than `RENEW_BEFORE` of them is left: an
//! EKS token signed with them is used for up to 15 minutes.

use super::{AwsClients, EksAdapter, IamAdapter, port_error};
use crate::adapters::kube::EksKubernetes;
use crate::config::{ACCOUNT_ROLE_EXTERNAL_ID, AccountRoles};
use crate::model::RoleArn;
use crate::ports::{ErrorKind, PortError, PortResult};
use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, future};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// The session name of every assumed role: CloudTrail in the cluster's account shows
/// `assumed-role/<role>/eks-intents` for the deployment's calls there.
pub const SESSION_NAME: &str = "eks-intents";
/// Credentials with less than this left are renewed: an EKS token is accepted for 15 minutes
/// after it is signed, and the Kubernetes client renews its token every 10.
const RENEW_BEFORE: Duration = Duration::from_secs(20 * 60);

/// A role of another account, assumed on demand; its credentials are shared by every clone
/// and renewed before they expire.
#[derive(Clone, Debug)]
pub struct AssumedRole {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    sts: aws_sdk_sts::Client,
    role: RoleArn,
    external_id: String,
    /// One `AssumeRole` at a time: concurrent callers wait for its credentials.
    session: tokio::sync::Mutex<Option<Credentials>>,
}

impl AssumedRole {
    pub fn new(sts: aws_sdk_sts::Client, role: RoleArn, external_id: &str) -> Self {
        AssumedRole {
            inner: Arc::new(Inner {
                sts,
                role,
                external_id: external_id.to_owned(),
                session: tokio::sync::Mutex::new(None),
            }),
        }
    }

    pub fn role(&self) -> &RoleArn {
        &self.inner.role
    }

    /// The role's credentials: the kept ones while they have `RENEW_BEFORE` left, else new
    /// ones from STS. The error names the role and says why STS refused it.
    pub async fn credentials(&self) -> PortResult<Credentials> {
        let mut session = self.inner.session.lock().await;
        if let Some(credentials) = session.as_ref()
            && credentials
                .expiry()
                .is_none_or(|expiry| expiry > SystemTime::now() + RENEW_BEFORE)
        {
            return Ok(credentials.clone());
        }
        let role = &self.inner.role;
        let refused = |mut error: PortError| {
            error.message = format!(
                "cannot assume the role {role} (with the external id of {ACCOUNT_ROLE_EXTERNAL_ID}): {}",
                error.message
            );
            error
        };
        let out = self
            .inner
            .sts
            .assume_role()
            .role_arn(role.as_str())
            .external_id(&self.inner.external_id)
            .role_session_name(SESSION_NAME)
            .send()
            .await
            .map_err(|e| refused(port_error("sts", "AssumeRole", e)))?;
        let Some(issued) = out.credentials() else {
            return Err(refused(PortError::new(
                "sts",
                "AssumeRole",
                ErrorKind::Other,
                "STS answered without credentials",
            )));
        };
        let credentials = Credentials::new(
            issued.access_key_id(),
            issued.secret_access_key(),
            Some(issued.session_token().to_owned()),
            SystemTime::try_from(*issued.expiration()).ok(),
            "eks-intents-assume-role",
        );
        tracing::info!(role = %role, expiry = ?credentials.expiry(), "assumed the role of the cluster's account");
        *session = Some(credentials.clone());
        Ok(credentials)
    }
}

impl ProvideCredentials for AssumedRole {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            self.credentials()
                .await
                .map_err(CredentialsError::provider_error)
        })
    }
}

/// The clients that act in the account of one role.
#[derive(Clone, Debug)]
pub struct AccountClients {
    pub role: RoleArn,
    pub iam: IamAdapter,
    pub eks: EksAdapter,
    /// Kubernetes APIs of the account's clusters, through EKS tokens signed with the role's
    /// credentials (EKS maps the role, not the deployment's own, to the cluster's RBAC).
    pub kubernetes: EksKubernetes,
    pub credentials: AssumedRole,
}

/// The clients of every account of `EKS_INTENTS_ACCOUNT_ROLES`, made on first use and kept by
/// the warm function.
#[derive(Debug)]
pub struct AccountSessions {
    home: AwsClients,
    roles: AccountRoles,
    clients: Mutex<BTreeMap<RoleArn, AccountClients>>,
    /// Where clusters named by no entry of their own were found: the role of their account,
    /// or `None` for the deployment's own.
    located: Mutex<BTreeMap<String, Option<RoleArn>>>,
}

impl AccountSessions {
    /// The accounts of `roles`, reached from the deployment's own `home` clients.
    pub fn new(home: &AwsClients, roles: AccountRoles) -> Self {
        AccountSessions {
            home: home.clone(),
            roles,
            clients: Mutex::default(),
            located: Mutex::default(),
        }
    }

    /// Which role serves which cluster.
    pub fn roles(&self) -> &AccountRoles {
        &self.roles
    }

    /// Where `cluster` was found before: `Some(None)` in the deployment's own account,
    /// `Some(Some(role))` in the account of `role`, `None` when not looked for yet.
    pub fn located(&self, cluster: &str) -> Option<Option<RoleArn>> {
        self.located.lock().ok()?.get(cluster).cloned()
    }

    /// Remembers where `cluster` was found, for the warm function's later runs.
    pub fn remember(&self, cluster: &str, role: Option<RoleArn>) {
        if let Ok(mut located) = self.located.lock() {
            located.insert(cluster.to_owned(), role);
        }
    }

    /// The clients acting through `role`, once its credentials are in hand (from STS, or
    /// kept from an earlier call): a role that cannot be assumed fails here, naming itself,
    /// before any call in its account.
    pub async fn clients(&self, role: &RoleArn) -> PortResult<AccountClients> {
        let clients = {
            let mut known = self.clients.lock().map_err(|_| {
                PortError::new("sts", "AssumeRole", ErrorKind::Other, "lock poisoned")
            })?;
            known
                .entry(role.clone())
                .or_insert_with(|| self.home.in_account(role, self.roles.external_id()))
                .clone()
        };
        clients.credentials.credentials().await?;
        Ok(clients)
    }
}
