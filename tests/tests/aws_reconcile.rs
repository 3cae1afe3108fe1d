//! The seed scenario through the real handlers (`bundle-upload`, `reconciler`) and the real AWS
//! SDK adapters, on the local AWS emulator. State is read back with boto3 (`inspect.py`), not
//! with the code under test. Kubernetes is the in-memory fake until the Kubernetes side lands.

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_eks::types::VpcConfigRequest;
use aws_sdk_sqs::types::QueueAttributeName;
use eks_intents::adapters::aws::{
    AwsClients, AwsSettings, EksAdapter, IamAdapter, S3Adapter, SqsAdapter,
};
use eks_intents::apply::ApplySettings;
use eks_intents::intent::Limits;
use eks_intents::model::{BindingMode, Settings};
use eks_intents::reconcile::ReconcileSettings;
use eks_intents::testing::{FakeKubernetes, ISSUER, service_account_ref};
use integration::{ACCOUNT, Emulator, REGION};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

const BUCKET: &str = "eks-intents-test";
const CLUSTER: &str = "demo";
const PATH: &str = "/eks-intents/";

fn seed(file: &str) -> Vec<u8> {
    let path = integration::repo_root()
        .join("../shared/fixtures/seed-scenario")
        .join(file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Where each seed bundle is uploaded: the namespaced ones under their team's prefix.
const SEED_KEYS: &[(&str, &str)] = &[
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

struct World {
    emulator: Emulator,
    clients: AwsClients,
    reconciler: reconciler::Context<IamAdapter, EksAdapter, FakeKubernetes, S3Adapter>,
    upload: bundle_upload::Context<S3Adapter, SqsAdapter>,
    queue_url: String,
    boundary: String,
}

async fn world(mode: BindingMode) -> World {
    let emulator = Emulator::start();
    let config = emulator.sdk_config();
    let clients = AwsClients::from_config(
        &config,
        &AwsSettings {
            max_attempts: 5,
            s3_path_style: true,
        },
    );
    clients
        .s3
        .create_bucket()
        .bucket(BUCKET)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest2)
                .build(),
        )
        .send()
        .await
        .expect("bucket");
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

    let kube = FakeKubernetes::default();
    kube.add_workload(
        "ack-system",
        "ack-dynamodb-controller-dynamodb-chart",
        "ack-dynamodb-controller",
    );
    kube.add_workload("jokes", "joke-worker", "joke-worker");
    kube.add_workload("jokes", "joke-server", "joke-server");
    kube.add_workload("kube-system", "ebs-csi-controller", "ebs-csi-controller-sa");

    let calls = clients.calls.clone();
    let reconciler = reconciler::Context {
        iam: clients.iam.clone(),
        eks: clients.eks.clone(),
        kube,
        store: S3Adapter::new(clients.s3.clone(), BUCKET),
        settings: ReconcileSettings {
            plan: Settings {
                mode,
                permissions_boundary: Some(boundary.clone()),
                ..Settings::default()
            },
            apply: ApplySettings {
                propagation_timeout: Duration::from_secs(5),
                propagation_backoff: Duration::from_millis(100),
                ..ApplySettings::default()
            },
            ..ReconcileSettings::default()
        },
        calls: Box::new(move |reset| {
            let counts = calls.snapshot();
            if reset {
                calls.reset();
            }
            counts
        }),
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
        reconciler,
        upload,
        queue_url,
        boundary,
    }
}

impl World {
    async fn put(&self, key: &str, body: Vec<u8>) {
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
    async fn notify(&self, key: &str, deleted: bool) -> bundle_upload::Response {
        let event = json!({"Records": [{
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": REGION,
            "eventTime": "2026-11-26T12:00:00.000Z",
            "eventName": if deleted { "ObjectRemoved:Delete" } else { "ObjectCreated:Put" },
            "s3": {"bucket": {"name": BUCKET}, "object": {"key": key.replace(' ', "+"), "size": 100}}
        }]});
        bundle_upload::handle(&self.upload, &event)
            .await
            .expect("bundle-upload handles the event")
    }

    async fn upload_seed(&self) {
        for (key, file) in SEED_KEYS {
            self.put(key, seed(file)).await;
            let response = self.notify(key, false).await;
            assert_eq!(response.reconciles.len(), 1, "{key}: {response:?}");
            assert!(response.invalid.is_empty(), "{key}: {response:?}");
        }
    }

    /// Takes the queued messages and gives them to the reconciler handler, as Lambda's SQS
    /// event source would.
    async fn run_reconciler(&self) -> usize {
        let out = self
            .clients
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .send()
            .await
            .expect("receive");
        let mut event = SqsEvent::default();
        for message in out.messages() {
            let mut record = SqsMessage::default();
            record.message_id = message.message_id().map(str::to_owned);
            record.body = message.body().map(str::to_owned);
            event.records.push(record);
        }
        let count = event.records.len();
        let response = reconciler::handle(&self.reconciler, event).await;
        assert!(
            response.batch_item_failures.is_empty(),
            "{:?}",
            response.batch_item_failures.len()
        );
        for message in out.messages() {
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
        count
    }

    /// Asks for a reconcile directly (as the schedule would) and runs it.
    async fn reconcile_again(&self) {
        use eks_intents::ports::{ReconcileCluster, ReconcileQueue};
        self.upload
            .queue
            .send(&ReconcileCluster {
                cluster: CLUSTER.into(),
                reason: "test".into(),
            })
            .await
            .expect("send");
        assert_eq!(self.run_reconciler().await, 1);
    }

    fn inspect(&self) -> Value {
        self.emulator.inspect(PATH, CLUSTER)
    }

    /// IAM and EKS writes seen by the emulator since the counters were last cleared.
    fn aws_writes(&self) -> BTreeMap<String, u64> {
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

    async fn status(&self) -> Value {
        let out = self
            .clients
            .s3
            .get_object()
            .bucket(BUCKET)
            .key(format!("status/{CLUSTER}.json"))
            .send()
            .await
            .expect("status report");
        let bytes = out.body.collect().await.expect("body").into_bytes();
        serde_json::from_slice(&bytes).expect("status is JSON")
    }
}

fn role_arn(name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:role/eks-intents/demo/{name}")
}

const ACK_ROLE: &str = "demo.ack-system.ack-dynamodb-controller";
const WORKER_ROLE: &str = "demo.jokes.joke-worker";
const EBS_ROLE: &str = "demo.kube-system.ebs-csi-controller-sa";

fn irsa_trust(namespace: &str, service_account: &str) -> Value {
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

fn allow(actions: &[&str]) -> Value {
    json!({"Version": "2012-10-17", "Statement": [{"Action": actions, "Effect": "Allow", "Resource": ["*"]}]})
}

const EBS_ACTIONS: &[&str] = &[
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

#[tokio::test]
async fn seed_scenario_irsa_end_to_end_then_a_quiet_second_run() {
    let w = world(BindingMode::Irsa).await;
    w.upload_seed().await;
    // Four uploads ask for four reconciles of one cluster: one run serves them all.
    assert_eq!(w.run_reconciler().await, 4);

    let state = w.inspect();
    let roles = state["roles"].as_object().expect("roles");
    assert_eq!(roles.len(), 3, "{roles:#?}");
    for (name, namespace, service_account, actions) in [
        (
            ACK_ROLE,
            "ack-system",
            "ack-dynamodb-controller",
            &["dynamodb:*"][..],
        ),
        (WORKER_ROLE, "jokes", "joke-worker", &["dynamodb:*"][..]),
        (
            EBS_ROLE,
            "kube-system",
            "ebs-csi-controller-sa",
            EBS_ACTIONS,
        ),
    ] {
        let role = &roles[name];
        assert_eq!(role["arn"], role_arn(name));
        assert_eq!(role["path"], "/eks-intents/demo/");
        assert_eq!(
            role["trust"],
            irsa_trust(namespace, service_account),
            "{name}"
        );
        assert_eq!(role["inline"]["eks-intents"], allow(actions), "{name}");
        assert_eq!(role["attached"], json!({}));
        assert_eq!(role["boundary"], w.boundary.as_str());
        assert_eq!(role["tags"]["eks-intents/managed-by"], "eks-intents");
        assert_eq!(
            role["tags"]["eks-intents/cluster"],
            format!("arn:aws:eks:{REGION}:{ACCOUNT}:cluster/demo")
        );
        assert_eq!(role["tags"]["eks-intents/namespace"], namespace);
        assert_eq!(role["tags"]["eks-intents/service-account"], service_account);
    }
    assert_eq!(
        roles[WORKER_ROLE]["tags"]["eks-intents/bundle"],
        "intents/demo/jokes/joke-worker-ci.yaml"
    );
    let provider = format!(
        "arn:aws:iam::{ACCOUNT}:oidc-provider/{}",
        ISSUER.trim_start_matches("https://")
    );
    assert_eq!(
        state["oidc_providers"][&provider]["client_ids"],
        json!(["sts.amazonaws.com"])
    );
    // The add-on's ServiceAccount is bound through the add-on, not annotated.
    assert_eq!(
        state["addons"]["aws-ebs-csi-driver"]["service_account_role_arn"],
        role_arn(EBS_ROLE)
    );
    let kube = &w.reconciler.kube;
    assert_eq!(
        kube.annotation(&service_account_ref("jokes", "joke-worker")),
        Some(role_arn(WORKER_ROLE))
    );
    assert_eq!(
        kube.annotation(&service_account_ref(
            "ack-system",
            "ack-dynamodb-controller"
        )),
        Some(role_arn(ACK_ROLE))
    );
    assert_eq!(
        kube.annotation(&service_account_ref("kube-system", "ebs-csi-controller-sa")),
        None
    );
    assert_eq!(
        kube.annotation(&service_account_ref("jokes", "joke-server")),
        None
    );

    let status = w.status().await;
    let states: Vec<&str> = status["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["Ready", "Ready", "Ready"], "{status:#}");
    let bundles = status["bundles"].as_array().unwrap();
    assert_eq!(bundles.len(), 4);
    for bundle in bundles {
        assert!(
            bundle["etag"].as_str().is_some_and(|e| e.len() == 32),
            "{bundle}"
        );
        assert!(
            bundle["version"].as_str().is_some_and(|v| !v.is_empty()),
            "{bundle}"
        );
        assert_eq!(bundle["valid"], true);
    }
    assert!(
        status["api_calls"]["IAM:CreateRole"].as_u64() == Some(3),
        "{:#}",
        status["api_calls"]
    );

    // Nothing changed: the next run writes nothing to IAM, EKS or Kubernetes.
    w.emulator.clear_requests();
    let kube_writes = kube.writes();
    w.reconcile_again().await;
    assert_eq!(w.aws_writes(), BTreeMap::new());
    assert_eq!(kube.writes(), kube_writes);
    let status = w.status().await;
    let our_writes: Vec<&String> = status["api_calls"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|op| {
            !["Get", "List", "Describe"]
                .iter()
                .any(|r| op.split(':').nth(1).unwrap_or_default().starts_with(r))
        })
        .collect();
    assert!(our_writes.is_empty(), "{our_writes:?}");
    // One GetAccountAuthorizationDetails page reads every role.
    assert_eq!(status["api_calls"]["IAM:GetAccountAuthorizationDetails"], 1);
}

#[tokio::test]
async fn seed_scenario_pod_identity_uses_associations() {
    let w = world(BindingMode::PodIdentity).await;
    w.upload_seed().await;
    w.run_reconciler().await;
    let state = w.inspect();
    assert_eq!(state["oidc_providers"], json!({}));
    let trust = &state["roles"][WORKER_ROLE]["trust"]["Statement"][0];
    assert_eq!(trust["Principal"]["Service"], "pods.eks.amazonaws.com");
    assert_eq!(trust["Action"], json!(["sts:AssumeRole", "sts:TagSession"]));
    assert_eq!(
        trust["Condition"]["StringEquals"]["aws:RequestTag/kubernetes-service-account"],
        "joke-worker"
    );
    let mut associations: Vec<(String, String, String, bool)> = state["pod_identity_associations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["namespace"].as_str().unwrap().to_owned(),
                a["service_account"].as_str().unwrap().to_owned(),
                a["role_arn"].as_str().unwrap().to_owned(),
                a["owner_arn"].is_string(),
            )
        })
        .collect();
    associations.sort();
    assert_eq!(
        associations,
        [
            (
                "ack-system".into(),
                "ack-dynamodb-controller".into(),
                role_arn(ACK_ROLE),
                false
            ),
            (
                "jokes".into(),
                "joke-worker".into(),
                role_arn(WORKER_ROLE),
                false
            ),
            // The add-on's association is the add-on's own.
            (
                "kube-system".into(),
                "ebs-csi-controller-sa".into(),
                role_arn(EBS_ROLE),
                true
            ),
        ]
    );
    assert_eq!(
        w.reconciler.kube.writes(),
        0,
        "no annotations in Pod Identity mode"
    );
    w.emulator.clear_requests();
    w.reconcile_again().await;
    assert_eq!(w.aws_writes(), BTreeMap::new());
}

#[tokio::test]
async fn a_changed_bundle_makes_exactly_the_writes_it_needs() {
    let w = world(BindingMode::Irsa).await;
    w.upload_seed().await;
    w.run_reconciler().await;
    w.emulator.clear_requests();

    let worker = String::from_utf8(seed("joke-worker-ci.yaml"))
        .unwrap()
        .replace(
            "        - \"dynamodb:*\"",
            "        - \"dynamodb:*\"\n        - \"s3:GetObject\"",
        );
    w.put(
        "intents/demo/jokes/joke-worker-ci.yaml",
        worker.into_bytes(),
    )
    .await;
    w.notify("intents/demo/jokes/joke-worker-ci.yaml", false)
        .await;
    w.clients
        .s3
        .delete_object()
        .bucket(BUCKET)
        .key("intents/demo/ack-dynamodb-ci.yaml")
        .send()
        .await
        .unwrap();
    let response = w.notify("intents/demo/ack-dynamodb-ci.yaml", true).await;
    assert_eq!(response.reconciles.len(), 1);
    w.run_reconciler().await;

    // The added action: one policy write. The removed workload: its role is marked (one tag
    // write) and kept through the grace period.
    assert_eq!(
        w.aws_writes(),
        BTreeMap::from([
            ("iam:PutRolePolicy".to_owned(), 1),
            ("iam:TagRole".to_owned(), 1)
        ])
    );
    let state = w.inspect();
    assert_eq!(
        state["roles"][WORKER_ROLE]["inline"]["eks-intents"],
        allow(&["dynamodb:*", "s3:GetObject"])
    );
    assert!(state["roles"][ACK_ROLE]["tags"]["eks-intents/orphaned-since"].is_string());
    let status = w.status().await;
    assert_eq!(status["orphans"][0]["role"], ACK_ROLE);
    assert_eq!(status["orphans"][0]["state"], "Marked");
}

#[tokio::test]
async fn policies_rewritten_out_of_band_are_compared_by_meaning() {
    let w = world(BindingMode::Irsa).await;
    w.upload_seed().await;
    w.run_reconciler().await;
    let iam = aws_sdk_iam::Client::new(&w.emulator.sdk_config());

    // Same meaning, other spelling: scalars for lists, keys and actions reordered, a Sid.
    let same = r#"{"Statement":{"Sid":"Hand","Resource":"*","Effect":"Allow","Action":["ec2:ModifyVolume","ec2:DetachVolume","ec2:DescribeVolumesModifications","ec2:DescribeVolumes","ec2:DescribeTags","ec2:DescribeSnapshots","ec2:DescribeInstances","ec2:DescribeAvailabilityZones","ec2:DeleteVolume","ec2:DeleteTags","ec2:DeleteSnapshot","ec2:CreateVolume","ec2:CreateTags","ec2:CreateSnapshot","ec2:AttachVolume"]},"Version":"2012-10-17"}"#;
    iam.put_role_policy()
        .role_name(EBS_ROLE)
        .policy_name("eks-intents")
        .policy_document(same)
        .send()
        .await
        .unwrap();
    let worker_trust = r#"{"Version":"2012-10-17","Statement":[{"Condition":{"StringEquals":{"oidc.eks.eu-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE:aud":["sts.amazonaws.com"],"oidc.eks.eu-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE:sub":"system:serviceaccount:jokes:joke-worker"}},"Action":["sts:AssumeRoleWithWebIdentity"],"Principal":{"Federated":["arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"]},"Effect":"Allow"}]}"#;
    iam.update_assume_role_policy()
        .role_name(WORKER_ROLE)
        .policy_document(worker_trust)
        .send()
        .await
        .unwrap();
    w.emulator.clear_requests();
    w.reconcile_again().await;
    assert_eq!(w.aws_writes(), BTreeMap::new());

    // Another meaning: restored.
    iam.put_role_policy()
        .role_name(WORKER_ROLE)
        .policy_name("eks-intents")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#)
        .send()
        .await
        .unwrap();
    w.emulator.clear_requests();
    w.reconcile_again().await;
    assert_eq!(
        w.aws_writes(),
        BTreeMap::from([("iam:PutRolePolicy".to_owned(), 1)])
    );
    assert_eq!(
        w.inspect()["roles"][WORKER_ROLE]["inline"]["eks-intents"],
        allow(&["dynamodb:*"])
    );
}

#[tokio::test]
async fn an_invalid_upload_leaves_its_roles_as_they_were() {
    let w = world(BindingMode::Irsa).await;
    w.upload_seed().await;
    w.run_reconciler().await;
    let before = w.inspect();
    w.emulator.clear_requests();

    let broken = "apiVersion: k8s.otterize.com/v1alpha3\nkind: ClientIntents\nmetadata:\n  name: joke-worker\nspec:\n  service:\n    name: joke-worker\n  calls:\n  - name: \"*\"\n    type: aws\n    awsActions: 42\n";
    w.put(
        "intents/demo/jokes/joke-worker-ci.yaml",
        broken.as_bytes().to_vec(),
    )
    .await;
    let response = w
        .notify("intents/demo/jokes/joke-worker-ci.yaml", false)
        .await;
    assert_eq!(response.invalid, ["intents/demo/jokes/joke-worker-ci.yaml"]);
    // The uploader sees the errors at once, before any reconcile.
    let upload_status = w
        .clients
        .s3
        .get_object()
        .bucket(BUCKET)
        .key("status/demo/bundles/jokes/joke-worker-ci.yaml.json")
        .send()
        .await
        .expect("upload status");
    let upload_status: Value =
        serde_json::from_slice(&upload_status.body.collect().await.unwrap().into_bytes()).unwrap();
    assert_eq!(upload_status["valid"], false);
    let error = &upload_status["errors"][0];
    assert_eq!(error["file"], "intents/demo/jokes/joke-worker-ci.yaml");
    assert_eq!(error["document"], 1);
    assert_eq!(error["field"], "spec.calls[0].awsActions");
    assert_eq!(error["line"], 11);

    w.run_reconciler().await;
    assert_eq!(w.aws_writes(), BTreeMap::new());
    assert_eq!(w.inspect(), before);
    let status = w.status().await;
    let worker = status["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["workload"] == "joke-worker")
        .unwrap();
    assert_eq!(worker["state"], "Held", "{status:#}");
    let bundle = status["bundles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["key"] == "intents/demo/jokes/joke-worker-ci.yaml")
        .unwrap();
    assert_eq!(bundle["valid"], false);
    assert_eq!(bundle["errors"][0]["field"], "spec.calls[0].awsActions");
    assert!(
        bundle["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("list"),
        "{bundle:#}"
    );
}

#[tokio::test]
async fn throttling_on_iam_and_eks_still_converges() {
    let w = world(BindingMode::Irsa).await;
    w.upload_seed().await;
    w.emulator.control(
        "POST",
        "/_harness/faults",
        Some(&json!([
            {"service": "iam", "operation": "CreateRole", "code": "Throttling", "count": 2},
            {"service": "iam", "operation": "PutRolePolicy", "code": "Throttling", "count": 2},
            {"service": "eks", "operation": "UpdateAddon", "code": "Throttling", "count": 2},
        ])),
    );
    w.run_reconciler().await;
    let requests = w.emulator.requests();
    assert_eq!(requests["iam"]["CreateRole"], 5, "{requests:#}");
    assert_eq!(requests["eks"]["UpdateAddon"], 3, "{requests:#}");
    let state = w.inspect();
    assert_eq!(state["roles"].as_object().unwrap().len(), 3);
    assert_eq!(
        state["addons"]["aws-ebs-csi-driver"]["service_account_role_arn"],
        role_arn(EBS_ROLE)
    );
    let status = w.status().await;
    assert!(
        status["workloads"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["state"] == "Ready"),
        "{status:#}"
    );
}
