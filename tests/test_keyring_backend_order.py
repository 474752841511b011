"""Which keyring backend elevate uses: keyring's own order (PYTHON_KEYRING_BACKEND, keyringrc.cfg)
comes first; then the platform's backend imported directly, with keyring's discovery only as the
fallback. Each probe runs in a child Python so the choice starts from nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Optional

from support.stsenv import no_aws_files  # noqa: F401  (autouse: the same environment as before the split)

from elevate import keystore

# --- 7. the keyring backend: keyring's order, no discovery when the platform's backend works --


BACKEND_PROBE = textwrap.dedent(
    """
    import json, sys
    from elevate import keystore
    keystore.PLATFORM_BACKENDS[sys.platform] = sys.argv[1]
    keystore.choose_backend()
    import keyring
    backend = keyring.get_keyring()
    print(json.dumps({"backend": f"{type(backend).__module__}.{type(backend).__name__}",
                      "discovered": "keyring.backends.chainer" in sys.modules}))
    """
)


def probe_backend(tmp_path: Path, platform_backend: str, env: dict[str, Optional[str]]) -> dict[str, Any]:
    child = {k: v for k, v in os.environ.items() if k != "PYTHON_KEYRING_BACKEND"}
    child["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    child.update({k: v for k, v in env.items() if v is not None})
    done = subprocess.run(
        [sys.executable, "-c", BACKEND_PROBE, platform_backend],
        env=child,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    import json

    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_the_platform_backend_is_imported_directly_and_discovery_is_the_fallback(tmp_path: Path) -> None:
    test_backend = "elevate_testkeyring.FileKeyring"
    direct = probe_backend(tmp_path, test_backend, {})
    assert direct == {"backend": test_backend, "discovered": False}
    fallback = probe_backend(tmp_path, "no_such_module.Keyring", {})
    assert fallback["discovered"] is True and fallback["backend"] != test_backend


def test_keyrings_own_order_comes_first(tmp_path: Path) -> None:
    config = tmp_path / "config" / "python_keyring" / "keyringrc.cfg"
    config.parent.mkdir(parents=True)
    config.write_text("[backend]\ndefault-keyring=keyring.backends.null.Keyring\n")
    by_config = probe_backend(tmp_path, "elevate_testkeyring.FileKeyring", {})
    assert by_config == {"backend": "keyring.backends.null.Keyring", "discovered": False}
    by_env = probe_backend(
        tmp_path,
        "elevate_testkeyring.FileKeyring",
        {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"},
    )
    assert by_env == {"backend": "keyring.backends.fail.Keyring", "discovered": False}
    assert keystore.PLATFORM_BACKENDS["linux"] == "keyring.backends.SecretService.Keyring"
