"""Validate, lint and deploy the aws-elevate CloudFormation templates, then print the outputs.

Four modes (also `elevate admin deploy MODE ...`; drift is `elevate admin drift`):

  deploy-stack stack     deploy a template (by default cloudformation/developer-access.yaml) as a
                         stack in the account and region of the current credentials, with
                         termination protection and a stack policy that keeps the gate's
                         resources from being replaced or deleted (unless --no-protection)
  deploy-stack stackset  deploy cloudformation/elevated-role.yaml as a service-managed StackSet
                         to the accounts of the given organizational units
  deploy-stack drift     report, per account of the StackSet, whether the gate role's trust
                         policy and boundary still match the template (exit 1 on drift)
  deploy-stack window    open the onboarding window for N minutes (tags the users, sets the
                         stack's OnboardingWindowEnds); it closes by itself

Deploying validates the template with CloudFormation and lints it with cfn-lint first. Credentials,
region and endpoint come from the usual AWS environment (AWS_PROFILE, AWS_REGION, ...);
AWS_ENDPOINT_URL (or --endpoint-url) points the script at another endpoint, such as a local moto
server. Progress goes to stderr; the outputs (stack mode) go to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from .. import ui
from ..errors import DeployError

PROG = "deploy-stack"  # its name as a script, and the prefix of what it says (elevate.ui's rule)
# The templates ship with the repository, not the package: the defaults name the clone's copy.
REPO = Path(__file__).resolve().parents[2]
DEFAULT_STACK_TEMPLATE = REPO / "cloudformation" / "developer-access.yaml"
DEFAULT_STACKSET_TEMPLATE = REPO / "cloudformation" / "elevated-role.yaml"
CAPABILITIES = ["CAPABILITY_NAMED_IAM"]
DONE_OK = {"CREATE_COMPLETE", "UPDATE_COMPLETE"}
ONBOARDING_TAG = "elevate-onboarding"
WINDOW_PARAMETER = "OnboardingWindowEnds"
EXIT_DRIFT = 1
EXIT_CANNOT_CHECK = 2
# The resources that make the MFA gate (both templates): an update may change them in place but
# neither replace nor delete them, which would open a gap or drop the trust's conditions.
GATE_RESOURCES = ["ElevatedRole", "DeveloperPolicy", "DeveloperGroup", "GateBoundary"]
STACK_POLICY = {
    "Statement": [
        {"Effect": "Allow", "Action": "Update:*", "Principal": "*", "Resource": "*"},
        {
            "Effect": "Deny",
            "Action": ["Update:Replace", "Update:Delete"],
            "Principal": "*",
            "Resource": [f"LogicalResourceId/{name}" for name in GATE_RESOURCES],
        },
    ]
}
ALLOW_ALL_UPDATES = {
    "Statement": [{"Effect": "Allow", "Action": "Update:*", "Principal": "*", "Resource": "*"}]
}


def parse_params(pairs: list[str]) -> dict[str, str]:
    """Turn ["Key=Value", ...] into a dict; a list parameter is given as "Key=a,b"."""
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise DeployError(f"--param wants KEY=VALUE, got {pair!r}")
        params[key] = value
    return params


def find_cfn_lint() -> str | None:
    """cfn-lint from the same environment as this interpreter, else from PATH."""
    beside = Path(sys.executable).parent / "cfn-lint"
    if beside.exists():
        return str(beside)
    return shutil.which("cfn-lint")


def lint(template: Path) -> None:
    exe = find_cfn_lint()
    if exe is None:
        raise DeployError("cfn-lint is not installed (pip install cfn-lint), or pass --no-lint")
    ui.inform(f"cfn-lint -c I {template.name}", PROG)
    result = subprocess.run([exe, "-c", "I", "--", str(template)], capture_output=True, text=True)
    if result.returncode != 0:
        ui.stderr(result.stdout + result.stderr)
        raise DeployError(f"cfn-lint found problems in {template}")


def resolve_region(args: argparse.Namespace) -> str | None:
    """--region, else AWS_REGION (which older botocore ignores), else the profile's region."""
    explicit = args.region or os.environ.get("AWS_REGION")
    if explicit:
        return str(explicit)
    region = boto3.session.Session(profile_name=args.profile).region_name
    return str(region) if region else None


def session_clients(args: argparse.Namespace) -> Callable[[str], Any]:
    session = boto3.session.Session(profile_name=args.profile, region_name=resolve_region(args))
    if session.region_name is None:
        raise DeployError("no region: set AWS_REGION or pass --region")
    endpoint = args.endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None

    def client(service: str) -> Any:
        # Any service name: boto3-stubs want a literal one.
        return session.client(service, endpoint_url=endpoint)  # type: ignore[call-overload]

    return client


def declared_parameters(body: str) -> set[str]:
    """The parameter names a JSON or YAML template declares (its top-level Parameters keys)."""
    if body.lstrip().startswith("{"):
        return set(json.loads(body).get("Parameters") or {})
    names: set[str] = set()
    inside = False
    for line in body.splitlines():
        if re.match(r"^\S", line):
            inside = line.rstrip() == "Parameters:"
        elif inside:
            match = re.match(r"^  ([A-Za-z0-9]+):", line)
            if match:
                names.add(match.group(1))
    return names


def validate(cfn: Any, body: str) -> set[str]:
    """Ask CloudFormation to validate the template; return the names of its parameters (read
    from the template too, since some endpoints, moto among them, list none)."""
    answer = cfn.validate_template(TemplateBody=body)
    listed = {str(p["ParameterKey"]) for p in answer.get("Parameters") or []}
    return listed | declared_parameters(body)


def kept_parameters(
    previous: list[dict[str, Any]], given: dict[str, str], declared: set[str]
) -> list[dict[str, Any]]:
    """Parameters to send on an update: those given, and every other one the template still
    declares with its previous value, so that an update never resets a parameter to its
    default. Values are passed back as they are (moto honours UsePreviousValue only for
    parameters set explicitly); a NoEcho value comes back masked and is kept by UsePreviousValue."""
    kept = [
        {"ParameterKey": p["ParameterKey"], "UsePreviousValue": True}
        if p.get("ParameterValue", "****") == "****"
        else {"ParameterKey": p["ParameterKey"], "ParameterValue": p["ParameterValue"]}
        for p in previous
        if p["ParameterKey"] not in given and p["ParameterKey"] in declared
    ]
    return kept + [{"ParameterKey": k, "ParameterValue": v} for k, v in given.items()]


def _stack_status(cfn: Any, name: str) -> str | None:
    try:
        stacks = cfn.describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise
    return str(stacks[0]["StackStatus"]) if stacks else None


def _wait_stack(cfn: Any, name: str, since: float, timeout: float) -> str:
    """Poll until the stack settles, echoing its new events; return the final status."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while True:
        events = cfn.describe_stack_events(StackName=name)["StackEvents"]
        for event in reversed(events):
            stamp = event.get("Timestamp")
            if event["EventId"] in seen or (stamp is not None and stamp.timestamp() < since):
                continue
            seen.add(event["EventId"])
            reason = event.get("ResourceStatusReason") or ""
            ui.inform(
                f"  {event.get('LogicalResourceId', '')} {event['ResourceStatus']} {reason}".rstrip(), PROG
            )
        status = _stack_status(cfn, name) or "DELETED"
        if not status.endswith("_IN_PROGRESS"):
            return status
        if time.monotonic() > deadline:
            raise DeployError(f"stack {name} still {status} after {timeout:.0f}s")
        time.sleep(3)


def deploy_stack(args: argparse.Namespace) -> int:
    template = Path(args.template)
    body = template.read_text(encoding="utf-8")
    params = parse_params(args.param)
    if not args.no_lint:
        lint(template)
    client = session_clients(args)
    cfn = client("cloudformation")
    ui.inform(f"validating {template.name}", PROG)
    declared = validate(cfn, body)

    status = _stack_status(cfn, args.stack_name)
    if status == "ROLLBACK_COMPLETE":
        raise DeployError(
            f"stack {args.stack_name} is ROLLBACK_COMPLETE from a failed create; delete it first"
        )
    request: dict[str, Any] = {
        "StackName": args.stack_name,
        "TemplateBody": body,
        "Capabilities": CAPABILITIES,
    }
    since = time.time() - 1
    if status is None:
        request["Parameters"] = [{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()]
        if args.no_protection:
            ui.inform("--no-protection: no termination protection, no stack policy", PROG)
        else:
            request["EnableTerminationProtection"] = True
            request["StackPolicyBody"] = json.dumps(STACK_POLICY)
        ui.inform(f"creating stack {args.stack_name}", PROG)
        cfn.create_stack(**request)
    else:
        # Like `aws cloudformation deploy`, parameters not given keep their previous values.
        previous = cfn.describe_stacks(StackName=args.stack_name)["Stacks"][0].get("Parameters", [])
        request["Parameters"] = kept_parameters(previous, params, declared)
        if args.no_protection:
            # For this update only: the stack policy stays for the next one.
            ui.inform("--no-protection: this update may replace or delete the gate's resources", PROG)
            request["StackPolicyDuringUpdateBody"] = json.dumps(ALLOW_ALL_UPDATES)
        else:
            request["StackPolicyBody"] = json.dumps(STACK_POLICY)
            protect(cfn, args.stack_name)
        ui.inform(f"updating stack {args.stack_name} (was {status})", PROG)
        try:
            cfn.update_stack(**request)
        except ClientError as exc:
            if "No updates are to be performed" not in str(exc):
                raise
            ui.inform("no changes", PROG)
            if not args.no_protection:
                cfn.set_stack_policy(StackName=args.stack_name, StackPolicyBody=json.dumps(STACK_POLICY))
            return print_outputs(cfn, args.stack_name, args.json)

    final = _wait_stack(cfn, args.stack_name, since, args.timeout)
    if final not in DONE_OK:
        raise DeployError(f"stack {args.stack_name} ended {final}")
    ui.inform(f"stack {args.stack_name} {final}", PROG)
    return print_outputs(cfn, args.stack_name, args.json)


def protect(cfn: Any, name: str) -> None:
    """Termination protection on, for a stack created without it (by an older deploy-stack)."""
    if not cfn.describe_stacks(StackName=name)["Stacks"][0].get("EnableTerminationProtection"):
        ui.inform(f"turning on termination protection of {name}", PROG)
        cfn.update_termination_protection(StackName=name, EnableTerminationProtection=True)


def print_outputs(cfn: Any, name: str, as_json: bool) -> int:
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs") or []}
    if as_json:
        print(json.dumps(outputs, indent=2, sort_keys=True))
        return 0
    for key, value in outputs.items():
        if "\n" in value:
            print(f"{key}:")
            print("    " + value.rstrip("\n").replace("\n", "\n    "))
        else:
            print(f"{key}: {value}")
    return 0


def _wait_stackset_operation(cfn: Any, name: str, operation_id: str, call_as: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        operation = cfn.describe_stack_set_operation(
            StackSetName=name, OperationId=operation_id, CallAs=call_as
        )["StackSetOperation"]
        status = operation["Status"]
        if status == "SUCCEEDED":
            return
        if status in {"FAILED", "STOPPED"}:
            reason = operation.get("StatusReason", "")
            raise DeployError(f"StackSet operation {operation_id} {status} {reason}".rstrip())
        if time.monotonic() > deadline:
            raise DeployError(f"StackSet operation {operation_id} still {status} after {timeout:.0f}s")
        time.sleep(5)


def deploy_stackset(args: argparse.Namespace) -> int:
    template = Path(args.template)
    body = template.read_text(encoding="utf-8")
    params = parse_params(args.param)
    if len(args.regions) != 1:
        # IAM is global: the same role created from a second region fails with "already exists".
        raise DeployError("give exactly one --deployment-region: an IAM role exists once per account")
    if not args.no_lint:
        lint(template)
    client = session_clients(args)
    cfn = client("cloudformation")
    ui.inform(f"validating {template.name}", PROG)
    declared = validate(cfn, body)

    call = {"StackSetName": args.stack_set_name, "CallAs": args.call_as}
    targets: dict[str, Any] = {"OrganizationalUnitIds": args.ous}
    if args.exclude_account:
        targets["Accounts"] = args.exclude_account
        targets["AccountFilterType"] = "DIFFERENCE"
    preferences = {"FailureToleranceCount": 0, "MaxConcurrentPercentage": 100}

    try:
        existing = cfn.describe_stack_set(**call)["StackSet"]
    except ClientError as exc:
        if "StackSetNotFound" not in str(exc):
            raise
        existing = None

    if existing is None:
        if "TrustedAccountId" in declared and not params.get("TrustedAccountId"):
            raise DeployError(
                "a new StackSet needs --param TrustedAccountId=<identity account id>: the roles "
                "must trust the identity account, never the accounts they land in"
            )
        parameters = [{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()]
        ui.inform(f"creating service-managed StackSet {args.stack_set_name}", PROG)
        cfn.create_stack_set(
            **call,
            Description="aws-elevate elevated role in every account of the target OUs",
            TemplateBody=body,
            Parameters=parameters,
            Capabilities=CAPABILITIES,
            PermissionModel="SERVICE_MANAGED",
            AutoDeployment={"Enabled": True, "RetainStacksOnAccountRemoval": False},
            ManagedExecution={"Active": True},
        )
        new_ous = list(args.ous)
    else:
        # IAM is global: instances of the StackSet in a second region would create the same role
        # in the same accounts again (and fail, or fight over it).
        regions = {i["Region"] for i in cfn.list_stack_instances(**call)["Summaries"]}
        others = sorted(regions - set(args.regions))
        if others:
            raise DeployError(
                f"StackSet {args.stack_set_name} already has stack instances in {', '.join(others)}: "
                f"an IAM role exists once per account, so give --deployment-region {others[0]}"
            )
        # Parameters not given keep the StackSet's values: an update sends every parameter, and
        # one left out would be reset to its default in every account (TrustedAccountId, the
        # managed policies).
        parameters = kept_parameters(existing.get("Parameters") or [], params, declared)
        kept = sorted(p["ParameterKey"] for p in parameters if p["ParameterKey"] not in params)
        if kept:
            ui.inform(f"keeping the StackSet's values of {', '.join(kept)}", PROG)
        # Without DeploymentTargets the new template and parameters reach every stack instance.
        ui.inform(f"updating StackSet {args.stack_set_name} and all its stack instances", PROG)
        operation = cfn.update_stack_set(
            **call,
            TemplateBody=body,
            Parameters=parameters,
            Capabilities=CAPABILITIES,
            OperationPreferences=preferences,
        )
        _wait_stackset_operation(
            cfn, args.stack_set_name, operation["OperationId"], args.call_as, args.timeout
        )
        known = set(existing.get("OrganizationalUnitIds") or [])
        new_ous = [ou for ou in args.ous if ou not in known]

    if new_ous:
        # Automatic deployment covers accounts that join these OUs later.
        ui.inform(f"deploying stack instances to {', '.join(new_ous)} in {args.regions[0]}", PROG)
        targets["OrganizationalUnitIds"] = new_ous
        operation_id = cfn.create_stack_instances(
            **call,
            DeploymentTargets=targets,
            Regions=args.regions,
            OperationPreferences=preferences,
        )["OperationId"]
        _wait_stackset_operation(cfn, args.stack_set_name, operation_id, args.call_as, args.timeout)
    instances = cfn.list_stack_instances(**call)["Summaries"]
    for instance in instances:
        print(f"{instance['Account']}\t{instance['Region']}\t{instance.get('Status', '')}")
    ui.inform(f"StackSet {args.stack_set_name}: {len(instances)} stack instance(s)", PROG)
    return 0


def expected_trust(params: dict[str, str], partition: str) -> dict[str, Any]:
    """The trust policy elevated-role.yaml gives the role for these StackSet parameters, as IAM
    returns it. The drift fallback compares with it; the drift tests keep it equal to what the
    template renders."""
    trusted = params["TrustedAccountId"]
    user_path = params.get("UserPath") or "/developers/"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DevelopersWithFreshMfaAndTheirOwnSourceIdentity",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:{partition}:iam::{trusted}:root"},
                "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
                "Condition": {
                    "ArnLike": {"aws:PrincipalArn": f"arn:{partition}:iam::{trusted}:user{user_path}*"},
                    "Bool": {"aws:MultiFactorAuthPresent": "true"},
                    "NumericLessThan": {"aws:MultiFactorAuthAge": params.get("MaxMfaAgeSeconds") or "3600"},
                    "StringEquals": {
                        "sts:SourceIdentity": "${aws:username}",
                        "sts:RoleSessionName": "${aws:username}",
                    },
                },
            }
        ],
    }


def _canonical(document: Any) -> Any:
    """A policy in a comparable form: JSON text parsed, numbers as strings, one-item lists as
    the item, lists sorted (IAM and moto differ on all three)."""
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError:
            return document
        if isinstance(document, (int, float)):
            return str(document)
    if isinstance(document, dict):
        return {k: _canonical(v) for k, v in sorted(document.items())}
    if isinstance(document, list):
        items = [_canonical(v) for v in document]
        if len(items) == 1:
            return items[0]
        return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))
    if isinstance(document, (int, float)) and not isinstance(document, bool):
        return str(document)
    return document


def role_drift(iam: Any, params: dict[str, str], account: str, partition: str) -> list[str]:
    """What differs between the gate role in `account` (read through `iam`) and the template
    with these parameters; empty when nothing does."""
    name = params.get("RoleName") or "DeveloperElevated"
    try:
        role = iam.get_role(RoleName=name)["Role"]
    except ClientError as exc:
        if "NoSuchEntity" in str(exc):
            return [f"role {name} is missing"]
        raise
    found: list[str] = []
    if _canonical(role["AssumeRolePolicyDocument"]) != _canonical(expected_trust(params, partition)):
        found.append("trust policy differs from the template")
    boundary_name = params.get("PermissionsBoundaryName") or f"{name}-gate-boundary"
    boundary = f"arn:{partition}:iam::{account}:policy/{boundary_name}"
    actual = (role.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn")
    if actual != boundary:
        found.append(f"permissions boundary is {actual or 'none'}, not {boundary}")
    if params.get("AllowRoleToEditGate", "false") != "true":
        inline = iam.list_role_policies(RoleName=name)["PolicyNames"]
        if "protect-the-mfa-gate" not in inline:
            found.append("inline policy protect-the-mfa-gate is missing")
    return found


def _member_iam(sts: Any, account: str, partition: str, role_name: str, endpoint: str | None) -> Any:
    """An IAM client in `account`, through the role an admin of the organization may assume."""
    credentials = sts.assume_role(
        RoleArn=f"arn:{partition}:iam::{account}:role/{role_name}", RoleSessionName="elevate-drift"
    )["Credentials"]
    return boto3.client(
        "iam",
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        endpoint_url=endpoint,
        region_name=sts.meta.region_name,
    )


def _stackset_drift(cfn: Any, call: dict[str, str], timeout: float) -> dict[str, str] | None:
    """Per account, CloudFormation's own drift status of the stack instance; None when drift
    detection is unavailable (the caller then compares roles itself)."""
    try:
        operation_id = cfn.detect_stack_set_drift(**call)["OperationId"]
        _wait_stackset_operation(cfn, call["StackSetName"], operation_id, call["CallAs"], timeout)
        instances = cfn.list_stack_instances(**call)["Summaries"]
    # An endpoint without the operation (moto) answers with something that is not XML.
    except (ClientError, BotoCoreError, ResponseParserError, DeployError, KeyError) as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        ui.inform(
            f"StackSet drift detection unavailable ({reason}); comparing each account's role instead", PROG
        )
        return None
    statuses = {str(i["Account"]): str(i.get("DriftStatus") or "UNKNOWN") for i in instances}
    if any(status in {"NOT_CHECKED", "UNKNOWN"} for status in statuses.values()):
        ui.inform(
            "StackSet drift detection left accounts unchecked; comparing each account's role instead", PROG
        )
        return None
    return statuses


def check_drift(args: argparse.Namespace) -> int:
    client = session_clients(args)
    cfn = client("cloudformation")
    call = {"StackSetName": args.stack_set_name, "CallAs": args.call_as}
    stack_set = cfn.describe_stack_set(**call)["StackSet"]
    params = {
        str(p["ParameterKey"]): str(p.get("ParameterValue", "")) for p in stack_set.get("Parameters") or []
    }
    partition = str(stack_set.get("StackSetARN", "arn:aws:").split(":")[1])
    accounts = sorted({str(i["Account"]) for i in cfn.list_stack_instances(**call)["Summaries"]})
    if not accounts:
        raise DeployError(f"StackSet {args.stack_set_name} has no stack instances")
    statuses = None if args.compare_roles else _stackset_drift(cfn, call, args.timeout)
    drifted = 0
    if statuses is not None:
        for account in accounts:
            status = statuses.get(account, "UNKNOWN")
            drifted += status != "IN_SYNC"
            print(f"{account}\t{status}")
    else:
        sts = client("sts")
        endpoint = args.endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None
        for account in accounts:
            iam = _member_iam(sts, account, partition, args.member_role_name, endpoint)
            found = role_drift(iam, params, account, partition)
            drifted += bool(found)
            print("\t".join([account, "DRIFTED" if found else "IN_SYNC", *found]))
    ui.inform(
        f"{drifted} of {len(accounts)} account(s) drifted"
        if drifted
        else f"{len(accounts)} account(s) in sync",
        PROG,
    )
    return EXIT_DRIFT if drifted else 0


def open_window(args: argparse.Namespace) -> int:
    """Tag the users and move the stack's OnboardingWindowEnds to now + N minutes."""
    if not 0 <= args.minutes <= 7 * 24 * 60:
        raise DeployError("--minutes must be between 0 (close now) and 10080 (a week)")
    client = session_clients(args)
    cfn = client("cloudformation")
    stack = cfn.describe_stacks(StackName=args.stack_name)["Stacks"][0]
    previous = stack.get("Parameters") or []
    declared = {str(p["ParameterKey"]) for p in previous}
    if WINDOW_PARAMETER not in declared:
        raise DeployError(
            f"stack {args.stack_name} has no {WINDOW_PARAMETER} parameter: deploy the current template"
        )
    ends = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(minutes=args.minutes)
    value = ends.strftime("%Y-%m-%dT%H:%M:%SZ")
    iam = client("iam")
    for user in args.users:
        iam.tag_user(UserName=user, Tags=[{"Key": ONBOARDING_TAG, "Value": "true"}])
        ui.inform(f"tagged {user} {ONBOARDING_TAG}=true", PROG)
    since = time.time() - 1
    ui.inform(f"setting {WINDOW_PARAMETER}={value} on stack {args.stack_name}", PROG)
    try:
        cfn.update_stack(
            StackName=args.stack_name,
            UsePreviousTemplate=True,
            Parameters=kept_parameters(previous, {WINDOW_PARAMETER: value}, declared),
            Capabilities=CAPABILITIES,
        )
    except ClientError as exc:
        if "No updates are to be performed" not in str(exc):
            raise
    else:
        final = _wait_stack(cfn, args.stack_name, since, args.timeout)
        if final not in DONE_OK:
            raise DeployError(f"stack {args.stack_name} ended {final}")
    print(value)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=__doc__.split("\n\n")[0],
        epilog="Run `deploy-stack stack --help` or `deploy-stack stackset --help` for the options.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="template parameter; repeat for more; lists as KEY=a,b",
    )
    common.add_argument("--region", help="region (default: from the AWS environment)")
    common.add_argument("--profile", help="AWS profile to deploy with")
    common.add_argument("--endpoint-url", help="CloudFormation endpoint (default: $AWS_ENDPOINT_URL)")
    common.add_argument("--no-lint", action="store_true", help="skip cfn-lint")
    common.add_argument("--timeout", type=float, default=1800, help="seconds to wait (default 1800)")
    modes = parser.add_subparsers(dest="mode", required=True, metavar="MODE")

    stack = modes.add_parser(
        "stack",
        parents=[common],
        help="deploy a template as a stack",
        description="Validate, lint and create or update a stack, then print its outputs on stdout.",
    )
    stack.add_argument("--stack-name", default="aws-elevate-developer-access")
    stack.add_argument(
        "--template",
        default=str(DEFAULT_STACK_TEMPLATE),
        help="template file (default: cloudformation/developer-access.yaml)",
    )
    stack.add_argument("--json", action="store_true", help="print the outputs as a JSON object")
    stack.add_argument(
        "--no-protection",
        action="store_true",
        help="create without termination protection and stack policy; on an update, let this "
        "update replace or delete the gate's resources",
    )
    stack.set_defaults(func=deploy_stack)

    stackset = modes.add_parser(
        "stackset",
        parents=[common],
        help="deploy the role template as a service-managed StackSet",
        description="Validate, lint and create or update a service-managed StackSet of the role "
        "template, with automatic deployment to accounts that join the OUs later, then print "
        "account, region and status of each stack instance on stdout. Run it in the management "
        "account or, with --call-as DELEGATED_ADMIN, in a delegated administrator account.",
    )
    stackset.add_argument("--stack-set-name", default="aws-elevate-elevated-role")
    stackset.add_argument(
        "--template",
        default=str(DEFAULT_STACKSET_TEMPLATE),
        help="template file (default: cloudformation/elevated-role.yaml)",
    )
    stackset.add_argument(
        "--ou",
        dest="ous",
        action="append",
        required=True,
        metavar="OU_ID",
        help="organizational unit (ou-... or r-... for the root); repeat for more",
    )
    stackset.add_argument(
        "--deployment-region",
        dest="regions",
        action="append",
        metavar="REGION",
        help="the one region the role's stacks live in (default: --region)",
    )
    stackset.add_argument(
        "--exclude-account",
        action="append",
        default=[],
        metavar="ACCOUNT_ID",
        help="skip this account in the OUs (e.g. the identity account)",
    )
    stackset.add_argument("--call-as", choices=["SELF", "DELEGATED_ADMIN"], default="SELF")
    stackset.set_defaults(func=deploy_stackset)

    drift = modes.add_parser(
        "drift",
        parents=[common],
        help="check the gate role in every account of the StackSet",
        description="Report per account of the StackSet (stdout: account, IN_SYNC or DRIFTED, "
        "what differs) whether the gate role still matches the template: CloudFormation's "
        "StackSet drift detection where it is available, else the role read with GetRole "
        "(through --member-role-name) and compared with the template's trust policy, boundary "
        "and inline Deny. Exit status 0 in sync, 1 drift, 2 could not check.",
    )
    drift.add_argument("--stack-set-name", default="aws-elevate-elevated-role")
    drift.add_argument("--call-as", choices=["SELF", "DELEGATED_ADMIN"], default="SELF")
    drift.add_argument(
        "--member-role-name",
        default="OrganizationAccountAccessRole",
        help="role to assume in each account for GetRole (default OrganizationAccountAccessRole)",
    )
    drift.add_argument(
        "--compare-roles",
        action="store_true",
        help="skip StackSet drift detection and compare each account's role directly",
    )
    drift.set_defaults(func=check_drift)

    window = modes.add_parser(
        "window",
        parents=[common],
        help="open the onboarding window for N minutes",
        description="Tag each --user elevate-onboarding=true and set the stack's "
        "OnboardingWindowEnds to now + N minutes: until then those users may enrol an MFA "
        "device with their key alone; after it IAM refuses, even if nobody runs `elevate mfa "
        "enroll`. Prints the end time (UTC) on stdout. --minutes 0 closes it now.",
    )
    window.add_argument("--stack-name", default="aws-elevate-developer-access")
    window.add_argument("--minutes", type=int, required=True)
    window.add_argument("--user", dest="users", action="append", default=[], metavar="USER_NAME")
    window.set_defaults(func=open_window)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.mode == "stackset" and not args.regions:
            region = resolve_region(args)
            args.regions = [region] if region else []
        return int(args.func(args))
    except (DeployError, BotoCoreError, ClientError, ResponseParserError) as exc:
        ui.error(str(exc), PROG)
        return EXIT_CANNOT_CHECK if args.mode == "drift" else 1


if __name__ == "__main__":
    sys.exit(main())
