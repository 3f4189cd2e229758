"""Loop detector fault detection (IRIS auto-fail semantics), pure and clock-injected."""

from __future__ import annotations

from collections import deque

from drivers.readings import LoopFault


class LoopMonitor:
    """Watches one loop input: chatter, locked on, no hits.

    - chatter: more than ``chatter_changes`` state changes within ``chatter_window_s``;
    - locked on: occupied for longer than ``locked_on_s`` (no truck takes that long);
    - no hits: no rising edge for ``no_hits_s`` (None disables; quiet lanes exist).
    """

    def __init__(
        self,
        *,
        chatter_changes: int = 6,
        chatter_window_s: float = 1.0,
        locked_on_s: float = 300.0,
        no_hits_s: float | None = None,
        now: float = 0.0,
    ) -> None:
        self.chatter_changes = chatter_changes
        self.chatter_window_s = chatter_window_s
        self.locked_on_s = locked_on_s
        self.no_hits_s = no_hits_s
        self._changes: deque[float] = deque()
        self._state: bool | None = None
        self._on_since: float | None = None
        self._last_hit = now
        self.hits = 0

    def update(self, state: bool, now: float) -> LoopFault | None:
        if self._state is not None and state != self._state:
            self._changes.append(now)
            if state:
                self.hits += 1
                self._last_hit = now
        self._state = state
        if state and self._on_since is None:
            self._on_since = now
        elif not state:
            self._on_since = None
        while self._changes and now - self._changes[0] > self.chatter_window_s:
            self._changes.popleft()
        if len(self._changes) > self.chatter_changes:
            return LoopFault.CHATTER
        if self._on_since is not None and now - self._on_since > self.locked_on_s:
            return LoopFault.LOCKED_ON
        if self.no_hits_s is not None and now - self._last_hit > self.no_hits_s:
            return LoopFault.NO_HITS
        return None
