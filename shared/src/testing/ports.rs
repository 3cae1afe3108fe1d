//! In-memory IAM, bundle store, EKS and queue ports for the functions' handler tests: canned
//! answers for the few calls a function makes, and a log of those calls to assert on.
//!
//! Each fake serves only the reads the functions make (and the queue's deduplicated sends; the
//! store also keeps objects, for the reconcile's bundle reads and status writes); every other
//! method fails, so a handler that starts calling something new shows up as an
//! error in its tests instead of passing on an empty answer.

use crate::model::{
    AccountSummary, AddonName, AssociationId, Namespace, ObservedAssociation, ObservedRole,
    PolicyArn, RoleArn, RoleName, ServiceAccountName, ServiceAccountRef,
};
use crate::policy::PolicyDocument;
use crate::ports::{
    AddonDescription, Associations, BundleObject, BundleStore, ClusterDescription,
    DeduplicatedReconcile, EksPort, ErrorKind, FetchedObject, IamPort, IamSnapshot, NewRole,
    PortError, PortResult, ReconcileCluster, ReconcileQueue, StoreLevel, WriteCondition,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

fn unexpected(service: &'static str, operation: &'static str) -> PortError {
    PortError::new(
        service,
        operation,
        ErrorKind::Other,
        "not served by the in-memory fake",
    )
}

/// IAM as the functions read it: the snapshot of a path (drift-sweep) and one role's tags
/// (eks-events).
#[derive(Debug, Default)]
pub struct FakeIam {
    /// The roles of the account; a snapshot returns those whose path starts with its prefix.
    pub roles: Vec<ObservedRole>,
    /// Role name -> tags, for `role_tags`; a role absent here does not exist. Kept apart from
    /// `roles` because a test of tags needs no whole role.
    pub tags: BTreeMap<String, BTreeMap<String, String>>,
    /// Roles outside the path: reading their tags is denied, as the functions' IAM policy does.
    pub denied: Vec<String>,
    /// Makes every read fail as throttled.
    pub fail: bool,
    /// The path prefixes snapshotted, in order.
    pub paths: Mutex<Vec<String>>,
    /// The roles whose tags were asked for, in order.
    pub asked: Mutex<Vec<String>>,
}

impl IamPort for FakeIam {
    async fn snapshot(
        &self,
        path_prefix: &str,
        _oidc_provider_arn: Option<&str>,
    ) -> PortResult<IamSnapshot> {
        self.paths.lock().unwrap().push(path_prefix.to_owned());
        if self.fail {
            return Err(PortError::new(
                "iam",
                "GetAccountAuthorizationDetails",
                ErrorKind::Transient,
                "Throttling",
            ));
        }
        Ok(IamSnapshot {
            roles: self
                .roles
                .iter()
                .filter(|r| r.path.starts_with(path_prefix))
                .cloned()
                .collect(),
            ..IamSnapshot::default()
        })
    }
    async fn create_oidc_provider(
        &self,
        _url: &str,
        _client_ids: &[String],
        _tags: &BTreeMap<String, String>,
    ) -> PortResult<()> {
        Err(unexpected("iam", "CreateOpenIDConnectProvider"))
    }
    async fn add_oidc_client_id(&self, _provider_arn: &str, _client_id: &str) -> PortResult<()> {
        Err(unexpected("iam", "AddClientIDToOpenIDConnectProvider"))
    }
    async fn account_summary(&self) -> PortResult<AccountSummary> {
        Err(unexpected("iam", "GetAccountSummary"))
    }
    async fn create_role(&self, _role: &NewRole<'_>) -> PortResult<()> {
        Err(unexpected("iam", "CreateRole"))
    }
    async fn role_tags(&self, role: &RoleName) -> PortResult<Option<BTreeMap<String, String>>> {
        self.asked.lock().unwrap().push(role.to_string());
        if self.fail {
            return Err(PortError::new(
                "iam",
                "GetRole",
                ErrorKind::Transient,
                "Throttling",
            ));
        }
        if self.denied.iter().any(|d| d == role.as_str()) {
            return Err(PortError::new(
                "iam",
                "GetRole",
                ErrorKind::Denied,
                "AccessDenied: not authorized to perform iam:GetRole",
            ));
        }
        Ok(self.tags.get(role.as_str()).cloned())
    }
    async fn update_trust_policy(
        &self,
        _role: &RoleName,
        _document: &PolicyDocument,
    ) -> PortResult<()> {
        Err(unexpected("iam", "UpdateAssumeRolePolicy"))
    }
    async fn put_permissions_boundary(&self, _role: &RoleName, _arn: &PolicyArn) -> PortResult<()> {
        Err(unexpected("iam", "PutRolePermissionsBoundary"))
    }
    async fn tag_role(&self, _role: &RoleName, _tags: &BTreeMap<String, String>) -> PortResult<()> {
        Err(unexpected("iam", "TagRole"))
    }
    async fn untag_role(&self, _role: &RoleName, _keys: &[String]) -> PortResult<()> {
        Err(unexpected("iam", "UntagRole"))
    }
    async fn put_role_policy(
        &self,
        _role: &RoleName,
        _name: &str,
        _document: &PolicyDocument,
    ) -> PortResult<()> {
        Err(unexpected("iam", "PutRolePolicy"))
    }
    async fn delete_role_policy(&self, _role: &RoleName, _name: &str) -> PortResult<()> {
        Err(unexpected("iam", "DeleteRolePolicy"))
    }
    async fn create_policy(
        &self,
        _name: &str,
        _path: &str,
        _document: &PolicyDocument,
        _tags: &BTreeMap<String, String>,
    ) -> PortResult<()> {
        Err(unexpected("iam", "CreatePolicy"))
    }
    async fn set_policy_document(
        &self,
        _arn: &PolicyArn,
        _document: &PolicyDocument,
    ) -> PortResult<()> {
        Err(unexpected("iam", "CreatePolicyVersion"))
    }
    async fn attach_role_policy(&self, _role: &RoleName, _arn: &PolicyArn) -> PortResult<()> {
        Err(unexpected("iam", "AttachRolePolicy"))
    }
    async fn detach_role_policy(&self, _role: &RoleName, _arn: &PolicyArn) -> PortResult<()> {
        Err(unexpected("iam", "DetachRolePolicy"))
    }
    async fn delete_policy(&self, _arn: &PolicyArn) -> PortResult<()> {
        Err(unexpected("iam", "DeletePolicy"))
    }
    async fn delete_role(&self, _role: &RoleName) -> PortResult<()> {
        Err(unexpected("iam", "DeleteRole"))
    }
}

/// The bundle bucket: one level at a time, as the functions list it (`levels`), and whole
/// objects with ETags for the reconcile's reads and its status writes (`objects`).
#[derive(Debug, Default)]
pub struct FakeStore {
    /// Prefix -> its level; an absent prefix is empty.
    pub levels: BTreeMap<String, StoreLevel>,
    /// Makes every listing fail as denied.
    pub fail: bool,
    /// The prefixes listed level by level, in order.
    pub listed: Mutex<Vec<String>>,
    /// Key -> the object stored there.
    pub objects: Mutex<BTreeMap<String, StoredObject>>,
    /// Key -> a new body written by someone else just before the object is next read: an
    /// upload that lands between the listing and the read.
    pub replaced_before_read: Mutex<BTreeMap<String, Vec<u8>>>,
    /// Writes made, in order: key and whether it was conditional.
    pub writes: Mutex<Vec<(String, bool)>>,
    /// Reads asked for, in order: the key, and whether the read was conditional (and so may
    /// have returned nothing).
    pub reads: Mutex<Vec<(String, bool)>>,
    /// ETags (and versions) handed out so far.
    pub etags: AtomicU64,
}

/// An object of the fake store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredObject {
    pub bytes: Vec<u8>,
    pub etag: String,
    pub version: String,
}

impl FakeStore {
    /// Stores `bytes` at `key` as a new version, with a new ETag.
    pub fn insert(&self, key: &str, bytes: Vec<u8>) -> StoredObject {
        let n = self.etags.fetch_add(1, Ordering::SeqCst) + 1;
        let object = StoredObject {
            bytes,
            etag: format!("etag-{n}"),
            version: format!("version-{n}"),
        };
        self.objects
            .lock()
            .unwrap()
            .insert(key.to_owned(), object.clone());
        object
    }

    pub fn object(&self, key: &str) -> Option<StoredObject> {
        self.objects.lock().unwrap().get(key).cloned()
    }

    /// The keys read so far, conditional reads included, and forgets them.
    pub fn take_reads(&self) -> Vec<String> {
        std::mem::take(&mut *self.reads.lock().unwrap())
            .into_iter()
            .map(|(key, _)| key)
            .collect()
    }

    fn fetch(&self, key: &str, max_bytes: u64) -> PortResult<FetchedObject> {
        let replacement = self.replaced_before_read.lock().unwrap().remove(key);
        if let Some(bytes) = replacement {
            self.insert(key, bytes);
        }
        let object = self
            .object(key)
            .ok_or_else(|| PortError::new("s3", "GetObject", ErrorKind::NotFound, "NoSuchKey"))?;
        let end = object.bytes.len().min(max_bytes.saturating_add(1) as usize);
        Ok(FetchedObject {
            bytes: object.bytes[..end].to_vec(),
            version: Some(object.version),
            etag: Some(object.etag),
        })
    }
}

impl BundleStore for FakeStore {
    async fn list(&self, prefix: &str) -> PortResult<Vec<BundleObject>> {
        Ok(self
            .objects
            .lock()
            .unwrap()
            .iter()
            .filter(|(key, _)| key.starts_with(prefix))
            .map(|(key, object)| BundleObject {
                key: key.clone(),
                etag: Some(object.etag.clone()),
                version: None,
                size: object.bytes.len() as u64,
            })
            .collect())
    }
    async fn list_level(&self, prefix: &str) -> PortResult<StoreLevel> {
        self.listed.lock().unwrap().push(prefix.to_owned());
        if self.fail {
            return Err(PortError::new(
                "s3",
                "ListObjectsV2",
                ErrorKind::Denied,
                "AccessDenied",
            ));
        }
        Ok(self.levels.get(prefix).cloned().unwrap_or_default())
    }
    async fn get(&self, key: &str, max_bytes: u64) -> PortResult<FetchedObject> {
        self.reads.lock().unwrap().push((key.to_owned(), false));
        self.fetch(key, max_bytes)
    }
    async fn get_if_changed(
        &self,
        key: &str,
        etag: &str,
        max_bytes: u64,
    ) -> PortResult<Option<FetchedObject>> {
        self.reads.lock().unwrap().push((key.to_owned(), true));
        if self.object(key).is_some_and(|o| o.etag == etag) {
            return Ok(None);
        }
        self.fetch(key, max_bytes).map(Some)
    }
    async fn put(&self, key: &str, body: Vec<u8>, _content_type: &str) -> PortResult<()> {
        self.writes.lock().unwrap().push((key.to_owned(), false));
        self.insert(key, body);
        Ok(())
    }
    async fn put_if(
        &self,
        key: &str,
        body: Vec<u8>,
        _content_type: &str,
        condition: &WriteCondition,
    ) -> PortResult<Option<String>> {
        let current = self.object(key).map(|o| o.etag);
        let holds = match condition {
            WriteCondition::Absent => current.is_none(),
            WriteCondition::Unchanged(etag) => current.as_ref() == Some(etag),
        };
        if !holds {
            return Err(PortError::new(
                "s3",
                "PutObject",
                ErrorKind::Conflict,
                "PreconditionFailed",
            ));
        }
        self.writes.lock().unwrap().push((key.to_owned(), true));
        Ok(Some(self.insert(key, body).etag))
    }
}

/// EKS as far as listing the region's clusters.
#[derive(Debug, Default)]
pub struct FakeEks {
    /// The names `ListClusters` returns.
    pub clusters: Vec<String>,
    /// How many times the clusters were listed.
    pub calls: Mutex<usize>,
}

impl EksPort for FakeEks {
    async fn list_clusters(&self) -> PortResult<Vec<String>> {
        *self.calls.lock().unwrap() += 1;
        Ok(self.clusters.clone())
    }
    async fn describe_cluster(&self, _name: &str) -> PortResult<ClusterDescription> {
        Err(unexpected("eks", "DescribeCluster"))
    }
    async fn addons(&self, _cluster: &str) -> PortResult<Vec<AddonDescription>> {
        Err(unexpected("eks", "ListAddons"))
    }
    async fn pod_identity_associations(
        &self,
        _cluster: &str,
        _namespaces: &BTreeSet<Namespace>,
    ) -> PortResult<Associations> {
        Err(unexpected("eks", "ListPodIdentityAssociations"))
    }
    async fn create_pod_identity_association(
        &self,
        _cluster: &str,
        _service_account: &ServiceAccountRef,
        _role_arn: &RoleArn,
        _tags: &BTreeMap<String, String>,
        _session_policy: Option<&PolicyDocument>,
        _target_role_arn: Option<&RoleArn>,
    ) -> PortResult<()> {
        Err(unexpected("eks", "CreatePodIdentityAssociation"))
    }
    async fn pod_identity_association_of(
        &self,
        _cluster: &str,
        _service_account: &ServiceAccountRef,
    ) -> PortResult<Option<ObservedAssociation>> {
        Err(unexpected("eks", "ListPodIdentityAssociations"))
    }
    async fn update_pod_identity_association(
        &self,
        _cluster: &str,
        _association_id: &AssociationId,
        _role_arn: &RoleArn,
        _session_policy: Option<&PolicyDocument>,
        _target_role_arn: Option<&RoleArn>,
    ) -> PortResult<()> {
        Err(unexpected("eks", "UpdatePodIdentityAssociation"))
    }
    async fn delete_pod_identity_association(
        &self,
        _cluster: &str,
        _association_id: &AssociationId,
    ) -> PortResult<()> {
        Err(unexpected("eks", "DeletePodIdentityAssociation"))
    }
    async fn addon_recommended_policies(
        &self,
        _addon: &AddonName,
        _version: &str,
    ) -> PortResult<BTreeMap<ServiceAccountName, Vec<PolicyArn>>> {
        Err(unexpected("eks", "DescribeAddonConfiguration"))
    }
    async fn set_addon_role(
        &self,
        _cluster: &str,
        _addon: &AddonName,
        _role_arn: Option<&RoleArn>,
    ) -> PortResult<()> {
        Err(unexpected("eks", "UpdateAddon"))
    }
    async fn set_addon_pod_identity(
        &self,
        _cluster: &str,
        _addon: &AddonName,
        _associations: &BTreeMap<String, RoleArn>,
    ) -> PortResult<()> {
        Err(unexpected("eks", "UpdateAddon"))
    }
}

/// The reconcile queue, keeping every batch of deduplicated requests.
#[derive(Debug, Default)]
pub struct FakeQueue {
    /// One entry per `send_deduplicated` call, so tests can count the calls.
    pub batches: Mutex<Vec<Vec<DeduplicatedReconcile>>>,
}

impl FakeQueue {
    /// Every request sent, across batches, in order.
    pub fn sent(&self) -> Vec<DeduplicatedReconcile> {
        self.batches.lock().unwrap().concat()
    }
}

impl ReconcileQueue for FakeQueue {
    async fn send(&self, _message: &ReconcileCluster) -> PortResult<()> {
        Err(unexpected("sqs", "SendMessage (not deduplicated)"))
    }
    async fn send_deduplicated(&self, messages: &[DeduplicatedReconcile]) -> PortResult<()> {
        self.batches.lock().unwrap().push(messages.to_vec());
        Ok(())
    }
}
