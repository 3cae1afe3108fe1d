//! Clusters in several accounts, one deployment (issue 14, point 1), on the local AWS emulator:
//! moto keeps one IAM, EKS and STS per account, and credentials from `AssumeRole` into a role of
//! another account act in that account. The deployment lives in the emulator's default account;
//! `east` is a cluster of a second account, `west` of a third. The reconciler's real handler
//! runs with the real AWS adapters and the account roles parsed from the real setting;
//! Kubernetes is the in-memory fake (the local API server trusts one fixed key, not the keys STS
//! hands out), and the EKS token of another account is checked on its own, as EKS checks it.
//! State in each account is read back with that account's own credentials.

use aws_config::SdkConfig;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_eks::types::VpcConfigRequest;
use aws_sdk_iam::config::{Credentials, SharedCredentialsProvider};
use base64::Engine;
use eks_intents::adapters::aws::{AccountSessions, AwsClients, AwsSettings, S3Adapter, SqsAdapter};
use eks_intents::config::{ACCOUNT_ROLE_EXTERNAL_ID, ACCOUNT_ROLES, Config};
use eks_intents::model::{BindingMode, RoleArn, Settings};
use eks_intents::policy::PolicyDocument;
use eks_intents::ports::{
    ClusterDescription, IamPort, KubernetesConnector, PortResult, ReconcileCluster, ReconcileQueue,
};
use eks_intents::reconcile::ReconcileSettings;
use eks_intents::testing::FakeKubernetes;
use integration::scenario::*;
use integration::{ACCOUNT, Emulator, REGION};
use reconciler::{AccountPorts, Accounts, Context, InAccounts, handle_in_accounts};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

const EAST: &str = "east";
const EAST_ACCOUNT: &str = "222222222222";
const WEST: &str = "west";
const WEST_ACCOUNT: &str = "333333333333";
const EXTERNAL_ID: &str = "eks-intents-test-7f3a";
const BOUNDARY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["dynamodb:*","ec2:*","s3:*"],"Resource":"*"}]}"#;

/// The role `infra/account-role.yaml` makes in an account.
fn account_role(account: &str) -> String {
    format!("arn:aws:iam::{account}:role/eks-intents-account")
}

/// The seed's in-memory workloads, for every cluster (each bundle names only its own).
#[derive(Clone)]
struct SharedKube(Arc<FakeKubernetes>);

impl KubernetesConnector for SharedKube {
    type Port<'a> = &'a FakeKubernetes;

    async fn connect<'a>(&'a self, _: &ClusterDescription) -> PortResult<&'a FakeKubernetes> {
        Ok(&self.0)
    }
}

/// The real sessions of `EKS_INTENTS_ACCOUNT_ROLES`, with the fake Kubernetes in every account.
struct TestAccounts {
    sessions: AccountSessions,
    kube: SharedKube,
}

impl Accounts for TestAccounts {
    type Iam = eks_intents::adapters::aws::IamAdapter;
    type Eks = eks_intents::adapters::aws::EksAdapter;
    type Kube = SharedKube;

    fn roles(&self) -> &eks_intents::config::AccountRoles {
        self.sessions.roles()
    }

    async fn ports(
        &self,
        role: &RoleArn,
    ) -> PortResult<AccountPorts<Self::Iam, Self::Eks, SharedKube>> {
        let clients = self.sessions.clients(role).await?;
        Ok(AccountPorts {
            iam: clients.iam,
            eks: clients.eks,
            kube: self.kube.clone(),
        })
    }

    fn located(&self, cluster: &str) -> Option<Option<RoleArn>> {
        self.sessions.located(cluster)
    }

    fn remember(&self, cluster: &str, role: Option<RoleArn>) {
        self.sessions.remember(cluster, role)
    }
}

type Reconciler = InAccounts<
    eks_intents::adapters::aws::IamAdapter,
    eks_intents::adapters::aws::EksAdapter,
    SharedKube,
    S3Adapter,
    SqsAdapter,
    TestAccounts,
>;

/// Credentials of `account` for the test itself, from a role there (moto assumes any role).
async fn credentials_in(clients: &AwsClients, emulator: &Emulator, account: &str) -> SdkConfig {
    let out = clients
        .sts
        .assume_role()
        .role_arn(format!("arn:aws:iam::{account}:role/test-admin"))
        .role_session_name("test-setup")
        .send()
        .await
        .expect("assume a role of the account");
    let issued = out.credentials().expect("credentials");
    emulator
        .sdk_config()
        .to_builder()
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            issued.access_key_id(),
            issued.secret_access_key(),
            Some(issued.session_token().to_owned()),
            None,
            "test",
        )))
        .build()
}

/// What the account's template and its platform team make: the boundary policy of the same
/// name as the deployment's, the role the deployment assumes, and the EKS cluster.
async fn make_account(config: &SdkConfig, account: &str, cluster: &str) {
    let iam = aws_sdk_iam::Client::new(config);
    iam.create_policy()
        .policy_name("eks-intents-boundary")
        .policy_document(BOUNDARY)
        .send()
        .await
        .expect("boundary policy");
    let trust = json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:role/eks-intents-reconciler")},
        "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"sts:ExternalId": EXTERNAL_ID}}
    }]});
    iam.create_role()
        .role_name("eks-intents-account")
        .assume_role_policy_document(trust.to_string())
        .send()
        .await
        .expect("account role");
    aws_sdk_eks::Client::new(config)
        .create_cluster()
        .name(cluster)
        .role_arn(format!("arn:aws:iam::{account}:role/eks-cluster"))
        .resources_vpc_config(VpcConfigRequest::builder().subnet_ids("subnet-1").build())
        .send()
        .await
        .expect("cluster");
}

/// The roles under `/eks-intents/` of the account `config` acts in: name -> (ARN, boundary,
/// trust policy as IAM gives it).
async fn roles_in(config: &SdkConfig) -> BTreeMap<String, (String, String, String)> {
    let iam = aws_sdk_iam::Client::new(config);
    let listed = iam
        .list_roles()
        .path_prefix("/eks-intents/")
        .send()
        .await
        .expect("list roles");
    let mut roles = BTreeMap::new();
    for role in listed.roles() {
        let got = iam
            .get_role()
            .role_name(role.role_name())
            .send()
            .await
            .expect("get role");
        let role = got.role().expect("role");
        roles.insert(
            role.role_name().to_owned(),
            (
                role.arn().to_owned(),
                role.permissions_boundary()
                    .and_then(|b| b.permissions_boundary_arn())
                    .unwrap_or_default()
                    .to_owned(),
                role.assume_role_policy_document()
                    .unwrap_or_default()
                    .to_owned(),
            ),
        );
    }
    roles
}

struct Fleet {
    w: World<FakeKubernetes>,
    reconciler: Reconciler,
    roles: eks_intents::config::AccountRoles,
    east: SdkConfig,
    west: SdkConfig,
}

/// The scenario's deployment and `demo` in the default account, `east` and `west` in two more,
/// one bundle each for `east` and `west`, and the reconciler with `roles` as
/// `EKS_INTENTS_ACCOUNT_ROLES`.
async fn fleet(roles: Value) -> Fleet {
    fleet_with(BindingMode::PodIdentity, roles, &[]).await
}

/// [`fleet`] in `mode`, with more settings of the deployment.
async fn fleet_with(mode: BindingMode, roles: Value, more: &[(&'static str, String)]) -> Fleet {
    let w = world(mode, seed_fake_cluster).await;
    let east = credentials_in(&w.clients, &w.emulator, EAST_ACCOUNT).await;
    let west = credentials_in(&w.clients, &w.emulator, WEST_ACCOUNT).await;
    make_account(&east, EAST_ACCOUNT, EAST).await;
    make_account(&west, WEST_ACCOUNT, WEST).await;
    for cluster in [EAST, WEST] {
        w.put(
            &format!("intents/{cluster}/jokes/joke-worker-ci.yaml"),
            seed("joke-worker-ci.yaml"),
        )
        .await;
    }
    let mut vars = BTreeMap::from([
        ("EKS_INTENTS_BUCKET", BUCKET.to_owned()),
        (ACCOUNT_ROLES, roles.to_string()),
        (ACCOUNT_ROLE_EXTERNAL_ID, EXTERNAL_ID.to_owned()),
    ]);
    vars.extend(more.iter().cloned());
    let config = Config::from_lookup(|name| vars.get(name).cloned()).expect("configuration");
    let kube = Arc::new(FakeKubernetes::default());
    kube.add_workload("jokes", "joke-worker", "joke-worker");
    kube.add_workload(
        "ack-system",
        "ack-dynamodb-controller-dynamodb-chart",
        "ack-dynamodb-controller",
    );
    kube.add_workload("kube-system", "ebs-csi-controller", "ebs-csi-controller-sa");
    let kube = SharedKube(kube);
    let roles = config.accounts.clone();
    let reconciler = InAccounts {
        home: Context {
            iam: w.clients.iam.clone(),
            eks: w.clients.eks.clone(),
            kube: kube.clone(),
            store: S3Adapter::new(w.clients.s3.clone(), BUCKET),
            retry: SqsAdapter::new(w.clients.sqs.clone(), w.queue_url.clone()),
            settings: ReconcileSettings {
                plan: Settings {
                    target_accounts: config.reconcile.plan.target_accounts.clone(),
                    bucket_accounts: config.reconcile.plan.bucket_accounts.clone(),
                    ..w.reconciler.settings.plan.clone()
                },
                ..w.reconciler.settings.clone()
            },
            memory: Default::default(),
            calls: w.clients.calls.clone(),
            metrics: Box::new(|_| {}),
        },
        accounts: TestAccounts {
            sessions: AccountSessions::new(&w.clients, config.accounts),
            kube,
        },
    };
    Fleet {
        w,
        reconciler,
        roles,
        east,
        west,
    }
}

impl Fleet {
    /// Asks for a reconcile of each `(cluster, account named in the request)`.
    async fn request(&self, clusters: &[(&str, Option<&str>)]) {
        for (cluster, account) in clusters {
            let mut message = ReconcileCluster::new(*cluster, "test");
            message.account = account.map(str::to_owned);
            self.w.upload.queue.send(&message).await.expect("send");
        }
    }

    /// Gives the queued messages to the reconciler's handler in one batch, as Lambda's SQS event
    /// source would, and deletes them; returns the clusters received and those that failed.
    async fn run_batch(&self) -> (BTreeSet<String>, BTreeSet<String>) {
        let out = self
            .w
            .clients
            .sqs
            .receive_message()
            .queue_url(&self.w.queue_url)
            .max_number_of_messages(10)
            .send()
            .await
            .expect("receive");
        let mut event = SqsEvent::default();
        let mut cluster_of = BTreeMap::new();
        for message in out.messages() {
            let mut record = SqsMessage::default();
            record.message_id = message.message_id().map(str::to_owned);
            record.receipt_handle = message.receipt_handle().map(str::to_owned);
            record.body = message.body().map(str::to_owned);
            let body: ReconcileCluster =
                serde_json::from_str(message.body().unwrap_or_default()).expect("a request");
            cluster_of.insert(
                message.message_id().unwrap_or_default().to_owned(),
                body.cluster,
            );
            event.records.push(record);
        }
        let response = handle_in_accounts(&self.reconciler, event).await;
        for message in out.messages() {
            if let Some(handle) = message.receipt_handle() {
                let _ = self
                    .w
                    .clients
                    .sqs
                    .delete_message()
                    .queue_url(&self.w.queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await;
            }
        }
        let failed = response
            .batch_item_failures
            .iter()
            .map(|f| cluster_of[&f.item_identifier].clone())
            .collect();
        (cluster_of.into_values().collect(), failed)
    }

    fn assume_role_calls(&self) -> u64 {
        self.w.emulator.requests()["sts"]["AssumeRole"]
            .as_u64()
            .unwrap_or_default()
    }
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn each_clusters_roles_land_in_its_own_account_and_an_unassumable_role_fails_its_clusters_alone()
 {
    // `east` resolves through the entry of its account (the requests name it), `west` through
    // its own entry, which names a role that does not exist.
    let wrong = "arn:aws:iam::333333333333:role/eks-intents-acount";
    let f = fleet(json!({ EAST_ACCOUNT: account_role(EAST_ACCOUNT), WEST: wrong })).await;
    f.w.upload_seed().await;
    f.request(&[(EAST, Some(EAST_ACCOUNT))]).await;
    f.w.emulator.clear_requests();

    let (received, failed) = f.run_batch().await;
    assert_eq!(received, set(&["demo", EAST]));
    assert_eq!(failed, set(&[]));
    // The deployment's own account holds demo's roles and nothing of east.
    let home = roles_in(&f.w.emulator.sdk_config()).await;
    assert_eq!(
        home.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        BTreeSet::from([ACK_ROLE, WORKER_ROLE, EBS_ROLE])
    );
    // East's role is in east's account, with that account's boundary, trusted by Pod Identity
    // of that account's cluster.
    let east = roles_in(&f.east).await;
    let (arn, boundary, trust) = &east["east.jokes.joke-worker"];
    assert_eq!(
        arn,
        &format!("arn:aws:iam::{EAST_ACCOUNT}:role/eks-intents/east/east.jokes.joke-worker")
    );
    assert_eq!(
        boundary,
        &format!("arn:aws:iam::{EAST_ACCOUNT}:policy/eks-intents-boundary")
    );
    assert!(trust.contains(EAST_ACCOUNT), "{trust}");
    assert!(!trust.contains(ACCOUNT), "{trust}");
    assert_eq!(east.len(), 1, "{east:?}");
    // The association is on east's cluster, in east's account.
    let associations = aws_sdk_eks::Client::new(&f.east)
        .list_pod_identity_associations()
        .cluster_name(EAST)
        .send()
        .await
        .expect("associations of east");
    let bound: Vec<(&str, &str)> = associations
        .associations()
        .iter()
        .map(|a| {
            (
                a.namespace().unwrap_or_default(),
                a.service_account().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(bound, [("jokes", "joke-worker")]);
    let status = f.w.status_of(EAST).await;
    assert_eq!(status["error"], Value::Null, "{status:#}");
    assert_eq!(f.assume_role_calls(), 1);

    // STS refuses the wrong role (moto's own STS assumes any ARN, so the harness answers
    // AccessDenied as STS does for a role that does not exist or does not trust the caller).
    f.w.emulator.control(
        "POST",
        "/_harness/faults",
        Some(&json!({
            "service": "sts", "operation": "AssumeRole", "code": "AccessDenied", "status": 403,
            "message": format!("User: arn:aws:sts::{ACCOUNT}:assumed-role/eks-intents-reconciler/eks-intents is not authorized to perform: sts:AssumeRole on resource: {wrong}"),
        })),
    );
    f.request(&[("demo", None), (WEST, None), (EAST, Some(EAST_ACCOUNT))])
        .await;
    let (received, failed) = f.run_batch().await;
    assert_eq!(received, set(&["demo", EAST, WEST]));
    assert_eq!(
        failed,
        set(&[WEST]),
        "only west's messages return to the queue"
    );
    let status = f.w.status_of(WEST).await;
    let error = status["error"].as_str().expect("west's status says why");
    assert!(error.contains(wrong), "{error}");
    assert!(error.contains("AccessDenied"), "{error}");
    assert!(error.contains("cannot assume the role"), "{error}");
    // West's bundle is still read and reported.
    assert_eq!(
        status["bundles"].as_array().map(Vec::len),
        Some(1),
        "{status:#}"
    );
    assert_eq!(roles_in(&f.west).await.len(), 0);
    // The others went on: east with the credentials kept from the first run.
    for cluster in ["demo", EAST] {
        let status = f.w.status_of(cluster).await;
        assert_eq!(status["error"], Value::Null, "{cluster}: {status:#}");
    }
    assert_eq!(f.assume_role_calls(), 2, "east's role is not assumed again");
}

/// Replays an EKS token's presigned `GetCallerIdentity` against the emulator's STS, as EKS does,
/// and returns the caller's ARN.
fn caller_of(emulator: &Emulator, token: &str, cluster: &str) -> String {
    let encoded = token.strip_prefix("k8s-aws-v1.").expect("an EKS token");
    let url = String::from_utf8(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(encoded)
            .expect("base64url"),
    )
    .expect("a URL");
    let rest = url.strip_prefix("http://").expect("the emulator's STS");
    let (host, path) = rest.split_once('/').expect("a path");
    let address = emulator.url.trim_start_matches("http://");
    assert_eq!(host, address);
    let mut stream = TcpStream::connect(address).expect("emulator reachable");
    let request = format!(
        "GET /{path} HTTP/1.1\r\nHost: {host}\r\nx-k8s-aws-id: {cluster}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).expect("request sent");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response read");
    let arn = response
        .split_once("<Arn>")
        .and_then(|(_, rest)| rest.split_once("</Arn>"))
        .map(|(arn, _)| arn.to_owned());
    arn.unwrap_or_else(|| panic!("STS did not vouch for the token: {response}"))
}

#[tokio::test]
async fn the_eks_token_of_a_cluster_in_another_account_is_signed_by_the_role_there() {
    let emulator = Emulator::start();
    let clients = AwsClients::from_config(&emulator.sdk_config(), &AwsSettings::default());
    let east = clients.in_account(&RoleArn::new(account_role(EAST_ACCOUNT)), EXTERNAL_ID);
    let token = east.kubernetes.token(EAST).await.expect("a token for east");
    assert_eq!(
        caller_of(&emulator, &token, EAST),
        format!("arn:aws:sts::{EAST_ACCOUNT}:assumed-role/eks-intents-account/eks-intents")
    );
    // The deployment's own clusters keep the deployment's own identity.
    let home = clients
        .kubernetes
        .token("demo")
        .await
        .expect("a token for demo");
    let caller = caller_of(&emulator, &home, "demo");
    assert!(caller.contains(&format!(":{ACCOUNT}:")), "{caller}");
    // A second token (and the IAM and EKS clients) reuse the role's credentials.
    let again = east.kubernetes.token(EAST).await.expect("a token for east");
    assert!(caller_of(&emulator, &again, EAST).contains(EAST_ACCOUNT));
    east.iam
        .role_tags(&eks_intents::model::RoleName::new("absent"))
        .await
        .expect("IAM of east answers");
    assert_eq!(emulator.requests()["sts"]["AssumeRole"], 1);
}

#[tokio::test]
async fn a_bundle_upload_and_the_drift_sweep_reach_a_cluster_of_another_account() {
    // Only an entry for east's account: nothing in a bundle upload says where east is.
    let f = fleet(json!({ EAST_ACCOUNT: account_role(EAST_ACCOUNT) })).await;
    let key = "intents/east/jokes/joke-worker-ci.yaml";
    let response = f.w.notify(key, false).await;
    assert_eq!(response.reconciles.len(), 1, "{response:?}");
    let queued = f.w.queued().await;
    assert_eq!(queued[0].account, None, "a bundle upload names no account");
    let (received, failed) = f.run_batch().await;
    assert_eq!((received, failed), (set(&[EAST]), set(&[])));
    // The reconciler found east in its account, and acted there.
    let east = roles_in(&f.east).await;
    assert_eq!(
        east.keys().map(String::as_str).collect::<Vec<_>>(),
        ["east.jokes.joke-worker"]
    );
    assert!(roles_in(&f.w.emulator.sdk_config()).await.is_empty());
    let status = f.w.status_of(EAST).await;
    assert_eq!(status["error"], Value::Null, "{status:#}");
    assert!(
        !status["warnings"]
            .to_string()
            .contains("does not exist any more"),
        "{status:#}"
    );
    assert_eq!(
        f.reconciler.accounts.located(EAST),
        Some(Some(RoleArn::new(account_role(EAST_ACCOUNT))))
    );

    // The drift sweep reads east's account through the same role: its messages name it.
    let sweep = drift_sweep::InAccounts {
        home: f.w.drift_sweep(),
        accounts: AccountSessions::new(&f.w.clients, f.roles.clone()),
    };
    let response =
        drift_sweep::handle_in_accounts(&sweep, &json!({"time": "2026-11-27T12:00:00Z"}))
            .await
            .expect("sweep");
    let swept: Vec<(&str, Option<&str>)> = response
        .clusters
        .iter()
        .map(|c| (c.cluster.as_str(), c.account.as_deref()))
        .collect();
    // West has bundles but no entry: it is the deployment's own as far as the sweep knows.
    assert_eq!(swept, [(EAST, Some(EAST_ACCOUNT)), (WEST, None)]);
    let queued = f.w.queued().await;
    let east_request = queued
        .iter()
        .find(|m| m.cluster == EAST)
        .expect("east asked for");
    assert_eq!(east_request.account.as_deref(), Some(EAST_ACCOUNT));
}

/// The intents of east's `jokes/joke-worker`: read the objects of a bucket of west's account.
const READS_WEST_BUCKET: &str = r#"apiVersion: k8s.otterize.com/v1alpha3
kind: ClientIntents
metadata:
  name: joke-worker
  namespace: jokes
spec:
  service:
    name: joke-worker
  calls:
  - name: arn:aws:s3:::joke-archive/*
    type: aws
    awsActions:
      - s3:GetObject
"#;

/// Issue 14, point 2: a workload of `east` (its cluster in a second account) reads a bucket of
/// `west` (a third account), with Pod Identity.
#[tokio::test]
async fn a_workload_reading_a_bucket_of_a_third_account_chains_into_a_target_role_there() {
    let f = east_reads_west(BindingMode::PodIdentity).await;

    let name = "east.jokes.joke-worker";
    let home = format!("arn:aws:iam::{EAST_ACCOUNT}:role/eks-intents/east/{name}");
    let target = format!("arn:aws:iam::{WEST_ACCOUNT}:role/eks-intents/east/{name}");
    // The target role is in west's account, with west's boundary, trusting only the workload's
    // role with the external id EKS Pod Identity sets for that ServiceAccount of east.
    let west = roles_in(&f.west).await;
    let (arn, boundary, trust) = &west[name];
    assert_eq!(arn, &target);
    assert_eq!(
        boundary,
        &format!("arn:aws:iam::{WEST_ACCOUNT}:policy/eks-intents-boundary")
    );
    let trust = PolicyDocument::from_text(trust.as_str()).value();
    assert_eq!(
        trust["Statement"],
        json!([{
            "Action": ["sts:AssumeRole", "sts:TagSession"],
            "Condition": {"StringEquals": {"sts:ExternalId": format!("{REGION}/{EAST_ACCOUNT}/east/jokes/joke-worker")}},
            "Effect": "Allow",
            "Principal": {"AWS": home},
        }])
    );
    assert_eq!(
        inline_policy(&f.west, name).await["Statement"],
        json!([{"Action": ["s3:GetObject"], "Effect": "Allow", "Resource": ["arn:aws:s3:::joke-archive/*"]}])
    );
    // The workload's role in east may only chain into it.
    assert_eq!(
        inline_policy(&f.east, name).await["Statement"],
        json!([{"Action": ["sts:AssumeRole", "sts:TagSession"], "Effect": "Allow", "Resource": [target]}])
    );
    // East's association names the target role.
    let eks = aws_sdk_eks::Client::new(&f.east);
    let listed = eks
        .list_pod_identity_associations()
        .cluster_name(EAST)
        .send()
        .await
        .expect("associations of east");
    let id = listed.associations()[0].association_id().expect("an id");
    let described = eks
        .describe_pod_identity_association()
        .cluster_name(EAST)
        .association_id(id)
        .send()
        .await
        .expect("the association");
    let association = described.association().expect("association");
    assert_eq!(association.role_arn(), Some(home.as_str()));
    assert_eq!(association.target_role_arn(), Some(target.as_str()));
    // The status names it for the workload.
    let status = f.w.status_of(EAST).await;
    let entry = status["workloads"]
        .as_array()
        .and_then(|all| all.iter().find(|w| w["workload"] == "joke-worker"))
        .expect("the workload's status");
    assert_eq!(
        entry["target_role_arn"],
        Value::String(target.clone()),
        "{entry:#}"
    );
    assert_eq!(entry["state"], "Ready", "{entry:#}");

    // A second run writes nothing, in any account.
    f.w.emulator.clear_requests();
    f.request(&[(EAST, Some(EAST_ACCOUNT))]).await;
    let (_, failed) = f.run_batch().await;
    assert_eq!(failed, set(&[]));
    assert_eq!(f.w.aws_writes(), BTreeMap::new());

    // A request that names west's account for east (east is not there) never takes the target
    // role there for the role of a cluster gone from west.
    f.request(&[(EAST, Some(WEST_ACCOUNT))]).await;
    let (_, failed) = f.run_batch().await;
    assert_eq!(failed, set(&[]));
    assert_eq!(f.w.aws_writes(), BTreeMap::new());
    assert!(roles_in(&f.west).await.contains_key(name));
}

/// East's joke-worker reading west's bucket, reconciled once in `mode`.
async fn east_reads_west(mode: BindingMode) -> Fleet {
    let f = fleet_with(
        mode,
        json!({ EAST_ACCOUNT: account_role(EAST_ACCOUNT), WEST_ACCOUNT: account_role(WEST_ACCOUNT) }),
        &[(
            "EKS_INTENTS_BUCKET_ACCOUNTS",
            json!({ "joke-archive": WEST_ACCOUNT }).to_string(),
        )],
    )
    .await;
    f.w.put(
        "intents/east/jokes/joke-worker-ci.yaml",
        READS_WEST_BUCKET.as_bytes().to_vec(),
    )
    .await;
    f.request(&[(EAST, Some(EAST_ACCOUNT))]).await;
    let (received, failed) = f.run_batch().await;
    assert_eq!((received, failed), (set(&[EAST]), set(&[])));
    let status = f.w.status_of(EAST).await;
    assert_eq!(status["error"], Value::Null, "{status:#}");
    f
}

#[tokio::test]
async fn with_irsa_the_target_role_trusts_east_clusters_provider_registered_in_west() {
    let f = east_reads_west(BindingMode::Irsa).await;
    let issuer = aws_sdk_eks::Client::new(&f.east)
        .describe_cluster()
        .name(EAST)
        .send()
        .await
        .expect("east")
        .cluster()
        .and_then(|c| c.identity())
        .and_then(|i| i.oidc())
        .and_then(|o| o.issuer())
        .expect("east's issuer")
        .trim_start_matches("https://")
        .to_owned();
    let provider = format!("arn:aws:iam::{WEST_ACCOUNT}:oidc-provider/{issuer}");
    let iam = aws_sdk_iam::Client::new(&f.west);
    let registered = iam
        .get_open_id_connect_provider()
        .open_id_connect_provider_arn(&provider)
        .send()
        .await
        .expect("east's provider registered in west");
    assert_eq!(registered.client_id_list(), ["sts.amazonaws.com"]);
    let name = "east.jokes.joke-worker";
    let (_, _, trust) = &roles_in(&f.west).await[name];
    let trust = PolicyDocument::from_text(trust.as_str()).value();
    assert_eq!(
        trust["Statement"],
        json!([{
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {
                format!("{issuer}:aud"): "sts.amazonaws.com",
                format!("{issuer}:sub"): "system:serviceaccount:jokes:joke-worker",
            }},
            "Effect": "Allow",
            "Principal": {"Federated": provider},
        }])
    );
    // The ServiceAccount is annotated with its own role in east, which grants nothing here.
    let annotation =
        f.reconciler
            .accounts
            .kube
            .0
            .annotation(&eks_intents::testing::service_account_ref(
                "jokes",
                "joke-worker",
            ));
    assert_eq!(
        annotation.as_deref(),
        Some(format!("arn:aws:iam::{EAST_ACCOUNT}:role/eks-intents/east/{name}").as_str())
    );
    f.w.emulator.clear_requests();
    f.request(&[(EAST, Some(EAST_ACCOUNT))]).await;
    let (_, failed) = f.run_batch().await;
    assert_eq!(failed, set(&[]));
    assert_eq!(f.w.aws_writes(), BTreeMap::new());
}

/// The inline policy `eks-intents` of the role `name` in the account `config` acts in.
async fn inline_policy(config: &SdkConfig, name: &str) -> Value {
    let got = aws_sdk_iam::Client::new(config)
        .get_role_policy()
        .role_name(name)
        .policy_name("eks-intents")
        .send()
        .await
        .expect("the inline policy");
    PolicyDocument::from_text(got.policy_document()).value()
}
