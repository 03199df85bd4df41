"""A throwaway CA and a server certificate for 127.0.0.1, for TLS tests on loopback."""

from __future__ import annotations

from pathlib import Path

from freshtoken.testing._tls import key_pem, make_certificate, pem


def certificates(tmp: Path) -> tuple[Path, Path, Path]:
    ca = make_certificate("freshtoken test CA", ca=True, days=1)
    cert, key = make_certificate("127.0.0.1", ca, hosts=("127.0.0.1",), days=1)
    paths = tmp / "ca.pem", tmp / "server.pem", tmp / "server.key"
    paths[0].write_text(pem(ca[0]))
    paths[1].write_text(pem(cert))
    paths[2].write_text(key_pem(key))
    return paths
