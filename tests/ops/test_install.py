"""`lane install` / `lane uninstall` staged under a temporary root (no venv: see the docs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from edge.install import main as install_main
from tests.ops.support import REPO


def lane(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_install_then_uninstall_leaves_nothing_behind(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    out = lane("install", "--root", str(root), "--no-venv")
    assert out.returncode == 0, out.stderr
    assert "systemctl enable --now lane@T1" in out.stdout
    unit = root / "etc/systemd/system/lane@.service"
    text = unit.read_text()
    assert (
        "ExecStart=/opt/lane-agent/venv/bin/lane run --config /etc/lane-agent/lane-%i.yaml" in text
    )
    example = root / "etc/lane-agent/lane.example.yaml"
    assert example.read_bytes() == (REPO / "config/truck-lane.yaml").read_bytes()
    credentials = root / "etc/lane-agent/credentials"
    assert credentials.is_dir() and credentials.stat().st_mode & 0o777 == 0o700
    assert (root / "opt/lane-agent/docs/operations.md").is_file()
    # The plate models, byte for byte, where the unit's LANE_MODEL_DIR points.
    assert "Environment=LANE_MODEL_DIR=/opt/lane-agent/models" in text
    for model in (REPO / "models").glob("*.onnx"):
        assert (root / "opt/lane-agent/models" / model.name).read_bytes() == model.read_bytes()
    manifest = json.loads((root / "opt/lane-agent/install-manifest.json").read_text())
    assert "/etc/systemd/system/lane@.service" in manifest["files"]

    # Installing again is harmless.
    assert lane("install", "--root", str(root), "--no-venv").returncode == 0

    out = lane("uninstall", "--root", str(root))
    assert out.returncode == 0, out.stderr
    assert tree(root) == set()


def test_operator_files_survive_reinstall_and_uninstall(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    staged = ["--root", str(root), "--prefix", "/srv/lanes", "--config-dir", "/etc/lanes"]
    assert install_main([*staged, "--no-venv"]) == 0
    unit = (root / "etc/systemd/system/lane@.service").read_text()
    assert "ExecStart=/srv/lanes/venv/bin/lane run --config /etc/lanes/lane-%i.yaml" in unit
    assert "/opt/lane-agent" not in unit and "/etc/lane-agent/" not in unit
    example = root / "etc/lanes/lane.example.yaml"
    example.write_text(example.read_text() + "# edited on site\n")
    lane_config = root / "etc/lanes/lane-T1.yaml"
    lane_config.write_text("checkpoint: X\n")
    secret = root / "etc/lanes/credentials/T1/mqtt-password"
    secret.parent.mkdir()
    secret.write_text("s3cret")

    assert install_main([*staged, "--no-venv"]) == 0
    assert example.read_text().endswith("# edited on site\n")
    assert (root / "etc/lanes/lane.example.yaml.new").is_file()

    assert install_main(["uninstall", *staged]) == 0
    assert not (root / "etc/systemd/system/lane@.service").exists()
    assert not (root / "srv/lanes").exists()
    assert not (root / "etc/lanes/lane.example.yaml.new").exists()
    assert example.exists() and lane_config.exists() and secret.read_text() == "s3cret"

    assert install_main([*staged, "--no-venv"]) == 0
    assert install_main(["uninstall", "--purge", *staged]) == 0
    assert not (root / "etc/lanes").exists()


def test_install_errors_are_clear(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    empty = tmp_path / "wheelhouse"
    empty.mkdir()
    out = lane("install", "--root", str(root), "--wheelhouse", str(empty))
    assert out.returncode == 1
    assert "holds no lane_agent-*.whl" in out.stderr and "make wheelhouse" in out.stderr
    out = lane("install", "--root", str(root), "--wheelhouse", str(tmp_path / "missing"))
    assert out.returncode == 1 and "is not a directory" in out.stderr
    out = lane("uninstall", "--root", str(root))
    assert out.returncode == 1 and "no install manifest" in out.stderr
    out = lane("install", "--root", str(root), "--prefix", "relative/dir", "--no-venv")
    assert out.returncode == 1 and "must be an absolute path" in out.stderr


def test_backoff_drop_in_only_where_systemd_knows_it(tmp_path: Path) -> None:
    from edge.install import Layout, install, uninstall

    old, new = Layout(root=tmp_path / "old"), Layout(root=tmp_path / "new")
    for layout in (old, new):
        layout.root.mkdir()
    install(old, make_venv=False, systemd=252)
    install(new, make_venv=False, systemd=255)
    drop_in = "etc/systemd/system/lane@.service.d/backoff.conf"
    assert not (old.root / drop_in).exists()
    assert "RestartSteps=" in (new.root / drop_in).read_text()
    uninstall(new)
    assert tree(new.root) == set()
