"""Every `lane` command's description and examples, in one place.

``document(parser)`` walks the parser tree once it is built: each command gets a description
(its one-line help, unless it has a longer one) and an ``examples:`` epilog from ``EXAMPLES``.
tests/unit/test_cli_help.py fails for a command without examples or an argument without help,
so a new command cannot ship undocumented.
"""

from __future__ import annotations

import argparse

CONFIG = "/etc/lane-agent/lane-T1.yaml"

EXAMPLES: dict[str, tuple[str, ...]] = {
    "run": (f"lane run --config {CONFIG}", "systemctl start lane@T1   # the same, under systemd"),
    "config": ("lane config check --secrets skip config/truck-lane.yaml",),
    "config check": (
        "lane config check --secrets skip config/truck-lane.yaml config/car-lane.yaml",
        f"lane config check {CONFIG}   # on the controller, secrets in place",
    ),
    "config schema": ("lane config schema   # JSON Schema on stdout, for editors",),
    "outbox": (f"lane outbox stats --config {CONFIG}",),
    "outbox stats": (f"lane outbox stats --config {CONFIG} --json",),
    "events": (f"lane events tail --config {CONFIG}",),
    "events tail": (f"lane events tail --config {CONFIG} -n 50", "lane events tail -c F --json"),
    "contract": ("lane contract export --check",),
    "contract export": ("lane contract export", "lane contract export --check   # CI: drift?"),
    "install": (
        "sudo lane install",
        "sudo python3 -m edge.install --wheelhouse build/wheelhouse   # offline",
    ),
    "uninstall": ("sudo lane uninstall",),
    "demo": ("lane demo", "lane demo --vehicles 4 --speedup 4"),
    "score": (
        "lane score --vehicles 20 --speedup 4",
        "lane score --scenario simulators/scenarios/default.yaml --json",
    ),
    "broker": ("lane broker certs --site config/broker/site.example.yaml --out /etc/mosquitto",),
    "broker certs": (
        "lane broker certs --site site.yaml --out /etc/mosquitto/lane-agent --group mosquitto",
        "lane broker certs --site site.yaml --out DIR --renew   # reissue everything",
    ),
    "ingest": (
        "lane ingest --config /etc/lane-agent/ingest.yaml",
        "lane --log-level DEBUG ingest -c F   # every gap, request and reply in the log",
    ),
    "ingest status": (
        "lane ingest status --config /etc/lane-agent/ingest.yaml",
        "lane ingest status -c F --json",
    ),
    "ingest query": (
        "lane ingest query --config /etc/lane-agent/ingest.yaml --plate 01A123BC",
        "lane ingest query -c F --lane KZ-01/T1 --since 2026-12-01T06:00Z --json",
    ),
    "ingest forward": ("lane ingest forward --config /etc/lane-agent/ingest.yaml",),
    "checkpoint": ("lane checkpoint score --lanes 6 --vehicles 40 --chaos --json",),
    "checkpoint sim": (
        "lane checkpoint sim --lanes 3 --vehicles 10",
        "LANE_CHECKPOINT_DSN='host=127.0.0.1 user=postgres' lane checkpoint sim --lanes 6"
        " --vehicles 40 --speedup 4",
    ),
    "checkpoint score": (
        "lane checkpoint score --lanes 6 --vehicles 40 --chaos --json",
        "lane checkpoint score --lanes 2 --vehicles 5 --seed 7 --workdir /tmp/cp   # keep logs",
        "lane checkpoint score --lanes 2 --vehicles 4 --faults broker_sigkill,ingest_sigkill",
    ),
    "recognize": (
        "lane recognize snapshot.jpg",
        "lane recognize --samples   # self-test with the plates shipped in the package",
        "lane recognize frames/ --json --countries KZ,RU",
    ),
    "sim": (
        "lane sim --scenario simulators/scenarios/default.yaml --config-out sim-lane.yaml",
        "lane sim -s simulators/scenarios/default.yaml --config-out sim-lane.yaml "
        "--wait-for-agent --broker 127.0.0.1:1883   # then: lane run -c sim-lane.yaml",
        "lane sim -s simulators/scenarios/default.yaml --plan",
    ),
    "diag": (f"lane diag status --config {CONFIG}",),
    "diag status": (f"lane diag status --config {CONFIG}", "lane diag status -c F --json"),
    "diag probe": (f"lane diag probe --config {CONFIG} scale", "lane diag probe -c F rpm --json"),
    "diag watch": (f"lane diag watch --config {CONFIG} scale",),
    "diag outbox": (f"lane diag outbox list --config {CONFIG} --rejected",),
    "diag outbox stats": (f"lane diag outbox stats --config {CONFIG}",),
    "diag outbox list": (
        f"lane diag outbox list --config {CONFIG}",
        "lane diag outbox list -c F --rejected --json",
    ),
    "diag outbox requeue": (f"lane diag outbox requeue --config {CONFIG}",),
    "diag outbox export": (f"lane diag outbox export --config {CONFIG} --out rows.jsonl",),
    "diag mqtt": (f"lane diag mqtt check --config {CONFIG}",),
    "diag mqtt check": (
        f"lane diag mqtt check --config {CONFIG}",
        "lane diag mqtt check -c F --json",
    ),
    "diag scale": (f"lane diag scale --config {CONFIG} zero",),
    "diag barrier": (f"lane diag barrier --config {CONFIG} open",),
    "diag camera": (f"lane diag camera snapshot --config {CONFIG} front --out front.jpg",),
    "diag camera snapshot": (f"lane diag camera snapshot --config {CONFIG} front --out front.jpg",),
    "diag camera overlay": (
        f"lane diag camera overlay --config {CONFIG}",
        "lane diag camera overlay -c F cam_front --json",
    ),
    "diag bundle": (f"lane diag bundle --config {CONFIG} --out /tmp/lane-T1-support.tar.gz",),
    "diag explain": (
        f"lane events tail --config {CONFIG}   # take a crossing id from here",
        f"lane diag explain --config {CONFIG} 0193a0e2-...",
    ),
}


def commands(
    parser: argparse.ArgumentParser, path: str = ""
) -> list[tuple[str, argparse.ArgumentParser, str | None]]:
    """Every command under ``parser``: (its words, its parser, its one-line help)."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                words = f"{path} {name}".strip()
                found.append((words, sub, helps.get(name)))
                found += commands(sub, words)
    return found


def document(parser: argparse.ArgumentParser) -> None:
    for words, sub, one_line in commands(parser):
        if not sub.description and one_line:
            sub.description = one_line[0].upper() + one_line[1:] + "."
        examples = EXAMPLES.get(words)
        if examples and not sub.epilog:
            sub.epilog = "examples:\n" + "\n".join(f"  {line}" for line in examples)
        sub.formatter_class = argparse.RawDescriptionHelpFormatter
