//! Table tests and property tests of the planner against the in-memory model.

use super::*;
use crate::model::{BindingMode, ObservedAssociation, ROLE_ARN_ANNOTATION, Takeover};
use crate::policy::{self, INLINE_POLICY_NAME, PolicyDocument};
use crate::testing::*;
use proptest::prelude::*;
use serde_json::Value;

const DYNAMO: &[&str] = &["dynamodb:*"];

fn settings() -> Settings {
    Settings {
        permissions_boundary: Some("arn:aws:iam::123456789012:policy/eks-intents-boundary".into()),
        ..Settings::default()
    }
}

fn seed_desired() -> DesiredState {
    let mut desired = DesiredState::default();
    declare(
        &mut desired,
        "intents/demo/ack-dynamodb-ci.yaml",
        "ack-system",
        "ack-dynamodb-controller-dynamodb-chart",
        "*",
        DYNAMO,
    );
    declare(
        &mut desired,
        "intents/demo/jokes/joke-worker-ci.yaml",
        "jokes",
        "joke-worker",
        "*",
        DYNAMO,
    );
    declare(
        &mut desired,
        "intents/demo/kube-system/ebs-ci.yaml",
        "kube-system",
        "ebs-csi-controller",
        "*",
        &["ec2:CreateVolume", "ec2:AttachVolume"],
    );
    desired
}

fn seed_cluster() -> ObservedState {
    let mut observed = empty();
    observed.now = 1_000_000;
    run_workload(
        &mut observed,
        "ack-system",
        "ack-dynamodb-controller-dynamodb-chart",
        "ack-dynamodb-controller",
    );
    run_workload(&mut observed, "jokes", "joke-worker", "joke-worker");
    run_workload(
        &mut observed,
        "kube-system",
        "ebs-csi-controller",
        "ebs-csi-controller-sa",
    );
    install_addon(
        &mut observed,
        "aws-ebs-csi-driver",
        &[("kube-system", "ebs-csi-controller-sa")],
    );
    observed
}

/// Declares `count` DynamoDB actions (`dynamodb:Action0000`, ...) on every resource for
/// jokes/joke-worker, from `bundle`: a policy larger than IAM's quotas.
fn declare_many(desired: &mut DesiredState, bundle: &str, count: usize) {
    let actions: Vec<String> = (0..count)
        .map(|i| format!("dynamodb:Action{i:04}"))
        .collect();
    let actions: Vec<&str> = actions.iter().map(String::as_str).collect();
    declare(desired, bundle, "jokes", "joke-worker", "*", &actions);
}

fn names(plan: &Plan) -> Vec<String> {
    plan.actions.iter().map(ToString::to_string).collect()
}

fn workload<'a>(plan: &'a Plan, name: &str) -> &'a WorkloadPlan {
    plan.workloads
        .iter()
        .find(|w| w.identity.workload.as_str() == name)
        .unwrap_or_else(|| panic!("no report for {name}: {:?}", plan.workloads))
}

#[test]
fn new_irsa_workloads_get_provider_role_policy_and_binding_in_order() {
    let planned = plan(&seed_desired(), &seed_cluster(), &settings());
    let kinds: Vec<&str> = planned
        .actions
        .iter()
        .map(|a| match a {
            Action::CreateOidcProvider { .. } => "provider",
            Action::CreateRole { .. } => "role",
            Action::PutInlinePolicy { .. } => "policy",
            Action::AnnotateServiceAccount { .. } => "annotate",
            Action::SetAddonRole { .. } => "addon",
            other => panic!("unexpected {other}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "provider", "role", "policy", "annotate", "role", "policy", "annotate", "role",
            "policy", "addon"
        ]
    );
    let Action::CreateRole {
        role,
        trust_policy,
        permissions_boundary,
        tags,
        path,
        ..
    } = &planned.actions[1]
    else {
        panic!("expected a role");
    };
    assert_eq!(role.as_str(), "demo.ack-system.ack-dynamodb-controller");
    assert_eq!(path, "/eks-intents/demo/");
    assert_eq!(
        permissions_boundary.as_ref().map(PolicyArn::as_str),
        Some("arn:aws:iam::123456789012:policy/eks-intents-boundary")
    );
    assert_eq!(
        trust_policy.value()["Statement"][0]["Condition"]["StringEquals"]["oidc.eks.eu-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE:sub"],
        "system:serviceaccount:ack-system:ack-dynamodb-controller"
    );
    assert_eq!(
        tags.get(policy::WORKLOADS_TAG).map(String::as_str),
        Some("ack-dynamodb-controller-dynamodb-chart")
    );
    assert_eq!(
        tags.get(policy::BUNDLE_TAG).map(String::as_str),
        Some("intents/demo/ack-dynamodb-ci.yaml")
    );
    let ebs = workload(&planned, "ebs-csi-controller");
    assert_eq!(
        ebs.identity.binding,
        Some(Binding::Addon {
            addon: "aws-ebs-csi-driver".into()
        })
    );
    assert_eq!(ebs.state, WorkloadState::Changing);
}

#[test]
fn a_converged_state_plans_nothing() {
    let (first, state) = converge(&seed_desired(), &seed_cluster(), &settings());
    assert!(!first.is_empty());
    let second = plan(&seed_desired(), &state, &settings());
    assert!(second.is_empty(), "{:?}", names(&second));
    assert!(
        second
            .workloads
            .iter()
            .all(|w| w.state == WorkloadState::Ready),
        "{:?}",
        second.workloads
    );
}

/// IAM hands documents back percent-encoded, with keys and lists in its own order and
/// one-element lists as scalars: that must not look like drift.
#[test]
fn documents_as_iam_returns_them_plan_nothing() {
    let (_, mut state) = converge(&seed_desired(), &seed_cluster(), &settings());
    for role in &mut state.roles {
        role.trust_policy = reencode(&role.trust_policy);
        for doc in role.inline_policies.values_mut() {
            *doc = reencode(doc);
        }
    }
    let again = plan(&seed_desired(), &state, &settings());
    assert!(again.is_empty(), "{:?}", names(&again));
}

fn reencode(doc: &PolicyDocument) -> PolicyDocument {
    let mut value = doc.value();
    if let Some(statements) = value["Statement"].as_array_mut() {
        statements.reverse();
        for statement in statements {
            for key in ["Action", "Resource"] {
                if let Some(list) = statement.get_mut(key).and_then(Value::as_array_mut) {
                    list.reverse();
                    if list.len() == 1 {
                        statement[key] = list[0].clone();
                    }
                }
            }
        }
    }
    // serde_json writes keys sorted; a reversed string order stands for IAM's own order.
    let text = serde_json::to_string_pretty(&value).unwrap();
    let encoded = percent_encoding::utf8_percent_encode(&text, percent_encoding::NON_ALPHANUMERIC)
        .to_string();
    PolicyDocument::from_text(encoded)
}

#[test]
fn a_policy_with_another_meaning_is_restored() {
    let (_, mut state) = converge(&seed_desired(), &seed_cluster(), &settings());
    let role = state
        .roles
        .iter_mut()
        .find(|r| r.name.as_str() == "demo.jokes.joke-worker")
        .unwrap();
    role.inline_policies.insert(
        INLINE_POLICY_NAME.into(),
        PolicyDocument::from_value(&serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})),
    );
    role.attached_policies
        .insert("arn:aws:iam::aws:policy/AdministratorAccess".into());
    role.inline_policies.insert(
        "added-by-hand".into(),
        PolicyDocument::from_value(&serde_json::json!({})),
    );
    let again = plan(&seed_desired(), &state, &settings());
    assert_eq!(
        names(&again),
        [
            "put inline policy eks-intents on demo.jokes.joke-worker",
            "detach arn:aws:iam::aws:policy/AdministratorAccess from demo.jokes.joke-worker",
            "delete inline policy added-by-hand of demo.jokes.joke-worker",
        ]
    );
}

#[test]
fn a_foreign_role_with_the_same_name_is_never_touched() {
    let (_, mut state) = converge(&seed_desired(), &seed_cluster(), &settings());
    let role = state
        .roles
        .iter_mut()
        .find(|r| r.name.as_str() == "demo.jokes.joke-worker")
        .unwrap();
    role.tags.clear();
    role.inline_policies.clear();
    let again = plan(&seed_desired(), &state, &settings());
    assert!(
        again
            .actions
            .iter()
            .all(|a| a.role().map(RoleName::as_str) != Some("demo.jokes.joke-worker")),
        "{:?}",
        names(&again)
    );
    let report = workload(&again, "joke-worker");
    assert_eq!(report.state, WorkloadState::Error);
    assert!(
        report.message().contains("not managed by eks-intents"),
        "{}",
        report.message()
    );
    assert!(again.orphans.is_empty());
}

#[test]
fn the_default_service_account_is_refused_unless_allowed() {
    let mut desired = DesiredState::default();
    declare(
        &mut desired,
        "b.yaml",
        "jokes",
        "joke-server",
        "*",
        &["s3:GetObject"],
    );
    let mut observed = empty();
    run_workload(&mut observed, "jokes", "joke-server", "");
    let refused = plan(&desired, &observed, &settings());
    assert!(refused.is_empty());
    let report = workload(&refused, "joke-server");
    assert_eq!(report.state, WorkloadState::Error);
    assert!(
        report
            .message()
            .contains("default ServiceAccount of namespace jokes"),
        "{}",
        report.message()
    );
    assert!(report.message().contains("serviceAccountName"));

    let allowed = plan(
        &desired,
        &observed,
        &Settings {
            allow_default_service_account: true,
            ..settings()
        },
    );
    assert_eq!(
        workload(&allowed, "joke-server")
            .role
            .as_ref()
            .map(RoleName::as_str),
        Some("demo.jokes.default")
    );
}

#[test]
fn workloads_sharing_a_service_account_share_one_role_with_the_union() {
    let mut desired = DesiredState::default();
    declare(
        &mut desired,
        "a.yaml",
        "jokes",
        "joke-server",
        "*",
        &["s3:GetObject"],
    );
    declare(
        &mut desired,
        "b.yaml",
        "jokes",
        "joke-worker",
        "*",
        &["dynamodb:PutItem"],
    );
    let mut observed = empty();
    run_workload(&mut observed, "jokes", "joke-server", "jokes");
    run_workload(&mut observed, "jokes", "joke-worker", "jokes");
    let planned = plan(&desired, &observed, &settings());
    let roles: Vec<&Action> = planned
        .actions
        .iter()
        .filter(|a| matches!(a, Action::CreateRole { .. }))
        .collect();
    assert_eq!(roles.len(), 1);
    let policy = planned.actions.iter().find_map(|a| match a {
        Action::PutInlinePolicy { document, .. } => Some(document.to_json()),
        _ => None,
    });
    assert_eq!(
        policy.as_deref(),
        Some(
            r#"{"Statement":[{"Action":["dynamodb:PutItem","s3:GetObject"],"Effect":"Allow","Resource":["*"]}],"Version":"2012-10-17"}"#
        )
    );
    // One for the shared ServiceAccount, one for its grants on `*`.
    assert_eq!(planned.warnings.len(), 2, "{:?}", planned.warnings);
    assert!(
        planned.warnings.iter().all(|w| w
            .to_string()
            .contains("jokes/joke-server and jokes/joke-worker")),
        "{:?}",
        planned.warnings
    );
}

#[test]
fn pod_identity_mode_uses_associations_and_the_addon() {
    let pod_identity = Settings {
        mode: BindingMode::PodIdentity,
        ..settings()
    };
    let (first, state) = converge(&seed_desired(), &seed_cluster(), &pod_identity);
    assert!(first.actions.iter().all(|a| !matches!(
        a,
        Action::CreateOidcProvider { .. } | Action::AnnotateServiceAccount { .. }
    )));
    let associations = first
        .actions
        .iter()
        .filter(|a| matches!(a, Action::CreatePodIdentityAssociation { .. }))
        .count();
    assert_eq!(associations, 2);
    assert!(first.actions.iter().any(|a| matches!(
        a,
        Action::SetAddonAssociations { associations, .. } if associations.len() == 1
    )));
    let role = state
        .roles
        .iter()
        .find(|r| r.name.as_str() == "demo.jokes.joke-worker")
        .unwrap();
    assert_eq!(
        role.trust_policy.value()["Statement"][0]["Principal"]["Service"],
        "pods.eks.amazonaws.com"
    );
    assert!(plan(&seed_desired(), &state, &pod_identity).is_empty());
}

#[test]
fn switching_modes_replaces_the_bindings_this_system_made() {
    let (_, irsa_state) = converge(&seed_desired(), &seed_cluster(), &settings());
    let pod_identity = Settings {
        mode: BindingMode::PodIdentity,
        ..settings()
    };
    let (switch, state) = converge(&seed_desired(), &irsa_state, &pod_identity);
    assert!(
        switch
            .actions
            .iter()
            .any(|a| matches!(a, Action::RemoveServiceAccountAnnotation { .. }))
    );
    assert!(
        switch
            .actions
            .iter()
            .any(|a| matches!(a, Action::UpdateTrustPolicy { .. }))
    );
    assert!(
        state
            .service_accounts
            .iter()
            .all(|sa| sa.role_annotation().is_none())
    );
    assert!(plan(&seed_desired(), &state, &pod_identity).is_empty());
}

#[test]
fn an_association_owned_by_an_addon_is_never_taken_over() {
    let pod_identity = Settings {
        mode: BindingMode::PodIdentity,
        ..settings()
    };
    let mut observed = seed_cluster();
    observed
        .pod_identity_associations
        .push(ObservedAssociation {
            association_id: "a-1".into(),
            namespace: "jokes".into(),
            service_account: "joke-worker".into(),
            role_arn: "arn:aws:iam::123456789012:role/other".into(),
            owner_arn: Some("arn:aws:eks:eu-west-2:123456789012:addon/demo/x/1".into()),
            tags: BTreeMap::new(),
            session_policy: None,
            session_tags_disabled: false,
            target_role_arn: None,
        });
    let planned = plan(&seed_desired(), &observed, &pod_identity);
    let report = workload(&planned, "joke-worker");
    assert_eq!(report.state, WorkloadState::Error);
    assert!(report.message().contains("never taken over"));
    assert!(!planned.actions.iter().any(|a| matches!(a, Action::CreatePodIdentityAssociation { service_account, .. } | Action::UpdatePodIdentityAssociation { service_account, .. } if service_account.name.as_str() == "joke-worker")));
}

#[test]
fn an_annotation_of_another_manager_is_a_conflict_not_overwritten() {
    let mut observed = seed_cluster();
    let sa = observed
        .service_accounts
        .iter_mut()
        .find(|s| s.name.as_str() == "joke-worker")
        .unwrap();
    sa.annotations.insert(
        ROLE_ARN_ANNOTATION.into(),
        "arn:aws:iam::123456789012:role/hand-made".into(),
    );
    let planned = plan(&seed_desired(), &observed, &settings());
    let report = workload(&planned, "joke-worker");
    assert_eq!(report.state, WorkloadState::Error);
    assert!(
        report.message().contains("hand-made"),
        "{}",
        report.message()
    );
    assert!(!planned.actions.iter().any(|a| matches!(a, Action::AnnotateServiceAccount { service_account, .. } if service_account.name.as_str() == "joke-worker")));
}

#[test]
fn a_workload_not_in_the_cluster_is_pending_and_gets_no_role() {
    let mut observed = seed_cluster();
    observed
        .workloads
        .as_mut()
        .unwrap()
        .retain(|w| w.name.as_str() != "joke-worker");
    let planned = plan(&seed_desired(), &observed, &settings());
    let report = workload(&planned, "joke-worker");
    assert_eq!(report.state, WorkloadState::Pending);
    assert!(
        report
            .message()
            .contains("no workload named joke-worker in namespace jokes"),
        "{}",
        report.message()
    );
    assert!(!names(&planned).iter().any(|n| n.contains("joke-worker")));
}

#[test]
fn roles_of_a_failing_bundle_stay_exactly_as_they_are() {
    let (_, state) = converge(&seed_desired(), &seed_cluster(), &settings());
    // The joke-worker bundle now fails to read: its intents are gone from the desired state,
    // and the bundle is held.
    let mut desired = seed_desired();
    desired
        .workloads
        .retain(|w, _| w.name.as_str() != "joke-worker");
    desired
        .held
        .bundles
        .insert("intents/demo/jokes/joke-worker-ci.yaml".into());
    let planned = plan(&desired, &state, &settings());
    assert!(planned.is_empty(), "{:?}", names(&planned));
    assert!(planned.orphans.is_empty());
    let held = workload(&planned, "joke-worker");
    assert_eq!(held.state, WorkloadState::Held);
    assert_eq!(
        held.role.as_ref().map(RoleName::as_str),
        Some("demo.jokes.joke-worker")
    );

    // One document of the ACK bundle fails; its workload is known and held, and the other
    // documents of the bundle still reconcile.
    let mut desired = seed_desired();
    let ack = desired
        .workloads
        .keys()
        .find(|w| w.namespace.as_str() == "ack-system")
        .unwrap()
        .clone();
    desired.workloads.get_mut(&ack).unwrap().permissions.clear();
    desired.held.workloads.insert(crate::model::HeldWorkload {
        namespace: ack.namespace.clone(),
        name: ack.name.clone(),
        bundle: "intents/demo/ack-dynamodb-ci.yaml".into(),
    });
    declare(
        &mut desired,
        "intents/demo/jokes/joke-worker-ci.yaml",
        "jokes",
        "joke-worker",
        "*",
        &["s3:GetObject"],
    );
    let planned = plan(&desired, &state, &settings());
    assert_eq!(
        workload(&planned, "ack-dynamodb-controller-dynamodb-chart").state,
        WorkloadState::Held
    );
    assert_eq!(
        names(&planned),
        [
            "tag role demo.jokes.joke-worker: eks-intents/declared",
            "put inline policy eks-intents on demo.jokes.joke-worker"
        ]
    );
    // A change of intents is not drift.
    assert!(planned.drift.is_empty(), "{:?}", planned.drift);
}

#[test]
fn gone_intents_mark_then_delete_after_grace_unless_the_breaker_holds_them() {
    let (_, state) = converge(&seed_desired(), &seed_cluster(), &settings());
    let gone = DesiredState::default();
    let settings = Settings {
        deletion_grace_seconds: 100,
        max_deletions_per_run: 2,
        ..settings()
    };

    let (marked, mut state) = converge(&gone, &state, &settings);
    assert_eq!(marked.actions.len(), 3);
    assert!(marked.actions.iter().all(|a| matches!(
        a,
        Action::MarkRoleForDeletion {
            since: 1_000_000,
            ..
        }
    )));
    assert!(
        marked
            .orphans
            .iter()
            .all(|o| o.state == OrphanState::Marked)
    );

    state.now += 50;
    let waiting = plan(&gone, &state, &settings);
    assert!(waiting.is_empty());
    assert!(
        waiting
            .orphans
            .iter()
            .all(|o| o.state == OrphanState::Waiting)
    );

    // Three roles due, the cap is two: the breaker holds all three, and says how to go on.
    state.now += 50;
    let held = plan(&gone, &state, &settings);
    assert!(held.is_empty(), "{:?}", names(&held));
    assert!(
        held.orphans
            .iter()
            .all(|o| o.state == OrphanState::HeldByBreaker)
    );
    assert_eq!(held.breaker, Some(DeletionBreaker { due: 3, cap: 2 }));
    assert!(
        held.orphans[0]
            .message
            .contains("EKS_INTENTS_MAX_DELETIONS_PER_RUN=3")
    );

    // At the cap, every due role goes.
    let raised = Settings {
        max_deletions_per_run: 3,
        ..settings.clone()
    };
    every_due_role_is_unbound_then_deleted(&gone, &state, &raised);
}

/// Plans the roles due for deletion at `state` to their end: each unbound, then deleted.
fn every_due_role_is_unbound_then_deleted(
    gone: &DesiredState,
    state: &ObservedState,
    raised: &Settings,
) {
    let (deleting, state) = converge(gone, state, raised);
    assert_eq!(deleting.breaker, None);
    assert!(
        deleting
            .orphans
            .iter()
            .all(|o| o.state == OrphanState::Deleting)
    );
    // Unbound before deleted: the annotation goes first.
    let first_role = &deleting.orphans[0].role;
    let steps: Vec<String> = deleting
        .actions
        .iter()
        .filter(|a| a.role() == Some(first_role))
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        steps,
        [
            "remove role annotation from ServiceAccount ack-system/ack-dynamodb-controller"
                .to_owned(),
            format!("delete inline policy eks-intents of {first_role}"),
            format!("delete role {first_role}"),
        ]
    );
    assert!(state.roles.is_empty());
    assert!(state.addons[0].service_account_role_arn.is_none());
    assert!(
        state
            .service_accounts
            .iter()
            .all(|sa| sa.role_annotation().is_none())
    );
    assert!(plan(gone, &state, raised).is_empty());
}

#[test]
fn soft_delete_unbinds_due_roles_and_keeps_them() {
    let (_, state) = converge(&seed_desired(), &seed_cluster(), &settings());
    let gone = DesiredState::default();
    let settings = Settings {
        deletion_grace_seconds: 100,
        soft_delete: true,
        ..settings()
    };
    let (_, mut state) = converge(&gone, &state, &settings);
    state.now += 100;
    let (unbinding, state) = converge(&gone, &state, &settings);
    assert!(
        unbinding
            .orphans
            .iter()
            .all(|o| o.state == OrphanState::Unbound)
    );
    assert!(!unbinding.actions.iter().any(|a| matches!(
        a,
        Action::DeleteRole { .. } | Action::DeleteInlinePolicy { .. }
    )));
    assert_eq!(state.roles.len(), 3);
    assert!(state.addons[0].service_account_role_arn.is_none());
    assert!(
        state
            .service_accounts
            .iter()
            .all(|sa| sa.role_annotation().is_none())
    );
    // Nothing left to do, and a role wanted again is bound again as it is.
    assert!(plan(&gone, &state, &settings).is_empty());
    let (back, state) = converge(&seed_desired(), &state, &settings);
    assert!(
        !back
            .actions
            .iter()
            .any(|a| matches!(a, Action::CreateRole { .. })),
        "{:?}",
        names(&back)
    );
    assert!(state.addons[0].service_account_role_arn.is_some());
}

#[test]
fn returning_intents_clear_the_deletion_mark() {
    let (_, state) = converge(&seed_desired(), &seed_cluster(), &settings());
    let (_, marked) = converge(&DesiredState::default(), &state, &settings());
    let back = plan(&seed_desired(), &marked, &settings());
    assert_eq!(back.actions.len(), 3);
    assert!(back.actions.iter().all(|a| matches!(a, Action::UntagRole { keys, .. } if keys == &[policy::ORPHANED_TAG.to_owned()])));
}

#[test]
fn large_intents_split_into_managed_policies_and_converge() {
    let mut desired = DesiredState::default();
    declare_many(&mut desired, "big.yaml", 900);
    let (first, state) = converge(&desired, &empty(), &settings());
    let parts = first
        .actions
        .iter()
        .filter(|a| matches!(a, Action::CreateManagedPolicy { .. }))
        .count();
    assert!(parts >= 3, "{parts}");
    assert_eq!(
        first
            .actions
            .iter()
            .filter(|a| matches!(a, Action::AttachManagedPolicy { .. }))
            .count(),
        parts
    );
    assert!(
        !first
            .actions
            .iter()
            .any(|a| matches!(a, Action::PutInlinePolicy { .. }))
    );
    assert!(plan(&desired, &state, &settings()).is_empty());

    // Shrunk back under the inline quota: inline policy first, then the parts go.
    let mut small = DesiredState::default();
    declare_many(&mut small, "big.yaml", 3);
    let (shrink, state) = converge(&small, &state, &settings());
    assert!(matches!(
        shrink
            .actions
            .iter()
            .find(|a| !matches!(a, Action::TagRole { .. })),
        Some(Action::PutInlinePolicy { .. })
    ));
    assert!(state.managed_policies.is_empty());
    assert!(plan(&small, &state, &settings()).is_empty());
}

#[test]
fn too_many_parts_is_an_error_for_that_workload_alone() {
    let mut desired = seed_desired();
    declare_many(&mut desired, "big.yaml", 900);
    let tight = Settings {
        quotas: crate::model::IamQuotas {
            attached_policies: 1,
            ..Default::default()
        },
        ..settings()
    };
    let planned = plan(&desired, &seed_cluster(), &tight);
    assert_eq!(
        workload(&planned, "joke-worker").state,
        WorkloadState::Error
    );
    assert!(
        workload(&planned, "joke-worker")
            .message()
            .contains("more than the 1 that can be attached")
    );
    assert_eq!(
        workload(&planned, "ebs-csi-controller").state,
        WorkloadState::Changing
    );
}

#[test]
fn placeholders_resolve_to_the_clusters_region_and_account() {
    let mut desired = DesiredState::default();
    declare(
        &mut desired,
        "b.yaml",
        "jokes",
        "joke-worker",
        "arn:aws:dynamodb:$(AWS_REGION):$(AWS_ACCOUNT_ID):table/JokesTable",
        &["dynamodb:GetItem"],
    );
    let planned = plan(&desired, &empty(), &settings());
    let doc = planned.actions.iter().find_map(|a| match a {
        Action::PutInlinePolicy { document, .. } => Some(document.to_json()),
        _ => None,
    });
    assert!(
        doc.unwrap()
            .contains("arn:aws:dynamodb:eu-west-2:123456789012:table/JokesTable")
    );
}

#[test]
fn a_removed_boundary_is_put_back() {
    let (_, mut state) = converge(&seed_desired(), &seed_cluster(), &settings());
    state.roles[0].permissions_boundary = None;
    let again = plan(&seed_desired(), &state, &settings());
    assert_eq!(again.actions.len(), 1);
    assert!(matches!(
        again.actions[0],
        Action::PutPermissionsBoundary { .. }
    ));
}

// ---- property tests ----

fn arb_desired() -> impl Strategy<Value = DesiredState> {
    let entry = (
        0..3usize,
        0..6usize,
        0..3usize,
        proptest::collection::btree_set(0..8usize, 0..4),
        0..3usize,
    );
    proptest::collection::vec(entry, 0..10).prop_map(|entries| {
        let mut desired = DesiredState::default();
        for (ns, workload, resource, actions, bundle) in entries {
            let actions: Vec<String> = actions
                .into_iter()
                .map(|a| format!("s3:Action{a}"))
                .collect();
            let actions: Vec<&str> = actions.iter().map(String::as_str).collect();
            let resource = [
                "*",
                "arn:aws:s3:::bucket/*",
                "arn:aws:s3:::$(AWS_ACCOUNT_ID)-logs",
            ][resource];
            declare(
                &mut desired,
                &format!("intents/demo/b{bundle}.yaml"),
                &format!("ns{ns}"),
                &format!("w{workload}"),
                resource,
                &actions,
            );
        }
        desired
    })
}

/// A cluster whose workloads run as a few ServiceAccounts (some shared, one add-on's).
fn arb_observed() -> impl Strategy<Value = ObservedState> {
    (
        proptest::collection::vec((0..3usize, 0..6usize, 0..4usize), 0..14),
        any::<bool>(),
        0..2u64,
    )
        .prop_map(|(workloads, addon, now)| {
            let mut observed = empty();
            observed.now = now * 1_000_000;
            observed.workloads = Some(Vec::new());
            for (ns, workload, sa) in workloads {
                let ns = format!("ns{ns}");
                let name = format!("w{workload}");
                if observed
                    .workloads
                    .as_ref()
                    .unwrap()
                    .iter()
                    .any(|w| w.namespace.as_str() == ns && w.name.as_str() == name)
                {
                    continue;
                }
                run_workload(&mut observed, &ns, &name, &format!("sa{sa}"));
            }
            if addon {
                install_addon(&mut observed, "aws-ebs-csi-driver", &[("ns0", "sa0")]);
            }
            observed
        })
}

fn arb_settings() -> impl Strategy<Value = Settings> {
    (any::<bool>(), any::<bool>(), 0..3usize).prop_map(|(pod_identity, small_quota, deletions)| {
        Settings {
            mode: if pod_identity {
                BindingMode::PodIdentity
            } else {
                BindingMode::Irsa
            },
            deletion_grace_seconds: 10,
            max_deletions_per_run: deletions,
            quotas: if small_quota {
                crate::model::IamQuotas {
                    inline_policy_chars: 150,
                    managed_policy_chars: 200,
                    ..Default::default()
                }
            } else {
                Default::default()
            },
            ..settings()
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Applying a plan and planning again yields no action, from any earlier state: the
    /// system converges in one step and then stays quiet.
    #[test]
    fn planning_after_applying_yields_an_empty_plan(
        before in arb_desired(),
        desired in arb_desired(),
        observed in arb_observed(),
        settings in arb_settings(),
    ) {
        // Start from a state that an earlier, different desired state left behind.
        let (_, earlier) = converge(&before, &observed, &settings);
        let (_, after) = converge(&desired, &earlier, &settings);
        let again = plan(&desired, &after, &settings);
        // Orphans are marked in one step and deleted after the grace period by design: only
        // deletions still waiting on the clock or the cap may remain.
        prop_assert!(again.actions.iter().all(|a| a.role().is_some_and(|r| again.orphans.iter().any(|o| &o.role == r))),
            "{:?}", again.actions.iter().map(ToString::to_string).collect::<Vec<_>>());
        prop_assert!(again.orphans.iter().all(|o| o.state != OrphanState::Marked));
        for report in &again.workloads {
            prop_assert!(report.state != WorkloadState::Changing, "{:?}", report);
        }
    }

    /// The same input always gives the same plan, whatever order the observation lists came in.
    #[test]
    fn plans_are_deterministic(desired in arb_desired(), observed in arb_observed(), settings in arb_settings()) {
        let (_, state) = converge(&desired, &observed, &settings);
        let mut shuffled = state.clone();
        shuffled.roles.reverse();
        shuffled.service_accounts.reverse();
        if let Some(w) = shuffled.workloads.as_mut() { w.reverse(); }
        shuffled.managed_policies.reverse();
        shuffled.pod_identity_associations.reverse();
        let other = arb_desired_shuffle(&desired);
        prop_assert_eq!(plan(&desired, &state, &settings), plan(&other, &shuffled, &settings));
        prop_assert_eq!(plan(&desired, &observed, &settings), plan(&desired, &observed, &settings));
    }
}

fn arb_desired_shuffle(desired: &DesiredState) -> DesiredState {
    // A DesiredState is made of ordered maps and sets: rebuilding it in reverse order must
    // give the same value, and so the same plan.
    let mut out = DesiredState {
        held: desired.held.clone(),
        ..Default::default()
    };
    for (workload, entry) in desired.workloads.iter().rev() {
        for source in entry.sources.iter().rev() {
            out.add(
                workload.clone(),
                entry.permissions.iter().rev().cloned(),
                source.clone(),
            );
        }
    }
    out
}

#[test]
fn a_new_binding_asks_for_a_restart_or_rolls_the_pods() {
    let planned = plan(&seed_desired(), &seed_cluster(), &settings());
    assert_eq!(workload(&planned, "joke-worker").restart, Restart::Needed);
    // The add-on's binding is the add-on's business.
    assert_eq!(
        workload(&planned, "ebs-csi-controller").restart,
        Restart::NotNeeded
    );
    assert!(
        !planned
            .actions
            .iter()
            .any(|a| matches!(a, Action::RestartWorkload { .. }))
    );

    let rolling = Settings {
        rollout_restart: true,
        ..settings()
    };
    let (planned, state) = converge(&seed_desired(), &seed_cluster(), &rolling);
    assert_eq!(workload(&planned, "joke-worker").restart, Restart::Planned);
    let worker_steps: Vec<String> = planned
        .actions
        .iter()
        .filter(|a| a.role().map(RoleName::as_str) == Some("demo.jokes.joke-worker"))
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        worker_steps.last().map(String::as_str),
        Some("restart the pods of Deployment jokes/joke-worker so they get the new binding")
    );
    assert!(
        worker_steps.iter().position(|s| s.starts_with("annotate")) < Some(worker_steps.len() - 1)
    );
    // Converged: no binding changes, no restarts.
    let again = plan(&seed_desired(), &state, &rolling);
    assert!(again.is_empty(), "{:?}", names(&again));
    assert_eq!(workload(&again, "joke-worker").restart, Restart::NotNeeded);
}

#[test]
fn no_role_is_created_or_changed_without_a_configured_boundary() {
    let unbounded = Settings {
        permissions_boundary: None,
        ..settings()
    };
    let planned = plan(&seed_desired(), &seed_cluster(), &unbounded);
    assert!(
        !planned.actions.iter().any(|a| a.role().is_some()),
        "{:?}",
        names(&planned)
    );
    let report = workload(&planned, "joke-worker");
    assert_eq!(report.state, WorkloadState::Error);
    assert!(
        report
            .message()
            .contains("no permissions boundary is configured"),
        "{}",
        report.message()
    );

    let allowed = Settings {
        require_boundary: false,
        ..unbounded
    };
    let planned = plan(&seed_desired(), &seed_cluster(), &allowed);
    assert!(planned.actions.iter().any(|a| matches!(
        a,
        Action::CreateRole {
            permissions_boundary: None,
            ..
        }
    )));
    assert!(
        planned
            .warnings
            .iter()
            .any(|w| w.to_string().contains("without a permissions boundary")),
        "{:?}",
        planned.warnings
    );
}

#[test]
fn dangerous_actions_are_refused_unless_an_exception_names_the_workload() {
    let mut desired = seed_desired();
    declare(
        &mut desired,
        "intents/demo/jokes/w.yaml",
        "jokes",
        "joke-worker",
        "*",
        &["iam:Put*"],
    );
    let planned = plan(&desired, &seed_cluster(), &settings());
    let report = workload(&planned, "joke-worker");
    assert_eq!(report.state, WorkloadState::Error);
    assert!(
        report.message().contains("iam:Put* on *")
            && report.message().contains("iam:PutRolePolicy"),
        "{}",
        report.message()
    );
    assert!(!names(&planned).iter().any(|n| n.contains("joke-worker")));
    // The other workloads go on.
    assert_eq!(
        workload(&planned, "ebs-csi-controller").state,
        WorkloadState::Changing
    );

    let excepted = Settings {
        danger_exceptions: vec![crate::policy::DangerException {
            namespace: Some("jokes".into()),
            workload: Some("joke-worker".into()),
            action: "iam:put*".into(),
            ..Default::default()
        }],
        ..settings()
    };
    assert_eq!(
        workload(&plan(&desired, &seed_cluster(), &excepted), "joke-worker").state,
        WorkloadState::Changing
    );
    let elsewhere = Settings {
        danger_exceptions: vec![crate::policy::DangerException {
            namespace: Some("other".into()),
            action: "iam:Put*".into(),
            ..Default::default()
        }],
        ..settings()
    };
    assert_eq!(
        workload(&plan(&desired, &seed_cluster(), &elsewhere), "joke-worker").state,
        WorkloadState::Error
    );
}

#[test]
fn broad_grants_are_allowed_with_a_warning() {
    let planned = plan(&seed_desired(), &seed_cluster(), &settings());
    assert!(
        planned.warnings.iter().any(|w| w.to_string().contains("ack-system/ack-dynamodb-controller-dynamodb-chart is granted dynamodb:* on every resource (`*`, reaching dynamodb ")),
        "{:?}",
        planned.warnings
    );
}

#[test]
fn a_single_action_on_every_resource_is_warned_about_with_what_it_reaches() {
    let mut desired = DesiredState::default();
    declare(
        &mut desired,
        "a.yaml",
        "jokes",
        "joke-server",
        "*",
        &["s3:GetObject"],
    );
    declare(
        &mut desired,
        "a.yaml",
        "jokes",
        "joke-server",
        "arn:aws:dynamodb:eu-west-2:123456789012:table/jokes",
        &["dynamodb:GetItem"],
    );
    let mut observed = empty();
    run_workload(&mut observed, "jokes", "joke-server", "joke-server");
    let planned = plan(&desired, &observed, &settings());
    let warnings: Vec<String> = planned.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            "jokes/joke-server is granted s3:GetObject on every resource (`*`, reaching s3 accesspointobject, object); consider naming the resources"
        ]
    );
}

proptest! {
    /// Whatever the intents and the account, a role is only ever created with the configured
    /// boundary, and never when none is configured and one is required.
    #[test]
    fn every_created_role_carries_the_boundary(desired in arb_desired(), observed in arb_observed(), with_boundary in any::<bool>()) {
        let settings = Settings {
            permissions_boundary: with_boundary.then(|| "arn:aws:iam::123456789012:policy/b".into()),
            ..settings()
        };
        let planned = plan(&desired, &observed, &settings);
        for action in &planned.actions {
            if let Action::CreateRole { permissions_boundary, .. } = action {
                prop_assert_eq!(permissions_boundary, &settings.permissions_boundary);
                prop_assert!(permissions_boundary.is_some());
            }
        }
    }
}

#[test]
fn forcing_takes_over_another_managers_annotation_when_allowed() {
    let mut observed = seed_cluster();
    let sa = observed
        .service_accounts
        .iter_mut()
        .find(|s| s.name.as_str() == "joke-worker")
        .unwrap();
    sa.annotations.insert(
        ROLE_ARN_ANNOTATION.into(),
        "arn:aws:iam::123456789012:role/hand-made".into(),
    );
    let forcing = Settings {
        force_annotations: true,
        ..settings()
    };
    let planned = plan(&seed_desired(), &observed, &forcing);
    assert_eq!(
        workload(&planned, "joke-worker").state,
        WorkloadState::Changing
    );
    assert!(planned.actions.iter().any(|a| matches!(a, Action::AnnotateServiceAccount { service_account, force: Takeover::Force, .. } if service_account.name.as_str() == "joke-worker")));
    // Annotations nobody else holds are applied without force.
    assert!(planned.actions.iter().any(|a| matches!(a, Action::AnnotateServiceAccount { service_account, force: Takeover::Never, .. } if service_account.namespace.as_str() == "ack-system")));
}

fn drift_of(plan: &Plan) -> Vec<(Option<&str>, DriftKind)> {
    plan.drift
        .iter()
        .map(|d| (d.role.as_ref().map(RoleName::as_str), d.kind))
        .collect()
}

fn role_mut<'a>(state: &'a mut ObservedState, name: &str) -> &'a mut ObservedRole {
    state
        .roles
        .iter_mut()
        .find(|r| r.name.as_str() == name)
        .unwrap()
}

const WORKER: &str = "demo.jokes.joke-worker";

type Edit = fn(&mut ObservedState);
type Found = Vec<(Option<&'static str>, DriftKind)>;

/// One hand change of each kind to the converged seed scenario, with the drift it is found as.
fn hand_changes() -> Vec<(&'static str, Edit, Found)> {
    let worker = Some(WORKER);
    let ebs = Some("demo.kube-system.ebs-csi-controller-sa");
    vec![
        (
            "inline policy edited",
            |s| {
                role_mut(s, WORKER).inline_policies.insert(
                    INLINE_POLICY_NAME.into(),
                    PolicyDocument::from_value(&serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})),
                );
            },
            vec![(worker, DriftKind::InlinePolicy)],
        ),
        (
            "policy attached by hand",
            |s| {
                role_mut(s, WORKER)
                    .attached_policies
                    .insert("arn:aws:iam::aws:policy/AdministratorAccess".into());
            },
            vec![(worker, DriftKind::ManagedPart)],
        ),
        (
            "trust widened",
            |s| {
                role_mut(s, WORKER).trust_policy = PolicyDocument::from_value(
                    &serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]}),
                );
            },
            vec![(worker, DriftKind::Trust)],
        ),
        (
            "boundary removed",
            |s| role_mut(s, WORKER).permissions_boundary = None,
            vec![(worker, DriftKind::Boundary)],
        ),
        (
            "a tag removed",
            |s| {
                role_mut(s, WORKER).tags.remove(policy::WORKLOADS_TAG);
            },
            vec![(worker, DriftKind::Tags)],
        ),
        (
            "role deleted",
            |s| s.roles.retain(|r| r.name.as_str() != WORKER),
            vec![(worker, DriftKind::RoleMissing)],
        ),
        (
            "annotation removed",
            |s| {
                let sa = s
                    .service_accounts
                    .iter_mut()
                    .find(|sa| sa.name.as_str() == "joke-worker")
                    .unwrap();
                sa.annotations.remove(ROLE_ARN_ANNOTATION);
                sa.annotation_owned = false;
            },
            vec![(worker, DriftKind::Annotation)],
        ),
        (
            "add-on role cleared",
            |s| s.addons[0].service_account_role_arn = None,
            vec![(ebs, DriftKind::AddonRole)],
        ),
        (
            "OIDC provider deleted",
            |s| s.oidc_providers.clear(),
            vec![(None, DriftKind::OidcProvider)],
        ),
    ]
}

/// Each kind of hand change is found, named, and put back by one plan; a converged state shows
/// none.
#[test]
fn hand_changes_are_named_by_kind_and_repaired() {
    let (_, converged) = converge(&seed_desired(), &seed_cluster(), &settings());
    assert!(
        plan(&seed_desired(), &converged, &settings())
            .drift
            .is_empty()
    );
    for (what, edit, expected) in hand_changes() {
        let mut state = converged.clone();
        edit(&mut state);
        let (repair, repaired) = converge(&seed_desired(), &state, &settings());
        assert_eq!(drift_of(&repair), expected, "{what}: {:?}", names(&repair));
        let after = plan(&seed_desired(), &repaired, &settings());
        assert!(after.is_empty(), "{what}: {:?}", names(&after));
        assert!(after.drift.is_empty(), "{what}");
    }
}

#[test]
fn pod_identity_and_managed_part_drift_are_named() {
    let pod_identity = Settings {
        mode: BindingMode::PodIdentity,
        ..settings()
    };
    let (_, mut state) = converge(&seed_desired(), &seed_cluster(), &pod_identity);
    state
        .pod_identity_associations
        .retain(|a| a.service_account.as_str() != "joke-worker");
    let repair = plan(&seed_desired(), &state, &pod_identity);
    assert_eq!(
        drift_of(&repair),
        [(Some(WORKER), DriftKind::PodIdentityAssociation)]
    );

    let mut desired = DesiredState::default();
    declare_many(&mut desired, "big.yaml", 900);
    let (_, mut state) = converge(&desired, &empty(), &settings());
    let part = state.managed_policies[0].arn.clone();
    role_mut(&mut state, WORKER).attached_policies.remove(&part);
    let repair = plan(&desired, &state, &settings());
    assert_eq!(drift_of(&repair), [(Some(WORKER), DriftKind::ManagedPart)]);
}

/// What the intents ask for anew is never called drift: a new workload, a widened intent, a
/// ServiceAccount that appears after its role was made, intents coming back to a marked role.
#[test]
fn changes_of_intents_are_not_drift() {
    let (first, state) = converge(&seed_desired(), &seed_cluster(), &settings());
    assert!(first.drift.is_empty(), "{:?}", first.drift);

    let mut wider = seed_desired();
    declare(
        &mut wider,
        "intents/demo/jokes/joke-worker-ci.yaml",
        "jokes",
        "joke-worker",
        "*",
        &["s3:GetObject"],
    );
    let widened = plan(&wider, &state, &settings());
    assert!(!widened.is_empty());
    assert!(widened.drift.is_empty(), "{:?}", widened.drift);

    let (_, marked) = converge(&DesiredState::default(), &state, &settings());
    let back = plan(&seed_desired(), &marked, &settings());
    assert!(!back.is_empty());
    assert!(back.drift.is_empty(), "{:?}", back.drift);

    // The ServiceAccount appears only after the role is made.
    let mut late = seed_cluster();
    late.service_accounts
        .retain(|sa| sa.name.as_str() != "joke-worker");
    let (_, mut state) = converge(&seed_desired(), &late, &settings());
    run_workload(&mut state, "jokes", "joke-worker", "joke-worker");
    let bound = plan(&seed_desired(), &state, &settings());
    assert!(
        bound
            .actions
            .iter()
            .any(|a| matches!(a, Action::AnnotateServiceAccount { .. }))
    );
    assert!(bound.drift.is_empty(), "{:?}", bound.drift);
}

fn pod_identity_settings() -> Settings {
    Settings {
        mode: BindingMode::PodIdentity,
        ..settings()
    }
}

/// The actions of one role, in words, in plan order.
fn steps_of(plan: &Plan, role: &str) -> Vec<String> {
    plan.actions
        .iter()
        .filter(|a| a.role().is_some_and(|r| r.as_str() == role))
        .map(ToString::to_string)
        .collect()
}

fn creates(plan: &Plan) -> Vec<String> {
    plan.actions
        .iter()
        .filter(|a| {
            matches!(
                a,
                Action::CreateRole { .. }
                    | Action::CreatePodIdentityAssociation { .. }
                    | Action::SetAddonAssociations { .. }
            )
        })
        .map(ToString::to_string)
        .collect()
}

#[test]
fn no_role_is_created_past_the_accounts_roles_quota() {
    let mut observed = seed_cluster();
    observed.usage.roles_in_account = Some(999);
    let planned = plan(&seed_desired(), &observed, &settings());
    let created: Vec<&str> = planned
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::CreateRole { role, .. } => Some(role.as_str()),
            _ => None,
        })
        .collect();
    // Roles are taken in the planner's order (by ServiceAccount): the same one every run.
    assert_eq!(created, ["demo.ack-system.ack-dynamodb-controller"]);
    for name in ["joke-worker", "ebs-csi-controller"] {
        let report = workload(&planned, name);
        assert_eq!(report.state, WorkloadState::Error, "{name}");
        assert_eq!(report.actions, 0, "{name}");
        assert!(
            report.message().contains("quota of 1000 IAM roles"),
            "{name}: {}",
            report.message()
        );
    }
    assert!(!planned.actions.iter().any(|a| {
        a.role()
            .is_some_and(|r| r.as_str() != "demo.ack-system.ack-dynamodb-controller")
    }));
    // The next run, with the role made and the account full, changes nothing more.
    let mut state = simulate(&observed, &planned.actions);
    state.usage.roles_in_account = Some(1000);
    let again = plan(&seed_desired(), &state, &settings());
    assert_eq!(creates(&again), Vec::<String>::new());
    assert_eq!(
        workload(&again, "ack-dynamodb-controller-dynamodb-chart").state,
        WorkloadState::Ready
    );
    // Room made (a quota raised) lets the rest be created.
    state.usage.roles_in_account = Some(998);
    let (_, settled) = converge(&seed_desired(), &state, &settings());
    assert_eq!(settled.roles.len(), 3);
}

#[test]
fn a_cluster_at_its_association_quota_gets_no_new_association_nor_role() {
    let pod_identity = pod_identity_settings();
    let mut observed = seed_cluster();
    observed.usage.associations_in_cluster = Some(5000);
    let planned = plan(&seed_desired(), &observed, &pod_identity);
    assert_eq!(creates(&planned), Vec::<String>::new());
    for report in &planned.workloads {
        assert_eq!(report.state, WorkloadState::Error);
        assert!(
            report
                .message()
                .contains("has the 5000 Pod Identity associations EKS allows"),
            "{}",
            report.message()
        );
    }
    // One place left: the first ServiceAccount gets it, the add-on's role counts as one.
    observed.usage.associations_in_cluster = Some(4999);
    let planned = plan(&seed_desired(), &observed, &pod_identity);
    assert_eq!(
        creates(&planned)
            .iter()
            .filter(|a| !a.starts_with("create role"))
            .count(),
        1,
        "{:?}",
        creates(&planned)
    );
}

#[test]
fn a_role_that_exists_keeps_its_changes_when_its_association_finds_no_room() {
    let pod_identity = pod_identity_settings();
    let (_, mut state) = converge(&seed_desired(), &seed_cluster(), &pod_identity);
    state
        .pod_identity_associations
        .retain(|a| a.service_account.as_str() != "joke-worker");
    state.usage.associations_in_cluster = Some(5000);
    let mut desired = seed_desired();
    declare(
        &mut desired,
        "intents/demo/jokes/joke-worker-ci.yaml",
        "jokes",
        "joke-worker",
        "*",
        &["dynamodb:*", "s3:GetObject"],
    );
    let planned = plan(&desired, &state, &pod_identity);
    let worker = steps_of(&planned, "demo.jokes.joke-worker");
    assert!(
        worker.iter().any(|a| a.contains("policy")),
        "the permissions still change: {worker:?}"
    );
    assert!(
        !worker.iter().any(|a| a.contains("association")),
        "{worker:?}"
    );
    let report = workload(&planned, "joke-worker");
    assert_eq!(report.state, WorkloadState::Error);
    assert!(
        report
            .message()
            .contains("Pod Identity associations EKS allows")
    );
}

fn with_session_policies() -> Settings {
    Settings {
        session_policies: true,
        ..pod_identity_settings()
    }
}

fn association_of<'p>(state: &'p ObservedState, service_account: &str) -> &'p ObservedAssociation {
    state
        .pod_identity_associations
        .iter()
        .find(|a| a.service_account.as_str() == service_account)
        .unwrap_or_else(|| panic!("no association of {service_account}"))
}

#[test]
fn session_policies_carry_the_declared_policy_with_session_tags_off() {
    let (first, state) = converge(&seed_desired(), &seed_cluster(), &with_session_policies());
    assert!(!first.is_empty());
    let worker = association_of(&state, "joke-worker");
    assert!(worker.session_tags_disabled);
    let role = state
        .roles
        .iter()
        .find(|r| r.name.as_str() == "demo.jokes.joke-worker")
        .unwrap();
    let inline = role.inline_policies.values().next().expect("inline policy");
    assert_eq!(worker.session_policy.as_ref(), Some(inline));
    // The trust names the account alone: no session tag to match.
    assert_eq!(
        role.trust_policy.value(),
        serde_json::json!({"Version": "2012-10-17", "Statement": [{
            "Action": ["sts:AssumeRole", "sts:TagSession"],
            "Condition": {"StringEquals": {"aws:SourceAccount": "123456789012"}},
            "Effect": "Allow",
            "Principal": {"Service": "pods.eks.amazonaws.com"},
        }]})
    );
    // The add-on's association has no session policy: its role keeps the tagged trust.
    let ebs = state
        .roles
        .iter()
        .find(|r| r.name.as_str() == "demo.kube-system.ebs-csi-controller-sa")
        .unwrap();
    assert!(
        ebs.trust_policy
            .to_json()
            .contains("aws:RequestTag/kubernetes-service-account")
    );
    assert!(plan(&seed_desired(), &state, &with_session_policies()).is_empty());
}

#[test]
fn a_session_policy_changed_by_hand_is_put_back_and_turning_them_off_remakes_the_association() {
    let (_, mut state) = converge(&seed_desired(), &seed_cluster(), &with_session_policies());
    let worker = state
        .pod_identity_associations
        .iter_mut()
        .find(|a| a.service_account.as_str() == "joke-worker")
        .unwrap();
    worker.session_policy = Some(PolicyDocument::from_statements(vec![serde_json::json!(
        {"Effect": "Allow", "Action": "*", "Resource": "*"}
    )]));
    let repair = plan(&seed_desired(), &state, &with_session_policies());
    assert_eq!(names(&repair).len(), 1, "{:?}", names(&repair));
    assert!(matches!(
        &repair.actions[0],
        Action::UpdatePodIdentityAssociation {
            session_policy: Some(_),
            ..
        }
    ));
    let (_, state) = converge(&seed_desired(), &state, &with_session_policies());
    let off = pod_identity_settings();
    let (switch, state) = converge(&seed_desired(), &state, &off);
    let kinds = steps_of(&switch, "demo.jokes.joke-worker");
    assert!(
        kinds.iter().any(|a| a.starts_with("update trust policy"))
            && kinds.iter().any(|a| a.starts_with("delete"))
            && kinds.iter().any(|a| a.starts_with("create")),
        "{kinds:?}"
    );
    let worker = association_of(&state, "joke-worker");
    assert_eq!(worker.session_policy, None);
    assert!(!worker.session_tags_disabled);
    assert!(plan(&seed_desired(), &state, &off).is_empty());
}

#[test]
fn a_declared_policy_too_large_for_a_session_policy_is_reported_not_cut() {
    let mut desired = seed_desired();
    declare_many(&mut desired, "intents/demo/jokes/joke-worker-ci.yaml", 120);
    let planned = plan(&desired, &seed_cluster(), &with_session_policies());
    let report = workload(&planned, "joke-worker");
    assert_eq!(report.state, WorkloadState::Error);
    assert!(
        report.message().contains("more than the 2048 STS takes"),
        "{}",
        report.message()
    );
    let worker = steps_of(&planned, "demo.jokes.joke-worker");
    // The role is kept as declared; no association is made.
    assert!(
        worker.iter().any(|a| a.starts_with("create role")),
        "{worker:?}"
    );
    assert!(
        !worker.iter().any(|a| a.contains("association")),
        "{worker:?}"
    );
}

const EBS_POLICY: &str = "arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy";

/// The seed's desired state without the EBS driver's intents, and a cluster whose EBS add-on
/// has EKS's recommendation for its controller.
fn addon_without_intents() -> (DesiredState, ObservedState) {
    let mut desired = seed_desired();
    desired
        .workloads
        .retain(|w, _| w.namespace.as_str() != "kube-system");
    let mut observed = seed_cluster();
    observed.addons[0].recommended_policies.insert(
        "ebs-csi-controller-sa".into(),
        vec![PolicyArn::new(EBS_POLICY)],
    );
    (desired, observed)
}

fn recommending(mode: BindingMode) -> Settings {
    Settings {
        mode,
        addon_recommended_policies: true,
        ..settings()
    }
}

#[test]
fn an_addon_without_intents_gets_the_policies_eks_recommends_bound_through_the_addon() {
    let (desired, observed) = addon_without_intents();
    for mode in [BindingMode::Irsa, BindingMode::PodIdentity] {
        let (first, state) = converge(&desired, &observed, &recommending(mode));
        let ebs = steps_of(&first, "demo.kube-system.ebs-csi-controller-sa");
        assert!(
            ebs.iter().any(|a| a.starts_with("create role")),
            "{mode:?}: {ebs:?}"
        );
        assert!(
            ebs.iter().any(|a| a.contains(EBS_POLICY)),
            "{mode:?}: {ebs:?}"
        );
        let role = state
            .roles
            .iter()
            .find(|r| r.name.as_str() == "demo.kube-system.ebs-csi-controller-sa")
            .expect("the add-on's role");
        assert_eq!(
            role.attached_policies,
            BTreeSet::from([PolicyArn::new(EBS_POLICY)]),
            "{mode:?}"
        );
        assert!(role.inline_policies.is_empty(), "{mode:?}");
        let addon = &state.addons[0];
        match mode {
            BindingMode::Irsa => {
                assert_eq!(addon.service_account_role_arn.as_ref(), Some(&role.arn))
            }
            BindingMode::PodIdentity => assert_eq!(
                addon
                    .pod_identity_associations
                    .get(&"ebs-csi-controller-sa".into()),
                Some(&role.arn)
            ),
        }
        // The add-on stands for the role in the report.
        let report = workload(&first, "aws-ebs-csi-driver");
        assert_eq!(report.identity.namespace.as_str(), "kube-system");
        assert_eq!(report.state, WorkloadState::Changing);
        let again = plan(&desired, &state, &recommending(mode));
        assert!(again.is_empty(), "{mode:?}: {:?}", names(&again));
        assert_eq!(
            workload(&again, "aws-ebs-csi-driver").state,
            WorkloadState::Ready
        );
        // The setting off: the role is no one's any more and waits out its grace period.
        let off = plan(&desired, &state, &Settings { mode, ..settings() });
        assert!(
            off.orphans
                .iter()
                .any(|o| o.role.as_str() == "demo.kube-system.ebs-csi-controller-sa"),
            "{mode:?}: {:?}",
            off.orphans
        );
    }
}

#[test]
fn intents_of_an_addon_service_account_replace_what_eks_recommends() {
    let (_, observed) = addon_without_intents();
    let planned = plan(&seed_desired(), &observed, &recommending(BindingMode::Irsa));
    assert!(!names(&planned).iter().any(|a| a.contains(EBS_POLICY)));
    // Without the setting, an add-on without intents gets nothing.
    let (desired, observed) = addon_without_intents();
    let planned = plan(&desired, &observed, &settings());
    assert!(
        !planned
            .actions
            .iter()
            .any(|a| a.role().is_some_and(|r| r.as_str().contains("ebs-csi")))
    );
}
