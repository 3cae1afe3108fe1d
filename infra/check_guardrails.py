#!/usr/bin/env python3
"""Guardrail test of infra/template.yaml, infra/account-role.yaml and
infra/iam-events-forwarder.yaml: the IAM limits that make the reconciler safe to run, in the
deployment's account and in every account it reaches, and those of the event forwarding.

The reconciler can create IAM roles, so its own policy must make privilege escalation impossible.
This parses the template (plain YAML: the template writes intrinsic functions in their full
form) and fails, naming the statement, unless:

- every Allow statement with an IAM write has only resources under IamPath (roles and policies),
  or cluster OIDC providers for the OIDC actions; never `*`, never NotAction/NotResource;
- iam:CreateRole and iam:PutRolePermissionsBoundary are allowed only with the condition
  StringEquals iam:PermissionsBoundary = the template's boundary policy;
- every role with IAM writes denies iam:DeleteRolePermissionsBoundary on `*` and denies every
  change to the boundary policy;
- iam:PassRole is allowed only with iam:PassedToService limited to eks.amazonaws.com and
  pods.eks.amazonaws.com;
- the reconciler's queue has a VisibilityTimeout above the reconciler's Timeout, and its event
  source mapping reports batch item failures;
- the boundary policy and the functions' roles lie outside IamPath; the boundary denies iam:*;
- the boundary denies every action (`*`, unconditionally) on the system's own resources: each
  bucket and its keys, each queue (the dead-letter queue too), each function, each function's
  role, the boundary itself, and the roles and policies under IamPath;
- `[package.metadata.lambda.deploy]` of each function crate, where present, agrees with the
  template on memory and timeout (the cargo lambda and SAM deploys give the same function);
- every role with IAM writes denies sts:AssumeRole* on the roles under IamPath;
- the boundary, in each branch of its conditions (CrossAccountTargets), uses NotAction or
  NotResource, or allows anything beside BoundaryAllowedActions on `*`, only in the exact form
  of the cross-account carve-out: Deny BoundaryDeniedActions NotResource CARVE_OUT, Deny
  NotAction [sts:AssumeRole, sts:TagSession] on CARVE_OUT, Allow those two on CARVE_OUT
  (CARVE_OUT: the roles under IamPath of any account); and, evaluated on probes with the
  parameters' defaults, it lets a workload role call nothing else there (iam:PassRole,
  sts:AssumeRoleWithWebIdentity, ...), nothing on a role outside IamPath or on its own
  account's roles under IamPath, and those two on a target role only in the carve-out's branch;
- sts:AssumeRole is allowed only on the roles of the parameter AccountRoleArns;
- iam:AttachRolePolicy is allowed only with the condition ArnLike/ArnEquals iam:PolicyARN naming
  the policies under IamPath or AWS managed policies EKS recommends for its add-ons
  (RECOMMENDED_ADDON_POLICIES), never AdministratorAccess or any other.

Event forwarding (infra/account-role.yaml ForwardEvents, infra/iam-events-forwarder.yaml, the
bus policies of infra/template.yaml):

- a role that EventBridge assumes (trusted by events.amazonaws.com) may only events:PutEvents,
  only on a default event bus named by its region and account
  (arn:${AWS::Partition}:events:${R}:${A}:event-bus/default), never `*`, no NotAction or
  NotResource, no managed policy; every rule that sends to an event bus does so with such a
  role, to a bus that role may put events on;
- a rule that forwards to an event bus uses, word for word, the EventPattern of one of
  template.yaml's rules that invoke eks-events (the same events, scoped the same way);
- an event bus policy allows only events:PutEvents, only on this account's default bus of this
  region, and a `*` principal only with the condition StringEquals aws:PrincipalOrgID or
  aws:PrincipalAccount (a value that is no wildcard).

A template with none of the system's roles, only a forwarder (infra/iam-events-forwarder.yaml),
is checked for that alone.

A template without functions but with an `AccountRole` (infra/account-role.yaml, the role a
deployment assumes in another account) is checked as the reconciler's role is, with its own
boundary policy, and its trust must name only the deployment's roles (parameters), with the
condition StringEquals sts:ExternalId = the parameter ExternalId. Statements under Fn::If are
checked in both branches.

Then it proves it can fail: it breaks copies of the template in memory (a condition removed, a
`*` resource added, a deny removed, ...) and checks that each break is caught.

Usage: check_guardrails.py [TEMPLATE]   (exit 0: all guardrails hold and every self-test failed
as it should; exit 1 otherwise)
"""

from __future__ import annotations

import copy
import fnmatch
import itertools
import pathlib
import re
import sys

try:
    import tomllib
except ImportError:  # Python < 3.11: the metadata check is skipped.
    tomllib = None

import yaml

HERE = pathlib.Path(__file__).resolve().parent
WORKSPACE = HERE.parent

ALLOWED_PASSED_TO = {"eks.amazonaws.com", "pods.eks.amazonaws.com"}
BOUNDARY_ACTIONS = ("iam:CreateRole", "iam:PutRolePermissionsBoundary")
BOUNDARY_POLICY_CHANGES = (
    "iam:CreatePolicyVersion",
    "iam:DeletePolicy",
    "iam:DeletePolicyVersion",
    "iam:SetDefaultPolicyVersion",
)
# The AWS managed policies a role may get because EKS recommends them for an add-on.
RECOMMENDED_ADDON_POLICIES = {
    "service-role/AmazonEBSCSIDriverPolicy",
    "service-role/AmazonEFSCSIDriverPolicy",
    "AmazonEKS_CNI_Policy",
    "CloudWatchAgentServerPolicy",
    "AWSXrayWriteOnlyAccess",
}
AWS_MANAGED = "arn:${AWS::Partition}:iam::aws:policy/"
OWNED_POLICIES = "arn:${AWS::Partition}:iam::${AWS::AccountId}:policy${IamPath}*"
OIDC_ACTIONS = {
    "iam:createopenidconnectprovider",
    "iam:addclientidtoopenidconnectprovider",
    "iam:getopenidconnectprovider",
    "iam:tagopenidconnectprovider",
}
# The cross-account carve-out of the boundary (parameter CrossAccountTargets): a workload's role
# may chain into its target role, a role under IamPath of another account, and do nothing else
# there. These two actions on these roles, and not one more.
CARVE_OUT = "arn:${AWS::Partition}:iam::*:role${IamPath}*"
CHAINING = {"sts:assumerole", "sts:tagsession"}
# IAM actions that only read. Anything else with the iam: prefix (or a wildcard) is a write.
IAM_READ_PREFIXES = ("get", "list", "simulate", "generate")

ARN_PREFIX = "arn:${AWS::Partition}:iam::${AWS::AccountId}:"
UNDER_PATH = re.compile(r"^arn:\$\{AWS::Partition\}:iam::\$\{AWS::AccountId\}:(role|policy)\$\{IamPath\}")
OIDC_EKS = re.compile(r"^arn:\$\{AWS::Partition\}:iam::\$\{AWS::AccountId\}:oidc-provider/oidc\.eks\.")


# Event forwarding: the one place a forwarder may put events, and what a bus policy may grant.
EVENTS_SERVICE = "events.amazonaws.com"
FORWARD_TO_BUS = re.compile(r"^arn:\$\{AWS::Partition\}:events:\$\{[\w:]+\}:\$\{[\w:]+\}:event-bus/default$")
OWN_BUS = "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/default"
BUS_POLICY_PRINCIPAL_KEYS = {"aws:principalorgid", "aws:principalaccount"}


class Guardrail(Exception):
    pass


# ------------------------------------------------------------------ reading the template


def as_list(value):
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def text(value) -> str:
    """A readable, comparable form of a (possibly intrinsic) value: Fn::Sub strings as written,
    Ref X as ${X}, GetAtt [A, B] as ${A.B}, Fn::Join joined."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float, bool)):
        return str(value)
    if isinstance(value, dict) and len(value) == 1:
        (key, arg), = value.items()
        if key == "Ref":
            return "${%s}" % arg
        if key == "Fn::GetAtt":
            parts = arg if isinstance(arg, list) else str(arg).split(".", 1)
            return "${%s}" % ".".join(parts)
        if key == "Fn::Sub":
            return arg if isinstance(arg, str) else arg[0]
        if key == "Fn::Join":
            return arg[0].join(text(v) for v in arg[1])
    return repr(value)


def actions_of(statement) -> list[str]:
    return [text(a) for a in as_list(statement.get("Action"))]


def matches(patterns: list[str], action: str) -> bool:
    """Whether an action (iam:CreateRole) is granted by any of the action patterns (iam:Create*)."""
    return any(fnmatch.fnmatchcase(action.lower(), p.lower()) for p in patterns)


def is_iam_write(pattern: str) -> bool:
    p = pattern.lower()
    if p == "*" or p.startswith("${"):  # everything, or a parameter: assume the worst
        return True
    if not p.startswith("iam:"):
        return False
    # A wildcard is a read only when what precedes it already fixes a read verb (iam:Get*).
    verb = p[4:].split("*", 1)[0] if "*" in p else p[4:]
    return not any(verb.startswith(r) for r in IAM_READ_PREFIXES)


def branches(value) -> list:
    """The values an Fn::If may take, both branches (AWS::NoValue dropped); any other value as
    it is."""
    if isinstance(value, dict) and list(value) == ["Fn::If"] and len(value["Fn::If"]) == 3:
        _, yes, no = value["Fn::If"]
        return branches(yes) + branches(no)
    if value == {"Ref": "AWS::NoValue"}:
        return []
    return [value]


def statements_of(document) -> list:
    """The statements of a policy document, those under Fn::If in both branches."""
    return [b for st in as_list((document or {}).get("Statement")) for b in branches(st)]


def policies_of(resources):
    """(resource id, policy name, statement list) of every IAM policy document in the template."""
    for rid, res in resources.items():
        kind = res.get("Type")
        props = res.get("Properties") or {}
        if kind == "AWS::IAM::Role":
            for pol in as_list(props.get("Policies")):
                yield rid, text(pol.get("PolicyName")), statements_of(pol.get("PolicyDocument"))
        elif kind in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy", "AWS::IAM::RolePolicy"):
            yield rid, kind.rsplit("::", 1)[1], statements_of(props.get("PolicyDocument"))


def role_statements(resources, role_id):
    """Statements of a role's inline policies and of the managed or separate policies that
    attach to it within the template."""
    out = []
    for rid, name, statements in policies_of(resources):
        res = resources[rid]
        props = res.get("Properties") or {}
        attached = rid == role_id or any(
            text(r) == "${%s}" % role_id for r in as_list(props.get("Roles"))
        ) or text(props.get("RoleName")) == "${%s}" % role_id
        if attached:
            out.extend((f"{rid}/{name}", s) for s in statements)
    for arn in as_list((resources[role_id].get("Properties") or {}).get("ManagedPolicyArns")):
        ref = re.fullmatch(r"\$\{(\w+)\}", text(arn))
        if ref and ref.group(1) in resources:
            for rid, name, statements in policies_of({ref.group(1): resources[ref.group(1)]}):
                out.extend((f"{rid}/{name}", s) for s in statements)
    return out


def allows_put_events_only(st, who: str, negations, problems: list[str]) -> bool:
    """For an Allow statement that may only put events: whether the rest of it is worth checking
    (an Allow without any of `negations`); the problems with its actions go to `problems`."""
    if st.get("Effect") != "Allow":
        return False
    if any(k in st for k in negations):
        problems.append(f"{who} has an Allow with {'/'.join(negations)}; only events:PutEvents on the deployment's bus")
        return False
    acts = actions_of(st)
    if [a.lower() for a in acts] != ["events:putevents"]:
        problems.append(f"{who} allows {acts}; only events:PutEvents")
    return True


def label(where: str, index: int, statement) -> str:
    return f"{where}/{statement.get('Sid') or '#%d' % index}"


def is_account_template(template) -> bool:
    """infra/account-role.yaml: the role a deployment assumes in another account, no functions."""
    resources = template.get("Resources") or {}
    return "AccountRole" in resources and not any(
        res.get("Type") == "AWS::Serverless::Function" for res in resources.values()
    )


def boundary_id(resources) -> str:
    """The boundary policy: the managed policy the reconciler is told to put on every role (in
    an account template, the one the account role's CreateRole condition names)."""
    if "AccountRole" in resources and not any(
        res.get("Type") == "AWS::Serverless::Function" for res in resources.values()
    ):
        policies = [rid for rid, res in resources.items() if res.get("Type") == "AWS::IAM::ManagedPolicy"]
        if len(policies) != 1:
            raise Guardrail(f"the account template must have exactly one managed policy, its boundary (found {policies})")
        return policies[0]
    for rid, res in resources.items():
        if res.get("Type") != "AWS::Serverless::Function":
            continue
        env = ((res.get("Properties") or {}).get("Environment") or {}).get("Variables") or {}
        value = env.get("EKS_INTENTS_PERMISSIONS_BOUNDARY")
        if value is not None:
            ref = re.fullmatch(r"\$\{(\w+)\}", text(value))
            if not ref or resources.get(ref.group(1), {}).get("Type") != "AWS::IAM::ManagedPolicy":
                raise Guardrail(f"{rid}: EKS_INTENTS_PERMISSIONS_BOUNDARY must be Ref of the template's boundary policy")
            return ref.group(1)
    raise Guardrail("no function has EKS_INTENTS_PERMISSIONS_BOUNDARY: the reconciler would create roles without a boundary")


def boundary_arns(resources, boundary) -> set[str]:
    """The ways the template names the boundary policy: Ref, or its ARN built from its path and
    name (what the reconciler's role uses, since the boundary names that role)."""
    props = resources[boundary].get("Properties") or {}
    arn = ARN_PREFIX + "policy" + text(props.get("Path", "/")) + text(props.get("ManagedPolicyName"))
    return {"${%s}" % boundary, arn}


def system_resources(template, boundary) -> list[tuple[str, str]]:
    """(what, ARN as the template writes it) of every resource that is the system's own."""
    resources = template.get("Resources") or {}
    out = []
    for rid, res in resources.items():
        kind = res.get("Type")
        if kind == "AWS::S3::Bucket":
            out += [(f"the bucket {rid}", "${%s.Arn}" % rid), (f"the keys of the bucket {rid}", "${%s.Arn}/*" % rid)]
        elif kind == "AWS::SQS::Queue":
            out.append((f"the queue {rid}", "${%s.Arn}" % rid))
        elif kind == "AWS::Serverless::Function":
            name = text((res.get("Properties") or {}).get("FunctionName"))
            out.append((f"the function {rid}", "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:" + name))
            try:
                role = role_of(resources, rid, res)
                out.append((f"the role {role} of {rid}", "${%s.Arn}" % role))
            except Guardrail:
                pass  # reported by check()
    if is_account_template(template):
        for rid, res in resources.items():
            if res.get("Type") == "AWS::IAM::Role":
                out.append((f"the role {rid}", "${%s.Arn}" % rid))
    out.append((f"the boundary {boundary}", min(boundary_arns(resources, boundary), key=lambda n: n.startswith("${"))))
    out.append(("the roles under IamPath", ARN_PREFIX + "role${IamPath}*"))
    out.append(("the policies under IamPath", ARN_PREFIX + "policy${IamPath}*"))
    return out


def check_system_denied(template, boundary) -> list[str]:
    """The boundary denies every action on the system's own resources, so that no role widened
    by hand reaches the system."""
    resources = template.get("Resources") or {}
    statements = statements_of((resources[boundary].get("Properties") or {}).get("PolicyDocument"))
    denied: list[str] = []
    for st in statements:
        if (
            st.get("Effect") == "Deny"
            and not st.get("Condition")
            and "*" in [text(a) for a in as_list(st.get("Action"))]
        ):
            denied += [text(r) for r in as_list(st.get("Resource"))]
    names = boundary_arns(resources, boundary)
    problems = []
    for what, arn in system_resources(template, boundary):
        candidates = names if arn in names else {arn}
        role = re.fullmatch(r"\$\{(\w+)\.Arn\}", arn)
        if role and resources.get(role.group(1), {}).get("Type") == "AWS::IAM::Role":
            # A role named by its path and name (as a boundary that the role names must).
            props = resources[role.group(1)].get("Properties") or {}
            if props.get("RoleName"):
                candidates = {arn, ARN_PREFIX + "role" + text(props.get("Path", "/")) + text(props.get("RoleName"))}
        if not any(fnmatch.fnmatchcase(c, d) for c in candidates for d in denied):
            problems.append(f"{boundary}: the boundary does not deny every action on {what} ({arn})")
    return problems


def function_by_binary(template, binary):
    for rid, res in template["Resources"].items():
        if res.get("Type") == "AWS::Serverless::Function":
            if ((res.get("Metadata") or {}).get("BuildProperties") or {}).get("Binary") == binary:
                return rid, res
    raise Guardrail(f"no AWS::Serverless::Function builds the binary {binary}")


def function_property(template, res, name):
    props = res.get("Properties") or {}
    if name in props:
        return props[name]
    return ((template.get("Globals") or {}).get("Function") or {}).get(name)


def role_of(resources, fid, res):
    ref = re.fullmatch(r"\$\{(\w+)\.Arn\}", text((res.get("Properties") or {}).get("Role")))
    if not ref or resources.get(ref.group(1), {}).get("Type") != "AWS::IAM::Role":
        raise Guardrail(f"{fid}: Role must be Fn::GetAtt of a role of this template (no SAM-made role, no foreign role)")
    return ref.group(1)


# ------------------------------------------------------------------ the guardrails


def check_attachable(name: str, st) -> list[str]:
    """iam:AttachRolePolicy names the policies it may attach: the owned ones, or AWS managed
    policies EKS recommends for add-ons."""
    condition = st.get("Condition") or {}
    if set(condition) - {"ArnLike", "ArnEquals"} or not condition:
        return [f"{name}: allows iam:AttachRolePolicy without only ArnLike/ArnEquals iam:PolicyARN"]
    arns = [text(a) for op in condition.values() for a in as_list((op or {}).get("iam:PolicyARN"))]
    if not arns:
        return [f"{name}: allows iam:AttachRolePolicy without only ArnLike/ArnEquals iam:PolicyARN"]
    return [
        f"{name}: allows iam:AttachRolePolicy of {arn!r}, neither an owned policy nor one EKS recommends for an add-on"
        for arn in arns
        if arn != OWNED_POLICIES
        and not (arn.startswith(AWS_MANAGED) and arn[len(AWS_MANAGED):] in RECOMMENDED_ADDON_POLICIES)
    ]


def check(template) -> list[str]:
    """Every guardrail that does not hold, as one message each (empty: all hold)."""
    problems: list[str] = []
    resources = template.get("Resources") or {}
    params = template.get("Parameters") or {}
    if is_forwarder_template(template):
        return check_event_forwarding(template)
    try:
        boundary = boundary_id(resources)
    except Guardrail as e:
        return [str(e)]
    boundary_ref = "${%s}" % boundary
    boundary_refs = boundary_arns(resources, boundary)

    iam_path = str((params.get("IamPath") or {}).get("Default", ""))
    if not re.fullmatch(r"/[^/]+(/[^/]+)*/", iam_path):
        problems.append(f"Parameters/IamPath: default {iam_path!r} must be a path below / like /eks-intents/")

    # Which roles are the functions'.
    function_roles = {}
    for fid, res in resources.items():
        if res.get("Type") == "AWS::Serverless::Function":
            try:
                function_roles[fid] = role_of(resources, fid, res)
            except Guardrail as e:
                problems.append(str(e))

    for rid, res in resources.items():
        if res.get("Type") != "AWS::IAM::Role":
            continue
        props = res.get("Properties") or {}
        path = text(props.get("Path", "/"))
        if path != "/" and (path.startswith(iam_path) or "${IamPath}" in path):
            problems.append(f"{rid}: its Path {path!r} lies under IamPath, where the reconciler can change it")
        statements = role_statements(resources, rid)
        writes_iam = False
        for i, (where, st) in enumerate(statements):
            name = label(where, i, st)
            effect = st.get("Effect")
            acts = actions_of(st)
            if effect != "Allow":
                continue
            if "NotAction" in st or "NotResource" in st:
                problems.append(f"{name}: an Allow with NotAction/NotResource grants too much")
                continue
            writes = [a for a in acts if is_iam_write(a)]
            if writes:
                writes_iam = True
                only_oidc = all(a.lower() in OIDC_ACTIONS for a in writes)
                for r in as_list(st.get("Resource")):
                    r = text(r)
                    if "*" == r.strip() or r.startswith(ARN_PREFIX + "*") or r.endswith(":*"):
                        problems.append(f"{name}: IAM write {', '.join(writes)} on resource {r!r}; IAM writes must name roles or policies under IamPath")
                    elif not (UNDER_PATH.match(r) or (only_oidc and OIDC_EKS.match(r))):
                        problems.append(f"{name}: IAM write {', '.join(writes)} on {r!r}, which is not under IamPath")
            for action in BOUNDARY_ACTIONS:
                if matches(acts, action):
                    cond = (st.get("Condition") or {}).get("StringEquals") or {}
                    value = cond.get("iam:PermissionsBoundary")
                    if value is None or text(value) not in boundary_refs:
                        problems.append(f"{name}: allows {action} without the condition StringEquals iam:PermissionsBoundary = {boundary_ref}")
                    extra = set(st.get("Condition") or {}) - {"StringEquals"}
                    if extra:
                        problems.append(f"{name}: allows {action} with other condition operators ({', '.join(sorted(extra))}) beside StringEquals")
            if matches(acts, "sts:AssumeRole"):
                for r in as_list(st.get("Resource")):
                    if text(r) != "${AccountRoleArns}":
                        problems.append(f"{name}: allows sts:AssumeRole on {text(r)!r}; only the roles of the parameter AccountRoleArns may be assumed")
            if matches(acts, "iam:AttachRolePolicy"):
                problems.extend(check_attachable(name, st))
            if matches(acts, "iam:PassRole"):
                cond = (st.get("Condition") or {}).get("StringEquals") or {}
                services = [text(s) for s in as_list(cond.get("iam:PassedToService"))]
                if not services or not set(services) <= ALLOWED_PASSED_TO:
                    problems.append(f"{name}: allows iam:PassRole without StringEquals iam:PassedToService limited to {sorted(ALLOWED_PASSED_TO)} (found {services or 'none'})")
        if writes_iam:
            denies = [(label(w, i, s), s) for i, (w, s) in enumerate(statements) if s.get("Effect") == "Deny"]
            if not any(
                matches(actions_of(s), "iam:DeleteRolePermissionsBoundary")
                and "*" in [text(r) for r in as_list(s.get("Resource"))]
                and not s.get("Condition")
                for _, s in denies
            ):
                problems.append(f"{rid}: writes IAM but has no unconditional Deny of iam:DeleteRolePermissionsBoundary on *")
            for action in BOUNDARY_POLICY_CHANGES:
                if not any(
                    matches(actions_of(s), action)
                    and any(text(r) in boundary_refs | {"*"} for r in as_list(s.get("Resource")))
                    and not s.get("Condition")
                    for _, s in denies
                ):
                    problems.append(f"{rid}: writes IAM but has no unconditional Deny of {action} on the boundary policy {boundary_ref}")
            if not any(
                matches(actions_of(s), "sts:AssumeRole")
                and any(UNDER_PATH.match(text(r)) and text(r).endswith("${IamPath}*") for r in as_list(s.get("Resource")))
                and not s.get("Condition")
                for _, s in denies
            ):
                problems.append(f"{rid}: writes IAM but has no unconditional Deny of sts:AssumeRole on the roles under IamPath (it writes their trust policies)")

    if is_account_template(template):
        problems.extend(check_account_role(template))
    try:
        if is_account_template(template):
            raise StopIteration
        rid, res = function_by_binary(template, "reconciler")
        role = function_roles.get(rid)
        if role and not any(
            matches(actions_of(s), "iam:CreateRole") and s.get("Effect") == "Allow"
            for _, s in role_statements(resources, role)
        ):
            problems.append(f"{role}: the reconciler's role cannot create roles (iam:CreateRole)")
        problems.extend(check_queue(template, rid, res))
    except Guardrail as e:
        problems.append(str(e))
    except StopIteration:
        pass

    # The boundary itself: outside the path, and it keeps IAM out of reach by default.
    bprops = resources[boundary].get("Properties") or {}
    bpath = text(bprops.get("Path", "/"))
    if "${IamPath}" in bpath or (bpath != "/" and bpath.startswith(iam_path)):
        problems.append(f"{boundary}: the boundary policy lies under IamPath ({bpath!r})")
    problems.extend(check_boundary(template, boundary))

    problems.extend(check_system_denied(template, boundary))
    if not is_account_template(template):
        problems.extend(check_state_writers(template))
    problems.extend(check_cargo_metadata(template))
    problems.extend(check_event_forwarding(template))
    return problems


# ------------------------------------------------------------------ the boundary, branch by branch


def condition_names(value) -> set[str]:
    """The conditions the Fn::If of a value name."""
    if isinstance(value, dict):
        names = set()
        if list(value) == ["Fn::If"] and isinstance(value["Fn::If"], list) and value["Fn::If"]:
            names.add(str(value["Fn::If"][0]))
        for v in value.values():
            names |= condition_names(v)
        return names
    if isinstance(value, list):
        return set().union(*(condition_names(v) for v in value)) if value else set()
    return set()


NO_VALUE = object()


def resolve(value, conditions: dict):
    """The value as CloudFormation makes it when the conditions have these truth values: each
    Fn::If replaced by its branch, AWS::NoValue dropped."""
    if isinstance(value, dict):
        if list(value) == ["Fn::If"] and isinstance(value["Fn::If"], list) and len(value["Fn::If"]) == 3:
            name, yes, no = value["Fn::If"]
            return resolve(yes if conditions[str(name)] else no, conditions)
        if value == {"Ref": "AWS::NoValue"}:
            return NO_VALUE
        out = {k: resolve(v, conditions) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not NO_VALUE}
    if isinstance(value, list):
        return [v for v in (resolve(v, conditions) for v in value) if v is not NO_VALUE]
    return value


def glob(pattern: str, value: str, case: bool = True) -> bool:
    """IAM wildcard matching: `*` any run of characters (slashes too), `?` one character."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, 0 if case else re.IGNORECASE) is not None


# Stand-ins for the template's values when the boundary is evaluated: the deployment's account,
# another account (where target roles live), the parameters' defaults.
HOME_ACCOUNT = "111111111111"
OTHER_ACCOUNT = "333333333333"


def concrete(template, value: str) -> str:
    """A Fn::Sub string of the boundary with the pseudo parameters and parameters filled in."""
    params = template.get("Parameters") or {}

    def sub(m):
        name = m.group(1)
        fixed = {"AWS::Partition": "aws", "AWS::AccountId": HOME_ACCOUNT, "AWS::Region": "eu-west-2"}
        if name in fixed:
            return fixed[name]
        if name in params:
            return str(params[name].get("Default", ""))
        return f"arn:aws:system:::{name}"  # a resource of the template (${X.Arn}): its own
    return re.sub(r"\$\{([\w:.]+)\}", sub, value)


def expand(template, values, split: bool) -> list[str]:
    """Actions or resources of a statement, a CommaDelimitedList parameter as its default's items."""
    params = template.get("Parameters") or {}
    out = []
    for v in as_list(values):
        ref = re.fullmatch(r"\$\{(\w+)\}", text(v))
        if split and ref and ref.group(1) in params:
            out += [x.strip() for x in str(params[ref.group(1)].get("Default", "")).split(",")]
        else:
            out.append(concrete(template, text(v)))
    return out


def applies(template, st, action: str, resource: str) -> bool:
    """Whether a statement applies to an action on a resource. A statement with a Condition is
    taken to apply when it allows and not to when it denies: the worst case."""
    if st.get("Condition") and st.get("Effect") == "Deny":
        return False
    if "NotAction" in st:
        acted = not any(glob(a, action, case=False) for a in expand(template, st["NotAction"], True))
    else:
        acted = any(glob(a, action, case=False) for a in expand(template, st.get("Action"), True))
    if "NotResource" in st:
        reached = not any(glob(r, resource) for r in expand(template, st["NotResource"], True))
    else:
        reached = any(glob(r, resource) for r in expand(template, st.get("Resource"), True))
    return acted and reached


def boundary_allows(template, statements, action: str, resource: str) -> bool:
    """Whether a role under the boundary may call the action on the resource, as far as the
    boundary decides (explicit Deny wins; else some Allow must match)."""
    if any(st.get("Effect") == "Deny" and applies(template, st, action, resource) for st in statements):
        return False
    return any(st.get("Effect") == "Allow" and applies(template, st, action, resource) for st in statements)


def check_boundary(template, boundary) -> list[str]:
    """The boundary's statements in each branch of its conditions (CrossAccountTargets): that it
    denies iam:* by default, that NotAction/NotResource and any Allow beside the cap appear only
    in the exact form of the cross-account carve-out (sts:AssumeRole and sts:TagSession on
    CARVE_OUT), and, evaluated on probes, that nothing else is un-denied."""
    resources = template.get("Resources") or {}
    document = (resources[boundary].get("Properties") or {}).get("PolicyDocument") or {}
    names = sorted(condition_names(document))
    problems = []
    for values in itertools.product([True, False], repeat=len(names)):
        conditions = dict(zip(names, values))
        where = " (%s)" % ", ".join(f"{n}={str(v).lower()}" for n, v in conditions.items()) if names else ""
        statements = [st for st in as_list(resolve(document, conditions).get("Statement")) if isinstance(st, dict)]
        problems += [f"{boundary}{where}: {p}" for p in boundary_branch_problems(template, statements)]
    return problems


def boundary_branch_problems(template, statements) -> list[str]:
    problems = []
    carve_deny = carve_guard = carve_allow = False
    for i, st in enumerate(statements):
        sid = st.get("Sid") or "#%d" % i
        effect = st.get("Effect")
        acts = {text(a).lower() for a in as_list(st.get("Action"))}
        res = [text(r) for r in as_list(st.get("Resource"))]
        if "NotAction" in st or "NotResource" in st:
            if (
                effect == "Deny" and not st.get("Condition") and "NotAction" not in st and "Resource" not in st
                and [text(a) for a in as_list(st.get("Action"))] == ["${BoundaryDeniedActions}"]
                and [text(r) for r in as_list(st["NotResource"])] == [CARVE_OUT]
            ):
                carve_deny = True
            elif (
                effect == "Deny" and not st.get("Condition") and "Action" not in st and "NotResource" not in st
                and {text(a).lower() for a in as_list(st["NotAction"])} == CHAINING
                and len(as_list(st["NotAction"])) == len(CHAINING) and res == [CARVE_OUT]
            ):
                carve_guard = True
            else:
                problems.append(f"{sid}: NotAction/NotResource in the boundary other than the cross-account carve-out "
                                f"(Deny BoundaryDeniedActions NotResource {CARVE_OUT}; Deny NotAction sts:AssumeRole, sts:TagSession on {CARVE_OUT})")
        elif effect == "Allow":
            if [text(a) for a in as_list(st.get("Action"))] == ["${BoundaryAllowedActions}"] and res == ["*"] and not st.get("Condition"):
                continue
            if acts == CHAINING and len(as_list(st.get("Action"))) == len(CHAINING) and res == [CARVE_OUT] and not st.get("Condition"):
                carve_allow = True
            else:
                problems.append(f"{sid}: the boundary allows {sorted(acts)} on {res}; beside BoundaryAllowedActions on *, "
                                f"it may allow only sts:AssumeRole and sts:TagSession on {CARVE_OUT}")
    carved = carve_deny and carve_guard
    if carve_deny and not carve_guard:
        problems.append(f"BoundaryDeniedActions is not denied on {CARVE_OUT}, and no Deny NotAction sts:AssumeRole, sts:TagSession covers it")
    if carve_deny and not carve_allow:
        problems.append(f"the cross-account carve-out lacks its Allow of sts:AssumeRole, sts:TagSession on {CARVE_OUT} "
                        "(a narrowed BoundaryAllowedActions would break the chaining)")

    # Denied on every resource by default: iam:* (the NotResource form counts when its guard
    # denies the rest).
    denied = []
    for st in statements:
        if st.get("Effect") != "Deny" or st.get("Condition") or "NotAction" in st:
            continue
        everywhere = "*" in [text(r) for r in as_list(st.get("Resource"))] or (
            carved and [text(r) for r in as_list(st.get("NotResource"))] == [CARVE_OUT])
        if everywhere:
            denied += expand(template, st.get("Action"), True)
    if not matches(denied, "iam:CreateRole") or not matches(denied, "iam:PassRole"):
        problems.append(f"the boundary does not deny iam:* on * by default (denies {denied})")

    # Probes: what a workload role under this boundary may call.
    iam_path = str(((template.get("Parameters") or {}).get("IamPath") or {}).get("Default", "/eks-intents/"))
    target = f"arn:aws:iam::{OTHER_ACCOUNT}:role{iam_path}demo/workload"
    own = f"arn:aws:iam::{HOME_ACCOUNT}:role{iam_path}demo/workload"
    beside = f"arn:aws:iam::{OTHER_ACCOUNT}:role{iam_path.rstrip('/')}-other/workload"
    foreign = f"arn:aws:iam::{OTHER_ACCOUNT}:role/admin"
    never = ["sts:AssumeRoleWithWebIdentity", "sts:AssumeRoleWithSAML", "iam:PassRole", "iam:CreateRole",
             "iam:PutRolePolicy", "iam:AttachRolePolicy", "iam:UpdateAssumeRolePolicy", "iam:DeleteRolePermissionsBoundary",
             "iam:GetRole", "iam:TagRole"]
    probes = [(a, r) for r in (target, own, beside, foreign) for a in never]
    probes += [("sts:AssumeRole", r) for r in (own, beside, foreign)]
    probes += [("sts:TagSession", own)]
    probes += [("organizations:LeaveOrganization", "*"), ("account:CloseAccount", "*"), ("iam:CreateUser", "*"),
               ("organizations:LeaveOrganization", target), ("account:PutAlternateContact", target)]
    if not carved:
        probes.append(("sts:AssumeRole", target))
    for action, resource in probes:
        if boundary_allows(template, statements, action, resource):
            problems.append(f"the boundary lets a workload role call {action} on {resource}")
    if carved:
        for action in ("sts:AssumeRole", "sts:TagSession"):
            if not boundary_allows(template, statements, action, target):
                problems.append(f"the cross-account carve-out does not let a workload role call {action} on its target role {target}")
    return problems


def check_account_role(template) -> list[str]:
    """The role a deployment assumes in another account: trusted only by the deployment's roles
    (parameters, never `*`, an account or a service), only with the external id, and able to do
    the reconciler's job (create roles)."""
    resources = template.get("Resources") or {}
    params = template.get("Parameters") or {}
    props = resources["AccountRole"].get("Properties") or {}
    problems = []
    trust = statements_of(props.get("AssumeRolePolicyDocument"))
    if not trust:
        problems.append("AccountRole: its trust policy has no statement")
    for i, st in enumerate(trust):
        name = label("AccountRole/trust", i, st)
        if st.get("Effect") != "Allow":
            continue
        if "NotPrincipal" in st or "NotAction" in st:
            problems.append(f"{name}: a trust with NotPrincipal/NotAction trusts too much")
            continue
        principal = st.get("Principal")
        if not isinstance(principal, dict) or set(principal) != {"AWS"}:
            problems.append(f"{name}: trusts {principal!r}; only the deployment's roles (Principal AWS) may assume the account role")
        else:
            for p in (b for v in branches(principal["AWS"]) for item in as_list(v) for b in branches(item)):
                ref = re.fullmatch(r"\$\{(\w+)\}", text(p))
                if not ref or ref.group(1) not in params:
                    problems.append(f"{name}: trusts {text(p)!r}; only the deployment's roles, given as parameters, may assume the account role")
        if set(actions_of(st)) != {"sts:AssumeRole"}:
            problems.append(f"{name}: allows {actions_of(st)}; only sts:AssumeRole")
        cond = st.get("Condition") or {}
        external = (cond.get("StringEquals") or {}).get("sts:ExternalId")
        if external is None or text(external) != "${ExternalId}" or set(cond) != {"StringEquals"}:
            problems.append(f"{name}: trust without the condition StringEquals sts:ExternalId = ${{ExternalId}} alone")
    if not any(
        s.get("Effect") == "Allow" and matches(actions_of(s), "iam:CreateRole")
        for _, s in role_statements(resources, "AccountRole")
    ):
        problems.append("AccountRole: the account role cannot create roles (iam:CreateRole)")
    return problems


# ------------------------------------------------------------------ event forwarding


def trusts_events(res) -> bool:
    """Whether a role is one EventBridge assumes (to put events on a bus)."""
    trust = statements_of((res.get("Properties") or {}).get("AssumeRolePolicyDocument"))
    return any(
        isinstance(st.get("Principal"), dict)
        and EVENTS_SERVICE in [text(p) for p in as_list(st["Principal"].get("Service"))]
        for st in trust
    )


def is_forwarder_template(template) -> bool:
    """infra/iam-events-forwarder.yaml: an events role and rules, none of the system's roles."""
    resources = template.get("Resources") or {}
    kinds = {res.get("Type") for res in resources.values()}
    roles = [res for res in resources.values() if res.get("Type") == "AWS::IAM::Role"]
    return (
        "AWS::Serverless::Function" not in kinds
        and "AccountRole" not in resources
        and bool(roles)
        and all(trusts_events(r) for r in roles)
    )


def main_event_patterns() -> list:
    """The EventPatterns of template.yaml's rules that invoke eks-events."""
    main = yaml.safe_load((HERE / "template.yaml").read_text())
    fid, _ = function_by_binary(main, "eks-events")
    return [
        (res.get("Properties") or {}).get("EventPattern")
        for res in main["Resources"].values()
        if res.get("Type") == "AWS::Events::Rule"
        and any(text(t.get("Arn")) == "${%s.Arn}" % fid for t in as_list((res.get("Properties") or {}).get("Targets")))
    ]


def check_event_forwarding(template) -> list[str]:
    """Forwarder roles put events on one default bus and do nothing else; forwarding rules use
    the main template's patterns; bus policies accept PutEvents alone, from named principals."""
    resources = template.get("Resources") or {}
    problems = []
    buses_of = {}
    for rid, res in resources.items():
        if res.get("Type") != "AWS::IAM::Role" or not trusts_events(res):
            continue
        props = res.get("Properties") or {}
        if props.get("ManagedPolicyArns"):
            problems.append(f"{rid}: the events forwarder role has managed policies; it may only events:PutEvents on the deployment's bus")
        buses = buses_of.setdefault(rid, set())
        for i, (where, st) in enumerate(role_statements(resources, rid)):
            name = label(where, i, st)
            if not allows_put_events_only(st, f"{name}: the events forwarder role", ("NotAction", "NotResource"), problems):
                continue
            for r in as_list(st.get("Resource")):
                r = text(r)
                if FORWARD_TO_BUS.match(r):
                    buses.add(r)
                else:
                    problems.append(f"{name}: the events forwarder role may put events on {r!r}; only on the deployment's default event bus (arn:${{AWS::Partition}}:events:<region>:<account>:event-bus/default)")
            if st.get("Condition"):
                problems.append(f"{name}: the events forwarder role's PutEvents has a condition; it names its bus instead")

    patterns = None
    for rid, res in resources.items():
        if res.get("Type") != "AWS::Events::Rule":
            continue
        props = res.get("Properties") or {}
        to_bus = [t for t in as_list(props.get("Targets")) if ":event-bus/" in text(t.get("Arn"))]
        for t in to_bus:
            arn = text(t.get("Arn"))
            role = re.fullmatch(r"\$\{(\w+)\.Arn\}", text(t.get("RoleArn")))
            if not role or role.group(1) not in buses_of:
                problems.append(f"{rid}: sends events to the bus {arn!r} without an events forwarder role of this template")
            elif arn not in buses_of[role.group(1)]:
                problems.append(f"{rid}: sends events to {arn!r}, not the bus its role {role.group(1)} may put events on ({sorted(buses_of[role.group(1)])})")
        if to_bus:
            if patterns is None:
                try:
                    patterns = main_event_patterns()
                except (Guardrail, OSError) as e:
                    return problems + [f"{rid}: cannot read template.yaml's eks-events rules: {e}"]
            if props.get("EventPattern") not in patterns:
                problems.append(f"{rid}: forwards events with a pattern that is none of template.yaml's eks-events rules' (the same events, scoped the same way)")

    for rid, res in resources.items():
        if res.get("Type") != "AWS::Events::EventBusPolicy":
            continue
        props = res.get("Properties") or {}
        if "Statement" in props:
            statements = as_list(props["Statement"])
        else:  # the older form: Action, Principal (an account id or *), Condition
            statements = [{"Effect": "Allow", "Action": props.get("Action"), "Principal": props.get("Principal"),
                           "Resource": OWN_BUS, "Condition": props.get("Condition")}]
        for i, st in enumerate(statements):
            name = label(rid, i, st)
            if not allows_put_events_only(st, f"{name}: the event bus policy", ("NotPrincipal", "NotAction", "NotResource"), problems):
                continue
            for r in as_list(st.get("Resource")):
                if text(r) != OWN_BUS:
                    problems.append(f"{name}: the event bus policy grants on {text(r)!r}; only this account's default bus {OWN_BUS}")
            principal = st.get("Principal")
            values = as_list(principal.get("AWS")) if isinstance(principal, dict) else as_list(principal)
            if isinstance(principal, dict) and set(principal) - {"AWS"}:
                problems.append(f"{name}: the event bus policy names principals {sorted(principal)}; only AWS accounts")
            if not values or any("*" in text(v) for v in values):
                condition = st.get("Condition") or {}
                keyed = [
                    text(v)
                    for op, keys in condition.items() if op == "StringEquals"
                    for k, v in (keys or {}).items() if k.lower() in BUS_POLICY_PRINCIPAL_KEYS
                    for v in as_list(v)
                ]
                if set(condition) - {"StringEquals"} or not keyed or any("*" in v or "?" in v for v in keyed):
                    problems.append(f"{name}: the event bus policy allows every principal (*) without the condition StringEquals aws:PrincipalOrgID (or aws:PrincipalAccount) alone")
    return problems


def check_state_writers(template) -> list[str]:
    """The compiled desired state (state/ of the bucket) is trusted as parsed: the bucket policy
    must deny its writes to every principal but the reconciler's role."""
    resources = template.get("Resources") or {}
    try:
        reconciler = role_of(resources, *function_by_binary(template, "reconciler"))
    except Guardrail as e:
        return [str(e)]
    for rid, res in resources.items():
        if res.get("Type") != "AWS::S3::BucketPolicy":
            continue
        for st in as_list(((res.get("Properties") or {}).get("PolicyDocument") or {}).get("Statement")):
            exempt = ((st.get("Condition") or {}).get("ArnNotEquals") or {}).get("aws:PrincipalArn")
            if (
                st.get("Effect") == "Deny"
                and st.get("Principal") == "*"
                and matches(actions_of(st), "s3:PutObject")
                and any(text(r).endswith("/state/*") for r in as_list(st.get("Resource")))
                and exempt == {"Fn::GetAtt": [reconciler, "Arn"]}
            ):
                return []
    return [f"the bucket policy does not deny s3:PutObject on state/* to every principal but {reconciler}"]


def check_queue(template, fid, function) -> list[str]:
    problems = []
    resources = template["Resources"]
    timeout = function_property(template, function, "Timeout")
    mappings = [
        (mid, m) for mid, m in resources.items()
        if m.get("Type") == "AWS::Lambda::EventSourceMapping"
        and text((m.get("Properties") or {}).get("FunctionName")) in ("${%s}" % fid, "${%s.Arn}" % fid)
    ]
    # SAM's own SQS events, if the template ever uses them, count as mappings too.
    for ename, event in ((function.get("Properties") or {}).get("Events") or {}).items():
        if event.get("Type") == "SQS":
            props = event.get("Properties") or {}
            mappings.append((f"{fid}/Events/{ename}", {"Properties": {"EventSourceArn": props.get("Queue"), **props}}))
    if not mappings:
        return [f"{fid}: no event source mapping feeds the reconciler from its queue"]
    for mid, m in mappings:
        props = m.get("Properties") or {}
        if "ReportBatchItemFailures" not in as_list(props.get("FunctionResponseTypes")):
            problems.append(f"{mid}: FunctionResponseTypes lacks ReportBatchItemFailures: one failing cluster would retry the whole batch")
        if int(props.get("BatchSize", 10)) > 10:
            problems.append(f"{mid}: BatchSize above 10 (the FIFO maximum)")
        ref = re.fullmatch(r"\$\{(\w+)\.Arn\}", text(props.get("EventSourceArn")))
        queue = resources.get(ref.group(1)) if ref else None
        if not queue or queue.get("Type") != "AWS::SQS::Queue":
            problems.append(f"{mid}: EventSourceArn is not a queue of this template")
            continue
        visibility = (queue.get("Properties") or {}).get("VisibilityTimeout", 30)
        if timeout is None or int(visibility) <= int(timeout):
            problems.append(f"{ref.group(1)}: VisibilityTimeout {visibility} must be above the reconciler's Timeout {timeout}")
        if not (queue.get("Properties") or {}).get("FifoQueue"):
            problems.append(f"{ref.group(1)}: the reconcile queue must be FIFO (one run per cluster at a time)")
    return problems


def check_cargo_metadata(template) -> list[str]:
    if tomllib is None:
        return []
    problems = []
    for fid, res in template["Resources"].items():
        if res.get("Type") != "AWS::Serverless::Function":
            continue
        binary = ((res.get("Metadata") or {}).get("BuildProperties") or {}).get("Binary")
        manifest = WORKSPACE / "functions" / str(binary) / "Cargo.toml"
        if not manifest.is_file():
            continue
        meta = tomllib.loads(manifest.read_text())
        deploy = ((meta.get("package") or {}).get("metadata") or {}).get("lambda", {}).get("deploy")
        if not deploy:
            continue
        for key, prop in (("memory", "MemorySize"), ("timeout", "Timeout")):
            want = function_property(template, res, prop)
            if key in deploy and want is not None and int(deploy[key]) != int(want):
                problems.append(f"{manifest.relative_to(WORKSPACE)}: [package.metadata.lambda.deploy] {key} = {deploy[key]}, but {fid} has {prop} {want}")
    return problems


# ------------------------------------------------------------------ the checker can fail


def statement(template, role, sid):
    for pol in template["Resources"][role]["Properties"]["Policies"]:
        for st in pol["PolicyDocument"]["Statement"]:
            for b in branches(st):
                if b.get("Sid") == sid:
                    return pol["PolicyDocument"]["Statement"], b
    raise KeyError(f"{role}/{sid}")


def remove_statement(template, role, sid):
    statements, st = statement(template, role, sid)
    statements.remove(st)


def self_tests(template):
    """(what was broken, the text the failure must contain, the break) for each self-test."""
    reconciler = role_of(template["Resources"], *function_by_binary(template, "reconciler"))

    def no_boundary_condition(t):
        del statement(t, reconciler, "CreateRolesOnlyWithTheBoundary")[1]["Condition"]

    def boundary_condition_like(t):
        st = statement(t, reconciler, "CreateRolesOnlyWithTheBoundary")[1]
        st["Condition"] = {"StringLike": {"iam:PermissionsBoundary": "*"}}

    def star_resource(t):
        st = statement(t, reconciler, "ManageOwnedRoles")[1]
        st["Resource"] = [st["Resource"], "*"]

    def foreign_path(t):
        st = statement(t, reconciler, "ManageOwnedPolicies")[1]
        st["Resource"] = {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:policy/*"}

    def iam_star_elsewhere(t):
        statements, _ = statement(t, "EksEventsRole", "AskForReconciles")
        statements.append({"Sid": "Oops", "Effect": "Allow", "Action": "iam:*", "Resource": "*"})

    def create_role_by_wildcard(t):
        statements, _ = statement(t, reconciler, "ManageOwnedRoles")
        statements.append({"Sid": "Sneaky", "Effect": "Allow", "Action": "iam:Create*",
                           "Resource": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role${IamPath}*"}})

    def pass_role_to_ec2(t):
        st = statement(t, reconciler, "PassOwnedRolesOnlyToEks")[1]
        st["Condition"]["StringEquals"]["iam:PassedToService"].append("ec2.amazonaws.com")

    def pass_role_unconditioned(t):
        del statement(t, reconciler, "PassOwnedRolesOnlyToEks")[1]["Condition"]

    def short_visibility(t):
        t["Resources"]["ReconcileQueue"]["Properties"]["VisibilityTimeout"] = 300

    def no_batch_failures(t):
        t["Resources"]["ReconcilerQueueMapping"]["Properties"]["FunctionResponseTypes"] = []

    def boundary_allows_iam(t):
        t["Parameters"]["BoundaryDeniedActions"]["Default"] = "organizations:*"

    def boundary_deny(t, sid="DenyTheSystemItself"):
        boundary = boundary_id(t["Resources"])
        for st in t["Resources"][boundary]["Properties"]["PolicyDocument"]["Statement"]:
            if st.get("Sid") == sid:
                return st
        raise KeyError(sid)

    def without_system_resource(fragment):
        def breaks(t):
            st = boundary_deny(t)
            st["Resource"] = [r for r in st["Resource"] if fragment not in text(r)]
        return breaks

    def system_deny_narrowed(t):
        boundary_deny(t)["Action"] = ["s3:*", "sqs:*", "lambda:*"]

    def state_writable(t):
        for res in t["Resources"].values():
            if res.get("Type") == "AWS::S3::BucketPolicy":
                statements = res["Properties"]["PolicyDocument"]["Statement"]
                statements[:] = [s for s in statements if s.get("Sid") != "OnlyTheReconcilerWritesState"]

    return [
        ("anyone may write the compiled state", "does not deny s3:PutObject on state/*", state_writable),
        ("boundary no longer denies the bucket's keys", "does not deny every action on the keys of the bucket IntentsBucket",
         without_system_resource("${IntentsBucket.Arn}/*")),
        ("boundary no longer denies the dead-letter queue", "does not deny every action on the queue ReconcileDeadLetterQueue",
         without_system_resource("ReconcileDeadLetterQueue")),
        ("boundary no longer denies the functions", "does not deny every action on the function ReconcilerFunction",
         without_system_resource(":function:")),
        ("boundary no longer denies the reconciler's role", "does not deny every action on the role ReconcilerRole",
         without_system_resource("ReconcilerRole")),
        ("boundary no longer denies itself", "does not deny every action on the boundary",
         without_system_resource("permissions-boundary")),
        ("boundary no longer denies the roles under IamPath", "does not deny every action on the roles under IamPath",
         without_system_resource(":role${IamPath}")),
        ("boundary no longer denies the policies under IamPath", "does not deny every action on the policies under IamPath",
         without_system_resource(":policy${IamPath}")),
        ("boundary denies only some actions on the system", "does not deny every action on the bucket IntentsBucket", system_deny_narrowed),
        ("boundary condition removed", "CreateRolesOnlyWithTheBoundary: allows iam:CreateRole without the condition", no_boundary_condition),
        ("boundary condition made a wildcard", "CreateRolesOnlyWithTheBoundary: allows iam:CreateRole without the condition", boundary_condition_like),
        ("`*` resource on an IAM write", "ManageOwnedRoles: IAM write", star_resource),
        ("policy writes outside the path", "ManageOwnedPolicies: IAM write", foreign_path),
        ("iam:* on * in another role", "EksEventsRole/eks-events/Oops", iam_star_elsewhere),
        ("iam:Create* without the condition", "Sneaky: allows iam:CreateRole without the condition", create_role_by_wildcard),
        ("Deny of DeleteRolePermissionsBoundary removed", "no unconditional Deny of iam:DeleteRolePermissionsBoundary",
         lambda t: remove_statement(t, reconciler, "NeverRemoveABoundary")),
        ("Deny of boundary policy changes removed", "no unconditional Deny of iam:CreatePolicyVersion on the boundary policy",
         lambda t: remove_statement(t, reconciler, "NeverChangeTheBoundaryPolicy")),
        ("PassRole to ec2", "PassOwnedRolesOnlyToEks: allows iam:PassRole without", pass_role_to_ec2),
        ("PassRole without condition", "PassOwnedRolesOnlyToEks: allows iam:PassRole without", pass_role_unconditioned),
        ("visibility timeout not above the function timeout", "ReconcileQueue: VisibilityTimeout 300 must be above", short_visibility),
        ("ReportBatchItemFailures removed", "ReconcilerQueueMapping: FunctionResponseTypes lacks ReportBatchItemFailures", no_batch_failures),
        ("boundary no longer denies iam:*", "the boundary does not deny iam:*", boundary_allows_iam),
        ("Deny of assuming the owned roles removed", "no unconditional Deny of sts:AssumeRole on the roles under IamPath",
         lambda t: remove_statement(t, reconciler, "NeverAssumeOwnedRoles")),
        ("AttachRolePolicy of any policy", "AttachOnlyOwnedPolicies: allows iam:AttachRolePolicy without only",
         lambda t: statement(t, reconciler, "AttachOnlyOwnedPolicies")[1].pop("Condition")),
        ("AdministratorAccess among the recommended policies", "allows iam:AttachRolePolicy of 'arn:${AWS::Partition}:iam::aws:policy/AdministratorAccess'",
         lambda t: statement(t, reconciler, "AttachRecommendedAddonPolicies")[1]["Condition"]["ArnEquals"]["iam:PolicyARN"].append(
             {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/AdministratorAccess"})),
        ("the account roles widened to every role", "AssumeTheAccountRoles: allows sts:AssumeRole on '*'",
         lambda t: statement(t, reconciler, "AssumeTheAccountRoles")[1].update(Resource="*")),
        ("the drift sweep may assume any role of an account", "AssumeTheAccountRoles: allows sts:AssumeRole on",
         lambda t: statement(t, "DriftSweepRole", "AssumeTheAccountRoles")[1].update(
             Resource={"Fn::Sub": "arn:${AWS::Partition}:iam::*:role/*"})),
    ]


def account_self_tests(template):
    """The self-tests of infra/account-role.yaml."""
    role = "AccountRole"

    def trust(t):
        return statements_of(t["Resources"][role]["Properties"]["AssumeRolePolicyDocument"])[0]

    def no_external_id(t):
        t["Resources"][role]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0].pop("Condition")

    def trust_everyone(t):
        t["Resources"][role]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] = {"AWS": "*"}

    def trust_an_account(t):
        t["Resources"][role]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] = {
            "AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}}

    def boundary_deny(t):
        boundary = boundary_id(t["Resources"])
        for st in t["Resources"][boundary]["Properties"]["PolicyDocument"]["Statement"]:
            if st.get("Sid") == "DenyTheSystemItself":
                return st
        raise KeyError("DenyTheSystemItself")

    def without_system_resource(fragment):
        def breaks(t):
            st = boundary_deny(t)
            st["Resource"] = [r for r in st["Resource"] if fragment not in text(r)]
        return breaks

    def no_boundary_condition(t):
        del statement(t, role, "CreateRolesOnlyWithTheBoundary")[1]["Condition"]

    def star_resource(t):
        st = statement(t, role, "ManageOwnedRoles")[1]
        st["Resource"] = [st["Resource"], "*"]

    def pass_role_to_ec2(t):
        statement(t, role, "PassOwnedRolesOnlyToEks")[1]["Condition"]["StringEquals"]["iam:PassedToService"].append("ec2.amazonaws.com")

    return [
        ("trust without the external id", "trust without the condition StringEquals sts:ExternalId", no_external_id),
        ("trust of everyone", "trusts '*'", trust_everyone),
        ("trust of a whole account", ":root'; only the deployment's roles", trust_an_account),
        ("trust of a service", "only the deployment's roles (Principal AWS)",
         lambda t: trust(t).update(Principal={"Service": "ec2.amazonaws.com"})),
        ("boundary condition removed", "CreateRolesOnlyWithTheBoundary: allows iam:CreateRole without the condition", no_boundary_condition),
        ("`*` resource on an IAM write", "ManageOwnedRoles: IAM write", star_resource),
        ("PassRole to ec2", "PassOwnedRolesOnlyToEks: allows iam:PassRole without", pass_role_to_ec2),
        ("Deny of DeleteRolePermissionsBoundary removed", "no unconditional Deny of iam:DeleteRolePermissionsBoundary",
         lambda t: remove_statement(t, role, "NeverRemoveABoundary")),
        ("Deny of boundary policy changes removed", "no unconditional Deny of iam:CreatePolicyVersion on the boundary policy",
         lambda t: remove_statement(t, role, "NeverChangeTheBoundaryPolicy")),
        ("Deny of assuming the owned roles removed", "no unconditional Deny of sts:AssumeRole on the roles under IamPath",
         lambda t: remove_statement(t, role, "NeverAssumeOwnedRoles")),
        ("boundary no longer denies the account role", "does not deny every action on the role AccountRole",
         without_system_resource("-account")),
        ("boundary no longer denies the roles under IamPath", "does not deny every action on the roles under IamPath",
         without_system_resource(":role${IamPath}")),
        ("boundary no longer denies itself", "does not deny every action on the boundary",
         without_system_resource("permissions-boundary")),
        ("boundary no longer denies the events forwarder role", "does not deny every action on the role EventsForwarderRole",
         without_system_resource("-events-forwarder")),
        ("boundary no longer denies iam:*", "the boundary does not deny iam:*",
         lambda t: t["Parameters"]["BoundaryDeniedActions"].update(Default="organizations:*")),
        ("the account role cannot create roles", "the account role cannot create roles",
         lambda t: remove_statement(t, role, "CreateRolesOnlyWithTheBoundary")),
    ]


def carve_out_self_tests(template):
    """The self-tests of the boundary's cross-account carve-out (CrossAccountTargets), the same in
    both templates: each widens it, or lets it into the branch where it must not be."""
    target = f"arn:aws:iam::{OTHER_ACCOUNT}:role{str(template['Parameters']['IamPath']['Default'])}demo/workload"
    outside = {"Fn::Sub": "arn:${AWS::Partition}:iam::*:role/*"}

    def branch(t, sid, yes=True):
        """The statement of the boundary with this Sid in the true (or false) branch of its Fn::If."""
        boundary = boundary_id(t["Resources"])
        for st in t["Resources"][boundary]["Properties"]["PolicyDocument"]["Statement"]:
            if isinstance(st, dict) and list(st) == ["Fn::If"]:
                chosen = st["Fn::If"][1 if yes else 2]
                if isinstance(chosen, dict) and chosen.get("Sid") == sid:
                    return chosen
        raise KeyError(sid)

    def deny(t):
        return branch(t, "DenyIdentityAndAccountControl")

    def guard(t):
        return branch(t, "DenyAllButChainingOnTargetRoles")

    def allow(t):
        return branch(t, "AllowChainingIntoTargetRoles")

    def everywhere(t):
        deny(t)["NotResource"] = "*"
        guard(t)["Resource"] = "*"
        allow(t)["Resource"] = "*"

    def outside_the_path(t):
        deny(t)["NotResource"] = outside
        guard(t)["Resource"] = outside
        allow(t)["Resource"] = outside

    def into_false_branch(t):
        boundary = boundary_id(t["Resources"])
        for st in t["Resources"][boundary]["Properties"]["PolicyDocument"]["Statement"]:
            if isinstance(st, dict) and list(st) == ["Fn::If"] and (st["Fn::If"][1] or {}).get("Sid") == "DenyIdentityAndAccountControl":
                st["Fn::If"][2] = copy.deepcopy(st["Fn::If"][1])

    def drop(sid):
        def breaks(t):
            boundary = boundary_id(t["Resources"])
            for st in t["Resources"][boundary]["Properties"]["PolicyDocument"]["Statement"]:
                if isinstance(st, dict) and list(st) == ["Fn::If"] and (st["Fn::If"][1] or {}).get("Sid") == sid:
                    st["Fn::If"][1] = {"Ref": "AWS::NoValue"}
                    return
            raise KeyError(sid)
        return breaks

    def extend(field, extra):
        def breaks(t):
            st = guard(t) if field == "NotAction" else allow(t)
            st[field] = list(st[field]) + [extra]
        return breaks

    return [
        ("carve-out on every resource", f"(AllowsCrossAccountTargets=true): the boundary lets a workload role call sts:AssumeRole on arn:aws:iam::{OTHER_ACCOUNT}:role/admin",
         everywhere),
        ("carve-out deny lifted on every resource", "(AllowsCrossAccountTargets=true): the boundary lets a workload role call iam:CreateUser on *",
         lambda t: deny(t).update(NotResource="*")),
        ("carve-out on every role, outside IamPath", f"(AllowsCrossAccountTargets=true): the boundary lets a workload role call sts:AssumeRole on arn:aws:iam::{OTHER_ACCOUNT}:role/admin",
         outside_the_path),
        ("carve-out deny lifted on a second resource", f"the boundary lets a workload role call sts:AssumeRole on arn:aws:iam::{OTHER_ACCOUNT}:role/admin",
         lambda t: deny(t).update(NotResource=[deny(t)["NotResource"], outside])),
        ("carve-out Allow on `*`", "AllowChainingIntoTargetRoles: the boundary allows", lambda t: allow(t).update(Resource="*")),
        ("iam:PassRole un-denied beside the chaining", f"the boundary lets a workload role call iam:PassRole on {target}",
         extend("NotAction", "iam:PassRole")),
        ("sts:AssumeRole* un-denied instead of sts:AssumeRole", f"the boundary lets a workload role call sts:AssumeRoleWithWebIdentity on {target}",
         extend("NotAction", "sts:AssumeRole*")),
        ("sts:* un-denied", f"the boundary lets a workload role call sts:AssumeRoleWithSAML on {target}",
         lambda t: guard(t).update(NotAction=["sts:*"])),
        ("iam:PassRole allowed by the carve-out", "AllowChainingIntoTargetRoles: the boundary allows", extend("Action", "iam:PassRole")),
        ("carve-out deny without its guard", f"the boundary lets a workload role call iam:PassRole on {target}",
         drop("DenyAllButChainingOnTargetRoles")),
        ("carve-out guard under a condition", f"the boundary lets a workload role call iam:CreateRole on {target}",
         lambda t: guard(t).update(Condition={"StringEquals": {"aws:PrincipalTag/never": "set"}})),
        ("carve-out without its Allow", "lacks its Allow of sts:AssumeRole, sts:TagSession", drop("AllowChainingIntoTargetRoles")),
        ("carve-out in the false branch too", f"(AllowsCrossAccountTargets=false): the boundary lets a workload role call iam:PassRole on {target}",
         into_false_branch),
        ("the other action in the false branch's deny", "(AllowsCrossAccountTargets=false): the boundary does not deny iam:* on * by default",
         lambda t: branch(t, "DenyIdentityAndAccountControl", yes=False).update(Action=["organizations:*"])),
    ]


def forwarder_self_tests(template):
    """The self-tests of an events forwarder role and its rules (account-role.yaml with
    ForwardEvents, iam-events-forwarder.yaml): each widens what it may put where, or what it
    forwards."""
    resources = template["Resources"]
    role = next(rid for rid, res in resources.items() if res.get("Type") == "AWS::IAM::Role" and trusts_events(res))
    rule = next(rid for rid, res in resources.items() if res.get("Type") == "AWS::Events::Rule"
                and any(text(t.get("RoleArn")) == "${%s.Arn}" % role for t in res["Properties"]["Targets"]))
    sid = "PutEventsOnTheDeploymentsBus"
    any_bus = {"Fn::Sub": "arn:${AWS::Partition}:events:*:*:event-bus/*"}
    other_bus = {"Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/default"}

    def pattern(t):
        return t["Resources"][rule]["Properties"]["EventPattern"]

    return [
        ("the forwarder may put events anywhere", f"{role}/put-events/{sid}: the events forwarder role may put events on '*'",
         lambda t: statement(t, role, sid)[1].update(Resource="*")),
        ("the forwarder may put events on every bus", f"{role}/put-events/{sid}: the events forwarder role may put events on 'arn:${{AWS::Partition}}:events:*:*:event-bus/*'",
         lambda t: statement(t, role, sid)[1].update(Resource=any_bus)),
        ("the forwarder may also create rules", f"{role}/put-events/{sid}: the events forwarder role allows",
         lambda t: statement(t, role, sid)[1].update(Action=["events:PutEvents", "events:PutRule"])),
        ("the forwarder may do every events action", f"{role}/put-events/{sid}: the events forwarder role allows",
         lambda t: statement(t, role, sid)[1].update(Action="events:*")),
        ("the forwarder allows with NotResource", f"{role}/put-events/{sid}: the events forwarder role has an Allow with NotAction/NotResource",
         lambda t: statement(t, role, sid)[1].update(NotResource=statement(t, role, sid)[1].pop("Resource"))),
        ("the forwarder gets a managed policy", f"{role}: the events forwarder role has managed policies",
         lambda t: t["Resources"][role]["Properties"].update(ManagedPolicyArns=[{"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/AdministratorAccess"}])),
        ("the rule sends to another bus than its role's", f"{rule}: sends events to 'arn:${{AWS::Partition}}:events:${{AWS::Region}}:${{AWS::AccountId}}:event-bus/default', not the bus",
         lambda t: t["Resources"][rule]["Properties"]["Targets"][0].update(Arn=other_bus)),
        ("the rule sends to a bus without a role", f"{rule}: sends events to the bus",
         lambda t: t["Resources"][rule]["Properties"]["Targets"][0].pop("RoleArn")),
        ("the rule forwards one event name more", f"{rule}: forwards events with a pattern that is none of template.yaml's",
         lambda t: pattern(t)["detail"]["eventName"].append("CreateAccessKey")),
        ("the rule forwards every call of the service", f"{rule}: forwards events with a pattern that is none of template.yaml's",
         lambda t: pattern(t).pop("detail")),
        ("the rule forwards another account's events only", f"{rule}: forwards events with a pattern that is none of template.yaml's",
         lambda t: pattern(t).update(account=["999999999999"])),
    ]


def bus_policy_self_tests(template):
    """The self-tests of template.yaml's event bus policies (forwarded events of other accounts)."""
    accounts, organization = "ForwardedEventsFromAccounts", "ForwardedEventsFromOrganization"

    def st(t, rid):
        return t["Resources"][rid]["Properties"]["Statement"]

    return [
        ("the bus accepts every principal", f"{accounts}/#0: the event bus policy allows every principal (*) without the condition",
         lambda t: st(t, accounts).update(Principal="*")),
        ("the bus accepts every AWS principal", f"{accounts}/#0: the event bus policy allows every principal (*) without the condition",
         lambda t: st(t, accounts).update(Principal={"AWS": "*"})),
        ("the organization's condition removed", f"{organization}/#0: the event bus policy allows every principal (*) without the condition",
         lambda t: st(t, organization).pop("Condition")),
        ("the organization's condition made a wildcard", f"{organization}/#0: the event bus policy allows every principal (*) without the condition",
         lambda t: st(t, organization).update(Condition={"StringLike": {"aws:PrincipalOrgID": "o-*"}})),
        ("the organization's condition on another key", f"{organization}/#0: the event bus policy allows every principal (*) without the condition",
         lambda t: st(t, organization).update(Condition={"StringEquals": {"aws:SourceVpc": "vpc-1"}})),
        ("the bus lets other accounts create rules", f"{accounts}/#0: the event bus policy allows",
         lambda t: st(t, accounts).update(Action=["events:PutEvents", "events:PutRule", "events:PutTargets"])),
        ("the bus policy on every bus", f"{accounts}/#0: the event bus policy grants on '*'",
         lambda t: st(t, accounts).update(Resource="*")),
    ]


def main(argv) -> int:
    path = pathlib.Path(argv[1]) if len(argv) > 1 else HERE / "template.yaml"
    template = yaml.safe_load(path.read_text())
    problems = check(template)
    for p in problems:
        print(f"FAIL {path.name}: {p}")
    if problems:
        print(f"{len(problems)} guardrail(s) broken in {path}")
        return 1

    missed = 0
    if is_forwarder_template(template):
        tests = forwarder_self_tests(template)
    elif is_account_template(template):
        tests = account_self_tests(template) + carve_out_self_tests(template)
        # The forwarding resources exist behind ForwardEvents; they are checked all the same.
        tests += forwarder_self_tests(template)
    else:
        tests = self_tests(template) + carve_out_self_tests(template) + bus_policy_self_tests(template)
    for what, expected, breaks in tests:
        broken = copy.deepcopy(template)
        breaks(broken)
        found = check(broken)
        if not any(expected in p for p in found):
            missed += 1
            print(f"SELF-TEST MISSED: {what}: expected a failure containing {expected!r}, got {found}")
    print(f"guardrails: {path.name} holds every guardrail; {len(tests) - missed} of {len(tests)} deliberately broken copies caught")
    print(f"{len(tests) + 1 - missed} passed, {missed} failed")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
