"""Failures that get no HTTP answer: real TLS on loopback, and the mapping of causes."""

from __future__ import annotations

import http.server
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from freshtoken import (
    ClientCredentials,
    ClientSecretBasic,
    Endpoints,
    NameResolutionError,
    RetryPolicy,
    Secret,
    TLSError,
    TokenClient,
)
from freshtoken._errors import ErrorContext
from freshtoken._http import retry_after
from freshtoken.oauth._response import transport_error
from freshtoken.testing import AuthServer
from tests._certs import certificates


@pytest.fixture
def tls_url(tmp_path: Path) -> Iterator[str]:
    _, cert, key = certificates(tmp_path)  # signed by a CA nobody trusts
    httpd = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{httpd.server_address[1]}/oauth/token"
    httpd.shutdown()
    httpd.server_close()


def test_untrusted_certificate_is_a_tls_error_and_not_retried(tls_url: str) -> None:
    client = TokenClient(
        ClientSecretBasic("a", Secret("b")),
        endpoints=Endpoints(tls_url),
        policy=RetryPolicy(budget=5),
    )
    with pytest.raises(TLSError) as info:
        client.fetch(ClientCredentials())
    assert not info.value.retryable
    assert "Keep verification on" in info.value.hint
    assert "failed TLS verification" in str(info.value)


def test_https_to_a_plain_http_port_says_so() -> None:
    """A real server speaking plain HTTP where the URL says https://: not a certificate
    problem, and the hint says which."""
    with AuthServer() as server:
        client = TokenClient(
            ClientSecretBasic("demo-client", Secret("demo-secret")),
            endpoints=Endpoints(server.token_url.replace("http://", "https://")),
            policy=RetryPolicy(budget=5),
        )
        with pytest.raises(TLSError) as info:
            client.fetch(ClientCredentials())
    assert "answered the TLS handshake in plain HTTP" in str(info.value)
    assert "that port speaks plain HTTP" in info.value.hint and "CA" not in info.value.hint
    assert not info.value.retryable


def test_dns_failure_is_named() -> None:
    cause = socket.gaierror(-2, "Name or service not known")
    exc = httpx.ConnectError("[Errno -2] Name or service not known")
    exc.__cause__ = cause
    err = transport_error(exc, ErrorContext("https://login.mypurecloud.iee/oauth/token"))
    assert isinstance(err, NameResolutionError)
    assert "login.mypurecloud.iee could not be resolved" in str(err)
    assert err.retryable


def test_retry_after_forms() -> None:
    now = 1_700_000_000.0
    assert retry_after(httpx.Headers({"Retry-After": "42"}), now) == 42.0
    assert retry_after(
        httpx.Headers({"Retry-After": "Tue, 14 Nov 2023 22:15:00 GMT"}), now
    ) == pytest.approx(100.0)
    assert retry_after(httpx.Headers({"Retry-After": "soon"}), now) is None
    assert retry_after(httpx.Headers({}), now) is None
