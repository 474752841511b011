"""Every exception elevate defines lives in elevate/errors.py, documented, with its exit code."""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

import elevate
from elevate import errors

PACKAGE = Path(elevate.__file__).parent
ERRORS = PACKAGE / "errors.py"
BUILTIN_EXCEPTIONS = {
    name
    for name, value in vars(builtins).items()
    if isinstance(value, type) and issubclass(value, BaseException)
}


def _base_name(node: ast.expr) -> str:
    """`Name` or the last part of `a.b.Name` (a subscripted base: its origin)."""
    if isinstance(node, ast.Subscript):
        return _base_name(node.value)
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return ""


def _exception_classes(tree: ast.Module, known: set[str]) -> list[ast.ClassDef]:
    """The classes in `tree` (nested ones too) deriving from an exception, as far as names tell:
    a builtin exception, a class of elevate.errors, a name ending in Error or Exception, or an
    exception class of the same module."""
    classes = [node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]
    found: dict[str, ast.ClassDef] = {}
    changed = True
    while changed:
        changed = False
        for node in classes:
            if node.name in found:
                continue
            bases = {_base_name(base) for base in node.bases}
            if any(
                name in known or name in found or name.endswith(("Error", "Exception", "Exit", "Interrupt"))
                for name in bases
            ):
                found[node.name] = node
                changed = True
    return list(found.values())


def test_the_walk_finds_exception_classes_however_they_are_written() -> None:
    source = (
        "import botocore.exceptions\n"
        "class A(ValueError): pass\n"
        "class B(A): pass\n"
        "class C(botocore.exceptions.ClientError): pass\n"
        "def f():\n"
        "    class D(Exception): pass\n"
        "class E(ElevateError): pass\n"
        "class F(Generic[T], KeyboardInterrupt): pass\n"
        "class NotOne(object): pass\n"
        "class AlsoNot(Protocol): pass\n"
    )
    known = BUILTIN_EXCEPTIONS | {"ElevateError"}
    names = sorted(node.name for node in _exception_classes(ast.parse(source), known))
    assert names == ["A", "B", "C", "D", "E", "F"]


def test_no_exception_class_is_defined_outside_errors_py() -> None:
    tree = ast.parse(ERRORS.read_text(encoding="utf-8"))
    in_errors = {node.name for node in tree.body if isinstance(node, ast.ClassDef)}
    known = BUILTIN_EXCEPTIONS | in_errors
    outside = [
        f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != ERRORS
        for node in _exception_classes(ast.parse(path.read_text(encoding="utf-8")), known)
    ]
    assert not outside, f"exception classes outside elevate/errors.py: {outside}"


def test_every_exception_in_errors_py_says_what_it_is_and_how_elevate_exits() -> None:
    classes = [
        value
        for value in vars(errors).values()
        if isinstance(value, type)
        and issubclass(value, BaseException)
        and value.__module__ == errors.__name__
    ]
    assert len(classes) > 10
    for cls in classes:
        doc = cls.__doc__ or ""
        assert doc.strip(), f"{cls.__name__} has no docstring"
        if issubclass(cls, errors.ElevateError):
            assert isinstance(cls.exit_code, int) and 1 <= cls.exit_code <= 255, cls.__name__
        else:  # a signal between modules, or an unwinding: the docstring says what becomes of it
            assert "exit" in doc or "never reaches" in doc, f"{cls.__name__}: say how elevate ends on it"
