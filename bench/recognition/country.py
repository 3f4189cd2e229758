"""Country and layout of plate reads, scored per country: synthetic crops, the simulator's
lane frames and the real sets whose label names the country.

    .venv/bin/python bench/recognition/country.py [--synthetic 30] [--sim 10] [--limit 100]
        [--data ../shared/data/plates] [--out bench/recognition/RESULTS-country.md]

Synthetic: seeded one- and two-row crops per country (``edge.devtools.synth``, degradation
0.5, as ``run.py`` draws them; no CN: OpenCV has no CJK font). Simulator: the lane
simulator's 960x540 frames (``simulators.render``), a vehicle per plate at mid distance, KZ
trailers included. Real: the sets in ``../shared/data/plates`` (evaluation only, read in place,
an even spread of ``--limit`` per set); the label's country is what a read should say: CN,
UZ, KZ, RU, BY as labelled, ``EU`` or any EU member's code for the European scenes, BR for the
Brazilian, ``unknown`` for the US scenes (no country of the lane's). Skipped, with a line
saying so, when the folder is absent.

The top plate of each image is scored. country: the read's country is the label's (an image
with no plate read counts as wrong); layout: one-row / two-row / trailer as drawn (synthetic
and simulator only; the real labels do not say). Confidence bins show how often a country
said with that confidence is right.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import os
import platform
import random
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from edge.config import RecognitionConfig  # noqa: E402
from edge.devtools import synth  # noqa: E402
from edge.recognize.grammar import score_key  # noqa: E402
from edge.recognize.origin import UNKNOWN, country_right  # noqa: E402
from edge.recognize.pipeline import PlateRecognizer  # noqa: E402
from simulators.render import SceneVehicle, make_plate, render_scene  # noqa: E402

SYNTH_COUNTRIES = ("KZ", "RU", "UZ", "KG", "TM", "EU")
SIM_COUNTRIES = ("KZ", "RU", "UZ", "KG", "EU")
SYNTH_SEED = 5
SIM_SEED = 3
# Real sets and the country their label implies (None: the manifest's own column).
REAL_SETS = {
    "uz_crops": None,
    "lprnet_cn_crops": None,
    "nomeroff_crops": None,
    "openalpr_eu": "EU",
    "openalpr_br": "BR",
    "openalpr_us": UNKNOWN,
}
BINS = (0.0, 0.5, 0.7, 0.9, 0.99, 1.01)


@dataclass(frozen=True, slots=True)
class Scored:
    """The top plate of one image against its label."""

    country: str | None  # None: no plate read
    confidence: float
    country_right: bool
    layout_right: bool | None  # None: the label does not say
    exact: bool


@dataclass(frozen=True, slots=True)
class Item:
    group: str  # the table row: synthetic 1-row KZ, real uz_crops ...
    image: np.ndarray
    plate: str
    country: str
    layout: str | None


def synthetic_items(count: int) -> list[Item]:
    rng = np.random.default_rng(SYNTH_SEED)
    items = []
    for rows in (1, 2):
        for country in SYNTH_COUNTRIES:
            for _ in range(count):
                plate = synth.make_plate(rng, country, rows)
                image = synth.degrade(rng, plate.image, level=0.5)
                layout = "one-row" if rows == 1 else "two-row"  # synth draws no trailers
                group = f"synthetic {rows}-row {country}"
                items.append(Item(group, image, plate.text, country, layout))
    return items


def sim_items(count: int) -> list[Item]:
    rng = random.Random(SIM_SEED)
    now = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
    items = []
    for country in (*SIM_COUNTRIES, "KZ trailer"):
        trailer = country == "KZ trailer"
        for _ in range(count):
            plate = make_plate("KZ" if trailer else country, rng, trailer=trailer)
            vehicle = SceneVehicle(plate, (90, 90, 160), 0.6, view="rear" if trailer else "front")
            image = render_scene(vehicle, now=now, rng=rng)
            layout = "trailer" if trailer else "one-row"
            items.append(Item(f"simulator {country}", image, plate.text, plate.country, layout))
    return items


def real_items(data: Path, limit: int) -> list[Item]:
    items = []
    for source, implied in REAL_SETS.items():
        manifest = data / source / "manifest.csv"
        if not manifest.is_file():
            continue
        with manifest.open(encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        if limit and len(rows) > limit:
            rows = [rows[i] for i in np.linspace(0, len(rows) - 1, limit).astype(int)]
        for row in rows:
            image = cv2.imread(str(data / source / row["file"]))
            if image is None:
                continue
            country = implied or row["country"]
            items.append(Item(f"real {source}", image, row["plate"], country, None))
    return items


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic", type=int, default=30, help="crops per country and rows")
    parser.add_argument("--sim", type=int, default=10, help="simulator frames per country")
    parser.add_argument("--limit", type=int, default=100, help="images per real set")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "plates")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("RESULTS-country.md"))
    args = parser.parse_args()
    command = " ".join([".venv/bin/python", "bench/recognition/country.py", *sys.argv[1:]])
    items = synthetic_items(args.synthetic) + sim_items(args.sim)
    if args.data.is_dir():
        items += real_items(args.data, args.limit)
    else:
        print(f"real sets skipped: evaluation data {args.data} is absent")
    recognizer = PlateRecognizer(RecognitionConfig(), threads=0)
    groups: dict[str, list[Scored]] = defaultdict(list)
    started = time.time()
    for item in items:
        plates = recognizer.read(item.image)
        top = plates[0] if plates else None
        groups[item.group].append(
            Scored(
                country=top.country if top else None,
                confidence=top.country_confidence if top else 0.0,
                country_right=country_right(item.country, top.country if top else None),
                layout_right=None
                if item.layout is None
                else bool(top and top.layout == item.layout),
                exact=top is not None and score_key(top.text) == score_key(item.plate),
            )
        )
    report = render(groups, command, time.time() - started, len(items))
    args.out.write_text(report, encoding="utf-8")
    print(report)
    return 0


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "-"


def render(groups: dict[str, list[Scored]], command: str, seconds: float, n: int) -> str:
    lines = [
        "# Country and layout of plate reads",
        "",
        f"Command: `{command}`  ",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {platform.machine()}, "
        f"{os.cpu_count()} CPUs; {n} images in {seconds:.0f} s. The top plate of each image; "
        "an image with no plate read counts as wrong.",
        "",
        "| set | n | text exact | country right | layout right | country said (most) | "
        "mean confidence right / wrong |",
        "|---|---|---|---|---|---|---|",
    ]
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    every: list[tuple[float, bool]] = []
    for group, results in groups.items():
        count = len(results)
        right = sum(r.country_right for r in results)
        exact = sum(r.exact for r in results)
        layouts = [r.layout_right for r in results if r.layout_right is not None]
        said: dict[str, int] = defaultdict(int)
        for r in results:
            said[r.country or "no plate"] += 1
        most = ", ".join(f"{c} {k}" for c, k in sorted(said.items(), key=lambda kv: -kv[1])[:3])
        sure = [r.confidence for r in results if r.country_right]
        unsure = [r.confidence for r in results if r.country is not None and not r.country_right]
        mean = f"{np.mean(sure):.2f}" if sure else "-", f"{np.mean(unsure):.2f}" if unsure else "-"
        lines.append(
            f"| {group} | {count} | {_pct(exact, count)} | {_pct(right, count)} | "
            f"{_pct(sum(layouts), len(layouts))} | {most} | {mean[0]} / {mean[1]} |"
        )
        kind = group.split()[0]
        totals[kind][0] += right
        totals[kind][1] += count
        every += [(r.confidence, r.country_right) for r in results if r.country is not None]
    lines += ["", "| all of | n | country right |", "|---|---|---|"]
    for kind, (right, count) in totals.items():
        lines.append(f"| {kind} | {count} | {_pct(right, count)} |")
    lines += [
        "",
        "Country confidence against how often the country was right (every image with a read):",
        "",
        "| confidence | reads | country right |",
        "|---|---|---|",
    ]
    for low, high in itertools.pairwise(BINS):
        inside = [ok for conf, ok in every if low <= conf < high]
        label = f"{low:.2f}-{min(high, 1.0):.2f}"
        lines.append(f"| {label} | {len(inside)} | {_pct(sum(inside), len(inside))} |")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
