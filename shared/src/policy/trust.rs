//! Trust policies: who may assume a workload's role. Each pins exactly one ServiceAccount of
//! one cluster; no wildcard subjects.

use super::document::PolicyDocument;
use crate::model::{ClusterRef, ServiceAccountRef};
use serde_json::json;

/// The audience EKS puts in projected ServiceAccount tokens for IRSA.
pub const IRSA_AUDIENCE: &str = "sts.amazonaws.com";

/// `arn:<partition>:iam::<account>:oidc-provider/<issuer host and path>`
pub fn oidc_provider_arn(cluster: &ClusterRef, issuer_host_path: &str) -> String {
    format!(
        "arn:{}:iam::{}:oidc-provider/{}",
        cluster.partition(),
        cluster.account,
        issuer_host_path
    )
}

/// IRSA: the cluster's OIDC provider may exchange a token whose subject is exactly this
/// ServiceAccount and whose audience is STS.
pub fn irsa_trust(
    provider_arn: &str,
    issuer_host_path: &str,
    service_account: &ServiceAccountRef,
) -> PolicyDocument {
    irsa_trust_for(provider_arn, issuer_host_path, &[service_account])
}

/// IRSA trust for several ServiceAccounts (the ServiceAccounts of one add-on share its one
/// role): the `sub` condition lists each. With one, the document is `irsa_trust`'s.
pub fn irsa_trust_for(
    provider_arn: &str,
    issuer_host_path: &str,
    service_accounts: &[&ServiceAccountRef],
) -> PolicyDocument {
    let subjects: Vec<String> = service_accounts
        .iter()
        .map(|sa| format!("system:serviceaccount:{}:{}", sa.namespace, sa.name))
        .collect();
    let subject = match subjects.as_slice() {
        [one] => json!(one),
        _ => json!(subjects),
    };
    PolicyDocument::from_statements(vec![json!({
        "Effect": "Allow",
        "Principal": { "Federated": provider_arn },
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {
            "StringEquals": {
                format!("{issuer_host_path}:sub"): subject,
                format!("{issuer_host_path}:aud"): IRSA_AUDIENCE,
            }
        }
    })])
}

/// EKS Pod Identity: the EKS Auth service may assume the role (and tag the session) only for
/// this account, this cluster, and this namespace and ServiceAccount, through the session tags
/// EKS Pod Identity sets on every session.
pub fn pod_identity_trust(
    cluster: &ClusterRef,
    service_account: &ServiceAccountRef,
) -> PolicyDocument {
    PolicyDocument::from_statements(vec![json!({
        "Effect": "Allow",
        "Principal": { "Service": "pods.eks.amazonaws.com" },
        "Action": ["sts:AssumeRole", "sts:TagSession"],
        "Condition": {
            "StringEquals": {
                "aws:SourceAccount": cluster.account.as_str(),
                "aws:RequestTag/eks-cluster-arn": cluster.arn(),
                "aws:RequestTag/kubernetes-namespace": service_account.namespace.as_str(),
                "aws:RequestTag/kubernetes-service-account": service_account.name.as_str(),
            }
        }
    })])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AccountId, ClusterName, Region};

    fn sa() -> ServiceAccountRef {
        ServiceAccountRef {
            namespace: "ack-system".into(),
            name: "ack-dynamodb".into(),
        }
    }

    fn cluster() -> ClusterRef {
        ClusterRef::new(
            ClusterName::new("demo"),
            AccountId::new("123456789012"),
            Region::new("eu-west-2"),
        )
    }

    #[test]
    fn irsa_pins_subject_and_audience() {
        let issuer = "oidc.eks.eu-west-2.amazonaws.com/id/ABC";
        let arn = oidc_provider_arn(&cluster(), issuer);
        assert_eq!(
            arn,
            "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-2.amazonaws.com/id/ABC"
        );
        let doc = irsa_trust(&arn, issuer, &sa()).to_json();
        assert_eq!(
            doc,
            r#"{"Statement":[{"Action":"sts:AssumeRoleWithWebIdentity","Condition":{"StringEquals":{"oidc.eks.eu-west-2.amazonaws.com/id/ABC:aud":"sts.amazonaws.com","oidc.eks.eu-west-2.amazonaws.com/id/ABC:sub":"system:serviceaccount:ack-system:ack-dynamodb"}},"Effect":"Allow","Principal":{"Federated":"arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-2.amazonaws.com/id/ABC"}}],"Version":"2012-10-17"}"#
        );
    }

    #[test]
    fn pod_identity_pins_account_cluster_namespace_and_service_account() {
        let doc = pod_identity_trust(&cluster(), &sa());
        let condition = &doc.value()["Statement"][0]["Condition"]["StringEquals"];
        assert_eq!(condition["aws:SourceAccount"], "123456789012");
        assert_eq!(
            condition["aws:RequestTag/eks-cluster-arn"],
            "arn:aws:eks:eu-west-2:123456789012:cluster/demo"
        );
        assert_eq!(
            condition["aws:RequestTag/kubernetes-namespace"],
            "ack-system"
        );
        assert_eq!(
            condition["aws:RequestTag/kubernetes-service-account"],
            "ack-dynamodb"
        );
        assert_eq!(
            doc.value()["Statement"][0]["Principal"]["Service"],
            "pods.eks.amazonaws.com"
        );
    }
}
