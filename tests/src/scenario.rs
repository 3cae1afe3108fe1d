//! The reference scenario on the local AWS emulator: what every integration test starts from,
//! and what the quick start runs.

use crate::KubeServer;
use crate::{ACCOUNT, Emulator, REGION};
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_eks::types::VpcConfigRequest;
use aws_sdk_sqs::types::QueueAttributeName;
use eks_intents::adapters::aws::{
    AwsClients, AwsSettings, EksAdapter, IamAdapter, S3Adapter, SqsAdapter,
};
use eks_intents::adapters::kube::{EksCluster, EksKubernetes};
use eks_intents::apply::ApplySettings;
use eks_intents::intent::Limits;
use eks_intents::metrics::Metrics;
use eks_intents::model::{BindingMode, PolicyArn, Settings};
use eks_intents::ports::KubernetesConnector;
use eks_intents::ports::{ClusterDescription, PortResult};
use eks_intents::reconcile::ReconcileSettings;
pub use eks_intents::testing::EBS_ACTIONS;
use eks_intents::testing::ISSUER;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const BUCKET: &str = "eks-intents-test";
pub const CLUSTER: &str = "demo";
pub const PATH: &str = "/eks-intents/";

pub fn seed(file: &str) -> Vec<u8> {
    let path = crate::repo_root()
        .join("../shared/fixtures/seed-scenario")
        .join(file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Where each seed bundle is uploaded: the namespaced ones under their team's prefix.
pub const SEED_KEYS: &[(&str, &str)] = &[
    ("intents/demo/ack-dynamodb-ci.yaml", "ack-dynamodb-ci.yaml"),
    (
        "intents/demo/jokes/joke-worker-ci.yaml",
        "joke-worker-ci.yaml",
    ),
    (
        "intents/demo/jokes/dynamodb-table.yaml",
        "dynamodb-table.yaml",
    ),
    ("intents/demo/kube-system/ebs-ci.yaml", "ebs-ci.yaml"),
];

/// Creates `bucket` on the emulator, in its region.
pub async fn create_bucket(s3: &aws_sdk_s3::Client, bucket: &str) {
    s3.create_bucket()
        .bucket(bucket)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(REGION))
                .build(),
        )
        .send()
        .await
        .expect("bucket");
}

pub struct World<K> {
    pub emulator: Emulator,
    pub clients: AwsClients,
    /// The metrics of every reconciler run, as the function would emit them.
    pub metrics: Arc<Mutex<Vec<Metrics>>>,
    pub reconciler: reconciler::Context<IamAdapter, EksAdapter, K, S3Adapter, SqsAdapter>,
    pub upload: bundle_upload::Context<S3Adapter, SqsAdapter>,
    pub queue_url: String,
    pub boundary: String,
}

/// The bucket, queue, boundary policy, EKS cluster `demo` with the EBS CSI add-on, and the
/// handlers' contexts, on a fresh emulator. `connect` gives the Kubernetes side once the
/// emulator (and so the cluster) exists.
pub async fn world<K, F, Fut>(mode: BindingMode, connect: F) -> World<K>
where
    K: KubernetesConnector,
    F: FnOnce(Emulator) -> Fut,
    Fut: std::future::Future<Output = (Emulator, K)>,
{
    let emulator = Emulator::start();
    let config = emulator.sdk_config();
    let clients = AwsClients::from_config(
        &config,
        &AwsSettings {
            max_attempts: 5,
            s3_path_style: true,
            ..AwsSettings::default()
        },
    );
    create_bucket(&clients.s3, BUCKET).await;
    clients
        .s3
        .put_bucket_versioning()
        .bucket(BUCKET)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .expect("versioning");
    let queue_url = clients
        .sqs
        .create_queue()
        .queue_name("reconcile.fifo")
        .attributes(QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .expect("queue")
        .queue_url()
        .unwrap_or_default()
        .to_owned();
    let iam = aws_sdk_iam::Client::new(&config);
    let boundary = iam
        .create_policy()
        .policy_name("eks-intents-boundary")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["dynamodb:*","ec2:*","s3:*"],"Resource":"*"}]}"#)
        .send()
        .await
        .expect("boundary policy")
        .policy()
        .and_then(|p| p.arn())
        .unwrap_or_default()
        .to_owned();
    let eks = aws_sdk_eks::Client::new(&config);
    eks.create_cluster()
        .name(CLUSTER)
        .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/eks-cluster"))
        .resources_vpc_config(VpcConfigRequest::builder().subnet_ids("subnet-1").build())
        .send()
        .await
        .expect("cluster");
    emulator.control(
        "PUT",
        &format!("/_harness/clusters/{CLUSTER}"),
        Some(&json!({ "oidc_issuer": ISSUER })),
    );
    eks.create_addon()
        .cluster_name(CLUSTER)
        .addon_name("aws-ebs-csi-driver")
        .send()
        .await
        .expect("add-on");

    let (emulator, kube) = connect(emulator).await;

    let metrics: Arc<Mutex<Vec<Metrics>>> = Arc::default();
    let reconciler = reconciler::Context {
        iam: clients.iam.clone(),
        eks: clients.eks.clone(),
        kube,
        store: S3Adapter::new(clients.s3.clone(), BUCKET),
        retry: SqsAdapter::new(clients.sqs.clone(), queue_url.clone()),
        settings: ReconcileSettings {
            plan: Settings {
                mode,
                permissions_boundary: Some(PolicyArn::new(boundary.as_str())),
                ..Settings::default()
            },
            apply: ApplySettings {
                propagation_timeout: Duration::from_secs(5),
                propagation_backoff: Duration::from_millis(100),
                ..ApplySettings::default()
            },
            region: Some(REGION.to_owned()),
            ..ReconcileSettings::default()
        },
        memory: Default::default(),
        calls: clients.calls.clone(),
        metrics: {
            let sink = metrics.clone();
            Box::new(move |m: &Metrics| {
                if let Ok(mut list) = sink.lock() {
                    list.push(m.clone());
                }
            })
        },
    };
    let upload = bundle_upload::Context {
        store: S3Adapter::new(clients.s3.clone(), BUCKET),
        queue: SqsAdapter::new(clients.sqs.clone(), queue_url.clone()),
        bucket: BUCKET.to_owned(),
        limits: Limits::default(),
    };
    World {
        emulator,
        clients,
        metrics,
        reconciler,
        upload,
        queue_url,
        boundary,
    }
}

impl<K: KubernetesConnector> World<K> {
    pub async fn put(&self, key: &str, body: Vec<u8>) {
        self.clients
            .s3
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(body.into())
            .send()
            .await
            .expect("put object");
    }

    /// An S3 notification as S3 sends it (keys URL-encoded) through the bundle-upload handler.
    pub async fn notify(&self, key: &str, deleted: bool) -> bundle_upload::Response {
        let event = json!({"Records": [{
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": REGION,
            "eventTime": "2026-11-26T12:00:00.000Z",
            "eventName": if deleted { "ObjectRemoved:Delete" } else { "ObjectCreated:Put" },
            "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
            "requestParameters": {"sourceIPAddress": "127.0.0.1"},
            "s3": {"bucket": {"name": BUCKET}, "object": {"key": key.replace(' ', "+"), "size": 100}}
        }]});
        bundle_upload::handle(&self.upload, &event)
            .await
            .expect("bundle-upload handles the event")
    }

    pub async fn upload_seed(&self) {
        for (key, file) in SEED_KEYS {
            self.put(key, seed(file)).await;
            let response = self.notify(key, false).await;
            assert_eq!(response.reconciles.len(), 1, "{key}: {response:?}");
            assert!(response.invalid.is_empty(), "{key}: {response:?}");
        }
    }

    /// Takes the queued messages and gives them to the reconciler handler, as Lambda's SQS
    /// event source would.
    pub async fn run_reconciler(&self) -> usize {
        let (count, failures) = self.run_batch().await;
        if failures > 0 {
            let status = self.status().await;
            panic!("{failures} batch item failure(s): {}", status["error"]);
        }
        count
    }

    /// Runs the queued messages and returns how many the handler reported as failed.
    pub async fn run_reconciler_expecting_failure(&self) -> usize {
        let (_, failures) = self.run_batch().await;
        assert!(failures > 0, "the reconcile was expected to fail");
        failures
    }

    /// Runs the queued messages and deletes them all, whatever the handler said.
    async fn run_batch(&self) -> (usize, usize) {
        let (out, response, _) = self.receive_and_handle().await;
        for message in out.messages() {
            self.delete_message(message).await;
        }
        (out.messages().len(), response.batch_item_failures.len())
    }

    /// Runs the queued messages as Lambda's SQS event source does: the messages the handler
    /// reports as failed stay on the queue (and come back when their visibility ends), the
    /// others are deleted. Returns how many were received and how many failed.
    pub async fn run_batch_as_lambda(&self) -> (usize, usize) {
        let (out, response, _) = self.receive_and_handle().await;
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        for message in out.messages() {
            if !failed.contains(&message.message_id().unwrap_or_default()) {
                self.delete_message(message).await;
            }
        }
        (out.messages().len(), failed.len())
    }

    /// Asks for a reconcile (as the schedule would) and runs the queued messages; returns how
    /// many were received and failed, the AWS calls the handler made (the handler starts the
    /// count when it takes the cluster; it is read before the messages are deleted) and how
    /// long the handler took.
    pub async fn reconcile_again_counted(&self) -> (usize, usize, BTreeMap<String, u64>, Duration) {
        use eks_intents::ports::{ReconcileCluster, ReconcileQueue};
        self.upload
            .queue
            .send(&ReconcileCluster::new(CLUSTER, "test"))
            .await
            .expect("send");
        let (out, response, took) = self.receive_and_handle().await;
        let calls = self.clients.calls.snapshot();
        for message in out.messages() {
            self.delete_message(message).await;
        }
        (
            out.messages().len(),
            response.batch_item_failures.len(),
            calls,
            took,
        )
    }

    async fn receive_and_handle(
        &self,
    ) -> (
        aws_sdk_sqs::operation::receive_message::ReceiveMessageOutput,
        aws_lambda_events::event::sqs::SqsBatchResponse,
        Duration,
    ) {
        let out = self
            .clients
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .message_system_attribute_names(
                aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount,
            )
            .send()
            .await
            .expect("receive");
        let mut event = SqsEvent::default();
        for message in out.messages() {
            let mut record = SqsMessage::default();
            record.message_id = message.message_id().map(str::to_owned);
            record.receipt_handle = message.receipt_handle().map(str::to_owned);
            record.body = message.body().map(str::to_owned);
            for (name, value) in message.attributes().into_iter().flatten() {
                record
                    .attributes
                    .insert(name.as_str().to_owned(), value.clone());
            }
            event.records.push(record);
        }
        let started = std::time::Instant::now();
        let response = reconciler::handle(&self.reconciler, event).await;
        (out, response, started.elapsed())
    }

    async fn delete_message(&self, message: &aws_sdk_sqs::types::Message) {
        if let Some(handle) = message.receipt_handle() {
            let _ = self
                .clients
                .sqs
                .delete_message()
                .queue_url(&self.queue_url)
                .receipt_handle(handle)
                .send()
                .await;
        }
    }

    /// The drift sweep's context on this world, as its `main` builds it (clock: the real one).
    pub fn drift_sweep(
        &self,
    ) -> drift_sweep::Context<S3Adapter, IamAdapter, EksAdapter, SqsAdapter> {
        drift_sweep::Context {
            store: S3Adapter::new(self.clients.s3.clone(), BUCKET),
            iam: self.clients.iam.clone(),
            eks: self.clients.eks.clone(),
            queue: SqsAdapter::new(self.clients.sqs.clone(), self.queue_url.clone()),
            iam_path: PATH.to_owned(),
            region: REGION.to_owned(),
            list_clusters: false,
            now: eks_intents::reconcile::now,
        }
    }

    /// Asks for a reconcile directly (as the schedule would) and runs it.
    pub async fn reconcile_again(&self) {
        use eks_intents::ports::{ReconcileCluster, ReconcileQueue};
        self.upload
            .queue
            .send(&ReconcileCluster::new(CLUSTER, "test"))
            .await
            .expect("send");
        assert_eq!(self.run_reconciler().await, 1);
    }

    pub fn inspect(&self) -> Value {
        self.emulator.inspect(PATH, CLUSTER)
    }

    /// IAM and EKS writes seen by the emulator since the counters were last cleared.
    pub fn aws_writes(&self) -> BTreeMap<String, u64> {
        let mut writes = BTreeMap::new();
        let requests = self.emulator.requests();
        for service in ["iam", "eks"] {
            if let Some(ops) = requests.get(service).and_then(Value::as_object) {
                for (op, count) in ops {
                    let read = ["Get", "List", "Describe", "moto:GET"]
                        .iter()
                        .any(|p| op.starts_with(p));
                    if !read {
                        writes.insert(
                            format!("{service}:{op}"),
                            count.as_u64().unwrap_or_default(),
                        );
                    }
                }
            }
        }
        writes
    }

    /// `status/<cluster>.json` of the scenario's cluster.
    pub async fn status(&self) -> Value {
        self.status_of(CLUSTER).await
    }

    /// The eks-events handler's context on this world, as its `main` builds it, with the
    /// system's own roles, the window and the clock given.
    pub fn eks_events(
        &self,
        system_roles: &[&str],
        window_seconds: u64,
        now: fn() -> u64,
    ) -> eks_events::Context<IamAdapter, S3Adapter, SqsAdapter> {
        eks_events::Context {
            iam: self.clients.iam.clone(),
            store: S3Adapter::new(self.clients.s3.clone(), BUCKET),
            queue: SqsAdapter::new(self.clients.sqs.clone(), self.queue_url.clone()),
            iam_path: PATH.to_owned(),
            region: REGION.to_owned(),
            system_roles: system_roles.iter().map(|r| (*r).to_owned()).collect(),
            window_seconds,
            now,
        }
    }

    /// `status/<cluster>.json` of any cluster.
    pub async fn status_of(&self, cluster: &str) -> Value {
        let out = self
            .clients
            .s3
            .get_object()
            .bucket(BUCKET)
            .key(format!("status/{cluster}.json"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("status report of {cluster}: {e}"));
        let bytes = out.body.collect().await.expect("body").into_bytes();
        serde_json::from_slice(&bytes).expect("status is JSON")
    }

    /// The messages visible on the queue (at most ten), read without taking them: each stays
    /// visible for the next receive (the read still counts in its `ApproximateReceiveCount`).
    pub async fn queued(&self) -> Vec<eks_intents::ports::ReconcileCluster> {
        let out = self
            .clients
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .visibility_timeout(0)
            .send()
            .await
            .expect("receive");
        out.messages()
            .iter()
            .map(|m| {
                serde_json::from_str(m.body().unwrap_or_default())
                    .expect("a ReconcileCluster message")
            })
            .collect()
    }
}

pub fn role_arn(name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:role/eks-intents/demo/{name}")
}

pub const ACK_ROLE: &str = "demo.ack-system.ack-dynamodb-controller";
pub const WORKER_ROLE: &str = "demo.jokes.joke-worker";
pub const EBS_ROLE: &str = "demo.kube-system.ebs-csi-controller-sa";

pub fn irsa_trust(namespace: &str, service_account: &str) -> Value {
    let issuer = ISSUER.trim_start_matches("https://");
    json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow",
        "Principal": {"Federated": format!("arn:aws:iam::{ACCOUNT}:oidc-provider/{issuer}")},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {
            format!("{issuer}:sub"): format!("system:serviceaccount:{namespace}:{service_account}"),
            format!("{issuer}:aud"): "sts.amazonaws.com",
        }}
    }]})
}

pub fn allow(actions: &[&str]) -> Value {
    json!({"Version": "2012-10-17", "Statement": [{"Action": actions, "Effect": "Allow", "Resource": ["*"]}]})
}

/// The EKS token connector of the code under test, and the server it talks to.
pub struct LocalCluster {
    pub connector: EksKubernetes,
    pub server: KubeServer,
}

impl KubernetesConnector for LocalCluster {
    type Port<'a> = EksCluster<'a>;

    async fn connect<'a>(&'a self, cluster: &ClusterDescription) -> PortResult<EksCluster<'a>> {
        self.connector.connect(cluster).await
    }
}

/// The seed scenario's namespaces, ServiceAccounts and Deployments, created as an admin would.
pub async fn seed_cluster(client: &kube::Client, with_worker: bool) {
    for ns in ["ack-system", "jokes", "kube-system"] {
        let api: Api<Namespace> = Api::all(client.clone());
        match api
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
            )
            .await
        {
            // The server starts with kube-system, as a cluster does.
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(e) => panic!("namespace {ns}: {e}"),
        }
    }
    let mut workloads = vec![
        (
            "ack-system",
            "ack-dynamodb-controller-dynamodb-chart",
            "ack-dynamodb-controller",
        ),
        ("jokes", "joke-server", "joke-server"),
        ("kube-system", "ebs-csi-controller", "ebs-csi-controller-sa"),
    ];
    if with_worker {
        workloads.push(("jokes", "joke-worker", "joke-worker"));
    } else {
        create_service_account(client, "jokes", "joke-worker").await;
    }
    for (ns, name, sa) in workloads {
        if !(ns == "jokes" && name == "joke-worker") || with_worker {
            create_service_account(client, ns, sa).await;
        }
        create_deployment(client, ns, name, sa).await;
    }
}

pub async fn create_service_account(client: &kube::Client, ns: &str, name: &str) {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    api.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap(),
    )
    .await
    .expect("service account");
}

pub async fn create_deployment(client: &kube::Client, ns: &str, name: &str, sa: &str) {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let deployment = json!({
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"serviceAccountName": sa, "containers": [{"name": "app", "image": "busybox"}]}
            }
        }
    });
    api.create(
        &PostParams::default(),
        &serde_json::from_value(deployment).unwrap(),
    )
    .await
    .expect("deployment");
}

/// Starts the Kubernetes API of `cluster_in_token_check` and points DescribeCluster of `demo`
/// at it.
pub fn local_cluster(
    token_cluster: &'static str,
    with_worker: bool,
) -> impl FnOnce(
    Emulator,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = (Emulator, LocalCluster)>>> {
    move |emulator: Emulator| {
        Box::pin(async move {
            let server = KubeServer::start(token_cluster, &emulator);
            server.register(&emulator, CLUSTER);
            seed_cluster(&server.admin_client(), with_worker).await;
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

/// The seed scenario's workloads in the in-memory Kubernetes (for tests about the AWS side).
pub async fn seed_fake_cluster(
    emulator: Emulator,
) -> (Emulator, eks_intents::testing::FakeKubernetes) {
    let kube = eks_intents::testing::FakeKubernetes::default();
    kube.add_workload(
        "ack-system",
        "ack-dynamodb-controller-dynamodb-chart",
        "ack-dynamodb-controller",
    );
    kube.add_workload("jokes", "joke-worker", "joke-worker");
    kube.add_workload("jokes", "joke-server", "joke-server");
    kube.add_workload("kube-system", "ebs-csi-controller", "ebs-csi-controller-sa");
    (emulator, kube)
}
