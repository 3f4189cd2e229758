"""The runtime imports no developer tooling (issue 21 item 9).

`lane run` and `lane ingest` load nothing from ``edge.devtools`` (harness, demo, score, the
simulated checkpoint, the test subscriber, synthetic plates) or ``simulators``: a controller
whose wheel leaves them out (``LANE_AGENT_WHEEL=runtime``, setup.py) runs the same code. Two
checks: what a fresh interpreter has in ``sys.modules`` after importing the runtime entry
points and building the `lane run --help` parser, and every import statement in the runtime's
source, including the ones inside functions that only run later.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEVELOPER = ("edge.devtools", "simulators")

RUNTIME_ENTRIES = [
    "edge.lane",
    "edge.cli",
    "edge.site.ingest",
    "edge.site.central",
    "edge.site.forward",
]

# The developer commands' functions: the only places in edge/cli that may import the tooling,
# and only inside the function (so building the parser never does).
CLI_DEVELOPER_FUNCTIONS = {
    "edge/cli/__init__.py": {"cmd_demo", "cmd_score"},
    "edge/cli/checkpoint.py": {"cmd_checkpoint", "_progress"},
    "edge/cli/sim.py": {"cmd_sim", "_agent_ready"},
}

PROBE = """
import contextlib, importlib, io, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
from edge.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
    main(["run", "--help"])
print(json.dumps(sorted(sys.modules)))
"""


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter of this venv, run from the checkout."""
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _loaded_after(modules: list[str]) -> set[str]:
    done = _python(PROBE, *modules)
    assert done.returncode == 0, done.stderr[-2000:]
    return set(json.loads(done.stdout.splitlines()[-1]))


def _developer(modules: set[str]) -> set[str]:
    return {m for m in modules if m in DEVELOPER or m.startswith(tuple(f"{d}." for d in DEVELOPER))}


def test_the_runtime_entry_points_load_no_developer_tooling() -> None:
    loaded = _loaded_after(RUNTIME_ENTRIES)
    assert {"edge.lane", "edge.site.ingest", "edge.publish", "edge.cli.sim"} <= loaded
    assert _developer(loaded) == set()


def test_the_probe_sees_developer_tooling_when_it_is_loaded() -> None:
    loaded = _loaded_after([*RUNTIME_ENTRIES, "edge.devtools.score"])
    assert {"edge.devtools.score", "edge.devtools.harness", "edge.devtools.subscriber"} <= (
        _developer(loaded)
    )


def _is_developer(node: ast.Import | ast.ImportFrom) -> bool:
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif node.level == 0 and node.module is not None:
        names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    else:  # relative: not used in this project, and never into the tooling
        return False
    return any(n in DEVELOPER or n.startswith(tuple(f"{d}." for d in DEVELOPER)) for n in names)


def developer_imports(path: Path) -> list[tuple[int, str | None]]:
    """Each import of the tooling in ``path``: its line and the top-level function it is in
    (None at module or class level)."""
    found: list[tuple[int, str | None]] = []

    def visit(node: ast.AST, function: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom) and _is_developer(child):
                found.append((child.lineno, function))
            inner = function
            if function is None and isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                inner = child.name
            visit(child, inner)

    visit(ast.parse(path.read_text(), filename=str(path)), None)
    return found


def test_no_runtime_module_imports_developer_tooling() -> None:
    wrong: list[str] = []
    for path in sorted([*ROOT.glob("edge/**/*.py"), *ROOT.glob("drivers/**/*.py")]):
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith("edge/devtools/"):
            continue
        allowed = CLI_DEVELOPER_FUNCTIONS.get(relative, set())
        for line, function in developer_imports(path):
            if function not in allowed:
                where = f"in {function}()" if function else "at module level"
                wrong.append(f"{relative}:{line}: imports developer tooling {where}")
    assert wrong == []


def test_the_import_check_finds_a_lazy_import(tmp_path: Path) -> None:
    module = tmp_path / "mod.py"
    module.write_text(
        "import json\n"
        "from edge.devtools import synth\n"
        "def run():\n"
        "    from simulators.scenario import Scenario\n"
        "    def inner():\n"
        "        import edge.devtools.score\n"
        "class C:\n"
        "    from edge.lane import LaneAgent\n"
    )
    assert developer_imports(module) == [(2, None), (4, "run"), (6, "run")]


@pytest.mark.parametrize("relative", sorted(CLI_DEVELOPER_FUNCTIONS))
def test_the_allowed_cli_functions_exist(relative: str) -> None:
    tree = ast.parse((ROOT / relative).read_text())
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    assert CLI_DEVELOPER_FUNCTIONS[relative] <= defined


# An install without the tooling, played by blocking its packages (an import then raises
# ModuleNotFoundError, as from a runtime-only wheel; tests/ops/test_runtime_wheel.py builds one).
WITHOUT_TOOLING = """
import contextlib, io, json, sys
sys.modules["edge.devtools"] = None
sys.modules["simulators"] = None
from edge.cli import main
results = []
for args in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(args)
        except SystemExit as exc:
            code = exc.code
    results.append({"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()})
print(json.dumps(results))
"""

DEVELOPER_COMMANDS = [
    (["demo", "--vehicles", "1"], "edge.devtools"),
    (["score", "--vehicles", "1"], "edge.devtools"),
    (["sim", "--scenario", "simulators/scenarios/default.yaml", "--plan"], "simulators"),
    (["checkpoint", "sim", "--lanes", "1"], "edge.devtools"),
]


def test_without_the_tooling_lane_run_works_and_each_developer_command_says_so() -> None:
    commands = [["run", "--help"], *(args for args, _ in DEVELOPER_COMMANDS)]
    done = _python(WITHOUT_TOOLING, json.dumps(commands))
    assert done.returncode == 0, done.stderr[-2000:]
    run_help, *developer = json.loads(done.stdout.splitlines()[-1])
    assert run_help["code"] == 0 and "--config" in run_help["stdout"], run_help
    for (args, missing), result in zip(DEVELOPER_COMMANDS, developer, strict=True):
        assert result["code"] == 1, (args, result)
        said = result["stderr"]
        assert f"`lane {args[0]}` is developer tooling that this install leaves out" in said
        assert f"(no {missing}:" in said and "Traceback" not in said, said
