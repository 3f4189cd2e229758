"""Shipped models: manifests valid, hashes match, size budget, a tampered copy is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from edge.config import RecognitionConfig
from edge.recognize.models import (
    DEFAULT_MODEL_DIR,
    RecognitionError,
    load_manifest,
    open_session,
    sha256_file,
    verify,
)
from edge.recognize.pipeline import CELL_READER, DETECTOR, READER, PlateRecognizer

NAMES = (DETECTOR, READER, CELL_READER)


@pytest.mark.parametrize("name", NAMES)
def test_manifest_matches_model_file(name: str) -> None:
    manifest = load_manifest(DEFAULT_MODEL_DIR, name)
    path = verify(DEFAULT_MODEL_DIR, manifest)
    assert sha256_file(path) == manifest.sha256
    assert manifest.licence and manifest.source and manifest.charset and manifest.training_data
    session = open_session(path)
    assert session.get_inputs()[0].name == manifest.input_name
    assert len(session.get_inputs()[0].shape) == len(manifest.input_shape)


def test_models_fit_the_size_budget() -> None:
    total = sum(p.stat().st_size for p in DEFAULT_MODEL_DIR.glob("*.onnx"))
    assert total < 30 * 1024 * 1024, f"models total {total} bytes, budget 30 MB"


def _copy_models(tmp_path: Path) -> Path:
    for name in NAMES:
        for suffix in (".onnx", ".json"):
            shutil.copy(DEFAULT_MODEL_DIR / f"{name}{suffix}", tmp_path / f"{name}{suffix}")
    return tmp_path


def test_tampered_model_is_refused(tmp_path: Path) -> None:
    directory = _copy_models(tmp_path)
    with (directory / f"{READER}.onnx").open("r+b") as handle:
        handle.seek(1000)
        byte = handle.read(1)
        handle.seek(1000)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(RecognitionError, match="does not match its manifest"):
        PlateRecognizer(RecognitionConfig(model_dir=directory))


def test_missing_model_and_bad_manifest_are_clear_errors(tmp_path: Path) -> None:
    directory = _copy_models(tmp_path)
    (directory / f"{DETECTOR}.onnx").unlink()
    with pytest.raises(RecognitionError, match="is missing"):
        PlateRecognizer(RecognitionConfig(model_dir=directory))
    (directory / f"{DETECTOR}.json").write_text(json.dumps({"name": "x"}))
    with pytest.raises(RecognitionError, match="invalid"):
        PlateRecognizer(RecognitionConfig(model_dir=directory))
    (directory / f"{DETECTOR}.json").write_text("{not json")
    with pytest.raises(RecognitionError, match="cannot be read"):
        PlateRecognizer(RecognitionConfig(model_dir=directory))


def test_unavailable_provider_is_a_clear_error() -> None:
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("CUDA is available here")
    with pytest.raises(RecognitionError, match="not available"):
        PlateRecognizer(RecognitionConfig(provider="cuda"))
