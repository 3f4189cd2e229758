"""The lane's MQTT commands (``<base>/cmd/<name>``): admission, the worker, the replies.

A command arrives on the publisher's thread; :meth:`LaneCommands.admit` only takes a token
(``mqtt.command_rate_per_s`` / ``command_burst``) and forwards it to the loop, into a queue
of ``COMMAND_QUEUE``; a flood beyond either is dropped unanswered (an answer would amplify
it) and counted. The ``commands`` part (:meth:`LaneCommands.serve`) runs each command in a
worker thread, never on the loop nor on the publishing path (a replay writes thousands of
rows, on the outbox writer thread like every write), and queues its reply:

    ping          {"pong": true, "boot_seq": N}
    status        the retained lane status again: {"republished": true}
    outbox_stats  the outbox figures
    replay        {"from_seq": N, "to_seq": M}: those crossing events again (a lane_seq gap)

A refused command (bad payload, reply topic, unknown name) is answered ``ok: false`` and
counted, without a traceback.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from edge.config import MqttConfig
from edge.errors import StorageError
from edge.events import CommandReply, utc_now
from edge.inbound import InboundError, TokenBucket, WindowBudget, check_reply_topic, parse_json
from edge.logs import worth_logging
from edge.metrics import LaneMetrics
from edge.outbox import Outbox
from edge.outgoing import Outgoing
from edge.publish import Command
from edge.supervisor import IDLE_BEAT_S, Supervisor
from edge.topics import PRIORITY_CONTROL, Topics
from edge.writer import WriteThread

log = logging.getLogger(__name__)

COMMAND_REPLY_EXPIRY_S = 60
COMMAND_QUEUE = 64  # admitted commands waiting for the worker; more are dropped


class BadCommand(ValueError):
    """A command whose payload or arguments are wrong: refused in the reply, no traceback."""


class LaneCommands:
    """Admits, runs and answers the lane's commands; ``refused`` and ``dropped`` count."""

    def __init__(
        self,
        mqtt: MqttConfig,
        topics: Topics,
        *,
        boot_seq: int,
        outbox: Outbox,
        writes: WriteThread,
        outgoing: Outgoing,
        supervisor: Supervisor,
        metrics: LaneMetrics,
        republish_status: Callable[[], None],
        on_storage_fault: Callable[[StorageError], None],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.mqtt = mqtt
        self.topics = topics
        self.boot_seq = boot_seq
        self.outbox = outbox
        self.writes = writes
        self.outgoing = outgoing
        self.supervisor = supervisor
        self.republish_status = republish_status
        self.on_storage_fault = on_storage_fault
        self.loop = loop
        self.refused = 0
        self.dropped = 0
        self._bucket = TokenBucket(mqtt.command_rate_per_s, mqtt.command_burst)
        self._replay_budget = WindowBudget(mqtt.replay_events_per_minute)
        self._queue: asyncio.Queue[Command] = asyncio.Queue(COMMAND_QUEUE)
        self._handlers: dict[str, Callable[[Command], dict[str, object]]] = {
            "ping": lambda _cmd: {"pong": True, "boot_seq": self.boot_seq},
            "status": self._status,
            "outbox_stats": lambda _cmd: self.outbox.stats().as_dict(),
            "replay": self._replay,
        }
        metrics.watch_counts(
            commands_dropped=(
                "Commands dropped unanswered (rate limit, full queue).",
                lambda: self.dropped,
            ),
            commands_refused=(
                "Commands refused with a reply (bad payload, reply topic, unknown).",
                lambda: self.refused,
            ),
        )

    # --- admission (publisher thread) and the worker (the `commands` part) ----------------

    def admit(self, command: Command) -> None:
        """Publisher thread: admit the command (rate limit) and hand it to the loop.

        Command work (a replay writes thousands of rows) never runs on the publishing path;
        a flood beyond ``mqtt.command_rate_per_s`` / ``command_burst`` or a full queue is
        dropped unanswered (an answer would amplify it) and counted.
        """
        loop = self.loop
        if not self._bucket.take() or loop.is_closed():
            self._drop(command, "over the command rate limit")
            return
        loop.call_soon_threadsafe(self._enqueue, command)

    def _enqueue(self, command: Command) -> None:
        try:
            self._queue.put_nowait(command)
        except asyncio.QueueFull:
            self._drop(command, f"{COMMAND_QUEUE} commands already waiting")

    def _drop(self, command: Command, why: str) -> None:
        self.dropped += 1
        if worth_logging(self.dropped):
            log.warning(
                "command %s dropped unanswered (%d so far): %s", command.name, self.dropped, why
            )

    async def serve(self) -> None:
        while True:
            self.supervisor.beat("commands")
            try:
                async with asyncio.timeout(IDLE_BEAT_S):
                    command = await self._queue.get()
            except TimeoutError:
                continue  # no command: idle by design
            await asyncio.to_thread(self.handle, command)

    def handle(self, command: Command) -> None:
        """Run one command and queue its reply (a worker thread, never the loop).

        A command whose response topic the lane may not publish to is not executed; its
        refusal goes to the lane's own reply topic (with the correlation data), so neither a
        wildcard nor another lane's topic ever reaches the outbox.
        """
        reply_topic = self.topics.reply(command.name)
        handler = self._handlers.get(command.name)
        try:
            if len(command.payload) > self.mqtt.max_command_bytes:
                raise InboundError(
                    f"command of {len(command.payload):,} bytes is over the limit of "
                    f"{self.mqtt.max_command_bytes:,}"
                )
            if command.response_topic is not None:
                reply_topic = check_reply_topic(
                    command.response_topic, [reply_topic, *self.mqtt.reply_topics]
                )
            if handler is None:
                raise BadCommand(f"unknown command; known: {', '.join(sorted(self._handlers))}")
            reply = CommandReply(
                command=command.name, ok=True, result=handler(command), produced=utc_now()
            )
        except StorageError as exc:  # e.g. a replay on a full disk: expected, no traceback
            self.on_storage_fault(exc)
            reply = CommandReply(command=command.name, ok=False, error=str(exc), produced=utc_now())
        except (BadCommand, InboundError) as exc:
            self.refused += 1
            if worth_logging(self.refused):
                log.warning("command %s refused (%d so far): %s", command.name, self.refused, exc)
            reply = CommandReply(command=command.name, ok=False, error=str(exc), produced=utc_now())
        except Exception as exc:
            log.exception("command %s failed", command.name)
            reply = CommandReply(command=command.name, ok=False, error=str(exc), produced=utc_now())
        properties: dict[str, object] = {"expiry_s": COMMAND_REPLY_EXPIRY_S}
        if command.correlation_data is not None:
            properties["correlation_data"] = command.correlation_data.hex()
        self.outgoing.store(
            kind="reply",
            topic=reply_topic,
            payload=reply.to_json(),
            priority=PRIORITY_CONTROL,
            properties=properties,
            expires_in_s=COMMAND_REPLY_EXPIRY_S,
        )

    # --- the commands ---------------------------------------------------------------------

    def _status(self, _command: Command) -> dict[str, object]:
        self.republish_status()
        return {"republished": True}

    def _replay(self, command: Command) -> dict[str, object]:
        """``{"from_seq": N, "to_seq": M}``: send those crossing events again (a lane_seq gap)."""
        try:
            body = self._body(command)
            if not isinstance(body, dict):
                raise TypeError("the body is a JSON object")
            first, last = body["from_seq"], body["to_seq"]
            if not (isinstance(first, int) and isinstance(last, int)):
                raise TypeError("lane_seq values are integers")
        except (ValueError, TypeError, KeyError) as exc:
            raise BadCommand(f'replay takes {{"from_seq": N, "to_seq": M}}: {exc}') from exc
        mqtt = self.mqtt
        if not 1 <= first <= last:
            raise BadCommand(f"a lane_seq range runs from 1 up: got {first}..{last}")
        if last - first >= mqtt.replay_max_events:
            raise BadCommand(
                f"at most {mqtt.replay_max_events} events per replay: ask for smaller ranges"
            )
        # A 32-byte request must not make the lane re-send megabytes without end: the events
        # of all replays in a minute are bounded, and the reply names what it refused.
        allowed = min(last - first + 1, self._replay_budget.available())
        result: dict[str, object] = {"queued": 0, "pending": 0, "not_kept": []}
        if allowed:
            replay = self.writes.call(
                self.outbox.replay, first, first + allowed - 1, self.topics.crossing
            )
            self._replay_budget.spend(replay.queued)
            result = replay.as_dict()
        if first + allowed <= last:
            result["refused"] = [[first + allowed, last]]
            result["retry_after_s"] = round(self._replay_budget.retry_after_s(), 1)
        log.info(
            "replay of lane_seq %d..%d requested: %s queued again, %s still pending, not kept %s,"
            " refused %s",
            first,
            last,
            result["queued"],
            result["pending"],
            result["not_kept"] or "none",
            result.get("refused") or "none",
        )
        return result

    def _body(self, command: Command) -> object:
        mqtt = self.mqtt
        return parse_json(
            command.payload, max_bytes=mqtt.max_command_bytes, max_depth=mqtt.max_json_depth
        )
