"""Option models shared by several drivers (each driver's own model sits beside it)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class StrictOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SerialOptions(StrictOptions):
    url: str = Field(
        description="pyserial URL: /dev/ttyUSB0, socket://host:4001, rfc2217://host:port"
    )
    baudrate: int = Field(9600, ge=300, le=921_600)
    bytesize: Literal[7, 8] = 8
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
