"""Plate reading: the models, what is read, and the core budget for reading."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from edge.config.base import StrictModel


class RecognitionConfig(StrictModel):
    provider: Literal["cpu", "cuda", "openvino"] = "cpu"
    model_dir: Path | None = Field(None, description="Default: the models shipped with the agent.")
    min_confidence: float = Field(0.5, ge=0, le=1)
    top_n: int = Field(5, ge=1, le=20)
    detector_side: int = Field(
        512,
        ge=160,
        le=2048,
        description="Long side, in pixels, the frame is scaled to for plate detection. 512 finds "
        "plates 40+ px tall in a 1080p frame; larger finds smaller plates and costs more.",
    )
    escalate_side: int = Field(
        960,
        ge=0,
        le=4096,
        description="When the first look finds no plate, the frame is searched once more at "
        "this long side (small or distant plates); 0 turns the second search off.",
    )
    region_cells: bool = Field(
        True,
        description="Read the region code of UZ/KG plates from its own small frame (real UZ "
        "crops 73.4 -> 95.2 % exact). A trained cell classifier decides first whether the "
        "frame shows digits at all, so other countries' plates pay about 2 ms. Off only where "
        "no UZ or KG plate is expected.",
    )
    rereads: bool = Field(
        True,
        description="When a frame's best plate is unsure, read the frame's boxes twice more with "
        "the reader's input 0.9x and 1.1x as wide and let the three reads vote. Frames with a "
        "sure plate never pay for it.",
    )
    workers: int = Field(
        1,
        ge=1,
        le=16,
        description="Frames read at once (plate and cargo reading each take a thread): the "
        "lane controller's core budget for reading. 1 on a 2-core controller keeps a core for "
        "the devices, fusion and the outbox; a read never waits on the event loop.",
    )
    frames_per_vehicle: int = Field(
        6,
        ge=1,
        le=100,
        description="Frames of one vehicle each camera reads at most (docs/recognition.md, "
        "Scheduling): its most promising first, until one read is sure.",
    )
    candidates_per_vehicle: int = Field(
        3,
        ge=1,
        le=16,
        description="Frames of one vehicle each camera keeps waiting while the recogniser is "
        "busy; a better frame takes the place of the least promising one.",
    )
    sure_confidence: float = Field(
        0.9,
        ge=0,
        le=1,
        description="A plate read this confident ends the reading of its vehicle on that camera.",
    )
    max_latency_s: float = Field(
        4.0,
        gt=0,
        le=60,
        description="Most seconds from a frame's capture to the start of its read; a frame that "
        "waited longer is skipped. Keep it within fusion.settle_s + 3 s, the longest a "
        "crossing's end waits for its frames (docs/fusion.md).",
    )
