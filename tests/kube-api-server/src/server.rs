//! The HTTPS server: TLS with the generated CA, bearer-token authentication, then the API.

use crate::api::Api;
use crate::auth::{AuthSettings, Authenticator};
use crate::discovery;
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
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// A client that connects but never finishes the handshake is dropped after this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bodies larger than kube-apiserver's own limit (3 MiB) are refused.
const MAX_BODY: usize = 3 * 1024 * 1024;

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
