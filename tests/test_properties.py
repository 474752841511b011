"""Property-based bad input: every value is accepted in its documented shape or refused
with a message naming it; nothing else (no other exception, no traceback) ever escapes."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from elevate import keystore
from elevate.config import parse_config
from elevate.errors import ConfigError, UsageError
from elevate.models import SessionCredentials

ROLE = "arn:aws:iam::123456789012:role/R"
MFA = "arn:aws:iam::123456789012:mfa/a"
PATH = Path("config.toml")
text_values = st.text(alphabet=st.characters(codec="utf-8"), max_size=70)


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


@settings(max_examples=150)
@given(
    key=st.sampled_from(
        [
            "role_arn",
            "mfa_serial",
            "region",
            "role_session_name",
            "source_identity",
            "keys",
            "cache",
            "mfa_process",
        ]
    ),
    value=text_values,
)
def test_string_settings_accepted_or_named(key: str, value: str) -> None:
    try:
        config = parse_with(key, value)
    except ConfigError as exc:
        assert f"profile 'dev': {key}" in exc.message
        assert exc.message.startswith("config.toml")
    else:
        assert getattr(config.profiles["dev"], key) == value  # type: ignore[attr-defined]
        assert value.isascii() or key == "mfa_process"


@settings(max_examples=150)
@given(name=text_values)
def test_profile_names_accepted_or_named(name: str) -> None:
    try:
        config = parse_with("region", "eu-west-1", profile=name)
    except ConfigError as exc:
        assert repr(name) in exc.message or "must be a table" in exc.message
    else:
        assert list(config.profiles) == [name]
        assert name.isascii() and name[:1].isalnum()


@settings(max_examples=150)
@given(key_id=text_values, secret=text_values)
def test_key_input_accepted_or_named_without_echoing_the_secret(key_id: str, secret: str) -> None:
    try:
        keys = keystore.check_keys(key_id, secret)
    except UsageError as exc:
        assert "access key ID" in exc.message or "secret access key" in exc.message
        if len(secret.strip()) >= 4:
            assert secret.strip() not in exc.message
    else:
        assert keys.access_key_id.startswith("AKIA") and len(keys.secret_access_key) == 40
        assert keys.secret_access_key not in repr(keys)


@given(st.text(max_size=80))
def test_masked_key_id_never_reveals_the_middle(key_id: str) -> None:
    masked = keystore.mask(key_id)
    assert len(masked) == len(key_id)
    if len(key_id) > 8:
        assert masked[4:-4] == "*" * (len(key_id) - 8)


@given(st.text(min_size=1, max_size=50))
def test_session_credentials_repr_hides_secrets(secret: str) -> None:
    from datetime import datetime, timezone

    creds = SessionCredentials("ASIAX", "S" + secret + "S", "T" + secret + "T", datetime.now(timezone.utc))
    assert "S" + secret + "S" not in repr(creds) and "T" + secret + "T" not in repr(creds)
