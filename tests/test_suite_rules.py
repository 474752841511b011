"""Rules of the test suite and of the docs that describe the code, checked on the files themselves.

No file in tests/ is over 600 lines; what tests share lives in tests/support only, and no module
imports a test module; no assert is one that cannot fail; CONTRIBUTING.md's module table lists
exactly the modules in elevate/, so a module added or removed without its row fails here.
"""

from __future__ import annotations

import ast
import re
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
