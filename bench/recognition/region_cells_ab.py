"""A/B of the UZ/KG region-cell pass on seeded synthetic one-row plates, same recogniser.

    .venv/bin/python -m bench.recognition.region_cells_ab [--per-country 30]

Prints exact matches per country and the median latency with the pass off and on.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from edge.config import RecognitionConfig
from edge.recognize import region, synth
from edge.recognize.pipeline import PlateRecognizer
from edge.score import normalise

COUNTRIES = ("KZ", "RU", "EU", "UZ", "KG")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--per-country", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    recognizer = PlateRecognizer(RecognitionConfig())
    rng = np.random.default_rng(args.seed)
    plates = []
    for country in COUNTRIES:
        for _ in range(args.per_country):
            plate = synth.make_plate(rng, country, 1)
            plates.append((country, plate.text, synth.degrade(rng, plate.image, level=0.5)))
    for name, layouts in (("off", []), ("on", region.cell_layouts())):
        recognizer._cell_layouts = layouts
        right = dict.fromkeys(COUNTRIES, 0)
        latencies = []
        for country, text, image in plates:
            start = time.perf_counter()
            found = recognizer.read(image)
            latencies.append((time.perf_counter() - start) * 1000)
            right[country] += bool(found) and normalise(found[0].text) == normalise(text)
        counts = ", ".join(f"{c} {right[c]}/{args.per_country}" for c in COUNTRIES)
        print(f"region cells {name}: {counts}; median {np.median(latencies):.0f} ms")


if __name__ == "__main__":
    main()
