"""Install the lane agent on a lane controller, and remove it again.

    sudo python3 -m edge.install [--wheelhouse DIR]      # from the source tree or bundle
    sudo lane install / sudo lane uninstall [--purge]    # the same, as subcommands

What goes where (every path is recorded in ``<prefix>/install-manifest.json`` so that
``uninstall`` removes exactly what ``install`` made):

    /opt/lane-agent/venv/                 the package and its dependencies (a venv)
    /opt/lane-agent/docs/operations.md    what the unit's Documentation= points at
    /etc/systemd/system/lane@.service     the template unit (one instance per lane)
    /etc/systemd/system/lane@.service.d/backoff.conf   restart back-off (systemd >= 254)
    /etc/lane-agent/lane.example.yaml     an example lane config to copy to lane-<LANE>.yaml
    /etc/lane-agent/credentials/          secrets for LoadCredential= (root only, 0700)

Lane configs (``lane-*.yaml``), credentials and the outbox under ``/var/lib`` are the
operator's data: ``uninstall`` keeps them unless ``--purge``.

Only the standard library is used here, so a bare ``python3`` can run this module from the
source tree before any dependency is installed. ``--wheelhouse`` installs offline (see
docs/operations.md); ``--root`` stages everything under another directory (packaging, tests).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "lane-agent"
DEFAULT_PREFIX = Path("/opt/lane-agent")
DEFAULT_CONFIG_DIR = Path("/etc/lane-agent")
DEFAULT_UNIT_DIR = Path("/etc/systemd/system")
UNIT_NAME = "lane@.service"
BACKOFF_MIN_SYSTEMD = 254
MANIFEST = "install-manifest.json"
STATE_DIRS = (Path("/var/lib/lane-agent"), Path("/var/lib/private/lane-agent"))
CACHE_DIRS = (Path("/var/cache/lane-agent"), Path("/var/cache/private/lane-agent"))
PIP_TIMEOUT_S = 1800


class InstallError(Exception):
    """Installation cannot go on; the message says what to do. Exit code 1."""


@dataclass
class Layout:
    """Where things go. ``root`` prefixes every path (a staging directory, or /)."""

    root: Path = Path("/")
    prefix: Path = DEFAULT_PREFIX
    config_dir: Path = DEFAULT_CONFIG_DIR
    unit_dir: Path = DEFAULT_UNIT_DIR

    def on_disk(self, path: Path) -> Path:
        return self.root / path.relative_to("/")

    @property
    def venv(self) -> Path:
        return self.prefix / "venv"

    @property
    def manifest(self) -> Path:
        return self.on_disk(self.prefix / MANIFEST)

    @property
    def live(self) -> bool:
        """Installing into the running system (not a staging root)."""
        return self.root == Path("/")


@dataclass
class Manifest:
    files: dict[str, str] = field(default_factory=dict)  # path -> sha256 as installed
    dirs: list[str] = field(default_factory=list)  # made by us, removed if empty
    trees: list[str] = field(default_factory=list)  # removed whole (the venv)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {"files": self.files, "dirs": self.dirs, "trees": self.trees}
        path.write_text(json.dumps(data, indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> Manifest:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise InstallError(
                f"no install manifest at {path}: nothing installed there "
                "(give the same --prefix/--root as for install)"
            ) from None
        except (OSError, ValueError) as exc:
            raise InstallError(f"install manifest {path} is unreadable: {exc}") from None
        return cls(data.get("files", {}), data.get("dirs", []), data.get("trees", []))


def source_tree() -> Path:
    """The checkout or bundle this module runs from (it holds systemd/ and config/)."""
    here = Path(__file__).resolve().parents[1]
    if not (here / "systemd" / UNIT_NAME).is_file():
        raise InstallError(
            f"{here} has no systemd/{UNIT_NAME}: run the installer from the source tree or "
            "the release bundle (`make bundle`), e.g. `sudo python3 -m edge.install`"
        )
    return here


def systemd_version() -> int | None:
    """The running systemd's version, or None when systemctl is not available."""
    systemctl = shutil.which("systemctl")
    if systemctl is None:
        return None
    try:
        out = subprocess.run(
            [systemctl, "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.match(r"systemd (\d+)", out)
    return int(match.group(1)) if match else None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _say(message: str) -> None:
    print(message, flush=True)


def _run(command: list[str], what: str) -> None:
    _say(f"  $ {' '.join(command)}")
    try:
        result = subprocess.run(command, timeout=PIP_TIMEOUT_S, check=False)
    except OSError as exc:
        raise InstallError(f"{what}: cannot run {command[0]}: {exc.strerror}") from None
    except subprocess.TimeoutExpired:
        raise InstallError(f"{what}: gave up after {PIP_TIMEOUT_S} s") from None
    if result.returncode != 0:
        raise InstallError(f"{what} failed (exit {result.returncode}); see the output above")


def _systemctl(*args: str) -> None:
    systemctl = shutil.which("systemctl")
    if systemctl is None or not Path("/run/systemd/system").is_dir():
        _say(f"  (systemd is not running here; skipped: systemctl {' '.join(args)})")
        return
    subprocess.run([systemctl, *args], timeout=120, check=False)


class Installer:
    def __init__(self, layout: Layout, manifest: Manifest | None = None) -> None:
        self.layout = layout
        self.manifest = manifest or Manifest()

    def _mkdir(self, path: Path, mode: int = 0o755) -> None:
        """Make ``path`` (a target path) and its parents, recording the ones we created."""
        missing = []
        target = path
        while not self.layout.on_disk(target).exists():
            missing.append(target)
            if target.parent == target:
                break
            target = target.parent
        for directory in reversed(missing):
            self.layout.on_disk(directory).mkdir(mode=mode)
            os.chmod(self.layout.on_disk(directory), mode)  # mkdir's mode obeys the umask
            if str(directory) not in self.manifest.dirs:
                self.manifest.dirs.append(str(directory))

    def _write(self, path: Path, data: bytes, *, mode: int = 0o644, keep: bool = False) -> Path:
        """Write a target file. With ``keep``, an edited existing file stays; ours goes to .new."""
        self._mkdir(path.parent)
        disk = self.layout.on_disk(path)
        if keep and disk.exists():
            recorded = self.manifest.files.get(str(path))
            if disk.read_bytes() == data:
                return path
            if recorded is None or _sha256(disk) != recorded:
                path = path.with_name(path.name + ".new")
                disk = self.layout.on_disk(path)
                _say(f"  kept the edited {path.with_suffix('')}; the new version is {path}")
        disk.write_bytes(data)
        os.chmod(disk, mode)
        self.manifest.files[str(path)] = hashlib.sha256(data).hexdigest()
        return path

    # --- steps --------------------------------------------------------------------------

    def venv(
        self, source: Path, *, wheelhouse: Path | None, python: str, system_site: bool
    ) -> None:
        if wheelhouse is not None and not any(wheelhouse.glob("lane_agent-*.whl")):
            raise InstallError(
                f"{wheelhouse} holds no lane_agent-*.whl: build it with `make wheelhouse` "
                "on a machine with the same OS, CPU and Python"
            )
        venv = self.layout.venv
        disk = self.layout.on_disk(venv)
        _say(f"virtualenv {venv}")
        self._mkdir(venv.parent)
        if not (disk / "bin" / "python").exists():
            command = [python, "-m", "venv"]
            if system_site:
                command.append("--system-site-packages")
            _run(
                [*command, str(disk)], "creating the virtualenv (Debian: apt install python3-venv)"
            )
        if str(venv) not in self.manifest.trees:
            self.manifest.trees.append(str(venv))
        pip = [str(disk / "bin" / "python"), "-m", "pip", "install", "--upgrade", "--quiet"]
        if wheelhouse is not None:
            # Offline: only the wheelhouse, never an index.
            _run(
                [*pip, "--no-index", "--find-links", str(wheelhouse), PACKAGE],
                "installing from the wheelhouse",
            )
        else:
            _run([*pip, str(source)], f"installing {source} (needs PyPI; offline: --wheelhouse)")

    def unit(self, source: Path, *, systemd: int | None) -> None:
        prefix = str(self.layout.prefix)
        text = (source / "systemd" / UNIT_NAME).read_text()
        text = text.replace(str(DEFAULT_PREFIX), prefix)
        text = text.replace(str(DEFAULT_CONFIG_DIR), str(self.layout.config_dir))
        unit = self.layout.unit_dir / UNIT_NAME
        _say(f"unit       {unit}")
        self._write(unit, text.encode())
        backoff = source / "systemd" / f"{UNIT_NAME}.d" / "backoff.conf"
        if systemd is not None and systemd >= BACKOFF_MIN_SYSTEMD:
            self._write(
                self.layout.unit_dir / f"{UNIT_NAME}.d" / "backoff.conf", backoff.read_bytes()
            )
        else:
            _say(
                f"  systemd {systemd or 'unknown'} < {BACKOFF_MIN_SYSTEMD}: restarts every 2 s "
                "without exponential back-off (RestartSteps= is not known there)"
            )

    def docs(self, source: Path) -> None:
        doc = source / "docs" / "operations.md"
        if doc.is_file():
            self._write(self.layout.prefix / "docs" / "operations.md", doc.read_bytes())

    def models(self, source: Path) -> None:
        """The plate models and their manifests: the installed package does not carry them
        (the unit points LANE_MODEL_DIR here)."""
        files = sorted((source / "models").glob("*.onnx")) + sorted(
            (source / "models").glob("*.json")
        )
        if not any(f.suffix == ".onnx" for f in files):
            raise InstallError(f"no plate models in {source / 'models'}")
        _say(f"models     {self.layout.prefix / 'models'}")
        for f in files:
            self._write(self.layout.prefix / "models" / f.name, f.read_bytes())

    def config(self, source: Path) -> None:
        example = source / "config" / "truck-lane.yaml"
        if not example.is_file():
            raise InstallError(f"{example} is missing from the source tree")
        target = self.layout.config_dir / "lane.example.yaml"
        _say(f"config     {target}")
        self._write(target, example.read_bytes(), keep=True)
        self._mkdir(self.layout.config_dir / "credentials", mode=0o700)


def install(
    layout: Layout,
    *,
    wheelhouse: Path | None = None,
    python: str = sys.executable,
    make_venv: bool = True,
    system_site: bool = False,
    systemd: int | None = None,
) -> Manifest:
    if layout.live and os.geteuid() != 0:
        raise InstallError("installing into the system needs root: run it with sudo")
    source = source_tree()
    previous = layout.manifest
    installer = Installer(layout, Manifest.load(previous) if previous.exists() else None)
    if make_venv:
        installer.venv(source, wheelhouse=wheelhouse, python=python, system_site=system_site)
    installer.docs(source)
    installer.models(source)
    installer.unit(source, systemd=systemd)
    installer.config(source)
    installer._mkdir(layout.prefix)  # so that uninstall removes it
    installer.manifest.save(layout.manifest)
    if layout.live:
        _systemctl("daemon-reload")
    return installer.manifest


def uninstall(layout: Layout, *, purge: bool = False) -> list[str]:
    """Remove what install made; returns the paths kept because an operator edited them."""
    if layout.live and os.geteuid() != 0:
        raise InstallError("uninstalling from the system needs root: run it with sudo")
    manifest = Manifest.load(layout.manifest)
    if layout.live:
        _stop_instances()
    kept = []
    for name, digest in manifest.files.items():
        disk = layout.on_disk(Path(name))
        if not disk.exists():
            continue
        if disk.suffix == ".yaml" and _sha256(disk) != digest and not purge:
            kept.append(name)
            continue
        disk.unlink()
    for tree in manifest.trees:
        shutil.rmtree(layout.on_disk(Path(tree)), ignore_errors=True)
    layout.manifest.unlink()
    if purge:
        shutil.rmtree(layout.on_disk(layout.config_dir), ignore_errors=True)
        for directory in (*STATE_DIRS, *CACHE_DIRS):
            shutil.rmtree(layout.on_disk(directory), ignore_errors=True)
    for made in sorted(manifest.dirs, key=lambda d: d.count("/"), reverse=True):
        disk = layout.on_disk(Path(made))
        if disk.is_dir() and not any(disk.iterdir()):
            disk.rmdir()
    if layout.live:
        _systemctl("daemon-reload")
    return kept


def _stop_instances() -> None:
    systemctl = shutil.which("systemctl")
    if systemctl is None or not Path("/run/systemd/system").is_dir():
        return
    out = subprocess.run(
        [systemctl, "list-units", "--all", "--plain", "--no-legend", "lane@*.service"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    ).stdout
    units = [line.split()[0] for line in out.splitlines() if line.strip()]
    if units:
        _say(f"stopping   {' '.join(units)}")
        subprocess.run([systemctl, "disable", "--now", *units], timeout=120, check=False)


def next_steps(layout: Layout) -> str:
    c = layout.config_dir
    lane = f"{layout.venv}/bin/lane"
    return f"""
Installed. Next steps for lane T1 (repeat per lane):
  1. cp {c}/lane.example.yaml {c}/lane-T1.yaml   and edit checkpoint, lane, devices, mqtt
  2. secrets go in {c}/credentials/T1/ (root only), e.g. {c}/credentials/T1/mqtt-password;
     in the config: `password: {{credential: mqtt-password}}`
  3. CREDENTIALS_DIRECTORY={c}/credentials/T1 {lane} config check {c}/lane-T1.yaml
  4. systemctl enable --now lane@T1
  5. systemctl status lane@T1; journalctl -u lane@T1 -f
Remove with: {lane} uninstall   (configs, credentials and outboxes stay unless --purge)
"""


def add_arguments(parser: argparse.ArgumentParser, *, uninstalling: bool) -> None:
    parser.add_argument("--prefix", type=Path, default=DEFAULT_PREFIX, help="default %(default)s")
    parser.add_argument(
        "--config-dir", type=Path, default=DEFAULT_CONFIG_DIR, help="default %(default)s"
    )
    parser.add_argument(
        "--unit-dir", type=Path, default=DEFAULT_UNIT_DIR, help="default %(default)s"
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=Path("/"),
        help="stage under this directory instead of / (a venv staged there runs only there)",
    )
    if uninstalling:
        parser.add_argument(
            "--purge",
            action="store_true",
            help="also remove lane configs, credentials and every lane's outbox",
        )
        return
    parser.add_argument(
        "--wheelhouse", type=Path, help="install offline from this directory of wheels"
    )
    parser.add_argument("--python", default=sys.executable, help="interpreter for the venv")
    parser.add_argument("--no-venv", action="store_true", help="skip the virtualenv step")
    parser.add_argument(
        "--system-site-packages",
        action="store_true",
        help="let the venv see Debian's python3-* packages",
    )


def layout_from(args: argparse.Namespace) -> Layout:
    for name in ("prefix", "config_dir", "unit_dir"):
        if not getattr(args, name).is_absolute():
            raise InstallError(f"--{name.replace('_', '-')} must be an absolute path")
    return Layout(args.root.resolve(), args.prefix, args.config_dir, args.unit_dir)


def run_install(args: argparse.Namespace) -> int:
    try:
        layout = layout_from(args)
        if args.wheelhouse is not None and not args.wheelhouse.is_dir():
            raise InstallError(f"wheelhouse {args.wheelhouse} is not a directory")
        install(
            layout,
            wheelhouse=args.wheelhouse.resolve() if args.wheelhouse else None,
            python=args.python,
            make_venv=not args.no_venv,
            system_site=args.system_site_packages,
            systemd=systemd_version(),
        )
    except InstallError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    _say(next_steps(layout))
    return 0


def run_uninstall(args: argparse.Namespace) -> int:
    try:
        layout = layout_from(args)
        kept = uninstall(layout, purge=args.purge)
    except InstallError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for path in kept:
        _say(f"kept {path}: edited since install (--purge removes it)")
    _say("Uninstalled." + ("" if args.purge else " Lane configs and outboxes are kept."))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python3 -m edge.install [options]`` or ``python3 -m edge.install uninstall [options]``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    uninstalling = argv[:1] == ["uninstall"]
    parser = argparse.ArgumentParser(
        prog="python3 -m edge.install" + (" uninstall" if uninstalling else ""),
        description="Remove the lane agent." if uninstalling else "Install the lane agent.",
    )
    add_arguments(parser, uninstalling=uninstalling)
    args = parser.parse_args(argv[1:] if uninstalling else argv)
    return run_uninstall(args) if uninstalling else run_install(args)


if __name__ == "__main__":
    sys.exit(main())
