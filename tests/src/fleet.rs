//! A fleet on the local services: N workloads spread over M namespaces on the local Kubernetes
//! API server (a namespace each, one ServiceAccount and one Deployment per workload) and their
//! ClientIntents bundles in the bucket, in either layout. What the fleet-scale tests and the
//! fleet benchmark start from, with the request counts they read.

use crate::scenario::{BUCKET, CLUSTER, LocalCluster, World, create_deployment};
use crate::{Emulator, KubeServer};
use eks_intents::adapters::aws::{AwsClients, AwsSettings};
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// Requests sent to a local service at once while the fleet is made.
const CONCURRENCY: usize = 16;

/// How the bundles of a fleet are cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `intents/<cluster>/<namespace>/intents.yaml`, holding every workload of the namespace.
    PerNamespace,
    /// `intents/<cluster>/<namespace>/<workload>.yaml`, one workload each.
    PerWorkload,
}

impl Layout {
    pub fn describe(self) -> &'static str {
        match self {
            Layout::PerNamespace => "one bundle per namespace",
            Layout::PerWorkload => "one bundle per workload",
        }
    }
}

/// One workload of a fleet: a Deployment running as a ServiceAccount of the same name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    pub namespace: String,
    pub name: String,
}

/// `workloads` workloads round-robin over `namespaces` namespaces (`team-00`, ...), each
/// granted `dynamodb:GetItem` and `dynamodb:PutItem`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fleet {
    pub workloads: usize,
    pub namespaces: usize,
}

impl Fleet {
    pub fn new(workloads: usize, namespaces: usize) -> Fleet {
        Fleet {
            workloads,
            namespaces: namespaces.clamp(1, workloads.max(1)),
        }
    }

    pub fn namespace(&self, index: usize) -> String {
        format!("team-{index:02}")
    }

    /// Workload `index`; indexes past the fleet's size name workloads added later.
    pub fn workload(&self, index: usize) -> Workload {
        Workload {
            namespace: self.namespace(index % self.namespaces),
            name: format!("app-{index:04}"),
        }
    }

    pub fn all(&self) -> impl Iterator<Item = Workload> + '_ {
        (0..self.workloads).map(|i| self.workload(i))
    }

    /// The namespaces, then every workload's ServiceAccount and Deployment, `CONCURRENCY` at
    /// a time, as a cluster admin would create them.
    pub async fn create_in_cluster(&self, admin: &kube::Client) {
        let namespaces: Api<Namespace> = Api::all(admin.clone());
        run_all((0..self.namespaces).map(|i| {
            let namespaces = namespaces.clone();
            let name = self.namespace(i);
            async move {
                namespaces
                    .create(&PostParams::default(), &named(&name))
                    .await
                    .unwrap_or_else(|e| panic!("namespace {name}: {e}"));
            }
        }))
        .await;
        run_all(self.all().map(|w| create_workload(admin, w))).await;
    }

    /// Every bundle of the fleet in `layout`: (key, body), with workload `changed` (if any)
    /// granted `dynamodb:Query` as well.
    pub fn bundles(&self, layout: Layout, changed: Option<usize>) -> Vec<(String, Vec<u8>)> {
        self.bundles_of(&(0..self.workloads).collect::<Vec<_>>(), layout, changed)
    }

    /// The bundles holding the workloads `indexes`, in `layout`.
    pub fn bundles_of(
        &self,
        indexes: &[usize],
        layout: Layout,
        changed: Option<usize>,
    ) -> Vec<(String, Vec<u8>)> {
        let document = |i: usize| intents(&self.workload(i).name, changed == Some(i));
        match layout {
            Layout::PerWorkload => indexes
                .iter()
                .map(|&i| {
                    let w = self.workload(i);
                    (bundle_key(&w.namespace, &w.name), document(i).into_bytes())
                })
                .collect(),
            Layout::PerNamespace => {
                let mut by_namespace: BTreeMap<String, Vec<String>> = BTreeMap::new();
                for &i in indexes {
                    by_namespace
                        .entry(self.workload(i).namespace)
                        .or_default()
                        .push(document(i));
                }
                by_namespace
                    .into_iter()
                    .map(|(ns, documents)| {
                        (
                            bundle_key(&ns, "intents"),
                            documents.join("---\n").into_bytes(),
                        )
                    })
                    .collect()
            }
        }
    }

    /// The bundle that holds workload `index` in `layout`, with the workloads `0..size` beside
    /// it (per namespace) and workload `changed` changed.
    pub fn bundle_of(
        &self,
        index: usize,
        size: usize,
        layout: Layout,
        changed: Option<usize>,
    ) -> (String, Vec<u8>) {
        let namespace = self.workload(index).namespace;
        let indexes: Vec<usize> = match layout {
            Layout::PerWorkload => vec![index],
            Layout::PerNamespace => (0..size)
                .filter(|&i| self.workload(i).namespace == namespace)
                .collect(),
        };
        let mut bundles = self.bundles_of(&indexes, layout, changed);
        bundles.pop().unwrap_or_default()
    }
}

fn bundle_key(namespace: &str, file: &str) -> String {
    format!("intents/{CLUSTER}/{namespace}/{file}.yaml")
}

/// One workload's ClientIntents.
fn intents(name: &str, changed: bool) -> String {
    let query = if changed {
        "\n        - \"dynamodb:Query\""
    } else {
        ""
    };
    format!(
        "apiVersion: k8s.otterize.com/v1alpha3\nkind: ClientIntents\nmetadata:\n  name: {name}\n\
         spec:\n  service:\n    name: {name}\n  calls:\n  - name: \"*\"\n    type: aws\n    \
         awsActions:\n        - \"dynamodb:GetItem\"\n        - \"dynamodb:PutItem\"{query}\n"
    )
}

fn named<T: serde::de::DeserializeOwned>(name: &str) -> T {
    serde_json::from_value(json!({"metadata": {"name": name}})).expect("an object with a name")
}

/// Runs `futures`, `CONCURRENCY` at a time.
async fn run_all<F: Future<Output = ()>>(futures: impl Iterator<Item = F>) {
    futures_util::stream::iter(futures)
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<()>>()
        .await;
}

/// A workload's ServiceAccount and Deployment.
pub async fn create_workload(admin: &kube::Client, w: Workload) {
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), &w.namespace);
    accounts
        .create(&PostParams::default(), &named(&w.name))
        .await
        .unwrap_or_else(|e| panic!("service account {}/{}: {e}", w.namespace, w.name));
    create_deployment(admin, &w.namespace, &w.name, &w.name).await;
}

/// Starts the local Kubernetes API server of `demo`, points `DescribeCluster` at it and
/// creates `fleet` in it: the `connect` argument of `scenario::world`.
pub fn cluster(
    fleet: Fleet,
) -> impl FnOnce(Emulator) -> Pin<Box<dyn Future<Output = (Emulator, LocalCluster)>>> {
    move |emulator: Emulator| {
        Box::pin(async move {
            let server = KubeServer::start(CLUSTER, &emulator);
            server.register(&emulator, CLUSTER);
            fleet.create_in_cluster(&server.admin_client()).await;
            let clients = AwsClients::from_config(&emulator.sdk_config(), &AwsSettings::default());
            (
                emulator,
                LocalCluster {
                    connector: clients.kubernetes,
                    server,
                },
            )
        })
    }
}

/// Puts `bundles` in the bucket, `CONCURRENCY` at a time.
pub async fn upload(s3: &aws_sdk_s3::Client, bundles: Vec<(String, Vec<u8>)>) {
    run_all(bundles.into_iter().map(|(key, body)| async move {
        s3.put_object()
            .bucket(BUCKET)
            .key(&key)
            .body(body.into())
            .send()
            .await
            .unwrap_or_else(|e| panic!("put {key}: {e}"));
    }))
    .await;
}

/// Deletes every bundle of the cluster (1,000 keys a request), as a layout change would.
pub async fn delete_bundles(s3: &aws_sdk_s3::Client) {
    use aws_sdk_s3::types::{Delete, ObjectIdentifier};
    let prefix = eks_intents::intent::cluster_prefix(CLUSTER);
    loop {
        let listed = s3
            .list_objects_v2()
            .bucket(BUCKET)
            .prefix(&prefix)
            .send()
            .await
            .expect("list the bundles");
        let keys: Vec<ObjectIdentifier> = listed
            .contents()
            .iter()
            .filter_map(|o| o.key())
            .filter_map(|key| ObjectIdentifier::builder().key(key).build().ok())
            .collect();
        if keys.is_empty() {
            return;
        }
        let delete = Delete::builder()
            .set_objects(Some(keys))
            .quiet(true)
            .build()
            .expect("a delete request");
        s3.delete_objects()
            .bucket(BUCKET)
            .delete(delete)
            .send()
            .await
            .expect("delete the bundles");
    }
}

/// What one reconcile cost: AWS calls by `service:Operation` as the SDK's interceptor counted
/// them, Kubernetes requests by `"verb resource"` as the local API server counted them, and
/// how long the handler took.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    pub aws: BTreeMap<String, u64>,
    pub kubernetes: BTreeMap<String, u64>,
    pub wall: Duration,
}

/// AWS operations that read; every other one writes (an S3 `PutObject` as much as an IAM
/// `CreateRole`).
pub fn is_aws_read(key: &str) -> bool {
    let operation = key.split_once(':').map_or(key, |(_, op)| op);
    ["Get", "List", "Describe", "Head"]
        .iter()
        .any(|read| operation.starts_with(read))
}

/// Kubernetes requests that read (`"list serviceaccounts (all namespaces)"`, `"get ..."`).
pub fn is_kubernetes_read(key: &str) -> bool {
    key.starts_with("list ") || key.starts_with("get ") || key.starts_with("watch ")
}

fn total<'a>(counts: impl Iterator<Item = (&'a String, &'a u64)>) -> u64 {
    counts.map(|(_, n)| n).sum()
}

impl Cost {
    pub fn aws_total(&self) -> u64 {
        total(self.aws.iter())
    }

    pub fn kubernetes_total(&self) -> u64 {
        total(self.kubernetes.iter())
    }

    pub fn aws_writes(&self) -> BTreeMap<String, u64> {
        filtered(&self.aws, |k| !is_aws_read(k))
    }

    pub fn kubernetes_writes(&self) -> BTreeMap<String, u64> {
        filtered(&self.kubernetes, |k| !is_kubernetes_read(k))
    }

    /// Writes of any kind, AWS and Kubernetes.
    pub fn writes(&self) -> u64 {
        total(self.aws_writes().iter()) + total(self.kubernetes_writes().iter())
    }

    pub fn aws_reads(&self) -> u64 {
        total(self.aws.iter().filter(|(k, _)| is_aws_read(k)))
    }

    pub fn kubernetes_reads(&self) -> u64 {
        total(
            self.kubernetes
                .iter()
                .filter(|(k, _)| is_kubernetes_read(k)),
        )
    }

    /// Calls of `operation` (`"PutObject"`), whatever the service's spelling in the key.
    pub fn aws(&self, operation: &str) -> u64 {
        total(
            self.aws
                .iter()
                .filter(|(k, _)| k.split_once(':').is_some_and(|(_, op)| op == operation)),
        )
    }

    pub fn kubernetes(&self, key: &str) -> u64 {
        self.kubernetes.get(key).copied().unwrap_or_default()
    }
}

fn filtered(counts: &BTreeMap<String, u64>, keep: impl Fn(&str) -> bool) -> BTreeMap<String, u64> {
    counts
        .iter()
        .filter(|(k, _)| keep(k))
        .map(|(k, n)| (k.clone(), *n))
        .collect()
}

/// The Kubernetes requests the API server counted since the last call (the admin's own are
/// not counted), by `"verb resource"`; starts counting again from zero.
pub async fn take_kubernetes_requests(server: &KubeServer) -> BTreeMap<String, u64> {
    let request = http::Request::delete("/_harness/requests")
        .body(Vec::new())
        .expect("request");
    let text = server
        .admin_client()
        .request_text(request)
        .await
        .expect("request counts");
    let body: Value = serde_json::from_str(&text).expect("JSON");
    serde_json::from_value(body["counts"].clone()).expect("counts")
}

impl World<LocalCluster> {
    /// Asks for a reconcile of the cluster (as the schedule would) and runs it through the
    /// handler; returns what the run itself cost (the harness's own queue calls are not in
    /// it).
    pub async fn reconcile_counted(&self) -> Cost {
        take_kubernetes_requests(&self.reconciler.kube.server).await;
        let (received, failures, aws, wall) = self.reconcile_again_counted().await;
        assert_eq!(received, 1, "one reconcile message");
        if failures > 0 {
            let status = self.status().await;
            panic!("the reconcile failed: {}", status["error"]);
        }
        Cost {
            aws,
            kubernetes: take_kubernetes_requests(&self.reconciler.kube.server).await,
            wall,
        }
    }
}
