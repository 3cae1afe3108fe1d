//! Trust policies: who may assume a workload's role. Each pins exactly one ServiceAccount of
//! one cluster; no wildcard subjects.

use super::document::PolicyDocument;
use crate::model::{ClusterRef, RoleArn, ServiceAccountRef};
use serde::{Serialize, Serializer};

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
    // Joined, not formatted: this runs for every role of every plan.
    let joined = |parts: &[&str]| {
        let mut text = String::with_capacity(parts.iter().map(|p| p.len()).sum());
        parts.iter().for_each(|part| text.push_str(part));
        text
    };
    let subjects: Vec<String> = service_accounts
        .iter()
        .map(|sa| {
            joined(&[
                "system:serviceaccount:",
                sa.namespace.as_str(),
                ":",
                sa.name.as_str(),
            ])
        })
        .collect();
    let subject = match subjects.as_slice() {
        [one] => OneOrMany::One(one),
        _ => OneOrMany::Many(&subjects),
    };
    // Keys in sorted order: `<issuer>:aud` before `<issuer>:sub`.
    let equals = [
        (
            joined(&[issuer_host_path, ":aud"]),
            OneOrMany::One(IRSA_AUDIENCE),
        ),
        (joined(&[issuer_host_path, ":sub"]), subject),
    ];
    PolicyDocument::written(&[TrustStatement {
        action: OneOrMany::One("sts:AssumeRoleWithWebIdentity"),
        condition: Condition {
            string_equals: Pairs(&equals),
        },
        effect: "Allow",
        principal: Principal::Federated(provider_arn),
    }])
}

/// EKS Pod Identity: the EKS Auth service may assume the role (and tag the session) only for
/// this account, this cluster, and this namespace and ServiceAccount, through the session tags
/// EKS Pod Identity sets on every session.
pub fn pod_identity_trust(
    cluster: &ClusterRef,
    service_account: &ServiceAccountRef,
) -> PolicyDocument {
    let cluster_arn = cluster.arn();
    // Keys in sorted order: `aws:RequestTag/...` before `aws:SourceAccount`.
    let equals = [
        (
            "aws:RequestTag/eks-cluster-arn",
            OneOrMany::One(&cluster_arn),
        ),
        (
            "aws:RequestTag/kubernetes-namespace",
            OneOrMany::One(service_account.namespace.as_str()),
        ),
        (
            "aws:RequestTag/kubernetes-service-account",
            OneOrMany::One(service_account.name.as_str()),
        ),
        (
            "aws:SourceAccount",
            OneOrMany::One(cluster.account.as_str()),
        ),
    ];
    pod_identity_statement(&equals)
}

/// EKS Pod Identity with session policies: EKS sets no session tags on these sessions (it
/// allows a session policy only without them), so the trust cannot name the cluster, namespace
/// or ServiceAccount; it names the account. What binds the role to one ServiceAccount is then its
/// one association, which only a principal allowed to pass the role can make. `sts:TagSession`
/// stays allowed, so the role works while its association changes over.
pub fn pod_identity_trust_untagged(cluster: &ClusterRef) -> PolicyDocument {
    pod_identity_statement(&[(
        "aws:SourceAccount",
        OneOrMany::One(cluster.account.as_str()),
    )])
}

/// The one statement of a Pod Identity trust: EKS Auth may assume the role and tag the
/// session, on these conditions (keys in sorted order).
fn pod_identity_statement<'a>(equals: &'a [(&'a str, OneOrMany<'a>)]) -> PolicyDocument {
    PolicyDocument::written(&[TrustStatement {
        action: OneOrMany::Many(&["sts:AssumeRole".into(), "sts:TagSession".into()]),
        condition: Condition {
            string_equals: Pairs(equals),
        },
        effect: "Allow",
        principal: Principal::Service("pods.eks.amazonaws.com"),
    }])
}

/// A target role's trust (`super::target`): the workload's own role may assume it and tag the
/// session, with exactly this external id.
pub(super) fn target_trust_statement(home_role: &RoleArn, external_id: &str) -> PolicyDocument {
    PolicyDocument::written(&[TrustStatement {
        action: OneOrMany::Many(&["sts:AssumeRole".into(), "sts:TagSession".into()]),
        condition: Condition {
            string_equals: Pairs(&[("sts:ExternalId", OneOrMany::One(external_id))]),
        },
        effect: "Allow",
        principal: Principal::Aws(home_role.as_str()),
    }])
}

/// A trust statement, its fields (and theirs) declared in sorted key order, so that it
/// serializes straight to the canonical text (`PolicyDocument::written`). A trust policy is
/// made for every role of every reconcile.
#[derive(Serialize)]
struct TrustStatement<'a, K: Serialize> {
    #[serde(rename = "Action")]
    action: OneOrMany<'a>,
    #[serde(rename = "Condition")]
    condition: Condition<'a, K>,
    #[serde(rename = "Effect")]
    effect: &'static str,
    #[serde(rename = "Principal")]
    principal: Principal<'a>,
}

#[derive(Serialize)]
struct Condition<'a, K: Serialize> {
    #[serde(rename = "StringEquals")]
    string_equals: Pairs<'a, K>,
}

#[derive(Serialize)]
enum Principal<'a> {
    #[serde(rename = "AWS")]
    Aws(&'a str),
    Federated(&'a str),
    Service(&'static str),
}

#[derive(Serialize)]
#[serde(untagged)]
enum OneOrMany<'a> {
    One(&'a str),
    Many(&'a [String]),
}

/// A JSON object from pairs already in sorted key order.
struct Pairs<'a, K>(&'a [(K, OneOrMany<'a>)]);

impl<K: Serialize> Serialize for Pairs<'_, K> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(key, value)| (key, value)))
    }
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

    /// Written straight to text, each trust policy is still the canonical text of its own
    /// value (keys sorted at every depth, compact), which is what IAM's copy is compared with.
    #[test]
    fn trust_policies_are_written_in_canonical_form() {
        let other = ServiceAccountRef {
            namespace: "ack-system".into(),
            name: "ack-s3".into(),
        };
        let issuer = "oidc.eks.eu-west-2.amazonaws.com/id/ABC";
        let arn = oidc_provider_arn(&cluster(), issuer);
        for doc in [
            irsa_trust(&arn, issuer, &sa()),
            irsa_trust_for(&arn, issuer, &[&sa(), &other]),
            pod_identity_trust(&cluster(), &sa()),
        ] {
            assert_eq!(PolicyDocument::from_value(&doc.value()), doc);
        }
        let shared = irsa_trust_for(&arn, issuer, &[&sa(), &other]).value();
        assert_eq!(
            shared["Statement"][0]["Condition"]["StringEquals"][format!("{issuer}:sub")],
            serde_json::json!([
                "system:serviceaccount:ack-system:ack-dynamodb",
                "system:serviceaccount:ack-system:ack-s3"
            ])
        );
        assert_eq!(
            pod_identity_trust(&cluster(), &sa()).value()["Statement"][0]["Action"],
            serde_json::json!(["sts:AssumeRole", "sts:TagSession"])
        );
    }
}
