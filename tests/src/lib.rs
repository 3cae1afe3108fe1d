//! The harness of the integration tests: starts the local AWS emulator (`tests/harness/`: moto
//! with the EKS parts it lacks) as a child process per test, gives the SDK configuration that
//! points at it, drives its control API, and reads state back with boto3, independently of the
//! code under test.

pub mod escalation;
pub mod fleet;
pub mod scenario;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_iam::config::Credentials;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;

pub const REGION: &str = "eu-west-2";
pub const ACCOUNT: &str = "123456789012";

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The venv's python: `EKS_INTENTS_PYTHON`, else whatever `tests/harness/setup-venv` prints
/// (it creates the venv on first use).
pub fn python() -> &'static str {
    static PYTHON: OnceLock<String> = OnceLock::new();
    PYTHON.get_or_init(|| {
        if let Ok(python) = std::env::var("EKS_INTENTS_PYTHON") {
            return python;
        }
        let out = Command::new("bash")
            .arg(repo_root().join("tests/harness/setup-venv"))
            .stderr(Stdio::inherit())
            .output()
            .expect("tests/harness/setup-venv runs");
        assert!(out.status.success(), "tests/harness/setup-venv failed");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_owned()
    })
}

/// A service process started for a test: it prints one line when ready and stops when its
/// stdin closes, so a test that dies never leaves it running.
struct Service {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Service {
    /// Starts `command` and returns it with its first stdout line.
    fn start(mut command: Command, what: &str) -> (Service, String) {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{what} does not start: {e}"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap_or_else(|e| panic!("{what} prints nothing: {e}"));
        (Service { child, stdin }, line)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// One emulator process, stopped when dropped.
pub struct Emulator {
    _process: Service,
    pub url: String,
    address: String,
}

impl Emulator {
    pub fn start() -> Emulator {
        let mut command = Command::new(python());
        command
            .arg(repo_root().join("tests/harness/aws_emulator.py"))
            .args(["--port", "0"]);
        let (process, line) = Service::start(command, "the AWS emulator");
        let url = line
            .trim()
            .strip_prefix("READY ")
            .unwrap_or_else(|| panic!("unexpected emulator output: {line:?}"))
            .to_owned();
        let address = url.trim_start_matches("http://").to_owned();
        Emulator {
            _process: process,
            url,
            address,
        }
    }

    /// The standard SDK configuration, pointed at the emulator by its endpoint URL.
    pub fn sdk_config(&self) -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(&self.url)
            .region(Region::new(REGION))
            .credentials_provider(aws_sdk_iam::config::SharedCredentialsProvider::new(
                Credentials::new("testing", "testing", None, None, "tests"),
            ))
            .build()
    }

    /// A call to the control API (`/_harness/...`); returns the JSON answer.
    pub fn control(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut stream = TcpStream::connect(&self.address).expect("emulator reachable");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.address,
            body.len()
        );
        stream.write_all(request.as_bytes()).expect("request sent");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("response read");
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        assert!(
            head.starts_with("HTTP/1.1 2") || head.starts_with("HTTP/1.0 2"),
            "{method} {path}: {head}\n{body}"
        );
        serde_json::from_str(body).unwrap_or(Value::Null)
    }

    /// Requests the emulator saw, by service and operation.
    pub fn requests(&self) -> Value {
        self.control("GET", "/_harness/requests", None)
    }

    /// S3 requests since the counts were last cleared, by operation and object key.
    pub fn objects(&self) -> Value {
        self.control("GET", "/_harness/objects", None)
    }

    pub fn clear_requests(&self) {
        self.control("DELETE", "/_harness/requests", None);
    }

    /// IAM and EKS as boto3 reads them: roles under `path`, OIDC providers, add-ons and Pod
    /// Identity associations of `cluster`.
    pub fn inspect(&self, path: &str, cluster: &str) -> Value {
        let out = Command::new(python())
            .arg(repo_root().join("tests/harness/read_back.py"))
            .arg(&self.url)
            .args(["--path", path, "--cluster", cluster, "--region", REGION])
            .output()
            .expect("read_back.py runs");
        assert!(
            out.status.success(),
            "read_back.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("read_back.py prints JSON")
    }
}

/// The local Kubernetes API server (`tests/kube-api-server`), for one cluster, checking EKS
/// tokens against the emulator's STS. Stopped when dropped.
pub struct KubeServer {
    _process: Service,
    pub endpoint: String,
    /// Base64 PEM of its CA, as `DescribeCluster` gives it.
    pub ca_data: String,
    pub admin_token: String,
}

/// The `kube-api-server` executable: the one beside the running test or quick start (cargo puts
/// every binary of a build in `target/<profile>/`, tests run from its `deps/`), else the one cargo
/// reports when asked to build it. The path comes from cargo itself, never from a guess, so a first
/// run in an empty target directory finds the binary it just built.
fn kube_server_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("executable path");
            let beside = |dir: Option<&Path>| dir.map(|d| d.join("kube-api-server"));
            let found = [
                beside(exe.parent()),
                beside(exe.parent().and_then(Path::parent)),
            ]
            .into_iter()
            .flatten()
            .find(|p| p.is_file());
            found.unwrap_or_else(build_kube_server)
        })
        .clone()
}

/// Builds `kube-api-server` and returns the executable cargo says it wrote.
fn build_kube_server() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("==> building the local Kubernetes API server (tests/kube-api-server)");
    let out = Command::new(cargo)
        .args(["build", "-p", "kube-api-server", "--bin", "kube-api-server"])
        .args(["--message-format", "json-render-diagnostics"])
        .current_dir(repo_root())
        .stderr(Stdio::inherit())
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo build -p kube-api-server failed"
    );
    executable_of(&String::from_utf8_lossy(&out.stdout), "kube-api-server").unwrap_or_else(|| {
        panic!("cargo build -p kube-api-server reported no kube-api-server executable")
    })
}

/// The `executable` of the `compiler-artifact` message for the binary `name`, in cargo's JSON
/// messages (one per line).
fn executable_of(messages: &str, name: &str) -> Option<PathBuf> {
    messages
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == name)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
}

impl KubeServer {
    /// Serves the API of `cluster`; tokens are checked with the emulator's STS and the
    /// credentials `Emulator::sdk_config` uses.
    pub fn start(cluster: &str, emulator: &Emulator) -> KubeServer {
        let admin_token = format!("admin-{}", std::process::id());
        let mut command = Command::new(kube_server_binary());
        command
            .args(["--cluster", cluster, "--sts-endpoint", &emulator.url])
            .args([
                "--aws-access-key-id",
                "testing",
                "--aws-secret-access-key",
                "testing",
            ])
            .args(["--admin-token", &admin_token, "--port", "0"]);
        let (process, line) = Service::start(command, "kube-api-server");
        let ready: Value = line
            .trim()
            .strip_prefix("READY ")
            .and_then(|json| serde_json::from_str(json).ok())
            .unwrap_or_else(|| panic!("unexpected kube-api-server output: {line:?}"));
        KubeServer {
            _process: process,
            endpoint: ready["endpoint"].as_str().unwrap_or_default().to_owned(),
            ca_data: ready["ca_data"].as_str().unwrap_or_default().to_owned(),
            admin_token,
        }
    }

    /// Makes `DescribeCluster` of `cluster` on the emulator return this server.
    pub fn register(&self, emulator: &Emulator, cluster: &str) {
        emulator.control(
            "PUT",
            &format!("/_harness/clusters/{cluster}"),
            Some(&serde_json::json!({ "endpoint": self.endpoint, "ca_data": self.ca_data })),
        );
    }

    /// A client with the admin token, to seed and inspect objects as a cluster admin would.
    pub fn admin_client(&self) -> kube::Client {
        let mut config = kube::Config::new(self.endpoint.parse().expect("endpoint URL"));
        config.root_cert = Some(
            eks_intents::adapters::kube::pem_certificates(&self.ca_data).expect("CA data is PEM"),
        );
        let mut value = http::HeaderValue::from_str(&format!("Bearer {}", self.admin_token))
            .expect("header value");
        value.set_sensitive(true);
        config.headers.push((http::header::AUTHORIZATION, value));
        kube::Client::try_from(config).expect("admin client")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_executable_is_read_from_cargos_messages() {
        let messages = r#"{"reason":"compiler-artifact","target":{"name":"kube_fake_client","kind":["lib"]},"executable":null}
{"reason":"compiler-artifact","target":{"name":"kube-api-server","kind":["bin"]},"executable":"/t/debug/kube-api-server"}
{"reason":"build-finished","success":true}"#;
        assert_eq!(
            executable_of(messages, "kube-api-server"),
            Some(PathBuf::from("/t/debug/kube-api-server"))
        );
        assert_eq!(executable_of(messages, "quickstart"), None);
    }
}
