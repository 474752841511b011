"""Every command has help, and every `elevate ...` command line shown in the docs parses."""

from __future__ import annotations

import re
import shlex
import warnings
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from elevate.cli import cli

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]


def _commands(
    group: click.Group, prefix: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], click.Command]]:
    found = []
    for name, command in group.commands.items():
        found.append(((*prefix, name), command))
        if isinstance(command, click.Group):
            found += _commands(command, (*prefix, name))
    return found


@pytest.mark.parametrize(
    "path,command", _commands(cli), ids=lambda v: " ".join(v) if isinstance(v, tuple) else ""
)
def test_every_command_has_help(path: tuple[str, ...], command: click.Command) -> None:
    shown = CliRunner().invoke(cli, [*path, "--help"])
    assert shown.exit_code == 0, shown.output
    assert "Usage:" in shown.output
    assert command.help and len(command.help.strip()) > 20, f"elevate {' '.join(path)} has no help"
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help, f"elevate {' '.join(path)} {param.opts[0]} has no help"


def _shown_command_lines() -> list[tuple[str, str]]:
    lines = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
            for line in block.splitlines():
                lines += [
                    (doc.name, m) for m in re.findall(r"(?:^|[\s(\"$`])(elevate (?:[^`\"|;&)#<>\n])*)", line)
                ]
        lines += [(doc.name, m) for m in re.findall(r"`(elevate [^`|;&<>]*)[^`]*`", text)]
    return lines


def _rest(ctx: click.Context) -> list[str]:
    """What a group left for its subcommand: Click 8 splits it into protected_args (deprecated
    since 8.2, gone in 9) and args."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return [*getattr(ctx, "protected_args", []), *ctx.args]


def _parse(words: list[str]) -> None:
    """Parse `words` with click's parser down to the last command, without running it."""
    ctx = cli.make_context("elevate", list(words), resilient_parsing=False)
    command: click.Command = cli
    while isinstance(command, click.Group) and (rest := _rest(ctx)):
        name, sub, args = command.resolve_command(ctx, rest)
        assert sub is not None, f"no command {name}"
        ctx = sub.make_context(name or "", args, parent=ctx)
        command = sub


def test_every_elevate_command_line_in_the_docs_parses() -> None:
    shown = _shown_command_lines()
    assert len(shown) > 20, "the docs show elevate command lines"
    failures = []
    for doc, line in shown:
        words = shlex.split(line.strip().rstrip("\\").strip(), comments=True)[1:]
        # Placeholders in the docs stand for a value.
        words = [re.sub(r"^[A-Z][A-Z_]*$", "x", w) for w in words]
        words = [w for w in words if w not in ("...", "[...]")]
        if not words or any(w.startswith("[") for w in words) or any(c in line for c in "{<"):
            continue
        try:
            _parse(words)
        except click.exceptions.Exit:
            continue  # --help, --version
        except click.ClickException as exc:
            failures.append(f"{doc}: `{line.strip()}`: {exc.format_message()}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("doc", ["README.md", "docs/admin.md"])
def test_local_endpoint_advice_serves_an_aws_cli_older_than_2_13(doc: str) -> None:
    """Where a doc points elevate at a local endpoint, an AWS CLI before 2.13 ignores
    AWS_ENDPOINT_URL: the doc says so and shows the flag that works with every version."""
    text = " ".join((ROOT / doc).read_text().split())
    assert "AWS_ENDPOINT_URL" in text
    assert "only from version 2.13" in text
    assert 'aws --endpoint-url "$AWS_ENDPOINT_URL"' in text
