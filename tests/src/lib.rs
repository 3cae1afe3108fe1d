//! The harness of the integration tests: starts the local AWS emulator (`tests/harness/`: moto
//! with the EKS parts it lacks) as a child process per test, gives the SDK configuration that
//! points at it, drives its control API, and reads state back with boto3, independently of the
//! code under test.

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

/// One emulator process, stopped when dropped (closing its stdin ends it).
pub struct Emulator {
    child: Child,
    stdin: Option<ChildStdin>,
    pub url: String,
    address: String,
}

impl Emulator {
    pub fn start() -> Emulator {
        let mut child = Command::new(python())
            .arg(repo_root().join("tests/harness/aws_emulator.py"))
            .args(["--port", "0"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the AWS emulator starts");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("emulator stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the emulator prints READY");
        let url = line
            .trim()
            .strip_prefix("READY ")
            .unwrap_or_else(|| panic!("unexpected emulator output: {line:?}"))
            .to_owned();
        let address = url.trim_start_matches("http://").to_owned();
        Emulator {
            child,
            stdin,
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

impl Drop for Emulator {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
