"""Peak RSS of the snapshot driver on a camera: ``python -m tests.hostile.camera_rss URL N``.

Runs ``anpr.http`` until the camera has produced N faults (or 60 s pass) and prints one JSON
line: peak resident memory of this process (VmHWM) before and after, faults, frames. The
hostile camera runs in the calling process, so only the driver's memory is measured.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from drivers.readings import Frame
from drivers.registry import create_driver


def peak_rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


async def main(url: str, faults: int) -> dict[str, object]:
    import cv2  # noqa: F401  (loaded before the baseline, as in a running agent)

    baseline = peak_rss_mib()
    driver = create_driver(
        "cam1", "anpr.http", {"url": url, "interval_ms": 50}, 5000,
        backoff_min_s=0.05, backoff_max_s=0.2,
    )  # fmt: skip
    frames = 0
    await driver.open()
    deadline = time.monotonic() + 60
    try:
        while sum(driver.health().faults.values()) < faults and time.monotonic() < deadline:
            try:
                if isinstance(await driver.next_reading(0.2), Frame):
                    frames += 1
            except TimeoutError:
                pass
    finally:
        await driver.close()
    return {
        "baseline_rss_mib": round(baseline, 1),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "faults": driver.health().faults,
        "last_error": driver.health().last_error,
        "frames": frames,
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], int(sys.argv[2])))))
