#!/usr/bin/env python3
"""Benchmark a credential fetch from `elevate exec --server` against a cached credential_process run.

    python benchmarks/bench_server.py [--runs 21] [--fetches 201]

In one run, against a local fake STS, with a sealed environment in temporary directories:
  (a) `python -m elevate credential-process bench` on a warm cache (one process per fetch,
      which is what an SDK in a credential_process profile pays), --runs times;
  (b) under `elevate exec --server bench`, a child doing --fetches HTTP GETs of the
      container credentials URI with the token (a new connection each, like botocore).
It prints both medians and the ratio a/b (target: at least 20).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SUPPORT = REPO / "tests" / "support"
sys.path.insert(0, str(SUPPORT))

from fakests import FakeSts  # noqa: E402

ROLE = "arn:aws:iam::123456789012:role/bench"
SERIAL = "arn:aws:iam::123456789012:mfa/bench"
EXAMPLE_KEY_ID = "AKIAIOSFODNN7EXAMPLE"  # AWS's documented example pair
EXAMPLE_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"  # noqa: S105

FETCHER = """
import json, os, statistics, sys, time, urllib.request
request = urllib.request.Request(
    os.environ["AWS_CONTAINER_CREDENTIALS_FULL_URI"],
    headers={"Authorization": os.environ["AWS_CONTAINER_AUTHORIZATION_TOKEN"]},
)
times = []
for _ in range(int(sys.argv[1])):
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert "AccessKeyId" in json.loads(answer.read())
    times.append(time.perf_counter() - started)
print(json.dumps(times))
"""


def sealed_env(root: Path, sts_url: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "ELEVATE_", "XDG_", "PYTHON_KEYRING"))
    }
    home = root / "home"
    home.mkdir()
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_CACHE_HOME=str(home / ".cache"),
        AWS_CONFIG_FILE=str(home / ".aws" / "config"),
        AWS_SHARED_CREDENTIALS_FILE=str(home / ".aws" / "credentials"),
        AWS_EC2_METADATA_DISABLED="true",
        AWS_ENDPOINT_URL=sts_url,
        ELEVATE_CONFIG=str(root / "config.toml"),
        ELEVATE_CACHE_DIR=str(root / "cache"),
        PYTHON_KEYRING_BACKEND="elevate_testkeyring.FileKeyring",
        ELEVATE_TEST_KEYRING_FILE=str(root / "keyring.json"),
        PYTHONPATH=os.pathsep.join([str(SUPPORT), str(REPO)]),
    )
    Path(env["ELEVATE_CONFIG"]).write_text(
        f'[profiles.bench]\nrole_arn = "{ROLE}"\nmfa_serial = "{SERIAL}"\nregion = "us-east-1"\n',
        encoding="utf-8",
    )
    return env


def elevate(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "elevate", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    if done.returncode != 0:
        raise SystemExit(f"elevate {' '.join(args)} failed: {done.stderr.strip()}")
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--fetches", type=int, default=201)
    options = parser.parse_args()
    with FakeSts(user_name="bench") as sts, tempfile.TemporaryDirectory() as tmp:
        env = sealed_env(Path(tmp), sts.url)
        elevate(env, "keys", "add", "bench", stdin=f"{EXAMPLE_KEY_ID}\n{EXAMPLE_SECRET}\n")
        elevate(env, "credential-process", "bench", "-t", "123456")  # warm the cache
        process_times = []
        for _ in range(options.runs):
            started = time.perf_counter()
            elevate(env, "credential-process", "bench")
            process_times.append(time.perf_counter() - started)
        served = elevate(
            env, "exec", "--server", "bench", "--", sys.executable, "-c", FETCHER, str(options.fetches)
        )
        server_times = json.loads(served.stdout)
        assert sts.count("AssumeRole") == 1, "every fetch must come from the cache or the server"
    process = statistics.median(process_times)
    server = statistics.median(server_times)
    print(f"credential_process, warm cache: median {process * 1000:.1f} ms over {options.runs} runs")
    print(f"exec --server fetch:            median {server * 1000:.2f} ms over {options.fetches} fetches")
    print(f"ratio: {process / server:.0f}x cheaper (target >= 20x)")


if __name__ == "__main__":
    main()
