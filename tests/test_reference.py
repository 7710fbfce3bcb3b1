"""The documentation against the code: the generated hyperparameter reference, each command's
page against its ``--help``, and every relative link in README.md and docs/."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from textclf.cli import main
from textclf.config import Hyperparameters, RunOptions
from textclf.reference import REGENERATE, hyperparameters_markdown

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
REFERENCE = DOCS / "hyperparameters.md"
PAGES = sorted([ROOT / "README.md", *DOCS.rglob("*.md")])
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FLAG = re.compile(r"--[a-z0-9][a-z0-9-]*")
DEFAULT = re.compile(r"\[default: ([^;\]]*)")


def test_hyperparameter_reference_matches_the_dataclasses():
    assert REFERENCE.read_text(encoding="utf-8") == hyperparameters_markdown(), (
        f"docs/hyperparameters.md is out of date with src/textclf/config.py; regenerate it with: {REGENERATE}"
    )


def test_reference_lists_every_field_once():
    text = hyperparameters_markdown()
    for settings in (Hyperparameters, RunOptions):
        for name in settings.__dataclass_fields__:
            assert text.count(f"| `{name}` |") == 1, name


@pytest.mark.parametrize("command", ["train", "tune"])
def test_reference_flags_are_the_cli_flags(command):
    """Every flag the reference shows is an option of the command (run options: train only)."""
    options = _options(main.commands[command])
    rows = [line for line in hyperparameters_markdown().splitlines() if line.startswith("| `")]
    run_options = {f"`{name}`" for name in RunOptions.__dataclass_fields__}
    for row in rows:
        name, flag = row.split(" | ")[:2]
        if command == "tune" and name.strip("| ") in run_options:
            continue
        assert set(FLAG.findall(flag)) <= options, f"{row}: not an option of `textclf {command}`"


@pytest.mark.parametrize("command", sorted(main.commands))
def test_command_page_matches_its_help(command):
    """docs/commands/<command>.md lists every option, no other, with the default --help shows."""
    page = DOCS / "commands" / f"{command}.md"
    assert page.exists(), f"{page.relative_to(ROOT)} is missing: every command gets a page"
    text = page.read_text(encoding="utf-8")
    cmd = main.commands[command]
    if isinstance(cmd, click.Group):  # `textclf sagemaker`: the page lists its subcommands' options
        cmd = click.Command(command, params=[p for sub in cmd.commands.values() for p in sub.params])
    options = _options(cmd)
    generated = set(FLAG.findall(REFERENCE.read_text(encoding="utf-8"))) if "../hyperparameters.md" in text else set()
    rows = {flag: row for row in _option_rows(text) for flag in FLAG.findall(row[0])}
    unknown = sorted(set(rows) - options)
    assert not unknown, f"{page.name}: {unknown} are not options of `textclf {command}`"
    ctx = click.Context(cmd)
    for param in cmd.params:
        if not isinstance(param, click.Option) or "--help" in param.opts:
            continue
        flag = next(o for o in param.opts if o.startswith("--"))
        if flag not in rows:
            assert flag in generated, f"{page.name}: {flag} of `textclf {command}` is not in its options table"
            continue
        help_text = param.get_help_record(ctx)[1]
        cell = rows[flag][1].replace("`", "")
        shown = DEFAULT.findall(help_text)
        if shown:
            assert shown[-1].strip() in cell, f"{page.name}: {flag} defaults to {shown[-1]!r} in --help, not {cell!r}"
        if help_text.endswith("[required]"):
            assert cell == "required", f"{page.name}: {flag} is required; its default cell says {cell!r}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_at_existing_files(page):
    text = _without_code(page.read_text(encoding="utf-8"))
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        assert resolved.exists(), f"{page.relative_to(ROOT)}: link {target!r} points at no file"
        if anchor and resolved.suffix == ".md":
            anchors = {_slug(h) for h in re.findall(r"^#+ (.+)$", resolved.read_text(encoding="utf-8"), re.M)}
            assert anchor in anchors, f"{page.relative_to(ROOT)}: link {target!r}: no such heading"


def _options(command: click.Command) -> set[str]:
    return {o for p in command.params for o in (*p.opts, *getattr(p, "secondary_opts", [])) if o.startswith("--")}


def _option_rows(text: str) -> list[list[str]]:
    """The cells of every table row whose first cell is a flag: ``| `--flag X` | default | meaning |``."""
    rows = []
    for line in text.splitlines():
        if line.startswith("| `--"):
            rows.append([c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
    return rows


def _without_code(text: str) -> str:
    return re.sub(r"```.*?```", "", text, flags=re.S)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")
