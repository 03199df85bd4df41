"""Attacks on the local endpoint and its proxy, over real loopback sockets: request targets
aimed at other ports, hosts and paths; HTTP_PROXY for loopback; cookies shared between
clients; protocol abuse (HEAD and 204 bodies, Connection-named headers); an upstream that
refuses every token; --socket on a path that is not a stale socket; idle connections."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from freshtoken import Settings, TokenBroker
from freshtoken.local._server import LocalServer
from freshtoken.testing import AuthServer
from tests._attack import Listener, http_answer
from tests._cli import cli_env
from tests.helpers import make_broker, wait_until


@contextmanager
def proxy_to(upstream: str, broker: TokenBroker, **options: object) -> Iterator[LocalServer]:
    server = LocalServer(broker, upstream=upstream, **options)  # type: ignore[arg-type]
    server.start()
    try:
        yield server
    finally:
        server.stop()


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def raw(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send `data` as is (no client library to tidy it), then read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
        return out


def request(target: str, key: str, method: str = "GET", extra: str = "") -> bytes:
    return (
        f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Freshtoken-Key: {key}\r\n"
        f"{extra}Content-Length: 0\r\n\r\n"
    ).encode("latin-1")


def echo_through(proxy: LocalServer) -> httpx.Response:
    """GET /api/echo through the proxy with its key (and no proxy of the test's own)."""
    return httpx.get(
        f"{proxy.proxy_url}/api/echo", headers={"X-Freshtoken-Key": proxy.key}, trust_env=False
    )


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def test_request_targets_never_leave_the_upstream(server: AuthServer) -> None:
    broker = make_broker(server)
    with Listener() as upstream, Listener() as elsewhere:
        other = elsewhere.port
        bare = f"http://127.0.0.1:{upstream.port}"
        attacks = [
            f"@127.0.0.1:{other}/steal",  # userinfo: the rest becomes the host
            f":{other}/steal",  # another port
            ".localhost/x",  # another host (<upstream host>.localhost)
            f"http://127.0.0.1:{other}/x",  # absolute-form
            f"//127.0.0.1:{other}/x",  # network-path reference
            "*",
            "\\\\127.0.0.1\\x",
            "/api/v2/../../../admin",  # above the base path
            "/api/v2/%2e%2e/%2E%2E/%2e%2e/admin",
            "/api/..%2f..%2f..%2fadmin",
            "/..;/admin",  # `..` with a path parameter: `..` for Tomcat, Jetty and Spring
            "/api/v2/..;/..;/..;/admin",
            "/api/v2/%2e%2e;/%2E%2e;x=1/.%2e%3b/admin",
            "/api/v2/.;/..;jsessionid=1/x",
            "/x#fragment",
        ]
        answers = {}
        for base in (bare, bare + "/api/v2"):
            with proxy_to(base, broker) as proxy:
                port = port_of(proxy.proxy_url or "")
                for target in attacks:
                    answers[(base, target)] = raw(port, request(target, proxy.key))
                inside = raw(port, request("/a/./b/../c?q=/../x", proxy.key))
        assert elsewhere.connections == 0, elsewhere.reached()
        assert upstream.connections == 2, upstream.reached()  # the requests that stay
        assert b"GET /api/v2/a/c?q=/../x HTTP/1.1" in upstream.received
    for (base, target), answer in answers.items():
        assert status_of(answer) == 400, (base, target, answer[:200])
        assert b"Traceback" not in answer
    assert status_of(inside) == 200


def test_loopback_never_goes_through_http_proxy(
    server: AuthServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Listener() as proxy_listener:
        for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "HTTPS_PROXY"):
            monkeypatch.setenv(name, proxy_listener.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        broker = make_broker(server)
        assert broker.token().access_token.startswith("at_")
        with proxy_to(server.url, broker) as proxy:
            got = echo_through(proxy)
        assert proxy_listener.connections == 0, proxy_listener.reached()
    assert got.status_code == 200


@pytest.mark.parametrize("host", ["localhost.", "127.0.0.1.", "LOCALHOST."])
def test_a_trailing_dot_host_is_loopback_for_every_rule(
    tmp_path: Path, server: AuthServer, host: str
) -> None:
    """`localhost.` passes the plain-http rule; it must skip HTTP_PROXY as well, or the proxy
    gets the Basic credentials in cleartext (the token request, and the proxy's upstream)."""
    with Listener() as proxy_listener:
        proxies = dict.fromkeys(("HTTP_PROXY", "http_proxy", "ALL_PROXY"), proxy_listener.url)
        env = cli_env(
            tmp_path,
            server,
            FRESHTOKEN_TOKEN_URL=f"http://{host}:{server.port}/oauth/token",
            NO_PROXY="",
            no_proxy="",
            **proxies,
        )
        out = subprocess.run(
            [sys.executable, "-m", "freshtoken", "token"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proxy_listener.connections == 0, proxy_listener.reached()
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith("at_")
        assert server.stats()["tokens_minted"] == 1
        with pytest.MonkeyPatch.context() as patch:
            for name, value in proxies.items():
                patch.setenv(name, value)
            with proxy_to(f"http://{host}:{server.port}", make_broker(server)) as proxy:
                got = echo_through(proxy)
        assert proxy_listener.connections == 0, proxy_listener.reached()
    assert got.status_code == 200


HOSTS = "127.0.0.1 localhost\n127.0.0.1 good.localhost\n192.0.2.10 evil.localhost\n"


def test_a_localhost_name_counts_only_when_it_resolves_to_loopback(
    tmp_path: Path, server: AuthServer
) -> None:
    """The name goes through the resolver (here an /etc/hosts of a private mount namespace):
    evil.localhost resolves to another machine, so plain http to it is refused before anything
    is sent; good.localhost resolves to loopback, so it is this machine."""
    hosts = tmp_path / "hosts"
    hosts.write_text(HOSTS)
    probe = subprocess.run(
        [
            "unshare",
            "-m",
            "sh",
            "-c",
            f"mount --bind {hosts} /etc/hosts && getent hosts evil.localhost",
        ],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0 or "192.0.2.10" not in probe.stdout:
        pytest.skip("no private mount namespace here (unshare -m)")
    outcome = {}
    for name in ("evil", "good"):
        env = cli_env(
            tmp_path,
            server,
            FRESHTOKEN_TOKEN_URL=f"http://{name}.localhost:{server.port}/oauth/token",
        )
        outcome[name] = subprocess.run(
            [
                "unshare",
                "-m",
                "sh",
                "-c",
                f'mount --bind {hosts} /etc/hosts && exec "$@"',
                "sh",
                sys.executable,
                "-m",
                "freshtoken",
                "token",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert outcome["evil"].returncode == 2
    assert "uses plain http to evil.localhost" in outcome["evil"].stderr
    assert outcome["good"].returncode == 0, outcome["good"].stderr
    assert server.stats()["tokens_minted"] == 1


def test_cookies_of_one_client_never_reach_another(server: AuthServer) -> None:
    broker = make_broker(server)
    cookie = "sid=canary-cookie-4e1d; Path=/"
    with Listener(http_answer(200, b"{}", f"Set-Cookie: {cookie}")) as upstream:
        with proxy_to(upstream.url, broker) as proxy:
            port = port_of(proxy.proxy_url or "")
            first = raw(port, request("/login", proxy.key))
            raw(port, request("/other-client", proxy.key))
        assert b"canary-cookie" in first  # the client that got it sees it
        assert b"canary-cookie" not in bytes(upstream.received), upstream.reached()


def test_protocol_hygiene(server: AuthServer) -> None:
    broker = make_broker(server)
    head_answer = http_answer(200, b"", "Server: upstream/1", "Date: Mon, 01 Jan 2024 00:00:00 GMT")
    with Listener(head_answer) as upstream, proxy_to(upstream.url, broker) as proxy:
        port = port_of(proxy.proxy_url or "")
        secret_hop = "X-Hop-Canary: canary-hop-value\r\nConnection: keep-alive, X-Hop-Canary\r\n"
        stream = raw(
            port,
            request("/h", proxy.key, "HEAD", secret_hop) + request("/g", proxy.key, "GET"),
        )
        received = bytes(upstream.received)
    with Listener(http_answer(204, b"")) as empty, proxy_to(empty.url, broker) as proxy:
        port = port_of(proxy.proxy_url or "")
        no_content = raw(port, request("/n", proxy.key) + request("/n", proxy.key))
    # HEAD: headers only, so the next answer on the connection starts right after them.
    head, rest = stream.split(b"\r\n\r\n", 1)
    assert rest.startswith(b"HTTP/1.1 200"), stream
    assert len(re.findall(rb"(?im)^server:", head)) == 1 and b"upstream/1" in head
    assert len(re.findall(rb"(?im)^date:", head)) == 1
    assert b"canary-hop-value" not in received and b"X-Hop-Canary" not in received
    first, second = no_content.split(b"\r\n\r\n", 1)
    assert second.startswith(b"HTTP/1.1 204") and b"transfer-encoding" not in first.lower()


@pytest.mark.slow
def test_an_upstream_that_refuses_every_token_causes_few_mints(server: AuthServer) -> None:
    """Every client request to such an upstream used to mint a new token."""
    broker = make_broker(server, invalidate_cooldown=1.0)
    refuse = http_answer(401, b'{"message":"no"}')
    with Listener(refuse) as upstream, proxy_to(upstream.url, broker) as proxy:
        url, headers = f"{proxy.proxy_url}/api/x", {"X-Freshtoken-Key": proxy.key}
        started = time.monotonic()
        codes: list[int] = []

        def client() -> None:
            with httpx.Client(trust_env=False) as http:
                while time.monotonic() - started < 3.0:
                    codes.append(http.get(url, headers=headers).status_code)

        threads = [threading.Thread(target=client) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        sent = upstream.connections
    minted = server.stats()["tokens_minted"]
    assert len(codes) > 50 and set(codes) == {401}
    assert minted <= 2 + elapsed / 1.0, (minted, len(codes))
    # A token the broker kept is not sent a second time: one upstream request per call, plus
    # a retry only for the calls (at most one per client thread) that saw a new token.
    assert sent <= len(codes) + len(threads) * minted, (sent, len(codes), minted)


def test_the_cooldown_is_a_setting(server: AuthServer) -> None:
    settings = Settings.from_env(
        {
            "FRESHTOKEN_TOKEN_URL": server.token_url,
            "FRESHTOKEN_CLIENT_ID": "demo-client",
            "FRESHTOKEN_CLIENT_SECRET": "demo-secret",
            "FRESHTOKEN_STORE": "memory://",
            "FRESHTOKEN_INVALIDATE_COOLDOWN": "2.5",
        }
    )
    broker = TokenBroker.from_settings(settings)
    first = broker.token()
    broker.invalidate(first)  # the first 401 is always believed
    second = broker.token()
    broker.invalidate(second)  # minted just now to replace a refused token: kept
    assert broker.token() is second and server.stats()["tokens_minted"] == 2


def test_socket_path_that_is_not_a_stale_socket_is_left_alone(
    tmp_path: Path, server: AuthServer
) -> None:
    precious = tmp_path / "precious.txt"
    precious.write_text("the user's own file")
    env = cli_env(tmp_path, server)
    out = subprocess.run(
        [sys.executable, "-m", "freshtoken", "serve", "--socket", str(precious)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "something else is there" in out.stderr
    assert precious.read_text() == "the user's own file"
    live = tmp_path / "live.sock"
    with socket.socket(socket.AF_UNIX) as listening:
        listening.bind(str(live))
        listening.listen(1)
        busy = subprocess.run(
            [sys.executable, "-m", "freshtoken", "serve", "--socket", str(live)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert busy.returncode == 2 and "in use by a running server" in busy.stderr


def test_connections_are_capped_and_idle_ones_closed(server: AuthServer) -> None:
    broker = make_broker(server)
    local = LocalServer(broker, max_connections=4, idle_timeout=0.5).start()
    port = port_of(local.url)
    held: list[socket.socket] = []
    try:
        for _ in range(4):
            held.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        wait_until(lambda: local.metrics.counts["requests"] == 0 and _in_use(local) == 4)
        extra = [raw(port, b"") for _ in range(20)]
        assert all(status_of(answer) == 503 for answer in extra), extra[0]

        def closed_by_server() -> bool:
            return all(_closed(sock) for sock in held)

        wait_until(closed_by_server, timeout=10)  # idle for 0.5 s: let go
        wait_until(lambda: _in_use(local) == 0)
        ok = httpx.get(local.url + "/healthz", headers={"X-Freshtoken-Key": local.key})
        assert ok.status_code == 200
    finally:
        for sock in held:
            sock.close()
        local.stop()


def _in_use(local: LocalServer) -> int:
    free: int = local._servers[0].slots._value  # type: ignore[attr-defined]
    return local.max_connections - free


def _closed(sock: socket.socket) -> bool:
    sock.settimeout(0.01)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except OSError:
        return True
