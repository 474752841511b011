"""Rules of the test suite and of the docs that describe the code, checked on the files themselves.

No file in tests/ is over 600 lines; what tests share lives in tests/support only, and no module
imports a test module; no assert is one that cannot fail; CONTRIBUTING.md's module table lists
exactly the modules in elevate/, so a module added or removed without its row fails here; no
test pokes a private name of an elevate module or object (an AST check, limits noted at it); no
module in tests/support takes the name of a module another program imports (PYTHONPATH names
tests/support, and the children the tests run, such as the AWS CLI, inherit it).
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
PACKAGE = ROOT / "elevate"
LINE_LIMIT = 600


def _test_files() -> list[Path]:
    return sorted(p for p in TESTS.rglob("*.py") if "__pycache__" not in p.parts)


def _imported_modules(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append("." * node.level + node.module)
    return names


def _is_test_module(name: str) -> bool:
    last = name.rsplit(".", 1)[-1]
    return last.startswith("test_") or last == "conftest"


def test_no_file_in_tests_is_over_the_line_limit() -> None:
    lines = {path: len(path.read_text(encoding="utf-8").splitlines()) for path in _test_files()}
    over = {path.relative_to(ROOT).as_posix(): n for path, n in lines.items() if n > LINE_LIMIT}
    assert over == {}, f"over {LINE_LIMIT} lines, split them by behaviour: {over}"


def test_no_module_in_tests_imports_a_test_module() -> None:
    offenders = {}
    for path in _test_files():
        imported = [name for name in _imported_modules(path) if _is_test_module(name)]
        if imported:
            offenders[path.relative_to(ROOT).as_posix()] = imported
    assert offenders == {}, f"move what they share to tests/support: {offenders}"


def test_shared_helpers_live_in_tests_support_only() -> None:
    elsewhere = [
        path.relative_to(TESTS).as_posix()
        for path in _test_files()
        if TESTS / "support" not in path.parents
        and not (path.name.startswith("test_") or path.name in ("conftest.py", "__init__.py"))
    ]
    assert elsewhere == [], f"helper modules outside tests/support: {elsewhere}"


def test_the_test_module_rule_sees_both_import_forms(tmp_path: Path) -> None:
    module = tmp_path / "test_x.py"
    module.write_text(
        "import test_a\nfrom test_b import c\nfrom cfn.test_d import e\nfrom support.x import y\n"
    )
    assert [n for n in _imported_modules(module) if _is_test_module(n)] == ["test_a", "test_b", "cfn.test_d"]


def _listed_modules(text: str) -> list[str]:
    """The paths in the first column of CONTRIBUTING.md's module table."""
    return re.findall(r"^\| `(elevate/[^`]+\.py)` \|", text, re.M)


def _holds_code(init: Path) -> bool:
    """Whether a package's __init__.py does more than carry a docstring and a version."""
    tree = ast.parse(init.read_text(encoding="utf-8"))
    return any(not isinstance(node, (ast.Expr, ast.Assign)) for node in tree.body)


def _package_modules() -> list[str]:
    modules = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "__init__.py" and not _holds_code(path):
            continue
        modules.append(path.relative_to(ROOT).as_posix())
    return modules


def test_contributing_lists_exactly_the_modules_of_the_package() -> None:
    listed = _listed_modules((ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8"))
    duplicates = sorted({name for name in listed if listed.count(name) > 1})
    assert duplicates == [], f"listed twice in CONTRIBUTING.md: {duplicates}"
    modules = _package_modules()
    assert sorted(set(modules) - set(listed)) == [], "modules missing from CONTRIBUTING.md's table"
    assert sorted(set(listed) - set(modules)) == [], "CONTRIBUTING.md lists modules that do not exist"


def test_the_module_table_reader_finds_rows_and_only_rows() -> None:
    text = (
        "| module | its job |\n| --- | --- |\n| `elevate/a.py` | a |\n| `elevate/b/c.py` | c |\n"
        "see `elevate/d.py`\n"
    )
    assert _listed_modules(text) == ["elevate/a.py", "elevate/b/c.py"]


def _always_true(node: ast.expr) -> bool:
    """An expression whose truth does not depend on the code under test."""
    if isinstance(node, ast.Constant):
        return bool(node.value)
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or):
        return any(_always_true(value) for value in node.values)
    if isinstance(node, ast.IfExp):
        return _always_true(node.body) or _always_true(node.orelse)
    return False


def _vacuous_asserts(source: str) -> list[int]:
    """Lines of asserts that cannot fail, and of handlers that swallow AssertionError."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assert) and _always_true(node.test):
            found.append(node.lineno)
        elif isinstance(node, ast.ExceptHandler) and node.type is not None:
            caught = ast.unparse(node.type)
            if "AssertionError" in caught and all(isinstance(n, ast.Pass) for n in node.body):
                found.append(node.lineno)
    return found


def test_no_assert_that_cannot_fail() -> None:
    offenders = {}
    for path in _test_files():
        lines = _vacuous_asserts(path.read_text(encoding="utf-8"))
        if lines:
            offenders[path.relative_to(ROOT).as_posix()] = lines
    assert offenders == {}, f"asserts that cannot fail (file: lines): {offenders}"


def test_the_vacuous_assert_rule_sees_the_forms_it_names() -> None:
    source = (
        "assert x or True\n"
        "assert a and b if cache.exists() else True\n"
        "assert 'message'\n"
        "try:\n    assert f()\nexcept AssertionError:\n    pass\n"
        "assert x == 1\n"
        "assert x if y else z\n"
    )
    assert _vacuous_asserts(source) == [1, 2, 3, 6]


# --- no private pokes ---------------------------------------------------------------------------
# A test reaches elevate through public doors: the CLI, public functions, dependencies passed in
# (support's fakes have public controls). The check below is an AST reading of every file in
# tests/, kept simple. A name is "elevate's" in a file when the file binds it, anywhere, by
#   - importing it from elevate (`import elevate.x as n`, `from elevate[.x] import n`),
#   - assigning it the result of a call or attribute of an elevate name (`n = core.Elevator(...)`),
#   - or annotating a parameter or variable with an elevate name (`n: Elevator`).
# It then flags `n._private` (through any chain: `n.a()._b` too), `from elevate.x import _private`,
# `setattr/getattr/delattr/hasattr(n, "_private", ...)` (monkeypatch.setattr too) and "elevate.x._private"
# strings; and in string constants (child scripts), `n._private` where n is imported from elevate
# by some string of the same file. Limits: names are per file, not per scope (a name bound to
# elevate anywhere counts everywhere in that file, which errs towards flagging); objects reached
# otherwise (fixtures without annotations, containers, returned tuples) are not followed; code
# built in strings is read with a regular expression only; `self._x` and `cls._x` are a class's own.
PRIVATE_POKES_ALLOWED: dict[tuple[str, str], str] = {
    # (file, what the rule reports, without the line): why it stays
    ("tests/test_suite_rules.py", "mfa._from_prompt (in a string)"): "the rule's own example below",
}


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__") and len(name) > 1


def _root(node: ast.expr) -> ast.expr:
    while isinstance(node, (ast.Attribute, ast.Call, ast.Subscript, ast.Await)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node


def _elevate_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "elevate" or alias.name.startswith("elevate."):
                    names.add(alias.asname or alias.name.split(".", 1)[0])
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "elevate" or node.module.startswith("elevate."):
                names.update(alias.asname or alias.name for alias in node.names)

    def from_elevate(node: ast.expr | None) -> bool:
        if node is None:
            return False
        if isinstance(node, ast.Constant) and isinstance(node.value, str):  # a string annotation
            try:
                node = ast.parse(node.value, mode="eval").body
            except SyntaxError:
                return False
        return any(isinstance(n, ast.Name) and n.id in names for n in ast.walk(node))

    grew = True
    while grew:  # until no new name is bound (n = m.x(); o = n.y(); ...)
        before = len(names)
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and from_elevate(_root(node.value)):
                names.update(t.id for t in node.targets if isinstance(t, ast.Name))
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                if from_elevate(node.annotation) or (
                    node.value is not None and from_elevate(_root(node.value))
                ):
                    names.add(node.target.id)
            elif isinstance(node, ast.arg) and from_elevate(node.annotation):
                names.add(node.arg)
            elif isinstance(node, ast.withitem) and isinstance(node.optional_vars, ast.Name):
                if from_elevate(_root(node.context_expr)):
                    names.add(node.optional_vars.id)
        grew = len(names) > before
    return names - {"self", "cls"}


_STRING_IMPORT = re.compile(
    r"from elevate(?:\.[\w.]+)? import ([\w, ]+)|import (elevate[\w.]*)(?: as (\w+))?"
)
_STRING_POKE = re.compile(r"(?<![\w.])(\w+)\.(_[a-z]\w*)")
_DOTTED_PRIVATE = re.compile(r"^elevate(?:\.\w+)*\.(_[a-z]\w*)")


def _private_pokes(source: str) -> list[tuple[int, str]]:
    """(line, what) for each private poke of an elevate module or object in `source`."""
    tree = ast.parse(source)
    names = _elevate_names(tree)
    constants = [n for n in ast.walk(tree) if isinstance(n, ast.Constant)]
    strings = [(n.lineno, n.value) for n in constants if isinstance(n.value, str)]
    in_strings: set[str] = set()
    for _, text in strings:
        for imported, module, alias in _STRING_IMPORT.findall(text):
            in_strings.update(n.strip().split(" as ")[-1] for n in imported.split(",") if n.strip())
            if module:
                in_strings.add(alias or module.split(".", 1)[0])
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _is_private(node.attr):
            root = _root(node.value)
            if isinstance(root, ast.Name) and root.id in names:
                found.append((node.lineno, ast.unparse(node)))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "elevate":
            found += [
                (node.lineno, f"from {node.module} import {a.name}")
                for a in node.names
                if _is_private(a.name)
            ]
        elif isinstance(node, ast.Call) and len(node.args) >= 2:
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            target, attr = _root(node.args[0]), node.args[1]
            if (
                name in ("setattr", "getattr", "delattr", "hasattr")
                and isinstance(target, ast.Name)
                and target.id in names
                and isinstance(attr, ast.Constant)
                and isinstance(attr.value, str)
                and _is_private(attr.value)
            ):
                found.append((node.lineno, f"{name}({target.id}, {attr.value!r})"))
    for line, text in strings:
        if _DOTTED_PRIVATE.match(text):
            found.append((line, text))
        for owner, attr in _STRING_POKE.findall(text):
            if owner in in_strings:
                found.append((line, f"{owner}.{attr} (in a string)"))
    return sorted(set(found))


def test_no_test_pokes_a_private_name_of_elevate() -> None:
    offenders, allowed_seen = {}, set()
    for path in _test_files():
        name = path.relative_to(ROOT).as_posix()
        pokes = []
        for line, what in _private_pokes(path.read_text(encoding="utf-8")):
            if (name, what) in PRIVATE_POKES_ALLOWED:
                allowed_seen.add((name, what))
            else:
                pokes.append(f"{line}: {what}")
        if pokes:
            offenders[name] = pokes
    assert offenders == {}, f"test through a public door, or list it with a reason: {offenders}"
    stale = sorted(set(PRIVATE_POKES_ALLOWED) - allowed_seen)
    assert stale == [], f"listed as allowed but no longer there, drop them: {stale}"


def test_the_private_poke_rule_sees_the_forms_it_names() -> None:
    source = (
        "from elevate import supply as supply_mod, mfa\n"  # 1
        "from elevate.core import Elevator\n"
        "from elevate.cli.setup import _show_device\n"  # 3: a private import
        "import elevate.aws\n"
        "s = supply_mod.CredentialSupply(f)\n"  # 5
        "s._current = 1\n"  # 6: an object from elevate
        "mfa._from_prompt(p, t)\n"  # 7: a module of elevate
        "elevate.aws.make_client(k)._request_signer\n"  # 8: through a call
        "def f(e: Elevator, other: object) -> None:\n"  # 9
        "    e._warn_key_age(p, k)\n"  # 10: an annotated parameter
        "    other._fine\n"  # 11: not elevate's
        "monkeypatch.setattr(mfa, '_x', 1)\n"  # 12
        "monkeypatch.setattr('elevate.keystore._backend_chosen', False)\n"  # 13
        "CHILD = 'from elevate import kernelkeys\\nkernelkeys._keyctl(0)'\n"  # 14: a child script
        "self._own = 1\n"
        "mfa.obtain_code(p)\nos._exit(0)\ns.__class__\n"
    )
    assert [line for line, _ in _private_pokes(source)] == [3, 6, 7, 8, 10, 12, 13, 14]


def _support_names() -> list[str]:
    return sorted(p.stem for p in (TESTS / "support").glob("*.py") if p.stem != "__init__")


def test_no_support_module_shadows_a_module_of_a_program_the_tests_run() -> None:
    """tests/support is on PYTHONPATH (the test keyring backend is found there), so a helper named
    like a real module (support/awscli.py once was) would be imported by a child such as the AWS
    CLI instead of its own package: checked against this interpreter's installed modules and the
    system python3's, each asked in isolation (-I: no PYTHONPATH, no working directory)."""
    names = _support_names()
    probe = "import importlib.util, sys; print([n for n in sys.argv[1:] if importlib.util.find_spec(n)])"
    system = shutil.which("python3", path="/usr/bin:/bin")
    for python in dict.fromkeys(p for p in (sys.executable, system) if p):
        found = subprocess.run(
            [python, "-I", "-c", probe, *names], capture_output=True, text=True, timeout=60, check=True
        ).stdout.strip()
        assert found == "[]", f"tests/support modules named like modules of {python}: {found}"
