"""ONNX models shipped in ``models/``: manifests, hash check, onnxruntime sessions.

Each ``NAME.onnx`` has a ``NAME.json`` manifest beside it. A model whose bytes do not match
the manifest's sha256 is refused: a truncated copy or a swapped file must not read plates.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge.errors import LaneError


def _shipped_models() -> Path:
    """``models/`` of the source tree, installed as the package ``lane_agent_models`` (setup.py):
    the checkout's own folder in an editable install, site-packages' copy from a wheel."""
    spec = importlib.util.find_spec("lane_agent_models")
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        if Path(location).is_dir():
            return Path(location)
    return Path(__file__).resolve().parents[2] / "models"  # named by the error that follows


DEFAULT_MODEL_DIR = _shipped_models()
PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
}


class RecognitionError(LaneError):
    """The plate recognition stage cannot work (missing or corrupt model, bad provider)."""

    exit_code = 2


class ImageError(LaneError):
    """An image cannot be decoded or is not a picture at all."""

    exit_code = 1


class ModelManifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    file: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    task: Literal["detection", "recognition", "region-code cell"]
    version: str
    input_shape: list[int | str]
    input_name: str
    charset: str = Field(description="How the output classes map to glyphs.")
    source: str
    licence: str
    training_data: str
    metrics: dict[str, Any] = Field(default_factory=dict)
    notes: str = ""


def model_dir(configured: Path | None = None) -> Path:
    if configured is not None:
        return configured
    env = os.environ.get("LANE_MODEL_DIR")
    return Path(env) if env else DEFAULT_MODEL_DIR


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_manifest(directory: Path, name: str) -> ModelManifest:
    path = directory / f"{name}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecognitionError(f"model manifest {path} is missing") from None
    except (OSError, ValueError) as exc:
        raise RecognitionError(f"model manifest {path} cannot be read: {exc}") from None
    try:
        return ModelManifest.model_validate(data)
    except ValidationError as exc:
        raise RecognitionError(f"model manifest {path} is invalid: {exc}") from None


def verify(directory: Path, manifest: ModelManifest) -> Path:
    """Return the model file's path once its sha256 matches the manifest."""
    path = directory / manifest.file
    if not path.is_file():
        raise RecognitionError(f"model file {path} is missing (manifest {manifest.name})")
    actual = sha256_file(path)
    if actual != manifest.sha256:
        raise RecognitionError(
            f"model file {path} does not match its manifest: sha256 {actual}, "
            f"expected {manifest.sha256}"
        )
    return path


def open_session(path: Path, provider: str = "cpu", *, threads: int = 0) -> Any:
    """An onnxruntime session on the chosen execution provider (cpu, cuda, openvino)."""
    import onnxruntime as ort

    wanted = PROVIDERS.get(provider)
    if wanted is None:
        raise RecognitionError(f"unknown execution provider {provider!r}")
    available = ort.get_available_providers()
    if wanted not in available:
        raise RecognitionError(
            f"execution provider {provider} ({wanted}) is not available here; "
            f"available: {', '.join(available)}"
        )
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.log_severity_level = 3
    # Idle worker threads would otherwise spin after each run: on a 2-core lane controller
    # they take the core that the drivers and the next run need (measured: 1.4-2x slower
    # detection with spinning on, bench/recognition/RESULTS.md).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    providers = [wanted] if wanted == "CPUExecutionProvider" else [wanted, "CPUExecutionProvider"]
    try:
        return ort.InferenceSession(str(path), options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise RecognitionError(f"model {path} cannot be loaded: {exc}") from None
