//! Which ServiceAccounts the EKS add-ons run as. EKS does not say, so the common add-ons that
//! need AWS access are listed here; settings add others. A role for one of these ServiceAccounts
//! is set on the add-on, never annotated on the ServiceAccount (the add-on would undo it).

use super::ids::ServiceAccountRef;

/// (add-on, namespace, ServiceAccount)
pub const KNOWN_ADDON_SERVICE_ACCOUNTS: &[(&str, &str, &str)] = &[
    ("aws-ebs-csi-driver", "kube-system", "ebs-csi-controller-sa"),
    ("aws-ebs-csi-driver", "kube-system", "ebs-csi-node-sa"),
    ("aws-efs-csi-driver", "kube-system", "efs-csi-controller-sa"),
    ("aws-efs-csi-driver", "kube-system", "efs-csi-node-sa"),
    (
        "aws-mountpoint-s3-csi-driver",
        "kube-system",
        "s3-csi-driver-sa",
    ),
    ("vpc-cni", "kube-system", "aws-node"),
    (
        "amazon-cloudwatch-observability",
        "amazon-cloudwatch",
        "cloudwatch-agent",
    ),
];

/// The ServiceAccounts an add-on runs as, from the list above.
pub fn known_addon_service_accounts(addon: &str) -> Vec<ServiceAccountRef> {
    KNOWN_ADDON_SERVICE_ACCOUNTS
        .iter()
        .filter(|(name, _, _)| *name == addon)
        .map(|(_, namespace, name)| ServiceAccountRef {
            namespace: (*namespace).into(),
            name: (*name).into(),
        })
        .collect()
}
