"""The fusion's settings are the lane config's ``fusion:`` model: what a lane configures reaches
the correlator as configured, with the lane's type and the recogniser's ``top_n``."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest

from edge.config import FusionConfig, LaneType, parse_config
from edge.fusion.settings import FusionSettings, fusion_settings
from edge.replay import load

CONFIG = """\
checkpoint: KZ-KHORGOS
lane: C1
direction: entry
lane_type: car
recognition: {top_n: 3}
fusion:
  presence_order: [weight, io]
  presence_inputs: [entry_loop, light_curtain]
  settle_s: 2.5
  parked_s: 30
  max_axle_kg: 9000
  xray_wait_s: 15
  xray_clock_offset: false
"""


def test_a_lane_config_reaches_the_fusion_as_configured() -> None:
    config = parse_config(CONFIG)
    settings = fusion_settings(config)
    assert isinstance(settings, FusionConfig)
    assert {k: getattr(settings, k) for k in FusionConfig.model_fields} == dict(config.fusion)
    assert settings.lane_type == LaneType.CAR
    assert settings.top_n == 3
    assert settings.order() == ("weight", "io")


@pytest.mark.parametrize(
    ("lane_type", "first"), [("truck", ("io", "weight")), ("car", ("io", "rpm"))]
)
def test_without_a_presence_order_the_lane_type_chooses(lane_type: str, first: tuple[str]) -> None:
    settings = FusionSettings(lane_type=lane_type)
    assert settings.order()[:2] == first


def test_a_setting_out_of_its_config_bounds_or_unknown_is_refused() -> None:
    with pytest.raises(pydantic.ValidationError):
        FusionSettings(settle_s=0)  # FusionConfig: gt=0
    with pytest.raises(pydantic.ValidationError):
        FusionSettings.model_validate({"settle": 1.5})  # a misspelt key in a recording


def test_a_recording_names_its_settings_by_the_config_keys(tmp_path: Path) -> None:
    path = tmp_path / "lane.jsonl"
    path.write_text(
        '{"devices": [{"id": "io", "kind": "laneio.modbus"}],'
        ' "settings": {"lane_type": "bus", "settle_s": 2, "plate_lead_s": 1}}\n'
    )
    correlator, steps = load(path)
    assert steps == []
    assert correlator.settings.lane_type == LaneType.BUS
    assert correlator.settings.settle_s == 2.0
    assert correlator.settings.plate_lead_s == 1.0
