"""The publisher reads rows ahead of its window, but a new row still goes out in send order."""

from __future__ import annotations

from pathlib import Path

from edge.config import parse_config
from edge.outbox import Outbox
from edge.publish import Publisher
from edge.topics import PRIORITY_CONTROL, PRIORITY_TELEMETRY
from edge.writer import WriteThread

CONFIG = """
checkpoint: KZ-1
lane: T1
direction: entry
mqtt: {host: 127.0.0.1, port: 1, max_inflight: 5}
storage: {state_dir: STATE}
"""


def test_a_row_stored_after_the_read_ahead_goes_first(tmp_path: Path) -> None:
    config = parse_config(CONFIG.replace("STATE", str(tmp_path)))
    outbox = Outbox(tmp_path / "o.db")
    for i in range(200):
        outbox.add_message(
            kind="telemetry", topic=f"t/{i}", payload=b"x", priority=PRIORITY_TELEMETRY
        )
    writes = WriteThread(on_error=lambda exc: None)
    try:
        publisher = Publisher(
            config, outbox, writes, will_payload=b"", on_connected=lambda: None,
            on_command=lambda _c: None,
        )  # fmt: skip
        first = publisher._next_rows(5)
        assert [r.topic for r in first] == [f"t/{i}" for i in range(5)]
        outbox.add_message(kind="status", topic="s", payload=b"{}", priority=PRIORITY_CONTROL)
        publisher.wake()
        # The rows read ahead (t/5 ... t/49) are dropped: the status row is first.
        assert [r.topic for r in publisher._next_rows(5)] == ["s", "t/0", "t/1", "t/2", "t/3"]
    finally:
        writes.close()
        outbox.close()
