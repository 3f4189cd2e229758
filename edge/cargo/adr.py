"""ADR orange plates: hazard identification (Kemler) number over UN number, and the alarms.

An orange plate (ADR 5.3.2.1) is either blank or carries the hazard identification number
in its upper half and the UN number in its lower half, e.g. 33 over 1203 (petrol). The
hazard number is two or three digits, the first the primary hazard (2 gas, 3 flammable
liquid, 4 flammable solid, 5 oxidizer, 6 toxic, 7 radioactive, 8 corrosive, 9 spontaneous
violent reaction or miscellaneous), the next ones subsidiary hazards; a doubled digit is an
intensified hazard, a 0 says one digit is enough, and a leading X forbids water (ADR
5.3.2.3.1). The UN number is four digits (ADR 3.2 Table A).

Reading, describing and the alarm rules are pure functions; the table of meanings ships
as ``edge/cargo/data/adr.json``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from edge.events import Alarm

KEMLER = re.compile(r"X?[2-9][0-9]{1,2}")
UN = re.compile(r"[0-9]{4}")
MAX_TEXT = 16
MAX_UN = 3600  # ADR 2025 assigns UN 0004..3550; leave a little room for new entries

DIGITS = {
    "2": "gas under pressure or chemical reaction",
    "3": "flammable liquid or gas, or self-heating liquid",
    "4": "flammable or self-heating solid",
    "5": "oxidizing (fire-intensifying)",
    "6": "toxic or infectious",
    "7": "radioactive",
    "8": "corrosive",
    "9": "spontaneous violent reaction, or miscellaneous",
}
# Which Kemler first digit the primary class of a UN entry calls for.
CLASS_DIGIT = {"2": "2", "3": "3", "4.1": "4", "4.2": "4", "4.3": "4", "5.1": "5", "5.2": "5",
               "6.1": "6", "6.2": "6", "7": "7", "8": "8", "9": "9"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class UnEntry:
    number: str
    name: str
    hazard_class: str


@dataclass(frozen=True, slots=True)
class AdrTable:
    kemler: dict[str, str]
    un: dict[str, UnEntry]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AdrTable:
        kemler = {str(k): str(v) for k, v in data["kemler"].items()}
        un = {
            str(n): UnEntry(str(n), str(v["name"]), str(v["class"])) for n, v in data["un"].items()
        }
        bad = [k for k in kemler if not KEMLER.fullmatch(k)]
        bad += [n for n in un if not UN.fullmatch(n) or un[n].hazard_class not in CLASS_DIGIT]
        if bad:
            raise ValueError(f"ADR table entries malformed: {', '.join(bad)}")
        return cls(kemler, un)

    @classmethod
    @cache
    def shipped(cls) -> AdrTable:
        data = resources.files("edge.cargo").joinpath("data/adr.json")
        return cls.from_json(json.loads(data.read_text(encoding="utf-8")))


@dataclass(frozen=True, slots=True)
class AdrPlate:
    """One orange plate as read. ``readable`` False: a plate was seen, its numbers not read."""

    position: str  # front, rear (or side)
    kemler: str | None = None
    un: str | None = None
    readable: bool = True
    device: str | None = None
    confidence: float | None = None

    @property
    def blank(self) -> bool:
        return self.readable and self.kemler is None and self.un is None

    @property
    def label(self) -> str:
        if not self.readable:
            return "unread"
        return "blank" if self.blank else f"{self.kemler}/{self.un}"


def _clean(text: str | None) -> str:
    if text is None:
        return ""
    return re.sub(r"[\s\-./]+", "", text[:MAX_TEXT].upper()).replace("O", "0")


def kemler_ok(code: str) -> bool:
    """Well formed: X?, a primary digit 2-9, one or two more; 0 only to pad a single digit."""
    if not KEMLER.fullmatch(code):
        return False
    digits = code.removeprefix("X")
    return len(digits) == 2 or "0" not in digits[1:] or code in AdrTable.shipped().kemler


def un_ok(number: str) -> bool:
    return bool(UN.fullmatch(number)) and 1 <= int(number) <= MAX_UN


def read_plate(
    top: str | None,
    bottom: str | None,
    *,
    position: str,
    device: str | None = None,
    confidence: float | None = None,
) -> AdrPlate:
    """The plate from the text of its two halves; never raises.

    Both halves empty: a blank plate. Both well formed: a numbered plate. Anything else (one
    half missing, a malformed number) is a plate whose numbers were not read.
    """
    kemler, un = _clean(top), _clean(bottom)
    if not kemler and not un:
        return AdrPlate(position, device=device, confidence=confidence)
    if kemler_ok(kemler) and un_ok(un):
        return AdrPlate(position, kemler, un, device=device, confidence=confidence)
    return AdrPlate(position, readable=False, device=device, confidence=confidence)


def describe_kemler(code: str, table: AdrTable | None = None) -> str | None:
    """The meaning of a hazard number: from the table, else composed from its digits."""
    table = table or AdrTable.shipped()
    if code in table.kemler:
        return table.kemler[code]
    if not kemler_ok(code):
        return None
    digits = code.removeprefix("X")
    parts: list[str] = []
    for i, digit in enumerate(digits):
        if digit == "0":
            continue
        meaning = DIGITS.get(digit)
        if meaning is None:
            return None
        if i and digits[i - 1] == digit:
            parts[-1] = "highly " + parts[-1]
        else:
            parts.append(meaning)
    text = "; ".join(parts)
    return text + ("; reacts dangerously with water" if code.startswith("X") else "")


@dataclass(frozen=True, slots=True)
class AdrSummary:
    """What a crossing carries: ``adr: {present, kemler, un, description}``."""

    present: bool
    kemler: str | None = None
    un: str | None = None
    description: str | None = None
    consistent: bool | None = None  # the Kemler first digit fits the UN entry's class

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"present": self.present}
        for key in ("kemler", "un", "description", "consistent"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


def summarise(plates: Sequence[AdrPlate], table: AdrTable | None = None) -> AdrSummary:
    """One summary from the plates of a crossing: the first numbered plate wins."""
    if not plates:
        return AdrSummary(present=False)
    table = table or AdrTable.shipped()
    numbered = [p for p in plates if p.readable and not p.blank]
    if not numbered:
        blank = any(p.blank for p in plates)
        return AdrSummary(present=True, description="blank orange plate" if blank else None)
    plate = numbered[0]
    assert plate.kemler is not None and plate.un is not None
    entry = table.un.get(plate.un)
    hazard = describe_kemler(plate.kemler, table)
    description = "; ".join(x for x in (entry.name if entry else None, hazard) if x) or None
    consistent = None
    if entry is not None:
        consistent = CLASS_DIGIT[entry.hazard_class] == plate.kemler.removeprefix("X")[0]
    return AdrSummary(True, plate.kemler, plate.un, description, consistent)


def dangerous_goods_alarm(plates: Sequence[AdrPlate]) -> Alarm | None:
    """``cargo.dangerous_goods`` (info) whenever an orange plate was seen."""
    if not plates:
        return None
    summary = summarise(plates)
    if summary.kemler is not None:
        message = f"dangerous goods: {summary.kemler}/{summary.un}"
        if summary.description:
            message += f" ({summary.description})"
        if summary.consistent is False:
            message += "; hazard number does not fit the UN entry's class"
    elif summary.description:
        message = f"dangerous goods: {summary.description}"
    else:
        message = "dangerous goods: orange plate, numbers not read"
    device = next((p.device for p in plates if p.device), None)
    return Alarm(code="cargo.dangerous_goods", severity="info", message=message, device=device)


def adr_mismatch_alarm(front: AdrPlate | None, rear: AdrPlate | None) -> Alarm | None:
    """``cargo.adr_mismatch`` (warning) when the front and rear plates disagree.

    A transport unit shows the same plate front and rear (ADR 5.3.2.1.1, 5.3.2.1.2): both
    blank, or both with the same numbers. A plate seen at one end only, or one whose numbers
    were not read, is no evidence of a mismatch.
    """
    if front is None or rear is None or not front.readable or not rear.readable:
        return None
    if (front.kemler, front.un) == (rear.kemler, rear.un):
        return None
    return Alarm(
        code="cargo.adr_mismatch",
        severity="warning",
        message=f"orange plates disagree: front {front.label}, rear {rear.label}",
        device=rear.device or front.device,
    )
