//! Cross-account target roles: which account a grant's resource is in, and the trust and grant
//! that let a workload's role reach its target role in that account.
//!
//! EKS Pod Identity chains roles for an association with a `targetRoleArn`: the association's
//! role assumes the target role (and tags the session) with the external id
//! `<region>/<account>/<cluster>/<namespace>/<service account>`, and the pods get the target
//! role's credentials. With IRSA, the pods exchange their token for the target role directly,
//! through the cluster's OIDC provider registered in the target account.

use super::PolicyDocument;
use super::document::{Effect, Statement};
use super::trust::target_trust_statement;
use crate::model::{ClusterRef, RoleArn, ServiceAccountRef, arn_parts};
use std::collections::BTreeMap;

/// On a workload's role: the account its target role is in. Kept while a target role of the
/// role may still exist there, so a run finds it to update or delete.
pub const TARGET_ACCOUNT_TAG: &str = "eks-intents/target-account";

/// The account a resource is in when the ARN says so (its account field), or, for an S3 bucket
/// or object (whose ARN names no account), when `bucket_accounts` names the bucket (exactly,
/// or by a prefix ending in `*`). `None`: the resource is taken to be in the cluster's account
/// (`*`, an ARN with no account, or one whose account is a pattern).
pub fn resource_account<'r>(
    resource: &'r str,
    bucket_accounts: &'r BTreeMap<String, String>,
) -> Option<&'r str> {
    // Read without collecting: every grant of every role of a fleet's plan goes through here.
    let mut parts = resource.splitn(6, ':');
    let (Some("arn"), Some(_), Some(service), Some(_), Some(account), Some(rest)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    if !account.is_empty() {
        return is_account_id(account).then_some(account);
    }
    if service != "s3" || bucket_accounts.is_empty() {
        return None;
    }
    let bucket = rest.split('/').next().unwrap_or_default();
    if bucket.contains('*') || bucket.contains('?') {
        return None;
    }
    // The bucket's own entry, else the longest prefix that matches it.
    if let Some(account) = bucket_accounts.get(bucket) {
        return Some(account);
    }
    bucket_accounts
        .iter()
        .filter_map(|(pattern, account)| Some((pattern.strip_suffix('*')?, account)))
        .filter(|(prefix, _)| bucket.starts_with(prefix))
        .max_by_key(|(prefix, _)| prefix.len())
        .map(|(_, account)| account.as_str())
}

fn is_account_id(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit())
}

/// The external id EKS Pod Identity passes when the association's role assumes the target role:
/// `<region>/<account>/<cluster>/<namespace>/<service account>`, of the cluster's own account.
pub fn target_external_id(cluster: &ClusterRef, service_account: &ServiceAccountRef) -> String {
    format!(
        "{}/{}/{}/{}/{}",
        cluster.region,
        cluster.account,
        cluster.name,
        service_account.namespace,
        service_account.name
    )
}

/// Pod Identity: the target role trusts only the workload's own role, assuming it with the
/// external id EKS sets for that ServiceAccount of that cluster.
pub fn pod_identity_target_trust(
    home_role: &RoleArn,
    cluster: &ClusterRef,
    service_account: &ServiceAccountRef,
) -> PolicyDocument {
    target_trust_statement(home_role, &target_external_id(cluster, service_account))
}

/// The grant on the workload's role that lets EKS Pod Identity chain into the target role.
pub fn assume_target_statement(target: &RoleArn) -> Statement {
    Statement {
        actions: vec!["sts:AssumeRole".to_owned(), "sts:TagSession".to_owned()],
        resources: vec![target.as_str().to_owned()],
        effect: Effect::Allow,
    }
}

/// The ARN of `arn` as if it were in `account` (same partition, service, region and resource):
/// the boundary of the same name in another account.
pub fn in_account(arn: &str, account: &str) -> Option<String> {
    let [prefix, partition, service, region, _, resource] = arn_parts(arn)?;
    Some(format!(
        "{prefix}:{partition}:{service}:{region}:{account}:{resource}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AccountId, ClusterName, Region};

    fn buckets() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("reports".to_owned(), "333333333333".to_owned()),
            ("lake-*".to_owned(), "444444444444".to_owned()),
            ("lake-raw".to_owned(), "555555555555".to_owned()),
            ("lake-gold-*".to_owned(), "666666666666".to_owned()),
        ])
    }

    #[test]
    fn the_account_of_a_resource_is_its_arns_or_its_buckets() {
        let b = buckets();
        assert_eq!(
            resource_account("arn:aws:dynamodb:eu-west-2:222222222222:table/t", &b),
            Some("222222222222")
        );
        assert_eq!(
            resource_account("arn:aws:s3:::reports", &b),
            Some("333333333333")
        );
        assert_eq!(
            resource_account("arn:aws:s3:::reports/*", &b),
            Some("333333333333")
        );
        assert_eq!(resource_account("arn:aws:s3:::reports-2/*", &b), None);
        assert_eq!(
            resource_account("arn:aws:s3:::lake-cold/x", &b),
            Some("444444444444")
        );
        assert_eq!(resource_account("arn:aws:s3:::lake-*", &b), None);
        assert_eq!(resource_account("arn:aws:s3:::lake-?aw", &b), None);
        // The bucket's own entry, then the longest prefix, whatever their order.
        assert_eq!(
            resource_account("arn:aws:s3:::lake-raw/x", &b),
            Some("555555555555")
        );
        assert_eq!(
            resource_account("arn:aws:s3:::lake-gold-1", &b),
            Some("666666666666")
        );
        assert_eq!(resource_account("*", &b), None);
        assert_eq!(
            resource_account("arn:aws:dynamodb:eu-west-2:*:table/t", &b),
            None
        );
        assert_eq!(resource_account("arn:aws:sqs:eu-west-2:12345:q", &b), None);
    }

    #[test]
    fn the_target_trust_names_the_home_role_and_the_external_id_eks_sets() {
        let cluster = ClusterRef::new(
            ClusterName::new("demo"),
            AccountId::new("111111111111"),
            Region::new("eu-west-2"),
        );
        let sa = ServiceAccountRef {
            namespace: "shop".into(),
            name: "reports".into(),
        };
        let home = RoleArn::new("arn:aws:iam::111111111111:role/eks-intents/demo/x");
        assert_eq!(
            pod_identity_target_trust(&home, &cluster, &sa).to_json(),
            r#"{"Statement":[{"Action":["sts:AssumeRole","sts:TagSession"],"Condition":{"StringEquals":{"sts:ExternalId":"eu-west-2/111111111111/demo/shop/reports"}},"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:role/eks-intents/demo/x"}}],"Version":"2012-10-17"}"#
        );
        assert_eq!(
            in_account("arn:aws:iam::111111111111:policy/b", "333333333333").as_deref(),
            Some("arn:aws:iam::333333333333:policy/b")
        );
    }
}
