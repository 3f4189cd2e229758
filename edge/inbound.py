"""What arrives over MQTT, checked before anything acts on it: JSON bodies and reply topics.

Everything here is pure and raises only :class:`InboundError`: a command or a neighbour's
event that is too large, too deep, not JSON, or names a reply topic the lane may not publish
to is refused with that error's message, and the stage that received it carries on.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

MAX_TOPIC_BYTES = 65_535  # MQTT 5 section 1.5.4: a UTF-8 string is at most 65,535 bytes


class InboundError(ValueError):
    """A message from the network that the lane refuses; the text says why."""


def parse_json(payload: bytes, *, max_bytes: int, max_depth: int) -> object:
    """The JSON value of ``payload``, refused when larger or deeper than the limits.

    ``json.loads`` in C raises ``RecursionError`` (not a ``ValueError``) on deep nesting, so
    it is caught here; the depth of what did parse is measured without recursion.
    """
    if len(payload) > max_bytes:
        raise InboundError(f"payload of {len(payload):,} bytes is over the limit of {max_bytes:,}")
    try:
        value = json.loads(payload)
    except RecursionError:
        raise InboundError(f"JSON nested deeper than {max_depth} levels") from None
    except (ValueError, TypeError) as exc:  # UnicodeDecodeError is a ValueError
        raise InboundError(f"not JSON: {exc}") from None
    if _depth_over(value, max_depth):
        raise InboundError(f"JSON nested deeper than {max_depth} levels")
    return value


def _depth_over(value: object, limit: int) -> bool:
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Sequence[object] = list(item.values())
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT topic filter matching (``+`` one level, ``#`` the rest), section 4.7."""
    wanted = topic_filter.split("/")
    levels = topic.split("/")
    for i, part in enumerate(wanted):
        if part == "#":
            return True
        if i >= len(levels) or (part != "+" and part != levels[i]):
            return False
    return len(wanted) == len(levels)


def check_reply_topic(topic: str, allowed: Sequence[str]) -> str:
    """``topic`` when the lane may publish a reply there, else :class:`InboundError`.

    A reply topic is a topic name, never a filter (no ``+``/``#``), never a ``$`` system topic,
    and must match one of the ``allowed`` filters.
    """
    if not topic:
        raise InboundError("empty response topic")
    if len(topic.encode("utf-8", "surrogatepass")) > MAX_TOPIC_BYTES:
        raise InboundError("response topic longer than 65,535 bytes")
    if "+" in topic or "#" in topic:
        raise InboundError(f"response topic {topic!r} holds a wildcard")
    if topic.startswith("$"):
        raise InboundError(f"response topic {topic!r} is a $ system topic")
    if "\x00" in topic or any(0xD800 <= ord(c) <= 0xDFFF for c in topic):
        raise InboundError("response topic holds a NUL or an unpaired surrogate")
    if not any(topic_matches(f, topic) for f in allowed):
        raise InboundError(f"response topic {topic!r} is outside {', '.join(allowed)}")
    return topic


class TokenBucket:
    """Admission at ``rate_per_s`` with bursts of ``burst``: a flood is cut, a person is not."""

    def __init__(self, rate_per_s: float, burst: int) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._tokens = float(burst)
        self._at = time.monotonic()

    def take(self, count: float = 1.0, *, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rate_per_s)
        self._at = now
        if self._tokens < count:
            return False
        self._tokens -= count
        return True


class WindowBudget:
    """At most ``limit`` units in any ``window_s``: what a replay may cost per minute."""

    def __init__(self, limit: int, window_s: float = 60.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._spent: list[tuple[float, int]] = []

    def available(self, *, now: float | None = None) -> int:
        now = time.monotonic() if now is None else now
        self._spent = [(at, n) for at, n in self._spent if now - at < self.window_s]
        return max(0, self.limit - sum(n for _at, n in self._spent))

    def spend(self, count: int, *, now: float | None = None) -> None:
        if count > 0:
            self._spent.append((time.monotonic() if now is None else now, count))

    def retry_after_s(self, *, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        if not self._spent:
            return 0.0
        return max(0.0, self._spent[0][0] + self.window_s - now)
