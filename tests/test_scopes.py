"""Scopes (issue 26): `--scope NAME` and a profile's `scope` send a session policy with
AssumeRole, validated at load; each scope has its own cache entry, served by the hit path
like any other, and minted from the MFA session without another code.

The fake STS records the session policy as STS receives it (PolicyArns.member.N.arn,
Policy); moto does not enforce session policies (scripts/acceptance proves that in a
real account), so moto shows the wiring with the real AWS CLI v2.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.cli import elevate_argv, one_error_line, run_elevate
from support.constants import EXAMPLE_ID, EXAMPLE_SECRET, ROLE, SERIAL
from support.fakefederation import FakeFederation
from support.fakests import FakeSts, SessionPolicy
from support.provision import provision
from support.realparts import require
from support.sessioncache import MfaScript

from elevate import hit, keystore, scopes
from elevate.config import load_config, parse_config
from elevate.errors import ConfigError
from elevate.models import SourceKeys

READ_ONLY = SessionPolicy(("arn:aws:iam::aws:policy/ReadOnlyAccess",), None)
UNSCOPED = SessionPolicy((), None)
POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": "*"}],
}
COMPACT = json.dumps(POLICY, separators=(",", ":"))
FILE_SCOPE = '[scopes.file]\npolicy = "p.json"\n'
ARNS = ("arn:aws:iam::aws:policy/ViewOnlyAccess", "arn:aws:iam::123456789012:policy/x")


def write_toml(text: str) -> Path:
    """Write `text` as the (sealed) elevate config; return its path."""
    path = Path(os.environ["ELEVATE_CONFIG"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def dev_profile(extra: str = "", role: str = ROLE) -> str:
    return f'[profiles.dev]\nrole_arn = "{role}"\nmfa_serial = "{SERIAL}"\nkeys = "work"\n{extra}\n'


def config_error(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(write_toml(text))
    return caught.value.message


@pytest.fixture
def work_keys() -> None:
    keystore.put_keys("work", SourceKeys(EXAMPLE_ID, EXAMPLE_SECRET))


# -- the scope model and its validation at load --------------------------------------------------


def test_scopes_load_from_arns_inline_json_and_a_file(tmp_path: Path) -> None:
    policy_file = Path(os.environ["ELEVATE_CONFIG"]).parent / "tf-plan.json"
    policy_file.parent.mkdir(parents=True, exist_ok=True)
    policy_file.write_text(json.dumps(POLICY, indent=4))
    config = load_config(
        write_toml(
            dev_profile('scope = "agent"')
            + "[scopes.agent]\n"
            + f"policy_arns = {json.dumps(list(ARNS))}\n"
            + f"policy = '''\n{json.dumps(POLICY, indent=2)}\n'''\n"
            + '[scopes.tf-plan]\npolicy = "tf-plan.json"\n'
        )
    )
    agent = config.profiles["dev"].scope
    assert agent is not None and agent.name == "agent"
    assert agent.policy_arns == ARNS
    assert agent.policy == COMPACT and agent.policy_file is None
    plan = config.scopes["tf-plan"]
    assert plan.policy == COMPACT and plan.policy_file == str(policy_file)
    assert plan.digest == agent.__class__(name="other", policy=COMPACT).digest  # the content, not the name


def test_built_ins_follow_the_role_partition() -> None:
    gov = "arn:aws-us-gov:iam::123456789012:role/dev"
    scope = scopes.resolve("read-only", {}, gov)
    assert scope is not None and scope.policy_arns == ("arn:aws-us-gov:iam::aws:policy/ReadOnlyAccess",)
    assert scopes.resolve("none", {}, gov) is None


@pytest.mark.parametrize(
    ("tables", "expected"),
    [
        (
            "[scopes.x]\npolicy_arns = ["
            + ", ".join(f'"arn:aws:iam::aws:policy/P{i}"' for i in range(11))
            + "]\n",
            "11 ARNs; STS accepts at most 10",
        ),
        (
            '[scopes.x]\npolicy = \'{"Statement": {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "'
            + "r" * 2100
            + "\"}}'\n",
            "STS accepts at most 2048",
        ),
        # Each part under the limit, the two together over it.
        (
            '[scopes.x]\npolicy_arns = ["arn:aws:iam::aws:policy/'
            + "p" * 1000
            + '"]\n'
            + 'policy = \'{"Statement": {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "'
            + "r" * 1000
            + "\"}}'\n",
            "STS accepts at most 2048",
        ),
        ('[scopes.x]\npolicy = \'{"Statement": [], "Statement": [{"Effect": "Allow"}]}\'\n', "appears twice"),
        (
            '[scopes.x]\npolicy = \'{"Statement": {"Effect": "Allow", "Action": "*", "Resource": NaN}}\'\n',
            "not valid JSON",
        ),
        (
            '[scopes.x]\npolicy = \'{"Statement": {"Effect": "Allow", "Principal": "*", "Action": "*"}}\'\n',
            "no Principal",
        ),
        ('[scopes.x]\npolicy = \'{"Statement": {"Effect": "Permit", "Action": "*"}}\'\n', '"Effect"'),
        ('[scopes.x]\npolicy = \'{"Statement": {"Effect": "Allow"}}\'\n', "exactly one of Action"),
        ("[scopes.x]\npolicy = '" + "[" * 5000 + "]" * 5000 + "'\n", "policy file '[[["),
        ("[scopes.x]\npolicy = '" + '{"a":[' * 50000 + "'\n", "over 64 KiB"),
        ("[scopes.x]\npolicy = '" + '{"a":[' * 10000 + "'\n", "not valid JSON"),
        ("[scopes.x]\npolicy = '" + '{"a":' * 100 + "1" + "}" * 100 + "'\n", "unknown key 'a'"),
        (
            "[scopes.x]\npolicy = '"
            + '{"Version": "2020-01-01", "Statement": {"Effect": "Allow", "Action": "*"}}\'\n',
            "Version must be",
        ),
        ('[scopes.x]\npolicy_arns = ["arn:aws:iam::aws:role/NotAPolicy"]\n', "is not a policy ARN"),
        ('[scopes.x]\npolicy_arns = ["arn:aws:iam::aws:policy/A", "arn:aws:iam::aws:policy/A"]\n', "twice"),
        ("[scopes.x]\n", "set policy_arns, policy or both"),
        ('[scopes.x]\npolicy_arn = ["arn:aws:iam::aws:policy/A"]\n', "unknown key 'policy_arn'"),
        (
            '[scopes.read-only]\npolicy_arns = ["arn:aws:iam::aws:policy/AdministratorAccess"]\n',
            "built-in scope and cannot be redefined",
        ),
        ('[scopes."a b"]\npolicy_arns = ["arn:aws:iam::aws:policy/A"]\n', "must be 1-32 letters"),
        ('[scopes."../../x"]\npolicy_arns = ["arn:aws:iam::aws:policy/A"]\n', "must be 1-32 letters"),
        ('[scopes.x]\npolicy = "no-such-file.json"\n', "no such file"),
    ],
)
def test_a_bad_scope_is_refused_at_load_naming_it(tables: str, expected: str) -> None:
    message = config_error(dev_profile() + tables)
    assert expected in message, message
    assert "scope" in message


def test_a_profile_naming_an_unknown_scope_fails_with_its_line() -> None:
    path = Path(os.environ["ELEVATE_CONFIG"])
    message = config_error(dev_profile('scope = "nope"'))
    assert message.startswith(f"{path}:5: profile 'dev': unknown scope 'nope'"), message
    assert "known scopes: read-only, none" in message


def test_a_scope_of_another_partition_or_account_is_refused_for_the_role() -> None:
    tables = '[scopes.cn]\npolicy_arns = ["arn:aws-cn:iam::aws:policy/ReadOnlyAccess"]\n'
    assert "not in the role's partition and account" in config_error(dev_profile('scope = "cn"') + tables)
    tables = '[scopes.other]\npolicy_arns = ["arn:aws:iam::210987654321:policy/Mine"]\n'
    assert "not in the role's partition and account" in config_error(dev_profile('scope = "other"') + tables)


def test_a_policy_file_others_can_write_is_refused(tmp_path: Path) -> None:
    config = write_toml(dev_profile() + '[scopes.x]\npolicy = "x.json"\n')
    policy = config.parent / "x.json"
    policy.write_text(COMPACT)
    policy.chmod(0o664)
    with pytest.raises(ConfigError, match=r"scopes\.x.*policy file.*writable by group or others"):
        load_config(config)
    # The same file through a symlink from the config's directory into a shared one.
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    target = shared / "x.json"
    target.write_text(COMPACT)
    target.chmod(0o644)
    policy.unlink()
    policy.symlink_to(target)
    with pytest.raises(ConfigError, match=r"policy file.*writable by group or others"):
        load_config(config)
    shared.chmod(0o755)
    assert load_config(config).scopes["x"].policy == COMPACT


def test_parse_without_scopes_is_unchanged() -> None:
    config = parse_config(dev_profile(), Path("/nonexistent/config.toml"))
    assert config.profiles["dev"].scope is None and config.scopes == {}


# -- what STS receives ---------------------------------------------------------------------------


def _ok(*args: str) -> subprocess.CompletedProcess[str]:
    done = run_elevate(*args)
    assert done.returncode == 0, done.stderr
    return done


def test_the_session_policy_sent_for_built_ins_arns_inline_and_file_scopes(
    fake_sts: FakeSts, work_keys: None
) -> None:
    config = write_toml(
        dev_profile()
        + '[scopes.arns]\npolicy_arns = ["arn:aws:iam::aws:policy/ViewOnlyAccess"]\n'
        + f"[scopes.inline]\npolicy = '{json.dumps(POLICY)}'\n"
        + '[scopes.file]\npolicy = "p.json"\n'
    )
    (config.parent / "p.json").write_text(json.dumps(POLICY, indent=2))
    for number, scope in enumerate(("read-only", "arns", "inline", "file", "none"), 1):
        _ok("credential-process", "dev", "--scope", scope, "--token", f"10000{number}", "--no-cache")
    assert fake_sts.session_policies() == [
        READ_ONLY,
        SessionPolicy(("arn:aws:iam::aws:policy/ViewOnlyAccess",), None),
        SessionPolicy((), COMPACT),
        SessionPolicy((), COMPACT),
        UNSCOPED,
    ]
    # SourceIdentity and the session name stay the user's, scoped or not.
    names = {(r.params["RoleSessionName"], r.params["SourceIdentity"]) for r in fake_sts.of("AssumeRole")}
    assert names == {("alice", "alice")}


def test_a_profile_scope_applies_and_scope_none_overrides_it(fake_sts: FakeSts, work_keys: None) -> None:
    write_toml(dev_profile('scope = "read-only"'))
    _ok("export", "dev", "--token", "200001", "--format", "bash", "--no-cache")
    _ok("export", "dev", "--scope", "none", "--token", "200002", "--format", "bash", "--no-cache")
    assert fake_sts.session_policies() == [READ_ONLY, UNSCOPED]
    line = one_error_line(run_elevate("export", "dev", "--scope", "bogus", "--token", "200003"), exit_code=2)
    assert "unknown scope 'bogus'; known scopes: read-only, none" in line
    assert fake_sts.count("AssumeRole") == 2


def test_each_scope_has_its_own_entry_served_by_the_hit_path(fake_sts: FakeSts, work_keys: None) -> None:
    write_toml(dev_profile())
    plain = json.loads(_ok("credential-process", "dev", "--token", "300001").stdout)
    scoped = json.loads(_ok("credential-process", "dev", "--scope", "read-only", "--token", "300002").stdout)
    assert plain["AccessKeyId"] != scoped["AccessKeyId"]
    assert fake_sts.session_policies() == [UNSCOPED, READ_ONLY]
    # Hits, each of its own entry: the indexed plain call and the fast path with --scope;
    # neither may answer with the other's credentials.
    for _ in range(2):
        again = json.loads(_ok("credential-process", "dev", "--scope", "read-only").stdout)
        assert again["AccessKeyId"] == scoped["AccessKeyId"]
        again = json.loads(_ok("credential-process", "dev").stdout)
        assert again["AccessKeyId"] == plain["AccessKeyId"]
        again = json.loads(_ok("credential-process", "dev", "--scope=read-only").stdout)
        assert again["AccessKeyId"] == scoped["AccessKeyId"]
    exported = _ok("export", "dev", "--scope", "read-only", "--format", "bash").stdout
    assert scoped["AccessKeyId"] in exported
    assert fake_sts.count("AssumeRole") == 2
    status = json.loads(_ok("status", "--json").stdout)[0]
    assert "scope" not in status and status["credentials"]["seconds_left"] > 3000
    assert set(status["other_scopes"]) == {"read-only"}
    text = _ok("status").stdout
    assert "dev: cached" in text and "  scope read-only: cached" in text
    assert "cleared" in _ok("clear", "dev").stderr
    after = json.loads(_ok("status", "--json").stdout)[0]
    assert after["credentials"] is None and "other_scopes" not in after


def test_the_indexed_hit_serves_a_profile_scope_and_never_a_file_scope(
    fake_sts: FakeSts, work_keys: None
) -> None:
    config = write_toml(
        dev_profile().replace("[profiles.dev]", "[profiles.dev-ro]")
        + 'scope = "read-only"\n'
        + dev_profile().replace("[profiles.dev]", "[profiles.dev-file]")
        + 'scope = "file"\n'
        + FILE_SCOPE
    )
    (config.parent / "p.json").write_text(json.dumps(POLICY))
    scoped = json.loads(_ok("credential-process", "dev-ro", "--token", "330001").stdout)
    _ok("credential-process", "dev-file", "--token", "330002")
    served = hit.serve(None, "dev-ro", os.environ, time.time())
    assert served is not None and json.loads(served)["AccessKeyId"] == scoped["AccessKeyId"]
    # The index knows the config file, not the policy file it names: the full path decides.
    assert hit.serve(None, "dev-file", os.environ, time.time()) is None
    assert fake_sts.session_policies() == [READ_ONLY, SessionPolicy((), COMPACT)]


def test_a_scoped_call_first_does_not_index_its_answer_for_the_plain_one(
    fake_sts: FakeSts, work_keys: None, mfa: MfaScript
) -> None:
    # No --token: the plain `credential-process dev` is the form the hit index answers.
    write_toml(dev_profile(f'mfa_process = "{mfa.command}"'))
    scoped = json.loads(_ok("credential-process", "dev", "--scope", "read-only").stdout)
    plain = json.loads(_ok("credential-process", "dev").stdout)
    assert plain["AccessKeyId"] != scoped["AccessKeyId"]
    assert fake_sts.session_policies() == [READ_ONLY, UNSCOPED]


def test_an_edited_policy_file_is_never_served_from_the_old_entry(
    fake_sts: FakeSts, work_keys: None, mfa: MfaScript
) -> None:
    config = write_toml(dev_profile(f'scope = "file"\nmfa_process = "{mfa.command}"') + FILE_SCOPE)
    policy_file = config.parent / "p.json"
    policy_file.write_text(json.dumps(POLICY))
    first = json.loads(_ok("credential-process", "dev").stdout)
    assert json.loads(_ok("credential-process", "dev").stdout) == first  # a hit while unchanged
    narrower = {"Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}]}
    policy_file.write_text(json.dumps(narrower))
    second = json.loads(_ok("credential-process", "dev").stdout)
    assert second["AccessKeyId"] != first["AccessKeyId"]
    assert fake_sts.session_policies()[-1] == SessionPolicy((), json.dumps(narrower, separators=(",", ":")))


def test_an_mfa_session_mints_scoped_credentials_without_another_code(
    fake_sts: FakeSts, work_keys: None, mfa: MfaScript
) -> None:
    write_toml(dev_profile(f'mfa_session_seconds = 7200\nmfa_process = "{mfa.command}"'))
    _ok("credential-process", "dev")
    _ok("credential-process", "dev", "--scope", "read-only")
    _ok("exec", "dev", "--scope", "read-only", "--", "true")  # a hit
    assert mfa.runs == 1 and fake_sts.count("GetSessionToken") == 1
    assert fake_sts.session_policies() == [UNSCOPED, READ_ONLY]
    scoped = fake_sts.of("AssumeRole")[1]
    assert "TokenCode" not in scoped.params and scoped.session_token is not None


def test_without_an_mfa_session_a_scope_asks_once_then_lives_its_hour(
    fake_sts: FakeSts, work_keys: None, mfa: MfaScript
) -> None:
    write_toml(dev_profile(f'mfa_process = "{mfa.command}"'))
    _ok("credential-process", "dev")
    for _ in range(3):
        _ok("credential-process", "dev", "--scope", "read-only")
    assert mfa.runs == 2 and fake_sts.session_policies() == [UNSCOPED, READ_ONLY]


@pytest.mark.parametrize(
    ("code", "advice"),
    [
        ("PackedPolicyTooLarge", "use fewer or smaller policies"),
        ("MalformedPolicyDocument", "fix its policy"),
    ],
)
def test_a_scope_sts_refuses_fails_in_one_line_naming_it(
    fake_sts: FakeSts, work_keys: None, code: str, advice: str
) -> None:
    config = write_toml(dev_profile() + '[scopes.big]\npolicy_arns = ["arn:aws:iam::aws:policy/A"]\n')
    fake_sts.behave("AssumeRole", error=(400, code, "Policy is too large or not a policy"))
    line = one_error_line(run_elevate("exec", "dev", "--scope", "big", "--token", "400001", "--", "true"))
    assert f"scope 'big' ([scopes.big] in {config}) cannot be applied" in line and code in line
    assert advice in line
    fake_sts.reset()
    fake_sts.behave("AssumeRole", error=(400, code, "nope"))
    line = one_error_line(
        run_elevate("credential-process", "dev", "--scope", "read-only", "--token", "400002")
    )
    assert "scope 'read-only' (a built-in scope) cannot be applied" in line


def test_other_sts_errors_are_not_blamed_on_the_scope(fake_sts: FakeSts, work_keys: None) -> None:
    write_toml(dev_profile())
    message = "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
    fake_sts.behave("AssumeRole", error=(400, "ValidationError", message))
    line = one_error_line(run_elevate("export", "dev", "--scope", "read-only", "--token", "400003"))
    assert "scope" not in line and "MaxSessionDuration" in line


def test_debug_names_the_policies_and_no_secret(fake_sts: FakeSts, work_keys: None) -> None:
    config = write_toml(dev_profile() + f"[scopes.agent]\npolicy = '{json.dumps(POLICY)}'\n")
    done = _ok("--debug", "credential-process", "dev", "--scope", "agent", "--token", "500001")
    assert f"scope 'agent'; inline policy of {len(COMPACT)} characters from the config" in done.stderr
    done = _ok("--debug", "export", "dev", "--scope", "read-only", "--token", "500002", "--no-cache")
    assert "policy ARNs arn:aws:iam::aws:policy/ReadOnlyAccess" in done.stderr
    issued = fake_sts.issued
    for creds in issued:
        assert creds["SecretAccessKey"] not in done.stderr and creds["SessionToken"] not in done.stderr
    assert EXAMPLE_SECRET not in done.stderr and str(config) in done.stderr


def test_login_signs_in_with_the_scoped_session(
    fake_sts: FakeSts, work_keys: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_toml(dev_profile())
    with FakeFederation() as fed:
        monkeypatch.setenv("ELEVATE_FEDERATION_URL", fed.url)
        _ok("login", "dev", "--scope", "read-only", "-t", "600001", "--stdout")
        (request,) = fed.requests
    assert fake_sts.session_policies() == [READ_ONLY]
    assert json.loads(request["Session"])["sessionId"] == fake_sts.issued[-1]["AccessKeyId"]


FETCH = """
import json, os, sys, urllib.request
request = urllib.request.Request(os.environ["AWS_CONTAINER_CREDENTIALS_FULL_URI"])
request.add_header("Authorization", os.environ["AWS_CONTAINER_AUTHORIZATION_TOKEN"])
print(json.load(urllib.request.urlopen(request, timeout=10))["AccessKeyId"])
"""


def test_exec_server_serves_the_scoped_credentials(fake_sts: FakeSts, work_keys: None) -> None:
    write_toml(dev_profile())
    done = _ok(
        "exec", "--server", "dev", "--scope", "read-only", "-t", "700001", "--", sys.executable, "-c", FETCH
    )
    assert fake_sts.session_policies() == [READ_ONLY]
    assert done.stdout.strip() == fake_sts.issued[-1]["AccessKeyId"]


# -- moto and the real AWS CLI v2 ---------------------------------------------------------------


def _aws_v2() -> str:
    path = "/usr/bin/aws"
    ok = os.path.exists(path)
    if ok:
        version = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60)
        ok = version.stdout.startswith("aws-cli/2")
    require(ok, "the AWS CLI v2 is not installed at /usr/bin/aws")
    return path


def test_exec_with_a_read_only_scope_against_moto(moto_env: str) -> None:
    aws = _aws_v2()
    user = provision(moto_env, user_name="scope-exec")
    keystore.put_keys("work", keystore.check_keys(user.access_key_id, user.secret_access_key))
    write_toml(
        f'[profiles.dev]\nrole_arn = "{user.role_arn}"\nmfa_serial = "{user.mfa_serial}"\nkeys = "work"\n'
        'region = "us-east-1"\n'
    )
    done = run_elevate(
        "exec", "dev", "--scope", "read-only", "--token", user.totp().now(), "--",
        aws, "sts", "get-caller-identity", "--endpoint-url", moto_env, "--output", "json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    role = user.role_arn.rsplit("/", 1)[-1]
    assert (
        json.loads(done.stdout)["Arn"]
        == f"arn:aws:sts::{user.account_id}:assumed-role/{role}/{user.user_name}"
    )
    status = json.loads(run_elevate("status", "--json").stdout)[0]
    assert status["credentials"] is None and "read-only" in status["other_scopes"]


def test_the_aws_cli_v2_through_a_scoped_profile(moto_env: str) -> None:
    aws = _aws_v2()
    user = provision(moto_env, user_name="scope-awscli")
    keystore.put_keys("work", keystore.check_keys(user.access_key_id, user.secret_access_key))
    base = f'role_arn = "{user.role_arn}"\nmfa_serial = "{user.mfa_serial}"\n'
    base += 'keys = "work"\nregion = "us-east-1"\n'
    write_toml(f'[profiles.dev]\n{base}[profiles.dev-ro]\n{base}scope = "read-only"\n')
    aws_config = Path(os.environ["AWS_CONFIG_FILE"])
    aws_config.parent.mkdir(parents=True, exist_ok=True)
    command = shlex.join(elevate_argv("credential-process", "dev-ro", "--token", user.totp().now()))
    aws_config.write_text(f"[profile dev-ro]\ncredential_process = {command}\nregion = us-east-1\n")
    for _ in range(2):  # the second is a cache hit
        done = subprocess.run(
            [aws, "sts", "get-caller-identity", "--profile", "dev-ro", "--endpoint-url", moto_env],
            capture_output=True, text=True, env=dict(os.environ), timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["Arn"].endswith(f"/{user.user_name}")
    report = {item["profile"]: item for item in json.loads(run_elevate("status", "--json").stdout)}
    assert report["dev-ro"]["scope"] == "read-only" and report["dev-ro"]["credentials"] is not None
    assert report["dev"]["credentials"] is None  # the unscoped entry was never filled
