//! IAM documents and names: the permission and trust policies the system writes, their
//! semantic comparison with what IAM returns, their sizes against the quotas, and the names,
//! paths and tags of what the system owns.

mod arn;
mod catalogue;
mod danger;
mod document;
mod names;
mod normalize;
mod plain;
mod protect;
mod split;
mod target;
mod trust;

pub use arn::{
    ArnError, OtherPartition, PLACEHOLDERS, UnknownTemplate, arn_service, check_arn,
    check_partition, is_partition, is_region,
};
pub use catalogue::{ActionCheck, check_action, expand, resource_kinds};
pub(crate) use catalogue::{closest, edit_distance};
pub use danger::{
    DangerException, ESCALATIONS, Escalation, NOT_DANGEROUS_ALONE, SECRET_READS, action_matches,
    broad, broad_warning, danger, reach,
};
pub use document::{Effect, Indented, PolicyDocument, Statement, permission_statements};
pub use names::*;
pub use normalize::{canonical_json, display_form, normalize};
pub use protect::{names_system_resource, overlap, system_denial, system_resources, within};
pub use split::{PermissionLayout, SizeError, layout_permissions};
pub use target::{
    TARGET_ACCOUNT_TAG, assume_target_statement, in_account, pod_identity_target_trust,
    resource_account, target_external_id,
};
pub use trust::{
    IRSA_AUDIENCE, irsa_trust, irsa_trust_for, oidc_provider_arn, pod_identity_trust,
    pod_identity_trust_untagged,
};
