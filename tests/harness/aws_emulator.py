#!/usr/bin/env python3
"""Local AWS emulator for integration tests.

One process serves every AWS service on one port: moto's server, wrapped in a WSGI middleware
that adds the EKS add-on and Pod Identity APIs moto lacks, the IAM delete checks real IAM makes,
and test controls under /_harness/ (reset, fault injection, request counters, DescribeCluster
overrides). See README.md for the control API.

Usage: python aws_emulator.py [--host 127.0.0.1] [--port 0]
Prints `READY http://HOST:PORT` once listening; exits when stdin reaches EOF or on SIGTERM.
"""

from __future__ import annotations

import argparse
import base64
import http
import io
import json
import logging
import os
import re
import secrets
import signal
import string
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote
from xml.sax.saxutils import escape, unescape

from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.responses import BaseResponse
from moto.eks.models import eks_backends
from moto.iam.aws_managed_policies import aws_managed_policies_data
from moto.iam.models import AWSManagedPolicy, get_account_id_from, iam_backends
from moto.moto_api._internal.models import moto_api_backend
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.utilities.utils import get_partition
from werkzeug.serving import make_server

WsgiApp = Callable[[dict, Callable], Any]

CREDENTIAL_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/([^/]+)/([^/]+)/aws4_request")
USER_AGENT_REGION = re.compile(r"region/(?P<region>[a-z]{2}-[a-z]+-\d{1})")
ROLE_ARN = re.compile(r"arn:(aws[a-z-]*):iam::(\d{12}):role/.+")
DEFAULT_REGION = "us-east-1"

QUERY_XMLNS = {
    "iam": "https://iam.amazonaws.com/doc/2010-05-08/",
    "sts": "https://sts.amazonaws.com/doc/2011-06-15/",
    "sqs": "http://queue.amazonaws.com/doc/2012-11-05/",
}

# HTTP status for an injected fault's error code, per protocol; anything else is 400.
QUERY_STATUS = {
    "NoSuchEntity": 404,
    "EntityAlreadyExists": 409,
    "DeleteConflict": 409,
    "LimitExceeded": 409,
    "ConcurrentModification": 409,
    "ServiceFailure": 500,
    "InternalFailure": 500,
    "ServiceUnavailable": 503,
}
REST_JSON_STATUS = {
    "ResourceNotFoundException": 404,
    "ResourceInUseException": 409,
    "ThrottlingException": 429,
    "ServerException": 500,
    "ServiceUnavailableException": 503,
    "AccessDeniedException": 403,
}
S3_STATUS = {
    "AccessDenied": 403,
    "NoSuchBucket": 404,
    "NoSuchKey": 404,
    "InternalError": 500,
    "SlowDown": 503,
    "ServiceUnavailable": 503,
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def not_found(message: str) -> ApiError:
    return ApiError(404, "ResourceNotFoundException", message)


def invalid_parameter(message: str) -> ApiError:
    return ApiError(400, "InvalidParameterException", message)


def invalid_request(message: str) -> ApiError:
    return ApiError(400, "InvalidRequestException", message)


def in_use(message: str) -> ApiError:
    return ApiError(409, "ResourceInUseException", message)


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def send(self, start_response: Callable) -> list[bytes]:
        headers = [(k, v) for k, v in self.headers if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(self.body))))
        start_response(f"{self.status} {http.HTTPStatus(self.status).phrase}", headers)
        return [self.body]


def json_response(status: int, payload: Any, headers: list[tuple[str, str]] | None = None) -> Response:
    body = json.dumps(payload).encode()
    return Response(status, [("Content-Type", "application/json"), *(headers or [])], body)


def request_id() -> str:
    return str(uuid.uuid4())


def now() -> float:
    return round(time.time(), 3)


# ---------------------------------------------------------------------------------------------
# Request context


@dataclass
class Call:
    """What the middleware knows about one AWS request."""

    environ: dict
    method: str
    path: str
    query: dict[str, list[str]]
    service: str
    region: str
    body: bytes | None  # None when the body was left unread (S3 streams)

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def form(self) -> dict[str, list[str]]:
        if self.body and self.environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
            return parse_qs(self.body.decode("utf-8"), keep_blank_values=True)
        return self.query

    def action(self) -> str | None:
        values = self.form().get("Action")
        return values[0] if values else None

    def json(self) -> dict:
        if not self.body:
            return {}
        try:
            value = json.loads(self.body)
        except ValueError as err:
            raise ApiError(400, "SerializationException", f"Malformed JSON body: {err}") from err
        if not isinstance(value, dict):
            raise ApiError(400, "SerializationException", "Request body must be a JSON object")
        return value

    @property
    def account(self) -> str:
        # The same precedence moto applies when it picks the account a request acts in.
        if "MOTO_ACCOUNT_ID" in os.environ:
            return os.environ["MOTO_ACCOUNT_ID"]
        if "HTTP_X_MOTO_ACCOUNT_ID" in self.environ:
            return self.environ["HTTP_X_MOTO_ACCOUNT_ID"]
        match = BaseResponse.access_key_regex.search(self.environ.get("HTTP_AUTHORIZATION", ""))
        return get_account_id_from(match.group(1) if match else "AKIAEXAMPLE")

    @property
    def partition(self) -> str:
        return get_partition(self.region)


def read_body(environ: dict) -> bytes:
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH")
    if length:
        body = stream.read(int(length))
    elif environ.get("wsgi.input_terminated"):
        body = stream.read()
    else:
        body = b""
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return body


def make_call(environ: dict) -> Call:
    # A presigned request (the STS call behind an EKS token) carries its credential scope in the
    # query, not in an Authorization header; moto routes by the header, so give it one.
    presigned = parse_qs(environ.get("QUERY_STRING", "")).get("X-Amz-Credential")
    if presigned and "HTTP_AUTHORIZATION" not in environ:
        environ["HTTP_AUTHORIZATION"] = (
            f"AWS4-HMAC-SHA256 Credential={presigned[0]}, SignedHeaders=host, Signature=0"
        )
    auth = environ.get("HTTP_AUTHORIZATION", "")
    scope = CREDENTIAL_SCOPE.search(auth)
    service = scope.group(2).lower() if scope else "unsigned"
    ua_region = USER_AGENT_REGION.search(environ.get("HTTP_USER_AGENT", ""))
    region = ua_region.group("region") if ua_region else scope.group(1) if scope else DEFAULT_REGION
    method = environ["REQUEST_METHOD"].upper()
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    body = None if service == "s3" else read_body(environ)
    return Call(environ, method, environ.get("PATH_INFO", "/"), query, service, region, body)


# ---------------------------------------------------------------------------------------------
# Operation names, for counters and fault matching

S3_SUBRESOURCES = (
    "acl",
    "cors",
    "delete",
    "encryption",
    "lifecycle",
    "location",
    "logging",
    "notification",
    "policy",
    "publicAccessBlock",
    "replication",
    "tagging",
    "uploadId",
    "uploads",
    "versioning",
    "versions",
    "website",
)


def s3_operation(call: Call) -> str:
    x_id = call.param("x-id")
    if x_id:
        return x_id
    bucket, _, key = call.path.lstrip("/").partition("/")
    for sub in S3_SUBRESOURCES:
        if sub in call.query:
            return f"{call.method} {'object' if key else 'bucket'}?{sub}"
    if not bucket:
        return "ListBuckets" if call.method == "GET" else f"{call.method} /"
    if key:
        names = {"GET": "GetObject", "PUT": "PutObject", "HEAD": "HeadObject", "DELETE": "DeleteObject"}
    else:
        listing = "ListObjectsV2" if call.param("list-type") == "2" else "ListObjects"
        names = {"GET": listing, "PUT": "CreateBucket", "HEAD": "HeadBucket", "DELETE": "DeleteBucket"}
    return names.get(call.method, f"{call.method} {'object' if key else 'bucket'}")


def generic_operation(call: Call) -> str:
    target = call.environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return target.rsplit(".", 1)[-1]
    return call.action() or f"{call.method} {call.path}"


# ---------------------------------------------------------------------------------------------
# Fault injection


@dataclass
class Fault:
    service: str
    operation: str
    code: str
    remaining: int
    message: str
    status: int | None

    def matches(self, service: str, operation: str) -> bool:
        return self.service == service and self.operation in ("*", operation)

    def to_json(self) -> dict:
        return {
            "service": self.service,
            "operation": self.operation,
            "code": self.code,
            "count": self.remaining,
            "message": self.message,
            "status": self.status,
        }


def parse_fault(payload: Any) -> Fault:
    if not isinstance(payload, dict):
        raise TypeError("a fault is a JSON object")
    service = payload.get("service")
    code = payload.get("code")
    if not isinstance(service, str) or not service:
        raise ValueError("'service' must be a service name such as \"iam\"")
    if not isinstance(code, str) or not code:
        raise ValueError("'code' must be an error code such as \"Throttling\"")
    count = payload.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ValueError("'count' must be a positive integer")
    operation = payload.get("operation", "*")
    if not isinstance(operation, str) or not operation:
        raise ValueError("'operation' must be an operation name or \"*\"")
    status = payload.get("status")
    if status is not None and (not isinstance(status, int) or not 400 <= status <= 599):
        raise ValueError("'status' must be an HTTP error status")
    message = payload.get("message") or ("Rate exceeded" if "throttl" in code.lower() else f"Injected {code}")
    return Fault(service.lower(), operation, code, count, message, status)


def fault_response(call: Call, fault: Fault) -> Response:
    rid = request_id()
    if call.service == "eks":
        code = "ThrottlingException" if fault.code == "Throttling" else fault.code
        status = fault.status or REST_JSON_STATUS.get(code, 400)
        return rest_json_error(ApiError(status, code, fault.message))
    if call.service == "s3":
        status = fault.status or S3_STATUS.get(fault.code, 400)
        body = (
            b""
            if call.method == "HEAD"
            else (
                '<?xml version="1.0" encoding="UTF-8"?>\n'
                f"<Error><Code>{escape(fault.code)}</Code><Message>{escape(fault.message)}</Message>"
                f"<RequestId>{rid}</RequestId></Error>"
            ).encode()
        )
        return Response(status, [("Content-Type", "application/xml"), ("x-amz-request-id", rid)], body)
    status = fault.status or QUERY_STATUS.get(fault.code, 400)
    kind = "Receiver" if status >= 500 else "Sender"
    if call.environ.get("HTTP_X_AMZ_TARGET"):
        # awsJson services (SQS today): query-compatible error, code in a header and the body.
        payload = {"__type": fault.code, "message": fault.message}
        return json_response(
            status,
            payload,
            [("x-amzn-query-error", f"{fault.code};{kind}"), ("x-amzn-RequestId", rid)],
        )
    xmlns = QUERY_XMLNS.get(call.service, QUERY_XMLNS["iam"])
    body = (
        f'<ErrorResponse xmlns="{xmlns}"><Error><Type>{kind}</Type>'
        f"<Code>{escape(fault.code)}</Code><Message>{escape(fault.message)}</Message></Error>"
        f"<RequestId>{rid}</RequestId></ErrorResponse>"
    ).encode()
    return Response(status, [("Content-Type", "text/xml"), ("x-amzn-RequestId", rid)], body)


def rest_json_error(err: ApiError) -> Response:
    return json_response(
        err.status,
        {"message": err.message},
        [("x-amzn-errortype", err.code), ("x-amzn-RequestId", request_id())],
    )


def query_error(call: Call, status: int, code: str, message: str) -> Response:
    return fault_response(call, Fault(call.service, "*", code, 1, message, status))


# ---------------------------------------------------------------------------------------------
# EKS add-ons and Pod Identity associations


@dataclass
class ClusterState:
    """Middleware-held EKS state of one moto cluster, discarded when that cluster goes away."""

    owner: object  # the moto Cluster object this state belongs to
    addons: dict[str, dict] = field(default_factory=dict)
    associations: dict[str, dict] = field(default_factory=dict)
    updates: dict[str, dict] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)


ASSOCIATION_SUMMARY_KEYS = (
    "clusterName",
    "namespace",
    "serviceAccount",
    "associationArn",
    "associationId",
    "ownerArn",
)
DEFAULT_ADDON_NAMESPACE = "kube-system"
# DescribeAddonConfiguration's podIdentityConfiguration of some add-ons: (ServiceAccount, the
# managed policies EKS recommends for it, by path and name).
ADDON_POD_IDENTITY_CONFIGURATION: dict[str, list[tuple[str, list[str]]]] = {
    "aws-ebs-csi-driver": [("ebs-csi-controller-sa", ["service-role/AmazonEBSCSIDriverPolicy"])],
    "aws-efs-csi-driver": [("efs-csi-controller-sa", ["service-role/AmazonEFSCSIDriverPolicy"])],
    "vpc-cni": [("aws-node", ["AmazonEKS_CNI_Policy"])],
    "amazon-cloudwatch-observability": [
        ("cloudwatch-agent", ["CloudWatchAgentServerPolicy", "AWSXrayWriteOnlyAccess"])
    ],
    "coredns": [],
}


def association_id() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "a-" + "".join(secrets.choice(alphabet) for _ in range(17))


def page_size(call: Call) -> int:
    raw = call.param("maxResults")
    if raw is None:
        return 100
    try:
        size = int(raw)
    except ValueError:
        size = 0
    if not 1 <= size <= 100:
        raise invalid_parameter("maxResults must be between 1 and 100")
    return size


def paginate(call: Call, keys: list[str]) -> tuple[list[str], str | None]:
    """One page of sorted keys; the token names the last key handed out."""
    keys = sorted(keys)
    size = page_size(call)
    token = call.param("nextToken")
    if token:
        try:
            after = json.loads(base64.urlsafe_b64decode(token.encode()))["after"]
        except (ValueError, KeyError, TypeError) as err:
            raise invalid_parameter("The nextToken is not valid") from err
        keys = [k for k in keys if k > after]
    page = keys[:size]
    next_token = None
    if len(keys) > size:
        next_token = base64.urlsafe_b64encode(json.dumps({"after": page[-1]}).encode()).decode()
    return page, next_token


def with_token(payload: dict, token: str | None) -> dict:
    if token:
        payload["nextToken"] = token
    return payload


def role_exists(arn: str) -> bool:
    match = ROLE_ARN.fullmatch(arn)
    if not match:
        return False
    partition, account = match.groups()
    backend = iam_backends[account][partition]
    return any(role.arn == arn for role in backend.roles.values())


def require_role(arn: Any, field_name: str = "roleArn") -> str:
    if not isinstance(arn, str) or not arn:
        raise invalid_parameter(f"{field_name} is required")
    if not role_exists(arn):
        raise invalid_parameter(f"Role {arn} does not exist")
    return arn


def session_policy(value: Any) -> str:
    """An association's session policy: a JSON policy document of at most 2,048 characters, as STS
    takes it."""
    if not isinstance(value, str) or not value:
        raise invalid_parameter("policy must be a non-empty JSON policy document")
    if len(value) > 2048:
        raise invalid_parameter(f"policy is {len(value)} characters, more than 2048")
    try:
        document = json.loads(value)
    except ValueError as err:
        raise invalid_parameter(f"policy is not JSON: {err}") from err
    if not isinstance(document, dict) or "Statement" not in document:
        raise invalid_parameter("policy is not a policy document")
    return value


def require_untagged_for_policy(association: dict) -> None:
    """EKS takes a session policy only with its session tags off."""
    if association.get("policy") and not association.get("disableSessionTags"):
        raise invalid_parameter("policy requires disableSessionTags to be true")


def require_string(body: dict, name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise invalid_parameter(f"{name} is required")
    return value


def tags_of(body: dict) -> dict:
    tags = body.get("tags") or {}
    if not isinstance(tags, dict):
        raise invalid_parameter("tags must be a map of strings")
    return dict(tags)


def addon_pod_identities(value: Any) -> list[dict]:
    """Validate an add-on request's podIdentityAssociations list."""
    if not isinstance(value, list):
        raise invalid_parameter("podIdentityAssociations must be a list")
    seen = set()
    result = []
    for item in value:
        if not isinstance(item, dict):
            raise invalid_parameter("each podIdentityAssociations entry must be an object")
        service_account = require_string(item, "serviceAccount")
        if service_account in seen:
            raise invalid_parameter(f"Service account {service_account} is listed more than once")
        seen.add(service_account)
        result.append({"serviceAccount": service_account, "roleArn": require_role(item.get("roleArn"))})
    return result


class Eks:
    """EKS operations moto does not implement, plus post-processing of some it does."""

    def __init__(self, moto: WsgiApp):
        self.moto = moto
        self.lock = threading.RLock()
        self.clusters: dict[tuple[str, str, str], ClusterState] = {}
        self.overrides: dict[str, dict] = {}
        self.routes: list[tuple[str, re.Pattern, str, Callable | None]] = []
        cluster = r"/clusters/(?P<cluster>[^/]+)"
        for method, pattern, operation, handler in [
            ("GET", r"/addons/configuration-schemas", "DescribeAddonConfiguration",
             self.describe_addon_configuration),
            ("POST", r"/clusters", "CreateCluster", None),
            ("GET", r"/clusters", "ListClusters", None),
            ("GET", cluster, "DescribeCluster", self.describe_cluster),
            ("DELETE", cluster, "DeleteCluster", None),
            ("POST", cluster + r"/addons", "CreateAddon", self.create_addon),
            ("GET", cluster + r"/addons", "ListAddons", self.list_addons),
            ("GET", cluster + r"/addons/(?P<addon>[^/]+)", "DescribeAddon", self.describe_addon),
            ("POST", cluster + r"/addons/(?P<addon>[^/]+)/update", "UpdateAddon", self.update_addon),
            ("DELETE", cluster + r"/addons/(?P<addon>[^/]+)", "DeleteAddon", self.delete_addon),
            ("GET", cluster + r"/updates", "ListUpdates", self.list_updates),
            ("GET", cluster + r"/updates/(?P<update>[^/]+)", "DescribeUpdate", self.describe_update),
            ("POST", cluster + r"/pod-identity-associations", "CreatePodIdentityAssociation",
             self.create_association),
            ("GET", cluster + r"/pod-identity-associations", "ListPodIdentityAssociations",
             self.list_associations),
            ("GET", cluster + r"/pod-identity-associations/(?P<id>[^/]+)",
             "DescribePodIdentityAssociation", self.describe_association),
            ("POST", cluster + r"/pod-identity-associations/(?P<id>[^/]+)",
             "UpdatePodIdentityAssociation", self.update_association),
            ("DELETE", cluster + r"/pod-identity-associations/(?P<id>[^/]+)",
             "DeletePodIdentityAssociation", self.delete_association),
        ]:  # fmt: skip
            self.routes.append((method, re.compile(pattern + "/?"), operation, handler))

    def route(self, call: Call) -> tuple[str, Callable | None, dict]:
        for method, pattern, operation, handler in self.routes:
            match = pattern.fullmatch(call.path)
            if match and method == call.method:
                return operation, handler, match.groupdict()
        return f"moto:{call.method} {call.path}", None, {}

    def reset(self) -> None:
        with self.lock:
            self.clusters.clear()
            self.overrides.clear()

    def cluster(self, call: Call, name: str) -> ClusterState:
        key = (call.account, call.region, name)
        try:
            moto_cluster = eks_backends[call.account][call.region].clusters.get(name)
        except KeyError:  # a region moto does not know
            moto_cluster = None
        if moto_cluster is None:
            self.clusters.pop(key, None)
            raise not_found(f"No cluster found for name: {name}.")
        state = self.clusters.get(key)
        if state is None or state.owner is not moto_cluster:
            state = self.clusters[key] = ClusterState(owner=moto_cluster)
        return state

    def dispatch(self, call: Call, handler: Callable, params: dict, start_response: Callable):
        try:
            with self.lock:
                response = handler(call, **params)
        except ApiError as err:
            response = rest_json_error(err)
        return response.send(start_response)

    # -- DescribeCluster --------------------------------------------------------------------

    def describe_cluster(self, call: Call, cluster: str) -> Response:
        response = call_wsgi(self.moto, call.environ)
        override = self.overrides.get(cluster)
        if response.status != 200 or not override:
            return response
        payload = json.loads(response.body)
        described = payload.get("cluster", {})
        if "endpoint" in override:
            described["endpoint"] = override["endpoint"]
        if "ca_data" in override:
            described.setdefault("certificateAuthority", {})["data"] = override["ca_data"]
        if "oidc_issuer" in override:
            described.setdefault("identity", {}).setdefault("oidc", {})["issuer"] = override["oidc_issuer"]
        if "status" in override:
            described["status"] = override["status"]
        response.body = json.dumps(payload).encode()
        return response

    # -- add-ons ----------------------------------------------------------------------------

    def addon_json(self, addon: dict) -> dict:
        result = {k: v for k, v in addon.items() if not k.startswith("_")}
        if result.get("serviceAccountRoleArn") is None:
            result.pop("serviceAccountRoleArn", None)
        return result

    def find_addon(self, state: ClusterState, cluster: str, name: str) -> dict:
        addon = state.addons.get(name)
        if addon is None:
            raise not_found(f"No addon: {name} found in cluster: {cluster}")
        return addon

    def claim_service_accounts(self, state: ClusterState, namespace: str, wanted: list[dict], owner: str):
        """Fail if another association already holds one of these service accounts."""
        for item in wanted:
            for assoc in state.associations.values():
                if (
                    assoc["namespace"] == namespace
                    and assoc["serviceAccount"] == item["serviceAccount"]
                    and assoc.get("ownerArn") != owner
                ):
                    raise in_use(
                        f"Association already exists for service account {item['serviceAccount']} "
                        f"in namespace {namespace}: {assoc['associationId']}"
                    )

    def sync_owned_associations(
        self, call: Call, state: ClusterState, cluster: str, addon: dict, wanted: list[dict]
    ):
        """Make the add-on's owned associations exactly `wanted`: create, repoint, delete."""
        namespace = addon["_namespace"]
        owned = {
            a["serviceAccount"]: a
            for a in state.associations.values()
            if a.get("ownerArn") == addon["addonArn"]
        }
        keep = set()
        for item in wanted:
            assoc = owned.get(item["serviceAccount"])
            if assoc is None:
                assoc = self.new_association(
                    call,
                    state,
                    cluster,
                    namespace,
                    item["serviceAccount"],
                    item["roleArn"],
                    {},
                    owner=addon["addonArn"],
                )
            elif assoc["roleArn"] != item["roleArn"]:
                assoc["roleArn"] = item["roleArn"]
                assoc["modifiedAt"] = now()
            keep.add(assoc["associationId"])
        for assoc in owned.values():
            if assoc["associationId"] not in keep:
                del state.associations[assoc["associationId"]]
        addon["podIdentityAssociations"] = sorted(
            a["associationArn"] for a in state.associations.values() if a.get("ownerArn") == addon["addonArn"]
        )

    def create_addon(self, call: Call, cluster: str) -> Response:
        state = self.cluster(call, cluster)
        body = call.json()
        name = require_string(body, "addonName")
        if name in state.addons:
            raise in_use(f"Addon already exists: {name}")
        role = body.get("serviceAccountRoleArn") or None
        pod_identities = addon_pod_identities(body.get("podIdentityAssociations") or [])
        namespace = (body.get("namespaceConfig") or {}).get("namespace") or DEFAULT_ADDON_NAMESPACE
        created = now()
        addon = {
            "addonName": name,
            "clusterName": cluster,
            "status": "ACTIVE",
            "addonVersion": body.get("addonVersion") or "v1.0.0-eksbuild.1",
            "health": {"issues": []},
            "addonArn": f"arn:{call.partition}:eks:{call.region}:{call.account}:addon/{cluster}/{name}/{uuid.uuid4()}",
            "createdAt": created,
            "modifiedAt": created,
            "serviceAccountRoleArn": role,
            "tags": tags_of(body),
            "podIdentityAssociations": [],
            "_namespace": namespace,
        }
        if body.get("configurationValues"):
            addon["configurationValues"] = body["configurationValues"]
        self.claim_service_accounts(state, namespace, pod_identities, addon["addonArn"])
        state.addons[name] = addon
        self.sync_owned_associations(call, state, cluster, addon, pod_identities)
        return json_response(200, {"addon": self.addon_json(addon)})

    def describe_addon_configuration(self, call: Call) -> Response:
        name = call.param("addonName")
        version = call.param("addonVersion")
        if not name or not version:
            raise invalid_parameter("addonName and addonVersion are required")
        recommended = ADDON_POD_IDENTITY_CONFIGURATION.get(name)
        if recommended is None:
            raise not_found(f"No add-on named {name}")
        # moto loads no AWS managed policy by default: the recommended ones are put in the
        # caller's account, as AWS has them in every account.
        ensure_aws_managed_policies(call, [p for _, policies in recommended for p in policies])
        return json_response(
            200,
            {
                "addonName": name,
                "addonVersion": version,
                "configurationSchema": "{}",
                "podIdentityConfiguration": [
                    {
                        "serviceAccount": service_account,
                        "recommendedManagedPolicies": [
                            f"arn:{call.partition}:iam::aws:policy/{policy}" for policy in policies
                        ],
                    }
                    for service_account, policies in recommended
                ],
            },
        )

    def list_addons(self, call: Call, cluster: str) -> Response:
        state = self.cluster(call, cluster)
        page, token = paginate(call, list(state.addons))
        return json_response(200, with_token({"addons": page}, token))

    def describe_addon(self, call: Call, cluster: str, addon: str) -> Response:
        state = self.cluster(call, cluster)
        return json_response(200, {"addon": self.addon_json(self.find_addon(state, cluster, addon))})

    def update_addon(self, call: Call, cluster: str, addon: str) -> Response:
        state = self.cluster(call, cluster)
        current = self.find_addon(state, cluster, addon)
        body = call.json()
        params = []
        pod_identities = None
        if body.get("podIdentityAssociations") is not None:
            pod_identities = addon_pod_identities(body["podIdentityAssociations"])
            self.claim_service_accounts(state, current["_namespace"], pod_identities, current["addonArn"])
        if body.get("addonVersion"):
            current["addonVersion"] = body["addonVersion"]
            params.append({"type": "AddonVersion", "value": body["addonVersion"]})
        if "serviceAccountRoleArn" in body and body["serviceAccountRoleArn"] is not None:
            current["serviceAccountRoleArn"] = body["serviceAccountRoleArn"] or None
            params.append({"type": "ServiceAccountRoleArn", "value": body["serviceAccountRoleArn"]})
        if body.get("resolveConflicts"):
            params.append({"type": "ResolveConflicts", "value": body["resolveConflicts"]})
        if body.get("configurationValues") is not None:
            current["configurationValues"] = body["configurationValues"]
            params.append({"type": "ConfigurationValues", "value": body["configurationValues"]})
        if pod_identities is not None:
            self.sync_owned_associations(call, state, cluster, current, pod_identities)
            params.append({"type": "PodIdentityAssociations", "value": json.dumps(pod_identities)})
        current["modifiedAt"] = now()
        update = {
            "id": str(uuid.uuid4()),
            "status": "Successful",
            "type": "AddonUpdate",
            "params": params,
            "createdAt": current["modifiedAt"],
            "errors": [],
        }
        state.updates[update["id"]] = {**update, "_addon": addon}
        return json_response(200, {"update": update})

    def delete_addon(self, call: Call, cluster: str, addon: str) -> Response:
        state = self.cluster(call, cluster)
        current = self.find_addon(state, cluster, addon)
        self.sync_owned_associations(call, state, cluster, current, [])
        del state.addons[addon]
        return json_response(200, {"addon": {**self.addon_json(current), "status": "DELETING"}})

    def list_updates(self, call: Call, cluster: str) -> Response:
        state = self.cluster(call, cluster)
        addon = call.param("addonName")
        if addon:
            self.find_addon(state, cluster, addon)
        ids = [u["id"] for u in state.updates.values() if u["_addon"] == addon]
        page, token = paginate(call, ids)
        return json_response(200, with_token({"updateIds": page}, token))

    def describe_update(self, call: Call, cluster: str, update: str) -> Response:
        state = self.cluster(call, cluster)
        found = state.updates.get(update)
        addon = call.param("addonName")
        if found is None or (addon and found["_addon"] != addon):
            raise not_found(f"No update found for ID: {update}")
        return json_response(200, {"update": {k: v for k, v in found.items() if not k.startswith("_")}})

    # -- Pod Identity associations ----------------------------------------------------------

    def new_association(
        self,
        call: Call,
        state: ClusterState,
        cluster: str,
        namespace: str,
        service_account: str,
        role: str,
        tags: dict,
        owner: str | None = None,
        extra: dict | None = None,
    ) -> dict:
        assoc_id = association_id()
        created = now()
        assoc = {
            "clusterName": cluster,
            "namespace": namespace,
            "serviceAccount": service_account,
            "roleArn": role,
            "associationArn": f"arn:{call.partition}:eks:{call.region}:{call.account}:podidentityassociation/{cluster}/{assoc_id}",
            "associationId": assoc_id,
            "tags": tags,
            "createdAt": created,
            "modifiedAt": created,
            "disableSessionTags": False,
            **(extra or {}),
        }
        if owner:
            assoc["ownerArn"] = owner
        state.associations[assoc_id] = assoc
        return assoc

    def fill_associations(self, cluster: str, payload: Any) -> dict:
        """Adds `count` associations to a cluster without a request each (a cluster near EKS's
        quota of associations): `{"count", "namespace", "roleArn", "account"?, "region"?}`;
        ServiceAccounts `filler-<n>`."""
        if not isinstance(payload, dict) or not isinstance(payload.get("count"), int):
            raise ValueError('expected {"count": N, "namespace": "...", "roleArn": "...", "account"?, "region"?}')
        call = Call({}, "POST", "", {}, "eks", str(payload.get("region") or "us-east-1"), None)
        account = str(payload.get("account") or DEFAULT_ACCOUNT_ID)
        call.environ["HTTP_X_MOTO_ACCOUNT_ID"] = account
        try:
            state = self.cluster(call, cluster)
        except ApiError as err:
            raise ValueError(str(err)) from err
        namespace, role = str(payload.get("namespace") or "fill"), str(payload.get("roleArn") or "")
        start = len(state.associations)
        for n in range(payload["count"]):
            self.new_association(call, state, cluster, namespace, f"filler-{start + n}", role, {})
        return {"associations": len(state.associations)}

    def find_association(self, state: ClusterState, assoc_id: str) -> dict:
        assoc = state.associations.get(assoc_id)
        if assoc is None:
            raise not_found(f"Pod Identity association not found: {assoc_id}")
        return assoc

    def create_association(self, call: Call, cluster: str) -> Response:
        state = self.cluster(call, cluster)
        body = call.json()
        token = body.get("clientRequestToken")
        if token and state.tokens.get(token) in state.associations:
            return json_response(200, {"association": state.associations[state.tokens[token]]})
        namespace = require_string(body, "namespace")
        service_account = require_string(body, "serviceAccount")
        role = require_role(body.get("roleArn"))
        self.claim_service_accounts(state, namespace, [{"serviceAccount": service_account}], owner="")
        extra = {}
        if body.get("disableSessionTags") is not None:
            extra["disableSessionTags"] = bool(body["disableSessionTags"])
        if body.get("targetRoleArn"):
            extra["targetRoleArn"] = require_role(body["targetRoleArn"], "targetRoleArn")
        if body.get("policy") is not None:
            extra["policy"] = session_policy(body["policy"])
        require_untagged_for_policy(extra)
        assoc = self.new_association(
            call, state, cluster, namespace, service_account, role, tags_of(body), extra=extra
        )
        if token:
            state.tokens[token] = assoc["associationId"]
        return json_response(200, {"association": assoc})

    def list_associations(self, call: Call, cluster: str) -> Response:
        state = self.cluster(call, cluster)
        namespace = call.param("namespace")
        service_account = call.param("serviceAccount")
        ids = [
            a["associationId"]
            for a in state.associations.values()
            if (namespace is None or a["namespace"] == namespace)
            and (service_account is None or a["serviceAccount"] == service_account)
        ]
        page, token = paginate(call, ids)
        summaries = [
            {k: state.associations[i][k] for k in ASSOCIATION_SUMMARY_KEYS if k in state.associations[i]}
            for i in page
        ]
        return json_response(200, with_token({"associations": summaries}, token))

    def describe_association(self, call: Call, cluster: str, id: str) -> Response:
        state = self.cluster(call, cluster)
        return json_response(200, {"association": self.find_association(state, id)})

    def refuse_owned(self, assoc: dict, verb: str) -> None:
        if assoc.get("ownerArn"):
            raise invalid_request(
                f"Cannot {verb} Pod Identity association {assoc['associationId']}: it is owned by "
                f"{assoc['ownerArn']}; change it through the add-on"
            )

    def update_association(self, call: Call, cluster: str, id: str) -> Response:
        state = self.cluster(call, cluster)
        assoc = self.find_association(state, id)
        self.refuse_owned(assoc, "update")
        body = call.json()
        # Checked whole before anything changes: a refused update changes nothing.
        changed = dict(assoc)
        if body.get("roleArn"):
            changed["roleArn"] = require_role(body["roleArn"])
        if body.get("disableSessionTags") is not None:
            changed["disableSessionTags"] = bool(body["disableSessionTags"])
        if "targetRoleArn" in body:
            if body["targetRoleArn"]:
                changed["targetRoleArn"] = require_role(body["targetRoleArn"], "targetRoleArn")
            else:
                changed.pop("targetRoleArn", None)
        if body.get("policy") is not None:
            changed["policy"] = session_policy(body["policy"])
        require_untagged_for_policy(changed)
        assoc.clear()
        assoc.update(changed)
        assoc["modifiedAt"] = now()
        return json_response(200, {"association": assoc})

    def delete_association(self, call: Call, cluster: str, id: str) -> Response:
        state = self.cluster(call, cluster)
        assoc = self.find_association(state, id)
        self.refuse_owned(assoc, "delete")
        del state.associations[id]
        return json_response(200, {"association": assoc})


# ---------------------------------------------------------------------------------------------
# IAM checks moto skips


def iam_delete_policy_conflict(call: Call) -> Response | None:
    """Real IAM refuses to delete a managed policy that is attached or has extra versions."""
    arn = (call.form().get("PolicyArn") or [""])[0]
    backend = iam_backends[call.account][call.partition]
    policy = backend.managed_policies.get(arn)
    if policy is None:
        return None
    entities = [*backend.roles.values(), *backend.users.values(), *backend.groups.values()]
    if any(arn in entity.managed_policies for entity in entities):
        return query_error(call, 409, "DeleteConflict", "Cannot delete a policy attached to entities.")
    if len(policy.versions) > 1:
        return query_error(
            call,
            409,
            "DeleteConflict",
            "This policy has more than one version. Before you delete a policy, you must delete "
            "the policy's versions. The default version is deleted with the policy.",
        )
    return None


def iam_policy_details(call: Call, app: WsgiApp) -> Response:
    """GetAccountAuthorizationDetails as IAM answers it: moto leaves `PolicyName` and `PolicyId`
    out of the managed policies' entries (`Policies`); real IAM always gives both."""
    response = call_wsgi(app, call.environ)
    if response.status != 200:
        return response
    text = response.body.decode("utf-8")
    section = re.search(r"<Policies>.*</Policies>", text, re.DOTALL)
    if section is None or "<PolicyName>" in section.group(0):
        return response
    backend = iam_backends[call.account][call.partition]

    def named(match: re.Match) -> str:
        arn = unescape(match.group(1))
        policy = backend.managed_policies.get(arn)
        if policy is None:
            return match.group(0)
        return f"{match.group(0)}<PolicyName>{escape(policy.name)}</PolicyName><PolicyId>{escape(policy.id)}</PolicyId>"

    filled = re.sub(r"<Arn>([^<]*)</Arn>", named, section.group(0))
    response.body = (text[: section.start()] + filled + text[section.end() :]).encode("utf-8")
    return response


# ---------------------------------------------------------------------------------------------
# The middleware


def call_wsgi(app: WsgiApp, environ: dict) -> Response:
    captured: dict[str, Any] = {}
    chunks: list[bytes] = []

    def start_response(status: str, headers: list, exc_info: Any = None):
        captured["status"] = int(status.split()[0])
        captured["headers"] = list(headers)
        return chunks.append

    result = app(environ, start_response)
    try:
        chunks.extend(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    return Response(captured["status"], captured["headers"], b"".join(chunks))


# Paging parameters counted per value (`GET /_harness/parameters`): IAM's query-protocol form
# fields and EKS's query string.
COUNTED_PARAMETERS: dict[str, tuple[str, ...]] = {
    "iam": ("MaxItems", "Marker"),
    "eks": ("maxResults",),
}
QUERY_SERVICES = {"iam", "sts"}


class Emulator:
    def __init__(self) -> None:
        self.moto = DomainDispatcherApplication(create_backend_app)
        self.eks = Eks(self.moto)
        self.lock = threading.Lock()
        self.faults: list[Fault] = []
        self.counts: dict[str, dict[str, int]] = {}
        # service -> operation -> "Name=value" -> count, for the paging parameters in
        # COUNTED_PARAMETERS (what a request asked for, which the emulator may not honour).
        self.parameters: dict[str, dict[str, dict[str, int]]] = {}
        # (service, operation) -> seconds each such request is held before it is answered, and
        # the requests held at once now and at most (`/_harness/delays`).
        self.delays: dict[tuple[str, str], float] = {}
        self.held: dict[tuple[str, str], int] = {}
        self.peaks: dict[str, dict[str, int]] = {}
        # S3 operation -> object key -> count (`GET /_harness/objects`): which objects a run read
        # or wrote, not only how many.
        self.objects: dict[str, dict[str, int]] = {}

    def __call__(self, environ: dict, start_response: Callable):
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_harness/"):
            return self.control(environ, path).send(start_response)
        if path.startswith("/moto-api"):
            return self.moto(environ, start_response)

        call = make_call(environ)
        route = None
        if call.service == "eks":
            route = self.eks.route(call)
            operation = route[0]
        elif call.service == "s3":
            operation = s3_operation(call)
        else:
            operation = generic_operation(call)

        with self.lock:
            per_service = self.counts.setdefault(call.service, {})
            per_service[operation] = per_service.get(operation, 0) + 1
            if call.service == "s3":
                key = unquote(call.path.lstrip("/").partition("/")[2])
                if key:
                    keys = self.objects.setdefault(operation, {})
                    keys[key] = keys.get(key, 0) + 1
            for name in COUNTED_PARAMETERS.get(call.service, ()):
                value = call.form().get(name) if call.service in QUERY_SERVICES else call.query.get(name)
                if value:
                    seen = self.parameters.setdefault(call.service, {}).setdefault(operation, {})
                    key = f"{name}={value[0]}"
                    seen[key] = seen.get(key, 0) + 1
            fault = next((f for f in self.faults if f.matches(call.service, operation)), None)
            if fault:
                fault.remaining -= 1
                if fault.remaining == 0:
                    self.faults.remove(fault)
            delay = self.delays.get((call.service, operation))
            if delay:
                held = (call.service, operation)
                self.held[held] = self.held.get(held, 0) + 1
                peaks = self.peaks.setdefault(call.service, {})
                peaks[operation] = max(peaks.get(operation, 0), self.held[held])
        if delay:
            time.sleep(delay)
            with self.lock:
                self.held[held] -= 1
        if fault:
            if call.body is None:
                read_body(environ)  # drain it, so a kept-alive connection stays in step
            return fault_response(call, fault).send(start_response)

        if route and route[1]:
            return self.eks.dispatch(call, route[1], route[2], start_response)
        if call.service == "iam" and operation == "GetAccountAuthorizationDetails":
            return iam_policy_details(call, self.moto).send(start_response)
        if call.service == "iam" and operation == "DeletePolicy":
            conflict = iam_delete_policy_conflict(call)
            if conflict:
                return conflict.send(start_response)
        return self.moto(environ, start_response)

    # -- /_harness/ ---------------------------------------------------------------------------

    def control(self, environ: dict, path: str) -> Response:
        method = environ["REQUEST_METHOD"].upper()
        try:
            body = read_body(environ)
            payload = json.loads(body) if body.strip() else None
        except ValueError as err:
            return json_response(400, {"error": f"body is not JSON: {err}"})
        try:
            return self.control_route(method, path, payload)
        except (TypeError, ValueError) as err:
            return json_response(400, {"error": str(err)})

    def control_route(self, method: str, path: str, payload: Any) -> Response:
        if path == "/_harness/reset" and method == "POST":
            moto_api_backend.reset()
            self.eks.reset()
            with self.lock:
                self.faults.clear()
                self.counts.clear()
                self.parameters.clear()
                self.delays.clear()
                self.peaks.clear()
            return json_response(200, {"status": "ok"})
        if path == "/_harness/faults":
            with self.lock:
                if method == "POST":
                    items = payload if isinstance(payload, list) else [payload]
                    self.faults.extend([parse_fault(item) for item in items])
                elif method == "DELETE":
                    self.faults.clear()
                elif method != "GET":
                    return method_not_allowed()
                return json_response(200, {"faults": [f.to_json() for f in self.faults]})
        if path == "/_harness/requests":
            with self.lock:
                if method == "DELETE":
                    self.counts.clear()
                    self.parameters.clear()
                    self.peaks.clear()
                    self.objects.clear()
                elif method != "GET":
                    return method_not_allowed()
                return json_response(200, self.counts)
        if path == "/_harness/objects":
            with self.lock:
                if method != "GET":
                    return method_not_allowed()
                return json_response(200, self.objects)
        if path == "/_harness/parameters":
            with self.lock:
                if method != "GET":
                    return method_not_allowed()
                return json_response(200, self.parameters)
        if path == "/_harness/delays":
            with self.lock:
                if method == "POST":
                    items = payload if isinstance(payload, list) else [payload]
                    for item in items:
                        service, operation, seconds = parse_delay(item)
                        self.delays[(service, operation)] = seconds
                elif method == "DELETE":
                    self.delays.clear()
                elif method != "GET":
                    return method_not_allowed()
                return json_response(
                    200,
                    {
                        "delays": [
                            {"service": s, "operation": o, "seconds": d} for (s, o), d in self.delays.items()
                        ],
                        "peaks": self.peaks,
                    },
                )
        if path == "/_harness/iam-quotas":
            if method != "POST":
                return method_not_allowed()
            return json_response(200, set_iam_quotas(payload))
        filled = re.fullmatch(r"/_harness/clusters/([^/]+)/associations", path)
        if filled:
            if method != "POST":
                return method_not_allowed()
            with self.eks.lock:
                return json_response(200, self.eks.fill_associations(filled.group(1), payload))
        cluster = re.fullmatch(r"/_harness/clusters/([^/]+)", path)
        if cluster:
            name = cluster.group(1)
            with self.eks.lock:
                if method == "PUT":
                    self.eks.overrides[name] = parse_override(payload)
                elif method == "DELETE":
                    self.eks.overrides.pop(name, None)
                elif method != "GET":
                    return method_not_allowed()
                return json_response(200, self.eks.overrides.get(name, {}))
        return json_response(404, {"error": f"no control at {method} {path}"})


def ensure_aws_managed_policies(call: Call, paths: list[str]) -> None:
    """Puts these AWS managed policies (`path/name`) in the caller's IAM, from moto's copy."""
    backend = iam_backends[call.account][call.partition]
    data = json.loads(aws_managed_policies_data)
    for path in paths:
        name = path.rsplit("/", 1)[-1]
        arn = f"arn:{call.partition}:iam::aws:policy/{path}"
        if arn not in backend.managed_policies and name in data:
            policy = AWSManagedPolicy.from_data(name, call.account, call.partition, data[name])
            backend.managed_policies[policy.arn] = policy


def set_iam_quotas(payload: Any) -> dict:
    """Sets quotas GetAccountSummary reports for one account: `{"account"?, "quotas": {"RolesQuota":
    N, ...}}` (keys as in the summary map). moto keeps them as attributes of its AccountSummary."""
    if not isinstance(payload, dict) or not isinstance(payload.get("quotas"), dict):
        raise ValueError('expected {"account"?: "...", "quotas": {"RolesQuota": 1000, ...}}')
    account = str(payload.get("account") or DEFAULT_ACCOUNT_ID)
    summary = iam_backends[account]["aws"].account_summary
    for key, value in payload["quotas"].items():
        if not (isinstance(key, str) and key.endswith("Quota")) or not isinstance(value, int):
            raise ValueError(f"{key!r}: expected a quota name ending in Quota and a whole number")
        attribute = "_" + re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()
        if not hasattr(summary, attribute):
            raise ValueError(f"{key!r} is not a quota of GetAccountSummary")
        setattr(summary, attribute, value)
    return {key: value for key, value in summary.summary_map.items() if key.endswith("Quota")}


def method_not_allowed() -> Response:
    return json_response(405, {"error": "method not allowed"})


def parse_delay(payload: Any) -> tuple[str, str, float]:
    if not isinstance(payload, dict):
        raise TypeError("a delay is a JSON object")
    service, operation, seconds = payload.get("service"), payload.get("operation"), payload.get("seconds")
    if not isinstance(service, str) or not isinstance(operation, str):
        raise TypeError("'service' and 'operation' must be strings")
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not 0 <= seconds <= 30:
        raise ValueError("'seconds' must be a number from 0 to 30")
    return service.lower(), operation, float(seconds)


def parse_override(payload: Any) -> dict:
    if not isinstance(payload, dict):
        raise TypeError("an override is a JSON object")
    allowed = {"endpoint", "ca_data", "oidc_issuer", "status"}
    unknown = set(payload) - allowed
    if unknown:
        raise ValueError(f"unknown override fields: {sorted(unknown)}; allowed: {sorted(allowed)}")
    for key, value in payload.items():
        if not isinstance(value, str):
            raise TypeError(f"'{key}' must be a string")
    return dict(payload)


# ---------------------------------------------------------------------------------------------
# Process lifecycle


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--ignore-stdin",
        action="store_true",
        help="keep running when stdin closes (for a shell that starts it in the background)",
    )
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args()

    if not args.verbose:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)

    server = make_server(args.host, args.port, Emulator(), threaded=True, request_handler=MotoRequestHandler)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    if not args.ignore_stdin:

        def watch_stdin() -> None:
            # os.read, not sys.stdin: a daemon thread blocked in a buffered read aborts
            # interpreter shutdown.
            while os.read(sys.stdin.fileno(), 65536):
                pass
            stop.set()

        threading.Thread(target=watch_stdin, name="stdin-watch", daemon=True).start()

    threading.Thread(target=server.serve_forever, name="serve", daemon=True).start()
    print(f"READY http://{args.host}:{server.server_port}", flush=True)
    # The parent may read only the READY line; keep anything printed later (moto prints
    # diagnostics) from filling a pipe nobody drains.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())

    while not stop.wait(0.2):
        pass
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
