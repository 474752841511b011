"""The invocation resolved once: one world per run, and a profile that knows where it was read.

Two paths of one run must never see two worlds: the cache entry's key and the STS request
are made from the one Invocation built at the top, whatever happens to the process
environment or the AWS config file afterwards; an error names the config's file and line
from what was parsed, without reading the file again.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest
from support.constants import EXAMPLE_ID, EXAMPLE_SECRET, ROLE, SERIAL
from support.fakests import FakeSts

from elevate import cache, stsquery
from elevate.config import chosen_name, load_config, parse_config, select_profile
from elevate.core import Elevator
from elevate.errors import ConfigError, StsError
from elevate.invocation import Invocation
from elevate.models import Profile, SourceKeys
from elevate.onboarding.configure import existing_profile

PACKAGE = Path(__file__).resolve().parent.parent / "elevate"


def keys(_name: str) -> SourceKeys:
    return SourceKeys(EXAMPLE_ID, EXAMPLE_SECRET)


# -- one world per run --------------------------------------------------------------------------


def test_the_request_goes_where_the_entry_key_says_when_the_environment_changes_meanwhile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    profile = Profile(name="dev", role_arn=ROLE, mfa_serial=SERIAL, keys="dev", region="eu-west-1")
    with FakeSts() as resolved, FakeSts() as later:
        monkeypatch.setenv("AWS_ENDPOINT_URL", resolved.url)
        invocation = Invocation.from_environ(os.environ)
        key = cache.entry_key(profile, invocation)
        # Something changes the process environment after the run resolved its world.
        monkeypatch.setenv("AWS_ENDPOINT_URL", later.url)
        told: list[str] = []
        elevator = Elevator(invocation, load_keys=keys, code_source=lambda p, t: "123456", notify=told.append)
        creds = elevator.elevate(profile)
        assert resolved.count("AssumeRole") == 1 and later.requests == []
        assert cache.entry_key(profile, invocation) == key
        stored = cache.for_profile(profile, invocation)
        assert stored is not None and stored.get(key, 0, 3600) == creds


def test_the_sts_endpoint_is_read_once_per_invocation(tmp_path: Path) -> None:
    aws_config = tmp_path / "aws-config"
    aws_config.write_text("[default]\nendpoint_url = http://127.0.0.1:1\n")
    invocation = Invocation.from_environ({"AWS_CONFIG_FILE": str(aws_config), "HOME": str(tmp_path)})
    first = invocation.sts("eu-west-1")
    aws_config.write_text("[default]\nendpoint_url = http://127.0.0.1:2\n")
    assert invocation.sts("eu-west-1") == first
    assert first.endpoint_url == "http://127.0.0.1:1" and first.region == "eu-west-1"
    fresh = Invocation.from_environ(invocation.environ)
    assert fresh.sts("eu-west-1").endpoint_url == "http://127.0.0.1:2"  # a new run reads it anew


@pytest.mark.parametrize(
    ("config", "env"),
    [
        ("", {}),
        ("[default]\nendpoint_url = http://127.0.0.1:1\n", {}),
        ("[profile default]\nendpoint_url = http://127.0.0.1:2\n", {}),
        ("[default]\nservices = s\n[services s]\nsts =\n  endpoint_url = http://127.0.0.1:3\n", {}),
        (
            "[default]\nservices = s\nendpoint_url = http://127.0.0.1:1\n"
            "[services s]\nsts =\n  endpoint_url = http://127.0.0.1:3\n",
            {"AWS_ENDPOINT_URL": "http://127.0.0.1:4"},
        ),
        ("[default]\nendpoint_url = http://127.0.0.1:1\n", {"AWS_ENDPOINT_URL_STS": "http://127.0.0.1:5"}),
        ("[default]\nendpoint_url = http://127.0.0.1:1\n", {"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"}),
        ("[default]\nendpoint_url = http://127.0.0.1:1\nignore_configured_endpoint_urls = true\n", {}),
        ("[other]\nendpoint_url = http://127.0.0.1:6\n", {"AWS_PROFILE": "other"}),
    ],
)
def test_the_entry_key_and_the_request_name_one_endpoint(
    tmp_path: Path, config: str, env: dict[str, str]
) -> None:
    (tmp_path / "aws-config").write_text(config)
    base = {"HOME": str(tmp_path), "AWS_CONFIG_FILE": str(tmp_path / "aws-config")}
    invocation = Invocation.from_environ({**base, **env})
    target = invocation.sts("eu-west-1")
    route = stsquery.resolve(target.region, invocation.environ)
    keyed = target.endpoint_url or "https://sts.eu-west-1.amazonaws.com"
    assert keyed.rstrip("/") == route.endpoint_url.rstrip("/")


def test_the_invocation_is_a_read_only_copy_that_keeps_the_environment_out_of_its_repr(
    tmp_path: Path,
) -> None:
    source = {"HOME": str(tmp_path), "AWS_SECRET_ACCESS_KEY": EXAMPLE_SECRET, "ELEVATE_CACHE_DIR": "/c"}
    invocation = Invocation.from_environ(source, config="/etc/mine.toml")
    source["ELEVATE_CACHE_DIR"] = "/elsewhere"
    assert invocation.environ["ELEVATE_CACHE_DIR"] == "/c" and invocation.cache_dir == Path("/c")
    assert invocation.config_path == Path("/etc/mine.toml")
    with pytest.raises(TypeError):
        invocation.environ["AWS_ENDPOINT_URL"] = "http://127.0.0.1:9"  # type: ignore[index]
    with pytest.raises(AttributeError):
        invocation.cache_dir = tmp_path  # type: ignore[misc]
    assert EXAMPLE_SECRET not in repr(invocation)


def test_the_region_and_config_follow_the_invocation_not_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    invocation = Invocation.from_environ(
        {"AWS_REGION": "eu-north-1", "ELEVATE_CONFIG": "/a.toml", "HOME": "/h"}
    )
    monkeypatch.setenv("AWS_REGION", "ap-south-1")
    monkeypatch.setenv("ELEVATE_CONFIG", "/b.toml")
    assert invocation.sts(None).region == "eu-north-1" and invocation.sts("us-west-2").region == "us-west-2"
    assert invocation.config_path == Path("/a.toml")


# -- the one profile rule --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "environ", "default", "expected"),
    [
        ("named", {"ELEVATE_PROFILE": "env"}, "default", "named"),
        (None, {"ELEVATE_PROFILE": "env"}, "default", "env"),
        (None, {}, "default", "default"),
        (None, {"ELEVATE_PROFILE": ""}, "default", "default"),
        (None, {}, None, None),
    ],
)
def test_one_rule_chooses_the_profile(
    requested: str | None, environ: dict[str, str], default: str | None, expected: str | None
) -> None:
    assert chosen_name(requested, environ, default) == expected


def test_the_only_profile_is_not_chosen_unasked(tmp_path: Path) -> None:
    # Today's rule: no default_profile and no name is "no profile chosen", even with one profile.
    config = parse_config(f'[profiles.dev]\nrole_arn = "{ROLE}"\nmfa_serial = "{SERIAL}"\n', tmp_path / "c")
    with pytest.raises(ConfigError, match="no profile chosen"):
        select_profile(config, None, {})


# -- a profile knows where it was read ---------------------------------------------------------------

TRICKY = f"""\
default_profile = "dev"

[profiles.other]
role_arn = "{ROLE}"
mfa_serial = "{SERIAL}"
mfa_process = '''
[profiles.dev]
role_arn = "arn:aws:iam::123456789012:role/NotThisLine"
'''

[profiles.dev]   # the real one
mfa_serial = "{SERIAL}"
"role_arn" = "{ROLE}"
duration_seconds = 3600
"""


def test_a_profile_knows_its_file_and_lines_and_text_inside_a_value_never_counts(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    config = parse_config(TRICKY, path)
    origin = config.profiles["dev"].origin
    assert origin is not None
    assert origin.at() == f"{path}:11"
    assert origin.at("role_arn") == f"{path}:13" and origin.at("duration_seconds") == f"{path}:14"
    assert origin.at("region") == f"{path}:11"  # not set: the profile's table
    other = config.profiles["other"].origin
    assert (
        other is not None and other.at("mfa_process") == f"{path}:6" and other.at("role_arn") == f"{path}:4"
    )


def test_an_error_names_the_line_of_the_key_not_a_look_alike_inside_a_string(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    text = TRICKY.replace("duration_seconds = 3600", "duration_seconds = 5")
    with pytest.raises(ConfigError) as caught:
        parse_config(text, path)
    assert caught.value.message.startswith(f"{path}:14: profile 'dev': duration_seconds = 5 is out of range")


def test_access_denied_names_the_role_arn_line_without_reading_the_config_again(
    tmp_path: Path, fake_sts: FakeSts
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[profiles.dev]\n# the role\nmfa_serial = "{SERIAL}"\nrole_arn = "{ROLE}"\ncache = "off"\n'
    )
    profile = load_config(path).profiles["dev"]
    path.unlink()  # gone: the message comes from what was parsed
    fake_sts.behave("AssumeRole", error=(403, "AccessDenied", "not authorized to perform sts:AssumeRole"))
    elevator = Elevator(Invocation.from_environ(os.environ), load_keys=keys)
    with pytest.raises(StsError) as caught:
        elevator.elevate(profile, token="123456")
    assert f"fix role_arn = {ROLE!r} of profile 'dev' at {path}:4 " in caught.value.message


# -- nothing below the entry points reads the process environment -------------------------------------

# Modules that may read os.environ / os.getenv, each with why. Everything else is handed the
# Invocation (or its read-only environ) from one of these.
ALLOWED = {
    # The entry point: the hit path answers from the environment before anything is built.
    "__main__.py": "the process entry: the hit path and the queue read the environment they answer for",
    # The CLI's root: builds the one Invocation (App) and completes profile names before it exists.
    "cli/app.py": "the CLI's entry: App builds the Invocation; shell completion runs before App exists",
    # The keyring library picks its backend from the process environment itself; these two
    # read their settings (ELEVATE_ALLOW_PLAINTEXT_KEYRING, the unlock time) beside it.
    "keystore.py": "the keyring backend is process-wide (the keyring library reads the environment)",
    "keyfile.py": "the keyring file's unlock belongs to the process-wide backend (keystore)",
    # webbrowser finds browsers through the process PATH only: it is narrowed there while it runs.
    "console.py": "webbrowser reads the process PATH itself; it is narrowed to absolute directories",
    # A separate admin tool with its own argparse entry (also scripts/deploy-stack).
    "admin/deploy.py": "its own entry point (argparse, scripts/deploy-stack), not under the CLI's App",
    # The environment as os.environ reads it, from the OS's own module, for the hit path (which
    # imports no os); and $HOME for expanduser, read where os.path reads it.
    "hostos.py": "process_environ and expanduser: os.environ's and os.path's answers without os",
}
_OS_MODULES = {"os", "posix", "nt", "native"}  # hostos.native is posix or nt


def _reads_environ(tree: ast.AST) -> list[int]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb", "putenv"):
            if isinstance(node.value, ast.Name) and node.value.id in _OS_MODULES:
                found.append(node.lineno)
            if isinstance(node.value, ast.Attribute) and node.value.attr == "native":
                found.append(node.lineno)
        if isinstance(node, ast.Attribute) and node.attr == "process_environ":
            found.append(node.lineno)
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "process_environ":
            found.append(node.lineno)
        if isinstance(node, ast.ImportFrom) and node.module in _OS_MODULES:
            if any(alias.name in ("environ", "getenv", "environb") for alias in node.names):
                found.append(node.lineno)
    return found


def test_nothing_below_the_entry_points_reads_the_process_environment() -> None:
    readers = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = _reads_environ(ast.parse(path.read_text(encoding="utf-8")))
        if lines:
            readers[path.relative_to(PACKAGE).as_posix()] = lines
    unexpected = {name: lines for name, lines in readers.items() if name not in ALLOWED}
    assert unexpected == {}, "read the Invocation's environ instead of os.environ"
    stale = set(ALLOWED) - set(readers)
    assert not stale, f"no longer reads os.environ: remove it from ALLOWED: {stale}"


def test_the_guard_sees_every_way_of_reading_the_environment() -> None:
    for source in (
        "import os\nos.environ['X']",
        "import os\nos.getenv('X')",
        "from os import environ",
        "from os import getenv as g",
        "import os\ndict(os.environ)",
        "import posix\nposix.environ[b'X']",
        "from elevate import hostos\nhostos.native.environ",
        "from elevate import hostos\nhostos.process_environ()",
        "from elevate.hostos import process_environ\nprocess_environ()",
    ):
        assert _reads_environ(ast.parse(source)), source
    assert not _reads_environ(ast.parse("environ = {}\nenviron.get('X')"))


# -- configure and enroll read through the one reader ----------------------------------------------------


def test_configure_reads_an_existing_profile_under_the_configs_trust_rules(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    assert existing_profile(path, "dev") == {}  # no file yet: nothing to default from
    path.write_text(f'[profiles.dev]\nrole_arn = "{ROLE}"\nmfa_serial = "{SERIAL}"\nregion = "eu-west-1"\n')
    path.chmod(0o600)
    assert existing_profile(path, "dev") == {"role_arn": ROLE, "mfa_serial": SERIAL, "region": "eu-west-1"}
    # A config others can write would hand configure their role and key set as defaults.
    path.chmod(0o666)
    with pytest.raises(ConfigError, match=r"writable by group or others .*chmod go-w"):
        existing_profile(path, "dev")
    path.chmod(0o600)
    path.write_text("[profiles.dev\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        existing_profile(path, "dev")
