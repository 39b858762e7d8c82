"""Every command line in the fenced shell blocks of the README (and of docs/) names a real subcommand and real
options of our three CLIs.

The commands are checked against the click commands that ``--help`` prints (``typer.main.get_command``), so a renamed
or removed option breaks this test, not a reader's first try.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
import typer

REPO = Path(__file__).resolve().parents[1]
PROGRAMS = ("cnscreen", "cntrain", "cnexport")
_SEPARATORS = {"&&", "||", ";", "|"}
_SHELL_BLOCKS = {"", "bash", "sh", "shell", "console"}


def _apps() -> dict[str, click.Command]:
    from cardiacnets.edge.cli import app as screen_app
    from cardiacnets.export.cli import app as export_app
    from cardiacnets.training.cli import app as train_app

    return {name: typer.main.get_command(app) for name, app in
            (("cnscreen", screen_app), ("cntrain", train_app), ("cnexport", export_app))}  # fmt: skip


def fenced_commands(markdown: str) -> list[tuple[int, list[str]]]:
    """``(line number, tokens)`` of every invocation of our CLIs in the fenced code blocks of ``markdown``."""
    commands = []
    lines = markdown.splitlines()
    in_block, joined, start = False, "", 0
    for number, line in enumerate(lines, 1):
        if line.lstrip().startswith("```"):
            shell = line.strip().removeprefix("```").strip() in _SHELL_BLOCKS
            in_block, joined = (not in_block and shell), ""
            continue
        if not in_block:
            continue
        if not joined:
            start = number
        joined += line.rstrip().removesuffix("\\") + " "
        if line.rstrip().endswith("\\"):
            continue
        text, joined = joined, ""
        if not re.search(r"\b(" + "|".join(PROGRAMS) + r")\b", text):
            continue  # diagrams and other programs' commands
        tokens = shlex.split(text, comments=True)
        segment: list[str] = []
        for token in [*tokens, ";"]:
            if token in _SEPARATORS:
                if segment and Path(segment[0]).name in PROGRAMS:
                    commands.append((start, segment))
                segment = []
            else:
                segment.append(token)
    return commands


def check_command(tokens: list[str], apps: dict[str, click.Command]) -> list[str]:
    """Problems with one invocation: an unknown subcommand, options the command does not have."""
    program = Path(tokens[0]).name
    command = apps[program]
    args = tokens[1:]
    path = [program]
    if program == "cnscreen" and args and not args[0].startswith("-") and args[0] not in command.commands:
        args = ["screen", *args]  # `cnscreen FILE` is `cnscreen screen FILE`
    while hasattr(command, "commands") and args and not args[0].startswith("-"):
        if args[0] not in command.commands:
            return [f"{' '.join(path)} has no subcommand {args[0]!r}"]
        command = command.commands[args[0]]
        path.append(args.pop(0))
    known = {"--help"} | {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}
    problems = []
    for arg in args:
        if arg.startswith("-") and arg != "-" and not re.fullmatch(r"-\d.*", arg):
            option = arg.split("=", 1)[0]
            if option not in known:
                problems.append(f"{' '.join(path)} has no option {option}")
    return problems


def test_readme_commands_exist() -> None:
    commands = fenced_commands((REPO / "README.md").read_text())
    assert len(commands) >= 20  # the README's examples were found
    apps = _apps()
    problems = [f"README.md line {n}: {p}" for n, tokens in commands for p in check_command(tokens, apps)]
    assert problems == []


def test_docs_commands_exist() -> None:
    apps = _apps()
    problems = [
        f"{doc.relative_to(REPO)} line {n}: {p}"
        for doc in sorted((REPO / "docs").glob("*.md"))
        for n, tokens in fenced_commands(doc.read_text())
        for p in check_command(tokens, apps)
    ]
    assert problems == []


@pytest.mark.parametrize(
    "line",
    ["cnscreen ecg.xml --no-such-option", "cntrain no-such-command --out x", "cnexport bench --bundel b/"],
)
def test_the_check_catches_wrong_commands(line: str) -> None:
    [(_, tokens)] = fenced_commands(f"```bash\n{line}\n```\n")
    assert check_command(tokens, _apps())


def test_continuations_and_chains_are_followed() -> None:
    markdown = "```bash\nbash scripts/install.sh && .venv/bin/cnscreen a.xml \\\n  --json  # comment\n```\n"
    assert fenced_commands(markdown) == [(2, [".venv/bin/cnscreen", "a.xml", "--json"])]
