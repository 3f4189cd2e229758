"""A recognition pass on the simulator's own frames, on vs off, interleaved.

    .venv/bin/python bench/recognition/sim_frames.py [--plates 20] [--switch cells|rereads]

The lane score (``lane score``) reads the simulated cameras' 960x540 frames, whose UZ and KG
plates carry the region code in line, full size, not in a small frame. What the cell pass
costs there decides how many frames of a short view the agent gets to read. Both
configurations load in one process and take turns frame by frame on the same seeded frames
(a plate at three distances per vehicle), so a busy moment of a shared machine hits both
alike: compare the two columns of one run, not runs. ``--switch rereads`` measures the
re-reads of unsure frames the same way (``RESULTS-sim-frames-rereads.md``).
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from edge.config import RecognitionConfig  # noqa: E402
from edge.recognize.pipeline import PlateRecognizer  # noqa: E402
from simulators.render import SceneVehicle, make_plate, render_scene  # noqa: E402

COUNTRIES = ("UZ", "KG", "KZ", "RU", "EU")
POSITIONS = (0.3, 0.6, 0.9)  # far, middle, near
SEED = 3
# --switch: the RecognitionConfig field turned off, the results file, the title.
SWITCHES = {
    "cells": ("region_cells", "RESULTS-sim-frames.md", "Region-cell pass"),
    "rereads": ("rereads", "RESULTS-sim-frames-rereads.md", "Re-reads of unsure frames"),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plates", type=int, default=20, help="vehicles per country")
    parser.add_argument("--switch", choices=sorted(SWITCHES), default="cells")
    parser.add_argument("--out", type=Path, help="default: the switch's RESULTS file here")
    args = parser.parse_args()
    field, results, title = SWITCHES[args.switch]
    out = args.out or Path(__file__).with_name(results)
    engines = {
        "on": PlateRecognizer(RecognitionConfig()),
        "off": PlateRecognizer(RecognitionConfig(**{field: False})),
    }
    rng = random.Random(SEED)
    now = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
    rows = []
    for country in COUNTRIES:
        ms: dict[str, list[float]] = {name: [] for name in engines}
        right = dict.fromkeys(engines, 0)
        frames = 0
        for _ in range(args.plates):
            plate = make_plate(country, rng)
            for position in POSITIONS:
                vehicle = SceneVehicle(plate, (120, 30, 30), position)
                image = render_scene(vehicle, now=now, rng=rng)
                frames += 1
                order = list(engines) if frames % 2 else list(engines)[::-1]
                for name in order:
                    start = time.perf_counter()
                    plates = engines[name].read(image)
                    ms[name].append((time.perf_counter() - start) * 1000.0)
                    right[name] += bool(plates) and plates[0].text == plate.rendered
        rows.append((country, frames, right, ms))
    switch = f" --switch {args.switch}" if args.switch != "cells" else ""
    lines = [
        f"# {title} on simulated lane frames",
        "",
        "Command: `.venv/bin/python bench/recognition/sim_frames.py "
        f"--plates {args.plates}{switch}`  ",
        f"Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; machine: {platform.machine()}, "
        "onnxruntime CPU provider. Frames: `simulators.render.render_scene` 960x540, seed "
        f"{SEED}, {len(POSITIONS)} distances per plate; both configurations in one process, "
        "taking turns frame by frame.",
        "",
        f"| country | frames | exact, {args.switch} on | exact, off | median ms, on "
        "| median ms, off | on / off | mean ms, on | mean ms, off |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for country, frames, right, ms in rows:
        on, off = statistics.median(ms["on"]), statistics.median(ms["off"])
        lines.append(
            f"| {country} | {frames} | {right['on']} | {right['off']} "
            f"| {on:.1f} | {off:.1f} | {on / off:.2f} "
            f"| {statistics.fmean(ms['on']):.1f} | {statistics.fmean(ms['off']):.1f} |"
        )
    text = "\n".join(lines) + "\n"
    out.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
