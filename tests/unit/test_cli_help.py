"""Every `lane` command explains itself: a description, its arguments, examples that parse."""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

import pytest

from edge.cli import build_parser, main
from edge.cli.help import commands
from edge.events import agent_version

PARSER = build_parser()
COMMANDS = commands(PARSER)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"lane {agent_version()}"


@pytest.mark.parametrize(("words", "parser"), [(w, p) for w, p, _h in COMMANDS], ids=str)
def test_every_command_has_a_description_explained_arguments_and_examples(
    words: str, parser: argparse.ArgumentParser
) -> None:
    assert parser.description, f"lane {words}: no description"
    assert parser.epilog and parser.epilog.startswith("examples:"), f"lane {words}: no example"
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            continue
        assert action.help, f"lane {words}: {action.option_strings or action.dest} unexplained"
    assert "examples:" in parser.format_help()


@pytest.mark.parametrize(("words", "parser"), [(w, p) for w, p, _h in COMMANDS], ids=str)
def test_every_example_parses(words: str, parser: argparse.ArgumentParser) -> None:
    assert parser.epilog is not None
    for line in parser.epilog.splitlines()[1:]:
        example = line.split("#")[0].strip()
        if not example.startswith("lane "):
            continue  # systemctl, python3 -m edge.install ...
        try:
            PARSER.parse_args(shlex.split(example)[1:])
        except SystemExit as exc:
            pytest.fail(f"lane {words}: example does not parse ({exc}): {example}")


def test_config_check_json_places_each_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("checkpoint: KZ\nlane: T1\nmqtt:\n  prot: 5\n")
    assert main(["config", "check", "--json", str(bad)]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and report["file"] == str(bad)
    assert any(p["line"] == 4 and "prot" in p["path"] for p in report["problems"]), report
