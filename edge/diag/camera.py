"""`lane diag camera snapshot`: one frame, the plates in it, saved with boxes drawn on it.

Opens the camera itself, also while the agent runs: IP cameras serve several clients, and
the agent's stream is not disturbed. The plate area (``plate_area``) is drawn in blue;
plates below ``recognition.min_confidence`` (the agent ignores them) in orange.
`lane diag camera overlay` asks the running agent what it learned each camera stamps into
its pictures (date, time, name: edge/recognize/overlay.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import cv2
import numpy as np

from drivers.readings import Frame
from edge.config import LaneConfig
from edge.diag import control
from edge.diag.devices import budget_s, find_device, open_driver
from edge.diag.errors import DiagError
from edge.diag.models import (
    CameraOverlayReport,
    OverlayOutput,
    PlateBox,
    SnapshotOutput,
)
from edge.errors import DeviceError

GREEN, ORANGE, BLUE = (40, 200, 40), (0, 140, 255), (255, 120, 0)


async def grab(config: LaneConfig, camera: str) -> np.ndarray:
    device = find_device(config, camera, kind_prefix="anpr.")
    driver = open_driver(device)
    deadline = time.monotonic() + max(5.0, budget_s(device))
    await driver.open()
    try:
        while (left := deadline - time.monotonic()) > 0:
            try:
                reading = await driver.next_reading(min(left, 0.5))
            except TimeoutError:
                continue
            if isinstance(reading, Frame):
                return reading.image
        error = driver.health().last_error or "no frame"
        raise DeviceError(f"camera {camera} gave no frame in time: {error}")
    finally:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5.0):
                await driver.close()


async def snapshot(config: LaneConfig, camera: str, out: Path) -> SnapshotOutput:
    from edge.recognize.pipeline import PlateRecognizer

    if out.suffix.lower() not in (".jpg", ".jpeg", ".png", ".bmp"):
        raise DeviceError(f"{out}: save as .jpg or .png")
    image = await grab(config, camera)
    recognizer = await asyncio.to_thread(PlateRecognizer, config.recognition)
    started = time.perf_counter()
    results = await asyncio.to_thread(recognizer.read, image)
    spent_ms = (time.perf_counter() - started) * 1000
    annotated = image.copy()
    height, width = image.shape[:2]
    area = find_device(config, camera).plate_area
    if area is not None:
        x, y, w, h = area
        cv2.rectangle(
            annotated,
            (int(x * width), int(y * height)),
            (int((x + w) * width), int((y + h) * height)),
            BLUE,
            2,
        )
    plates = []
    for result in results:
        x, y, w, h = (int(v) for v in result.box)
        colour = GREEN if result.confidence >= config.recognition.min_confidence else ORANGE
        cv2.rectangle(annotated, (x, y), (x + w, y + h), colour, 2)
        label = f"{result.text} {result.confidence:.2f}"
        cv2.putText(
            annotated,
            label,
            (x, max(14, y - 6)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.6,
            colour,
            2,
            cv2.LINE_AA,
        )
        plates.append(
            PlateBox(
                text=result.text,
                confidence=round(result.confidence, 4),
                country=result.country,
                box=(x, y, w, h),
            )
        )
    stamp = f"{camera} {time.strftime('%Y-%m-%d %H:%M:%S')} {len(plates)} plate(s)"
    cv2.putText(
        annotated,
        stamp,
        (8, height - 10),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.5,
        (255, 255, 255),
        1,
        cv2.LINE_AA,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), annotated):
        raise DeviceError(f"cannot write the image to {out}")
    return SnapshotOutput(
        camera=camera,
        out=str(out),
        width=width,
        height=height,
        recognition_ms=round(spent_ms, 1),
        plates=plates,
    )


def overlay(config: LaneConfig, camera: str | None = None) -> OverlayOutput:
    """The running agent's learned overlay of each camera (or of ``camera``)."""
    if camera is not None:
        find_device(config, camera, kind_prefix="anpr.")
    state_dir = config.storage.resolved_state_dir()
    if control.agent_pid(state_dir) is None:
        raise DiagError(
            f"no agent runs on lane {config.lane}: the overlay is learned by the running agent "
            f"(start it: systemctl start lane@{config.lane})"
        )
    data = control.overlay(state_dir)
    if data is None:
        raise DiagError("the agent is still opening its devices: ask again in a few seconds")
    areas = {d.id: d.plate_area for d in config.devices}
    return OverlayOutput(
        cameras=[
            CameraOverlayReport(
                camera=name,
                frames_read=report.frames_read,
                reads_ignored=report.reads_ignored,
                regions=report.regions,
                plate_area=areas.get(name),
            )
            for name, report in sorted(data.items())
            if camera is None or name == camera
        ]
    )
