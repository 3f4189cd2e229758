"""Every recipe in README.md and docs/ is checked against the code (issue 24, item 8).

A recipe is a command line in a fenced block (not python/yaml/json/text). Every `lane ...`
line must parse with the real `lane` parser, every `make X` must name a Makefile target, and
the commands that need no device, broker or root are run for real.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from edge.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NOT_SHELL = {"python", "yaml", "json", "text", "toml", "ini", "jsonl"}
# Run for real: quick, no device, no broker, no root.
RUN = (
    "lane --version",
    "lane config check",
    "lane contract export --check",
    "lane recognize --samples",
    "lane sim --scenario simulators/scenarios/default.yaml --plan",
)


def recipes() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        for lang, block in re.findall(r"^```(\w*)\n(.*?)^```", doc.read_text(), re.S | re.M):
            if lang in NOT_SHELL:
                continue
            for line in block.splitlines():
                command = re.sub(r"^(\$ |sudo )+", "", line.split(" #")[0].strip())
                command = command.replace(".venv/bin/lane ", "lane ")
                if command.startswith(("lane ", "make ")):
                    found.append((doc.name, command))
    return found


RECIPES = recipes()
TARGETS = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))


def test_the_docs_have_recipes() -> None:
    assert len(RECIPES) >= 10


@pytest.mark.parametrize(("doc", "command"), RECIPES, ids=[f"{d}:{c}" for d, c in RECIPES])
def test_a_documented_command_exists(doc: str, command: str) -> None:
    words = shlex.split(command)
    if words[0] == "make":
        missing = [w for w in words[1:] if "=" not in w and not w.startswith("-")]
        assert set(missing) <= TARGETS, f"{doc}: no Makefile target for {command!r}"
        return
    try:
        build_parser().parse_args(words[1:])
    except SystemExit as exc:  # --version and --help exit 0 by design
        if exc.code:
            pytest.fail(f"{doc}: `{command}` does not parse (exit {exc.code})")


@pytest.mark.parametrize(
    ("doc", "command"),
    [(d, c) for d, c in RECIPES if c.startswith(RUN)],
    ids=[f"{d}:{c}" for d, c in RECIPES if c.startswith(RUN)],
)
def test_a_documented_command_that_needs_no_device_runs(doc: str, command: str) -> None:
    words = shlex.split(command)
    result = subprocess.run(
        [sys.executable, "-m", "edge", *words[1:]],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"{doc}: `{command}`\n{result.stdout}{result.stderr}"
