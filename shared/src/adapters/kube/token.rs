//! EKS bearer tokens, made in-process the way `aws eks get-token` makes them: an STS
//! `GetCallerIdentity` request presigned with SigV4, with the cluster name in the signed header
//! `x-k8s-aws-id`, encoded as `k8s-aws-v1.` + unpadded base64url of the URL. The API server
//! sends the request to STS to learn who the caller is; the signature binds it to one cluster.

use crate::ports::{ErrorKind, PortError, PortResult};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::time::{Duration, SystemTime};

pub const TOKEN_PREFIX: &str = "k8s-aws-v1.";
pub const CLUSTER_HEADER: &str = "x-k8s-aws-id";
/// The presigned URL's own expiry, as `aws eks get-token` sets it. EKS accepts a token for 15
/// minutes from its signing time whatever this says.
const PRESIGN_EXPIRY: Duration = Duration::from_secs(60);

fn error(message: impl Into<String>) -> PortError {
    PortError::new("kubernetes", "token", ErrorKind::Other, message)
}

/// A token for `cluster`, signed now with `credentials` for STS at `sts_endpoint` in `region`.
pub fn eks_token(
    cluster: &str,
    sts_endpoint: &str,
    region: &str,
    credentials: &Credentials,
    now: SystemTime,
) -> PortResult<String> {
    let url = format!(
        "{}/?Action=GetCallerIdentity&Version=2011-06-15",
        sts_endpoint.trim_end_matches('/')
    );
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(PRESIGN_EXPIRY);
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| error(format!("cannot sign the EKS token: {e}")))?
        .into();
    let signable = SignableRequest::new(
        "GET",
        url.as_str(),
        std::iter::once((CLUSTER_HEADER, cluster)),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| error(format!("cannot sign the EKS token: {e}")))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| error(format!("cannot sign the EKS token: {e}")))?
        .into_parts();
    let mut request = http::Request::builder()
        .method("GET")
        .uri(&url)
        .body(())
        .map_err(|e| error(format!("bad STS endpoint {sts_endpoint:?}: {e}")))?;
    instructions.apply_to_request_http1x(&mut request);
    Ok(format!(
        "{TOKEN_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(request.uri().to_string())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_a_presigned_get_caller_identity_bound_to_the_cluster() {
        let credentials = Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
        let token_for = |cluster: &str| {
            eks_token(
                cluster,
                "https://sts.eu-west-2.amazonaws.com",
                "eu-west-2",
                &credentials,
                SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000),
            )
            .unwrap()
        };
        let token = token_for("demo");
        let encoded = token.strip_prefix(TOKEN_PREFIX).expect("prefix");
        assert!(!encoded.contains('='), "unpadded");
        let url = String::from_utf8(URL_SAFE_NO_PAD.decode(encoded).unwrap()).unwrap();
        assert!(
            url.starts_with(
                "https://sts.eu-west-2.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&"
            ),
            "{url}"
        );
        assert!(url.contains("X-Amz-Algorithm=AWS4-HMAC-SHA256"), "{url}");
        assert!(
            url.contains(
                "X-Amz-Credential=AKIDEXAMPLE%2F20261118%2Feu-west-2%2Fsts%2Faws4_request"
            ),
            "{url}"
        );
        assert!(url.contains("X-Amz-Expires=60"), "{url}");
        assert!(
            url.contains("X-Amz-SignedHeaders=host%3Bx-k8s-aws-id"),
            "{url}"
        );
        assert!(url.contains("X-Amz-Signature="), "{url}");
        assert_ne!(
            token,
            token_for("other"),
            "the signature covers the cluster name"
        );
    }
}
