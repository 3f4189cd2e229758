"""Reproduce models/plate_*_ppocrv4.onnx and their manifests from the PyPI package.

    .venv/bin/pip install --no-deps rapidocr-onnxruntime==1.4.4
    .venv/bin/python models/training/export_pretrained.py [--check]

The files are copied unchanged (Apache-2.0) from ``rapidocr_onnxruntime/models/``; the agent
reads them with its own onnxruntime wrapper and never imports rapidocr. ``--check`` only
verifies that the committed files equal the package's bytes and their manifests.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

MODELS = Path(__file__).resolve().parents[1]
PACKAGE_VERSION = "1.4.4"
COMMON = {
    "version": f"PP-OCRv4 (rapidocr-onnxruntime {PACKAGE_VERSION})",
    "source": (
        f"PyPI rapidocr-onnxruntime=={PACKAGE_VERSION}, rapidocr_onnxruntime/models/ "
        "(PaddleOCR PP-OCRv4 mobile, converted to ONNX by RapidAI)"
    ),
    "licence": "Apache-2.0 (PaddleOCR and RapidOCR); copied unchanged",
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
        "input_name": "x",
        "charset": (
            "CTC over 6625 classes: 0 blank, 1..6623 the list in the ONNX metadata key "
            "'character' (ppocr_keys_v1), 6624 space. Decoding folds it to the plate alphabet "
            "A-Z 0-9 and the CN province glyphs."
        ),
        "notes": "BGR, (x/255-0.5)/0.5, height 48, width padded with zeros.",
    },
}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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
        source = package_models / str(spec["package_file"])
        target = MODELS / f"{name}.onnx"
        manifest = {
            "name": name,
            "file": target.name,
            "sha256": sha256(source),
            **{k: v for k, v in spec.items() if k != "package_file"},
            **COMMON,
        }
        if args.check:
            committed = json.loads((MODELS / f"{name}.json").read_text(encoding="utf-8"))
            same = target.is_file() and sha256(target) == manifest["sha256"]
            same = same and committed["sha256"] == manifest["sha256"]
            print(f"{name}: {'matches' if same else 'DIFFERS from'} the package")
            bad += not same
            continue
        shutil.copyfile(source, target)
        text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
        (MODELS / f"{name}.json").write_text(text, encoding="utf-8")
        print(f"wrote {target} and its manifest")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
