//! EKS add-ons without intents (issue 14, point 5), on the local AWS emulator: with the setting
//! on, an add-on ServiceAccount that no intent names gets a role with the managed policies EKS
//! recommends for it (`DescribeAddonConfiguration`'s `podIdentityConfiguration`), bound through
//! the add-on's own role setting; a second run writes nothing.

use eks_intents::model::BindingMode;
use integration::scenario::*;
use serde_json::json;

const EBS_POLICY: &str = "arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy";

#[tokio::test]
async fn an_addon_without_intents_gets_the_recommended_policies_through_the_addon() {
    let mut w = world(BindingMode::Irsa, seed_fake_cluster).await;
    w.reconciler.settings.plan.addon_recommended_policies = true;
    // Every seed bundle but the EBS driver's.
    for (key, file) in SEED_KEYS.iter().filter(|(key, _)| !key.contains("ebs")) {
        w.put(key, seed(file)).await;
        w.notify(key, false).await;
    }
    w.run_reconciler().await;
    let state = w.inspect();
    let role = &state["roles"][EBS_ROLE];
    assert_eq!(
        role["attached"]
            .as_object()
            .map(|a| a.keys().collect::<Vec<_>>()),
        Some(vec![&EBS_POLICY.to_owned()]),
        "{role:#}"
    );
    assert_eq!(role["inline"], json!({}), "{role:#}");
    assert_eq!(
        state["addons"]["aws-ebs-csi-driver"]["service_account_role_arn"], role["arn"],
        "{state:#}"
    );
    let status = w.status().await;
    let addon = status["workloads"]
        .as_array()
        .and_then(|w| w.iter().find(|w| w["workload"] == "aws-ebs-csi-driver"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(addon["namespace"], "kube-system", "{status:#}");
    assert_eq!(addon["role_arn"], role["arn"], "{status:#}");
    w.emulator.clear_requests();
    w.reconcile_again().await;
    assert_eq!(w.aws_writes(), Default::default());
    assert_eq!(
        w.emulator.requests()["eks"]["DescribeAddonConfiguration"].as_u64(),
        Some(1)
    );
}
