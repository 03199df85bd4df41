"""The `freshtoken` logger and a filter that removes every secret it has seen.

`logging` is imported at the first record that can be shown: a `freshtoken token` store hit
logs nothing at its level and would pay 21 M instructions for the import (bench/startup.py)."""

from __future__ import annotations

import re
import sys
from _thread import allocate_lock as Lock  # threading.Lock; threading costs a hit 4 M
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus, urlsplit

if TYPE_CHECKING:
    import logging

_MIN_SECRET_LEN = 6
_MAX_REMEMBERED = 4096
_secrets: dict[str, None] = {}  # insertion-ordered, so the oldest are dropped first
_secrets_lock = Lock()

# The patterns are strings, compiled by `re` at first use (and kept in its cache): compiling
# them all at import costs every command-line call 7 M instructions, and a store hit uses none.
# Shapes that carry secrets even when their value was never registered.
_PATTERNS = (
    r"(?i)(bearer|basic)\s+[A-Za-z0-9\-._~+/]+=*",
    r"(?i)((?:access|refresh|id)_token|client_secret|code|password)"
    r"([\"']?\s*[:=]\s*[\"']?)[^\s\"'&,}]+",
)
# The password of a URL's userinfo (redis://user:PASSWORD@host).
_URL_PASSWORD = r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]*:)[^@\s/]+@"


def remember_secret(value: str) -> None:
    """Register a value that must be scrubbed from any log record, with the forms in which
    freshtoken sends it (form- and URL-encoded)."""
    if len(value) < _MIN_SECRET_LEN:
        return
    with _secrets_lock:
        for form in dict.fromkeys((value, quote_plus(value), quote(value, safe=""))):
            _secrets[form] = None
        while len(_secrets) > _MAX_REMEMBERED:
            del _secrets[next(iter(_secrets))]


# A query parameter that carries a credential (redis-py reads `?password=`): its name, decoded.
_CREDENTIAL_NAME = r"(?i)pass|secret|token|key|auth|cred"
_QUERY_PARAMETER = r"([?&;])([^=&;#\s]*)=([^&;#\s]*)"


def _query_credentials(url: str) -> list[str]:
    from urllib.parse import unquote_plus

    query = url.partition("?")[2]
    if not query:
        return []
    return [
        unquote_plus(found.group(3))
        for found in re.finditer(_QUERY_PARAMETER, "?" + query)
        if re.search(_CREDENTIAL_NAME, unquote_plus(found.group(2))) and found.group(3)
    ]


def remember_url_password(url: str) -> None:
    """Register every credential of a URL: its userinfo's password, and the value of a query
    parameter named like one (`?password=`)."""
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    for value in (password, *_query_credentials(url)):
        if value:
            remember_secret(value)


def redact_url(text: str) -> str:
    """`text` (a URL, or text holding URLs) as it may be shown: every credential form of a URL
    replaced by *** (the userinfo's password, and query parameters named like a credential,
    `?password=`, `&auth_token=`). The one display function for store and endpoint URLs."""
    text = re.sub(_URL_PASSWORD, lambda m: f"{m.group(1)}***@", text)
    if "?" not in text:
        return text

    def hide(found: re.Match[str]) -> str:
        from urllib.parse import unquote_plus

        if re.search(_CREDENTIAL_NAME, unquote_plus(found.group(2))):
            return f"{found.group(1)}{found.group(2)}=***"
        return found.group(0)

    head, question, query = text.partition("?")
    return head + question + re.sub(_QUERY_PARAMETER, hide, "?" + query)[1:]


def redact(text: str) -> str:
    """Return text with every known secret and secret-shaped value replaced by ***."""
    with _secrets_lock:
        known = list(_secrets)
    for value in known:
        if value in text:
            text = text.replace(value, "***")
    text = redact_url(re.sub(_PATTERNS[0], lambda m: f"{m.group(1)} ***", text))
    return re.sub(_PATTERNS[1], lambda m: f"{m.group(1)}{m.group(2)}***", text)


# Control characters (C0, DEL, C1) and Unicode line breaks: server text is printed on one line,
# so that it cannot start a line of its own (a CI log command such as ::warning::) nor drive a
# terminal (ESC sequences, BEL).
_CONTROL = r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+"


def one_line(value: object) -> str:
    """Text a server chose (an error, a scope) as it may be printed: one line, no control
    character, no known secret."""
    return redact(" ".join(re.sub(_CONTROL, " ", str(value)).split()))


def describe(exc: BaseException) -> str:
    """One secret-free line for an unexpected exception: its type and redacted text."""
    text = " ".join(str(exc).split())[:300]
    return f"{type(exc).__name__}: {redact(text)}" if text else type(exc).__name__


def _redact_record(record: logging.LogRecord) -> bool:
    """The logger's filter: rewrites a record's message so that no secret leaves through
    logging."""
    message = record.getMessage()
    record.msg = redact(message)
    record.args = None
    if record.exc_info and record.exc_info[1] is not None:
        import logging

        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        record.exc_info = None
    return True


_DEBUG, _INFO, _WARNING, _ERROR = 10, 20, 30, 40  # logging's levels, without importing it


class _Logger:
    """The `freshtoken` logger (`logging.getLogger("freshtoken")`, with `_redact_record` as its
    filter) behind the four calls freshtoken makes. Until `logging` is imported (by anyone),
    nothing can have configured it: a record below the command line's level (`to_stderr`), or
    below WARNING, the root's default, is dropped without importing it."""

    def __init__(self) -> None:
        self._real: logging.Logger | None = None
        self._stderr: int | None = None  # the level `to_stderr` asked for, once it was called

    def real(self) -> logging.Logger:
        """The logger itself, filtered and set up as the command line asked."""
        if self._real is None:
            import logging

            real = logging.getLogger("freshtoken")
            real.addFilter(_redact_record)
            if self._stderr is not None:
                handler = logging.StreamHandler(sys.stderr)
                handler.setFormatter(logging.Formatter("freshtoken: %(message)s"))
                real.addHandler(handler)
                real.setLevel(self._stderr)
                real.propagate = False
            self._real = real
        return self._real

    def use_stderr(self, level: int) -> None:
        """Show records from `level` on as `freshtoken: message` lines on stderr (once)."""
        if self._stderr is None:
            self._stderr = level
            self._real = None  # (if it was in use) set up again, with the handler

    def isEnabledFor(self, level: int) -> bool:  # logging's name
        if self._real is None and "logging" not in sys.modules:
            return level >= (_WARNING if self._stderr is None else self._stderr)
        return self.real().isEnabledFor(level)

    def _log(self, level: int, msg: str, args: tuple[object, ...], kwargs: Any) -> None:
        if self.isEnabledFor(level):
            self.real().log(level, msg, *args, stacklevel=3, **kwargs)

    def debug(self, msg: str, *args: object, **kwargs: Any) -> None:
        self._log(_DEBUG, msg, args, kwargs)

    def info(self, msg: str, *args: object, **kwargs: Any) -> None:
        self._log(_INFO, msg, args, kwargs)

    def warning(self, msg: str, *args: object, **kwargs: Any) -> None:
        self._log(_WARNING, msg, args, kwargs)

    def error(self, msg: str, *args: object, **kwargs: Any) -> None:
        self._log(_ERROR, msg, args, kwargs)


logger = _Logger()
if "logging" in sys.modules:  # someone may log through it by its name: filtered at once
    logger.real()


def to_stderr(verbose: int, quiet: bool) -> None:
    """The command line's logging: `freshtoken: message` on stderr, warnings and errors by
    default, more with each -v, errors only with -q (set up at the first record shown)."""
    logger.use_stderr(_ERROR if quiet else (_WARNING, _INFO, _DEBUG)[min(verbose, 2)])
