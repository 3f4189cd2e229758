"""ISO 6346 freight container identification: owner code, category, serial, check digit.

A code is 11 characters: a 3-letter owner code, an equipment category identifier (U freight
container, J detachable freight container-related equipment, Z trailer or chassis), a
6-digit serial number and a check digit. The check digit is computed over the first ten
characters: each letter has a value from 10 to 38 that skips the multiples of 11 (A=10,
B=12, ... K=21, L=23, ... U=32, V=34, ... Z=38), each digit its own value; the character at
position n (0-based) is weighted 2**n; the sum modulo 11, with a remainder of 10 written as
0, is the check digit (ISO 6346:1995 Annex A).

:func:`read_code` never raises: it takes what a reader saw and says how far it can be
trusted (:class:`Verification`). It corrects a letter read in a digit's place (or a digit in
a letter's place) only when exactly one of the look-alike substitutions passes the check
digit; a character of the right class is never changed, because a mod-11 check digit
detects a single wrong character but cannot tell which one is wrong.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources

CATEGORIES = {
    "U": "freight container",
    "J": "detachable freight container-related equipment",
    "Z": "trailer or chassis",
}


def _letter_values() -> dict[str, int]:
    values: dict[str, int] = {}
    value = 10
    for letter in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
        if value % 11 == 0:
            value += 1
        values[letter] = value
        value += 1
    return values


LETTER_VALUES = _letter_values()
MAX_TEXT = 64  # longer input is not a container code read; refused without work

# Look-alikes a reader confuses between the classes: a digit read where a letter belongs
# and a letter read where a digit belongs.
_AS_LETTER = {
    "0": "OQD", "1": "IL", "2": "Z", "3": "B", "4": "A", "5": "S", "6": "G", "7": "T",
    "8": "B",
}  # fmt: skip
_AS_DIGIT = {
    "O": "0", "Q": "0", "D": "0", "U": "0", "I": "1", "L": "1", "J": "1", "T": "7", "Z": "2",
    "S": "5", "B": "8", "G": "6", "A": "4",
}  # fmt: skip
_AS_CATEGORY = {"V": "U", "0": "U", "1": "J", "I": "J", "2": "Z", "7": "Z"}
_MAX_CANDIDATES = 4096
_SEPARATORS = re.compile(r"[\s\-./|_\[\]()]+")


class VerificationLevel(StrEnum):
    """How far a container code can be trusted, weakest first."""

    READ_ONLY = "read_only"  # a reader saw it; nothing vouches for it
    CHECK_DIGIT = "check_digit"  # the check digit agrees
    CHECK_DIGIT_AND_OWNER = "check_digit_and_owner"  # ... and the owner prefix is known


@dataclass(frozen=True, slots=True)
class ContainerCode:
    owner: str  # 3 letters
    category: str  # U, J or Z
    serial: str  # 6 digits
    check_digit: int

    @property
    def prefix(self) -> str:
        """Owner code and category, as registered (e.g. CSQU)."""
        return self.owner + self.category

    @property
    def text(self) -> str:
        return f"{self.owner}{self.category}{self.serial}{self.check_digit}"

    @property
    def check_digit_ok(self) -> bool:
        return compute_check_digit(self.text[:10]) == self.check_digit


@dataclass(frozen=True, slots=True)
class Verification:
    """What :func:`read_code` made of a read."""

    text: str  # normalised input (separators removed, upper case), or the corrected code
    code: ContainerCode | None  # None when the text is not shaped like a container code
    check_digit_ok: bool
    level: VerificationLevel
    corrected_from: str | None = None  # the text as read, when a look-alike was corrected
    owner_known: bool = False
    problem: str | None = None  # why the level is read_only


def compute_check_digit(first_ten: str) -> int:
    """The ISO 6346 check digit of owner code + category + serial (10 characters).

    Raises ValueError when the text is not 4 letters and 6 digits (a programming error:
    readers go through :func:`read_code`, which never raises).
    """
    if not (
        len(first_ten) == 10
        and all(c in LETTER_VALUES for c in first_ten[:4])
        and first_ten[4:].isascii()
        and first_ten[4:].isdigit()
    ):
        raise ValueError(f"not 4 capital letters and 6 digits: {first_ten!r}")
    total = sum((LETTER_VALUES[c] if i < 4 else int(c)) * (1 << i) for i, c in enumerate(first_ten))
    return total % 11 % 10


def normalise(text: str) -> str:
    """Upper case without the separators painted or read between groups (CSQU 305438-3)."""
    return _SEPARATORS.sub("", text.strip().upper())


class OwnerRegistry:
    """Known owner prefixes (owner code + category, e.g. MSCU), from a shipped list or yours."""

    def __init__(self, prefixes: Iterable[str], *, names: dict[str, str] | None = None) -> None:
        self.prefixes = frozenset(p.strip().upper() for p in prefixes if p.strip())
        bad = sorted(p for p in self.prefixes if not re.fullmatch(r"[A-Z]{3}[UJZ]", p))
        if bad:
            raise ValueError(f"owner prefixes are 3 letters + U, J or Z: {', '.join(bad)}")
        self.names = dict(names or {})

    def __contains__(self, prefix: object) -> bool:
        return prefix in self.prefixes

    def __len__(self) -> int:
        return len(self.prefixes)

    @classmethod
    def from_csv_text(cls, text: str) -> OwnerRegistry:
        """Lines ``PREFIX,operator``; ``#`` starts a comment; the operator is optional."""
        names: dict[str, str] = {}
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            prefix, _, name = line.partition(",")
            prefix = prefix.strip().upper()
            if not re.fullmatch(r"[A-Z]{3}[UJZ]", prefix):
                raise ValueError(f"line {number}: {prefix!r} is not 3 letters + U, J or Z")
            names[prefix] = name.strip()
        return cls(names, names=names)

    @classmethod
    def shipped(cls) -> OwnerRegistry:
        """The list shipped with the agent (edge/cargo/data/owner_prefixes.csv)."""
        data = resources.files("edge.cargo").joinpath("data/owner_prefixes.csv")
        return cls.from_csv_text(data.read_text(encoding="utf-8"))


def _shape(text: str) -> ContainerCode | None:
    if len(text) != 11:
        return None
    owner, category, serial, digit = text[:3], text[3], text[4:10], text[10]
    if not (
        all(c in LETTER_VALUES for c in owner)
        and category in CATEGORIES
        and serial.isascii()
        and serial.isdigit()
        and digit.isascii()
        and digit.isdigit()
    ):
        return None
    return ContainerCode(owner, category, serial, int(digit))


def _options(text: str) -> list[str] | None:
    """Per position, the characters it may stand for; None when one fits nothing."""
    options = []
    for i, c in enumerate(text):
        if i < 3:
            fits = c in LETTER_VALUES
            alternatives = _AS_LETTER.get(c, "")
        elif i == 3:
            fits = c in CATEGORIES
            alternatives = _AS_CATEGORY.get(c, "")
        else:
            fits = c.isascii() and c.isdigit()
            alternatives = _AS_DIGIT.get(c, "")
        if fits:
            options.append(c)
        elif alternatives:
            options.append(alternatives)
        else:
            return None
    return options


def read_code(text: str, *, owners: OwnerRegistry | None = None) -> Verification:
    """Verify a container code as read; never raises.

    ``owners`` lifts a code with a good check digit to ``check_digit_and_owner`` when its
    owner prefix is in the list.
    """
    if len(text) > MAX_TEXT:
        return Verification(
            text[:MAX_TEXT], None, False, VerificationLevel.READ_ONLY, problem="too long"
        )
    seen = normalise(text)
    if len(seen) not in (10, 11):
        return Verification(
            seen, None, False, VerificationLevel.READ_ONLY,
            problem=f"{len(seen)} characters, a container code has 11",
        )  # fmt: skip
    if len(seen) == 10:
        # The boxed check digit is often missed; say what it should be, trust nothing.
        code = _shape(seen + "0")
        problem = "no check digit read"
        if code is not None:
            problem += f" (it would be {compute_check_digit(seen)})"
        return Verification(seen, None, False, VerificationLevel.READ_ONLY, problem=problem)
    code = _shape(seen)
    corrected_from = None
    if code is None:
        options = _options(seen)
        if options is None:
            return Verification(
                seen, None, False, VerificationLevel.READ_ONLY,
                problem="not 3 letters, U/J/Z, 6 digits and a check digit",
            )  # fmt: skip
        size = 1
        for choice in options:
            size *= len(choice)
        passing = []
        if size <= _MAX_CANDIDATES:
            for chars in itertools.product(*options):
                candidate = _shape("".join(chars))
                if candidate is not None and candidate.check_digit_ok:
                    passing.append(candidate)
        if len(passing) != 1:
            return Verification(
                seen, None, False, VerificationLevel.READ_ONLY,
                problem="look-alike characters; "
                + (f"{len(passing)} readings pass the check digit" if passing else "none passes"),
            )  # fmt: skip
        code, corrected_from = passing[0], seen
    if not code.check_digit_ok:
        expected = compute_check_digit(code.text[:10])
        return Verification(
            code.text, code, False, VerificationLevel.READ_ONLY,
            problem=f"check digit {code.check_digit} read, {expected} computed",
        )  # fmt: skip
    known = owners is not None and code.prefix in owners
    level = VerificationLevel.CHECK_DIGIT_AND_OWNER if known else VerificationLevel.CHECK_DIGIT
    return Verification(
        code.text, code, True, level, corrected_from=corrected_from, owner_known=known
    )


# -- size and type codes (ISO 6346:1995, clause 4 and Annexes D/E) -----------------------------

LENGTHS = {
    "1": "10 ft (2991 mm)",
    "2": "20 ft (6058 mm)",
    "3": "30 ft (9125 mm)",
    "4": "40 ft (12192 mm)",
    "A": "7150 mm",
    "B": "24 ft (7315 mm)",
    "C": "24 ft 6 in (7430 mm)",
    "D": "7450 mm",
    "E": "7820 mm",
    "F": "8100 mm",
    "G": "41 ft (12500 mm)",
    "H": "43 ft (13106 mm)",
    "K": "13600 mm",
    "L": "45 ft (13716 mm)",
    "M": "48 ft (14630 mm)",
    "N": "49 ft (14935 mm)",
    "P": "53 ft (16154 mm)",
}
# Second character: height, and the width when it is not the standard 8 ft (2438 mm).
HEIGHTS = {
    "0": "8 ft (2438 mm)",
    "2": "8 ft 6 in (2591 mm)",
    "4": "9 ft (2743 mm)",
    "5": "9 ft 6 in (2896 mm), high cube",
    "6": "over 9 ft 6 in",
    "8": "4 ft 3 in (1295 mm)",
    "9": "4 ft (1219 mm) or less",
    "C": "8 ft 6 in, width 2438-2500 mm",
    "D": "9 ft, width 2438-2500 mm",
    "E": "9 ft 6 in, width 2438-2500 mm",
    "F": "over 9 ft 6 in, width 2438-2500 mm",
    "L": "8 ft 6 in, width over 2500 mm",
    "M": "9 ft, width over 2500 mm",
    "N": "9 ft 6 in, width over 2500 mm",
    "P": "over 9 ft 6 in, width over 2500 mm",
}
TYPE_GROUPS = {
    "G": "general purpose",
    "V": "general purpose, ventilated",
    "B": "dry bulk",
    "S": "named cargo",
    "R": "thermal, refrigerated",
    "H": "thermal, heated or insulated",
    "U": "open top",
    "P": "platform or flat rack",
    "T": "tank",
    "A": "air/surface",
}
TYPES = {
    "G0": "openings at one or both ends",
    "G1": "passive vents at upper part of cargo space",
    "G2": "openings at one or both ends and full openings on one or both sides",
    "G3": "openings at one or both ends and partial openings on one or both sides",
    "V0": "non-mechanical vents at lower and upper parts of cargo space",
    "V2": "mechanical ventilation system located internally",
    "V4": "mechanical ventilation system located externally",
    "B0": "closed, non-pressurised",
    "B1": "airtight, non-pressurised",
    "B3": "horizontal discharge, test pressure 1.5 bar",
    "B4": "horizontal discharge, test pressure 2.65 bar",
    "B5": "tipping discharge, test pressure 1.5 bar",
    "B6": "tipping discharge, test pressure 2.65 bar",
    "S0": "livestock carrier",
    "S1": "automobile carrier",
    "S2": "live fish carrier",
    "R0": "mechanically refrigerated",
    "R1": "mechanically refrigerated and heated",
    "R2": "self-powered mechanically refrigerated",
    "R3": "self-powered mechanically refrigerated and heated",
    "H0": "refrigerated or heated, removable equipment located externally",
    "H1": "refrigerated or heated, removable equipment located internally",
    "H2": "refrigerated or heated, removable equipment located externally (high K)",
    "H5": "insulated",
    "H6": "insulated (high K)",
    "U0": "openings at one or both ends",
    "U1": "openings at one or both ends, removable top members in end frames",
    "U2": "openings at one or both ends and on one or both sides",
    "U3": "openings at one or both ends and on one or both sides, removable top members",
    "U4": "openings at one or both ends, partial on one side and full on the other",
    "U5": "complete, fixed side and end walls (no doors)",
    "P0": "plain platform",
    "P1": "two complete and fixed ends",
    "P2": "fixed posts, free-standing or with removable top member",
    "P3": "folding complete end structure",
    "P4": "folding posts, free-standing or with removable top member",
    "P5": "open top, open ends (skeletal)",
    "T0": "non-dangerous liquids, minimum pressure 0.45 bar",
    "T1": "non-dangerous liquids, minimum pressure 1.5 bar",
    "T2": "non-dangerous liquids, minimum pressure 2.65 bar",
    "T3": "dangerous liquids, minimum pressure 1.5 bar",
    "T4": "dangerous liquids, minimum pressure 2.65 bar",
    "T5": "dangerous liquids, minimum pressure 4 bar",
    "T6": "dangerous liquids, minimum pressure 6 bar",
    "T7": "gases, minimum pressure 9.1 bar",
    "T8": "gases, minimum pressure 22 bar",
    "T9": "gases, minimum pressure to be decided",
}
COMMON_SIZE_TYPES = (
    "22G1", "22G0", "22R1", "22U1", "22P1", "22T6", "22V0", "22B0",
    "25G1", "42G1", "42G0", "42R1", "42U1", "42P1", "45G1", "45R1", "45U1", "L5G1", "L5R1",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class SizeType:
    code: str
    length: str
    height: str
    group: str
    type: str


def read_size_type(text: str) -> SizeType | None:
    """The size and type code (e.g. 45G1) with its meaning; None when it is not one."""
    code = normalise(text[:MAX_TEXT])
    if len(code) != 4:
        return None
    length, height, kind = code[0], code[1], code[2:]
    if length not in LENGTHS or height not in HEIGHTS or kind not in TYPES:
        return None
    return SizeType(code, LENGTHS[length], HEIGHTS[height], TYPE_GROUPS[kind[0]], TYPES[kind])


def length_feet(size_type: SizeType | str) -> int | None:
    """The nominal length in feet for 10/20/30/40/45 ft codes (for pairing two 20 ft boxes)."""
    code = size_type.code if isinstance(size_type, SizeType) else normalise(size_type)
    return {"1": 10, "2": 20, "3": 30, "4": 40, "L": 45}.get(code[:1])
