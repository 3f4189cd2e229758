"""`lane diag mqtt check` against a Mosquitto TLS listener (certificates made with openssl)."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.devtools.localbroker import find_mosquitto, free_port
from edge.diag.models import MqttCheckOutput
from tests.diag.support import diag, write_lane


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def make_ca(directory: Path, name: str) -> None:
    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        f"/CN={name}",
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.pem",
        cwd=directory,
    )


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[tuple[int, Path, Path]]:
    if shutil.which("openssl") is None or find_mosquitto() is None:
        pytest.fail("openssl and mosquitto are needed")
    pki = tmp_path / "pki"
    pki.mkdir()
    make_ca(pki, "lane-test-ca")
    make_ca(pki, "other-ca")
    (pki / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=lane-broker",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        cwd=pki,
    )
    openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "lane-test-ca.pem",
        "-CAkey",
        "lane-test-ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.cnf",
        "-out",
        "server.pem",
        cwd=pki,
    )
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        f"user {pwd.getpwuid(os.geteuid()).pw_name}\n"
        f"listener {port} 127.0.0.1\n"
        f"cafile {pki / 'lane-test-ca.pem'}\ncertfile {pki / 'server.pem'}\n"
        f"keyfile {pki / 'server.key'}\nallow_anonymous true\n"
    )
    process = subprocess.Popen(
        [find_mosquitto() or "mosquitto", "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "TLS broker did not start"
                time.sleep(0.05)
        yield port, pki / "lane-test-ca.pem", pki / "other-ca.pem"
    finally:
        process.terminate()
        process.wait(10)


def test_tls_details_and_failures(
    capsys: pytest.CaptureFixture[str], tls_broker: tuple[int, Path, Path], tmp_path: Path
) -> None:
    port, ca, other_ca = tls_broker
    good = write_lane(tmp_path / "good", port, "", mqtt_extra=f"  tls: {{ca_file: {ca}}}\n")
    result = diag(capsys, "mqtt", "check", "-c", good, "--json")
    assert result.code == 0, result.err
    report = MqttCheckOutput.model_validate_json(result.out)
    assert report.tls is not None and (report.tls.version or "").startswith("TLSv1")
    assert "lane-broker" in (report.tls.peer_subject or "")
    assert "lane-test-ca" in (report.tls.peer_issuer or "")
    assert report.received and report.round_trip_ms is not None
    assert "server cert" in diag(capsys, "mqtt", "check", "-c", good).out

    untrusted = write_lane(
        tmp_path / "bad", port, "", mqtt_extra=f"  tls: {{ca_file: {other_ca}}}\n"
    )
    refused = diag(capsys, "mqtt", "check", "-c", untrusted)
    assert refused.code == 7 and "not trusted" in refused.err

    plain = write_lane(tmp_path / "plain", port, "")
    no_tls = diag(capsys, "mqtt", "check", "-c", plain, "--timeout", "2")
    assert no_tls.code == 6 and "expect TLS" in no_tls.err
