"""One device on the lane: the keys every device has; its driver validates the rest."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, field_validator

from edge.config.base import IDENTIFIER, StrictModel
from edge.config.secret import SecretRef


class DeviceConfig(StrictModel):
    """A device on the lane. ``kind`` names its driver in the driver registry."""

    model_config = ConfigDict(extra="allow", frozen=True)

    id: Annotated[str, Field(pattern=IDENTIFIER)]
    kind: str = Field(description="Driver, e.g. weighbridge.toledo, rpm.rapiscan, anpr.stream.")
    role: Literal["front", "rear", "trailer", "overview", "container"] | None = Field(
        None,
        description="Cameras: front, rear or trailer, the plate position its reads fill "
        "(default front; front and rear frames are also searched for orange ADR plates); "
        "overview, a scene camera whose frames are not read for plates (supervised and "
        "listed in coverage like any device); container, a side or top view read for ISO "
        "6346 container codes instead of plates (docs/cargo.md).",
    )
    timeout_ms: int = Field(1000, ge=10, le=120_000)
    enabled: bool = True
    password: SecretRef | None = Field(
        None, description="Device login (camera digest auth); a reference, never inline."
    )
    plate_area: tuple[float, float, float, float] | None = Field(
        None,
        description="Cameras: where plates can appear, as fractions of the frame (x, y, w, h). "
        "Text elsewhere, such as the camera's own date/name overlay, is ignored.",
    )

    @field_validator("plate_area")
    @classmethod
    def _area(cls, value: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if value is not None:
            x, y, w, h = value
            if not (0 <= x < 1 and 0 <= y < 1 and 0 < w <= 1 - x and 0 < h <= 1 - y):
                raise ValueError("x, y, w, h are fractions of the frame, inside it")
        return value

    def driver_options(self) -> dict[str, Any]:
        """The keys the driver validates: the extras, plus the resolved password."""
        options = dict(self.model_extra or {})
        if self.password is not None:
            options["password"] = self.password.read()
        return options
