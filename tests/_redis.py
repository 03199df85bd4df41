"""Real redis-server processes for tests and benchmarks, on free loopback ports."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.helpers import require


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisProcess:
    """One redis-server; `kill()` and `start()` again keep the same port (and lose data,
    as nothing is persisted)."""

    def __init__(self, workdir: Path, *config: tuple[str, str], tls: bool = False) -> None:
        self.binary = require("redis-server")
        self.workdir = workdir
        self.config = config
        self.port = free_port()
        self.tls = tls
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'rediss' if self.tls else 'redis'}://127.0.0.1:{self.port}/0"

    def start(self) -> RedisProcess:
        ports = (
            [("port", "0"), ("tls-port", str(self.port))]
            if self.tls
            else [("port", str(self.port))]
        )
        config = [
            *ports,
            ("bind", "127.0.0.1"),
            ("save", '""'),
            ("appendonly", "no"),
            ("dir", str(self.workdir)),
            ("logfile", '""'),
            *self.config,
        ]
        # Configuration on stdin, not argv: it may carry a password.
        self.proc = subprocess.Popen(
            [self.binary, "-"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert self.proc.stdin is not None
        self.proc.stdin.write("".join(f"{k} {v}\n" for k, v in config).encode())
        self.proc.stdin.close()
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()


def text(value: object) -> str:
    """A Redis reply as text (redis-py types replies as bytes or str)."""
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisClusterProcesses:
    """A Redis Cluster of three primaries on free loopback ports (bus ports chosen too, so
    none falls past 65535), slots assigned by `redis-cli --cluster create`."""

    def __init__(self, workdir: Path, size: int = 3) -> None:
        self.nodes: list[RedisProcess] = []
        for i in range(size):
            folder = workdir / f"node{i}"
            folder.mkdir()
            self.nodes.append(
                RedisProcess(
                    folder,
                    ("cluster-enabled", "yes"),
                    ("cluster-config-file", str(folder / "nodes.conf")),
                    ("cluster-port", str(free_port())),
                    ("cluster-node-timeout", "2000"),
                )
            )

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    def start(self) -> RedisClusterProcesses:
        try:
            self._start()
        except BaseException:  # a skip or a failure: leave no node running
            self.stop()
            raise
        return self

    def _start(self) -> None:
        cli = require("redis-cli")
        for node in self.nodes:
            node.start()
        subprocess.run(
            [
                cli,
                "--cluster",
                "create",
                *(f"127.0.0.1:{n.port}" for n in self.nodes),
                *("--cluster-replicas", "0", "--cluster-yes"),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        deadline = time.monotonic() + 30
        for node in self.nodes:  # every node must agree the cluster is up before use
            while "cluster_state:ok" not in _cli_text(cli, node.port, "cluster", "info"):
                if time.monotonic() > deadline:
                    raise RuntimeError("the Redis Cluster did not come up")
                time.sleep(0.05)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def _cli_text(cli: str, port: int, *command: str) -> str:
    return subprocess.run(
        [cli, "-p", str(port), *command], capture_output=True, text=True, timeout=10
    ).stdout
