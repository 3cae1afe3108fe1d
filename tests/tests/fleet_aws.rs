//! Fleet scale on the AWS side (issue 13): a quiet reconcile's request count does not grow with
//! what else the account or cluster holds. Requests are counted at the local AWS emulator.

use eks_intents::model::BindingMode;
use integration::scenario::*;
use serde_json::Value;
use std::collections::BTreeMap;

fn count(requests: &Value, service: &str, operation: &str) -> u64 {
    requests[service][operation].as_u64().unwrap_or_default()
}

/// Point 5: only the cluster's own OIDC provider is read, by its ARN, whatever else the
/// account holds (before: one List plus one Get per provider of the account).
#[tokio::test]
async fn a_quiet_irsa_run_reads_only_the_clusters_oidc_provider() {
    let w = world(BindingMode::Irsa, seed_fake_cluster).await;
    w.upload_seed().await;
    w.run_reconciler().await;
    let iam = aws_sdk_iam::Client::new(&w.emulator.sdk_config());
    for i in 0..20 {
        iam.create_open_id_connect_provider()
            .url(format!("https://oidc.example.com/other-{i}"))
            .client_id_list("sts.amazonaws.com")
            .send()
            .await
            .expect("another provider");
    }
    w.emulator.clear_requests();
    w.reconcile_again().await;
    let requests = w.emulator.requests();
    assert_eq!(
        count(&requests, "iam", "GetOpenIDConnectProvider"),
        1,
        "{requests:#}"
    );
    assert_eq!(
        count(&requests, "iam", "ListOpenIDConnectProviders"),
        0,
        "{requests:#}"
    );
    // The provider read is the one the first run made: nothing to create or fix.
    assert_eq!(w.aws_writes(), BTreeMap::new());
}

/// Point 6: the authorization details are asked for 1,000 items a page (IAM's default is 100).
#[tokio::test]
async fn authorization_details_are_read_a_thousand_a_page() {
    let w = world(BindingMode::Irsa, seed_fake_cluster).await;
    w.upload_seed().await;
    w.emulator.clear_requests();
    w.run_reconciler().await;
    let parameters = w.emulator.control("GET", "/_harness/parameters", None);
    let requests = w.emulator.requests();
    let sent = count(&requests, "iam", "GetAccountAuthorizationDetails");
    assert!(sent >= 1, "{requests:#}");
    assert_eq!(
        parameters["iam"]["GetAccountAuthorizationDetails"]["MaxItems=1000"].as_u64(),
        Some(sent),
        "every page asks for 1,000 items: {parameters:#}"
    );
}

/// Point 4: in Pod Identity mode a quiet run describes only the associations that concern the
/// system (those in the namespaces of its workloads and roles, and the add-ons' own), not the
/// rest of the fleet's (before: one describe per association of the cluster).
#[tokio::test]
async fn a_quiet_pod_identity_run_describes_no_association_outside_its_namespaces() {
    let w = world(BindingMode::PodIdentity, seed_fake_cluster).await;
    w.upload_seed().await;
    w.run_reconciler().await;
    let config = w.emulator.sdk_config();
    let iam = aws_sdk_iam::Client::new(&config);
    let other_role = iam
        .create_role()
        .role_name("another-teams-role")
        .assume_role_policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":["sts:AssumeRole","sts:TagSession"]}]}"#)
        .send()
        .await
        .expect("another team's role")
        .role()
        .map(|r| r.arn().to_owned())
        .unwrap_or_default();
    let eks = aws_sdk_eks::Client::new(&config);
    const OUTSIDE: usize = 30;
    for i in 0..OUTSIDE {
        eks.create_pod_identity_association()
            .cluster_name(CLUSTER)
            .namespace(format!("other-team-{}", i % 5))
            .service_account(format!("app-{i}"))
            .role_arn(&other_role)
            .send()
            .await
            .expect("an association of another team");
    }
    w.emulator.clear_requests();
    w.reconcile_again().await;
    let requests = w.emulator.requests();
    // The two direct associations the seed made (ack-system, jokes) and the EBS add-on's own.
    assert_eq!(
        count(&requests, "eks", "DescribePodIdentityAssociation"),
        3,
        "{requests:#}"
    );
    assert_eq!(
        count(&requests, "eks", "ListPodIdentityAssociations"),
        1,
        "{requests:#}"
    );
    // The associations not described are neither drift nor orphans.
    assert_eq!(w.aws_writes(), BTreeMap::new());
    let associations = w.inspect()["pod_identity_associations"]
        .as_array()
        .map(Vec::len)
        .unwrap_or_default();
    assert_eq!(associations, 3 + OUTSIDE);
}

/// Point 4: the describes run concurrently, at least 16 at a time: each is held 300 ms at the
/// emulator, which counts how many it holds at once.
#[tokio::test]
async fn associations_are_described_sixteen_at_a_time() {
    let w = world(BindingMode::PodIdentity, seed_fake_cluster).await;
    w.upload_seed().await;
    w.run_reconciler().await;
    let eks = aws_sdk_eks::Client::new(&w.emulator.sdk_config());
    // Associations of other ServiceAccounts in a namespace of concern (to a role of the
    // system's, which EKS requires to exist): described, and left alone.
    for i in 0..32 {
        eks.create_pod_identity_association()
            .cluster_name(CLUSTER)
            .namespace("jokes")
            .service_account(format!("someone-else-{i}"))
            .role_arn(role_arn(WORKER_ROLE))
            .send()
            .await
            .expect("an association in jokes");
    }
    w.emulator.control(
        "POST",
        "/_harness/delays",
        Some(&serde_json::json!({
            "service": "eks",
            "operation": "DescribePodIdentityAssociation",
            "seconds": 0.3
        })),
    );
    w.emulator.clear_requests();
    w.reconcile_again().await;
    let requests = w.emulator.requests();
    assert_eq!(
        count(&requests, "eks", "DescribePodIdentityAssociation"),
        35,
        "{requests:#}"
    );
    let delays = w.emulator.control("GET", "/_harness/delays", None);
    let peak = delays["peaks"]["eks"]["DescribePodIdentityAssociation"]
        .as_u64()
        .unwrap_or_default();
    assert!(peak >= 16, "at most {peak} describes at once: {delays:#}");
}
