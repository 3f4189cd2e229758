"""Reproduce models/plate_*_ppocrv4.onnx and their manifests from the PyPI package.

    .venv/bin/pip install -e '.[train]'
    .venv/bin/pip install --no-deps rapidocr-onnxruntime==1.4.4
    .venv/bin/python models/training/export_pretrained.py [--check]

The PP-OCRv4 files (Apache-2.0) come from ``rapidocr_onnxruntime/models/``, folded
(``fold.py``: the constant affine steps and hard-swish patterns that Paddle2ONNX writes as
separate nodes go into the convolutions' weights): the same function in about 0.7x the time.
The agent reads them with its own onnxruntime wrapper and never imports rapidocr. Every
export checks that the folded file computes what the package's file computes (``TOLERANCE``);
``--check`` folds the package's files again and verifies that the committed files are those
bytes (with the onnx version the manifest names) and match their manifests.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

MODELS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
PACKAGE_VERSION = "1.4.4"
COMMON = {
    "version": f"PP-OCRv4 (rapidocr-onnxruntime {PACKAGE_VERSION})",
    "source": (
        f"PyPI rapidocr-onnxruntime=={PACKAGE_VERSION}, rapidocr_onnxruntime/models/ "
        "(PaddleOCR PP-OCRv4 mobile, converted to ONNX by RapidAI)"
    ),
    "licence": (
        "Apache-2.0 (PaddleOCR and RapidOCR); modified: constant affine steps folded into "
        "the convolutions"
    ),
    "training_data": (
        "PaddleOCR's PP-OCRv4 training sets (general Chinese/English text); "
        "not trained on the plate evaluation data"
    ),
    "metrics": {"see": "bench/recognition/RESULTS.md"},
}
SPECS = {
    "plate_det_ppocrv4": {
        "package_file": "ch_PP-OCRv4_det_infer.onnx",
        "task": "detection",
        "input_shape": [1, 3, "H (multiple of 32)", "W (multiple of 32)"],
        "probe_shape": (1, 3, 288, 512),
        "input_name": "x",
        "charset": "none: one output channel, the per-pixel text probability (DB head)",
        "notes": (
            "Text detector used as plate candidate finder: BGR, (x/255-0.5)/0.5, NCHW float32. "
            "Plate-likeness is decided after recognition by the grammar."
        ),
    },
    "plate_rec_ppocrv4": {
        "package_file": "ch_PP-OCRv4_rec_infer.onnx",
        "task": "recognition",
        "input_shape": [1, 3, 48, "W (dynamic, 48*aspect)"],
        "probe_shape": (2, 3, 48, 224),
        "input_name": "x",
        "charset": (
            "CTC over 6625 classes: 0 blank, 1..6623 the list in the ONNX metadata key "
            "'character' (ppocr_keys_v1), 6624 space. Decoding folds it to the plate alphabet "
            "A-Z 0-9 and the CN province glyphs."
        ),
        "notes": "BGR, (x/255-0.5)/0.5, height 48, width padded with zeros.",
    },
}


FOLDED = (
    " Graph folded by models/training/fold.py (onnx {onnx}) from the package file (sha256 "
    "{source}): {counts}; outputs equal the package file's within {diff:.1e}."
)
TOLERANCE = 1e-4  # largest output difference that folding may cause (float rounding)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def largest_difference(original: bytes, folded: bytes, shape: tuple[int, ...]) -> float:
    """Largest absolute output difference of the two models on one seeded input."""
    import onnxruntime as ort

    x = np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)
    outputs = [
        ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
        for model in (original, folded)
    ]
    return float(np.abs(outputs[0] - outputs[1]).max())


def export(source: Path, name: str, spec: dict[str, object]) -> tuple[bytes, dict[str, object]]:
    """The folded model's bytes and its manifest."""
    import onnx
    from fold import fold

    original = source.read_bytes()
    model, counts = fold(onnx.load_from_string(original))
    folded = model.SerializeToString()
    shape = spec["probe_shape"]
    assert isinstance(shape, tuple)
    diff = largest_difference(original, folded, shape)
    if diff > TOLERANCE:
        raise SystemExit(f"{name}: folding changed the outputs by {diff} (> {TOLERANCE})")
    removed = ", ".join(f"{n} {what}" for what, n in counts.items())
    manifest = {
        "name": name,
        "file": f"{name}.onnx",
        "sha256": sha256(folded),
        **{k: v for k, v in spec.items() if k not in ("package_file", "probe_shape")},
        **COMMON,
    }
    manifest["notes"] = str(manifest["notes"]) + FOLDED.format(
        onnx=onnx.__version__, source=sha256(original), counts=removed, diff=max(diff, 1e-7)
    )
    return folded, manifest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    try:
        import rapidocr_onnxruntime
    except ImportError:
        print(f"install it first: pip install --no-deps rapidocr-onnxruntime=={PACKAGE_VERSION}")
        return 2
    package_models = Path(rapidocr_onnxruntime.__file__).parent / "models"
    bad = 0
    for name, spec in SPECS.items():
        folded, manifest = export(package_models / str(spec["package_file"]), name, spec)
        target = MODELS / f"{name}.onnx"
        if args.check:
            committed = json.loads((MODELS / f"{name}.json").read_text(encoding="utf-8"))
            same = target.is_file() and sha256(target.read_bytes()) == manifest["sha256"]
            same = same and committed["sha256"] == manifest["sha256"]
            print(f"{name}: {'matches' if same else 'DIFFERS from'} the package's file, folded")
            bad += not same
            continue
        target.write_bytes(folded)
        text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
        (MODELS / f"{name}.json").write_text(text, encoding="utf-8")
        print(f"wrote {target} and its manifest")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
