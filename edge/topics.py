"""MQTT topic names of one lane, in one place. The AsyncAPI document is generated from here."""

from __future__ import annotations

from dataclasses import dataclass

# Priority classes of the outbox, highest first.
PRIORITY_CONTROL = 0  # lane/device status, command replies
PRIORITY_CROSSING = 1  # live crossings; backlog crossings are the same rows, only older
PRIORITY_EVIDENCE = 2  # evidence images
PRIORITY_TELEMETRY = 3


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic of the contract, for the AsyncAPI document."""

    name: str
    pattern: str
    payload: str  # key of edge.events.WIRE_MODELS, or "binary"
    qos: int
    retain: bool
    direction: str  # "publish" (lane sends) or "subscribe" (lane receives)
    description: str


class Topics:
    def __init__(self, prefix: str, checkpoint: str, lane: str) -> None:
        self.base = f"{prefix}/{checkpoint}/{lane}"

    @property
    def crossing(self) -> str:
        return f"{self.base}/crossing"

    @property
    def xray(self) -> str:
        return f"{self.base}/xray"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def telemetry(self) -> str:
        return f"{self.base}/telemetry"

    def device_status(self, device: str) -> str:
        return f"{self.base}/device/{device}/status"

    def evidence(self, crossing_id: str, file: str) -> str:
        return f"{self.base}/evidence/{crossing_id}/{file}"

    @property
    def command_filter(self) -> str:
        return f"{self.base}/cmd/+"

    def command_name(self, topic: str) -> str | None:
        prefix = f"{self.base}/cmd/"
        if not topic.startswith(prefix):
            return None
        name = topic[len(prefix) :]
        return name if name and "/" not in name else None

    def reply(self, command: str) -> str:
        return f"{self.base}/cmd/{command}/reply"


def contract_topics() -> list[TopicSpec]:
    """Every topic of the contract, with the lane's address as AsyncAPI parameters."""
    t = Topics("{prefix}", "{checkpoint}", "{lane}")
    return [
        TopicSpec(
            "crossing",
            t.crossing,
            "crossing",
            1,
            False,
            "publish",
            "Crossing events: new -> update* -> end per vehicle, exactly one end for every "
            "new (a crossing a crash left open is ended on the next start with end_reason "
            "interrupted). Dedupe on event_id; lane_seq is contiguous per lane, boot_seq tells "
            "restarts from loss.",
        ),
        TopicSpec(
            "xray",
            t.xray,
            "xray-scan",
            1,
            False,
            "publish",
            "X-ray scans published on their own: one that came after its crossing's end "
            "(crossing_id names it), or one whose times fit no crossing. A scan that comes "
            "in time rides on the crossing's end instead (its xray key).",
        ),
        TopicSpec(
            "status",
            t.status,
            "lane-status",
            1,
            True,
            "publish",
            "Lane availability: online on every connect, stopped on a clean stop, "
            "offline from the broker (Last Will). Lane alarms ride along: storage.full / "
            "storage.error while the outbox cannot be written (crossings are held in memory).",
        ),
        TopicSpec(
            "device-status",
            t.device_status("{device}"),
            "device-status",
            1,
            True,
            "publish",
            "One device's health: UP, DEGRADED or DOWN with its last error.",
        ),
        TopicSpec(
            "telemetry",
            t.telemetry,
            "telemetry",
            1,
            False,
            "publish",
            "Periodic counters of the agent. Evicted first when the outbox is full.",
        ),
        TopicSpec(
            "evidence",
            t.evidence("{crossing_id}", "{file}"),
            "binary",
            1,
            False,
            "publish",
            "Evidence JPEG named in a crossing event (binary payload).",
        ),
        TopicSpec(
            "command",
            t.base + "/cmd/{command}",
            "command",
            1,
            False,
            "subscribe",
            "Commands to the lane (ping, status, outbox_stats, replay). Never retained; a "
            "retained or expired (MQTT 5 message expiry) command is not executed.",
        ),
        TopicSpec(
            "command-reply",
            t.reply("{command}"),
            "command-reply",
            1,
            False,
            "publish",
            "Reply to a command, with the request's MQTT 5 correlation data; sent to "
            "the request's response topic when it gives one.",
        ),
    ]
