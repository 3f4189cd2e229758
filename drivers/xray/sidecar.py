"""The scan sidecar: a small JSON document the scanner software writes beside a scan.

Sans-I/O: :func:`parse_sidecar` takes the bytes and returns a :class:`Sidecar` or a
:class:`SidecarFault`, never raises. The contract (docs/cargo.md)::

    {
      "scan_id": "GATE2-20261202-000123",        required, 1-128 printable characters
      "started": "2026-12-02T03:10:00.120Z",      required, ISO 8601 with a UTC offset
      "finished": "2026-12-02T03:10:41.900Z",     required, not before started, < 1 h later
      "plate": "01A123BC",                        optional, the scanner's plate field
      "container": "CSQU3054383",                 optional, the scanner's container field(s)
      "scanner": "Gate 2 portal",                 optional, the scanner's name or model
      "files": [{"name": "scan.img", "size": 52428800}, "thumb.jpg"]
                                                  optional; names relative to the scan,
                                                  "size" in bytes where known, "sha256"
                                                  (hex) where the scanner hashes
    }

Unknown keys are ignored (vendors add their own). A scanner that writes the sidecar
*before* its data must list every file with its size; one that writes it last (the
usual "commit" file) may leave ``files`` out.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import PurePosixPath
from typing import Annotated, Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

MAX_SIDECAR_BYTES = 64 * 1024
MAX_LISTED_FILES = 256
MAX_SCAN_S = 3600.0
_PRINTABLE = r"^[^\x00-\x1f\x7f]+$"


class ListedFile(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    name: Annotated[str, Field(min_length=1, max_length=255, pattern=_PRINTABLE)]
    size: int | None = Field(None, ge=0)
    sha256: Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")] | None = Field(
        None,
        description="The scanner's own hash: carried by xray.http; xray.uff_dir refuses a "
        "scan whose file hashes to something else.",
    )


class Sidecar(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    scan_id: Annotated[str, Field(min_length=1, max_length=128, pattern=_PRINTABLE)]
    started: AwareDatetime
    finished: AwareDatetime
    plate: Annotated[str, Field(max_length=32, pattern=_PRINTABLE)] | None = None
    container: Annotated[str, Field(max_length=64, pattern=_PRINTABLE)] | None = None
    scanner: Annotated[str, Field(max_length=64, pattern=_PRINTABLE)] | None = None
    files: list[ListedFile] | None = Field(None, max_length=MAX_LISTED_FILES)

    @model_validator(mode="before")
    @classmethod
    def _names(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("files"), list):
            data = dict(data)
            data["files"] = [{"name": f} if isinstance(f, str) else f for f in data["files"]]
        return data

    @model_validator(mode="after")
    def _check(self) -> Sidecar:
        if self.finished < self.started:
            raise ValueError("finished is before started")
        if self.finished - self.started > timedelta(seconds=MAX_SCAN_S):
            raise ValueError(f"a scan longer than {MAX_SCAN_S:.0f} s")
        for listed in self.files or []:
            if not safe_relative(listed.name):
                raise ValueError(f"file name {listed.name!r} leaves the scan folder")
        return self

    @field_validator("plate", "container", "scanner", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        if isinstance(value, str):
            return value.strip() or None
        return value


@dataclass(frozen=True, slots=True)
class SidecarFault:
    """Not (yet) a valid sidecar: cut short while being written, or simply wrong."""

    message: str


def safe_relative(name: str) -> bool:
    """A relative path that stays inside its folder (no .., no absolute, no drive)."""
    if "\\" in name or re.match(r"^[A-Za-z]:", name):
        return False
    path = PurePosixPath(name)
    return not path.is_absolute() and ".." not in path.parts and str(path) not in ("", ".")


def parse_sidecar(data: bytes) -> Sidecar | SidecarFault:
    if len(data) > MAX_SIDECAR_BYTES:
        return SidecarFault(f"sidecar over {MAX_SIDECAR_BYTES} bytes")
    try:
        document = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        return SidecarFault(f"not UTF-8: {exc.reason}")
    except json.JSONDecodeError as exc:
        return SidecarFault(f"not JSON: {exc.msg} at {exc.pos}")
    except RecursionError:
        return SidecarFault("nested too deep")
    if not isinstance(document, dict):
        return SidecarFault("not a JSON object")
    try:
        return Sidecar.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "sidecar"
        return SidecarFault(f"{where}: {first['msg']}")
