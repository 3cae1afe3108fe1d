"""Reads back, with boto3 and independently of the code under test, what the emulator holds:
roles under a path with their trust, inline and attached policies, boundary and tags; the OIDC
providers; an EKS cluster's add-ons and Pod Identity associations. Prints one JSON object.

usage: read_back.py ENDPOINT_URL [--path /eks-intents/] [--cluster demo] [--region eu-west-2]
"""

import argparse
import json
import urllib.parse

import boto3


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("endpoint")
    parser.add_argument("--path", default="/eks-intents/")
    parser.add_argument("--cluster", default="demo")
    parser.add_argument("--region", default="eu-west-2")
    args = parser.parse_args()
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=args.region
    )
    iam = session.client("iam", endpoint_url=args.endpoint)
    eks = session.client("eks", endpoint_url=args.endpoint)

    def document(doc):
        # boto3 decodes documents itself; a string here is still percent-encoded JSON.
        if isinstance(doc, str):
            return json.loads(urllib.parse.unquote(doc))
        return doc

    roles = {}
    for page in iam.get_paginator("list_roles").paginate(PathPrefix=args.path):
        for role in page["Roles"]:
            name = role["RoleName"]
            full = iam.get_role(RoleName=name)["Role"]
            inline = {}
            for policy_name in iam.list_role_policies(RoleName=name)["PolicyNames"]:
                inline[policy_name] = document(
                    iam.get_role_policy(RoleName=name, PolicyName=policy_name)["PolicyDocument"]
                )
            attached = {}
            for policy in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
                arn = policy["PolicyArn"]
                version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
                attached[arn] = document(
                    iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
                )
            roles[name] = {
                "arn": full["Arn"],
                "path": full["Path"],
                "trust": document(full["AssumeRolePolicyDocument"]),
                "boundary": full.get("PermissionsBoundary", {}).get("PermissionsBoundaryArn"),
                "tags": {t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName=name)["Tags"]},
                "inline": inline,
                "attached": attached,
            }
    providers = {}
    for provider in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]:
        detail = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=provider["Arn"])
        providers[provider["Arn"]] = {"url": detail["Url"], "client_ids": detail["ClientIDList"]}
    addons = {}
    for name in eks.list_addons(clusterName=args.cluster)["addons"]:
        addon = eks.describe_addon(clusterName=args.cluster, addonName=name)["addon"]
        addons[name] = {"service_account_role_arn": addon.get("serviceAccountRoleArn")}
    associations = []
    for summary in eks.list_pod_identity_associations(clusterName=args.cluster)["associations"]:
        association = eks.describe_pod_identity_association(
            clusterName=args.cluster, associationId=summary["associationId"]
        )["association"]
        associations.append(
            {
                "namespace": association["namespace"],
                "service_account": association["serviceAccount"],
                "role_arn": association["roleArn"],
                "owner_arn": association.get("ownerArn"),
            }
        )
    print(json.dumps({"roles": roles, "oidc_providers": providers, "addons": addons,
                      "pod_identity_associations": associations}))


if __name__ == "__main__":
    main()
