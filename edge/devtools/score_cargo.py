"""The cargo figures of `lane score`: container codes, ADR plates, X-ray links and alarms.

Each crossing was already matched to its scenario vehicle
(:func:`edge.devtools.score.match_crossings`); this compares the first ``end`` of each with the
vehicle's ``cargo`` truth.

- ``container_exact``: vehicles with containers whose crossing carries exactly their codes
  (a box painted with a wrong check digit counts when it is carried as read, ``read_only``).
- ``container_wrong_verified``: codes reported above ``read_only`` whose check digit is wrong
  (must be 0), and ``container_verified_not_painted``: verified codes the vehicle does not carry.
- ``adr_exact``: vehicles with an orange plate whose ``adr`` has their Kemler and UN numbers.
- ``xray_linked``: scanned vehicles whose crossing carries their scan, or whose scan went out
  alone on the xray topic naming that crossing.
- false alarms of each kind: ``cargo.dangerous_goods`` / ``cargo.adr_mismatch`` on a vehicle
  without an orange plate (the scenario's plates always agree front and rear), and
  ``cargo.xray_mismatch`` where none was injected; ``xray_mismatch_raised`` of the injected.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from edge.devtools.score import Matching


def _codes(event: dict[str, Any]) -> list[dict[str, Any]]:
    return list(event.get("containers") or [])


def _alarms(event: dict[str, Any]) -> set[str]:
    return {a["code"] for a in event.get("alarms", ())}


def _ratio(good: int, total: int) -> float | None:
    return round(good / total, 4) if total else None


def cargo_score(
    truth: list[dict[str, Any]],
    ends: list[tuple[dict[str, Any], float]],
    matching: Matching,
    scans_alone: list[dict[str, Any]],
) -> dict[str, Any]:
    from edge.cargo.iso6346 import read_code

    boxes_total = boxes_exact = wrong_verified = verified_not_painted = 0
    adr_total = adr_exact = 0
    scans_total = scans_linked = 0
    injected = raised = 0
    false_alarms: Counter[str] = Counter()
    wrong: list[str] = []
    alone_by_crossing = {s.get("crossing_id"): s for s in scans_alone if s.get("crossing_id")}
    for ti, cis in matching.matches.items():
        cargo = truth[ti].get("cargo")
        if cargo is None:
            continue
        event = ends[cis[0]][0]
        alarms = _alarms(event)
        painted = {b["code"] for b in cargo.get("containers", [])}
        read = _codes(event)
        for box in read:
            verified = box["verification"] != "read_only"
            if verified and not read_code(box["code"]).check_digit_ok:
                wrong_verified += 1
            if verified and box["code"] not in painted:
                verified_not_painted += 1
        if painted:
            boxes_total += 1
            if {b["code"] for b in read} == painted:
                boxes_exact += 1
            else:
                wrong.append(
                    f"vehicle {ti}: {sorted(painted)} -> {sorted(b['code'] for b in read)}"
                )
        adr = cargo.get("adr")
        if adr is not None:
            adr_total += 1
            got = event.get("adr") or {}
            if (got.get("kemler"), got.get("un")) == (adr["kemler"], adr["un"]):
                adr_exact += 1
            else:
                wrong.append(f"vehicle {ti}: ADR {adr['kemler']}/{adr['un']} -> {got or None}")
        else:
            for code in ("cargo.dangerous_goods", "cargo.adr_mismatch"):
                false_alarms[code] += code in alarms
        if adr is not None:
            false_alarms["cargo.adr_mismatch"] += "cargo.adr_mismatch" in alarms
        xray = cargo.get("xray")
        if xray is not None:
            scans_total += 1
            on_event = (event.get("xray") or {}).get("scan_id") == xray["scan_id"]
            alone = alone_by_crossing.get(event["crossing_id"])
            linked = on_event or (alone is not None and alone["xray"]["scan_id"] == xray["scan_id"])
            scans_linked += linked
            if not linked:
                wrong.append(f"vehicle {ti}: scan {xray['scan_id']} not linked")
            mismatch = "cargo.xray_mismatch" in alarms or bool(
                alone and any(a["code"] == "cargo.xray_mismatch" for a in alone.get("alarms", ()))
            )
            if xray["mismatch"]:
                injected += 1
                raised += mismatch
                if not mismatch:
                    wrong.append(f"vehicle {ti}: injected X-ray mismatch not raised")
            else:
                false_alarms["cargo.xray_mismatch"] += mismatch
                if mismatch:
                    message = next(
                        (
                            a["message"]
                            for a in event.get("alarms", ())
                            if a["code"] == "cargo.xray_mismatch"
                        ),
                        "on the scan sent alone",
                    )
                    wrong.append(f"vehicle {ti}: false X-ray mismatch: {message}")
    return {
        "container_exact": _ratio(boxes_exact, boxes_total),
        "container_vehicles": boxes_total,
        "container_wrong_verified": wrong_verified,
        "container_verified_not_painted": verified_not_painted,
        "adr_exact": _ratio(adr_exact, adr_total),
        "adr_vehicles": adr_total,
        "xray_linked": _ratio(scans_linked, scans_total),
        "xray_scans": scans_total,
        "xray_scans_alone": Counter(s.get("reason") for s in scans_alone),
        "xray_mismatch_injected": injected,
        "xray_mismatch_raised": raised,
        "cargo_false_alarms": dict(sorted(false_alarms.items())),
        "cargo_wrong": wrong,
    }
