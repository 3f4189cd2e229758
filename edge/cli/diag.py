"""`lane diag ...`: the technician's commands. Human output by default, ``--json`` for scripts.

Exit codes are defined on the error classes in ``edge.diag.errors`` and listed in
docs/diagnostics.md.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge.config import LaneConfig
from edge.diag.errors import DeclinedError, LaneProblemsError
from edge.diag.load import load_lane_config
from edge.diag.models import ErrorOutput, Report
from edge.diag.output import Printer, Progress, age, size
from edge.errors import ConfigError, LaneError
from edge.redact import install_log_redaction, redact_text, remember

Handler = Callable[[argparse.Namespace, LaneConfig, Printer], int]


def add_parser(sub: argparse._SubParsersAction) -> None:
    diag = sub.add_parser("diag", help="see, test and explain a lane (for technicians)")
    dsub = diag.add_subparsers(dest="diag_command", required=True, metavar="WHAT")

    def command(name: str, help_text: str, handler: Handler, **kw: Any) -> argparse.ArgumentParser:
        parser = dsub.add_parser(name, help=help_text, **kw)
        _common(parser, handler)
        return parser

    status = command("status", "agent, broker, outbox, devices, disk", cmd_status)
    status.add_argument("--seconds", type=float, help="agent stopped: time per device probe")

    probe = command("probe", "open a device: identity, values, latency, raw frames", cmd_probe)
    probe.add_argument("device", help="device id from the lane config")
    probe.add_argument("--seconds", type=float, help="how long to read (default by timeout)")

    watch = command("watch", "live readings of a device, refreshed in place", cmd_watch)
    watch.add_argument("device", help="device id from the lane config")
    watch.add_argument("--count", type=int, help="stop after N samples (default: Ctrl-C)")
    watch.add_argument("--interval", type=float, default=0.5, help="seconds per sample")

    outbox = dsub.add_parser("outbox", help="the outbox: stats, list, requeue, export")
    osub = outbox.add_subparsers(dest="outbox_command", required=True)
    _common(osub.add_parser("stats", help="pending, rejected, oldest age, alarms"), cmd_ob_stats)
    listing = osub.add_parser("list", help="pending (default) or rejected rows")
    _common(listing, cmd_ob_list)
    listing.add_argument(
        "--rejected", action="store_true", help="rows the broker refused, with the reason"
    )
    listing.add_argument("-n", type=int, default=50, help="how many (default 50)")
    _common(osub.add_parser("requeue", help="send rejected rows again"), cmd_ob_requeue)
    export = osub.add_parser("export", help="rows with payloads as JSON lines")
    _common(export, cmd_ob_export)
    export.add_argument("--out", type=Path, required=True, help="file ('-': stdout)")
    export.add_argument(
        "--state",
        choices=["pending", "rejected", "all"],
        default="all",
        help="which rows (default all)",
    )

    mqtt = dsub.add_parser("mqtt", help="the broker as the lane sees it")
    msub = mqtt.add_subparsers(dest="mqtt_command", required=True)
    check = msub.add_parser("check", help="log in, publish, receive, round trip, ACL, TLS")
    _common(check, cmd_mqtt_check)
    check.add_argument("--timeout", type=float, default=5.0, help="seconds per step")

    scale = command("scale", "zero or tare the weighbridge (asks first)", cmd_scale)
    scale.add_argument(
        "action", choices=["zero", "tare"], help="zero the empty scale, or tare a load"
    )
    scale.add_argument("--device", help="which scale (default: the only one)")
    scale.add_argument("--yes", action="store_true", help="do not ask")

    barrier = command("barrier", "open or close the barrier (asks first)", cmd_barrier)
    barrier.add_argument("action", choices=["open", "close"], help="what the barrier does")
    barrier.add_argument("--device", help="which lane I/O module (default: the only one)")
    barrier.add_argument("--yes", action="store_true", help="do not ask")

    camera = dsub.add_parser("camera", help="camera checks")
    csub = camera.add_subparsers(dest="camera_command", required=True)
    snap = csub.add_parser("snapshot", help="grab a frame, read plates, save it annotated")
    _common(snap, cmd_snapshot)
    snap.add_argument("camera", help="camera device id from the lane config")
    snap.add_argument("--out", type=Path, required=True, help="image file (.jpg, .png)")
    learned = csub.add_parser(
        "overlay",
        help="what the running agent learned each camera stamps into its pictures",
        description="Where each camera's date/time/name stamp is, as the running agent "
        "learned it from its reads (those reads are never taken for plates), and why.",
    )
    _common(learned, cmd_overlay)
    learned.add_argument("camera", nargs="?", help="one camera (default: all)")

    bundle = command("bundle", "one archive for support (no secrets)", cmd_bundle)
    bundle.add_argument("--out", type=Path, required=True, help="archive (.tar.gz)")
    bundle.add_argument("--crossings", type=int, default=200, help="last N crossing events")

    explain = command("explain", "every reading, vote and decision behind a crossing", cmd_explain)
    explain.add_argument("crossing_id", help="from `lane events tail` or the event itself")


def _common(parser: argparse.ArgumentParser, handler: Handler) -> None:
    parser.add_argument("--config", "-c", required=True, type=Path, help="lane config (YAML)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=lambda args: _run(args, handler))


def _run(args: argparse.Namespace, handler: Handler) -> int:
    """Load the config, run, and map every failure to its exit code (JSON too with --json)."""
    printer = Printer()
    # Drivers log each device that goes down; diag states that in its own output already.
    logging.getLogger("drivers").setLevel(max(logging.ERROR, logging.getLogger().level))
    try:
        config, unreadable = load_lane_config(args.config)
        remember(config)  # what diag prints holds none of the secrets it could read
        install_log_redaction()
        for problem in unreadable:
            print(f"warning: {problem} (commands that need it will fail)", file=sys.stderr)
        return handler(args, config, printer)
    except ConfigError as exc:
        return _fail(args, printer, "; ".join(str(p) for p in exc.problems), exc.exit_code, None)
    except LaneError as exc:
        return _fail(args, printer, str(exc), exc.exit_code, getattr(exc, "report", None))
    except OSError as exc:  # a file we were told to write, a path we cannot read
        where = f" {exc.filename}" if exc.filename else ""
        return _fail(args, printer, f"{exc.strerror or exc}{where}", 1, None)


def _fail(
    args: argparse.Namespace, printer: Printer, message: str, code: int, report: object
) -> int:
    message = redact_text(message)
    if args.json:
        if isinstance(report, Report):
            print(redact_text(report.to_json()))
        print(ErrorOutput(error=message, exit_code=code).to_json(), file=sys.stderr)
    else:
        if isinstance(report, Report):
            _print_report(report, printer)
        print(f"error: {message}", file=sys.stderr)
    return code


def _print_report(report: Report, printer: Printer) -> None:
    from edge.diag.models import MqttCheckOutput

    if isinstance(report, MqttCheckOutput):
        _human_mqtt(report, printer)


def _emit(args: argparse.Namespace, report: Report) -> None:
    if args.json:
        print(redact_text(report.to_json()), flush=True)


# --- status ---------------------------------------------------------------------------------


def cmd_status(args: argparse.Namespace, config: LaneConfig, p: Printer) -> int:
    from edge.diag.status import collect

    with Progress("looking at the lane", enabled=not args.json):
        report = collect(config, seconds=args.seconds)
    if args.json:
        _emit(args, report)
    else:
        a = report.agent
        p.line(f"lane {report.checkpoint}/{report.lane}")
        if a.running:
            up = f", up {a.uptime_s:.0f} s" if a.uptime_s is not None else ""
            boot = f", boot_seq {a.boot_seq}" if a.boot_seq is not None else ""
            p.field("agent", f"RUNNING (pid {a.pid}){up}{boot}", "ok")
        else:
            p.field("agent", "NOT RUNNING (devices probed directly)", "bad")
        if report.broker is not None:
            b = report.broker
            state = "connected" if b.connected else f"NOT CONNECTED: {b.last_error or '?'}"
            p.field("broker", f"{b.host}:{b.port} {state}", "ok" if b.connected else "bad")
        if report.outbox is not None:
            o = report.outbox
            p.field(
                "outbox",
                f"{o.pending} pending ({o.pending_crossings} crossings)"
                + (f", oldest queued {age(o.oldest_pending_age_s)}" if o.pending else "")
                + f", {o.rejected} rejected, "
                f"{size(o.bytes)} of {size(o.max_bytes)}"
                + (f", alarms: {', '.join(o.alarms)}" if o.alarms else ""),
                "bad" if o.alarms else None,
            )
        else:
            p.field("outbox", "none yet (the agent has not run with this config)")
        if report.disk is not None:
            d = report.disk
            p.field(
                "disk",
                f"{d.path}: {d.used_fraction:.0%} used, {size(d.free_bytes)} free",
                "bad" if d.used_fraction >= 0.9 else None,
            )
        p.line("devices")
        for dev in report.devices:
            faults = ", ".join(f"{k} {v}" for k, v in sorted(dev.faults.items())) or "none"
            p.line(
                f"  {dev.id:<12} {dev.kind:<20} {p.paint(f'{dev.state:<9}', dev.state)}"
                f" last reading {age(dev.last_reading_age_s)}; faults: {faults}"
                + (f"; last error: {dev.last_error}" if dev.last_error else "")
            )
        if not report.devices:
            p.line("  (none configured)" if not config.devices else "  (the agent reports none)")
        if report.problems:
            p.line(p.paint("problems", "bad"))
            for problem in report.problems:
                p.line(f"  - {problem}")
        else:
            p.line(p.paint("no problems found", "ok"))
    return LaneProblemsError.exit_code if report.problems else 0


# --- probe and watch --------------------------------------------------------------------------


def cmd_probe(args: argparse.Namespace, config: LaneConfig, p: Printer) -> int:
    from edge.diag.probe import probe

    with Progress(f"probing {args.device}", enabled=not args.json):
        report = probe(config, args.device, seconds=args.seconds)
    if args.json:
        _emit(args, report)
    else:
        d = report.device
        p.line(f"device {d.id} ({d.kind}) via {report.source}")
        p.field("state", d.state, d.state)
        if d.last_error:
            p.field("last error", d.last_error)
        p.field("readings", f"{d.readings}, last {age(d.last_reading_age_s)}")
        if report.first_reading_s is not None:
            p.field("first reading", f"{report.first_reading_s * 1000:.0f} ms after opening")
        if report.reading_interval_ms is not None:
            p.field("reading interval", f"{report.reading_interval_ms:.0f} ms (median)")
        if report.round_trip_ms is not None:
            p.field("round trip", f"{report.round_trip_ms:.1f} ms per poll (median)")
        faults = ", ".join(f"{k} {v}" for k, v in sorted(d.faults.items())) or "none"
        p.field("faults", faults)
        p.line("identity")
        for key, value in report.identity.items():
            p.line(f"  {key}: {value}")
        if not report.identity:
            p.line("  (the device reports none)")
        p.line("options")
        for key, value in report.options.items():
            p.line(f"  {key}: {value}")
        p.line("last values")
        for value in report.values:
            p.line(f"  {value}")
        p.line("last raw frames (hex | ascii)")
        for frame in report.raw_frames:
            p.line(f"  {frame.hex}  | {frame.ascii}")
        if not report.raw_frames:
            p.line("  (none kept by this driver)")
    return 0 if report.device.state != "DOWN" else 5


def cmd_watch(args: argparse.Namespace, config: LaneConfig, p: Printer) -> int:
    from edge.diag.probe import watch

    in_place = p.colour and not args.json
    shown = 0
    try:
        for sample in watch(config, args.device, interval_s=args.interval, count=args.count):
            shown += 1
            if args.json:
                _emit(args, sample)
                continue
            state = p.paint(sample.state, sample.state)
            text = f"{sample.at[11:19]} {sample.device} {state} {sample.summary}"
            if in_place:
                sys.stdout.write("\r\033[K" + text)
                sys.stdout.flush()
            else:
                p.line(text)
    except KeyboardInterrupt:
        pass
    if in_place and shown:
        p.line()
    return 0


# --- outbox -------------------------------------------------------------------------------------


def cmd_ob_stats(args: argparse.Namespace, config: LaneConfig, p: Printer) -> int:
    from edge.diag.status import read_outbox
    from edge.errors import OutboxError

    report = read_outbox(config)
    if report is None:
        path = config.storage.resolved_state_dir() / "outbox.db"
        raise OutboxError(f"no outbox at {path}: the agent has not run with this config yet")
    if args.json:
        _emit(args, report)
        return 0
    p.field("outbox", report.path)
    p.field("pending", f"{report.pending} ({report.pending_crossings} crossings)")
    p.field("oldest pending", age(report.oldest_pending_age_s))
    p.field("rejected", report.rejected, "bad" if report.rejected else None)
    p.field(
        "size", f"{size(report.bytes)} of {size(report.max_bytes)}, bound {report.max_rows} rows"
    )
    p.field("boot_seq", report.boot_seq)
    p.field("last lane_seq", report.last_lane_seq)
    p.field("alarms", ", ".join(report.alarms) or "none", "bad" if report.alarms else "ok")
    return 0


def cmd_ob_list(args: argparse.Namespace, config: LaneConfig, p: Printer) -> int:
    from edge.diag.outbox import listing

    report = listing(config, rejected=args.rejected, limit=args.n)
    if args.json:
        _emit(args, report)
        return 0
    p.line(f"{len(report.rows)} {report.state} rows (oldest first, at most {args.n})")
    now = datetime.now(UTC).timestamp()
    for row in report.rows:
        why = f"  {row.last_error}" if row.last_error else ""
        p.line(
            f"  #{row.id:<7} {row.kind:<10} {row.topic}  {row.bytes} B, "
            f"{age(now - row.created_ns / 1e9)}, {row.attempts} attempts{why}"
        )
    return 0


def cmd_ob_requeue(args: argparse.Namespace, config: LaneConfig, p: Printer) -> int:
    from edge.diag.outbox import requeue

    report = requeue(config)
    if args.json:
        _emit(args, report)
    else:
        p.line(f"{report.rows} rejected rows put back as pending; the agent sends them next")
    return 0


def cmd_ob_export(args: argparse.Namespace, config: LaneConfig, p: Printer) -> int:
    from edge.diag.outbox import export

    with Progress("exporting the outbox", enabled=not args.json and str(args.out) != "-"):
        report = export(config, args.out, state=None if args.state == "all" else args.state)
    if args.json:
        if str(args.out) != "-":
            _emit(args, report)
    elif str(args.out) != "-":
        p.line(f"{report.rows} rows written to {report.path} (JSON lines)")
    return 0


# --- mqtt ---------------------------------------------------------------------------------------


def cmd_mqtt_check(args: argparse.Namespace, config: LaneConfig, p: Printer) -> int:
    from edge.diag.mqtt import check

    with Progress(f"checking {config.mqtt.host}:{config.mqtt.port}", enabled=not args.json):
        report = check(config, timeout_s=args.timeout)
    if args.json:
        _emit(args, report)
    else:
        _human_mqtt(report, p)
    return 0


def _human_mqtt(report: Any, p: Printer) -> None:
    p.field("broker", f"{report.host}:{report.port} ({report.protocol})")
    p.field("login", f"{report.username or 'anonymous'} as client {report.client_id}")
    p.field("connected", "yes" if report.connected else "NO", "ok" if report.connected else "bad")
    if report.tls is not None:
        t = report.tls
        p.field("tls", f"{t.version}, {t.cipher}")
        p.field(
            "server cert", f"{t.peer_subject} (issuer {t.peer_issuer}), until {t.peer_not_after}"
        )
    else:
        p.field("tls", "none (plain TCP)")
    p.field("test topic", report.test_topic)

    def yn(value: bool | None) -> tuple[str, str | None]:
        return ("not tried", None) if value is None else (("yes", "ok") if value else ("NO", "bad"))

    for name, value in (
        ("may subscribe", report.subscribe_ok),
        ("may publish", report.publish_ok),
        ("received back", report.received),
        ("command topics", report.command_subscribe_ok),
    ):
        text, tone = yn(value)
        p.field(name, text, tone)
    if report.round_trip_ms is not None:
        p.field("round trip", f"{report.round_trip_ms:.1f} ms")
    for problem in report.problems:
        p.line(f"  - {problem}")


# --- actions ------------------------------------------------------------------------------------


def _confirm(args: argparse.Namespace, question: str) -> None:
    if args.yes:
        return
    if not sys.stdin.isatty():
        raise DeclinedError(f"{question}: not confirmed (no terminal); add --yes to do it")
    answer = input(f"{question} [y/N] ").strip().lower()
    if answer not in ("y", "yes"):
        raise DeclinedError(f"{question}: not confirmed")


def _act(args: argparse.Namespace, config: LaneConfig, p: Printer, kind: str, what: str) -> int:
    from edge.diag.probe import act, pick_device

    device = pick_device(config, args.device, kind_prefixes=kind)
    _confirm(args, f"{what} on {device.id} of lane {config.checkpoint}/{config.lane}?")
    report = act(config, device, args.action)
    if args.json:
        _emit(args, report)
    else:
        p.line(f"{report.detail} (via {report.via})")
    return 0


def cmd_scale(args: argparse.Namespace, config: LaneConfig, p: Printer) -> int:
    return _act(args, config, p, "weighbridge.", f"{args.action.capitalize()} the scale")


def cmd_barrier(args: argparse.Namespace, config: LaneConfig, p: Printer) -> int:
    return _act(args, config, p, "laneio.", f"{args.action.capitalize()} the barrier")


# --- camera, bundle, explain ----------------------------------------------------------------


def cmd_snapshot(args: argparse.Namespace, config: LaneConfig, p: Printer) -> int:
    from edge.diag.camera import snapshot

    with Progress(f"grabbing a frame from {args.camera} and reading plates", enabled=not args.json):
        report = asyncio.run(snapshot(config, args.camera, args.out))
    if args.json:
        _emit(args, report)
        return 0
    p.line(f"{report.width}x{report.height} frame from {report.camera} saved to {report.out}")
    p.field("recognition", f"{report.recognition_ms:.0f} ms")
    for plate in report.plates:
        p.line(
            f"  {plate.text:<14} {plate.confidence:.2f}  {plate.country or '?'}  box {plate.box}"
        )
    if not report.plates:
        p.line("  no plate found in this frame")
    return 0


def cmd_overlay(args: argparse.Namespace, config: LaneConfig, p: Printer) -> int:
    from edge.diag.camera import overlay

    report = overlay(config, args.camera)
    if args.json:
        _emit(args, report)
        return 0
    for cam in report.cameras:
        p.line(f"{cam.camera}: {cam.frames_read} frames read, {cam.reads_ignored} reads ignored")
        for region in cam.regions:
            x, y, w, h = region.box
            p.line(
                f"  overlay at x {x:.2f} y {y:.2f} w {w:.2f} h {h:.2f} ({region.why}; "
                f"{region.sightings} sightings, last {', '.join(region.texts[-3:])})"
            )
        if not cam.regions:
            p.line("  no overlay learned (yet)")
        if cam.plate_area is not None:
            p.line(f"  plate_area (configured) {list(cam.plate_area)}")
    return 0


def cmd_bundle(args: argparse.Namespace, config: LaneConfig, p: Printer) -> int:
    from edge.diag.bundle import build

    with Progress("collecting the support bundle", enabled=not args.json):
        report = build(config, args.out, crossings=args.crossings)
    if args.json:
        _emit(args, report)
        return 0
    p.line(f"{report.out}: {size(report.bytes)}, {len(report.files)} files")
    for name in report.files:
        p.line(f"  {name}")
    if report.redacted:
        p.line(f"removed from the config: {', '.join(report.redacted)}")
    return 0


def cmd_explain(args: argparse.Namespace, config: LaneConfig, p: Printer) -> int:
    from edge.diag.explain import explain

    report = explain(config, args.crossing_id)
    if args.json:
        _emit(args, report)
        return 0
    p.line(
        f"crossing {report.crossing_id} "
        + ("(full trace)" if report.source == "trace" else "(published events only)")
    )
    for line in report.summary:
        p.line(f"  {line}")
    return 0
