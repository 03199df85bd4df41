"""Reading a URL someone configured: every malformed form is a configuration error."""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit, urlunsplit

from freshtoken._errors import ConfigurationError


def split_url(url: str, setting: str) -> SplitResult:
    """`url` split into parts; a malformed host (`http://[::1/x`), a port out of range or a
    NUL byte is a ConfigurationError naming `setting`."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises for a port out of range or not a number
        if "\x00" in url:
            raise ValueError("it contains a NUL byte")
    except ValueError as exc:
        raise ConfigurationError(
            f"{setting} is not a valid URL ({exc})",
            hint=f"Check {setting}: scheme://host:port/path, a port from 1 to 65535.",
        ) from None
    return parts


def normal_host(host: str) -> str:
    """A host as every rule and every request sees it: lower case, without the trailing dot of
    a fully qualified name (`localhost.` and `127.0.0.1.` are `localhost` and `127.0.0.1`), so
    that no spelling passes one rule (plain http to loopback) and misses another (loopback is
    never sent to a proxy)."""
    return host.strip("[]").lower().rstrip(".")


def normal_url(url: str, setting: str) -> str:
    """`url` with its host normalised (see normal_host); malformed URLs are refused."""
    parts = split_url(url, setting)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if hostport.startswith("["):
        return url
    host, colon, port = hostport.partition(":")
    if normal_host(host) == host:
        return url
    return urlunsplit(parts._replace(netloc=f"{userinfo}{at}{normal_host(host)}{colon}{port}"))
