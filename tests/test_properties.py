"""Property-based bad input: every value is accepted in its documented shape or refused
with a message naming it; nothing else (no other exception, no traceback) ever escapes.

Each property draws from the documented shape as well as from arbitrary text, and proves
with support.branches that both the accepting and the refusing branch ran."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from support.branches import Branches
from support.constants import ROLE

from elevate import keystore
from elevate.config import parse_config
from elevate.errors import ConfigError, UsageError
from elevate.models import SessionCredentials

MFA = "arn:aws:iam::123456789012:mfa/a"
PATH = Path("config.toml")
text_values = st.text(alphabet=st.characters(codec="utf-8"), max_size=70)

# The documented shape of each string setting (docs/config in the README), written out here
# rather than taken from elevate.config, so that the two can disagree.
NAME_CHARS = "[A-Za-z0-9_+=,.@-]"
VALID: dict[str, st.SearchStrategy[str]] = {
    "role_arn": st.from_regex(rf"arn:aws:iam::[0-9]{{12}}:role/{NAME_CHARS}{{1,20}}", fullmatch=True),
    "mfa_serial": st.one_of(
        st.from_regex(rf"arn:aws:iam::[0-9]{{12}}:mfa/{NAME_CHARS}{{1,20}}", fullmatch=True),
        st.from_regex(r"[A-Za-z0-9]{9,20}", fullmatch=True),  # a hardware device's serial
    ),
    "region": st.from_regex(r"[a-z]{2}-[a-z]{1,9}-[0-9]{1,2}", fullmatch=True),
    "role_session_name": st.from_regex(rf"{NAME_CHARS}{{2,64}}", fullmatch=True),
    "source_identity": st.from_regex(rf"{NAME_CHARS}{{2,64}}", fullmatch=True),
    "keys": st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.@+=-]{0,20}", fullmatch=True),
    "cache": st.sampled_from(["file", "keyring", "off"]),
    "mfa_process": st.from_regex(r"[a-z/]{1,20}( [a-z0-9-]{1,8}){0,3}", fullmatch=True),
}
VALID_NAMES = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.@+=-]{0,20}", fullmatch=True)
VALID_KEY_IDS = st.from_regex(r"AKIA[A-Z0-9]{16}", fullmatch=True)
VALID_SECRETS = st.from_regex(r"[A-Za-z0-9/+]{40}", fullmatch=True)


def toml_string(value: str) -> str:
    """A TOML basic string holding exactly `value` (every non-printable or non-ASCII escaped)."""
    out = []
    for char in value:
        if char in '"\\':
            out.append("\\" + char)
        elif char.isascii() and char.isprintable():
            out.append(char)
        else:
            out.append(f"\\U{ord(char):08x}")
    return '"' + "".join(out) + '"'


def parse_with(key: str, value: str, profile: str = "dev") -> object:
    table = toml_string(profile)
    body = {"role_arn": ROLE, "mfa_serial": MFA}
    body[key] = value
    lines = [f"[profiles.{table}]"] + [f"{k} = {toml_string(v)}" for k, v in body.items()]
    return parse_config("\n".join(lines) + "\n", PATH)


def test_string_settings_accepted_or_named() -> None:
    branches = Branches()
    setting = st.sampled_from(sorted(VALID)).flatmap(
        lambda key: st.tuples(st.just(key), st.one_of(VALID[key], text_values))
    )

    @settings(max_examples=150)
    @given(setting=setting)
    def check(setting: tuple[str, str]) -> None:
        key, value = setting
        try:
            config = parse_with(key, value)
        except ConfigError as exc:
            branches.took("refused")
            assert f"profile 'dev': {key}" in exc.message
            assert exc.message.startswith("config.toml")
        else:
            branches.took("accepted")
            assert getattr(config.profiles["dev"], key) == value  # type: ignore[attr-defined]
            assert value.isascii() or key == "mfa_process"

    check()
    branches.assert_each_ran("accepted", "refused")


def test_profile_names_accepted_or_named() -> None:
    branches = Branches()

    @settings(max_examples=150)
    @given(name=st.one_of(VALID_NAMES, text_values))
    def check(name: str) -> None:
        try:
            config = parse_with("region", "eu-west-1", profile=name)
        except ConfigError as exc:
            branches.took("refused")
            assert repr(name) in exc.message or "must be a table" in exc.message
        else:
            branches.took("accepted")
            assert list(config.profiles) == [name]  # type: ignore[attr-defined]
            assert name.isascii() and name[:1].isalnum()

    check()
    branches.assert_each_ran("accepted", "refused")


def test_key_input_accepted_or_named_without_echoing_the_secret() -> None:
    branches = Branches()

    @settings(max_examples=150)
    @given(key_id=st.one_of(VALID_KEY_IDS, text_values), secret=st.one_of(VALID_SECRETS, text_values))
    def check(key_id: str, secret: str) -> None:
        try:
            keys = keystore.check_keys(key_id, secret)
        except UsageError as exc:
            branches.took("refused")
            assert "access key ID" in exc.message or "secret access key" in exc.message
            if len(secret.strip()) >= 4:
                assert secret.strip() not in exc.message
        else:
            branches.took("accepted")
            assert keys.access_key_id.startswith("AKIA") and len(keys.secret_access_key) == 40
            assert keys.secret_access_key not in repr(keys)

    check()
    branches.assert_each_ran("accepted", "refused")


def test_masked_key_id_never_reveals_the_middle() -> None:
    branches = Branches()

    @given(st.one_of(st.text(max_size=80), VALID_KEY_IDS))
    def check(key_id: str) -> None:
        masked = keystore.mask(key_id)
        assert len(masked) == len(key_id)
        if len(key_id) > 8:
            branches.took("long enough to mask")
            assert masked[4:-4] == "*" * (len(key_id) - 8)
        else:
            branches.took("short")

    check()
    branches.assert_each_ran("long enough to mask", "short")


@given(st.text(min_size=1, max_size=50))
def test_session_credentials_repr_hides_secrets(secret: str) -> None:
    creds = SessionCredentials("ASIAX", "S" + secret + "S", "T" + secret + "T", datetime.now(timezone.utc))
    assert "S" + secret + "S" not in repr(creds) and "T" + secret + "T" not in repr(creds)
