"""Scopes: named session policies that narrow a profile's role credentials to one task.

STS grants a session the intersection of the role's policies and the session policies
sent with AssumeRole (`PolicyArns`, `Policy`), so a scope can only take rights away.
Built-ins: `read-only` (the AWS managed ReadOnlyAccess policy of the role's partition)
and `none` (no session policy: the role's full rights, to override a profile's scope).
The config adds `[scopes.NAME]` tables with `policy_arns = [...]` and/or `policy` (inline
JSON, or the path of a JSON file), checked here when the config is loaded.

The limits are STS's, from the AssumeRole API reference: at most 10 managed policy ARNs,
and "the plaintext that you use for both inline and managed session policies can't
exceed 2,048 characters" (counted here as the compact inline JSON plus every ARN). STS
packs the policies into a binary form with a limit of its own that cannot be computed
here: PackedPolicyTooLarge then names the scope (elevate.core).

Standard library only: the config (and so the cache hit's fast path) imports this.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional

from .errors import ConfigError
from .models import Profile, Scope

# Patterns as text, compiled (and cached by re) on first use: the cache hit's fast path imports
# this module and a config without scopes never needs them.
PARTITION = r"aws(?:-cn|-us-gov|-iso(?:-[a-z])?)?"
POLICY_ARN = rf"arn:({PARTITION}):iam::(aws|\d{{12}}):policy(?:/[\w+=,.@-]+)+"
ROLE_ARN_PARTS = rf"arn:({PARTITION}):iam::(\d{{12}}):role/"
# Scope names are shown in messages, `status` and the cache entry's label: a short safe set.
SCOPE_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}"
NAME_RULE = "must be 1-32 letters, digits or _.- (starting with a letter or digit)"

READ_ONLY = "read-only"
NONE = "none"
BUILT_INS = (READ_ONLY, NONE)
# ReadOnlyAccess rather than ViewOnlyAccess: `terraform plan` and most read-only tasks need
# the Get*/Describe* calls ViewOnlyAccess lacks. It reads data too (S3 objects, SSM
# parameters): "read-only" means "cannot change anything", not "cannot read secrets".
READ_ONLY_POLICY = "ReadOnlyAccess"

MAX_POLICY_ARNS = 10
MAX_PLAINTEXT_CHARS = 2048
MAX_SOURCE_CHARS = 64 * 1024  # a policy file or string to parse: generous for pretty-printed JSON
_SCOPE_KEYS = ("policy_arns", "policy")
_POLICY_KEYS = {"Version", "Id", "Statement"}
_STATEMENT_KEYS = {"Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Condition"}
_VERSIONS = ("2012-10-17", "2008-10-17")


def valid_name(name: str) -> bool:
    """Whether `name` may name a scope."""
    return re.fullmatch(SCOPE_NAME, name, re.ASCII) is not None


def parse_scopes(raw: Any, config: Path, read: Callable[[Path], str]) -> dict[str, Scope]:
    """The `[scopes.NAME]` tables of the config at `config`, validated.

    `read` returns a policy file's text under the config file's own trust rules (owned by
    the user, not writable by others): a policy file decides what the credentials can do.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"{config}: 'scopes' must be a table of [scopes.NAME]")
    return {name: _scope(name, table, config, read) for name, table in raw.items()}


def _scope(name: str, table: Any, config: Path, read: Callable[[Path], str]) -> Scope:
    here = f"{config}: [scopes.{name}]" if valid_name(name) else f"{config}: scope {name!r}"
    if not valid_name(name):
        raise ConfigError(f"{here}: the name {NAME_RULE}")
    if name in BUILT_INS:
        raise ConfigError(f"{here}: {name!r} is a built-in scope and cannot be redefined")
    if not isinstance(table, dict):
        raise ConfigError(f"{here} must be a table")
    for key in table:
        if key not in _SCOPE_KEYS:
            raise ConfigError(f"{here}: unknown key {key!r}; allowed: {', '.join(_SCOPE_KEYS)}")
    if not table:
        raise ConfigError(f"{here}: set policy_arns, policy or both")
    arns = _policy_arns(table.get("policy_arns", []), here)
    policy, source = None, None
    if "policy" in table:
        policy, source = _policy(table["policy"], here, config, read)
    used = len(policy or "") + sum(len(arn) for arn in arns)
    if used > MAX_PLAINTEXT_CHARS:
        raise ConfigError(
            f"{here}: the session policy is {used} characters (inline JSON, compacted, plus the "
            f"ARNs); STS accepts at most {MAX_PLAINTEXT_CHARS}"
        )
    return Scope(name=name, policy_arns=arns, policy=policy, policy_file=source)


def _policy_arns(value: Any, here: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{here}: policy_arns must be a list of policy ARNs")
    if len(value) > MAX_POLICY_ARNS:
        raise ConfigError(f"{here}: policy_arns has {len(value)} ARNs; STS accepts at most {MAX_POLICY_ARNS}")
    for arn in value:
        if not re.fullmatch(POLICY_ARN, arn, re.ASCII) or len(arn) > MAX_PLAINTEXT_CHARS:
            raise ConfigError(f"{here}: {arn[:100]!r} is not a policy ARN (arn:aws:iam::aws:policy/NAME)")
    if len(set(value)) != len(value):
        raise ConfigError(f"{here}: policy_arns names a policy twice")
    return tuple(value)


def _policy(value: Any, here: str, config: Path, read: Callable[[Path], str]) -> tuple[str, Optional[str]]:
    """(the policy as sent: compact JSON, the file it came from or None)."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{here}: policy must be a JSON policy or the path of a JSON file")
    source: Optional[str] = None
    text = value
    if not value.lstrip().startswith("{"):
        path = Path(os.path.expanduser(value))
        path = path if path.is_absolute() else config.parent / path
        try:
            found = path.exists()
        except OSError as exc:  # e.g. a name too long: no file of ours
            raise ConfigError(f"{here}: policy file {value[:100]!r}: {exc.strerror}") from exc
        if not found:
            raise ConfigError(f"{here}: policy file {path}: no such file")
        try:
            text = read(path)
        except ConfigError as exc:
            raise ConfigError(f"{here}: policy file: {exc.message}") from exc
        source = str(path)
    if len(text) > MAX_SOURCE_CHARS:
        raise ConfigError(f"{here}: the policy is over {MAX_SOURCE_CHARS // 1024} KiB")
    try:
        document = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise ConfigError(f"{here}: the policy is not valid JSON: {str(exc)[:200]}") from exc
    problem = policy_problem(document)
    if problem:
        raise ConfigError(f"{here}: the policy {problem}")
    return json.dumps(document, separators=(",", ":")), source


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json keeps the last of duplicate keys; IAM's reading of them is not ours to guess.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"the key {key!r} appears twice in one object")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def policy_problem(document: Any) -> Optional[str]:
    """What is wrong with the shape of an IAM policy document meant as a session policy, else None."""
    if not isinstance(document, dict):
        return "must be a JSON object"
    unknown = set(document) - _POLICY_KEYS
    if unknown:
        return f"has unknown key {sorted(unknown)[0]!r} (allowed: Version, Id, Statement)"
    if "Version" in document and document["Version"] not in _VERSIONS:
        return f"Version must be {' or '.join(_VERSIONS)}"
    statements = document.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not statements:
        return "needs a Statement (an object or a non-empty list of objects)"
    for number, statement in enumerate(statements, 1):
        problem = _statement_problem(statement)
        if problem:
            return f"Statement {number} {problem}"
    return None


def _statement_problem(statement: Any) -> Optional[str]:
    if not isinstance(statement, dict):
        return "must be an object"
    unknown = set(statement) - _STATEMENT_KEYS
    if unknown:
        key = sorted(unknown)[0]
        why = " (a session policy applies to the session: no Principal)" if "Principal" in key else ""
        return f"has unknown key {key!r}{why}"
    if statement.get("Effect") not in ("Allow", "Deny"):
        return 'needs "Effect": "Allow" or "Deny"'
    if ("Action" in statement) == ("NotAction" in statement):
        return "needs exactly one of Action and NotAction"
    if ("Resource" in statement) and ("NotResource" in statement):
        return "has both Resource and NotResource"
    for key in ("Action", "NotAction", "Resource", "NotResource"):
        if key in statement and not _strings(statement[key]):
            return f"{key} must be a string or a non-empty list of strings"
    if "Condition" in statement and not isinstance(statement["Condition"], dict):
        return "Condition must be an object"
    return None


def _strings(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value)
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) and v for v in value)


def resolve(name: str, defined: Mapping[str, Scope], role_arn: str) -> Optional[Scope]:
    """The scope called `name` for a role (None for `none`), or a ConfigError naming the choices."""
    if not valid_name(name):
        raise ConfigError(f"scope {name[:64]!r} {NAME_RULE}")
    role = re.match(ROLE_ARN_PARTS, role_arn, re.ASCII)
    partition, account = (role.group(1), role.group(2)) if role else ("aws", "")
    if name == NONE:
        return None
    if name == READ_ONLY:
        return Scope(name=name, policy_arns=(f"arn:{partition}:iam::aws:policy/{READ_ONLY_POLICY}",))
    scope = defined.get(name)
    if scope is None:
        known = ", ".join([*BUILT_INS, *sorted(defined)])
        raise ConfigError(f"unknown scope {name!r}; known scopes: {known}")
    for arn in scope.policy_arns:
        match = re.fullmatch(POLICY_ARN, arn, re.ASCII)
        if match and (match.group(1) != partition or match.group(2) not in ("aws", account)):
            raise ConfigError(
                f"scope {name!r}: {arn} is not in the role's partition and account ({role_arn}): "
                "STS takes AWS managed policies and the role account's own"
            )
    return scope


def narrowed(profile: Profile, name: Optional[str], defined: Mapping[str, Scope]) -> Profile:
    """`profile` with the scope `name` (from --scope) in place of its own; unchanged for None."""
    if name is None:
        return profile
    return replace(profile, scope=resolve(name, defined, profile.role_arn))


def indexable(profile: Profile, scope_option: Optional[str]) -> bool:
    """Whether the hit index may remember this answer under the config and profile argument.

    The index knows the config file's identity and the profile argument only: a --scope
    option is not part of its key, and a policy file can change while the config does not.
    """
    return scope_option is None and (profile.scope is None or profile.scope.policy_file is None)


def describe(scope: Optional[Scope]) -> str:
    """What a scope sends STS, for --debug: ARNs, and the inline policy's size, source and hash."""
    if scope is None:
        return "no scope (the role's full rights)"
    parts = [f"scope {scope.name!r}"]
    if scope.policy_arns:
        parts.append(f"policy ARNs {', '.join(scope.policy_arns)}")
    if scope.policy is not None:
        where = f" from {scope.policy_file}" if scope.policy_file else " from the config"
        parts.append(f"inline policy of {len(scope.policy)} characters{where}")
    parts.append(f"digest {scope.digest}")
    return "; ".join(parts)
