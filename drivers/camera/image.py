"""What an image declares before it is decoded, sans-I/O: format, width, height.

A 631-byte JPEG can declare 16000x16000 px, and the decoder allocates the whole 768 MB frame
before it finds out that the data stop after one block (a decompression bomb). So the size is
read from the headers first and checked against ``max_pixels``; only JPEG and PNG are let
through to the decoder, because only they are parsed here (OpenCV picks its decoder by the
leading bytes, so a checked signature also fixes the decoder).

- JPEG (ITU-T T.81 | ISO/IEC 10918-1, Annex B): markers from SOI; every marker segment but the
  stand-alone ones (TEM, RSTn, SOI, EOI) carries a 2-byte length that includes itself; the
  frame header SOFn (C0-CF except DHT C4, JPG C8, DAC CC) holds P, Y (lines), X (samples per
  line), Nf. Y = 0 (height defined later by a DNL marker) is refused. Segments are walked by
  their lengths, so an EXIF thumbnail inside APP1 is skipped, not mistaken for the frame.
- PNG (ISO/IEC 15948, W3C PNG 2nd ed. §5.2-5.3, §11.2.2): the 8-byte signature, then the IHDR
  chunk: length 13, ``IHDR``, width and height as 4-byte big-endian integers.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.codec import CodecFault

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xD8)})
SCAN_LIMIT = 1 << 20  # the frame header comes before the first scan, within the first MiB


@dataclass(frozen=True, slots=True)
class ImageHeader:
    format: str  # "jpeg" or "png"
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


def read_header(data: bytes) -> ImageHeader | CodecFault:
    """The declared format and size, or a fault naming what is wrong. Never raises."""
    if data[:2] == b"\xff\xd8":
        return _jpeg(data)
    if data[:8] == PNG_SIGNATURE:
        return _png(data)
    return CodecFault("image_format", "neither JPEG nor PNG", data[:16])


def check_image(data: bytes, max_pixels: int) -> ImageHeader | CodecFault:
    """The header, if the image may be decoded: a known format, complete, within max_pixels."""
    header = read_header(data)
    if isinstance(header, CodecFault):
        return header
    if header.pixels > max_pixels:
        return CodecFault(
            "image_too_large",
            f"{header.format.upper()} declares {header.width}x{header.height} px "
            f"({header.pixels} px), over camera max_pixels {max_pixels}: not decoded",
            data[:32],
        )
    # OpenCV decodes half a JPEG into a half-grey picture: insist on EOI at the end.
    if header.format == "jpeg" and not data.rstrip(b"\r\n\x00").endswith(b"\xff\xd9"):
        return CodecFault("truncated", f"JPEG without EOI ({len(data)} bytes)", data[-16:])
    return header


def _jpeg(data: bytes) -> ImageHeader | CodecFault:
    i = 2
    end = min(len(data), SCAN_LIMIT)
    while i + 1 < end:
        if data[i] != 0xFF:
            return CodecFault("truncated", f"JPEG: no marker at offset {i}", data[i : i + 16])
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte before a marker
            i += 1
            continue
        if marker in STANDALONE_MARKERS:
            i += 2
            continue
        if marker in (0xD8, 0xD9, 0xDA):  # SOI again, EOI or SOS before any frame header
            return CodecFault("truncated", f"JPEG: marker {marker:02X} before the frame header")
        if i + 4 > end:
            break
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if length < 2:
            return CodecFault("truncated", f"JPEG: segment length {length} at offset {i}")
        if marker in SOF_MARKERS:
            if length < 8 or i + 9 > len(data):
                return CodecFault("truncated", "JPEG: short frame header", data[i : i + 16])
            height = int.from_bytes(data[i + 5 : i + 7], "big")
            width = int.from_bytes(data[i + 7 : i + 9], "big")
            if width == 0 or height == 0:
                return CodecFault("image_format", f"JPEG frame of {width}x{height} px")
            return ImageHeader("jpeg", width, height)
        i += 2 + length
    return CodecFault("truncated", "JPEG: no frame header (SOF) found", data[:16])


def _png(data: bytes) -> ImageHeader | CodecFault:
    if len(data) < 24 or data[8:16] != b"\x00\x00\x00\x0dIHDR":
        return CodecFault("truncated", "PNG without an IHDR chunk first", data[:24])
    width = int.from_bytes(data[16:20], "big")
    height = int.from_bytes(data[20:24], "big")
    if width == 0 or height == 0:
        return CodecFault("image_format", f"PNG of {width}x{height} px")
    return ImageHeader("png", width, height)
