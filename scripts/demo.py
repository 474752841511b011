"""The demo behind ./scripts/demo: a real elevation end to end against a local moto server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from support.provision import provision  # noqa: E402
from support.servers import moto_server  # noqa: E402


def step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def elevate(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    shown = " ".join(args)
    print(f"$ elevate {shown}", flush=True)
    done = subprocess.run(
        [sys.executable, "-m", "elevate", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.stderr:
        sys.stderr.write(done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"demo: `elevate {shown}` failed with exit status {done.returncode}")
    return done.stdout


def mask(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, secret[:4] + "…")
    return text


def aws_cli_v2() -> str | None:
    candidates = [shutil.which("aws"), "/usr/bin/aws", "/usr/local/bin/aws"]
    for path in dict.fromkeys(p for p in candidates if p):
        try:
            version = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30).stdout
        except OSError:
            continue
        if version.startswith("aws-cli/2"):
            return path
    return None


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="elevate-demo-"))
    try:
        with moto_server() as endpoint:
            run_demo(endpoint, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\ndemo: done; the moto server is stopped and the throwaway keyring, config and cache are deleted")


def run_demo(endpoint: str, work: Path) -> None:
    home = work / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ELEVATE_", "PYTHON_KEYRING"))}
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_CACHE_HOME=str(home / ".cache"),
        ELEVATE_CONFIG=str(work / "config.toml"),
        ELEVATE_CACHE_DIR=str(work / "cache"),
        AWS_CONFIG_FILE=str(work / "aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(work / "aws-credentials"),
        AWS_ENDPOINT_URL=endpoint,
        AWS_EC2_METADATA_DISABLED="true",
        # A throwaway keyring: a file in the demo's temp dir, deleted at the end.
        PYTHON_KEYRING_BACKEND="elevate_testkeyring.FileKeyring",
        ELEVATE_TEST_KEYRING_FILE=str(work / "throwaway-keyring.json"),
        PYTHONPATH=os.pathsep.join([str(REPO / "tests" / "support"), str(REPO)]),
    )
    env.pop("XDG_RUNTIME_DIR", None)

    step(f"moto server on {endpoint}: provisioning a user, access key, virtual MFA device and role")
    p = provision(endpoint, user_name="alice")
    print(f"user alice, key {p.access_key_id[:4]}…, MFA device {p.mfa_serial}, role {p.role_arn}")
    (work / "config.toml").write_text(
        f'default_profile = "demo"\n\n[profiles.demo]\nrole_arn = "{p.role_arn}"\n'
        f'mfa_serial = "{p.mfa_serial}"\nregion = "eu-west-1"\n'
    )
    print((work / "config.toml").read_text().rstrip())

    step("store the long-term key in the (throwaway) keyring")
    elevate(env, "keys", "add", "demo", stdin=f"{p.access_key_id}\n{p.secret_access_key}\n")
    print(elevate(env, "keys", "list").rstrip())

    step("elevate: export for bash (MFA code from the device's seed via pyotp)")
    code = p.totp().now()
    exported = elevate(env, "export", "demo", "--format", "bash", "--token", code)
    secrets = [
        line.split("=", 1)[1].strip("'")
        for line in exported.splitlines()
        if "SECRET" in line or "TOKEN" in line
    ]
    print(mask(exported, secrets).rstrip())

    step("elevate exec: a command run with the credentials (served from the cache, no new prompt)")
    aws = aws_cli_v2()
    if aws:
        command = [aws, "sts", "get-caller-identity", "--endpoint-url", endpoint, "--output", "json"]
    else:
        print("(AWS CLI v2 not installed: using boto3 instead)")
        command = [
            sys.executable,
            "-c",
            "import boto3,json;print(json.dumps(boto3.client('sts').get_caller_identity()))",
        ]
    out = elevate(env, "exec", "demo", "--", *command)
    arn = json.loads(out)["Arn"]
    print(f"assumed-role ARN via exec: {arn}")

    step("credential_process: the AWS CLI (or boto3) calls elevate itself")
    (work / "aws-config").write_text(
        f"[profile demo]\ncredential_process = {sys.executable} -m elevate credential-process demo\n"
        "region = eu-west-1\n"
    )
    if aws:
        cmd = [
            aws,
            "sts",
            "get-caller-identity",
            "--profile",
            "demo",
            "--endpoint-url",
            endpoint,
            "--output",
            "json",
        ]
    else:
        cmd = [
            sys.executable,
            "-c",
            "import boto3, json; s = boto3.Session(profile_name='demo'); "
            "print(json.dumps(s.client('sts').get_caller_identity()))",
        ]
    print("$ " + " ".join(Path(c).name if i == 0 else c for i, c in enumerate(cmd)))
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise SystemExit(f"demo: credential_process client failed: {done.stderr.strip()}")
    arn = json.loads(done.stdout)["Arn"]
    print(f"assumed-role ARN via credential_process: {arn}")

    step("what is cached (never a secret)")
    print(elevate(env, "status").rstrip())


if __name__ == "__main__":
    main()
