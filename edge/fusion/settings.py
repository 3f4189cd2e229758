"""What the fusion is tuned by: the lane config's ``fusion:`` section itself, plus the few
values it takes from elsewhere in the lane config (its type, the recogniser's ``top_n``) and
the few that are fixed by the lane's geometry rather than configured.

:class:`FusionSettings` *is* :class:`edge.config.FusionConfig` (a subclass: the same fields,
defaults and bounds, declared once there); :func:`fusion_settings` is the one place a lane
config becomes fusion settings. A recording (``tests/recordings/*.jsonl``) names its settings
by the same keys.
"""

from __future__ import annotations

from pydantic import Field

from edge.config import FusionConfig, LaneConfig, LaneType, RecognitionConfig

PRESENCE_SOURCES = ("io", "weight", "rpm", "camera")

DEFAULT_PRESENCE_ORDER: dict[str, tuple[str, ...]] = {
    "truck": ("io", "weight", "rpm", "camera"),
    "bus": ("io", "weight", "rpm", "camera"),
    "car": ("io", "rpm", "weight", "camera"),
}


class FusionSettings(FusionConfig):
    """The ``fusion:`` config, the lane's type and ``top_n``, and the fixed values below."""

    lane_type: LaneType = LaneType.TRUCK
    top_n: int = Field(
        RecognitionConfig.model_fields["top_n"].default,
        ge=1,
        le=20,
        description="Candidates kept per plate (recognition.top_n).",
    )
    # Not in the lane config: fixed by how a lane is built and how fast vehicles move.
    entry_input: str = "entry_loop"
    exit_input: str = "exit_loop"
    recognition_wait_s: float = Field(
        3.0, ge=0, description="The most an end waits for a frame still being read."
    )
    plate_lead_s: float = Field(
        3.0, ge=0, description="A plate read this long before presence still belongs to it."
    )
    camera_gap_s: float = Field(
        3.0, gt=0, description="Camera-only presence: no read for this long means gone."
    )
    # A second tractor's front plate cannot reach the front camera sooner than this after the
    # first one's was read (a vehicle's length at lane speed); sooner, it is a misread.
    tailgate_min_s: float = Field(1.0, ge=0)
    thermal_alarm_c: float = Field(120.0, description="A thermal region this hot: thermal.hot.")

    def order(self) -> tuple[str, ...]:
        """Presence sources, best first: the configured order, else the lane type's."""
        if self.presence_order:
            return tuple(self.presence_order)
        return DEFAULT_PRESENCE_ORDER.get(self.lane_type, PRESENCE_SOURCES)


def fusion_settings(config: LaneConfig) -> FusionSettings:
    """The fusion settings of a lane config: its ``fusion:`` section as it is, plus its lane
    type and the recogniser's ``top_n``."""
    return FusionSettings(
        **config.fusion.model_dump(),
        lane_type=config.lane_type,
        top_n=config.recognition.top_n,
    )
