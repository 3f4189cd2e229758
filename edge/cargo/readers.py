"""The cargo readers of one agent, built on the plate recogniser's loaded models."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edge.cargo.adr_read import AdrReader
from edge.cargo.container_read import ContainerReader


@dataclass(frozen=True, slots=True)
class CargoReaders:
    containers: ContainerReader
    adr: AdrReader

    @classmethod
    def of(cls, recognizer: Any) -> CargoReaders | None:
        """Readers sharing ``recognizer``'s detector and text reader (None: no recogniser)."""
        detector = getattr(recognizer, "detector", None)
        reader = getattr(recognizer, "reader", None)
        if detector is None or reader is None:
            return None
        return cls(ContainerReader(detector, reader), AdrReader(reader))
