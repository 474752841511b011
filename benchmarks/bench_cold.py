#!/usr/bin/env python3
"""Benchmark one cold elevation against its floors (a script, not a test).

    ./scripts/bench   (after the cached-path benchmark), or: python3 -I benchmarks/bench_cold.py [--runs 11]

A cold elevation here is `elevate credential-process` on an empty cache: keys from the keyring,
the MFA code from mfa_process, GetCallerIdentity and AssumeRole against the fake STS on
127.0.0.1 (no added latency), the cache written. It is measured in instructions (valgrind
cachegrind, --cache-sim=no: repeat runs agree within 0.3 % whatever the load) and in wall time
(median of --runs), beside the floors doing the same two STS calls:

  - a botocore client (botocore.session, create_client, the two calls);
  - botocore.auth's SigV4Auth signing and http.client sending (no client, no keyring, no elevate);

with PYTHON_KEYRING_BACKEND set (the test keyring backend), and without it: once with keyring's
config file naming that backend, and once with nothing configured, where the platform's own
backend (the Secret Service, served by gnome-keyring on a private D-Bus session) is used; that
last row is skipped, with the reason, where dbus-run-session or gnome-keyring-daemon is missing.
Target: a cold elevation without PYTHON_KEYRING_BACKEND <= 1.5x the botocore.auth + http.client
floor in instructions. Everything runs in temporary directories and talks only to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_credential_process import (
    EXAMPLE_KEY_ID,
    EXAMPLE_SECRET,
    ROLE,
    SERIAL,
    Sandbox,
    run,
    user_install,
)
from fakests import FakeSts

TARGET = 1.5
FLOOR_CLIENT = """
import sys, botocore.session
session = botocore.session.Session(session_vars={"profile": (None, None, None, None)})
client = session.create_client("sts", region_name="us-east-1", endpoint_url=sys.argv[1],
    aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3])
client.get_caller_identity()
client.assume_role(RoleArn=sys.argv[4], RoleSessionName="bench", DurationSeconds=3600,
    SourceIdentity="bench", SerialNumber=sys.argv[5], TokenCode=sys.argv[6])
"""
FLOOR_SIGNER = """
import sys, http.client, urllib.parse
import botocore.auth, botocore.awsrequest

class Keys:  # what SigV4Auth reads
    access_key, secret_key, token = sys.argv[2], sys.argv[3], None

def call(params):
    request = botocore.awsrequest.AWSRequest(method="POST", url=sys.argv[1] + "/", data=params,
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    botocore.auth.SigV4Auth(Keys, "sts", "us-east-1").add_auth(request)
    parts = urllib.parse.urlsplit(sys.argv[1])
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=15)
    connection.request("POST", "/", body=request.body, headers=dict(request.headers.items()))
    answer = connection.getresponse()
    assert answer.status == 200, answer.read()
    answer.read()
    connection.close()

call({"Action": "GetCallerIdentity", "Version": "2011-06-15"})
call({"Action": "AssumeRole", "Version": "2011-06-15", "RoleArn": sys.argv[4],
      "RoleSessionName": "bench", "DurationSeconds": 3600, "SourceIdentity": "bench",
      "SerialNumber": sys.argv[5], "TokenCode": sys.argv[6]})
"""
_IREFS = re.compile(r"I\s+refs:\s+([\d,]+)")


def instructions(argv: list[str], env: dict[str, str]) -> int:
    """Instructions `argv` executes (its own process only), counted by cachegrind."""
    done = subprocess.run(
        ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null", *argv],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    found = _IREFS.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"{argv[:3]} failed under valgrind: {done.stderr[-800:]}")
    return int(found.group(1).replace(",", ""))


class Codes:
    """Six-digit codes the fake STS has not seen (it accepts each code once, like STS)."""

    def __init__(self) -> None:
        self.next = 700000

    def __call__(self) -> str:
        self.next += 1
        return str(self.next)


def measure(
    argv: list[str], env: dict[str, str], runs: int, before: Optional[Path] = None
) -> dict[str, float]:
    """Instructions of one run and the median wall time of `runs`; `before`: a cache to empty first."""

    def fresh() -> None:
        if before is not None:
            shutil.rmtree(before, ignore_errors=True)

    fresh()
    count = instructions(argv, env)
    times = []
    for _ in range(runs):
        fresh()
        done = run(argv, env)
        if done.returncode != 0:
            raise SystemExit(f"{argv[:3]} failed: {done.stderr.decode()[-800:]}")
        times.append(done.seconds)
    return {"instructions": count, "ms": statistics.median(times) * 1000}


def floors(
    python: str, sts_url: str, env: dict[str, str], runs: int, codes: Codes
) -> dict[str, dict[str, float]]:
    results = {}
    for name, code in (("client", FLOOR_CLIENT), ("signer", FLOOR_SIGNER)):
        # A new MFA code per run: the argv is rebuilt for each measured run below.
        argv = [python, "-c", code, sts_url, EXAMPLE_KEY_ID, EXAMPLE_SECRET, ROLE, SERIAL]
        count = instructions([*argv, codes()], env)
        times = []
        for _ in range(runs):
            done = run([*argv, codes()], env)
            if done.returncode != 0:
                raise SystemExit(f"floor {name} failed: {done.stderr.decode()[-800:]}")
            times.append(done.seconds)
        results[name] = {"instructions": count, "ms": statistics.median(times) * 1000}
    return results


DBUS_ROW_SCRIPT = """
set -eu
export XDG_DATA_HOME="$HOME/.local/share"
printf %s "$KEYRING_PASSWORD" | gnome-keyring-daemon --foreground --unlock --components=secrets \
  > "$HOME/keyring.env" 2> "$HOME/keyring.err" &
daemon=$!
trap 'kill "$daemon" 2>/dev/null || true' EXIT
i=0
while [ ! -s "$HOME/keyring.env" ] && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
eval "$(sed 's/^/export /' "$HOME/keyring.env")"
"$BENCH_PYTHON" -I "$BENCH_SCRIPT" --inside-secret-service "$BENCH_ARGS"
"""


def secret_service_row(
    python: str, elevate: str, box: Sandbox, runs: int
) -> tuple[Optional[dict[str, float]], str]:
    """The row with nothing configured: keyring's platform backend (Secret Service) on a private
    D-Bus session with an unlocked gnome-keyring; (None, why) where that cannot run here."""
    missing = [
        tool for tool in ("dbus-run-session", "gnome-keyring-daemon", "valgrind") if not shutil.which(tool)
    ]
    if missing or not sys.platform.startswith("linux"):
        return None, "needs Linux with " + ", ".join(missing or ["dbus-run-session"])
    home = box.root / "secret-service-home"
    home.mkdir()
    env = {
        k: v
        for k, v in box.elevate_env.items()
        if k not in ("PYTHON_KEYRING_BACKEND", "ELEVATE_TEST_KEYRING_FILE")
    }
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), KEYRING_PASSWORD=secrets.token_hex(16))
    args = {"python": python, "elevate": elevate, "runs": runs, "cache": str(box.cache), "env": env}
    env.update(
        BENCH_PYTHON=sys.executable, BENCH_SCRIPT=str(Path(__file__).resolve()), BENCH_ARGS=json.dumps(args)
    )
    done = subprocess.run(
        ["dbus-run-session", "--", "sh", "-c", DBUS_ROW_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return None, f"the Secret Service row failed: {(done.stderr or done.stdout)[-600:]}"
    return json.loads(
        lines[-1]
    ), "keyring.backends.SecretService.Keyring on a private D-Bus session (gnome-keyring)"


def inside_secret_service(raw: str) -> None:
    """Run inside dbus-run-session: store the keys, then measure the cold elevation."""
    args = json.loads(raw)
    env = dict(args["env"], DBUS_SESSION_BUS_ADDRESS=os.environ["DBUS_SESSION_BUS_ADDRESS"])
    put_keys = (
        "from elevate import keystore; from elevate.models import SourceKeys; "
        f"keystore.put_keys('bench', SourceKeys({EXAMPLE_KEY_ID!r}, {EXAMPLE_SECRET!r})); "
        "print(keystore.backend_name('bench'))"
    )
    stored = subprocess.run(
        [args["python"], "-c", put_keys], env=env, capture_output=True, text=True, timeout=120
    )
    if stored.returncode != 0 or "SecretService" not in stored.stdout:
        raise SystemExit(f"keys not stored in the Secret Service: {stored.stdout} {stored.stderr[-600:]}")
    argv = [args["python"], args["elevate"], "credential-process", "bench"]
    print(json.dumps(measure(argv, env, args["runs"], Path(args["cache"]))))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=11, help="timed runs per row (median)")
    parser.add_argument("--inside-secret-service", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.inside_secret_service:
        inside_secret_service(opts.inside_secret_service)
        return 0
    if not shutil.which("valgrind"):
        raise SystemExit("bench_cold needs valgrind (cachegrind) to count instructions")
    runs = max(5, opts.runs)
    codes = Codes()
    with tempfile.TemporaryDirectory(prefix="elevate-bench-cold-") as tmp, FakeSts(user_name="bench") as sts:
        python, elevate, _, _ = user_install(Path(tmp))
        box = Sandbox(Path(tmp), sts.url, python)
        argv = [python, elevate, "credential-process", "bench"]
        rows: dict[str, dict[str, float]] = {}
        rows["python -c pass"] = measure([python, "-c", "pass"], box.aws_env, runs)
        found = floors(python, sts.url, box.aws_env, runs, codes)
        rows["floor: botocore client, 2 calls"] = found["client"]
        rows["floor: botocore.auth + http.client, 2 calls"] = found["signer"]
        rows["cold, PYTHON_KEYRING_BACKEND set"] = measure(argv, box.elevate_env, runs, box.cache)
        # keyring's config file names the same backend: the variable is not needed.
        config = Path(box.elevate_env["XDG_CONFIG_HOME"]) / "python_keyring" / "keyringrc.cfg"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(f"[backend]\ndefault-keyring={box.elevate_env['PYTHON_KEYRING_BACKEND']}\n")
        unset = {k: v for k, v in box.elevate_env.items() if k != "PYTHON_KEYRING_BACKEND"}
        rows["cold, unset; keyringrc.cfg names it"] = measure(argv, unset, runs, box.cache)
        config.unlink()
        platform, how = secret_service_row(python, elevate, box, runs)
        if platform is not None:
            rows["cold, unset; platform backend (Secret Service)"] = platform
        assume_roles = sts.count("AssumeRole")

    floor = rows["floor: botocore.auth + http.client, 2 calls"]["instructions"]
    print(f"python {sys.version.split()[0]}; {os.cpu_count()} CPUs; fake STS on 127.0.0.1, no added latency")
    print(f"Secret Service row: {how}")
    print(f"AssumeRole calls answered by the fake STS: {assume_roles}")
    width = max(len(name) for name in rows)
    print(f"{'run':<{width}}  {'instructions':>14}  {'x floor':>7}  {'wall ms':>8}")
    for name, row in rows.items():
        ratio = row["instructions"] / floor
        print(f"{name:<{width}}  {row['instructions'] / 1e6:>12.1f} M  {ratio:>7.2f}  {row['ms']:>8.1f}")
    unset_rows = [name for name in rows if name.startswith("cold, unset")]
    worst = max(rows[name]["instructions"] for name in unset_rows) / floor
    met = worst <= TARGET
    print(
        f"cold without PYTHON_KEYRING_BACKEND / botocore.auth + http.client floor (instructions): "
        f"{worst:.2f}x, target <= {TARGET}x: {'PASS' if met else 'MISS'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
