//! Resource ARNs as intents write them: `arn:<partition>:<service>:<region>:<account>:<resource>`,
//! with IAM wildcards and the `$(AWS_REGION)` / `$(AWS_ACCOUNT_ID)` placeholders allowed.

use super::catalogue::closest;
use crate::intent::echo;

const PARTITIONS: &[&str] = &[
    "aws",
    "aws-cn",
    "aws-us-gov",
    "aws-iso",
    "aws-iso-b",
    "aws-iso-e",
    "aws-iso-f",
    "aws-eusc",
];

/// The templates Otterize lets an ARN carry; `intent::resolve_placeholders` fills them in with
/// the cluster's region and account. Anything else in `$(...)` would reach IAM as literal text.
pub const PLACEHOLDERS: [&str; 2] = ["$(AWS_REGION)", "$(AWS_ACCOUNT_ID)"];

/// Area codes that start AWS region names. A new area would need adding here; new regions in
/// known areas need nothing (see [`is_region`]).
const REGION_AREAS: &[&str] = &[
    "af", "ap", "ca", "cn", "eu", "eusc", "il", "me", "mx", "sa", "us",
];
/// What may stand between area and direction: `us-gov-west-1`, `us-isob-east-1`,
/// `eu-isoe-west-1`; `eusc-de-east-1` holds a two-letter country instead.
const REGION_QUALIFIERS: &[&str] = &["gov", "iso", "isob", "isoe", "isof"];
const REGION_DIRECTIONS: &[&str] = &[
    "central",
    "north",
    "south",
    "east",
    "west",
    "northeast",
    "northwest",
    "southeast",
    "southwest",
];

/// One of the AWS partitions an ARN may name.
pub fn is_partition(partition: &str) -> bool {
    PARTITIONS.contains(&partition)
}

fn wild(part: &str) -> bool {
    part.contains('*') || part.contains('?')
}

/// Whether `region` has the shape of an AWS region name: an area code, at most one qualifier,
/// a direction and a number (`eu-west-2`, `us-gov-west-1`, `ap-southeast-7`).
///
/// The shape, deliberately not a list of today's regions: AWS opens regions every year, and a
/// region launched after this build must not be refused (nor need a release to be accepted),
/// while what is no region at all (`mars-1`, `euwest2`, `eu-wets-2`) is almost always a typo
/// that would make the grant match nothing.
pub fn is_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    let [area, middle @ .., direction, number] = parts.as_slice() else {
        return false;
    };
    let qualifier_ok = |q: &&str| {
        REGION_QUALIFIERS.contains(q)
            || (*area == "eusc" && q.len() == 2 && q.chars().all(|c| c.is_ascii_lowercase()))
    };
    REGION_AREAS.contains(area)
        && middle.len() <= 1
        && middle.iter().all(qualifier_ok)
        && REGION_DIRECTIONS.contains(direction)
        && (1..=2).contains(&number.len())
        && number.chars().all(|c| c.is_ascii_digit())
        && !number.starts_with('0')
}

/// Why an ARN written in an intent is refused, naming the field that is wrong. The ARN is
/// kept whole; messages repeat it through [`echo`], cut when it is long.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ArnError {
    #[error(
        "{:?}: unknown template {}; the known ones are {}",
        echo(.arn),
        list(.templates),
        PLACEHOLDERS.join(" and ")
    )]
    UnknownTemplates {
        arn: String,
        templates: Vec<UnknownTemplate>,
    },
    #[error(
        "{:?} is not an ARN: expected arn:<partition>:<service>:<region>:<account>:<resource>",
        echo(.arn)
    )]
    NotAnArn { arn: String },
    #[error("{:?} does not start with \"arn:\"", echo(.arn))]
    NoArnPrefix { arn: String },
    #[error(
        "{:?}: partition {:?} is not one of {}",
        echo(.arn),
        echo(.partition),
        PARTITIONS.join(", ")
    )]
    Partition { arn: String, partition: String },
    #[error("{:?}: service {:?} is not a service prefix", echo(.arn), echo(.service))]
    Service { arn: String, service: String },
    #[error(
        "{:?}: region {:?} is not an AWS region (an area, a direction and a number, like \
         eu-west-2 or us-gov-west-1), $(AWS_REGION), empty, or *",
        echo(.arn),
        echo(.region)
    )]
    Region { arn: String, region: String },
    #[error(
        "{:?}: account {:?} is not a 12-digit account id, $(AWS_ACCOUNT_ID), empty, or *",
        echo(.arn),
        echo(.account)
    )]
    Account { arn: String, account: String },
    #[error("{:?}: the resource part is empty", echo(.arn))]
    EmptyResource { arn: String },
}

/// A `$(...)` of an ARN that is none of [`PLACEHOLDERS`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UnknownTemplate {
    /// `$(` and the rest of the ARN, with no `)`.
    #[error("{} (not closed with \")\")", echo(.0))]
    NotClosed(String),
    #[error("{} (did you mean {suggestion}?)", echo(.template))]
    Misspelt {
        template: String,
        suggestion: String,
    },
    #[error("{}", echo(.0))]
    Unknown(String),
}

fn list(templates: &[UnknownTemplate]) -> String {
    templates
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A resource of another partition than the cluster's, which IAM takes but which never
/// matches.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{:?} is an ARN of partition {:?}, but the cluster is in partition {:?}: the grant could \
     never match; write arn:{cluster_partition}:...",
    echo(.resource),
    echo(.partition),
    .cluster_partition
)]
pub struct OtherPartition {
    pub resource: String,
    pub partition: String,
    pub cluster_partition: String,
}

/// Every `$(...)` of an ARN must be a known placeholder: an unknown one would be granted as
/// literal text and match nothing. Names each unknown one, with the closest known.
fn check_placeholders(arn: &str) -> Result<(), ArnError> {
    let mut unknown = Vec::new();
    let mut rest = arn;
    while let Some(start) = rest.find("$(") {
        let from = &rest[start..];
        let Some(end) = from.find(')') else {
            unknown.push(UnknownTemplate::NotClosed(from.to_owned()));
            break;
        };
        let template = &from[..=end];
        if !PLACEHOLDERS.contains(&template) {
            let lower = template.to_ascii_lowercase();
            let lowered: Vec<String> = PLACEHOLDERS
                .iter()
                .map(|p| p.to_ascii_lowercase())
                .collect();
            let hint = closest(lowered.iter().map(String::as_str).zip(PLACEHOLDERS), &lower);
            unknown.push(match hint.first() {
                Some(suggestion) => UnknownTemplate::Misspelt {
                    template: template.to_owned(),
                    suggestion: (*suggestion).to_owned(),
                },
                None => UnknownTemplate::Unknown(template.to_owned()),
            });
        }
        rest = &from[end + 1..];
    }
    if unknown.is_empty() {
        return Ok(());
    }
    Err(ArnError::UnknownTemplates {
        arn: arn.to_owned(),
        templates: unknown,
    })
}

/// Checks an ARN's fields; returns what is wrong, naming the field.
pub fn check_arn(arn: &str) -> Result<(), ArnError> {
    check_placeholders(arn)?;
    let owned = || arn.to_owned();
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [prefix, partition, service, region, account, resource] = parts.as_slice() else {
        return Err(ArnError::NotAnArn { arn: owned() });
    };
    if *prefix != "arn" {
        return Err(ArnError::NoArnPrefix { arn: owned() });
    }
    if !(PARTITIONS.contains(partition) || wild(partition)) {
        return Err(ArnError::Partition {
            arn: owned(),
            partition: (*partition).to_owned(),
        });
    }
    if service.is_empty()
        || !service.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '*' || c == '?'
        })
    {
        return Err(ArnError::Service {
            arn: owned(),
            service: (*service).to_owned(),
        });
    }
    let region_ok =
        region.is_empty() || wild(region) || *region == "$(AWS_REGION)" || is_region(region);
    if !region_ok {
        return Err(ArnError::Region {
            arn: owned(),
            region: (*region).to_owned(),
        });
    }
    let account_ok = account.is_empty()
        || wild(account)
        || *account == "$(AWS_ACCOUNT_ID)"
        || *account == "aws"
        || (account.len() == 12 && account.chars().all(|c| c.is_ascii_digit()));
    if !account_ok {
        return Err(ArnError::Account {
            arn: owned(),
            account: (*account).to_owned(),
        });
    }
    if resource.is_empty() {
        return Err(ArnError::EmptyResource { arn: owned() });
    }
    Ok(())
}

/// A resource of another partition than the cluster's (`arn:aws-cn:...` for a cluster in
/// `aws`): IAM takes the policy, but the grant can never match. Only the planner knows the
/// cluster, so this is checked there, not when the bundle is read. `*` and wildcard
/// partitions pass.
pub fn check_partition(resource: &str, cluster_partition: &str) -> Result<(), OtherPartition> {
    let Some(partition) = resource
        .strip_prefix("arn:")
        .and_then(|r| r.split(':').next())
    else {
        return Ok(());
    };
    if wild(partition) || partition == cluster_partition {
        return Ok(());
    }
    Err(OtherPartition {
        resource: resource.to_owned(),
        partition: partition.to_owned(),
        cluster_partition: cluster_partition.to_owned(),
    })
}

/// The service an ARN names, when it names one without wildcards.
pub fn arn_service(arn: &str) -> Option<&str> {
    let service = arn.split(':').nth(2)?;
    (!service.is_empty() && !wild(service)).then_some(service)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_arns_pass() {
        for arn in [
            "arn:aws:dynamodb:eu-west-2:123456789012:table/JokesTable",
            "arn:aws:s3:::bucket/*",
            "arn:aws:dynamodb:$(AWS_REGION):$(AWS_ACCOUNT_ID):table/t",
            "arn:aws:sqs:*:*:queue-*",
            "arn:aws-us-gov:ec2:us-gov-west-1:123456789012:volume/*",
            "arn:aws:iam::aws:policy/ReadOnlyAccess",
            "arn:aws:logs:eu-west-2:123456789012:log-group:/aws/x:*",
        ] {
            assert_eq!(check_arn(arn), Ok(()), "{arn}");
        }
    }

    #[test]
    fn broken_arns_name_the_field() {
        let cases = [
            ("arn:aws:s3", "is not an ARN"),
            ("arm:aws:s3:::b", "does not start with"),
            ("arn:amazon:s3:::b", "partition \"amazon\""),
            ("arn:aws:S3:::b", "service \"S3\""),
            (
                "arn:aws:dynamodb:euwest2:123456789012:table/t",
                "region \"euwest2\"",
            ),
            (
                "arn:aws:dynamodb:eu-west-2:1234:table/t",
                "account \"1234\"",
            ),
            (
                "arn:aws:dynamodb:eu-west-2:123456789012:",
                "resource part is empty",
            ),
        ];
        for (arn, expected) in cases {
            let error = check_arn(arn).unwrap_err().to_string();
            assert!(error.contains(expected), "{arn}: {error}");
        }
    }

    #[test]
    fn unknown_templates_are_named_wherever_they_stand() {
        let resource = check_arn("arn:aws:s3:::bucket-$(AWS_FOO)/*")
            .unwrap_err()
            .to_string();
        assert_eq!(
            resource,
            "\"arn:aws:s3:::bucket-$(AWS_FOO)/*\": unknown template $(AWS_FOO); the known ones \
             are $(AWS_REGION) and $(AWS_ACCOUNT_ID)"
        );
        let region = check_arn("arn:aws:dynamodb:$(AWS_REGON):123456789012:table/t")
            .unwrap_err()
            .to_string();
        assert!(
            region.contains("unknown template $(AWS_REGON) (did you mean $(AWS_REGION)?)"),
            "{region}"
        );
        assert!(!region.contains("region \""), "{region}");
        let open = check_arn("arn:aws:s3:::b/$(AWS_REGION")
            .unwrap_err()
            .to_string();
        assert!(open.contains("$(AWS_REGION (not closed"), "{open}");
        // The known ones are fine anywhere, the resource part included.
        assert_eq!(
            check_arn("arn:aws:s3:::logs-$(AWS_ACCOUNT_ID)-$(AWS_REGION)/*"),
            Ok(())
        );
    }

    #[test]
    fn regions_are_checked_by_shape_not_by_list() {
        for region in [
            "us-east-1",
            "eu-west-2",
            "ap-southeast-7",
            "mx-central-1",
            "il-central-1",
            "cn-northwest-1",
            "us-gov-west-1",
            "us-iso-east-1",
            "us-isob-east-1",
            "eu-isoe-west-1",
            "eusc-de-east-1",
            // Not open today, but shaped like a region: accepted, never a release away.
            "af-north-9",
            "me-southwest-12",
        ] {
            assert!(is_region(region), "{region}");
        }
        for not in [
            "mars-1",
            "euwest2",
            "eu-wets-2",
            "eu-west",
            "eu-west-0",
            "eu-west-123",
            "xx-east-1",
            "us-foo-east-1",
            "EU-WEST-2",
            "eu-west-2-",
            "",
        ] {
            assert!(!is_region(not), "{not}");
        }
        let error = check_arn("arn:aws:dynamodb:mars-1:123456789012:table/t")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("region \"mars-1\" is not an AWS region"),
            "{error}"
        );
    }

    #[test]
    fn partitions_must_be_the_clusters() {
        assert_eq!(check_partition("arn:aws:s3:::b", "aws"), Ok(()));
        assert_eq!(check_partition("*", "aws"), Ok(()));
        assert_eq!(check_partition("arn:*:s3:::b", "aws-cn"), Ok(()));
        assert_eq!(
            check_partition("arn:aws-cn:s3:::b", "aws")
                .unwrap_err()
                .to_string(),
            "\"arn:aws-cn:s3:::b\" is an ARN of partition \"aws-cn\", but the cluster is in \
             partition \"aws\": the grant could never match; write arn:aws:..."
        );
    }

    #[test]
    fn long_arns_are_cut_in_messages() {
        let arn = format!(
            "arn:aws:dynamodb:eu-west-2:1234:table/{}",
            "t".repeat(20_000)
        );
        let error = check_arn(&arn).unwrap_err().to_string();
        assert!(error.len() < 400, "{}", error.len());
        assert!(error.contains("(20038 characters)"), "{error}");
        assert!(error.contains("account \"1234\""), "{error}");
    }

    #[test]
    fn the_service_of_an_arn() {
        assert_eq!(arn_service("arn:aws:s3:::b"), Some("s3"));
        assert_eq!(arn_service("arn:aws:*:::b"), None);
    }
}
