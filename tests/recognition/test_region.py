"""Region-code cells (UZ, KG): CTC scoring, cell geometry, code lists, and the cell pass."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from edge.config import RecognitionConfig
from edge.devtools import synth
from edge.recognize import grammar, region
from edge.recognize.cells import cell_plate, tail_jobs
from edge.recognize.ocr import ALPHABET_INDEX, PLATE_ALPHABET, LineRead, ctc_log_likelihood
from edge.recognize.pipeline import PlateRecognizer
from tests.recognition.conftest import small_uz_plates

K = len(PLATE_ALPHABET) + 1


def _frames(rng: np.random.Generator, glyphs: str, t: int) -> tuple[np.ndarray, list[int]]:
    """Random CTC frames over blank + ``glyphs`` only (the rest of the alphabet at zero)."""
    columns = [0] + [ALPHABET_INDEX[g] + 1 for g in glyphs]
    frames = np.zeros((t, K))
    frames[:, columns] = rng.dirichlet(np.ones(len(columns)), t)
    return frames, columns


def _collapse(path: tuple[int, ...]) -> list[int]:
    out: list[int] = []
    previous = None
    for c in path:
        if c != 0 and c != previous:
            out.append(c)
        previous = c
    return out


@pytest.mark.parametrize("label", ["01", "0", "10", "00", "011"])
def test_ctc_likelihood_sums_every_alignment(label: str) -> None:
    frames, columns = _frames(np.random.default_rng(3), "01", 5)
    target = [ALPHABET_INDEX[c] + 1 for c in label]
    brute = sum(
        np.prod([frames[t, c] for t, c in enumerate(path)])
        for path in itertools.product(columns, repeat=5)
        if _collapse(path) == target
    )
    assert ctc_log_likelihood(frames, label) == pytest.approx(np.log(brute), abs=1e-9)


def test_ctc_likelihood_of_a_clean_read_and_junk_beside_it() -> None:
    def frame(glyph: str | None) -> np.ndarray:
        row = np.full(K, 1e-7)
        row[0 if glyph is None else ALPHABET_INDEX[glyph] + 1] = 1.0
        return row / row.sum()

    clean = np.stack([frame(g) for g in (None, "0", None, "1", None)])
    assert ctc_log_likelihood(clean, "01") > np.log(0.99)
    assert ctc_log_likelihood(clean, "10") < np.log(1e-6)
    # A frame's edge read as a glyph before the code: ruled out without junk, costed with it.
    edged = np.stack([frame(g) for g in ("I", None, "0", None, "1", None)])
    assert ctc_log_likelihood(edged, "01") < np.log(1e-3)
    assert ctc_log_likelihood(edged, "01", junk=0.3) == pytest.approx(np.log(0.3), abs=0.01)
    # Any two digits: the class label accepts the code.
    assert ctc_log_likelihood(clean, [grammar.DIGIT] * 2) > np.log(0.99)


def test_cell_layouts_are_the_uz_and_kg_formats_with_six_main_glyphs() -> None:
    layouts = region.cell_layouts()
    found = {(lay.format.country, lay.format.type, lay.tail.pattern) for lay in layouts}
    assert found == {
        ("UZ", "standard", "LDDDLL"),
        ("UZ", "legal", "DDDLLL"),
        ("KG", "standard", "DDDLLL"),
    }
    assert region.cell_layouts({"KZ", "RU"}) == []
    standard = next(lay for lay in layouts if lay.tail.pattern == "LDDDLL")
    assert standard.pitch_run == (1, 3)


def test_allowed_codes_follow_each_format_check() -> None:
    uz = next(f for f in grammar.FORMATS if f.country == "UZ" and f.type == "standard")
    kg = next(f for f in grammar.FORMATS if f.country == "KG" and f.type == "standard")
    assert set(region.allowed_codes(uz, "A123BC")) == grammar.UZ_REGIONS
    assert region.allowed_codes(kg, "123ABC") == [f"0{n}" for n in range(1, 10)]
    assert uz.region_cell == 2 and kg.region_cell == 2
    assert next(f for f in grammar.FORMATS if f.country == "KZ").region_cell == 0


def test_cell_lies_left_of_the_main_glyphs_along_the_plate() -> None:
    # A 100x20 crop whose glyphs sit 10 % of its width apart, the first main one at 40 %.
    quad = np.array([[0, 0], [100, 0], [100, 20], [0, 20]], np.float32)
    positions = np.array([0.4, 0.5, 0.6, 0.7, 0.8, 0.9], np.float32)
    cell = region.cell_corners(quad, positions, 0, (1, 3), left=2.4, right=0.5)
    assert cell is not None
    (x0, y0), (x1, _), (_, y1) = cell[0], cell[1], cell[2]
    assert x0 == pytest.approx(40 - 24) and x1 == pytest.approx(40 - 5)
    assert (y0 + y1) / 2 == pytest.approx(10) and y1 - y0 == pytest.approx(16)
    # A slanted crop: the cell follows its slant.
    slanted = quad + np.array([[0, 0], [0, 10], [0, 10], [0, 0]], np.float32)
    tilted = region.cell_corners(slanted, positions, 0, (1, 3), left=2.4, right=0.5)
    assert tilted is not None and tilted[1][1] > tilted[0][1]
    # No spacing to measure: no cell.
    assert region.cell_corners(quad, positions, 0, (2, 2), left=2.4, right=0.5) is None
    assert region.cell_corners(quad, positions[::-1].copy(), 0, (1, 3), left=2.4, right=0.5) is None


def test_main_line_evidence_matches_a_kept_glyph_anywhere_in_the_code() -> None:
    one = np.zeros((1, len(PLATE_ALPHABET)), np.float32)
    one[0, ALPHABET_INDEX["1"]] = 1.0
    assert region.code_log_prior(one, "01") == pytest.approx(0.0)
    assert region.code_log_prior(one, "10") == pytest.approx(0.0)
    # A glyph the line read as something else weighs like a doubtful one, not like a veto.
    assert region.code_log_prior(one, "20") == pytest.approx(np.log(region.MAIN_LINE_FLOOR))
    assert region.code_log_prior(one[:0], "20") == 0.0


def _line(text: str) -> LineRead:
    dists = np.zeros((len(text), len(PLATE_ALPHABET)), np.float32)
    for i, ch in enumerate(text):
        dists[i, ALPHABET_INDEX[ch]] = 1.0
    return LineRead(text, dists, (np.arange(len(text), dtype=np.float32) + 0.5) / len(text))


def test_tail_jobs_find_the_main_part_behind_a_misread_cell() -> None:
    layouts = region.cell_layouts()
    jobs = tail_jobs(_line("G1A728YA"), layouts)
    standard = max(jobs, key=lambda j: j.score)
    assert (standard.start, standard.text, standard.layout.format.type) == (2, "A728YA", "standard")
    assert standard.prior == 1.0  # two glyphs before the main part: the cell's own
    # A third glyph before the main part is unexplained and costs like a dropped one.
    assert max(j.score for j in tail_jobs(_line("XG1A728YA"), layouts)) < standard.score
    # Nothing is dropped at the right, and five-glyph main parts are not read for a cell.
    jobs = tail_jobs(_line("1B80338"), layouts)
    assert all(j.end == 7 and len(j.text) == 6 for j in jobs)
    # A joined read has no glyph positions: no cell to find.
    assert tail_jobs(LineRead.join([_line("A728YA")]), layouts) == []


def test_a_code_the_classifier_sees_clearly_needs_no_digits_from_the_general_reader() -> None:
    """Digits 5-7 px tall that the general reader drops (its frames all blank) can be plain
    to the classifier: its evidence of two digits counts as much as the reader's. Where it
    sees no digits, or was not asked (the unsure path), a blank read makes no plate."""
    read = _line("S333JB")
    job = max(tail_jobs(read, region.cell_layouts()), key=lambda j: j.score)
    assert (job.start, job.text) == (0, "S333JB")
    blank = np.zeros((12, 1 + len(PLATE_ALPHABET)), np.float32)
    blank[:, 0] = 1.0  # CTC blank in every frame: the reader saw nothing
    frames = [blank] * region.READ_CUTS
    assert region.code_present(frames, 2) < region.MIN_EVIDENCE
    sure = np.full((region.READ_CUTS, 2, region.NO_DIGIT + 1), np.log(0.001), np.float32)
    sure[:, 0, 0] = sure[:, 1, 1] = np.log(0.99)  # "01" in every cut
    plate = cell_plate(job, read, frames, sure, "", (0, 0, 80, 20), 3)
    assert plate is not None and plate.text == "01S333JB" and plate.country == "UZ"
    none = np.full_like(sure, np.log(0.001))
    none[:, :, region.NO_DIGIT] = np.log(0.99)
    assert cell_plate(job, read, frames, none, "", (0, 0, 80, 20), 3) is None
    assert cell_plate(job, read, frames, sure[:0], "", (0, 0, 80, 20), 3) is None


def test_czech_layout() -> None:
    found = grammar.best("3B97236")
    assert (found.text, found.country) == ("3B97236", "CZ")
    assert grammar.best("4BO4979").text == "4BO4979"  # the third place takes a letter too


def _small_uz_crops(count: int) -> list[tuple[str, np.ndarray]]:
    """Synthetic UZ plates as small as the real crops, 80 px wide, with a margin of paint."""
    return [
        (text, cv2.copyMakeBorder(plate, 6, 6, 10, 10, cv2.BORDER_CONSTANT, value=(90, 90, 90)))
        for text, plate in small_uz_plates(count, width=80, seed=7)
    ]


def test_region_cells_read_small_uz_crops(recognizer: PlateRecognizer) -> None:
    crops = _small_uz_crops(8)
    assert recognizer._cell_layouts  # on by default
    no_cells = PlateRecognizer(RecognitionConfig(region_cells=False), threads=2)
    without = [no_cells.read(image) for _, image in crops]
    with_cells = [recognizer.read(image) for _, image in crops]
    texts = [text for text, _ in crops]
    right = [bool(p) and p[0].text == text for text, p in zip(texts, with_cells, strict=True)]
    before = [bool(p) and p[0].text == text for text, p in zip(texts, without, strict=True)]
    assert sum(right) >= 7, [p[0].text if p else "" for p in with_cells]
    assert sum(right) > sum(before)
    plate = with_cells[right.index(True)][0]
    assert plate.country == "UZ" and "|" in plate.raw  # the cell's read, then the main read


def test_classified_likelihood_is_the_mean_over_cuts_of_both_digits() -> None:
    log_probs = np.full((2, 2, region.NO_DIGIT + 1), np.log(0.01), np.float32)
    log_probs[0, 0, 0], log_probs[0, 1, 1] = np.log(0.9), np.log(0.8)  # cut 1 reads 01
    log_probs[1, 0, 1], log_probs[1, 1, 0] = np.log(0.5), np.log(0.5)  # cut 2 reads 10
    assert region.classified_log_likelihood(log_probs, "01") == pytest.approx(
        (np.log(0.9 * 0.8) + np.log(0.01 * 0.01)) / 2, rel=1e-5
    )
    assert region.classified_log_likelihood(log_probs, "01") > region.classified_log_likelihood(
        log_probs, "10"
    )
    assert region.classified_log_likelihood(log_probs[:0], "01") == 0.0
    with pytest.raises(ValueError, match="2 glyphs"):
        region.classified_log_likelihood(log_probs, "123")


def test_cell_reader_reads_the_code_of_small_synthetic_cells(recognizer: PlateRecognizer) -> None:
    """The trained cell classifier on cells it never saw (synth's own drawing, not the
    training generator's): the code, and no digit where a European plate has its band."""
    rng = np.random.default_rng(11)
    right, total = 0, 0
    for _ in range(12):
        plate = synth.make_plate(rng, "UZ", rows=1)
        cut = cv2.resize(plate.image[8:104, 4:92], (18, 20), interpolation=cv2.INTER_AREA)
        log_probs = recognizer.cell_reader([cut])
        codes = sorted(grammar.UZ_REGIONS)
        best = max(codes, key=lambda c: region.classified_log_likelihood(log_probs, c))
        right += best == plate.text[:2]
        total += 1
    assert right >= 10, f"{right} of {total}"
    band = synth.make_plate(rng, "EU", rows=1).image[8:104, 0:88]
    log_probs = recognizer.cell_reader([cv2.resize(band, (18, 20), interpolation=cv2.INTER_AREA)])
    assert np.exp(log_probs[0, :, region.NO_DIGIT]).min() > 0.5, np.exp(log_probs[0]).round(2)


def test_region_cells_follow_the_config() -> None:
    on = PlateRecognizer(RecognitionConfig(), countries=["UZ", "KZ"])
    assert {layout.format.country for layout in on._cell_layouts} == {"UZ"}
    assert not PlateRecognizer(RecognitionConfig(region_cells=False))._cell_layouts


def test_clearest_cuts_are_those_where_the_classifier_sees_digits() -> None:
    log_probs = np.full((5, 2, region.NO_DIGIT + 1), np.log(0.05), np.float32)
    p_none = [0.9, 0.01, 0.5, 0.02, 0.99]  # P(no digit) at both positions, per cut
    log_probs[:, :, region.NO_DIGIT] = np.log(np.array(p_none, np.float32))[:, None]
    evidence = region.digits_per_cut(log_probs)
    assert evidence == pytest.approx([2 * np.log(1 - p) for p in p_none], rel=1e-5)
    assert region.clearest_cuts(evidence, 3) == [1, 2, 3]  # in cut order, not by rank
    assert region.clearest_cuts(evidence, 1) == [1]
    assert len(region.CELLS) == 9 and len(region.CELLS) > region.READ_CUTS
    assert [left for left, _ in region.CELLS] == sorted(left for left, _ in region.CELLS)


class _Unsure:
    """A cell classifier that sees, in every cut, ``evidence`` log P(a digit at both
    positions) and no digit in particular."""

    def __init__(self, evidence: float) -> None:
        self.evidence = evidence
        self.cuts = 0

    def __call__(self, cuts: list[np.ndarray]) -> np.ndarray:
        self.cuts += len(cuts)
        digit = np.exp(self.evidence / 2)  # P(some digit) at each of the two positions
        log_probs = np.full((len(cuts), 2, region.NO_DIGIT + 1), np.log(digit / 10), np.float32)
        log_probs[:, :, region.NO_DIGIT] = np.log1p(-digit)
        return log_probs


def test_an_unsure_classifier_leaves_the_cell_to_the_general_reader(
    recognizer: PlateRecognizer,
) -> None:
    """Between ``UNSURE_CELL_DIGITS`` and ``MIN_CELL_DIGITS`` the general reader reads the
    three ``SECOND_OPINION`` cuts and alone decides (a code filling its cut, which the
    classifier never saw in training); below, the cell is not read at all."""
    assert [region.CELLS[i][1] for i in region.SECOND_OPINION] == [0.5, 0.5, 0.5]
    assert region.UNSURE_CELL_DIGITS < region.MIN_CELL_DIGITS
    crops = _small_uz_crops(8)
    classify = recognizer.cell_reader
    try:
        reads = {}
        for evidence in (region.MIN_CELL_DIGITS - 8, region.UNSURE_CELL_DIGITS - 8):
            recognizer.cell_reader = _Unsure(evidence)  # type: ignore[assignment]
            reads[evidence] = [recognizer.read(image) for _, image in crops]
            assert recognizer.cell_reader.cuts > 0  # type: ignore[attr-defined]
    finally:
        recognizer.cell_reader = classify
    unsure, none = reads.values()
    texts = [text for text, _ in crops]
    right = sum(bool(p) and p[0].text == t for t, p in zip(texts, unsure, strict=True))
    assert right >= 6, [p[0].text if p else "" for p in unsure]
    assert any("|" in p[0].raw for p in unsure if p)  # codes read from the cell
    assert not any("|" in p.raw for plates in none for p in plates)  # no cell read


def test_a_code_read_clearly_in_line_needs_no_cell(recognizer: PlateRecognizer) -> None:
    """Plates that print the region code as large as the rest (the simulator draws UZ and KG
    plates so) are read from the line alone: the cell classifier and the general reader are
    not asked, so such frames do not pay for the cell pass."""
    from simulators.render import Plate, render_plate

    cuts_classified: list[int] = []
    classify = recognizer.cell_reader

    class Counting:
        def __call__(self, cuts: list[np.ndarray]) -> np.ndarray:
            cuts_classified.append(len(cuts))
            return classify(cuts)

    recognizer.cell_reader = Counting()  # type: ignore[assignment]
    try:
        for text in ("01A123BC", "40O222BC", "08123ABC"):
            plate = render_plate(Plate(text, "UZ" if text[2].isalpha() else "KG"), height=44)
            image = np.full((400, 1000, 3), 90, np.uint8)  # a frame, not a crop: boxes only
            image[180 : 180 + plate.shape[0], 400 : 400 + plate.shape[1]] = plate
            plates = recognizer.read(image)
            assert plates and plates[0].text == text, [p.text for p in plates]
            assert "|" not in plates[0].raw  # the line's own read, not a cell's
    finally:
        recognizer.cell_reader = classify
    assert sum(cuts_classified) == 0, cuts_classified


@pytest.mark.parametrize("body", [(70, 40, 25), (90, 60, 40)])
def test_no_region_code_is_read_off_the_vehicle_left_of_a_short_plate(
    recognizer: PlateRecognizer, body: tuple[int, int, int]
) -> None:
    """A Russian A 123 BC 77 whose box stops before its region, on a dark vehicle body: left of
    the main glyphs lies paint and a tyre, no cell. Without the background check the pass
    read 10/20/70/75 A 123 BC there, at 0.82-0.96 (seen in a 14-vehicle lane score as a
    second front plate: the crossing was split as tailgating)."""
    from simulators.render import Plate, render_plate

    plate = render_plate(Plate("A123BC77", "RU"), height=36)
    h, w = plate.shape[:2]
    for left in (20, 40, 60):
        for cut in (0.70, 0.74, 0.78):
            image = np.full((h + 24, left + int(w * cut) + 2, 3), body, np.uint8)
            cv2.circle(image, (left // 3, h + 10), 18, (15, 15, 15), -1)  # a tyre
            image[12 : 12 + h, left : left + int(w * cut)] = plate[:, : int(w * cut)]
            reads = [p.text for p in recognizer.read(image)]
            assert reads and all(not t[:2].isdigit() for t in reads), (left, cut, reads)
