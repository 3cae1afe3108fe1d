#!/usr/bin/env python3
"""Self test of aws_emulator.py: starts it, drives it with boto3, prints `N passed, M failed`.

Run with the harness venv's python: `"$(./setup-venv | tail -n1)" selftest.py`.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import traceback
import urllib.error
import urllib.request
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

HERE = Path(__file__).resolve().parent
REGION = "eu-west-2"
ACCOUNT = "123456789012"
TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "pods.eks.amazonaws.com"},
                "Action": ["sts:AssumeRole", "sts:TagSession"],
            }
        ],
    }
)
POLICY = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}
)


def start_emulator() -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "aws_emulator.py"), "--port", "0"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline().strip()
    if not line.startswith("READY "):
        proc.kill()
        raise RuntimeError(f"emulator did not start: {line!r}")
    return proc, line.split(" ", 1)[1]


class Harness:
    def __init__(self, endpoint: str):
        self.endpoint = endpoint

    def client(self, service: str, attempts: int | None = None, validate: bool = True):
        # botocore's max_attempts counts retries; total_max_attempts counts the first try too.
        retries = {"total_max_attempts": attempts, "mode": "standard"} if attempts else {}
        config = Config(retries=retries, parameter_validation=validate)
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=config,
        )

    def control(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.endpoint + path, data=data, method=method)
        with urllib.request.urlopen(request) as response:
            return json.loads(response.read() or b"null")

    def cluster(self, name: str = "demo") -> None:
        iam = self.client("iam")
        role = iam.create_role(RoleName=f"{name}-cluster", AssumeRolePolicyDocument=TRUST)["Role"]["Arn"]
        self.client("eks").create_cluster(
            name=name, roleArn=role, resourcesVpcConfig={"subnetIds": ["subnet-1", "subnet-2"]}
        )

    def role(self, name: str) -> str:
        return self.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=TRUST)["Role"]["Arn"]


def expect_error(code: str, fn, *args, status: int | None = None, **kwargs) -> ClientError:
    try:
        fn(*args, **kwargs)
    except ClientError as err:
        got = err.response["Error"]["Code"]
        assert got == code, f"expected {code}, got {got}: {err}"
        if status is not None:
            got_status = err.response["ResponseMetadata"]["HTTPStatusCode"]
            assert got_status == status, f"expected HTTP {status}, got {got_status}"
        return err
    raise AssertionError(f"expected {code}, call succeeded")


TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


@test
def moto_services_pass_through(h: Harness):
    iam = h.client("iam")
    arn = h.role("plain")
    assert arn == f"arn:aws:iam::{ACCOUNT}:role/plain", arn
    assert iam.get_role(RoleName="plain")["Role"]["Arn"] == arn

    s3 = h.client("s3")
    s3.create_bucket(Bucket="intents", CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket="intents", Key="a/b.yaml", Body=b"kind: x\n")
    assert s3.get_object(Bucket="intents", Key="a/b.yaml")["Body"].read() == b"kind: x\n"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="intents")["Contents"]] == ["a/b.yaml"]

    sqs = h.client("sqs")
    url = sqs.create_queue(QueueName="events")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="hello")
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)["Messages"]
    assert messages[0]["Body"] == "hello"

    assert h.client("sts").get_caller_identity()["Account"] == ACCOUNT


@test
def addon_lifecycle(h: Harness):
    h.cluster()
    eks = h.client("eks")
    irsa = h.role("vpc-cni-irsa")
    created = eks.create_addon(
        clusterName="demo",
        addonName="vpc-cni",
        addonVersion="v1.18.0-eksbuild.1",
        serviceAccountRoleArn=irsa,
        tags={"team": "net"},
    )["addon"]
    assert created["status"] == "ACTIVE"
    assert re.fullmatch(
        rf"arn:aws:eks:{REGION}:{ACCOUNT}:addon/demo/vpc-cni/[0-9a-f-]{{36}}", created["addonArn"]
    )
    assert created["serviceAccountRoleArn"] == irsa
    assert created["tags"] == {"team": "net"}
    assert created["podIdentityAssociations"] == []

    eks.create_addon(clusterName="demo", addonName="coredns")
    assert eks.list_addons(clusterName="demo")["addons"] == ["coredns", "vpc-cni"]
    expect_error("ResourceInUseException", eks.create_addon, clusterName="demo", addonName="coredns")

    described = eks.describe_addon(clusterName="demo", addonName="vpc-cni")["addon"]
    assert described["addonVersion"] == "v1.18.0-eksbuild.1"
    assert described["createdAt"] == created["createdAt"]
    assert "serviceAccountRoleArn" not in eks.describe_addon(clusterName="demo", addonName="coredns")["addon"]

    # An empty serviceAccountRoleArn removes the role; botocore would refuse to send it.
    raw = h.client("eks", validate=False)
    update = raw.update_addon(clusterName="demo", addonName="vpc-cni", serviceAccountRoleArn="")["update"]
    assert update["status"] == "Successful" and update["type"] == "AddonUpdate", update
    assert update["params"] == [{"type": "ServiceAccountRoleArn", "value": ""}], update
    assert "serviceAccountRoleArn" not in eks.describe_addon(clusterName="demo", addonName="vpc-cni")["addon"]
    again = eks.describe_update(name="demo", updateId=update["id"], addonName="vpc-cni")["update"]
    assert again["id"] == update["id"] and again["params"] == update["params"]
    assert eks.list_updates(name="demo", addonName="vpc-cni")["updateIds"] == [update["id"]]

    eks.update_addon(clusterName="demo", addonName="vpc-cni", serviceAccountRoleArn=irsa)
    assert (
        eks.describe_addon(clusterName="demo", addonName="vpc-cni")["addon"]["serviceAccountRoleArn"] == irsa
    )

    pod_a, pod_b = h.role("pod-a"), h.role("pod-b")
    eks.update_addon(
        clusterName="demo",
        addonName="vpc-cni",
        podIdentityAssociations=[
            {"serviceAccount": "aws-node", "roleArn": pod_a},
            {"serviceAccount": "helper", "roleArn": pod_b},
        ],
    )
    addon = eks.describe_addon(clusterName="demo", addonName="vpc-cni")["addon"]
    owned = eks.list_pod_identity_associations(clusterName="demo")["associations"]
    assert {a["serviceAccount"] for a in owned} == {"aws-node", "helper"}, owned
    assert all(a["ownerArn"] == addon["addonArn"] and a["namespace"] == "kube-system" for a in owned)
    assert sorted(addon["podIdentityAssociations"]) == sorted(a["associationArn"] for a in owned)
    node = next(a for a in owned if a["serviceAccount"] == "aws-node")
    full = eks.describe_pod_identity_association(clusterName="demo", associationId=node["associationId"])
    assert full["association"]["roleArn"] == pod_a

    eks.update_addon(
        clusterName="demo",
        addonName="vpc-cni",
        podIdentityAssociations=[{"serviceAccount": "aws-node", "roleArn": pod_b}],
    )
    owned = eks.list_pod_identity_associations(clusterName="demo")["associations"]
    assert [a["serviceAccount"] for a in owned] == ["aws-node"], owned
    full = eks.describe_pod_identity_association(clusterName="demo", associationId=owned[0]["associationId"])
    assert full["association"]["roleArn"] == pod_b

    deleted = eks.delete_addon(clusterName="demo", addonName="vpc-cni")["addon"]
    assert deleted["status"] == "DELETING"
    assert eks.list_pod_identity_associations(clusterName="demo")["associations"] == []
    expect_error("ResourceNotFoundException", eks.describe_addon, clusterName="demo", addonName="vpc-cni")


@test
def addon_created_with_pod_identities(h: Harness):
    h.cluster()
    eks = h.client("eks")
    role = h.role("ebs")
    addon = eks.create_addon(
        clusterName="demo",
        addonName="aws-ebs-csi-driver",
        podIdentityAssociations=[{"serviceAccount": "ebs-csi-controller-sa", "roleArn": role}],
    )["addon"]
    assert len(addon["podIdentityAssociations"]) == 1
    owned = eks.list_pod_identity_associations(clusterName="demo", namespace="kube-system")["associations"]
    assert owned[0]["ownerArn"] == addon["addonArn"]
    # The service account is taken: a direct association for it conflicts.
    expect_error(
        "ResourceInUseException",
        eks.create_pod_identity_association,
        status=409,
        clusterName="demo",
        namespace="kube-system",
        serviceAccount="ebs-csi-controller-sa",
        roleArn=role,
    )


@test
def association_crud(h: Harness):
    h.cluster()
    eks = h.client("eks")
    first, second = h.role("app-one"), h.role("app-two")
    created = eks.create_pod_identity_association(
        clusterName="demo", namespace="shop", serviceAccount="cart", roleArn=first, tags={"k": "v"}
    )["association"]
    assoc_id = created["associationId"]
    assert re.fullmatch(r"a-[a-z0-9]{17}", assoc_id), assoc_id
    assert (
        created["associationArn"] == f"arn:aws:eks:{REGION}:{ACCOUNT}:podidentityassociation/demo/{assoc_id}"
    )
    assert created["tags"] == {"k": "v"} and "ownerArn" not in created
    assert created["createdAt"] == created["modifiedAt"]

    described = eks.describe_pod_identity_association(clusterName="demo", associationId=assoc_id)[
        "association"
    ]
    assert described["roleArn"] == first and described["namespace"] == "shop"

    updated = eks.update_pod_identity_association(clusterName="demo", associationId=assoc_id, roleArn=second)
    assert updated["association"]["roleArn"] == second
    described = eks.describe_pod_identity_association(clusterName="demo", associationId=assoc_id)[
        "association"
    ]
    assert described["roleArn"] == second

    eks.create_pod_identity_association(
        clusterName="demo", namespace="other", serviceAccount="cart", roleArn=first
    )
    only_shop = eks.list_pod_identity_associations(clusterName="demo", namespace="shop")["associations"]
    assert [a["associationId"] for a in only_shop] == [assoc_id]
    by_sa = eks.list_pod_identity_associations(clusterName="demo", serviceAccount="cart")["associations"]
    assert len(by_sa) == 2

    eks.delete_pod_identity_association(clusterName="demo", associationId=assoc_id)
    expect_error(
        "ResourceNotFoundException",
        eks.describe_pod_identity_association,
        status=404,
        clusterName="demo",
        associationId=assoc_id,
    )


@test
def association_session_policy_needs_session_tags_off(h: Harness):
    h.cluster()
    eks = h.client("eks")
    role = h.role("app")
    base = {"clusterName": "demo", "namespace": "ns", "serviceAccount": "sa", "roleArn": role}
    expect_error("InvalidParameterException", eks.create_pod_identity_association, policy=POLICY, **base)
    assert eks.list_pod_identity_associations(clusterName="demo")["associations"] == []
    created = eks.create_pod_identity_association(policy=POLICY, disableSessionTags=True, **base)["association"]
    assert created["policy"] == POLICY and created["disableSessionTags"] is True
    assoc_id = created["associationId"]
    # Turning the tags back on while the policy stays is refused, and changes nothing.
    expect_error(
        "InvalidParameterException",
        eks.update_pod_identity_association,
        clusterName="demo",
        associationId=assoc_id,
        disableSessionTags=False,
    )
    described = eks.describe_pod_identity_association(clusterName="demo", associationId=assoc_id)
    assert described["association"]["disableSessionTags"] is True
    expect_error(
        "InvalidParameterException",
        eks.create_pod_identity_association,
        policy="x" * 2049,
        disableSessionTags=True,
        **{**base, "serviceAccount": "other"},
    )


@test
def iam_quotas_and_association_filling(h: Harness):
    h.cluster()
    quotas = h.control("POST", "/_harness/iam-quotas", {"quotas": {"RolesQuota": 7, "RolePolicySizeQuota": 99}})
    assert quotas["RolesQuota"] == 7 and quotas["RolePolicySizeQuota"] == 99, quotas
    summary = h.client("iam").get_account_summary()["SummaryMap"]
    assert summary["RolesQuota"] == 7 and summary["RolePolicySizeQuota"] == 99, summary
    try:
        h.control("POST", "/_harness/iam-quotas", {"quotas": {"NotAQuota": 1}})
        raise AssertionError("an unknown quota was accepted")
    except urllib.error.HTTPError as err:
        assert err.code == 400, err.code
    filled = h.control(
        "POST",
        "/_harness/clusters/demo/associations",
        {"count": 250, "roleArn": h.role("filler"), "account": ACCOUNT, "region": REGION},
    )
    assert filled == {"associations": 250}, filled
    eks = h.client("eks")
    pages = eks.get_paginator("list_pod_identity_associations").paginate(clusterName="demo")
    assert sum(len(page["associations"]) for page in pages) == 250


@test
def association_idempotency_token(h: Harness):
    h.cluster()
    eks = h.client("eks")
    role = h.role("app")
    args = {
        "clusterName": "demo",
        "namespace": "ns",
        "serviceAccount": "sa",
        "roleArn": role,
        "clientRequestToken": "tok-1",
    }
    first = eks.create_pod_identity_association(**args)["association"]
    second = eks.create_pod_identity_association(**args)["association"]
    assert first["associationId"] == second["associationId"]


@test
def association_pagination(h: Harness):
    h.cluster()
    eks = h.client("eks")
    role = h.role("app")
    made = {
        eks.create_pod_identity_association(
            clusterName="demo", namespace="ns", serviceAccount=f"sa-{i}", roleArn=role
        )["association"]["associationId"]
        for i in range(5)
    }
    seen, pages, token = [], 0, None
    while True:
        kwargs = {"nextToken": token} if token else {}
        page = eks.list_pod_identity_associations(clusterName="demo", maxResults=2, **kwargs)
        pages += 1
        assert len(page["associations"]) <= 2
        seen += [a["associationId"] for a in page["associations"]]
        token = page.get("nextToken")
        if not token:
            break
    assert pages == 3 and len(seen) == 5 and set(seen) == made, (pages, seen)

    paginator = eks.get_paginator("list_pod_identity_associations")
    listed = [
        a["associationId"]
        for p in paginator.paginate(clusterName="demo", PaginationConfig={"PageSize": 3})
        for a in p["associations"]
    ]
    assert sorted(listed) == sorted(made)
    expect_error(
        "InvalidParameterException", eks.list_pod_identity_associations, clusterName="demo", nextToken="junk"
    )


@test
def duplicate_association_conflicts(h: Harness):
    h.cluster()
    eks = h.client("eks")
    role = h.role("app")
    eks.create_pod_identity_association(clusterName="demo", namespace="ns", serviceAccount="sa", roleArn=role)
    err = expect_error(
        "ResourceInUseException",
        eks.create_pod_identity_association,
        status=409,
        clusterName="demo",
        namespace="ns",
        serviceAccount="sa",
        roleArn=role,
    )
    assert err.response["Error"]["Message"]


@test
def owned_association_refuses_direct_changes(h: Harness):
    h.cluster()
    eks = h.client("eks")
    role, other = h.role("owned"), h.role("other")
    eks.create_addon(
        clusterName="demo",
        addonName="eks-pod-identity-agent",
        podIdentityAssociations=[{"serviceAccount": "agent", "roleArn": role}],
    )
    owned = eks.list_pod_identity_associations(clusterName="demo")["associations"][0]["associationId"]
    expect_error(
        "InvalidRequestException",
        eks.update_pod_identity_association,
        status=400,
        clusterName="demo",
        associationId=owned,
        roleArn=other,
    )
    expect_error(
        "InvalidRequestException",
        eks.delete_pod_identity_association,
        status=400,
        clusterName="demo",
        associationId=owned,
    )


@test
def unknown_cluster_is_not_found(h: Harness):
    eks = h.client("eks")
    expect_error("ResourceNotFoundException", eks.list_addons, clusterName="nope", status=404)
    expect_error(
        "ResourceNotFoundException", eks.list_pod_identity_associations, clusterName="nope", status=404
    )
    expect_error(
        "ResourceNotFoundException",
        eks.create_pod_identity_association,
        status=404,
        clusterName="nope",
        namespace="ns",
        serviceAccount="sa",
        roleArn=h.role("app"),
    )
    expect_error("ResourceNotFoundException", eks.describe_cluster, name="nope", status=404)


@test
def unknown_role_is_invalid(h: Harness):
    h.cluster()
    eks = h.client("eks")
    missing = f"arn:aws:iam::{ACCOUNT}:role/missing"
    err = expect_error(
        "InvalidParameterException",
        eks.create_pod_identity_association,
        status=400,
        clusterName="demo",
        namespace="ns",
        serviceAccount="sa",
        roleArn=missing,
    )
    assert "does not exist" in err.response["Error"]["Message"]
    expect_error(
        "InvalidParameterException",
        eks.create_addon,
        status=400,
        clusterName="demo",
        addonName="x",
        podIdentityAssociations=[{"serviceAccount": "sa", "roleArn": missing}],
    )
    assert eks.list_addons(clusterName="demo")["addons"] == []


@test
def faults_then_success(h: Harness):
    iam = h.client("iam", attempts=1)
    h.control(
        "POST",
        "/_harness/faults",
        {"service": "iam", "operation": "CreateRole", "code": "Throttling", "count": 3},
    )
    for _ in range(3):
        err = expect_error(
            "Throttling", iam.create_role, RoleName="r", AssumeRolePolicyDocument=TRUST, status=400
        )
        assert err.response["Error"]["Message"] == "Rate exceeded"
    iam.create_role(RoleName="r", AssumeRolePolicyDocument=TRUST)
    assert h.control("GET", "/_harness/requests")["iam"]["CreateRole"] == 4
    assert h.control("GET", "/_harness/faults")["faults"] == []

    h.cluster()
    eks = h.client("eks", attempts=1)
    h.control(
        "POST", "/_harness/faults", {"service": "eks", "operation": "*", "code": "Throttling", "count": 2}
    )
    expect_error("ThrottlingException", eks.list_addons, clusterName="demo", status=429)
    expect_error("ThrottlingException", eks.describe_cluster, name="demo", status=429)
    eks.describe_cluster(name="demo")

    h.control("POST", "/_harness/faults", {"service": "sts", "code": "Throttling", "count": 5})
    expect_error("Throttling", h.client("sts", attempts=1).get_caller_identity)
    h.control("DELETE", "/_harness/faults")
    h.client("sts", attempts=1).get_caller_identity()

    sqs = h.client("sqs", attempts=1)
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    h.control(
        "POST", "/_harness/faults", {"service": "sqs", "operation": "SendMessage", "code": "RequestThrottled"}
    )
    expect_error("RequestThrottled", sqs.send_message, QueueUrl=url, MessageBody="x")
    sqs.send_message(QueueUrl=url, MessageBody="x")

    s3 = h.client("s3", attempts=1)
    s3.create_bucket(Bucket="faulty", CreateBucketConfiguration={"LocationConstraint": REGION})
    h.control("POST", "/_harness/faults", {"service": "s3", "operation": "PutObject", "code": "SlowDown"})
    expect_error("SlowDown", s3.put_object, Bucket="faulty", Key="k", Body=b"data", status=503)
    s3.put_object(Bucket="faulty", Key="k", Body=b"data")


@test
def a_storm_of_consecutive_throttles(h: Harness):
    # N throttled requests in a row for one service, whatever the operation (the storm the
    # throttling tests and bench-throttling inject); another service is never touched, and the
    # request after the N-th succeeds.
    h.cluster()
    h.control("DELETE", "/_harness/requests")
    iam, eks = h.client("iam", attempts=1), h.client("eks", attempts=1)
    h.control(
        "POST", "/_harness/faults", {"service": "iam", "operation": "*", "code": "Throttling", "count": 30}
    )
    for i in range(30):
        read = iam.list_roles if i % 2 else iam.get_account_authorization_details
        expect_error("Throttling", read, status=400)
        eks.describe_cluster(name="demo")
    assert h.control("GET", "/_harness/faults")["faults"] == []
    iam.get_account_authorization_details()
    counts = h.control("GET", "/_harness/requests")
    assert counts["iam"] == {"GetAccountAuthorizationDetails": 16, "ListRoles": 15}, counts
    assert counts["eks"]["DescribeCluster"] == 30, counts


@test
def request_counters(h: Harness):
    h.cluster()
    iam, eks = h.client("iam"), h.client("eks")
    h.control("DELETE", "/_harness/requests")
    iam.list_roles()
    iam.list_roles()
    eks.describe_cluster(name="demo")
    eks.list_pod_identity_associations(clusterName="demo")
    eks.list_nodegroups(clusterName="demo")
    counts = h.control("GET", "/_harness/requests")
    assert counts["iam"] == {"ListRoles": 2}, counts
    assert counts["eks"] == {
        "DescribeCluster": 1,
        "ListPodIdentityAssociations": 1,
        "moto:GET /clusters/demo/node-groups": 1,
    }, counts
    h.control("DELETE", "/_harness/requests")
    assert h.control("GET", "/_harness/requests") == {}


@test
def parameter_counters(h: Harness):
    h.cluster()
    iam, eks = h.client("iam"), h.client("eks")
    h.control("DELETE", "/_harness/requests")
    iam.get_account_authorization_details(Filter=["Role"], MaxItems=1000)
    iam.get_account_authorization_details(Filter=["Role"])
    eks.list_pod_identity_associations(clusterName="demo", maxResults=100)
    params = h.control("GET", "/_harness/parameters")
    assert params["iam"] == {"GetAccountAuthorizationDetails": {"MaxItems=1000": 1}}, params
    assert params["eks"] == {"ListPodIdentityAssociations": {"maxResults=100": 1}}, params
    h.control("DELETE", "/_harness/requests")
    assert h.control("GET", "/_harness/parameters") == {}


@test
def delays_and_peaks(h: Harness):
    import concurrent.futures

    iam = h.client("iam")
    h.control("POST", "/_harness/delays", {"service": "iam", "operation": "ListRoles", "seconds": 0.5})
    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: iam.list_roles(), range(4)))
    elapsed = time.monotonic() - start
    assert 0.5 <= elapsed < 1.9, elapsed
    state = h.control("GET", "/_harness/delays")
    assert state["peaks"] == {"iam": {"ListRoles": 4}}, state
    iam.list_users()  # not delayed, not counted
    assert h.control("GET", "/_harness/delays")["peaks"] == {"iam": {"ListRoles": 4}}
    h.control("DELETE", "/_harness/delays")
    h.control("DELETE", "/_harness/requests")
    assert h.control("GET", "/_harness/delays") == {"delays": [], "peaks": {}}


@test
def reset_clears_everything(h: Harness):
    h.cluster()
    eks = h.client("eks")
    eks.create_pod_identity_association(
        clusterName="demo", namespace="n", serviceAccount="s", roleArn=h.role("a")
    )
    h.control("POST", "/_harness/faults", {"service": "iam", "code": "Throttling", "count": 100})
    h.control("PUT", "/_harness/clusters/demo", {"endpoint": "https://127.0.0.1:1"})
    h.control("POST", "/_harness/reset")
    assert h.control("GET", "/_harness/requests") == {}
    assert h.control("GET", "/_harness/faults")["faults"] == []
    assert h.control("GET", "/_harness/clusters/demo") == {}
    iam = h.client("iam", attempts=1)
    expect_error("NoSuchEntity", iam.get_role, RoleName="a")
    h.cluster()
    assert eks.list_pod_identity_associations(clusterName="demo")["associations"] == []
    assert eks.describe_cluster(name="demo")["cluster"]["endpoint"] != "https://127.0.0.1:1"


@test
def describe_cluster_override(h: Harness):
    h.cluster()
    eks = h.client("eks")
    before = eks.describe_cluster(name="demo")["cluster"]
    h.control("PUT", "/_harness/clusters/demo", {"endpoint": "https://127.0.0.1:6443", "ca_data": "Q0E="})
    after = eks.describe_cluster(name="demo")["cluster"]
    assert after["endpoint"] == "https://127.0.0.1:6443"
    assert after["certificateAuthority"]["data"] == "Q0E="
    assert after["identity"]["oidc"]["issuer"] == before["identity"]["oidc"]["issuer"]
    h.control("PUT", "/_harness/clusters/demo", {"oidc_issuer": "https://127.0.0.1:8443/id/ABC"})
    after = eks.describe_cluster(name="demo")["cluster"]
    assert after["identity"]["oidc"]["issuer"] == "https://127.0.0.1:8443/id/ABC"
    assert after["endpoint"] == before["endpoint"]
    h.control("DELETE", "/_harness/clusters/demo")
    assert eks.describe_cluster(name="demo")["cluster"]["endpoint"] == before["endpoint"]


@test
def delete_conflicts(h: Harness):
    iam = h.client("iam")
    h.role("worker")
    policy = iam.create_policy(PolicyName="p", PolicyDocument=POLICY)["Policy"]["Arn"]
    iam.attach_role_policy(RoleName="worker", PolicyArn=policy)
    expect_error("DeleteConflict", iam.delete_policy, PolicyArn=policy, status=409)
    expect_error("DeleteConflict", iam.delete_role, RoleName="worker", status=409)
    iam.detach_role_policy(RoleName="worker", PolicyArn=policy)

    iam.put_role_policy(RoleName="worker", PolicyName="inline", PolicyDocument=POLICY)
    expect_error("DeleteConflict", iam.delete_role, RoleName="worker", status=409)
    iam.delete_role_policy(RoleName="worker", PolicyName="inline")
    iam.delete_role(RoleName="worker")

    iam.create_policy_version(PolicyArn=policy, PolicyDocument=POLICY, SetAsDefault=True)
    expect_error("DeleteConflict", iam.delete_policy, PolicyArn=policy, status=409)
    iam.delete_policy_version(PolicyArn=policy, VersionId="v1")
    iam.delete_policy(PolicyArn=policy)
    expect_error("NoSuchEntity", iam.get_policy, PolicyArn=policy)


@test
def authorization_details_name_managed_policies(h: Harness):
    iam = h.client("iam")
    created = iam.create_policy(PolicyName="demo.jokes.worker.part1", Path="/eks-intents/demo/", PolicyDocument=POLICY)
    h.role("worker")
    details = iam.get_account_authorization_details(Filter=["Role", "LocalManagedPolicy"])
    policies = [p for p in details["Policies"] if p["Arn"] == created["Policy"]["Arn"]]
    assert len(policies) == 1, details["Policies"]
    assert policies[0]["PolicyName"] == "demo.jokes.worker.part1", policies[0]
    assert policies[0]["PolicyId"] == created["Policy"]["PolicyId"], policies[0]
    assert policies[0]["Path"] == "/eks-intents/demo/", policies[0]
    assert [r["RoleName"] for r in details["RoleDetailList"]] == ["worker"]


@test
def s3_conditional_writes(h: Harness):
    # The reconciler writes its status report only over the ETag it read (or where none is).
    s3 = h.client("s3")
    s3.create_bucket(Bucket="intents", CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_versioning(Bucket="intents", VersioningConfiguration={"Status": "Enabled"})
    first = s3.put_object(Bucket="intents", Key="status/demo.json", Body=b"1", IfNoneMatch="*")
    expect_error("PreconditionFailed", s3.put_object, Bucket="intents", Key="status/demo.json", Body=b"2",
                 IfNoneMatch="*", status=412)
    second = s3.put_object(Bucket="intents", Key="status/demo.json", Body=b"2", IfMatch=first["ETag"])
    expect_error("PreconditionFailed", s3.put_object, Bucket="intents", Key="status/demo.json", Body=b"3",
                 IfMatch=first["ETag"], status=412)
    read = s3.get_object(Bucket="intents", Key="status/demo.json")
    assert read["Body"].read() == b"2"
    assert read["ETag"] == second["ETag"], (read["ETag"], second["ETag"])


def lifecycle_tests() -> list[tuple[str, Exception | None]]:
    results = []
    for name, stop in [
        ("exits_when_stdin_closes", lambda p: p.stdin.close()),
        ("exits_on_sigterm", lambda p: p.send_signal(signal.SIGTERM)),
    ]:
        try:
            proc, endpoint = start_emulator()
            try:
                Harness(endpoint).control("GET", "/_harness/requests")
                stop(proc)
                code = proc.wait(timeout=30)
                assert code == 0, f"exit code {code}"
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            results.append((name, None))
        except Exception as err:  # noqa: BLE001 - report every failure
            results.append((name, err))
    return results


def main() -> int:
    os.environ.pop("AWS_ENDPOINT_URL", None)
    proc, endpoint = start_emulator()
    harness = Harness(endpoint)
    results: list[tuple[str, Exception | None]] = []
    try:
        for fn in TESTS:
            try:
                harness.control("POST", "/_harness/reset")
                fn(harness)
                results.append((fn.__name__, None))
            except Exception as err:  # noqa: BLE001 - report every failure
                traceback.print_exc()
                results.append((fn.__name__, err))
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
    results += lifecycle_tests()

    for name, err in results:
        print(f"{'ok  ' if err is None else 'FAIL'} {name}{'' if err is None else f': {err}'}")
    failed = sum(1 for _, err in results if err is not None)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
