"""Where rotated refresh tokens are written back: sinks chosen by the scheme of
`FRESHTOKEN_REFRESH_TOKEN_SINK` (docs/refresh-tokens.md).

A new sink is a module here with an `open_url(url, options)` function and a row in `SCHEMES`.
"""

from __future__ import annotations

import importlib
from typing import cast

from freshtoken._errors import ConfigurationError
from freshtoken.sinks._base import GITHUB_API, RefreshTokenSink, SinkOptions

# scheme -> the module whose `open_url` opens it; imported only when used (PyNaCl, subprocess).
SCHEMES: dict[str, str] = {
    "github-secret": "freshtoken.sinks._github",
    "file": "freshtoken.sinks._file",
    "command": "freshtoken.sinks._command",
}


def open_sink(url: str, options: SinkOptions | None = None) -> RefreshTokenSink:
    """A sink from `FRESHTOKEN_REFRESH_TOKEN_SINK`: `github-secret://OWNER/REPO/NAME` (also
    `.../environments/ENV/NAME` and `github-secret://orgs/ORG/NAME`), `file:///path` or
    `command:PROGRAM ARGS`."""
    scheme = url.partition(":")[0] if ":" in url else ""
    module = SCHEMES.get(scheme)
    if module is None:
        raise ConfigurationError(
            f"FRESHTOKEN_REFRESH_TOKEN_SINK has an unknown form: {scheme or url!r}",
            hint="Use github-secret://OWNER/REPO/NAME, file:///absolute/path or "
            "command:PROGRAM ARGS (see docs/refresh-tokens.md).",
        )
    opener = importlib.import_module(module).open_url
    return cast(RefreshTokenSink, opener(url, options or SinkOptions()))


__all__ = ["GITHUB_API", "SCHEMES", "RefreshTokenSink", "SinkOptions", "open_sink"]
