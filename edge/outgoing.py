"""Every message the lane sends besides crossing events, handed to the outbox writer thread.

Status, device status, evidence, X-ray scans sent alone, telemetry and command replies all
go through :meth:`Outgoing.store`, which posts one job to ``edge.writer.WriteThread`` and
never waits (docs/architecture.md, Threads). A storage fault is handed to the agent's
``on_storage_fault`` (the crossing writer raises the alarm and retries); other messages are
dropped meanwhile, except the retained lane status, which goes out once unstored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from edge.cargo.xray_link import LinkedScan, scan_event
from edge.errors import StorageError
from edge.events import DeviceStatus, SensorState, utc_now
from edge.evidence import EvidenceFile
from edge.outbox import Outbox
from edge.publish import Publisher
from edge.topics import PRIORITY_CONTROL, PRIORITY_CROSSING, PRIORITY_EVIDENCE, Topics
from edge.writer import WriteThread

log = logging.getLogger(__name__)


class Outgoing:
    """The lane's non-crossing messages. ``publisher`` is set once it exists; until then
    messages are only stored (the publisher sends what is pending when it starts)."""

    def __init__(
        self,
        outbox: Outbox,
        writes: WriteThread,
        topics: Topics,
        *,
        checkpoint: str,
        lane: str,
        boot_seq: int,
        on_storage_fault: Callable[[StorageError], None],
    ) -> None:
        self.outbox = outbox
        self.writes = writes
        self.topics = topics
        self.checkpoint = checkpoint
        self.lane = lane
        self.boot_seq = boot_seq
        self.on_storage_fault = on_storage_fault  # any thread
        self.publisher: Publisher | None = None

    def store(
        self,
        *,
        kind: str,
        topic: str,
        payload: bytes,
        priority: int,
        retain: bool = False,
        properties: dict[str, object] | None = None,
        expires_in_s: float | None = None,
        unstored_on_fault: bool = False,
    ) -> None:
        """Hand one message to the outbox writer thread (never waits; any thread).

        A storage fault raises the writer's alarm; with ``unstored_on_fault`` (the retained
        lane status, which carries that alarm) the message still goes out once, unstored.
        The writer runs the jobs in order, so the newest status is the one that wins.
        """
        publisher = self.publisher

        def store() -> None:
            if unstored_on_fault and publisher is not None:
                publisher.drop_unstored(topic)  # a newer status: the unstored one is stale
            try:
                self.outbox.add_message(
                    kind=kind,
                    topic=topic,
                    payload=payload,
                    priority=priority,
                    retain=retain,
                    properties=properties,
                    expires_in_s=expires_in_s,
                )
            except StorageError as exc:
                self.on_storage_fault(exc)
                if unstored_on_fault and publisher is not None:
                    publisher.send_unstored(topic, payload, retain=retain)
                return
            if publisher is not None:
                publisher.wake()

        self.writes.post(store)

    def wake_publisher(self) -> None:
        """Crossing events were committed: the publisher sends them now."""
        if self.publisher is not None:
            self.publisher.wake()

    def evidence(self, crossing_id: str, files: list[EvidenceFile]) -> None:
        """Evidence JPEGs go out after their crossing, through the outbox (QoS 1)."""
        for f in files:
            self.store(
                kind="evidence",
                topic=self.topics.evidence(crossing_id, f.name),
                payload=f.data,
                priority=PRIORITY_EVIDENCE,
            )

    def scan(self, linked: LinkedScan) -> None:
        """An X-ray scan not carried by a crossing goes out alone (QoS 1, like crossings)."""
        event = scan_event(
            linked, checkpoint=self.checkpoint, lane=self.lane, boot_seq=self.boot_seq
        )
        log.warning(
            "X-ray scan %s from %s sent on its own (%s)%s",
            linked.scan.scan_id,
            linked.scan.device_id,
            linked.reason,
            f", linked to crossing {linked.crossing_id}" if linked.crossing_id else "",
        )
        self.store(
            kind="xray", topic=self.topics.xray, payload=event.to_json(), priority=PRIORITY_CROSSING
        )

    def device_status(self, device: str, kind: str, state: SensorState, reason: str | None) -> None:
        """The retained status of one device (``reason`` already redacted)."""
        status = DeviceStatus(
            device=device,
            kind=kind,
            state=state,
            since=utc_now(),
            last_error=reason,
            produced=utc_now(),
        )
        self.store(
            kind="status",
            topic=self.topics.device_status(device),
            payload=status.to_json(),
            priority=PRIORITY_CONTROL,
            retain=True,
        )
