"""ISO 6346 container codes: check digit on published examples, reading, correction, size/type."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.cargo.iso6346 import (
    LETTER_VALUES,
    OwnerRegistry,
    VerificationLevel,
    compute_check_digit,
    length_feet,
    read_code,
    read_size_type,
)

# Published examples: CSQU 305438 3 (the worked example of the ISO 6346 article on
# Wikipedia) and BICU 123456 5 (both summed by hand below and in docs/cargo.md).
PUBLISHED = ["CSQU3054383", "BICU1234565"]


def test_letter_values_skip_multiples_of_eleven() -> None:
    assert LETTER_VALUES["A"] == 10 and LETTER_VALUES["B"] == 12
    assert LETTER_VALUES["K"] == 21 and LETTER_VALUES["L"] == 23
    assert LETTER_VALUES["U"] == 32 and LETTER_VALUES["V"] == 34 and LETTER_VALUES["Z"] == 38
    assert not any(v % 11 == 0 for v in LETTER_VALUES.values())


@pytest.mark.parametrize("code", PUBLISHED)
def test_published_examples(code: str) -> None:
    assert compute_check_digit(code[:10]) == int(code[10])
    result = read_code(code)
    assert result.check_digit_ok and result.level is VerificationLevel.CHECK_DIGIT
    assert result.code is not None and result.code.text == code


def test_worked_sum_of_the_csqu_example() -> None:
    # C=13 S=30 Q=28 U=32 3 0 5 4 3 8, weights 1, 2, 4 ... 512: 6185 = 562 * 11 + 3
    values = [13, 30, 28, 32, 3, 0, 5, 4, 3, 8]
    total = sum(v * 2**i for i, v in enumerate(values))
    assert total == 6185 and total % 11 == 3 == compute_check_digit("CSQU305438")
    # B=12 I=19 C=13 U=32 1 2 3 4 5 6: 5494 = 499 * 11 + 5
    values = [12, 19, 13, 32, 1, 2, 3, 4, 5, 6]
    total = sum(v * 2**i for i, v in enumerate(values))
    assert total == 5494 and total % 11 == 5 == compute_check_digit("BICU123456")


def test_remainder_ten_is_written_zero() -> None:
    # Find a serial whose sum leaves 10: its check digit is 0.
    for serial in range(1000):
        text = f"ABCU{serial:06d}"
        total = sum((LETTER_VALUES[c] if i < 4 else int(c)) * 2**i for i, c in enumerate(text))
        if total % 11 == 10:
            assert compute_check_digit(text) == 0
            assert read_code(text + "0").check_digit_ok
            return
    raise AssertionError("no serial with remainder 10 in the first thousand")


def test_wrong_check_digit_is_read_only_and_says_why() -> None:
    result = read_code("CSQU3054384")
    assert not result.check_digit_ok and result.level is VerificationLevel.READ_ONLY
    assert result.problem == "check digit 4 read, 3 computed"


def test_separators_and_case_are_normalised() -> None:
    for text in ["CSQU 305438 3", "csqu-305438-3", "CSQU 305438 [3]", " CSQU.305438|3 "]:
        result = read_code(text)
        assert result.text == "CSQU3054383" and result.check_digit_ok, text


def test_owner_prefix_raises_the_level() -> None:
    owners = OwnerRegistry(["CSQU"])
    assert read_code("CSQU3054383", owners=owners).level is VerificationLevel.CHECK_DIGIT_AND_OWNER
    assert read_code("BICU1234565", owners=owners).level is VerificationLevel.CHECK_DIGIT
    # A known owner never lifts a wrong check digit.
    assert read_code("CSQU3054384", owners=owners).level is VerificationLevel.READ_ONLY


def test_shipped_owner_list_loads_and_is_well_formed() -> None:
    owners = OwnerRegistry.shipped()
    assert len(owners) >= 30 and "MSCU" in owners and "CSQU" in owners
    assert all(len(p) == 4 and p[3] in "UJZ" for p in owners.prefixes)


def test_owner_csv_rejects_bad_prefixes() -> None:
    with pytest.raises(ValueError, match="line 2"):
        OwnerRegistry.from_csv_text("MSCU,MSC\nMSC1,bad\n")
    assert "ABCU" in OwnerRegistry.from_csv_text("# comment\n\nabcu  # lower case\n")


@pytest.mark.parametrize(
    ("seen", "meant"),
    [
        ("C5QU3054383", "CSQU3054383"),  # digit 5 in the owner code: S
        ("CSQU3O54383", "CSQU3054383"),  # letter O in the serial: 0
        ("BICU123456S", "BICU1234565"),  # letter S as the check digit: 5
    ],
)
def test_look_alikes_corrected_when_exactly_one_passes(seen: str, meant: str) -> None:
    result = read_code(seen)
    assert result.text == meant and result.corrected_from == seen
    assert result.level is VerificationLevel.CHECK_DIGIT


def test_look_alike_that_fails_the_check_is_not_corrected() -> None:
    # B as a digit can only be 8; the check digit is 3: nothing passes, nothing is changed.
    result = read_code("CSQU305438B")
    assert result.code is None and result.level is VerificationLevel.READ_ONLY
    assert result.problem == "look-alike characters; none passes"


def test_ambiguous_look_alikes_are_not_corrected() -> None:
    # 0 in an owner letter may be O, Q or D. Build a code where two of them pass.
    for owner in ("ABC", "XYZ", "MSC", "TGH", "CAI", "OOL"):
        for serial in range(200):
            passing = []
            for letter in "OQD":
                text = f"{letter}{owner[1:]}U{serial:06d}"
                passing.append(text + str(compute_check_digit(text)))
            digits = {p[-1] for p in passing}
            if len(digits) < 3:  # two of O/Q/D share a check digit
                shared = next(d for d in digits if sum(p[-1] == d for p in passing) > 1)
                seen = f"0{owner[1:]}U{serial:06d}{shared}"
                result = read_code(seen)
                assert result.code is None and result.corrected_from is None
                assert "readings pass" in (result.problem or "")
                return
    raise AssertionError("no ambiguous example found")


def test_right_class_characters_are_never_changed() -> None:
    # One wrong digit of the right class: detected, not "corrected" into some other code.
    result = read_code("CSQU3054883")
    assert result.code is not None and result.corrected_from is None
    assert result.level is VerificationLevel.READ_ONLY


def test_missing_check_digit_says_what_it_would_be() -> None:
    result = read_code("CSQU305438")
    assert result.level is VerificationLevel.READ_ONLY and result.code is None
    assert result.problem == "no check digit read (it would be 3)"


@pytest.mark.parametrize("text", ["", "ABC", "CSQX3054383", "CSQU30543831", "x" * 10_000, "€€€"])
def test_malformed_text_is_read_only(text: str) -> None:
    result = read_code(text)
    assert result.level is VerificationLevel.READ_ONLY and not result.check_digit_ok
    assert len(result.text) <= 64


def test_size_type_codes() -> None:
    st_ = read_size_type("45G1")
    assert st_ is not None
    assert st_.length.startswith("40 ft") and "high cube" in st_.height
    assert st_.group == "general purpose" and "vents" in st_.type
    tank = read_size_type("22T6")
    assert tank is not None and tank.group == "tank" and "6 bar" in tank.type
    assert read_size_type("L5G1") is not None and length_feet("L5G1") == 45
    assert length_feet("22G1") == 20 and length_feet("45R1") == 40
    for bad in ["45X1", "4G1", "Z5G1", "45G9", "", "45G1X"]:
        assert read_size_type(bad) is None, bad


def _valid_codes() -> st.SearchStrategy[str]:
    letters = st.text(string.ascii_uppercase, min_size=3, max_size=3)
    category = st.sampled_from("UJZ")
    serial = st.text(string.digits, min_size=6, max_size=6)
    return st.builds(
        lambda o, c, s: o + c + s + str(compute_check_digit(o + c + s)), letters, category, serial
    )


@settings(deadline=None)  # a loaded machine is no failure
@given(_valid_codes())
def test_every_computed_code_verifies(code: str) -> None:
    result = read_code(code)
    assert result.check_digit_ok and result.corrected_from is None and result.text == code


@settings(deadline=None)  # a loaded machine is no failure
@given(_valid_codes(), st.integers(0, 9), st.data())
def test_single_substitutions_are_detected(code: str, position: int, data: st.DataObject) -> None:
    """A mod-11 check with weights 2**n catches every single wrong character whose value
    differs by a non-multiple of 11, when the true check digit is not the 10 -> 0 alias."""
    remainder = (
        sum((LETTER_VALUES[c] if i < 4 else int(c)) * 2**i for i, c in enumerate(code[:10])) % 11
    )
    pool = string.ascii_uppercase if position < 3 else "UJZ" if position == 3 else string.digits
    other = data.draw(st.sampled_from([c for c in pool if c != code[position]]))

    def value(c: str) -> int:
        return LETTER_VALUES[c] if c.isalpha() else int(c)

    changed = code[:position] + other + code[position + 1 :]
    result = read_code(changed)
    if remainder in (0, 10) or (value(other) - value(code[position])) % 11 == 0:
        return
    assert not result.check_digit_ok and result.level is VerificationLevel.READ_ONLY


@settings(deadline=None)  # a loaded machine is no failure
@given(_valid_codes(), st.integers(4, 8))
def test_adjacent_digit_swaps_are_detected(code: str, position: int) -> None:
    a, b = code[position], code[position + 1]
    remainder = compute_check_digit(code[:10])
    swapped = code[:position] + b + a + code[position + 2 :]
    if a == b or remainder == 0:
        return
    assert not read_code(swapped).check_digit_ok


@settings(deadline=None)  # a loaded machine is no failure
@given(st.text(max_size=80))
def test_read_code_never_raises_and_corrections_always_verify(text: str) -> None:
    result = read_code(text, owners=OwnerRegistry(["MSCU"]))
    if result.corrected_from is not None:
        assert result.check_digit_ok and result.code is not None
    if result.level is not VerificationLevel.READ_ONLY:
        assert result.code is not None and result.code.check_digit_ok
