"""The endpoints of one authorization server, and the rule for which URLs are safe."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from freshtoken._errors import ConfigurationError
from freshtoken._urls import split_url


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Token endpoint and, where known, the others a tool may need."""

    token_url: str
    issuer: str | None = None
    revocation_url: str | None = None
    introspection_url: str | None = None
    authorization_url: str | None = None
    api_base_url: str | None = None
    region: str | None = None


def is_loopback_host(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_url(url: str, setting: str) -> str:
    """Refuse a URL that is malformed, or plain http to anything but this machine."""
    parts = split_url(url, setting)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"{setting} is not a valid http(s) URL: {url!r}",
            hint=f"Set {setting} to a full URL such as https://login.example.com/oauth/token.",
        )
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ConfigurationError(
            f"{setting} uses plain http to {parts.hostname}",
            hint="Credentials and tokens would cross the network unencrypted. Use https://; "
            "plain http is allowed only for loopback hosts (127.0.0.1, ::1, localhost).",
        )
    return url
