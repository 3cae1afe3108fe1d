//! Cross-account target roles (`target`): what a workload whose intents name resources of
//! another account gets, in each mode, what is refused, and how target roles go away.

use super::*;
use crate::model::{BindingMode, ObservedTarget};
use crate::policy::{self, INLINE_POLICY_NAME, TARGET_ACCOUNT_TAG};
use crate::testing::*;
use serde_json::{Value, json};

const DATA: &str = "333333333333";
const ROLE: &str = "demo.shop.reports";

fn settings(mode: BindingMode) -> Settings {
    Settings {
        mode,
        permissions_boundary: Some("arn:aws:iam::123456789012:policy/eks-intents-boundary".into()),
        target_accounts: BTreeSet::from([DATA.to_owned()]),
        bucket_accounts: BTreeMap::from([("reports-archive".to_owned(), DATA.to_owned())]),
        ..Settings::default()
    }
}

/// `shop/reports` reads the bucket `reports-archive` of the data account, and `extra`.
fn desired(extra: &[(&str, &str)]) -> DesiredState {
    let mut desired = DesiredState::default();
    declare(
        &mut desired,
        "intents/demo/shop/reports.yaml",
        "shop",
        "reports",
        "arn:aws:s3:::reports-archive/*",
        &["s3:GetObject"],
    );
    for (resource, action) in extra {
        declare(
            &mut desired,
            "intents/demo/shop/reports.yaml",
            "shop",
            "reports",
            resource,
            &[action],
        );
    }
    desired
}

fn cluster() -> ObservedState {
    let mut observed = empty();
    observed.now = 1_000_000;
    run_workload(&mut observed, "shop", "reports", "reports");
    observed
}

fn home_arn() -> String {
    format!("arn:aws:iam::{ACCOUNT}:role/eks-intents/demo/{ROLE}")
}

fn target_arn() -> String {
    format!("arn:aws:iam::{DATA}:role/eks-intents/demo/{ROLE}")
}

/// The steps made in the data account, unwrapped.
fn in_data(plan: &Plan) -> Vec<&Action> {
    plan.actions
        .iter()
        .filter_map(|a| match a {
            Action::InAccount { step, target } if target == DATA => Some(&**step),
            _ => None,
        })
        .collect()
}

/// Plans and applies (in the model) until nothing is left to do; the last state.
fn settle(desired: &DesiredState, observed: &ObservedState, settings: &Settings) -> ObservedState {
    let mut state = observed.clone();
    for _ in 0..4 {
        let (planned, next) = converge(desired, &state, settings);
        if planned.actions.is_empty() {
            return state;
        }
        state = next;
    }
    panic!(
        "no fixed point: {:?}",
        plan(desired, &state, settings).actions
    );
}

fn report(plan: &Plan) -> &WorkloadPlan {
    plan.workloads
        .iter()
        .find(|w| w.identity.workload.as_str() == "reports")
        .expect("the workload's report")
}

#[test]
fn pod_identity_chains_into_a_target_role_that_trusts_only_the_workloads_role() {
    let settings = settings(BindingMode::PodIdentity);
    let planned = plan(&desired(&[]), &cluster(), &settings);
    let there = in_data(&planned);
    let Some(Action::CreateRole {
        arn,
        trust_policy,
        permissions_boundary,
        tags,
        ..
    }) = there.first()
    else {
        panic!("the target role is created first in the data account: {there:?}");
    };
    assert_eq!(arn.as_str(), target_arn());
    assert_eq!(
        trust_policy.value(),
        json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow",
            "Principal": {"AWS": home_arn()},
            "Action": ["sts:AssumeRole", "sts:TagSession"],
            "Condition": {"StringEquals": {"sts:ExternalId": format!("{REGION}/{ACCOUNT}/demo/shop/reports")}}
        }]})
    );
    assert_eq!(
        permissions_boundary.as_ref().map(|b| b.as_str()),
        Some("arn:aws:iam::333333333333:policy/eks-intents-boundary")
    );
    assert_eq!(
        tags.get(policy::OWNER_TAG).map(String::as_str),
        Some("eks-intents")
    );
    // The target role holds the grant on the data account's bucket, and nothing else.
    let Some(Action::PutInlinePolicy { document, .. }) = there.get(1) else {
        panic!("{there:?}");
    };
    assert_eq!(
        document.value()["Statement"],
        json!([{"Action": ["s3:GetObject"], "Effect": "Allow", "Resource": ["arn:aws:s3:::reports-archive/*"]}])
    );
    // The workload's role may only chain into it; its association names it.
    let home_policy = planned.actions.iter().find_map(|a| match a {
        Action::PutInlinePolicy { document, .. } => Some(document.value()),
        _ => None,
    });
    assert_eq!(
        home_policy.map(|v| v["Statement"].clone()),
        Some(
            json!([{"Action": ["sts:AssumeRole", "sts:TagSession"], "Effect": "Allow", "Resource": [target_arn()]}])
        )
    );
    let association = planned.actions.iter().find_map(|a| match a {
        Action::CreatePodIdentityAssociation {
            role_arn,
            target_role_arn,
            ..
        } => Some((
            role_arn.as_str(),
            target_role_arn.as_ref().map(|t| t.as_str()),
        )),
        _ => None,
    });
    assert_eq!(
        association,
        Some((home_arn().as_str(), Some(target_arn().as_str())))
    );
    // The workload's role is made before the target role that names it, and the association last.
    let order: Vec<String> = planned.actions.iter().map(ToString::to_string).collect();
    let position = |text: &str| order.iter().position(|a| a.contains(text)).unwrap();
    assert!(
        position(&format!("create role {}", home_arn()))
            < position(&format!("create role {}", target_arn()))
    );
    assert!(position("in account") < position("create Pod Identity association"));
    assert_eq!(report(&planned).state, WorkloadState::Changing);
    // The plan names the target role beside the workload's own.
    let entry = serde_json::to_value(report(&planned)).unwrap();
    assert_eq!(entry["role_arn"], Value::String(home_arn()));
    assert_eq!(entry["target_role_arn"], Value::String(target_arn()));
}

#[test]
fn a_target_role_once_made_is_left_as_it_is() {
    let settings = settings(BindingMode::PodIdentity);
    let settled = settle(&desired(&[]), &cluster(), &settings);
    assert_eq!(settled.targets[DATA].roles.len(), 1);
    assert_eq!(
        settled.roles[0]
            .tags
            .get(TARGET_ACCOUNT_TAG)
            .map(String::as_str),
        Some(DATA)
    );
    assert!(plan(&desired(&[]), &settled, &settings).actions.is_empty());
}

#[test]
fn irsa_target_roles_trust_the_clusters_provider_registered_in_the_target_account() {
    let settings = settings(BindingMode::Irsa);
    let table = "arn:aws:dynamodb:eu-west-2:123456789012:table/orders";
    let desired = desired(&[(table, "dynamodb:GetItem")]);
    let planned = plan(&desired, &cluster(), &settings);
    let there = in_data(&planned);
    let issuer = cluster().cluster.oidc_host_path().unwrap().to_owned();
    assert!(
        matches!(there.first(), Some(Action::CreateOidcProvider { url, .. }) if url == &format!("https://{issuer}")),
        "{there:?}"
    );
    let trust = there
        .iter()
        .find_map(|a| match a {
            Action::CreateRole { trust_policy, .. } => Some(trust_policy.value()),
            _ => None,
        })
        .expect("the target role");
    assert_eq!(
        trust["Statement"][0]["Principal"]["Federated"],
        Value::String(format!("arn:aws:iam::{DATA}:oidc-provider/{issuer}"))
    );
    assert_eq!(
        trust["Statement"][0]["Condition"]["StringEquals"][format!("{issuer}:sub")],
        "system:serviceaccount:shop:reports"
    );
    // The workload's own role keeps the grant of its own account, and no chaining grant.
    let home: Vec<Value> = planned
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::PutInlinePolicy { document, .. } => Some(document.value()["Statement"].clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        home,
        [json!([{"Action": ["dynamodb:GetItem"], "Effect": "Allow", "Resource": [table]}])]
    );
    let settled = settle(&desired, &cluster(), &settings);
    assert_eq!(settled.targets[DATA].oidc_providers.len(), 1);
    assert!(plan(&desired, &settled, &settings).actions.is_empty());
}

#[test]
fn what_cannot_work_is_refused_with_what_is_missing_and_nothing_is_made() {
    let pod_identity = settings(BindingMode::PodIdentity);
    let table = "arn:aws:dynamodb:eu-west-2:123456789012:table/orders";
    let cases = [
        (
            desired(&[(table, "dynamodb:GetItem")]),
            pod_identity.clone(),
            "the pods get the target role's credentials alone",
        ),
        (
            desired(&[("arn:aws:sqs:eu-west-2:444444444444:jobs", "sqs:SendMessage")]),
            pod_identity.clone(),
            "2 other accounts (333333333333, 444444444444)",
        ),
        (
            desired(&[]),
            Settings {
                target_accounts: BTreeSet::new(),
                ..pod_identity.clone()
            },
            "account 333333333333, where eks-intents has no role",
        ),
    ];
    for (desired, settings, words) in cases {
        let planned = plan(&desired, &cluster(), &settings);
        let report = report(&planned);
        assert_eq!(report.state, WorkloadState::Error, "{words}");
        assert!(report.message().contains(words), "{}", report.message());
        assert!(planned.actions.is_empty(), "{words}: {:?}", planned.actions);
    }
    // An account that cannot be read leaves the workload as it is.
    let mut observed = cluster();
    observed.targets.insert(
        DATA.to_owned(),
        ObservedTarget {
            error: Some("AccessDenied".into()),
            ..ObservedTarget::default()
        },
    );
    let planned = plan(&desired(&[]), &observed, &pod_identity);
    assert!(
        report(&planned)
            .message()
            .contains("cannot be read (AccessDenied)")
    );
    assert!(planned.actions.is_empty());
}

/// `shop/reports` reading a bucket of the cluster's own account instead.
fn local() -> DesiredState {
    let mut local = DesiredState::default();
    declare(
        &mut local,
        "intents/demo/shop/reports.yaml",
        "shop",
        "reports",
        "arn:aws:s3:::reports-local/*",
        &["s3:GetObject"],
    );
    local
}

#[test]
fn a_target_no_longer_declared_is_unbound_then_deleted_and_the_role_forgets_it() {
    let settings = settings(BindingMode::PodIdentity);
    let settled = settle(&desired(&[]), &cluster(), &settings);
    let (planned, after) = converge(&local(), &settled, &settings);
    let names: Vec<String> = planned.actions.iter().map(ToString::to_string).collect();
    let recreated = names
        .iter()
        .position(|a| a.starts_with("create Pod Identity association"))
        .expect("the association made again without its target");
    let deleted = names
        .iter()
        .position(|a| a == &format!("in account {DATA}: delete role {ROLE}"))
        .expect("the target role deleted");
    let forgotten = names
        .iter()
        .position(|a| a == &format!("untag role {ROLE}: {TARGET_ACCOUNT_TAG}"))
        .expect("the account forgotten");
    assert!(recreated < deleted && deleted < forgotten, "{names:?}");
    assert!(
        names
            .iter()
            .any(|a| a.starts_with("delete Pod Identity association"))
    );
    // One run does it all: planning again plans nothing.
    assert!(plan(&local(), &after, &settings).actions.is_empty());
    assert!(after.targets[DATA].roles.is_empty());
    assert_eq!(after.roles[0].tags.get(TARGET_ACCOUNT_TAG), None);
    assert_eq!(after.pod_identity_associations[0].target_role_arn, None);
}

#[test]
fn an_account_that_cannot_be_read_keeps_its_target_roles_named_until_it_can() {
    let settings = settings(BindingMode::PodIdentity);
    let settled = settle(&desired(&[]), &cluster(), &settings);
    let mut unreadable = settled.clone();
    unreadable.targets.insert(
        DATA.to_owned(),
        ObservedTarget {
            error: Some("AccessDenied".into()),
            ..ObservedTarget::default()
        },
    );
    // The target goes from the intents while its account cannot be read: the association
    // stops naming it, and the role keeps naming the account.
    let (planned, after) = converge(&local(), &unreadable, &settings);
    assert!(in_data(&planned).is_empty(), "{:?}", planned.actions);
    assert_eq!(
        after.roles[0]
            .tags
            .get(TARGET_ACCOUNT_TAG)
            .map(String::as_str),
        Some(DATA)
    );
    // The workload's role deleted in the meantime waits for the account too.
    let orphaned = Settings {
        deletion_grace_seconds: 0,
        ..settings.clone()
    };
    let mut gone = after.clone();
    gone.workloads = Some(Vec::new());
    let marked = simulate(
        &gone,
        &plan(&DesiredState::default(), &gone, &orphaned).actions,
    );
    let held = plan(&DesiredState::default(), &marked, &orphaned);
    assert!(held.actions.is_empty(), "{:?}", held.actions);
    assert_eq!(held.orphans[0].state, OrphanState::TargetsUnread);
    // Readable again: the target role is found and deleted, and the account forgotten.
    let mut readable = after;
    readable.targets = settled.targets.clone();
    let (planned, done) = converge(&local(), &readable, &settings);
    assert!(
        planned
            .actions
            .iter()
            .any(|a| a.to_string() == format!("in account {DATA}: delete role {ROLE}"))
    );
    assert_eq!(done.roles[0].tags.get(TARGET_ACCOUNT_TAG), None);
    assert!(plan(&local(), &done, &settings).actions.is_empty());
}

#[test]
fn the_systems_own_roles_in_the_target_account_are_protected_as_at_home() {
    let settings = settings(BindingMode::Irsa);
    let others = format!("arn:aws:iam::{DATA}:role/eks-intents/demo/demo.shop.other");
    let planned = plan(
        &desired(&[(others.as_str(), "iam:GetRole")]),
        &cluster(),
        &settings,
    );
    let report = report(&planned);
    assert_eq!(report.state, WorkloadState::Error);
    assert!(report.message().contains(&others), "{}", report.message());
    assert!(planned.actions.is_empty());
    // A wildcard reaching them is granted with them denied.
    let wide = format!("arn:aws:iam::{DATA}:role/*");
    let planned = plan(
        &desired(&[(wide.as_str(), "iam:GetRole")]),
        &cluster(),
        &settings,
    );
    let policy = in_data(&planned)
        .into_iter()
        .find_map(|a| match a {
            Action::PutInlinePolicy { document, .. } => Some(document.value()),
            _ => None,
        })
        .expect("the target role's policy");
    let deny = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Effect"] == "Deny")
        .expect("a deny of the system's roles there");
    assert!(
        deny.to_string()
            .contains(&format!("arn:aws:iam::{DATA}:role/eks-intents/")),
        "{deny}"
    );
}

#[test]
fn a_session_policy_holds_the_chaining_grant_and_the_target_roles_grants() {
    let settings = Settings {
        session_policies: true,
        ..settings(BindingMode::PodIdentity)
    };
    let planned = plan(&desired(&[]), &cluster(), &settings);
    let session = planned
        .actions
        .iter()
        .find_map(|a| match a {
            Action::CreatePodIdentityAssociation { session_policy, .. } => session_policy.clone(),
            _ => None,
        })
        .expect("a session policy");
    let text = session.to_json();
    assert!(
        text.contains("sts:AssumeRole") && text.contains("s3:GetObject"),
        "{text}"
    );
    assert!(
        plan(
            &desired(&[]),
            &settle(&desired(&[]), &cluster(), &settings),
            &settings
        )
        .actions
        .is_empty()
    );
}

#[test]
fn an_orphaned_role_takes_its_target_role_with_it() {
    let settings = Settings {
        deletion_grace_seconds: 0,
        ..settings(BindingMode::PodIdentity)
    };
    let mut settled = settle(&desired(&[]), &cluster(), &settings);
    settled.workloads = Some(Vec::new());
    let marked = simulate(
        &settled,
        &plan(&DesiredState::default(), &settled, &settings).actions,
    );
    let planned = plan(&DesiredState::default(), &marked, &settings);
    let names: Vec<String> = planned.actions.iter().map(ToString::to_string).collect();
    let target = names
        .iter()
        .position(|a| a == &format!("in account {DATA}: delete role {ROLE}"))
        .unwrap_or_else(|| panic!("{names:?}"));
    let home = names
        .iter()
        .position(|a| a == &format!("delete role {ROLE}"))
        .unwrap_or_else(|| panic!("{names:?}"));
    assert!(target < home);
    assert!(names.contains(&format!(
        "in account {DATA}: delete inline policy {INLINE_POLICY_NAME} of {ROLE}"
    )));
}

#[test]
fn hand_changes_to_a_target_role_are_put_back_and_named() {
    let settings = settings(BindingMode::PodIdentity);
    let settled = settle(&desired(&[]), &cluster(), &settings);
    let drift = |observed: &ObservedState| {
        let planned = plan(&desired(&[]), observed, &settings);
        let kinds: Vec<DriftKind> = planned.drift.iter().map(|d| d.kind).collect();
        (in_data(&planned).len(), kinds)
    };
    // Its policy widened by hand.
    let mut widened = settled.clone();
    let role = &mut widened.targets.get_mut(DATA).unwrap().roles[0];
    role.inline_policies.insert(
        INLINE_POLICY_NAME.to_owned(),
        policy::PolicyDocument::from_statements(vec![
            json!({"Effect": "Allow", "Action": "s3:*", "Resource": "*"}),
        ]),
    );
    assert_eq!(drift(&widened), (1, vec![DriftKind::InlinePolicy]));
    // Deleted by hand.
    let mut deleted = settled.clone();
    deleted.targets.get_mut(DATA).unwrap().roles.clear();
    let (steps, kinds) = drift(&deleted);
    assert_eq!(steps, 2);
    // Made again with its policy.
    assert_eq!(kinds, [DriftKind::InlinePolicy, DriftKind::RoleMissing]);
}
