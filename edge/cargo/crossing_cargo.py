"""What one crossing saw of its cargo: container codes and orange plates, voted over frames. Pure.

The correlator keeps one :class:`CargoVotes` per open crossing and feeds it the sightings of
the ``container`` cameras and the orange plates of the front and rear cameras; at every
snapshot it asks for the crossing's ``containers``, ``adr`` and cargo alarms.

**Containers.** Reads of one code add up their confidence. A code whose check digit agrees
outranks any that does not, whatever their votes; a read-only code within two characters of
a verified one is that code misread and is dropped. A 40 ft or 45 ft box (its size and type
code) is the unit's only container (``whole``); otherwise up to two codes are kept, the one
seen first ``front`` and the other ``rear`` (a side camera sees the front box first), one
alone being ``whole``. A code with a wrong check digit is kept as ``read_only`` only where
no verified code was read: it is reported as read, never as verified.

**ADR.** Per position (front, rear), the plate read most often (numbered reads before blank
ones, blank before unread; a tie goes to numbers the shipped table knows); its summary, the
``cargo.dangerous_goods`` note and ``cargo.adr_mismatch`` come from :mod:`edge.cargo.adr`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from edge.cargo.adr import (
    AdrPlate,
    adr_mismatch_alarm,
    dangerous_goods_alarm,
    summarise,
)
from edge.cargo.container_read import ContainerSighting
from edge.cargo.iso6346 import VerificationLevel, length_feet
from edge.events import Adr, Alarm, ContainerRead

MAX_CODES = 32  # distinct codes tracked per crossing (misreads included)
MAX_ADR_READS = 256

_RANK = {
    VerificationLevel.READ_ONLY: 0,
    VerificationLevel.CHECK_DIGIT: 1,
    VerificationLevel.CHECK_DIGIT_AND_OWNER: 2,
}


@dataclass(slots=True)
class _Code:
    best: ContainerSighting
    camera: str
    first_seen: float
    score: float = 0.0
    reads: int = 0
    size_types: Counter[str] = field(default_factory=Counter)


@dataclass(slots=True)
class CargoVotes:
    codes: dict[str, _Code] = field(default_factory=dict)
    adr: dict[str, list[AdrPlate]] = field(default_factory=lambda: defaultdict(list))
    dropped: int = 0  # reads over the bounds

    def add_container(self, sighting: ContainerSighting, camera: str, now: float) -> None:
        held = self.codes.get(sighting.code)
        if held is None:
            if len(self.codes) >= MAX_CODES:
                self.dropped += 1
                return
            held = self.codes[sighting.code] = _Code(sighting, camera, now)
        held.score += sighting.confidence
        held.reads += 1
        if sighting.size_type:
            held.size_types[sighting.size_type] += 1
        if sighting.confidence > held.best.confidence:
            held.best, held.camera = sighting, camera

    def add_adr(self, plate: AdrPlate) -> None:
        if sum(len(v) for v in self.adr.values()) >= MAX_ADR_READS:
            self.dropped += 1
            return
        self.adr[plate.position].append(plate)

    # --- what the crossing carries ------------------------------------------------------

    def chosen(self) -> list[_Code]:
        ranked = sorted(
            self.codes.values(),
            key=lambda c: (-_RANK[c.best.level], -c.score, c.first_seen, c.best.code),
        )
        verified = [c for c in ranked if _RANK[c.best.level] > 0]
        ranked = [  # a read-only code like a verified one is that one misread
            c
            for c in ranked
            if _RANK[c.best.level] > 0
            or not any(_distance(c.best.code, v.best.code) <= 2 for v in verified)
        ]
        if not ranked:
            return []
        first = ranked[0]
        if (length_feet(_size_type(first) or "") or 0) >= 40:
            return [first]
        pair = [first]
        for other in ranked[1:]:
            if _distance(other.best.code, first.best.code) <= 2:
                continue  # a misread of the first box
            if (length_feet(_size_type(other) or "") or 0) >= 40:
                continue  # a 40 ft box cannot ride beside another
            if _RANK[other.best.level] == 0 and other.reads < 2:
                continue  # one unverified read is no second box
            pair.append(other)
            break
        return sorted(pair, key=lambda c: c.first_seen)

    def containers(self) -> list[ContainerRead] | None:
        chosen = self.chosen()
        if not chosen:
            return None
        positions = ["front", "rear"] if len(chosen) == 2 else ["whole"]
        total_reads = sum(c.reads for c in self.codes.values()) or 1
        out = []
        for code, position in zip(chosen, positions, strict=True):
            agreement = code.reads / total_reads
            out.append(
                ContainerRead(
                    code=code.best.code,
                    size_type=_size_type(code),
                    position=position,
                    confidence=round(min(1.0, code.best.confidence * (0.5 + 0.5 * agreement)), 4),
                    check_digit_ok=code.best.verification.check_digit_ok,
                    verification=code.best.level.value,
                    camera=code.camera,
                )
            )
        return out

    def codes_read(self) -> list[str]:
        return [c.best.code for c in self.chosen()]

    def plates(self) -> dict[str, AdrPlate]:
        """Per position, the plate read most often: numbered reads first, then blank ones,
        then plates seen but not read; among numbered ones, those the shipped table knows
        (a UN entry whose class fits the hazard number) win a tie."""
        out = {}
        for position, plates in self.adr.items():
            votes = Counter((p.readable, p.kemler, p.un) for p in plates)
            (readable, kemler, un), _n = max(
                votes.items(),
                key=lambda kv: (_kind(*kv[0]), kv[1], _known(kv[0][1], kv[0][2]), str(kv[0])),
            )
            out[position] = next(
                p for p in plates if (p.readable, p.kemler, p.un) == (readable, kemler, un)
            )
        return out

    def adr_field(self) -> Adr | None:
        plates = self.plates()
        if not plates:
            return None
        return Adr(**summarise(list(plates.values())).as_dict())

    def alarms(self) -> list[Alarm]:
        plates = self.plates()
        found = [
            dangerous_goods_alarm(list(plates.values())),
            adr_mismatch_alarm(plates.get("front"), plates.get("rear")),
        ]
        return [a for a in found if a is not None]


def _kind(readable: bool, kemler: str | None, un: str | None) -> int:
    """Numbered 2, blank 1, not read 0: a plate with marks is never blank (the reader says
    blank only where it saw no marks), so a numbered read outranks blank ones."""
    if not readable:
        return 0
    return 1 if kemler is None and un is None else 2


def _known(kemler: str | None, un: str | None) -> bool:
    if kemler is None or un is None:
        return False
    return summarise([AdrPlate("front", kemler, un)]).consistent is True


def _size_type(code: _Code) -> str | None:
    return code.size_types.most_common(1)[0][0] if code.size_types else None


def _distance(a: str, b: str) -> int:
    return sum(x != y for x, y in zip(a, b, strict=False)) + abs(len(a) - len(b))
