#!/usr/bin/env python3
"""Benchmark the headless keyring (keyrings.cryptfile's encrypted file): a script, not a test.

    .venv/bin/python benchmarks/bench_headless.py [--runs 5]

Runs with the project's test environment (moto, pexpect, keyrings.cryptfile). In a temporary
HOME, against a local moto server with one provisioned IAM user, it stores one key set in one
keyring file and four in another (same passphrase), then times, as medians of interleaved runs:
  locked (`elevate keys lock` before each; the passphrase typed at once on a real pty):
    `keys list` with 1 key set, `keys list` with 4, `doctor` (4 key sets);
  unlocked (the key held in the kernel's session keyring, no terminal at all):
    `keys list` with 4 key sets, `doctor`;
each with the number of key derivations it made (counted from --debug), and the targets:
the locked 4-set list and doctor within 1.3x of the 1-set list; unlocked under 1 s, no prompt,
no derivation. The script joins a session keyring of its own, so nothing it holds reaches
the caller's login session.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pexpect

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from support.kernelsession import join_new_session_keyring  # noqa: E402
from support.provision import provision  # noqa: E402
from support.servers import moto_server  # noqa: E402

PASSPHRASE = "bench-granite-orbit-lemon"  # noqa: S105 - a throwaway file's passphrase
ELEVATE = [sys.executable, "-m", "elevate", "--debug"]
DERIVES = "deriving a key from the passphrase"


def environment(work: Path, endpoint: str, data: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "ELEVATE_", "PYTHON_KEYRING", "XDG_"))
    }
    home = work / "home"
    env.update(
        HOME=str(home),
        XDG_DATA_HOME=str(work / data),
        XDG_CONFIG_HOME=str(home / ".config"),
        ELEVATE_CONFIG=str(work / "config.toml"),
        ELEVATE_CACHE_DIR=str(work / "cache"),
        AWS_CONFIG_FILE=str(work / "aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(work / "aws-credentials"),
        AWS_ENDPOINT_URL=endpoint,
        AWS_EC2_METADATA_DISABLED="true",
        PYTHON_KEYRING_BACKEND="keyrings.cryptfile.cryptfile.CryptFileKeyring",
        PYTHONPATH=str(REPO),
        TERM="dumb",
    )
    return env


def on_pty(env: dict[str, str], *args: str, stdin: str = "", new: bool = False) -> tuple[float, str]:
    """`elevate ARGS` on a pty, the passphrase typed as soon as it is asked; seconds and output."""
    script = f"printf %s {_quote(stdin)} | {' '.join(_quote(a) for a in [*ELEVATE, *args])}"
    started = time.perf_counter()
    child = pexpect.spawn("bash", ["--norc", "-c", script], env=env, encoding="utf-8", timeout=300)
    prompts = ["New passphrase.*: ", "The same passphrase again: "] if new else ["Passphrase for .*: "]
    for prompt in prompts:
        child.expect(prompt)
        child.sendline(PASSPHRASE)
    child.expect(pexpect.EOF)
    seconds = time.perf_counter() - started
    output = str(child.before)
    child.close()
    return seconds, output


def headless(env: dict[str, str], *args: str, stdin: str = "") -> tuple[float, str]:
    """`elevate ARGS` with no terminal at all; seconds and stderr (fails if it asks)."""
    started = time.perf_counter()
    done = subprocess.run(
        [*ELEVATE, *args], env=env, capture_output=True, text=True, input=stdin, start_new_session=True
    )
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 1) or "elevate: error" in done.stderr:
        raise SystemExit(f"bench: `elevate {' '.join(args)}` failed: {done.stderr[-500:]}")
    return seconds, done.stderr


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    if not join_new_session_keyring():
        raise SystemExit("bench: no kernel session keyring here (Linux on x86_64, arm64 or riscv64 only)")
    with tempfile.TemporaryDirectory(prefix="elevate-bench-headless-") as tmp, moto_server() as endpoint:
        work = Path(tmp)
        (work / "home").mkdir()
        alice = provision(endpoint, user_name="alice")
        (work / "config.toml").write_text(
            f'default_profile = "dev"\n\n[profiles.dev]\nrole_arn = "{alice.role_arn}"\n'
            f'mfa_serial = "{alice.mfa_serial}"\nregion = "us-east-1"\n'
        )
        keys = f"{alice.access_key_id}\n{alice.secret_access_key}\n"
        one = environment(work, endpoint, "one")
        four = environment(work, endpoint, "four")
        on_pty(one, "keys", "add", "dev", stdin=keys, new=True)
        on_pty(four, "keys", "add", "dev", stdin=keys, new=True)
        for name in ("ops", "prod", "test"):
            headless(four, "keys", "add", name, stdin=keys)  # unlocked: no prompt
        subprocess.run([*ELEVATE, "keys", "list"], env=four, check=True, capture_output=True)

        cases: dict[str, Callable[[], tuple[float, str]]] = {
            "locked `keys list`, 1 key set": lambda: locked(one, "keys", "list"),
            "locked `keys list`, 4 key sets": lambda: locked(four, "keys", "list"),
            "locked `doctor`, 4 key sets": lambda: locked(four, "doctor"),
            "unlocked `keys list`, 4 key sets": lambda: headless(four, "keys", "list"),
            "unlocked `doctor`": lambda: headless(four, "doctor"),
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        derivations: dict[str, set[int]] = {name: set() for name in cases}
        for _ in range(runs):
            for name, case in cases.items():
                seconds, output = case()
                times[name].append(seconds)
                derivations[name].add(output.count(DERIVES))
        load = os.getloadavg()
    median = {name: statistics.median(values) for name, values in times.items()}
    print(f"{runs} interleaved runs each; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print("| command | median | derivations |")
    print("| --- | --- | --- |")
    for name in cases:
        print(f"| {name} | {median[name]:.2f} s | {', '.join(map(str, sorted(derivations[name])))} |")
    base = median["locked `keys list`, 1 key set"]
    for name, limit in (("locked `keys list`, 4 key sets", 1.3), ("locked `doctor`, 4 key sets", 1.3)):
        ratio = median[name] / base
        print(
            f"{name} / 1 key set: {ratio:.2f}x (target <= {limit}x: {'met' if ratio <= limit else 'MISSED'})"
        )
    for name in ("unlocked `keys list`, 4 key sets", "unlocked `doctor`"):
        met = median[name] < 1.0 and derivations[name] == {0}
        verdict = "met" if met else "MISSED"
        print(f"{name}: {median[name]:.2f} s, no prompt (target < 1 s, 0 derivations: {verdict})")


def locked(env: dict[str, str], *args: str) -> tuple[float, str]:
    subprocess.run([*ELEVATE, "keys", "lock"], env=env, check=True, capture_output=True)
    return on_pty(env, *args)


if __name__ == "__main__":
    main()
