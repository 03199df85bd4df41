"""Where the proxy sends a request: the upstream's scheme, host and port, always, and a path
under the upstream's own path. Built from parts, never by pasting the request target onto a
string, so that no target can reach another port, host or path prefix."""

from __future__ import annotations

import re
from urllib.parse import unquote

import httpx

# RFC 9112 §3.2.1: a request to an origin is "absolute-path [ ? query ]". No control
# characters, spaces, backslashes (some servers read them as /) or fragments.
_FORBIDDEN = re.compile(r"[\x00-\x20\x7f\\#]")
_ENCODED_DOT = re.compile("%2e", re.IGNORECASE)


class BadTarget(ValueError):
    """The request target is not one the proxy forwards (answered 400)."""


def _dots(segment: str) -> str:
    """A segment as servers compare it to `.` and `..` (percent-encoded dots decoded)."""
    return _ENCODED_DOT.sub(".", segment)


def resolve_path(path: str) -> str:
    """`path` with its dot segments resolved (RFC 3986 §5.2.4); BadTarget when a `..` would
    climb above the root, or a segment hides one behind an encoded slash."""
    out: list[str] = []
    segments = path.split("/")[1:]
    for index, segment in enumerate(segments):
        decoded = unquote(segment)
        if ("/" in decoded or "\\" in decoded) and any(
            part in (".", "..") for part in re.split(r"[/\\]", decoded)
        ):
            raise BadTarget("a dot segment behind an encoded slash")
        if decoded.split(";", 1)[0] in (".", "..") and ";" in decoded:
            # Tomcat, Jetty and Spring drop a segment's `;parameters` before they resolve dot
            # segments: `..;` and `%2e%2e;x` are `..` upstream, but not here. Refused.
            raise BadTarget("a dot segment with parameters (`..;`)")
        dots = _dots(segment)
        if dots in (".", ".."):
            if dots == "..":
                if not out:
                    raise BadTarget("the path climbs above the upstream's base")
                out.pop()
            if index == len(segments) - 1:
                out.append("")  # `/a/b/..` is the directory `/a/`
            continue
        out.append(segment)
    return "/" + "/".join(out)


def upstream_url(upstream: httpx.URL, target: str) -> httpx.URL:
    """The URL a request for `target` goes to: origin-form targets only; the result is
    checked to have the upstream's scheme, host and port, and a path under its path."""
    if not target.startswith("/") or target.startswith("//") or _FORBIDDEN.search(target):
        raise BadTarget("only origin-form request targets (/path?query) are forwarded")
    path, question, query = target.partition("?")
    base = upstream.raw_path.decode("ascii").split("?")[0].rstrip("/")
    joined = base + resolve_path(path)
    try:
        url = upstream.copy_with(raw_path=(joined + question + query).encode("ascii"))
    except (httpx.InvalidURL, UnicodeEncodeError) as exc:
        raise BadTarget(f"not a valid path: {exc}") from None
    same_origin = (url.scheme, url.host, url.port) == (
        upstream.scheme,
        upstream.host,
        upstream.port,
    )
    under_base = url.raw_path.startswith(base.encode("ascii") + b"/") or not base
    if not (same_origin and under_base):
        raise BadTarget("the target leaves the upstream")
    return url
