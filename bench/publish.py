"""Delivery benchmark: durable outbox + publisher against a plain paho QoS 1 loop.

    python -m bench.publish [--messages N] [--rounds N] [--backlog N] [--out FILE]

All paths publish to the same local Mosquitto in the same run, taking turns for ``--rounds``
rounds; the figure that matters is each round's ratio to plain paho (the median is reported,
with the range). Then a backlog of crossings (sent after an outage) drains while live crossings keep
arriving; the live ones' latency (commit -> received by a subscriber) is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from edge.config import LaneConfig, parse_config
from edge.crossing import CrossingRecord, LaneIdentity, make_event
from edge.devtools.localbroker import LocalBroker
from edge.devtools.subscriber import Subscriber
from edge.events import EventType
from edge.outbox import Outbox
from edge.publish import Publisher
from edge.writer import WriteThread

WINDOW = 20


def lane_config(port: int, state_dir: Path, backlog_rate: float) -> str:
    return (
        "checkpoint: BENCH\nlane: L1\ndirection: entry\n"
        f"mqtt: {{host: 127.0.0.1, port: {port}, max_inflight: {WINDOW}}}\n"
        f"storage: {{state_dir: {state_dir}, backlog_rate_per_s: {backlog_rate},"
        " max_rows: 1000000}\n"
    )


def payloads(n: int) -> list[bytes]:
    ident = LaneIdentity("BENCH", "L1", "entry", 1)
    record = CrossingRecord.begin()
    return [make_event(record, EventType.END, ident, i + 1).to_json() for i in range(n)]


def write_thread(outbox: Outbox) -> WriteThread:
    """The agent's one outbox writer thread: every write below goes through it."""

    def failed(exc: BaseException) -> None:
        raise SystemExit(f"outbox write failed: {exc!r}")

    writes = WriteThread(on_error=failed)
    outbox.write_thread = writes.thread
    return writes


def quiet_publisher(config: LaneConfig, outbox: Outbox, writes: WriteThread) -> Publisher:
    """The agent's publisher without status or command handling."""
    return Publisher(
        config,
        outbox,
        writes,
        will_payload=b"offline",
        on_connected=lambda: None,
        on_command=lambda _c: None,
    )


def plain_paho(port: int, messages: list[bytes]) -> float:
    """QoS 1, same window, no persistence: messages per second until the last PUBACK."""
    done = threading.Event()
    acked = 0

    def on_publish(*_args: object) -> None:
        nonlocal acked
        acked += 1
        if acked == len(messages):
            done.set()

    client = mqtt.Client(
        callback_api_version=mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5
    )
    client.max_inflight_messages_set(WINDOW)
    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    start = time.perf_counter()
    for body in messages:
        client.publish("bench/plain", body, qos=1)
    assert done.wait(300), "plain paho did not finish"
    elapsed = time.perf_counter() - start
    client.disconnect()
    client.loop_stop()
    return len(messages) / elapsed


def durable(port: int, n: int, workdir: Path, *, batch: int) -> float:
    """Build each crossing event, commit it (or each batch) durably, publish, delete on PUBACK."""
    config = parse_config(lane_config(port, workdir, 1e9))
    outbox = Outbox(workdir / f"outbox-{batch}-{time.monotonic_ns()}.db", max_rows=1_000_000)
    writes = write_thread(outbox)
    ident = LaneIdentity("BENCH", "L1", "entry", writes.call(outbox.start_boot))
    publisher = quiet_publisher(config, outbox, writes)
    publisher.start()
    while not publisher.connected:
        time.sleep(0.01)
    record = CrossingRecord.begin()
    start = time.perf_counter()
    for first in range(0, n, batch):
        count = min(batch, n - first)
        writes.call(
            outbox.add_crossings,
            [lambda s: make_event(record, EventType.END, ident, s)] * count,
            "bench/durable",
        )
        publisher.wake()
    while outbox.size:
        time.sleep(0.002)
    elapsed = time.perf_counter() - start
    publisher.stop()
    writes.call(outbox.close)
    writes.close()
    return n / elapsed


def drain(port: int, n: int, workdir: Path) -> float:
    """The publisher alone: rows already committed, sent until the outbox is empty."""
    config = parse_config(lane_config(port, workdir, 1e9))
    outbox = Outbox(workdir / f"drain-{time.monotonic_ns()}.db", max_rows=1_000_000)
    writes = write_thread(outbox)
    ident = LaneIdentity("BENCH", "L1", "entry", writes.call(outbox.start_boot))
    record = CrossingRecord.begin()
    writes.call(
        outbox.add_crossings, [lambda s: make_event(record, EventType.END, ident, s)] * n, "bench/d"
    )
    publisher = quiet_publisher(config, outbox, writes)
    start = time.perf_counter()
    publisher.start()
    while outbox.size:
        time.sleep(0.002)
    elapsed = time.perf_counter() - start
    publisher.stop()
    writes.call(outbox.close)
    writes.close()
    return n / elapsed


def backlog_drain(port: int, backlog: int, workdir: Path, rate: float) -> dict[str, float]:
    """Drain an outage's backlog while live crossings arrive at 2 per second."""
    config = parse_config(lane_config(port, workdir, rate))
    outbox = Outbox(workdir / "backlog.db", max_rows=1_000_000, live_window_s=5)
    writes = write_thread(outbox)
    ident = LaneIdentity("BENCH", "L1", "entry", writes.call(outbox.start_boot))
    record = CrossingRecord.begin()
    for first in range(0, backlog, 5000):
        writes.call(
            outbox.add_crossings,
            [lambda s: make_event(record, EventType.END, ident, s)] * min(5000, backlog - first),
            "bench/backlog",
        )
    time.sleep(5.1)  # the whole backlog is now older than the live window
    subscriber = Subscriber("127.0.0.1", port, ["bench/live"])
    subscriber.wait_ready()
    publisher = quiet_publisher(config, outbox, writes)
    start = time.perf_counter()
    publisher.start()
    sent: dict[int, float] = {}
    latencies: list[float] = []
    next_live = start
    drained_at = None
    while drained_at is None or len(latencies) < len(sent):
        now = time.perf_counter()
        if drained_at is None and now >= next_live:
            event = writes.call(
                outbox.add_crossing,
                lambda s: make_event(record, EventType.END, ident, s),
                "bench/live",
            )
            sent[event.lane_seq] = time.perf_counter()
            publisher.wake()
            next_live += 0.5
        while not subscriber.messages.empty():
            msg = subscriber.messages.get()
            seq = json.loads(msg.payload)["lane_seq"]
            latencies.append(time.perf_counter() - sent[seq])
        if drained_at is None and outbox.size == 0:
            drained_at = time.perf_counter() - start
        if now - start > 600:
            raise RuntimeError("backlog did not drain in 10 minutes")
        time.sleep(0.01)
    publisher.stop()
    subscriber.close()
    writes.call(outbox.close)
    writes.close()
    latencies.sort()
    return {
        "backlog": backlog,
        "drain_s": round(drained_at, 1),
        "live_sent": len(sent),
        "live_p50_ms": round(statistics.median(latencies) * 1000, 1),
        "live_p95_ms": round(latencies[int(len(latencies) * 0.95) - 1] * 1000, 1),
        "live_max_ms": round(latencies[-1] * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3, help="paths take turns this often")
    parser.add_argument("--backlog", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=2000.0, help="backlog drain rate")
    parser.add_argument("--out", type=Path, default=Path("bench/RESULTS-publish.md"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lane-bench-"))
    with LocalBroker(workdir=work / "broker") as broker:
        bodies = payloads(args.messages)
        paths = {
            "plain": lambda: plain_paho(broker.port, bodies),
            "drain": lambda: drain(broker.port, args.messages, work),
            "batched": lambda: durable(broker.port, args.messages, work, batch=50),
            "single": lambda: durable(broker.port, args.messages, work, batch=1),
        }
        rates: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(args.rounds):
            for name, run in paths.items():
                rates[name].append(run())
        outage = backlog_drain(broker.port, args.backlog, work, args.rate)
    size = len(bodies[0])

    def row(label: str, name: str) -> str:
        ratios = sorted(r / p for r, p in zip(rates[name], rates["plain"], strict=True))
        rate = statistics.median(rates[name])
        return (
            f"| {label} | {rate:,.0f} | {statistics.median(ratios):.2f} "
            f"({ratios[0]:.2f}-{ratios[-1]:.2f}) |"
        )

    lines = [
        "# Delivery benchmark",
        "",
        f"Command: `python -m bench.publish --messages {args.messages} --rounds {args.rounds}"
        f" --backlog {args.backlog} --rate {args.rate:g}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f} at the end (other work on the same cores), "
        f"{platform.python_implementation()} {platform.python_version()}, local Mosquitto, "
        f"window {WINDOW}, payload {size} bytes; "
        f"run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        f"Messages per second, median of {args.rounds} rounds (paths take turns); ratio to plain",
        "paho in the same round, median (range).",
        "",
        "| path | messages/s | ratio to plain paho |",
        "|---|---:|---:|",
        f"| plain paho QoS 1 loop, no persistence | {statistics.median(rates['plain']):,.0f} "
        "| 1.00 |",
        row("publisher sending committed crossings from the outbox, delete on PUBACK", "drain"),
        row("build + commit (50 per fsync) + publish + delete, one process", "batched"),
        row("build + commit (fsync per crossing) + publish + delete", "single"),
        "",
        f"Backlog drain: {outage['backlog']:,} crossings at up to {args.rate:g}/s drained in "
        f"{outage['drain_s']} s while {outage['live_sent']} live crossings (2/s) arrived with "
        f"latency p50 {outage['live_p50_ms']} ms, p95 {outage['live_p95_ms']} ms, "
        f"max {outage['live_max_ms']} ms (commit -> subscriber).",
        "",
        "Reading: the first row is the durable publish path every crossing takes (committed",
        "rows out of SQLite, deleted only on a successful PUBACK) against paho publishing the",
        "same bytes from memory. The next rows add the producer in the same process: building",
        "each event (pydantic, JSON, ~20 us) and its commit, sharing the cores and the GIL",
        "with the publisher; with one fsync per crossing the disk's flush time bounds the rate.",
        "A lane makes about one crossing a minute, so the agent keeps the fsync per crossing.",
        "",
    ]
    text = "\n".join(lines)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
