"""os.path's answers without importing os (elevate.hostos): join, dirname, expanduser, abspath and
realpath agree with os.path on generated paths (realpath through a real tree of links, loops and
dangling links included); the environment reads as os.environ does, undecodable bytes included;
and the lean hit really leaves os unimported.
"""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from elevate import hostos

pytestmark = pytest.mark.unit

SEGMENTS = ["", "/", "//", "a", "b/", "/c", "c//", ".", "..", "./", "../", "~", "a b", "é", "x.toml"]
paths = st.lists(st.sampled_from(SEGMENTS), max_size=6).map("".join)


@given(st.lists(paths, min_size=1, max_size=4))
def test_join_is_os_path_join(parts: list[str]) -> None:
    assert hostos.join(*parts) == os.path.join(*parts)


@given(paths)
def test_dirname_is_os_path_dirname(path: str) -> None:
    assert hostos.dirname(path) == os.path.dirname(path)


@pytest.mark.parametrize("home", ["/home/u", "/home/u/", "/", "", "//x//", None])
@pytest.mark.parametrize("path", ["~", "~/", "~/a/b", "~root/x", "~nobody-here/x", "a/~", "", "/~", "~~"])
def test_expanduser_is_os_path_expanduser(
    monkeypatch: pytest.MonkeyPatch, home: str | None, path: str
) -> None:
    if home is None:
        monkeypatch.delenv("HOME", raising=False)
    else:
        monkeypatch.setenv("HOME", home)
    assert hostos.expanduser(path) == os.path.expanduser(path)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(paths)
def test_abspath_is_os_path_abspath(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    monkeypatch.chdir(tmp_path)
    assert hostos.abspath(path) == os.path.abspath(path)


def _tree(root: Path) -> None:
    """Directories, files and every kind of link realpath has to follow or give up on."""
    (root / "d" / "e").mkdir(parents=True, exist_ok=True)
    (root / "d" / "e" / "x.toml").write_text("x")
    (root / "f").write_text("f")
    links = {
        "abs": root / "d",  # an absolute link to a directory
        "rel": Path("d/e"),  # a relative one
        "file": Path("f"),
        "up": Path(".."),
        "dangling": Path("nowhere/at/all"),
        "loop1": Path("loop2"),
        "loop2": Path("loop1"),
        "d/e/back": Path("../.."),
    }
    for name, target in links.items():
        link = root / name
        if not link.is_symlink():
            link.symlink_to(target)


NAMES = [
    "d",
    "e",
    "x.toml",
    "f",
    "abs",
    "rel",
    "file",
    "up",
    "dangling",
    "loop1",
    "back",
    ".",
    "..",
    "",
    "new",
]


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=300)
@given(st.lists(st.sampled_from(NAMES), min_size=1, max_size=6), st.booleans())
def test_realpath_is_os_path_realpath(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, names: list[str], relative: bool
) -> None:
    _tree(tmp_path)
    monkeypatch.chdir(tmp_path)
    path = "/".join(names) if relative else str(tmp_path) + "/" + "/".join(names)
    assert hostos.realpath(path) == os.path.realpath(path)


def test_realpath_takes_the_fast_form_only_without_links(tmp_path: Path) -> None:
    _tree(tmp_path)
    plain = str(tmp_path / "d" / "e" / "x.toml")
    assert os.path.realpath(plain) == plain  # this machine's tmp has no link on its way
    assert hostos.realpath(plain) == plain
    assert hostos.realpath(str(tmp_path / "rel" / "x.toml")) == plain
    assert hostos.realpath(str(tmp_path / "d" / "e" / "back" / "d" / "e" / "x.toml")) == plain


def test_make_private_dirs_is_makedirs_0700_exist_ok(tmp_path: Path) -> None:
    one = tmp_path / "one"
    hostos.make_private_dirs(str(one))
    hostos.make_private_dirs(str(one))
    deep = tmp_path / "a" / "b" / "c"
    hostos.make_private_dirs(str(deep))
    assert oct(one.stat().st_mode & 0o777) == oct(deep.stat().st_mode & 0o777) == "0o700"
    (tmp_path / "file").write_text("")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    for odd in ("file", "dangling"):  # whatever os.makedirs raises there, this raises too
        with pytest.raises(OSError) as expected:
            os.makedirs(tmp_path / odd, 0o700, exist_ok=True)
        with pytest.raises(type(expected.value)):
            hostos.make_private_dirs(str(tmp_path / odd))


def test_the_environment_reads_as_os_environ_does_with_undecodable_bytes() -> None:
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from elevate import hostos\n"
        "mine = hostos.process_environ(); import os\n"
        "assert mine == dict(os.environ), (mine, dict(os.environ))\n"
        "print(repr(mine['ODD']))\n"
    )
    env = {b"PATH": os.environb.get(b"PATH", b"/usr/bin"), b"ODD": b"caf\xe9 \xff", b"HOME": b"/h\xffome"}
    root = str(Path(__file__).resolve().parent.parent)
    done = subprocess.run([sys.executable, "-I", "-c", code, root], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == repr("caf\udce9 \udcff")


def test_a_plain_lookup_leaves_os_unimported(tmp_path: Path) -> None:
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from elevate import hostos, disk\n"
        "hostos.realpath(sys.argv[2]); hostos.abspath('x'); hostos.expanduser('~/x')\n"
        "disk.config_path(None, hostos.process_environ()); disk.trusted_config(sys.argv[2])\n"
        "print('os' in sys.modules)\n"
    )
    config = tmp_path / "c.toml"
    config.write_text("")
    root = str(Path(__file__).resolve().parent.parent)
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code, root, str(config)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_where_the_os_module_is_not_posix_every_answer_is_os_s(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Windows (nt): nothing is answered by the fast forms; os.path and os.environ answer."""
    monkeypatch.setattr(hostos, "native", types.SimpleNamespace(__name__="nt", fspath=os.fspath))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("Mixed_Case", "1")
    for path in ("a/../b", "~/x", "/x//y/", "rel"):
        assert hostos.abspath(path) == os.path.abspath(path)
        assert hostos.realpath(path) == os.path.realpath(path)
        assert hostos.expanduser(path) == os.path.expanduser(path)
        assert hostos.dirname(path) == os.path.dirname(path)
        assert hostos.join(path, "z") == os.path.join(path, "z")
    assert hostos.process_environ() == dict(os.environ)
    hostos.make_private_dirs(str(tmp_path / "p" / "q"))
    assert (tmp_path / "p" / "q").is_dir()
