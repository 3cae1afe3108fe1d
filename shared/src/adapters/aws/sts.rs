//! STS: the account the credentials belong to.

use super::port_error;
use crate::ports::PortResult;

pub async fn account_id(client: &aws_sdk_sts::Client) -> PortResult<String> {
    let out = client
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| port_error("sts", "GetCallerIdentity", e))?;
    Ok(out.account().unwrap_or_default().to_owned())
}
