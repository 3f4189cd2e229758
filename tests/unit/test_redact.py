"""edge.redact: one redaction for log, status, diag and bundle (issue 22 finding 6)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from edge.config import parse_config
from edge.redact import REDACTED, Redactor, config_secrets, url_secrets

ROOT = Path(__file__).resolve().parents[2]


def test_url_userinfo_is_removed_up_to_the_netlocs_last_at() -> None:
    r = Redactor()
    assert (
        r.text("open http://admin:pw1@10.0.0.1/ISAPI x")
        == f"open http://{REDACTED}@10.0.0.1/ISAPI x"
    )
    # a password holding '@' (RFC 3986 wants it percent-encoded; cameras' UIs do not)
    assert r.text("rtsp://admin:p@ss@cam:554/live") == f"rtsp://{REDACTED}@cam:554/live"
    assert r.text("rtsp://cam:554/live, mail ops@example.org") == (
        "rtsp://cam:554/live, mail ops@example.org"
    )
    # never across JSON quoting: a URL without userinfo next to an address stays whole
    assert r.text('{"a":"http://host","e":"me@x"}') == '{"a":"http://host","e":"me@x"}'


def test_secret_query_parameters_lose_their_values() -> None:
    r = Redactor()
    assert r.text("http://c/cgi?user=admin&password=abc123&channel=1") == (
        f"http://c/cgi?user=admin&password={REDACTED}&channel=1"
    )
    assert r.text("GET /snap.cgi?pwd=zz9;token=QQ&auth=Basic&sig=ff&key=k1") == (
        f"GET /snap.cgi?pwd={REDACTED};token={REDACTED}&auth={REDACTED}&sig={REDACTED}"
        f"&key={REDACTED}"
    )
    # in free text only the unmistakable names: 'signal=15' and 'key=value' stay readable
    assert r.text("password=hunter2 signal=15 key=value") == (
        f"password={REDACTED} signal=15 key=value"
    )


def test_remembered_values_go_in_every_spelling() -> None:
    r = Redactor(["p@ss w/rd'\"1", "abc"])  # "abc": too short to replace by value
    text = r.text("a p@ss w/rd'\"1 b p%40ss%20w%2Frd%27%221 c p%40ss+w%2Frd%27%221 abc")
    assert "p@ss" not in text and "p%40ss" not in text and text.endswith(" abc")
    assert r.text('{"e": "p@ss w/rd\'\\"1"}') == f'{{"e": "{REDACTED}"}}'


def test_structured_values_by_key_and_by_text() -> None:
    r = Redactor(["s3cret-value"])
    found: list[str] = []
    out = r.value(
        {
            "mqtt": {"password": {"env": "X"}, "host": "h"},
            "devices": [{"url": "http://u:p@h/x?token=t", "note": "has s3cret-value"}],
            "enabled": True,
        },
        found=found,
    )
    assert out == {
        "mqtt": {"password": REDACTED, "host": "h"},
        "devices": [{"url": f"http://{REDACTED}@h/x?token={REDACTED}", "note": f"has {REDACTED}"}],
        "enabled": True,
    }
    assert found == ["mqtt.password", "devices.0.url", "devices.0.note"]


def test_the_config_feeds_resolved_secrets_and_url_parts(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("mqtt-from-file\n")
    config = parse_config(
        "checkpoint: K\nlane: T1\ndirection: entry\n"
        f"mqtt:\n  username: u\n  password: {{file: {tmp_path}/pw}}\n"
        "devices:\n"
        "  - {id: c1, kind: anpr.http, url: 'http://adm:url%40pw@h/p?password=q-pw&x=1'}\n"
        "  - {id: c2, kind: anpr.http, url: 'http://h/p', password: {env: NO_SUCH_VAR_42}}\n",
        secrets="skip",
    )
    assert sorted(config_secrets(config)) == sorted(
        ["mqtt-from-file", "url%40pw", "url@pw", "q-pw"]
    )
    assert url_secrets("not a url") == [] and url_secrets("http://[broken/") == []


def test_long_hostile_lines_are_redacted_in_linear_time() -> None:
    # many word boundaries and '://' without an '@': each bounded pattern gives up quickly
    r = Redactor(["x" * 12])
    line = "a-" * 100_000 + "http://" * 20_000 + "pass" * 20_000
    assert r.text(line) == line


def test_lane_run_redacts_every_log_record_and_uncaught_tracebacks(tmp_path: Path) -> None:
    """The record factory `lane run` installs, in a process of its own (it is global)."""
    (tmp_path / "pw").write_text("file-secret-991\n")
    script = f"""
import logging, threading
from edge.config import parse_config
from edge.logs import setup_logging
from edge.redact import install_log_redaction, remember
config = parse_config(
    "checkpoint: K\\nlane: T1\\ndirection: entry\\n"
    "mqtt:\\n  username: u\\n  password: {{file: {tmp_path}/pw}}\\n", source="x")
setup_logging("INFO")
remember(config)
install_log_redaction()
log = logging.getLogger("t")
log.warning("args %s and %r", "file-secret-991", "http://a:b0bpass@h/?token=tok-77")
try:
    raise ValueError("in a traceback: file-secret-991")
except ValueError:
    log.exception("failed")
logging.getLogger("late").addHandler(logging.StreamHandler())  # a handler added later
logging.getLogger("late").error("late file-secret-991")
t = threading.Thread(target=lambda: 1 / 0 if "file-secret-991" else 0, name="worker")
t.start(); t.join()
raise RuntimeError("uncaught file-secret-991")
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    err = done.stderr
    assert done.returncode == 1
    for secret in ("file-secret-991", "b0bpass", "tok-77"):
        assert secret not in err, err
    assert f"args {REDACTED} and 'http://{REDACTED}@h/?token={REDACTED}'" in err
    assert "ValueError: in a traceback: <redacted>" in err
    assert err.count(f"late {REDACTED}") == 2  # the root handler and the late one
    assert "thread worker died" in err and "ZeroDivisionError" in err
    assert "uncaught RuntimeError" in err
