"""Plate recognition benchmark: this pipeline vs rapidocr (PP-OCRv4) vs Tesseract, same images.

    .venv/bin/python bench/recognition/run.py [--data ../shared/data/plates] [--limit N]
        [--engines ours,rapidocr,tesseract] [--out bench/recognition/RESULTS.md]

Each engine runs in its own child process (so peak memory is its own) over the same list of
images: the real labelled sets in ``../shared/data/plates`` (evaluation only, read in place)
and seeded synthetic one- and two-row plates written to a temporary folder. Scoring follows
the data's README: upper case, Cyrillic look-alikes to Latin, only A-Z0-9 compared; CN
province glyphs scored separately. Baselines: rapidocr on the whole image and Tesseract
``--psm 11``, each keeping its best plate-like line (4..10 glyphs, at least one digit).
Needs: ``pip install -e '.[bench]'`` and ``apt-get install -y tesseract-ocr``.
"""

from __future__ import annotations

import argparse
import atexit
import csv
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from edge.fusion.plates import edit_distance  # noqa: E402
from edge.recognize.grammar import CN_PROVINCES, score_key  # noqa: E402

SOURCES = ("openalpr_eu", "openalpr_us", "openalpr_br", "uz_crops", "lprnet_cn_crops",
           "nomeroff_crops")  # fmt: skip
SYNTH_SEED = 5
FPS_FRAMES = 108  # every European scene, letterboxed to 1920x1080


# --- items -----------------------------------------------------------------------------------


def real_items(data: Path, limit: int | None) -> list[dict[str, Any]]:
    items = []
    for source in SOURCES:
        manifest = data / source / "manifest.csv"
        if not manifest.is_file():
            continue
        with manifest.open(encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        if limit and len(rows) > limit:
            # An even spread over the set, not its first files: names sort by province/region.
            rows = [rows[i] for i in np.linspace(0, len(rows) - 1, limit).astype(int)]
        try:
            kind = json.loads((data / source / "source.json").read_text())["kind"]
        except (OSError, ValueError, KeyError):
            kind = "scene"
        for row in rows:
            path = str(data / source / row["file"])
            items.append({"source": source, "kind": kind, "file": path, "plate": row["plate"]})
    return items


def synthetic_items(folder: Path, count: int) -> list[dict[str, Any]]:
    from edge.devtools import synth

    rng = np.random.default_rng(SYNTH_SEED)
    items = []
    countries = ("KZ", "RU", "UZ", "KG", "TM", "EU")
    for rows in (1, 2):
        for i in range(count):
            country = countries[i % len(countries)]
            plate = synth.make_plate(rng, country, rows)
            image = synth.degrade(rng, plate.image, level=0.5)
            path = folder / f"synth_{rows}row_{i:03d}_{plate.text}.png"
            cv2.imwrite(str(path), image)
            items.append(
                {
                    "source": f"synthetic_{rows}row",
                    "kind": "crop",
                    "file": str(path),
                    "plate": plate.text,
                }
            )
    return items


def fps_frames(items: list[dict[str, Any]], folder: Path) -> list[dict[str, Any]]:
    """Real scenes letterboxed to 1920x1080: the frame size the lane cameras deliver."""
    scenes = [i for i in items if i["source"] == "openalpr_eu"][:FPS_FRAMES]
    out = []
    for n, item in enumerate(scenes):
        image = cv2.imread(item["file"])
        h, w = image.shape[:2]
        scale = min(1920 / w, 1080 / h)
        resized = cv2.resize(image, (int(w * scale), int(h * scale)))
        frame = np.zeros((1080, 1920, 3), np.uint8)
        y, x = (1080 - resized.shape[0]) // 2, (1920 - resized.shape[1]) // 2
        frame[y : y + resized.shape[0], x : x + resized.shape[1]] = resized
        path = folder / f"frame1080_{n:02d}.jpg"
        cv2.imwrite(str(path), frame, [cv2.IMWRITE_JPEG_QUALITY, 92])
        out.append(
            {"source": "fps_1080p", "kind": "scene", "file": str(path), "plate": item["plate"]}
        )
    return out


# --- engines (run in a child process) --------------------------------------------------------


def plate_like(lines: list[tuple[str, float]]) -> str:
    """The baselines' answer: their most confident line that looks like a plate."""
    best, best_score = "", -1.0
    for text, score in lines:
        key = score_key(text)
        if 4 <= len(key) <= 10 and any(c.isdigit() for c in key) and score > best_score:
            province = next((c for c in text if c in CN_PROVINCES), "")
            best, best_score = province + key, score
    return best


def engine_ours(**options: Any) -> Any:
    from edge.config import RecognitionConfig
    from edge.recognize.pipeline import PlateRecognizer

    # The agent's defaults, min_confidence included: what it reports is what is scored (a
    # read it is too unsure of to report is no read).
    recognizer = PlateRecognizer(RecognitionConfig(**options))

    def read(image: np.ndarray, kind: str) -> str:
        plates = recognizer.read(image)
        return plates[0].text if plates else ""

    return read


def engine_rapidocr() -> Any:
    from rapidocr_onnxruntime import RapidOCR

    ocr = RapidOCR()

    def read(image: np.ndarray, kind: str) -> str:
        result, _ = ocr(image)
        found = plate_like([(r[1], float(r[2])) for r in result or []])
        if not found and kind == "crop":
            # A crop is the plate: when detection finds nothing in it (tiny CN crops), read the
            # whole crop as one line, as the 98 % CN baseline was measured.
            result, _ = ocr(image, use_det=False, use_cls=False)
            found = plate_like([(r[0], float(r[1])) for r in result or []])
        return found

    return read


def engine_tesseract() -> Any:
    binary = shutil.which("tesseract")
    if binary is None:
        raise SystemExit("tesseract is not installed: apt-get install -y tesseract-ocr")

    def read(image: np.ndarray, kind: str) -> str:
        _, png = cv2.imencode(".png", image)
        done = subprocess.run(
            [binary, "stdin", "stdout", "--psm", "11", "-l", "eng"],
            input=png.tobytes(),
            capture_output=True,
            timeout=60,
            check=False,
        )
        lines = done.stdout.decode("utf-8", "replace").splitlines()
        return plate_like([(line, float(len(score_key(line)))) for line in lines])

    return read


def engine_ours_no_cells() -> Any:
    """Ours with the UZ/KG region-cell pass off (``recognition.region_cells: false``)."""
    return engine_ours(region_cells=False)


def engine_ours_no_rereads() -> Any:
    """Ours without the re-reads of unsure frames (``recognition.rereads: false``)."""
    return engine_ours(rereads=False)


def engine_ours_unfolded() -> Any:
    """Ours on the package's own PP-OCRv4 files, before ``models/training/fold.py``: the peer
    the folded files' speed is measured against (same weights, same reads)."""
    import rapidocr_onnxruntime

    from edge.recognize.models import DEFAULT_MODEL_DIR, sha256_file

    package = Path(rapidocr_onnxruntime.__file__).parent / "models"
    folder = Path(tempfile.mkdtemp(prefix="unfolded-models-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    files = {
        "plate_det_ppocrv4": package / "ch_PP-OCRv4_det_infer.onnx",
        "plate_rec_ppocrv4": package / "ch_PP-OCRv4_rec_infer.onnx",
        "plate_cell": DEFAULT_MODEL_DIR / "plate_cell.onnx",
    }
    for name, source in files.items():
        shutil.copyfile(source, folder / f"{name}.onnx")
        manifest = json.loads((DEFAULT_MODEL_DIR / f"{name}.json").read_text(encoding="utf-8"))
        manifest["sha256"] = sha256_file(source)
        (folder / f"{name}.json").write_text(json.dumps(manifest), encoding="utf-8")
    return engine_ours(model_dir=folder)


ENGINES = {
    "ours": engine_ours,
    "ours_no_cells": engine_ours_no_cells,
    "ours_no_rereads": engine_ours_no_rereads,
    "rapidocr": engine_rapidocr,
    "tesseract": engine_tesseract,
    "ours_unfolded": engine_ours_unfolded,
}
DEFAULT_ENGINES = ("ours", "ours_no_rereads", "ours_no_cells", "rapidocr", "tesseract")


def missing_prerequisites(engines: list[str]) -> list[str]:
    """What the chosen engines need and this machine lacks, said before anything runs."""
    missing = [f"unknown engine {e!r} (known: {', '.join(ENGINES)})" for e in engines
               if e not in ENGINES]  # fmt: skip
    if "tesseract" in engines and shutil.which("tesseract") is None:
        missing.append("tesseract is not installed: apt-get install -y tesseract-ocr")
    if "rapidocr" in engines or "ours_unfolded" in engines:
        try:
            import rapidocr_onnxruntime  # noqa: F401
        except ImportError:
            missing.append(
                "rapidocr is not installed: .venv/bin/pip install --no-deps "
                "rapidocr-onnxruntime==1.4.4"
            )
    return missing


def worker(engine: str, items_path: Path, out_path: Path) -> None:
    items = json.loads(items_path.read_text(encoding="utf-8"))
    read = ENGINES[engine]()
    warm = cv2.imread(items[0]["file"])
    read(warm, items[0]["kind"])  # one warm-up, like the agent does at load
    results = []
    for item in items:
        image = cv2.imread(item["file"])
        start = time.perf_counter()
        text = read(image, item["kind"]) if image is not None else ""
        ms = (time.perf_counter() - start) * 1000.0
        results.append({**item, "read": text, "ms": ms})
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out_path.write_text(json.dumps({"results": results, "peak_rss_mib": peak_kib / 1024}))


# --- scoring ---------------------------------------------------------------------------------


def score(results: list[dict[str, Any]]) -> dict[str, Any]:
    exact = chars = province_right = province_total = 0
    for r in results:
        truth, read = score_key(r["plate"]), score_key(r["read"])
        exact += truth == read
        longest = max(len(truth), len(read), 1)
        chars += 1 - edit_distance(truth, read) / longest
        if r["plate"][:1] in CN_PROVINCES:
            province_total += 1
            province_right += r["read"][:1] == r["plate"][:1]
    times = sorted(r["ms"] for r in results)
    n = len(results)
    return {
        "n": n,
        "exact": exact / n,
        "chars": chars / n,
        "province": province_right / province_total if province_total else None,
        "p50": statistics.median(times),
        "p95": times[min(n - 1, round(0.95 * (n - 1)))],
        "mean": sum(times) / n,
    }


def interleaved(
    items: list[dict[str, Any]], engines: list[str], rounds: int = 1
) -> dict[str, float]:
    """Median ms per 1080p frame with the engines taking turns frame by frame, so a busy
    moment on a shared machine hits both alike: the fair speed ratio."""
    readers = {e: ENGINES[e]() for e in engines}
    frames = [cv2.imread(i["file"]) for i in items if i["source"] == "fps_1080p"]
    times: dict[str, list[float]] = {e: [] for e in engines}
    for e in engines:
        readers[e](frames[0], "scene")
    for _ in range(rounds):
        for frame in frames:
            for e in engines:
                start = time.perf_counter()
                readers[e](frame, "scene")
                times[e].append((time.perf_counter() - start) * 1000.0)
    summary: dict[str, float] = {"frames": len(frames)}
    for e, t in times.items():
        t.sort()
        summary[e] = statistics.median(t)
        summary[f"{e} mean"] = statistics.fmean(t)
        summary[f"{e} p95"] = t[min(len(t) - 1, round(0.95 * (len(t) - 1)))]
    return summary


def gate_cost_ms() -> float:
    from edge.recognize.motion import MotionGate

    gate = MotionGate()
    frame = np.random.default_rng(0).integers(0, 255, (1080, 1920, 3), dtype=np.uint8)
    gate.changed(frame)
    start = time.perf_counter()
    for _ in range(50):
        gate.changed(frame)
    return (time.perf_counter() - start) * 1000.0 / 50


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "plates")
    parser.add_argument("--limit", type=int, default=None, help="images per real source")
    parser.add_argument("--synthetic", type=int, default=120, help="plates per synthetic set")
    parser.add_argument(
        "--engines",
        default=None,
        help=f"default: {','.join(DEFAULT_ENGINES)}; also: ours_unfolded (the package's "
        "PP-OCRv4 files before folding)",
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "RESULTS.md")
    parser.add_argument(
        "--interleaved-only",
        action="store_true",
        help="only the interleaved 1080p latency of two engines (--engines, default ours and "
        "rapidocr), appended to --out",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--items", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.items, args.result)
        return 0
    if not args.data.is_dir():
        print(f"skipped: evaluation data {args.data} is absent (see its README for the layout)")
        return 0
    command = " ".join([".venv/bin/python", "bench/recognition/run.py", *sys.argv[1:]])
    if args.interleaved_only:
        pair = [e.strip() for e in (args.engines or "ours,rapidocr").split(",")]
        if len(pair) != 2 or not set(pair) <= set(ENGINES):
            parser.error(f"--interleaved-only takes two of {', '.join(ENGINES)}, not {pair}")
        missing = missing_prerequisites(pair)
        if missing:
            print("cannot run: " + "; ".join(missing), file=sys.stderr)
            return 2
        first, second = pair
        with tempfile.TemporaryDirectory(prefix="platebench-") as tmp:
            frames = fps_frames(real_items(args.data, args.limit), Path(tmp))
            ab = interleaved(frames, [first, second])
        mean1, mean2 = ab[first + " mean"], ab[second + " mean"]
        text = (
            f"\nInterleaved on the same 1080p frames (`{command}`; engines taking turns frame "
            f"by frame): {first} {ab[first]:.1f} ms, {second} {ab[second]:.1f} ms median per "
            f"frame: {second} / {first} = {ab[second] / ab[first]:.2f}. Mean {mean1:.1f} and "
            f"{mean2:.1f} ms ({mean2 / mean1:.2f}), p95 {ab[first + ' p95']:.1f} and "
            f"{ab[second + ' p95']:.1f} ms.\n"
        )
        with args.out.open("a", encoding="utf-8") as handle:
            handle.write(text)
        print(text)
        return 0
    engines = [e.strip() for e in (args.engines or ",".join(DEFAULT_ENGINES)).split(",")]
    engines = [e for e in engines if e]
    missing = missing_prerequisites(engines)
    if missing:  # before the long runs, not after them
        print("cannot run: " + "; ".join(missing), file=sys.stderr)
        return 2
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="platebench-") as tmp:
        folder = Path(tmp)
        items = real_items(args.data, args.limit)
        items += synthetic_items(folder, args.synthetic)
        items += fps_frames(items, folder)
        (folder / "items.json").write_text(json.dumps(items))
        outcome: dict[str, Any] = {}
        for engine in engines:
            started = time.time()
            print(f"{engine}: {len(items)} images ...", flush=True)
            result_path = folder / f"{engine}.json"
            subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--worker",
                    engine,
                    "--items",
                    str(folder / "items.json"),
                    "--result",
                    str(result_path),
                ],
                check=True,
            )
            outcome[engine] = json.loads(result_path.read_text())
            print(f"{engine}: done in {time.time() - started:.0f} s", flush=True)
        gate_ms = gate_cost_ms()
        pair = [e for e in ("ours", "rapidocr") if e in engines]
        print("interleaved 1080p latency ...", flush=True)
        ab = interleaved(items, pair) if len(pair) == 2 else {}
    report = render(outcome, engines, command, gate_ms, ab, load)
    args.out.write_text(report, encoding="utf-8")
    print(report)
    return 0


def render(
    outcome: dict[str, Any],
    engines: list[str],
    command: str,
    gate_ms: float,
    ab: dict[str, float],
    load: float,
) -> str:
    sources = []
    for r in outcome[engines[0]]["results"]:
        if r["source"] not in sources:
            sources.append(r["source"])
    lines = [
        "# Plate recognition benchmark",
        "",
        f"Command: `{command}`  ",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; machine: "
        f"{platform.machine()}, {os.cpu_count()} CPUs, load average {load:.1f} when it started "
        "(latencies are wall clock: compare engines within one run), onnxruntime CPU provider.",
        "",
        "Exact = whole normalised plate right; chars = 1 - edit distance / longer length; "
        "province = CN province glyph right (not part of exact). Latency per image, ms.",
        "",
        "| source | n | "
        + " | ".join(f"{e} exact | {e} chars | {e} p50 | {e} p95" for e in engines)
        + " |",
        "|---|---|" + "---|" * (4 * len(engines)),
    ]
    per: dict[str, dict[str, dict[str, Any]]] = {}
    for source in sources:
        cells = []
        n = 0
        for engine in engines:
            rs = [r for r in outcome[engine]["results"] if r["source"] == source]
            s = score(rs)
            per.setdefault(source, {})[engine] = s
            n = s["n"]
            cells.append(
                f"{100 * s['exact']:.1f} % | {100 * s['chars']:.1f} % | "
                f"{s['p50']:.0f} | {s['p95']:.0f}"
            )
        lines.append(f"| {source} | {n} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| engine | CN province | frames/s at 1920x1080 | peak RSS MiB |",
        "|---|---|---|---|",
    ]
    for engine in engines:
        cn = per.get("lprnet_cn_crops", {}).get(engine, {}).get("province")
        fps = per.get("fps_1080p", {}).get(engine)
        fps_text = f"{1000.0 / fps['mean']:.1f} (p50 {fps['p50']:.0f} ms)" if fps else "-"
        cn_text = f"{100 * cn:.1f} %" if cn is not None else "-"
        lines.append(
            f"| {engine} | {cn_text} | {fps_text} | {outcome[engine]['peak_rss_mib']:.0f} |"
        )
    lines += [
        "",
        (
            f"Interleaved on the same {ab['frames']:.0f} 1080p frames (engines taking turns): ours "
            f"{ab['ours']:.0f} ms, rapidocr {ab['rapidocr']:.0f} ms median per frame: "
            f"{ab['rapidocr'] / ab['ours']:.1f}x faster."
            if ab
            else ""
        ),
        "",
        f"Empty-lane gate (MotionGate on a 1920x1080 frame): {gate_ms:.1f} ms per frame; "
        "frames that fail it never reach the networks.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
