"""Reading a URL someone configured: every malformed form is a configuration error."""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit

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
