//! Resource ARNs as intents write them: `arn:<partition>:<service>:<region>:<account>:<resource>`,
//! with IAM wildcards and the `$(AWS_REGION)` / `$(AWS_ACCOUNT_ID)` placeholders allowed.

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

fn wild(part: &str) -> bool {
    part.contains('*') || part.contains('?')
}

/// Checks an ARN's fields; returns what is wrong, naming the field.
pub fn check_arn(arn: &str) -> Result<(), String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [prefix, partition, service, region, account, resource] = parts.as_slice() else {
        return Err(format!(
            "{arn:?} is not an ARN: expected arn:<partition>:<service>:<region>:<account>:<resource>"
        ));
    };
    if *prefix != "arn" {
        return Err(format!("{arn:?} does not start with \"arn:\""));
    }
    if !(PARTITIONS.contains(partition) || wild(partition)) {
        return Err(format!(
            "{arn:?}: partition {partition:?} is not one of {}",
            PARTITIONS.join(", ")
        ));
    }
    if service.is_empty()
        || !service.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '*' || c == '?'
        })
    {
        return Err(format!(
            "{arn:?}: service {service:?} is not a service prefix"
        ));
    }
    let region_ok = region.is_empty()
        || wild(region)
        || region.contains("$(AWS_REGION)")
        || region
            .split('-')
            .collect::<Vec<_>>()
            .as_slice()
            .last()
            .is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()))
            && region
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && region.contains('-');
    if !region_ok {
        return Err(format!(
            "{arn:?}: region {region:?} is not a region (like eu-west-2), empty, or *"
        ));
    }
    let account_ok = account.is_empty()
        || wild(account)
        || account.contains("$(AWS_ACCOUNT_ID)")
        || *account == "aws"
        || (account.len() == 12 && account.chars().all(|c| c.is_ascii_digit()));
    if !account_ok {
        return Err(format!(
            "{arn:?}: account {account:?} is not a 12-digit account id, empty, or *"
        ));
    }
    if resource.is_empty() {
        return Err(format!("{arn:?}: the resource part is empty"));
    }
    Ok(())
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
            let error = check_arn(arn).unwrap_err();
            assert!(error.contains(expected), "{arn}: {error}");
        }
    }

    #[test]
    fn the_service_of_an_arn() {
        assert_eq!(arn_service("arn:aws:s3:::b"), Some("s3"));
        assert_eq!(arn_service("arn:aws:*:::b"), None);
    }
}
