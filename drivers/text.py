"""Values as a technician reads them: `gross_kg 18,650, stable yes`, not Python reprs.

One formatter for everything `lane diag` prints about readings and crossings (probe, watch,
explain): floats rounded to what a display would show, enums by value, records and lists
flattened to words.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from datetime import datetime
from typing import Any

MAX_ITEMS = 8  # longer lists are cut: "... (+12 more)"


def plain(value: Any) -> str:
    """``value`` as short human text."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, enum.Enum):
        return plain(value.value)
    if isinstance(value, float):
        return number(value)
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, datetime):
        return value.isoformat(timespec="milliseconds")
    if isinstance(value, bytes | bytearray):
        return f"{len(value):,} bytes"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return fields(
            {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}, nested=True
        )
    if isinstance(value, Mapping):
        if set(value) >= {"text", "confidence"}:  # a plate candidate
            return f"{value['text']} ({float(value['confidence']):.2f})"
        return fields(dict(value), nested=True)
    if isinstance(value, list | tuple | set | frozenset):
        items = [plain(v) for v in list(value)[:MAX_ITEMS]]
        more = len(value) - MAX_ITEMS
        return ", ".join(items) + (f" ... (+{more} more)" if more > 0 else "") if items else "none"
    return str(value)


def number(value: float) -> str:
    """A float to its display: 41200.0 -> 41,200; 12.299137 -> 12.3; 0.5833 -> 0.583."""
    if value != value or value in (float("inf"), float("-inf")):
        return str(value)
    if abs(value) >= 100 or value == int(value):
        return f"{value:,.0f}"
    return f"{value:.3g}"


def fields(values: Mapping[str, Any], *, nested: bool = False) -> str:
    """``name value, name value``; a nested record goes in parentheses."""
    text = ", ".join(f"{name} {plain(v)}" for name, v in values.items())
    return f"({text})" if nested else text
