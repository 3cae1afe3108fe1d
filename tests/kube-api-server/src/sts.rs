//! The second half of EKS authentication: replay the presigned GetCallerIdentity call against
//! the configured STS endpoint (the local AWS emulator) and read who signed it.

use crate::eks_token::{CLUSTER_ID_HEADER, PresignedCall};
use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::{BodyExt as _, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

/// How long STS may take before the request it authenticates is refused.
const STS_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of a failed STS answer to quote in the 401 message.
const QUOTE_LIMIT: usize = 300;

/// A plain-HTTP client for one STS endpoint.
#[derive(Clone)]
pub struct Sts {
    endpoint: Uri,
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl Sts {
    /// `endpoint` is `http://host:port`; only plain HTTP, since it is the local emulator.
    pub fn new(endpoint: &str) -> anyhow::Result<Self> {
        let endpoint: Uri = endpoint
            .trim_end_matches('/')
            .parse()
            .map_err(|e| anyhow::anyhow!("--sts-endpoint {endpoint:?} is not a URL: {e}"))?;
        if endpoint.scheme_str() != Some("http") || endpoint.authority().is_none() {
            anyhow::bail!(
                "--sts-endpoint {endpoint} must be http://HOST:PORT (the local AWS emulator)"
            );
        }
        Ok(Self {
            endpoint,
            client: Client::builder(TokioExecutor::new()).build_http(),
        })
    }

    /// Sends the presigned call as EKS does (GET, with the cluster header) and returns the
    /// caller's ARN, or why STS did not vouch for the token.
    pub async fn caller_arn(&self, call: &PresignedCall, cluster: &str) -> Result<String, String> {
        let authority = self
            .endpoint
            .authority()
            .map(|a| a.as_str())
            .unwrap_or_default();
        let uri: Uri = format!("http://{authority}{}", call.path_and_query)
            .parse()
            .map_err(|e| format!("cannot build the STS URL: {e}"))?;
        let request = Request::get(uri)
            .header(CLUSTER_ID_HEADER, cluster)
            // The signed host, as the request would carry it at the real STS: the emulator
            // routes unsigned (presigned) requests to a service by their Host header.
            .header(http::header::HOST, &call.signed_host)
            .body(Empty::<Bytes>::new())
            .map_err(|e| format!("cannot build the STS request: {e}"))?;
        let exchange = async {
            let response = self.client.request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((status, body))
        };
        let (status, body) = tokio::time::timeout(STS_TIMEOUT, exchange)
            .await
            .map_err(|_| {
                format!(
                    "STS at {} did not answer within {STS_TIMEOUT:?}",
                    self.endpoint
                )
            })?
            .map_err(|e| format!("cannot reach STS at {}: {e}", self.endpoint))?;
        let text = String::from_utf8_lossy(&body);
        if !status.is_success() {
            return Err(format!(
                "STS GetCallerIdentity answered HTTP {}: {}",
                status.as_u16(),
                quote(&text)
            ));
        }
        caller_arn_from(&text).ok_or_else(|| {
            format!(
                "STS answered HTTP {} without a GetCallerIdentityResponse: {}",
                status.as_u16(),
                quote(&text)
            )
        })
    }
}

/// The `Arn` of a GetCallerIdentityResponse, in STS's XML or in the JSON form EKS asks for.
fn caller_arn_from(body: &str) -> Option<String> {
    if !body.contains("GetCallerIdentityResponse") {
        return None;
    }
    if let Some(start) = body.find("<Arn>") {
        let rest = &body[start + "<Arn>".len()..];
        return rest
            .find("</Arn>")
            .map(|end| rest[..end].trim().to_string());
    }
    let json: serde_json::Value = serde_json::from_str(body).ok()?;
    json.pointer("/GetCallerIdentityResponse/GetCallerIdentityResult/Arn")?
        .as_str()
        .map(str::to_string)
}

fn quote(text: &str) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(QUOTE_LIMIT) {
        Some((cut, _)) => format!("{}...", &flat[..cut]),
        None => flat,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_arn_from_xml_and_json() {
        let xml = r#"<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
            <GetCallerIdentityResult><Arn>arn:aws:sts::123456789012:assumed-role/r/s</Arn>
            <UserId>X</UserId><Account>123456789012</Account></GetCallerIdentityResult>
            </GetCallerIdentityResponse>"#;
        assert_eq!(
            caller_arn_from(xml).as_deref(),
            Some("arn:aws:sts::123456789012:assumed-role/r/s")
        );
        let json = r#"{"GetCallerIdentityResponse":{"GetCallerIdentityResult":{"Arn":"arn:aws:iam::1:user/u"}}}"#;
        assert_eq!(
            caller_arn_from(json).as_deref(),
            Some("arn:aws:iam::1:user/u")
        );
        assert_eq!(caller_arn_from("<Error><Arn>x</Arn></Error>"), None);
    }

    #[test]
    fn only_plain_http_endpoints() {
        assert!(Sts::new("http://127.0.0.1:5000").is_ok());
        assert!(Sts::new("https://sts.amazonaws.com").is_err());
        assert!(Sts::new("not a url").is_err());
    }
}
