"""elevate mfa enroll: the local code check, and the whole enrollment against moto.

The codes are computed from the seed the device really got: read from stderr with
--show-secret in a subprocess (as a person would type it), or through the IAM API in
process. moto does not check the codes itself, so every refusal seen here is ours.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import zlib
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import boto3
import pyotp
import pytest
from click.testing import CliRunner
from support.cli import elevate_argv, run_elevate
from support.constants import EXAMPLE_ID, EXAMPLE_SECRET
from support.provision import AwsService, provision

from elevate import keystore
from elevate.cli import cli
from elevate.config import parse_config
from elevate.errors import MfaError, UsageError
from elevate.invocation import Invocation
from elevate.models import SourceKeys
from elevate.onboarding.enroll import Enroller, NewDevice, check_codes, render_qr

TIMEOUT = 60
NOW = datetime(2030, 6, 1, 12, 0, 10, tzinfo=timezone.utc)
OTHER_ROLE = "arn:aws:iam::123456789012:role/DeveloperElevated"


def codes_at(seed: str, now: datetime, first_step: int) -> tuple[str, str]:
    """The codes of two consecutive steps, `first_step` steps from `now`."""
    totp = pyotp.TOTP(seed)
    start = now + timedelta(seconds=30 * first_step)
    return totp.at(start), totp.at(start + timedelta(seconds=30))


@pytest.fixture
def seed() -> str:
    return pyotp.random_base32()


# --- the local check -------------------------------------------------------------------------


@pytest.mark.parametrize("first_step", [-2, -1, 0])
def test_consecutive_codes_about_now_pass(seed: str, first_step: int) -> None:
    check_codes(seed, *codes_at(seed, NOW, first_step), NOW)


def test_spaces_in_codes_are_ignored(seed: str) -> None:
    one, two = codes_at(seed, NOW, -1)
    check_codes(seed, f"{one[:3]} {one[3:]}", f" {two} ", NOW)


def _not_in_window(seed: str, count: int) -> list[str]:
    window = {pyotp.TOTP(seed).at(NOW + timedelta(seconds=30 * k)) for k in range(-21, 23)}
    return [code for code in (f"{n:06d}" for n in range(1_000_000)) if code not in window][:count]


def test_wrong_codes_are_named(seed: str) -> None:
    one, two = _not_in_window(seed, 2)
    with pytest.raises(MfaError, match="neither code belongs to this device: scan the QR code"):
        check_codes(seed, one, two, NOW)


def test_non_consecutive_codes_are_named(seed: str) -> None:
    one, _ = codes_at(seed, NOW, -2)
    _, three = codes_at(seed, NOW, -1)
    with pytest.raises(MfaError, match="not consecutive"):
        check_codes(seed, one, three, NOW)


def test_same_code_twice_and_reversed_order_are_named(seed: str) -> None:
    one, two = codes_at(seed, NOW, -1)
    with pytest.raises(MfaError, match="the two codes are the same"):
        check_codes(seed, one, one, NOW)
    with pytest.raises(MfaError, match="wrong order"):
        check_codes(seed, two, one, NOW)


@pytest.mark.parametrize(
    ("first_step", "expected"),
    [
        (9, "about 5 min ahead of"),
        (-11, "about 5 min behind"),
        (1, "about 60 s ahead of"),
        (-4, "about 90 s behind"),
    ],
)
def test_a_skewed_phone_clock_is_named(seed: str, first_step: int, expected: str) -> None:
    with pytest.raises(MfaError, match=f"the codes are right, but the phone's clock is {expected}"):
        check_codes(seed, *codes_at(seed, NOW, first_step), NOW)


def test_codes_must_be_six_digits(seed: str) -> None:
    with pytest.raises(MfaError, match="six digits"):
        check_codes(seed, "12345", "123456", NOW)


def test_qr_is_drawn_with_blocks_and_never_holds_the_seed_as_text(seed: str) -> None:
    uri = pyotp.TOTP(seed).provisioning_uri(name="someone@123456789012", issuer_name="Amazon Web Services")
    drawing = render_qr(uri)
    lines = drawing.splitlines()
    assert len(lines) >= 15 and len({len(line) for line in lines}) == 1
    assert set(drawing) <= set(" \n▀▄█")
    assert seed not in drawing


def test_no_command_prints_codes() -> None:
    names = " ".join(_all_names(cli)).lower()
    assert "totp" not in names and "code" not in names
    assert list(cli.commands["mfa"].commands) == ["enroll"]  # type: ignore[attr-defined]


def _all_names(group: Any) -> list[str]:
    found = []
    for name, command in group.commands.items():
        found.append(name)
        if hasattr(command, "commands"):
            found += _all_names(command)
    return found


# --- against moto ---------------------------------------------------------------------------


def admin(service: AwsService, endpoint: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=EXAMPLE_ID,
        aws_secret_access_key=EXAMPLE_SECRET,
    )


@pytest.fixture
def bob(moto_env: str, request: pytest.FixtureRequest) -> str:
    """A user without MFA whose key is stored as 'dev', and a profile 'dev' with a placeholder serial."""
    name = f"enr-{zlib.crc32(request.node.nodeid.encode()):08x}"
    iam = admin("iam", moto_env)
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    keystore.put_keys("dev", keystore.check_keys(key["AccessKeyId"], key["SecretAccessKey"]))
    config = Path(os.environ["ELEVATE_CONFIG"])
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(PROFILE.format(role=OTHER_ROLE, serial="arn:aws:iam::123456789012:mfa/placeholder"))
    return name


PROFILE = """# my profile
[profiles.dev]
role_arn = "{role}"
mfa_serial = "{serial}"   # the authenticator on my phone
region = "us-east-1"
"""


def registered(endpoint: str, user: str) -> list[str]:
    return [d["SerialNumber"] for d in admin("iam", endpoint).list_mfa_devices(UserName=user)["MFADevices"]]


def unassigned_seed(endpoint: str, user: str) -> str:
    """The seed of the user's not-yet-enabled device, as the admin API shows it."""
    devices = admin("iam", endpoint).list_virtual_mfa_devices(AssignmentStatus="Unassigned")[
        "VirtualMFADevices"
    ]
    seed = next(d["Base32StringSeed"] for d in devices if d["SerialNumber"].endswith(f"/{user}"))
    return seed.decode() if isinstance(seed, bytes) else str(seed)


def unassigned_serials(endpoint: str) -> list[str]:
    devices = admin("iam", endpoint).list_virtual_mfa_devices(AssignmentStatus="Unassigned")[
        "VirtualMFADevices"
    ]
    return [d["SerialNumber"] for d in devices]


def serial_in_config() -> str:
    path = Path(os.environ["ELEVATE_CONFIG"])
    return parse_config(path.read_text(), path).profiles["dev"].mfa_serial


class CodesOnDemand(io.BytesIO):
    """stdin whose two lines are computed when first read (after the device exists)."""

    def __init__(self, produce: Callable[[], bytes]) -> None:
        super().__init__()
        self.produce = produce
        self.filled = False

    def _fill(self) -> None:
        if not self.filled:
            self.filled = True
            self.write(self.produce())
            self.seek(0)

    def read(self, size: int | None = -1) -> bytes:
        if size != 0:
            self._fill()
        return super().read(size)

    def read1(self, size: int | None = -1) -> bytes:
        if size != 0:
            self._fill()
        return super().read1(size)


def test_enroll_cli_writes_the_serial_into_the_profile(bob: str, moto_env: str) -> None:
    def produce() -> bytes:
        one, two = codes_at(unassigned_seed(moto_env, bob), datetime.now(timezone.utc), -1)
        return f"{one}\n{two}\n".encode()

    result = CliRunner().invoke(
        cli, ["mfa", "enroll", "dev"], input=CodesOnDemand(produce), standalone_mode=False
    )
    assert result.exception is None, result.output
    serial = f"arn:aws:iam::123456789012:mfa/{bob}"
    assert registered(moto_env, bob) == [serial]
    assert result.stdout == ""
    assert "Scan this QR code" in result.stderr and "█" in result.stderr
    assert "secret key:" not in result.stderr and "otpauth://" not in result.stderr
    assert "No camera? `elevate mfa enroll dev --show-secret` prints the key" in result.stderr
    path = Path(os.environ["ELEVATE_CONFIG"])
    assert path.read_text() == PROFILE.format(role=OTHER_ROLE, serial=serial)  # comments kept


def test_enroll_subprocess_with_the_secret_typed_from_stderr(bob: str, moto_env: str) -> None:
    # Popen, not run_elevate: the test reads the secret from stderr while elevate waits for codes.
    proc = subprocess.Popen(
        elevate_argv("mfa", "enroll", "dev", "--show-secret"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
        start_new_session=True,
    )
    try:
        assert proc.stderr is not None and proc.stdin is not None
        shown = []
        for line in proc.stderr:
            shown.append(line)
            if line.startswith("secret key: "):
                break
        secret = shown[-1].split(": ", 1)[1].strip()
        assert any(f"secret={secret}" in line for line in shown)  # the otpauth URI
        one, two = codes_at(secret, datetime.now(timezone.utc), -1)
        out, err = proc.communicate(f"{one}\n{two}\n", timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out == ""
    assert registered(moto_env, bob) == [f"arn:aws:iam::123456789012:mfa/{bob}"]
    assert serial_in_config() == f"arn:aws:iam::123456789012:mfa/{bob}"


def test_enroll_wrong_codes_enable_nothing_and_leave_no_device(bob: str, moto_env: str) -> None:
    done = run_elevate("mfa", "enroll", "dev", "--code1", "000000", "--code2", "000001", timeout=TIMEOUT)
    assert done.returncode == 1
    assert "elevate: error: neither code belongs to this device" in done.stderr
    assert "not enabled" in done.stderr and "Traceback" not in done.stderr
    assert registered(moto_env, bob) == []
    assert not any(s.endswith(f"/{bob}") for s in unassigned_serials(moto_env))
    assert serial_in_config() == "arn:aws:iam::123456789012:mfa/placeholder"


def _enroller(clock: Callable[[], datetime] | None = None) -> tuple[Enroller, list[str]]:
    told: list[str] = []
    enroller = Enroller(invocation=Invocation.from_environ(dict(os.environ)), notify=told.append)
    if clock is not None:
        enroller.clock = clock
    return enroller, told


def _seen(devices: list[NewDevice]) -> Callable[[NewDevice], None]:
    return devices.append


def test_enroll_non_consecutive_codes_are_asked_again(bob: str, moto_env: str) -> None:
    devices: list[NewDevice] = []
    answers: list[tuple[str, str]] = []

    def read() -> tuple[str, str]:
        now = datetime.now(timezone.utc)
        one, _ = codes_at(devices[0].seed, now, -3)
        if not answers:
            answers.append((one, codes_at(devices[0].seed, now, -1)[1]))  # skips a step
        else:
            answers.append(codes_at(devices[0].seed, now, -1))
        return answers[-1]

    enroller, told = _enroller()
    serial, updated = enroller.enroll_profile("dev", Path(os.environ["ELEVATE_CONFIG"]), _seen(devices), read)
    assert updated and len(answers) == 2
    assert any("not consecutive" in m and "Try again" in m for m in told)
    assert registered(moto_env, bob) == [serial]


def test_enroll_with_a_skewed_clock_names_it_and_cleans_up(bob: str, moto_env: str) -> None:
    devices: list[NewDevice] = []

    def read() -> tuple[str, str]:
        return codes_at(devices[0].seed, datetime.now(timezone.utc), -1)  # the phone, right

    def ahead() -> datetime:
        return datetime.now(timezone.utc) + timedelta(minutes=5)  # this computer, 5 min ahead

    enroller, told = _enroller(ahead)
    with pytest.raises(MfaError, match="phone's clock is about 5 min behind this computer's") as caught:
        enroller.enroll_profile("dev", Path(os.environ["ELEVATE_CONFIG"]), _seen(devices), read)
    assert "elevate doctor" in str(caught.value)
    assert len([m for m in told if "Try again" in m]) == 2  # three attempts in all
    assert registered(moto_env, bob) == []
    assert devices[0].serial not in unassigned_serials(moto_env)


def test_enroll_removes_a_device_left_by_an_unfinished_enrollment(bob: str, moto_env: str) -> None:
    admin("iam", moto_env).create_virtual_mfa_device(VirtualMFADeviceName=bob)
    stale = unassigned_seed(moto_env, bob)
    devices: list[NewDevice] = []
    enroller, _ = _enroller()
    serial = enroller.enroll(
        keystore.get_keys("dev"),
        "us-east-1",
        _seen(devices),
        lambda: codes_at(devices[0].seed, datetime.now(timezone.utc), -1),
    )
    assert devices[0].seed != stale
    assert registered(moto_env, bob) == [serial]


def test_enroll_refuses_a_user_who_has_a_device(moto_env: str) -> None:
    user = provision(moto_env, user_name="enr-has-one")
    keystore.put_keys("dev", SourceKeys(user.access_key_id, user.secret_access_key))
    result = CliRunner().invoke(
        cli, ["mfa", "enroll", "dev", "--code1", "1", "--code2", "2"], standalone_mode=False
    )
    assert isinstance(result.exception, UsageError)
    assert user.mfa_serial in str(result.exception) and "deactivate" in str(result.exception)
    assert registered(moto_env, "enr-has-one") == [user.mfa_serial]


def test_enroll_without_a_profile_names_configure(moto_env: str) -> None:
    iam = admin("iam", moto_env)
    iam.create_user(UserName="enr-noprofile")
    key = iam.create_access_key(UserName="enr-noprofile")["AccessKey"]
    keystore.put_keys("fresh", keystore.check_keys(key["AccessKeyId"], key["SecretAccessKey"]))
    devices: list[NewDevice] = []
    told: list[str] = []
    serial, updated = Enroller(
        invocation=Invocation.from_environ(dict(os.environ)), notify=told.append
    ).enroll_profile(
        "fresh",
        Path(os.environ["ELEVATE_CONFIG"]),
        _seen(devices),
        lambda: codes_at(devices[0].seed, datetime.now(timezone.utc), -1),
    )
    assert not updated and re.search(r"mfa/enr-noprofile$", serial)
    assert any("`elevate configure fresh --stored-keys`" in m for m in told)
    assert not Path(os.environ["ELEVATE_CONFIG"]).exists()
