//! The HTTPS server: TLS with the generated CA, bearer-token authentication, then the API.

use crate::api::Api;
use crate::auth::{AuthSettings, Authenticator, Identity};
use crate::discovery;
use crate::resource::Target;
use crate::status::{self, HttpResponse};
use crate::sts::Sts;
use crate::tls::Certificates;
use anyhow::Context as _;
use base64::Engine as _;
use http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// A client that connects but never finishes the handshake is dropped after this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bodies larger than kube-apiserver's own limit (3 MiB) are refused.
const MAX_BODY: usize = 3 * 1024 * 1024;
/// Where the admin reads (`GET`) and clears (`DELETE`) the request counts.
pub const REQUESTS_PATH: &str = "/_harness/requests";

/// What the server needs to know; the CLI flags map one to one.
#[derive(Debug, Clone)]
pub struct Config {
    /// The EKS cluster name tokens must be signed for (`x-k8s-aws-id`).
    pub cluster: String,
    /// `http://HOST:PORT` of the STS that vouches for EKS tokens.
    pub sts_endpoint: String,
    pub aws_access_key_id: String,
    pub aws_secret_access_key: String,
    pub admin_token: String,
    /// 0 picks a free port.
    pub port: u16,
}

/// A running server.
pub struct Server {
    endpoint: String,
    certificates: Certificates,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

struct Shared {
    auth: Authenticator,
    api: Api,
    /// Requests to resources by callers other than the admin, by `"{verb} {plural}"` (`list`
    /// across all namespaces is `"list {plural} (all namespaces)"`).
    requests: Mutex<BTreeMap<String, u64>>,
}

/// `"{verb} {plural}"` of a request to a resource path, as kube-apiserver's audit names it
/// (`patch` with `application/apply-patch` is `apply`).
fn request_key(method: &http::Method, path: &str, headers: &http::HeaderMap) -> Option<String> {
    let target = Target::parse(path)?;
    let apply = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/apply-patch"));
    let verb = match (method.as_str(), target.name.is_some()) {
        ("GET", false) => "list",
        ("GET", true) => "get",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) if apply => "apply",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        (other, _) => other,
    };
    let mut key = format!("{verb} {}", target.rtype.plural);
    if target.status {
        key.push_str("/status");
    }
    if target.rtype.namespaced && target.namespace.is_none() {
        key.push_str(" (all namespaces)");
    }
    Some(key)
}

impl Server {
    /// Binds 127.0.0.1, makes the certificates and starts serving; returns once requests are
    /// accepted.
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        for (flag, value) in [
            ("--cluster", &config.cluster),
            ("--aws-access-key-id", &config.aws_access_key_id),
            ("--aws-secret-access-key", &config.aws_secret_access_key),
            ("--admin-token", &config.admin_token),
        ] {
            anyhow::ensure!(!value.trim().is_empty(), "{flag} must not be empty");
        }
        let sts = Sts::new(&config.sts_endpoint)?;
        let certificates = Certificates::generate()?;
        let acceptor = TlsAcceptor::from(certificates.server_config()?);
        let shared = Arc::new(Shared {
            auth: Authenticator::new(AuthSettings {
                cluster: config.cluster.clone(),
                admin_token: config.admin_token.clone(),
                aws_access_key_id: config.aws_access_key_id.clone(),
                aws_secret_access_key: config.aws_secret_access_key.clone(),
                sts,
            }),
            api: Api::new().await?,
            requests: Mutex::new(BTreeMap::new()),
        });
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, config.port)))
            .await
            .with_context(|| format!("cannot listen on 127.0.0.1:{}", config.port))?;
        let port = listener.local_addr()?.port();
        let (shutdown, stopped) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, acceptor, shared, stopped));
        Ok(Self {
            endpoint: format!("https://127.0.0.1:{port}"),
            certificates,
            shutdown,
            task,
        })
    }

    /// `https://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The CA certificate (PEM) that signed the server certificate.
    pub fn ca_pem(&self) -> &str {
        &self.certificates.ca_pem
    }

    /// The CA certificate (DER), for clients in the same process.
    pub fn ca_der(&self) -> &[u8] {
        self.certificates.ca_der().as_ref()
    }

    /// The line the binary prints on stdout once it serves:
    /// `READY {"endpoint":"https://127.0.0.1:PORT","ca_data":"<base64 of the CA PEM>"}`.
    pub fn ready_line(&self) -> String {
        // Written by hand to keep the documented key order (serde_json sorts keys).
        let text = |s: &str| serde_json::Value::from(s).to_string();
        let ca_data = base64::engine::general_purpose::STANDARD.encode(self.ca_pem());
        format!(
            "READY {{\"endpoint\":{},\"ca_data\":{}}}",
            text(&self.endpoint),
            text(&ca_data)
        )
    }

    /// Stops accepting connections; open connections end with the process or their client.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(connection) => connection,
            Err(error) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => {
                    tracing::debug!(%peer, %error, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let service = service_fn(move |request| {
                let shared = Arc::clone(&shared);
                async move { Ok::<_, Infallible>(serve(&shared, request).await) }
            });
            if let Err(error) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await
            {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
}

async fn serve(shared: &Shared, request: Request<Incoming>) -> HttpResponse {
    let (parts, body) = request.into_parts();
    let identity = match shared.auth.authenticate(&parts.headers).await {
        Ok(identity) => identity,
        Err(message) => {
            tracing::info!(method = %parts.method, uri = %parts.uri, %message, "401");
            return status::failure(StatusCode::UNAUTHORIZED, message);
        }
    };
    let body = match http_body_util::Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            return status::failure(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("cannot read the request body: {error}"),
            );
        }
    };
    if parts.uri.path() == REQUESTS_PATH {
        return requests(shared, &identity, &parts.method);
    }
    if identity != Identity::Admin
        && let Some(key) = request_key(&parts.method, parts.uri.path(), &parts.headers)
        && let Ok(mut counts) = shared.requests.lock()
    {
        *counts.entry(key).or_default() += 1;
    }
    let response = match discovery::serve(parts.uri.path()) {
        Some(document) if parts.method == http::Method::GET => document,
        _ => {
            shared
                .api
                .handle(&parts.method, &parts.uri, &parts.headers, body)
                .await
        }
    };
    tracing::info!(
        method = %parts.method,
        uri = %parts.uri,
        user = %identity,
        status = response.status().as_u16(),
    );
    response
}

/// The request counts, for the admin only: `GET` answers `{"counts": {"list serviceaccounts":
/// 2, ...}}`, `DELETE` answers the same and starts again from zero.
fn requests(shared: &Shared, identity: &Identity, method: &http::Method) -> HttpResponse {
    if *identity != Identity::Admin {
        return status::failure(
            StatusCode::FORBIDDEN,
            "the request counts are for the admin",
        );
    }
    let Ok(mut counts) = shared.requests.lock() else {
        return status::failure(StatusCode::INTERNAL_SERVER_ERROR, "request counts poisoned");
    };
    let body = serde_json::json!({ "counts": *counts });
    match *method {
        http::Method::GET => {}
        http::Method::DELETE => counts.clear(),
        _ => {
            return status::failure(
                StatusCode::METHOD_NOT_ALLOWED,
                "GET reads the request counts, DELETE clears them",
            );
        }
    }
    status::json(StatusCode::OK, &body)
}
