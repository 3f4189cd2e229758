"""The region-cell pass on the simulator's own frames: cells on vs off, interleaved.

    .venv/bin/python bench/recognition/sim_frames.py [--plates 20] [--out FILE]

The lane score (``lane score``) reads the simulated cameras' 960x540 frames, whose UZ and KG
plates carry the region code in line, full size, not in a small frame. What the cell pass
costs there decides how many frames of a short view the agent gets to read. Both
configurations load in one process and take turns frame by frame on the same seeded frames
(a plate at three distances per vehicle), so a busy moment of a shared machine hits both
alike: compare the two columns of one run, not runs.
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
RESULTS = "RESULTS-sim-frames.md"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plates", type=int, default=20, help="vehicles per country")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name(RESULTS))
    args = parser.parse_args()
    engines = {
        "cells on": PlateRecognizer(RecognitionConfig()),
        "cells off": PlateRecognizer(RecognitionConfig(region_cells=False)),
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
        rows.append((country, frames, right, {n: statistics.median(v) for n, v in ms.items()}))
    lines = [
        "# Region-cell pass on simulated lane frames",
        "",
        f"Command: `.venv/bin/python bench/recognition/sim_frames.py --plates {args.plates}`  ",
        f"Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; machine: {platform.machine()}, "
        "onnxruntime CPU provider. Frames: `simulators.render.render_scene` 960x540, seed "
        f"{SEED}, {len(POSITIONS)} distances per plate; both configurations in one process, "
        "taking turns frame by frame.",
        "",
        "| country | frames | exact, cells on | exact, cells off | median ms, cells on "
        "| median ms, cells off | on / off |",
        "|---|---|---|---|---|---|---|",
    ]
    for country, frames, right, median in rows:
        on, off = median["cells on"], median["cells off"]
        lines.append(
            f"| {country} | {frames} | {right['cells on']} | {right['cells off']} "
            f"| {on:.1f} | {off:.1f} | {on / off:.2f} |"
        )
    text = "\n".join(lines) + "\n"
    args.out.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
