"""A private NATS JetStream cluster on loopback (tests, simulated checkpoints).

``nats-server`` comes from Debian's ``nats-server`` package (``make system-deps``). Each node
has its own client port, cluster route port and store directory; ``kill`` and ``start`` a node
to play a lost machine.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from edge.devtools.localbroker import free_port


def find_nats_server() -> str | None:
    return shutil.which("nats-server") or (
        "/usr/bin/nats-server" if Path("/usr/bin/nats-server").exists() else None
    )


class NatsNode:
    def __init__(self, binary: str, config: Path, port: int, log: Path) -> None:
        self.binary = binary
        self.config = config
        self.port = port
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 20.0) -> None:
        self.process = subprocess.Popen(
            [self.binary, "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nats-server exited at start; see {self.log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"nats-server did not listen on port {self.port}")

    def kill(self) -> None:
        """SIGKILL: the machine is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


class LocalNatsCluster:
    """``size`` JetStream nodes routed to each other on 127.0.0.1."""

    def __init__(self, size: int = 3, *, workdir: Path | None = None) -> None:
        binary = find_nats_server()
        if binary is None:
            raise RuntimeError("nats-server is not installed: `make system-deps` installs it")
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="lane-nats-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        ports = [(free_port(), free_port()) for _ in range(size)]
        self.nodes: list[NatsNode] = []
        for index, (client, route) in enumerate(ports):
            routes = ", ".join(
                f"nats-route://127.0.0.1:{r}" for i, (_c, r) in enumerate(ports) if i != index
            )
            store = self.dir / f"n{index}"
            log = self.dir / f"n{index}.log"
            config = self.dir / f"n{index}.conf"
            config.write_text(
                f"server_name: n{index}\n"
                f"listen: 127.0.0.1:{client}\n"
                f'log_file: "{log}"\n'
                f'jetstream {{ store_dir: "{store}" }}\n'
                "cluster {\n"
                "  name: lanes\n"
                f"  listen: 127.0.0.1:{route}\n"
                f"  routes: [{routes}]\n"
                "}\n"
            )
            self.nodes.append(NatsNode(binary, config, client, log))

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def start(self) -> LocalNatsCluster:
        for node in self.nodes:
            node.start()
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> LocalNatsCluster:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
