"""config/broker/: the example registers load as `lane ingest` configs and the national
NATS node configuration is one nats-server accepts."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from edge.devtools.localnats import find_nats_server
from edge.site.config import load_ingest_config
from tests.integration.support import ROOT

BROKER = ROOT / "config/broker"


@pytest.fixture
def credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The systemd credentials the examples name, as LoadCredential= would provide them."""
    for name in ("register-mqtt.key", "register-db", "national-forward", "national-register",
                 "national-db"):  # fmt: skip
        (tmp_path / name).write_text("secret\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    return tmp_path


def test_the_site_register_example_forwards_to_the_national_cluster(credentials: Path) -> None:
    config = load_ingest_config(BROKER / "register-site.example.yaml")
    assert config.jetstream is None and config.forward is not None
    assert config.forward.replicas == 3 and len(config.forward.servers) == 3
    assert config.broker.tls is not None and config.broker.port == 8883
    assert config.lanes() == [("KG01", "T1"), ("KG01", "T2"), ("KG01", "C1")]


def test_the_national_register_example_consumes_the_stream(credentials: Path) -> None:
    config = load_ingest_config(BROKER / "register-national.example.yaml")
    assert config.jetstream is not None and config.forward is None
    assert config.jetstream.stream == "CROSSINGS" and config.jetstream.durable
    assert {c for c, _lane in config.lanes()} == {"KG01", "KZ01"}


def test_the_national_nats_node_config_is_valid() -> None:
    binary = find_nats_server()
    if binary is None:
        pytest.fail("nats-server is not installed; `make system-deps` installs it")
    done = subprocess.run(
        [binary, "-t", "-c", str(BROKER / "nats-national.conf")],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "is valid" in done.stdout + done.stderr
