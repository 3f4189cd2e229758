"""Codecs against the worked examples in devices.md, and fuzzed with hypothesis."""

from __future__ import annotations

import contextlib
import itertools
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.codec import CodecFault
from drivers.rpm import rapiscan
from drivers.weighbridge import sics, toledo, xk3190
from drivers.weighbridge.stability import StabilityFilter

H = bytes.fromhex

# --- Toledo -------------------------------------------------------------------------------

TOLEDO_12340 = H("02 2A 30 20 30 31 32 33 34 30 30 30 30 30 30 30 0D 2D")
TOLEDO_12340_MOTION = H("02 2A 38 20 30 31 32 33 34 30 30 30 30 30 30 30 0D 25")
TOLEDO_NET_9400 = H("02 2A 31 20 30 30 39 34 30 30 30 30 32 39 34 30 0D 1A")


def test_toledo_encodes_the_worked_examples() -> None:
    assert toledo.encode(12340) == TOLEDO_12340
    assert toledo.encode(12340, motion=True) == TOLEDO_12340_MOTION
    assert toledo.encode(9400, tare=2940, net=True) == TOLEDO_NET_9400


def test_toledo_decodes_the_worked_examples() -> None:
    (frame,) = toledo.ToledoParser().feed(TOLEDO_12340)
    assert isinstance(frame, toledo.ToledoFrame)
    assert (frame.gross_kg, frame.motion, frame.net, frame.division_kg) == (12340, False, False, 1)
    (moving,) = toledo.ToledoParser().feed(TOLEDO_12340_MOTION)
    assert isinstance(moving, toledo.ToledoFrame) and moving.motion
    (net,) = toledo.ToledoParser().feed(TOLEDO_NET_9400)
    assert isinstance(net, toledo.ToledoFrame)
    assert (net.net_kg, net.tare, net.gross_kg) == (9400, 2940, 12340)


def test_toledo_flags_decimals_and_parity_bit() -> None:
    frame = toledo.encode(12.34, decimals=2, increment=5, overload=True, not_zeroed=True)
    # Read as 8N1 from a 7E1 line: parity lands in bit 7 and must be ignored.
    with_parity = bytes(b | 0x80 if bin(b).count("1") % 2 else b for b in frame)
    (decoded,) = toledo.ToledoParser().feed(with_parity)
    assert isinstance(decoded, toledo.ToledoFrame)
    assert decoded.displayed == pytest.approx(12.34)
    assert decoded.division == pytest.approx(0.05)
    assert decoded.overload and decoded.not_zeroed


def test_toledo_bad_checksum_is_a_fault_then_resync() -> None:
    bad = TOLEDO_12340[:-1] + b"\x00"
    out = toledo.ToledoParser().feed(bad + TOLEDO_12340_MOTION)
    assert isinstance(out[0], CodecFault) and out[0].kind == "checksum"
    assert isinstance(out[1], toledo.ToledoFrame) and out[1].motion
    assert len(out) == 2


def test_toledo_truncated_frame_then_resync() -> None:
    parser = toledo.ToledoParser()
    out = parser.feed(TOLEDO_12340[:9] + TOLEDO_NET_9400)
    assert [type(o) for o in out] == [CodecFault, toledo.ToledoFrame]
    assert out[0].kind == "truncated"
    assert parser.history.frames()[-1] == TOLEDO_NET_9400


def test_toledo_split_across_reads() -> None:
    parser = toledo.ToledoParser()
    assert parser.feed(TOLEDO_12340[:5]) == []
    (frame,) = parser.feed(TOLEDO_12340[5:])
    assert isinstance(frame, toledo.ToledoFrame)


# --- XK3190 -------------------------------------------------------------------------------


def test_xk3190_worked_examples() -> None:
    assert xk3190.encode_continuous(20.00, decimals=2) == H("02 2B 30 30 32 30 30 30 32 31 42 03")
    assert xk3190.encode_continuous(23960) == b"\x02+023960015\x03"
    assert xk3190.encode_command("gross", address="A") == H("02 41 42 30 33 03")
    reply = H("02 41 42 2B 30 31 32 33 34 30 30 31 43 03")
    assert xk3190.encode_reply("gross", 12340) == reply
    (frame,) = xk3190.XkParser().feed(reply)
    assert isinstance(frame, xk3190.XkFrame)
    assert (frame.weight, frame.address, frame.command) == (12340, "A", "B")
    (cont,) = xk3190.XkParser().feed(H("02 2B 30 30 32 30 30 30 32 31 42 03"))
    assert isinstance(cont, xk3190.XkFrame) and cont.weight == pytest.approx(20.0)


def test_xk3190_negative_and_bad_xor() -> None:
    parser = xk3190.XkParser()
    frame = xk3190.encode_continuous(-150, decimals=0)
    bad = frame[:-3] + b"00" + frame[-1:]
    out = parser.feed(bad + frame)
    assert isinstance(out[0], CodecFault) and out[0].kind == "checksum"
    assert isinstance(out[1], xk3190.XkFrame) and out[1].weight == -150


# --- MT-SICS ------------------------------------------------------------------------------


def test_sics_replies() -> None:
    parser = sics.SicsParser()
    out = parser.feed(b"S S     100.00 g\r\nS D   12340 kg\r\nZ A\r\nT S 2940 kg\r\nES\r\nS +\r\n")
    assert all(isinstance(o, sics.SicsReply) for o in out)
    s, d, z, t, es, over = out  # type: ignore[misc]
    assert (s.status, s.value_kg) == ("S", pytest.approx(0.1))
    assert (d.status, d.value_kg) == ("D", 12340)
    assert (z.command, z.status) == ("Z", "A")
    assert (t.command, t.value_kg) == ("T", 2940)
    assert es.command == "ES"
    assert over.status == "+"
    assert sics.encode_command("SI") == b"SI\r\n"
    assert sics.decode_line(sics.encode_reply("S", "S", 12340)).value_kg == 12340  # type: ignore[union-attr]


def test_sics_garbage_line_then_resync() -> None:
    out = sics.SicsParser().feed(b"\xff\xfe@@\r\nS S 5 kg\r\n")
    assert isinstance(out[0], CodecFault)
    assert isinstance(out[1], sics.SicsReply) and out[1].value_kg == 5


# --- Stability ----------------------------------------------------------------------------


def test_stability_needs_n_frames_within_one_division() -> None:
    f = StabilityFilter(3, 10)
    assert [f.feed(w) for w in (1000, 1010, 1000, 1020, 1010, 1010)] == [
        False, False, True, False, False, True,
    ]  # fmt: skip
    assert f.feed(1010, motion=True) is False
    assert f.feed(1010) is False  # motion broke the run


# --- Rapiscan -----------------------------------------------------------------------------

T0 = datetime(2026, 11, 23, tzinfo=UTC)


def test_rapiscan_lines_and_occupancy() -> None:
    parser = rapiscan.RapiscanParser()
    builder = rapiscan.OccupancyBuilder()
    stream = b"".join(
        [
            b"SG1,000460,000100,000005,000010,000006\r\n",
            b"GB,000212,000208,000215,000210\r\n",
            b"NB,000001,000000,000002,000001\r\n",
            *[b"GS,000043,000041,000044,000042\r\n"] * 4,
            b"GA,000090,000091,000092,000093\r\n",
            b"NA,000009,000011,000008,000010\r\n",
            b"SP,0.2249,03.032,004.88,000000\r\n",
            b"GX,000001,004741,000000,000000\r\n",
        ]
    )
    lines = parser.feed(stream)
    assert all(isinstance(line, rapiscan.RpmLine) for line in lines)
    results = [builder.feed(line, T0, 1.0) for line in lines]  # type: ignore[arg-type]
    occupancy = results[-1]
    assert occupancy is not None and all(r is None for r in results[:-1])
    assert occupancy.occupancy_no == 1
    assert occupancy.gamma_max_cps == 4 * 170 + 366
    assert occupancy.gamma_background_cps == 845
    assert occupancy.neutron_max == 38
    assert occupancy.gamma_alarm and occupancy.neutron_alarm
    assert occupancy.neutron_background == pytest.approx(4.741)
    assert occupancy.sigma == pytest.approx((1046 - 845) / 845**0.5)
    assert occupancy.speed_kmh == pytest.approx(4.88)
    assert builder.nsigma == 6


def test_rapiscan_faulty_lines_are_reported_not_raised() -> None:
    parser = rapiscan.RapiscanParser()
    out = parser.feed(
        b"GB,000212,*****,000215,000210\r\n"
        b"GS,000043,000041\r\n"
        b"XX,1,2,3,4\r\n"
        b"RW,ignored\r\n"
        + b"GS,"
        + b"9" * 80
        + b"\r\n"
        + b"GS,000043,000041,000044,000042,12-00-01.123\r\n"
    )
    kinds = [o.kind if isinstance(o, CodecFault) else o.type for o in out]
    assert kinds == ["GB", "framing", "unknown", "framing", "GS"]
    assert out[0].counts() == (212, None, 215, 210)  # type: ignore[union-attr]


def test_rapiscan_gx_without_scan_and_timeout() -> None:
    builder = rapiscan.OccupancyBuilder(timeout_s=10)
    gx = rapiscan.decode_line(b"GX,000002,004741,000000,000000")
    assert isinstance(gx, rapiscan.RpmLine)
    assert builder.feed(gx, T0, 0.0) is None
    gs = rapiscan.decode_line(b"GS,000043,000041,000044,000042")
    assert isinstance(gs, rapiscan.RpmLine)
    builder.feed(gs, T0, 1.0)
    assert builder.tick(T0, 5.0) is None
    late = builder.tick(T0, 11.5)
    assert late is not None and late.complete is False and late.gamma_max_cps == 850


# --- Fuzz ---------------------------------------------------------------------------------

GOOD = {
    "toledo": (toledo.ToledoParser, TOLEDO_12340, toledo.ToledoFrame),
    "xk3190": (xk3190.XkParser, xk3190.encode_continuous(23960), xk3190.XkFrame),
    "sics": (sics.SicsParser, b"S S    12340 kg\r\n", sics.SicsReply),
    "rapiscan": (rapiscan.RapiscanParser, b"GS,000043,000041,000044,000042\r\n", rapiscan.RpmLine),
}
BINARY = {"toledo", "xk3190"}


@pytest.mark.parametrize("name", sorted(GOOD))
@settings(max_examples=150, deadline=None)
@given(garbage=st.binary(max_size=300), cuts=st.lists(st.integers(0, 400), max_size=6))
def test_fuzz_never_raises_and_resyncs(name: str, garbage: bytes, cuts: list[int]) -> None:
    make, good, frame_type = GOOD[name]
    parser = make()
    stream = garbage + good + good
    out: list[object] = []
    bounds = sorted({c for c in cuts if c < len(stream)} | {0, len(stream)})
    for a, b in itertools.pairwise(bounds):
        out.extend(parser.feed(stream[a:b]))
    decoded = [o for o in out if isinstance(o, frame_type)]
    # Line protocols may lose the first good line to unterminated garbage; never the second.
    assert decoded
    assert decoded[-1].raw.rstrip(b"\r\n") == good.rstrip(b"\r\n")
    for o in out:
        assert isinstance(o, frame_type | CodecFault)
    if name in BINARY and good not in garbage:
        tail = [o for o in out if isinstance(o, frame_type)][-2:]
        assert all(t.raw == good for t in tail)


@pytest.mark.parametrize("name", sorted(GOOD))
@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=2000))
def test_fuzz_arbitrary_bytes(name: str, data: bytes) -> None:
    parser = GOOD[name][0]()
    parser.feed(data)
    parser.feed(data[::-1])


# --- MJPEG --------------------------------------------------------------------------------

JPEG = b"\xff\xd8" + b"\x11" * 40 + b"\xff\xd9"
PART = b"--b1\r\nContent-Type: image/jpeg\r\nContent-Length: 44\r\n\r\n" + JPEG + b"\r\n"


def test_mjpeg_parts_and_faults() -> None:
    from drivers.camera.mjpeg import JpegPart, MjpegParser, boundary_from_content_type

    assert boundary_from_content_type('multipart/x-mixed-replace; boundary="--b1"') == b"b1"
    parser = MjpegParser(b"b1")
    html = b"--b1\r\nContent-Type: text/html\r\n\r\n<html>\r\n"
    cut = b"--b1\r\nContent-Type: image/jpeg\r\n\r\n" + JPEG[:20] + b"\r\n"
    out = parser.feed(PART + html + cut + PART + b"--b1")
    kinds = [o.kind if isinstance(o, CodecFault) else "jpeg" for o in out]
    assert kinds == ["jpeg", "content_type", "truncated", "jpeg"]
    assert isinstance(out[0], JpegPart) and out[0].data == JPEG


@settings(max_examples=150, deadline=None)
@given(garbage=st.binary(max_size=300), cuts=st.lists(st.integers(0, 600), max_size=6))
def test_fuzz_mjpeg(garbage: bytes, cuts: list[int]) -> None:
    from drivers.camera.mjpeg import JpegPart, MjpegParser

    parser = MjpegParser(b"b1")
    stream = garbage + PART + PART + b"--b1"
    out: list[object] = []
    bounds = sorted({c for c in cuts if c < len(stream)} | {0, len(stream)})
    for a, b in itertools.pairwise(bounds):
        out.extend(parser.feed(stream[a:b]))
    parts = [o for o in out if isinstance(o, JpegPart)]
    assert parts and parts[-1].data == JPEG


# --- register maps ------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(regs=st.lists(st.integers(0, 0xFFFF), min_size=64, max_size=64))
def test_register_maps_never_raise(regs: list[int]) -> None:
    from drivers.rpm.aspect import decode_monitor
    from drivers.thermal import maps
    from drivers.weighbridge.modbus import decode_value

    for region in maps.decode_flir(regs, 5) + maps.decode_infiray(regs, 16):
        if region.valid:
            assert region.max_c is not None and region.max_c == region.max_c  # not NaN
    decode_monitor(regs[:21])
    for kind in ("int16", "uint16", "int32", "uint32", "float32"):
        decode_value(regs[:2], kind, "big")  # type: ignore[arg-type]


def test_register_map_round_trips() -> None:
    from drivers.rpm.aspect import AspectMonitor, decode_monitor, encode_monitor
    from drivers.thermal import maps

    box = maps.encode_flir_box(30.0, 10.5, 95.25, 40.0)
    (region,) = maps.decode_flir(box, 1)
    assert (region.min_c, region.max_c, region.avg_c) == pytest.approx((10.5, 95.25, 40.0))
    (ir,) = maps.decode_infiray(maps.encode_infiray_region(81.3, 40.0, 9.9, alarm=True), 1)
    assert (ir.max_c, ir.avg_c, ir.min_c, ir.alarm) == (81.3, 40.0, 9.9, True)
    monitor = AspectMonitor(123456, 0x81, 0x81, -5, 850.5, 12.0, 0x80, 7, 4.0, 1.0, 42, 5, 2222, 1)
    assert decode_monitor(encode_monitor(monitor)) == monitor


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=400), meta=st.dictionaries(
    st.sampled_from(["jpegPicWidth", "jpegPicHeight", "temperatureDataLength", "scale"]),
    st.one_of(st.integers(-5, 70000), st.text(max_size=3), st.none()),
))  # fmt: skip
def test_fuzz_thermal_multipart(body: bytes, meta: dict[str, object]) -> None:
    import json

    from drivers.thermal.isapi import decode_matrix, split_multipart

    parts = split_multipart(body, b"b")
    crafted = [({"content-type": "application/json"}, json.dumps(meta).encode()),
               ({"content-type": "application/octet-stream"}, body)]  # fmt: skip
    for candidate in (parts, crafted):
        with contextlib.suppress(ValueError):
            decode_matrix(candidate)


# --- Cheap fault paths (issue 22 #7) ------------------------------------------------------

FLOODS = [b"\x02", b"\x00", b"\r\n", b"\n", b"XX,1\r\n", b"\xff", b"+", bytes(range(256))]


@pytest.mark.parametrize("name", sorted(GOOD))
@pytest.mark.parametrize("unit", FLOODS, ids=lambda u: u[:6].hex())
def test_a_flood_is_a_few_coalesced_faults_not_one_per_byte(name: str, unit: bytes) -> None:
    make, good, frame_type = GOOD[name]
    parser = make()
    flood = unit * (65_536 // len(unit))
    out = parser.feed(flood)
    faults = [o for o in out if isinstance(o, CodecFault)]
    # One object per run of a fault kind: a handful for 64 KiB, whatever the bytes.
    assert len(out) <= 1 + len(flood) // 64, (len(out), out[:3])
    assert all(f.count >= 1 and len(f.raw) <= 64 for f in faults)
    # Still resynchronises: the next good frame decodes.
    decoded = [o for o in parser.feed(good + good) if isinstance(o, frame_type)]
    assert decoded


@pytest.mark.parametrize("name", sorted(GOOD))
@settings(max_examples=60, deadline=None)
@given(parts=st.lists(st.sampled_from(FLOODS) | st.binary(max_size=40), max_size=30))
def test_fuzz_faults_are_coalesced_and_bounded(name: str, parts: list[bytes]) -> None:
    make, good, frame_type = GOOD[name]
    parser = make()
    out = parser.feed(b"".join(parts) + good + good)
    for a, b in itertools.pairwise(out):
        assert not (isinstance(a, CodecFault) and isinstance(b, CodecFault) and a.kind == b.kind)
    for o in out:
        assert isinstance(o, frame_type | CodecFault)
        if isinstance(o, CodecFault):
            assert o.count >= 1 and len(o.raw) <= 64
    assert [o for o in out if isinstance(o, frame_type)]


def test_coalesced_fault_keeps_the_count_and_first_bytes() -> None:
    out = toledo.ToledoParser().feed(b"\x02" * 1000 + TOLEDO_12340)
    assert [type(o) for o in out] == [CodecFault, toledo.ToledoFrame]
    assert out[0].kind == "truncated" and out[0].count == 1000 and out[0].raw == b"\x02" * 64  # type: ignore[union-attr]
    parser = rapiscan.RapiscanParser()
    assert parser.feed(b"\r\n" * 5000 + b"RW,x\r\n") == []
    assert (parser.blank_lines, parser.ignored_lines) == (5000, 1)
    (fault,) = sics.SicsParser().feed(b"\r\n" * 300)
    assert isinstance(fault, CodecFault) and (fault.kind, fault.count) == ("framing", 300)
