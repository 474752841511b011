"""The invocation, resolved once: the config file, the environment, the cache directory, the
STS endpoint and region, and the clock of one run.

The CLI builds one (its App) and any other entry calls `Invocation.from_environ`; everything
below is handed it, so no two parts of a run can see two different worlds (the cache entry's
key and the STS request, say). Where the config and the cache are is elevate.disk's rule,
which the cache hit applies too. It must not import botocore, keyring or click.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Optional

from . import disk
from .config import resolve_region


def utcnow() -> datetime:
    """The real clock: timezone-aware UTC."""
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class StsTarget:
    """Which STS answers: the configured endpoint URL ("" for STS's own) and the region.

    Part of every cache entry's key, and where the request goes: credentials one endpoint
    gave are never served for another.
    """

    endpoint_url: str
    region: str
    source: str = field(default="", compare=False)  # where endpoint_url came from (for --debug)


@dataclass(frozen=True)
class Invocation:
    """One run's world. `environ` is a read-only copy taken once; it may hold secrets of
    other tools, so it is kept out of the repr."""

    config_path: Path
    environ: Mapping[str, str] = field(repr=False)
    cache_dir: Path
    clock: Callable[[], datetime] = field(default=utcnow, compare=False, repr=False)

    @classmethod
    def from_environ(
        cls,
        environ: Mapping[str, str],
        config: Optional[str] = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> Invocation:
        """The invocation of an entry point: `environ` copied once, `config` as --config gives it."""
        frozen: Mapping[str, str] = MappingProxyType(dict(environ))
        return cls(Path(disk.config_path(config, frozen)), frozen, Path(disk.cache_dir(frozen)), clock)

    def region(self, profile_region: Optional[str]) -> str:
        """The profile's region, else AWS_REGION / AWS_DEFAULT_REGION, else us-east-1."""
        return resolve_region(profile_region, self.environ)

    def sts(self, profile_region: Optional[str]) -> StsTarget:
        """The STS endpoint and region for a profile whose region is `profile_region`."""
        url, source = self.sts_endpoint
        return StsTarget(url, self.region(profile_region), source)

    @functools.cached_property
    def sts_endpoint(self) -> tuple[str, str]:
        """(the STS endpoint URL botocore's configured-endpoint rules pick, or "" for STS's own,
        where it came from), read once per invocation. Our clients pin no AWS profile, so
        botocore reads [default]."""
        return _configured_endpoint(self.environ)


def _configured_endpoint(environ: Mapping[str, str]) -> tuple[str, str]:
    import configparser  # only when an entry's key or a request needs it

    path = disk.aws_config_path(environ)
    parser = configparser.RawConfigParser()
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError, OSError):
        return "", f"{path} cannot be read"
    section = "profile default" if parser.has_section("profile default") else "default"
    default = dict(parser.items(section)) if parser.has_section(section) else {}
    ignore = environ.get(
        "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", default.get("ignore_configured_endpoint_urls", "")
    )
    if ignore.strip().lower() == "true":
        return "", "STS default (configured endpoint URLs ignored)"
    for name in ("AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL"):
        if environ.get(name):
            return environ[name], name
    services = f"services {default.get('services', '')}"
    if default.get("services") and parser.has_option(services, "sts"):
        for line in parser.get(services, "sts").splitlines():
            name, _, value = line.partition("=")
            if name.strip() == "endpoint_url" and value.strip():
                return value.strip(), f"{path} [{services}] sts endpoint_url"
    if default.get("endpoint_url"):
        return default["endpoint_url"], f"{path} [{section}] endpoint_url"
    return "", "STS default"
