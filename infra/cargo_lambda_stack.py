#!/usr/bin/env python3
"""The stack of the cargo lambda flow, derived from infra/template.yaml (one source of truth).

With SAM, `sam build && sam deploy` creates everything. With cargo lambda, the functions are
created by `cargo lambda deploy`, so the stack must hold everything else. This derives that stack
from the SAM template:

  derive --triggers off   plain CloudFormation (no transform): bucket, queues, alarm, boundary,
                          roles, log groups; no function and nothing that invokes one. Deploy it
                          first, then `cargo lambda deploy` each function with its role.
  derive --triggers on    the same, plus the triggers (EventBridge rules, the queue's event
                          source mapping, the schedule, the audit-log subscriptions and their
                          invoke permissions), aimed at the functions by name
                          (<Name>-bundle-upload, ...). Deploy it over the first once the
                          functions exist.
  env STACK [DIR]         writes DIR/<binary>.env (default infra/env/) for each function: the
                          environment the SAM template gives it, resolved from the deployed
                          stack's parameters and outputs. `[package.metadata.lambda.deploy]`
                          of each function crate reads it (env_file).
  roles STACK             prints `<binary> <role ARN> <function name>` per function, for
                          `cargo lambda deploy --iam-role`.

`env` and `roles` read the stack with boto3 (the AWS credentials and region of the environment).
"""

from __future__ import annotations

import argparse
import copy
import json
import pathlib
import re
import sys

import yaml

HERE = pathlib.Path(__file__).resolve().parent
TEMPLATE = HERE / "template.yaml"
SERVERLESS = "AWS::Serverless::Function"


def load(path=TEMPLATE):
    return yaml.safe_load(pathlib.Path(path).read_text())


def functions(template):
    """{logical id: (binary, FunctionName expression)} of the SAM functions."""
    out = {}
    for rid, res in template["Resources"].items():
        if res.get("Type") == SERVERLESS:
            binary = res["Metadata"]["BuildProperties"]["Binary"]
            name = res["Properties"]["FunctionName"]
            if not (isinstance(name, dict) and isinstance(name.get("Fn::Sub"), str)):
                sys.exit(f"{rid}: FunctionName must be a Fn::Sub string for the cargo lambda flow")
            out[rid] = (binary, name["Fn::Sub"])
    return out


def references(value, ids) -> bool:
    """Whether a template value refers to any of the logical ids."""
    if isinstance(value, dict):
        for key, arg in value.items():
            if key == "Ref" and arg in ids:
                return True
            if key == "Fn::GetAtt" and (arg[0] if isinstance(arg, list) else str(arg).split(".")[0]) in ids:
                return True
            if key == "Fn::Sub":
                text = arg if isinstance(arg, str) else arg[0]
                if any(re.search(r"\$\{%s(\.[A-Za-z]+)?\}" % re.escape(i), text) for i in ids):
                    return True
            if references(arg, ids):
                return True
        return False
    if isinstance(value, list):
        return any(references(v, ids) for v in value)
    return False


def by_name(value, fns):
    """The value with every reference to a function replaced by its name or ARN."""
    if isinstance(value, dict):
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref" and arg in fns:
                return {"Fn::Sub": fns[arg][1]}
            if key == "Fn::GetAtt":
                rid, att = arg if isinstance(arg, list) else str(arg).split(".", 1)
                if rid in fns and att == "Arn":
                    return {"Fn::Sub": arn(fns[rid][1])}
            if key == "Fn::Sub" and isinstance(arg, str):
                for rid, (_, name) in fns.items():
                    arg = arg.replace("${%s.Arn}" % rid, arn(name)).replace("${%s}" % rid, name)
                return {"Fn::Sub": arg}
        return {k: by_name(v, fns) for k, v in value.items()}
    if isinstance(value, list):
        return [by_name(v, fns) for v in value]
    return value


def arn(name_expression: str) -> str:
    return "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:" + name_expression


def used_conditions(value, found):
    if isinstance(value, dict):
        for key, arg in value.items():
            if key in ("Condition",) and isinstance(arg, str):
                found.add(arg)
            if key == "Fn::If":
                found.add(arg[0])
            used_conditions(arg, found)
    elif isinstance(value, list):
        for v in value:
            used_conditions(v, found)
    return found


def derive(template, triggers: bool):
    t = copy.deepcopy(template)
    fns = functions(t)
    t.pop("Transform", None)
    t.pop("Globals", None)
    t["Description"] = t.get("Description", "") + (
        " (cargo lambda flow: functions deployed by cargo lambda%s)" % ("" if triggers else "; triggers not yet")
    )
    resources = {}
    for rid, res in t["Resources"].items():
        if rid in fns:
            continue
        if references(res, set(fns)):
            if not triggers:
                continue
            res = by_name(res, fns)
        resources[rid] = res
    # What depended on a dropped resource now depends on nothing.
    for res in resources.values():
        if "DependsOn" in res:
            kept = [d for d in (res["DependsOn"] if isinstance(res["DependsOn"], list) else [res["DependsOn"]]) if d in resources]
            if kept:
                res["DependsOn"] = kept
            else:
                del res["DependsOn"]
    t["Resources"] = resources
    t["Outputs"] = {k: by_name(v, fns) for k, v in (t.get("Outputs") or {}).items()}
    for rid, (binary, name) in fns.items():
        key = "".join(p.capitalize() for p in binary.split("-")) + "FunctionName"
        t["Outputs"].setdefault(key, {"Value": {"Fn::Sub": name}})
    used = used_conditions({"Resources": resources, "Outputs": t["Outputs"]}, set())
    conditions = t.get("Conditions") or {}
    # Conditions used by conditions that are kept stay too.
    changed = True
    while changed:
        changed = False
        for c in list(used):
            for more in used_conditions(conditions.get(c), set()) - used:
                used.add(more)
                changed = True
    t["Conditions"] = {k: v for k, v in conditions.items() if k in used}
    if not t["Conditions"]:
        del t["Conditions"]
    # The parameters that only the functions use stay: `env` reads their values from the stack,
    # and both derived stacks take the same parameters as the SAM one.
    t["Metadata"] = dict(t.get("Metadata") or {})
    t["Metadata"]["cfn-lint"] = {"config": {"ignore_checks": ["W2001"]}}
    return t


# ------------------------------------------------------------------ from a deployed stack


def stack(name):
    import boto3  # brought by the SAM translator of infra/requirements.txt

    described = boto3.client("cloudformation").describe_stacks(StackName=name)["Stacks"][0]
    params = {p["ParameterKey"]: p.get("ResolvedValue", p.get("ParameterValue", "")) for p in described.get("Parameters", [])}
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    return params, outputs


def resolve(value, template, params, outputs, where):
    """The deployed value of a template expression: a parameter, or an output with the same
    expression as its Value."""
    if isinstance(value, (str, int, float)):
        return str(value)
    if isinstance(value, dict) and list(value) == ["Ref"] and value["Ref"] in (template.get("Parameters") or {}):
        if value["Ref"] not in params:
            sys.exit(f"{where}: the stack has no parameter {value['Ref']}")
        return params[value["Ref"]]
    for key, out in (template.get("Outputs") or {}).items():
        if out.get("Value") == value and key in outputs:
            return outputs[key]
    sys.exit(f"{where}: {json.dumps(value)} is neither a parameter nor the value of an output of the stack")


def environments(template, params, outputs):
    """{binary: {variable: value}} of the functions, as the SAM template sets them."""
    out = {}
    for rid, res in template["Resources"].items():
        if res.get("Type") != SERVERLESS:
            continue
        binary = res["Metadata"]["BuildProperties"]["Binary"]
        variables = ((res["Properties"].get("Environment") or {}).get("Variables")) or {}
        out[binary] = {k: resolve(v, template, params, outputs, f"{rid} {k}") for k, v in variables.items()}
    return out


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("derive")
    d.add_argument("--triggers", choices=["on", "off"], required=True)
    d.add_argument("--template", default=str(TEMPLATE))
    e = sub.add_parser("env")
    e.add_argument("stack")
    e.add_argument("dir", nargs="?", default=str(HERE / "env"))
    r = sub.add_parser("roles")
    r.add_argument("stack")
    args = parser.parse_args(argv[1:])

    if args.command == "derive":
        derived = derive(load(args.template), args.triggers == "on")
        sys.stdout.write("# Derived from infra/template.yaml by infra/cargo_lambda_stack.py; do not edit.\n")
        yaml.safe_dump(derived, sys.stdout, sort_keys=False, width=200)
        return 0
    template = load()
    params, outputs = stack(args.stack)
    if args.command == "env":
        target = pathlib.Path(args.dir)
        target.mkdir(parents=True, exist_ok=True)
        for binary, variables in environments(template, params, outputs).items():
            path = target / f"{binary}.env"
            path.write_text("".join(f"{k}={v}\n" for k, v in variables.items()))
            print(f"{path}: {', '.join(variables)}")
        return 0
    for rid, (binary, name) in functions(template).items():
        role = resolve(template["Resources"][rid]["Properties"]["Role"], template, params, outputs, rid)
        function_name = name.replace("${Name}", params.get("Name", "eks-intents"))
        print(binary, role, function_name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
