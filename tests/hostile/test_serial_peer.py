"""A hostile MT-SICS indicator on a real pseudo-terminal (issue 22 #8, #11).

The peer answers every ``SI`` with whatever the test sets: absurd weights (1e300 kg,
-inf, NaN), error replies only, or a good weight. Absurd values are faults, never
readings; a scale that answers but never with a usable weight goes DEGRADED, then DOWN with
the reason, and UP again within 10 s once it answers well.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from drivers.base import SensorState
from drivers.readings import WeightReading
from drivers.registry import create_driver, validate_options
from simulators.ports import PtyPort
from tests.drivers.conftest import run, until

FAST = {"backoff_min_s": 0.05, "backoff_max_s": 0.5, "degraded_hold_s": 1.0}


class SicsPeer:
    def __init__(self) -> None:
        self.port = PtyPort()
        self.reply = b"S S      12340 kg\r\n"
        self.requests = 0

    async def start(self) -> str:
        self.port.on_data = self._on_data
        return await self.port.start()

    def _on_data(self, data: bytes) -> None:
        if b"SI" in data:
            self.requests += 1
            self.port.write(self.reply)


@pytest.mark.parametrize(
    ("reply", "fault"),
    [
        (b"S S 1e300 kg\r\n", "implausible"),
        (b"S S 250000 kg\r\n", "implausible"),
        (b"S D -9000 kg\r\n", "implausible"),
        (b"S S -inf kg\r\n", "framing"),
        (b"S S nan kg\r\n", "framing"),
        (b"ES\r\n", "device_error"),
    ],
)
def test_sics_absurd_or_refusing_scale_is_down_not_up(reply: bytes, fault: str) -> None:
    async def main() -> None:
        peer = SicsPeer()
        url = await peer.start()
        # A reply timeout a loaded machine never hits: the scale answers, with absurd values.
        driver = create_driver("wb1", "weighbridge.sics", {"url": url, "poll_ms": 50}, 1500,
                               **FAST)  # fmt: skip
        await driver.open()
        try:
            await until(lambda: driver.health().state is SensorState.UP, 10)
            peer.reply = reply
            await until(lambda: driver.health().faults.get(fault, 0) >= 3, 10)
            await until(lambda: driver.health().state is SensorState.DOWN, 10)
            reason = driver.health().last_error or ""
            assert "stale" in reason and fault in reason, reason
            readings = []
            while not driver._queue.empty():
                readings.append(driver._queue.get_nowait())
            assert all(r.gross_kg == 12_340 for r in readings if isinstance(r, WeightReading))
            peer.reply = b"S S      12340 kg\r\n"
            await until(lambda: driver.health().state is SensorState.UP, 10)
        finally:
            await driver.close()
            await peer.port.stop()

    run(main(), timeout_s=60)


def test_plausibility_bounds_are_configurable_and_validated() -> None:
    options = validate_options("weighbridge.sics", {"url": "loop://", "max_plausible_kg": 1e6})
    assert options.weight_problem(500_000) is None  # type: ignore[attr-defined]
    assert options.weight_problem(2e6) is not None  # type: ignore[attr-defined]
    for bad in (
        {"max_plausible_kg": float("inf")},
        {"min_plausible_kg": 10, "max_plausible_kg": 5},
    ):
        with pytest.raises(ValidationError):
            validate_options("weighbridge.toledo", {"url": "loop://", **bad})
    rpm = validate_options("rpm.rapiscan", {"host": "h", "max_gamma_cps": 5e6})
    assert rpm.gamma_problem(6e6) and rpm.gamma_problem(float("nan"))  # type: ignore[attr-defined]
    assert rpm.gamma_problem(1e6) is None  # type: ignore[attr-defined]
    with pytest.raises(ValidationError):
        validate_options("rpm.aspect", {"host": "h", "max_neutron_cps": 0})
