"""`freshtoken keepalive`: refresh once when the refresh token has been idle too long."""

from __future__ import annotations

import re

import click

from freshtoken._errors import FreshtokenError
from freshtoken.cli._common import fail, run

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw]?)")


def parse_duration(text: str) -> float:
    """`20d`, `12h`, `30m`, `45s`, `2w` or plain seconds."""
    found = _DURATION.fullmatch(text.strip().lower())
    if found is None:
        raise click.BadParameter(
            f"{text!r} is not a duration: use a number and s, m, h, d or w (e.g. 20d)",
            param_hint="--max-idle",
        )
    return float(found.group(1)) * _UNITS[found.group(2) or "s"]


def say(seconds: float) -> str:
    """A duration as people write it: 20d, 3h, 12m, 40s (two units at most)."""
    left, parts = int(seconds), list[str]()
    for unit in ("d", "h", "m", "s"):
        size = int(_UNITS[unit])
        if left >= size or (unit == "s" and not parts):
            parts.append(f"{left // size}{unit}")
            left %= size
        if len(parts) == 2:
            break
    return "".join(parts)


@click.command()
@click.option(
    "--max-idle",
    required=True,
    metavar="DURATION",
    help="Refresh when the refresh token was last used this long ago or more (20d, 12h, 3600).",
)
@click.pass_context
def keepalive(ctx: click.Context, max_idle: str) -> None:
    """Spend the refresh token once, writing the new one back to the sink, when it has not
    been used for --max-idle; otherwise say so and do nothing. For a scheduled workflow that
    keeps a refresh token alive past the server's idle expiry (docs/refresh-tokens.md).

    \b
    Example (GitHub Actions, on a schedule):
      freshtoken keepalive --max-idle 20d
    """
    limit = parse_duration(max_idle)
    try:
        broker = run(ctx).broker()
        try:
            done = broker.keep_alive(limit)
        finally:
            broker.close()
    except FreshtokenError as exc:
        fail(exc)
    idle = "unknown" if done.idle is None else say(done.idle)
    if done.refreshed:
        click.echo(f"refreshed: idle {idle} ({done.source}), limit {say(limit)}")
    else:
        click.echo(f"not needed: idle {idle} ({done.source}), under the limit of {say(limit)}")
