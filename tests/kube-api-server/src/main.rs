//! `kube-api-server`: serves the in-memory Kubernetes API on 127.0.0.1 until stdin closes or
//! SIGTERM arrives; prints one `READY {...}` line on stdout once it serves.
#![forbid(unsafe_code)]

use clap::Parser;
use kube_api_server::{Config, Server};
use std::io::{IsTerminal as _, Read as _, Write as _};
use std::process::ExitCode;

/// An in-memory Kubernetes API over HTTPS, authenticating the admin token and EKS tokens.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// The EKS cluster name that tokens must be signed for (their x-k8s-aws-id header).
    #[arg(long)]
    cluster: String,
    /// The STS that vouches for EKS tokens, as http://HOST:PORT (the local AWS emulator).
    #[arg(long)]
    sts_endpoint: String,
    /// The access key id EKS tokens must be signed with.
    #[arg(long)]
    aws_access_key_id: String,
    /// The secret key EKS token signatures are checked with.
    #[arg(long)]
    aws_secret_access_key: String,
    /// A static bearer token with full access (for seeding objects and for kubectl).
    #[arg(long)]
    admin_token: String,
    /// The port on 127.0.0.1; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Keep running when stdin reaches EOF (for a shell that starts it in the background).
    #[arg(long)]
    ignore_stdin: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    // kube-fake-client's dependencies compile in both aws-lc-rs and ring, so rustls cannot
    // choose a default provider by itself; every TLS config in the process then uses this one.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();

    let cli = Cli::parse();
    let ignore_stdin = cli.ignore_stdin;
    let server = match Server::start(Config {
        cluster: cli.cluster,
        sts_endpoint: cli.sts_endpoint,
        aws_access_key_id: cli.aws_access_key_id,
        aws_secret_access_key: cli.aws_secret_access_key,
        admin_token: cli.admin_token,
        port: cli.port,
    })
    .await
    {
        Ok(server) => server,
        Err(error) => {
            eprintln!("kube-api-server: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "{}", server.ready_line())
        .and_then(|()| stdout.flush())
        .is_err()
    {
        eprintln!("kube-api-server: cannot write the READY line to stdout");
        return ExitCode::FAILURE;
    }
    drop(stdout);
    tracing::info!(endpoint = server.endpoint(), "serving");

    let stdin_closed = stdin_eof(ignore_stdin);
    let reason = wait_for_stop(stdin_closed).await;
    tracing::info!("stopping: {reason}");
    server.shutdown().await;
    ExitCode::SUCCESS
}

/// Resolves when stdin reaches EOF (never, with `--ignore-stdin`). A plain thread reads it,
/// because a blocked read on tokio's stdin would hold up the runtime's shutdown.
fn stdin_eof(ignore: bool) -> tokio::sync::oneshot::Receiver<()> {
    let (closed, receiver) = tokio::sync::oneshot::channel();
    if ignore {
        std::mem::forget(closed);
        return receiver;
    }
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buffer = [0u8; 1024];
        while matches!(stdin.read(&mut buffer), Ok(n) if n > 0) {}
        let _ = closed.send(());
    });
    receiver
}

async fn wait_for_stop(stdin_closed: tokio::sync::oneshot::Receiver<()>) -> &'static str {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = stdin_closed => "stdin closed",
        _ = terminate => "SIGTERM",
        _ = tokio::signal::ctrl_c() => "SIGINT",
    }
}
