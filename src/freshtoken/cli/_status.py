"""`freshtoken status`: what the store holds per cache key, never a token."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from freshtoken import _build
from freshtoken._errors import ConfigurationError, FreshtokenError
from freshtoken._log import redact_url
from freshtoken.broker._key import settings_key
from freshtoken.broker._refresh import vouches
from freshtoken.cli._common import fail, run
from freshtoken.config._settings import Settings
from freshtoken.stores import Entry, TokenStore
from freshtoken.stores._entry import SPENDING, WRITING_BACK

#: (title, width) of the table's columns: 12+2+9+2+18+2+7+2+19+2+5 = 80 at most.
COLUMNS = (
    ("KEY", 12),
    ("PROFILE", 9),
    ("EXPIRES", 18),
    ("REFRESH", 7),
    ("LAST MINT", 19),
    ("MINTS", 5),
)


def vouching(entry: Entry | None) -> str:
    """`vouches` as "yes", "no" or "unknown", for `freshtoken doctor` and `status`."""
    said = vouches(entry.facts) if entry else None
    return "unknown" if said is None else "yes" if said else "no"


def store_url(settings: Settings, store: TokenStore) -> str:
    """The store as a URL a user could set (passwords redacted), not a Python repr."""
    inner: Any = getattr(store, "shared", store)  # FailOpenStore wraps the shared store
    path = getattr(inner, "path", None)
    if path is not None:
        return f"sqlite://{path}" if str(path).startswith("/") else f"sqlite:{path}"
    if settings.store:
        return redact_url(settings.store)
    return "memory://"


def _expires(left: float | None) -> str:
    if left is None:
        return "no access token"
    if left <= 0:
        return f"EXPIRED {_span(-left)} ago"
    return f"in {_span(left)}"


def _span(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _served(profile: str | None) -> str | None:
    """The cache key (first 12 characters) the running endpoint serves, where this step has
    one (FRESHTOKEN_URL, FRESHTOKEN_KEY): its entry is shown as `serve`."""
    from freshtoken._local_endpoint import EndpointRefusal, get, running_endpoint

    found = running_endpoint(profile)
    if found is None:
        return None
    try:
        return str(json.loads(get(*found, "/status", timeout=10))["cache_key"])
    except (EndpointRefusal, ValueError, KeyError, TypeError) as exc:
        said = exc.line if isinstance(exc, EndpointRefusal) else "no store entry named"
        click.echo(
            f"freshtoken: warning: the running endpoint did not say its entry: {said}", err=True
        )
        return None


def _rows(settings: Settings, store: TokenStore) -> list[dict[str, Any]]:
    try:
        mine = settings_key(settings, store.pepper)
    except ConfigurationError:
        mine = None
    served = _served(settings.profile)
    rows = []
    now = time.time()
    for key in store.list_keys():
        entry = store.load(key)
        if entry is None:
            continue
        left = entry.token.expires_in(now) if entry.token else None
        rows.append(
            {
                "key": key[:12],
                "this_profile": key == mine,
                "served_by_endpoint": key[:12] == served,
                "expires_in": None if left is None else round(left),
                "expired": left is not None and left <= 0,
                "refresh_token": bool(entry.refresh_token),
                "last_mint": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.last_mint))
                if entry.last_mint
                else None,
                "mints": entry.mints,
                # What a refresh token's entry knows: a rotated one not yet written to the
                # sink, a refresh in flight, and what was learned about the server.
                "sink_pending": entry.phase == WRITING_BACK,
                "being_spent": entry.phase == SPENDING,
                "introspection_vouches": vouching(entry) if entry.refresh_token else None,
                "rotation_revokes_access": entry.facts.revokes_on_rotation,
            }
        )
    return rows


def _cells(row: dict[str, Any]) -> list[str]:
    left = row["expires_in"]
    return [
        row["key"],
        "this" if row["this_profile"] else "serve" if row["served_by_endpoint"] else "other",
        _expires(left),
        "pending" if row["sink_pending"] else "yes" if row["refresh_token"] else "no",
        row["last_mint"] or "-",
        str(row["mints"]),
    ]


def table(url: str, rows: list[dict[str, Any]], color: bool) -> str:
    """The header and a row per entry, in 80 columns; escape codes only when `color`."""

    def style(text: str, **how: Any) -> str:
        return click.style(text, **how) if color else text

    lines = [style(f"store: {url}", bold=True)]
    if not rows:
        return "\n".join([*lines, "no entries"])
    head = "  ".join(title.ljust(width) for title, width in COLUMNS).rstrip()
    lines.append(style(head, bold=True))
    for row in rows:
        cells = [c.ljust(w) for c, (_, w) in zip(_cells(row), COLUMNS, strict=True)]
        if row["expired"]:
            cells[2] = style(cells[2], fg="red")
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


@click.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="table: a header naming the store, then a row per cache key (80 columns).",
)
@click.pass_context
def status(ctx: click.Context, fmt: str) -> None:
    """What the store holds per cache key (never a token); expired entries are marked.

    \b
    Example:
      freshtoken status --format json
    """
    try:
        settings = run(ctx).settings()
        store = _build.store_for(settings)
        try:
            rows = _rows(settings, store)
        finally:
            store.close()
    except FreshtokenError as exc:
        fail(exc, fmt == "json")
    url = store_url(settings, store)
    if fmt == "json":
        click.echo(json.dumps({"store": url, "entries": rows}))
        return
    click.echo(table(url, rows, run(ctx).use_color), color=run(ctx).use_color)
