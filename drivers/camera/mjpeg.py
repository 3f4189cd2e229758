"""MJPEG over HTTP (multipart/x-mixed-replace), sans-I/O: bytes in, JPEG parts out.

Cameras differ in how they frame parts (Content-Length or not, boundary with or without
leading dashes), so parts are found by the boundary line, and a JPEG is accepted only
if it starts with SOI (FFD8) and ends with EOI (FFD9).
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.codec import CodecFault, RawHistory

MAX_PART = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class JpegPart:
    data: bytes
    headers: dict[str, str]


def boundary_from_content_type(content_type: str) -> bytes | None:
    for param in content_type.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.lower() == "boundary" and value:
            return value.strip('"').removeprefix("--").encode()
    return None


class MjpegParser:
    def __init__(self, boundary: bytes, *, history: int = 4) -> None:
        self.delimiter = b"--" + boundary
        self.history = RawHistory(history)
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[JpegPart | CodecFault]:
        self._buf.extend(data)
        out: list[JpegPart | CodecFault] = []
        while True:
            start = self._buf.find(self.delimiter)
            if start < 0:
                if len(self._buf) > MAX_PART:
                    out.append(CodecFault("framing", "no boundary in 8 MiB", b""))
                    self._buf.clear()
                break
            nxt = self._buf.find(self.delimiter, start + len(self.delimiter))
            if nxt < 0:
                if start > 0:
                    del self._buf[:start]
                if len(self._buf) > MAX_PART:
                    out.append(CodecFault("framing", "part over 8 MiB", b""))
                    self._buf.clear()
                break
            part = bytes(self._buf[start + len(self.delimiter) : nxt])
            del self._buf[:nxt]
            out.append(self._decode(part))
        return out

    def _decode(self, part: bytes) -> JpegPart | CodecFault:
        head, sep, body = part.partition(b"\r\n\r\n")
        if not sep:
            return CodecFault("framing", "part without headers", part[:64])
        headers: dict[str, str] = {}
        for line in head.decode("latin-1").splitlines():
            key, colon, value = line.partition(":")
            if colon:
                headers[key.strip().lower()] = value.strip()
        body = body.rstrip(b"\r\n")
        if "content-length" in headers:
            try:
                length = int(headers["content-length"])
            except ValueError:
                return CodecFault("framing", "bad Content-Length", head[:64])
            body = body[:length]
        content_type = headers.get("content-type", "image/jpeg")
        if not content_type.startswith("image/jpeg"):
            return CodecFault("content_type", f"part of type {content_type!r}", head[:64])
        if not (body.startswith(b"\xff\xd8") and body.endswith(b"\xff\xd9")):
            return CodecFault("truncated", "JPEG without SOI/EOI", body[:16])
        self.history.add(head)
        return JpegPart(body, headers)
