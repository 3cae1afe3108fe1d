//! Bearer-token authentication: the static admin token, or an EKS token that is checked by its
//! signature and then by STS, the way EKS authenticates IAM principals.

use crate::eks_token::{TOKEN_PREFIX, Verifier, later};
use crate::sts::Sts;
use http::HeaderMap;
use jiff::{SignedDuration, Timestamp};
use std::collections::HashMap;
use std::sync::Mutex;

/// kube-apiserver's default cache time for a webhook-authenticated token: within it a token
/// is not sent to STS again, so a client's burst of requests costs one STS call.
const CACHE_TTL: SignedDuration = SignedDuration::from_mins(2);

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// The holder of `--admin-token`.
    Admin,
    /// An IAM principal, as STS named it.
    Aws { arn: String },
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Identity::Admin => f.write_str("admin"),
            Identity::Aws { arn } => f.write_str(arn),
        }
    }
}

/// The settings that decide which tokens are accepted.
pub struct AuthSettings {
    pub cluster: String,
    pub admin_token: String,
    pub aws_access_key_id: String,
    pub aws_secret_access_key: String,
    pub sts: Sts,
}

/// Decides who a request comes from, or why it is refused.
pub struct Authenticator {
    settings: AuthSettings,
    /// Token -> (ARN, until when the answer may be reused).
    cache: Mutex<HashMap<String, (String, Timestamp)>>,
}

impl Authenticator {
    pub fn new(settings: AuthSettings) -> Self {
        Self {
            settings,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The identity behind the request's `Authorization: Bearer` token; the error is the
    /// message of the 401 `Status`.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Identity, String> {
        let header = headers
            .get(http::header::AUTHORIZATION)
            .ok_or("Unauthorized: no Authorization header (a bearer token is required)")?;
        let token = header
            .to_str()
            .ok()
            .and_then(|value| {
                let (scheme, token) = value.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|token| !token.is_empty())
            .ok_or("Unauthorized: the Authorization header is not \"Bearer <token>\"")?;

        if constant_time_eq(token.as_bytes(), self.settings.admin_token.as_bytes()) {
            return Ok(Identity::Admin);
        }
        if !token.starts_with(TOKEN_PREFIX) {
            return Err(format!(
                "Unauthorized: the token is neither the admin token nor an EKS token ({TOKEN_PREFIX}...)"
            ));
        }
        let now = Timestamp::now();
        if let Some(arn) = self.cached(token, now) {
            return Ok(Identity::Aws { arn });
        }

        let cluster = &self.settings.cluster;
        let verifier = Verifier {
            cluster,
            access_key_id: &self.settings.aws_access_key_id,
            secret_access_key: &self.settings.aws_secret_access_key,
        };
        let call = verifier
            .verify(token, now)
            .map_err(|e| format!("token is not valid for cluster {cluster}: {e}"))?;
        let arn = self
            .settings
            .sts
            .caller_arn(&call, cluster)
            .await
            .map_err(|e| format!("token is not valid for cluster {cluster}: {e}"))?;
        tracing::info!(%arn, "EKS token accepted");

        let until = call.valid_until.min(later(now, CACHE_TTL));
        if let Ok(mut cache) = self.cache.lock() {
            cache.retain(|_, (_, expiry)| *expiry > now);
            cache.insert(token.to_string(), (arn.clone(), until));
        }
        Ok(Identity::Aws { arn })
    }

    fn cached(&self, token: &str, now: Timestamp) -> Option<String> {
        let cache = self.cache.lock().ok()?;
        cache
            .get(token)
            .filter(|(_, until)| *until > now)
            .map(|(arn, _)| arn.clone())
    }
}

/// Compares without stopping at the first difference, so response times do not leak how much
/// of the admin token a guess got right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
