//! Connection failures that say where and why in words: the SDK's connector error names neither
//! the endpoint (only its `Debug` form holds the address) nor its root cause in plain text, so
//! an interceptor replaces it, same kind, with one that names the endpoint of the attempt and
//! the innermost cause ("connection refused", "failed to lookup address information").

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextMut,
};
use aws_smithy_runtime_api::client::orchestrator::OrchestratorError;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use std::error::Error;

/// A request that could not reach its endpoint.
#[derive(Debug)]
pub(crate) struct Unreachable {
    /// Scheme and authority, e.g. `http://127.0.0.1:4566`.
    pub endpoint: String,
    /// The innermost cause, in words.
    pub cause: String,
}

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot connect to {}: {}", self.endpoint, self.cause)
    }
}

impl Error for Unreachable {}

/// The innermost cause of `error`, in words: `Connection refused (os error 111)` becomes
/// `connection refused`.
pub(crate) fn root_cause(error: &(dyn Error + 'static)) -> String {
    let mut root = error;
    while let Some(source) = root.source() {
        root = source;
    }
    let text = root.to_string();
    let text = match text.find(" (os error ") {
        Some(at) if text.ends_with(')') => text[..at].to_owned(),
        _ => text,
    };
    let mut chars = text.chars();
    match chars.next() {
        // Lower-case a capitalized first word ("Connection refused"), not an acronym ("DNS").
        Some(first) if first.is_uppercase() && chars.next().is_some_and(char::is_lowercase) => {
            first.to_lowercase().chain(text.chars().skip(1)).collect()
        }
        _ => text,
    }
}

/// `scheme://authority` of a URI, without path or query.
fn endpoint_of(uri: &str) -> String {
    let (scheme, rest) = uri.split_once("://").unwrap_or(("https", uri));
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    format!("{scheme}://{authority}")
}

/// The endpoint of the attempt in progress.
#[derive(Clone, Debug)]
struct AttemptEndpoint(String);

impl Storable for AttemptEndpoint {
    type Storer = StoreReplace<Self>;
}

#[derive(Clone, Debug, Default)]
pub(super) struct NameUnreachableEndpoint;

impl Intercept for NameUnreachableEndpoint {
    fn name(&self) -> &'static str {
        "NameUnreachableEndpoint"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let endpoint = endpoint_of(context.request().uri());
        cfg.interceptor_state().store_put(AttemptEndpoint(endpoint));
        Ok(())
    }

    // Before the retry strategy classifies the attempt: the replacement keeps the connector
    // error's kind (timeout, io, other), which is what the classification reads.
    fn modify_before_attempt_completion(
        &self,
        context: &mut FinalizerInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(AttemptEndpoint(endpoint)) = cfg.load::<AttemptEndpoint>().cloned() else {
            return Ok(());
        };
        let Some(Err(error)) = context.output_or_error_mut() else {
            return Ok(());
        };
        let Some(connector) = error.as_connector_error() else {
            return Ok(());
        };
        if connector.is_user() {
            return Ok(());
        }
        let unreachable = Box::new(Unreachable {
            endpoint,
            cause: root_cause(connector),
        });
        let replaced = if connector.is_timeout() {
            ConnectorError::timeout(unreachable)
        } else if connector.is_io() {
            ConnectorError::io(unreachable)
        } else {
            ConnectorError::other(unreachable, connector.as_other())
        };
        *error = OrchestratorError::connector(replaced);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrapper(std::io::Error);

    impl std::fmt::Display for Wrapper {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("tcp connect error")
        }
    }

    impl Error for Wrapper {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn the_root_cause_is_said_in_words() {
        let refused = Wrapper(std::io::Error::from_raw_os_error(111));
        assert!(
            root_cause(&refused).starts_with("connection refused")
                || root_cause(&refused).contains("os error 111"),
            "{}",
            root_cause(&refused)
        );
        assert!(!root_cause(&refused).contains("(os error"));
        let dns = std::io::Error::other("DNS name not found");
        assert_eq!(root_cause(&dns), "DNS name not found");
    }

    #[test]
    fn the_endpoint_is_scheme_and_authority() {
        assert_eq!(
            endpoint_of("http://127.0.0.1:1/?Action=ListRoles"),
            "http://127.0.0.1:1"
        );
        assert_eq!(
            endpoint_of("https://iam.amazonaws.com/"),
            "https://iam.amazonaws.com"
        );
        assert_eq!(
            endpoint_of("https://s3.eu-west-2.amazonaws.com/bucket/key?x-id=GetObject"),
            "https://s3.eu-west-2.amazonaws.com"
        );
    }
}
