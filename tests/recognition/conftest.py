"""One recogniser per test session: loading and warming the models costs about a second."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.config import RecognitionConfig
from edge.recognize.pipeline import PlateRecognizer

DATA = Path(__file__).parent / "data"
SHARED_PLATES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "plates"


@pytest.fixture(scope="session")
def recognizer() -> Iterator[PlateRecognizer]:
    yield PlateRecognizer(RecognitionConfig(), threads=2)
