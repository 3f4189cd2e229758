"""Reconnect backoff: capped, exponential, jittered, reset on success."""

from __future__ import annotations

import random

from edge.publish import Backoff


def test_backoff_grows_is_capped_and_jittered() -> None:
    backoff = Backoff(0.5, 8.0, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(12)]
    assert all(0.5 <= d <= 8.0 for d in delays)
    caps = [min(8.0, 0.5 * 2**i) for i in range(12)]
    assert all(d <= cap for d, cap in zip(delays, caps, strict=True))
    assert len({round(d, 6) for d in delays[5:]}) > 1  # jitter: clients do not stampede
    backoff.reset()
    assert backoff.next_delay() == 0.5  # the first retry after a success is quick again
