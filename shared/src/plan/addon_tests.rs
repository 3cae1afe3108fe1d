//! An add-on whose several ServiceAccounts have intents: one fully specified change per
//! add-on, settled after one run, in both modes.

use super::*;
use crate::model::BindingMode;
use crate::testing::*;

fn settings(mode: BindingMode) -> Settings {
    Settings {
        mode,
        permissions_boundary: Some("arn:aws:iam::123456789012:policy/eks-intents-boundary".into()),
        ..Settings::default()
    }
}

/// The EBS CSI driver with intents for both its controller and its node ServiceAccounts.
fn two_service_accounts() -> (DesiredState, ObservedState) {
    let mut desired = DesiredState::default();
    let bundle = "intents/demo/kube-system/ebs-ci.yaml";
    declare(
        &mut desired,
        bundle,
        "kube-system",
        "ebs-csi-controller",
        "*",
        &["ec2:CreateVolume"],
    );
    declare(
        &mut desired,
        bundle,
        "kube-system",
        "ebs-csi-node",
        "*",
        &["ec2:DescribeVolumes"],
    );
    let mut observed = empty();
    observed.now = 1_000_000;
    run_workload(
        &mut observed,
        "kube-system",
        "ebs-csi-controller",
        "ebs-csi-controller-sa",
    );
    run_workload(
        &mut observed,
        "kube-system",
        "ebs-csi-node",
        "ebs-csi-node-sa",
    );
    install_addon(
        &mut observed,
        "aws-ebs-csi-driver",
        &[
            ("kube-system", "ebs-csi-controller-sa"),
            ("kube-system", "ebs-csi-node-sa"),
        ],
    );
    (desired, observed)
}

fn addon_actions(plan: &Plan) -> Vec<&Action> {
    plan.actions
        .iter()
        .filter(|a| {
            matches!(
                a,
                Action::SetAddonRole { .. } | Action::SetAddonAssociations { .. }
            )
        })
        .collect()
}

fn shown(plan: &Plan) -> Vec<String> {
    plan.actions.iter().map(ToString::to_string).collect()
}

#[test]
fn irsa_gives_the_addon_one_role_trusted_by_both_service_accounts_and_settles() {
    let settings = settings(BindingMode::Irsa);
    let (desired, observed) = two_service_accounts();
    let (first, state) = converge(&desired, &observed, &settings);
    assert_eq!(addon_actions(&first).len(), 1, "{:?}", shown(&first));
    let roles: Vec<&str> = state.roles.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(roles, ["demo.kube-system.ebs-csi-controller-sa"]);
    let trust = state.roles[0].trust_policy.value();
    let subjects = trust["Statement"][0]["Condition"]["StringEquals"]
        .as_object()
        .and_then(|conditions| conditions.iter().find(|(k, _)| k.ends_with(":sub")))
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    assert!(
        subjects.is_array(),
        "the trust names both ServiceAccounts: {trust}"
    );
    let subjects: Vec<&str> = subjects
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(
        subjects,
        [
            "system:serviceaccount:kube-system:ebs-csi-controller-sa",
            "system:serviceaccount:kube-system:ebs-csi-node-sa"
        ]
    );
    let policy = state.roles[0]
        .inline_policies
        .values()
        .map(|d| d.to_json())
        .collect::<String>();
    assert!(
        policy.contains("ec2:CreateVolume") && policy.contains("ec2:DescribeVolumes"),
        "{policy}"
    );
    assert!(
        first
            .warnings
            .iter()
            .any(|w| w.to_string().contains("aws-ebs-csi-driver")
                && w.to_string().contains("share the role")),
        "{:?}",
        first.warnings
    );
    assert_eq!(
        state.addons[0].service_account_role_arn.as_ref(),
        Some(&state.roles[0].arn)
    );
    // The second run, and every one after, changes nothing: the add-on no longer flips
    // between two roles.
    let again = plan(&desired, &state, &settings);
    assert!(again.actions.is_empty(), "{:?}", shown(&again));
}

#[test]
fn pod_identity_sets_the_addons_whole_association_map_once_and_settles() {
    let settings = settings(BindingMode::PodIdentity);
    let (desired, observed) = two_service_accounts();
    let (first, state) = converge(&desired, &observed, &settings);
    let changes = addon_actions(&first);
    assert_eq!(changes.len(), 1, "{:?}", shown(&first));
    let Action::SetAddonAssociations { associations, .. } = changes[0] else {
        panic!("{:?}", changes[0]);
    };
    let keys: Vec<&str> = associations.keys().map(String::as_str).collect();
    assert_eq!(keys, ["ebs-csi-controller-sa", "ebs-csi-node-sa"]);
    assert_eq!(state.roles.len(), 2);
    // The map is applied after both roles are created.
    let position = |pred: &dyn Fn(&Action) -> bool| first.actions.iter().position(pred);
    let set = position(&|a| matches!(a, Action::SetAddonAssociations { .. }));
    let last_create = first
        .actions
        .iter()
        .rposition(|a| matches!(a, Action::CreateRole { .. }));
    assert!(set > last_create, "{:?}", shown(&first));
    let again = plan(&desired, &state, &settings);
    assert!(again.actions.is_empty(), "{:?}", shown(&again));

    // One ServiceAccount loses its intents: the map keeps the other one.
    let mut fewer = DesiredState::default();
    declare(
        &mut fewer,
        "intents/demo/kube-system/ebs-ci.yaml",
        "kube-system",
        "ebs-csi-controller",
        "*",
        &["ec2:CreateVolume"],
    );
    let mut later = state.clone();
    later.now += 10 * 24 * 3600;
    let (_, marked) = converge(&fewer, &later, &settings);
    let mut due = marked.clone();
    due.now += settings.deletion_grace_seconds + 1;
    let (removal, after) = converge(&fewer, &due, &settings);
    let changes = addon_actions(&removal);
    assert_eq!(changes.len(), 1, "{:?}", shown(&removal));
    let kept: Vec<&str> = after.addons[0]
        .pod_identity_associations
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(kept, ["ebs-csi-controller-sa"], "{:?}", shown(&removal));
    let unbind = position_of(&removal, |a| {
        matches!(a, Action::SetAddonAssociations { .. })
    });
    let delete = position_of(&removal, |a| matches!(a, Action::DeleteRole { .. }));
    assert!(unbind < delete, "{:?}", shown(&removal));
}

fn position_of(plan: &Plan, pred: impl Fn(&Action) -> bool) -> Option<usize> {
    plan.actions.iter().position(pred)
}

#[test]
fn irsa_keeps_the_shared_role_on_the_addon_while_an_older_second_role_is_cleaned_up() {
    // Before add-on roles were shared, each ServiceAccount had its own role and the add-on
    // pointed at one of them: the other one is now an orphan, and its clean-up must not
    // clear the add-on's role.
    let settings = settings(BindingMode::Irsa);
    let (desired, observed) = two_service_accounts();
    let mut only_node = DesiredState::default();
    declare(
        &mut only_node,
        "intents/demo/kube-system/ebs-ci.yaml",
        "kube-system",
        "ebs-csi-node",
        "*",
        &["ec2:DescribeVolumes"],
    );
    let (_, with_node_role) = converge(&only_node, &observed, &settings);
    let node_arn = with_node_role.addons[0].service_account_role_arn.clone();
    assert!(node_arn.is_some_and(|a| a.as_str().ends_with("ebs-csi-node-sa")));
    let (_, marked) = converge(&desired, &with_node_role, &settings);
    let mut due = marked.clone();
    due.now += settings.deletion_grace_seconds + 1;
    let (cleanup, after) = converge(&desired, &due, &settings);
    assert!(
        after.addons[0]
            .service_account_role_arn
            .as_ref()
            .is_some_and(|a| a.as_str().ends_with("ebs-csi-controller-sa")),
        "{:?}",
        shown(&cleanup)
    );
    let again = plan(&desired, &after, &settings);
    assert!(again.actions.is_empty(), "{:?}", shown(&again));
}
