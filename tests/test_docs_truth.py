"""The docs stay true: every command line `python -m lib.cli ...` written in README.md or docs/ parses with the
real parser — the sub-command exists, every option it names exists on that sub-command, and a value given for an
option with fixed choices is one of them. A renamed option or a removed command fails here, not in a reader's
terminal. Relative links between the docs must point at files that exist."""
from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from lib.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMAND = re.compile(r"python -m lib\.cli((?:[ \t]+[^\s`|;#)]+(?:\\\n)?)*)")
STOP = {"#", ";", "&&", "||", "|", ">", ">>", "2>&1", ")"}


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # noqa: SLF001 - argparse has no public walk of its tree
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return dict(parser._option_string_actions)  # noqa: SLF001


def _placeholder(token: str) -> bool:
    """A value written for the reader to fill in: FILE, DIR, PATH, N, URL, ..."""
    return token.upper() == token or "/" in token or token.startswith(("$", "<", "{")) or "..." in token


def check(line: str) -> list[str]:
    """Problems with one documented command line (empty when it parses)."""
    try:
        tokens = shlex.split(line.replace("\\\n", " "), comments=False)
    except ValueError:
        tokens = line.split()
    parser, path, problems = build_parser(), ["python -m lib.cli"], []
    i = 0
    while i < len(tokens):
        token = tokens[i].strip("[]")
        if token in STOP or token.startswith("#"):
            break
        if not token or token == "...":
            i += 1
            continue
        if token.startswith("-"):
            name, _, inline = token.partition("=")
            action = _options(parser).get(name)
            if action is None:
                problems.append(f"`{' '.join(path)}` has no option {name}")
            elif action.choices and action.nargs != 0:
                value = inline or (tokens[i + 1].strip("[]") if i + 1 < len(tokens) else "")
                if value and not _placeholder(value) and value not in action.choices:
                    problems.append(f"`{' '.join(path)} {name}` does not accept {value!r} "
                                    f"(choices: {', '.join(map(str, action.choices))})")
            i += 1
            continue
        subs = _subparsers(parser)
        if subs:
            if token not in subs:
                problems.append(f"`{' '.join(path)}` has no sub-command {token!r}")
                break
            parser = subs[token]
            path.append(token)
            if path == ["python -m lib.cli", "bench"]:  # its options are bench/run_all.py's own
                from bench.run_all import _parser as bench_parser

                parser = bench_parser()
        i += 1
    return problems


def documented_commands() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        for match in COMMAND.finditer(doc.read_text(encoding="utf-8")):
            found.append((doc.relative_to(ROOT).as_posix(), match.group(1).strip()))
    return found


def test_the_docs_name_commands_at_all():
    commands = documented_commands()
    assert len(commands) >= 20
    assert any(line.startswith("link") for _, line in commands)


@pytest.mark.parametrize("doc,line", documented_commands(), ids=lambda v: v[:60])
def test_every_documented_command_line_parses(doc, line):
    assert check(line) == [], f"{doc}: python -m lib.cli {line}"


def test_the_checker_catches_a_wrong_option_a_wrong_choice_and_a_missing_command():
    assert check("link --db PATH --no-such-option")
    assert check("boardpack --db PATH --layer no_such_layer --area E08000035")
    assert check("no-such-command --db PATH")
    assert check("geodata build") == []
    assert check("bench --size 100000 --table bench.md") == [] and check("bench --no-such-option")


LINK = re.compile(r"\]\(((?!https?:|mailto:|#)[^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_relative_links_in_the_docs_point_at_files_that_exist(doc):
    missing = [target for target in LINK.findall(doc.read_text(encoding="utf-8"))
               if not (doc.parent / target).exists()]
    assert missing == [], f"{doc.name} links to missing files: {missing}"



def test_the_readme_stays_short():
    """What it is, the two commands, prerequisites, a page tour: at most 8,000 characters; the rest is in docs/."""
    assert len((ROOT / "README.md").read_text(encoding="utf-8")) <= 8_000
