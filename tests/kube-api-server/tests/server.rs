//! The binary as a test harness starts it: READY line, TLS with the generated CA, the admin
//! token, EKS tokens checked by signature and by a stub STS, and the API semantics the project
//! relies on (server-side apply, managed fields, conflicts, selectors, pagination).

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use std::io::{BufRead as _, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

const CLUSTER: &str = "demo";
const ACCESS_KEY_ID: &str = "AKIDTESTING";
const SECRET_KEY: &str = "testing-secret";
const ADMIN_TOKEN: &str = "admin-token-for-tests";
const STS_HOST: &str = "sts.us-east-1.amazonaws.com";
const CALLER_ARN: &str = "arn:aws:sts::123456789012:assumed-role/reconciler/lambda";

/// A stand-in for STS: answers GetCallerIdentity with 200 or 403 and records what it saw.
struct StubSts {
    endpoint: String,
    accept: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<(String, String, String)>>>,
}

impl StubSts {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let accept = Arc::new(AtomicBool::new(true));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (accept2, seen2) = (accept.clone(), seen.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (accept, seen) = (accept2.clone(), seen2.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |request: http::Request<_>| {
                        let header = |name: &str| {
                            request
                                .headers()
                                .get(name)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default()
                                .to_string()
                        };
                        seen.lock().unwrap().push((
                            header("host"),
                            header("x-k8s-aws-id"),
                            request.uri().to_string(),
                        ));
                        let (code, body) = if accept.load(Ordering::SeqCst) {
                            (
                                200,
                                format!(
                                    "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><GetCallerIdentityResult><Arn>{CALLER_ARN}</Arn><UserId>AROA:lambda</UserId><Account>123456789012</Account></GetCallerIdentityResult></GetCallerIdentityResponse>"
                                ),
                            )
                        } else {
                            (403, "<ErrorResponse><Error><Code>SignatureDoesNotMatch</Code><Message>denied by the stub</Message></Error></ErrorResponse>".to_string())
                        };
                        async move {
                            Ok::<_, std::convert::Infallible>(
                                http::Response::builder()
                                    .status(code)
                                    .body(Full::new(Bytes::from(body)))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            endpoint,
            accept,
            seen,
        }
    }
}

/// The server binary, stopped by closing its stdin when the test ends.
struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
    endpoint: String,
    ca_data: String,
}

impl Running {
    fn start(sts_endpoint: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kube-api-server"))
            .args([
                "--cluster",
                CLUSTER,
                "--sts-endpoint",
                sts_endpoint,
                "--aws-access-key-id",
                ACCESS_KEY_ID,
                "--aws-secret-access-key",
                SECRET_KEY,
                "--admin-token",
                ADMIN_TOKEN,
                "--port",
                "0",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the server binary starts");
        let stdin = child.stdin.take();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let ready: Value = serde_json::from_str(
            line.trim_end()
                .strip_prefix("READY ")
                .unwrap_or_else(|| panic!("no READY line: {line:?}")),
        )
        .unwrap();
        let keys: Vec<&str> = line.match_indices("\":").map(|(i, _)| &line[..i]).collect();
        assert!(
            keys[0].ends_with("\"endpoint"),
            "endpoint comes first: {line}"
        );
        Self {
            child,
            stdin,
            endpoint: ready["endpoint"].as_str().unwrap().to_string(),
            ca_data: ready["ca_data"].as_str().unwrap().to_string(),
        }
    }

    /// A kube client configured the way the project configures one from DescribeCluster.
    async fn client(&self, token: Option<&str>) -> kube::Client {
        let user = match token {
            Some(token) => format!("{{token: \"{token}\"}}"),
            None => "{}".to_string(),
        };
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&format!(
            "apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: \"{}\", certificate-authority-data: \"{}\"}}}}]
users: [{{name: u, user: {user}}}]
contexts: [{{name: x, context: {{cluster: c, user: u}}}}]
current-context: x
",
            self.endpoint, self.ca_data
        ))
        .unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap();
        kube::Client::try_from(config).unwrap()
    }

    async fn admin(&self) -> kube::Client {
        self.client(Some(ADMIN_TOKEN)).await
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

fn install_crypto() {
    // Both aws-lc-rs and ring are compiled in, so the client side must pick one too.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// An EKS token made like the client side makes it: SigV4 query presign of STS
/// GetCallerIdentity with the cluster header, 60 s expiry.
fn eks_token(cluster: &str, key_id: &str, secret: &str, time: SystemTime) -> String {
    let identity = Credentials::new(key_id, secret, None, None, "test").into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(Duration::from_secs(60));
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("sts")
        .time(time)
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let url = format!("https://{STS_HOST}/?Action=GetCallerIdentity&Version=2011-06-15");
    let signable = SignableRequest::new(
        "GET",
        &url,
        [("host", STS_HOST), ("x-k8s-aws-id", cluster)].into_iter(),
        SignableBody::Bytes(&[]),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut request = http::Request::get(&url).body(()).unwrap();
    instructions.apply_to_request_http1x(&mut request);
    format!(
        "k8s-aws-v1.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(request.uri().to_string())
    )
}

/// The 401 `Status` a client gets, as kube reports it.
async fn refusal(client: kube::Client) -> kube::core::Status {
    match Api::<Namespace>::all(client)
        .list(&ListParams::default())
        .await
    {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("expected a 401 Status, got {other:?}"),
    }
}

async fn namespace(client: &kube::Client, name: &str) {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
}

fn apply(manager: &str) -> PatchParams {
    PatchParams::apply(manager)
}

#[tokio::test]
async fn tls_admin_token_and_refusals() {
    install_crypto();
    let sts = StubSts::start().await;
    let server = Running::start(&sts.endpoint);

    let names: Vec<String> = Api::<Namespace>::all(server.admin().await)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    assert!(names.contains(&"default".to_string()), "{names:?}");

    for (token, why) in [
        (None, "no Authorization header"),
        (Some("garbage"), "neither the admin token nor an EKS token"),
        (Some("k8s-aws-v1.!!!"), "not an EKS token"),
    ] {
        let status = refusal(server.client(token).await).await;
        assert_eq!(status.code, 401);
        assert_eq!(status.reason, "Unauthorized");
        assert!(status.message.contains(why), "{}", status.message);
    }
    assert!(
        sts.seen.lock().unwrap().is_empty(),
        "no STS call for malformed tokens"
    );
}

#[tokio::test]
async fn eks_tokens_are_checked_by_signature_and_by_sts() {
    install_crypto();
    let sts = StubSts::start().await;
    let server = Running::start(&sts.endpoint);
    let now = SystemTime::now();

    let token = eks_token(CLUSTER, ACCESS_KEY_ID, SECRET_KEY, now);
    let client = server.client(Some(&token)).await;
    Api::<ServiceAccount>::namespaced(client, "default")
        .get("default")
        .await
        .expect("a token for this cluster is accepted");
    {
        let seen = sts.seen.lock().unwrap();
        let (host, cluster, uri) = seen.first().expect("STS was asked");
        assert_eq!(host, STS_HOST);
        assert_eq!(cluster, CLUSTER);
        assert!(uri.contains("Action=GetCallerIdentity"), "{uri}");
    }

    // Signed for another cluster: the x-k8s-aws-id header no longer matches the signature.
    let other = eks_token("other", ACCESS_KEY_ID, SECRET_KEY, now);
    let status = refusal(server.client(Some(&other)).await).await;
    assert_eq!(status.code, 401);
    assert_eq!(
        status.message,
        "token is not valid for cluster demo: signature mismatch"
    );

    let wrong_secret = eks_token(CLUSTER, ACCESS_KEY_ID, "another-secret", now);
    let status = refusal(server.client(Some(&wrong_secret)).await).await;
    assert!(
        status.message.ends_with("signature mismatch"),
        "{}",
        status.message
    );

    let wrong_key = eks_token(CLUSTER, "AKIDOTHER", SECRET_KEY, now);
    let status = refusal(server.client(Some(&wrong_key)).await).await;
    assert!(status.message.contains("AKIDOTHER"), "{}", status.message);

    let expired = eks_token(
        CLUSTER,
        ACCESS_KEY_ID,
        SECRET_KEY,
        now - Duration::from_secs(16 * 60),
    );
    let status = refusal(server.client(Some(&expired)).await).await;
    assert!(status.message.contains("expired"), "{}", status.message);

    let future = eks_token(
        CLUSTER,
        ACCESS_KEY_ID,
        SECRET_KEY,
        now + Duration::from_secs(10 * 60),
    );
    let status = refusal(server.client(Some(&future)).await).await;
    assert!(status.message.contains("future"), "{}", status.message);

    // A well-signed token still needs STS to vouch for it.
    sts.accept.store(false, Ordering::SeqCst);
    let fresh = eks_token(
        CLUSTER,
        ACCESS_KEY_ID,
        SECRET_KEY,
        now - Duration::from_secs(1),
    );
    let status = refusal(server.client(Some(&fresh)).await).await;
    assert_eq!(status.code, 401);
    assert!(
        status
            .message
            .contains("STS GetCallerIdentity answered HTTP 403")
            && status.message.contains("denied by the stub"),
        "{}",
        status.message
    );
}

#[tokio::test]
async fn server_side_apply_on_service_accounts() {
    install_crypto();
    let sts = StubSts::start().await;
    let server = Running::start(&sts.endpoint);
    let client = server.admin().await;
    namespace(&client, "team").await;
    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), "team");
    let config = |annotations: Value| {
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": "app", "annotations": annotations}})
    };

    let created = accounts
        .patch(
            "app",
            &apply("a"),
            &Patch::Apply(config(json!({"role": "one"}))),
        )
        .await
        .unwrap();
    let managers = created.metadata.managed_fields.unwrap_or_default();
    assert_eq!(managers.len(), 1);
    assert_eq!(managers[0].manager.as_deref(), Some("a"));
    assert_eq!(managers[0].operation.as_deref(), Some("Apply"));

    // Another manager, another value: a conflict naming the owner and the field.
    let Err(kube::Error::Api(status)) = accounts
        .patch(
            "app",
            &apply("b"),
            &Patch::Apply(config(json!({"role": "two"}))),
        )
        .await
    else {
        panic!("expected a conflict");
    };
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        status.message,
        "Apply failed with 1 conflict: conflict with \"a\" using v1: .metadata.annotations.role"
    );

    // The same value is shared ownership, not a conflict.
    accounts
        .patch(
            "app",
            &apply("b"),
            &Patch::Apply(config(json!({"role": "one"}))),
        )
        .await
        .unwrap();
    // a stops applying the annotation: b still owns it, so it stays.
    let kept = accounts
        .patch(
            "app",
            &apply("a"),
            &Patch::Apply(config(json!({"other": "x"}))),
        )
        .await
        .unwrap();
    let annotations = kept.metadata.annotations.unwrap_or_default();
    assert_eq!(annotations.get("role").map(String::as_str), Some("one"));
    assert_eq!(annotations.get("other").map(String::as_str), Some("x"));
    // b stops too: nobody owns it any more, so it is removed.
    let removed = accounts
        .patch("app", &apply("b"), &Patch::Apply(config(json!({}))))
        .await
        .unwrap();
    let annotations = removed.metadata.annotations.unwrap_or_default();
    assert!(!annotations.contains_key("role"), "{annotations:?}");
    assert!(annotations.contains_key("other"));

    // A person edits the annotation a owns: a's next apply conflicts with that edit...
    accounts
        .patch(
            "app",
            &PatchParams {
                field_manager: Some("kubectl-annotate".into()),
                ..Default::default()
            },
            &Patch::Merge(json!({"metadata": {"annotations": {"other": "edited"}}})),
        )
        .await
        .unwrap();
    let Err(kube::Error::Api(status)) = accounts
        .patch(
            "app",
            &apply("a"),
            &Patch::Apply(config(json!({"other": "x"}))),
        )
        .await
    else {
        panic!("expected a conflict with the edit");
    };
    assert!(
        status.message.contains("\"kubectl-annotate\""),
        "{}",
        status.message
    );
    // ...unless it forces, which takes the field back.
    let forced = accounts
        .patch(
            "app",
            &apply("a").force(),
            &Patch::Apply(config(json!({"other": "x"}))),
        )
        .await
        .unwrap();
    let version = forced.metadata.resource_version.clone();
    assert_eq!(
        forced
            .metadata
            .annotations
            .unwrap_or_default()
            .get("other")
            .map(String::as_str),
        Some("x")
    );
    // Applying the same configuration again writes nothing.
    let again = accounts
        .patch(
            "app",
            &apply("a"),
            &Patch::Apply(config(json!({"other": "x"}))),
        )
        .await
        .unwrap();
    assert_eq!(again.metadata.resource_version, version);

    // Deleting the annotation by hand drops it from its owner's fields, so re-applying adds
    // it back without a conflict.
    accounts
        .patch(
            "app",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"other": null}}})),
        )
        .await
        .unwrap();
    let restored = accounts
        .patch(
            "app",
            &apply("a"),
            &Patch::Apply(config(json!({"other": "x"}))),
        )
        .await
        .unwrap();
    assert!(
        restored
            .metadata
            .annotations
            .unwrap_or_default()
            .contains_key("other")
    );

    // Unknown namespace: 404 as on a real cluster.
    let Err(kube::Error::Api(status)) = Api::<ServiceAccount>::namespaced(client, "missing")
        .patch("app", &apply("a"), &Patch::Apply(config(json!({}))))
        .await
    else {
        panic!("expected NotFound");
    };
    assert_eq!(status.code, 404);
    assert_eq!(status.message, "namespaces \"missing\" not found");
}

#[tokio::test]
async fn server_side_apply_on_deployments() {
    install_crypto();
    let sts = StubSts::start().await;
    let server = Running::start(&sts.endpoint);
    let client = server.admin().await;
    namespace(&client, "team").await;
    let deployments = Api::<Deployment>::namespaced(client, "team");
    let config = |replicas: i32, annotations: Value| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web", "annotations": annotations},
               "spec": {"replicas": replicas,
                        "selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"labels": {"app": "web"}},
                                     "spec": {"serviceAccountName": "app",
                                              "containers": [{"name": "web", "image": "nginx"}]}}}})
    };
    let created = deployments
        .patch(
            "web",
            &apply("deployer"),
            &Patch::Apply(config(2, json!({"team": "a"}))),
        )
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));

    let Err(kube::Error::Api(status)) = deployments
        .patch("web", &apply("scaler"), &Patch::Apply(config(5, json!({}))))
        .await
    else {
        panic!("expected a conflict on spec.replicas");
    };
    assert_eq!(status.code, 409);
    assert!(
        status.message.contains(".spec.replicas"),
        "{}",
        status.message
    );

    // Dropping the annotation from the configuration removes it; metadata-only changes keep
    // the generation, spec changes bump it.
    let updated = deployments
        .patch(
            "web",
            &apply("deployer"),
            &Patch::Apply(config(2, json!({}))),
        )
        .await
        .unwrap();
    assert!(updated.metadata.annotations.unwrap_or_default().is_empty());
    assert_eq!(updated.metadata.generation, Some(1));
    let scaled = deployments
        .patch(
            "web",
            &apply("deployer"),
            &Patch::Apply(config(3, json!({}))),
        )
        .await
        .unwrap();
    assert_eq!(scaled.spec.and_then(|s| s.replicas), Some(3));
    assert_eq!(scaled.metadata.generation, Some(2));
    let fields = serde_json::to_value(&scaled.metadata.managed_fields).unwrap();
    assert_eq!(
        fields[0]["fieldsV1"]["f:spec"]["f:replicas"],
        json!({}),
        "{fields}"
    );
}

#[tokio::test]
async fn selectors_and_pagination() {
    install_crypto();
    let sts = StubSts::start().await;
    let server = Running::start(&sts.endpoint);
    let client = server.admin().await;
    namespace(&client, "team").await;
    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), "team");
    for (name, tier) in [
        ("api", "back"),
        ("web", "front"),
        ("worker", "back"),
        ("cron", ""),
    ] {
        let mut labels = json!({"app": name});
        if !tier.is_empty() {
            labels["tier"] = json!(tier);
        }
        let sa: ServiceAccount =
            serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap();
        accounts.create(&PostParams::default(), &sa).await.unwrap();
    }
    let names = |list: kube::core::ObjectList<ServiceAccount>| -> Vec<String> {
        list.items
            .into_iter()
            .filter_map(|s| s.metadata.name)
            .collect()
    };

    // kube writes the spaces of set-based selectors as `+`.
    let set_based = accounts
        .list(&ListParams::default().labels("app in (api, web),tier notin (front)"))
        .await
        .unwrap();
    assert_eq!(names(set_based), ["api"]);
    let missing = accounts
        .list(&ListParams::default().labels("!tier"))
        .await
        .unwrap();
    assert_eq!(names(missing), ["cron", "default"]);
    let fields = accounts
        .list(&ListParams::default().fields("metadata.name!=default"))
        .await
        .unwrap();
    assert_eq!(names(fields), ["api", "cron", "web", "worker"]);
    let Err(kube::Error::Api(status)) = accounts
        .list(&ListParams::default().labels("app in (unclosed"))
        .await
    else {
        panic!("a bad selector is a 400");
    };
    assert_eq!(status.code, 400);

    // Pages of two, in name order, until `continue` runs out.
    let mut seen = Vec::new();
    let mut params = ListParams::default().limit(2);
    loop {
        let page = accounts.list(&params).await.unwrap();
        let token = page.metadata.continue_.clone().filter(|t| !t.is_empty());
        seen.extend(names(page));
        match token {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    assert_eq!(seen, ["api", "cron", "default", "web", "worker"]);

    // Deleting a namespace deletes what is in it.
    Api::<Namespace>::all(client.clone())
        .delete("team", &DeleteParams::default())
        .await
        .unwrap();
    let all = Api::<ServiceAccount>::all(client)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(
        all.items
            .iter()
            .all(|s| s.metadata.namespace.as_deref() != Some("team"))
    );
}

#[tokio::test]
async fn exits_when_stdin_closes() {
    install_crypto();
    let sts = StubSts::start().await;
    let mut server = Running::start(&sts.endpoint);
    drop(server.stdin.take());
    for _ in 0..100 {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(status.success());
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the server kept running after stdin closed");
}

async fn request_counts(client: &kube::Client, method: http::Method) -> Value {
    let request = http::Request::builder()
        .method(method)
        .uri("/_harness/requests")
        .body(Vec::new())
        .unwrap();
    serde_json::from_str(&client.request_text(request).await.unwrap()).unwrap()
}

#[tokio::test]
async fn requests_are_counted_by_verb_and_resource_for_the_admin_to_read_and_clear() {
    install_crypto();
    let sts = StubSts::start().await;
    let server = Running::start(&sts.endpoint);
    let admin = server.admin().await;
    namespace(&admin, "team").await;
    let token = eks_token(CLUSTER, ACCESS_KEY_ID, SECRET_KEY, SystemTime::now());
    let caller = server.client(Some(&token)).await;
    let accounts = Api::<ServiceAccount>::namespaced(caller.clone(), "team");
    accounts.list(&ListParams::default()).await.unwrap();
    Api::<ServiceAccount>::all(caller.clone())
        .list(&ListParams::default().limit(1))
        .await
        .unwrap();
    accounts.get("default").await.unwrap();
    let config = json!({"apiVersion": "v1", "kind": "ServiceAccount",
                        "metadata": {"name": "default", "labels": {"a": "b"}}});
    accounts
        .patch("default", &apply("m"), &Patch::Apply(&config))
        .await
        .unwrap();
    // The admin's own requests are not counted.
    Api::<ServiceAccount>::namespaced(admin.clone(), "team")
        .get("default")
        .await
        .unwrap();

    let expected = json!({"counts": {
        "list serviceaccounts": 1,
        "list serviceaccounts (all namespaces)": 1,
        "get serviceaccounts": 1,
        "apply serviceaccounts": 1,
    }});
    assert_eq!(request_counts(&admin, http::Method::GET).await, expected);
    assert_eq!(request_counts(&admin, http::Method::DELETE).await, expected);
    assert_eq!(
        request_counts(&admin, http::Method::GET).await,
        json!({"counts": {}})
    );
    // Only the admin reads them.
    let request = http::Request::get("/_harness/requests")
        .body(Vec::new())
        .unwrap();
    let Err(kube::Error::Api(status)) = caller.request_text(request).await else {
        panic!("expected a refusal");
    };
    assert_eq!(status.code, 403);
}

#[tokio::test]
async fn a_uid_in_an_apply_configuration_is_a_precondition() {
    install_crypto();
    let sts = StubSts::start().await;
    let server = Running::start(&sts.endpoint);
    let client = server.admin().await;
    namespace(&client, "team").await;
    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), "team");
    let config = |uid: &str| {
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": "app", "uid": uid, "annotations": {"role": "one"}}})
    };
    // Nothing to create when a uid is given.
    let Err(kube::Error::Api(status)) = accounts
        .patch("app", &apply("a"), &Patch::Apply(config("1234")))
        .await
    else {
        panic!("expected a failed precondition");
    };
    assert_eq!(status.code, 409);
    assert!(
        status.message.contains("Precondition failed: UID"),
        "{status:?}"
    );
    assert!(accounts.get_opt("app").await.unwrap().is_none());

    accounts
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "app"}})).unwrap(),
        )
        .await
        .unwrap();
    let uid = accounts.get("app").await.unwrap().metadata.uid.unwrap();
    let Err(kube::Error::Api(status)) = accounts
        .patch("app", &apply("a"), &Patch::Apply(config("another")))
        .await
    else {
        panic!("expected a failed precondition");
    };
    assert_eq!(status.code, 409);
    let applied = accounts
        .patch("app", &apply("a"), &Patch::Apply(config(&uid)))
        .await
        .unwrap();
    assert_eq!(applied.metadata.uid, Some(uid));
    assert_eq!(
        applied.metadata.annotations.unwrap_or_default()["role"],
        "one"
    );
}
