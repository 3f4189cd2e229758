"""The site description and the ingest config go through the lane config's bounded loader:
hostile YAML is a placed ConfigError, never a traceback, and a second block never wins."""

from __future__ import annotations

import pytest

from edge.broker import parse_site
from edge.errors import ConfigError
from edge.site.config import parse_ingest_config

HOSTILE = {
    "NUL": "checkpoint: KZ\x00\n",
    "deep": "a: " + "[" * 10_000 + "]" * 10_000 + "\n",
    "duplicate": "checkpoint: KZ\ncheckpoint: UZ\n",
}


@pytest.mark.parametrize("parse", [parse_site, parse_ingest_config], ids=["site", "ingest"])
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_yaml_is_a_placed_config_error(parse: object, case: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(HOSTILE[case], source="f.yaml")  # type: ignore[operator]
    problem = caught.value.problems[0]
    assert problem.file == "f.yaml" and problem.line is not None, problem
    if case == "duplicate":
        assert problem.line == 2 and "checkpoint" in str(problem)
